//! The sliding-window layout that convolution's forward, backprop and predict share.
//!
//! For a `[C, H, W]` image and a `K x K` kernel, output position `(j, k)` is written
//! `q = j·W + k` ("full width": the row stride of the input, not of the output). Then the
//! window entry `(c, l, m)` of every position is one contiguous run of the flat input,
//! starting at `c·H·W + l·W + m`, so
//!
//! `cols[(c·K + l)·K + m, q] = input[c·H·W + l·W + m + q]`, for `q < N = (OH - 1)·W + OW`,
//!
//! and a convolution is the product `weight · cols`. The kernels compute it without copying
//! the windows: each output map is a weighted sum of those runs, one per [`Taps`] entry
//! (`kernels::correlate`); the weight gradient correlates each run with the output gradient
//! (`kernels::correlate_weight_grad`); and the input gradient adds each run's share back onto
//! the input (`kernels::correlate_adjoint`, the adjoint of `im2col`: the "full convolution
//! with the kernel rotated 180°" of the report). `im2col` itself is kept as their tests'
//! reference. The positions with `q mod W >= OW` straddle two input
//! rows: they are computed and ignored (forward), or given a zero gradient (backprop).

/// `N = (OH - 1)·W + OW`: the columns of `cols` for a `[_, H, W]` input and a `k x k` kernel.
pub(crate) fn positions(height: usize, width: usize, k: usize) -> usize {
    (height - k) * width + (width + 1 - k)
}

/// The shape of a stride-1 convolution: `c_in` input maps of `height x width`, `c_out`
/// output maps, `k x k` kernels; positions at full width, as above.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub height: usize,
    pub width: usize,
    pub k: usize,
}

impl ConvShape {
    /// The full-width positions, `n` ([`positions`]).
    pub fn positions(&self) -> usize {
        positions(self.height, self.width, self.k)
    }

    /// Start of the run of window entry `r = (i·K + l)·K + m` in the flat input.
    pub fn run_start(&self, r: usize) -> usize {
        run_start(r, self.k, self.height, self.width)
    }

    /// Values per input map, `height · width`.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Where the run of each window entry `(l, m)` starts in the first input map, `K·K` of
    /// them; in map `i`, [`ConvShape::plane`] times `i` later.
    pub fn entry_starts(&self) -> Vec<usize> {
        (0..self.k * self.k).map(|lm| self.run_start(lm)).collect()
    }

    /// The taps of every output map of `weight` `[c_out, c_in, k, k]`, maps two at a time
    /// ([`ConvShape::pairs`]).
    pub fn taps(self, weight: &[f32], connected: Option<&[bool]>) -> Taps {
        let (pairs, last) = self.pairs(connected);
        let pairs: Vec<_> = pairs
            .into_iter()
            .map(|pair| (pair, self.taps_of(pair, weight, connected)))
            .collect();
        let (fours, apart) = fours(&pairs);
        Taps {
            pairs,
            last: last.map(|p| (p, self.taps_of([p], weight, connected))),
            fours,
            apart,
        }
    }

    /// The output maps in pairs `[a, b]` (`a < b`), and the one left over when their number is
    /// odd. A pair's taps run over the input maps that either sees, and read a missing kernel
    /// as zero, so each map goes with the first free one after it whose inputs differ from its
    /// own in the fewest maps. Without a table (or with more than 64 input maps) that is the
    /// next map. With LeNet-5's table for C3, each map of three inputs goes with the map of four
    /// that holds them: 36 input maps over the pairs where maps `2p, 2p + 1` take 39.
    fn pairs(self, connected: Option<&[bool]>) -> (Vec<[usize; 2]>, Option<usize>) {
        let c_in = self.c_in;
        let seen: Option<Vec<u64>> = connected.filter(|_| c_in <= 64).map(|table| {
            table
                .chunks_exact(c_in)
                .map(|row| (0..c_in).filter(|&i| row[i]).map(|i| 1 << i).sum())
                .collect()
        });
        let differ = |a: usize, b: usize| seen.as_ref().map_or(0, |s| (s[a] ^ s[b]).count_ones());
        let mut free = vec![true; self.c_out];
        let (mut pairs, mut last) = (Vec::with_capacity(self.c_out / 2), None);
        for a in 0..self.c_out {
            if !std::mem::take(&mut free[a]) {
                continue;
            }
            // the first of the fewest differences
            match (a + 1..self.c_out)
                .filter(|&b| free[b])
                .min_by_key(|&b| differ(a, b))
            {
                Some(b) => {
                    free[b] = false;
                    pairs.push([a, b]);
                }
                None => last = Some(a),
            }
        }
        (pairs, last)
    }

