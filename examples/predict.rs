//! Classifies your own picture of a digit with a shipped model (the modern one by default,
//! `--model report` for the report's) or a model file of yours (`--model FILE`).
//!
//! cargo run --example predict -- my_digit.png [--model modern|report|FILE]
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
    /// `modern` (the shipped modern network, 99.34 % on MNIST's test set), `report` (the
    /// shipped report's network, 96.56 %), or a model file saved by this crate (write
    /// `./report` for a file of that name)
    #[arg(long, value_name = "modern|report|FILE", default_value = "modern")]
    model: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let net = match args.model.to_str() {
        Some("modern") => LeNet5::pretrained_modern(),
        Some("report") => LeNet5::pretrained(),
        _ => LeNet5::load(&args.model)?,
    };
    let image = lenet5::digit::load_image(&args.picture)?;
    let prediction = net.classify_image(&image, &args.picture.display().to_string())?;
    println!("digit: {}", prediction.digit);
    for (digit, p) in prediction.probabilities.iter().enumerate() {
        println!("{digit}: {p:.4}");
    }
    Ok(())
}
