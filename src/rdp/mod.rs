//! The RDP client: [`connect`] (TCP, X.224, TLS, the certificate pin, CredSSP), then a
//! [`Session`] that decodes into [`render`](crate::render)'s shared frame, with its [`channels`]
//! (clipboard, drive, dynamic channels) and the [`graphics`] pipeline.
//!
//! Knows nothing of AWS, windows, X11 or terminals: it gets an [`Endpoint`], hands back a
//! [`Handshake`] for the caller's trust decision, then a [`Session`] that takes [`Command`]s and
//! reports to a [`FrameSink`]. What it needs of the local machine (the keyboard layout, the
//! lock keys) comes in as data.

pub mod channels;
pub mod config;
pub mod connect;
mod contain;
pub mod desktop;
pub mod error;
mod graphics;
pub mod keyboard;
#[cfg(feature = "replay")]
pub mod replay;
pub mod session;
mod updates;

pub use self::channels::{Clipboard, LocalClipboard};
pub use self::config::{Codecs, ConnectOptions, Endpoint, Security};
pub use self::connect::transport::Transport;
pub use self::connect::trust::{fingerprint, thumbprint, TrustDecision, TrustKey, TrustStore};
pub use self::connect::{connect, connect_over, Connected, Handshake};
pub use self::contain::install_panic_hook;
pub use self::error::RdpError;
pub use self::graphics::{cisco_library, h264_decoder_name, DecoderChoice};
pub use self::keyboard::{Klid, Locks};
#[cfg(feature = "replay")]
pub use self::replay::{
    replay, replay_stage, replay_stage_decoding, replay_stage_with, ReplayChannels, REPLAY_CHANNELS,
};
pub use self::session::{Command, FrameSink, Layout, Outcome, PointerShape, Reconnect, Session};
