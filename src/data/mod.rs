//! Reading MNIST-style IDX data and preparing it for LeNet-5.

pub mod distort;
#[cfg(feature = "download")]
pub mod download;
pub mod idx;
pub mod mnist;

pub use distort::Distortion;
pub use mnist::Encoding;
