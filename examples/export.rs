//! Exports a model to safetensors with PyTorch's names and layouts.
//!
//! cargo run --example export -- lenet5.safetensors [--model lenet5.bin] [--values values.json]
//!
//! Without `--model` it exports the shipped model. `--values` also writes every tensor's shape
//! and values as JSON, which `tests/interop/check_safetensors.py` compares with what Python reads.

use std::error::Error;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use clap::Parser;
use lenet5::LeNet5;

/// Writes a model as safetensors.
#[derive(Parser)]
struct Args {
    /// The safetensors file to write
    out: PathBuf,
    /// A model file saved by this crate [default: the shipped model]
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Also write every tensor's shape and values to this JSON file
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
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
    let model = args.model.as_deref();
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
    let net = model.map_or_else(|| Ok(LeNet5::pretrained()), LeNet5::load)?;
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
