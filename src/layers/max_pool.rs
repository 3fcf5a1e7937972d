//! Max pooling: the largest value of each `K x K` block, stride `K`, no parameters.
//!
//! `out[b, c, j, k] = max_{u,v < K} input[b, c, K·j + u, K·k + v]`
//!
//! The gradient of each output goes to the input that was the maximum (the first one, row by
//! row, on ties); every other input of the block gets zero.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Layer, MaxPool, Pass};
//! use ndarray::array;
//! let pool = MaxPool::new(2)?;
//! let out = pool.forward(array![[[[1.0, 5.0], [3.0, 2.0]]]].view(), Pass::Predict)?;
//! assert_eq!(out[[0, 0, 0, 0]], 5.0);
//! # Ok(()) }
//! ```

use ndarray::{Array4, ArrayView4};

use crate::kernels::{max_of_2x2, max_of_2x2_adjoint};
use crate::layer::{Backward, Layer, LayerConfig, Pass, chw};
use crate::{Error, Result};

/// `K x K` max pooling with stride `K`.
#[derive(Debug, Clone)]
pub struct MaxPool {
    kernel: usize,
}

impl MaxPool {
    /// Pooling over `kernel x kernel` blocks.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero kernel.
    pub fn new(kernel: usize) -> Result<Self> {
        if kernel == 0 {
            return Err(Error::InvalidArgument {
                what: "MaxPool",
                reason: "kernel must be positive, got 0".into(),
            });
        }
        Ok(MaxPool { kernel })
    }

    /// The output `[B, C, OH, OW]`: each block's maximum, taken row by row with `f32::max`
    /// (which passes over NaN, as the comparison in the backward pass does).
    fn pooled(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        let [c, oh, ow] = self.output_shape(chw(input.shape()))?;
        let (batch, k, width) = (input.dim().0, self.kernel, input.dim().3);
        let input = input.as_standard_layout();
        let mut output = Array4::from_elem((batch, c, oh, ow), f32::NEG_INFINITY);
        // LeNet-5's 2x2 with the block known, so that the loop vectorises
        if k == 2 {
            let out = output.as_slice_mut().expect("fresh array");
            max_of_2x2(input.as_slice().expect("standard layout"), width, out, ow);
            return Ok(output);
        }
        let in_rows = input
            .as_slice()
            .expect("standard layout")
            .chunks_exact(k * width);
        let out_rows = output
            .as_slice_mut()
            .expect("fresh array")
            .chunks_exact_mut(ow);
        for (rows, out) in in_rows.zip(out_rows) {
            for row in rows.chunks_exact(width) {
                for (y, block) in out.iter_mut().zip(row.chunks_exact(k)) {
                    *y = block.iter().fold(*y, |m, &v| m.max(v));
                }
            }
        }
        Ok(output)
    }
}

