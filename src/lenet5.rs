//! [`LeNet5`]: the report's seven-layer network, ready to train.

use std::fmt;
use std::path::Path;

use image::DynamicImage;
use ndarray::{Array4, ArrayView2, ArrayView4, s};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::data::mnist::{CLASSES, PAD, SIDE, preprocess_into};
use crate::layer::{Layer, ParamMut, ParamRef};
use crate::train::eval::argmax;
use crate::train::softmax;
use crate::{Connect, Conv, RbfOutput, Result, Sequential, Subsampling, digit, io};

/// The shipped model, `assets/lenet5-report.bin`.
const PRETRAINED: &[u8] = include_bytes!("../assets/lenet5-report.bin");

/// What [`LeNet5::classify`] sees in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most probable digit.
    pub digit: usize,
    /// The softmax of the ten RBF scores, as in training.
    pub probabilities: [f32; CLASSES],
}

/// The seed [`LeNet5::new`] draws its initial weights from.
pub const DEFAULT_SEED: u64 = 1;

/// The report's LeNet-5: `[B, 1, 32, 32]` images in, `[B, 10, 1, 1]` RBF scores out (larger is better).
///
/// | # | layer | output |
/// |---|---|---|
/// | 0 | `Conv` 6 kernels 5x5, sigmoid | 6x28x28 |
/// | 1 | `Subsampling` 2x2, sigmoid | 6x14x14 |
/// | 2 | `Conv` 16 kernels 5x5 over all 6 maps, sigmoid | 16x10x10 |
/// | 3 | `Subsampling` 2x2, sigmoid | 16x5x5 |
/// | 4 | `Conv` 120 kernels 5x5, sigmoid | 120x1x1 |
/// | 5 | `Connect` 120 -> 84, sigmoid | 84x1x1 |
/// | 6 | `RbfOutput`, fixed digit prototypes | 10x1x1 |
///
/// Every trainable value starts uniform in [-1, 1); 60 900 of them in all.
///
/// ```
/// # fn main() -> lenet5::Result<()> {
/// use lenet5::{LeNet5, Layer};
/// use ndarray::Array4;
/// let net = LeNet5::new();
/// let scores = net.predict(Array4::zeros((2, 1, 32, 32)).view())?;
/// assert_eq!(scores.dim(), (2, 10, 1, 1));
/// assert!(net.predict(Array4::zeros((1, 1, 28, 28)).view()).is_err()); // unpadded MNIST
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeNet5 {
    net: Sequential,
}

impl LeNet5 {
    /// `[C, H, W]` of one input image: MNIST's 28x28 padded by 2 on every side.
    pub const INPUT_SHAPE: [usize; 3] = [1, 32, 32];
    /// The architecture name written into model files.
    pub const ARCHITECTURE: &'static str = "lenet5-report";

    /// The network with weights drawn from [`DEFAULT_SEED`], so two calls give the same network.
    pub fn new() -> Self {
        Self::with_seed(DEFAULT_SEED)
    }

    /// The network with weights drawn from `seed` (Xoshiro256++).
    pub fn with_seed(seed: u64) -> Self {
        Self::from_rng(&mut Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// The network with weights drawn from `rng`, layer by layer, weights before biases.
    pub fn from_rng(rng: &mut impl Rng) -> Self {
        Self::build(rng).expect("the report's layer sizes fit together")
    }

    fn build(rng: &mut impl Rng) -> Result<Self> {
        let net = Sequential::new(Self::INPUT_SHAPE)
            .add(Conv::new(1, 6, 5, rng)?)?
            .add(Subsampling::new(6, 2, rng)?)?
            .add(Conv::new(6, 16, 5, rng)?)?
            .add(Subsampling::new(16, 2, rng)?)?
            .add(Conv::new(16, 120, 5, rng)?)?
            .add(Connect::new(120, 84, rng)?)?
            .add(RbfOutput::digits())?;
        Ok(LeNet5 { net })
    }

    /// The network trained by `cargo run --release --example mnist` with its default seed
    /// (96 % test accuracy), shipped in `assets/lenet5-report.bin` and embedded in the library.
    ///
    /// ```
    /// # fn main() -> lenet5::Result<()> {
    /// use lenet5::LeNet5;
    /// let net = LeNet5::pretrained();
    /// let blank = ndarray::Array2::<u8>::zeros((28, 28));
    /// let prediction = net.classify(blank.view())?;
    /// assert!((prediction.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    /// # Ok(()) }
    /// ```
    pub fn pretrained() -> Self {
        let mut net = Self::new();
        io::load_bytes(
            &mut net.net,
            Self::ARCHITECTURE,
            PRETRAINED,
            "assets/lenet5-report.bin",
        )
        .expect("the shipped model matches the network");
        net
    }

    /// The digit in `image` `[28, 28]` (MNIST's format: white ink, 255, on black, 0), after the
    /// report's preprocessing.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when `image` is not 28x28.
    pub fn classify(&self, image: ArrayView2<u8>) -> Result<Prediction> {
        if image.dim() != (SIDE, SIDE) {
            return Err(crate::Error::shape(
                "LeNet5::classify",
                &[SIDE, SIDE],
                image.shape(),
            ));
        }
        let mut input = Array4::zeros((1, 1, SIDE + 2 * PAD, SIDE + 2 * PAD));
        preprocess_into(image, input.slice_mut(s![0, 0, .., ..]));
        let scores = self.predict(input.view())?;
        let mut probabilities = [0.0; CLASSES];
        softmax(
            scores.as_slice().expect("standard layout"),
            &mut probabilities,
        );
        Ok(Prediction {
            digit: argmax(probabilities),
            probabilities,
        })
    }

    /// The digit in any picture of one digit: made MNIST-like by [`digit::to_mnist`], then
    /// [`LeNet5::classify`]. `source_name` names the picture in errors.
    ///
    /// # Errors
    /// [`Error::Image`](crate::Error::Image) when the picture is empty or blank.
    pub fn classify_image(&self, image: &DynamicImage, source_name: &str) -> Result<Prediction> {
        self.classify(digit::to_mnist(image, source_name)?.view())
    }

    /// Saves the parameters to `path` (see [`crate::io`] for the format), atomically.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be written; a previous file is left intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        io::save(&self.net, Self::ARCHITECTURE, path)
    }

    /// A network with the parameters saved at `path` by [`LeNet5::save`].
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be read, [`Error::Model`](crate::Error::Model)
    /// when it is not a valid model file of this network.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let mut net = Self::new();
        io::load(&mut net.net, Self::ARCHITECTURE, path)?;
        Ok(net)
    }

