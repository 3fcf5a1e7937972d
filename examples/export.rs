//! Exports a model to safetensors with PyTorch's names and layouts.
//!
//! cargo run --example export -- lenet5.safetensors [--model lenet5.bin] [--values values.json]
//!
//! Without `--model` it exports the shipped model. `--values` also writes every tensor's shape
//! and values as JSON, which `tests/interop/check_safetensors.py` compares with what Python reads.

use std::error::Error;
use std::fmt::Write;

use lenet5::LeNet5;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (mut out, mut model, mut values) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = Some(args.next().ok_or("--model needs a file")?),
            "--values" => values = Some(args.next().ok_or("--values needs a file")?),
            _ => out = Some(arg),
        }
    }
    let out = out.ok_or("usage: export OUT.safetensors [--model FILE] [--values FILE.json]")?;
    let net = model.map_or_else(|| Ok(LeNet5::pretrained()), LeNet5::load)?;
    net.save_safetensors(&out)?;
    if let Some(path) = values {
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
        std::fs::write(path, json)?;
    }
    eprintln!("wrote {out}");
    Ok(())
}
