//! The local clipboard shared with the session over the CLIPRDR channel (MS-RDPECLIP): the
//! plumbing between the OS clipboard's backend and the session. The backend's messages come in on
//! a channel and become CLIPRDR PDUs on the session's connection.
//!
//! The backend itself is the local machine's, opened by the window side (`window::clipboard`:
//! IronRDP's on Linux, ecsrdp's own on macOS) and handed in as a [`LocalClipboard`]: the RDP core
//! knows no X11, Wayland or AppKit.

use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};
use ironrdp_session::ActiveStage;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The OS clipboard, open: it makes the CLIPRDR backend the channel runs on, and keeps its own
/// threads for as long as it lives.
pub trait LocalClipboard: Send {
    fn backend(&self) -> Box<dyn CliprdrBackend>;
}

/// The local side of the clipboard: the OS clipboard, and what it asks of the session.
pub struct Clipboard {
    /// Dropping it stops the sharing.
    os: Box<dyn LocalClipboard>,
    messages: mpsc::UnboundedReceiver<ClipboardMessage>,
}

impl std::fmt::Debug for Clipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clipboard")
    }
}

impl Clipboard {
    /// Shares the clipboard `open` opens; `open` gets the sender its backend reports on (from a
    /// thread of its own). The error says why there is none, for a warning: a session without a
    /// clipboard is still a session.
    pub fn open(
        open: impl FnOnce(
            mpsc::UnboundedSender<ClipboardMessage>,
        ) -> Result<Box<dyn LocalClipboard>, String>,
    ) -> Result<Clipboard, String> {
        let (sender, messages) = mpsc::unbounded_channel();
        Ok(Clipboard {
            os: open(sender)?,
            messages,
        })
    }

    /// The CLIPRDR channel to announce at connection time, wired to this clipboard.
    pub(in crate::rdp) fn channel(&self) -> CliprdrClient {
        CliprdrClient::new(self.os.backend())
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