    /// The layers as a [`Sequential`].
    pub fn network(&self) -> &Sequential {
        &self.net
    }

    /// The layers as a mutable [`Sequential`].
    pub fn network_mut(&mut self) -> &mut Sequential {
        &mut self.net
    }
}

impl Default for LeNet5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for LeNet5 {
    fn name(&self) -> &'static str {
        "LeNet5"
    }

    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        self.net.output_shape_for(input)
    }

    fn forward(&mut self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.net.forward(input)
    }

    fn backprop(&mut self, grad_output: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.net.backprop(grad_output)
    }

    fn backprop_params(&mut self, grad_output: ArrayView4<f32>) -> Result<()> {
        self.net.backprop_params(grad_output)
    }

    fn predict(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.net.predict(input)
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        self.net.params()
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.net.params_mut()
    }
}

impl fmt::Display for LeNet5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "LeNet5")?;
        self.net.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_32x32_to_10_scores_and_refuses_28x28() {
        let mut net = LeNet5::new();
        assert_eq!(net.network().output_shape(), [10, 1, 1]);
        assert_eq!(
            net.forward(Array4::zeros((3, 1, 32, 32)).view())
                .unwrap()
                .dim(),
            (3, 10, 1, 1)
        );
        assert!(matches!(
            net.forward(Array4::zeros((1, 1, 28, 28)).view()),
            Err(crate::Error::Shape { .. })
        ));
    }

    #[test]
    fn parameter_count_is_the_reports() {
        // C1 6·25 + 6, S2 6 + 6, C3 16·150 + 16, S4 16 + 16, C5 120·400 + 120, F6 120·84 + 84
        let expected = (150 + 6) + 12 + (2400 + 16) + 32 + (48_000 + 120) + (10_080 + 84);
        assert_eq!(expected, 60_900);
        assert_eq!(LeNet5::new().network().param_count(), expected);
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        // the training loss: softmax cross-entropy of the RBF scores for class 3
        let mut net = LeNet5::with_seed(2);
        let input = crate::testing::uniform((1, 1, 32, 32), 3);
        crate::testing::check_gradients_with(&mut net, input, |scores| {
            let mut grad = Array4::zeros(scores.raw_dim());
            let loss = crate::train::softmax_cross_entropy(
                scores.as_slice().unwrap(),
                3,
                grad.as_slice_mut().unwrap(),
            );
            (f64::from(loss), grad)
        });
    }

    #[test]
    fn backprop_params_accumulates_what_backprop_does() {
        let input = crate::testing::uniform((2, 1, 32, 32), 4);
        let grads = |full: bool| {
            let mut net = LeNet5::with_seed(5);
            let scores = net.forward(input.view()).unwrap();
            if full {
                net.backprop(scores.view()).unwrap();
            } else {
                net.backprop_params(scores.view()).unwrap();
            }
            net.params_mut()
                .into_iter()
                .flat_map(|p| p.grad.to_vec())
                .collect::<Vec<f32>>()
        };
        assert_eq!(grads(true), grads(false));
        assert!(grads(false).iter().any(|&g| g != 0.0));
    }

    #[test]
    fn classify_takes_28x28_only() {
        let net = LeNet5::new();
        assert!(
            net.classify(ndarray::Array2::zeros((28, 28)).view())
                .is_ok()
        );
        let err = net
            .classify(ndarray::Array2::zeros((32, 32)).view())
            .unwrap_err();
        assert!(matches!(err, crate::Error::Shape { .. }), "{err}");
    }

    #[test]
    fn summary_lists_layers_shapes_and_the_total() {
        let summary = LeNet5::new().to_string();
        println!("{summary}");
        assert!(
            summary.contains("Conv") && summary.contains("6x28x28") && summary.contains("10x1x1")
        );
        assert!(summary.ends_with("total trainable parameters: 60900"));
        assert_eq!(summary.lines().count(), 11);
    }

    #[test]
    fn same_seed_same_weights() {
        let (a, b, c) = (
            LeNet5::with_seed(9),
            LeNet5::with_seed(9),
            LeNet5::with_seed(10),
        );
        let values = |n: &LeNet5| {
            n.params()
                .iter()
                .flat_map(|p| p.value.to_vec())
                .collect::<Vec<f32>>()
        };
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
        assert!(values(&a).iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
