//! A TCP proxy the test controls, between the client and a real server: it forwards bytes until
//! told to stall (the sockets stay open but nothing moves, like a peer whose instance stopped or
//! whose NAT mapping vanished behind a tunnel that still acknowledges), to slow down, or to cut
//! the connection.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How often an idle pump looks at its orders.
const TICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Orders {
    stalled: AtomicBool,
    cut: AtomicBool,
    /// Cut with a reset (RST) rather than a close (FIN).
    reset: AtomicBool,
    /// Bytes forwarded from the server to the client so far.
    downstream: AtomicU64,
    /// Bytes forwarded from the client to the server so far.
    upstream: AtomicU64,
    /// When not 0, the server's bytes reach the client at this many per second.
    slow: AtomicU64,
    /// Connections accepted so far; each is numbered from 1.
    connections: AtomicU64,
    /// Connections numbered up to this one are reset; later ones go on.
    reset_up_to: AtomicU64,
    /// New connections are closed at once, as by a network that is still down.
    refuse: AtomicBool,
    /// When not 0, every connection is reset this many milliseconds after it opened, as by a
    /// proxy with a short session limit.
    lifetime_ms: AtomicU64,
}

pub struct Proxy {
    pub port: u16,
    orders: Arc<Orders>,
}

impl Proxy {
    /// Listens on a port of its own (bound to port 0) and forwards every connection to
    /// `upstream` on loopback.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let orders = Arc::new(Orders::default());
        let shared = Arc::clone(&orders);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if shared.cut.load(Ordering::SeqCst) {
                    return;
                }
                if shared.refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let opened = std::time::Instant::now();
                pump(&client, &server, &shared, false, number, opened);
                pump(&server, &client, &shared, true, number, opened);
            }
        });
        Proxy { port, orders }
    }

    /// Stops forwarding in both directions, keeping every socket open.
    pub fn stall(&self) {
        self.orders.stalled.store(true, Ordering::SeqCst);
    }

    /// Passes the server's bytes on at `bytes_per_second`, as a congested link does.
    pub fn slow(&self, bytes_per_second: u64) {
        self.orders.slow.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Closes both sides of every connection.
    pub fn cut(&self) {
        self.orders.cut.store(true, Ordering::SeqCst);
    }

    /// Resets every connection (RST to the client), as a middlebox that forgets it does.
    pub fn reset(&self) {
        self.orders.reset.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// Resets the connections open now (RST), as a network blip does, and forwards the next
    /// ones as before.
    pub fn blip(&self) {
        let now = self.orders.connections.load(Ordering::SeqCst);
        self.orders.reset_up_to.store(now, Ordering::SeqCst);
    }

    /// Resets every connection, this one and those to come, `lifetime` after it opened.
    pub fn cut_each_after(&self, lifetime: Duration) {
        let ms = u64::try_from(lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.orders.lifetime_ms.store(ms, Ordering::SeqCst);
    }

    /// Closes new connections at once (`true`) until told otherwise (`false`).
    pub fn refuse_new(&self, refuse: bool) {
        self.orders.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Connections the proxy has forwarded so far.
    pub fn connections(&self) -> u64 {
        self.orders.connections.load(Ordering::SeqCst)
    }

    /// Bytes the server has sent the client through the proxy.
    pub fn downstream(&self) -> u64 {
        self.orders.downstream.load(Ordering::SeqCst)
    }

    /// Bytes the client has sent the server through the proxy.
    pub fn upstream(&self) -> u64 {
        self.orders.upstream.load(Ordering::SeqCst)
    }

    /// Waits until the client has sent at least `bytes`.
    pub fn wait_upstream(&self, bytes: u64, limit: Duration) {
        let started = std::time::Instant::now();
        while self.upstream() < bytes {
            assert!(
                started.elapsed() < limit,
                "only {} bytes came from the client",
                self.upstream()
            );
            thread::sleep(TICK);
        }
    }

    /// Waits until the server has sent at least `bytes`.
    pub fn wait_downstream(&self, bytes: u64, limit: Duration) {
        let started = std::time::Instant::now();
        while self.downstream() < bytes {
            assert!(
                started.elapsed() < limit,
                "only {} bytes came from the server",
                self.downstream()
            );
            thread::sleep(TICK);
        }
    }

    /// Waits until the server has sent nothing for `quiet`: on a still desktop, the session
    /// is then up and has the whole desktop.
    pub fn wait_still(&self, quiet: Duration, limit: Duration) {
        let started = std::time::Instant::now();
        let mut last = (self.downstream(), std::time::Instant::now());
        while last.1.elapsed() < quiet {
            assert!(started.elapsed() < limit, "the server never went quiet");
            thread::sleep(TICK);
            let now = self.downstream();
            if now != last.0 {
                last = (now, std::time::Instant::now());
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        // Wakes the accept loop so that it sees the order and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` on a thread of its own while the orders allow.
fn pump(
    from: &TcpStream,
    to: &TcpStream,
    orders: &Arc<Orders>,
    downstream: bool,
    number: u64,
    opened: std::time::Instant,
) {
    let (mut from, mut to) = (
        from.try_clone().expect("clone socket"),
        to.try_clone().expect("clone socket"),
    );
    let orders = Arc::clone(orders);
    from.set_read_timeout(Some(TICK)).expect("read timeout");
    thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut reset = false;
        loop {
            if orders.cut.load(Ordering::SeqCst) {
                break;
            }
            let lifetime = orders.lifetime_ms.load(Ordering::SeqCst);
            if number <= orders.reset_up_to.load(Ordering::SeqCst)
                || (lifetime != 0 && opened.elapsed() >= Duration::from_millis(lifetime))
            {
                reset = true;
                break;
            }
            if orders.stalled.load(Ordering::SeqCst) {
                thread::sleep(TICK);
                continue;
            }
            // A slow link moves a tick's worth of bytes per tick.
            let rate = if downstream {
                orders.slow.load(Ordering::SeqCst)
            } else {
                0
            };
            let chunk = if rate == 0 {
                buf.len()
            } else {
                (rate * TICK.as_millis() as u64 / 1000).clamp(1, buf.len() as u64) as usize
            };
            match from.read(&mut buf[..chunk]) {
                Ok(0) => break,
                Ok(n) => {
                    if rate != 0 {
                        thread::sleep(TICK);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let count = if downstream {
                        &orders.downstream
                    } else {
                        &orders.upstream
                    };
                    count.fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        if reset || orders.reset.load(Ordering::SeqCst) {
            // Linger 0: closing sends RST instead of FIN.
            for socket in [&from, &to] {
                let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
            }
            drop((from, to));
            return;
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
