//! The graphics pipeline client (MS-RDPEGFX): IronRDP's for the protocol and most codecs,
//! with surfaces of ecsrdp's own and H.264 decoded in front of it.
//!
//! [`Pipeline`] is the channel the session registers. It opens each message (ZGFX) and goes
//! through its PDUs in order. IronRDP's pipeline gets them as they came, except those that
//! draw on surfaces without a codec of its own (fills, copies, the cache, mappings) and H.264
//! updates ([`h264`] says why): those are applied here, to [`surfaces`], the surfaces the screen
//! shows, which also get the rectangles IronRDP's pipeline decodes ([`Follow`]). IronRDP's
//! pipeline keeps capabilities, frame acknowledgements and the other codecs. The session shows
//! each ended frame with [`Pipeline::show`].

mod area;
mod decoder;
mod ffmpeg;
mod h264;
mod screen;
mod surfaces;
mod yuv444;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ironrdp_core::{decode_cursor, impl_as_any, ReadCursor};
use ironrdp_dvc::{DvcClientProcessor, DvcMessage, DvcProcessor};
use ironrdp_egfx::cache::{CACHE_BYTES, SMALL_CACHE_BYTES};
use ironrdp_egfx::client::{
    BitmapUpdate, GraphicsPipelineClient, GraphicsPipelineHandler, Surface,
};
use ironrdp_egfx::decode::{DecodedFrame, DecoderError, DecoderResult, H264Decoder, Yuv420Frame};
use ironrdp_egfx::pdu::{CapabilitySet, Codec1Type, GfxPdu};
use ironrdp_graphics::zgfx;
use ironrdp_pdu::PduResult;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{composite_graphics_pipeline, CompositedGraphics, SessionResult};
use tracing::{debug, info, warn};

pub use self::decoder::{cisco_library, DecoderChoice};
use self::h264::H264;
use self::surfaces::Surfaces;
use crate::render::Canvas;

/// The most a ZGFX segment holds uncompressed (MS-RDPEGFX 2.2.5.1): the decompressed buffer
/// is kept at a few of these between messages.
const SEGMENT_MAX: usize = 65535;

/// The EGFX dynamic channel.
pub struct Pipeline {
    inner: GraphicsPipelineClient,
    /// Shared with the handler of `inner` ([`Follow`]), which hands decoded rectangles over.
    surfaces: Arc<Mutex<Surfaces>>,
    /// `None` when no H.264 decoder opens: then no AVC capability is advertised.
    h264: Option<H264>,
    decompressor: zgfx::Decompressor,
    decompressed: Vec<u8>,
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
    let surfaces = Arc::new(Mutex::new(Surfaces::default()));
    let follow = Follow(Arc::clone(&surfaces));
    Pipeline {
        inner: GraphicsPipelineClient::new(Box::new(follow), decoder),
        surfaces,
        h264,
        decompressor: zgfx::Decompressor::new(),
        decompressed: Vec::new(),
        seen: Vec::new(),
    }
}

impl Pipeline {
    /// Resizes `image` after a `ResetGraphics`, as IronRDP's session would for its own
    /// pipeline; IronRDP's pipeline composites nothing, as its surfaces are never mapped.
    pub fn composite(&mut self, image: &mut DecodedImage) -> SessionResult<CompositedGraphics> {
        composite_graphics_pipeline(&mut self.inner, image)
    }

