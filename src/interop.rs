//! PyTorch interop: [`LeNet5`] parameters as a safetensors file with PyTorch's names and layouts.
//!
//! | tensor | shape | |
//! |---|---|---|
//! | `conv1.weight`, `conv1.bias` | `[6, 1, 5, 5]`, `[6]` | C1, as `nn.Conv2d(1, 6, 5)` |
//! | `s2.coef`, `s2.bias` | `[6]`, `[6]` | S2's trainable subsampling |
//! | `conv2.weight`, `conv2.bias` | `[16, 6, 5, 5]`, `[16]` | C3, as `nn.Conv2d(6, 16, 5)` |
//! | `s4.coef`, `s4.bias` | `[16]`, `[16]` | S4 |
//! | `conv3.weight`, `conv3.bias` | `[120, 16, 5, 5]`, `[120]` | C5, as `nn.Conv2d(16, 120, 5)` |
//! | `fc.weight`, `fc.bias` | `[84, 120]`, `[84]` | F6, as `nn.Linear(120, 84)` |
//! | `rbf.weight` | `[10, 84]` | the fixed RBF prototypes (exported; ignored on import) |
//!
//! All tensors are little-endian `F32`. [`Preset::LeCun1998`] uses the
//! same names (C3's missing connections are zero kernels, the prototypes are ±1);
//! [`Preset::Modern`] has `conv1`, `conv2`, `conv3`, `fc1` `[84, 120]` and
//! `fc2` `[10, 84]`, as the usual PyTorch LeNet-5. The header's metadata names the preset
//! (`"architecture"`); loading recognises the preset from the tensors themselves, and refuses
//! a file whose metadata says otherwise.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::io::{check_finite, model_error};
use crate::layers::rbf_output::{CLASSES, GLYPH_HEIGHT, GLYPH_WIDTH};
use crate::{C3_CONNECTIONS, Layer, LeNet5, Preset, RbfOutput, Result, Sequential};

/// PyTorch-style names of the seven layers of the report's and LeCun's LeNet-5, in order.
pub const LAYER_NAMES: [&str; 7] = ["conv1", "s2", "conv2", "s4", "conv3", "fc", "rbf"];
/// PyTorch-style names of the seven layers of [`Preset::Modern`], in order.
pub const MODERN_LAYER_NAMES: [&str; 7] =
    ["conv1", "pool1", "conv2", "pool2", "conv3", "fc1", "fc2"];

/// The names of `preset`'s layers, and its fixed RBF prototypes if it has them.
fn layout(preset: Preset) -> ([&'static str; 7], Option<RbfOutput>) {
    match preset {
        Preset::Report => (LAYER_NAMES, Some(RbfOutput::digits())),
        Preset::LeCun1998 => (LAYER_NAMES, Some(RbfOutput::digits().bipolar())),
        Preset::Modern => (MODERN_LAYER_NAMES, None),
    }
}

/// `(name, shape, little-endian bytes)` of every exported tensor.
fn tensors(net: &LeNet5) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let (names, prototypes) = layout(net.preset());
    let mut out: Vec<_> = net
        .network()
        .layers()
        .iter()
        .zip(names)
        .flat_map(|(layer, layer_name)| {
            layer.params().into_iter().map(move |p| {
                (
                    format!("{layer_name}.{}", p.name),
                    p.shape.to_vec(),
                    le_bytes(p.value),
                )
            })
        })
        .collect();
    if let Some(rbf) = prototypes {
        out.push((
            "rbf.weight".into(),
            rbf.weight().shape().to_vec(),
            le_bytes(rbf.weight().as_slice().expect("standard layout")),
        ));
    }
    out
}

/// The metadata key that names the preset.
const ARCHITECTURE_KEY: &str = "architecture";

/// The safetensors bytes of `(name, shape, little-endian F32 bytes)` tensors, with an
/// architecture name in the metadata when there is one.
fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], architecture: Option<&str>) -> Vec<u8> {
    let views = tensors.iter().map(|(name, shape, bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match");
        (name.as_str(), view)
    });
    let metadata =
        architecture.map(|a| HashMap::from([(ARCHITECTURE_KEY.to_string(), a.to_string())]));
    safetensors::serialize(views, metadata).expect("serialising to memory cannot fail")
}

/// The parameters of a preset's network as safetensors bytes, with PyTorch's names.
pub(crate) fn preset_to_bytes(net: &LeNet5) -> Vec<u8> {
    serialize(&tensors(net), Some(net.preset().architecture()))
}

