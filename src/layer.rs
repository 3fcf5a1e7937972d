//! The [`Layer`] trait and the parameter types every layer shares.
//!
//! Shapes are written with these letters throughout the crate:
//! `B` batch size, `C` channels, `H` height, `W` width, `K` kernel side.
//! Every array that flows between layers is 4-D `[B, C, H, W]`; a vector is `[B, n, 1, 1]`.

use std::fmt;

use dyn_clone::DynClone;
use ndarray::{Array, Array4, ArrayView, ArrayView4, ArrayViewMut, CowArray, Dimension};
use serde::{Deserialize, Serialize};

use crate::{Activation, Error, Result};

/// A trainable array and the gradient summed into it since the last optimiser step.
///
/// Both are always in standard (row-major) layout and of one shape, so that optimisers and
/// files can see them as flat slices: [`Param::new`] lays a value out so, and afterwards the
/// arrays change only through views that cannot change their layout.
#[derive(Debug, Clone)]
pub struct Param<D: Dimension> {
    /// The parameter itself.
    pub(crate) value: Array<f32, D>,
    /// dL/d(value), accumulated by [`Layer::backward`], applied and cleared by an optimiser.
    pub(crate) grad: Array<f32, D>,
}

impl<D: Dimension> Param<D> {
    /// A parameter with the given value (copied into standard layout if it is not) and a zero
    /// gradient.
    pub fn new(value: Array<f32, D>) -> Self {
        let value = if value.is_standard_layout() {
            value
        } else {
            value.as_standard_layout().into_owned()
        };
        let grad = Array::zeros(value.raw_dim());
        Param { value, grad }
    }

    /// The value.
    pub fn value(&self) -> ArrayView<'_, f32, D> {
        self.value.view()
    }

    /// The value, to change in place.
    pub fn value_mut(&mut self) -> ArrayViewMut<'_, f32, D> {
        self.value.view_mut()
    }

    /// The gradient accumulated since the last step.
    pub fn grad(&self) -> ArrayView<'_, f32, D> {
        self.grad.view()
    }

    /// The gradient, to add into in [`Layer::backward`].
    pub fn grad_mut(&mut self) -> ArrayViewMut<'_, f32, D> {
        self.grad.view_mut()
    }

    /// The flat, named, read-only view of this parameter.
    pub fn as_ref(&self, name: &'static str) -> ParamRef<'_> {
        ParamRef {
            name,
            shape: self.value.shape(),
            value: self
                .value
                .as_slice()
                .expect("Param keeps its value in standard layout"),
        }
    }

    /// The flat, named, mutable view of this parameter and its gradient.
    pub fn as_mut(&mut self, name: &'static str) -> ParamMut<'_> {
        ParamMut {
            name,
            value: self
                .value
                .as_slice_mut()
                .expect("Param keeps its value in standard layout"),
            grad: self
                .grad
                .as_slice_mut()
                .expect("Param keeps its gradient in standard layout"),
        }
    }
}

/// A read-only view of one parameter, as saving and summaries need it.
#[derive(Debug, Clone, Copy)]
pub struct ParamRef<'a> {
    /// The name inside its layer: `weight`, `bias` or `coef`.
    pub name: &'static str,
    /// The parameter's shape; `value` holds it in row-major order.
    pub shape: &'a [usize],
    /// The values, row-major.
    pub value: &'a [f32],
}

/// A mutable view of one parameter and its gradient, as optimisers and loading need it.
#[derive(Debug)]
pub struct ParamMut<'a> {
    /// The name inside its layer: `weight`, `bias` or `coef`.
    pub name: &'static str,
    /// The values, row-major (the shape is in the matching [`ParamRef`]).
    pub value: &'a mut [f32],
    /// dL/d(value), same layout as `value`.
    pub grad: &'a mut [f32],
}

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Inference: every layer is deterministic ([`Dropout`](crate::Dropout) is the identity).
    Predict,
    /// Training. `seed` names this pass's random draws ([`Dropout`](crate::Dropout)'s mask), so
    /// that the backward pass, which receives the same `Pass`, can draw them again.
    Train {
        /// Chosen by the trainer for each batch, from its own random stream.
        seed: u64,
    },
}

