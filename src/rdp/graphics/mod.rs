//! The graphics pipeline client (MS-RDPEGFX): IronRDP's, with H.264 decoded in front of it.
//!
//! [`Pipeline`] is the channel the session registers. It opens each message (ZGFX), decodes
//! the H.264 updates itself ([`h264`], which says why), and hands IronRDP's pipeline the rest
//! as it came and each decoded H.264 rectangle as an uncompressed update of the same surface,
//! in the same order. IronRDP's pipeline keeps everything else: capabilities, surfaces, caches,
//! the other codecs, frame acknowledgements, and the composited output, which the session takes
//! with [`Pipeline::composite`] after each message.

mod decoder;
mod ffmpeg;
mod h264;
mod yuv444;

use ironrdp_core::{decode_cursor, impl_as_any, ReadCursor};
use ironrdp_dvc::{DvcClientProcessor, DvcMessage, DvcProcessor};
use ironrdp_egfx::client::{GraphicsPipelineClient, GraphicsPipelineHandler};
use ironrdp_egfx::decode::{DecodedFrame, DecoderError, DecoderResult, H264Decoder, Yuv420Frame};
use ironrdp_egfx::pdu::{CapabilitySet, Codec1Type, GfxPdu};
use ironrdp_graphics::zgfx;
use ironrdp_pdu::geometry::ExclusiveRectangle;
use ironrdp_pdu::{PduError, PduResult};
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{composite_graphics_pipeline, CompositedGraphics, SessionResult};
use tracing::{debug, info, warn};

pub use self::decoder::{cisco_library, DecoderChoice};
use self::h264::{Canvas, Convert, H264Error, H264};

/// The most a ZGFX segment holds uncompressed (MS-RDPEGFX 2.2.5.1): each uncompressed update
/// for IronRDP's pipeline fits one, so that its buffers stay small and in cache.
const SEGMENT_MAX: usize = 65535;
/// `RDPGFX_WIRE_TO_SURFACE_PDU_1` up to its bitmap data (MS-RDPEGFX 2.2.2.1), after the
/// single-segment ZGFX header (descriptor and flags, 2.2.5.1).
const UPDATE_HEADER: usize = 2 + 25;

/// The EGFX dynamic channel.
pub struct Pipeline {
    inner: GraphicsPipelineClient,
    /// `None` when no H.264 decoder opens: then no AVC capability is advertised.
    h264: Option<H264>,
    decompressor: zgfx::Decompressor,
    decompressed: Vec<u8>,
    /// The uncompressed update being built for IronRDP's pipeline, pixels converted in place.
    update: Vec<u8>,
    /// Codecs the server used so far, each logged once: a handful at most.
    seen: Vec<&'static str>,
}

impl_as_any!(Pipeline);

/// The name of the H.264 decoder `choice` opens here (for `Auto`, the one it picks), or why
/// none opens.
pub fn h264_decoder_name(choice: DecoderChoice) -> Result<String, String> {
    decoder::Decoder::open(choice).map(|(_, name, _)| name)
}

/// The EGFX channel, with H.264 when the chosen decoder opens.
pub(in crate::rdp) fn pipeline(choice: DecoderChoice) -> Pipeline {
    let h264 = match H264::new(choice) {
        Ok((h264, name)) => {
            info!(decoder = %name, "H.264 decoder");
            Some(h264)
        }
        Err(e) => {
            warn!(error = %e, "no H.264 decoder; the graphics pipeline goes without H.264");
            None
        }
    };
    // IronRDP's pipeline advertises AVC only with a decoder; H.264 never reaches this one.
    let decoder = h264
        .is_some()
        .then(|| Box::new(DecodedInFront) as Box<dyn H264Decoder>);
    Pipeline {
        inner: GraphicsPipelineClient::new(Box::new(CodecReport), decoder),
        h264,
        decompressor: zgfx::Decompressor::new(),
        decompressed: Vec::new(),
        update: Vec::new(),
        seen: Vec::new(),
    }
}

impl Pipeline {
    /// Composites what the pipeline finished since the last call into `image`, as IronRDP's
    /// session would for its own pipeline.
    pub fn composite(&mut self, image: &mut DecodedImage) -> SessionResult<CompositedGraphics> {
        composite_graphics_pipeline(&mut self.inner, image)
    }

    /// Logs each codec the first time the server uses it.
    fn report(&mut self, pdu: &GfxPdu) {
        let codec = match pdu {
            GfxPdu::WireToSurface1(update) => codec_name(update.codec_id),
            GfxPdu::WireToSurface2(_) => "RemoteFxProgressive",
            _ => return,
        };
        if !self.seen.contains(&codec) {
            self.seen.push(codec);
            info!(codec = %codec, "graphics pipeline codec in use");
        }
    }
}

