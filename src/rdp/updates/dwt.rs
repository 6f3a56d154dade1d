//! The inverse discrete wavelet transform of a RemoteFX tile component (MS-RDPRFX 3.1.8.1.6):
//! three levels of the 5/3 lifting filter, from 8×8 sub-bands up to the 64×64 picture, with the
//! tile's coefficients laid out as MS-RDPRFX 3.1.8.1.4 orders them.
//!
//! Why not IronRDP's `dwt::decode`, which computes the same thing to the bit (the tests hold it
//! to it): it is built for the baseline x86-64 and interleaves its rows one value at a time;
//! here the same lifting steps are whole-row operations that the compiler vectorises, built for
//! AVX2 where the CPU has it. It was an eighth of a RemoteFX session's CPU.
//!
//! The lifting steps, for a row or column of `n` low coefficients `L` and `n` high ones `H`,
//! into `2n` values `X`, with `H[-1] = H[0]` and `X[2n] = X[2n - 2]`:
//! `X[2k] = L[k] - ((H[k - 1] + H[k] + 1) >> 1)`, then `X[2k + 1] = 2 H[k] + ((X[2k] + X[2k + 2]) >> 1)`,
//! each kept to 16 bits (wrapping, as IronRDP's do).

/// Inverse-transforms `coefficients` (4,096 of them) in place; `scratch` holds as many.
pub fn inverse(coefficients: &mut [i16], scratch: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as just checked.
        unsafe { inverse_avx2(coefficients, scratch) };
        return;
    }
    inverse_any(coefficients, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn inverse_avx2(coefficients: &mut [i16], scratch: &mut [i16]) {
    inverse_any(coefficients, scratch);
}

#[inline(always)]
fn inverse_any(coefficients: &mut [i16], scratch: &mut [i16]) {
    // Each level's output is the next one's LL band, where that band is stored.
    level::<8>(&mut coefficients[3840..], scratch);
    level::<16>(&mut coefficients[3072..], scratch);
    level::<32>(coefficients, scratch);
}

/// One level: the sub-bands HL, LH, HH and LL (`N`×`N` each, in that order) of `bands` become
/// its `2N`×`2N` picture, rows first (into `scratch`), then columns (back into `bands`).
#[inline(always)]
fn level<const N: usize>(bands: &mut [i16], scratch: &mut [i16]) {
    let bands = &mut bands[..4 * N * N];
    let (hl, rest) = bands.split_at(N * N);
    let (lh, rest) = rest.split_at(N * N);
    let (hh, ll) = rest.split_at(N * N);
    // Rows: L (from LL and HL) in the first N rows of 2N, H (from LH and HH) in the next N.
    let (low_rows, high_rows) = scratch[..4 * N * N].split_at_mut(2 * N * N);
    for r in 0..N {
        let at = r * N..(r + 1) * N;
        let out = r * 2 * N..(r + 1) * 2 * N;
        row_lifting::<N>(&ll[at.clone()], &hl[at.clone()], &mut low_rows[out.clone()]);
        row_lifting::<N>(&lh[at.clone()], &hh[at], &mut high_rows[out]);
    }
    columns::<N>(low_rows, high_rows, bands);
}

/// A row's lifting, eight values at a time with SSE2 (every x86-64 has it), which the
/// compiler does not find by itself here: the neighbours of each step are other lanes of the
/// same vectors, or loads one value further on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn row_lifting<const N: usize>(low: &[i16], high: &[i16], out: &mut [i16]) {
    use std::arch::x86_64::*;
    // Eight i16 lanes of a bounds-checked slice.
    let load = |values: &[i16], at: usize| -> __m128i {
        let lanes: &[i16; 8] = values[at..at + 8].try_into().expect("eight lanes");
        // SAFETY: SSE2 is part of every x86-64 CPU; the load reads the 16 bytes of `lanes`.
        unsafe { _mm_loadu_si128(lanes.as_ptr().cast()) }
    };
    let store = |values: &mut [i16], at: usize, vector: __m128i| {
        let lanes: &mut [i16; 8] = (&mut values[at..at + 8]).try_into().expect("eight lanes");
        // SAFETY: as for `load`; the store writes the 16 bytes of `lanes`.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), vector) }
    };
    // SAFETY: SSE2 is part of every x86-64 CPU, and what follows only computes on registers.
    unsafe {
        // The averages of `lift_even` and `lift_odd`, lane by lane.
        let ceil_average =
            |a, b| _mm_sub_epi16(_mm_or_si128(a, b), _mm_srai_epi16::<1>(_mm_xor_si128(a, b)));
        let floor_average = |a, b| {
            _mm_add_epi16(
                _mm_and_si128(a, b),
                _mm_srai_epi16::<1>(_mm_xor_si128(a, b)),
            )
        };
        for k in (0..N).step_by(8) {
            let high_k = load(high, k);
            let before = if k == 0 {
                _mm_insert_epi16::<0>(_mm_slli_si128::<2>(high_k), i32::from(high[0]))
            } else {
                load(high, k - 1)
            };
            let even = _mm_sub_epi16(load(low, k), ceil_average(before, high_k));
            let after = if k + 8 < N {
                _mm_sub_epi16(load(low, k + 1), ceil_average(high_k, load(high, k + 1)))
            } else {
                // Past the end, the last even value stands in.
                _mm_insert_epi16::<7>(_mm_srli_si128::<2>(even), _mm_extract_epi16::<7>(even))
            };
            let odd = _mm_add_epi16(_mm_slli_epi16::<1>(high_k), floor_average(even, after));
            store(out, 2 * k, _mm_unpacklo_epi16(even, odd));
            store(out, 2 * k + 8, _mm_unpackhi_epi16(even, odd));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn row_lifting<const N: usize>(low: &[i16], high: &[i16], out: &mut [i16]) {
    row::<N>(low, high, out);
}

/// A row's lifting: `low` and `high` (`N` each) into `out` (`2N`), value by value: where
/// there is no SSE2, and the reference for [`row_lifting`].
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn row<const N: usize>(low: &[i16], high: &[i16], out: &mut [i16]) {
    let (low, high) = (&low[..N], &high[..N]);
    let mut even = [0i16; N];
    even[0] = lift_even(low[0], high[0], high[0]);
    for k in 1..N {
        even[k] = lift_even(low[k], high[k - 1], high[k]);
    }
    let mut odd = [0i16; N];
    for k in 0..N - 1 {
        odd[k] = lift_odd(high[k], even[k], even[k + 1]);
    }
    odd[N - 1] = lift_odd(high[N - 1], even[N - 1], even[N - 1]);
    for ((pair, &e), &o) in out[..2 * N].chunks_exact_mut(2).zip(&even).zip(&odd) {
        pair[0] = e;
        pair[1] = o;
    }
}

/// The columns' lifting, a whole row of `2N` columns at a time: `low` and `high` (`N` rows of
/// `2N` each) into `out` (`2N` rows).
#[inline(always)]
fn columns<const N: usize>(low: &[i16], high: &[i16], out: &mut [i16]) {
    let width = 2 * N;
    fn line(rows: &[i16], width: usize, k: usize) -> &[i16] {
        &rows[k * width..(k + 1) * width]
    }
    // Even rows first: each needs the high rows beside it.
    for k in 0..N {
        let above = line(high, width, k.saturating_sub(1));
        let (l, h) = (line(low, width, k), line(high, width, k));
        let dst = &mut out[2 * k * width..(2 * k + 1) * width];
        for (((d, &l), &a), &h) in dst.iter_mut().zip(l).zip(above).zip(h) {
            *d = lift_even(l, a, h);
        }
    }
    // Then odd rows, from the even rows on either side.
    for k in 0..N {
        let below = if k + 1 < N { 2 * k + 2 } else { 2 * k };
        let (first, rest) = out.split_at_mut((2 * k + 1) * width);
        let previous = &first[2 * k * width..];
        let (dst, rest) = rest.split_at_mut(width);
        let next = if below == 2 * k {
            previous
        } else {
            &rest[..width]
        };
        let h = line(high, width, k);
        for (((d, &h), &p), &n) in dst.iter_mut().zip(h).zip(previous).zip(next) {
            *d = lift_odd(h, p, n);
        }
    }
}

/// `L - ceil((H_before + H) / 2)`, to 16 bits. The average is taken without widening, so
/// that sixteen of these fit one AVX2 instruction: `a | b` less half of `a ^ b` is the
/// rounded-up average of two integers, exactly.
#[inline(always)]
fn lift_even(low: i16, high_before: i16, high: i16) -> i16 {
    let average = (high_before | high).wrapping_sub((high_before ^ high) >> 1);
    low.wrapping_sub(average)
}

/// `2 H + floor((X_before + X_after) / 2)`, to 16 bits; `a & b` plus half of `a ^ b` is the
/// rounded-down average.
#[inline(always)]
fn lift_odd(high: i16, before: i16, after: i16) -> i16 {
    let average = (before & after).wrapping_add((before ^ after) >> 1);
    high.wrapping_shl(1).wrapping_add(average)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transform is IronRDP's to the bit, on coefficients as tiles have them and on any
    /// 16-bit values (where the arithmetic wraps).
    #[test]
    fn the_inverse_is_ironrdps() {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || super::super::xorshift(&mut seed);
        for round in 0..40 {
            let range: u32 = if round < 20 { 2048 } else { 65536 };
            let coefficients: Vec<i16> = (0..4096)
                .map(|_| ((next() % range) as i32 - (range / 2) as i32) as i16)
                .collect();
            let mut theirs = coefficients.clone();
            ironrdp_graphics::dwt::decode(&mut theirs, &mut vec![0; 4096]);
            let mut ours = coefficients.clone();
            inverse(&mut ours, &mut vec![0; 4096]);
            assert!(ours == theirs, "round {round}");
            let mut portable = coefficients;
            inverse_any(&mut portable, &mut vec![0; 4096]);
            assert!(portable == theirs, "round {round}, without AVX2");
        }
    }

    /// The SSE2 rows are the plain rows (which other CPUs run), at each level's width.
    #[test]
    fn the_vector_rows_are_the_plain_rows() {
        fn check<const N: usize>(seed: u32) {
            let mut seed = seed;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as i16
            };
            for _ in 0..50 {
                let low: Vec<i16> = (0..N).map(|_| next()).collect();
                let high: Vec<i16> = (0..N).map(|_| next()).collect();
                let (mut plain, mut vector) = (vec![0; 2 * N], vec![0; 2 * N]);
                row::<N>(&low, &high, &mut plain);
                row_lifting::<N>(&low, &high, &mut vector);
                assert_eq!(plain, vector, "N = {N}");
            }
        }
        check::<8>(1);
        check::<16>(2);
        check::<32>(3);
    }
}
