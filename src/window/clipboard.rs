//! The local clipboard, opened for the session to share: on Linux IronRDP's backend, which
//! watches the selection (Wayland's data-control protocols, else X11 through XFixes), advertises
//! what the remote copied and fetches data only when a program pastes, on either side, with
//! transfers bounded (100 MiB); text goes as `CF_UNICODETEXT`, images as PNG/DIB. On macOS
//! ecsrdp's own [`pasteboard`](super::pasteboard) backend, text only.
//!
//! The X11 backend polls for X events on a short timer, copied or not, which costs an idle
//! session wake-ups and CPU (docs/performance.md measures it); a timer slack (below) lets the
//! kernel fold those wake-ups.

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

    /// How late the kernel may wake the clipboard's threads (`PR_SET_TIMERSLACK`, which a
    /// thread passes on to the threads it starts), so that the X11 backend's polls come less
    /// often. Nothing the user does waits on a timer except that poll, and it paces one thing: a
    /// local program taking a large paste from the session 64 KiB at a time. More slack saves
    /// more wake-ups and slows that paste more; this value is the compromise measured in
    /// docs/performance.md. The Wayland backend waits on its sockets and is not slowed at all.
    const CLIPBOARD_TIMER_SLACK: Duration = Duration::from_millis(15);

    /// IronRDP's Linux clipboard; owns its threads.
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
