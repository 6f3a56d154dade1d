//! The EICE tunnel's wire: a WebSocket (TLS for `wss://`, verified against the system's roots)
//! whose BINARY frames carry the TCP bytes, at most 65,000 to a frame. A TEXT frame is a protocol
//! error, a close code other than 1000 carries the service's reason.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, warn};

use super::TunnelError;

/// The largest BINARY frame the service takes (aws-cli sends no more).
const MAX_FRAME: usize = 65_000;

/// How many bytes may wait in the pipe between the session and the WebSocket.
const PIPE_BUFFER: usize = 256 * 1024;

/// Why the pump stopped, once it has; read after the session ended to say why.
#[derive(Clone, Default)]
pub struct Ended(Arc<Mutex<Option<TunnelError>>>);

impl Ended {
    /// The tunnel's own failure, if it failed.
    pub fn failure(&self) -> Option<TunnelError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn record(&self, error: TunnelError) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

/// Opens the WebSocket at `url` (for `host`, as signed) and returns the session's end of a
/// byte pipe whose other end the tunnel carries, and where its ending will be told.
pub async fn open(
    url: &str,
    host: &str,
    secure: bool,
    timeout: Duration,
) -> Result<(DuplexStream, Ended), TunnelError> {
    Ok(spawn(connect(url, host, secure, timeout, None).await?))
}

/// A byte stream a WebSocket runs over: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket.
pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Opens the WebSocket at `url` on `host` (TLS verified against the system's roots when
/// `secure`), within `timeout`; a message from the peer larger than `max_message` (tungstenite's
/// 64 MiB when `None`) ends it.
pub async fn connect(
    url: &str,
    host: &str,
    secure: bool,
    timeout: Duration,
    max_message: Option<usize>,
) -> Result<WebSocket, TunnelError> {
    let unreachable = |detail: String| TunnelError::Unreachable {
        host: host.to_owned(),
        detail,
    };
    let opened = tokio::time::timeout(timeout, async {
        let tcp = TcpStream::connect(with_default_port(host, secure))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tcp.set_nodelay(true).ok();
        // The tunnel's own connection dies as silently as a direct one (a vanished NAT mapping).
        crate::net::detect_dead_peers(&tcp);
        let stream: Box<dyn Io> = if secure {
            let name = host.split(':').next().unwrap_or(host).to_owned();
            let tls = tls_connector()
                .connect(
                    ServerName::try_from(name).map_err(|e| unreachable(e.to_string()))?,
                    tcp,
                )
                .await
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        handshake(url, stream, max_message).await
    })
    .await;
    opened.unwrap_or_else(|_| {
        Err(unreachable(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )))
    })
}

fn with_default_port(host: &str, secure: bool) -> String {
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{}", if secure { 443 } else { 80 })
    }
}

/// The system's root certificates: the endpoint has a public Amazon certificate. Loaded once:
/// reading the system's store is file I/O that every reopened tunnel would repeat.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR.get_or_init(new_tls_connector).clone()
}

fn new_tls_connector() -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        debug!(%error, "a system certificate could not be loaded");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        warn!("no system root certificates found; the endpoint's certificate cannot be verified");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn handshake(
    url: &str,
    stream: Box<dyn Io>,
    max_message: Option<usize>,
) -> Result<WebSocket, TunnelError> {
    let config = max_message.map(|size| {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(size))
            .max_frame_size(Some(size))
    });
    match tokio_tungstenite::client_async_with_config(url, stream, config).await {
        Ok((ws, response)) => {
            let request_id = response
                .headers()
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok());
            debug!(?request_id, "tunnel open");
            Ok(ws)
        }
        Err(tungstenite::Error::Http(response)) => Err(TunnelError::Refused {
            status: response.status().as_u16(),
            detail: response.body().as_deref().map(refusal).unwrap_or_default(),
        }),
        Err(e) => Err(TunnelError::Broken(e.to_string())),
    }
}

/// The service's reason for a refusal: `{"ErrorCode": …, "Message": …}` as "code: message",
/// anything else as it came (cut short).
fn refusal(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reason {
        error_code: String,
        message: String,
    }
    match serde_json::from_slice::<Reason>(body) {
        Ok(reason) => format!("{}: {}", reason.error_code, reason.message),
        Err(_) => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect(),
    }
}

