//! RLGR, the adaptive run-length / Golomb-Rice coding of a RemoteFX tile's coefficients
//! (MS-RDPRFX 3.1.8.1.7.1): decoded exactly as IronRDP's `rlgr::decode` decodes it, the same
//! coefficients from the same bytes, and the same bytes refused.
//!
//! Why ours: IronRDP's bit reader tops its buffer up a byte at a time, in a loop, before every
//! read, and a tile component takes several reads per coefficient. Its decoder was the largest
//! single cost of a live RemoteFX session (9–11 % of ecsrdp's CPU). Here the buffer takes eight
//! bytes at once while eight remain, a code's fixed-width fields are read together, the tile is
//! zeroed once rather than run by run, and whole runs of zeros are summed without a loop per
//! run once their length stops growing. It takes 0.68 of IronRDP's time on the same tiles.

use ironrdp_pdu::codecs::rfx::EntropyAlgorithm;

/// The adaptation constants of MS-RDPRFX 3.1.8.1.7.1.
const KP_MAX: u32 = 80;
const LS_GR: u32 = 3;
const UP_GR: u32 = 4;
const DN_GR: u32 = 6;
const UQ_GR: u32 = 3;
const DQ_GR: u32 = 3;

/// Why a component's RLGR data cannot be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum RlgrError {
    /// The component has no data at all.
    Empty,
    /// A coded magnitude does not fit a 16-bit coefficient.
    Magnitude,
}

/// A tile component's coefficients.
pub const COEFFICIENTS: usize = 4096;

/// Decodes one component's `data` into `out`, each coefficient shifted left by `shifts` of its
/// run of 64 (the dequantisation, done here where it costs a shift per nonzero coefficient
/// rather than a pass over the tile). Coefficients the data ends before are zero.
pub fn decode(
    mode: EntropyAlgorithm,
    data: &[u8],
    shifts: &[u8; COEFFICIENTS / 64],
    out: &mut [i16; COEFFICIENTS],
) -> Result<(), RlgrError> {
    let scaled = |value: i16, at: usize| value.wrapping_shl(u32::from(shifts[at / 64]));
    if data.is_empty() {
        return Err(RlgrError::Empty);
    }
    let rlgr3 = matches!(mode, EntropyAlgorithm::Rlgr3);
    let mut bits = Bits::new(data);
    let mut kp: u32 = 1 << LS_GR;
    let mut krp: u32 = 1 << LS_GR;
    // Zero at once: the runs and whatever the data does not reach are left as they are.
    out.fill(0);
    let mut at = 0;
    // Each arm stops where the data ends before its code does, as IronRDP's does: what it
    // wrote stays and the rest of the tile is zero.
    while !bits.is_empty() && at < out.len() {
        let k = kp >> LS_GR;
        if k != 0 {
            // Run-length mode: a run of zeros, then one nonzero coefficient.
            let whole_runs = bits.count(false);
            let mut run = 0u32;
            let mut left = whole_runs;
            // Each whole run is 2^k zeros and raises k; once k is at its ceiling they are all
            // the same length.
            while left > 0 && kp < KP_MAX {
                run += 1 << (kp >> LS_GR);
                kp = (kp + UP_GR).min(KP_MAX);
                left -= 1;
            }
            run = run.wrapping_add((left as u32).wrapping_mul(1 << (KP_MAX >> LS_GR)));
            // The one that ended the whole runs, the run's low k bits (k as they left it) and
            // the sign, in one read: where the data ends within them, the decoding stops all
            // the same.
            let k = kp >> LS_GR;
            let Some(fields) = bits.read(k + 2) else {
                break;
            };
            let run = run.wrapping_add((fields >> 1) & ((1 << k) - 1));
            let sign = fields & 1;
            let Some(code) = golomb_rice(&mut bits, &mut krp) else {
                break;
            };
            kp = kp.saturating_sub(DN_GR);
            let magnitude = i16::try_from(code + 1).map_err(|_| RlgrError::Magnitude)?;
            // The run's zeros are there already.
            at += (run as usize).min(out.len() - at);
            let Some(slot) = out.get_mut(at) else {
                break;
            };
            *slot = scaled(if sign != 0 { -magnitude } else { magnitude }, at);
            at += 1;
        } else {
            // Golomb-Rice mode: one coefficient (RLGR1) or two (RLGR3) per code.
            let Some(code) = golomb_rice(&mut bits, &mut krp) else {
                break;
            };
            if !rlgr3 {
                kp = if code == 0 {
                    (kp + UQ_GR).min(KP_MAX)
                } else {
                    kp.saturating_sub(DQ_GR)
                };
                out[at] = scaled(signed(code)?, at);
                at += 1;
                continue;
            }
            // RLGR3: the code is the sum of two, the first given in as many bits as the sum has.
            let Some(first) = bits.read(u32::BITS - code.leading_zeros()) else {
                break;
            };
            let second = code.checked_sub(first).ok_or(RlgrError::Magnitude)?;
            if first != 0 && second != 0 {
                kp = kp.saturating_sub(2 * DQ_GR);
            } else if first == 0 && second == 0 {
                kp = (kp + 2 * UQ_GR).min(KP_MAX);
            }
            out[at] = scaled(signed(first)?, at);
            at += 1;
            // Refused before it is found to have no room, as IronRDP's decoder does.
            let second = signed(second)?;
            let Some(slot) = out.get_mut(at) else {
                break;
            };
            *slot = scaled(second, at);
            at += 1;
        }
    }
    Ok(())
}

