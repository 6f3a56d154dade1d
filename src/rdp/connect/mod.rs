//! Connection sequence (MS-RDPBCGR 1.3.1.1): TCP, X.224 negotiation, TLS, our certificate trust
//! decision, then CredSSP/NTLM (NLA) when the server asks for it, and capability exchange.
//!
//! The trust decision happens right after TLS, on a certificate whose key the peer has proved
//! it holds, and before CredSSP or any other session byte, so no credential ever goes to a server
//! the user has not accepted. The security protocol is never downgraded silently: where NLA is
//! required a server without it is refused, and elsewhere the user is told.

use std::time::Duration;

use ironrdp_connector::connection_activation::ConnectionActivationFactory;
use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::generator::GeneratorState;
use ironrdp_connector::{
    ClientConnector, ClientConnectorState, Config, ConnectionResult, ConnectorError,
    ConnectorErrorExt as _, ConnectorErrorKind, ConnectorResult, Credentials, ServerName,
};
use ironrdp_core::WriteBuf;
use ironrdp_pdu::nego::FailureCode;
use ironrdp_tokio::{FramedWrite as _, TokioFramed, Upgraded};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tracing::{debug, info};

pub mod tls;
pub mod transport;
pub mod trust;

use self::tls::{Stream, UpgradeError};
use self::transport::Transport;
use self::trust::{fingerprint, thumbprint, TrustDecision, TrustKey, TrustStore};
use super::channels::{drive, dynamic_channels, Clipboard, DriveAnswers};
use super::config::{connector_config, ConnectOptions, Endpoint, Security};
use super::desktop::check_desktop;
use super::error::{classify, RdpError, NLA_NEGOTIATION};

/// The halves of a connection the session reads from and writes to.
pub type Reader = TokioFramed<ReadHalf<Stream>>;
pub type Writer = TokioFramed<WriteHalf<Stream>>;

/// A finished connection sequence, ready for the session loop.
pub struct Connected {
    pub(in crate::rdp) framed: TokioFramed<Stream>,
    pub(in crate::rdp) result: ConnectionResult,
    /// The local clipboard, when the session shares it.
    pub(in crate::rdp) clipboard: Option<Clipboard>,
    /// Wakes the session when the shared drive has answers, when it shares one.
    pub(in crate::rdp) drive: Option<DriveAnswers>,
    /// `host:port` as dialled, for messages.
    pub addr: String,
    /// The desktop size the server granted (it may differ from the one asked for).
    pub desktop: (u16, u16),
}

/// How long each network phase of the handshake may take once TCP is up: a tunnel accepts TCP
/// even when nothing answers behind it, and a real Windows login takes seconds, not minutes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(45);

/// The connection as far as TLS: the server has proved it holds the key of the certificate it
/// presented, and nothing but the X.224 negotiation has been sent. The caller looks at the
/// certificate ([`Handshake::is_new`], [`Handshake::fingerprint`]) and whether NLA was chosen,
/// decides, and [`finish`](Handshake::finish)es — or drops it, and nothing more is sent.
pub struct Handshake {
    connector: WipingConnector,
    upgraded: Upgraded,
    framed: TokioFramed<Stream>,
    server_public_key: Vec<u8>,
    server_name: String,
    user: String,
    key: TrustKey,
    /// `host:port` as dialled, for messages.
    pub addr: String,
    fingerprint: String,
    thumbprint: String,
    /// Known or New: a changed certificate aborted the handshake.
    trust: TrustDecision,
    clipboard: Option<Clipboard>,
    drive: Option<DriveAnswers>,
}

/// Runs the connection sequence up to the trust decision: TCP, X.224, TLS with the pin (a
/// certificate other than the remembered one, or a peer that cannot sign with its key, ends it).
pub async fn connect(
    endpoint: &Endpoint,
    options: ConnectOptions,
    store: &TrustStore,
) -> Result<Handshake, RdpError> {
    let addr = format_addr(&endpoint.host, endpoint.port);
    let stream = dial(endpoint, &addr, options.connect_timeout).await?;
    connect_over(Transport::Tcp(stream), endpoint, options, store).await
}

