//! The macOS clipboard (NSPasteboard) as a CLIPRDR backend: text both ways.
//!
//! IronRDP's native clipboard crate serves Windows and Linux only, so this one is ecsrdp's.
//! macOS announces no pasteboard changes, so a thread reads the pasteboard's change count four
//! times a second (as clipboard managers do: the count is one integer, no data is read) and
//! tells the session when another program copied text. What the session copies is fetched at
//! once and put on the pasteboard as a string: a promise kept until a program pastes would need
//! an Objective-C class of our own.
//!
//! UNTESTED: type-checked on Linux for `x86_64-apple-darwin` (a crate of these files alone), never
//! run: this project has no Mac. Check copying both ways against a Windows server on a Mac when
//! changing it.

use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend};
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
};
use ironrdp_core::{impl_as_any, IntoOwned as _};
use objc2::rc::autoreleasepool;
use objc2_app_kit::{NSPasteboard, NSPasteboardTypeString};
use objc2_foundation::NSString;
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

/// How often the watcher reads the change count.
const POLL: Duration = Duration::from_millis(250);
/// The most text taken from the session, in UTF-16 bytes (8 Mi characters).
const MAX_TEXT: usize = 16 << 20;

/// Watches the pasteboard; dropping it stops the watcher.
pub struct Pasteboard {
    state: Arc<State>,
    sender: UnboundedSender<ClipboardMessage>,
}

#[derive(Debug, Default)]
struct State {
    /// The change count our own last write left, which is not announced back to the session.
    written: AtomicIsize,
    stop: AtomicBool,
}

impl Pasteboard {
    pub fn new(sender: UnboundedSender<ClipboardMessage>) -> Result<Pasteboard, String> {
        let state = Arc::new(State::default());
        let (watched, announce) = (state.clone(), sender.clone());
        std::thread::Builder::new()
            .name("pasteboard".into())
            .spawn(move || watch(&watched, &announce))
            .map_err(|e| format!("cannot start the pasteboard's thread: {e}"))?;
        Ok(Pasteboard { state, sender })
    }

    pub fn backend(&self) -> Box<dyn CliprdrBackend> {
        Box::new(PasteboardBackend {
            state: self.state.clone(),
            sender: self.sender.clone(),
        })
    }
}

impl Drop for Pasteboard {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// The watcher's loop: announces text whenever another program changed the pasteboard.
fn watch(state: &State, announce: &UnboundedSender<ClipboardMessage>) {
    let mut seen = change_count();
    while !state.stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let now = change_count();
        if now == seen {
            continue;
        }
        seen = now;
        if now != state.written.load(Ordering::Relaxed) && announce.send(copied()).is_err() {
            return; // The session has ended.
        }
    }
}

fn unicode_text() -> ClipboardFormat {
    ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)
}

/// What the pasteboard offers the session: text, or nothing (a copy of something else still
/// replaces what the session had from here).
fn copied() -> ClipboardMessage {
    let formats = if text().is_some() {
        vec![unicode_text()]
    } else {
        Vec::new()
    };
    ClipboardMessage::SendInitiateCopy(formats)
}

fn change_count() -> isize {
    // SAFETY: NSPasteboard may be used from any thread; the pool frees what AppKit autoreleases
    // on a thread that has no run loop.
    autoreleasepool(|_| unsafe { NSPasteboard::generalPasteboard().changeCount() })
}

fn text() -> Option<String> {
    // SAFETY: as in `change_count`.
    autoreleasepool(|_| unsafe {
        let pasteboard = NSPasteboard::generalPasteboard();
        pasteboard
            .stringForType(NSPasteboardTypeString)
            .map(|text| text.to_string())
    })
}

/// Replaces the pasteboard's contents with `text`; returns the change count that left.
fn set_text(text: &str) -> Option<isize> {
    // SAFETY: as in `change_count`.
    autoreleasepool(|_| unsafe {
        let pasteboard = NSPasteboard::generalPasteboard();
        pasteboard.clearContents();
        let written =
            pasteboard.setString_forType(&NSString::from_str(text), NSPasteboardTypeString);
        written.then(|| pasteboard.changeCount())
    })
}

/// The session's side: answers its requests and takes what it copies.
#[derive(Debug)]
struct PasteboardBackend {
    state: Arc<State>,
    sender: UnboundedSender<ClipboardMessage>,
}

impl_as_any!(PasteboardBackend);

impl PasteboardBackend {
    fn send(&self, message: ClipboardMessage) {
        // The session has ended: nobody is left to paste into.
        let _ = self.sender.send(message);
    }
}

impl CliprdrBackend for PasteboardBackend {
    fn temporary_directory(&self) -> &str {
        // Never used: files are not shared through the clipboard.
        ".cliprdr"
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {
        self.send(copied());
    }

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let unicode = ClipboardFormatId::CF_UNICODETEXT;
        if available_formats
            .iter()
            .any(|format| format.id() == unicode)
        {
            self.send(ClipboardMessage::SendInitiatePaste(unicode));
        }
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        let text = (request.format == ClipboardFormatId::CF_UNICODETEXT)
            .then(text)
            .flatten();
        let response = match text {
            Some(text) => {
                let units = text.encode_utf16().chain([0]);
                let bytes: Vec<u8> = units.flat_map(u16::to_le_bytes).collect();
                FormatDataResponse::new_data(bytes)
            }
            None => FormatDataResponse::new_error(),
        };
        self.send(ClipboardMessage::SendFormatData(response.into_owned()));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let data = response.data();
        if response.is_error() || data.len() > MAX_TEXT {
            debug!(bytes = data.len(), "the session's text was not taken");
            return;
        }
        let units = data
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        let text =
            String::from_utf16_lossy(&units.take_while(|&unit| unit != 0).collect::<Vec<_>>());
        if let Some(count) = set_text(&text) {
            self.state.written.store(count, Ordering::Relaxed);
        }
    }

    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}
