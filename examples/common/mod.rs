//! The command line shared by the training examples: flags, data, progress, the per-epoch
//! lines, the saved model and its curves, and the final `test accuracy:` line.

use std::error::Error;
use std::ops::ControlFlow;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use lenet5::data::Distortion;
use lenet5::train::{Progress, evaluate};
use lenet5::{Dataset, LeNet5, Preset, Split};

/// Trains `preset` as the flags say:
/// `[--data DIR] [--epochs N] [--seed S] [--out FILE] [--distort]`.
///
/// The data directory is `--data`, else `$MNIST_DIR`, else `data/mnist`; files missing there
/// are downloaded from the public mirrors and checked by SHA-256.
pub fn run(preset: Preset, default_out: &str) -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut data =
        std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from);
    let (mut epochs, mut seed, mut out, mut distort) = (
        None,
        lenet5::DEFAULT_SEED,
        PathBuf::from(default_out),
        false,
    );
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => data = value()?.into(),
            "--epochs" => epochs = Some(value()?.parse()?),
            "--seed" => seed = value()?.parse()?,
            "--out" => out = value()?.into(),
            "--distort" => distort = true,
            _ => {
                return Err(format!(
                    "unknown argument {flag}; flags: --data --epochs --seed --out --distort"
                )
                .into());
            }
        }
    }
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{msg} {wide_bar} {pos}/{len}",
    )?);
    lenet5::data::download::fetch_missing(&data, |name, done, total| {
        bar.set_message(format!("downloading {name}"));
        bar.set_length(total.unwrap_or(done));
        bar.set_position(done);
    })
    .map_err(|e| {
        format!(
            "{e}\nOffline? Put the four MNIST IDX files (raw or .gz) in {}, or pass --data DIR.",
            data.display()
        )
    })?;
    let (train, test) = (
        Dataset::load(&data, Split::Train)?.with_encoding(preset.encoding()),
        Dataset::load(&data, Split::Test)?.with_encoding(preset.encoding()),
    );

    let mut net = LeNet5::from_preset(preset, seed);
    let mut trainer = preset
        .trainer(seed)
        .with_distortion(distort.then(Distortion::default));
    if let Some(epochs) = epochs {
        trainer = trainer.with_epochs(epochs);
    }
    let history = trainer.train(&mut net, &train, |progress| {
        match progress {
            Progress::Sample {
                epoch,
                done,
                expected,
            } => {
                bar.set_message(format!("epoch {epoch}"));
                bar.set_length(expected as u64);
                bar.set_position(done as u64);
            }
            Progress::Epoch(s) => bar.suspend(|| {
                println!(
                    "epoch: {}  loss: {:.5}  acc: {:.5}  lr: {:.6}  time: {:.1} s",
                    s.epoch, s.loss, s.accuracy, s.lr, s.seconds
                )
            }),
        }
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();

    net.save(&out)?;
    let plot = out.with_extension("svg");
    std::fs::write(&plot, lenet5::plot::training_curves_svg(&history))?;
    eprintln!("saved {} and {}", out.display(), plot.display());
    println!("test accuracy: {:.4}", evaluate(&net, &test)?.accuracy);
    Ok(())
}