/// [`connect`] over a transport someone else opened (a tunnel's pipe).
pub async fn connect_over(
    stream: Transport,
    endpoint: &Endpoint,
    mut options: ConnectOptions,
    store: &TrustStore,
) -> Result<Handshake, RdpError> {
    let addr = format_addr(&endpoint.host, endpoint.port);
    // The Client Info PDU's address is informational; a pipe has none.
    let client_addr = match &stream {
        Transport::Tcp(tcp) => tcp.local_addr().map_err(|e| RdpError::Unreachable {
            addr: addr.clone(),
            port: endpoint.port,
            detail: e.to_string(),
        })?,
        Transport::Pipe(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let drdynvc = dynamic_channels(options.codecs, options.h264_decoder);
    let mut connector = ClientConnector::new(connector_config(endpoint, &options), client_addr)
        .with_static_channel(drdynvc);
    let clipboard = options.clipboard.take();
    if let Some(clipboard) = &clipboard {
        connector.attach_static_channel(clipboard.channel());
    }
    let mut drive = None;
    if let Some((name, path)) = &options.drive {
        let (channel, answers) =
            drive::shared(name, path, options.drive_read_only).map_err(|e| RdpError::Crashed {
                addr: addr.clone(),
                detail: format!("cannot start the shared drive's thread: {e}"),
            })?;
        connector.attach_static_channel(channel);
        drive = Some(answers);
    }
    let mut connector = WipingConnector(connector);
    let pin = store.pinned(&endpoint.trust_key)?;

    let (should_upgrade, tls, certificate, leftover) = within(&addr, async {
        let mut framed = TokioFramed::new(stream);
        let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector.0)
            .await
            .map_err(|e| negotiation_error(e, &addr, options.security, &endpoint.user))?;
        // Checked again here, not only through what we asked for: the X.224 answer is not
        // authenticated, and a server that picks what we did not offer must not slip through.
        if !selected_nla(&connector.0) && options.security == Security::Nla {
            return Err(RdpError::NlaUnavailable { addr: addr.clone() });
        }
        let (stream, leftover) = framed.into_inner();
        let (tls, certificate) = tls::upgrade(stream, &endpoint.host, pin.clone())
            .await
            .map_err(|e| match e {
                UpgradeError::PinMismatch { presented } => RdpError::CertificateChanged {
                    key: endpoint.trust_key.to_string(),
                    old: pin.clone().unwrap_or_default(),
                    new: presented,
                },
                UpgradeError::NoProofOfPossession { presented } => RdpError::Impostor {
                    addr: addr.clone(),
                    fingerprint: presented,
                },
                UpgradeError::Handshake(e) => RdpError::Tls {
                    addr: addr.clone(),
                    detail: e.to_string(),
                },
            })?;
        Ok((should_upgrade, tls, certificate, leftover))
    })
    .await?;

    let fingerprint = fingerprint(&certificate);
    let thumbprint = thumbprint(&certificate);
    let trust = match store.decide(&endpoint.trust_key, &fingerprint)? {
        // Pinned by another run since the handshake began.
        TrustDecision::Changed { old } => {
            return Err(RdpError::CertificateChanged {
                key: endpoint.trust_key.to_string(),
                old,
                new: fingerprint,
            })
        }
        decision => decision,
    };
    let server_public_key = server_public_key(&certificate).ok_or_else(|| RdpError::Tls {
        addr: addr.clone(),
        detail: "the certificate has no usable public key".into(),
    })?;
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector.0);
    Ok(Handshake {
        connector,
        upgraded,
        framed: TokioFramed::new_with_leftover(tls, leftover),
        server_public_key,
        server_name: endpoint.host.clone(),
        user: endpoint.user.clone(),
        key: endpoint.trust_key.clone(),
        addr,
        fingerprint,
        thumbprint,
        trust,
        clipboard,
        drive,
    })
}

impl Handshake {
    /// The SHA-256 fingerprint of the certificate the server proved it holds.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The SHA-1 thumbprint of the same certificate, as Windows and AWS's guide show it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// What the certificate is remembered under.
    pub fn trust_key(&self) -> &TrustKey {
        &self.key
    }

    /// The certificate has never been seen for this key: the caller must decide.
    pub fn is_new(&self) -> bool {
        self.trust == TrustDecision::New
    }

    /// Whether the server chose NLA; without it the password travels in the Client Info PDU.
    pub fn nla(&self) -> bool {
        selected_nla(&self.connector.0)
    }

