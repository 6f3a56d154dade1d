//! From the shared frame to a window's pixel buffer: where the desktop sits in the window
//! ([`Layout`], [`Placement`]), the copy of damaged rectangles ([`blit`]), and what an older back
//! buffer still misses ([`DamageTracker`]).
//!
//! Pure pixel work with no window system, so the benches and the fuzz targets run it too. The
//! blit swaps red and blue into softbuffer's `0RGB` `u32` and clears the top byte (IronRDP writes
//! 0xFF there; softbuffer wants 0), with no branch per pixel.

use super::frame::{Damage, Pixels, Rect};

/// What the window shows outside the desktop (letterbox bars).
pub const BACKGROUND: u32 = 0x0020_2020;

/// Remembers the damage of recent presents, because a window buffer of age `n` holds the
/// frame from `n` presents ago and needs everything that changed since.
#[derive(Debug, Default)]
pub struct DamageTracker {
    /// Newest first: the damage of each of the last presents.
    history: Vec<Damage>,
}

impl DamageTracker {
    const DEPTH: usize = 4;

    /// Forget everything: after a resize or layout change every buffer is stale.
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// Records this present's damage and returns what a buffer of `age` must redraw, or
    /// `None` for "everything" (unknown contents, or older than we remember).
    pub fn next(&mut self, damage: Damage, age: u8) -> Option<Damage> {
        let age = usize::from(age);
        let mut region = damage.clone();
        let known = age >= 1 && age <= self.history.len() + 1;
        if known {
            for past in &self.history[..age - 1] {
                region.extend(past);
            }
        }
        self.history.insert(0, damage);
        self.history.truncate(Self::DEPTH);
        known.then_some(region)
    }
}

/// Where the desktop sits in the window and at what size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub desktop: (u32, u32),
    pub window: (u32, u32),
    /// The desktop's area in the window.
    pub view: Rect,
}

impl Layout {
    /// 1:1 at the top left; a smaller window cuts it off at its edge.
    pub fn unscaled(desktop: (u32, u32), window: (u32, u32)) -> Self {
        Layout {
            desktop,
            window,
            view: Rect::new(0, 0, desktop.0, desktop.1),
        }
    }

    /// Scaled to fit the window, aspect kept, centred between bars.
    pub fn fit(desktop: (u32, u32), window: (u32, u32)) -> Self {
        let (dw, dh) = (u64::from(desktop.0.max(1)), u64::from(desktop.1.max(1)));
        let (ww, wh) = (u64::from(window.0), u64::from(window.1));
        // Compare ww/dw with wh/dh without floating point.
        let (w, h) = if ww * dh <= wh * dw {
            (ww, ww * dh / dw)
        } else {
            (wh * dw / dh, wh)
        };
        let (w, h) = (to_u32(w), to_u32(h));
        Layout {
            desktop,
            window,
            view: Rect::new((window.0 - w) / 2, (window.1 - h) / 2, w, h),
        }
    }

    pub fn is_scaled(&self) -> bool {
        (self.view.w, self.view.h) != self.desktop
    }

    /// The desktop pixel under a window position, clamped to the desktop's edge.
    pub fn to_desktop(&self, x: f64, y: f64) -> (u16, u16) {
        let map = |pos: f64, start: u32, len: u32, size: u32| {
            if len == 0 || size == 0 {
                return 0;
            }
            let rel = (pos - f64::from(start)) * f64::from(size) / f64::from(len);
            // INVARIANT: clamped to 0..size-1, and size comes from a u16 desktop size.
            u16::try_from(rel.floor().clamp(0.0, f64::from(size - 1)) as u32).unwrap_or(u16::MAX)
        };
        (
            map(x, self.view.x, self.view.w, self.desktop.0),
            map(y, self.view.y, self.view.h, self.desktop.1),
        )
    }

