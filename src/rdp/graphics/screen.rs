//! Surfaces onto the screen: where a surface shows, and the copy of a changed part of it into
//! the shown frame, stretched when the server scales the surface.

use super::area::{Area, BYTES_PER_PIXEL};
use crate::render::{Frame, Rect};

/// Where a surface shows on the screen, and at what size there (its own, unless scaled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mapping {
    pub(super) x: u32,
    pub(super) y: u32,
    pub(super) width: u32,
    pub(super) height: u32,
}

/// Pixels of a surface, or of a part of one: the surface pixel (`left`, `top`) is the first.
pub(super) struct Source<'a> {
    pub(super) pixels: &'a [u8],
    pub(super) stride: usize,
    pub(super) left: u16,
    pub(super) top: u16,
    /// The surface's size, which a scaled mapping stretches.
    pub(super) size: (u16, u16),
}

/// Paints `area` of a surface on the screen where `mapping` puts it: rows copied as they are,
/// or, under a scaled mapping, the surface pixel nearest each screen pixel. Returns how many
/// screen pixels it painted.
pub(super) fn paint(frame: &mut Frame, source: &Source<'_>, area: &Area, mapping: Mapping) -> u64 {
    let (width, height) = (u64::from(source.size.0), u64::from(source.size.1));
    let (scale_x, scale_y) = (u64::from(mapping.width), u64::from(mapping.height));
    // Surface edges to screen edges, and back: the screen pixels whose nearest surface pixel is
    // in the area.
    let to_screen = |edge: u16, scale: u64, size: u64| (u64::from(edge) * scale).div_ceil(size);
    let (left, right) = (
        to_screen(area.left, scale_x, width),
        to_screen(area.right, scale_x, width),
    );
    let (top, bottom) = (
        to_screen(area.top, scale_y, height),
        to_screen(area.bottom, scale_y, height),
    );
    // Past the largest screen position nothing shows; the frame clips the rest.
    let screen = |origin: u32, at: u64| u32::try_from(u64::from(origin) + at).unwrap_or(u32::MAX);
    let (x, y) = (screen(mapping.x, left), screen(mapping.y, top));
    let (x_end, y_end) = (screen(mapping.x, right), screen(mapping.y, bottom));
    let rect = Rect::new(x, y, x_end - x, y_end - y);
    let unscaled = scale_x == width && scale_y == height;
    frame.paint(rect, |screen_x, screen_y, out| {
        // Screen to surface, clamped into the area (the edges' rounding).
        let back = |at: u32, origin: u32, size: u64, scale: u64, low: u16, high: u16| {
            let at = u64::from(at - origin) * size / scale;
            u16::try_from(at).unwrap_or(u16::MAX).clamp(low, high - 1)
        };
        let row = back(screen_y, mapping.y, height, scale_y, area.top, area.bottom);
        let line = usize::from(row - source.top) * source.stride;
        if unscaled {
            let column = usize::from(back(
                screen_x, mapping.x, width, scale_x, area.left, area.right,
            ));
            let at = line + (column - usize::from(source.left)) * BYTES_PER_PIXEL;
            out.copy_from_slice(&source.pixels[at..at + out.len()]);
            return;
        }
        for (i, pixel) in out.chunks_exact_mut(BYTES_PER_PIXEL).enumerate() {
            let column = back(
                screen_x + i as u32,
                mapping.x,
                width,
                scale_x,
                area.left,
                area.right,
            );
            let at = line + usize::from(column - source.left) * BYTES_PER_PIXEL;
            pixel.copy_from_slice(&source.pixels[at..at + BYTES_PER_PIXEL]);
        }
    })
}
