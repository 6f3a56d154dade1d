//! The desktop window: winit on the main thread, pixels through softbuffer, input to the
//! session through a bounded channel.
//!
//! A consumer of [`Session`], like the headless runner: knows the session only through
//! `render`'s shared frame and `rdp`'s command and sink types; never AWS, the commands or the
//! command line. The session wakes the window with at most one pending "frame ready" event
//! ([`events`]), the event loop routes input ([`app`]), and a redraw copies only the damaged
//! rows ([`view`]).

mod app;
mod backlog;
pub mod clipboard;
mod events;
mod input;
pub mod keyboard;
pub mod keymap;
mod options;
mod overlay;
#[cfg(target_os = "macos")]
mod pasteboard;
mod view;
#[cfg(target_os = "linux")]
mod x11_clipboard;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use winit::event_loop::EventLoop;

use self::app::{App, CLOSE_GRACE};
use self::events::{ProxySink, UserEvent};
pub use self::options::{Scale, WindowOptions};
use crate::rdp::{Outcome, RdpError, Session};
use crate::snapshot::{write_png, SnapshotError};

/// There is no display to open a window on, or the window system failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a window: {0}. Without a display, use --headless (with --snapshot FILE.png)")]
pub struct NoWindow(pub String);

/// Why the window could not show the session, or how the session under it failed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    NoWindow(#[from] NoWindow),
    #[error(transparent)]
    Session(#[from] RdpError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// A connection to the display, opened before the session so that a machine without one fails
/// before anything is asked of the server.
pub struct Display(EventLoop<UserEvent>);

impl Display {
    pub fn open() -> Result<Display, NoWindow> {
        // winit's own error names its source file; say plainly what is missing instead.
        #[cfg(all(unix, not(target_os = "macos")))]
        if ["DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"]
            .iter()
            .all(|name| std::env::var_os(name).is_none())
        {
            return Err(NoWindow(
                "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)".into(),
            ));
        }
        EventLoop::<UserEvent>::with_user_event()
            .build()
            .map(Display)
            .map_err(|e| NoWindow(e.to_string()))
    }
}

/// Opens the window and runs until the session ends.
pub fn run(
    runtime: tokio::runtime::Runtime,
    display: Display,
    session: Session,
    options: WindowOptions,
) -> Result<Outcome, WindowError> {
    let event_loop = display.0;
    // Decoding is many times slower unoptimised: nobody should judge ecsrdp by this build.
    #[cfg(debug_assertions)]
    tracing::warn!(
        "this is a debug build of ecsrdp: decoding runs several times slower than in a release \
         build (cargo install --path . or cargo build --release)"
    );
    let frame = session.frame();
    let commands = session.commands();
    let proxy = event_loop.create_proxy();
    let sink = ProxySink {
        proxy: proxy.clone(),
        pending: Arc::new(AtomicBool::new(false)),
        first: AtomicBool::new(true),
        started: options.started,
        pointer: Arc::default(),
    };
    let pending = Arc::clone(&sink.pending);
    let pointer = Arc::clone(&sink.pointer);
    runtime.spawn(async move {
        let outcome = session.run(sink).await;
        // The event loop is gone only if the window already closed: nobody left to tell.
        let _ = proxy.send_event(UserEvent::Ended(outcome));
    });

    let mut app = App {
        title: options.title,
        scale: options.scale,
        chosen_scale: options.scale,
        desktop: options.desktop,
        fullscreen: options.fullscreen,
        frame,
        pending,
        commands,
        view: None,
        input: input::InputState::default(),
        outcome: None,
        window_error: None,
        backlog: backlog::Backlog::default(),
        closing: None,
        away: None,
        lock_keys: keyboard::LockKeys::open(),
        pointer,
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| NoWindow(e.to_string()))?;
    // A session stuck on a dead network must not keep the process alive after the window.
    runtime.shutdown_timeout(CLOSE_GRACE);
    // Write what was seen even when the session failed, but report the failure first.
    let snapshot = match &options.snapshot {
        Some(path) => write_png(&app.frame.lock(), path),
        None => Ok(()),
    };
    if let Some(error) = app.window_error {
        return Err(NoWindow(error).into());
    }
    let outcome = match app.outcome {
        Some(outcome) => outcome?,
        None => Outcome::Closed,
    };
    snapshot?;
    Ok(outcome)
}
