//! The layers of LeNet-5, one file each: forward and backprop side by side, tests below.

pub mod activation;
pub mod connect;
pub mod conv;
pub mod max_pool;
pub mod rbf_output;
pub mod subsampling;
pub(crate) mod window;

use ndarray::{Array, Array1, Dimension, IntoDimension};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a layer's trainable values are drawn, from each unit's fan-in `F` (its number of inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Init {
    /// Weights and biases uniform in [-1, 1): the report's.
    #[default]
    Report,
    /// Weights and biases uniform in ±2.4 / F (LeCun et al. 1998, Appendix A), so that the
    /// weighted sums fall where the scaled tanh is steepest.
    LeCun,
    /// Weights uniform in ±√(6 / F), variance 2 / F (He et al. 2015), biases zero: for ReLU.
    He,
}

impl Init {
    /// A value for a weight of a unit with fan-in `fan_in`.
    pub(crate) fn weight(self, fan_in: usize, rng: &mut impl Rng) -> f32 {
        let bound = match self {
            Init::Report => 1.0,
            Init::LeCun => 2.4 / fan_in as f32,
            Init::He => (6.0 / fan_in as f32).sqrt(),
        };
        rng.random_range(-bound..bound)
    }

    /// `[n]` biases for units whose fan-ins are `fan_in(i)`.
    pub(crate) fn biases(
        self,
        n: usize,
        fan_in: impl Fn(usize) -> usize,
        rng: &mut impl Rng,
    ) -> Array1<f32> {
        match self {
            Init::He => Array1::zeros(n),
            _ => Array1::from_shape_fn(n, |i| self.weight(fan_in(i), rng)),
        }
    }
}

/// An array of `shape`, uniform in [-1, 1) (the report's initialisation).
///
/// # Errors
/// [`Error::InvalidArgument`] when a size is zero.
pub(crate) fn uniform_param<D: Dimension>(
    layer: &'static str,
    shape: impl IntoDimension<Dim = D>,
    rng: &mut impl Rng,
) -> Result<Array<f32, D>> {
    let shape = shape.into_dimension();
    if shape.slice().contains(&0) {
        return Err(Error::InvalidArgument {
            what: layer,
            reason: format!("every size must be positive, got {:?}", shape.slice()),
        });
    }
    Ok(Array::from_shape_simple_fn(shape, || {
        rng.random_range(-1.0..1.0)
    }))
}
