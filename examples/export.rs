//! Exports a model to safetensors with PyTorch's names and layouts, or to ONNX.
//!
//! cargo run --example export -- lenet5.safetensors [--model report|modern|FILE] [--values values.json]
//! cargo run --example export -- lenet5.onnx --onnx [--model report|modern|lecun1998|FILE] [--reference PREFIX]
//!
//! `--model` takes a shipped model (`report`, the default, or `modern`), `lecun1998` (that
//! preset's network as initialised) or a model file. `--values` also writes every
//! tensor's shape and values as JSON, which `tests/interop/check_safetensors.py` compares with
//! what Python reads. `--reference PREFIX` writes the network's inputs for the first 1 000
//! MNIST test images (from `--data`, else `$MNIST_DIR`) to `PREFIX.inputs.f32` and its scores
//! for them to `PREFIX.scores.f32` (little-endian f32), which `tests/interop/check_onnx.py`
//! compares with what onnxruntime computes from the ONNX file.

use std::error::Error;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use clap::Parser;
use lenet5::{Dataset, LeNet5, Split};

/// Writes a model as safetensors.
#[derive(Parser)]
struct Args {
    /// The safetensors file to write
    out: PathBuf,
    /// `report` (the shipped report's model), `modern` (the shipped modern model),
    /// `lecun1998` (that network as initialised), or a model file saved by this crate
    #[arg(long, value_name = "NAME|FILE", default_value = "report")]
    model: PathBuf,
    /// Write ONNX instead of safetensors
    #[arg(long)]
    onnx: bool,
    /// Also write every tensor's shape and values to this JSON file (safetensors only)
    #[arg(long, value_name = "FILE", conflicts_with = "onnx")]
    values: Option<PathBuf>,
    /// Also write the network's inputs and scores for the first 1 000 MNIST test images to
    /// PREFIX.inputs.f32 and PREFIX.scores.f32
    #[arg(long, value_name = "PREFIX")]
    reference: Option<PathBuf>,
    /// Directory with the MNIST test files, for --reference [default: $MNIST_DIR]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

/// The first 1 000 MNIST test images as the network takes them, `[1000, C, H, W]`, and its
/// scores for them, `[1000, 10]`, each as little-endian f32 bytes.
fn reference(net: &LeNet5, data: Option<&Path>) -> Result<(Vec<u8>, Vec<u8>), Box<dyn Error>> {
    let dir = data
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MNIST_DIR").map(PathBuf::from))
        .ok_or("--reference needs the MNIST test files: give --data DIR or set MNIST_DIR")?;
    let test = Dataset::load(dir, Split::Test)?;
    let indices: Vec<usize> = (0..1000.min(test.len())).collect();
    let inputs = test.batch_for(net, &indices, None)?;
    let scores = net.predict(inputs.view())?;
    let bytes = |a: &ndarray::Array4<f32>| a.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok((bytes(&inputs), bytes(&scores)))
}

/// Refuses to write over a lenet5 model file, or twice to one file.
fn check_output(out: &Path, others: &[&Path]) -> Result<(), Box<dyn Error>> {
    if others.iter().any(|o| o == &out) {
        return Err(format!("{} is named twice", out.display()).into());
    }
    let mut magic = [0u8; 8];
    let is_model = std::fs::File::open(out)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == lenet5::io::MAGIC;
    if is_model {
        return Err(format!(
            "{} is a lenet5 model file; refusing to write over it",
            out.display()
        )
        .into());
    }
    Ok(lenet5::io::check_writable(out).map_err(|e| e.to_string())?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let named = match args.model.to_str() {
        Some("report") => Some(LeNet5::pretrained()),
        Some("modern") => Some(LeNet5::pretrained_modern()),
        Some("lecun1998") => Some(LeNet5::lecun1998()),
        _ => None,
    };
    // a model file, read only once every output is known to be writable
    let model = named.is_none().then_some(args.model.as_path());
    check_output(&args.out, &model.into_iter().collect::<Vec<_>>())?;
    if let Some(values) = &args.values {
        check_output(
            values,
            &[args.out.as_path()]
                .into_iter()
                .chain(model)
                .collect::<Vec<_>>(),
        )?;
    }
    let reference_files = args.reference.as_ref().map(|prefix| {
        let with = |ext: &str| PathBuf::from(format!("{}.{ext}", prefix.display()));
        (with("inputs.f32"), with("scores.f32"))
    });
    if let Some((inputs, scores)) = &reference_files {
        for file in [inputs, scores] {
            check_output(file, &[args.out.as_path()])?;
        }
    }
    let net = match named {
        Some(net) => net,
        None => LeNet5::load(&args.model)?,
    };
    if let Some((inputs, scores)) = &reference_files {
        let (input_bytes, score_bytes) = reference(&net, args.data.as_deref())?;
        lenet5::io::write_atomic(inputs, &input_bytes)?;
        lenet5::io::write_atomic(scores, &score_bytes)?;
    }
    if args.onnx {
        lenet5::onnx::save(&net, &args.out)?;
        eprintln!("wrote {}", args.out.display());
        return Ok(());
    }
    net.save_safetensors(&args.out)?;
    if let Some(path) = &args.values {
        let mut json = String::from("{");
        let layers = net
            .network()
            .layers()
            .iter()
            .zip(lenet5::interop::LAYER_NAMES);
        for (layer, name) in layers {
            for p in layer.params() {
                let numbers: Vec<String> = p.value.iter().map(|v| format!("{v:e}")).collect();
                write!(
                    json,
                    "\"{name}.{}\": {{\"shape\": {:?}, \"values\": [{}]}},",
                    p.name,
                    p.shape,
                    numbers.join(",")
                )?;
            }
        }
        json.pop();
        json.push('}');
        lenet5::io::write_atomic(path, json.as_bytes())?;
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
