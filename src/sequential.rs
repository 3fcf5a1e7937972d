//! [`Sequential`]: layers applied one after another, checked for shape when they are added.

use std::fmt;
use std::path::Path;

use ndarray::{Array4, ArrayView4, CowArray};

use crate::layer::{Backward, Layer, LayerConfig, Mode, ParamMut, ParamRef, Pass, chw};
use crate::{Encoding, Error, Result, interop, io};

/// The activations of one forward pass through a [`Sequential`]: what its backward pass
/// ([`Sequential::backprop`]) reads, so that no layer keeps anything between passes.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    input: ArrayView4<'a, f32>,
    /// Each layer's output, first to last.
    outputs: Vec<Array4<f32>>,
    pass: Pass,
}

impl Trace<'_> {
    /// The stack's output `[B, C, H, W]` (the input when the stack is empty).
    pub fn output(&self) -> ArrayView4<'_, f32> {
        self.outputs.last().map_or(self.input.view(), |y| y.view())
    }

    /// Each layer's output, first to last.
    pub fn outputs(&self) -> &[Array4<f32>] {
        &self.outputs
    }
}

/// A stack of layers, each fed the previous one's output.
///
/// The stack knows its input shape, so [`Sequential::add`] checks each new layer against the
/// output of the one before and reports which layer does not fit.
///
/// ```
/// # fn main() -> lenet5::Result<()> {
/// use lenet5::{Connect, Conv, Sequential};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
/// let net = Sequential::new([1, 8, 8])
///     .add(Conv::new(1, 4, 3, &mut rng)?)?   // -> [4, 6, 6]
///     .add_with(|shape| Connect::flattening(shape, 10, &mut rng))?;
/// assert_eq!(net.output_shape(), [10, 1, 1]);
/// assert!(Sequential::new([1, 8, 8]).add(Conv::new(3, 4, 3, &mut rng)?).is_err()); // 3 channels expected
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sequential {
    input_shape: [usize; 3],
    /// How pixels become this network's inputs.
    encoding: Encoding,
    /// `[C, H, W]` after each layer.
    shapes: Vec<[usize; 3]>,
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// The architecture name [`Sequential::save`] writes into model files.
    pub const ARCHITECTURE: &'static str = "sequential";

    /// An empty stack that takes `[B, C, H, W]` inputs with `[C, H, W] = input_shape`.
    pub fn new(input_shape: [usize; 3]) -> Self {
        Sequential {
            input_shape,
            encoding: Encoding::default(),
            shapes: Vec::new(),
            layers: Vec::new(),
        }
    }

    /// The same stack, fed pixels encoded by `encoding` ([`Encoding::Binary`], the report's, by
    /// default): training and evaluation on a [`Dataset`](crate::Dataset) encode its images so,
    /// and model files record it.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// How pixels become this network's inputs.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Appends `layer`.
    ///
    /// # Errors
    /// [`Error::Layer`] wrapping the layer's [`Error::Shape`] when it cannot take the current output.
    #[allow(
        clippy::should_implement_trait,
        reason = "the report's `add`; it returns a Result, unlike Add::add"
    )]
    pub fn add(mut self, layer: impl Layer + 'static) -> Result<Self> {
        self.push(Box::new(layer))?;
        Ok(self)
    }

    /// Appends the layer `make` builds for the current output shape `[C, H, W]`, so that its
    /// sizes come from the stack ([`Connect::flattening`](crate::Connect::flattening)).
    ///
    /// # Errors
    /// What `make` returns, and as [`Sequential::add`].
    pub fn add_with<L: Layer + 'static>(
        self,
        make: impl FnOnce([usize; 3]) -> Result<L>,
    ) -> Result<Self> {
        let layer = make(self.output_shape()).map_err(|source| Error::Layer {
            index: self.layers.len(),
            source: Box::new(source),
        })?;
        self.add(layer)
    }

    /// Appends `layer` in place, as [`Sequential::add`] does.
    ///
    /// # Errors
    /// As [`Sequential::add`]; the stack is then unchanged.
    pub fn push(&mut self, layer: Box<dyn Layer>) -> Result<()> {
        let shape = layer
            .output_shape(self.output_shape())
            .map_err(|source| Error::Layer {
                index: self.layers.len(),
                source: Box::new(source),
            })?;
        self.shapes.push(shape);
        self.layers.push(layer);
        Ok(())
    }

    /// Saves the stack to `path`: each layer's kind, sizes, activation and fixed values, and
    /// every weight, in the crate's model format (see [`crate::io`]), atomically.
    /// [`Sequential::load`] rebuilds it from the file alone.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; a previous file is left intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        io::save(self, Self::ARCHITECTURE, path)
    }

    /// The stack saved at `path` by [`Sequential::save`] (or `LeNet5::save`), rebuilt from the
    /// file alone when it is made of this crate's layers.
    ///
    /// ```
    /// # fn main() -> lenet5::Result<()> {
    /// use lenet5::{Activation, Connect, Conv, Layer, Sequential};
    /// use lenet5::rand::SeedableRng;
    /// let mut rng = lenet5::rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
    /// let net = Sequential::new([1, 8, 8])
    ///     .add(Conv::new(1, 4, 3, &mut rng)?.with_activation(Activation::Relu))?
    ///     .add(Connect::new(4 * 6 * 6, 10, &mut rng)?)?;
    /// let path = std::env::temp_dir().join("lenet5-doc-sequential.bin");
    /// net.save(&path)?;
    /// let back = Sequential::load(&path)?;
    /// let input = lenet5::ndarray::Array4::from_elem((1, 1, 8, 8), 0.5);
    /// assert_eq!(back.predict(input.view())?, net.predict(input.view())?);
    /// # std::fs::remove_file(path).unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] and [`Error::TooLarge`] when the file cannot be read, and
    /// [`Error::Model`] when it is not a valid model file, is of version 1 (no layers
    /// recorded: use [`Sequential::load_weights`]), or holds a layer of the user's own.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        io::stack_from_bytes(&io::read(path)?, &path.display().to_string())
    }

    /// Loads the weights saved at `path` into this stack, which may hold layers of the user's
    /// own: the file's layers must be this stack's, one for one.
    ///
    /// # Errors
    /// [`Error::Io`] and [`Error::TooLarge`] when the file cannot be read, and
    /// [`Error::Model`] naming the first layer that differs (kind, sizes, activation or fixed
    /// values) or the first parameter that does; the stack is then unchanged.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        io::load_weights_bytes(self, &io::read(path)?, &path.display().to_string())
    }

    /// The weights as safetensors bytes, each parameter named as in model files,
    /// `layers.{index}.{name}` (`layers.0.weight`).
    pub fn to_safetensors(&self) -> Vec<u8> {
        interop::stack_to_bytes(self)
    }

    /// Writes [`Sequential::to_safetensors`] to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; a previous file is left intact.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        io::write_atomic(path.as_ref(), &self.to_safetensors())
    }

    /// Loads the weights of safetensors `bytes` named as [`Sequential::to_safetensors`] names
    /// them into this stack; `source_name` names the bytes in errors. The stack is changed
    /// only on success.
    ///
    /// # Errors
    /// [`Error::Model`] when the bytes are not safetensors, a parameter's tensor is missing,
    /// not `F32`, of another shape or not finite, or the file holds a tensor that is not a
    /// parameter of this stack.
    pub fn load_safetensors_bytes(&mut self, bytes: &[u8], source_name: &str) -> Result<()> {
        interop::load_into_stack(self, bytes, source_name)
    }

    /// [`Sequential::load_safetensors_bytes`] on the file `path`, read up to
    /// [`io::MAX_MODEL_FILE`].
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::TooLarge`] when it is larger, and
    /// the errors of [`Sequential::load_safetensors_bytes`].
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = io::read_limited(path, io::MAX_MODEL_FILE, "a safetensors file")?;
        self.load_safetensors_bytes(&bytes, &path.display().to_string())
    }

    /// `[C, H, W]` of one input.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// `[C, H, W]` of one output (the input shape while the stack is empty).
    pub fn output_shape(&self) -> [usize; 3] {
        self.shapes.last().copied().unwrap_or(self.input_shape)
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Each layer's [`LayerConfig`], first to last: what model files record of the stack.
    pub fn configs(&self) -> Vec<LayerConfig> {
        self.layers.iter().map(|l| l.config()).collect()
    }

    /// Every parameter as `("layers.{index}.{name}", param)`, in a fixed order: the names
    /// saved model files use.
    pub fn named_params(&self) -> Vec<(String, ParamRef<'_>)> {
        let per_layer = self.layers.iter().enumerate().map(|(i, l)| (i, l.params()));
        per_layer
            .flat_map(|(i, ps)| {
                ps.into_iter()
                    .map(move |p| (format!("layers.{i}.{}", p.name), p))
            })
            .collect()
    }

    /// As [`Sequential::named_params`], with mutable values and gradients.
    pub fn named_params_mut(&mut self) -> Vec<(String, ParamMut<'_>)> {
        let per_layer = self
            .layers
            .iter_mut()
            .enumerate()
            .map(|(i, l)| (i, l.params_mut()));
        per_layer
            .flat_map(|(i, ps)| {
                ps.into_iter()
                    .map(move |p| (format!("layers.{i}.{}", p.name), p))
            })
            .collect()
    }

    /// The stack's output for `input` `[B, C, H, W]`: a forward pass in [`Pass::Predict`].
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` does not have the stack's input shape.
    pub fn predict(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.forward(input, Pass::Predict)
    }

    /// The output of every layer for `input` `[B, C, H, W]`, first to last, in
    /// [`Pass::Predict`] (for looking at feature maps).
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` does not have the stack's input shape.
    pub fn activations(&self, input: ArrayView4<f32>) -> Result<Vec<Array4<f32>>> {
        self.walk(input, Pass::Predict, true)
    }

    /// A forward pass that keeps every layer's output, for [`Sequential::backprop`].
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` does not have the stack's input shape.
    pub fn trace<'a>(&self, input: ArrayView4<'a, f32>, pass: Pass) -> Result<Trace<'a>> {
        let outputs = self.walk(input, pass, true)?;
        Ok(Trace {
            input,
            outputs,
            pass,
        })
    }

    /// The backward pass of `mode` through every layer, last to first, from dL/d(output)
    /// `grad_output` (∂²E/∂output² in [`Mode::Curvature`], whose `slope` goes to the last layer
    /// only); each layer adds into its parameters' gradients. Returns dL/d(input), or `None`
    /// in [`Mode::Params`], where the first layer skips it.
    ///
    /// ```
    /// # fn main() -> lenet5::Result<()> {
    /// use lenet5::{Connect, Mode, Pass, Sequential};
    /// use lenet5::ndarray::Array4;
    /// use lenet5::rand::SeedableRng;
    /// let mut rng = lenet5::rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
    /// let mut net = Sequential::new([3, 1, 1]).add(Connect::new(3, 2, &mut rng)?)?;
    /// let input = Array4::from_elem((1, 3, 1, 1), 0.5);
    /// let trace = net.trace(input.view(), Pass::Train { seed: 0 })?;
    /// let grad_output = trace.output().to_owned(); // L = Σ output² / 2
    /// let grad_input = net.backprop(&trace, grad_output.view(), Mode::Full)?.unwrap();
    /// assert_eq!(grad_input.dim(), (1, 3, 1, 1));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `trace` is of another stack or a layer gives no
    /// derivative for its input, and the layers' [`Error::Shape`] when `grad_output` does not
    /// have the output's shape.
    pub fn backprop(
        &mut self,
        trace: &Trace<'_>,
        grad_output: ArrayView4<f32>,
        mode: Mode<'_>,
    ) -> Result<Option<Array4<f32>>> {
        self.walk_back(trace, grad_output, mode, |_, layer, step| {
            layer.backward(step)
        })
    }

    /// One step of plain gradient descent at rate `lr` for the trace of one sample, from
    /// dL/d(output) `grad_output`: the backward pass of [`Mode::Params`], then each value moved
    /// by `−lr ·` its gradient and the gradients cleared, as
    /// [`GradientDescent`](crate::train::GradientDescent) steps them; the bits are those of
    /// [`Sequential::backprop`] then that step. Layers with a fused pass
    /// ([`Layer::backward_descend`]: [`Connect`](crate::Connect), and a [`Conv`](crate::Conv)
    /// with one output position) begin their steps as the pass reaches them, without storing
    /// their gradients, and end them after it ([`Layer::end_descend`]); the others are stepped
    /// after the pass. Returns `Ok(false)`, with every value as it was and the gradients
    /// cleared, when some new value would not be finite.
    ///
    /// ```
    /// # fn main() -> lenet5::Result<()> {
    /// use lenet5::{Connect, Layer, Pass, Sequential};
    /// use lenet5::ndarray::Array4;
    /// use lenet5::rand::SeedableRng;
    /// let mut rng = lenet5::rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
    /// let mut net = Sequential::new([3, 1, 1]).add(Connect::new(3, 2, &mut rng)?)?;
    /// let input = Array4::from_elem((1, 3, 1, 1), 0.5);
    /// let before = net.params()[0].value.to_vec();
    /// let trace = net.trace(input.view(), Pass::Train { seed: 0 })?;
    /// let grad_output = trace.output().to_owned(); // L = Σ output² / 2
    /// assert!(net.descend(&trace, grad_output.view(), 0.1)?);
    /// assert_ne!(net.params()[0].value, &before[..]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Sequential::backprop`], and [`Error::InvalidArgument`] when `trace` holds more than
    /// one sample. After an error in the pass no value has moved, and the layers without a
    /// fused pass keep the gradients it added.
    pub fn descend(
        &mut self,
        trace: &Trace<'_>,
        grad_output: ArrayView4<f32>,
        lr: f32,
    ) -> Result<bool> {
        let samples = trace.input.dim().0;
        if samples != 1 {
            return Err(Error::InvalidArgument {
                what: "Sequential::descend",
                reason: format!("the trace holds {samples} samples, a step takes one"),
            });
        }
        let mut fused = vec![false; self.layers.len()];
        let mut finite = true;
        let walked = self.walk_back(
            trace,
            grad_output,
            Mode::Params,
            |i, layer, step| match layer.backward_descend(step, lr) {
                Some(descended) => {
                    fused[i] = true;
                    let descended = descended?;
                    finite &= descended.finite;
                    Ok(descended.grad_input)
                }
                None => layer.backward(step),
            },
        );
        if walked.is_ok() {
            let mut rest: Vec<ParamMut<'_>> = (self.layers.iter_mut().zip(&fused))
                .filter(|(_, fused)| !**fused)
                .flat_map(|(layer, _)| layer.params_mut())
                .collect();
            finite &= crate::train::optim::descend(&mut rest, lr);
            crate::train::optim::settle_all(&mut rest, finite);
        }
        let apply = finite && walked.is_ok();
        for (layer, _) in self.layers.iter_mut().zip(&fused).filter(|(_, f)| **f) {
            layer.end_descend(apply);
        }
        walked.map(|_| finite)
    }

    /// The backward pass of `mode` from `grad_output`, each layer's taken by `backward(index,
    /// layer, step)`: [`Sequential::backprop`]'s walk, whatever each layer does on it.
    fn walk_back(
        &mut self,
        trace: &Trace<'_>,
        grad_output: ArrayView4<f32>,
        mode: Mode<'_>,
        mut backward: impl FnMut(usize, &mut dyn Layer, Backward<'_>) -> Result<Option<Array4<f32>>>,
    ) -> Result<Option<Array4<f32>>> {
        if trace.outputs.len() != self.layers.len() {
            return Err(Error::InvalidArgument {
                what: "Sequential::backprop",
                reason: format!(
                    "the trace holds {} outputs, the stack has {} layers",
                    trace.outputs.len(),
                    self.layers.len()
                ),
            });
        }
        let last = self.layers.len().saturating_sub(1);
        let mut grad = CowArray::from(grad_output);
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let input = if i == 0 {
                trace.input
            } else {
                trace.outputs[i - 1].view()
            };
            let layer_mode = match mode {
                Mode::Params if i > 0 => Mode::Full,
                Mode::Curvature { .. } if i < last => Mode::Curvature { slope: None },
                _ => mode.reborrow(),
            };
            let step = Backward {
                input,
                output: trace.outputs[i].view(),
                grad_output: grad.view(),
                mode: layer_mode,
                pass: trace.pass,
            };
            match backward(i, layer.as_mut(), step)? {
                Some(g) => {
                    check_shape(
                        i,
                        layer.name(),
                        "input derivative",
                        input.shape(),
                        g.shape(),
                    )?;
                    grad = g.into();
                }
                None if matches!(layer_mode, Mode::Params) => return Ok(None),
                None => {
                    return Err(Error::InvalidArgument {
                        what: layer.name(),
                        reason: format!("layer {i} returned no derivative for its input"),
                    });
                }
            }
        }
        Ok((!matches!(mode, Mode::Params)).then(|| grad.into_owned()))
    }

    /// The forward pass: each layer's output, all of them when `keep_all`, else the last.
    fn walk(&self, input: ArrayView4<f32>, pass: Pass, keep_all: bool) -> Result<Vec<Array4<f32>>> {
        self.check_input(&input)?;
        let mut outputs: Vec<Array4<f32>> = Vec::with_capacity(self.layers.len());
        for (i, (layer, &[c, h, w])) in self.layers.iter().zip(&self.shapes).enumerate() {
            let y = layer.forward(outputs.last().map_or(input, |x| x.view()), pass)?;
            let expected = [input.dim().0, c, h, w];
            check_shape(i, layer.name(), "output", &expected, y.shape())?;
            if !keep_all {
                outputs.clear();
            }
            outputs.push(y);
        }
        Ok(outputs)
    }

    /// The output shape for `input`, which must be [`Sequential::input_shape`].
    pub(crate) fn output_shape_for(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        if input != self.input_shape {
            return Err(Error::shape("Sequential", &self.input_shape, &input));
        }
        Ok(self.output_shape())
    }

    fn check_input(&self, input: &ArrayView4<f32>) -> Result<()> {
        if chw(input.shape()) != self.input_shape {
            let expected = format!(
                "[B, {}, {}, {}]",
                self.input_shape[0], self.input_shape[1], self.input_shape[2]
            );
            return Err(Error::Shape {
                layer: "Sequential",
                expected,
                got: input.shape().to_vec(),
            });
        }
        Ok(())
    }
}

