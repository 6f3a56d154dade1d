//! The framebuffer shared by the session (which decodes into it) and the window (which copies
//! out of it), and the damage between them: the one place where `rdp` and the window meet.
//!
//! Pure: no IO, no async. The session decodes into a [`Canvas`] of its own, IronRDP's
//! `DecodedImage` in `RgbX32` (the layout IronRDP's own decoders write fastest). The window
//! reads a copy, the [`SharedFrame`]: its lock is held only while changed pixels are copied in
//! or out. The graphics pipeline's surfaces and RemoteFX surface bits are not in IronRDP's
//! image (which has no public writer): they paint the shared frame directly ([`Canvas::paint`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

/// A borrowed RGBX image, rows `width * 4` bytes apart: what [`blit`] reads. The shown
/// [`Frame`] gives one, and so does IronRDP's `DecodedImage`; tests and benches make their own.
#[derive(Clone, Copy, Debug)]
pub struct Pixels<'a> {
    pub data: &'a [u8],
    pub width: u16,
    pub height: u16,
}

impl<'a> From<&'a DecodedImage> for Pixels<'a> {
    fn from(image: &'a DecodedImage) -> Self {
        Pixels {
            data: image.data(),
            width: image.width(),
            height: image.height(),
        }
    }
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

/// What the window shows: a copy of the session's image, refreshed where it changed, plus
/// what changed since the window last looked.
pub struct Frame {
    /// RGBX rows `canvas.0 * 4` bytes long, at least as large as the desktop (see [`canvas`]).
    pixels: Vec<u8>,
    canvas: (u16, u16),
    /// The desktop's size: the part of `pixels` that is shown.
    desktop: (u16, u16),
    damage: Damage,
    /// Bumped when the size changes, so the window lays out again.
    generation: u64,
}

impl Frame {
    fn new(canvas: (u16, u16), desktop: (u16, u16)) -> Self {
        Frame {
            pixels: vec![0; usize::from(canvas.0) * usize::from(canvas.1) * 4],
            canvas,
            desktop,
            damage: Damage::default(),
            generation: 0,
        }
    }

    /// The desktop's size.
    pub fn size(&self) -> (u32, u32) {
        (u32::from(self.desktop.0), u32::from(self.desktop.1))
    }

    /// The pixels, for [`blit`](crate::render::blit) and the snapshot.
    pub fn pixels(&self) -> Pixels<'_> {
        Pixels {
            data: &self.pixels,
            width: self.canvas.0,
            height: self.canvas.1,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn take_damage(&mut self) -> Damage {
        std::mem::take(&mut self.damage)
    }

    /// Writes the part of `rect` inside the desktop, a row at a time, and records it as damage:
    /// `row(x, y, pixels)` fills the RGBX `pixels` of row `y` from column `x`. Returns how many
    /// pixels that part holds.
    pub fn paint(&mut self, rect: Rect, mut row: impl FnMut(u32, u32, &mut [u8])) -> u64 {
        let (width, height) = self.size();
        let rect = rect.clip(width, height);
        if rect.is_empty() {
            return 0;
        }
        let stride = usize::from(self.canvas.0) * 4;
        let (x, w) = (rect.x as usize * 4, rect.w as usize * 4);
        for y in rect.y..rect.bottom() {
            let at = y as usize * stride + x;
            row(rect.x, y, &mut self.pixels[at..at + w]);
        }
        self.damage.add(rect);
        rect.area()
    }

    /// Copies `rects` of `image` in and records them as damage; all of it, under a new
    /// generation, when the image is `new` or its size is not the frame's.
    fn copy_from(&mut self, image: &DecodedImage, desktop: (u16, u16), rects: &[Rect], new: bool) {
        let canvas = (image.width(), image.height());
        let (width, height) = (u32::from(desktop.0), u32::from(desktop.1));
        if new || canvas != self.canvas || desktop != self.desktop {
            self.pixels.clear();
            self.pixels.extend_from_slice(image.data());
            self.canvas = canvas;
            self.desktop = desktop;
            self.damage = Damage::full(width, height);
            self.generation += 1;
            return;
        }
        let stride = usize::from(canvas.0) * 4;
        let source = image.data();
        for rect in rects {
            let rect = rect.clip(width, height);
            if rect.is_empty() {
                continue;
            }
            let (x, w) = (rect.x as usize * 4, rect.w as usize * 4);
            for row in rect.y as usize..rect.bottom() as usize {
                let at = row * stride + x;
                self.pixels[at..at + w].copy_from_slice(&source[at..at + w]);
            }
            self.damage.add(rect);
        }
    }
}

/// The frame behind a mutex: the session holds it while copying what changed in, the window
/// while copying damaged rows out; neither holds it for longer.
pub struct SharedFrame(Mutex<Frame>);

impl SharedFrame {
    pub fn lock(&self) -> MutexGuard<'_, Frame> {
        // A panic while holding the lock leaves at worst a half-copied frame: keep showing it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The image the session decodes into, which nothing else touches: decoding (OpenH264, ZGFX,
/// the graphics compositor, a RemoteFX tile's planes) runs without any lock, and
/// [`Canvas::show`] copies only what changed to the [`SharedFrame`] the window reads (a
/// RemoteFX tile is converted into it, [`Canvas::paint`]), so neither waits on the other's work.
pub struct Canvas {
    /// IronRDP's image in [`PIXEL_FORMAT`], at least as large as the desktop (see [`canvas`]).
    image: DecodedImage,
    desktop: (u16, u16),
    /// Replaced since last shown: all of it is to be shown, whatever its size.
    replaced: bool,
    shown: Arc<SharedFrame>,
}

impl Canvas {
    /// A black desktop of this size, and the frame that shows it.
    pub fn new(width: u16, height: u16) -> Self {
        let (w, h) = canvas(width, height);
        Canvas {
            image: DecodedImage::new(PIXEL_FORMAT, w, h),
            desktop: (width, height),
            replaced: false,
            shown: Arc::new(SharedFrame(Mutex::new(Frame::new((w, h), (width, height))))),
        }
    }

