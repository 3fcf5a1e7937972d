//! The numeric inner loops: sigmoid and scaled tanh over a slice, and matrix products that
//! pick a loop fitted to their shape.
//!
//! Each loop is written once, in plain Rust, and compiled twice: as is, and with AVX2 and FMA
//! enabled, the second chosen at run time when the processor has them. No loop uses `mul_add`,
//! so both builds give bit-identical results.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Defines `pub(crate) fn $name` that runs `$body` compiled for AVX2 + FMA when the processor
/// has them, and for the baseline target otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the processor has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// Partial sums in [`dot`]: four AVX registers of f32, so that four additions are in flight
/// at once instead of each waiting for the one before.
const LANES: usize = 32;

multiversion! {
    /// `values[i] = 1 / (1 + e^-values[i])`, with [`exp`] so that the loop vectorises.
    fn sigmoid_in_place(values: &mut [f32]) {
        let sigmoid = |v: &mut f32| *v = 1.0 / (1.0 + exp(-*v));
        // four independent registers at a time, so that one's long dependency chain (the
        // polynomial, the division) overlaps the others'
        let mut chunks = values.chunks_exact_mut(LANES);
        chunks.by_ref().for_each(|chunk| chunk.iter_mut().for_each(sigmoid));
        chunks.into_remainder().iter_mut().for_each(sigmoid);
    }
}

multiversion! {
    /// `values[i] = a · tanh(s · values[i])`, computed as `a · (2 / (1 + e^(-2s·v)) - 1)` with
    /// [`exp`] so that the loop vectorises; the absolute error stays below 3e-7 · `a`.
    fn scaled_tanh_in_place(values: &mut [f32], a: f32, s: f32) {
        let tanh = |v: &mut f32| *v = a * (2.0 / (1.0 + exp(-2.0 * s * *v)) - 1.0);
        let mut chunks = values.chunks_exact_mut(LANES);
        chunks.by_ref().for_each(|chunk| chunk.iter_mut().for_each(tanh));
        chunks.into_remainder().iter_mut().for_each(tanh);
    }
}

/// `e^x` to within 2 ulp for `x` in [-87.3, 88] (Cephes' `expf`: `2^n · p(r)` with
/// `x = n·ln 2 + r`, |r| <= ln(2)/2, and a degree-7 polynomial `p`). Clamped outside that range,
/// so it never returns infinity or a denormal. Branch-free, so a loop over it vectorises.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n · LN2_HI is exact
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n without a float-to-int conversion (which would not vectorise): adding 2^23 puts the
    // integer n + 127, in [1, 254], in the low mantissa bits; shifting moves it to the exponent.
    let biased = (n + 127.0 + 8_388_608.0).to_bits();
    y * f32::from_bits(biased << 23)
}

/// `Σ a[i] · b[i]`, summed in [`LANES`] interleaved partial sums (so the loop vectorises; the
/// order of additions is fixed, so the result does not depend on the instruction set).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// `y = beta · y + m · v` for `m` `[rows, cols]` with rows or columns contiguous, `v` `[cols]`,
    /// `y` `[rows]`: dot products of the rows, or a sum of scaled columns.
    fn gemv(m: ArrayView2<f32>, v: ArrayView1<f32>, beta: f32, y: ArrayViewMut1<f32>) {
        let mut y = y;
        let v = v.as_standard_layout();
        let v = v.as_slice().expect("standard layout");
        if beta == 0.0 {
            y.fill(0.0);
        } else if beta != 1.0 {
            y *= beta;
        }
        if m.is_standard_layout() {
            for (out, row) in y.iter_mut().zip(m.rows()) {
                *out += dot(row.as_slice().expect("rows are contiguous"), v);
            }
        } else {
            let mut acc = y.to_owned();
            let out = acc.as_slice_mut().expect("fresh array");
            for (col, &s) in m.columns().into_iter().zip(v) {
                let col = col.to_slice().expect("columns are contiguous");
                for (o, &c) in out.iter_mut().zip(col) {
                    *o += s * c;
                }
            }
            y.assign(&acc);
        }
    }
}

/// `c = beta · c + a · b` for `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`.
///
/// A product with one row or one column (a single sample through a dense layer) runs as
/// [`gemv`], which reads the weights once where a blocked product would copy them into its
/// packing buffers first; anything else goes to `matrixmultiply`.
pub(crate) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    let contiguous = |m: &ArrayView2<f32>| m.is_standard_layout() || m.t().is_standard_layout();
    if c.ncols() == 1 && contiguous(&a) {
        gemv(a, b.column(0), beta, c.column_mut(0));
    } else if c.nrows() == 1 && contiguous(&b) {
        gemv(b.t(), a.row(0), beta, c.row_mut(0));
    } else {
        general_mat_mul(1.0, &a, &b, beta, &mut c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;
    use approx::assert_abs_diff_eq;

    #[test]
    fn exp_is_within_2_ulp() {
        for i in -8730..=8800 {
            let x = i as f32 / 100.0;
            let exact = (x as f64).exp();
            let err = ((exp(x) as f64 - exact) / exact).abs();
            assert!(
                err < 2.0 * f32::EPSILON as f64,
                "exp({x}): relative error {err}"
            );
        }
        assert!(exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
    }

    #[test]
    fn matmul_matches_ndarray_for_every_shape_and_layout() {
        // (m, k, n): vector shapes take gemv, the others matrixmultiply
        for (m, k, n) in [
            (120, 400, 1),
            (1, 120, 84),
            (6, 25, 784),
            (3, 13, 1),
            (1, 9, 5),
            (4, 1, 7),
        ] {
            let a = uniform((m, k), 1);
            let b = uniform((k, n), 2);
            let c0 = uniform((m, n), 3);
            let expected = &c0 * 0.5 + a.dot(&b);
            let a_t = a.t().as_standard_layout().into_owned(); // [k, m], so a_t.t() is column-major
            let b_t = b.t().as_standard_layout().into_owned();
            for (a, b) in [
                (a.view(), b.view()),
                (a_t.t(), b.view()),
                (a.view(), b_t.t()),
                (a_t.t(), b_t.t()),
            ] {
                let mut c = c0.clone();
                matmul(a, b, 0.5, c.view_mut());
                assert_abs_diff_eq!(c, expected, epsilon = 1e-4);
            }
        }
    }
}
