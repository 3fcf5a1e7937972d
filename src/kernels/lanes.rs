//! A convolution's forward sums for eight samples at once, each sample in one lane of an AVX
//! register: the layout `[C, H, W, 8]` ([`to_lanes`]), whose every value holds the eight
//! samples' values at one place.
//!
//! One sample at a time, [`correlate`](super::correlate) works at full width and two output
//! maps at a time: it also computes the positions that straddle two rows, and both maps'
//! terms for an input map that only one of them sees (with a partial connection table, as in
//! C3). With the samples in the lanes, a block of positions of one output map needs neither:
//! each term is one weight times eight samples' values, so only the valid positions and the
//! connected inputs are computed (for LeNet-5's C3, 57 % of the per-sample path's work).
//!
//! Each sum is the same chain as the per-sample path's, one multiply-add after another in
//! `(i, l, m)` order from +0 over the connected inputs, then the bias added: the two paths
//! give the same bits (a test compares them), so a batch's results do not depend on how many
//! of its samples went through the lanes.

use super::window::ConvShape;
use super::{madd, multiversion};

/// Samples per group: the f32 lanes of an AVX register.
pub(crate) const LANES: usize = 8;

/// Output positions per block of [`sums_block`]: twelve registers of partial sums, enough
/// independent chains of multiply-adds to hide their latency.
const POSITIONS: usize = 12;

/// `lanes[i·8 + s] = samples[s·per + i]`: eight samples of `per` values each, laid out with
/// the samples in the lanes.
pub(crate) fn to_lanes(samples: &[f32], per: usize, lanes: &mut [f32]) {
    for (s, sample) in samples.chunks_exact(per).enumerate() {
        for (lane, &v) in lanes.chunks_exact_mut(LANES).zip(sample) {
            lane[s] = v;
        }
    }
}

/// `samples[s·per + i] = lanes[i·8 + s]` for eight samples `per` values apart (the last may
/// end after `lanes / 8` values): the inverse of [`to_lanes`].
fn from_lanes(lanes: &[f32], per: usize, samples: &mut [f32]) {
    for (s, sample) in samples.chunks_mut(per).enumerate() {
        for (v, lane) in sample.iter_mut().zip(lanes.chunks_exact(LANES)) {
            *v = lane[s];
        }
    }
}

/// `out[t] = bias + Σ_taps w · input[offset + start + t]` for the `P` positions `t` of a
/// block, each term eight samples wide: one multiply-add after another in tap order, from +0.
#[inline(always)]
fn sums_block<const FUSED: bool, const P: usize>(
    input: &[f32],
    taps: &[(usize, f32)],
    start: usize,
    bias: f32,
    out: &mut [f32],
) {
    let mut acc = [[0.0f32; LANES]; P];
    for &(offset, w) in taps {
        let x = &input[(offset + start) * LANES..][..P * LANES];
        for (acc, x) in acc.iter_mut().zip(x.chunks_exact(LANES)) {
            for (a, &x) in acc.iter_mut().zip(x) {
                *a = madd::<FUSED>(w, x, *a);
            }
        }
    }
    for (out, acc) in out.chunks_exact_mut(LANES).zip(acc) {
        for (y, a) in out.iter_mut().zip(acc) {
            *y = a + bias;
        }
    }
}

/// [`sums_block`] for a block of `len` (1 to [`POSITIONS`]) positions.
#[inline(always)]
fn sums_of_len<const FUSED: bool>(
    len: usize,
    input: &[f32],
    taps: &[(usize, f32)],
    start: usize,
    bias: f32,
    out: &mut [f32],
) {
    macro_rules! by_len {
        ($($p:literal)*) => {
            match len {
                $($p => sums_block::<FUSED, $p>(input, taps, start, bias, out),)*
                _ => unreachable!("a block holds 1 to {POSITIONS} positions"),
            }
        };
    }
    by_len!(1 2 3 4 5 6 7 8 9 10 11 12);
}

multiversion! {
    /// `out` `[S, c_out, OH, OW]` ← the correlation of `input` `[c_in, height, width, 8]` (S
    /// samples in its lanes, S <= 8) with the kernels of `weight` `[c_out, c_in, k, k]` that
    /// `connected` (`[c_out, c_in]`, all when `None`) keeps, plus `bias`, at the valid
    /// positions. Each output map's sums go into `map` (`[OH, OW, 8]`), then out to the
    /// samples. Each output row goes in blocks of up to [`POSITIONS`], as even as they divide
    /// it.
    fn correlate_lanes(input: &[f32], shape: ConvShape, weight: &[f32], connected: Option<&[bool]>, bias: &[f32], map: &mut [f32], out: &mut [f32]) {
        let ConvShape { c_in, c_out, height, width, k } = shape;
        let (plane, ow) = (map.len() / LANES, width + 1 - k);
        let blocks = ow.div_ceil(POSITIONS);
        let mut taps = Vec::with_capacity(c_in * k * k);
        for (p, &bias) in bias.iter().enumerate() {
            taps.clear();
            for i in (0..c_in).filter(|&i| connected.is_none_or(|c| c[p * c_in + i])) {
                let kernel = &weight[(p * c_in + i) * k * k..][..k * k];
                for l in 0..k {
                    for m in 0..k {
                        taps.push(((i * height + l) * width + m, kernel[l * k + m]));
                    }
                }
            }
            for (j, row) in map.chunks_exact_mut(ow * LANES).enumerate() {
                let mut x = 0;
                for b in 0..blocks {
                    let len = (ow - x) / (blocks - b);
                    let out = &mut row[x * LANES..(x + len) * LANES];
                    sums_of_len::<FUSED>(len, input, &taps, j * width + x, bias, out);
                    x += len;
                }
            }
            from_lanes(map, c_out * plane, &mut out[p * plane..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_go_there_and_back() {
        // 21 values: two squares of eight and five more
        let per = 21;
        let samples: Vec<f32> = (0..LANES * per).map(|v| v as f32).collect();
        let mut lanes = vec![f32::NAN; per * LANES];
        to_lanes(&samples, per, &mut lanes);
        for (i, lane) in lanes.chunks_exact(LANES).enumerate() {
            let expected: Vec<f32> = (0..LANES).map(|s| (s * per + i) as f32).collect();
            assert_eq!(lane, expected, "{i}");
        }
        let mut back = vec![0.0; samples.len()];
        from_lanes(&lanes, per, &mut back);
        assert_eq!(back, samples);
    }
}
