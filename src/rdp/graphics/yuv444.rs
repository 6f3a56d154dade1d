//! The YUV 4:4:4 picture of a surface painted with AVC444 (MS-RDPEGFX 3.3.8.3.2 and 3.3.8.3.3).
//!
//! Each update brings a main view (luma, and chroma averaged over 2x2 blocks), an auxiliary
//! view (the other three chroma samples of each block), or both. The picture keeps what earlier
//! updates left, so that a luma-only or chroma-only update combines with it.
//!
//! ironrdp-egfx has such a picture too, but converts it pixel by pixel in scalar code, a large
//! part of a session's CPU with H.264. This one combines whole rows and converts with the
//! `yuv` crate's SIMD code, straight into the caller's buffer.

use ironrdp_pdu::geometry::ExclusiveRectangle;
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

/// Pictures are coded in whole macroblocks, so the planes are padded to them.
const MACROBLOCK: usize = 16;

/// A sample recovered by the reverse chroma filter replaces the block's average only when they
/// differ by at least this much: less is quantization noise (MS-RDPEGFX 3.3.8.3.2).
const REVERSE_FILTER_THRESHOLD: u8 = 30;

/// How the auxiliary view packs the chroma samples the main view leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// AVC444: odd chroma rows in the auxiliary luma, half a macroblock row each for U and V.
    V1,
    /// AVC444v2: odd chroma columns in the auxiliary luma, U on the left half and V on the right.
    V2,
}

/// A decoded 4:2:0 picture, borrowed from the decoder.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub chroma_stride: usize,
    pub width: usize,
    pub height: usize,
}

impl<'a> View<'a> {
    /// Luma row `row`, `width` bytes, or `None` past the picture.
    pub fn luma(&self, row: usize) -> Option<&'a [u8]> {
        plane_row(self.y, self.y_stride, self.width, self.height, row)
    }

    /// Chroma row `row` of `plane` (`self.u` or `self.v`), or `None` past the picture.
    pub fn chroma(&self, plane: &'a [u8], row: usize) -> Option<&'a [u8]> {
        let (width, height) = (self.width.div_ceil(2), self.height.div_ceil(2));
        plane_row(plane, self.chroma_stride, width, height, row)
    }
}

fn plane_row(
    plane: &[u8],
    stride: usize,
    width: usize,
    height: usize,
    row: usize,
) -> Option<&[u8]> {
    if row >= height {
        return None;
    }
    plane.get(row * stride..)?.get(..width)
}

/// The combined picture. Between conversions, the even-row, even-column chroma sample of each
/// block holds the main view's average; the reverse filter runs when converting.
pub struct Picture {
    width: usize,
    height: usize,
    /// Bytes per plane row: `width` in whole macroblocks, so a block's samples are always there.
    stride: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// The filtered chroma of the rows being converted, kept to allocate once.
    filtered_u: Vec<u8>,
    filtered_v: Vec<u8>,
}

impl Picture {
    /// A black picture.
    pub fn new(width: u16, height: u16) -> Picture {
        let stride = usize::from(width).next_multiple_of(MACROBLOCK);
        let size = stride * usize::from(height).next_multiple_of(MACROBLOCK);
        Picture {
            width: usize::from(width),
            height: usize::from(height),
            stride,
            y: vec![0; size],
            u: vec![128; size],
            v: vec![128; size],
            filtered_u: Vec::new(),
            filtered_v: Vec::new(),
        }
    }

    /// Bytes [`Picture::new`] allocates for a `width` by `height` picture.
    pub fn allocation(width: u16, height: u16) -> usize {
        let stride = usize::from(width).next_multiple_of(MACROBLOCK);
        3 * stride * usize::from(height).next_multiple_of(MACROBLOCK)
    }

    /// Bytes this picture holds, for the budget it was allowed.
    pub fn allocated_bytes(&self) -> usize {
        self.y.len() + self.u.len() + self.v.len()
    }

