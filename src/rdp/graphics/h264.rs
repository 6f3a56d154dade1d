//! H.264 in the graphics pipeline (MS-RDPEGFX 2.2.4.4 to 2.2.4.6: AVC420, AVC444, AVC444v2),
//! decoded by the [`decoder`](super::decoder) chosen at run time and converted straight into
//! the caller's buffer.
//!
//! ironrdp-egfx decodes these too, but copies each decoded picture out of the decoder, combines
//! and converts it pixel by pixel in scalar code, and copies the result once more before its
//! compositor sees it, which cost far more than the H.264 decoding itself (docs/performance.md
//! has the profile). Here each surface has its own decoder (a server encodes each surface as a
//! stream of its own), the planes are read where the decoder left them, and the `yuv` crate's
//! SIMD conversion writes the pixels where [`Canvas`] wants them.

use std::collections::BTreeMap;

use ironrdp_core::{Decode as _, ReadCursor};
use ironrdp_egfx::pdu::{
    avc_to_annex_b_into, is_avc_format, Avc420BitmapStream, Avc444BitmapStream, Codec1Type,
    Encoding, WireToSurface1Pdu,
};
use ironrdp_pdu::geometry::ExclusiveRectangle;
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

use super::decoder::{Decoded, Decoder, DecoderChoice};
use super::yuv444::{Layout, Picture, View};

/// The most surfaces that may have an H.264 decoder at once. Each costs OpenH264 up to about
/// 17 MB (FFmpeg less), so a server creating surfaces must not get one for each; ecsrdp shows one monitor,
/// which Windows paints through one surface.
const MAX_DECODERS: usize = 4;

/// The most all AVC444 pictures together may hold: three planes of an 8K desktop. A server
/// cannot make the client allocate more by creating surfaces.
const PICTURE_BUDGET: usize = 3 * 7680 * 4320;

/// Why an H.264 update could not be painted. The pipeline then drops it, as it drops any
/// update it cannot decode, and the session goes on.
#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    #[error("it is for surface {0}, which the server never created")]
    UnknownSurface(u16),
    #[error("its bitmap stream does not parse: {0}")]
    Stream(String),
    #[error("the H.264 decoder failed on it: {0}")]
    Decoder(String),
    #[error("the H.264 decoder returned no picture for it")]
    NoPicture,
    #[error("its picture is {0}x{1}, smaller than the area it paints")]
    TooSmall(usize, usize),
    #[error("its surface is larger than the client keeps AVC444 pictures for")]
    OverBudget,
    #[error("{MAX_DECODERS} other surfaces already have an H.264 decoder")]
    TooManyStreams,
    #[error("its colours do not convert: {0}")]
    Convert(#[from] yuv::YuvError),
}

/// Writes the pixels of a part of a surface (first argument) as RGBX into a buffer (second)
/// that starts at the part's top left pixel and has its rows `stride` (third) bytes apart.
pub type Convert<'a> =
    dyn FnMut(&ExclusiveRectangle, &mut [u8], usize) -> Result<(), H264Error> + 'a;

/// Where decoded pixels go. [`Canvas::paint`] calls `convert` for parts of `rect` (in surface
/// coordinates), each with a buffer for the part's pixels.
pub trait Canvas {
    fn paint(
        &mut self,
        surface_id: u16,
        rect: &ExclusiveRectangle,
        convert: &mut Convert<'_>,
    ) -> Result<(), H264Error>;
}

/// The H.264 state of every surface.
#[derive(Default)]
pub struct H264 {
    surfaces: BTreeMap<u16, Surface>,
    /// The decoder every surface gets (`Auto` resolved to the one that opened).
    choice: DecoderChoice,
    /// The decoder that proved the choice opens, kept for the first surface that needs one.
    spare: Option<Decoder>,
    /// AVC-format NAL units rewritten as the Annex B stream the decoders read.
    annex_b: Vec<u8>,
    /// Bytes the surfaces' AVC444 pictures hold.
    picture_bytes: usize,
    /// AVC420 pictures converted from an odd row or column go through here first.
    scratch: Vec<u8>,
}

