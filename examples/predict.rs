//! Classifies your own picture of a digit with the shipped model (or `--model FILE`).
//!
//! cargo run --example predict -- my_digit.png [--model lenet5.bin]
//!
//! Any PNG, JPEG or PNM of one digit, any size and colour, dark on light or light on dark.

use std::error::Error;

use lenet5::LeNet5;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (mut picture, mut model) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = Some(args.next().ok_or("--model needs a file")?),
            _ if picture.is_none() => picture = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let picture = picture.ok_or("usage: predict PICTURE [--model FILE]")?;
    let net = match model {
        Some(path) => LeNet5::load(path)?,
        None => LeNet5::pretrained(),
    };
    let image = lenet5::digit::load_image(&picture)?;
    let prediction = net.classify_image(&image, &picture)?;
    println!("digit: {}", prediction.digit);
    for (digit, p) in prediction.probabilities.iter().enumerate() {
        println!("{digit}: {p:.4}");
    }
    Ok(())
}
