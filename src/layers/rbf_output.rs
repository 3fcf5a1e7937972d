//! The RBF output layer (F7): the negated squared distance from the input to each class's
//! fixed prototype, so that larger is better.
//!
//! `out[b, i] = -Σ_j (input[b, j] - weight[i, j])²`
//!
//! `weight` `[classes, inputs]` never trains. For LeNet-5 it is drawn from a bitmap of ten
//! 7-wide x 12-high digit glyphs side by side (70 x 12 pixels, black = 1, white = 0), each
//! glyph flattened row by row into 84 values; the crate ships its own drawing,
//! `assets/rbf_digits.pbm`, embedded in the library.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Layer, Pass, RbfOutput};
//! use ndarray::array;
//! let rbf = RbfOutput::from_params(array![[0.0, 1.0], [1.0, 1.0]])?;
//! let out = rbf.forward(array![[[[0.0]], [[1.0]]]].view(), Pass::Predict)?;
//! assert_eq!(out.into_raw_vec_and_offset().0, vec![0.0, -1.0]); // class 0 is the exact match
//! # Ok(()) }
//! ```

use std::path::Path;

use image::{DynamicImage, GrayImage};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, Axis, CowArray, Ix2};

use crate::kernels::multiversion;
use crate::layer::{Backward, Layer, LayerConfig, Mode, Pass, chw, standard};
use crate::{Error, Result};

/// The shipped digit bitmap, `assets/rbf_digits.pbm`.
const DIGITS_PBM: &[u8] = include_bytes!("../../assets/rbf_digits.pbm");
/// Width of one glyph in the bitmap.
pub const GLYPH_WIDTH: usize = 7;
/// Height of one glyph in the bitmap.
pub const GLYPH_HEIGHT: usize = 12;
/// Glyphs in the bitmap, one per class.
pub const CLASSES: usize = 10;

/// Fixed-prototype output layer: `[B, inputs, 1, 1]` in, `[B, classes, 1, 1]` out.
#[derive(Debug, Clone)]
pub struct RbfOutput {
    /// `[classes, inputs]`: one prototype per class, fixed.
    weight: Array2<f32>,
    /// `weight` transposed, `[inputs, classes]` in standard layout: what the forward pass
    /// reads, all the classes' entries for one input side by side.
    weight_t: Array2<f32>,
}

impl RbfOutput {
    /// The layer LeNet-5 uses: prototypes from the shipped digit bitmap (10 x 84).
    pub fn digits() -> Self {
        let image = image::load_from_memory_with_format(DIGITS_PBM, image::ImageFormat::Pnm)
            .expect("the shipped bitmap is a valid PBM");
        Self::from_image(&image, "assets/rbf_digits.pbm").expect("the shipped bitmap is 70 x 12")
    }

