//! In-process RDP server for integration tests, built on `ironrdp-acceptor` (the connection
//! sequence) and `ironrdp-pdu` (the updates), so it shares the client's crate family.
//!
//! [`TestServer::start`] listens on an ephemeral loopback port with a freshly generated
//! self-signed certificate and serves a deterministic desktop (see
//! [`TestServer::expected_pixel`]) as uncompressed 32 bpp bitmap updates (TS_BITMAP_DATA), so
//! the client can be checked pixel for pixel. It repaints the whole desktop each time a client
//! is activated. [`TestServer::request_resize`] drives a server-side resize: Deactivate All, a
//! reactivation at the new size, a full repaint. Every keyboard and mouse event the server
//! receives is recorded in an [`InputLog`].
//!
//! The acceptor's futures are `!Send`, so the server runs on its own thread with a
//! current-thread runtime; the test's runtime is left alone.

#![allow(
    dead_code,
    reason = "each integration test crate uses a different part of this module"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use ironrdp_acceptor::{accept_begin, accept_credssp, accept_finalize, Acceptor, BeginResult};
use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{ConnectorError, ConnectorErrorExt as _, ConnectorResult, DesktopSize};
use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp_pdu::fast_path::{FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::mcs::SendDataIndication;
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_pdu::rdp::capability_sets::{self as caps, CapabilitySet};
use ironrdp_pdu::rdp::client_info::Credentials;
use ironrdp_pdu::rdp::headers::{ServerDeactivateAll, ShareControlHeader, ShareControlPdu};
use ironrdp_pdu::x224::X224;
use ironrdp_pdu::Action;
use ironrdp_tokio::{FramedWrite as _, TokioFramed};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

mod graphics;

/// How long the server thread waits for its tasks when it stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The most bitmap data one fast-path update carries: its length is a 15-bit field.
const MAX_UPDATE_DATA: usize = 16_000;

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
    pub width: u16,
    pub height: u16,
    /// Open the dynamic channels, and paint through the graphics pipeline, as one AVC420
    /// picture (what Windows sends by default), instead of bitmaps; the desktop stays black for
    /// a client that does not open the pipeline. Display Control records the layouts asked
    /// for. Server-side resizes are not served then.
    pub avc420: bool,
}

/// One input event as the server saw it, decoded from the client's fast-path input PDUs.
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
    /// `button`: 1 left, 2 right, 3 middle. The position is the one the PDU carries.
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
    /// A character typed as itself (a UTF-16 code unit), not as a key.
    Unicode {
        unit: u16,
        down: bool,
    },
    /// The lock keys set to these toggle flags (MS-RDPBCGR 2.2.8.1.2.2.5): kept apart, see
    /// [`InputLog::syncs`].
    Sync {
        flags: u8,
    },
}

/// All input events received so far, in the order they arrived, across connections.
#[derive(Debug, Clone, Default)]
pub struct InputLog(Arc<Mutex<Vec<InputEvent>>>);

impl InputLog {
    /// Keys, buttons, motion and characters; not lock-key synchronisation.
    #[must_use]
    pub fn events(&self) -> Vec<InputEvent> {
        let all = lock(&self.0);
        all.iter()
            .filter(|e| !matches!(e, InputEvent::Sync { .. }))
            .cloned()
            .collect()
    }

    /// The toggle flags of each lock-key synchronisation, in order (scroll 1, num 2, caps 4).
    #[must_use]
    pub fn syncs(&self) -> Vec<u8> {
        let all = lock(&self.0);
        all.iter()
            .filter_map(|e| match e {
                InputEvent::Sync { flags } => Some(*flags),
                _ => None,
            })
            .collect()
    }

    fn push(&self, event: InputEvent) {
        lock(&self.0).push(event);
    }
}

/// A running test server. Dropping it also stops the server, but doesn't wait for it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub input: InputLog,
    /// How many times a client has been sent the whole desktop (once per activation).
    painted: Arc<std::sync::atomic::AtomicUsize>,
    picture: Arc<Mutex<Option<Vec<u8>>>>,
    layouts: graphics::Layouts,
    dynamic_after: Arc<Mutex<Duration>>,
    cert_der: Vec<u8>,
    resize: watch::Sender<DesktopSize>,
    ending: watch::Sender<Option<u32>>,
    /// Dropping this sender (in [`TestServer::stop`] or on drop) shuts the server down.
    shutdown: oneshot::Sender<()>,
    thread: thread::JoinHandle<()>,
}