    /// The window area a desktop rect covers once laid out.
    pub fn to_window(&self, r: Rect) -> Rect {
        if !self.is_scaled() {
            return Rect::new(r.x + self.view.x, r.y + self.view.y, r.w, r.h)
                .clip(self.window.0, self.window.1);
        }
        let scale = |v: u32, len: u32, size: u32| {
            to_u32(u64::from(v) * u64::from(len) / u64::from(size.max(1)))
        };
        let scale_up = |v: u32, len: u32, size: u32| {
            to_u32((u64::from(v) * u64::from(len)).div_ceil(u64::from(size.max(1))))
        };
        let x0 = self.view.x + scale(r.x, self.view.w, self.desktop.0);
        let y0 = self.view.y + scale(r.y, self.view.h, self.desktop.1);
        let x1 = self.view.x + scale_up(r.right(), self.view.w, self.desktop.0);
        let y1 = self.view.y + scale_up(r.bottom(), self.view.h, self.desktop.1);
        Rect::new(x0, y0, x1 - x0, y1 - y0).clip(self.window.0, self.window.1)
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// One `RgbX32` pixel as softbuffer's `0RGB`, right on either endianness; the X byte (IronRDP's
/// 0xFF) becomes 0.
#[inline(always)]
fn pixel(rgbx: &[u8]) -> u32 {
    // One word and three masks rather than three bytes: the compiler vectorises this.
    let v = u32::from_le_bytes([rgbx[0], rgbx[1], rgbx[2], rgbx[3]]);
    ((v >> 16) & 0xff) | (v & 0xff00) | ((v & 0xff) << 16)
}

/// Converts one unscaled row: [`pixel`] over each, AVX2 where the CPU has it (a window's
/// present copies every changed pixel through here).
fn convert_row(dst: &mut [u32], src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as just checked.
        unsafe { row_avx2(dst, src) };
        return;
    }
    row_any(dst, src);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_avx2(dst: &mut [u32], src: &[u8]) {
    row_any(dst, src);
}

#[inline(always)]
fn row_any(dst: &mut [u32], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = pixel(s);
    }
}

/// A layout ready to draw into: when it scales, the desktop pixel under the centre of each
/// window column and row of the view (nearest neighbour), computed once per layout rather than
/// on every update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub layout: Layout,
    /// Byte offset in a desktop row of the pixel under each view column.
    columns: Vec<usize>,
    /// Desktop row under each view row.
    rows: Vec<usize>,
}

