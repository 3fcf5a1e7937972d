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
//! (`"architecture"`); a file without it is read as the report's network.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::io::write_atomic;
use crate::{Error, Layer, LeNet5, Preset, RbfOutput, Result};

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
    let bytes = |values: &[f32]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
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
                    bytes(p.value),
                )
            })
        })
        .collect();
    if let Some(rbf) = prototypes {
        out.push((
            "rbf.weight".into(),
            rbf.weight().shape().to_vec(),
            bytes(rbf.weight().as_slice().expect("standard layout")),
        ));
    }
    out
}

/// The metadata key that names the preset.
const ARCHITECTURE_KEY: &str = "architecture";

/// The safetensors bytes of `(name, shape, little-endian F32 bytes)` tensors, with the
/// preset's architecture name in the metadata.
fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], preset: Preset) -> Vec<u8> {
    let views = tensors.iter().map(|(name, shape, bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match");
        (name.as_str(), view)
    });
    let metadata = HashMap::from([(
        ARCHITECTURE_KEY.to_string(),
        preset.architecture().to_string(),
    )]);
    safetensors::serialize(views, Some(metadata)).expect("serialising to memory cannot fail")
}

impl LeNet5 {
    /// The parameters as safetensors bytes, with PyTorch's names and layouts (see [`crate::interop`]).
    pub fn to_safetensors(&self) -> Vec<u8> {
        serialize(&tensors(self), self.preset())
    }

    /// Writes [`LeNet5::to_safetensors`] to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; a previous file is left intact.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_safetensors())
    }

    /// A network with the parameters of a safetensors file laid out as [`LeNet5::to_safetensors`]
    /// writes it (for example by PyTorch's `safetensors.torch.save_file`). `source_name` names
    /// the bytes in errors.
    ///
    /// # Errors
    /// [`Error::Model`] when the bytes are not safetensors, or a tensor is missing, not `F32`,
    /// or of another shape.
    pub fn from_safetensors(bytes: &[u8], source_name: &str) -> Result<Self> {
        let bad = |reason: String| Error::Model {
            source_name: source_name.into(),
            reason,
        };
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let architecture = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(ARCHITECTURE_KEY).cloned());
        let preset = match architecture {
            None => Preset::Report,
            Some(name) => Preset::from_architecture(&name)
                .ok_or_else(|| bad(format!("unknown architecture {name:?}")))?,
        };
        let mut net = LeNet5::from_preset(preset, crate::DEFAULT_SEED);
        let shapes: Vec<Vec<usize>> = net.params().iter().map(|p| p.shape.to_vec()).collect();
        let names: Vec<String> = tensors(&net).into_iter().map(|(name, _, _)| name).collect();
        for ((p, name), shape) in net.params_mut().into_iter().zip(&names).zip(&shapes) {
            let tensor = file
                .tensor(name)
                .map_err(|_| bad(format!("no tensor {name:?}")))?;
            if tensor.dtype() != Dtype::F32 || tensor.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "{name} is {:?} {:?}, expected F32 {shape:?}",
                    tensor.dtype(),
                    tensor.shape()
                )));
            }
            for (v, b) in p.value.iter_mut().zip(tensor.data().chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(net)
    }

    /// [`LeNet5::from_safetensors`] on the bytes of `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, and the errors of [`LeNet5::from_safetensors`].
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        Self::from_safetensors(&bytes, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(net: &LeNet5) -> Vec<f32> {
        net.params().iter().flat_map(|p| p.value.to_vec()).collect()
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
        let err = LeNet5::from_safetensors(&serialize(&t, Preset::Report), "mem").unwrap_err();
        assert!(err.to_string().contains("s4.coef"), "{err}");
        let mut t = tensors(&net);
        t[0].1 = vec![6, 25];
        let err = LeNet5::from_safetensors(&serialize(&t, Preset::Report), "mem").unwrap_err();
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
}
