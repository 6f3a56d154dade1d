//! The graphics pipeline's surfaces and bitmap cache (MS-RDPEGFX 3.3.1.4, 3.3.1.6), in the
//! session's pixel format, and what each finished frame changed on the screen.
//!
//! IronRDP's pipeline keeps surfaces of its own in RGBA, copies each frame's changes out of them
//! when the frame ends, and the session converts those into IronRDP's image, to be copied once
//! more into the shown frame: an H.264 pixel was written six times (docs/performance.md has the
//! profile). Here a decoded rectangle is written once, into its surface, and copied once, into
//! the shown frame, after its frame has ended. Ours rather than a writer added upstream:
//! IronRDP's image has no public writer, and its compositor keeps RGBA by design, for the
//! consumers that take its output as it is.
//!
//! IronRDP's pipeline still negotiates, acknowledges frames and decodes the codecs other than
//! H.264; the pipeline ([`super::Pipeline`]) hands their pixels here, and the surface commands
//! (fills, copies, the cache, mappings) come here instead of going to it.

use std::collections::BTreeMap;

use ironrdp_egfx::pdu::{Color, Point};
use ironrdp_pdu::geometry::ExclusiveRectangle;
use tracing::warn;

use super::area::{clip, remember, Area, BYTES_PER_PIXEL};
use super::h264::{self, Convert, H264Error};
use super::screen::{paint, Mapping, Source};
use crate::render::Canvas;

/// The most pixel bytes surfaces and cache may hold together, as in IronRDP's pipeline (eight 4K
/// desktops): a server creating surfaces and caching tiles cannot make the client allocate more.
const BUDGET: usize = 256 << 20;

/// The most changes of ended frames waiting for the screen, and the most bytes of them copied
/// aside because their surface changed before the screen showed them. Past either (a server
/// ending thousands of frames in one message), the screen gets every surface whole instead, as
/// it is then.
const MAX_PENDING: usize = 1024;
const MAX_KEPT: usize = 64 << 20;

/// The most the screen is painted over at each showing, in desktops: each change costs at most
/// a desktop, even under a scaled mapping, and a server cannot make a showing cost more.
const MAX_SHOWN: u64 = 16;

/// The most a surface may be mapped to on the screen (as IronRDP's pipeline allows).
const MAX_SCREEN_EDGE: u32 = 32766;

/// A surface: RGBX rows `width * 4` bytes long, and where it shows, if it does.
struct Surface {
    width: u16,
    height: u16,
    pixels: Vec<u8>,
    mapping: Option<Mapping>,
}

/// A cached bitmap: RGBX rows `width * 4` bytes long.
struct Tile {
    width: u16,
    height: u16,
    pixels: Vec<u8>,
}

/// A change an ended frame made that the screen has not shown.
enum Pending {
    /// Its pixels are in its surface.
    InSurface(Area),
    /// Its pixels were copied aside, as its surface changed since ([`Surfaces::settle`]).
    Kept(Kept),
}

/// Pixels of an ended frame copied out of a surface that changed before the screen showed them.
struct Kept {
    area: Area,
    mapping: Mapping,
    size: (u16, u16),
    /// The area's RGBX rows, tightly packed.
    pixels: Vec<u8>,
}

/// Every surface and cached bitmap, and the changes the screen has not shown yet.
#[derive(Default)]
pub struct Surfaces {
    surfaces: BTreeMap<u16, Surface>,
    cache: BTreeMap<u16, Tile>,
    /// Pixel bytes held by surfaces and cache, against [`BUDGET`].
    held: usize,
    /// Pixel bytes held by the cache, against the cache's capacity.
    cached: usize,
    /// Changed in the frame being built.
    building: Vec<Area>,
    /// The frame being built changed more surfaces than [`MAX_AREAS`] can tell apart.
    building_all: bool,
    /// Changed in frames that ended, in the order the changes were made (surfaces may overlap
    /// on the screen).
    ended: Vec<Pending>,
    /// Bytes of the [`Pending::Kept`] in `ended`.
    kept_bytes: usize,
    /// Too much changed to remember: the screen gets every mapped surface whole.
    show_all: bool,
}

impl Surfaces {
    /// `CreateSurface` (IronRDP's pipeline checked it): a black surface, replacing any of that id.
    pub fn create(&mut self, id: u16, width: u16, height: u16) {
        self.delete(id);
        let bytes = usize::from(width) * usize::from(height) * BYTES_PER_PIXEL;
        if bytes == 0 {
            return;
        }
        if self.held + bytes > BUDGET {
            warn!(
                id,
                width, height, "the server's surfaces would take too much memory: not created"
            );
            return;
        }
        self.held += bytes;
        let surface = Surface {
            width,
            height,
            pixels: vec![0; bytes],
            mapping: None,
        };
        self.surfaces.insert(id, surface);
    }