/// The network of safetensors `bytes` laid out as [`preset_to_bytes`] writes them, its preset
/// recognised from the tensors (see [`LeNet5::from_safetensors`]).
pub(crate) fn preset_from_bytes(bytes: &[u8], source_name: &str) -> Result<LeNet5> {
    let bad = |reason: String| model_error(source_name, reason);
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let preset = recognise(&file).map_err(bad)?;
    let named = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(ARCHITECTURE_KEY).cloned());
    if let Some(name) = named {
        let said = Preset::from_architecture(&name)
            .ok_or_else(|| bad(format!("unknown architecture {name:?}")))?;
        if said != preset {
            return Err(bad(format!(
                "the metadata says {name:?} but the tensors are {:?}'s",
                preset.architecture()
            )));
        }
    }
    let mut net = LeNet5::from_preset(preset, crate::DEFAULT_SEED);
    // the trainable tensors come first; the fixed codes, when there are any, last
    let expected = tensors(&net);
    let (trainable, fixed) = expected.split_at(net.network().params().len());
    let mut values = Vec::with_capacity(trainable.len());
    for (name, shape, _) in trainable {
        values.push(read_f32(&file, name, shape).map_err(bad)?);
    }
    for (name, shape, bytes) in fixed {
        if file.tensor(name).is_ok() && read_f32(&file, name, shape).map_err(bad)? != f32s(bytes) {
            return Err(bad(format!(
                "{name} differs from the network's fixed codes"
            )));
        }
    }
    for (p, v) in net.network_mut().params_mut().into_iter().zip(&values) {
        p.value.copy_from_slice(v);
    }
    Ok(net)
}

/// A stack's weights as safetensors bytes, named `layers.{index}.{name}` as in model files.
pub(crate) fn stack_to_bytes(net: &Sequential) -> Vec<u8> {
    let tensors: Vec<_> = net
        .named_params()
        .into_iter()
        .map(|(name, p)| (name, p.shape.to_vec(), le_bytes(p.value)))
        .collect();
    serialize(&tensors, Some(Sequential::ARCHITECTURE))
}

/// Loads safetensors `bytes` named as [`stack_to_bytes`] names them into `net`, which is
/// changed only on success.
pub(crate) fn load_into_stack(net: &mut Sequential, bytes: &[u8], source_name: &str) -> Result<()> {
    let bad = |reason: String| model_error(source_name, reason);
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let params = net.named_params();
    if let Some(extra) = file
        .names()
        .into_iter()
        .find(|name| params.iter().all(|(p, _)| p != *name))
    {
        return Err(bad(format!("{extra} is not a parameter of this network")));
    }
    let values = params
        .iter()
        .map(|(name, p)| read_f32(&file, name, p.shape))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad)?;
    for ((_, p), v) in net.named_params_mut().into_iter().zip(&values) {
        p.value.copy_from_slice(v);
    }
    Ok(())
}

/// Values as little-endian `F32` bytes.
fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The values of the `F32` tensor `name`, which must have `shape` and be finite.
fn read_f32(
    file: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let tensor = file
        .tensor(name)
        .map_err(|_| format!("no tensor {name:?}"))?;
    if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
        return Err(format!(
            "{name} is {:?} {:?}, expected F32 {shape:?}",
            tensor.dtype(),
            tensor.shape()
        ));
    }
    let values = f32s(tensor.data());
    check_finite(name, &values)?;
    Ok(values)
}

