//! In-process RDP server for integration tests, built on `ironrdp-server`.
//!
//! [`TestServer::start`] listens on an ephemeral loopback port with a freshly generated
//! self-signed certificate and serves a deterministic desktop (see
//! [`TestServer::expected_pixel`]). It sends one full-screen frame each time a client
//! is activated. [`TestServer::request_resize`] drives a server-side resize. The server
//! then sends a Deactivate All PDU, reactivates the client and repaints the whole desktop
//! at the new size. The server records every keyboard and mouse event it receives in an
//! [`InputLog`].
//!
//! No bitmap codec is advertised, so frames are sent uncompressed (surface bits with
//! `CODEC_ID_NONE`). The client can check every pixel exactly.
//!
//! `ironrdp-server` runs a connection as a `!Send` future, so the server runs on its own
//! thread with a current-thread runtime. The test's runtime is left alone.

#![allow(
    dead_code,
    reason = "each integration test crate uses a different part of this module"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use ironrdp::pdu::rdp::capability_sets::BitmapCodecs;
use ironrdp::server::tokio_rustls::rustls;
use ironrdp::server::tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use ironrdp::server::tokio_rustls::TlsAcceptor;
use ironrdp::server::{
    BitmapUpdate, Credentials, DesktopSize, DisplayUpdate, KeyboardEvent, MouseEvent, PixelFormat,
    RdpServer, RdpServerDisplay, RdpServerDisplayUpdates, RdpServerInputHandler,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Layout of the served frames: bytes `[b, g, r, 0xFF]`, which is what an `IronRDP` client
/// assumes for 32 bpp `CODEC_ID_NONE` surface bits.
const FRAME_FORMAT: PixelFormat = PixelFormat::BgrX32;

/// How long the server thread waits for blocking tasks (bitmap encoding) when it stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The security protocol the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS only. The server compares the credentials in the Client Info PDU with the
    /// configured ones exactly, domain included (it must be empty).
    Tls,
    /// Network Level Authentication: CredSSP/NTLM over TLS (`HYBRID` and `HYBRID_EX`).
    Hybrid,
}

#[derive(Debug, Clone)]
pub struct TestServerOptions {
    pub security: Security,
    pub user: String,
    pub password: String,
    /// Initial desktop width. Prefer a multiple of 4: `ironrdp-server` can't send
    /// other widths to a client that doesn't support surface commands.
    pub width: u16,
    pub height: u16,
}

/// One input event as the server saw it.
///
/// What `ironrdp-server` 0.13 passes on limits what this log can show. A fast-path or
/// slow-path mouse PDU with the middle-button or horizontal-wheel flag becomes a
/// `MouseMove`. X1 and X2 in an extended mouse PDU become left and right.
/// `MouseButton { button: 3..=5 }` and horizontal `Wheel` events only come from the
/// relative-mouse PDU and the ainput channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    Key {
        code: u8,
        extended: bool,
        down: bool,
    },
    MouseMove {
        x: u16,
        y: u16,
    },
    /// `button`: 1 left, 2 right, 3 middle, 4 X1, 5 X2.
    ///
    /// `ironrdp-server` doesn't pass on the pointer position of button events. `x` and
    /// `y` come from the last [`InputEvent::MouseMove`] instead.
    MouseButton {
        button: u8,
        down: bool,
        x: u16,
        y: u16,
    },
    Wheel {
        vertical: bool,
        amount: i32,
    },
}

/// All input events received so far, in the order they arrived, across connections.
#[derive(Debug, Clone, Default)]
pub struct InputLog(Arc<Mutex<Vec<InputEvent>>>);

impl InputLog {
    #[must_use]
    pub fn events(&self) -> Vec<InputEvent> {
        lock(&self.0).clone()
    }

    fn push(&self, event: InputEvent) {
        lock(&self.0).push(event);
    }
}

