//! Dropout (Srivastava et al. 2014): in training, each value is zeroed with probability `rate`
//! and the rest are scaled by `1 / (1 - rate)`, so that the expected output is the input; in
//! prediction, the identity. No parameters.
//!
//! The mask is a hash of the layer's own seed, the training pass's seed ([`Pass::Train`]) and
//! the value's index, not a draw from a generator the layer keeps: the backward pass, which
//! receives the same pass, finds the same mask, and a run is the same for the same seeds
//! however it is split across threads.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Dropout, Layer, Pass};
//! use lenet5::ndarray::Array4;
//! let dropout = Dropout::new(0.5, 7)?;
//! let x = Array4::ones((1, 1, 10, 10));
//! assert_eq!(dropout.forward(x.view(), Pass::Predict)?, x);
//! let y = dropout.forward(x.view(), Pass::Train { seed: 1 })?;
//! assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
//! # Ok(()) }
//! ```

use ndarray::{Array4, ArrayView4, Zip};

use crate::layer::{Backward, Layer, LayerConfig, Pass};
use crate::seeds::mix;
use crate::{Error, Result};

/// Zeroes a random share `rate` of the values in training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    rate: f32,
    seed: u64,
}

/// The random draws of a hash: `u` of a 24-bit uniform `u / 2^24`.
const DRAW_BITS: u32 = 24;

impl Dropout {
    /// Dropout of the share `rate` of values, with masks drawn from `seed` and each pass's seed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 <= rate < 1`.
    pub fn new(rate: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::InvalidArgument {
                what: "Dropout",
                reason: format!("the rate must be in [0, 1), got {rate}"),
            });
        }
        Ok(Dropout { rate, seed })
    }

    /// The share of values dropped in training.
    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// The factor of each value in a pass: `1 / (1 - rate)` where kept, 0 where dropped, and 1
    /// everywhere in [`Pass::Predict`]; `[B, C, H, W]` of `shape`.
    fn mask(&self, shape: ndarray::Ix4, pass: Pass) -> Array4<f32> {
        let Pass::Train { seed } = pass else {
            return Array4::ones(shape);
        };
        let key = mix(self.seed ^ mix(seed));
        let threshold = (f64::from(self.rate) * f64::from(1u32 << DRAW_BITS)) as u64;
        let keep = 1.0 / (1.0 - self.rate);
        let mut index = 0u64;
        Array4::from_shape_simple_fn(shape, || {
            let draw = mix(key.wrapping_add(index)) >> (64 - DRAW_BITS);
            index += 1;
            if draw < threshold { 0.0 } else { keep }
        })
    }
}

impl Layer for Dropout {
    fn name(&self) -> &'static str {
        "Dropout"
    }

    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        Ok(input)
    }

    fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>> {
        let mut output = self.mask(input.raw_dim(), pass);
        output *= &input;
        Ok(output)
    }

    /// The gradient through the same mask; in a curvature pass, through its square.
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        if !step.wants_input() {
            return Ok(None);
        }
        let mut grad = self.mask(step.input.raw_dim(), step.pass);
        let square = step.is_curvature();
        Zip::from(&mut grad)
            .and(&step.grad_output)
            .for_each(|m, &g| *m = if square { *m * *m * g } else { *m * g });
        Ok(Some(grad))
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Dropout {
            rate: self.rate,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;
    use proptest::prelude::*;

    #[test]
    fn gradients_and_curvatures_follow_the_mask() {
        let mut dropout = Dropout::new(0.3, 5).unwrap();
        assert!(
            check::gradients(&mut dropout, [2, 3, 4, 4], 1)
                .unwrap()
                .passed()
        );
        assert!(
            check::curvature(&mut dropout, [2, 3, 4, 4], 2)
                .unwrap()
                .passed()
        );
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        for rate in [-0.1, 1.0, 1.5, f32::NAN] {
            assert!(Dropout::new(rate, 0).is_err(), "{rate}");
        }
    }

    proptest! {
        #[test]
        fn drops_about_the_rate_and_keeps_the_mean(rate in 0.0f32..0.9, seed: u64, pass: u64) {
            let dropout = Dropout::new(rate, seed).unwrap();
            let x = Array4::ones((4, 4, 16, 16));
            let y = dropout.forward(x.view(), Pass::Train { seed: pass }).unwrap();
            let dropped = y.iter().filter(|&&v| v == 0.0).count() as f32 / y.len() as f32;
            // 4096 draws: five standard deviations of a share are below 0.04
            prop_assert!((dropped - rate).abs() < 0.04, "dropped {} of rate {}", dropped, rate);
            prop_assert!((y.mean().unwrap() - 1.0).abs() < 0.2);
            prop_assert_eq!(dropout.forward(x.view(), Pass::Predict).unwrap(), x.clone());
            // the same seeds give the same mask; another pass, another one
            prop_assert_eq!(&dropout.forward(x.view(), Pass::Train { seed: pass }).unwrap(), &y);
            let other = dropout.forward(x.view(), Pass::Train { seed: pass ^ 1 }).unwrap();
            prop_assert!(rate < 0.05 || other != y);
        }
    }
}