impl Placement {
    pub fn new(layout: Layout) -> Self {
        let (columns, rows) = if layout.is_scaled() {
            let view = layout.view;
            let (w, h) = layout.desktop;
            let centre = |i: u32, len: u32, size: u32| {
                let rel = u64::from(i) * 2 + 1;
                let at = (rel * u64::from(size)) / (u64::from(len) * 2);
                usize::try_from(at.min(u64::from(size.saturating_sub(1)))).unwrap_or(0)
            };
            (
                (0..view.w).map(|x| centre(x, view.w, w) * 4).collect(),
                (0..view.h).map(|y| centre(y, view.h, h)).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Placement {
            layout,
            columns,
            rows,
        }
    }
}

/// Copies desktop `rect` into the window buffer at the layout's place, scaling when the layout
/// does. Touches only the rows and columns `rect` covers, and allocates nothing. The image may
/// be larger than the layout's desktop (the frame's canvas is whole tiles); only the desktop's part is read.
pub fn blit<'a>(image: impl Into<Pixels<'a>>, placement: &Placement, rect: Rect, dst: &mut [u32]) {
    let image = image.into();
    let layout = &placement.layout;
    let (w, h) = layout.desktop;
    let rect = rect.clip(w, h);
    let window_pixels = layout.window.0 as usize * layout.window.1 as usize;
    let fits = u32::from(image.width) >= w
        && u32::from(image.height) >= h
        && image.data.len() >= usize::from(image.width) * usize::from(image.height) * 4;
    if rect.is_empty() || !fits || dst.len() < window_pixels {
        return;
    }
    let src = image.data;
    let src_stride = usize::from(image.width) * 4;
    let dst_stride = layout.window.0 as usize;
    if !layout.is_scaled() {
        let target = layout.to_window(rect);
        for row in 0..target.h as usize {
            let sy = rect.y as usize + row;
            let src_row = &src[sy * src_stride + rect.x as usize * 4..][..target.w as usize * 4];
            let start = (target.y as usize + row) * dst_stride + target.x as usize;
            convert_row(&mut dst[start..start + target.w as usize], src_row);
        }
        extend_edges(layout, target, dst);
        return;
    }
    // Scaled: each window pixel takes the desktop pixel under its centre.
    let target = layout
        .to_window(rect)
        .clip(layout.view.right(), layout.view.bottom());
    let (vx, vy) = (layout.view.x as usize, layout.view.y as usize);
    let columns = &placement.columns[target.x as usize - vx..][..target.w as usize];
    for wy in target.y as usize..target.bottom() as usize {
        let src_row = &src[placement.rows[wy - vy] * src_stride..][..src_stride];
        let start = wy * dst_stride + target.x as usize;
        let dst_row = &mut dst[start..start + target.w as usize];
        for (d, &offset) in dst_row.iter_mut().zip(columns) {
            *d = pixel(&src_row[offset..offset + 4]);
        }
    }
    extend_edges(layout, target, dst);
}

/// The widest bar that is drawn as more desktop rather than as a bar. Windows of odd size meet
/// desktops of even size (Display Control asks for even widths) and aspect ratios round, which
/// leaves bars of a pixel or two: shown as background they look like a black edge.
const THIN_BAR: u32 = 2;

/// Continues the desktop's edge pixels over the thin bars beside `target` (window pixels just
/// written), so that the desktop reaches the window's edge.
fn extend_edges(layout: &Layout, target: Rect, dst: &mut [u32]) {
    let view = layout.view;
    let thin = |bar: u32| if bar <= THIN_BAR { bar } else { 0 };
    let left = if target.x == view.x { thin(view.x) } else { 0 };
    let right = if target.right() == view.right() {
        thin(layout.window.0.saturating_sub(view.right()))
    } else {
        0
    };
    let top = if target.y == view.y { thin(view.y) } else { 0 };
    let bottom = if target.bottom() == view.bottom() {
        thin(layout.window.1.saturating_sub(view.bottom()))
    } else {
        0
    };
    if target.is_empty() || left + right + top + bottom == 0 {
        return;
    }
    let stride = layout.window.0 as usize;
    let (x0, x1) = (target.x as usize, target.right() as usize);
    for y in target.y as usize..target.bottom() as usize {
        let row = &mut dst[y * stride..][..stride];
        let (first, last) = (row[x0], row[x1 - 1]);
        row[x0 - left as usize..x0].fill(first);
        row[x1..x1 + right as usize].fill(last);
    }
    // Whole rows, corners included, from the first and last rows written.
    let (from, to) = (x0 - left as usize, x1 + right as usize);
    let copy_row = |dst: &mut [u32], source: usize, y: usize| {
        dst.copy_within(
            source * stride + from..source * stride + to,
            y * stride + from,
        );
    };
    for y in view.y - top..view.y {
        copy_row(dst, target.y as usize, y as usize);
    }
    for y in view.bottom()..view.bottom() + bottom {
        copy_row(dst, target.bottom() as usize - 1, y as usize);
    }
}

/// Paints the whole window: bars, then the whole desktop. For buffers of unknown contents.
pub fn blit_all<'a>(image: impl Into<Pixels<'a>>, placement: &Placement, dst: &mut [u32]) {
    let layout = &placement.layout;
    let view = layout.view;
    let stride = layout.window.0 as usize;
    if stride == 0 {
        return;
    }
    for (y, row) in dst.chunks_exact_mut(stride).enumerate() {
        let y = y as u32;
        if y < view.y || y >= view.bottom() {
            row.fill(BACKGROUND);
        } else {
            let left = (view.x as usize).min(row.len());
            let right = (view.right() as usize).min(row.len());
            row[..left].fill(BACKGROUND);
            row[right..].fill(BACKGROUND);
        }
    }
    let (w, h) = layout.desktop;
    blit(image, placement, Rect::new(0, 0, w, h), dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::frame::PIXEL_FORMAT;
    use ironrdp_session::image::DecodedImage;

    #[test]
    fn tracker_redraws_what_an_old_buffer_missed() {
        let mut t = DamageTracker::default();
        let a = Damage::full(10, 10);
        assert_eq!(t.next(a, 0), None);
        let mut b = Damage::default();
        b.add(Rect::new(1, 1, 1, 1));
        assert_eq!(t.next(b.clone(), 1), Some(b.clone()));
        let mut c = Damage::default();
        c.add(Rect::new(5, 5, 1, 1));
        let region = t.next(c, 2).unwrap();
        assert_eq!(region.rects().len(), 2);
        assert_eq!(t.next(Damage::default(), 9), None);
    }

    #[test]
    fn fit_keeps_aspect_and_maps_the_mouse_back() {
        let layout = Layout::fit((1000, 500), (500, 500));
        assert_eq!(layout.view, Rect::new(0, 125, 500, 250));
        assert_eq!(layout.to_desktop(250.0, 250.0), (500, 250));
        assert_eq!(layout.to_desktop(0.0, 0.0), (0, 0));
        assert_eq!(layout.to_desktop(499.9, 374.9), (999, 499));
        let unscaled = Layout::unscaled((100, 100), (50, 200));
        assert!(!unscaled.is_scaled());
        assert_eq!(unscaled.to_desktop(10.5, 150.0), (10, 99));
        assert_eq!(
            unscaled.to_window(Rect::new(40, 0, 20, 5)),
            Rect::new(40, 0, 10, 5)
        );
    }

    #[test]
    fn placement_samples_pixel_centres() {
        // Halving: window pixel i sees desktop pixel 2i+1 (the centre of 2i..2i+2).
        let placement = Placement::new(Layout::fit((8, 4), (4, 2)));
        assert_eq!(placement.columns, [4, 12, 20, 28]);
        assert_eq!(placement.rows, [1, 3]);
        // Unscaled layouts need no maps.
        assert!(Placement::new(Layout::unscaled((8, 4), (4, 2)))
            .columns
            .is_empty());
    }

    #[test]
    fn thin_bars_continue_the_desktop_edge() {
        // IronRDP's image starts black (0 once the X byte is cleared); bars are BACKGROUND.
        let image = DecodedImage::new(PIXEL_FORMAT, 4, 2);
        // An odd window one pixel wider and taller than the even desktop.
        let placement = Placement::new(Layout::unscaled((4, 2), (5, 3)));
        let mut dst = vec![BACKGROUND; 15];
        blit_all(&image, &placement, &mut dst);
        assert_eq!(dst, [0; 15], "the desktop reaches the window's edge");
        // An update of the bottom right pixel alone reaches into both bars and the corner.
        let mut dst = vec![7; 15];
        blit(&image, &placement, Rect::new(3, 1, 1, 1), &mut dst);
        assert_eq!([dst[8], dst[9], dst[13], dst[14]], [0; 4]);
        assert_eq!(dst.iter().filter(|&&p| p == 7).count(), 11);
        // A wide bar is a bar.
        let placement = Placement::new(Layout::unscaled((4, 2), (8, 2)));
        let mut dst = vec![0; 16];
        blit_all(&image, &placement, &mut dst);
        assert_eq!(dst[4..8], [BACKGROUND; 4]);
    }

    #[test]
    fn a_fitted_desktop_fills_a_window_one_pixel_off_its_aspect() {
        let image = DecodedImage::new(PIXEL_FORMAT, 8, 6);
        // 8x6 into 9x7: fitted at 9x6, and the 1-pixel bar below is drawn as the last row.
        let placement = Placement::new(Layout::fit((8, 6), (9, 7)));
        assert_eq!(placement.layout.view, Rect::new(0, 0, 9, 6));
        let mut dst = vec![BACKGROUND; 63];
        blit_all(&image, &placement, &mut dst);
        assert_eq!(dst, [0; 63]);
    }

    #[test]
    fn blit_copies_only_the_rect_and_clears_the_top_byte() {
        let mut image = DecodedImage::new(PIXEL_FORMAT, 4, 4);
        let placement = Placement::new(Layout::unscaled((4, 4), (4, 4)));
        // An all-black image still has 0xFF in every X byte.
        let mut dst = vec![7u32; 16];
        blit(&image, &placement, Rect::new(1, 1, 2, 1), &mut dst);
        assert_eq!(dst[5], 0);
        assert_eq!(dst[6], 0);
        assert_eq!(dst.iter().filter(|&&p| p == 7).count(), 14);
        image = DecodedImage::new(PIXEL_FORMAT, 4, 4);
        blit_all(
            &image,
            &Placement::new(Layout::unscaled((4, 4), (0, 4))),
            &mut [],
        );
    }
}
