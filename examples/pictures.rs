//! Draws what the shipped model learned: its C1 kernels, the C1 and C3 feature maps of the
//! first test image, and the test-set confusion matrix as a heat map.
//!
//! cargo run --release --example pictures -- [--data DIR] [--out docs/pictures]

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::Parser;
use lenet5::image::{DynamicImage, ImageFormat};
use lenet5::plot::{confusion_heat_map, map_grid};
use lenet5::{Dataset, Layer, LeNet5, Split};

/// Draws the shipped model's kernels, feature maps and confusion matrix.
#[derive(Parser)]
struct Args {
    /// Directory with the MNIST test files, raw or .gz [default: $MNIST_DIR, else data/mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Directory to write the pictures into
    #[arg(long, value_name = "DIR", default_value = "docs/pictures")]
    out: PathBuf,
}

/// Writes `image` as a PNG at `path`, atomically (a temporary file, then a rename).
fn save_png(image: &DynamicImage, path: &Path) -> Result<(), Box<dyn Error>> {
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(lenet5::io::write_atomic(path, &png)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let data = args.data.unwrap_or_else(|| {
        std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from)
    });
    let out = args.out;
    let net = LeNet5::pretrained();
    let test = Dataset::load(&data, Split::Test)?;
    // made only once there is something to draw
    std::fs::create_dir_all(&out)?;

    let c1 = net.network().params()[0].value.to_vec(); // conv1.weight [6, 1, 5, 5]
    let kernels = map_grid(ndarray::ArrayView3::from_shape((6, 5, 5), &c1)?, 6, 12)?;
    save_png(
        &DynamicImage::ImageLuma8(kernels),
        &out.join("kernels_c1.png"),
    )?;
    let maps = net.network().activations(test.batch(0..1)?.view())?;
    let c1_maps = map_grid(maps[0].index_axis(ndarray::Axis(0), 0), 6, 4)?;
    save_png(
        &DynamicImage::ImageLuma8(c1_maps),
        &out.join("features_c1.png"),
    )?;
    let c3_maps = map_grid(maps[2].index_axis(ndarray::Axis(0), 0), 8, 8)?;
    save_png(
        &DynamicImage::ImageLuma8(c3_maps),
        &out.join("features_c3.png"),
    )?;
    let evaluation = lenet5::train::evaluate(&net, &test)?;
    let heat_map = confusion_heat_map(evaluation.confusion.view(), 24)?;
    save_png(
        &DynamicImage::ImageRgb8(heat_map),
        &out.join("confusion.png"),
    )?;

    println!(
        "test accuracy: {:.4}; confusion (rows: true digit, columns: predicted):",
        evaluation.accuracy
    );
    for row in evaluation.confusion.rows() {
        println!(
            "{}",
            row.iter().map(|n| format!("{n:5}")).collect::<String>()
        );
    }
    eprintln!(
        "wrote kernels_c1.png, features_c1.png, features_c3.png and confusion.png in {}",
        out.display()
    );
    Ok(())
}
