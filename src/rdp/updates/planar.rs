//! RDP 6.0 planar bitmaps with ARGB planes (MS-RDPEGDI 2.2.2.5.1), what FreeRDP's servers and
//! Windows send without colour loss: the planes are decoded (run-length and line deltas,
//! MS-RDPEGDI 3.1.9.2) or taken as they came, and interleaved into RGBX rows.
//!
//! Why not IronRDP's planar decoder, which `bitmap.rs` still uses for AYCoCg planes: it writes
//! RGB three bytes at a time through a growing `Vec` (a call to `memmove` a pixel), then ecsrdp
//! converted that into RGBX: two thirds of a bitmap session's decoding time.

use ironrdp_pdu::bitmap::rdp6::BitmapStream;

/// The planes of the last bitmap, kept for their allocation.
#[derive(Default)]
pub struct Planar {
    planes: Vec<u8>,
}

/// A bitmap's red, green and blue planes, `width` values a line, bottom line first.
pub struct Planes<'a> {
    red: &'a [u8],
    green: &'a [u8],
    blue: &'a [u8],
    width: usize,
}

impl Planar {
    /// The colour planes of an ARGB bitmap of `width`×`height` (the alpha plane, if any, is
    /// passed over: the desktop is opaque).
    pub fn decode<'a>(
        &'a mut self,
        stream: &BitmapStream<'a>,
        width: usize,
        height: usize,
    ) -> Result<Planes<'a>, &'static str> {
        let size = width.checked_mul(height).ok_or("too large")?;
        if size == 0 {
            return Err("it is empty");
        }
        let alpha = usize::from(stream.header.use_alpha);
        let data = stream.color_panes_data();
        if !stream.header.enable_rle_compression {
            let planes = data
                .get(alpha * size..(alpha + 3) * size)
                .ok_or("its planes are shorter than it says")?;
            return Ok(Planes::of(planes, width));
        }
        self.planes.resize(size * 3, 0);
        let mut at = 0;
        for plane in 0..alpha + 3 {
            // The alpha plane is decoded into the red one's place, then written over.
            let into = plane.saturating_sub(alpha) * size;
            let rest = data
                .get(at..)
                .ok_or("its planes are shorter than it says")?;
            at += rle_plane(rest, &mut self.planes[into..into + size], width)?;
        }
        Ok(Planes::of(&self.planes, width))
    }
}

impl<'a> Planes<'a> {
    fn of(planes: &'a [u8], width: usize) -> Self {
        let size = planes.len() / 3;
        Planes {
            red: &planes[..size],
            green: &planes[size..2 * size],
            blue: &planes[2 * size..],
            width,
        }
    }