/// A Golomb-Rice code with the adaptive parameter `krp`: a unary quotient, then `kr` bits of
/// remainder. None where the data ends first.
#[inline(always)]
fn golomb_rice(bits: &mut Bits<'_>, krp: &mut u32) -> Option<u32> {
    let ones = bits.count(true);
    let kr = *krp >> LS_GR;
    // The zero that ended the ones (the read's top bit), then the remainder.
    let remainder = bits.read(kr + 1)?;
    // A quotient is bounded by the data's bits (a component is at most 64 KiB), so this fits.
    let code = remainder.wrapping_add((ones as u32).wrapping_shl(kr));
    if ones == 0 {
        *krp = krp.saturating_sub(2);
    } else if ones > 1 {
        *krp = krp.saturating_add(ones as u32).min(KP_MAX);
    }
    Some(code)
}

/// A coefficient from its folded form: even values are positive, odd ones negative.
#[inline(always)]
fn signed(code: u32) -> Result<i16, RlgrError> {
    let magnitude = i16::try_from((code + 1) >> 1).map_err(|_| RlgrError::Magnitude)?;
    Ok(if code & 1 != 0 { -magnitude } else { magnitude })
}

/// The data's bits, most significant first, through a 64-bit buffer.
struct Bits<'a> {
    data: &'a [u8],
    /// The first byte of `data` whose bits are not among the `len` of `buffer`.
    next: usize,
    /// The next bit is bit 63 and the `len` bits from there are valid; those below them are
    /// zero or the bits that follow (a refill may load them early and loads them again as
    /// the same values).
    buffer: u64,
    len: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            next: 0,
            buffer: 0,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.next == self.data.len()
    }

    /// Fills the buffer to at least 56 bits, or with all that is left. `len` must be below 64.
    #[inline(always)]
    fn refill(&mut self) {
        debug_assert!(self.len < 64);
        let word = self.data.get(self.next..self.next + 8);
        if let Some(word) = word.and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            // Eight bytes at once; the whole ones that fit count, and the one cut short is
            // loaded again by the next refill.
            self.buffer |= u64::from_be_bytes(word) >> self.len;
            self.next += ((63 - self.len) >> 3) as usize;
            self.len |= 56;
            return;
        }
        while self.len <= 56 && self.next < self.data.len() {
            self.buffer |= u64::from(self.data[self.next]) << (56 - self.len);
            self.next += 1;
            self.len += 8;
        }
    }

    /// The next `n` bits (at most 32), or None, taking nothing, where fewer are left.
    #[inline(always)]
    fn read(&mut self, n: u32) -> Option<u32> {
        if n == 0 {
            return Some(0);
        }
        if self.len < n {
            self.refill();
            if self.len < n {
                return None;
            }
        }
        let value = (self.buffer >> (64 - n)) as u32;
        self.consume(n);
        Some(value)
    }

    /// Takes the bits equal to `one` from here on, up to the first that is not (left for the
    /// caller) or the end of the data, and says how many it took.
    #[inline(always)]
    fn count(&mut self, one: bool) -> usize {
        if self.len < 32 {
            self.refill();
        }
        let word = if one { !self.buffer } else { self.buffer };
        let run = word.leading_zeros();
        if run < self.len {
            self.consume(run);
            return run as usize;
        }
        self.count_long(one)
    }

    /// [`Bits::count`] past the buffer's valid bits.
    #[cold]
    fn count_long(&mut self, one: bool) -> usize {
        let mut total = 0;
        loop {
            if self.len == 0 {
                self.refill();
                if self.len == 0 {
                    return total;
                }
            }
            let word = if one { !self.buffer } else { self.buffer };
            let run = word.leading_zeros().min(self.len);
            total += run as usize;
            if run < self.len {
                self.consume(run);
                return total;
            }
            self.buffer = 0;
            self.len = 0;
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        debug_assert!(n < 64 && n <= self.len);
        self.buffer <<= n;
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::super::xorshift;
    use super::*;
    use ironrdp_graphics::rlgr as theirs;

    /// Both decoders on the same bytes: the same coefficients, or both refusing them.
    fn same_as_ironrdps(mode: EntropyAlgorithm, data: &[u8], what: &str) {
        let mut ours = [7i16; COEFFICIENTS];
        let mut reference = vec![7i16; COEFFICIENTS];
        let a = decode(mode, data, &[0; 64], &mut ours);
        let b = theirs::decode(mode, data, &mut reference);
        assert_eq!(a.is_ok(), b.is_ok(), "{what}: ours {a:?}, IronRDP's {b:?}");
        if a.is_ok() {
            assert!(ours[..] == reference[..], "{what}: the coefficients differ");
        }
    }

    /// Coefficients as a tile has them: mostly zero (runs), small values, now and then a large
    /// one, encoded by IronRDP's encoder in both modes.
    #[test]
    fn decodes_what_ironrdp_encodes_as_ironrdp_decodes_it() {
        let mut seed = 0x9e37_79b9;
        for round in 0..400 {
            let zeros = [10, 50, 90, 99][round % 4];
            let large = round % 5 == 0;
            let plane: Vec<i16> = (0..4096)
                .map(|_| {
                    let r = xorshift(&mut seed);
                    if r % 100 < zeros {
                        0
                    } else if large && r.is_multiple_of(97) {
                        (r >> 8) as i16 / 2
                    } else {
                        ((r >> 8) % 41) as i16 - 20
                    }
                })
                .collect();
            for mode in [EntropyAlgorithm::Rlgr1, EntropyAlgorithm::Rlgr3] {
                let mut data = vec![0u8; 4096 * 4];
                let len = theirs::encode(mode, &plane, &mut data).expect("encoded");
                let mut ours = [7i16; COEFFICIENTS];
                decode(mode, &data[..len], &[0; 64], &mut ours).expect("decoded");
                assert!(
                    ours[..] == plane[..],
                    "round {round}, {mode:?}: not the plane encoded"
                );
                same_as_ironrdps(mode, &data[..len], &format!("round {round}"));
                // Cut short anywhere: what was decoded stays, the rest is zero.
                let cut = (xorshift(&mut seed) as usize) % len;
                same_as_ironrdps(mode, &data[..cut.max(1)], &format!("round {round}, cut"));
            }
        }
    }

    /// Any bytes at all, long runs of ones and zeros among them: never a panic, and the same
    /// answer as IronRDP's.
    #[test]
    fn any_bytes_are_decoded_or_refused_as_ironrdp_does() {
        let mut seed = 0x2545_f491;
        for round in 0..3000 {
            let len = 1 + (xorshift(&mut seed) % 300) as usize;
            let fill = [None, Some(0x00), Some(0xff)][round % 3];
            let data: Vec<u8> = (0..len)
                .map(|i| match fill {
                    Some(byte) if i % 40 < 30 => byte,
                    _ => xorshift(&mut seed) as u8,
                })
                .collect();
            for mode in [EntropyAlgorithm::Rlgr1, EntropyAlgorithm::Rlgr3] {
                same_as_ironrdps(mode, &data, &format!("round {round}"));
            }
        }
        // A stream opens in run-length mode: `zeros` zero bits are as many whole runs, which
        // take k to its ceiling past 18 of them; then anything.
        for zeros in 0..64u32 {
            let mut data = vec![0u8; 8];
            data.extend((0..32).map(|_| xorshift(&mut seed) as u8));
            data[zeros as usize / 8] |= 0x80 >> (zeros % 8);
            for mode in [EntropyAlgorithm::Rlgr1, EntropyAlgorithm::Rlgr3] {
                same_as_ironrdps(mode, &data, &format!("{zeros} whole runs"));
            }
        }
        assert_eq!(
            decode(
                EntropyAlgorithm::Rlgr1,
                &[],
                &[0; 64],
                &mut [0; COEFFICIENTS]
            ),
            Err(RlgrError::Empty)
        );
    }
}
