//! One RemoteFX tile (MS-RDPRFX 3.1.8.1): its three components decoded to 64×64 planes by
//! ecsrdp's RLGR ([`rlgr`], which also dequantises), IronRDP's sub-band reconstruction and
//! ecsrdp's inverse DWT ([`dwt`]), then converted to RGBX by ecsrdp, a row at a time, straight
//! into the shown frame.
//!
//! Why the conversion is ours: IronRDP's `TileDecoder` converts the whole tile with the `yuv`
//! crate's RemoteFX routine, which has no SIMD path (scalar, a channel offset looked up per
//! byte), into a tile of its own that IronRDP then copies into its image, which ecsrdp copies
//! again into the shown frame. Here the same arithmetic runs vectorised (AVX2 where the CPU has
//! it) and writes each pixel once, where it is shown.

use ironrdp_graphics::subband_reconstruction;
use ironrdp_pdu::codecs::rfx::{EntropyAlgorithm, Quant, Tile};

use super::dwt;
use super::rlgr::{self, RlgrError, COEFFICIENTS};

/// A tile's edge, in pixels.
pub const SIZE: u32 = 64;
const PIXELS: usize = 64 * 64;

/// The Y, Cb and Cr planes of the last tile decoded, 64×64 each, row-major, and the scratch
/// the inverse DWT needs: allocated once per session.
pub struct Planes {
    ycbcr: [Box<[i16; COEFFICIENTS]>; 3],
    scratch: Vec<i16>,
}

/// Why a tile could not be decoded.
#[derive(Debug)]
pub enum TileError {
    /// A component names a quantisation table the tile set does not carry.
    Quant(u8),
    Rlgr(RlgrError),
}

impl std::fmt::Display for TileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TileError::Quant(index) => write!(
                f,
                "a tile names quantisation table {index}, which its tile set does not have"
            ),
            TileError::Rlgr(RlgrError::Empty) => write!(f, "a tile component has no data"),
            TileError::Rlgr(RlgrError::Magnitude) => {
                write!(f, "a tile's RLGR data codes a coefficient out of range")
            }
        }
    }
}

impl Default for Planes {
    fn default() -> Self {
        Planes {
            ycbcr: std::array::from_fn(|_| Box::new([0; COEFFICIENTS])),
            scratch: vec![0; PIXELS],
        }
    }
}

impl Planes {
    /// Decodes `tile`'s three components into the planes.
    pub fn decode(
        &mut self,
        tile: &Tile<'_>,
        quants: &[Quant],
        entropy: EntropyAlgorithm,
    ) -> Result<(), TileError> {
        let components = [
            (tile.y_quant_index, tile.y_data),
            (tile.cb_quant_index, tile.cb_data),
            (tile.cr_quant_index, tile.cr_data),
        ];
        for ((index, data), plane) in components.into_iter().zip(&mut self.ycbcr) {
            let quant = quants
                .get(usize::from(index))
                .ok_or(TileError::Quant(index))?;
            rlgr::decode(entropy, data, &shifts(quant), plane).map_err(TileError::Rlgr)?;
            // The LL3 band is stored as differences (MS-RDPRFX 3.1.8.1.7). Summed after the
            // dequantisation's shifts rather than before, as IronRDP does: the same, since a
            // shift is a multiplication and both wrap at 16 bits.
            subband_reconstruction::decode(&mut plane[PIXELS - 64..]);
            dwt::inverse(&mut plane[..], &mut self.scratch);
        }
        Ok(())
    }

    /// Converts `rgbx.len() / 4` pixels of row `y` from column `x` of the decoded tile.
    pub fn convert(&self, x: u32, y: u32, rgbx: &mut [u8]) {
        let at = (y * SIZE + x) as usize;
        let end = at + rgbx.len() / 4;
        let [luma, cb, cr] = &self.ycbcr;
        to_rgbx(&luma[at..end], &cb[at..end], &cr[at..end], rgbx);
    }
}

/// The dequantisation (MS-RDPRFX 3.1.8.1.5) of each run of 64 coefficients: a left shift by its
/// sub-band's quantisation value less one. The sub-bands lie in the order HL1, LH1, HH1 (1,024
/// coefficients each), HL2, LH2, HH2 (256), HL3, LH3, HH3, LL3 (64).
fn shifts(quant: &Quant) -> [u8; COEFFICIENTS / 64] {
    let bands = [
        (quant.hl1, 16),
        (quant.lh1, 16),
        (quant.hh1, 16),
        (quant.hl2, 4),
        (quant.lh2, 4),
        (quant.hh2, 4),
        (quant.hl3, 1),
        (quant.lh3, 1),
        (quant.hh3, 1),
        (quant.ll3, 1),
    ];
    let mut shifts = [0; COEFFICIENTS / 64];
    let mut at = 0;
    for (value, runs) in bands {
        shifts[at..at + runs].fill(value.saturating_sub(1));
        at += runs;
    }
    shifts
}

/// YCbCr to RGBX with the fixed-point coefficients of MS-RDPRFX 3.1.8.1.3, exactly as IronRDP
/// (through the `yuv` crate) computes them: 16 fractional bits on values with 5 of their own,
/// clamped to 0–255, and wrapping where a hostile stream's values would overflow (as IronRDP's
/// release build does).
fn to_rgbx(luma: &[i16], cb: &[i16], cr: &[i16], rgbx: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as just checked.
        unsafe { to_rgbx_avx2(luma, cb, cr, rgbx) };
        return;
    }
    to_rgbx_any(luma, cb, cr, rgbx);
}

