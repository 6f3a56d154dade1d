//! The X11 `CLIPBOARD` selection, driven by events: XFixes says when another program takes it,
//! a conversion reads what it holds only when the server asks, and while the session's copy is
//! on offer ecsrdp owns the selection and fetches the data only when a local program pastes.
//! Transfers larger than one request go in increments (ICCCM's `INCR`), both ways.
//!
//! Nothing here waits: every step is a request whose answer comes back as an event, so the
//! thread that drives it ([`super`]) sleeps until the display or the session has something.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ironrdp_cliprdr::backend::ClipboardMessage;
use ironrdp_cliprdr::pdu::ClipboardFormatId;
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, Property, PropertyNotifyEvent,
    SelectionRequestEvent, Timestamp, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

mod local;
mod remote;

use super::formats::{self, Encoding, Kind};

/// How long a step may stay unanswered (a conversion, the server's data, the next increment)
/// before it is given up: a program that stopped answering must not hold a paste forever.
const STALL: Duration = Duration::from_secs(5);
/// Local programs waiting for the session's data at once; more are refused.
const MAX_WAITING: usize = 16;
/// Pastes going out in increments at once; more are refused.
const MAX_SENDING: usize = 16;
/// The server's requests for the local clipboard queued behind the one being read.
const MAX_QUEUED_RENDERS: usize = 4;
/// How long a question to the server stays outstanding without an answer.
const FORGET_ASKED: Duration = Duration::from_secs(30);
/// The largest property written in one request; more goes in increments.
const CHUNK: usize = 256 * 1024;

pub type XResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

x11rb::atom_manager! {
    pub Atoms: AtomsCookie {
        CLIPBOARD,
        TARGETS,
        TIMESTAMP,
        INCR,
        TEXT,
        UTF8_STRING,
        // Where conversions of the local selection land, on ecsrdp's own window.
        ECSRDP_SELECTION,
        // Appended to (with nothing) for a server time to own the selection from (ICCCM 2.1).
        ECSRDP_TIME,
    }
}

/// What the session asks of the local clipboard, from the CLIPRDR backend.
#[derive(Debug)]
pub enum Command {
    /// A new channel: nothing of the last one's offers holds.
    Reset,
    /// The server asks what the local clipboard holds (once the channel is up).
    AdvertiseLocal,
    /// The session copied these formats.
    RemoteCopy(Vec<ClipboardFormatId>),
    /// The server's answer to the last paste asked of it (`None`: it refused).
    RemoteData(Option<Vec<u8>>),
    /// A program in the session pastes the local clipboard in this format.
    RenderLocal(ClipboardFormatId),
}

/// A read of the local selection, queued until the one before it ends (they share a property).
#[derive(Debug, Clone, Copy)]
enum Want {
    Targets,
    Render(ClipboardFormatId),
}

#[derive(Debug)]
struct Read {
    want: Want,
    target: Atom,
    encoding: Option<Encoding>,
    /// Set once the owner answered `INCR`: the increments so far.
    increments: Option<Vec<u8>>,
    deadline: Instant,
    /// Asked for a connection that has since ended: read to the end, then dropped.
    stale: bool,
}

/// The server asked for one format's data; MS-RDPECLIP's answer names no request, so only one
/// is ever outstanding, and it stays outstanding after its waiters gave up, until answered or
/// until [`FORGET_ASKED`] (a server that never answers must not block every later paste).
#[derive(Debug)]
struct Asked {
    format: ClipboardFormatId,
    generation: u64,
    deadline: Instant,
}

/// A local program's paste waiting for the session's data.
#[derive(Debug)]
struct Waiting {
    request: SelectionRequestEvent,
    property: Atom,
    encoding: Encoding,
    deadline: Instant,
}

/// A paste going to a local program in increments.
#[derive(Debug)]
struct Sending {
    data: Vec<u8>,
    offset: usize,
    kind: Atom,
    deadline: Instant,
}

pub struct Selection {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    /// The targets ecsrdp reads and serves, interned.
    targets: Vec<(Atom, Encoding)>,
    to_session: UnboundedSender<ClipboardMessage>,
    /// The server has asked for the local formats: the channel is up.
    ready: bool,
    // The local owner's side.
    local_kinds: Vec<(Atom, Encoding)>,
    reading: Option<Read>,
    queued: VecDeque<Want>,
    // The session's side, served to local programs while ecsrdp owns the selection.
    remote: Vec<ClipboardFormatId>,
    generation: u64,
    owns: bool,
    taking: bool,
    owned_since: Timestamp,
    cache: HashMap<Kind, Vec<u8>>,
    asked: Option<Asked>,
    waiting: Vec<Waiting>,
    sending: HashMap<(Window, Atom), Sending>,
}