/// A running test server. Dropping it also stops the server, but doesn't wait for it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub input: InputLog,
    cert_der: Vec<u8>,
    resize: watch::Sender<DesktopSize>,
    /// Dropping this sender (in [`TestServer::stop`] or on drop) shuts the server down.
    shutdown: oneshot::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and starts serving on a dedicated thread.
    ///
    /// Connections are served one at a time.
    ///
    /// # Panics
    ///
    /// Panics if the desktop is empty or the server can't be set up.
    pub async fn start(opts: TestServerOptions) -> TestServer {
        assert!(
            opts.width > 0 && opts.height > 0,
            "the test desktop must not be empty: {}x{}",
            opts.width,
            opts.height
        );

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the test server to a loopback port");
        let addr = listener.local_addr().expect("read the test server address");
        // Deregisters the socket from the test's runtime so the server's runtime can own it.
        let listener = listener
            .into_std()
            .expect("detach the test server listener");

        let identity = Identity::generate();
        let acceptor = identity.tls_acceptor();

        let initial_size = DesktopSize {
            width: opts.width,
            height: opts.height,
        };
        let (resize, requested_size) = watch::channel(initial_size);
        let (shutdown, shutdown_requested) = oneshot::channel();

        let input = InputLog::default();
        let input_handler = RecordingInput {
            log: input.clone(),
            position: (0, 0),
        };
        let display = PatternDisplay {
            active: Arc::new(Mutex::new(initial_size)),
            requested: requested_size,
        };
        let credentials = Credentials {
            username: opts.user,
            password: opts.password,
            domain: None,
        };
        let security = opts.security;
        let public_key = identity.public_key.clone();

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the test server runtime");

        let server_thread = thread::Builder::new()
            .name("rdp-test-server".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("register the test server listener");

                    let builder = RdpServer::builder().with_addr(addr);
                    let builder = match security {
                        Security::Tls => builder.with_tls(acceptor),
                        Security::Hybrid => builder.with_hybrid(acceptor, public_key),
                    };
                    let mut server = builder
                        .with_input_handler(input_handler)
                        .with_display_handler(display)
                        // No codecs: the client gets uncompressed, exact pixels.
                        .with_bitmap_codecs(BitmapCodecs(Vec::new()))
                        .build();
                    server.set_credentials(Some(credentials));

                    tokio::select! {
                        _ = shutdown_requested => {}
                        () = serve(&mut server, listener) => {}
                    }
                });
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .expect("spawn the test server thread");

        TestServer {
            addr,
            input,
            cert_der: identity.cert_der,
            resize,
            shutdown,
            thread: server_thread,
        }
    }

    /// The color of the desktop pixel at (`x`, `y`) as served: `[b, g, r, 0xFF]`.
    ///
    /// The value is the same for every desktop size, before and after a resize.
    #[must_use]
    pub fn expected_pixel(x: u16, y: u16) -> [u8; 4] {
        let red = low_byte(x.wrapping_mul(7));
        let green = low_byte(y.wrapping_mul(5));
        let blue = low_byte(x.wrapping_add(y).wrapping_mul(3));
        [blue, green, red, 0xFF]
    }

    /// Resizes the server desktop.
    ///
    /// The connected client gets a Deactivate All PDU, is reactivated at the new size
    /// and then gets a full frame. With no client connected, the next client is
    /// reactivated at the new size right after it connects.
    ///
    /// # Panics
    ///
    /// Panics if the new desktop is empty.
    pub fn request_resize(&self, width: u16, height: u16) {
        assert!(
            width > 0 && height > 0,
            "the test desktop must not be empty: {width}x{height}"
        );
        self.resize.send_replace(DesktopSize { width, height });
    }

    /// The DER encoding of the certificate the server presents.
    #[must_use]
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// Stops the server, drops any open connection and waits for the server thread.
    ///
    /// # Panics
    ///
    /// Panics if the server thread panicked.
    pub async fn stop(self) {
        let TestServer {
            shutdown,
            thread: server_thread,
            ..
        } = self;
        drop(shutdown);

        let joined = tokio::task::spawn_blocking(move || server_thread.join())
            .await
            .expect("wait for the test server thread");
        if let Err(panic) = joined {
            std::panic::resume_unwind(panic);
        }
    }
}

async fn serve(server: &mut RdpServer, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("rdp test server: accept failed: {error}");
                return;
            }
        };

        if let Err(error) = server.run_connection(stream).await {
            eprintln!("rdp test server: connection failed: {error:#}");
        }
    }
}

/// The server's certificate and key.
struct Identity {
    cert_der: Vec<u8>,
    /// PKCS#8 DER.
    key_der: Vec<u8>,
    /// The content of the certificate's `subjectPublicKey` BIT STRING, which CredSSP
    /// binds to.
    public_key: Vec<u8>,
}

impl Identity {
    /// Generates a self-signed ECDSA P-256 certificate for `localhost` and `127.0.0.1`.
    ///
    /// CredSSP only hashes the public key bytes, so the key doesn't have to be RSA.
    fn generate() -> Self {
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a self-signed certificate");

        Self {
            cert_der: cert.der().to_vec(),
            key_der: key_pair.serialize_der(),
            // rcgen writes exactly these bytes into the certificate's SubjectPublicKeyInfo.
            public_key: key_pair.public_key_raw().to_vec(),
        }
    }

    fn tls_acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("select TLS protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("load the test server certificate");
        // RDP clients never resume TLS sessions, so send no session tickets.
        config.send_tls13_tickets = 0;

        TlsAcceptor::from(Arc::new(config))
    }
}

/// Serves the pattern of [`TestServer::expected_pixel`] at the current desktop size.
struct PatternDisplay {
    /// The size the client was last activated with. The display and its update
    /// streams share it.
    active: Arc<Mutex<DesktopSize>>,
    /// The size asked for by [`TestServer::request_resize`].
    requested: watch::Receiver<DesktopSize>,
}

#[async_trait::async_trait]
impl RdpServerDisplay for PatternDisplay {
    async fn size(&mut self) -> DesktopSize {
        *lock(&self.active)
    }