struct Surface {
    width: u16,
    height: u16,
    decoder: Option<Decoder>,
    picture: Option<Picture>,
}

impl H264 {
    /// Starts one decoder, to learn whether this machine can decode H.264 at all; also returns
    /// its name, for the log. The error says why no decoder opened.
    pub fn new(choice: DecoderChoice) -> Result<(H264, String), String> {
        let (decoder, name, resolved) = Decoder::open(choice)?;
        let h264 = H264 {
            choice: resolved,
            spare: Some(decoder),
            ..H264::default()
        };
        Ok((h264, name))
    }

    /// The server created (or re-created) a surface.
    pub fn create_surface(&mut self, surface_id: u16, width: u16, height: u16) {
        self.delete_surface(surface_id);
        let surface = Surface {
            width,
            height,
            decoder: None,
            picture: None,
        };
        self.surfaces.insert(surface_id, surface);
    }

    pub fn delete_surface(&mut self, surface_id: u16) {
        if let Some(surface) = self.surfaces.remove(&surface_id) {
            self.picture_bytes -= surface.picture.map_or(0, |p| p.allocated_bytes());
        }
    }

    /// `ResetGraphics` deletes every surface.
    pub fn reset(&mut self) {
        self.surfaces.clear();
        self.picture_bytes = 0;
    }

    /// Decodes an H.264 update and paints the rectangles it changed on `canvas`.
    pub fn decode(
        &mut self,
        pdu: &WireToSurface1Pdu,
        canvas: &mut impl Canvas,
    ) -> Result<(), H264Error> {
        let decoders = self
            .surfaces
            .values()
            .filter(|s| s.decoder.is_some())
            .count();
        let surface = self
            .surfaces
            .get_mut(&pdu.surface_id)
            .ok_or(H264Error::UnknownSurface(pdu.surface_id))?;
        if surface.decoder.is_none() {
            if decoders >= MAX_DECODERS {
                return Err(H264Error::TooManyStreams);
            }
            surface.decoder = Some(match self.spare.take() {
                Some(decoder) => decoder,
                None => Decoder::open(self.choice).map_err(H264Error::Decoder)?.0,
            });
        }
        let mut cursor = ReadCursor::new(&pdu.bitmap_data);
        let streams = Streams {
            annex_b: &mut self.annex_b,
            scratch: &mut self.scratch,
            picture_bytes: &mut self.picture_bytes,
        };
        match pdu.codec_id {
            Codec1Type::Avc420 => {
                let stream = Avc420BitmapStream::decode(&mut cursor)
                    .map_err(|e| H264Error::Stream(e.to_string()))?;
                streams.avc420(surface, pdu, &stream, canvas)
            }
            codec => {
                let stream = Avc444BitmapStream::decode(&mut cursor)
                    .map_err(|e| H264Error::Stream(e.to_string()))?;
                let layout = if codec == Codec1Type::Avc444 {
                    Layout::V1
                } else {
                    Layout::V2
                };
                streams.avc444(surface, pdu.surface_id, layout, &stream, canvas)
            }
        }
    }
}

/// The buffers shared by all surfaces, borrowed for one update.
struct Streams<'a> {
    annex_b: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
    picture_bytes: &'a mut usize,
}

