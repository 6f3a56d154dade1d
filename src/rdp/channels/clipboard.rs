//! The local clipboard shared with the session over the CLIPRDR channel (MS-RDPECLIP): the
//! plumbing between the OS clipboard's backend and the session. The backend's messages come in on
//! a channel and become CLIPRDR PDUs on the session's connection.
//!
//! The backend itself is the local machine's, opened by the window side (`window::clipboard`:
//! IronRDP's on Linux, ecsrdp's own on macOS) and handed in as a [`LocalClipboard`]: the RDP core
//! knows no X11, Wayland or AppKit.
//!
//! What crosses is gated by the window's focus, because the clipboard often holds a password:
//! - What was on the local clipboard before the session started is never offered: the first
//!   announcement of each connection (the backend's "here is what I hold") goes out empty.
//! - A local copy is offered only while the window has focus; one made while it had not (in
//!   another program, the usual way) waits and is offered when the window gets focus back, so
//!   a server sees what the user copied only once the user turns to the session.
//! - The session writes to the local clipboard only while the window has focus: a program in
//!   the session that copies while the user works elsewhere does not replace what they copied.
//! - The server gets local data only for a format offered in the last announcement and only
//!   while the window has focus (a program there pastes because the user is there): a hostile
//!   server asking unasked, or while the user works elsewhere, gets an error, never the data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend};
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
};
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
    /// Where the backend's wrapper puts its refusals, beside the backend's own messages.
    refusals: mpsc::UnboundedSender<ClipboardMessage>,
    gate: Gate,
}

/// What may cross, by the window's focus (see the module's doc).
#[derive(Debug, Default)]
struct Gate {
    /// Shared with the backend's wrapper, which reads it when the session copies.
    focused: Arc<AtomicBool>,
    /// The connection's first announcement has gone (empty).
    announced: bool,
    /// The formats the server was last offered, the only ones it may ask for; shared with the
    /// backend's wrapper.
    offered: Arc<Mutex<Vec<ClipboardFormatId>>>,
    /// A local copy made while the window had no focus, to offer when it has.
    held: Option<Vec<ClipboardFormat>>,
}

impl Gate {
    /// What to send of the backend's `message`, if anything.
    fn outgoing(&mut self, message: ClipboardMessage) -> Option<ClipboardMessage> {
        let ClipboardMessage::SendInitiateCopy(formats) = message else {
            return Some(message);
        };
        if !self.announced {
            self.announced = true;
            debug!("what the clipboard held before the session is not offered");
            return Some(ClipboardMessage::SendInitiateCopy(Vec::new()));
        }
        if self.focused.load(Ordering::Relaxed) {
            self.held = None;
            self.offer(&formats);
            return Some(ClipboardMessage::SendInitiateCopy(formats));
        }
        debug!("a local copy waits for the window's focus");
        self.held = Some(formats);
        None
    }

    /// The window gained or lost focus; on gaining it, the copy that waited.
    fn focus(&mut self, focused: bool) -> Option<ClipboardMessage> {
        self.focused.store(focused, Ordering::Relaxed);
        if !focused {
            return None;
        }
        let held = self.held.take()?;
        self.offer(&held);
        Some(ClipboardMessage::SendInitiateCopy(held))
    }

    fn offer(&self, formats: &[ClipboardFormat]) {
        *self.offered.lock().unwrap_or_else(PoisonError::into_inner) =
            formats.iter().map(ClipboardFormat::id).collect();
    }
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
            os: open(sender.clone())?,
            messages,
            refusals: sender,
            gate: Gate::default(),
        })
    }

    /// The CLIPRDR channel to announce at connection time, wired to this clipboard.
    pub(in crate::rdp) fn channel(&self) -> CliprdrClient {
        CliprdrClient::new(Box::new(FocusGated {
            inner: self.os.backend(),
            focused: Arc::clone(&self.gate.focused),
            offered: Arc::clone(&self.gate.offered),
            refusals: self.refusals.clone(),
        }))
    }

    /// The backend's next request that may go to the server; pending forever once the backend
    /// is gone.
    pub(in crate::rdp) async fn next(&mut self) -> ClipboardMessage {
        loop {
            let Some(message) = self.messages.recv().await else {
                return std::future::pending().await;
            };
            if let Some(message) = self.gate.outgoing(message) {
                return message;
            }
        }
    }

    /// The window gained (`true`) or lost focus; what to send now, if anything.
    pub(in crate::rdp) fn focus(&mut self, focused: bool) -> Option<ClipboardMessage> {
        self.gate.focus(focused)
    }
}

/// The OS clipboard's backend, taking what the session copies and giving what it asks for only
/// while the window has focus, and only what was offered.
#[derive(Debug)]
struct FocusGated {
    inner: Box<dyn CliprdrBackend>,
    focused: Arc<AtomicBool>,
    offered: Arc<Mutex<Vec<ClipboardFormatId>>>,
    refusals: mpsc::UnboundedSender<ClipboardMessage>,
}

impl ironrdp_core::AsAny for FocusGated {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl CliprdrBackend for FocusGated {
    fn temporary_directory(&self) -> &str {
        self.inner.temporary_directory()
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        self.inner.client_capabilities()
    }

    fn on_ready(&mut self) {
        self.inner.on_ready();
    }

