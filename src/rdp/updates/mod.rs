//! The fast-path updates ecsrdp paints itself, straight into the shown frame: surface
//! commands carrying RemoteFX ([`surface`], [`RemoteFx`]) and 32-bit planar bitmaps
//! ([`bitmap`]). A fast-path PDU's updates of those kinds are taken out (their fragments put
//! together here) and everything else is handed to IronRDP's session in the order the server
//! sent it: the other updates as they came; the surface commands of other codecs and the
//! bitmaps of other formats re-encoded as updates of their own.
//!
//! Why: IronRDP's session decodes these into a buffer of its own, converts that into its image
//! (one byte at a time), and ecsrdp copied it on into the shown frame; here each pixel is
//! converted once, where it is shown (docs/performance.md).

mod bitmap;
mod dwt;
mod planar;
mod remotefx;
mod rlgr;
mod surface;
mod tile;

use std::borrow::Cow;
use std::ops::Range;

use ironrdp_core::{decode_cursor, encode_vec, ReadCursor};
use ironrdp_pdu::bitmap::BitmapData;
use ironrdp_pdu::fast_path::{
    EncryptionFlags, FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use tracing::warn;

use self::bitmap::Bitmaps;
pub use self::bitmap::{bitmaps, Run};
use self::remotefx::RemoteFx;
pub use self::surface::{commands, Command};
use crate::render::Canvas;

/// The largest update put together from fragments. ecsrdp's multifragment capability repeats
/// the server's own maximum (IronRDP's connector; FreeRDP's servers say 16 MiB) or says 8 MiB;
/// this bound is above both, and only bounds memory (an update for IronRDP is copied up to four
/// times on its way there): a server that sends more is ending the session.
const MAX_UPDATE: usize = 32 * 1024 * 1024;

/// The most data a re-encoded update for IronRDP carries per fragment: well inside a fast-path
/// PDU's 15-bit length.
const FRAGMENT: usize = 16 * 1024;

/// The state of the updates ecsrdp paints: a fragmented update being put together (apart from
/// IronRDP's: an update for IronRDP between its fragments leaves them be, where IronRDP's
/// session alone would drop them), the RemoteFX stream's, and the bitmap decoders'.
#[derive(Default)]
pub struct Updates {
    pending: Option<(UpdateCode, Vec<u8>)>,
    remotefx: RemoteFx,
    bitmaps: Bitmaps,
}

/// One step of a fast-path PDU, in the order the server sent them.
pub enum Step<'a> {
    /// A fast-path PDU for IronRDP's session.
    Theirs(Vec<u8>),
    /// A whole surface-commands update, for [`commands`].
    Surface(Cow<'a, [u8]>),
    /// A whole bitmap update, for [`bitmaps`].
    Bitmap(Cow<'a, [u8]>),
}

/// Whether ecsrdp takes updates of this kind out of a PDU.
fn ours(code: UpdateCode) -> bool {
    matches!(code, UpdateCode::SurfaceCommands | UpdateCode::Bitmap)
}

impl Updates {
    /// Splits a fast-path PDU into [`Step`]s; `None` when it has no update of ecsrdp's (or
    /// does not parse: IronRDP's session judges it whole, as it came).
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
        if !updates.iter().any(|(u, _)| ours(u.update_code)) {
            return Ok(None);
        }
        let mut steps = Vec::new();
        let mut theirs: Option<Range<usize>> = None;
        for (update, bytes) in updates {
            let code = update.update_code;
            if !ours(code) {
                theirs = Some(theirs.map_or(bytes.clone(), |run| run.start..bytes.end));
                continue;
            }
            if let Some(run) = theirs.take() {
                steps.push(Step::Theirs(fast_path(header.flags, &pdu[run])));
            }
            if update.compression_flags.is_some_and(|f| !f.is_empty()) {
                return Err(
                    "the server compressed an update, which ecsrdp did not offer to decompress"
                        .to_owned(),
                );
            }
            let whole = |data| match code {
                UpdateCode::Bitmap => Step::Bitmap(data),
                _ => Step::Surface(data),
            };
            let data = update.data;
            match update.fragmentation {
                Fragmentation::Single => {
                    if self.pending.take().is_some() {
                        warn!("an update's fragments ended without their last; dropped");
                    }
                    steps.push(whole(Cow::Borrowed(data)));
                }
                Fragmentation::First => {
                    if self.pending.replace((code, data.to_vec())).is_some() {
                        warn!("an update's fragments ended without their last; dropped");
                    }
                }
                Fragmentation::Next | Fragmentation::Last => {
                    let pending = match self.pending.as_mut() {
                        Some((first, pending)) if *first == code => pending,
                        _ => {
                            return Err("a fragment of an update came without its first".to_owned())
                        }
                    };
                    if pending.len() + data.len() > MAX_UPDATE {
                        return Err(format!(
                            "a fragmented update is larger than the {} MiB ecsrdp allows",
                            MAX_UPDATE >> 20
                        ));
                    }
                    pending.extend_from_slice(data);
                    if update.fragmentation == Fragmentation::Last {
                        steps.extend(self.pending.take().map(|(_, d)| whole(Cow::Owned(d))));
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

    /// Paints bitmaps that [`bitmaps`] found ecsrdp's; returns the pixels painted.
    pub fn paint_bitmaps(&mut self, canvas: &mut Canvas, rectangles: &[BitmapData<'_>]) -> u64 {
        rectangles
            .iter()
            .map(|bitmap| self.bitmaps.paint(canvas, bitmap))
            .sum()
    }

    /// A reactivation or a reconnection starts the streams again.
    pub fn reset(&mut self) {
        *self = Updates::default();
    }
}

/// An update's data as fast-path PDUs for IronRDP's session, in fragments when it is large.
fn pdus(code: UpdateCode, data: &[u8]) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = data.chunks(FRAGMENT).collect();
    let last = pieces.len().saturating_sub(1);
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
                update_code: code,
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

/// The next of a xorshift sequence: the tests' random pictures and bytes, the same each run.
#[cfg(test)]
fn xorshift(seed: &mut u32) -> u32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    *seed
}

#[cfg(test)]
mod tests;