impl DvcProcessor for Pipeline {
    fn channel_name(&self) -> &str {
        ironrdp_egfx::CHANNEL_NAME
    }

    fn start(&mut self, channel_id: u32) -> PduResult<Vec<DvcMessage>> {
        self.inner.start(channel_id)
    }

    fn process(&mut self, channel_id: u32, payload: &[u8]) -> PduResult<Vec<DvcMessage>> {
        let mut decompressed = std::mem::take(&mut self.decompressed);
        decompressed.clear();
        if self
            .decompressor
            .decompress(payload, &mut decompressed)
            .is_err()
        {
            // IronRDP's pipeline reports it as it always has.
            self.decompressed = decompressed;
            return self.inner.process(channel_id, payload);
        }
        let result = self.route(channel_id, &decompressed);
        // Keep the buffer, unless one message made it huge.
        decompressed.truncate(0);
        decompressed.shrink_to(4 * SEGMENT_MAX);
        self.decompressed = decompressed;
        result
    }

    fn close(&mut self, channel_id: u32) {
        self.inner.close(channel_id);
    }
}

impl DvcClientProcessor for Pipeline {}

impl Pipeline {
    /// Hands IronRDP's pipeline the PDUs of one message, H.264 ones decoded.
    fn route(&mut self, channel_id: u32, data: &[u8]) -> PduResult<Vec<DvcMessage>> {
        let mut replies = Vec::new();
        let mut cursor = ReadCursor::new(data);
        // Data from here on goes to IronRDP's pipeline as it came.
        let mut unsent = 0;
        while !cursor.is_empty() {
            let start = cursor.pos();
            // What does not decode goes as it came, and IronRDP's pipeline reports it.
            let Ok(pdu) = decode_cursor::<GfxPdu>(&mut cursor) else {
                break;
            };
            self.report(&pdu);
            let Some(h264) = self.h264.as_mut() else {
                continue;
            };
            match &pdu {
                // IronRDP's pipeline ignores surfaces without pixels, and so does this.
                GfxPdu::CreateSurface(s) if s.width > 0 && s.height > 0 => {
                    h264.create_surface(s.surface_id, s.width, s.height)
                }
                GfxPdu::DeleteSurface(s) => h264.delete_surface(s.surface_id),
                GfxPdu::ResetGraphics(_) => h264.reset(),
                GfxPdu::WireToSurface1(update) if is_h264(update.codec_id) => {
                    send(
                        &mut self.inner,
                        channel_id,
                        &data[unsent..start],
                        &mut replies,
                    )?;
                    unsent = cursor.pos();
                    let mut canvas = Forward {
                        inner: &mut self.inner,
                        channel_id,
                        update: &mut self.update,
                        replies: &mut replies,
                        refused: None,
                    };
                    let decoded = h264.decode(update, &mut canvas);
                    if let Some(error) = canvas.refused {
                        return Err(error);
                    }
                    if let Err(e) = decoded {
                        debug!(error = %e, "H.264 update not decoded here");
                        // IronRDP's pipeline drops and counts it, as any update it cannot decode.
                        send(
                            &mut self.inner,
                            channel_id,
                            &data[start..unsent],
                            &mut replies,
                        )?;
                    }
                }
                _ => {}
            }
        }
        send(&mut self.inner, channel_id, &data[unsent..], &mut replies)?;
        Ok(replies)
    }
}

/// Hands IronRDP's pipeline `pdus` as an uncompressed ZGFX message.
fn send(
    inner: &mut GraphicsPipelineClient,
    channel_id: u32,
    pdus: &[u8],
    replies: &mut Vec<DvcMessage>,
) -> PduResult<()> {
    if !pdus.is_empty() {
        replies.extend(inner.process(channel_id, &zgfx::wrap_uncompressed(pdus))?);
    }
    Ok(())
}

fn is_h264(codec: Codec1Type) -> bool {
    matches!(
        codec,
        Codec1Type::Avc420 | Codec1Type::Avc444 | Codec1Type::Avc444v2
    )
}

fn codec_name(codec: Codec1Type) -> &'static str {
    match codec {
        Codec1Type::Uncompressed => "Uncompressed",
        Codec1Type::RemoteFx => "RemoteFx",
        Codec1Type::ClearCodec => "ClearCodec",
        Codec1Type::Planar => "Planar",
        Codec1Type::Avc420 => "Avc420",
        Codec1Type::Alpha => "Alpha",
        Codec1Type::Avc444 => "Avc444",
        Codec1Type::Avc444v2 => "Avc444v2",
    }
}

