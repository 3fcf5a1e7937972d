//! Flatten: `[B, C, H, W]` in, `[B, C·H·W, 1, 1]` out, row by row; no parameters.
//!
//! [`Connect`](crate::Connect) already reads any input flattened; `Flatten` makes the step
//! visible in a stack's summary, and feeds layers that expect a vector.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Flatten, Layer, Pass};
//! use lenet5::ndarray::Array4;
//! let out = Flatten.forward(Array4::zeros((2, 3, 4, 5)).view(), Pass::Predict)?;
//! assert_eq!(out.dim(), (2, 60, 1, 1));
//! # Ok(()) }
//! ```

use ndarray::{Array4, ArrayView4};

use crate::layer::{Backward, Layer, LayerConfig, Pass, product};
use crate::{Error, Result};

/// `[C, H, W]` to `[C·H·W, 1, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flatten;

impl Layer for Flatten {
    fn name(&self) -> &'static str {
        "Flatten"
    }

    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        let n = product(&input).ok_or_else(|| Error::Shape {
            layer: "Flatten",
            expected: "[C, H, W] whose product fits in memory".into(),
            got: input.to_vec(),
        })?;
        Ok([n, 1, 1])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        let (b, c, h, w) = input.dim();
        Ok(input
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((b, c * h * w, 1, 1))
            .expect("same size"))
    }

    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        if !step.wants_input() {
            return Ok(None);
        }
        Ok(Some(
            step.grad_output
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(step.input.raw_dim())
                .expect("same size"),
        ))
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Flatten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;

    #[test]
    fn gradients_and_curvatures_pass_through_unchanged() {
        assert!(
            check::gradients(&mut Flatten, [2, 3, 2, 2], 1)
                .unwrap()
                .passed()
        );
        assert!(
            check::curvature(&mut Flatten, [2, 3, 2, 2], 2)
                .unwrap()
                .passed()
        );
    }

    #[test]
    fn values_keep_their_row_major_order() {
        let x = Array4::from_shape_fn((1, 2, 2, 2), |(_, c, h, w)| (c * 4 + h * 2 + w) as f32);
        let y = Flatten.forward(x.view(), Pass::Predict).unwrap();
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            (0..8).map(|v| v as f32).collect::<Vec<_>>()
        );
    }
}
