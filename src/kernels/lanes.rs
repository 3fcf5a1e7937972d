//! A convolution's forward sums for eight samples at once, each sample in one lane of an AVX
//! register: the layout `[C, H, W]` of [`Lane`]s ([`to_lanes`]), whose every value holds the
//! eight samples' values at one place.
//!
//! One sample at a time, [`correlate`](super::correlate) works at full width: it also
//! computes the positions that straddle two rows (C3's rows of 10 in 14: 36 of its 136). With
//! the samples in the lanes, a block of positions needs no run of the input wider than
//! itself, so only the valid positions are computed. The copies into and out of the lanes
//! cost more than C1's 892 positions for 784 save (its forward pass measured 6 % slower
//! through the lanes), so [`Conv`](crate::Conv) takes this path only where the full width
//! has a quarter more positions than the valid ones.
//!
//! Each sum is the same chain as the per-sample path's, one multiply-add after another in
//! `(i, l, m)` order from +0 over the same taps, then the bias added: the two paths give the
//! same bits (a test compares them), so a batch's results do not depend on how many of its
//! samples went through the lanes.

use super::window::{ConvShape, Taps};
use super::{each_of, madd, multiversion};

/// Samples per group: the f32 lanes of an AVX register.
pub(crate) const LANES: usize = 8;

/// Output positions per block of [`sums_block`] at most: for two maps, twelve registers of
/// partial sums in the AVX2 build (of its sixteen), enough independent chains of multiply-adds
/// to hide their latency; in the AVX-512 build, for four maps, twenty of its 32 registers
/// (two positions to each), which then needs fewer loads of taps per multiply-add (C3's
/// evaluation 6 % faster than six positions on an Intel Xeon, with two maps).
const fn positions(wide: bool) -> usize {
    if wide { 10 } else { 6 }
}

/// Output maps per group of [`correlate_lanes`] at most: four in the AVX-512 build
/// ([`Taps::fours`]), two in the AVX2 build.
pub(crate) const MAPS: usize = 4;

/// One value of eight samples, aligned to the 32 bytes of an AVX register, so that no load of
/// one straddles two cache lines.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
pub(crate) struct Lane([f32; LANES]);

/// `lanes[i][s] = samples[s·per + i]`: eight samples of `per` values each, laid out with the
/// samples in the lanes.
pub(crate) fn to_lanes(samples: &[f32], per: usize, lanes: &mut [Lane]) {
    for (s, sample) in samples.chunks_exact(per).enumerate() {
        for (lane, &v) in lanes.iter_mut().zip(sample) {
            lane.0[s] = v;
        }
    }
}

/// `samples[s·per + i] = lanes[i][s]` for eight samples `per` values apart (the last may end
/// after `lanes.len()` values): the inverse of [`to_lanes`].
fn from_lanes(lanes: &[Lane], per: usize, samples: &mut [f32]) {
    for (s, sample) in samples.chunks_mut(per).enumerate() {
        for (v, lane) in sample.iter_mut().zip(lanes) {
            *v = lane.0[s];
        }
    }
}

/// `out[j·plane + at + t] = bias[j] + Σ_taps c[j] · input[offset + start + t]` for the `M`
/// maps `j` and the `P` positions `t` of a block, each term eight samples wide: for each
/// map, one multiply-add after another in tap order, from +0. The maps share each load of
/// `input`.
#[inline(always)]
fn sums_block<const FUSED: bool, const M: usize, const P: usize>(
    input: &[Lane],
    taps: &[(usize, [f32; M])],
    (start, bias): (usize, [f32; M]),
    (plane, at): (usize, usize),
    out: &mut [Lane],
) {
    let mut acc = [[[0.0f32; LANES]; P]; M];
    // each tap by reference: the compiler then broadcasts each weight from memory, on a load
    // port, instead of loading it and then broadcasting it on the port that shares the
    // multiply-adds (C3's forward pass 7 % faster on an Intel Xeon)
    for (offset, c) in taps {
        let x = &input[offset + start..][..P];
        each_of!(P, |t| {
            for j in 0..M {
                for (a, &x) in acc[j][t].iter_mut().zip(&x[t].0) {
                    *a = madd::<FUSED>(c[j], x, *a);
                }
            }
        });
    }
    for (j, acc) in acc.iter().enumerate() {
        for (out, acc) in out[j * plane + at..][..P].iter_mut().zip(acc) {
            for (y, a) in out.0.iter_mut().zip(acc) {
                *y = a + bias[j];
            }
        }
    }
}

