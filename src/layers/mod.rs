//! The layers of LeNet-5, one file each: forward and backprop side by side, tests below.

pub mod activation;
pub mod connect;
pub mod conv;
pub mod max_pool;
pub mod rbf_output;
pub mod subsampling;
mod window;

use ndarray::{Array, Dimension, IntoDimension};
use rand::{Rng, RngExt};

use crate::{Error, Result};

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