/// That layer `index` (`name`) gave its `what` in the `expected` shape: a layer of the user's
/// own that does not may not pass a wrong array on to the next.
fn check_shape(
    index: usize,
    name: &'static str,
    what: &str,
    expected: &[usize],
    got: &[usize],
) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(Error::Layer {
        index,
        source: Box::new(Error::Shape {
            layer: name,
            expected: format!("{expected:?} (its {what})"),
            got: got.to_vec(),
        }),
    })
}

impl Layer for Sequential {
    fn name(&self) -> &'static str {
        "Sequential"
    }

    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        self.output_shape_for(input)
    }

    fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>> {
        let mut outputs = self.walk(input, pass, false)?;
        Ok(outputs.pop().unwrap_or_else(|| input.to_owned()))
    }

    /// A stack inside a stack keeps nothing either: it runs its forward pass again to have
    /// its layers' outputs, then [`Sequential::backprop`].
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        let trace = self.trace(step.input, step.pass)?;
        self.backprop(&trace, step.grad_output, step.mode)
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.param_count()).sum()
    }
}

impl AsRef<Sequential> for Sequential {
    fn as_ref(&self) -> &Sequential {
        self
    }
}

impl AsMut<Sequential> for Sequential {
    fn as_mut(&mut self) -> &mut Sequential {
        self
    }
}

