//! RemoteFX surface bits (MS-RDPRFX 2.2.2) painted straight into the shown frame: the header
//! blocks set the stream's entropy coder and channel size, and each frame's tiles are decoded
//! ([`Planes`]) and converted into the parts of the frame its region makes valid.
//!
//! Why not IronRDP's session decoder: it converts each tile into a buffer of its own, copies it
//! into its image (from which ecsrdp copies it again into the shown frame), and decodes every
//! tile of a frame, even those its region leaves out. Its public pieces (the block parsers and
//! the tile stages) still do the protocol's work here.

use ironrdp_core::{decode_cursor, ReadCursor};
use ironrdp_pdu::codecs::rfx::{Block, CodecChannel, EntropyAlgorithm, RfxRectangle, TileSetPdu};

use tracing::trace;

use super::tile::{Planes, SIZE};
use crate::render::{Canvas, Rect};

/// More region rectangles than this in one frame are taken as their bounding box, which bounds
/// the work of clipping each tile to them (a tile set may hold 65,535 tiles, a region 65,535
/// rectangles) at this many rectangles of up to 64 rows. Past it, tile pixels outside the
/// region but inside its bounds are shown: MS-RDPRFX leaves them undefined, and the encoders
/// we know encode whole tiles from what the screen shows. Real regions stay far below it.
const MAX_RECTS: usize = 512;

/// The most tiles one surface-bits command may carry, as IronRDP bounds a RemoteFX message:
/// 65,536 tiles cover the largest desktop a server can give (see `desktop.rs`) many times over.
const MAX_TILES: usize = 65536;

/// A RemoteFX stream's state, kept from one surface-bits command to the next: the header
/// blocks may come once, before the first frame.
pub struct RemoteFx {
    entropy: EntropyAlgorithm,
    /// The channel's width and height (its frames' extent), once a channels block gave it.
    channel: Option<(u32, u32)>,
    planes: Planes,
}

impl Default for RemoteFx {
    fn default() -> Self {
        RemoteFx {
            // MS-RDPRFX 2.2.2.2.4: what a context block names unless it says otherwise.
            entropy: EntropyAlgorithm::Rlgr1,
            channel: None,
            planes: Planes::default(),
        }
    }
}

impl RemoteFx {
    /// Paints one surface-bits command's RemoteFX data, its frames placed at `(left, top)` of
    /// the desktop. Returns how many pixels it painted.
    pub fn paint(
        &mut self,
        canvas: &mut Canvas,
        (left, top): (u32, u32),
        data: &[u8],
    ) -> Result<u64, String> {
        let mut input = ReadCursor::new(data);
        let mut region: Option<Vec<RfxRectangle>> = None;
        let mut open = false;
        let mut painted = 0;
        let mut tiles = 0;
        while !input.is_empty() {
            let block: Block<'_> = decode_cursor(&mut input)
                .map_err(|e| format!("a RemoteFX block is malformed: {e}"))?;
            match block {
                Block::Sync(_) | Block::CodecVersions(_) => {}
                Block::Channels(channels) => {
                    let channel = channels
                        .0
                        .first()
                        .ok_or("a RemoteFX channels block names no channel")?;
                    let (Ok(width), Ok(height)) =
                        (u32::try_from(channel.width), u32::try_from(channel.height))
                    else {
                        return Err("a RemoteFX channel has a negative size".to_owned());
                    };
                    self.channel = Some((width, height));
                }
                Block::CodecChannel(CodecChannel::Context(context)) => {
                    self.entropy = context.entropy_algorithm;
                }
                Block::CodecChannel(CodecChannel::FrameBegin(_)) if !open => {
                    open = true;
                    region = None;
                }
                Block::CodecChannel(CodecChannel::Region(r)) if open && region.is_none() => {
                    region = Some(r.rectangles);
                }
                Block::CodecChannel(CodecChannel::TileSet(set)) if open => {
                    let rects = region
                        .take()
                        .ok_or("a RemoteFX tile set came before its region")?;
                    let channel = self
                        .channel
                        .ok_or("a RemoteFX frame came before the channel's size")?;
                    tiles += set.tiles.len();
                    if tiles > MAX_TILES {
                        return Err(format!(
                            "a RemoteFX update holds more than {MAX_TILES} tiles"
                        ));
                    }
                    painted += self.paint_tiles(canvas, (left, top), channel, &rects, &set)?;
                }
                Block::CodecChannel(CodecChannel::FrameEnd(_)) if open => open = false,
                other => {
                    return Err(format!(
                        "a RemoteFX {:?} block came out of place",
                        other.block_type()
                    ));
                }
            }
        }
        Ok(painted)
    }

