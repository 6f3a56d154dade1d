//! The session's side: its copy, served to local programs while ecsrdp owns the selection.

use std::time::Instant;

use ironrdp_cliprdr::backend::ClipboardMessage;
use ironrdp_cliprdr::pdu::ClipboardFormatId;
use tracing::{debug, warn};
use x11rb::connection::RequestConnection as _;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, PropMode,
    SelectionNotifyEvent, SelectionRequestEvent, Timestamp, Window, SELECTION_NOTIFY_EVENT,
};
use x11rb::wrapper::ConnectionExt as _;
use x11rb::NONE;

use super::super::formats::{self, Encoding, Kind};
use super::{
    Asked, Selection, Sending, Waiting, XResult, CHUNK, FORGET_ASKED, MAX_SENDING, MAX_WAITING,
    STALL,
};

impl Selection {
    pub(super) fn remote_copied(&mut self, formats: Vec<ClipboardFormatId>) -> XResult<()> {
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
        if !self.taking {
            // Taken again even when ecsrdp owns it, so that programs watching the clipboard
            // (history managers) see a new copy. The server's time for the ownership arrives
            // as this property's change.
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
    pub(super) fn forget_remote(&mut self) -> XResult<()> {
        self.generation += 1;
        self.remote.clear();
        self.cache.clear();
        for waiting in std::mem::take(&mut self.waiting) {
            self.notify(&waiting.request, NONE)?;
        }
        Ok(())
    }

    pub(super) fn take_ownership(&mut self, time: Timestamp) -> XResult<()> {
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

    pub(super) fn requested(&mut self, request: SelectionRequestEvent) -> XResult<()> {
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
    pub(super) fn ask(&mut self) {
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
            deadline: Instant::now() + FORGET_ASKED,
        });
        let _ = self
            .to_session
            .send(ClipboardMessage::SendInitiatePaste(format));
    }

    pub(super) fn remote_data(&mut self, data: Option<Vec<u8>>) -> XResult<()> {
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

    pub(super) fn deliver(
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
        } else if self.sending.len() >= MAX_SENDING {
            return self.notify(request, NONE);
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

    /// Stops the property events of a requestor's window once no increment goes to it.
    pub(super) fn stop_watching(&self, window: Window) -> XResult<()> {
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
    pub(super) fn notify(&self, request: &SelectionRequestEvent, property: Atom) -> XResult<()> {
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