    /// Called on every activation, including each reactivation after a resize.
    async fn updates(&mut self) -> anyhow::Result<Box<dyn RdpServerDisplayUpdates>> {
        let size = *lock(&self.active);

        Ok(Box::new(PatternUpdates {
            active: Arc::clone(&self.active),
            requested: self.requested.clone(),
            full_frame: Some(pattern_frame(size)?),
        }))
    }
}

/// The updates of one activation: a pending resize first, then one full frame.
struct PatternUpdates {
    active: Arc<Mutex<DesktopSize>>,
    requested: watch::Receiver<DesktopSize>,
    full_frame: Option<BitmapUpdate>,
}

#[async_trait::async_trait]
impl RdpServerDisplayUpdates for PatternUpdates {
    // Cancellation safe: the only await is `watch::Receiver::changed`, and no state
    // changes before it.
    async fn next_update(&mut self) -> anyhow::Result<Option<DisplayUpdate>> {
        loop {
            let requested = *self.requested.borrow_and_update();

            let resized = {
                let mut active = lock(&self.active);
                let resized = *active != requested;
                *active = requested;
                resized
            };
            if resized {
                // The server now reactivates the client and asks for a new update stream
                // that paints the new size. This one won't be polled again.
                return Ok(Some(DisplayUpdate::Resize(requested)));
            }

            if let Some(frame) = self.full_frame.take() {
                return Ok(Some(DisplayUpdate::Bitmap(frame)));
            }

            if self.requested.changed().await.is_err() {
                // The `TestServer` is gone.
                return Ok(None);
            }
        }
    }
}

/// A full-desktop frame of the test pattern.
fn pattern_frame(size: DesktopSize) -> anyhow::Result<BitmapUpdate> {
    let width = NonZeroU16::new(size.width).context("desktop width is zero")?;
    let height = NonZeroU16::new(size.height).context("desktop height is zero")?;
    let stride = usize::from(size.width) * usize::from(FRAME_FORMAT.bytes_per_pixel());
    let stride = NonZeroUsize::new(stride).context("frame stride is zero")?;

    let data: Vec<u8> = (0..size.height)
        .flat_map(|y| (0..size.width).flat_map(move |x| TestServer::expected_pixel(x, y)))
        .collect();

    Ok(BitmapUpdate {
        x: 0,
        y: 0,
        width,
        height,
        format: FRAME_FORMAT,
        data: data.into(),
        stride,
    })
}

/// Records input into an [`InputLog`].
struct RecordingInput {
    log: InputLog,
    /// The last pointer position the client sent.
    position: (u16, u16),
}

impl RecordingInput {
    fn button(&self, button: u8, down: bool) {
        let (x, y) = self.position;
        self.log
            .push(InputEvent::MouseButton { button, down, x, y });
    }

    fn wheel(&self, vertical: bool, amount: i32) {
        self.log.push(InputEvent::Wheel { vertical, amount });
    }
}

impl RdpServerInputHandler for RecordingInput {
    fn keyboard(&mut self, event: KeyboardEvent) {
        let (code, extended, down) = match event {
            KeyboardEvent::Pressed { code, extended } => (code, extended, true),
            KeyboardEvent::Released { code, extended } => (code, extended, false),
            // Not recorded: the client's lock-key sync and Unicode input.
            KeyboardEvent::UnicodePressed(_)
            | KeyboardEvent::UnicodeReleased(_)
            | KeyboardEvent::Synchronize(_) => {
                return;
            }
        };
        self.log.push(InputEvent::Key {
            code,
            extended,
            down,
        });
    }

    fn mouse(&mut self, event: MouseEvent) {
        match event {
            MouseEvent::Move { x, y } => {
                self.position = (x, y);
                self.log.push(InputEvent::MouseMove { x, y });
            }
            MouseEvent::LeftPressed => self.button(1, true),
            MouseEvent::LeftReleased => self.button(1, false),
            MouseEvent::RightPressed => self.button(2, true),
            MouseEvent::RightReleased => self.button(2, false),
            MouseEvent::MiddlePressed => self.button(3, true),
            MouseEvent::MiddleReleased => self.button(3, false),
            MouseEvent::Button4Pressed => self.button(4, true),
            MouseEvent::Button4Released => self.button(4, false),
            MouseEvent::Button5Pressed => self.button(5, true),
            MouseEvent::Button5Released => self.button(5, false),
            MouseEvent::VerticalScroll { value } => self.wheel(true, i32::from(value)),
            // Only sent over the ainput dynamic channel.
            MouseEvent::Scroll { x, y } => {
                if y != 0 {
                    self.wheel(true, y);
                }
                if x != 0 {
                    self.wheel(false, x);
                }
            }
            // Not recorded: relative motion.
            MouseEvent::RelMove { .. } => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is always left consistent, so a panic elsewhere doesn't matter.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn low_byte(value: u16) -> u8 {
    value.to_le_bytes()[0]
}