/// [`sums_block`] for the `M` maps of `taps` over a row of `ow` output positions starting at
/// input position `start`: blocks of up to `P` positions, as even as they divide the row.
#[inline(always)]
fn sums_of_row<const FUSED: bool, const M: usize, const P: usize>(
    input: &[Lane],
    taps: &[(usize, [f32; M])],
    (start, bias): (usize, [f32; M]),
    (plane, at, ow): (usize, usize, usize),
    out: &mut [Lane],
) {
    let blocks = ow.div_ceil(P);
    let mut x = 0;
    for b in 0..blocks {
        let len = (ow - x) / (blocks - b);
        let (from, to) = ((start + x, bias), (plane, at + x));
        macro_rules! by_len {
            ($($p:literal)*) => {
                match len {
                    $($p if $p <= P => sums_block::<FUSED, M, $p>(input, taps, from, to, out),)*
                    _ => unreachable!("a block holds 1 to {P} positions"),
                }
            };
        }
        by_len!(1 2 3 4 5 6 7 8 9 10);
        x += len;
    }
}

multiversion! { wide
    /// `out` `[8, c_out, OH, OW]` ← the correlation of `input` `[c_in, height, width]` (eight
    /// samples in its lanes) with the kernels whose `taps` are given, plus `bias`, at the
    /// valid positions. Output maps go as in [`correlate`](super::correlate): four at a time
    /// in the AVX-512 build where their taps read the same runs, the rest two at a time,
    /// through `maps` (`[MAPS, OH, OW]`), then out to the samples. With four maps each load of
    /// the input feeds twice as many multiply-adds (C3's forward pass 11 % faster than with
    /// two on an Intel Xeon).
    fn correlate_lanes(input: &[Lane], shape: ConvShape, taps: &Taps, bias: &[f32], maps: &mut [Lane], out: &mut [f32]) {
        if WIDE {
            for (maps_of, tap) in &taps.fours {
                group_of_maps::<FUSED, WIDE, 4>(input, shape, tap, *maps_of, bias, maps, out);
            }
        }
        for (maps_of, tap) in taps.pairs_beside_fours(WIDE) {
            group_of_maps::<FUSED, WIDE, 2>(input, shape, tap, *maps_of, bias, maps, out);
        }
        if let Some((last, tap)) = &taps.last {
            group_of_maps::<FUSED, WIDE, 1>(input, shape, tap, [*last], bias, maps, out);
        }
    }
}

/// One group of [`correlate_lanes`]: the output maps `maps_of` (four, two, or the one left over),
/// whose `taps` are given, row by row into `maps`, then out to the samples.
#[inline(always)]
fn group_of_maps<const FUSED: bool, const WIDE: bool, const M: usize>(
    input: &[Lane],
    shape: ConvShape,
    taps: &[(usize, [f32; M])],
    maps_of: [usize; M],
    bias: &[f32],
    maps: &mut [Lane],
    out: &mut [f32],
) {
    let ConvShape {
        c_out, width, k, ..
    } = shape;
    let (plane, ow) = (maps.len() / MAPS, width + 1 - k);
    let bias = maps_of.map(|p| bias[p]);
    for j in 0..plane / ow {
        let (from, to) = ((j * width, bias), (plane, j * ow, ow));
        if WIDE {
            sums_of_row::<FUSED, M, { positions(true) }>(input, taps, from, to, maps);
        } else {
            sums_of_row::<FUSED, M, { positions(false) }>(input, taps, from, to, maps);
        }
    }
    for (map, p) in maps.chunks_exact(plane).zip(maps_of) {
        from_lanes(map, c_out * plane, &mut out[p * plane..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_go_there_and_back() {
        let per = 21;
        let samples: Vec<f32> = (0..LANES * per).map(|v| v as f32).collect();
        let mut lanes = vec![Lane([f32::NAN; LANES]); per];
        to_lanes(&samples, per, &mut lanes);
        for (i, lane) in lanes.iter().enumerate() {
            let expected: Vec<f32> = (0..LANES).map(|s| (s * per + i) as f32).collect();
            assert_eq!(lane.0.to_vec(), expected, "{i}");
        }
        let mut back = vec![0.0; samples.len()];
        from_lanes(&lanes, per, &mut back);
        assert_eq!(back, samples);
    }
}
