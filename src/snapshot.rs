//! The desktop as a PNG file, written when a session ends (`--snapshot`), by the window and
//! the headless runner alike.

use std::path::{Path, PathBuf};

use ironrdp_session::image::DecodedImage;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the snapshot {}: {detail}", .path.display())]
pub struct SnapshotError {
    pub path: PathBuf,
    pub detail: String,
}

/// Writes the image as an 8-bit RGB PNG.
pub fn write_png(image: &DecodedImage, path: &Path) -> Result<(), SnapshotError> {
    let error = |detail: String| SnapshotError {
        path: path.to_owned(),
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
