//! Surface commands (MS-RDPBCGR 2.2.9.2) are ecsrdp's where they carry RemoteFX: a fast-path
//! PDU's surface-commands updates are taken out (their fragments put together here), their
//! RemoteFX bits painted straight into the shown frame ([`RemoteFx`]), and everything else
//! handed to IronRDP's session in the order the server sent it: the other updates as they
//! came, the surface commands of other codecs re-encoded as updates of their own. The end of
//! each frame is acknowledged, as IronRDP would (its session reports a frame marker as damage
//! to the image's first pixel, which the image does not have: RemoteFX is not in it).
//!
//! Why: on a RemoteFX session, IronRDP's route from a tile to the window converted it into a
//! buffer of its own, copied it into its image and ecsrdp copied it on into the shown frame;
//! here each pixel is converted once, where it is shown (docs/performance.md).

mod dwt;
mod remotefx;
mod tile;

use std::borrow::Cow;
use std::ops::Range;

use ironrdp_core::{decode_cursor, encode_vec, ReadCursor};
use ironrdp_pdu::fast_path::{
    EncryptionFlags, FastPathHeader, FastPathUpdate, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use ironrdp_pdu::rdp::capability_sets::CODEC_ID_REMOTEFX;
use ironrdp_pdu::surface_commands::{FrameAction, SurfaceCommand};
use tracing::warn;

use self::remotefx::RemoteFx;
use crate::render::Canvas;

/// The largest surface-commands update put together from fragments. ecsrdp's multifragment
/// capability repeats the server's own maximum (IronRDP's connector; FreeRDP's servers say 16
/// MiB) or says 8 MiB; this bound is above both, and only bounds memory: a server that sends
/// more is ending the session.
const MAX_UPDATE: usize = 32 * 1024 * 1024;

/// The most data a re-encoded update for IronRDP carries per fragment: well inside a fast-path
/// PDU's 15-bit length.
const FRAGMENT: usize = 16 * 1024;

/// The session's surface-commands state: a fragmented update being put together, and the
/// RemoteFX stream's.
#[derive(Default)]
pub struct SurfaceCommands {
    pending: Option<Vec<u8>>,
    remotefx: RemoteFx,
}

/// One step of a fast-path PDU, in the order the server sent them.
pub enum Step<'a> {
    /// A fast-path PDU for IronRDP's session.
    Theirs(Vec<u8>),
    /// A whole surface-commands update, for [`commands`].
    Ours(Cow<'a, [u8]>),
}

/// One run of a surface-commands update's commands.
pub enum Command<'a> {
    /// RemoteFX data whose frames go at this point of the desktop.
    RemoteFx { at: (u32, u32), data: &'a [u8] },
    /// The end of the server's frame with this ID: it waits for the client to acknowledge it
    /// (MS-RDPBCGR 2.2.9.2.3).
    FrameEnd(u32),
    /// Fast-path PDUs with the other commands (other codecs), for IronRDP's session.
    Theirs(Vec<Vec<u8>>),
}

impl SurfaceCommands {
    /// Splits a fast-path PDU into [`Step`]s; `None` when it has no surface-commands update
    /// (or does not parse: IronRDP's session judges it whole, as it came).
    pub fn split<'a>(&mut self, pdu: &'a [u8]) -> Result<Option<Vec<Step<'a>>>, String> {
        let mut input = ReadCursor::new(pdu);
        let Ok(header) = decode_cursor::<FastPathHeader>(&mut input) else {
            return Ok(None);
        };
        let mut updates: Vec<(FastPathUpdatePdu<'a>, Range<usize>)> = Vec::new();
        // From an update that does not parse on, the PDU is IronRDP's to judge (it passes over
        // some truncated updates).
        let mut unparsed = None;
        while !input.is_empty() {
            let start = input.pos();
            let Ok(update) = decode_cursor::<FastPathUpdatePdu<'a>>(&mut input) else {
                unparsed = Some(start..pdu.len());
                break;
            };
            updates.push((update, start..input.pos()));
        }
        if !updates
            .iter()
            .any(|(u, _)| u.update_code == UpdateCode::SurfaceCommands)
        {
            return Ok(None);
        }
        let mut steps = Vec::new();
        let mut theirs: Option<Range<usize>> = None;
        for (update, bytes) in updates {
            if update.update_code != UpdateCode::SurfaceCommands {
                theirs = Some(theirs.map_or(bytes.clone(), |run| run.start..bytes.end));
                continue;
            }
            if let Some(run) = theirs.take() {
                steps.push(Step::Theirs(fast_path(header.flags, &pdu[run])));
            }
            if update.compression_flags.is_some_and(|f| !f.is_empty()) {
                return Err("the server compressed a surface update, which ecsrdp did not offer to decompress".to_owned());
            }
            let data = update.data;
            match update.fragmentation {
                Fragmentation::Single => {
                    if self.pending.take().is_some() {
                        warn!("a surface update's fragments ended without their last; dropped");
                    }
                    steps.push(Step::Ours(Cow::Borrowed(data)));
                }
                Fragmentation::First => {
                    if self.pending.replace(data.to_vec()).is_some() {
                        warn!("a surface update's fragments ended without their last; dropped");
                    }
                }
                Fragmentation::Next | Fragmentation::Last => {
                    let pending = self
                        .pending
                        .as_mut()
                        .ok_or("a fragment of a surface update came without its first")?;
                    if pending.len() + data.len() > MAX_UPDATE {
                        return Err(format!(
                            "a fragmented surface update is larger than the {} MiB ecsrdp allows",
                            MAX_UPDATE >> 20
                        ));
                    }
                    pending.extend_from_slice(data);
                    if update.fragmentation == Fragmentation::Last {
                        steps.extend(self.pending.take().map(|d| Step::Ours(Cow::Owned(d))));
                    }
                }
            }
        }
        if let Some(rest) = unparsed {
            theirs = Some(theirs.map_or(rest.clone(), |run| run.start..rest.end));
        }
        if let Some(run) = theirs {
            steps.push(Step::Theirs(fast_path(header.flags, &pdu[run])));
        }
        Ok(Some(steps))
    }

    /// Paints the RemoteFX data of one surface-bits command at `at`; returns the pixels painted.
    pub fn paint_remotefx(
        &mut self,
        canvas: &mut Canvas,
        at: (u32, u32),
        data: &[u8],
    ) -> Result<u64, String> {
        self.remotefx.paint(canvas, at, data)
    }

    /// A reactivation or a reconnection starts the stream again.
    pub fn reset(&mut self) {
        *self = SurfaceCommands::default();
    }
}

