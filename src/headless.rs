//! The session without a window: for scripts, tests and machines with no display. The desktop
//! can be written to a PNG when the session ends.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ironrdp::session::image::DecodedImage;
use tracing::info;

use crate::rdp::{FrameSink, PointerShape, RdpError};

/// Notes the first frame (for the time-to-first-frame log) and nothing else: nobody watches.
pub struct QuietSink {
    pub started: Instant,
    pub seen: AtomicBool,
}

impl FrameSink for QuietSink {
    fn frame_ready(&self) {
        if !self.seen.swap(true, Ordering::Relaxed) {
            info!(
                ms = self.started.elapsed().as_millis() as u64,
                "first frame"
            );
        }
    }

    fn pointer(&self, _shape: PointerShape) {}
}

/// Writes the image as an 8-bit RGB PNG.
pub fn write_png(image: &DecodedImage, path: &Path) -> Result<(), RdpError> {
    let error = |detail: String| RdpError::Snapshot {
        path: path.display().to_string(),
        detail,
    };
    let file = std::fs::File::create(path).map_err(|e| error(e.to_string()))?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::from(image.width()),
        u32::from(image.height()),
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let rgb: Vec<u8> = image
        .data()
        .chunks_exact(4)
        .flat_map(|bgrx| [bgrx[2], bgrx[1], bgrx[0]])
        .collect();
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&rgb))
        .map_err(|e| error(e.to_string()))
}
