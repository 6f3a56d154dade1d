//! Session Manager's port forwarding in this process: the data channel that
//! `ssm:StartSession` with `AWS-StartPortForwardingSession` opens, turned into a byte pipe the
//! RDP session runs over, so that an instance with no open port and no endpoint needs no other
//! tool (AWS's session-manager-plugin does the same in Go; its sources are the protocol's only
//! description).
//!
//! Knows the data channel's messages, their acknowledgements and smux, never the AWS API: it
//! gets the stream URL and token that `StartSession` returned (`aws` asks for them).

mod channel;
mod delivery;
mod handshake;
pub mod message;
pub mod smux;

use std::time::Duration;

pub use self::handshake::HandshakeError;
use super::{Tunnel, TunnelError};

/// The largest message taken from the service: a header and a payload of a few KiB are what
/// agents send; anything much larger ends the stream rather than fill memory.
const MAX_MESSAGE: usize = 1 << 20;

/// What can go wrong in the data channel.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SsmError {
    #[error("cannot reach Session Manager's stream at {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("Session Manager refused the stream (HTTP {status}{})",
        if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Refused { status: u16, detail: String },
    #[error("Session Manager's stream URL {0:?} is neither wss:// nor ws:// on this machine")]
    Url(String),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(
        "the SSM agent on the instance could not connect to its port {0}: check that Remote \
         Desktop is on (the TermService service) and listening on that port"
    )]
    PortUnreachable(u16),
    #[error("Session Manager closed the stream{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    Closed(String),
    #[error(
        "the SSM agent stopped acknowledging what ecsrdp sends (nothing for {}): the instance \
         or its network went away",
        humantime::format_duration(*.0)
    )]
    Silent(Duration),
    #[error("the Session Manager stream broke the protocol: {0}")]
    Protocol(String),
    #[error("the Session Manager stream broke: {0}")]
    Broken(String),
}

/// Opens the data channel at `url` with `token` (what `StartSession` gave) to a port session on
/// `port`, and returns it as a tunnel once the agent's handshake is complete (`timeout` for the
/// connection, and as much again for the handshake).
pub async fn open(
    url: &str,
    token: &str,
    port: u16,
    timeout: Duration,
) -> Result<Tunnel, TunnelError> {
    // Clear text only to this machine's loopback: the URL and token open the session.
    let (scheme, host) = super::split_url(url);
    if !url.starts_with(&format!("{scheme}://")) {
        return Err(SsmError::Url(url.to_owned()).into());
    }
    let ws = super::websocket::connect(url, &host, scheme == "wss", timeout, Some(MAX_MESSAGE))
        .await
        .map_err(|error| match error {
            TunnelError::Unreachable { host, detail } => SsmError::Unreachable { host, detail },
            TunnelError::Refused { status, detail } => SsmError::Refused { status, detail },
            other => SsmError::Broken(other.to_string()),
        })?;
    let (pipe, ended) = tokio::time::timeout(timeout, channel::start(ws, token, port))
        .await
        .map_err(|_| {
            SsmError::Broken(format!(
                "the SSM agent did not complete its handshake within {}",
                humantime::format_duration(timeout)
            ))
        })??;
    Ok(Tunnel {
        pipe,
        ended,
        // The service ends idle or long streams itself (about an hour); nothing to count down.
        expires: None,
        reopen: None,
    })
}