impl Selection {
    /// Connects to the display, makes ecsrdp's (unmapped) window and subscribes to the
    /// selection's changes.
    pub fn open(to_session: UnboundedSender<ClipboardMessage>) -> XResult<Selection> {
        let (conn, screen) = x11rb::connect(None)?;
        conn.xfixes_query_version(5, 0)?.reply()?;
        let atoms = Atoms::new(&conn)?.reply()?;
        let mut targets = Vec::new();
        for (name, encoding) in formats::TARGETS {
            targets.push((
                conn.intern_atom(false, name.as_bytes())?.reply()?.atom,
                encoding,
            ));
        }
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id()?;
        conn.create_window(
            0,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        conn.xfixes_select_selection_input(
            window,
            atoms.CLIPBOARD,
            SelectionEventMask::SET_SELECTION_OWNER
                | SelectionEventMask::SELECTION_WINDOW_DESTROY
                | SelectionEventMask::SELECTION_CLIENT_CLOSE,
        )?;
        let owner = conn.get_selection_owner(atoms.CLIPBOARD)?.reply()?.owner;
        let mut selection = Selection {
            conn,
            window,
            atoms,
            targets,
            to_session,
            ready: false,
            local_kinds: Vec::new(),
            reading: None,
            queued: VecDeque::new(),
            remote: Vec::new(),
            generation: 0,
            owns: false,
            taking: false,
            owned_since: CURRENT_TIME,
            cache: HashMap::new(),
            asked: None,
            waiting: Vec::new(),
            sending: HashMap::new(),
        };
        selection.owner_changed(owner)?;
        selection.conn.flush()?;
        Ok(selection)
    }

    pub fn connection(&self) -> &RustConnection {
        &self.conn
    }

    /// Handles every event the display has sent, then sends what that asked for. A flush that
    /// would block makes x11rb read what the display sent meanwhile into its own queue, where
    /// `poll` on the socket cannot see it, so the queue is looked at again after each flush.
    pub fn drain_events(&mut self) -> XResult<()> {
        loop {
            while let Some(event) = self.conn.poll_for_event()? {
                self.event(event)?;
            }
            self.conn.flush()?;
            match self.conn.poll_for_event()? {
                Some(event) => self.event(event)?,
                None => return Ok(()),
            }
        }
    }

    /// The next moment something times out, if anything waits.
    pub fn deadline(&self) -> Option<Instant> {
        let reading = self.reading.iter().map(|r| r.deadline);
        let asked = self.asked.iter().map(|a| a.deadline);
        let waiting = self.waiting.iter().map(|w| w.deadline);
        let sending = self.sending.values().map(|s| s.deadline);
        reading.chain(asked).chain(waiting).chain(sending).min()
    }

    pub fn command(&mut self, command: Command) -> XResult<()> {
        match command {
            Command::Reset => {
                self.ready = false;
                self.asked = None;
                // What the last connection's server asked for goes to nobody.
                self.queued.retain(|want| !matches!(want, Want::Render(_)));
                if let Some(read) = &mut self.reading {
                    read.stale = matches!(read.want, Want::Render(_));
                }
                self.remote_copied(Vec::new())?;
            }
            Command::AdvertiseLocal => {
                self.ready = true;
                if self.owns {
                    // The channel starts only once a format list went: an empty one.
                    let _ = self
                        .to_session
                        .send(ClipboardMessage::SendInitiateCopy(Vec::new()));
                } else {
                    self.want(Want::Targets)?;
                }
            }
            Command::RemoteCopy(formats) => self.remote_copied(formats)?,
            Command::RemoteData(data) => self.remote_data(data)?,
            Command::RenderLocal(format) => self.want(Want::Render(format))?,
        }
        Ok(())
    }

    /// Gives up whatever waited too long.
    pub fn expire(&mut self, now: Instant) -> XResult<()> {
        if self.reading.as_ref().is_some_and(|r| r.deadline <= now) {
            debug!("the local clipboard's owner did not answer in time");
            self.finish_read(Err("the owner did not answer".into()))?;
        }
        if self.asked.as_ref().is_some_and(|a| a.deadline <= now) {
            debug!("the server never sent the clipboard data asked for");
            self.asked = None;
            self.ask();
        }
        let (late, kept): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|w| w.deadline <= now);
        self.waiting = kept;
        for waiting in late {
            self.notify(&waiting.request, NONE)?;
        }
        let stalled: Vec<_> = self
            .sending
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in stalled {
            debug!("a local program stopped taking a paste");
            self.sending.remove(&key);
            self.stop_watching(key.0)?;
        }
        Ok(())
    }

    fn event(&mut self, event: Event) -> XResult<()> {
        match event {
            Event::XfixesSelectionNotify(e) if e.selection == self.atoms.CLIPBOARD => {
                self.owner_changed(e.owner)
            }
            Event::SelectionNotify(e) if e.requestor == self.window => self.converted(e),
            Event::SelectionRequest(e) => self.requested(e),
            Event::SelectionClear(e) if e.selection == self.atoms.CLIPBOARD => {
                debug!("another program took the clipboard from the session's copy");
                self.owns = false;
                if self.taking {
                    // A newer copy from the session is being put on the clipboard: it stays.
                    return Ok(());
                }
                self.forget_remote()
            }
            Event::PropertyNotify(e) => self.property(e),
            _ => Ok(()),
        }
    }

    fn property(&mut self, event: PropertyNotifyEvent) -> XResult<()> {
        let new_value = event.state == Property::NEW_VALUE;
        if event.window == self.window {
            if event.atom == self.atoms.ECSRDP_TIME && new_value && self.taking {
                return self.take_ownership(event.time);
            }
            let incremental = self
                .reading
                .as_ref()
                .is_some_and(|r| r.increments.is_some());
            if event.atom == self.atoms.ECSRDP_SELECTION && new_value && incremental {
                return self.next_increment();
            }
            return Ok(());
        }
        if event.state != Property::DELETE {
            return Ok(());
        }
        let key = (event.window, event.atom);
        let chunk = CHUNK.min(self.conn.maximum_request_bytes().saturating_sub(64));
        let Some(sending) = self.sending.get_mut(&key) else {
            return Ok(());
        };
        let end = (sending.offset + chunk).min(sending.data.len());
        let piece = &sending.data[sending.offset..end];
        let last = piece.is_empty();
        self.conn
            .change_property8(PropMode::REPLACE, key.0, key.1, sending.kind, piece)?;
        sending.offset = end;
        sending.deadline = Instant::now() + STALL;
        if last {
            self.sending.remove(&key);
            self.stop_watching(key.0)?;
        }
        Ok(())
    }
}