/// A whole surface-commands update's commands in runs: RemoteFX bits for ecsrdp, the rest for
/// IronRDP. An update that does not parse ends the session, as it does in IronRDP's; surface
/// bits for an empty rectangle are passed over (IronRDP's arithmetic on them overflows).
pub fn commands(update: &[u8]) -> Result<Vec<Command<'_>>, String> {
    let commands = match FastPathUpdate::decode_with_code(update, UpdateCode::SurfaceCommands) {
        Ok(FastPathUpdate::SurfaceCommands(commands)) => commands,
        Ok(_) => Vec::new(),
        Err(e) => return Err(format!("a surface-commands update is malformed: {e}")),
    };
    let mut runs = Vec::new();
    let mut theirs = Vec::new();
    for command in commands {
        match command {
            SurfaceCommand::SetSurfaceBits(bits) | SurfaceCommand::StreamSurfaceBits(bits)
                if Some(CODEC_ID_REMOTEFX)
                    == ironrdp_pdu::rdp::capability_sets::CodecId::from_u8(
                        bits.extended_bitmap_data.codec_id,
                    ) =>
            {
                if !theirs.is_empty() {
                    runs.push(Command::Theirs(reencoded(std::mem::take(&mut theirs))));
                }
                let at = (
                    u32::from(bits.destination.left),
                    u32::from(bits.destination.top),
                );
                runs.push(Command::RemoteFx {
                    at,
                    data: bits.extended_bitmap_data.data,
                });
            }
            SurfaceCommand::FrameMarker(marker) => {
                if marker.frame_action == FrameAction::End {
                    if !theirs.is_empty() {
                        runs.push(Command::Theirs(reencoded(std::mem::take(&mut theirs))));
                    }
                    runs.push(Command::FrameEnd(marker.frame_id.unwrap_or(0)));
                }
            }
            SurfaceCommand::SetSurfaceBits(bits) | SurfaceCommand::StreamSurfaceBits(bits)
                if bits.destination.right <= bits.destination.left
                    || bits.destination.bottom <= bits.destination.top =>
            {
                warn!("surface bits for an empty rectangle; passed over");
            }
            other => theirs.push(other),
        }
    }
    if !theirs.is_empty() {
        runs.push(Command::Theirs(reencoded(theirs)));
    }
    Ok(runs)
}

/// Surface commands as a surface-commands update of their own, in fast-path PDUs (fragments,
/// if they are large).
fn reencoded(commands: Vec<SurfaceCommand<'_>>) -> Vec<Vec<u8>> {
    let Ok(data) = encode_vec(&FastPathUpdate::SurfaceCommands(commands)) else {
        warn!("surface commands could not be passed on; dropped");
        return Vec::new();
    };
    let pieces: Vec<&[u8]> = data.chunks(FRAGMENT).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .filter_map(|(i, piece)| {
            let fragmentation = match (i, last) {
                (_, 0) => Fragmentation::Single,
                (0, _) => Fragmentation::First,
                (i, last) if i == last => Fragmentation::Last,
                _ => Fragmentation::Next,
            };
            let update = FastPathUpdatePdu {
                fragmentation,
                update_code: UpdateCode::SurfaceCommands,
                compression_flags: None,
                compression_type: None,
                data: piece,
            };
            encode_vec(&update)
                .ok()
                .map(|update| fast_path(EncryptionFlags::empty(), &update))
        })
        .collect()
}

/// A fast-path PDU holding `updates` (whole encoded updates).
fn fast_path(flags: EncryptionFlags, updates: &[u8]) -> Vec<u8> {
    let mut pdu = encode_vec(&FastPathHeader::new(flags, updates.len()))
        .expect("a run of a fast-path PDU's updates fits a fast-path header");
    pdu.extend_from_slice(updates);
    pdu
}

#[cfg(test)]
mod tests;
