//! The local owner's side: what it offers, read only when the server asks.

use std::time::Instant;

use ironrdp_cliprdr::backend::ClipboardMessage;
use ironrdp_cliprdr::pdu::{ClipboardFormatId, FormatDataResponse};
use tracing::debug;
use x11rb::protocol::xproto::{Atom, AtomEnum, ConnectionExt as _, SelectionNotifyEvent, Window};
use x11rb::{CURRENT_TIME, NONE};

use super::super::formats::{self, Encoding, Kind, MAX_TRANSFER};
use super::{Read, Selection, Want, XResult, MAX_QUEUED_RENDERS, STALL};

impl Selection {
    pub(super) fn owner_changed(&mut self, owner: Window) -> XResult<()> {
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

    pub(super) fn announce(&self) {
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

    pub(super) fn want(&mut self, want: Want) -> XResult<()> {
        // A server asks one format at a time; one that floods is answered with refusals,
        // not with a conversion (up to 100 MiB) each.
        if let Want::Render(format) = want {
            let renders = self.queued.iter().filter(|w| matches!(w, Want::Render(_)));
            if renders.count() >= MAX_QUEUED_RENDERS {
                self.render_failed(format, "the server asked for too much at once");
                return Ok(());
            }
        }
        self.queued.push_back(want);
        self.read_next()
    }

    pub(super) fn read_next(&mut self) -> XResult<()> {
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
                target,
                encoding,
                increments: None,
                deadline: Instant::now() + STALL,
                stale: false,
            });
        }
        Ok(())
    }

    pub(super) fn converted(&mut self, event: SelectionNotifyEvent) -> XResult<()> {
        let Some(read) = &self.reading else {
            return Ok(());
        };
        // A late answer to a read given up on (its target differs, or it is an increment read's
        // second answer) is not this read's.
        if event.selection != self.atoms.CLIPBOARD
            || event.target != read.target
            || read.increments.is_some()
        {
            if event.property != NONE {
                self.conn.delete_property(self.window, event.property)?;
            }
            return Ok(());
        }
        if event.property == NONE {
            return self.finish_read(Err("the owner refused the conversion".into()));
        }
        let reply = self.take_property()?;
        if reply.bytes_after > 0 {
            return self.finish_read(Err("the local clipboard is larger than 100 MiB".into()));
        }
        if reply.type_ == Atom::from(AtomEnum::STRING) {
            // An old owner answered in ISO 8859-1 whatever was asked.
            if let Some(read) = &mut self.reading {
                read.encoding = read.encoding.map(|e| match e {
                    Encoding::Utf8 => Encoding::Latin1,
                    other => other,
                });
            }
        }
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

    pub(super) fn take_property(&self) -> XResult<x11rb::protocol::xproto::GetPropertyReply> {
        let reply = self
            .conn
            .get_property(
                true,
                self.window,
                self.atoms.ECSRDP_SELECTION,
                AtomEnum::ANY,
                0,
                // In 4-byte units: a property over 100 MiB leaves bytes after it.
                (MAX_TRANSFER / 4 + 1) as u32,
            )?
            .reply()?;
        Ok(reply)
    }

    pub(super) fn next_increment(&mut self) -> XResult<()> {
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

    pub(super) fn finish_read(&mut self, result: Result<Vec<u8>, String>) -> XResult<()> {
        let Some(read) = self.reading.take() else {
            return Ok(());
        };
        if read.stale {
            // Asked on a connection that has ended: nobody is waiting for it.
            return self.read_next();
        }
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

    pub(super) fn render_failed(&self, format: ClipboardFormatId, error: &str) {
        debug!(?format, error, "the local clipboard was not sent");
        let response = FormatDataResponse::new_error();
        let _ = self
            .to_session
            .send(ClipboardMessage::SendFormatData(response));
    }
}