/// The summary of [`Display`](fmt::Display), not the weights.
impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A summary like PyTorch's `print(model)`: each layer, its output shape and parameter count.
impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<4} {:<12} {:>14} {:>8}",
            "#", "layer", "output", "params"
        )?;
        writeln!(
            f,
            "{:<4} {:<12} {:>14} {:>8}",
            "",
            "input",
            shape_str(self.input_shape),
            ""
        )?;
        for (i, (layer, shape)) in self.layers.iter().zip(&self.shapes).enumerate() {
            writeln!(
                f,
                "{:<4} {:<12} {:>14} {:>8}",
                i,
                layer.name(),
                shape_str(*shape),
                layer.param_count()
            )?;
        }
        write!(f, "total trainable parameters: {}", self.param_count())
    }
}

fn shape_str([c, h, w]: [usize; 3]) -> String {
    format!("{c}x{h}x{w}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{GradientDescent, Optimizer};
    use crate::{Activation, Connect, Conv, RbfOutput, check};
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn small(seed: u64) -> Sequential {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        Sequential::new([2, 5, 5])
            .add(Conv::new(2, 3, 3, &mut rng).unwrap())
            .unwrap()
            .add_with(|shape| {
                Ok(Connect::flattening(shape, 4, &mut rng)?.with_activation(Activation::Tanh))
            })
            .unwrap()
    }

    /// Every value and gradient of `net`, as bits.
    fn bits(net: &mut Sequential) -> Vec<u32> {
        let params = net.params_mut();
        let values = params
            .iter()
            .flat_map(|p| p.value.iter().chain(p.grad.iter()));
        values.map(|v| v.to_bits()).collect()
    }

    /// The loss Σ output² / 2 of `input` through `net`, its trace and gradient to `then`.
    fn with_square_loss<T>(
        net: &mut Sequential,
        input: &Array4<f32>,
        then: impl FnOnce(&mut Sequential, &Trace<'_>, ArrayView4<f32>) -> T,
    ) -> T {
        let trace = net.trace(input.view(), Pass::Train { seed: 0 }).unwrap();
        let grad = trace.output().to_owned();
        then(net, &trace, grad.view())
    }

    fn fused_and_not() -> Vec<Sequential> {
        // LeNet-5: C5 and F6 fused, the rest stepped after the pass; a stack of a
        // convolution and a tanh Connect; a convolution with one output position and a table
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let table = ndarray::array![[true, false], [true, true]];
        let conv = Conv::new(2, 2, 5, &mut rng).unwrap();
        vec![
            (*crate::LeNet5::new()).clone(),
            small(3),
            Sequential::new([2, 5, 5])
                .add(conv.with_connections(table).unwrap())
                .unwrap(),
        ]
    }

    #[test]
    fn descend_gives_the_bits_of_backprop_then_gradient_descent() {
        for mut net in fused_and_not() {
            let [c, h, w] = net.input_shape();
            let input = check::uniform((1, c, h, w), 4);
            let mut plain = net.clone();
            for lr in [0.1, 3.0, 0.1] {
                let stepped = with_square_loss(&mut net, &input, |net, trace, grad| {
                    net.descend(trace, grad, lr).unwrap()
                });
                with_square_loss(&mut plain, &input, |net, trace, grad| {
                    net.backprop(trace, grad, Mode::Params).unwrap();
                });
                let plain_stepped = GradientDescent.step(plain.params_mut(), lr).unwrap();
                assert!(stepped && plain_stepped);
                assert_eq!(bits(&mut net), bits(&mut plain));
            }
        }
    }

    #[test]
    fn descend_steps_the_gradients_already_there_too() {
        for mut net in fused_and_not() {
            let [c, h, w] = net.input_shape();
            let (first, second) = (
                check::uniform((1, c, h, w), 5),
                check::uniform((1, c, h, w), 6),
            );
            let mut plain = net.clone();
            for net in [&mut net, &mut plain] {
                with_square_loss(net, &first, |net, trace, grad| {
                    net.backprop(trace, grad, Mode::Params).unwrap();
                });
            }
            with_square_loss(&mut net, &second, |net, trace, grad| {
                assert!(net.descend(trace, grad, 0.5).unwrap());
            });
            with_square_loss(&mut plain, &second, |net, trace, grad| {
                net.backprop(trace, grad, Mode::Params).unwrap();
            });
            assert!(GradientDescent.step(plain.params_mut(), 0.5).unwrap());
            assert_eq!(bits(&mut net), bits(&mut plain));
        }
    }

    #[test]
    fn a_descent_to_a_non_finite_value_changes_nothing() {
        // and a stack whose every layer is fused
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let dense = Sequential::new([3, 1, 1])
            .add(Connect::new(3, 4, &mut rng).unwrap())
            .unwrap()
            .add(Connect::new(4, 2, &mut rng).unwrap())
            .unwrap();
        for mut net in fused_and_not().into_iter().chain([dense]) {
            let [c, h, w] = net.input_shape();
            let input = check::uniform((1, c, h, w), 8);
            let before = bits(&mut net);
            with_square_loss(&mut net, &input, |net, trace, _| {
                let huge = trace.output().mapv(|v| if v > 0.0 { 1e30 } else { -1e30 });
                assert!(!net.descend(trace, huge.view(), 1e30).unwrap());
            });
            assert_eq!(bits(&mut net), before);
        }
    }

    /// The identity with one parameter, whose gradient a backward pass makes infinite.
    #[derive(Debug, Clone)]
    struct Poison(crate::Param<ndarray::Ix1>);

    impl Layer for Poison {
        fn name(&self) -> &'static str {
            "Poison"
        }
        fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
            Ok(input)
        }
        fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
            Ok(input.to_owned())
        }
        fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
            self.0.grad_mut().fill(f32::INFINITY);
            Ok(Some(step.grad_output.to_owned()))
        }
        fn params(&self) -> Vec<ParamRef<'_>> {
            vec![self.0.as_ref("weight")]
        }
        fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
            vec![self.0.as_mut("weight")]
        }
    }

    #[test]
    fn fused_steps_end_only_when_every_layer_is_finite_and_the_pass_whole() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(10);
        let input = check::uniform((1, 3, 1, 1), 11);
        let grad = check::uniform((1, 2, 1, 1), 12);
        // a layer before the fused one steps to infinity, or its pass fails
        let poisoned = Sequential::new([3, 1, 1])
            .add(Poison(crate::Param::new(ndarray::Array1::ones(2))))
            .unwrap()
            .add(Connect::new(3, 2, &mut rng).unwrap())
            .unwrap();
        let broken = Sequential::new([3, 1, 1])
            .add(Connect::new(3, 3, &mut rng).unwrap())
            .unwrap()
            .add(Flat)
            .unwrap()
            .add(Connect::new(3, 2, &mut rng).unwrap())
            .unwrap();
        for (mut net, fails) in [(poisoned, false), (broken, true)] {
            let before = bits(&mut net);
            let trace = net.trace(input.view(), Pass::Predict).unwrap();
            let stepped = net.descend(&trace, grad.view(), 0.5);
            assert_eq!(stepped.is_err(), fails);
            assert!(!stepped.unwrap_or(false));
            drop(trace);
            assert_eq!(bits(&mut net), before);
            // and the next step goes as on a fresh copy
            let mut fresh = net.clone();
            let trace = net.trace(input.view(), Pass::Predict).unwrap();
            let mut last = net.layers.pop().unwrap();
            let mut fresh_last = fresh.layers.pop().unwrap();
            let step = Backward {
                input: trace.outputs[trace.outputs.len() - 2].view(),
                output: trace.output(),
                grad_output: grad.view(),
                mode: Mode::Params,
                pass: Pass::Predict,
            };
            assert!(last.backward_descend(step, 0.5).unwrap().unwrap().finite);
            last.end_descend(true);
            fresh_last.backward(step).unwrap();
            GradientDescent.step(fresh_last.params_mut(), 0.5).unwrap();
            let values = |l: &dyn Layer| {
                l.params()
                    .iter()
                    .flat_map(|p| p.value.to_vec())
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(last.as_ref()), values(fresh_last.as_ref()));
        }
    }

    #[test]
    fn descend_takes_a_trace_of_one_sample() {
        let mut net = small(4);
        let input = check::uniform((2, 2, 5, 5), 9);
        let before = bits(&mut net);
        let err = with_square_loss(&mut net, &input, |net, trace, grad| {
            net.descend(trace, grad, 0.1).unwrap_err()
        });
        assert!(matches!(
            err,
            Error::InvalidArgument {
                what: "Sequential::descend",
                ..
            }
        ));
        assert_eq!(bits(&mut net), before);
    }

    #[test]
    fn a_stack_inside_a_stack_passes_the_checks() {
        let mut outer = Sequential::new([2, 5, 5]).add(small(1)).unwrap();
        let report = check::gradients(&mut outer, [2, 2, 5, 5], 3).unwrap();
        assert!(report.passed(), "{report}");
        // the curvature rule is exact for one layer; through several it drops the cross
        // terms between paths, as LeCun's diagonal estimate does
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let one = Sequential::new([6, 1, 1]).add(Connect::new(6, 3, &mut rng).unwrap());
        let mut outer = Sequential::new([6, 1, 1]).add(one.unwrap()).unwrap();
        let report = check::curvature(&mut outer, [2, 6, 1, 1], 4).unwrap();
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn a_trace_of_another_stack_is_refused() {
        let input = check::uniform((1, 2, 5, 5), 1);
        let mut shorter = Sequential::new([2, 5, 5]).add(small(2)).unwrap();
        let trace = small(1).trace(input.view(), Pass::Predict).unwrap();
        let grad = Array4::zeros((1, 4, 1, 1));
        assert!(matches!(
            shorter.backprop(&trace, grad.view(), Mode::Full),
            Err(Error::InvalidArgument { .. })
        ));
        // a gradient that is not the output's shape names the layer
        let mut net = small(1);
        let wrong = Array4::zeros((1, 5, 1, 1));
        assert!(matches!(
            net.backprop(&trace, wrong.view(), Mode::Full),
            Err(Error::Shape {
                layer: "Connect",
                ..
            })
        ));
    }

    #[test]
    fn the_curvature_slope_reaches_the_last_layer_only() {
        let rbf = || RbfOutput::from_params(ndarray::Array2::ones((3, 4))).unwrap();
        let input = check::uniform((1, 2, 5, 5), 1);
        let slope = Array4::from_elem((1, 3, 1, 1), -0.5);
        let mode = || Mode::Curvature {
            slope: Some(slope.view()),
        };
        let c = Array4::ones((1, 3, 1, 1));
        let mut last = small(1).add(rbf()).unwrap();
        let trace = last.trace(input.view(), Pass::Predict).unwrap();
        assert!(last.backprop(&trace, c.view(), mode()).unwrap().is_some());
        // an RBF layer followed by another has no slope to use
        let mut inner = small(1).add(rbf()).unwrap().add(Flat).unwrap();
        let trace = inner.trace(input.view(), Pass::Predict).unwrap();
        assert!(matches!(
            inner.backprop(&trace, c.view(), mode()),
            Err(Error::InvalidArgument {
                what: "RbfOutput",
                ..
            })
        ));
    }

    /// The identity, whose backward pass forgets to return the input's gradient.
    #[derive(Debug, Clone)]
    struct Flat;

    impl Layer for Flat {
        fn name(&self) -> &'static str {
            "Flat"
        }
        fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
            Ok(input)
        }
        fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
            Ok(input.to_owned())
        }
        fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
            Ok(matches!(step.mode, Mode::Curvature { .. }).then(|| step.grad_output.to_owned()))
        }
    }

    #[test]
    fn a_layer_that_returns_no_input_gradient_is_named() {
        let mut net = small(1).add(Flat).unwrap();
        let input = check::uniform((1, 2, 5, 5), 1);
        let trace = net.trace(input.view(), Pass::Predict).unwrap();
        let grad = Array4::zeros((1, 4, 1, 1));
        let err = net.backprop(&trace, grad.view(), Mode::Full).unwrap_err();
        assert!(
            err.to_string().contains("layer 2 returned no derivative"),
            "{err}"
        );
        // a one-layer stack in Params mode asks nothing of it
        let mut alone = Sequential::new([4, 1, 1]).add(Flat).unwrap();
        let trace = alone.trace(grad.view(), Pass::Predict).unwrap();
        assert!(
            alone
                .backprop(&trace, grad.view(), Mode::Params)
                .unwrap()
                .is_none()
        );
    }
}
