//! A modern LeNet-5 on MNIST: ReLU, max pooling, a linear softmax output and Adam on batches
//! of 32 (see `Preset::Modern`); `--distort` trains on randomly shifted, rotated, scaled and
//! sheared images.
//!
//! cargo run --release --example modern -- [--data DIR] [--epochs N] [--seed S] [--out FILE] [--distort]

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::run(lenet5::Preset::Modern, "lenet5-modern.bin")
}
