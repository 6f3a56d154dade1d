//! The framebuffer shared by the session (which decodes into it) and the window (which copies
//! out of it), and the damage between them: the one place where `rdp` and the window meet.
//!
//! Pure: no IO, no async. The image is IronRDP's `DecodedImage` in `RgbX32`, the format IronRDP's
//! RemoteFX decoder writes its tiles in, so that they are copied in a row at a time (into any
//! other format IronRDP converts them a pixel at a time). The lock is held only while pixels or
//! damage are read or written.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_session::image::DecodedImage;

/// The pixel format every image is decoded into.
pub const PIXEL_FORMAT: PixelFormat = PixelFormat::RgbX32;

/// The image is allocated this much larger than the desktop, rounded up on each side: servers
/// send bitmap tiles that reach past the desktop's right and bottom edges (FreeRDP's shadow
/// server sends 64x64 tiles; Windows pads widths to 4), and IronRDP drops a tile whose
/// destination does not fit the image instead of clipping it, leaving black edges. On the
/// larger canvas every tile lands; only the desktop's part is ever shown.
const TILE: u16 = 64;

/// The image size for a desktop: each side rounded up to whole tiles.
fn canvas(width: u16, height: u16) -> (u16, u16) {
    let up = |side: u16| side.div_ceil(TILE).saturating_mul(TILE).max(side);
    (up(width), up(height))
}

/// A rectangle in pixels, right and bottom exclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Rect { x, y, w, h }
    }

    pub fn right(&self) -> u32 {
        self.x + self.w
    }

    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }

    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    pub fn union(&self, other: &Rect) -> Rect {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        Rect::new(
            x,
            y,
            self.right().max(other.right()) - x,
            self.bottom().max(other.bottom()) - y,
        )
    }

    /// Whether the two overlap or share an edge, so merging them wastes nothing much.
    pub fn touches(&self, other: &Rect) -> bool {
        self.x <= other.right()
            && other.x <= self.right()
            && self.y <= other.bottom()
            && other.y <= self.bottom()
    }

    /// The part inside a `width`×`height` area.
    pub fn clip(&self, width: u32, height: u32) -> Rect {
        let x = self.x.min(width);
        let y = self.y.min(height);
        Rect::new(
            x,
            y,
            self.right().min(width) - x,
            self.bottom().min(height) - y,
        )
    }
}

impl From<&InclusiveRectangle> for Rect {
    fn from(r: &InclusiveRectangle) -> Self {
        let (left, top) = (u32::from(r.left), u32::from(r.top));
        Rect::new(
            left,
            top,
            (u32::from(r.right) + 1).saturating_sub(left),
            (u32::from(r.bottom) + 1).saturating_sub(top),
        )
    }
}

/// Changed areas not yet shown, merged so that a burst of small updates stays a few rects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    rects: Vec<Rect>,
}

impl Damage {
    /// Past this many separate rects, one bounding rect is cheaper to track and copy.
    const MAX_RECTS: usize = 16;

    pub fn full(width: u32, height: u32) -> Self {
        Damage {
            rects: vec![Rect::new(0, 0, width, height)],
        }
    }

    pub fn add(&mut self, rect: Rect) {
        if rect.is_empty() {
            return;
        }
        let mut merged = rect;
        // Absorb every rect the growing one touches; repeat, since growth can reach others.
        loop {
            let before = self.rects.len();
            self.rects.retain(|r| {
                if r.touches(&merged) {
                    merged = merged.union(r);
                    false
                } else {
                    true
                }
            });
            if self.rects.len() == before {
                break;
            }
        }
        self.rects.push(merged);
        if self.rects.len() > Self::MAX_RECTS {
            let bounds = self.rects.iter().fold(self.rects[0], |acc, r| acc.union(r));
            self.rects = vec![bounds];
        }
    }

    pub fn extend(&mut self, other: &Damage) {
        for rect in &other.rects {
            self.add(*rect);
        }
    }

    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    pub fn area(&self) -> u64 {
        self.rects.iter().map(Rect::area).sum()
    }
}

