//! [`Sequential`]: layers applied one after another, checked for shape when they are added.

use std::fmt;
use std::path::Path;

use ndarray::{Array4, ArrayView4};

use crate::layer::{Layer, LayerConfig, ParamMut, ParamRef, chw};
use crate::{Error, Result, io};

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
///     .add(Connect::new(4 * 6 * 6, 10, &mut rng)?)?;
/// assert_eq!(net.output_shape(), [10, 1, 1]);
/// assert!(Sequential::new([1, 8, 8]).add(Conv::new(3, 4, 3, &mut rng)?).is_err()); // 3 channels expected
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sequential {
    input_shape: [usize; 3],
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
            shapes: Vec::new(),
            layers: Vec::new(),
        }
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

    /// The output of every layer for `input` `[B, C, H, W]`, first to last, without keeping
    /// anything (for looking at feature maps).
    ///
    /// # Errors
    /// [`Error::Shape`] when `input` does not have the stack's input shape.
    pub fn activations(&self, input: ArrayView4<f32>) -> Result<Vec<Array4<f32>>> {
        self.check_input(&input)?;
        let mut outputs: Vec<Array4<f32>> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let x = outputs.last().map_or(input, |x| x.view());
            let y = layer.predict(x)?;
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

impl Layer for Sequential {
    fn name(&self) -> &'static str {
        "Sequential"
    }

    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        self.output_shape_for(input)
    }

    fn forward(&mut self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.check_input(&input)?;
        let mut x = input.to_owned();
        for layer in &mut self.layers {
            x = layer.forward(x.view())?;
        }
        Ok(x)
    }

    fn backprop(&mut self, grad_output: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut g = grad_output.to_owned();
        for layer in self.layers.iter_mut().rev() {
            g = layer.backprop(g.view())?;
        }
        Ok(g)
    }

    fn backprop_params(&mut self, grad_output: ArrayView4<f32>) -> Result<()> {
        let Some((first, rest)) = self.layers.split_first_mut() else {
            return Ok(());
        };
        let mut g = grad_output.to_owned();
        for layer in rest.iter_mut().rev() {
            g = layer.backprop(g.view())?;
        }
        first.backprop_params(g.view())
    }

    fn backprop_curvature(&mut self, curvature_output: ArrayView4<f32>) -> Result<Array4<f32>> {
        let mut c = curvature_output.to_owned();
        for layer in self.layers.iter_mut().rev() {
            c = layer.backprop_curvature(c.view())?;
        }
        Ok(c)
    }

    fn predict(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.check_input(&input)?;
        let mut x = input.to_owned();
        for layer in &self.layers {
            x = layer.predict(x.view())?;
        }
        Ok(x)
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