    /// Fills the RGBX pixels `out` from the bitmap's line `line` (counted from the top) and
    /// column `x`.
    pub fn convert(&self, line: usize, x: usize, out: &mut [u8]) {
        let lines = self.red.len() / self.width;
        let at = (lines - 1 - line) * self.width + x;
        let n = out.len() / 4;
        let (r, g, b) = (
            &self.red[at..at + n],
            &self.green[at..at + n],
            &self.blue[at..at + n],
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, as just checked.
            unsafe { interleave_avx2(r, g, b, out) };
            return;
        }
        interleave(r, g, b, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn interleave_avx2(r: &[u8], g: &[u8], b: &[u8], out: &mut [u8]) {
    interleave(r, g, b, out);
}

#[inline(always)]
fn interleave(r: &[u8], g: &[u8], b: &[u8], out: &mut [u8]) {
    for (i, pixel) in out.chunks_exact_mut(4).enumerate() {
        pixel.copy_from_slice(&[r[i], g[i], b[i], 0xff]);
    }
}

/// Decodes a run-length plane into `plane`, `width` values a line: each line in segments (a
/// control byte, raw values, then a run of the last value), each line after the first as
/// differences from the one before. Returns the bytes read.
fn rle_plane(data: &[u8], plane: &mut [u8], width: usize) -> Result<usize, &'static str> {
    let mut at = 0;
    for y in 0..plane.len() / width {
        let (above, line) = plane.split_at_mut(y * width);
        let line = &mut line[..width];
        at += rle_line(data.get(at..).unwrap_or_default(), line)?;
        if y > 0 {
            for (value, up) in line.iter_mut().zip(&above[(y - 1) * width..]) {
                // Even: +value/2; odd: -(value+1)/2.
                let delta = if *value & 1 == 0 {
                    *value >> 1
                } else {
                    !(*value >> 1)
                };
                *value = up.wrapping_add(delta);
            }
        }
    }
    Ok(at)
}

/// One line's segments; returns the bytes read.
fn rle_line(data: &[u8], line: &mut [u8]) -> Result<usize, &'static str> {
    const SHORT: &str = "its planes are shorter than it says";
    let (mut at, mut x, mut last) = (0, 0, 0u8);
    while x < line.len() {
        let control = *data.get(at).ok_or(SHORT)?;
        at += 1;
        let (high, low) = (usize::from(control >> 4), control & 0x0f);
        let (raw, run) = match low {
            0 if high == 0 => return Err("a segment is empty"),
            1 => (0, 16 + high),
            2 => (0, 32 + high),
            run => (high, usize::from(run)),
        };
        if x + raw + run > line.len() {
            return Err("a segment runs past its line");
        }
        let values = data.get(at..at + raw).ok_or(SHORT)?;
        at += raw;
        line[x..x + raw].copy_from_slice(values);
        x += raw;
        last = values.last().copied().unwrap_or(last);
        line[x..x + run].fill(last);
        x += run;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use ironrdp_graphics::rdp6::{
        ARgbChannels, BitmapStreamDecoder, BitmapStreamEncoder, RgbChannels,
    };

    use super::*;

    /// Random pictures with runs in them, RLE or raw, with or without alpha, at sizes that do
    /// and do not fill a segment: what ecsrdp decodes is what IronRDP's decoder decodes.
    #[test]
    fn planes_are_ironrdps() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut planar = Planar::default();
        for (width, height) in [(1, 1), (3, 2), (17, 5), (64, 64), (100, 3)] {
            for alpha in [false, true] {
                for rle in [false, true] {
                    let depth = if alpha { 4 } else { 3 };
                    // Runs of one colour, some long, some short, and lines like the one above.
                    let mut pixels = Vec::new();
                    while pixels.len() < width * height * depth {
                        let colour = random().to_le_bytes();
                        let run = (random() % 70) as usize;
                        for _ in 0..run {
                            pixels.extend_from_slice(&colour[..depth]);
                        }
                    }
                    pixels.truncate(width * height * depth);
                    let mut data = vec![0; pixels.len() * 2 + 64];
                    let mut encoder = BitmapStreamEncoder::new(width, height);
                    let written = if alpha {
                        encoder.encode_bitmap_alpha::<ARgbChannels>(&pixels, &mut data, rle)
                    } else {
                        encoder.encode_bitmap::<RgbChannels>(&pixels, &mut data, rle)
                    }
                    .unwrap();
                    let data = &data[..written];
                    let mut theirs = Vec::new();
                    BitmapStreamDecoder::default()
                        .decode_bitmap_stream_to_rgb24(data, &mut theirs, width, height)
                        .unwrap();
                    let stream: BitmapStream<'_> = ironrdp_core::decode(data).unwrap();
                    let planes = planar.decode(&stream, width, height).unwrap();
                    let mut ours = Vec::new();
                    for line in 0..height {
                        let mut row = vec![0; width * 4];
                        planes.convert(line, 0, &mut row);
                        ours.extend(row.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]));
                    }
                    // IronRDP's RGB is bottom-up, as the planes are.
                    let theirs: Vec<u8> = theirs
                        .chunks_exact(width * 3)
                        .rev()
                        .flatten()
                        .copied()
                        .collect();
                    assert_eq!(ours, theirs, "{width}x{height} alpha {alpha} rle {rle}");
                }
            }
        }
    }

    /// Data cut short, or a segment past its line, is an error, not a panic.
    #[test]
    fn broken_planes_are_errors() {
        let mut plane = [0u8; 4];
        assert!(rle_line(&[0x40, 1, 2], &mut plane).is_err(), "cut short");
        assert!(rle_line(&[0x05], &mut plane).is_err(), "past its line");
        assert!(rle_line(&[0x00], &mut plane).is_err(), "empty");
        let mut line = [0u8; 5];
        assert_eq!(rle_line(&[0x23, 7, 9], &mut line).unwrap(), 3);
        assert_eq!(line, [7, 9, 9, 9, 9]);
        assert!(
            rle_plane(&[0x0a], &mut [0; 20], 10).is_err(),
            "a line missing"
        );
    }
}
