//! The graphics pipeline client (MS-RDPEGFX): what it advertises and how it decodes H.264.
//! The session composites its output into the shared frame itself; this module only builds
//! the channel and reports which codecs the server chose.

use ironrdp_egfx::client::{BitmapUpdate, GraphicsPipelineClient, GraphicsPipelineHandler};
use ironrdp_egfx::decode::{H264Decoder, OpenH264Decoder};
use ironrdp_egfx::pdu::{CapabilitySet, Codec1Type};
use tracing::{info, warn};

/// The EGFX dynamic channel, with an H.264 decoder when OpenH264 starts. Without one, the
/// channel advertises only what decodes without it: a server never gets the chance to send
/// frames the client cannot paint.
pub(super) fn pipeline() -> GraphicsPipelineClient {
    let decoder = match OpenH264Decoder::new() {
        Ok(decoder) => Some(Box::new(decoder) as Box<dyn H264Decoder>),
        Err(e) => {
            warn!(error = %e, "no H.264 decoder; the graphics pipeline goes without H.264");
            None
        }
    };
    GraphicsPipelineClient::new(Box::new(CodecReport::default()), decoder)
}

/// Logs the capability set the server confirmed and each codec the first time it is used.
#[derive(Default)]
struct CodecReport {
    /// A handful at most: looked through at every update, without allocating.
    seen: Vec<Codec1Type>,
}

impl GraphicsPipelineHandler for CodecReport {
    fn on_capabilities_confirmed(&mut self, caps: &CapabilitySet) {
        info!(?caps, "graphics pipeline confirmed");
    }

    fn on_bitmap_updated(&mut self, update: &BitmapUpdate) {
        if !self.seen.contains(&update.codec_id) {
            self.seen.push(update.codec_id);
            info!(codec = ?update.codec_id, "graphics pipeline codec in use");
        }
    }
}