    /// The taps `(offset in the flat input, [weight of each map])` of the output maps `maps`,
    /// in `(i, l, m)` order. Input maps that `connected` `[c_out·c_in]` marks false for all of
    /// `maps` are skipped, and read as zero for some.
    fn taps_of<const M: usize>(
        self,
        maps: [usize; M],
        weight: &[f32],
        connected: Option<&[bool]>,
    ) -> MapTaps<M> {
        let ConvShape {
            c_in,
            height,
            width,
            k,
            ..
        } = self;
        let mut taps = Vec::with_capacity(c_in * k * k);
        for i in 0..c_in {
            let sees = maps.map(|p| connected.is_none_or(|c| c[p * c_in + i]));
            if sees == [false; M] {
                continue;
            }
            let kernels = maps.map(|p| &weight[(p * c_in + i) * k * k..][..k * k]);
            for l in 0..k {
                let rows = kernels.map(|kernel| &kernel[l * k..][..k]);
                let start = (i * height + l) * width;
                taps.extend((0..k).map(|m| {
                    let w = std::array::from_fn(|j| if sees[j] { rows[j][m] } else { 0.0 });
                    (start + m, w)
                }));
            }
        }
        taps
    }
}

/// The taps of a convolution's output maps: for each pair of maps (and the map left over
/// when their number is odd), `(offset of the window entry in the flat input, [weights])`.
/// Built once for a pass, whatever the number of samples it goes through.
#[derive(Debug, Clone)]
pub(crate) struct Taps {
    /// Each pair of output maps, `[a, b]` with `a < b`, with its taps.
    pub pairs: Vec<([usize; 2], MapTaps<2>)>,
    /// The output map left over when their number is odd, with its taps.
    pub last: Option<(usize, MapTaps<1>)>,
    /// Pairs whose taps read the same runs of the input, two by two, as four maps with their
    /// taps ([`fours`]), for kernels whose registers hold four maps' sums.
    pub fours: Vec<([usize; 4], MapTaps<4>)>,
    /// The pairs in none of `fours` (indices into `pairs`).
    apart: Vec<usize>,
}

impl Taps {
    /// The pairs to take two maps at a time: all of them, or with `fours` taken four at a
    /// time, the pairs in none of them.
    pub(crate) fn pairs_beside_fours(
        &self,
        fours: bool,
    ) -> impl Iterator<Item = &([usize; 2], MapTaps<2>)> {
        let all = (!fours).then(|| self.pairs.iter());
        let apart = fours.then(|| self.apart.iter().map(|&p| &self.pairs[p]));
        all.into_iter().flatten().chain(apart.into_iter().flatten())
    }
}

/// The groups of four maps among `pairs`, and the pairs in none (their indices): each pair
/// with the first pair after it whose taps read the same runs (all of them without a table),
/// as one group whose taps hold both pairs' weights.
fn fours(pairs: &[([usize; 2], MapTaps<2>)]) -> (Vec<([usize; 4], MapTaps<4>)>, Vec<usize>) {
    let same_runs = |a: &MapTaps<2>, b: &MapTaps<2>| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0)
    };
    let mut taken = vec![false; pairs.len()];
    let (mut fours, mut apart) = (Vec::new(), Vec::new());
    for (first, ([a, b], taps)) in pairs.iter().enumerate() {
        if std::mem::replace(&mut taken[first], true) {
            continue;
        }
        let partner =
            (first + 1..pairs.len()).find(|&next| !taken[next] && same_runs(taps, &pairs[next].1));
        let Some(next) = partner else {
            apart.push(first);
            continue;
        };
        taken[next] = true;
        let ([c, d], next_taps) = &pairs[next];
        let four = taps.iter().zip(next_taps);
        let four = four.map(|(&(offset, [wa, wb]), &(_, [wc, wd]))| (offset, [wa, wb, wc, wd]));
        fours.push(([*a, *b, *c, *d], four.collect()));
    }
    (fours, apart)
}