/// [`to_rgbx`] compiled for AVX2: the same loop, eight pixels an instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn to_rgbx_avx2(luma: &[i16], cb: &[i16], cr: &[i16], rgbx: &mut [u8]) {
    to_rgbx_any(luma, cb, cr, rgbx);
}

const SCALE: f32 = 65536.0;
const CR_TO_R: i32 = (1.402525f32 * SCALE) as i32;
const CB_TO_G: i32 = (0.343730f32 * SCALE) as i32;
const CR_TO_G: i32 = (0.714401f32 * SCALE) as i32;
const CB_TO_B: i32 = (1.769905f32 * SCALE) as i32;

#[inline(always)]
fn to_rgbx_any(luma: &[i16], cb: &[i16], cr: &[i16], rgbx: &mut [u8]) {
    let channel = |v: i32| (v >> 21).clamp(0, 255) as u8;
    for (((&l, &cb), &cr), out) in luma.iter().zip(cb).zip(cr).zip(rgbx.chunks_exact_mut(4)) {
        // Y is stored offset by -4096 (MS-RDPRFX 3.1.8.1.4, the level shift).
        let l = i32::from(l.wrapping_add(4096)).wrapping_mul(1 << 16);
        let (cb, cr) = (i32::from(cb), i32::from(cr));
        let r = l.wrapping_add(CR_TO_R.wrapping_mul(cr));
        let g = l
            .wrapping_sub(CR_TO_G.wrapping_mul(cr))
            .wrapping_sub(CB_TO_G.wrapping_mul(cb));
        let b = l.wrapping_add(CB_TO_B.wrapping_mul(cb));
        out.copy_from_slice(&[channel(r), channel(g), channel(b), 0xff]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tile's planes are what IronRDP's stages make of it (its RLGR, LL3 sums, dequantisation
    /// and DWT), with each sub-band quantised differently.
    #[test]
    fn planes_are_ironrdps() {
        use ironrdp_graphics::{dwt as their_dwt, quantization, rlgr as their_rlgr};
        let mut seed = 0x1234_5678_u32;
        let mut next = || super::super::xorshift(&mut seed);
        let mut planes = Planes::default();
        for round in 0..24 {
            let mode = [EntropyAlgorithm::Rlgr1, EntropyAlgorithm::Rlgr3][round % 2];
            // Values a dequantisation may push past 16 bits, which both wrap.
            let mut component = || -> Vec<u8> {
                let plane: Vec<i16> = (0..PIXELS)
                    .map(|_| next())
                    .map(|r| if r % 3 == 0 { (r >> 8) as i16 % 300 } else { 0 })
                    .collect();
                let mut data = vec![0u8; PIXELS * 4];
                let len = their_rlgr::encode(mode, &plane, &mut data).expect("encoded");
                data.truncate(len);
                data
            };
            let data = [component(), component(), component()];
            let mut quant = || -> Quant {
                let mut q = || (next() % 16) as u8;
                Quant {
                    ll3: q(),
                    lh3: q(),
                    hl3: q(),
                    hh3: q(),
                    lh2: q(),
                    hl2: q(),
                    hh2: q(),
                    lh1: q(),
                    hl1: q(),
                    hh1: q(),
                }
            };
            let quants = [quant(), quant()];
            let tile = Tile {
                y_quant_index: 0,
                cb_quant_index: 1,
                cr_quant_index: 0,
                x: 0,
                y: 0,
                y_data: &data[0],
                cb_data: &data[1],
                cr_data: &data[2],
            };
            planes.decode(&tile, &quants, mode).expect("decoded");
            for (c, index) in [0, 1, 0].into_iter().enumerate() {
                let mut theirs = vec![0i16; PIXELS];
                their_rlgr::decode(mode, &data[c], &mut theirs).expect("decoded");
                subband_reconstruction::decode(&mut theirs[PIXELS - 64..]);
                quantization::decode(&mut theirs, &quants[index]);
                their_dwt::decode(&mut theirs, &mut vec![0; PIXELS]);
                assert!(
                    planes.ycbcr[c][..] == theirs[..],
                    "round {round}, component {c}"
                );
            }
        }
    }

    /// The conversion is IronRDP's to the bit, over the whole range a component can take,
    /// the wrapping extremes included: its own tile decoder's conversion is the reference.
    #[test]
    fn converting_matches_ironrdps_conversion() {
        use ironrdp_graphics::color_conversion::{ycbcr_to_rgba, YCbCrBuffer};
        let mut seed = 0x2545_f491_u32;
        let mut next = || super::super::xorshift(&mut seed);
        for round in 0..64 {
            // Values as a real tile has them (within ±4096), then anything an i16 holds.
            let range = if round < 48 { 8192 } else { 65536 };
            let mut plane = || -> Vec<i16> {
                (0..PIXELS)
                    .map(|_| (next() % range) as i32 - range as i32 / 2)
                    .map(|v| v as i16)
                    .collect()
            };
            let (luma, cb, cr) = (plane(), plane(), plane());
            let mut ours = vec![0u8; PIXELS * 4];
            to_rgbx(&luma, &cb, &cr, &mut ours);
            let mut portable = vec![0u8; PIXELS * 4];
            to_rgbx_any(&luma, &cb, &cr, &mut portable);
            assert!(ours == portable, "round {round}: AVX2 and portable differ");
            if round >= 48 && cfg!(debug_assertions) {
                // IronRDP's debug build panics on the overflow its release build wraps.
                continue;
            }
            let mut theirs = vec![0u8; PIXELS * 4];
            let planes = YCbCrBuffer {
                y: &luma,
                cb: &cb,
                cr: &cr,
            };
            ycbcr_to_rgba(planes, &mut theirs).unwrap();
            assert!(ours == theirs, "round {round}");
        }
    }
}