/// Little-endian `F32` bytes as values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The preset whose tensors `file` holds.
fn recognise(file: &SafeTensors<'_>) -> std::result::Result<Preset, String> {
    let has = |name: &str| file.tensor(name).is_ok();
    if has("fc1.weight") || has("fc2.weight") {
        return Ok(Preset::Modern);
    }
    if !has("fc.weight") {
        return Err("neither fc.weight nor fc1.weight: not a LeNet-5 of this crate".into());
    }
    if has("rbf.weight") {
        let shape = [CLASSES, GLYPH_WIDTH * GLYPH_HEIGHT];
        let codes = read_f32(file, "rbf.weight", &shape)?;
        return [Preset::Report, Preset::LeCun1998]
            .into_iter()
            .find(|&p| {
                layout(p)
                    .1
                    .is_some_and(|r| r.weight().as_slice() == Some(&codes[..]))
            })
            .ok_or_else(|| "rbf.weight holds neither preset's codes".into());
    }
    // without the codes: LeCun's C3 keeps the kernels of missing connections at zero
    let c3 = read_f32(file, "conv2.weight", &[16, 6, 5, 5])?;
    let missing_are_zero = c3
        .chunks_exact(25)
        .enumerate()
        .all(|(k, kernel)| C3_CONNECTIONS[k / 6][k % 6] || kernel.iter().all(|&w| w == 0.0));
    Ok(if missing_are_zero {
        Preset::LeCun1998
    } else {
        Preset::Report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(net: &LeNet5) -> Vec<f32> {
        net.network()
            .params()
            .iter()
            .flat_map(|p| p.value.to_vec())
            .collect()
    }

    #[test]
    fn round_trip_with_pytorch_names_and_shapes() {
        let net = LeNet5::with_seed(6);
        let bytes = net.to_safetensors();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.tensor("conv1.weight").unwrap().shape(), &[6, 1, 5, 5]);
        assert_eq!(file.tensor("fc.weight").unwrap().shape(), &[84, 120]);
        assert_eq!(file.tensor("rbf.weight").unwrap().shape(), &[10, 84]);
        assert_eq!(file.names().len(), 13);
        assert_eq!(
            values(&LeNet5::from_safetensors(&bytes, "mem").unwrap()),
            values(&net)
        );
    }

    #[test]
    fn missing_or_misshapen_tensors_are_errors() {
        assert!(LeNet5::from_safetensors(b"garbage", "mem").is_err());
        let net = LeNet5::with_seed(6);
        let mut t = tensors(&net);
        t.retain(|(name, _, _)| name != "s4.coef");
        let err =
            LeNet5::from_safetensors(&serialize(&t, Some(Preset::Report.architecture())), "mem")
                .unwrap_err();
        assert!(err.to_string().contains("s4.coef"), "{err}");
        let mut t = tensors(&net);
        t[0].1 = vec![6, 25];
        let err =
            LeNet5::from_safetensors(&serialize(&t, Some(Preset::Report.architecture())), "mem")
                .unwrap_err();
        assert!(err.to_string().contains("conv1.weight"), "{err}");
    }

    #[test]
    fn every_preset_round_trips_as_itself() {
        for (preset, tensors) in [(Preset::LeCun1998, 13), (Preset::Modern, 10)] {
            let net = LeNet5::from_preset(preset, 3);
            let bytes = net.to_safetensors();
            assert_eq!(
                SafeTensors::deserialize(&bytes).unwrap().names().len(),
                tensors
            );
            let back = LeNet5::from_safetensors(&bytes, "mem").unwrap();
            assert_eq!(back.preset(), preset);
            assert_eq!(values(&back), values(&net));
        }
        let modern = SafeTensors::deserialize(&LeNet5::modern().to_safetensors())
            .unwrap()
            .tensor("fc2.weight")
            .unwrap()
            .shape()
            .to_vec();
        assert_eq!(modern, [10, 84]);
    }

    #[test]
    fn the_preset_comes_from_the_tensors_and_must_agree_with_the_metadata() {
        for preset in Preset::ALL {
            let net = LeNet5::from_preset(preset, 5);
            let all = tensors(&net);
            // PyTorch's save_file writes no metadata, and may leave out the fixed codes
            let without_codes: Vec<_> = all
                .iter()
                .filter(|(name, _, _)| name != "rbf.weight")
                .cloned()
                .collect();
            for t in [&all, &without_codes] {
                let back = LeNet5::from_safetensors(&serialize(t, None), "mem").unwrap();
                assert_eq!(back.preset(), preset);
                assert_eq!(values(&back), values(&net));
            }
            for other in Preset::ALL.into_iter().filter(|&p| p != preset) {
                let err =
                    LeNet5::from_safetensors(&serialize(&all, Some(other.architecture())), "mem")
                        .unwrap_err()
                        .to_string();
                assert!(err.contains("the metadata says"), "{err}");
            }
        }
        // the report's tensors with LeCun's ±1 codes fit no preset
        let mut t = tensors(&LeNet5::with_seed(1));
        let codes = RbfOutput::digits().bipolar();
        let last = t.len() - 1;
        t[last].2 = codes
            .weight()
            .iter()
            .map(|w| w * 0.5)
            .flat_map(f32::to_le_bytes)
            .collect();
        let err = LeNet5::from_safetensors(&serialize(&t, None), "mem").unwrap_err();
        assert!(err.to_string().contains("neither preset's codes"), "{err}");
    }

    #[test]
    fn non_finite_values_and_oversized_files_are_refused() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut t = tensors(&LeNet5::with_seed(1));
            t[2].2[4..8].copy_from_slice(&bad.to_le_bytes());
            let err = LeNet5::from_safetensors(&serialize(&t, None), "mem")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("\"s2.coef\" holds {bad} at index 1")),
                "{err}"
            );
        }
        #[cfg(unix)]
        assert!(matches!(
            LeNet5::load_safetensors("/dev/zero"),
            Err(crate::Error::TooLarge { .. })
        ));
    }
}