/// What every connection of one server shares.
#[derive(Clone)]
struct Shared {
    security: Security,
    credentials: Credentials,
    identity: Arc<Identity>,
    input: InputLog,
    requested: watch::Receiver<DesktopSize>,
    /// An error info code (MS-RDPBCGR 2.2.5.1.1) to end the connected client's session with.
    ending: watch::Receiver<Option<u32>>,
    painted: Arc<std::sync::atomic::AtomicUsize>,
    avc420: bool,
    /// The last H.264 picture sent (with `avc420`).
    picture: Arc<Mutex<Option<Vec<u8>>>>,
    layouts: graphics::Layouts,
    /// How long after activation the dynamic channels are opened (with `avc420`).
    dynamic_after: Arc<Mutex<Duration>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and starts serving on a dedicated thread, one connection at a time.
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

        let identity = Arc::new(Identity::generate());
        let cert_der = identity.cert_der.clone();
        let (resize, requested) = watch::channel(DesktopSize {
            width: opts.width,
            height: opts.height,
        });
        let (ending, end_requested) = watch::channel(None);
        let (shutdown, shutdown_requested) = oneshot::channel();
        let input = InputLog::default();
        let painted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let picture = Arc::new(Mutex::new(None));
        let layouts = graphics::Layouts::default();
        let dynamic_after = Arc::new(Mutex::new(Duration::ZERO));
        let shared = Shared {
            security: opts.security,
            credentials: Credentials {
                username: opts.user,
                password: opts.password,
                domain: None,
            },
            identity,
            input: input.clone(),
            requested,
            ending: end_requested,
            painted: Arc::clone(&painted),
            avc420: opts.avc420,
            picture: Arc::clone(&picture),
            layouts: layouts.clone(),
            dynamic_after: Arc::clone(&dynamic_after),
        };

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the test server runtime");
        let thread = thread::Builder::new()
            .name("rdp-test-server".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("register the test server listener");
                    tokio::select! {
                        _ = shutdown_requested => {}
                        () = serve(listener, shared) => {}
                    }
                });
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .expect("spawn the test server thread");

        TestServer {
            addr,
            input,
            painted,
            picture,
            layouts,
            dynamic_after,
            cert_der,
            resize,
            ending,
            shutdown,
            thread,
        }
    }

    /// Ends the connected client's session as a Windows server does (MS-RDPBCGR 1.3.1.4.3): a
    /// Set Error Info PDU with `code`, a Disconnect Provider Ultimatum, and the connection closed.
    pub fn end_session(&self, code: u32) {
        self.ending.send_replace(Some(code));
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

    /// Waits until a client has been sent the whole desktop `times` times in all (each
    /// activation paints it once), or panics after `limit`.
    pub async fn wait_painted(&self, times: usize, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.painted.load(std::sync::atomic::Ordering::SeqCst) < times {
            assert!(
                started.elapsed() < limit,
                "no client was painted within {limit:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// What a client shows of the last AVC420 picture sent (RGB rows, converted independently
    /// of the client), or `None` before one is.
    #[must_use]
    pub fn avc420_shown(&self) -> Option<Vec<u8>> {
        let picture = lock(&self.picture).clone()?;
        Some(graphics::shown(&picture).expect("decode the picture sent"))
    }

    /// Opens the dynamic channels (with `avc420`) this long after a client is activated, as a
    /// server still logging the user on does.
    pub fn open_dynamic_channels_after(&self, after: Duration) {
        *lock(&self.dynamic_after) = after;
    }

    /// The monitor layouts clients asked for over Display Control (with `avc420`): width,
    /// height and scale factor of the first monitor.
    #[must_use]
    pub fn layouts(&self) -> Vec<graphics::Layout> {
        lock(&self.layouts.0).clone()
    }

    /// Resizes the server desktop: the connected client is deactivated, reactivated at the new
    /// size and repainted; a later client starts at the new size.
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
    pub async fn stop(self) {
        let TestServer {
            shutdown, thread, ..
        } = self;
        drop(shutdown);
        let joined = tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("wait for the test server thread");
        if let Err(panic) = joined {
            std::panic::resume_unwind(panic);
        }
    }
}

async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                eprintln!("rdp test server: accept failed: {error}");
                return;
            }
        };
        if let Err(error) = serve_connection(tcp, shared.clone()).await {
            eprintln!("rdp test server: connection failed: {error:#}");
        }
    }
}

type Framed = TokioFramed<tokio_rustls::server::TlsStream<TcpStream>>;

