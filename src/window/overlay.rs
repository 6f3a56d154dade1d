//! What the window says over the last frame while the session is away: the frame dimmed, and
//! one line of text in the middle ("Reconnecting (2 of 5)..."), drawn with an 8×8 bitmap font
//! scaled up, so that it needs no font file on the user's machine.

use font8x8::UnicodeFonts as _;

/// How many screen pixels one font pixel takes.
const SCALE: u32 = 3;
/// Room around the text, in screen pixels.
const PADDING: u32 = 12;

/// Dims the whole `buffer` (`width` pixels a row, 0RGB) and writes `text` centred over it, white
/// on a dark band. Characters the font lacks are left out.
pub fn notice(buffer: &mut [u32], width: u32, height: u32, text: &str) {
    for pixel in buffer.iter_mut() {
        // Half of each channel: the desktop shows through, clearly not live.
        *pixel = (*pixel >> 1) & 0x007F_7F7F;
    }
    let glyphs: Vec<[u8; 8]> = text
        .chars()
        .filter_map(|c| font8x8::BASIC_FONTS.get(c))
        .collect();
    let text_w = glyphs.len() as u32 * 8 * SCALE;
    let text_h = 8 * SCALE;
    let (band_w, band_h) = (text_w + 2 * PADDING, text_h + 2 * PADDING);
    if band_w > width || band_h > height {
        return;
    }
    let (left, top) = ((width - band_w) / 2, (height - band_h) / 2);
    for y in top..top + band_h {
        let row = (y * width) as usize;
        buffer[row + left as usize..row + (left + band_w) as usize].fill(0x0020_2020);
    }
    let (x0, y0) = (left + PADDING, top + PADDING);
    for (i, glyph) in glyphs.iter().enumerate() {
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8u32 {
                // Bit 0 is the leftmost pixel of the row.
                if bits >> gx & 1 == 0 {
                    continue;
                }
                let x = x0 + (i as u32 * 8 + gx) * SCALE;
                let y = y0 + gy as u32 * SCALE;
                for dy in 0..SCALE {
                    let row = ((y + dy) * width) as usize;
                    buffer[row + x as usize..row + (x + SCALE) as usize].fill(0x00FF_FFFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_dimmed_and_the_text_is_white_in_the_middle() {
        let (w, h) = (320u32, 100u32);
        let mut buffer = vec![0x00C0_8040u32; (w * h) as usize];
        notice(&mut buffer, w, h, "Reconnecting");
        assert_eq!(buffer[0], 0x0060_4020, "dimmed");
        let white = buffer.iter().filter(|&&p| p == 0x00FF_FFFF).count();
        assert!(white > 500, "{white} white pixels");
        // Nothing white outside the band.
        assert!(buffer[..(w * 20) as usize]
            .iter()
            .all(|&p| p != 0x00FF_FFFF));
    }

    #[test]
    fn a_window_too_small_for_the_text_is_only_dimmed() {
        let mut buffer = vec![0x00FF_FFFFu32; 40 * 10];
        notice(&mut buffer, 40, 10, "Reconnecting");
        assert!(buffer.iter().all(|&p| p == 0x007F_7F7F));
    }
}