    /// Logs in and finishes the connection. A new certificate goes on only with `accept_new`,
    /// and is then remembered first.
    pub async fn finish(self, store: &TrustStore, accept_new: bool) -> Result<Connected, RdpError> {
        let Handshake {
            mut connector,
            upgraded,
            mut framed,
            server_public_key,
            server_name,
            user,
            key,
            addr,
            fingerprint,
            trust,
            clipboard,
            drive,
            ..
        } = self;
        if trust == TrustDecision::New {
            if !accept_new {
                return Err(RdpError::CertificateRejected {
                    key: key.to_string(),
                    fingerprint,
                });
            }
            info!(%key, %fingerprint, "trusting a new certificate");
            // The store's lock may wait on another run of ecsrdp: off the async threads.
            let remembered = {
                let (store, key, fingerprint) = (store.clone(), key.clone(), fingerprint.clone());
                tokio::task::spawn_blocking(move || store.remember(&key, &fingerprint)).await
            };
            let remembered = remembered.map_err(|e| RdpError::Crashed {
                addr: addr.clone(),
                detail: format!("remembering the certificate: {e}"),
            })?;
            if let TrustDecision::Changed { old } = remembered? {
                // Another run pinned a different certificate for it meanwhile.
                return Err(RdpError::CertificateChanged {
                    key: key.to_string(),
                    old,
                    new: fingerprint,
                });
            }
        }
        let finalized = within(&addr, async {
            finalize(
                upgraded,
                &mut connector.0,
                &mut framed,
                ServerName::new(server_name),
                server_public_key,
            )
            .await
            .map_err(|e| classify(e, &addr, &user, "login"))
        })
        .await;
        // Whatever happened, the connector's copy of the password goes now.
        wipe_password(&mut connector.0.config);
        let mut result = finalized?;
        // The session keeps a configuration for reactivation (MS-RDPBCGR 1.3.1.3); reactivation
        // never needs the password, so the one it keeps has none.
        result.activation_factory = ConnectionActivationFactory::new(
            connector.0.config.clone(),
            result.io_channel_id,
            result.user_channel_id,
        );
        let desktop = (result.desktop_size.width, result.desktop_size.height);
        check_desktop(&addr, desktop.0, desktop.1)?;
        info!(%addr, width = desktop.0, height = desktop.1, "connected");
        Ok(Connected {
            framed,
            result,
            clipboard,
            drive,
            addr,
            desktop,
        })
    }
}

/// The connector, whose copy of the password is wiped when it goes, whichever way it goes (a
/// refused certificate, a failed login, or a finished connection).
struct WipingConnector(ClientConnector);

impl Drop for WipingConnector {
    fn drop(&mut self) {
        wipe_password(&mut self.0.config);
    }
}

/// Whether the server chose CredSSP (NLA) in the X.224 negotiation.
fn selected_nla(connector: &ClientConnector) -> bool {
    use ironrdp_pdu::nego::SecurityProtocol;
    let nla = SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX;
    match &connector.state {
        ClientConnectorState::EnhancedSecurityUpgrade { selected_protocol }
        | ClientConnectorState::Credssp { selected_protocol }
        | ClientConnectorState::BasicSettingsExchangeSendInitial { selected_protocol } => {
            selected_protocol.intersects(nla)
        }
        _ => false,
    }
}

/// Overwrites the password in the connector's configuration, then empties it.
fn wipe_password(config: &mut Config) {
    if let Credentials::UsernamePassword { password, .. } = &mut config.credentials {
        zeroize::Zeroize::zeroize(password);
    }
}

/// The certificate's subject public key, which CredSSP binds the session to (MS-CSSP 3.1.5).
fn server_public_key(certificate: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::Decode as _;
    let certificate = x509_cert::Certificate::from_der(certificate).ok()?;
    certificate
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
}

/// CredSSP (when the server chose NLA), then the rest of the connection sequence, driven here
/// rather than by `ironrdp_tokio::connect_finalize`, which consumes the connector: keeping it
/// lets us wipe the password from its configuration as soon as the server has it.
async fn finalize(
    _: Upgraded,
    connector: &mut ClientConnector,
    framed: &mut TokioFramed<Stream>,
    server_name: ServerName,
    server_public_key: Vec<u8>,
) -> ConnectorResult<ConnectionResult> {
    let mut buf = WriteBuf::new();
    if connector.should_perform_credssp() {
        credssp(connector, framed, &mut buf, server_name, server_public_key).await?;
    }
    loop {
        if connector.should_perform_multitransport() {
            // Only UDP would use it (MS-RDPBCGR 2.2.15.1); we stay on TCP, so decline.
            buf.clear();
            if let Some(length) = connector.skip_multitransport(&mut buf)?.size() {
                framed
                    .write_all(&buf[..length])
                    .await
                    .map_err(|e| ConnectorError::custom("multitransport response", e))?;
            }
            continue;
        }
        ironrdp_tokio::single_sequence_step(framed, connector, &mut buf).await?;
        if let Some(outcome) = connector.state.take_outcome() {
            // A redirection (to another session host) is an error: we do not follow it.
            return outcome.into_connected();
        }
    }
}