impl Layer for MaxPool {
    fn name(&self) -> &'static str {
        "MaxPool"
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::MaxPool {
            kernel: self.kernel,
        }
    }

    fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let k = self.kernel;
        if c == 0 || h == 0 || w == 0 || h % k != 0 || w % k != 0 {
            return Err(Error::Shape {
                layer: "MaxPool",
                expected: format!("[C > 0, H and W positive multiples of {k}]"),
                got: vec![c, h, w],
            });
        }
        Ok([c, h / k, w / k])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        self.pooled(input)
    }

    /// Each output's gradient goes to the input that was its maximum. In a curvature pass the
    /// same: the layer's slopes are 0 and 1, their own squares.
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        if !step.wants_input() {
            return Ok(None);
        }
        let (_, _, _, width) = step.input.dim();
        let k = self.kernel;
        let input = step.input.as_standard_layout();
        let grad_output = step.grad_output.as_standard_layout();
        let mut grad_input = Array4::zeros(step.input.raw_dim());
        let ow = width / k;
        let (input, grad_output) = (
            input.as_slice().expect("standard layout"),
            grad_output.as_slice().expect("standard layout"),
        );
        if k == 2 {
            let grad = grad_input.as_slice_mut().expect("fresh array");
            max_of_2x2_adjoint(input, width, grad_output, ow, grad);
            return Ok(Some(grad_input));
        }
        let in_rows = input.chunks_exact(k * width);
        let grad_rows = grad_input
            .as_slice_mut()
            .expect("fresh array")
            .chunks_exact_mut(k * width);
        let out_rows = grad_output.chunks_exact(ow);
        for ((rows, grad_rows), g) in in_rows.zip(grad_rows).zip(out_rows) {
            for (x, &g) in g.iter().enumerate() {
                // the first largest of the block, row by row; its top left corner when all
                // are NaN
                let mut best = (f32::NEG_INFINITY, x * k);
                for u in 0..k {
                    let start = u * width + x * k;
                    for (i, &v) in rows[start..start + k].iter().enumerate() {
                        if v > best.0 {
                            best = (v, start + i);
                        }
                    }
                }
                grad_rows[best.1] += g;
            }
        }
        Ok(Some(grad_input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::gradients_with;
    use crate::layer::Mode;
    use crate::testing::backprop;
    use ndarray::array;

    #[test]
    fn each_block_sends_its_gradient_to_one_input_holding_the_output() {
        for (k, shape) in [(2, (2, 3, 4, 6)), (3, (1, 2, 6, 9)), (1, (1, 1, 2, 3))] {
            let mut pool = MaxPool::new(k).unwrap();
            let input = crate::testing::uniform(shape, 7);
            let output = pool.forward(input.view(), Pass::Predict).unwrap();
            let ones = Array4::ones(output.raw_dim());
            let grad = backprop(&mut pool, input.view(), ones.view(), Mode::Full)
                .unwrap()
                .unwrap();
            for ((b, c, j, x), &y) in output.indexed_iter() {
                let block = |a: &Array4<f32>| {
                    let rows = a.slice(ndarray::s![b, c, j * k..(j + 1) * k, x * k..(x + 1) * k]);
                    rows.iter().copied().collect::<Vec<f32>>()
                };
                let (values, grads) = (block(&input), block(&grad));
                assert!(values.iter().all(|&v| v <= y), "{k}: {values:?} {y}");
                let hit: Vec<usize> = (0..grads.len()).filter(|&i| grads[i] != 0.0).collect();
                assert_eq!(hit.len(), 1, "{k}: {grads:?}");
                assert_eq!((grads[hit[0]], values[hit[0]]), (1.0, y));
            }
        }
    }

    #[test]
    fn the_2x2_path_keeps_the_general_rule_on_ties_nan_and_infinity() {
        // output widths below one chunk, of one, and beyond one: 3, 8, 14 and 17
        for (i, width) in [6, 16, 28, 34].into_iter().enumerate() {
            let mut input = crate::testing::uniform((2, 3, 4, width), i as u64);
            // ties, NaN, a block of -∞, a block of NaN, signed zeros
            for (n, v) in input.iter_mut().enumerate() {
                *v = match n % 23 {
                    3 | 4 => 0.5,
                    7 => f32::NAN,
                    11 => f32::NEG_INFINITY,
                    13 => -0.0,
                    _ => *v,
                };
            }
            input
                .slice_mut(ndarray::s![0, 0, 0..2, 0..2])
                .fill(f32::NEG_INFINITY);
            input
                .slice_mut(ndarray::s![1, 2, 2..4, 2..4])
                .fill(f32::NAN);
            let mut pool = MaxPool::new(2).unwrap();
            let output = pool.forward(input.view(), Pass::Predict).unwrap();
            let mut grad_output = crate::testing::uniform(output.raw_dim(), 9);
            // a gradient of -0 lands as +0, as the general loop adds it to zero
            grad_output.iter_mut().step_by(5).for_each(|g| *g = -0.0);
            let grad = backprop(&mut pool, input.view(), grad_output.view(), Mode::Full)
                .unwrap()
                .unwrap();
            for ((b, c, j, x), &y) in output.indexed_iter() {
                let at = |u: usize, v: usize| (b, c, 2 * j + u, 2 * x + v);
                let corners = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                let largest = corners
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &p| m.max(input[p]));
                assert_eq!(y.to_bits(), largest.to_bits(), "{width}: {:?}", at(0, 0));
                let (mut best, mut first) = (f32::NEG_INFINITY, 0);
                for (n, &p) in corners.iter().enumerate() {
                    if input[p] > best {
                        (best, first) = (input[p], n);
                    }
                }
                for (n, &p) in corners.iter().enumerate() {
                    let expected = if n == first {
                        0.0 + grad_output[[b, c, j, x]]
                    } else {
                        0.0
                    };
                    assert_eq!(grad[p].to_bits(), expected.to_bits(), "{width}: {p:?}");
                }
            }
        }
    }

    #[test]
    fn forward_and_backprop_by_hand() {
        // blocks [[1, 5], [3, 2]] and [[0, -1], [7, 7]]: maxima 5 (index 1) and 7 (the first, index 6)
        let mut pool = MaxPool::new(2).unwrap();
        let input = array![[[[1.0, 5.0, 0.0, -1.0], [3.0, 2.0, 7.0, 7.0]]]];
        assert_eq!(
            pool.forward(input.view(), Pass::Predict).unwrap(),
            array![[[[5.0, 7.0]]]]
        );
        let grad = backprop(
            &mut pool,
            input.view(),
            array![[[[10.0, 20.0]]]].view(),
            Mode::Full,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            grad,
            array![[[[0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 20.0, 0.0]]]]
        );
    }

    #[test]
    fn curvature_goes_to_each_blocks_maximum() {
        let mut pool = MaxPool::new(2).unwrap();
        let input = array![[[[1.0, 2.0], [4.0, 3.0]]]];
        let mode = Mode::Curvature { slope: None };
        let curvature = backprop(&mut pool, input.view(), array![[[[5.0]]]].view(), mode)
            .unwrap()
            .unwrap();
        assert_eq!(curvature, array![[[[0.0, 0.0], [5.0, 0.0]]]]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        // distinct inputs 0.05 apart (a scrambled ramp), so that no step of the difference
        // quotient changes which input of a block is the maximum
        for (k, shape) in [(2, [2, 3, 4, 6]), (3, [1, 2, 6, 3])] {
            let n: usize = shape.iter().product();
            let input = Array4::from_shape_fn(shape, |(b, c, j, x)| {
                let i = ((b * shape[1] + c) * shape[2] + j) * shape[3] + x;
                (i * 7919 % n) as f32 * 0.05
            });
            let mut pool = MaxPool::new(k).unwrap();
            let r = crate::testing::uniform(
                pool.forward(input.view(), Pass::Predict).unwrap().raw_dim(),
                3,
            );
            let report = gradients_with(&mut pool, input, |out| {
                (crate::testing::dot(out, &r), r.clone())
            })
            .unwrap();
            assert!(report.passed(), "{report}");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut pool = MaxPool::new(2).unwrap();
        assert!(matches!(
            pool.forward(Array4::zeros((1, 1, 3, 4)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        let grad = Array4::zeros((1, 1, 1, 2));
        assert!(matches!(
            backprop(
                &mut pool,
                Array4::zeros((1, 1, 2, 2)).view(),
                grad.view(),
                Mode::Full
            ),
            Err(Error::Shape { .. })
        ));
        assert!(MaxPool::new(0).is_err());
    }
}
