//! The desktop as a PNG file, written when a session ends (`--snapshot`), by the window and
//! the headless runner alike.

use std::path::{Path, PathBuf};

use crate::render::Frame;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the snapshot {}: {detail}", .path.display())]
pub struct SnapshotError {
    pub path: PathBuf,
    pub detail: String,
}

/// Writes the frame's desktop as an 8-bit RGB PNG.
pub fn write_png(frame: &Frame, path: &Path) -> Result<(), SnapshotError> {
    let error = |detail: String| SnapshotError {
        path: path.to_owned(),
        detail,
    };
    let (width, height) = frame.size();
    // The image may be wider than the desktop: take each row's desktop part.
    let pixels = frame.pixels();
    let stride = usize::from(pixels.width) * 4;
    let rgb: Vec<u8> = pixels
        .data
        .chunks_exact(stride)
        .take(height as usize)
        .flat_map(|row| row[..width as usize * 4].chunks_exact(4))
        .flat_map(|rgbx| [rgbx[0], rgbx[1], rgbx[2]])
        .collect();
    // Encoded in memory, so that every error is seen (a PNG writer finishing on drop would
    // lose its own), then written whole: a failure leaves no truncated picture behind.
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&rgb)?;
            writer.finish()
        })
        .map_err(|e| error(e.to_string()))?;
    crate::private_file::replace(path, |file| std::io::Write::write_all(file, &png))
        .map_err(|e| error(e.to_string()))
}