    /// `DeleteSurface`: what ended frames changed on it still reaches the screen; what the frame
    /// being built changed does not.
    pub fn delete(&mut self, id: u16) {
        self.settle(id);
        self.building.retain(|area| area.surface != id);
        if let Some(surface) = self.surfaces.remove(&id) {
            self.held -= surface.pixels.len();
        }
    }

    /// `ResetGraphics`: every surface goes, and with them the changes not shown; the cache stays.
    pub fn reset(&mut self) {
        self.surfaces.clear();
        self.held = self.cached;
        self.building.clear();
        self.building_all = false;
        self.ended.clear();
        self.kept_bytes = 0;
        self.show_all = false;
    }

    /// `MapSurfaceToOutput` and `MapSurfaceToScaledOutput` (with `size`): the whole surface
    /// shows at its new place with the frame.
    pub fn map(&mut self, id: u16, x: u32, y: u32, size: Option<(u32, u32)>) {
        self.settle(id);
        let Some(surface) = self.surfaces.get_mut(&id) else {
            return;
        };
        let (width, height) = size.unwrap_or((surface.width.into(), surface.height.into()));
        let fits = |edge: u32| (1..=MAX_SCREEN_EDGE).contains(&edge);
        surface.mapping = (fits(width) && fits(height)).then_some(Mapping {
            x,
            y,
            width,
            height,
        });
        let whole = full(id, surface);
        self.changed(whole);
    }

    /// `MapSurfaceToWindow` and `MapSurfaceToScaledWindow`: the surface goes to a RemoteApp
    /// window, which ecsrdp does not show, and leaves the screen. A mapping that could not be
    /// presented (an empty area or one larger than the surface, an empty or huge window) is
    /// ignored, as IronRDP's pipeline ignores it.
    pub fn map_to_window(&mut self, id: u16, mapped: (u32, u32), window: (u32, u32)) {
        let Some(surface) = self.surfaces.get(&id) else {
            return;
        };
        let within = |edge: u32, most: u32| (1..=most).contains(&edge);
        let presentable = within(mapped.0, surface.width.into())
            && within(mapped.1, surface.height.into())
            && within(window.0, MAX_SCREEN_EDGE)
            && within(window.1, MAX_SCREEN_EDGE);
        if presentable {
            self.settle(id);
            if let Some(surface) = self.surfaces.get_mut(&id) {
                surface.mapping = None;
            }
        }
    }

    /// A rectangle a codec decoded (IronRDP's pipeline), RGBA rows `width * 4` bytes long. RGBA
    /// is the session's RGBX, byte for byte.
    pub fn put(&mut self, id: u16, rect: &ExclusiveRectangle, rgba: &[u8], width: u16) {
        let stride = usize::from(width) * BYTES_PER_PIXEL;
        let Some(area) = self.writable(id, rect) else {
            return;
        };
        let Some(surface) = self.surfaces.get_mut(&id) else {
            return;
        };
        let columns = usize::from(area.right - area.left) * BYTES_PER_PIXEL;
        if stride < columns {
            return;
        }
        let rows = rgba
            .chunks_exact(stride)
            .take(usize::from(area.bottom - area.top));
        let mut painted = area;
        painted.bottom = area.top;
        for (row, source) in rows.enumerate() {
            let y = usize::from(area.top) + row;
            let at = surface.offset(area.left, y);
            surface.pixels[at..at + columns].copy_from_slice(&source[..columns]);
            painted.bottom += 1;
        }
        if painted.bottom > painted.top {
            self.changed(painted);
        }
    }

    /// `SolidFill`.
    pub fn fill(&mut self, id: u16, color: &Color, rects: &[ExclusiveRectangle]) {
        let pixel = [color.r, color.g, color.b, 0xFF];
        for rect in rects {
            let Some(area) = self.writable(id, rect) else {
                continue;
            };
            let Some(surface) = self.surfaces.get_mut(&id) else {
                return;
            };
            for y in area.top..area.bottom {
                let at = surface.offset(area.left, y.into());
                let row = &mut surface.pixels[at..][..usize::from(area.right - area.left) * 4];
                for out in row.chunks_exact_mut(BYTES_PER_PIXEL) {
                    out.copy_from_slice(&pixel);
                }
            }
            self.changed(area);
        }
    }

