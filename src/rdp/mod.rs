//! The RDP client: connect (TCP, X.224, TLS, CredSSP), decide certificate trust, and drive the
//! session into [`render`](crate::render)'s shared framebuffer.
//!
//! Knows nothing of AWS, windows or terminals: it gets an [`Endpoint`], hands back a
//! [`Handshake`] for the caller's trust decision, then a [`Session`] that takes [`Command`]s and
//! reports to a [`FrameSink`].

mod clipboard;
mod config;
mod connect;
mod contain;
mod drive;
mod error;
mod graphics;
mod ignorable;
mod liveness;
#[cfg(target_os = "macos")]
mod pasteboard;
mod session;
mod tls;
mod transport;
mod trust;

use std::io::{BufRead as _, IsTerminal as _};

pub use self::clipboard::Clipboard;
pub use self::config::{Codecs, Security};
pub use self::connect::{connect, connect_over, ConnectOptions, Connected, Handshake};
pub use self::contain::install_panic_hook;
pub use self::error::RdpError;
pub use self::session::{
    decode, replay, replay_stage, replay_stage_with, run_session, Command, Decoded, FrameSink,
    Outcome, PointerShape, Reconnect, ReplayChannels, Session, REPLAY_CHANNELS,
};
pub use self::transport::Transport;
pub use self::trust::{fingerprint, TrustDecision, TrustKey, TrustStore};
use crate::keys::Password;

/// Where and as whom to connect; the password stays redacted in `Debug`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub domain: Option<String>,
    pub password: Password,
    /// What the server's certificate is remembered under.
    pub trust_key: TrustKey,
    /// What the user calls it, for the window title and messages.
    pub title: String,
}

/// The password for `direct`: first line of stdin, else `ECSRDP_PASSWORD`, else a no-echo
/// prompt. Never from a command-line argument, which other users can see in `ps`.
pub fn read_password(from_stdin: bool) -> Result<Password, RdpError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|_| RdpError::NoPassword)?;
        let password = Password::new(line.trim_end_matches(['\r', '\n']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        if password.expose().is_empty() {
            return Err(RdpError::NoPassword);
        }
        return Ok(password);
    }
    if let Ok(password) = std::env::var("ECSRDP_PASSWORD") {
        return Ok(Password::new(password));
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ")
            .map(Password::new)
            .map_err(|_| RdpError::NoPassword);
    }
    Err(RdpError::NoPassword)
}
