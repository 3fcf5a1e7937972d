//! Export to ONNX (cargo feature `onnx`): any [`Sequential`] made of this crate's layers as an
//! ONNX model of standard operators (opset 13), for runtimes other than this crate.
//!
//! The model takes what the network takes, `input` `[N, C, H, W]` `f32` with `N` free (for the
//! presets `[N, 1, 32, 32]`, the pixels already encoded and padded as
//! [`Dataset::batch_for`](crate::Dataset::batch_for) gives them), and gives `scores`
//! `[N, C·H·W]` of the network's output: the same numbers as [`Sequential::predict`], up to
//! rounding. Each layer becomes:
//!
//! | layer | ONNX operators |
//! |---|---|
//! | [`Conv`](crate::Conv) (a connection table's missing kernels are zero weights) | `Conv` |
//! | [`Subsampling`](crate::Subsampling) | `AveragePool`, `Mul` by `coef · K²`, `Add` of `bias` |
//! | [`MaxPool`](crate::MaxPool) | `MaxPool` |
//! | [`Connect`](crate::Connect) | `Flatten`, `Gemm` |
//! | [`RbfOutput`](crate::RbfOutput) | `Unsqueeze`, `Sub` of the prototypes, `Mul`, `ReduceSum`, `Neg` |
//! | activations | `Sigmoid`, `Relu`, `Tanh`; the scaled tanh as `Mul`, `Tanh`, `Mul` |
//! | [`Flatten`](crate::Flatten) | `Flatten` |
//! | [`Dropout`](crate::Dropout) | nothing (the identity in inference) |
//!
//! A layer of the user's own has no ONNX form: exporting a stack with one is an error.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! let bytes = lenet5::onnx::to_bytes(&lenet5::LeNet5::pretrained())?;
//! assert!(bytes.len() > 4 * 60_000); // every weight, as f32
//! # Ok(()) }
//! ```

use std::path::Path;

use prost::Message;

use crate::layer::LayerConfig;
use crate::layers::activation::{TANH_A, TANH_S};
use crate::{Activation, Error, Result, Sequential, io};

/// The ONNX operator set the models use.
pub const OPSET: i64 = 13;

/// ONNX's IR version for opset 13.
const IR_VERSION: i64 = 7;

/// `TensorProto.DataType` FLOAT.
const FLOAT: i32 = 1;

/// `TensorProto.DataType` INT64.
const INT64: i32 = 7;

/// The network as ONNX model bytes.
///
/// # Errors
/// [`Error::InvalidArgument`] when a layer has no ONNX form (a layer of the user's own).
pub fn to_bytes(net: &(impl AsRef<Sequential> + ?Sized)) -> Result<Vec<u8>> {
    let net = net.as_ref();
    let mut graph = Graph::new(net.input_shape());
    for (index, layer) in net.layers().iter().enumerate() {
        let params: Vec<&[f32]> = layer.params().iter().map(|p| p.value).collect();
        graph.layer(index, &layer.config(), &params)?;
    }
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "lenet5".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph.finish()),
    };
    Ok(model.encode_to_vec())
}

/// Writes [`to_bytes`] to `path`, atomically.
///
/// # Errors
/// As [`to_bytes`], and [`Error::Io`] when the file cannot be written (a previous file is then
/// left intact).
pub fn save(net: &(impl AsRef<Sequential> + ?Sized), path: impl AsRef<Path>) -> Result<()> {
    io::write_atomic(path.as_ref(), &to_bytes(net)?)
}

/// A graph being built: its nodes and weights, the name of the last value and its shape.
struct Graph {
    proto: GraphProto,
    /// The name of the value the next node reads.
    last: String,
    /// `[C, H, W]` of that value.
    shape: [usize; 3],
    /// Whether that value is `[N, C·H·W]` rather than `[N, C, H, W]`.
    flat: bool,
}

impl Graph {
    fn new(input_shape: [usize; 3]) -> Self {
        let [c, h, w] = input_shape;
        let proto = GraphProto {
            name: "lenet5".into(),
            input: vec![value_info("input", &[None, Some(c), Some(h), Some(w)])],
            ..GraphProto::default()
        };
        Graph {
            proto,
            last: "input".into(),
            shape: input_shape,
            flat: false,
        }
    }

