//! The command line shared by the training examples: flags, data, progress, the per-epoch
//! lines, the saved model and its curves, and the final `test accuracy:` line.

use std::error::Error;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use lenet5::data::Distortion;
use lenet5::train::{Checkpoint, Progress, evaluate};
use lenet5::{Dataset, LeNet5, Preset, Split};

/// The flags of the training examples.
#[derive(Parser, Debug)]
pub struct TrainArgs {
    /// Directory with the four MNIST IDX files, raw or .gz [default: $MNIST_DIR, else data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Epochs to train [default: the preset's]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Seed of the initial weights and of training
    #[arg(long, value_name = "S", default_value_t = lenet5::DEFAULT_SEED)]
    seed: u64,
    /// Where to save the model; its training curves go beside it, as NAME.curves.svg
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Train on randomly shifted, rotated, scaled and sheared images
    #[arg(long)]
    distort: bool,
    /// End with the weights of the epoch with the best training accuracy
    #[arg(long)]
    keep_best: bool,
    /// Go on with the run saved in this checkpoint (a run writes NAME.run.ckpt beside its
    /// model after every epoch and on Ctrl-C); give it the run's own flags
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
}

/// `FILE.{suffix}` for the model `FILE.bin`, where `suffix` has a dot of its own
/// (`curves.svg`): a name that can never be the model's own.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!("{stem}.{suffix}"))
}

/// Refuses to write over an existing file that is not a lenet5 model, and checks that `out`,
/// its curves and its checkpoint can be written, before any training.
fn check_outputs(out: &Path, plot: &Path, checkpoint: &Path) -> Result<(), Box<dyn Error>> {
    if let Ok(mut file) = std::fs::File::open(out) {
        let mut magic = [0u8; 8];
        let is_model =
            std::io::Read::read_exact(&mut file, &mut magic).is_ok() && magic == lenet5::io::MAGIC;
        if !is_model && out.is_file() {
            return Err(format!(
                "--out {}: the file exists and is not a lenet5 model; choose another name",
                out.display()
            )
            .into());
        }
    }
    for (flag, path) in [
        ("--out", out),
        ("--out's curves", plot),
        ("--out's checkpoint", checkpoint),
    ] {
        lenet5::io::check_writable(path).map_err(|e| format!("{flag}: {e}"))?;
    }
    Ok(())
}

/// Trains `preset` as the command line says; `default_out` is the model file without `--out`.
///
/// The data directory is `--data`, else `$MNIST_DIR`, else `data/mnist`; files missing there
/// are downloaded from the public mirrors and checked by SHA-256.
pub fn run(preset: Preset, default_out: &str) -> Result<(), Box<dyn Error>> {
    let args = TrainArgs::parse();
    let data = args.data.unwrap_or_else(|| {
        std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from)
    });
    let out = args.out.unwrap_or_else(|| PathBuf::from(default_out));
    let plot = beside(&out, "curves.svg");
    let run_file = beside(&out, "run.ckpt");
    check_outputs(&out, &plot, &run_file)?;
    let resume = match &args.resume {
        Some(path) => Some(Checkpoint::load(path).map_err(|e| format!("--resume: {e}"))?),
        None => None,
    };

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
    // the network encodes the images its own way
    let (train, test) = (
        Dataset::load(&data, Split::Train)?,
        Dataset::load(&data, Split::Test)?,
    );

    let mut net = LeNet5::from_preset(preset, args.seed);
    let mut trainer = preset
        .trainer(args.seed)
        .with_distortion(args.distort.then(Distortion::default))
        .with_keep_best(args.keep_best)
        .with_checkpoints(1, &run_file);
    if let Some(epochs) = args.epochs {
        trainer = trainer.with_epochs(epochs as usize);
    }
    // Ctrl-C stops the run after the current batch; the trainer then writes the checkpoint
    // of the last finished epoch
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let observe = |progress: Progress<'_, LeNet5>| {
        if interrupted.load(Ordering::SeqCst) {
            return ControlFlow::Break(());
        }
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
            Progress::Epoch(s, _) => bar.suspend(|| {
                let accuracy = s.accuracy.map_or("-".into(), |a| format!("{a:.5}"));
                println!(
                    "epoch: {}  loss: {:.5}  acc: {accuracy}  lr: {:.6}  time: {:.1} s",
                    s.epoch, s.loss, s.lr, s.seconds
                )
            }),
        }
        ControlFlow::Continue(())
    };
    let history = match &resume {
        Some(checkpoint) => trainer.resume(&mut net, &train, checkpoint, observe)?,
        None => trainer.train(&mut net, &train, observe)?,
    };
    bar.finish_and_clear();
    if interrupted.load(Ordering::SeqCst) {
        return Err(format!(
            "interrupted: the run to its last finished epoch is in {0}; go on with --resume {0}",
            run_file.display()
        )
        .into());
    }

    net.save(&out)?;
    lenet5::io::write_atomic(
        &plot,
        lenet5::plot::training_curves_svg(&history).as_bytes(),
    )?;
    // the run is complete: its result is the model
    std::fs::remove_file(&run_file)?;
    eprintln!("saved {} and {}", out.display(), plot.display());
    println!("test accuracy: {:.4}", evaluate(&net, &test)?.accuracy);
    Ok(())
}