/// What one backward pass computes.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// dL/d(param) added into each gradient, and dL/d(input) returned.
    Full,
    /// dL/d(param) added into each gradient; dL/d(input) skipped (the first layer of a network).
    Params,
    /// Second derivatives for [`Sdlm`](crate::train::Sdlm): from ∂²E/∂output² (the diagonal),
    /// ∂²E/∂param² is added into each parameter's *gradient* buffer and ∂²E/∂input² returned.
    /// The rules are the Gauss-Newton ones of LeCun et al. 1998 (Appendix C): squared weights,
    /// squared inputs and squared activation slopes, cross terms dropped, so every value is
    /// non-negative.
    Curvature {
        /// ∂E/∂output at the same point, for a layer whose own second derivative needs it
        /// ([`RbfOutput`](crate::RbfOutput)). A [`Sequential`](crate::Sequential) gives it
        /// to its last layer, where it is the loss's gradient, and `None` to the others.
        slope: Option<ArrayView4<'a, f32>>,
    },
}

impl Mode<'_> {
    /// The same mode, borrowing its `slope` for a shorter time (array views do not shorten
    /// their lifetime by themselves).
    pub fn reborrow(&self) -> Mode<'_> {
        match self {
            Mode::Full => Mode::Full,
            Mode::Params => Mode::Params,
            Mode::Curvature { slope } => Mode::Curvature {
                slope: slope.as_ref().map(|s| s.view()),
            },
        }
    }
}

/// Everything one layer's backward pass reads: the input and output of its forward pass, and
/// the derivative of the loss with respect to that output.
#[derive(Debug, Clone, Copy)]
pub struct Backward<'a> {
    /// `[B, C, H, W]`: the input the forward pass took.
    pub input: ArrayView4<'a, f32>,
    /// The forward pass's output for `input` (with the same `pass`).
    pub output: ArrayView4<'a, f32>,
    /// dL/d(output) (∂²E/∂output² in [`Mode::Curvature`]), the shape of `output`.
    pub grad_output: ArrayView4<'a, f32>,
    /// What to compute.
    pub mode: Mode<'a>,
    /// The forward pass's [`Pass`].
    pub pass: Pass,
}

impl Backward<'_> {
    /// That `output` has the shape `layer` gives `input`, and `grad_output` (and a curvature
    /// `slope`) the output's shape: the check every backward pass starts with.
    ///
    /// # Errors
    /// [`Error::Shape`] naming `layer` when one does not.
    pub fn check(&self, layer: &(impl Layer + ?Sized)) -> Result<()> {
        let [c, h, w] = layer.output_shape(chw(self.input.shape()))?;
        let expected = [self.input.dim().0, c, h, w];
        let slope = match self.mode {
            Mode::Curvature { slope: Some(slope) } => Some(slope),
            _ => None,
        };
        let arrays = [self.output, self.grad_output].into_iter().chain(slope);
        for array in arrays {
            if array.shape() != expected {
                return Err(Error::shape(layer.name(), &expected, array.shape()));
            }
        }
        Ok(())
    }

    /// Whether dL/d(input) is wanted (every mode but [`Mode::Params`]).
    pub fn wants_input(&self) -> bool {
        !matches!(self.mode, Mode::Params)
    }

    /// Whether this is a [`Mode::Curvature`] pass, where weights and inputs enter squared.
    pub fn is_curvature(&self) -> bool {
        matches!(self.mode, Mode::Curvature { .. })
    }
}

/// What [`Layer::backward_descend`] gives back.
#[derive(Debug)]
pub struct Descended {
    /// dL/d(input), as [`Layer::backward`] returns it.
    pub grad_input: Option<Array4<f32>>,
    /// Whether every value after the step is finite; when not, the caller takes the step
    /// back ([`Layer::end_descend`]).
    pub finite: bool,
}