    /// Takes luma and averaged chroma from a main view within `rects`. Until an auxiliary view
    /// covers them, the whole of each 2x2 block there takes the average.
    pub fn apply_main(&mut self, view: &View<'_>, rects: &[ExclusiveRectangle]) {
        for rect in rects {
            let Some(area) = self.blocks(rect, view) else {
                continue;
            };
            let left = usize::from(rect.left);
            let right = usize::from(rect.right).min(self.width).min(view.width);
            for row in area.top..area.bottom {
                let (Some(luma), Some(u), Some(v)) = (
                    view.luma(row),
                    view.chroma(view.u, row / 2),
                    view.chroma(view.v, row / 2),
                ) else {
                    break;
                };
                let line = row * self.stride;
                if (usize::from(rect.top)..usize::from(rect.bottom)).contains(&row) && left < right
                {
                    self.y[line + left..line + right].copy_from_slice(&luma[left..right]);
                }
                let chroma = area.left / 2..area.right / 2;
                widen(
                    &mut self.u[line + area.left..line + area.right],
                    &u[chroma.clone()],
                );
                widen(&mut self.v[line + area.left..line + area.right], &v[chroma]);
            }
        }
    }

    /// Takes the three chroma samples of each block that the main view averages from an
    /// auxiliary view, within `rects`.
    pub fn apply_auxiliary(
        &mut self,
        layout: Layout,
        view: &View<'_>,
        rects: &[ExclusiveRectangle],
    ) {
        for rect in rects {
            let Some(area) = self.blocks(rect, view) else {
                continue;
            };
            match layout {
                Layout::V1 => self.auxiliary_v1(view, &area),
                Layout::V2 => self.auxiliary_v2(view, &area),
            }
        }
    }

    /// AVC444: in each macroblock row of the auxiliary luma, rows 0 to 7 are the odd U rows and
    /// 8 to 15 the odd V rows; its chroma planes are the odd columns of the even rows.
    fn auxiliary_v1(&mut self, view: &View<'_>, area: &Blocks) {
        let columns = area.left..area.right;
        for row in (area.top..area.bottom).step_by(2) {
            let (even, odd) = (row * self.stride, (row + 1) * self.stride);
            let within = (row + 1) % MACROBLOCK / 2;
            let base = (row + 1) - (row + 1) % MACROBLOCK;
            if let (Some(u), Some(v)) = (
                view.luma(base + within),
                view.luma(base + MACROBLOCK / 2 + within),
            ) {
                if let (Some(u), Some(v)) = (u.get(columns.clone()), v.get(columns.clone())) {
                    self.u[odd + area.left..odd + area.right].copy_from_slice(u);
                    self.v[odd + area.left..odd + area.right].copy_from_slice(v);
                }
            }
            if let (Some(u), Some(v)) = (view.chroma(view.u, row / 2), view.chroma(view.v, row / 2))
            {
                let chroma = area.left / 2..area.right / 2;
                odd_columns(
                    &mut self.u[even + area.left..even + area.right],
                    &u[chroma.clone()],
                );
                odd_columns(&mut self.v[even + area.left..even + area.right], &v[chroma]);
            }
        }
    }