/// One client, from X.224 to hang-up: accept, paint, record input, follow resizes.
async fn serve_connection(tcp: TcpStream, mut shared: Shared) -> anyhow::Result<()> {
    let mut size = *shared.requested.borrow_and_update();
    let security = match shared.security {
        Security::Tls => SecurityProtocol::SSL,
        Security::Hybrid => SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX,
    };
    let mut acceptor = Acceptor::new(
        security,
        size,
        capabilities(size),
        Some(shared.credentials.clone()),
    );
    if shared.avc420 {
        acceptor.attach_static_channel(graphics::channel(shared.layouts.clone()));
    }
    let BeginResult::ShouldUpgrade(tcp) =
        accept_begin(TokioFramed::new(tcp), &mut acceptor).await?
    else {
        anyhow::bail!("the client did not ask for TLS");
    };
    let tls = shared.identity.tls_acceptor().accept(tcp).await?;
    acceptor.mark_security_upgrade_as_done();
    let mut framed = TokioFramed::new(tls);
    accept_credssp(
        &mut framed,
        &mut acceptor,
        &mut NoNetwork,
        ironrdp_connector::ServerName::new("ecsrdp-test-client"),
        shared.identity.public_key.clone(),
        None,
    )
    .await?;
    let (mut framed, mut result) = accept_finalize(framed, &mut acceptor).await?;

    loop {
        for frame in result.input_events.drain(..) {
            record_input(&shared.input, &frame);
        }
        let mut pipeline = None;
        if shared.avc420 {
            // As a server still logging the user on: the channels open late.
            let after = *lock(&shared.dynamic_after);
            tokio::time::sleep(after).await;
            let (started, opening) = graphics::Pipeline::start(
                &mut result.static_channels,
                result.user_channel_id,
                (size.width, size.height),
            )?;
            framed.write_all(&opening).await?;
            pipeline = Some(started);
        } else {
            send_pattern(&mut framed, size).await?;
            shared
                .painted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        // Serve input until the client leaves or a resize is asked for.
        loop {
            tokio::select! {
                pdu = framed.read_pdu() => {
                    let Ok((action, bytes)) = pdu else {
                        return Ok(());
                    };
                    if action == Action::FastPath {
                        record_input(&shared.input, &bytes);
                    } else if let (Some(pipeline), Some((channel, data))) = (pipeline.as_mut(), channel_data(&bytes)) {
                        let (answer, painted) = pipeline.process(&mut result.static_channels, channel, &data)?;
                        framed.write_all(&answer).await?;
                        if painted {
                            lock(&shared.picture).clone_from(&pipeline.sent);
                            shared.painted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                }
                changed = shared.requested.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    break;
                }
                changed = shared.ending.changed() => {
                    let code = *shared.ending.borrow_and_update();
                    match (changed, code) {
                        (Ok(()), Some(code)) => {
                            end_session(&mut framed, result.user_channel_id, result.io_channel_id, code)
                                .await?;
                            return Ok(());
                        }
                        (Ok(()), None) => {}
                        (Err(_), _) => return Ok(()),
                    }
                }
            }
        }
        size = *shared.requested.borrow_and_update();
        deactivate_all(&mut framed, result.user_channel_id, result.io_channel_id).await?;
        acceptor = Acceptor::new_deactivation_reactivation(acceptor, result.static_channels, size)?;
        let (reactivated, next) = accept_finalize(framed, &mut acceptor).await?;
        framed = reactivated;
        result = next;
    }
}

/// Capability sets of a plain desktop server: fast-path output, 32 bpp, no bitmap codecs (so
/// the client is sent uncompressed bitmaps), fast-path input.
fn capabilities(size: DesktopSize) -> Vec<CapabilitySet> {
    vec![
        CapabilitySet::General(caps::General {
            extra_flags: caps::GeneralExtraFlags::FASTPATH_OUTPUT_SUPPORTED,
            ..Default::default()
        }),
        CapabilitySet::Bitmap(caps::Bitmap {
            pref_bits_per_pix: 32,
            desktop_width: size.width,
            desktop_height: size.height,
            desktop_resize_flag: true,
            drawing_flags: caps::BitmapDrawingFlags::empty(),
        }),
        CapabilitySet::Order(caps::Order::new(
            caps::OrderFlags::empty(),
            caps::OrderSupportExFlags::empty(),
            2048,
            224,
        )),
        CapabilitySet::Pointer(caps::Pointer {
            color_pointer_cache_size: 2048,
            pointer_cache_size: 2048,
        }),
        CapabilitySet::Input(caps::Input {
            input_flags: caps::InputFlags::SCANCODES
                | caps::InputFlags::MOUSEX
                | caps::InputFlags::FASTPATH_INPUT
                | caps::InputFlags::UNICODE
                | caps::InputFlags::FASTPATH_INPUT_2,
            keyboard_layout: 0,
            keyboard_type: None,
            keyboard_subtype: 0,
            keyboard_function_key: 128,
            keyboard_ime_filename: String::new(),
        }),
        CapabilitySet::VirtualChannel(caps::VirtualChannel {
            flags: caps::VirtualChannelFlags::NO_COMPRESSION,
            chunk_size: None,
        }),
        CapabilitySet::MultiFragmentUpdate(caps::MultifragmentUpdate {
            max_request_size: 8 * 1024 * 1024,
        }),
    ]
}

/// Paints the whole desktop with the test pattern, in bands that fit one fast-path update each
/// (MS-RDPBCGR 2.2.9.1.2.1.2: uncompressed 32 bpp rows, bottom-up).
async fn send_pattern(framed: &mut Framed, size: DesktopSize) -> anyhow::Result<()> {
    let row_bytes = usize::from(size.width) * 4;
    let band = u16::try_from((MAX_UPDATE_DATA / row_bytes).max(1)).unwrap_or(u16::MAX);
    let mut top = 0;
    while top < size.height {
        let rows = band.min(size.height - top);
        let mut pixels = Vec::with_capacity(row_bytes * usize::from(rows));
        for y in (top..top + rows).rev() {
            for x in 0..size.width {
                pixels.extend_from_slice(&TestServer::expected_pixel(x, y));
            }
        }
        let update = BitmapUpdateData {
            rectangles: vec![BitmapData {
                rectangle: InclusiveRectangle {
                    left: 0,
                    top,
                    right: size.width - 1,
                    bottom: top + rows - 1,
                },
                width: size.width,
                height: rows,
                bits_per_pixel: 32,
                compression_flags: Compression::empty(),
                compressed_data_header: None,
                bitmap_data: &pixels,
            }],
        };
        let data = ironrdp_core::encode_vec(&update).context("encode a bitmap update")?;
        let pdu = FastPathUpdatePdu {
            fragmentation: Fragmentation::Single,
            update_code: UpdateCode::Bitmap,
            compression_flags: None,
            compression_type: None,
            data: &data,
        };
        let header = FastPathHeader::new(
            ironrdp_pdu::fast_path::EncryptionFlags::empty(),
            ironrdp_core::Encode::size(&pdu),
        );
        let mut frame = ironrdp_core::encode_vec(&header).context("encode a fast-path header")?;
        frame.extend(ironrdp_core::encode_vec(&pdu).context("encode a fast-path update")?);
        framed.write_all(&frame).await?;
        top += rows;
    }
    Ok(())
}

/// The channel and data of a client's MCS Send Data Request, if `frame` is one.
fn channel_data(frame: &[u8]) -> Option<(u16, Vec<u8>)> {
    use ironrdp_pdu::mcs::McsMessage;
    match ironrdp_core::decode::<X224<McsMessage<'_>>>(frame).ok()?.0 {
        McsMessage::SendDataRequest(request) => {
            Some((request.channel_id, request.user_data.into_owned()))
        }
        _ => None,
    }
}

/// Deactivate All (MS-RDPBCGR 2.2.3.1): the client drops the share and waits to be
/// reactivated.
async fn deactivate_all(framed: &mut Framed, user: u16, io: u16) -> anyhow::Result<()> {
    let header = ShareControlHeader {
        share_control_pdu: ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll),
        pdu_source: io,
        share_id: 0,
    };
    let user_data = ironrdp_core::encode_vec(&header).context("encode Deactivate All")?;
    let pdu = X224(SendDataIndication {
        initiator_id: user,
        channel_id: io,
        user_data: user_data.into(),
    });
    let frame = ironrdp_core::encode_vec(&pdu).context("encode Deactivate All")?;
    framed.write_all(&frame).await?;
    Ok(())
}

