//! A layer of your own in a stack that trains: a trainable per-channel scale, checked against
//! finite differences with `lenet5::check`, then trained on MNIST between the crate's layers.
//!
//! cargo run --release --example custom_layer -- [--data DIR] [--epochs N]

use std::error::Error;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Parser;
use lenet5::ndarray::{Array1, Array4, ArrayView4, Axis, Ix1};
use lenet5::rand::SeedableRng;
use lenet5::rand::rngs::Xoshiro256PlusPlus;
use lenet5::train::{Adam, Progress, Trainer, evaluate};
use lenet5::{
    Activation, Backward, Connect, Conv, Dataset, Init, Layer, MaxPool, Param, ParamMut, ParamRef,
    Pass, Relu, Sequential, Split, check,
};

/// Trains a stack with a layer defined here.
#[derive(Parser)]
struct Args {
    /// Directory with the four MNIST IDX files, raw or .gz [default: $MNIST_DIR, else data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Epochs to train
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
}

/// `y = s[c] · x` for each channel `c`, `s` trainable.
#[derive(Debug, Clone)]
struct Scale {
    s: Param<Ix1>,
}

impl Layer for Scale {
    fn name(&self) -> &'static str {
        "Scale"
    }

    fn output_shape(&self, input: [usize; 3]) -> lenet5::Result<[usize; 3]> {
        Ok(input)
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> lenet5::Result<Array4<f32>> {
        let mut y = input.to_owned();
        for (mut channel, &s) in y.axis_iter_mut(Axis(1)).zip(self.s.value()) {
            channel *= s;
        }
        Ok(y)
    }

    fn backward(&mut self, step: Backward<'_>) -> lenet5::Result<Option<Array4<f32>>> {
        step.check(self)?;
        // curvature passes square the slopes: x² for s, s² for x
        let power = if step.is_curvature() { 2 } else { 1 };
        let mut grad = step.grad_output.to_owned();
        for (c, mut g) in grad.axis_iter_mut(Axis(1)).enumerate() {
            let x = step.input.index_axis(Axis(1), c).mapv(|x| x.powi(power));
            self.s.grad_mut()[c] += (&g * &x).sum();
            g *= self.s.value()[c].powi(power);
        }
        Ok(step.wants_input().then_some(grad))
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        vec![self.s.as_ref("s")]
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        vec![self.s.as_mut("s")]
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let scale = Scale {
        s: Param::new(Array1::ones(6)),
    };
    for (what, report) in [
        (
            "gradients",
            check::gradients(&mut scale.clone(), [2, 6, 5, 5], 1)?,
        ),
        (
            "curvature",
            check::curvature(&mut scale.clone(), [2, 6, 5, 5], 2)?,
        ),
    ] {
        println!("Scale {what}: {report}");
        if !report.passed() {
            return Err(format!("Scale's {what} do not match finite differences").into());
        }
    }

    let dir = args.data.unwrap_or_else(|| {
        std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from)
    });
    let train = Dataset::load(&dir, Split::Train)?;
    let test = Dataset::load(&dir, Split::Test)?;

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut net = Sequential::new([1, 32, 32])
        .add(
            Conv::new(1, 6, 5, &mut rng)?
                .with_activation(Activation::Identity)
                .with_init(Init::He, &mut rng),
        )?
        .add(scale)?
        .add(Relu)?
        .add(MaxPool::new(2)?)?
        .add(
            Conv::new(6, 16, 5, &mut rng)?
                .with_activation(Activation::Relu)
                .with_init(Init::He, &mut rng),
        )?
        .add(MaxPool::new(2)?)?
        .add_with(|shape| {
            Ok(Connect::flattening(shape, 10, &mut rng)?
                .with_activation(Activation::Identity)
                .with_init(Init::He, &mut rng))
        })?;
    println!("{net}");
    let mut trainer = Trainer::new(Adam::default())
        .with_epochs(args.epochs as usize)
        .with_batch_size(32)
        .with_schedule(lenet5::train::Schedule::Exponential {
            lr: 1e-3,
            decay: 0.8,
        });
    trainer.train(&mut net, &train, |progress| {
        if let Progress::Epoch(stats, _) = progress {
            println!("epoch {}: loss {:.4}", stats.epoch, stats.loss);
        }
        ControlFlow::Continue(())
    })?;
    let scales = &net.layers()[1].params()[0];
    println!("trained scales: {:?}", scales.value);
    println!("test accuracy: {:.4}", evaluate(&net, &test)?.accuracy);
    Ok(())
}
