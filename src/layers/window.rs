//! The sliding-window kernel that convolution's forward, backprop and predict share.
//!
//! `im2col` lays every `K x K` window of a `[C, H, W]` image out as one column of a
//! `[C·K·K, OH·OW]` matrix (row `(c·K + l)·K + m`, column `j·OW + k` holds
//! `input[c, j + l, k + m]`), so that a convolution becomes one matrix product.
//! `col2im_add` is its adjoint: it adds every column back into the window it came from, which
//! is how the gradient of a window reaches the pixels it overlapped (the "full convolution with
//! the kernel rotated 180°" of the report).

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3};

/// Copies the `k x k` windows of `input` `[C, H, W]` into `cols` `[C·K·K, OH·OW]`,
/// where `OH = H - K + 1` and `OW = W - K + 1`.
pub(crate) fn im2col(input: ArrayView3<f32>, k: usize, mut cols: ArrayViewMut2<f32>) {
    let (channels, height, width) = input.dim();
    let (oh, ow) = (height + 1 - k, width + 1 - k);
    debug_assert_eq!(cols.dim(), (channels * k * k, oh * ow));
    let input = input.as_standard_layout();
    let input = input.as_slice().expect("standard layout");
    let cols = cols.as_slice_mut().expect("cols are allocated in standard layout");
    for (row, col_row) in cols.chunks_exact_mut(oh * ow).enumerate() {
        let (c, l, m) = (row / (k * k), row / k % k, row % k);
        for (j, out) in col_row.chunks_exact_mut(ow).enumerate() {
            let start = (c * height + j + l) * width + m;
            out.copy_from_slice(&input[start..start + ow]);
        }
    }
}

/// Adds each column of `cols` `[C·K·K, OH·OW]` into the `k x k` window of `grad_input`
/// `[C, H, W]` it was copied from by [`im2col`].
pub(crate) fn col2im_add(cols: ArrayView2<f32>, k: usize, mut grad_input: ArrayViewMut3<f32>) {
    let (channels, height, width) = grad_input.dim();
    let (oh, ow) = (height + 1 - k, width + 1 - k);
    debug_assert_eq!(cols.dim(), (channels * k * k, oh * ow));
    let cols = cols.as_slice().expect("cols are allocated in standard layout");
    let grad_input = grad_input.as_slice_mut().expect("gradients are allocated in standard layout");
    for (row, col_row) in cols.chunks_exact(oh * ow).enumerate() {
        let (c, l, m) = (row / (k * k), row / k % k, row % k);
        for (j, col) in col_row.chunks_exact(ow).enumerate() {
            let start = (c * height + j + l) * width + m;
            for (g, &v) in grad_input[start..start + ow].iter_mut().zip(col) {
                *g += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;
    use ndarray::{Array2, Array3};

    #[test]
    fn im2col_lays_out_windows() {
        // input 1x3x3 = 0..9, k = 2: the window at (0, 1) is [1, 2, 4, 5], so column 1 is that.
        let input = Array3::from_shape_fn((1, 3, 3), |(_, j, k)| (j * 3 + k) as f32);
        let mut cols = Array2::zeros((4, 4));
        im2col(input.view(), 2, cols.view_mut());
        assert_eq!(cols.column(1).to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(cols.row(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> = <x, col2im(y)> for every x and y.
        let (c, h, w, k) = (3, 7, 6, 3);
        let x = uniform((c, h, w), 1);
        let y = uniform((c * k * k, (h - k + 1) * (w - k + 1)), 2);
        let mut cols = Array2::zeros(y.dim());
        im2col(x.view(), k, cols.view_mut());
        let mut back = Array3::zeros(x.dim());
        col2im_add(y.view(), k, back.view_mut());
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| f64::from(a * b)).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
        approx::assert_relative_eq!(lhs, rhs, max_relative = 1e-5);
    }
}
