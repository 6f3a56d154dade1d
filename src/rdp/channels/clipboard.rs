//! The local clipboard shared with the session over the CLIPRDR channel (MS-RDPECLIP).
//!
//! On macOS the backend is ecsrdp's own ([`super::pasteboard`], text only). On Linux IronRDP's
//! backend does the clipboard work: it watches the local selection (Wayland's
//! data-control protocols, else X11 through XFixes), advertises what the remote copied, and
//! fetches data only when a program pastes, on either side; transfers are bounded (100 MiB).
//! Text goes as `CF_UNICODETEXT` (UTF-16 on the wire, UTF-8 locally), images as PNG/DIB. This
//! module is the plumbing between it and the session: the backend's messages come in on a
//! channel and become CLIPRDR PDUs on the session's connection.
//!
//! The backend's X11 thread polls for X events on a short timer, copied or not, which costs an
//! idle session wake-ups and CPU (docs/performance.md measures it). Its code is
//! IronRDP's; a timer slack (below) lets the kernel fold those wake-ups.

#[cfg(target_os = "linux")]
use std::time::Duration;

use ironrdp_cliprdr::backend::{ClipboardMessage, ClipboardMessageProxy, CliprdrBackend};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};
use ironrdp_session::ActiveStage;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The local side of the clipboard: the OS clipboard's thread, and what it asks of the session.
pub struct Clipboard {
    /// Owns the OS clipboard's thread; dropping it stops the sharing.
    #[cfg(target_os = "linux")]
    os: ironrdp_cliprdr_native::LinuxClipboard,
    #[cfg(target_os = "macos")]
    os: super::pasteboard::Pasteboard,
    messages: mpsc::UnboundedReceiver<ClipboardMessage>,
}

impl std::fmt::Debug for Clipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clipboard")
    }
}

/// Hands the backend's messages (sent from its own thread) to the session.
#[derive(Debug)]
struct ToSession(mpsc::UnboundedSender<ClipboardMessage>);

impl ClipboardMessageProxy for ToSession {
    fn send_clipboard_message(&self, message: ClipboardMessage) {
        // The session has ended: nobody is left to paste into.
        let _ = self.0.send(message);
    }
}

/// How late the kernel may wake the clipboard's threads (`PR_SET_TIMERSLACK`, which a thread
/// passes on to the threads it starts), so that the X11 backend's polls come less often.
/// Nothing the user does waits on a timer except that poll, and it paces one thing: a local
/// program taking a large paste from the session 64 KiB at a time. More slack saves more
/// wake-ups and slows that paste more; this value is the compromise measured in
/// docs/performance.md. The Wayland backend waits on its sockets and is not slowed at all.
#[cfg(target_os = "linux")]
const CLIPBOARD_TIMER_SLACK: Duration = Duration::from_millis(15);

impl Clipboard {
    /// Opens the local clipboard (the display's, or the Wayland compositor's). The error says
    /// why there is none, for a warning: a session without a clipboard is still a session.
    pub fn open() -> Result<Clipboard, String> {
        let (sender, messages) = mpsc::unbounded_channel();
        #[cfg(target_os = "linux")]
        {
            // The backend's threads are started from a thread of our own that carries the
            // slack, so that no other thread of ecsrdp's (the window's, the session's) has it.
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
            Ok(Clipboard {
                os: opened?,
                messages,
            })
        }
        #[cfg(target_os = "macos")]
        {
            Ok(Clipboard {
                os: super::pasteboard::Pasteboard::new(sender)?,
                messages,
            })
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            drop((sender, messages));
            Err("ecsrdp shares the clipboard only on Linux and macOS".into())
        }
    }

    /// The CLIPRDR channel to announce at connection time, wired to this clipboard.
    pub(in crate::rdp) fn channel(&self) -> CliprdrClient {
        CliprdrClient::new(self.backend())
    }

    #[cfg(target_os = "linux")]
    fn backend(&self) -> Box<dyn CliprdrBackend> {
        self.os.backend_factory().build_cliprdr_backend()
    }

    #[cfg(target_os = "macos")]
    fn backend(&self) -> Box<dyn CliprdrBackend> {
        self.os.backend()
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn backend(&self) -> Box<dyn CliprdrBackend> {
        unreachable!("no Clipboard is opened off Linux and macOS")
    }

    /// The backend's next request; pending forever once the backend is gone.
    pub(in crate::rdp) async fn next(&mut self) -> ClipboardMessage {
        match self.messages.recv().await {
            Some(message) => message,
            None => std::future::pending().await,
        }
    }
}

/// Turns one request of the local clipboard into the bytes to send; empty when there is
/// nothing to send (the channel is not open, or the request is one ecsrdp does not serve). A
/// clipboard that fails is reported and passed over: it must not end the session.
pub(in crate::rdp) fn encode(stage: &mut ActiveStage, message: ClipboardMessage) -> Vec<u8> {
    let Some(cliprdr) = stage.get_svc_processor_mut::<CliprdrClient>() else {
        return Vec::new();
    };
    let messages: Result<CliprdrSvcMessages<_>, _> = match message {
        ClipboardMessage::SendInitiateCopy(formats) => cliprdr.initiate_copy(&formats),
        ClipboardMessage::SendFormatData(response) => cliprdr.submit_format_data(response),
        ClipboardMessage::SendInitiatePaste(format) => cliprdr.initiate_paste(format),
        ClipboardMessage::Error(error) => {
            warn!(%error, "the local clipboard failed");
            return Vec::new();
        }
        // The backends share text (and images on Linux), not files. (Never log a message itself:
        // it may hold what the user copied.)
        _ => {
            debug!("a clipboard file transfer, which ecsrdp does not serve");
            return Vec::new();
        }
    };
    let bytes = messages.map_err(|e| e.to_string()).and_then(|m| {
        stage
            .process_svc_processor_messages(m)
            .map_err(|e| e.report().to_string())
    });
    bytes.unwrap_or_else(|error| {
        warn!(%error, "cannot send the clipboard's data");
        Vec::new()
    })
}