/// One stage of a network: computes outputs and gradients; decides no update, except for the
/// step of plain gradient descent a caller asks for with [`Layer::backward_descend`].
///
/// A layer keeps nothing between passes: `forward` maps an input to an output, and `backward`
/// receives that input and output again ([`Backward`]) with dL/d(output), *adds* dL/d(param)
/// into each parameter's gradient and returns dL/d(input). A [`Sequential`](crate::Sequential)
/// holds the activations in between. An optimiser then reads the gradients through
/// [`Layer::params_mut`], moves the values and clears the gradients.
///
/// To write a layer, implement `name`, `output_shape`, `forward`, `backward`, and `params` /
/// `params_mut` when it has parameters; check it with [`crate::check`]. A layer is `Clone`
/// (derive it), so that a network can be copied: a snapshot of the best epoch, or one copy per
/// thread.
pub trait Layer: DynClone + std::fmt::Debug + Send + Sync {
    /// The layer's type name, used in error messages and summaries (`"Conv"`).
    fn name(&self) -> &'static str;

    /// The `[C, H, W]` this layer produces from a `[C, H, W]` input, so a stack can be checked
    /// before any data arrives.
    ///
    /// # Errors
    /// [`Error::Shape`] when the layer cannot take that input.
    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]>;

    /// Output `[B, C', H', W']` for `input` `[B, C, H, W]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` has a shape the layer cannot take.
    fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>>;

    /// The backward pass of [`Backward::mode`]: adds into each parameter's gradient and returns
    /// the derivative for the input, or `None` in [`Mode::Params`].
    ///
    /// # Errors
    /// [`Error::Shape`] when the arrays of `step` do not fit this layer (see
    /// [`Backward::check`]), and [`Error::InvalidArgument`] for a mode the layer does not
    /// provide.
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>>;

    /// For one sample, [`Layer::backward`] with a step of plain gradient descent at rate `lr`
    /// fused in, begun here and ended by [`Layer::end_descend`]: dL/d(input) is returned as
    /// `backward` returns it, with whether the step keeps every parameter value finite; the
    /// step moves each value by `−lr ·` its gradient (what its buffer holds plus this
    /// sample's). This sample's gradient is never stored, which saves a dense layer several
    /// passes over its weights. The values may move here or at the end, as long as
    /// `end_descend(false)` leaves them as they were before.
    ///
    /// `None` when the layer has no such pass (the default): the caller runs `backward` and
    /// steps the gradients itself. [`Sequential::descend`](crate::Sequential::descend) calls
    /// it with a batch of one, and ends the step once every layer's is known to be finite.
    fn backward_descend(&mut self, _step: Backward<'_>, _lr: f32) -> Option<Result<Descended>> {
        None
    }

    /// Ends the step that [`Layer::backward_descend`] began: keeps it when `apply`, takes it
    /// back otherwise, and leaves the gradients cleared either way. Nothing when no step was
    /// begun (the default).
    fn end_descend(&mut self, _apply: bool) {}

    /// The trainable parameters, in a fixed order; none by default.
    fn params(&self) -> Vec<ParamRef<'_>> {
        Vec::new()
    }

    /// The trainable parameters and their gradients, in the order of [`Layer::params`].
    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        Vec::new()
    }

    /// The number of values that train: every parameter value by default, fewer when a layer
    /// holds some at zero (a [`Conv`](crate::Conv) with a connection table).
    fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.len()).sum()
    }

    /// What the layer is, without its trained values: model files record it, so that saved
    /// weights load only into a layer of the same kind, sizes and activation. A layer of the
    /// user's own is [`LayerConfig::Other`] with its name (the default).
    fn config(&self) -> LayerConfig {
        LayerConfig::Other {
            name: self.name().into(),
        }
    }
}

// `Box<dyn Layer>` clones through `Clone` of the layer inside, so a stack clones as a whole.
dyn_clone::clone_trait_object!(Layer);