/// The taps of `M` output maps: `(offset of the window entry in the flat input, [weight of
/// each map])`, in `(i, l, m)` order.
pub(crate) type MapTaps<const M: usize> = Vec<(usize, [f32; M])>;

/// Start of the run of window entry `row = (c·K + l)·K + m` in the flat input.
fn run_start(row: usize, k: usize, height: usize, width: usize) -> usize {
    let (c, l, m) = (row / (k * k), row / k % k, row % k);
    (c * height + l) * width + m
}

/// Copies the `k x k` windows of `input` `[C, H, W]` into `cols` `[C·K·K, N]`: the reference
/// for the convolution's kernels (`kernels::correlate`, `kernels::correlate_weight_grad`).
#[cfg(test)]
pub(crate) fn im2col(
    input: ndarray::ArrayView3<f32>,
    k: usize,
    mut cols: ndarray::ArrayViewMut2<f32>,
) {
    let (_, height, width) = input.dim();
    let n = positions(height, width, k);
    let input = input.as_standard_layout();
    let input = input.as_slice().expect("standard layout");
    let cols = cols
        .as_slice_mut()
        .expect("cols are allocated in standard layout");
    for (row, out) in cols.chunks_exact_mut(n).enumerate() {
        let start = run_start(row, k, height, width);
        out.copy_from_slice(&input[start..start + n]);
    }
}