    /// The frame the window and the snapshot read.
    pub fn frame(&self) -> Arc<SharedFrame> {
        Arc::clone(&self.shown)
    }

    /// For IronRDP's decoders to write into.
    pub fn image_mut(&mut self) -> &mut DecodedImage {
        &mut self.image
    }

    /// The image's own size, which IronRDP may change in place (EGFX ResetGraphics).
    pub fn image_size(&self) -> (u16, u16) {
        (self.image.width(), self.image.height())
    }

    /// The desktop's size.
    pub fn size(&self) -> (u32, u32) {
        (u32::from(self.desktop.0), u32::from(self.desktop.1))
    }

    /// IronRDP changed the image's size in place (an EGFX ResetGraphics): the desktop is all
    /// of it now.
    pub fn resized_in_place(&mut self) {
        self.desktop = self.image_size();
    }

    /// A new, black image of another size (server-side resize, reactivation, reconnection).
    pub fn replace(&mut self, width: u16, height: u16) {
        let (w, h) = canvas(width, height);
        self.image = DecodedImage::new(PIXEL_FORMAT, w, h);
        self.desktop = (width, height);
        self.replaced = true;
    }

    /// Paints straight into the shared frame, for pixels that are not in the image (the graphics
    /// pipeline's surfaces), once the frame has the image's size and anything new of it.
    pub fn paint(&mut self, paint: impl FnOnce(&mut Frame)) {
        self.show(&[]);
        paint(&mut self.shown.lock());
    }

    /// Shows what changed: copies `rects` to the shared frame (everything, after a new image).
    pub fn show(&mut self, rects: &[Rect]) {
        let new = std::mem::take(&mut self.replaced);
        self.shown
            .lock()
            .copy_from(&self.image, self.desktop, rects, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::blit::{blit, Layout, Placement};

    #[test]
    fn the_canvas_holds_whole_tiles_and_shows_only_the_desktop() {
        let mut canvas = Canvas::new(1022, 766);
        let shown = canvas.frame();
        assert_eq!(canvas.image_size(), (1024, 768));
        assert_eq!(shown.lock().size(), (1022, 766));
        assert_eq!(super::canvas(1024, 768), (1024, 768));
        // The blit reads the desktop's part of each padded row, and fills the window exactly.
        let placement = Placement::new(Layout::unscaled((1022, 766), (1022, 766)));
        let mut window = vec![1u32; 1022 * 766];
        blit(
            shown.lock().pixels(),
            &placement,
            Rect::new(0, 0, 1022, 766),
            &mut window,
        );
        assert!(
            window.iter().all(|&p| p == 0),
            "every window pixel was written"
        );
        canvas.replace(998, 702);
        assert_eq!(canvas.image_size(), (1024, 704));
        canvas.show(&[]);
        let frame = shown.lock();
        assert_eq!((frame.size(), frame.generation()), ((998, 702), 1));
        assert_eq!(frame.pixels().data.len(), 1024 * 704 * 4);
    }

    #[test]
    fn showing_copies_the_changed_rects_and_nothing_else() {
        let mut canvas = Canvas::new(100, 50);
        let shown = canvas.frame();
        // Mark what the window holds, then show two changes of the (black) canvas.
        shown.lock().pixels.fill(0xff);
        let changed = [Rect::new(10, 5, 3, 2), Rect::new(90, 40, 30, 30)];
        canvas.show(&changed);
        let mut frame = shown.lock();
        let stride = 128 * 4;
        let black = |x: usize, y: usize| frame.pixels[y * stride + x * 4] == 0;
        assert!(black(10, 5) && black(12, 6) && !black(13, 6) && !black(10, 7));
        // Clipped to the desktop: nothing past its right edge is copied.
        assert!(black(99, 49) && !black(100, 49));
        assert_eq!(
            frame.take_damage().rects(),
            &[Rect::new(10, 5, 3, 2), Rect::new(90, 40, 10, 10)]
        );
        assert_eq!(frame.generation(), 0);
        drop(frame);
        // A new image of the same size (a reconnection) is shown whole.
        canvas.replace(100, 50);
        canvas.show(&[]);
        let mut frame = shown.lock();
        assert!(frame.pixels.iter().all(|&p| p == 0));
        assert_eq!(frame.take_damage().rects(), &[Rect::new(0, 0, 100, 50)]);
        assert_eq!(frame.generation(), 1);
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
