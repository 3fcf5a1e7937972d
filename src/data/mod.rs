//! Reading MNIST-style IDX data and preparing it for LeNet-5.

#[cfg(feature = "download")]
pub mod download;
pub mod idx;
pub mod mnist;