impl Streams<'_> {
    fn avc420(
        self,
        surface: &mut Surface,
        pdu: &WireToSurface1Pdu,
        stream: &Avc420BitmapStream<'_>,
        canvas: &mut impl Canvas,
    ) -> Result<(), H264Error> {
        let decoder = surface.decoder.as_mut().ok_or(H264Error::NoPicture)?;
        let picture = decode_view(decoder, self.annex_b, stream.data)?;
        let view = picture.view();
        let (picture_width, picture_height) = (clamp16(view.width), clamp16(view.height));
        // Each region's pixels are at the same place in the picture as on the surface. Without
        // regions, the destination rectangle takes the picture from its origin.
        let regions: Vec<(ExclusiveRectangle, (u16, u16))> = if stream.rectangles.is_empty() {
            let rect = &pdu.destination_rectangle;
            let from_origin = ExclusiveRectangle {
                right: rect.right.min(rect.left.saturating_add(picture_width)),
                bottom: rect.bottom.min(rect.top.saturating_add(picture_height)),
                ..rect.clone()
            };
            let shown = clip(&from_origin, surface.width, surface.height);
            shown
                .into_iter()
                .map(|r| (r, (rect.left, rect.top)))
                .collect()
        } else {
            let width = surface.width.min(picture_width);
            let height = surface.height.min(picture_height);
            let rects = stream.rectangles.iter();
            rects
                .filter_map(|r| clip(r, width, height))
                .map(|r| (r, (0, 0)))
                .collect()
        };
        for (rect, origin) in regions {
            canvas.paint(pdu.surface_id, &rect, &mut |part, out, stride| {
                let left = usize::from(part.left - origin.0);
                let top = usize::from(part.top - origin.1);
                let width = usize::from(part.right - part.left);
                let height = usize::from(part.bottom - part.top);
                let area = (left, top, width, height);
                convert_420(&view, area, (out, stride), self.scratch)
            })?;
        }
        Ok(())
    }

    fn avc444(
        self,
        surface: &mut Surface,
        surface_id: u16,
        layout: Layout,
        stream: &Avc444BitmapStream<'_>,
        canvas: &mut impl Canvas,
    ) -> Result<(), H264Error> {
        let (main, auxiliary) = match stream.encoding {
            Encoding::LUMA => (Some(&stream.stream1), None),
            Encoding::CHROMA => (None, Some(&stream.stream1)),
            _ => (Some(&stream.stream1), stream.stream2.as_ref()),
        };
        if surface.picture.is_none() {
            let bytes = Picture::allocation(surface.width, surface.height);
            if *self.picture_bytes + bytes > PICTURE_BUDGET {
                return Err(H264Error::OverBudget);
            }
            *self.picture_bytes += bytes;
            surface.picture = Some(Picture::new(surface.width, surface.height));
        }
        let (Some(decoder), Some(picture)) = (surface.decoder.as_mut(), surface.picture.as_mut())
        else {
            return Err(H264Error::NoPicture);
        };
        // Both views are pictures of one H.264 stream, main first (MS-RDPEGFX 2.2.4.5); each is
        // combined before the decoder overwrites it with the next.
        if let Some(main) = main {
            let decoded = decode_view(decoder, self.annex_b, main.data)?;
            picture.apply_main(&decoded.view(), &main.rectangles);
        }
        if let Some(auxiliary) = auxiliary {
            let decoded = decode_view(decoder, self.annex_b, auxiliary.data)?;
            picture.apply_auxiliary(layout, &decoded.view(), &auxiliary.rectangles);
        }
        let mut painted: Vec<ExclusiveRectangle> = Vec::new();
        let rects = main
            .into_iter()
            .chain(auxiliary)
            .flat_map(|s| s.rectangles.iter());
        for rect in rects.filter_map(|r| clip(r, surface.width, surface.height)) {
            if painted.contains(&rect) {
                continue;
            }
            canvas.paint(surface_id, &rect, &mut |part, out, stride| {
                Ok(picture.write_rgbx(part, out, stride)?)
            })?;
            painted.push(rect);
        }
        Ok(())
    }
}

/// Decodes one picture, whether `data` is an Annex B stream (as MS-RDPEGFX says) or AVC-format
/// NAL units (as some servers send).
fn decode_view<'d>(
    decoder: &'d mut Decoder,
    annex_b: &mut Vec<u8>,
    data: &[u8],
) -> Result<Decoded<'d>, H264Error> {
    let data = if is_avc_format(data) {
        avc_to_annex_b_into(data, annex_b);
        annex_b.as_slice()
    } else {
        data
    };
    decoder
        .decode(data)
        .map_err(H264Error::Decoder)?
        .ok_or(H264Error::NoPicture)
}