    /// Prototypes from an image file of ten 7 x 12 glyphs side by side (70 x 12; dark pixels are 1).
    ///
    /// # Errors
    /// The errors of [`crate::digit::load_image`], and [`Error::Image`] when the picture is not
    /// 70 x 12.
    pub fn from_image_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let image = crate::digit::load_image(path)?;
        Self::from_image(&image, &path.display().to_string())
    }

    /// Prototypes from a decoded bitmap of ten 7 x 12 glyphs side by side; a pixel darker than
    /// mid-grey is 1, any other 0. `source_name` names the image in errors.
    ///
    /// # Errors
    /// [`Error::Image`] when the image is not 70 x 12.
    pub fn from_image(image: &DynamicImage, source_name: &str) -> Result<Self> {
        let gray: GrayImage = image.to_luma8();
        let expected = ((CLASSES * GLYPH_WIDTH) as u32, GLYPH_HEIGHT as u32);
        if gray.dimensions() != expected {
            return Err(Error::Image {
                source_name: source_name.into(),
                reason: format!(
                    "expected a {}x{} bitmap, got {}x{}",
                    expected.0,
                    expected.1,
                    gray.width(),
                    gray.height()
                ),
            });
        }
        let weight = Array2::from_shape_fn((CLASSES, GLYPH_WIDTH * GLYPH_HEIGHT), |(digit, j)| {
            let (x, y) = (digit * GLYPH_WIDTH + j % GLYPH_WIDTH, j / GLYPH_WIDTH);
            if gray.get_pixel(x as u32, y as u32)[0] < 128 {
                1.0
            } else {
                0.0
            }
        });
        Self::from_params(weight)
    }

    /// A layer with known prototypes `weight` `[classes, inputs]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `weight` is empty.
    pub fn from_params(weight: Array2<f32>) -> Result<Self> {
        if weight.is_empty() {
            return Err(Error::Shape {
                layer: "RbfOutput",
                expected: "[classes > 0, inputs > 0]".into(),
                got: weight.shape().to_vec(),
            });
        }
        Ok(Self::with_weight(weight))
    }

    /// The layer of prototypes `weight`, in standard layout and transposed.
    fn with_weight(weight: Array2<f32>) -> Self {
        RbfOutput {
            weight_t: weight.t().as_standard_layout().into_owned(),
            weight: weight.as_standard_layout().into_owned(),
        }
    }

    /// The same layer with each prototype value `w` replaced by `2w - 1`, so that a bitmap's
    /// 0/1 become -1/+1: the codes of LeCun et al. 1998 (Section II-B), which sit where the
    /// scaled tanh of F6 is steepest rather than at its saturation.
    ///
    /// ```
    /// use lenet5::RbfOutput;
    /// let rbf = RbfOutput::digits().bipolar();
    /// assert!(rbf.weight().iter().all(|&w| w == -1.0 || w == 1.0));
    /// ```
    pub fn bipolar(self) -> Self {
        Self::with_weight(self.weight.mapv(|w| 2.0 * w - 1.0))
    }

    /// The prototypes, `[classes, inputs]`.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// `input` `[B, C, H, W]` as `[B, C·H·W]` (a copy only when it is not in standard
    /// layout), after checking its size.
    fn flatten<'a>(&self, input: ArrayView4<'a, f32>) -> Result<CowArray<'a, f32, Ix2>> {
        self.output_shape(chw(input.shape()))?;
        let shape = (input.dim().0, self.weight.ncols());
        Ok(standard(input)
            .into_shape_with_order(shape)
            .expect("size checked"))
    }

    /// `-Σ_j (x[b, j] - weight[i, j])²` as `[B, classes, 1, 1]`, each sum in `j` order
    /// ([`distances`]).
    fn compute(&self, x: ArrayView2<f32>) -> Array4<f32> {
        let classes = self.weight.nrows();
        let prototypes_t = self.weight_t.as_slice().expect("standard layout");
        let mut out = Array4::<f32>::zeros((x.nrows(), classes, 1, 1));
        let x = x.as_standard_layout();
        distances(
            x.as_slice().expect("standard layout"),
            prototypes_t,
            classes,
            out.as_slice_mut().expect("fresh array"),
        );
        out
    }
}

/// Samples per group of [`distances`]: the lanes of an AVX-512 register, or of two AVX
/// registers.
const SAMPLES: usize = 16;

/// Classes per pass over a group's inputs in [`distances`]: five registers of sums in the
/// AVX-512 build, ten in the AVX2 build.
const PASS_CLASSES: usize = 5;

multiversion! { wide
    /// `out[b, i] = -Σ_j (x[b, j] - w_t[j, i])²` for `x` `[B, inputs]` and the transposed
    /// prototypes `w_t` `[inputs, classes]`: each sum from +0 in `j` order, each square
    /// rounded before it is added, whatever the batch. Groups of [`SAMPLES`] samples go side
    /// by side in the lanes, [`PASS_CLASSES`] classes at a time, so that every sum stays in a
    /// register and each waits only on its own last addition; the samples after the last
    /// group go one at a time, the classes' sums side by side.
    fn distances(x: &[f32], w_t: &[f32], classes: usize, out: &mut [f32]) {
        let inputs = w_t.len() / classes.max(1);
        let mut groups = x.chunks_exact(SAMPLES * inputs);
        let mut outs = out.chunks_exact_mut(SAMPLES * classes);
        let mut lanes = vec![0.0f32; inputs * SAMPLES];
        for (x, out) in groups.by_ref().zip(outs.by_ref()) {
            for (s, x) in x.chunks_exact(inputs).enumerate() {
                for (lane, &v) in lanes.chunks_exact_mut(SAMPLES).zip(x) {
                    lane[s] = v;
                }
            }
            for first in (0..classes).step_by(PASS_CLASSES) {
                let sums = group_distances(&lanes, w_t, classes, first);
                for (s, out) in out.chunks_exact_mut(classes).enumerate() {
                    for (o, sums) in out[first..].iter_mut().zip(&sums) {
                        *o = -sums[s];
                    }
                }
            }
        }
        let rest = groups.remainder().chunks_exact(inputs);
        for (x, out) in rest.zip(outs.into_remainder().chunks_exact_mut(classes)) {
            for (&x, w) in x.iter().zip(w_t.chunks_exact(classes)) {
                for (s, &w) in out.iter_mut().zip(w) {
                    *s += (x - w) * (x - w);
                }
            }
            out.iter_mut().for_each(|s| *s = -*s);
        }
    }
}