/// Set Error Info with `code`, then the Disconnect Provider Ultimatum (reason: provider
/// initiated). The PDU is encoded with a code IronRDP knows and the code written over it (bytes
/// 18..22 of the Share Control PDU), so that any code can be sent, known or not.
async fn end_session(framed: &mut Framed, user: u16, io: u16, code: u32) -> anyhow::Result<()> {
    use ironrdp_pdu::mcs::{DisconnectProviderUltimatum, DisconnectReason};
    use ironrdp_pdu::rdp::headers::{
        CompressionFlags, ShareDataHeader, ShareDataPdu, StreamPriority,
    };
    use ironrdp_pdu::rdp::server_error_info::{
        ErrorInfo, ProtocolIndependentCode, ServerSetErrorInfoPdu,
    };
    let header = ShareControlHeader {
        share_control_pdu: ShareControlPdu::Data(ShareDataHeader {
            share_data_pdu: ShareDataPdu::ServerSetErrorInfo(ServerSetErrorInfoPdu(
                ErrorInfo::ProtocolIndependentCode(ProtocolIndependentCode::RpcInitiatedDisconnect),
            )),
            stream_priority: StreamPriority::Low,
            compression_flags: CompressionFlags::empty(),
            compression_type: ironrdp_pdu::rdp::client_info::CompressionType::K8,
        }),
        pdu_source: io,
        share_id: 0,
    };
    let mut user_data = ironrdp_core::encode_vec(&header).context("encode Set Error Info")?;
    user_data[18..22].copy_from_slice(&code.to_le_bytes());
    let pdu = X224(SendDataIndication {
        initiator_id: user,
        channel_id: io,
        user_data: user_data.into(),
    });
    framed
        .write_all(&ironrdp_core::encode_vec(&pdu).context("encode Set Error Info")?)
        .await?;
    let ultimatum = X224(DisconnectProviderUltimatum::from_reason(
        DisconnectReason::ProviderInitiated,
    ));
    framed
        .write_all(&ironrdp_core::encode_vec(&ultimatum).context("encode the ultimatum")?)
        .await?;
    Ok(())
}

