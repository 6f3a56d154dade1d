//! Bitmap updates (MS-RDPBCGR 2.2.9.1.1.3.1.2). A 32-bit bitmap in RDP 6.0 planar compression
//! (MS-RDPEGDI 2.2.2.5.1), what FreeRDP's servers and Windows send at 32 bits a pixel, is
//! decoded (ARGB planes by ecsrdp's `planar.rs`, AYCoCg ones by IronRDP's decoder) and
//! converted straight into the shown frame. Any other bitmap (interleaved RLE, uncompressed, a
//! palette's), and any whose destination IronRDP's image would refuse (IronRDP passes it
//! over), goes back to IronRDP's session re-encoded, in the order the server sent them.
//!
//! Why not IronRDP's session: it converts the decoded pixels into its image one byte at a
//! time, behind bounds checks (a fifth of ecsrdp's CPU on a bitmap session), and ecsrdp then
//! copied them on into the shown frame.

use ironrdp_core::encode_vec;
use ironrdp_graphics::rdp6::BitmapStreamDecoder;
use ironrdp_pdu::bitmap::rdp6::{BitmapStream, ColorPlaneDefinition};
use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp_pdu::fast_path::{FastPathUpdate, UpdateCode};
use ironrdp_pdu::geometry::Rectangle as _;
use tracing::warn;

use super::pdus;
use super::planar::Planar;
use crate::render::{Canvas, Rect};

/// The planar decoders and their output, kept from one bitmap to the next.
#[derive(Default)]
pub struct Bitmaps {
    /// ecsrdp's, for ARGB planes.
    planar: Planar,
    /// IronRDP's, for AYCoCg planes.
    aycocg: BitmapStreamDecoder,
    /// The last AYCoCg bitmap's RGB pixels, bottom-up, as IronRDP's decoder writes them.
    rgb: Vec<u8>,
}

/// One run of a bitmap update's rectangles.
pub enum Run<'a> {
    /// Bitmaps for [`Bitmaps::paint`].
    Ours(Vec<BitmapData<'a>>),
    /// Fast-path PDUs with the other bitmaps, for IronRDP's session.
    Theirs(Vec<Vec<u8>>),
}

/// A whole bitmap update's rectangles in runs, for an image (IronRDP's, the canvas) of this
/// size. An update that does not parse is IronRDP's to judge: it passes over some. A bitmap
/// wider than the image is passed over: no server needs one (the canvas is the desktop rounded
/// up to whole 64-pixel tiles), and decoding one, in IronRDP's decoders as in ecsrdp's, would
/// take memory in proportion to its width, up to 65,535 pixels.
pub fn bitmaps(update: &[u8], image: (u16, u16)) -> Vec<Run<'_>> {
    let Ok(FastPathUpdate::Bitmap(bitmaps)) =
        FastPathUpdate::decode_with_code(update, UpdateCode::Bitmap)
    else {
        return vec![Run::Theirs(pdus(UpdateCode::Bitmap, update))];
    };
    let mut runs: Vec<Run<'_>> = Vec::new();
    for bitmap in bitmaps.rectangles {
        if bitmap.width > image.0 {
            warn!(
                width = bitmap.width,
                "a bitmap wider than the desktop; passed over"
            );
        } else if is_ours(&bitmap, image) {
            match runs.last_mut() {
                Some(Run::Ours(run)) => run.push(bitmap),
                _ => runs.push(Run::Ours(vec![bitmap])),
            }
        } else {
            let pdus = reencoded(bitmap);
            match runs.last_mut() {
                Some(Run::Theirs(run)) => run.extend(pdus),
                _ => runs.push(Run::Theirs(pdus)),
            }
        }
    }
    runs
}

/// A planar bitmap whose destination IronRDP's image takes: inside the image, as wide as the
/// bitmap at most and exactly as high.
fn is_ours(bitmap: &BitmapData<'_>, (width, height): (u16, u16)) -> bool {
    let to = &bitmap.rectangle;
    bitmap
        .compression_flags
        .contains(Compression::BITMAP_COMPRESSION)
        && bitmap.bits_per_pixel == 32
        && to.left <= to.right
        && to.top <= to.bottom
        && to.right < width
        && to.bottom < height
        && to.width() <= bitmap.width
        && to.height() == bitmap.height
}

