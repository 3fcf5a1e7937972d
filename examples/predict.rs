//! Classifies your own picture of a digit with the shipped model (or `--model FILE`).
//!
//! cargo run --example predict -- my_digit.png [--model lenet5.bin]
//!
//! Any PNG, JPEG or PNM of one digit, any size and colour, dark on light or light on dark.

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use lenet5::LeNet5;

/// Classifies a picture of one digit.
#[derive(Parser)]
struct Args {
    /// The picture: PNG, JPEG or PNM
    picture: PathBuf,
    /// A model file saved by this crate [default: the shipped model]
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let net = match &args.model {
        Some(path) => LeNet5::load(path)?,
        None => LeNet5::pretrained(),
    };
    let image = lenet5::digit::load_image(&args.picture)?;
    let prediction = net.classify_image(&image, &args.picture.display().to_string())?;
    println!("digit: {}", prediction.digit);
    for (digit, p) in prediction.probabilities.iter().enumerate() {
        println!("{digit}: {p:.4}");
    }
    Ok(())
}