/// Records the events of one fast-path input PDU; anything else is not input and is ignored.
fn record_input(log: &InputLog, frame: &[u8]) {
    let Ok(input) = ironrdp_core::decode::<FastPathInput>(frame) else {
        return;
    };
    for event in input.input_events() {
        match event {
            FastPathInputEvent::KeyboardEvent(flags, code) => log.push(InputEvent::Key {
                code: *code,
                extended: flags.contains(KeyboardFlags::EXTENDED),
                down: !flags.contains(KeyboardFlags::RELEASE),
            }),
            FastPathInputEvent::MouseEvent(mouse) => {
                let (x, y) = (mouse.x_position, mouse.y_position);
                let flags = mouse.flags;
                let wheel = i32::from(mouse.number_of_wheel_rotation_units);
                if flags.contains(PointerFlags::VERTICAL_WHEEL) {
                    log.push(InputEvent::Wheel {
                        vertical: true,
                        amount: wheel,
                    });
                } else if flags.contains(PointerFlags::HORIZONTAL_WHEEL) {
                    log.push(InputEvent::Wheel {
                        vertical: false,
                        amount: wheel,
                    });
                } else if flags.contains(PointerFlags::MOVE) {
                    log.push(InputEvent::MouseMove { x, y });
                } else {
                    let button = [
                        (PointerFlags::LEFT_BUTTON, 1),
                        (PointerFlags::RIGHT_BUTTON, 2),
                        (PointerFlags::MIDDLE_BUTTON_OR_WHEEL, 3),
                    ]
                    .into_iter()
                    .find(|(flag, _)| flags.contains(*flag));
                    if let Some((_, button)) = button {
                        log.push(InputEvent::MouseButton {
                            button,
                            down: flags.contains(PointerFlags::DOWN),
                            x,
                            y,
                        });
                    }
                }
            }
            FastPathInputEvent::UnicodeKeyboardEvent(flags, unit) => {
                log.push(InputEvent::Unicode {
                    unit: *unit,
                    down: !flags.contains(KeyboardFlags::RELEASE),
                })
            }
            FastPathInputEvent::SyncEvent(flags) => log.push(InputEvent::Sync {
                flags: flags.bits(),
            }),
            // Not recorded: extended buttons, relative motion.
            _ => {}
        }
    }
}

/// CredSSP only needs the network for Kerberos; NTLM never calls it.
struct NoNetwork;

impl ironrdp_tokio::NetworkClient for NoNetwork {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ConnectorError::general("the test server does no Kerberos"))
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is always left consistent, so a panic elsewhere doesn't matter.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn low_byte(value: u16) -> u8 {
    value.to_le_bytes()[0]
}