/// A bitmap as a bitmap update of its own, in fast-path PDUs (fragments, if it is large). One
/// each, because IronRDP's session reports an update's damage as the union of its rectangles,
/// which may cover pixels ecsrdp painted and IronRDP's image does not have.
fn reencoded(bitmap: BitmapData<'_>) -> Vec<Vec<u8>> {
    let update = BitmapUpdateData {
        rectangles: vec![bitmap],
    };
    match encode_vec(&FastPathUpdate::Bitmap(update)) {
        Ok(data) => pdus(UpdateCode::Bitmap, &data),
        Err(_) => {
            warn!("a bitmap could not be passed on; dropped");
            Vec::new()
        }
    }
}

impl Bitmaps {
    /// Decodes one of [`bitmaps`]' own (no lock held) and converts it into the shown frame;
    /// returns the pixels painted. A bitmap that does not decode is passed over, as IronRDP's
    /// session passes it over.
    pub fn paint(&mut self, canvas: &mut Canvas, bitmap: &BitmapData<'_>) -> u64 {
        let (width, height) = (usize::from(bitmap.width), usize::from(bitmap.height));
        let to = Rect::from(&bitmap.rectangle);
        let stream = match ironrdp_core::decode::<BitmapStream<'_>>(bitmap.bitmap_data) {
            Ok(stream) => stream,
            Err(e) => {
                warn!("a planar bitmap does not parse ({e}); passed over");
                return 0;
            }
        };
        let mut painted = 0;
        if stream.header.color_plane_definition == ColorPlaneDefinition::Argb {
            let planes = match self.planar.decode(&stream, width, height) {
                Ok(planes) => planes,
                Err(why) => {
                    warn!("a planar bitmap does not decode ({why}); passed over");
                    return 0;
                }
            };
            canvas.paint(|frame| {
                painted = frame.paint(to, |x, y, row| {
                    planes.convert((y - to.y) as usize, (x - to.x) as usize, row);
                });
            });
            return painted;
        }
        // AYCoCg planes (colour loss, chroma subsampling): IronRDP's decoder, into RGB.
        self.rgb.clear();
        let decoded = self.aycocg.decode_bitmap_stream_to_rgb24(
            bitmap.bitmap_data,
            &mut self.rgb,
            width,
            height,
        );
        if let Err(e) = decoded {
            warn!("a planar bitmap does not decode ({e}); passed over");
            return 0;
        }
        let stride = width * 3;
        if self.rgb.len() < stride * height {
            warn!("a planar bitmap is smaller than it says; passed over");
            return 0;
        }
        let rgb = &self.rgb;
        canvas.paint(|frame| {
            painted = frame.paint(to, |x, y, row| {
                // Bottom-up: the destination's first row is the bitmap's last.
                let line = height - 1 - (y - to.y) as usize;
                let at = line * stride + (x - to.x) as usize * 3;
                rgbx(&rgb[at..at + row.len() / 4 * 3], row);
            });
        });
        painted
    }
}

/// RGB pixels into RGBX ones, X opaque as IronRDP's image has it; as many pixels as `out`
/// holds (`rgb` has three bytes for each). Four at a time, so that the compiler can use one
/// byte shuffle for them (with AVX2, where the CPU has it).
fn rgbx(rgb: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as just checked.
        unsafe { rgbx_avx2(rgb, out) };
        return;
    }
    rgbx_any(rgb, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rgbx_avx2(rgb: &[u8], out: &mut [u8]) {
    rgbx_any(rgb, out);
}

#[inline(always)]
fn rgbx_any(rgb: &[u8], out: &mut [u8]) {
    let mut fours = out.chunks_exact_mut(16);
    let mut threes = rgb.chunks_exact(12);
    for (to, from) in (&mut fours).zip(&mut threes) {
        for p in 0..4 {
            to[p * 4..p * 4 + 4].copy_from_slice(&[
                from[p * 3],
                from[p * 3 + 1],
                from[p * 3 + 2],
                0xff,
            ]);
        }
    }
    let rest = fours.into_remainder().chunks_exact_mut(4);
    for (to, from) in rest.zip(threes.remainder().chunks_exact(3)) {
        to.copy_from_slice(&[from[0], from[1], from[2], 0xff]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length, so that the four-pixel steps and the rest both count.
    #[test]
    fn rgb_becomes_opaque_rgbx() {
        let rgb: Vec<u8> = (0..=255).cycle().skip(7).take(11 * 3).collect();
        for pixels in 0..=11 {
            let mut out = vec![0u8; pixels * 4];
            rgbx(&rgb[..pixels * 3], &mut out);
            let expected: Vec<u8> = rgb[..pixels * 3]
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 0xff])
                .collect();
            assert_eq!(out, expected, "{pixels} pixels");
        }
    }
}
