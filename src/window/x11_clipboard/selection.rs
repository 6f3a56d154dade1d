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
use ironrdp_cliprdr::pdu::{ClipboardFormatId, FormatDataResponse};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask,
    PropMode, Property, PropertyNotifyEvent, SelectionNotifyEvent, SelectionRequestEvent,
    Timestamp, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

use super::formats::{self, Encoding, Kind, MAX_TRANSFER};

/// How long a step may stay unanswered (a conversion, the server's data, the next increment)
/// before it is given up: a program that stopped answering must not hold a paste forever.
const STALL: Duration = Duration::from_secs(5);
/// Local programs waiting for the session's data at once; more are refused.
const MAX_WAITING: usize = 16;
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
    encoding: Option<Encoding>,
    /// Set once the owner answered `INCR`: the increments so far.
    increments: Option<Vec<u8>>,
    deadline: Instant,
}

/// The server asked for one format's data; MS-RDPECLIP's answer names no request, so only one
/// is ever outstanding, and it stays outstanding until answered even when its waiters gave up.
#[derive(Debug)]
struct Asked {
    format: ClipboardFormatId,
    generation: u64,
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

    /// Handles every event the display has sent, then sends what that asked for.
    pub fn drain_events(&mut self) -> XResult<()> {
        while let Some(event) = self.conn.poll_for_event()? {
            self.event(event)?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// The next moment something times out, if anything waits.
    pub fn deadline(&self) -> Option<Instant> {
        let reading = self.reading.iter().map(|r| r.deadline);
        let waiting = self.waiting.iter().map(|w| w.deadline);
        let sending = self.sending.values().map(|s| s.deadline);
        reading.chain(waiting).chain(sending).min()
    }

    pub fn command(&mut self, command: Command) -> XResult<()> {
        match command {
            Command::Reset => {
                self.ready = false;
                self.asked = None;
                self.remote_copied(Vec::new())?;
            }
            Command::AdvertiseLocal => {
                self.ready = true;
                if !self.owns {
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
                self.forget_remote()
            }
            Event::PropertyNotify(e) => self.property(e),
            _ => Ok(()),
        }
    }

    // The local owner's side.

    fn owner_changed(&mut self, owner: Window) -> XResult<()> {
        if owner == self.window {
            return Ok(());
        }
        self.local_kinds.clear();
        self.queued.retain(|want| !matches!(want, Want::Targets));
        if owner == NONE {
            self.announce();
            return Ok(());
        }
        self.want(Want::Targets)
    }

    fn announce(&self) {
        if !self.ready || self.owns {
            return;
        }
        let kinds: Vec<Kind> = self.local_kinds.iter().map(|(_, e)| e.kind()).collect();
        let _ = self
            .to_session
            .send(ClipboardMessage::SendInitiateCopy(formats::announced(
                &kinds,
            )));
    }

    fn want(&mut self, want: Want) -> XResult<()> {
        self.queued.push_back(want);
        self.read_next()
    }

    fn read_next(&mut self) -> XResult<()> {
        while self.reading.is_none() {
            let Some(want) = self.queued.pop_front() else {
                return Ok(());
            };
            let (target, encoding) = match want {
                Want::Targets => (self.atoms.TARGETS, None),
                Want::Render(format) => {
                    let kind = formats::kind_of(format);
                    let found = self
                        .local_kinds
                        .iter()
                        .find(|(_, e)| Some(e.kind()) == kind);
                    match (found, self.owns) {
                        (Some(&(target, encoding)), false) => (target, Some(encoding)),
                        _ => {
                            self.render_failed(format, "the local clipboard has no such format");
                            continue;
                        }
                    }
                }
            };
            self.conn.convert_selection(
                self.window,
                self.atoms.CLIPBOARD,
                target,
                self.atoms.ECSRDP_SELECTION,
                CURRENT_TIME,
            )?;
            self.reading = Some(Read {
                want,
                encoding,
                increments: None,
                deadline: Instant::now() + STALL,
            });
        }
        Ok(())
    }

    fn converted(&mut self, event: SelectionNotifyEvent) -> XResult<()> {
        if self.reading.is_none() || event.selection != self.atoms.CLIPBOARD {
            return Ok(());
        }
        if event.property == NONE {
            return self.finish_read(Err("the owner refused the conversion".into()));
        }
        let reply = self.take_property()?;
        if reply.type_ == self.atoms.INCR {
            // Deleting the property (done) tells the owner to send the first increment.
            if let Some(read) = &mut self.reading {
                read.increments = Some(Vec::new());
                read.deadline = Instant::now() + STALL;
            }
            return Ok(());
        }
        self.finish_read(Ok(reply.value))
    }

    fn take_property(&self) -> XResult<x11rb::protocol::xproto::GetPropertyReply> {
        let reply = self
            .conn
            .get_property(
                true,
                self.window,
                self.atoms.ECSRDP_SELECTION,
                AtomEnum::ANY,
                0,
                u32::MAX / 4,
            )?
            .reply()?;
        Ok(reply)
    }

    fn next_increment(&mut self) -> XResult<()> {
        let chunk = self.take_property()?.value;
        let Some(read) = &mut self.reading else {
            return Ok(());
        };
        let Some(increments) = &mut read.increments else {
            return Ok(());
        };
        if chunk.is_empty() {
            let data = std::mem::take(increments);
            return self.finish_read(Ok(data));
        }
        if increments.len() + chunk.len() > MAX_TRANSFER {
            return self.finish_read(Err("the local clipboard is larger than 100 MiB".into()));
        }
        increments.extend_from_slice(&chunk);
        read.deadline = Instant::now() + STALL;
        Ok(())
    }

    fn finish_read(&mut self, result: Result<Vec<u8>, String>) -> XResult<()> {
        let Some(read) = self.reading.take() else {
            return Ok(());
        };
        match read.want {
            Want::Targets => {
                let atoms: Vec<Atom> = result
                    .unwrap_or_default()
                    .chunks_exact(4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                // Best first within a kind, one target per kind.
                self.local_kinds.clear();
                for &(atom, encoding) in &self.targets {
                    let kind = encoding.kind();
                    if atoms.contains(&atom)
                        && !self.local_kinds.iter().any(|(_, e)| e.kind() == kind)
                    {
                        self.local_kinds.push((atom, encoding));
                    }
                }
                self.announce();
            }
            Want::Render(format) => {
                let encoding = read.encoding.unwrap_or(Encoding::Utf8);
                match result.and_then(|data| formats::to_remote(format, encoding, &data)) {
                    Ok(data) => {
                        let response = FormatDataResponse::new_data(data);
                        let _ = self
                            .to_session
                            .send(ClipboardMessage::SendFormatData(response));
                    }
                    Err(error) => self.render_failed(format, &error),
                }
            }
        }
        self.read_next()
    }

    fn render_failed(&self, format: ClipboardFormatId, error: &str) {
        debug!(?format, error, "the local clipboard was not sent");
        let response = FormatDataResponse::new_error();
        let _ = self
            .to_session
            .send(ClipboardMessage::SendFormatData(response));
    }

    // The session's side.

    fn remote_copied(&mut self, formats: Vec<ClipboardFormatId>) -> XResult<()> {
        self.forget_remote()?;
        self.remote = formats
            .into_iter()
            .filter(|f| formats::kind_of(*f).is_some())
            .collect();
        if self.remote.is_empty() {
            if self.owns {
                // Nothing to serve any more: the session's copy leaves the local clipboard.
                self.owns = false;
                self.conn
                    .set_selection_owner(NONE, self.atoms.CLIPBOARD, self.owned_since)?;
            }
            return Ok(());
        }
        if !self.owns && !self.taking {
            // The server's time for the ownership arrives as this property's change.
            self.taking = true;
            self.conn.change_property8(
                PropMode::APPEND,
                self.window,
                self.atoms.ECSRDP_TIME,
                AtomEnum::STRING,
                &[],
            )?;
        }
        Ok(())
    }

    /// What the session offered no longer holds: its cached data, and the pastes waiting on it.
    fn forget_remote(&mut self) -> XResult<()> {
        self.generation += 1;
        self.remote.clear();
        self.cache.clear();
        for waiting in std::mem::take(&mut self.waiting) {
            self.notify(&waiting.request, NONE)?;
        }
        Ok(())
    }

    fn take_ownership(&mut self, time: Timestamp) -> XResult<()> {
        self.taking = false;
        if self.remote.is_empty() {
            return Ok(());
        }
        self.conn
            .set_selection_owner(self.window, self.atoms.CLIPBOARD, time)?;
        let owner = self
            .conn
            .get_selection_owner(self.atoms.CLIPBOARD)?
            .reply()?
            .owner;
        self.owns = owner == self.window;
        if self.owns {
            self.owned_since = time;
            self.local_kinds.clear();
        } else {
            warn!("the display did not give the clipboard to the session's copy");
        }
        Ok(())
    }

    fn requested(&mut self, request: SelectionRequestEvent) -> XResult<()> {
        // Obsolete requestors name no property: the target is the property (ICCCM 2.2).
        let property = if request.property == NONE {
            request.target
        } else {
            request.property
        };
        if !self.owns || request.selection != self.atoms.CLIPBOARD {
            return self.notify(&request, NONE);
        }
        let kinds: Vec<Kind> = self
            .remote
            .iter()
            .filter_map(|f| formats::kind_of(*f))
            .collect();
        if request.target == self.atoms.TARGETS {
            let mut list = vec![self.atoms.TARGETS, self.atoms.TIMESTAMP];
            list.extend(
                self.targets
                    .iter()
                    .filter(|(_, e)| kinds.contains(&e.kind()))
                    .map(|(atom, _)| *atom),
            );
            self.conn.change_property32(
                PropMode::REPLACE,
                request.requestor,
                property,
                AtomEnum::ATOM,
                &list,
            )?;
            return self.notify(&request, property);
        }
        if request.target == self.atoms.TIMESTAMP {
            self.conn.change_property32(
                PropMode::REPLACE,
                request.requestor,
                property,
                AtomEnum::INTEGER,
                &[self.owned_since],
            )?;
            return self.notify(&request, property);
        }
        let encoding = self
            .targets
            .iter()
            .find(|(atom, e)| *atom == request.target && kinds.contains(&e.kind()))
            .map(|(_, e)| *e);
        let Some(encoding) = encoding else {
            return self.notify(&request, NONE);
        };
        if let Some(data) = self.cache.get(&encoding.kind()) {
            let data = data.clone();
            return self.deliver(&request, property, encoding, &data);
        }
        if self.waiting.len() >= MAX_WAITING {
            return self.notify(&request, NONE);
        }
        self.waiting.push(Waiting {
            request,
            property,
            encoding,
            deadline: Instant::now() + STALL,
        });
        self.ask();
        Ok(())
    }

    /// Asks the server for what the first waiting paste needs, unless a question is out.
    fn ask(&mut self) {
        if self.asked.is_some() {
            return;
        }
        let Some(waiting) = self.waiting.first() else {
            return;
        };
        let Some(format) = formats::remote_format(waiting.encoding.kind(), &self.remote) else {
            return;
        };
        self.asked = Some(Asked {
            format,
            generation: self.generation,
        });
        let _ = self
            .to_session
            .send(ClipboardMessage::SendInitiatePaste(format));
    }

    fn remote_data(&mut self, data: Option<Vec<u8>>) -> XResult<()> {
        let Some(asked) = self.asked.take() else {
            debug!("the server sent clipboard data nobody asked for");
            return Ok(());
        };
        let Some(kind) = formats::kind_of(asked.format) else {
            return Ok(());
        };
        if asked.generation == self.generation && self.owns {
            let decoded = data
                .ok_or_else(|| "the server refused".to_owned())
                .and_then(|data| formats::from_remote(asked.format, &data));
            let (served, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|w| w.encoding.kind() == kind);
            self.waiting = kept;
            match decoded {
                Ok(data) => {
                    for waiting in &served {
                        self.deliver(&waiting.request, waiting.property, waiting.encoding, &data)?;
                    }
                    self.cache.insert(kind, data);
                }
                Err(error) => {
                    debug!(error, "the session's clipboard was not pasted");
                    for waiting in &served {
                        self.notify(&waiting.request, NONE)?;
                    }
                }
            }
        }
        self.ask();
        Ok(())
    }

    fn deliver(
        &mut self,
        request: &SelectionRequestEvent,
        property: Atom,
        encoding: Encoding,
        data: &[u8],
    ) -> XResult<()> {
        let latin1;
        let (kind, bytes) = match encoding {
            Encoding::Latin1 => {
                latin1 = formats::latin1(data);
                (AtomEnum::STRING.into(), latin1.as_slice())
            }
            _ if request.target == self.atoms.TEXT => (self.atoms.UTF8_STRING, data),
            _ => (request.target, data),
        };
        let chunk = CHUNK.min(self.conn.maximum_request_bytes().saturating_sub(64));
        if bytes.len() <= chunk {
            self.conn.change_property8(
                PropMode::REPLACE,
                request.requestor,
                property,
                kind,
                bytes,
            )?;
        } else {
            // The requestor takes it in increments, each asked for by deleting the last.
            self.conn.change_window_attributes(
                request.requestor,
                &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
            )?;
            let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            self.conn.change_property32(
                PropMode::REPLACE,
                request.requestor,
                property,
                self.atoms.INCR,
                &[size],
            )?;
            self.sending.insert(
                (request.requestor, property),
                Sending {
                    data: bytes.to_vec(),
                    offset: 0,
                    kind,
                    deadline: Instant::now() + STALL,
                },
            );
        }
        self.notify(request, property)
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

    /// Stops the property events of a requestor's window once no increment goes to it.
    fn stop_watching(&self, window: Window) -> XResult<()> {
        if self.sending.keys().any(|(w, _)| *w == window) {
            return Ok(());
        }
        // The window may be gone already; the error that causes is ignored as an event.
        self.conn.change_window_attributes(
            window,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT),
        )?;
        Ok(())
    }

    /// Tells a requestor its conversion is done (`property`) or refused (`NONE`).
    fn notify(&self, request: &SelectionRequestEvent, property: Atom) -> XResult<()> {
        let event = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: request.time,
            requestor: request.requestor,
            selection: request.selection,
            target: request.target,
            property,
        };
        self.conn
            .send_event(false, request.requestor, EventMask::NO_EVENT, event)?;
        Ok(())
    }
}