    /// `SurfaceToSurface`: a copy, or a scroll when both are one surface.
    pub fn copy(&mut self, from: u16, rect: &ExclusiveRectangle, to: u16, points: &[Point]) {
        let Some(tile) = self
            .surfaces
            .get(&from)
            .and_then(|surface| surface.tile(rect))
        else {
            return;
        };
        self.paste(&tile, to, points);
    }

    /// `SurfaceToCache`, into a cache that holds at most `capacity` bytes (MS-RDPEGFX 3.3.1.4:
    /// 100 MB, or 16 MB when the server confirmed a small cache). An unknown surface or an empty
    /// rectangle leaves the slot as it was.
    pub fn cache(&mut self, id: u16, rect: &ExclusiveRectangle, slot: u16, capacity: usize) {
        let Some(area) = self
            .surfaces
            .get(&id)
            .and_then(|surface| clip(id, rect, surface.width, surface.height))
        else {
            return;
        };
        self.evict(slot);
        let bytes = area.bytes();
        if self.cached + bytes > capacity || self.held + bytes > BUDGET {
            warn!(
                slot,
                "the server's cached bitmaps would overflow the cache: not cached"
            );
            return;
        }
        if let Some(tile) = self
            .surfaces
            .get(&id)
            .and_then(|surface| surface.tile(rect))
        {
            self.held += tile.pixels.len();
            self.cached += tile.pixels.len();
            self.cache.insert(slot, tile);
        }
    }

    /// `CacheToSurface`.
    pub fn uncache(&mut self, slot: u16, to: u16, points: &[Point]) {
        if let Some(tile) = self.cache.remove(&slot) {
            self.paste(&tile, to, points);
            self.cache.insert(slot, tile);
        }
    }

    /// `EvictCacheEntry`.
    pub fn evict(&mut self, slot: u16) {
        if let Some(tile) = self.cache.remove(&slot) {
            self.held -= tile.pixels.len();
            self.cached -= tile.pixels.len();
        }
    }

    /// `EndFrame`: what the frame changed is ready for the screen.
    pub fn end_frame(&mut self) {
        if std::mem::take(&mut self.building_all) {
            self.building.clear();
            self.overflow();
            return;
        }
        for area in std::mem::take(&mut self.building) {
            if self.show_all {
                return;
            }
            // Held by the last change, if that was on the same surface.
            if let Some(Pending::InSurface(last)) = self.ended.last() {
                if last.contains(&area) {
                    continue;
                }
            }
            if self.ended.len() >= MAX_PENDING {
                self.overflow();
                return;
            }
            self.ended.push(Pending::InSurface(area));
        }
    }