    /// Adds layer `index`, whose parameters' values are `params` (as [`Layer::params`] lists
    /// them).
    ///
    /// [`Layer::params`]: crate::Layer::params
    fn layer(&mut self, index: usize, config: &LayerConfig, params: &[&[f32]]) -> Result<()> {
        let param = |i: usize| {
            params
                .get(i)
                .copied()
                .ok_or_else(|| Error::InvalidArgument {
                    what: "onnx::to_bytes",
                    reason: format!(
                        "layer {index} has {} parameters, more were expected",
                        params.len()
                    ),
                })
        };
        match config {
            LayerConfig::Conv {
                in_channels,
                out_channels,
                kernel,
                activation,
                ..
            } => {
                self.unflatten();
                let k = *kernel;
                let weight = self.constant(&[*out_channels, *in_channels, k, k], param(0)?);
                let bias = self.constant(&[*out_channels], param(1)?);
                let attrs = vec![ints("kernel_shape", &[k, k])];
                self.apply("Conv", vec![weight, bias], attrs);
                let [_, h, w] = self.shape;
                self.shape = [*out_channels, h + 1 - k, w + 1 - k];
                self.activation(*activation);
            }
            LayerConfig::Subsampling {
                channels,
                kernel,
                activation,
            } => {
                self.unflatten();
                let k = *kernel;
                let pool = vec![ints("kernel_shape", &[k, k]), ints("strides", &[k, k])];
                self.apply("AveragePool", vec![], pool);
                // the mean times K² is the block's sum
                let area = (k * k) as f32;
                let coef: Vec<f32> = param(0)?.iter().map(|c| c * area).collect();
                let coef = self.constant(&[1, *channels, 1, 1], &coef);
                self.apply("Mul", vec![coef], vec![]);
                let bias = self.constant(&[1, *channels, 1, 1], param(1)?);
                self.apply("Add", vec![bias], vec![]);
                let [c, h, w] = self.shape;
                self.shape = [c, h / k, w / k];
                self.activation(*activation);
            }
            LayerConfig::MaxPool { kernel } => {
                self.unflatten();
                let k = *kernel;
                let pool = vec![ints("kernel_shape", &[k, k]), ints("strides", &[k, k])];
                self.apply("MaxPool", vec![], pool);
                let [c, h, w] = self.shape;
                self.shape = [c, h / k, w / k];
            }
            LayerConfig::Connect {
                inputs,
                outputs,
                activation,
            } => {
                self.flatten();
                let weight = self.constant(&[*outputs, *inputs], param(0)?);
                let bias = self.constant(&[*outputs], param(1)?);
                self.apply("Gemm", vec![weight, bias], vec![int("transB", 1)]);
                self.shape = [*outputs, 1, 1];
                self.activation(*activation);
            }
            LayerConfig::RbfOutput {
                classes,
                inputs,
                prototypes,
            } => {
                self.flatten();
                // -Σ_j (x_j - p_ij)² over [N, 1, inputs] - [1, classes, inputs]
                let one = self.int64s(&[1]);
                self.apply("Unsqueeze", vec![one], vec![]);
                let codes = self.constant(&[1, *classes, *inputs], prototypes);
                self.apply("Sub", vec![codes], vec![]);
                let last = self.last.clone();
                self.apply("Mul", vec![last], vec![]);
                let two = self.int64s(&[2]);
                self.apply("ReduceSum", vec![two], vec![int("keepdims", 0)]);
                self.apply("Neg", vec![], vec![]);
                self.shape = [*classes, 1, 1];
            }
            LayerConfig::Activation { activation } => self.activation(*activation),
            LayerConfig::Flatten => {
                self.flatten();
                self.shape = [self.shape.iter().product(), 1, 1];
            }
            LayerConfig::Dropout { .. } => {}
            LayerConfig::Other { name } => {
                return Err(Error::InvalidArgument {
                    what: "onnx::to_bytes",
                    reason: format!("layer {index} ({name}) has no ONNX form"),
                });
            }
        }
        Ok(())
    }

