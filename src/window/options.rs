//! What the window needs besides the session: its title, how the desktop fits it, its first
//! size, and where to write a snapshot.

use std::time::Instant;

/// How the desktop fits the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Scaled into the window, keeping its aspect.
    Fit,
    /// 1:1, the server asked to follow the window's size (scaled if it cannot).
    None,
}

/// What the window needs besides the session.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    pub title: String,
    pub scale: Scale,
    /// The size the window opens at.
    pub desktop: (u16, u16),
    /// Open full screen (borderless, on the current monitor).
    pub fullscreen: bool,
    /// Write the desktop here when the session ends.
    pub snapshot: Option<std::path::PathBuf>,
    /// When the command started, for the time-to-first-frame log.
    pub started: Instant,
}