    /// Paints on the screen what ended frames changed, in order; whether anything was painted.
    pub fn show(&mut self, canvas: &mut Canvas) -> bool {
        if self.ended.is_empty() && !self.show_all {
            return false;
        }
        let ended = std::mem::take(&mut self.ended);
        let show_all = std::mem::take(&mut self.show_all);
        self.kept_bytes = 0;
        let (width, height) = canvas.size();
        let mut budget = MAX_SHOWN * u64::from(width) * u64::from(height);
        let surfaces = &self.surfaces;
        canvas.paint(|frame| {
            let mut show = |source: &Source<'_>, area: &Area, mapping: Mapping| {
                if budget > 0 {
                    budget = budget.saturating_sub(paint(frame, source, area, mapping));
                }
            };
            if show_all {
                for (&id, surface) in surfaces {
                    if let Some(mapping) = surface.mapping {
                        show(&surface.source(), &full(id, surface), mapping);
                    }
                }
                return;
            }
            for pending in &ended {
                match pending {
                    Pending::InSurface(area) => {
                        let Some(surface) = surfaces.get(&area.surface) else {
                            continue;
                        };
                        if let Some(mapping) = surface.mapping {
                            show(&surface.source(), area, mapping);
                        }
                    }
                    Pending::Kept(kept) => {
                        let width = usize::from(kept.area.right - kept.area.left);
                        let source = Source {
                            pixels: &kept.pixels,
                            stride: width * BYTES_PER_PIXEL,
                            left: kept.area.left,
                            top: kept.area.top,
                            size: kept.size,
                        };
                        show(&source, &kept.area, kept.mapping);
                    }
                }
            }
        });
        true
    }

    /// The part of `rect` on surface `id`, about to be written: what ended frames changed there
    /// is kept for the screen first.
    fn writable(&mut self, id: u16, rect: &ExclusiveRectangle) -> Option<Area> {
        let surface = self.surfaces.get(&id)?;
        let area = clip(id, rect, surface.width, surface.height)?;
        self.settle(id);
        Some(area)
    }

    /// Copies out what ended frames changed on surface `id` and the screen has not shown, before
    /// the surface changes again, so that the screen never shows half a frame.
    fn settle(&mut self, id: u16) {
        if self.show_all {
            return;
        }
        let surface = self.surfaces.get(&id);
        let mapping = surface.and_then(|surface| surface.mapping);
        let kept_bytes = &mut self.kept_bytes;
        let mut overflow = false;
        self.ended.retain_mut(|pending| {
            let Pending::InSurface(area) = pending else {
                return true;
            };
            if area.surface != id {
                return true;
            }
            // Not on the screen: nothing to show.
            let (Some(surface), Some(mapping)) = (surface, mapping) else {
                return false;
            };
            let bytes = area.bytes() + std::mem::size_of::<Kept>();
            if overflow || *kept_bytes + bytes > MAX_KEPT {
                overflow = true;
                return false;
            }
            let Some(tile) = surface.tile(&area.rect()) else {
                return false;
            };
            *kept_bytes += bytes;
            *pending = Pending::Kept(Kept {
                area: *area,
                mapping,
                size: (surface.width, surface.height),
                pixels: tile.pixels,
            });
            true
        });
        if overflow {
            self.overflow();
        }
    }

    /// More changed than can be remembered: the screen gets every surface whole, as it is when
    /// shown.
    fn overflow(&mut self) {
        self.ended.clear();
        self.kept_bytes = 0;
        self.show_all = true;
    }

    /// Pastes `tile` on surface `to` at each of `points`.
    fn paste(&mut self, tile: &Tile, to: u16, points: &[Point]) {
        for point in points {
            let rect = ExclusiveRectangle {
                left: point.x,
                top: point.y,
                right: point.x.saturating_add(tile.width),
                bottom: point.y.saturating_add(tile.height),
            };
            let Some(area) = self.writable(to, &rect) else {
                continue;
            };
            let Some(surface) = self.surfaces.get_mut(&to) else {
                return;
            };
            let columns = usize::from(area.right - area.left) * BYTES_PER_PIXEL;
            let rows = tile
                .pixels
                .chunks_exact(usize::from(tile.width) * BYTES_PER_PIXEL);
            for (y, source) in (area.top..area.bottom).zip(rows) {
                let at = surface.offset(area.left, y.into());
                surface.pixels[at..at + columns].copy_from_slice(&source[..columns]);
            }
            self.changed(area);
        }
    }

    /// Remembers a change for the screen once its frame ends.
    fn changed(&mut self, area: Area) {
        if !self.building_all && !remember(&mut self.building, area) {
            self.building.clear();
            self.building_all = true;
        }
    }
}

/// H.264 pictures are converted straight into their surface.
impl h264::Canvas for Surfaces {
    fn paint(
        &mut self,
        surface_id: u16,
        rect: &ExclusiveRectangle,
        convert: &mut Convert<'_>,
    ) -> Result<(), H264Error> {
        let area = self
            .writable(surface_id, rect)
            .ok_or(H264Error::UnknownSurface(surface_id))?;
        let surface = self
            .surfaces
            .get_mut(&surface_id)
            .ok_or(H264Error::UnknownSurface(surface_id))?;
        let at = surface.offset(area.left, area.top.into());
        let stride = usize::from(surface.width) * BYTES_PER_PIXEL;
        convert(&area.rect(), &mut surface.pixels[at..], stride)?;
        self.changed(area);
        Ok(())
    }
}

impl Surface {
    fn offset(&self, x: u16, y: usize) -> usize {
        (y * usize::from(self.width) + usize::from(x)) * BYTES_PER_PIXEL
    }

    /// A copy of the part of `rect` inside the surface.
    fn tile(&self, rect: &ExclusiveRectangle) -> Option<Tile> {
        let area = clip(0, rect, self.width, self.height)?;
        let columns = usize::from(area.right - area.left) * BYTES_PER_PIXEL;
        let mut pixels = Vec::with_capacity(columns * usize::from(area.bottom - area.top));
        for y in area.top..area.bottom {
            let at = self.offset(area.left, y.into());
            pixels.extend_from_slice(&self.pixels[at..at + columns]);
        }
        Some(Tile {
            width: area.right - area.left,
            height: area.bottom - area.top,
            pixels,
        })
    }

    fn source(&self) -> Source<'_> {
        Source {
            pixels: &self.pixels,
            stride: usize::from(self.width) * BYTES_PER_PIXEL,
            left: 0,
            top: 0,
            size: (self.width, self.height),
        }
    }
}

/// The whole of a surface.
fn full(id: u16, surface: &Surface) -> Area {
    Area {
        surface: id,
        left: 0,
        top: 0,
        right: surface.width,
        bottom: surface.height,
    }
}

#[cfg(test)]
mod tests;