/// Adds each row of `cols` `[C·K·K, N]` onto the run of `grad_input` `[C, H, W]` it was
/// copied from by [`im2col`]: the reference for the convolution's backprop
/// (`kernels::correlate_adjoint`).
#[cfg(test)]
pub(crate) fn col2im_add(
    cols: ndarray::ArrayView2<f32>,
    k: usize,
    mut grad_input: ndarray::ArrayViewMut3<f32>,
) {
    let (_, height, width) = grad_input.dim();
    let n = positions(height, width, k);
    let cols = cols
        .as_slice()
        .expect("cols are allocated in standard layout");
    let grad_input = grad_input
        .as_slice_mut()
        .expect("gradients are allocated in standard layout");
    for (row, col) in cols.chunks_exact(n).enumerate() {
        let start = run_start(row, k, height, width);
        for (g, &v) in grad_input[start..start + n].iter_mut().zip(col) {
            *g += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;
    use ndarray::{Array2, Array3};

    #[test]
    fn pairs_put_together_maps_that_see_the_same_inputs() {
        let table: Vec<bool> = crate::lenet5::C3_CONNECTIONS.concat();
        let c3 = ConvShape {
            c_in: 6,
            c_out: 16,
            height: 14,
            width: 14,
            k: 5,
        };
        let (pairs, last) = c3.pairs(Some(&table));
        let expected = [
            [0, 6],
            [1, 7],
            [2, 8],
            [3, 9],
            [4, 10],
            [5, 11],
            [12, 15],
            [13, 14],
        ];
        assert_eq!((pairs.as_slice(), last), (&expected[..], None));
        // the input maps each pair's taps run over: 36, where maps 2p and 2p + 1 take 39
        let seen = |pairs: &[[usize; 2]]| -> usize {
            let sees = |p: usize, i: usize| table[p * 6 + i];
            let pair_sees =
                |[a, b]: [usize; 2]| (0..6).filter(|&i| sees(a, i) || sees(b, i)).count();
            pairs.iter().map(|&pair| pair_sees(pair)).sum()
        };
        let natural: Vec<[usize; 2]> = (0..8).map(|p| [2 * p, 2 * p + 1]).collect();
        assert_eq!((seen(&pairs), seen(&natural)), (36, 39));
        // without a table: each map with the next, an odd one left over
        let five = ConvShape { c_out: 5, ..c3 };
        assert_eq!(five.pairs(None), (vec![[0, 1], [2, 3]], Some(4)));
    }

    #[test]
    fn groups_of_four_are_two_pairs_that_read_the_same_runs() {
        // the maps of each group, fours first, then the pairs taken two at a time; a four's
        // taps are its two pairs' side by side
        let maps_of = |taps: &Taps, four: bool| -> Vec<Vec<usize>> {
            let fours = taps.fours.iter().filter(|_| four).map(|(maps, weights)| {
                for (half, maps) in maps.chunks(2).enumerate() {
                    let pair = taps.pairs.iter().find(|(m, _)| m[..] == *maps);
                    let (_, pair) = pair.expect("a pair of the taps");
                    assert_eq!(pair.len(), weights.len());
                    for (&(offset, w), &(at, w4)) in pair.iter().zip(weights) {
                        assert_eq!((offset, w), (at, [w4[2 * half], w4[2 * half + 1]]));
                    }
                }
                maps.to_vec()
            });
            let pairs = taps.pairs_beside_fours(four).map(|(maps, _)| maps.to_vec());
            fours.chain(pairs).collect()
        };
        let c1 = ConvShape {
            c_in: 1,
            c_out: 6,
            height: 32,
            width: 32,
            k: 5,
        };
        let taps = c1.taps(&vec![1.0; 6 * 25], None);
        assert_eq!(maps_of(&taps, true), [vec![0, 1, 2, 3], vec![4, 5]]);
        assert_eq!(maps_of(&taps, false), [[0, 1], [2, 3], [4, 5]]);
        // C3: only the two pairs that see all six inputs read the same runs, and of C3's other
        // pairs none reads the runs of another
        let c3 = ConvShape {
            c_in: 6,
            c_out: 16,
            ..c1
        };
        let table: Vec<bool> = crate::lenet5::C3_CONNECTIONS.concat();
        let taps = c3.taps(&vec![1.0; 16 * 6 * 25], Some(&table));
        let groups = maps_of(&taps, true);
        assert_eq!(groups.len(), 7);
        assert_eq!(groups[0], [12, 15, 13, 14]);
        // the four's taps keep each map's weights: map 13 does not see input 0 (table row 13)
        let weights = &taps.fours[0].1;
        assert_eq!(weights.len(), 150);
        assert_eq!(weights[0].1, [1.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn im2col_lays_out_windows_at_full_width() {
        // input 1x3x3 = 0..9, k = 2: N = 1·3 + 2 = 5 positions q = 0, 1, (2 straddles), 3, 4.
        // Window (0, 1) is [1, 2, 4, 5], so column q = 1 is that; row (l, m) = (0, 0) is input[0..5].
        let input = Array3::from_shape_fn((1, 3, 3), |(_, j, k)| (j * 3 + k) as f32);
        let mut cols = Array2::zeros((4, 5));
        im2col(input.view(), 2, cols.view_mut());
        assert_eq!(cols.column(1).to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(cols.column(4).to_vec(), vec![4.0, 5.0, 7.0, 8.0]);
        assert_eq!(cols.row(0).to_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> = <x, col2im(y)> for every x and y.
        let (c, h, w, k) = (3, 7, 6, 3);
        let x = uniform((c, h, w), 1);
        let y = uniform((c * k * k, positions(h, w, k)), 2);
        let mut cols = Array2::zeros(y.dim());
        im2col(x.view(), k, cols.view_mut());
        let mut back = Array3::zeros(x.dim());
        col2im_add(y.view(), k, back.view_mut());
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| f64::from(a * b)).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
        approx::assert_relative_eq!(lhs, rhs, max_relative = 1e-5);
    }
}