    /// The graph, its last value flattened and named `scores`.
    fn finish(mut self) -> GraphProto {
        self.flatten();
        let [c, h, w] = self.shape;
        self.proto.node.push(NodeProto {
            input: vec![self.last],
            output: vec!["scores".into()],
            name: "scores".into(),
            op_type: "Identity".into(),
            attribute: vec![],
        });
        self.proto.output = vec![value_info("scores", &[None, Some(c * h * w)])];
        self.proto
    }

    /// The activation's operators after the last value.
    fn activation(&mut self, activation: Activation) {
        match activation {
            Activation::Identity => {}
            Activation::Sigmoid => self.apply("Sigmoid", vec![], vec![]),
            Activation::Relu => self.apply("Relu", vec![], vec![]),
            Activation::Tanh => self.apply("Tanh", vec![], vec![]),
            Activation::ScaledTanh => {
                let s = self.constant(&[], &[TANH_S]);
                self.apply("Mul", vec![s], vec![]);
                self.apply("Tanh", vec![], vec![]);
                let a = self.constant(&[], &[TANH_A]);
                self.apply("Mul", vec![a], vec![]);
            }
        }
    }

    /// `[N, C·H·W]` from a `[N, C, H, W]` last value.
    fn flatten(&mut self) {
        if !self.flat {
            self.apply("Flatten", vec![], vec![int("axis", 1)]);
            self.flat = true;
        }
    }

    /// `[N, C, H, W]` from a `[N, C·H·W]` last value.
    fn unflatten(&mut self) {
        if self.flat {
            let [c, h, w] = self.shape;
            let shape = [-1, c as i64, h as i64, w as i64];
            let shape = self.int64s(&shape);
            self.apply("Reshape", vec![shape], vec![]);
            self.flat = false;
        }
    }

    /// Adds `op` on the last value and `inputs`; its output becomes the last value.
    fn apply(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>) {
        let output = format!("{}_{}", op.to_lowercase(), self.proto.node.len());
        let input = std::iter::once(self.last.clone()).chain(inputs).collect();
        self.proto.node.push(NodeProto {
            input,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        self.last = output;
    }

    /// A float weight of shape `dims`; returns its name.
    fn constant(&mut self, dims: &[usize], values: &[f32]) -> String {
        let name = format!("w{}", self.proto.initializer.len());
        self.proto.initializer.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            float_data: values.to_vec(),
            name: name.clone(),
            ..TensorProto::default()
        });
        name
    }

    /// A 1-D int64 tensor (axes, shapes); returns its name.
    fn int64s(&mut self, values: &[i64]) -> String {
        let name = format!("w{}", self.proto.initializer.len());
        self.proto.initializer.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: INT64,
            int64_data: values.to_vec(),
            name: name.clone(),
            ..TensorProto::default()
        });
        name
    }
}

/// An input or output of `f32` of `dims`, `None` for the free batch size.
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(d) => Dimension {
                dim_value: *d as i64,
                dim_param: String::new(),
            },
            None => Dimension {
                dim_value: 0,
                dim_param: "N".into(),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2, // INT
        i,
        ..AttributeProto::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7, // INTS
        ints: values.iter().map(|&v| v as i64).collect(),
        ..AttributeProto::default()
    }
}

// The messages of `onnx.proto` that a model of this crate uses, with ONNX's field numbers.

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "20")]
    r#type: i32,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(int64, repeated, tag = "7")]
    int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorType>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, Message)]