    /// AVC444v2: the auxiliary luma holds every row's odd columns, U on its left half and V on
    /// its right; its chroma planes hold the even columns of the odd rows, U plane for columns
    /// that are multiples of four and V plane for the others, U on the left and V on the right
    /// of each.
    fn auxiliary_v2(&mut self, view: &View<'_>, area: &Blocks) {
        // The halves split the coded width, which is in whole macroblocks.
        let half = view.width.next_multiple_of(MACROBLOCK) / 2;
        let quarter = half / 2;
        let (luma_left, luma_right) = (area.left / 2, area.right / 2);
        for row in area.top..area.bottom {
            let line = row * self.stride;
            let Some(luma) = view
                .y
                .get(row * view.y_stride..)
                .filter(|_| row < view.height)
            else {
                break;
            };
            if let (Some(u), Some(v)) = (
                luma.get(luma_left..luma_right),
                luma.get(half + luma_left..half + luma_right),
            ) {
                odd_columns(&mut self.u[line + area.left..line + area.right], u);
                odd_columns(&mut self.v[line + area.left..line + area.right], v);
            }
            if row % 2 == 0 {
                continue;
            }
            let chroma = row / 2 * view.chroma_stride;
            let (Some(first), Some(second)) = (view.u.get(chroma..), view.v.get(chroma..)) else {
                continue;
            };
            let (u, v) = (
                &mut self.u[line..line + self.stride],
                &mut self.v[line..line + self.stride],
            );
            every_fourth(u, v, first, quarter, (area.left, area.right), 0);
            every_fourth(u, v, second, quarter, (area.left, area.right), 2);
        }
    }

    /// Converts `rect` (inside the picture) to RGBX rows `stride` bytes apart in `out`, after
    /// the reverse chroma filter.
    pub fn write_rgbx(
        &mut self,
        rect: &ExclusiveRectangle,
        out: &mut [u8],
        stride: usize,
    ) -> Result<(), yuv::YuvError> {
        let (left, top) = (usize::from(rect.left), usize::from(rect.top));
        let width = usize::from(rect.right.saturating_sub(rect.left));
        let height = usize::from(rect.bottom.saturating_sub(rect.top));
        if width == 0 || height == 0 || left + width > self.width || top + height > self.height {
            return Err(yuv::YuvError::ZeroBaseSize);
        }
        // The filter works on whole blocks: filter from the even column at or before `left`.
        let from = left & !1;
        let span = (left + width).next_multiple_of(2) - from;
        self.filtered_u.resize(span * height, 0);
        self.filtered_v.resize(span * height, 0);
        for (i, row) in (top..top + height).enumerate() {
            let line = row * self.stride + from;
            for (plane, filtered) in [
                (&self.u, &mut self.filtered_u),
                (&self.v, &mut self.filtered_v),
            ] {
                let out = &mut filtered[i * span..][..span];
                let this = &plane[line..line + span];
                if row % 2 == 1 {
                    out.copy_from_slice(this);
                    continue;
                }
                let below = &plane[line + self.stride..line + self.stride + span];
                // Iterators here: in the release build they are a third faster than indexing.
                let blocks = out.chunks_exact_mut(2).zip(this.chunks_exact(2));
                for ((out, this), below) in blocks.zip(below.chunks_exact(2)) {
                    out[0] = reverse_filter(this[0], this[1], below[0], below[1]);
                    out[1] = this[1];
                }
            }
        }
        let skip = left - from;
        let image = YuvPlanarImage {
            y_plane: &self.y[top * self.stride + left..],
            y_stride: self.stride as u32,
            u_plane: &self.filtered_u[skip..],
            u_stride: span as u32,
            v_plane: &self.filtered_v[skip..],
            v_stride: span as u32,
            width: width as u32,
            height: height as u32,
        };
        yuv::yuv444_to_rgba(
            &image,
            out,
            stride as u32,
            YuvRange::Full,
            YuvStandardMatrix::Bt709,
        )
    }

    /// The part of `rect` inside both the picture and the view, widened to whole 2x2 blocks
    /// (which the padded planes always hold).
    fn blocks(&self, rect: &ExclusiveRectangle, view: &View<'_>) -> Option<Blocks> {
        let left = usize::from(rect.left) & !1;
        let top = usize::from(rect.top) & !1;
        // Whole blocks of the view too: its chroma covers `width / 2` rounded up.
        let right = usize::from(rect.right)
            .min(self.width)
            .min(view.width)
            .next_multiple_of(2);
        let bottom = usize::from(rect.bottom)
            .min(self.height)
            .min(view.height)
            .next_multiple_of(2);
        (left < right && top < bottom).then_some(Blocks {
            left,
            top,
            right,
            bottom,
        })
    }
}