/// Converts `(left, top, width, height)` of a 4:2:0 picture to RGBX in `out`, rows `stride`
/// bytes apart. A block of four pixels shares its chroma, so an area starting on an odd row or
/// column is converted from the block's start into `scratch`, and copied from there.
fn convert_420(
    view: &View<'_>,
    (left, top, width, height): (usize, usize, usize, usize),
    (out, stride): (&mut [u8], usize),
    scratch: &mut Vec<u8>,
) -> Result<(), H264Error> {
    if left + width > view.width || top + height > view.height {
        return Err(H264Error::TooSmall(view.width, view.height));
    }
    let (from_left, from_top) = (left & !1, top & !1);
    let (full_width, full_height) = (width + left - from_left, height + top - from_top);
    let image = YuvPlanarImage {
        y_plane: view
            .y
            .get(from_top * view.y_stride + from_left..)
            .unwrap_or_default(),
        y_stride: view.y_stride as u32,
        u_plane: view
            .u
            .get(from_top / 2 * view.chroma_stride + from_left / 2..)
            .unwrap_or_default(),
        u_stride: view.chroma_stride as u32,
        v_plane: view
            .v
            .get(from_top / 2 * view.chroma_stride + from_left / 2..)
            .unwrap_or_default(),
        v_stride: view.chroma_stride as u32,
        width: full_width as u32,
        height: full_height as u32,
    };
    let (range, matrix) = (YuvRange::Full, YuvStandardMatrix::Bt709);
    if (from_left, from_top) == (left, top) {
        return Ok(yuv::yuv420_to_rgba(
            &image,
            out,
            stride as u32,
            range,
            matrix,
        )?);
    }
    scratch.resize(full_width * full_height * 4, 0);
    yuv::yuv420_to_rgba(&image, scratch, (full_width * 4) as u32, range, matrix)?;
    let skip = (top - from_top) * full_width * 4 + (left - from_left) * 4;
    let rows = scratch[skip..].chunks(full_width * 4).take(height);
    for (i, row) in rows.enumerate() {
        let at = i * stride;
        let Some(out) = out.get_mut(at..at + width * 4) else {
            return Err(H264Error::TooSmall(view.width, view.height));
        };
        out.copy_from_slice(&row[..width * 4]);
    }
    Ok(())
}

/// `rect` clipped to `width` by `height`, or `None` when nothing of it is left.
fn clip(rect: &ExclusiveRectangle, width: u16, height: u16) -> Option<ExclusiveRectangle> {
    let clipped = ExclusiveRectangle {
        left: rect.left,
        top: rect.top,
        right: rect.right.min(width),
        bottom: rect.bottom.min(height),
    };
    (clipped.left < clipped.right && clipped.top < clipped.bottom).then_some(clipped)
}

fn clamp16(value: usize) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

#[cfg(all(test, feature = "openh264-source"))]
mod tests {
    use ironrdp_egfx::pdu::PixelFormat;
    use openh264::decoder::Decoder as OpenH264;
    use openh264::formats::YUVSource as _;

    use super::*;

    fn update(surface_id: u16) -> WireToSurface1Pdu {
        WireToSurface1Pdu {
            surface_id,
            codec_id: Codec1Type::Avc420,
            pixel_format: PixelFormat::XRgb,
            destination_rectangle: ExclusiveRectangle {
                left: 0,
                top: 0,
                right: 16,
                bottom: 16,
            },
            bitmap_data: vec![0xff; 3],
        }
    }

    /// Keeps what it is asked to paint.
    #[derive(Default)]
    struct Keep(Vec<(ExclusiveRectangle, Vec<u8>)>);

    impl Canvas for Keep {
        fn paint(
            &mut self,
            _: u16,
            rect: &ExclusiveRectangle,
            convert: &mut Convert<'_>,
        ) -> Result<(), H264Error> {
            let (width, height) = (rect.right - rect.left, rect.bottom - rect.top);
            let mut pixels = vec![0; usize::from(width) * usize::from(height) * 4];
            convert(rect, &mut pixels, usize::from(width) * 4)?;
            self.0.push((rect.clone(), pixels));
            Ok(())
        }
    }

