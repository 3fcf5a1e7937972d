//! LeNet-5 from scratch on [`ndarray`]: sigmoid convolutions, trainable subsampling and a fixed
//! RBF output layer, trained by per-sample SGD on MNIST, as a student report did; and beside it
//! LeCun et al. 1998's original ([`LeNet5::lecun1998`]) and a modern variant
//! ([`LeNet5::modern`]), each a [`Preset`] with its own encoding, loss and [`train::Trainer`].
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{LeNet5, Mode, Pass};
//! use lenet5::ndarray::Array4;
//!
//! let mut net = LeNet5::with_seed(7);
//! let image = Array4::<f32>::zeros((1, 1, 32, 32)); // [B, C, H, W]
//! let stack = net.network_mut();
//! let trace = stack.trace(image.view(), Pass::Train { seed: 0 })?;
//! let scores = trace.output().to_owned();           // [1, 10, 1, 1], larger is better
//! // dL/d(image) for L = Σ scores²/2; each layer's gradients are added up on the way
//! let grad_input = stack.backprop(&trace, scores.view(), Mode::Full)?.unwrap();
//! assert_eq!(grad_input.dim(), (1, 1, 32, 32));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod check;
pub mod data;
pub mod digit;
pub mod error;
pub mod interop;
pub mod io;
mod kernels;
pub mod layer;
pub mod layers;
mod lenet5;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod plot;
pub mod recipes;
mod scores;
mod seeds;
pub mod sequential;
#[cfg(test)]
mod testing;
pub mod train;

pub use data::mnist::{Dataset, Encoding, Split};
pub use error::{Error, Result};
/// The `image` whose pictures [`digit`] reads and prepares (`DynamicImage`), so that a user's
/// pictures are of the same version.
pub use image;
pub use layer::{Backward, Descended, Layer, LayerConfig, Mode, Param, ParamMut, ParamRef, Pass};
pub use layers::Init;
pub use layers::activation::Activation;
pub use layers::connect::Connect;
pub use layers::conv::Conv;
pub use layers::dropout::Dropout;
pub use layers::elementwise::{Relu, ScaledTanh, Sigmoid, Tanh};
pub use layers::flatten::Flatten;
pub use layers::max_pool::MaxPool;
pub use layers::rbf_output::RbfOutput;
pub use layers::subsampling::Subsampling;
pub use lenet5::{C3_CONNECTIONS, DEFAULT_SEED, LeNet5, Prediction, Preset};
/// The `ndarray` this crate's arrays come from, so that a user's arrays are of the same version.
pub use ndarray;
/// The `rand` this crate's constructors draw from (`Conv::new(.., &mut rng)`), so that a
/// user's generator implements the same `Rng`.
pub use rand;
/// The `rayon` on whose thread pool training and evaluation run, so that a user can set their
/// number of threads (`ThreadPool::install`) with the same version.
pub use rayon;
pub use recipes::LECUN_J;
pub use sequential::{Sequential, Trace};
pub use train::Sgd;