/// Paints decoded rectangles by handing IronRDP's pipeline uncompressed updates, in strips
/// that each fit one ZGFX segment.
struct Forward<'a> {
    inner: &'a mut GraphicsPipelineClient,
    channel_id: u32,
    update: &'a mut Vec<u8>,
    replies: &'a mut Vec<DvcMessage>,
    /// IronRDP's pipeline failed on an update: the session ends with its error.
    refused: Option<PduError>,
}

impl Canvas for Forward<'_> {
    fn paint(
        &mut self,
        surface_id: u16,
        rect: &ExclusiveRectangle,
        convert: &mut Convert<'_>,
    ) -> Result<(), H264Error> {
        let row_bytes = usize::from(rect.right - rect.left) * 4;
        // Even, so that 4:2:0 strips start on a row with its own chroma.
        let rows = ((SEGMENT_MAX - UPDATE_HEADER) / row_bytes.max(1)).max(2) & !1;
        let mut top = rect.top;
        while top < rect.bottom {
            let bottom = rect.bottom.min(top.saturating_add(rows as u16));
            let strip = ExclusiveRectangle {
                left: rect.left,
                top,
                right: rect.right,
                bottom,
            };
            let pixels = row_bytes * usize::from(bottom - top);
            let length = UPDATE_HEADER + pixels;
            // Grown, never shrunk nor cleared: the pixels are all written over.
            if self.update.len() < length {
                self.update.resize(length, 0);
            }
            let update = &mut self.update[..length];
            write_update_header(update, surface_id, &strip, pixels);
            convert(&strip, &mut update[UPDATE_HEADER..])?;
            let message = if length <= SEGMENT_MAX + 2 {
                &*update
            } else {
                // A row wider than a segment (16,377 pixels): split by the library.
                &zgfx::wrap_uncompressed(&update[2..])
            };
            match self.inner.process(self.channel_id, message) {
                Ok(replies) => self.replies.extend(replies),
                Err(e) => {
                    self.refused = Some(e);
                    return Err(H264Error::NoPicture);
                }
            }
            top = bottom;
        }
        Ok(())
    }
}

/// Starts `update` with a single uncompressed ZGFX segment holding the header of an
/// uncompressed `RDPGFX_WIRE_TO_SURFACE_PDU_1` for `pixels` bytes of XRGB (MS-RDPEGFX 2.2.2.1).
/// Written by hand rather than encoded by ironrdp-egfx, which would want the pixels in a
/// vector of their own: here they are converted into the message itself.
fn write_update_header(
    update: &mut [u8],
    surface_id: u16,
    rect: &ExclusiveRectangle,
    pixels: usize,
) {
    const SINGLE_SEGMENT: u8 = 0xE0;
    const RDP8_UNCOMPRESSED: u8 = 0x04;
    const WIRE_TO_SURFACE_1: u16 = 0x0001;
    const XRGB_8888: u8 = 0x20;
    let pdu_length = (UPDATE_HEADER - 2 + pixels) as u32;
    let edges = [rect.left, rect.top, rect.right, rect.bottom].map(u16::to_le_bytes);
    let fields: [&[u8]; 12] = [
        &[SINGLE_SEGMENT, RDP8_UNCOMPRESSED],
        &WIRE_TO_SURFACE_1.to_le_bytes(),
        &0u16.to_le_bytes(), // flags
        &pdu_length.to_le_bytes(),
        &surface_id.to_le_bytes(),
        &(Codec1Type::Uncompressed as u16).to_le_bytes(),
        &[XRGB_8888],
        &edges[0],
        &edges[1],
        &edges[2],
        &edges[3],
        &(pixels as u32).to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        update[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
}

/// Stands in for an H.264 decoder in IronRDP's pipeline, which advertises AVC only with one:
/// H.264 updates are decoded before they reach it, and any it gets could not be decoded.
struct DecodedInFront;

impl H264Decoder for DecodedInFront {
    fn decode(&mut self, _data: &[u8]) -> DecoderResult<DecodedFrame> {
        Err(DecoderError::msg(
            "H.264 is decoded in front of the pipeline",
        ))
    }

    fn decode_yuv420(&mut self, _data: &[u8]) -> DecoderResult<Yuv420Frame> {
        Err(DecoderError::msg(
            "H.264 is decoded in front of the pipeline",
        ))
    }

    fn supports_yuv420(&self) -> bool {
        true
    }
}

/// Logs the capability set the server confirmed.
struct CodecReport;

impl GraphicsPipelineHandler for CodecReport {
    fn on_capabilities_confirmed(&mut self, caps: &CapabilitySet) {
        info!(?caps, "graphics pipeline confirmed");
    }
}
