//! Reading MNIST-style IDX data and preparing it for LeNet-5.

pub mod idx;
pub mod mnist;
