//! LeCun et al. 1998's LeNet-5 on MNIST: scaled-tanh units, C3's partial connections, ±1 RBF
//! codes, the MAP loss and stochastic diagonal Levenberg-Marquardt over 20 passes
//! (see `Preset::LeCun1998`).
//!
//! cargo run --release --example lecun1998 -- [--data DIR] [--epochs N] [--seed S] [--out FILE] [--distort]

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::run(lenet5::Preset::LeCun1998, "lenet5-lecun1998.bin")
}