    /// AVC420 (the shadow server sends AVC444, so the recorded streams never carry it): the
    /// regions named, at odd places too, painted with what IronRDP's conversion of the same
    /// picture gives there, up to rounding.
    #[test]
    fn avc420_paints_its_regions_as_ironrdp_converts_them() {
        use ironrdp_egfx::decode::Yuv420Frame;
        use ironrdp_egfx::pdu::{encode_avc420_bitmap_stream, Avc420Region};
        use openh264::formats::{RgbSliceU8, YUVBuffer};

        let (width, height) = (64, 48);
        let rgb: Vec<u8> = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 4) as u8, (y * 5) as u8, if x < 32 { 40 } else { 220 }]
            })
            .collect();
        let source = YUVBuffer::from_rgb_source(RgbSliceU8::new(&rgb, (width, height)));
        let bitstream = openh264::encoder::Encoder::new()
            .unwrap()
            .encode(&source)
            .unwrap()
            .to_vec();
        let regions = [
            Avc420Region::new(0, 0, 16, 16, 22, 100),
            Avc420Region::new(7, 19, 41, 30, 22, 100),
        ];
        let pdu = WireToSurface1Pdu {
            surface_id: 1,
            codec_id: Codec1Type::Avc420,
            pixel_format: PixelFormat::XRgb,
            destination_rectangle: ExclusiveRectangle {
                left: 0,
                top: 0,
                right: 41,
                bottom: 30,
            },
            bitmap_data: encode_avc420_bitmap_stream(&regions, &bitstream),
        };
        let mut h264 = H264::new(DecoderChoice::OpenH264).unwrap().0;
        h264.create_surface(1, width as u16, height as u16);
        let mut painted = Keep::default();
        h264.decode(&pdu, &mut painted).unwrap();

        let mut decoder = OpenH264::new().unwrap();
        let picture = decoder.decode(&bitstream).unwrap().unwrap();
        let (y_stride, chroma_stride, _) = picture.strides();
        let (y, u, v) = (
            picture.y().to_vec(),
            picture.u().to_vec(),
            picture.v().to_vec(),
        );
        let (w, h) = (width as u16, height as u16);
        let frame = Yuv420Frame::new(w, h, y, y_stride, u, v, chroma_stride).unwrap();
        let expected = frame.to_rgba();

        let rects: Vec<_> = painted.0.iter().map(|(rect, _)| rect.clone()).collect();
        let named: Vec<_> = regions.iter().map(Avc420Region::to_rectangle).collect();
        assert_eq!(rects, named);
        for (rect, pixels) in &painted.0 {
            let columns = usize::from(rect.right - rect.left);
            for (i, got) in pixels.chunks(4).enumerate() {
                let (x, y) = (
                    usize::from(rect.left) + i % columns,
                    usize::from(rect.top) + i / columns,
                );
                let want = &expected.data()[(y * width + x) * 4..][..3];
                let off = want.iter().zip(got).map(|(a, b)| a.abs_diff(*b)).max();
                assert!(off <= Some(2), "({x}, {y}): {want:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn a_server_gets_a_bounded_number_of_decoders() {
        let mut h264 = H264::new(DecoderChoice::Auto).unwrap().0;
        for id in 0..=MAX_DECODERS as u16 {
            h264.create_surface(id, 64, 64);
        }
        for id in 0..MAX_DECODERS as u16 {
            // A decoder is made, then the update does not parse.
            assert!(matches!(
                h264.decode(&update(id), &mut Keep::default()),
                Err(H264Error::Stream(_))
            ));
        }
        let last = MAX_DECODERS as u16;
        assert!(matches!(
            h264.decode(&update(last), &mut Keep::default()),
            Err(H264Error::TooManyStreams)
        ));
        h264.delete_surface(0);
        assert!(matches!(
            h264.decode(&update(last), &mut Keep::default()),
            Err(H264Error::Stream(_))
        ));
    }
}
