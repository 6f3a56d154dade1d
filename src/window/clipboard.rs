//! The local clipboard, opened for the session to share. Every backend advertises what was
//! copied on one side and fetches data only when a program pastes on the other, with transfers
//! bounded (100 MiB); text goes as `CF_UNICODETEXT`, images as PNG/DIB.
//! - On an X11 display, ecsrdp's own [`x11_clipboard`](super::x11_clipboard), driven by XFixes
//!   events: it sleeps until something is copied or pasted.
//! - On Wayland, IronRDP's backend (the data-control protocols, or X11 on XWayland). Its worker
//!   looks for work on a timer (docs/performance.md measures it); a timer slack (below) lets
//!   the kernel fold those wake-ups.
//! - On macOS, ecsrdp's own [`pasteboard`](super::pasteboard) backend, text only.

use crate::rdp::Clipboard;

/// Opens the display's (or the Wayland compositor's) clipboard. The error says why there is
/// none, for a warning.
pub fn open() -> Result<Clipboard, String> {
    Clipboard::open(|sender| {
        #[cfg(target_os = "linux")]
        {
            linux::open(sender)
        }
        #[cfg(target_os = "macos")]
        {
            super::pasteboard::Pasteboard::new(sender)
                .map(|pasteboard| Box::new(pasteboard) as Box<dyn crate::rdp::LocalClipboard>)
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            drop(sender);
            Err("ecsrdp shares the clipboard only on Linux and macOS".to_owned())
        }
    })
}

#[cfg(target_os = "macos")]
impl crate::rdp::LocalClipboard for super::pasteboard::Pasteboard {
    fn backend(&self) -> Box<dyn ironrdp_cliprdr::backend::CliprdrBackend> {
        super::pasteboard::Pasteboard::backend(self)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    use ironrdp_cliprdr::backend::{ClipboardMessage, ClipboardMessageProxy, CliprdrBackend};
    use tokio::sync::mpsc::UnboundedSender;
    use tracing::debug;

    use crate::rdp::LocalClipboard;

    /// How late the kernel may wake IronRDP's clipboard threads (`PR_SET_TIMERSLACK`, which a
    /// thread passes on to the threads it starts), so that their polls come less often. On
    /// XWayland those polls pace a local program taking a large paste from the session 64 KiB
    /// at a time; this value is the compromise measured in docs/performance.md. The Wayland
    /// data-control backend waits on its sockets and is not slowed at all.
    const CLIPBOARD_TIMER_SLACK: Duration = Duration::from_millis(15);

    /// IronRDP's Linux clipboard, for Wayland; owns its threads.
    struct Linux(ironrdp_cliprdr_native::LinuxClipboard);

    impl LocalClipboard for Linux {
        fn backend(&self) -> Box<dyn CliprdrBackend> {
            self.0.backend_factory().build_cliprdr_backend()
        }
    }

    /// Hands the backend's messages (sent from its own thread) to the session.
    #[derive(Debug)]
    struct ToSession(UnboundedSender<ClipboardMessage>);

    impl ClipboardMessageProxy for ToSession {
        fn send_clipboard_message(&self, message: ClipboardMessage) {
            // The session has ended: nobody is left to paste into.
            let _ = self.0.send(message);
        }
    }

    pub(super) fn open(
        sender: UnboundedSender<ClipboardMessage>,
    ) -> Result<Box<dyn LocalClipboard>, String> {
        // The window is on X11 when winit found no Wayland compositor (it prefers Wayland).
        let wayland = ["WAYLAND_DISPLAY", "WAYLAND_SOCKET"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if !wayland {
            return crate::window::x11_clipboard::open(sender);
        }
        // The backend's threads are started from a thread of our own that carries the slack,
        // so that no other thread of ecsrdp's (the window's, the session's) has it.
        let opened = std::thread::Builder::new()
            .name("clipboard-open".into())
            .spawn(move || {
                let slack = CLIPBOARD_TIMER_SLACK.as_nanos().try_into().unwrap_or(0);
                if let Err(error) = nix::sys::prctl::set_timerslack(slack) {
                    debug!(%error, "the clipboard's timer slack was not set");
                }
                ironrdp_cliprdr_native::LinuxClipboard::new(ToSession(sender))
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("cannot start the clipboard's thread: {e}"))?
            .join()
            .map_err(|_| "the clipboard's thread failed while opening".to_owned())?;
        Ok(Box::new(Linux(opened?)))
    }
}
