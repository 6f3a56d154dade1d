//! Tunnels in this process: an EC2 Instance Connect Endpoint (EICE) turned into a byte pipe the
//! RDP session runs over, so that a private instance needs no public address, no local port and
//! no other tool.
//!
//! Knows SigV4 and WebSockets, never ECS, EC2's descriptions or RDP: it gets an endpoint's DNS
//! name, an address and credentials, and hands back a pipe.

mod presign;
pub mod ssm;
mod websocket;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use tokio::io::DuplexStream;

pub use self::presign::{presigned_url, PresignError, TunnelRequest};
pub use self::websocket::Ended;

/// Where a test (or a proxy) puts the endpoint instead of `wss://<DnsName>`: the SDKs' own
/// per-service endpoint variable, for service ID "EC2 Instance Connect".
pub const ENDPOINT_OVERRIDE: &str = "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT";

/// What can go wrong with the tunnel itself, apart from the RDP inside it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot reach the EC2 Instance Connect Endpoint at {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error(
        "the EC2 Instance Connect Endpoint refused the tunnel (HTTP {status}{}); check that your \
         credentials allow `ec2-instance-connect:OpenTunnel` on the endpoint for port 3389 and \
         that your clock is right",
        if detail.is_empty() { String::new() } else { format!(": {detail}") }
    )]
    Refused { status: u16, detail: String },
    #[error(
        "the EC2 Instance Connect Endpoint closed the tunnel (code {code}): {reason}; if it cannot \
         reach the instance, check that the instance's security group admits TCP 3389 from the \
         endpoint's security group"
    )]
    Closed { code: u16, reason: String },
    #[error("the EC2 Instance Connect Endpoint broke the protocol: {0}")]
    Protocol(String),
    #[error(
        "the EC2 Instance Connect Endpoint ended the tunnel at its maximum duration ({}); connect \
         again (--tunnel-duration sets it, up to 1h)",
        humantime::format_duration(*.0)
    )]
    Expired(Duration),
    #[error("the tunnel through the EC2 Instance Connect Endpoint broke: {0}")]
    Broken(String),
    #[error("cannot get AWS credentials to sign the tunnel: {0}")]
    Credentials(String),
    #[error(transparent)]
    Presign(#[from] PresignError),
    #[error(transparent)]
    Ssm(#[from] ssm::SsmError),
}

/// An open tunnel: the pipe the session runs over, and where its ending is told.
pub struct Tunnel {
    pub pipe: DuplexStream,
    pub ended: Ended,
    /// When the service will end it, and the maximum duration that is from opening (an EICE
    /// tunnel's; Session Manager's streams have none to count down).
    pub expires: Option<(std::time::Instant, Duration)>,
    /// How to open another to the same place, freshly signed: how a session through a tunnel
    /// comes back after the tunnel breaks or reaches its maximum duration.
    pub reopen: Option<Reopen>,
}

/// Opens a new tunnel like the first; its error, said for a person.
pub type Reopen = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Tunnel, String>> + Send>>
        + Send
        + Sync,
>;

/// The longest tunnel the service grants, and its default.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Opens a tunnel through the endpoint at `dns_name` to `request`'s private address, signed
/// with `credentials` for `region`.
pub async fn open(
    dns_name: &str,
    request: &TunnelRequest,
    credentials: &Credentials,
    region: &str,
    timeout: Duration,
) -> Result<Tunnel, TunnelError> {
    let (scheme, host) = match std::env::var(ENDPOINT_OVERRIDE) {
        Ok(url) => split_url(&url),
        Err(_) => ("wss".to_owned(), dns_name.to_owned()),
    };
    let url = presigned_url(
        &scheme,
        &host,
        request,
        credentials,
        region,
        SystemTime::now(),
    )?;
    let secure = scheme == "wss";
    let opened = std::time::Instant::now();
    let (pipe, ended) = websocket::open(&url, &host, secure, timeout).await?;
    Ok(Tunnel {
        pipe,
        ended,
        expires: {
            let limit = request.max_duration.unwrap_or(MAX_DURATION);
            Some((opened + limit, limit))
        },
        reopen: None,
    })
}

/// `ws://host:port/…` → (`ws`, `host:port`). An `https` endpoint is `wss`; an unencrypted one
/// (`ws`, `http`) only on this machine's loopback (a test's or a local proxy's), because the
/// presigned URL it carries opens tunnels for a minute to whoever reads it.
pub(crate) fn split_url(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("wss", url));
    let host = rest.split('/').next().unwrap_or(rest);
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let loopback = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" if loopback => "ws",
        _ => "wss",
    };
    (scheme.to_owned(), host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_url_goes_in_clear_only_to_loopback() {
        let split = |url: &str| split_url(url);
        assert_eq!(
            split("ws://127.0.0.1:8080/x"),
            ("ws".into(), "127.0.0.1:8080".into())
        );
        assert_eq!(
            split("https://proxy.example:8443"),
            ("wss".into(), "proxy.example:8443".into())
        );
        assert_eq!(
            split("http://proxy.example"),
            ("wss".into(), "proxy.example".into())
        );
        assert_eq!(
            split("ws://10.0.0.5:80/"),
            ("wss".into(), "10.0.0.5:80".into())
        );
    }
}