/// Columns and rows in whole 2x2 blocks, right and bottom exclusive.
struct Blocks {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
}

// The loops below step an index by hand rather than iterate: the optimiser makes the two equally
// fast, and without it (the debug build the tests and the demo run) a `while` loop is several
// times faster than a range's or an iterator adapter's calls.

/// Each sample of `half` twice into `full`.
fn widen(full: &mut [u8], half: &[u8]) {
    let count = half.len().min(full.len() / 2);
    let mut i = 0;
    while i < count {
        full[2 * i] = half[i];
        full[2 * i + 1] = half[i];
        i += 1;
    }
}

/// The samples of `half` into the odd columns of `full`.
fn odd_columns(full: &mut [u8], half: &[u8]) {
    let count = half.len().min(full.len() / 2);
    let mut i = 0;
    while i < count {
        full[2 * i + 1] = half[i];
        i += 1;
    }
}

/// Columns `4k + offset` of the rows `u` and `v` within `left..right`: `u` from `source[k]`, `v`
/// from `source[quarter + k]`.
fn every_fourth(
    u: &mut [u8],
    v: &mut [u8],
    source: &[u8],
    quarter: usize,
    (left, right): (usize, usize),
    offset: usize,
) {
    let first = left.saturating_sub(offset).div_ceil(4);
    let end = right.saturating_sub(offset).div_ceil(4);
    if first >= end {
        return;
    }
    let (Some(from_u), Some(from_v)) = (
        source.get(first..end),
        source.get(quarter + first..quarter + end),
    ) else {
        return;
    };
    let (count, room) = (from_u.len().min(from_v.len()), u.len().min(v.len()));
    let mut k = 0;
    while k < count && 4 * (first + k) + offset < room {
        u[4 * (first + k) + offset] = from_u[k];
        v[4 * (first + k) + offset] = from_v[k];
        k += 1;
    }
}

/// The block's even-row, even-column sample from its average and its three other samples.
#[inline(always)] // Called for a quarter of the pixels: inlined even in the debug build.
fn reverse_filter(average: u8, right: u8, below: u8, diagonal: u8) -> u8 {
    let reversed = 4 * average as i16 - right as i16 - below as i16 - diagonal as i16;
    let reversed = if reversed < 0 {
        0
    } else if reversed > 255 {
        255
    } else {
        reversed as u8
    };
    if reversed.abs_diff(average) < REVERSE_FILTER_THRESHOLD {
        average
    } else {
        reversed
    }
}

#[cfg(test)]
mod tests {
    use ironrdp_egfx::avc444::{Avc444Layout, Yuv444Frame};
    use ironrdp_egfx::decode::Yuv420Frame;

    use super::*;
    use crate::rdp::graphics::area::rect;

    /// Planes copied out of ironrdp-egfx's view, which only lends rows.
    struct Planes {
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        width: usize,
        height: usize,
    }

    impl Planes {
        fn of(frame: &Yuv420Frame) -> Planes {
            let (width, height) = (usize::from(frame.width()), usize::from(frame.height()));
            Planes {
                y: (0..height)
                    .flat_map(|r| frame.luma_row(r).unwrap().to_vec())
                    .collect(),
                u: (0..height.div_ceil(2))
                    .flat_map(|r| frame.u_row(r).unwrap().to_vec())
                    .collect(),
                v: (0..height.div_ceil(2))
                    .flat_map(|r| frame.v_row(r).unwrap().to_vec())
                    .collect(),
                width,
                height,
            }
        }

