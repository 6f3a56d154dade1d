//! What every TCP connection ecsrdp makes is set up with, whether it carries RDP directly or
//! an EC2 Instance Connect tunnel: a dead peer is noticed within about 30 seconds.

use std::time::Duration;

use tracing::debug;

/// How long a silent connection waits before TCP probes whether the peer is still there.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// Between unanswered probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is declared dead.
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may go unacknowledged before the connection is declared dead.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(30);

/// A stopped instance or a vanished NAT mapping sends no FIN or RST: without keepalive, an idle
/// session would wait forever, and a blocked write for TCP's ~15 minutes of retransmissions.
/// With these, a dead peer ends the session (exit 5) within about 30 seconds. Best effort: a
/// platform without an option keeps its defaults.
pub fn detect_dead_peers(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "no TCP keepalive");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT)) {
        debug!(error = %e, "no TCP user timeout");
    }
}

/// The user that owns the local TCP connection from `peer` to our `local` address, on Linux,
/// from the kernel's socket table (`/proc/net/tcp`, `/proc/net/tcp6`). A listener on
/// 127.0.0.1 admits every local user; this is how it tells the one who started ecsrdp from
/// the others. `None` when the table cannot say (another OS, the socket already gone).
/// Hand-read: the two columns needed do not justify a /proc crate.
pub fn local_peer_uid(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    let (table, peer_hex, local_hex) = match (peer, local) {
        (std::net::SocketAddr::V4(p), std::net::SocketAddr::V4(l)) => {
            // The kernel prints an IPv4 address as its 32-bit value in host order.
            let hex = |a: std::net::SocketAddrV4| {
                format!(
                    "{:08X}:{:04X}",
                    u32::from_ne_bytes(a.ip().octets()),
                    a.port()
                )
            };
            ("/proc/net/tcp", hex(p), hex(l))
        }
        _ => return None,
    };
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid …
        (fields.get(1) == Some(&peer_hex.as_str()) && fields.get(2) == Some(&local_hex.as_str()))
            .then(|| fields.get(7)?.parse().ok())
            .flatten()
    })
}

/// The user this process runs as, as the socket table shows users.
pub fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_connection_is_owned_by_this_user() {
        if !std::path::Path::new("/proc/net/tcp").exists() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(local_peer_uid(peer, local), own_uid());
        assert!(own_uid().is_some());
        // Nobody connects from a port nobody uses.
        let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(local_peer_uid(nobody, local), None);
    }
}