    /// Paints on `canvas` what the frames that ended since the last call changed; whether
    /// anything was painted.
    pub fn show(&mut self, canvas: &mut Canvas) -> bool {
        lock(&self.surfaces).show(canvas)
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
    /// Goes through the PDUs of one message: those drawing on surfaces without a codec of
    /// IronRDP's, and H.264 updates, are applied here; IronRDP's pipeline gets the rest, each
    /// before anything that follows it is applied.
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
            if let Some(h264) = self.h264.as_mut() {
                match &pdu {
                    // IronRDP's pipeline ignores surfaces without pixels, and so does this.
                    GfxPdu::CreateSurface(s) if s.width > 0 && s.height > 0 => {
                        h264.create_surface(s.surface_id, s.width, s.height)
                    }
                    GfxPdu::DeleteSurface(s) => h264.delete_surface(s.surface_id),
                    GfxPdu::ResetGraphics(_) => h264.reset(),
                    _ => {}
                }
            }
            if !self.applies(&pdu) {
                continue;
            }
            send(
                &mut self.inner,
                channel_id,
                &data[unsent..start],
                &mut replies,
            )?;
            unsent = cursor.pos();
            if !self.apply(&pdu) {
                // IronRDP's pipeline drops and counts it, as any update it cannot decode.
                send(
                    &mut self.inner,
                    channel_id,
                    &data[start..unsent],
                    &mut replies,
                )?;
            }
        }
        send(&mut self.inner, channel_id, &data[unsent..], &mut replies)?;
        Ok(replies)
    }

    /// Whether `pdu` is applied here rather than by IronRDP's pipeline.
    fn applies(&self, pdu: &GfxPdu) -> bool {
        match pdu {
            GfxPdu::WireToSurface1(update) => self.h264.is_some() && is_h264(update.codec_id),
            GfxPdu::MapSurfaceToOutput(_)
            | GfxPdu::MapSurfaceToScaledOutput(_)
            | GfxPdu::MapSurfaceToWindow(_)
            | GfxPdu::MapSurfaceToScaledWindow(_)
            | GfxPdu::SolidFill(_)
            | GfxPdu::SurfaceToSurface(_)
            | GfxPdu::SurfaceToCache(_)
            | GfxPdu::CacheToSurface(_)
            | GfxPdu::EvictCacheEntry(_) => true,
            _ => false,
        }
    }

    /// Applies a PDU [`Self::applies`] took; `false` for an H.264 update not decoded.
    fn apply(&mut self, pdu: &GfxPdu) -> bool {
        let mut surfaces = lock(&self.surfaces);
        match pdu {
            GfxPdu::WireToSurface1(update) => {
                let Some(h264) = self.h264.as_mut() else {
                    return false;
                };
                if let Err(e) = h264.decode(update, &mut *surfaces) {
                    debug!(error = %e, "H.264 update not decoded here");
                    return false;
                }
            }
            GfxPdu::MapSurfaceToOutput(map) => surfaces.map(
                map.surface_id,
                map.output_origin_x,
                map.output_origin_y,
                None,
            ),
            GfxPdu::MapSurfaceToScaledOutput(map) => surfaces.map(
                map.surface_id,
                map.output_origin_x,
                map.output_origin_y,
                Some((map.target_width, map.target_height)),
            ),
            GfxPdu::SolidFill(fill) => {
                surfaces.fill(fill.surface_id, &fill.fill_pixel, &fill.rectangles)
            }
            GfxPdu::SurfaceToSurface(copy) => surfaces.copy(
                copy.source_surface_id,
                &copy.source_rectangle,
                copy.destination_surface_id,
                &copy.destination_points,
            ),
            GfxPdu::MapSurfaceToWindow(map) => {
                let mapped = (map.mapped_width, map.mapped_height);
                surfaces.map_to_window(map.surface_id, mapped, mapped)
            }
            GfxPdu::MapSurfaceToScaledWindow(map) => surfaces.map_to_window(
                map.surface_id,
                (map.mapped_width, map.mapped_height),
                (map.target_width, map.target_height),
            ),
            GfxPdu::SurfaceToCache(cache) => {
                let capacity = if self.inner.codec_capabilities().small_cache {
                    SMALL_CACHE_BYTES
                } else {
                    CACHE_BYTES
                };
                let rect = &cache.source_rectangle;
                surfaces.cache(cache.surface_id, rect, cache.cache_slot, capacity)
            }
            GfxPdu::CacheToSurface(cache) => surfaces.uncache(
                cache.cache_slot,
                cache.surface_id,
                &cache.destination_points,
            ),
            GfxPdu::EvictCacheEntry(evict) => surfaces.evict(evict.cache_slot),
            _ => {}
        }
        true
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

/// The surfaces, shared by the pipeline and IronRDP's pipeline's handler. One thread uses
/// them; a panic while they were held ended the session.
fn lock(surfaces: &Mutex<Surfaces>) -> MutexGuard<'_, Surfaces> {
    surfaces.lock().unwrap_or_else(PoisonError::into_inner)
}

/// IronRDP's pipeline's handler: follows its surfaces' lives, frames and decoded rectangles on
/// ecsrdp's surfaces, in the order it meets them.
struct Follow(Arc<Mutex<Surfaces>>);

impl GraphicsPipelineHandler for Follow {
    fn on_capabilities_confirmed(&mut self, caps: &CapabilitySet) {
        info!(?caps, "graphics pipeline confirmed");
    }

    fn on_reset_graphics(&mut self, _width: u32, _height: u32) {
        lock(&self.0).reset();
    }

    fn on_surface_created(&mut self, surface: &Surface) {
        lock(&self.0).create(surface.id, surface.width, surface.height);
    }

    fn on_surface_deleted(&mut self, surface_id: u16) {
        lock(&self.0).delete(surface_id);
    }

    fn on_bitmap_updated(&mut self, update: &BitmapUpdate) {
        // An Alpha update carries IronRDP's surface's colours, which are not these surfaces';
        // and the screen shows no alpha.
        if update.codec_id != Codec1Type::Alpha {
            let rect = &update.destination_rectangle;
            lock(&self.0).put(update.surface_id, rect, &update.data, update.width);
        }
    }

    fn on_frame_complete(&mut self, _frame_id: u32) {
        lock(&self.0).end_frame();
    }
}

#[cfg(test)]
mod tests;