struct TensorType {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`.
#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, tag = "1")]
    dim_value: i64,
    #[prost(string, tag = "2")]
    dim_param: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dropout, Flatten, Layer, LeNet5, Relu, ScaledTanh, Tanh};
    use rand::SeedableRng;

    fn decode(bytes: &[u8]) -> GraphProto {
        let model = ModelProto::decode(bytes).unwrap();
        assert_eq!(model.opset_import[0].version, OPSET);
        model.graph.unwrap()
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn the_reports_network_is_standard_operators_with_every_weight() {
        let net = LeNet5::pretrained();
        let graph = decode(&to_bytes(&net).unwrap());
        let subsampling = ["AveragePool", "Mul", "Add", "Sigmoid"];
        let mut expected = vec!["Conv", "Sigmoid"];
        expected.extend(subsampling);
        expected.extend(["Conv", "Sigmoid"]);
        expected.extend(subsampling);
        expected.extend(["Conv", "Sigmoid", "Flatten", "Gemm", "Sigmoid"]);
        expected.extend(["Unsqueeze", "Sub", "Mul", "ReduceSum", "Neg", "Identity"]);
        assert_eq!(ops(&graph), expected);
        let floats: usize = graph.initializer.iter().map(|t| t.float_data.len()).sum();
        // the trainable weights and the RBF layer's 10 x 84 codes
        assert_eq!(floats, net.param_count() + 840);
        // each node reads the one before it, and the last is the output
        for pair in graph.node.windows(2) {
            assert_eq!(pair[1].input[0], pair[0].output[0]);
        }
        assert_eq!(graph.node.last().unwrap().output, ["scores"]);
        assert_eq!(graph.input[0].name, "input");
        // C1's weights in their [6, 1, 5, 5] layout, as the network holds them
        let c1 = &graph.initializer[0];
        assert_eq!(c1.dims, [6, 1, 5, 5]);
        assert_eq!(c1.float_data, net.layers()[0].params()[0].value);
    }

    #[test]
    fn any_stack_of_the_crates_layers_exports() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let net = Sequential::new([1, 4, 4])
            .add(crate::Conv::new(1, 2, 3, &mut rng).unwrap())
            .unwrap()
            .add(Flatten)
            .unwrap()
            .add(Dropout::new(0.5, 1).unwrap())
            .unwrap()
            .add(crate::Connect::new(8, 4, &mut rng).unwrap())
            .unwrap()
            .add(Relu)
            .unwrap()
            .add(Tanh)
            .unwrap()
            .add(ScaledTanh)
            .unwrap();
        let graph = decode(&to_bytes(&net).unwrap());
        let expected = [
            "Conv", "Sigmoid", "Flatten", "Gemm", "Sigmoid", "Relu", "Tanh", "Mul", "Tanh", "Mul",
            "Identity",
        ];
        assert_eq!(ops(&graph), expected);
        let output = graph.output[0].r#type.as_ref().unwrap();
        let dims = &output
            .tensor_type
            .as_ref()
            .unwrap()
            .shape
            .as_ref()
            .unwrap()
            .dim;
        assert_eq!(dims[1].dim_value, 4);
        assert_eq!(dims[0].dim_param, "N");
    }

    #[test]
    fn a_pooling_layer_after_a_dense_one_gets_its_maps_back() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(2);
        let net = Sequential::new([1, 2, 2])
            .add(crate::Connect::new(4, 4, &mut rng).unwrap())
            .unwrap()
            .add(crate::MaxPool::new(1).unwrap())
            .unwrap();
        let graph = decode(&to_bytes(&net).unwrap());
        let ops = ops(&graph);
        assert_eq!(ops[..4], ["Flatten", "Gemm", "Sigmoid", "Reshape"]);
        let shape = graph
            .initializer
            .iter()
            .find(|t| t.data_type == INT64)
            .unwrap();
        assert_eq!(shape.int64_data, [-1, 4, 1, 1]);
    }

    #[test]
    fn a_layer_without_an_onnx_form_is_an_error_that_names_it() {
        #[derive(Debug, Clone)]
        struct Mine;
        impl crate::Layer for Mine {
            fn name(&self) -> &'static str {
                "Mine"
            }
            fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
                Ok(input)
            }
            fn forward(
                &self,
                input: ndarray::ArrayView4<f32>,
                _: crate::Pass,
            ) -> Result<ndarray::Array4<f32>> {
                Ok(input.to_owned())
            }
            fn backward(
                &mut self,
                step: crate::Backward<'_>,
            ) -> Result<Option<ndarray::Array4<f32>>> {
                Ok(Some(step.grad_output.to_owned()))
            }
        }
        let net = Sequential::new([1, 2, 2])
            .add(Relu)
            .unwrap()
            .add(Mine)
            .unwrap();
        let err = to_bytes(&net).unwrap_err().to_string();
        assert!(err.contains("layer 1 (Mine)"), "{err}");
    }
}