    fn on_request_format_list(&mut self) {
        self.inner.on_request_format_list();
    }

    fn on_format_list_response(&mut self, ok: bool) {
        self.inner.on_format_list_response(ok);
    }

    fn on_process_negotiated_capabilities(
        &mut self,
        capabilities: ClipboardGeneralCapabilityFlags,
    ) {
        self.inner.on_process_negotiated_capabilities(capabilities);
    }

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        if self.focused.load(Ordering::Relaxed) {
            self.inner.on_remote_copy(available_formats);
        } else {
            debug!("the session copied while the window has no focus: not taken");
        }
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        let offered = self
            .offered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&request.format);
        if offered && self.focused.load(Ordering::Relaxed) {
            self.inner.on_format_data_request(request);
        } else {
            debug!(
                offered,
                "the session asked for clipboard data it may not have: refused"
            );
            let _ = self.refusals.send(ClipboardMessage::SendFormatData(
                FormatDataResponse::new_error(),
            ));
        }
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        self.inner.on_format_data_response(response);
    }

    fn on_file_contents_request(&mut self, request: FileContentsRequest) {
        self.inner.on_file_contents_request(request);
    }

    fn on_file_contents_response(&mut self, response: FileContentsResponse<'_>) {
        self.inner.on_file_contents_response(response);
    }

    fn on_lock(&mut self, data_id: LockDataId) {
        self.inner.on_lock(data_id);
    }

    fn on_unlock(&mut self, data_id: LockDataId) {
        self.inner.on_unlock(data_id);
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

#[cfg(test)]
mod tests {
    use ironrdp_cliprdr::pdu::ClipboardFormatId;

    use super::*;

    fn copy() -> ClipboardMessage {
        ClipboardMessage::SendInitiateCopy(vec![ClipboardFormat::new(
            ClipboardFormatId::CF_UNICODETEXT,
        )])
    }

    fn offered(message: Option<ClipboardMessage>) -> Option<usize> {
        match message {
            Some(ClipboardMessage::SendInitiateCopy(formats)) => Some(formats.len()),
            Some(_) => Some(usize::MAX),
            None => None,
        }
    }

    #[test]
    fn what_was_copied_before_the_session_is_never_offered() {
        let mut gate = Gate::default();
        gate.focus(true);
        // The backend's first announcement: what the clipboard held at connection.
        assert_eq!(offered(gate.outgoing(copy())), Some(0));
        // A copy made afterwards, with focus: offered.
        assert_eq!(offered(gate.outgoing(copy())), Some(1));
    }

    #[test]
    fn only_what_was_offered_is_ever_given_and_only_with_focus() {
        #[derive(Debug, Default)]
        struct Spy(Arc<Mutex<usize>>);
        impl ironrdp_core::AsAny for Spy {
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
        }
        impl CliprdrBackend for Spy {
            fn temporary_directory(&self) -> &str {
                ""
            }
            fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
                ClipboardGeneralCapabilityFlags::empty()
            }
            fn on_ready(&mut self) {}
            fn on_request_format_list(&mut self) {}
            fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}
            fn on_remote_copy(&mut self, _: &[ClipboardFormat]) {}
            fn on_format_data_request(&mut self, _: FormatDataRequest) {
                *self.0.lock().unwrap() += 1;
            }
            fn on_format_data_response(&mut self, _: FormatDataResponse<'_>) {}
            fn on_file_contents_request(&mut self, _: FileContentsRequest) {}
            fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}
            fn on_lock(&mut self, _: LockDataId) {}
            fn on_unlock(&mut self, _: LockDataId) {}
        }
        let given = Arc::new(Mutex::new(0));
        let mut gate = Gate::default();
        let (refusals, mut refused) = mpsc::unbounded_channel();
        let mut backend = FocusGated {
            inner: Box::new(Spy(Arc::clone(&given))),
            focused: Arc::clone(&gate.focused),
            offered: Arc::clone(&gate.offered),
            refusals,
        };
        let text = || FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        };
        gate.focus(true);
        // What the clipboard held before the session: announced empty, so asked for in vain.
        gate.outgoing(copy());
        backend.on_format_data_request(text());
        assert_eq!(*given.lock().unwrap(), 0);
        assert!(matches!(
            refused.try_recv(),
            Ok(ClipboardMessage::SendFormatData(_))
        ));
        // Offered, asked for with focus: given.
        gate.outgoing(copy());
        backend.on_format_data_request(text());
        assert_eq!(*given.lock().unwrap(), 1);
        // Asked for while the user works elsewhere: refused.
        gate.focus(false);
        backend.on_format_data_request(text());
        assert_eq!(*given.lock().unwrap(), 1);
        assert!(refused.try_recv().is_ok());
    }

    #[test]
    fn a_copy_made_elsewhere_waits_for_the_windows_focus() {
        let mut gate = Gate::default();
        assert_eq!(offered(gate.outgoing(copy())), Some(0));
        // Copied in another program: nothing goes yet.
        assert_eq!(offered(gate.outgoing(copy())), None);
        assert_eq!(offered(gate.focus(false)), None);
        // The user turns to the session: now it is offered, once.
        assert_eq!(offered(gate.focus(true)), Some(1));
        assert_eq!(offered(gate.focus(true)), None);
    }
}
