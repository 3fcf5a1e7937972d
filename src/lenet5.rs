//! [`LeNet5`]: the report's seven-layer network, LeCun et al. 1998's original and a modern
//! variant ([`Preset`]), each with its layers and input encoding. How each is trained is in
//! [`crate::recipes`]; this module knows nothing of training.

use std::fmt;
use std::path::Path;

use image::DynamicImage;
use ndarray::{Array2, Array4, ArrayView2, s};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::data::mnist::{CLASSES, Encoding, PAD, SIDE};
use crate::layers::Init;
use crate::scores::{argmax, softmax};
use crate::{
    Activation, Connect, Conv, Error, MaxPool, RbfOutput, Result, Sequential, Subsampling, digit,
    interop, io,
};

/// The shipped report's model, `assets/lenet5-report.bin`.
const PRETRAINED: &[u8] = include_bytes!("../assets/lenet5-report.bin");

/// The shipped modern model, `assets/lenet5-modern.bin`.
const PRETRAINED_MODERN: &[u8] = include_bytes!("../assets/lenet5-modern.bin");

/// What [`LeNet5::classify`] sees in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most probable digit.
    pub digit: usize,
    /// The softmax of the ten RBF scores, as in training.
    pub probabilities: [f32; CLASSES],
}

impl Prediction {
    /// The prediction of one image's ten `scores` (the network's output).
    ///
    /// # Errors
    /// [`Error::Shape`] when there are not ten scores.
    pub fn from_scores(scores: &[f32]) -> Result<Self> {
        if scores.len() != CLASSES {
            return Err(Error::shape("Prediction", &[CLASSES], &[scores.len()]));
        }
        let mut probabilities = [0.0; CLASSES];
        softmax(scores, &mut probabilities)?;
        Ok(Prediction {
            digit: argmax(probabilities),
            probabilities,
        })
    }
}

/// The seed [`LeNet5::new`] draws its initial weights from.
pub const DEFAULT_SEED: u64 = 1;

/// LeCun et al. 1998, Table I: which of S2's six maps each of C3's sixteen maps sees. Maps 0-5
/// see three contiguous maps, 6-11 four contiguous, 12-14 four non-contiguous, 15 all six.
pub const C3_CONNECTIONS: [[bool; 6]; 16] = {
    let mut table = [[false; 6]; 16];
    let mut p = 0;
    while p < 16 {
        let seen: &[usize] = match p {
            0..=5 => &[0, 1, 2],
            6..=11 => &[0, 1, 2, 3],
            12..=14 => &[0, 1, 3, 4],
            _ => &[0, 1, 2, 3, 4, 5],
        };
        // maps 0-14 take their pattern starting at input map p mod 6
        let mut k = 0;
        while k < seen.len() {
            table[p][(seen[k] + p % 6) % 6] = true;
            k += 1;
        }
        p += 1;
    }
    table
};