    /// Decodes each tile that the region shows some of (without holding the shown frame), then
    /// converts it into the region's part of it (holding it only for that).
    fn paint_tiles(
        &mut self,
        canvas: &mut Canvas,
        (left, top): (u32, u32),
        (width, height): (u32, u32),
        rects: &[RfxRectangle],
        tiles: &TileSetPdu<'_>,
    ) -> Result<u64, String> {
        // The region within the channel, relative to it; none means all of it (MS-RDPRFX
        // 2.2.2.3.3).
        let mut region: Vec<Rect> = rects
            .iter()
            .map(|r| {
                Rect::new(
                    u32::from(r.x),
                    u32::from(r.y),
                    u32::from(r.width),
                    u32::from(r.height),
                )
                .clip(width, height)
            })
            .filter(|r| !r.is_empty())
            .collect();
        if rects.is_empty() {
            region.push(Rect::new(0, 0, width, height));
        }
        if region.len() > MAX_RECTS {
            let bounds = region.iter().fold(region[0], |a, r| a.union(r));
            region = vec![bounds];
        }
        let mut painted = 0;
        let mut decoded = 0;
        for tile in &tiles.tiles {
            let origin = (u32::from(tile.x) * SIZE, u32::from(tile.y) * SIZE);
            let mask = Mask::of(origin, &region);
            if mask.is_empty() {
                continue;
            }
            self.planes
                .decode(tile, &tiles.quants, self.entropy)
                .map_err(|e| e.to_string())?;
            decoded += 1;
            let at = (left + origin.0, top + origin.1);
            let planes = &self.planes;
            canvas.paint(|frame| {
                for part in mask.rects() {
                    let rect = Rect::new(at.0 + part.x, at.1 + part.y, part.w, part.h);
                    painted +=
                        frame.paint(rect, |x, y, row| planes.convert(x - at.0, y - at.1, row));
                }
            });
        }
        trace!(
            tiles = tiles.tiles.len(),
            decoded,
            painted,
            "RemoteFX frame"
        );
        Ok(painted)
    }
}

/// Which of a tile's pixels a region covers: a bit per column, a word per row.
struct Mask([u64; SIZE as usize]);

impl Mask {
    /// The part of `region` in the tile at `origin`.
    fn of(origin: (u32, u32), region: &[Rect]) -> Mask {
        let tile = Rect::new(origin.0, origin.1, SIZE, SIZE);
        let mut rows = [0u64; SIZE as usize];
        for rect in region {
            let Some(part) = intersection(&tile, rect) else {
                continue;
            };
            let columns = (u64::MAX >> (64 - part.w)) << (part.x - origin.0);
            let first = (part.y - origin.1) as usize;
            for row in &mut rows[first..first + part.h as usize] {
                *row |= columns;
            }
        }
        Mask(rows)
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&row| row == 0)
    }

    /// The covered pixels as rectangles that do not overlap, relative to the tile: runs of
    /// rows with the same columns, cut into runs of columns.
    fn rects(&self) -> Vec<Rect> {
        let mut rects = Vec::new();
        let mut y = 0;
        while y < self.0.len() {
            let columns = self.0[y];
            let rows = self.0[y..]
                .iter()
                .take_while(|&&row| row == columns)
                .count();
            let mut rest = columns;
            while rest != 0 {
                let x = rest.trailing_zeros();
                let w = (!(rest >> x)).trailing_zeros();
                rects.push(Rect::new(x, y as u32, w, rows as u32));
                rest &= !((u64::MAX >> (64 - w)) << x);
            }
            y += rows;
        }
        rects
    }
}

/// The overlap of two rectangles, if they have one.
fn intersection(a: &Rect, b: &Rect) -> Option<Rect> {
    let (x, y) = (a.x.max(b.x), a.y.max(b.y));
    let (right, bottom) = (a.right().min(b.right()), a.bottom().min(b.bottom()));
    (x < right && y < bottom).then(|| Rect::new(x, y, right - x, bottom - y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiles_mask_is_the_regions_part_of_it_cut_into_disjoint_rects() {
        // Two overlapping rectangles over the tile at (64, 0), and one that misses it.
        let region = [
            Rect::new(60, 10, 20, 10),
            Rect::new(70, 15, 94, 5),
            Rect::new(0, 0, 64, 64),
        ];
        let mask = Mask::of((64, 0), &region);
        assert_eq!(
            mask.rects(),
            vec![Rect::new(0, 10, 16, 5), Rect::new(0, 15, 64, 5),]
        );
        assert!(Mask::of((128, 64), &region).is_empty());
        // All of it.
        let all = Mask::of((0, 0), &[Rect::new(0, 0, 1024, 768)]);
        assert_eq!(all.rects(), vec![Rect::new(0, 0, 64, 64)]);
        // Columns apart on the same rows.
        let apart = Mask::of((0, 0), &[Rect::new(0, 0, 1, 2), Rect::new(63, 0, 1, 2)]);
        assert_eq!(
            apart.rects(),
            vec![Rect::new(0, 0, 1, 2), Rect::new(63, 0, 1, 2)]
        );
    }
}
