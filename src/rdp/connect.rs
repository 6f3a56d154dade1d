//! Connection sequence (MS-RDPBCGR 1.3.1.1): TCP, X.224 negotiation, TLS, our certificate trust
//! decision, then CredSSP/NTLM (NLA) when the server asks for it, and capability exchange.
//!
//! The trust decision happens right after TLS and before CredSSP, so no credential ever goes to
//! a server whose certificate the user has not accepted.

use std::time::Duration;

use ironrdp::connector::sspi::generator::NetworkRequest;
use ironrdp::connector::{
    ClientConnector, ConnectionResult, ConnectorError, ConnectorErrorKind, ConnectorResult,
    ServerName,
};
use ironrdp::displaycontrol::client::DisplayControlClient;
use ironrdp::dvc::DrdynvcClient;
use ironrdp_tokio::TokioFramed;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::config::connector_config;
pub use super::config::ConnectOptions;
use super::trust::{fingerprint, TrustDecision, TrustPrompt, TrustStore};
use super::{Endpoint, RdpError};

/// The TLS stream the session runs over.
pub(super) type Stream = ironrdp_tls::TlsStream<TcpStream>;

/// A finished connection sequence, ready for the session loop.
pub struct Connected {
    pub(super) framed: TokioFramed<Stream>,
    pub(super) result: ConnectionResult,
    /// `host:port` as dialled, for messages.
    pub addr: String,
    /// The desktop size the server granted (it may differ from the one asked for).
    pub desktop: (u16, u16),
}

/// How long each network phase of the handshake may take once TCP is up: a tunnel accepts TCP
/// even when nothing answers behind it, and a real Windows login takes seconds, not minutes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(45);

/// Runs the whole connection sequence. `trust_new` accepts an unknown certificate without
/// asking; a changed one is always refused.
pub async fn connect(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    store: &TrustStore,
    prompt: &dyn TrustPrompt,
    trust_new: bool,
) -> Result<Connected, RdpError> {
    let addr = format_addr(&endpoint.host, endpoint.port);
    let stream = dial(endpoint, &addr, options.connect_timeout).await?;
    let client_addr = stream.local_addr().map_err(|e| RdpError::Unreachable {
        addr: addr.clone(),
        port: endpoint.port,
        detail: e.to_string(),
    })?;
    // Display Control (MS-RDPEDISP) lets the window ask the server to resize the desktop.
    let drdynvc =
        DrdynvcClient::new().with_dynamic_channel(DisplayControlClient::new(|_| Ok(Vec::new())));
    let mut connector = ClientConnector::new(connector_config(endpoint, options), client_addr)
        .with_static_channel(drdynvc);

    let (should_upgrade, tls, certificate, leftover) = within(&addr, async {
        let mut framed = TokioFramed::new(stream);
        let should_upgrade = ironrdp_tokio::connect_begin(&mut framed, &mut connector)
            .await
            .map_err(|e| classify(e, &addr, &endpoint.user, "negotiation"))?;
        let (stream, leftover) = framed.into_inner();
        let (tls, certificate) =
            ironrdp_tls::upgrade(stream, &endpoint.host)
                .await
                .map_err(|e| RdpError::Tls {
                    addr: addr.clone(),
                    detail: e.to_string(),
                })?;
        Ok((should_upgrade, tls, certificate, leftover))
    })
    .await?;

    // Outside the time bound: a person may be reading the fingerprint.
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec())
        .ok_or_else(|| RdpError::Tls {
            addr: addr.clone(),
            detail: "the server presented no certificate".into(),
        })?;
    check_trust(endpoint, store, prompt, trust_new, &fingerprint(&der))?;

    let server_public_key = ironrdp_tls::extract_tls_server_public_key(&certificate)
        .ok_or_else(|| RdpError::Tls {
            addr: addr.clone(),
            detail: "the certificate has no usable public key".into(),
        })?
        .to_owned();
    let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
    let mut framed = TokioFramed::new_with_leftover(tls, leftover);
    let result = within(&addr, async {
        ironrdp_tokio::connect_finalize(
            upgraded,
            connector,
            &mut framed,
            &mut NoKerberos,
            ServerName::new(endpoint.host.clone()),
            server_public_key,
            None,
        )
        .await
        .map_err(|e| classify(e, &addr, &endpoint.user, "login"))
    })
    .await?;
    let desktop = (result.desktop_size.width, result.desktop_size.height);
    info!(%addr, width = desktop.0, height = desktop.1, "connected");
    Ok(Connected {
        framed,
        result,
        addr,
        desktop,
    })
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

fn check_trust(
    endpoint: &Endpoint,
    store: &TrustStore,
    prompt: &dyn TrustPrompt,
    trust_new: bool,
    presented: &str,
) -> Result<(), RdpError> {
    let key = &endpoint.trust_key;
    match store.decide(key, presented)? {
        TrustDecision::Known => Ok(()),
        TrustDecision::Changed { old } => Err(RdpError::CertificateChanged {
            key: key.to_string(),
            old,
            new: presented.to_owned(),
        }),
        TrustDecision::New => {
            if trust_new || prompt.confirm_new(key, presented)? {
                info!(%key, fingerprint = presented, "trusting a new certificate");
                store.remember(key, presented)
            } else {
                Err(RdpError::CertificateRejected {
                    key: key.to_string(),
                    fingerprint: presented.to_owned(),
                })
            }
        }
    }
}

/// CredSSP only needs the network for Kerberos; we log in with NTLM, so any request is an error.
struct NoKerberos;

impl ironrdp_tokio::NetworkClient for NoKerberos {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ConnectorError::new(
            "Kerberos is not supported; log in with a local account (NTLM)",
            ConnectorErrorKind::General,
        ))
    }
}

/// Sorts a connector failure by who is at fault: the login, the negotiation, a dropped
/// connection, or data we cannot read.
pub(super) fn classify(
    error: ConnectorError,
    addr: &str,
    user: &str,
    stage: &'static str,
) -> RdpError {
    let detail = error.report().to_string();
    match error.kind() {
        ConnectorErrorKind::Credssp(e) => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: e.to_string(),
        },
        ConnectorErrorKind::AccessDenied => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: "access denied".into(),
        },
        ConnectorErrorKind::Negotiation(failure) => RdpError::Negotiation {
            addr: addr.to_owned(),
            detail: failure.to_string(),
        },
        // Some servers (FreeRDP among them) answer bad credentials by hanging up mid-CredSSP.
        _ if is_disconnect(&error) && stage == "login" => RdpError::LoginFailed {
            addr: addr.to_owned(),
            user: user.to_owned(),
            detail: "the server hung up while checking the credentials".into(),
        },
        _ if is_disconnect(&error) => RdpError::Dropped {
            addr: addr.to_owned(),
            stage,
        },
        _ => RdpError::Protocol {
            addr: addr.to_owned(),
            stage,
            detail,
        },
    }
}

/// Whether an error's causes include the peer closing or resetting the connection.
pub(super) fn is_disconnect(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ) {
                return true;
            }
        }
        cause = current.source();
    }
    false
}