        fn view(&self) -> View<'_> {
            View {
                y: &self.y,
                u: &self.u,
                v: &self.v,
                y_stride: self.width,
                chroma_stride: self.width.div_ceil(2),
                width: self.width,
                height: self.height,
            }
        }
    }

    /// A desktop-like picture: flat areas, sharp coloured edges and noise.
    fn picture(width: u16, height: u16) -> Vec<u8> {
        let mut seed = 0x2545_f491_u32;
        let mut rgba = Vec::new();
        for y in 0..height {
            for x in 0..width {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let [noise, ..] = seed.to_le_bytes();
                let pixel = match (x / 7 + y / 5) % 4 {
                    0 => [0x30, 0x50, 0x80],
                    1 => [0xe0, 0x40, 0x20],
                    2 => [noise, noise / 2, 255 - noise],
                    _ => [x as u8, y as u8, (x ^ y) as u8],
                };
                rgba.extend_from_slice(&[pixel[0], pixel[1], pixel[2], 0xff]);
            }
        }
        rgba
    }

    /// Against ironrdp-egfx's picture, which MS-RDPEGFX conformance tests cover: the same
    /// views give the same pixels, up to the two conversions' rounding.
    fn matches_ironrdp(layout: Layout, theirs: Avc444Layout) {
        let (width, height) = (70, 37);
        let source = Yuv444Frame::from_rgba(&picture(width, height), width, height).unwrap();
        let (main, auxiliary) = source.split(theirs).unwrap();
        let (main, auxiliary) = (Planes::of(&main), Planes::of(&auxiliary));
        let updates = [
            vec![rect(0, 0, width, height)],
            vec![rect(3, 5, 41, 22), rect(50, 1, 69, 36)],
        ];
        for rects in updates {
            let mut expected = Yuv444Frame::new(width, height);
            let mut ours = Picture::new(width, height);
            // Luma first, then chroma, as a server sends after a luma-only update.
            expected.apply_main_view(&main_frame(&main), &rects);
            ours.apply_main(&main.view(), &rects);
            expected.apply_auxiliary_view(theirs, &main_frame(&auxiliary), &rects);
            ours.apply_auxiliary(layout, &auxiliary.view(), &rects);
            for rect in &rects {
                let want = expected.to_rgba(rect);
                let mut got = vec![0; want.len()];
                let stride = usize::from(rect.right - rect.left) * 4;
                ours.write_rgbx(rect, &mut got, stride).unwrap();
                for (i, (want, got)) in want.chunks(4).zip(got.chunks(4)).enumerate() {
                    let off = want[..3].iter().zip(got).map(|(a, b)| a.abs_diff(*b)).max();
                    assert!(
                        off <= Some(2),
                        "{layout:?} {rect:?} pixel {i}: {want:?} vs {got:?}"
                    );
                }
            }
        }
    }

    fn main_frame(planes: &Planes) -> Yuv420Frame {
        let (w, h) = (planes.width as u16, planes.height as u16);
        let stride = planes.width.div_ceil(2);
        let (y, u, v) = (planes.y.clone(), planes.u.clone(), planes.v.clone());
        Yuv420Frame::new(w, h, y, planes.width, u, v, stride).unwrap()
    }

    #[test]
    fn avc444_combines_as_ironrdp_does() {
        matches_ironrdp(Layout::V1, Avc444Layout::V1);
    }

    #[test]
    fn avc444v2_combines_as_ironrdp_does() {
        matches_ironrdp(Layout::V2, Avc444Layout::V2);
    }

    #[test]
    fn a_luma_only_update_keeps_the_average_chroma() {
        let (width, height) = (32, 16);
        let source = Yuv444Frame::from_rgba(&picture(width, height), width, height).unwrap();
        let (main, _) = source.split(Avc444Layout::V2).unwrap();
        let main = Planes::of(&main);
        let mut ours = Picture::new(width, height);
        ours.apply_main(&main.view(), &[rect(0, 0, width, height)]);
        // Every sample of a block is the average, so the filter changes nothing.
        let block =
            |plane: &[u8], at: usize| [plane[at], plane[at + 1], plane[at + 32], plane[at + 33]];
        assert_eq!(block(&ours.u, 2), [ours.u[2]; 4]);
        let mut out = vec![0; 32 * 16 * 4];
        ours.write_rgbx(&rect(0, 0, width, height), &mut out, 32 * 4)
            .unwrap();
    }
}