/// Starts the pump between the WebSocket and a new pipe; returns the pipe's other end.
fn spawn(ws: WebSocket) -> (DuplexStream, Ended) {
    let (session_end, tunnel_end) = tokio::io::duplex(PIPE_BUFFER);
    let ended = Ended::default();
    let told = ended.clone();
    tokio::spawn(async move {
        let mut tunnel_end = tunnel_end;
        match pump(ws, &mut tunnel_end).await {
            Ok(()) => debug!("tunnel closed"),
            Err(error) => {
                debug!(%error, "tunnel failed");
                told.record(error);
            }
        }
        // Only now does the session see the pipe end: the reason is already there to read.
        drop(tunnel_end);
    });
    (session_end, ended)
}

/// Carries bytes both ways at once until either side ends: the session's bytes up while the
/// server's come down, so that a large upload blocked on a slow link never stops the screen
/// (one loop awaiting each write in turn would). Dropping the pipe on return tells the session.
async fn pump(ws: WebSocket, pipe: &mut DuplexStream) -> Result<(), TunnelError> {
    let (mut up, mut down) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(pipe);
    let upstream = async {
        let mut buf = vec![0; MAX_FRAME];
        loop {
            let n = from_session
                .read(&mut buf)
                .await
                .map_err(|e| TunnelError::Broken(e.to_string()))?;
            if n == 0 {
                // The session is done: a clean close.
                let close = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                let _ = up.send(Message::Close(Some(close))).await;
                return Ok(());
            }
            up.send(Message::binary(buf[..n].to_vec()))
                .await
                .map_err(|e| TunnelError::Broken(e.to_string()))?;
        }
    };
    let downstream = async {
        loop {
            match down.next().await {
                Some(Ok(Message::Binary(data))) => {
                    if to_session.write_all(&data).await.is_err() {
                        // The session has gone; the caller closes our side.
                        return Ok(());
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    return Err(TunnelError::Protocol(format!(
                        "a text frame instead of data ({})",
                        text.as_str().chars().take(200).collect::<String>()
                    )));
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        None => Ok(()),
                        Some(frame) if frame.code == CloseCode::Normal => Ok(()),
                        Some(frame) => Err(TunnelError::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.as_str().to_owned(),
                        }),
                    };
                }
                // Pings are answered by the WebSocket layer itself, while reading.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(TunnelError::Broken(e.to_string())),
                None => {
                    return Err(TunnelError::Broken(
                        "the connection ended without a close".into(),
                    ))
                }
            }
        }
    };
    tokio::select! {
        ended = upstream => ended,
        ended = downstream => ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More than the socket buffers and the pipe hold together, each way.
    const VOLUME: usize = 64 << 20;

    /// A WebSocket peer that sends `VOLUME` bytes before it reads any, then reads as many: a
    /// server busy drawing while the client uploads.
    async fn talkative_server() -> (String, tokio::task::JoinHandle<usize>) {
        // Small buffers on the server's side, so that what the sockets hold is not the test.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        socket.set_send_buffer_size(64 << 10).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let chunk = vec![7u8; MAX_FRAME];
            let mut sent = 0;
            while sent < VOLUME {
                ws.send(Message::binary(chunk.clone())).await.unwrap();
                sent += chunk.len();
            }
            let mut received = 0;
            while received < VOLUME {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => received += data.len(),
                    _ => break,
                }
            }
            received
        });
        (host, server)
    }

    /// The session writes a large upload while the server, before reading, sends a large
    /// screen: both get through. A pump that awaited each write in turn stalled here for good
    /// (the server waits for us to read, we wait for it to read).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_upload_and_a_busy_screen_flow_at_once() {
        let (host, server) = talkative_server().await;
        let url = format!("ws://{host}/");
        let (pipe, _ended) = open(&url, &host, false, Duration::from_secs(5))
            .await
            .unwrap();
        let (mut reader, mut writer) = tokio::io::split(pipe);
        let upload = tokio::spawn(async move {
            let chunk = vec![1u8; 1 << 20];
            for _ in 0..VOLUME / chunk.len() {
                writer.write_all(&chunk).await.unwrap();
            }
            writer
        });
        let mut screen = vec![0u8; 1 << 20];
        let mut read = 0;
        let flowed = tokio::time::timeout(Duration::from_secs(60), async {
            while read < VOLUME {
                read += reader.read(&mut screen).await.unwrap();
            }
            let _writer = upload.await.unwrap();
            server.await.unwrap()
        })
        .await;
        let received = flowed.expect("the tunnel stalled");
        assert_eq!(received, VOLUME);
    }
}
