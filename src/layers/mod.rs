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

/// The most values one parameter array may hold, 2^28 (1 GiB of `f32`, as much again for its
/// gradient): a constructor asked for more returns an error instead of failing to allocate.
pub const MAX_PARAM_VALUES: usize = 1 << 28;

/// An array of `shape`, uniform in [-1, 1) (the report's initialisation).
///
/// # Errors
/// [`Error::InvalidArgument`] when a size is zero, the sizes multiply past
/// [`MAX_PARAM_VALUES`], or the memory cannot be had.
pub(crate) fn uniform_param<D: Dimension>(
    layer: &'static str,
    shape: impl IntoDimension<Dim = D>,
    rng: &mut impl Rng,
) -> Result<Array<f32, D>> {
    let shape = shape.into_dimension();
    let bad = |reason: String| Error::InvalidArgument {
        what: layer,
        reason,
    };
    let sizes = shape.slice();
    if sizes.contains(&0) {
        return Err(bad(format!("every size must be positive, got {sizes:?}")));
    }
    let len = sizes
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_PARAM_VALUES)
        .ok_or_else(|| {
            bad(format!(
                "sizes {sizes:?} make more than {MAX_PARAM_VALUES} values in one parameter"
            ))
        })?;
    let mut values = Vec::new();
    values
        .try_reserve_exact(len)
        .map_err(|e| bad(format!("cannot allocate {len} values: {e}")))?;
    values.extend((0..len).map(|_| rng.random_range(-1.0..1.0)));
    Ok(Array::from_shape_vec(shape, values).expect("the length is the product of the sizes"))
}

#[cfg(test)]
mod tests {
    use crate::{Connect, Conv, Subsampling};
    use rand::SeedableRng;

    #[test]
    fn sizes_too_large_to_hold_are_errors_not_aborts() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
        assert!(Conv::new(usize::MAX, 2, 3, &mut rng).is_err());
        assert!(Conv::new(1, 2, 1 << 33, &mut rng).is_err());
        assert!(Connect::new(1 << 20, 1 << 20, &mut rng).is_err());
        let err = Subsampling::new(usize::MAX, 2, &mut rng).unwrap_err();
        assert!(
            err.to_string().contains("more than 268435456 values"),
            "{err}"
        );
        // one value over the bound
        assert!(Connect::new(1 << 14, (1 << 14) + 1, &mut rng).is_err());
    }
}