/// The CredSSP exchange (MS-CSSP 3.1.5): TSRequests back and forth until the server has the
/// credentials. NTLM only: a step that needs the network is Kerberos, which we do not do.
async fn credssp(
    connector: &mut ClientConnector,
    framed: &mut TokioFramed<Stream>,
    buf: &mut WriteBuf,
    server_name: ServerName,
    server_public_key: Vec<u8>,
) -> ConnectorResult<()> {
    let ClientConnectorState::Credssp { selected_protocol } = connector.state else {
        return Err(ConnectorError::general("CredSSP started out of order"));
    };
    let (mut sequence, mut request) = CredsspSequence::init(
        connector.config.credentials.clone(),
        connector.config.domain.as_deref(),
        selected_protocol,
        server_name,
        server_public_key,
        None,
    )?;
    loop {
        let state = match sequence.process_ts_request(request).start() {
            GeneratorState::Completed(state) => {
                state.map_err(|e| ConnectorError::new("CredSSP", ConnectorErrorKind::Credssp(e)))?
            }
            GeneratorState::Suspended(_) => {
                return Err(ConnectorError::new(
                    "Kerberos is not supported; log in with a local account (NTLM)",
                    ConnectorErrorKind::General,
                ))
            }
        };
        buf.clear();
        let written = sequence.handle_process_result(state, buf)?;
        if let Some(length) = written.size() {
            framed
                .write_all(&buf[..length])
                .await
                .map_err(|e| ConnectorError::custom("CredSSP write", e))?;
        }
        let Some(hint) = sequence.next_pdu_hint() else {
            break;
        };
        let pdu = framed
            .read_by_hint(hint)
            .await
            .map_err(|e| ConnectorError::custom("CredSSP read", e))?;
        match sequence.decode_server_message(&pdu)? {
            Some(next) => request = next,
            None => break,
        }
    }
    connector.mark_credssp_as_done();
    Ok(())
}

/// Runs one handshake phase within [`HANDSHAKE_TIMEOUT`].
async fn within<T>(
    addr: &str,
    phase: impl std::future::Future<Output = Result<T, RdpError>>,
) -> Result<T, RdpError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, phase)
        .await
        .map_err(|_| RdpError::HandshakeTimeout {
            addr: addr.to_owned(),
            seconds: HANDSHAKE_TIMEOUT.as_secs(),
        })?
}

fn format_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Tries each address the name resolves to (`localhost` may be `::1` first while a tunnel
/// listens on 127.0.0.1), each within the timeout.
async fn dial(endpoint: &Endpoint, addr: &str, timeout: Duration) -> Result<TcpStream, RdpError> {
    let targets: Vec<_> = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| RdpError::Resolve {
            host: endpoint.host.clone(),
            detail: e.to_string(),
        })?
        .collect();
    let mut last = RdpError::Resolve {
        host: endpoint.host.clone(),
        detail: "no address found".into(),
    };
    for target in targets {
        debug!(%target, "dialling");
        match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // Input events are tiny and latency-bound.
                stream.set_nodelay(true).ok();
                crate::net::detect_dead_peers(&stream);
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last = RdpError::Unreachable {
                    addr: addr.to_owned(),
                    port: endpoint.port,
                    detail: e.to_string(),
                }
            }
            Err(_) => {
                last = RdpError::Timeout {
                    addr: addr.to_owned(),
                    after: humantime::format_duration(timeout).to_string(),
                }
            }
        }
    }
    Err(last)
}

/// A failure of the X.224 negotiation. A server that insists on TLS when we asked for NLA only
/// answers `SSL_REQUIRED_BY_SERVER` (MS-RDPBCGR 2.2.1.2.2).
fn negotiation_error(
    error: ConnectorError,
    addr: &str,
    security: Security,
    user: &str,
) -> RdpError {
    match error.kind() {
        ConnectorErrorKind::Negotiation(failure)
            if security == Security::Nla
                && failure.code() == FailureCode::SSL_REQUIRED_BY_SERVER =>
        {
            RdpError::NlaUnavailable {
                addr: addr.to_owned(),
            }
        }
        _ if security == Security::Nla => classify(error, addr, user, NLA_NEGOTIATION),
        _ => classify(error, addr, user, "negotiation"),
    }
}
