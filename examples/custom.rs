//! A network of your own from start to finish: built from the crate's layers, trained with a
//! validation split and keep-best, checkpointed, stopped and resumed, saved, and rebuilt from
//! its file alone with the same predictions.
//!
//! cargo run --release --example custom -- [--data DIR] [--epochs N] [--out FILE]

use std::error::Error;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Parser;
use lenet5::rand::SeedableRng;
use lenet5::rand::rngs::Xoshiro256PlusPlus;
use lenet5::train::{Checkpoint, Progress, Trainer, evaluate, predict_classes};
use lenet5::{Activation, Connect, Conv, Dataset, Dropout, Encoding, MaxPool, Sequential, Split};

/// Trains, stops, resumes, saves and reloads a network of this example's choosing.
#[derive(Parser)]
struct Args {
    /// Directory with the four MNIST IDX files, raw or .gz [default: $MNIST_DIR, else data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Epochs to train (the run is stopped once, in the second, and resumed)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..))]
    epochs: u32,
    /// Where to save the network
    #[arg(long, value_name = "FILE", default_value = "custom.bin")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let dir = args.data.unwrap_or_else(|| {
        std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from)
    });
    let all = Dataset::load(&dir, Split::Train)?;
    let (train, validation) = (all.slice(0..55_000)?, all.slice(55_000..60_000)?);
    let test = Dataset::load(&dir, Split::Test)?;

    // 28x28 inputs scaled to [0, 1]: no padding, and the network says how it is fed
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let relu = Activation::Relu;
    let build = |rng: &mut Xoshiro256PlusPlus| -> lenet5::Result<Sequential> {
        Sequential::new([1, 28, 28])
            .with_encoding(Encoding::Linear {
                background: 0.0,
                ink: 1.0,
            })
            .add(Conv::new(1, 8, 5, rng)?.with_activation(relu))? // 8x24x24
            .add(MaxPool::new(2)?)? // 8x12x12
            .add(Conv::new(8, 16, 5, rng)?.with_activation(relu))? // 16x8x8
            .add(MaxPool::new(2)?)? // 16x4x4
            .add(Dropout::new(0.25, 1)?)?
            .add_with(|shape| Ok(Connect::flattening(shape, 64, rng)?.with_activation(relu)))?
            .add(Connect::new(64, 10, rng)?.with_activation(Activation::Identity))
    };
    let mut net = build(&mut rng)?;
    println!("{net}");

    let checkpoint_path = args.out.with_extension("run.ckpt");
    let trainer = || {
        Trainer::default()
            .with_epochs(args.epochs as usize)
            .with_validation(Some(validation.clone()))
            .with_keep_best(true)
            .with_checkpoints(1, &checkpoint_path)
    };
    let report = |progress: Progress<'_, Sequential>| {
        if let Progress::Epoch(stats, _) = progress {
            let validation = stats.validation_accuracy.unwrap_or(f64::NAN);
            println!(
                "epoch {}: loss {:.4}, validation accuracy {validation:.4} ({:.1} s)",
                stats.epoch, stats.loss, stats.seconds
            );
        }
    };

    // stopped halfway through epoch 2, as Ctrl-C would stop it
    trainer().train(&mut net, &train, |progress| {
        let halfway = matches!(progress, Progress::Sample { epoch: 2, done, expected } if 2 * done >= expected);
        report(progress);
        if halfway {
            println!("stopped in epoch 2; the checkpoint holds epoch 1");
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;

    // a new process would start here: a network of the same layers, the checkpoint, go on
    let checkpoint = Checkpoint::load(&checkpoint_path)?;
    let mut resumed = build(&mut Xoshiro256PlusPlus::seed_from_u64(99))?;
    let history = trainer().resume(&mut resumed, &train, &checkpoint, |progress| {
        report(progress);
        ControlFlow::Continue(())
    })?;
    std::fs::remove_file(&checkpoint_path)?;
    // keep-best kept the first epoch of the best validation accuracy
    let best = history
        .iter()
        .reduce(|a, b| {
            if b.validation_accuracy > a.validation_accuracy {
                b
            } else {
                a
            }
        })
        .expect("at least one epoch");
    println!(
        "kept epoch {} (validation accuracy {:.4})",
        best.epoch,
        best.validation_accuracy.unwrap_or(f64::NAN)
    );

    resumed.save(&args.out)?;
    let loaded = Sequential::load(&args.out)?;
    let (before, after) = (
        predict_classes(&resumed, &test)?,
        predict_classes(&loaded, &test)?,
    );
    if before != after {
        return Err("the reloaded network predicts differently".into());
    }
    println!(
        "saved {}; reloaded, it gives the same {} test predictions",
        args.out.display(),
        after.len()
    );
    println!("test accuracy: {:.4}", evaluate(&loaded, &test)?.accuracy);
    Ok(())
}