/// Which LeNet-5: its layers and input encoding here, its loss and training schedule in
/// [`crate::recipes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// The report's network and schedule (the table on [`LeNet5`]): sigmoid units, binarised
    /// input, fixed 0/1 RBF codes, softmax cross-entropy, per-sample SGD.
    Report,
    /// LeCun et al. 1998's LeNet-5, as the paper describes it:
    ///
    /// | # | layer | output | paper |
    /// |---|---|---|---|
    /// | 0 | `Conv` 6 kernels 5x5, scaled tanh | 6x28x28 | II-B, C1 |
    /// | 1 | `Subsampling` 2x2, coefficient and bias per map, scaled tanh | 6x14x14 | II-B, S2 |
    /// | 2 | `Conv` 16 kernels 5x5, Table I connections ([`C3_CONNECTIONS`]), 1 516 parameters | 16x10x10 | II-B, C3 |
    /// | 3 | `Subsampling` 2x2, scaled tanh | 16x5x5 | II-B, S4 |
    /// | 4 | `Conv` 120 kernels 5x5, scaled tanh | 120x1x1 | II-B, C5 |
    /// | 5 | `Connect` 120 -> 84, scaled tanh `1.7159 tanh(2a/3)` | 84x1x1 | II-B, F6; Appendix A |
    /// | 6 | `RbfOutput`, fixed ±1 codes of 7x12 bitmaps | 10x1x1 | II-B, F7 |
    ///
    /// Input: background -0.1, ink 1.175 (II-B). Weights and biases uniform in ±2.4 / fan-in
    /// (Appendix A). Loss: the MAP criterion (II-C) with `j` = [`LECUN_J`](crate::LECUN_J). Training:
    /// stochastic diagonal Levenberg-Marquardt (Appendix C) with mu 0.5 (the paper: 0.02; see
    /// [`Sdlm::lecun1998`](crate::train::Sdlm::lecun1998)) and the curvature
    /// re-estimated on 500 samples before each pass; 20 passes with the learning rate 0.0005
    /// for 2 passes, 0.0002 for 3, 0.0001 for 3, 0.00005 for 4, then 0.00001 (III-B).
    /// 60 000 trainable parameters.
    LeCun1998,
    /// A modern LeNet-5: the same sizes with ReLU, 2x2 max pooling, a linear 10-way output
    /// trained by softmax cross-entropy, He initialisation, inputs standardised with MNIST's
    /// mean and deviation, and Adam on batches of 32 with an exponentially decaying rate.
    Modern,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::Report, Preset::LeCun1998, Preset::Modern];

    /// The architecture name written into model files.
    pub fn architecture(self) -> &'static str {
        match self {
            Preset::Report => LeNet5::ARCHITECTURE,
            Preset::LeCun1998 => "lenet5-lecun1998",
            Preset::Modern => "lenet5-modern",
        }
    }

    /// How this network's inputs encode pixels.
    pub fn encoding(self) -> Encoding {
        match self {
            Preset::Report => Encoding::Binary,
            Preset::LeCun1998 => Encoding::Linear {
                background: -0.1,
                ink: 1.175,
            },
            // (x / 255 - 0.1307) / 0.3081, MNIST's training-set mean and deviation
            Preset::Modern => Encoding::Linear {
                background: -0.1307 / 0.3081,
                ink: (1.0 - 0.1307) / 0.3081,
            },
        }
    }

    /// The preset whose model files carry `architecture`.
    pub fn from_architecture(architecture: &str) -> Option<Preset> {
        Self::ALL
            .into_iter()
            .find(|p| p.architecture() == architecture)
    }

    /// The layers, with weights drawn from `rng` layer by layer.
    fn build(self, rng: &mut impl Rng) -> Result<Sequential> {
        let net = Sequential::new(LeNet5::INPUT_SHAPE).with_encoding(self.encoding());
        // layers of zeros, for an initialisation of the preset's own
        let conv = |c_in, c_out| {
            Conv::from_params(
                Array4::zeros((c_out, c_in, 5, 5)),
                ndarray::Array1::zeros(c_out),
            )
        };
        let pool =
            |c| Subsampling::from_params(2, ndarray::Array1::zeros(c), ndarray::Array1::zeros(c));
        let connect = || Connect::from_params(Array2::zeros((84, 120)), ndarray::Array1::zeros(84));
        match self {
            Preset::Report => {
                let init = Init::Report;
                net.add(conv(1, 6)?.with_init(init, rng))?
                    .add(pool(6)?.with_init(init, rng))?
                    .add(conv(6, 16)?.with_init(init, rng))?
                    .add(pool(16)?.with_init(init, rng))?
                    .add(conv(16, 120)?.with_init(init, rng))?
                    .add(connect()?.with_init(init, rng))?
                    .add(RbfOutput::digits())
            }
            Preset::LeCun1998 => {
                let (act, init) = (Activation::ScaledTanh, Init::LeCun);
                let table = Array2::from_shape_fn((16, 6), |(p, i)| C3_CONNECTIONS[p][i]);
                net.add(conv(1, 6)?.with_activation(act).with_init(init, rng))?
                    .add(pool(6)?.with_activation(act).with_init(init, rng))?
                    .add(
                        conv(6, 16)?
                            .with_connections(table)?
                            .with_activation(act)
                            .with_init(init, rng),
                    )?
                    .add(pool(16)?.with_activation(act).with_init(init, rng))?
                    .add(conv(16, 120)?.with_activation(act).with_init(init, rng))?
                    .add(connect()?.with_activation(act).with_init(init, rng))?
                    .add(RbfOutput::digits().bipolar())
            }
            Preset::Modern => {
                let (act, init) = (Activation::Relu, Init::He);
                net.add(
                    Conv::new(1, 6, 5, rng)?
                        .with_activation(act)
                        .with_init(init, rng),
                )?
                .add(MaxPool::new(2)?)?
                .add(
                    Conv::new(6, 16, 5, rng)?
                        .with_activation(act)
                        .with_init(init, rng),
                )?
                .add(MaxPool::new(2)?)?
                .add(
                    Conv::new(16, 120, 5, rng)?
                        .with_activation(act)
                        .with_init(init, rng),
                )?
                .add(
                    Connect::new(120, 84, rng)?
                        .with_activation(act)
                        .with_init(init, rng),
                )?
                .add(
                    Connect::new(84, 10, rng)?
                        .with_activation(Activation::Identity)
                        .with_init(init, rng),
                )
            }
        }
    }
}

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
/// use lenet5::LeNet5;
/// use ndarray::Array4;
/// let net = LeNet5::new();
/// let scores = net.predict(Array4::zeros((2, 1, 32, 32)).view())?;
/// assert_eq!(scores.dim(), (2, 10, 1, 1));
/// assert!(net.predict(Array4::zeros((1, 1, 28, 28)).view()).is_err()); // unpadded MNIST
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LeNet5 {
    net: Sequential,
    preset: Preset,
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
        Self::from_preset_rng(Preset::Report, rng)
    }

    /// LeCun et al. 1998's LeNet-5 ([`Preset::LeCun1998`]) with weights drawn from [`DEFAULT_SEED`].
    ///
    /// ```
    /// use lenet5::{Layer, LeNet5};
    /// let net = LeNet5::lecun1998();
    /// assert_eq!(net.param_count(), 60_000); // as the paper counts
    /// let mut trainer = net.preset().trainer(1);
    /// assert_eq!(trainer.epochs(), 20);
    /// ```
    pub fn lecun1998() -> Self {
        Self::from_preset(Preset::LeCun1998, DEFAULT_SEED)
    }

    /// The modern LeNet-5 ([`Preset::Modern`]) with weights drawn from [`DEFAULT_SEED`].
    pub fn modern() -> Self {
        Self::from_preset(Preset::Modern, DEFAULT_SEED)
    }

    /// The network of `preset` with weights drawn from `seed` (Xoshiro256++).
    pub fn from_preset(preset: Preset, seed: u64) -> Self {
        Self::from_preset_rng(preset, &mut Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    fn from_preset_rng(preset: Preset, rng: &mut impl Rng) -> Self {
        let net = preset
            .build(rng)
            .expect("the presets' layer sizes fit together");
        LeNet5 { net, preset }
    }

    /// Which network this is.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The network trained by `cargo run --release --example mnist` with its default seed
    /// (96.6 % test accuracy), shipped in `assets/lenet5-report.bin` and embedded in the library.
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
        Self::shipped(Preset::Report, PRETRAINED, "assets/lenet5-report.bin")
    }

    /// The best network this crate trains: the modern preset on distorted images, trained by
    /// `cargo run --release --example modern -- --distort` with its default seed (99.34 % test
    /// accuracy), shipped in `assets/lenet5-modern.bin` and embedded in the library.
    ///
    /// ```
    /// # fn main() -> lenet5::Result<()> {
    /// use lenet5::{LeNet5, Preset};
    /// let net = LeNet5::pretrained_modern();
    /// assert_eq!(net.preset(), Preset::Modern);
    /// let blank = ndarray::Array2::<u8>::zeros((28, 28));
    /// assert!(net.classify(blank.view())?.digit < 10);
    /// # Ok(()) }
    /// ```
    pub fn pretrained_modern() -> Self {
        Self::shipped(
            Preset::Modern,
            PRETRAINED_MODERN,
            "assets/lenet5-modern.bin",
        )
    }

    /// The network of `preset` with the weights of the shipped model `bytes`.
    fn shipped(preset: Preset, bytes: &[u8], source_name: &str) -> Self {
        let mut net = Self::from_preset(preset, DEFAULT_SEED);
        io::load_bytes(&mut net.net, preset.architecture(), bytes, source_name)
            .expect("the shipped model matches the network");
        net
    }

    /// The digit in `image` `[28, 28]` (MNIST's format: white ink, 255, on black, 0), after the
    /// preset's encoding and padding.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when `image` is not 28x28.
    pub fn classify(&self, image: ArrayView2<u8>) -> Result<Prediction> {
        let scores = self.predict(self.input_of(image)?.view())?;
        Prediction::from_scores(
            scores
                .as_slice()
                .expect("a forward output is in standard layout"),
        )
    }

    /// The network's input `[1, 1, 32, 32]` for `image` `[28, 28]` (MNIST's format): encoded
    /// and padded as in training, so that [`Sequential::activations`] shows what each layer
    /// makes of it.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when `image` is not 28x28.
    pub fn input_of(&self, image: ArrayView2<u8>) -> Result<Array4<f32>> {
        if image.dim() != (SIDE, SIDE) {
            return Err(crate::Error::shape(
                "LeNet5::input_of",
                &[SIDE, SIDE],
                image.shape(),
            ));
        }
        let mut input = Array4::zeros((1, 1, SIDE + 2 * PAD, SIDE + 2 * PAD));
        self.net
            .encoding()
            .preprocess_into(image, input.slice_mut(s![0, 0, .., ..]))?;
        Ok(input)
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
        io::save(&self.net, self.preset.architecture(), path)
    }

    /// A network with the parameters saved at `path` by [`LeNet5::save`], of whichever preset
    /// the file names.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be read, [`Error::Model`](crate::Error::Model)
    /// when it is not a valid model file of a preset.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = io::read(path)?;
        let name = path.display().to_string();
        let architecture = io::architecture_of(&bytes, &name)?;
        let preset = Preset::from_architecture(&architecture).ok_or_else(|| Error::Model {
            source_name: name.clone(),
            reason: format!("unknown architecture {architecture:?}"),
        })?;
        let mut net = Self::from_preset(preset, DEFAULT_SEED);
        io::load_bytes(&mut net.net, architecture.as_str(), &bytes, &name)?;
        Ok(net)
    }

    /// The parameters as safetensors bytes, with PyTorch's names and layouts (see
    /// [`crate::interop`]).
    pub fn to_safetensors(&self) -> Vec<u8> {
        interop::preset_to_bytes(self)
    }

    /// Writes [`LeNet5::to_safetensors`] to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; a previous file is left intact.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        io::write_atomic(path.as_ref(), &self.to_safetensors())
    }

    /// A network with the parameters of a safetensors file laid out as [`LeNet5::to_safetensors`]
    /// writes it (for example by PyTorch's `safetensors.torch.save_file`). `source_name` names
    /// the bytes in errors.
    ///
    /// The preset is recognised from the tensors: `fc1`/`fc2` are the modern network's; the
    /// report's and LeCun's share their names and differ in `rbf.weight` (0/1 or ±1 codes) or,
    /// without it, in C3's kernels (LeCun's missing connections are zero). The `architecture`
    /// metadata, when present, must name the same preset.
    ///
    /// # Errors
    /// [`Error::Model`] when the bytes are not safetensors, a tensor is missing, not `F32`, of
    /// another shape or holds a NaN or infinite value, the tensors fit no preset, or the
    /// metadata names another preset than the tensors.
    pub fn from_safetensors(bytes: &[u8], source_name: &str) -> Result<Self> {
        interop::preset_from_bytes(bytes, source_name)
    }

    /// [`LeNet5::from_safetensors`] on the bytes of `path`, read up to
    /// [`io::MAX_MODEL_FILE`].
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::TooLarge`] when it is larger, and
    /// the errors of [`LeNet5::from_safetensors`].
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = io::read_limited(path, io::MAX_MODEL_FILE, "a safetensors file")?;
        Self::from_safetensors(&bytes, &path.display().to_string())
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

/// A `LeNet5` is the [`Sequential`] it holds, with the preset that built it: every method of
/// the stack (and of [`Layer`](crate::Layer), in scope) applies to it.
impl std::ops::Deref for LeNet5 {
    type Target = Sequential;

    fn deref(&self) -> &Sequential {
        &self.net
    }
}

impl std::ops::DerefMut for LeNet5 {
    fn deref_mut(&mut self) -> &mut Sequential {
        &mut self.net
    }
}

/// A `LeNet5` is trained and evaluated as the [`Sequential`] it holds.
impl AsRef<Sequential> for LeNet5 {
    fn as_ref(&self) -> &Sequential {
        &self.net
    }
}

impl AsMut<Sequential> for LeNet5 {
    fn as_mut(&mut self) -> &mut Sequential {
        &mut self.net
    }
}

/// The summary of [`Display`](fmt::Display), not the weights.
impl fmt::Debug for LeNet5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for LeNet5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "LeNet5 ({})", self.preset.architecture())?;
        self.net.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;

    #[test]
    fn maps_32x32_to_10_scores_and_refuses_28x28() {
        let net = LeNet5::new();
        assert_eq!(net.network().output_shape(), [10, 1, 1]);
        assert_eq!(
            net.predict(Array4::zeros((3, 1, 32, 32)).view())
                .unwrap()
                .dim(),
            (3, 10, 1, 1)
        );
        assert!(matches!(
            net.predict(Array4::zeros((1, 1, 28, 28)).view()),
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
    fn c3_connections_are_table_one() {
        let seen = |p: usize| -> Vec<usize> { (0..6).filter(|&i| C3_CONNECTIONS[p][i]).collect() };
        assert_eq!(seen(0), [0, 1, 2]);
        assert_eq!(seen(4), [0, 4, 5]);
        assert_eq!(seen(6), [0, 1, 2, 3]);
        assert_eq!(seen(11), [0, 1, 2, 5]);
        assert_eq!(seen(12), [0, 1, 3, 4]);
        assert_eq!(seen(13), [1, 2, 4, 5]);
        assert_eq!(seen(14), [0, 2, 3, 5]);
        assert_eq!(seen(15), [0, 1, 2, 3, 4, 5]);
        let connections: usize = (0..16).map(|p| seen(p).len()).sum();
        assert_eq!(connections, 60);
    }

    #[test]
    fn lecun1998_has_the_papers_sizes() {
        let net = LeNet5::lecun1998();
        // C1 156, S2 12, C3 60·25 + 16 = 1 516, S4 32, C5 48 120, F6 10 164 (Section II-B)
        let per_layer: Vec<usize> = net
            .network()
            .layers()
            .iter()
            .map(|l| l.param_count())
            .collect();
        assert_eq!(per_layer, [156, 12, 1516, 32, 48_120, 10_164, 0]);
        assert_eq!(net.param_count(), 60_000);
        // weights within ±2.4 / fan-in: C1's fan-in is 25
        let c1 = net.params()[0].value;
        assert!(c1.iter().all(|w| w.abs() < 2.4 / 25.0));
        assert_eq!(net.network().output_shape(), [10, 1, 1]);
    }

    #[test]
    fn modern_is_relu_max_pool_and_a_linear_output() {
        let net = LeNet5::modern();
        let names: Vec<&str> = net.network().layers().iter().map(|l| l.name()).collect();
        assert_eq!(
            names,
            [
                "Conv", "MaxPool", "Conv", "MaxPool", "Conv", "Connect", "Connect"
            ]
        );
        // C1 156, C3 2 416, C5 48 120, F6 10 164, output 850
        assert_eq!(net.param_count(), 61_706);
        let scores = net.predict(Array4::zeros((2, 1, 32, 32)).view()).unwrap();
        assert_eq!(scores.dim(), (2, 10, 1, 1));
    }

    #[test]
    fn every_preset_saves_and_loads_as_itself() {
        let dir = std::env::temp_dir().join(format!("lenet5-presets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = ndarray::Array2::from_shape_fn((28, 28), |(r, c)| ((r * 28 + c) % 256) as u8);
        for preset in Preset::ALL {
            let net = LeNet5::from_preset(preset, 4);
            let path = dir.join(format!("{}.bin", preset.architecture()));
            net.save(&path).unwrap();
            let loaded = LeNet5::load(&path).unwrap();
            assert_eq!(loaded.preset(), preset);
            assert_eq!(
                loaded.classify(image.view()).unwrap(),
                net.classify(image.view()).unwrap()
            );
            assert_eq!(
                Preset::from_architecture(preset.architecture()),
                Some(preset)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        // the training loss: softmax cross-entropy of the RBF scores for class 3
        let mut net = LeNet5::with_seed(2);
        let input = crate::testing::uniform((1, 1, 32, 32), 3);
        let report = crate::check::gradients_with(net.network_mut(), input, |scores| {
            let mut grad = Array4::zeros(scores.raw_dim());
            let loss = crate::train::softmax_cross_entropy(
                scores.as_slice().unwrap(),
                3,
                grad.as_slice_mut().unwrap(),
            )
            .unwrap();
            (f64::from(loss), grad)
        })
        .unwrap();
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn a_params_pass_accumulates_what_a_full_pass_does() {
        use crate::{Mode, Pass};
        let input = crate::testing::uniform((2, 1, 32, 32), 4);
        let grads = |full: bool| {
            let mut net = LeNet5::with_seed(5);
            let trace = net.trace(input.view(), Pass::Train { seed: 1 }).unwrap();
            let scores = trace.output().to_owned();
            let mode = if full { Mode::Full } else { Mode::Params };
            let grad_input = net.backprop(&trace, scores.view(), mode).unwrap();
            assert_eq!(grad_input.is_some(), full);
            net.params_mut()
                .into_iter()
                .flat_map(|p| p.grad.to_vec())
                .collect::<Vec<f32>>()
        };
        assert_eq!(grads(true), grads(false));
        assert!(grads(false).iter().any(|&g| g != 0.0));
    }

    #[test]
    fn a_prediction_needs_ten_scores() {
        for n in [0, 9, 11, 300] {
            let err = Prediction::from_scores(&vec![0.5; n]).unwrap_err();
            let Error::Shape { layer, got, .. } = err else {
                panic!("{err}")
            };
            assert_eq!((layer, got), ("Prediction", vec![n]));
        }
        let mut scores = [0.0; 10];
        scores[7] = 3.0;
        let prediction = Prediction::from_scores(&scores).unwrap();
        assert_eq!(prediction.digit, 7);
        assert!((prediction.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // no winner: the first class, as `argmax` documents
        assert_eq!(Prediction::from_scores(&[f32::NAN; 10]).unwrap().digit, 0);
        assert_eq!(argmax([]), 0);
        assert_eq!(argmax([f32::NAN, 2.0, f32::NAN, 2.0]), 1);
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