/// One pass of [`distances`]: for the classes `first..first + PASS_CLASSES` (those past the last
/// class computed against a copy of it, then dropped), the sums of the samples in `lanes`
/// `[inputs, SAMPLES]`.
#[inline(always)]
fn group_distances(
    lanes: &[f32],
    w_t: &[f32],
    classes: usize,
    first: usize,
) -> [[f32; SAMPLES]; PASS_CLASSES] {
    let mut acc = [[0.0f32; SAMPLES]; PASS_CLASSES];
    for (x, w) in lanes.chunks_exact(SAMPLES).zip(w_t.chunks_exact(classes)) {
        let w: [f32; PASS_CLASSES] = std::array::from_fn(|c| w[(first + c).min(classes - 1)]);
        for (acc, w) in acc.iter_mut().zip(w) {
            for (a, &x) in acc.iter_mut().zip(x) {
                *a += (x - w) * (x - w);
            }
        }
    }
    acc
}

impl Layer for RbfOutput {
    fn name(&self) -> &'static str {
        "RbfOutput"
    }

    fn config(&self) -> LayerConfig {
        let (classes, inputs) = self.weight.dim();
        LayerConfig::RbfOutput {
            classes,
            inputs,
            prototypes: self.weight.iter().copied().collect(),
        }
    }

    fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let (classes, inputs) = self.weight.dim();
        if c * h * w != inputs {
            return Err(Error::Shape {
                layer: "RbfOutput",
                expected: format!("[C, H, W] with C·H·W = {inputs}"),
                got: vec![c, h, w],
            });
        }
        Ok([classes, 1, 1])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        Ok(self.compute(self.flatten(input)?.view()))
    }

    /// The prototypes are fixed, so only the input's derivative is computed:
    /// `∂E/∂x_j = Σ_i -2 (x_j - w_ij) ∂E/∂out_i`. With penalties `y_i = -out_i = Σ_j (x_j -
    /// w_ij)²`, a sum of squares, the curvature `∂²E/∂x_j² = Σ_i 4 (x_j - w_ij)² ∂²E/∂y_i² + 2
    /// max(∂E/∂y_i, 0)` keeps each square's own second derivative `2 ∂E/∂y_i` (where it is
    /// convex) as well as the squared slopes, so it needs the [`Mode::Curvature`] `slope`.
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        let x = self.flatten(step.input)?;
        let (batch, inputs) = x.dim();
        let g = step
            .grad_output
            .index_axis_move(Axis(3), 0)
            .index_axis_move(Axis(2), 0);
        let grad_input = match step.mode {
            Mode::Params => return Ok(None),
            Mode::Full => {
                // each input's sum over the prototypes in their order, from -0 as `sum` starts,
                // all the inputs of a sample side by side
                let mut grad_input = Array2::from_elem((batch, inputs), -0.0f32);
                let prototypes = self.weight.as_slice().expect("standard layout");
                let x = x.as_slice().expect("standard layout");
                let sums = grad_input.as_slice_mut().expect("fresh array");
                let samples = sums.chunks_exact_mut(inputs).zip(x.chunks_exact(inputs));
                for ((sums, x), g) in samples.zip(g.outer_iter()) {
                    for (&g, w) in g.iter().zip(prototypes.chunks_exact(inputs)) {
                        for ((sum, &x), &w) in sums.iter_mut().zip(x).zip(w) {
                            *sum += -2.0 * g * (x - w);
                        }
                    }
                }
                grad_input
            }
            Mode::Curvature { slope } => {
                let slope = slope.ok_or_else(|| Error::InvalidArgument {
                    what: "RbfOutput",
                    reason: "its curvature needs dE/d(output), which a stack gives its last \
                             layer only"
                        .into(),
                })?;
                let slope = slope
                    .index_axis_move(Axis(3), 0)
                    .index_axis_move(Axis(2), 0);
                Array2::from_shape_fn((batch, inputs), |(b, j)| {
                    let x = x[[b, j]];
                    let each = g.row(b).into_iter().zip(slope.row(b));
                    each.zip(self.weight.column(j))
                        .map(|((c, s), w)| 4.0 * (x - w) * (x - w) * c + 2.0 * (-s).max(0.0))
                        .sum::<f32>()
                })
            }
        };
        Ok(Some(
            grad_input
                .into_shape_with_order(step.input.raw_dim())
                .expect("same size"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::backprop;
    use crate::testing::check_gradients;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn forward_by_hand() {
        // x = [1, 0, 2]; prototypes [0, 0, 0] and [1, 1, 1]: -(1 + 0 + 4) = -5 and -(0 + 1 + 1) = -2
        let rbf = RbfOutput::from_params(array![[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).unwrap();
        let out = rbf
            .forward(array![[[[1.0]], [[0.0]], [[2.0]]]].view(), Pass::Predict)
            .unwrap();
        assert_abs_diff_eq!(out, array![[[[-5.0]], [[-2.0]]]]);
    }

    #[test]
    fn each_distance_is_summed_in_input_order() {
        // bit for bit the plain left-to-right sum, for inputs whose terms round differently
        // in another order; also with the prototypes made bipolar, and with seven classes (a
        // pass of five and one of two); 37 samples: two groups in the lanes, five alone
        let x = crate::testing::uniform((37, 84), 7).mapv(|v| 3.0 * v);
        let seven = crate::testing::uniform((7, 84), 8);
        let layers = [
            RbfOutput::digits(),
            RbfOutput::digits().bipolar(),
            RbfOutput::from_params(seven).unwrap(),
        ];
        for rbf in layers {
            let input = x.view().into_shape_with_order((37, 84, 1, 1)).unwrap();
            let out = rbf.forward(input, Pass::Predict).unwrap();
            for (b, x) in x.rows().into_iter().enumerate() {
                for (i, w) in rbf.weight().rows().into_iter().enumerate() {
                    let plain: f32 = x.iter().zip(w).map(|(x, w)| (x - w) * (x - w)).sum();
                    assert_eq!(out[[b, i, 0, 0]].to_bits(), (-plain).to_bits(), "{b} {i}");
                }
            }
        }
    }

    #[test]
    fn shipped_digits_are_ten_distinct_glyphs() {
        let rbf = RbfOutput::digits();
        assert_eq!(rbf.weight().dim(), (10, 84));
        assert!(rbf.weight().iter().all(|&w| w == 0.0 || w == 1.0));
        // glyph 1 (second 7 columns) has its stem at column 3 of rows 1..=10
        assert!((1..=10).all(|row| rbf.weight()[[1, row * 7 + 3]] == 1.0));
        for a in 0..10 {
            for b in a + 1..10 {
                assert_ne!(
                    rbf.weight().row(a),
                    rbf.weight().row(b),
                    "glyphs {a} and {b} are the same"
                );
            }
        }
    }

    #[test]
    fn curvature_by_hand() {
        // x = [1, 0], prototypes [0, 0] and [1, 1]; dE/dout = [-1, 0.5], curvature c = [0.5, 2]:
        // x_0: 4·1·0.5 + 2·max(1, 0) + 4·0·2 + 2·max(-0.5, 0) = 4
        // x_1: 4·0·0.5 + 2 + 4·1·2 + 0 = 10
        let mut rbf = RbfOutput::from_params(array![[0.0, 0.0], [1.0, 1.0]]).unwrap();
        let (input, c) = (array![[[[1.0]], [[0.0]]]], array![[[[0.5]], [[2.0]]]]);
        let slope = array![[[[-1.0]], [[0.5]]]];
        // without dE/d(output) the curvature cannot be had
        let mode = Mode::Curvature { slope: None };
        assert!(matches!(
            backprop(&mut rbf, input.view(), c.view(), mode),
            Err(Error::InvalidArgument { .. })
        ));
        let mode = Mode::Curvature {
            slope: Some(slope.view()),
        };
        let curvature = backprop(&mut rbf, input.view(), c.view(), mode)
            .unwrap()
            .unwrap();
        assert_abs_diff_eq!(curvature, array![[[[4.0]], [[10.0]]]]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradients(&mut RbfOutput::digits(), [2, 84, 1, 1], 8);
    }

    #[test]
    fn bad_bitmaps_and_shapes_are_errors() {
        let wrong = DynamicImage::new_luma8(70, 11);
        assert!(matches!(
            RbfOutput::from_image(&wrong, "test"),
            Err(Error::Image { .. })
        ));
        assert!(matches!(
            RbfOutput::from_image_path("/nonexistent/bitmap.png"),
            Err(Error::Io { .. })
        ));
        let mut rbf = RbfOutput::digits();
        assert!(matches!(
            rbf.forward(Array4::zeros((1, 83, 1, 1)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        let (input, grad) = (Array4::zeros((1, 84, 1, 1)), Array4::zeros((2, 10, 1, 1)));
        assert!(matches!(
            backprop(&mut rbf, input.view(), grad.view(), Mode::Full),
            Err(Error::Shape { .. })
        ));
    }
}