/// What a layer is, without its trained values: its kind, sizes, activation and fixed values.
///
/// Two layers with equal configs take the same parameters with the same meaning. Model files
/// store the variants by their position, so new ones are only ever added at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LayerConfig {
    /// A [`Conv`](crate::Conv).
    Conv {
        /// `C_in`.
        in_channels: usize,
        /// `C_out`.
        out_channels: usize,
        /// `K`.
        kernel: usize,
        /// The activation after the sum.
        activation: Activation,
        /// The connection table `[C_out, C_in]`, row-major; `None` when fully connected.
        connections: Option<Vec<bool>>,
    },
    /// A [`Subsampling`](crate::Subsampling).
    Subsampling {
        /// `C`.
        channels: usize,
        /// `K`.
        kernel: usize,
        /// The activation after the scaled sum.
        activation: Activation,
    },
    /// A [`Connect`](crate::Connect).
    Connect {
        /// Inputs (`C·H·W` of the layer before).
        inputs: usize,
        /// Outputs.
        outputs: usize,
        /// The activation after the sum.
        activation: Activation,
    },
    /// A [`RbfOutput`](crate::RbfOutput) and its fixed prototypes.
    RbfOutput {
        /// Classes.
        classes: usize,
        /// Inputs.
        inputs: usize,
        /// The prototypes `[classes, inputs]`, row-major.
        prototypes: Vec<f32>,
    },
    /// A [`MaxPool`](crate::MaxPool).
    MaxPool {
        /// `K`.
        kernel: usize,
    },
    /// Any other layer, known by its [`Layer::name`].
    Other {
        /// The layer's name.
        name: String,
    },
    /// A standalone activation layer ([`Relu`](crate::Relu), [`Sigmoid`](crate::Sigmoid),
    /// [`Tanh`](crate::Tanh), [`ScaledTanh`](crate::ScaledTanh)).
    Activation {
        /// The function applied to each value.
        activation: Activation,
    },
    /// A [`Flatten`](crate::Flatten).
    Flatten,
    /// A [`Dropout`](crate::Dropout).
    Dropout {
        /// The share of values dropped in training.
        rate: f32,
        /// The layer's own seed, mixed with each training pass's.
        seed: u64,
    },
}

/// A short description: kind, sizes and activation (`Conv 6->16 5x5 Sigmoid`).
impl fmt::Display for LayerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerConfig::Conv {
                in_channels,
                out_channels,
                kernel,
                activation,
                connections,
            } => {
                write!(
                    f,
                    "Conv {in_channels}->{out_channels} {kernel}x{kernel} {activation:?}"
                )?;
                if connections.is_some() {
                    write!(f, " with a connection table")?;
                }
                Ok(())
            }
            LayerConfig::Subsampling {
                channels,
                kernel,
                activation,
            } => write!(f, "Subsampling {channels} {kernel}x{kernel} {activation:?}"),
            LayerConfig::Connect {
                inputs,
                outputs,
                activation,
            } => write!(f, "Connect {inputs}->{outputs} {activation:?}"),
            LayerConfig::RbfOutput {
                classes, inputs, ..
            } => write!(f, "RbfOutput {inputs}->{classes}"),
            LayerConfig::MaxPool { kernel } => write!(f, "MaxPool {kernel}x{kernel}"),
            LayerConfig::Activation { activation } => write!(f, "{activation:?}"),
            LayerConfig::Flatten => write!(f, "Flatten"),
            LayerConfig::Dropout { rate, .. } => write!(f, "Dropout {rate}"),
            LayerConfig::Other { name } => write!(f, "{name}"),
        }
    }
}

/// The product of `sizes`, or `None` when it overflows (sizes from a file or a caller can
/// claim more values than memory holds).
pub(crate) fn product(sizes: &[usize]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// `[C, H, W]` of a `[B, C, H, W]` shape.
pub(crate) fn chw(shape: &[usize]) -> [usize; 3] {
    [shape[1], shape[2], shape[3]]
}

/// `a` in standard layout: itself when it is, else a copy.
pub(crate) fn standard<'a, D: Dimension>(a: ArrayView<'a, f32, D>) -> CowArray<'a, f32, D> {
    if a.is_standard_layout() {
        a.into()
    } else {
        a.as_standard_layout().into_owned().into()
    }
}