/// The session's image plus what changed since the window last looked.
pub struct Frame {
    /// At least as large as the desktop (see [`canvas`]); rows are `image.width()` long.
    pub image: DecodedImage,
    /// The desktop's size: the part of `image` that is shown.
    desktop: (u16, u16),
    damage: Damage,
    /// Bumped when the image is replaced (new size), so the window lays out again.
    generation: u64,
}

impl Frame {
    /// The desktop's size.
    pub fn size(&self) -> (u32, u32) {
        (u32::from(self.desktop.0), u32::from(self.desktop.1))
    }

    /// The image's own size, which the session may change in place (EGFX ResetGraphics).
    pub fn image_size(&self) -> (u16, u16) {
        (self.image.width(), self.image.height())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn add_damage(&mut self, rect: Rect) {
        let (w, h) = self.size();
        self.damage.add(rect.clip(w, h));
    }

    pub fn take_damage(&mut self) -> Damage {
        std::mem::take(&mut self.damage)
    }

    /// The session changed the image's size in place (an EGFX ResetGraphics): everything is
    /// new, and the window must lay out again.
    pub fn resized_in_place(&mut self) {
        self.desktop = self.image_size();
        let (w, h) = self.size();
        self.damage = Damage::full(w, h);
        self.generation += 1;
    }

    /// A new, black image of another size (server-side resize, reactivation).
    pub fn replace(&mut self, width: u16, height: u16) {
        let (w, h) = canvas(width, height);
        self.image = DecodedImage::new(PIXEL_FORMAT, w, h);
        self.desktop = (width, height);
        self.damage = Damage::full(u32::from(width), u32::from(height));
        self.generation += 1;
    }
}

/// The frame behind a mutex: the session holds it while decoding one PDU, the window while
/// copying damaged rows out; neither holds it for longer.
pub struct SharedFrame(Mutex<Frame>);

impl SharedFrame {
    pub fn new(width: u16, height: u16) -> Self {
        let (w, h) = canvas(width, height);
        SharedFrame(Mutex::new(Frame {
            image: DecodedImage::new(PIXEL_FORMAT, w, h),
            desktop: (width, height),
            damage: Damage::default(),
            generation: 0,
        }))
    }

    pub fn lock(&self) -> MutexGuard<'_, Frame> {
        // A panic while holding the lock leaves at worst a half-drawn frame: keep showing it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::blit::{blit, Layout, Placement};

    #[test]
    fn the_canvas_holds_whole_tiles_and_shows_only_the_desktop() {
        let frame = SharedFrame::new(1022, 766);
        let mut frame = frame.lock();
        assert_eq!(frame.image_size(), (1024, 768));
        assert_eq!(frame.size(), (1022, 766));
        assert_eq!(canvas(1024, 768), (1024, 768));
        // The blit reads the desktop's part of each padded row, and fills the window exactly.
        let placement = Placement::new(Layout::unscaled((1022, 766), (1022, 766)));
        let mut window = vec![1u32; 1022 * 766];
        blit(
            &frame.image,
            &placement,
            Rect::new(0, 0, 1022, 766),
            &mut window,
        );
        assert!(
            window.iter().all(|&p| p == 0),
            "every window pixel was written"
        );
        frame.replace(998, 702);
        assert_eq!(
            (frame.image_size(), frame.size()),
            ((1024, 704), (998, 702))
        );
    }

    #[test]
    fn damage_merges_touching_and_keeps_apart_the_rest() {
        let mut d = Damage::default();
        d.add(Rect::new(0, 0, 10, 10));
        d.add(Rect::new(10, 0, 10, 10));
        assert_eq!(d.rects(), &[Rect::new(0, 0, 20, 10)]);
        d.add(Rect::new(100, 100, 5, 5));
        assert_eq!(d.rects().len(), 2);
        d.add(Rect::new(0, 0, 0, 5));
        assert_eq!(d.rects().len(), 2);
    }

    #[test]
    fn damage_collapses_when_fragmented() {
        let mut d = Damage::default();
        for i in 0..40 {
            d.add(Rect::new(i * 20, 0, 5, 5));
        }
        assert!(d.rects().len() <= Damage::MAX_RECTS, "{:?}", d.rects());
        let bounds = d.rects().iter().fold(d.rects()[0], |a, r| a.union(r));
        assert_eq!(bounds, Rect::new(0, 0, 785, 5));
    }
}
