//! Subsampling (S2, S4): each `K x K` block summed, scaled by a trainable coefficient per channel,
//! plus a bias, then an activation (sigmoid by default). Stride = `K`.
//!
//! `out[b, c, j, k] = f(bias[c] + coef[c] · Σ_{u,v < K} input[b, c, K·j + u, K·k + v])`
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Layer, Pass, Subsampling};
//! use ndarray::{array, Array4};
//! let pool = Subsampling::from_params(2, array![0.25], array![0.0])?;
//! let out = pool.forward(Array4::ones((1, 1, 4, 4)).view(), Pass::Predict)?;
//! assert_eq!(out.dim(), (1, 1, 2, 2));
//! assert!((out[[0, 0, 1, 1]] - 0.73106).abs() < 1e-5); // sigmoid(0.25 · 4)
//! # Ok(()) }
//! ```

use ndarray::{Array1, Array4, ArrayView1, ArrayView4, Ix1};
use rand::Rng;

use super::activation::Activation;
use super::{Init, regain, zeros_param};
use crate::kernels::{sums_of_2x2, weighted_sums_of_2x2};
use crate::layer::{Backward, Layer, LayerConfig, Param, ParamMut, ParamRef, Pass, chw};
use crate::{Error, Result};

/// Trainable `K x K` sum-pooling with stride `K`, one coefficient and one bias per channel.
#[derive(Debug, Clone)]
pub struct Subsampling {
    kernel: usize,
    /// `[C]`, the scale of each channel's block sums; uniform in [-1, 1) from [`Subsampling::new`].
    coef: Param<Ix1>,
    /// `[C]`, uniform in [-1, 1) from [`Subsampling::new`].
    bias: Param<Ix1>,
    activation: Activation,
    /// Whether the values are [`Init::Default`]'s, which follow the activation.
    default_init: bool,
}

impl Subsampling {
    /// Subsampling of `channels` maps by `kernel x kernel` blocks, coefficients and biases
    /// drawn by [`Init::Default`] for the activation (sigmoid, until
    /// [`Subsampling::with_activation`] changes it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a size is zero.
    pub fn new(channels: usize, kernel: usize, rng: &mut impl Rng) -> Result<Self> {
        let coef = zeros_param("Subsampling", channels)?;
        let bias = zeros_param("Subsampling", channels)?;
        Ok(Self::from_params(kernel, coef, bias)?.with_init(Init::Default, rng))
    }

    /// A layer with known `coef` `[C]` and `bias` `[C]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when they differ in length or are empty, [`Error::InvalidArgument`] for a zero kernel.
    pub fn from_params(kernel: usize, coef: Array1<f32>, bias: Array1<f32>) -> Result<Self> {
        if kernel == 0 {
            return Err(Error::InvalidArgument {
                what: "Subsampling",
                reason: "kernel must be positive, got 0".into(),
            });
        }
        if coef.is_empty() || coef.len() != bias.len() {
            return Err(Error::shape("Subsampling", coef.shape(), bias.shape()));
        }
        Ok(Subsampling {
            kernel,
            coef: Param::new(coef),
            bias: Param::new(bias),
            activation: Activation::Sigmoid,
            default_init: false,
        })
    }

    /// The same layer with another activation (sigmoid by default). Values drawn by
    /// [`Init::Default`] are rescaled to that activation's.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        if self.default_init {
            let factor = regain(self.activation, activation);
            self.coef.value *= factor;
            self.bias.value *= factor;
        }
        self.activation = activation;
        self
    }

    /// The same layer with coefficients and biases drawn by `init`; a unit's fan-in is its
    /// K·K block.
    pub fn with_init(mut self, init: Init, rng: &mut impl Rng) -> Self {
        let (channels, fan_in) = (self.coef.value.len(), self.kernel * self.kernel);
        let act = self.activation;
        self.coef.value = Array1::from_shape_fn(channels, |_| init.weight(fan_in, act, rng));
        self.bias.value = init.biases(channels, |_| fan_in, act, rng);
        self.default_init = init == Init::Default;
        self
    }

    /// The per-channel coefficients, `[C]`.
    pub fn coef(&self) -> ArrayView1<'_, f32> {
        self.coef.value.view()
    }

    /// The per-channel biases, `[C]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.value.view()
    }

    /// The block sums `[B, C, OH, OW]` of `input`; when `weighted`, each sum `s` of channel `c`
    /// put as `bias[c] + coef[c] · s`, the layer's weighted sums.
    fn block_sums(&self, input: ArrayView4<f32>, weighted: bool) -> Result<Array4<f32>> {
        let [c, oh, ow] = self.output_shape(chw(input.shape()))?;
        let (k, width) = (self.kernel, input.dim().3);
        let input = input.as_standard_layout();
        let mut sums = Array4::zeros((input.dim().0, c, oh, ow));
        let planes_in = input
            .as_slice()
            .expect("standard layout")
            .chunks_exact(oh * k * width);
        let planes_out = sums
            .as_slice_mut()
            .expect("fresh array")
            .chunks_exact_mut(oh * ow);
        let channels = self.coef.value.iter().zip(&self.bias.value).cycle();
        for ((plane_in, plane_out), (&a, &b)) in planes_in.zip(planes_out).zip(channels) {
            // LeNet-5's 2x2 in one pass, with the block known so that the loop vectorises
            match (k, weighted) {
                (2, false) => sums_of_2x2(plane_in, width, plane_out, ow),
                (2, true) => weighted_sums_of_2x2(plane_in, width, plane_out, ow, a, b),
                _ => {
                    for (rows, out) in plane_in
                        .chunks_exact(k * width)
                        .zip(plane_out.chunks_exact_mut(ow))
                    {
                        for row in rows.chunks_exact(width) {
                            out.iter_mut()
                                .zip(row.chunks_exact(k))
                                .for_each(|(o, block)| *o += block.iter().sum::<f32>());
                        }
                    }
                    if weighted {
                        plane_out.iter_mut().for_each(|s| *s = b + a * *s);
                    }
                }
            }
        }
        Ok(sums)
    }

    /// Adds the coefficient and bias gradients for `grad` (dL/d(weighted sum),
    /// `[B, C, OH, OW]`) and returns dL/d(input) when `step` wants it; in a curvature pass, the
    /// block sums and coefficients enter squared, which turns gradients into Gauss-Newton
    /// curvatures.
    fn accumulate(
        &mut self,
        grad: Array4<f32>,
        step: &Backward<'_>,
    ) -> Result<Option<Array4<f32>>> {
        let square = step.is_curvature();
        let sq = |v: f32| if square { v * v } else { v };
        let sums = self.block_sums(step.input, false)?;
        let (batch, c, oh, ow) = grad.dim();
        let k = self.kernel;
        let width = ow * k;
        let wants_input = step.wants_input();
        let mut grad_input = Array4::zeros(if wants_input {
            (batch, c, oh * k, width)
        } else {
            (0, 0, 0, 0)
        });
        let planes = grad
            .as_slice()
            .expect("standard layout")
            .chunks_exact(oh * ow)
            .zip(
                sums.as_slice()
                    .expect("standard layout")
                    .chunks_exact(oh * ow),
            );
        for (plane, (g, sums)) in planes.enumerate() {
            let ch = plane % c;
            // coef gradient = Σ over blocks of (block sum · g); bias gradient = Σ g
            self.coef.grad[ch] += g.iter().zip(sums).map(|(g, &s)| g * sq(s)).sum::<f32>();
            self.bias.grad[ch] += g.iter().sum::<f32>();
        }
        if !wants_input {
            return Ok(None);
        }
        let planes_in = grad_input
            .as_slice_mut()
            .expect("fresh array")
            .chunks_exact_mut(oh * k * width);
        let planes = planes_in.zip(
            grad.as_slice()
                .expect("standard layout")
                .chunks_exact(oh * ow),
        );
        for (plane, (grad_x, g)) in planes.enumerate() {
            let ch = plane % c;
            // each input in a block gets coef[c] · g
            let a = sq(self.coef.value[ch]);
            for (rows, g_row) in grad_x.chunks_exact_mut(k * width).zip(g.chunks_exact(ow)) {
                for row in rows.chunks_exact_mut(width) {
                    match k {
                        // LeNet-5's 2x2, with the block width known so that the loop vectorises
                        2 => spread::<2>(a, g_row, row),
                        _ => row
                            .chunks_exact_mut(k)
                            .zip(g_row)
                            .for_each(|(block, &g)| block.fill(a * g)),
                    }
                }
            }
        }
        Ok(Some(grad_input))
    }
}

/// `row[K·x .. K·x + K] = a · g[x]`: each block's share of its output's gradient.
#[inline(always)]
fn spread<const K: usize>(a: f32, g: &[f32], row: &mut [f32]) {
    for (block, &g) in row.chunks_exact_mut(K).zip(g) {
        block.fill(a * g);
    }
}

impl Layer for Subsampling {
    fn name(&self) -> &'static str {
        "Subsampling"
    }

    fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let k = self.kernel;
        if c != self.coef.value.len() || h == 0 || w == 0 || h % k != 0 || w % k != 0 {
            return Err(Error::Shape {
                layer: "Subsampling",
                expected: format!(
                    "[{}, H and W positive multiples of {k}]",
                    self.coef.value.len()
                ),
                got: vec![c, h, w],
            });
        }
        Ok([c, h / k, w / k])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        let mut output = self.block_sums(input, true)?;
        self.activation
            .apply(output.as_slice_mut().expect("fresh array"));
        Ok(output)
    }

    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        let grad = self.activation.of_sum(self, &step)?;
        self.accumulate(grad, &step)
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        vec![self.coef.as_ref("coef"), self.bias.as_ref("bias")]
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Subsampling {
            channels: self.coef.value.len(),
            kernel: self.kernel,
            activation: self.activation,
        }
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        vec![self.coef.as_mut("coef"), self.bias.as_mut("bias")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_curvature, check_gradients};
    use approx::assert_abs_diff_eq;
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn forward_by_hand() {
        // block [[1,2],[3,4]] sums to 10, block [[5,6],[7,8]] to 26; coef 0.1, bias -1:
        // sigmoid(-1 + 1.0) = 0.5, sigmoid(-1 + 2.6) = sigmoid(1.6) = 0.832018
        let input = array![[[[1.0, 2.0, 5.0, 6.0], [3.0, 4.0, 7.0, 8.0]]]];
        let pool = Subsampling::from_params(2, array![0.1], array![-1.0]).unwrap();
        let out = pool.forward(input.view(), Pass::Predict).unwrap();
        assert_abs_diff_eq!(out, array![[[[0.5, 0.832018]]]], epsilon = 1e-6);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(4);
        // (channels, kernel, input [B, C, H, W], activation)
        for (c, k, shape, act) in [
            (2, 2, [1, 2, 4, 6], Activation::Sigmoid),
            (3, 2, [2, 3, 6, 4], Activation::ScaledTanh),
            (1, 3, [2, 1, 6, 6], Activation::Sigmoid),
        ] {
            let mut pool = Subsampling::new(c, k, &mut rng)
                .unwrap()
                .with_activation(act);
            check_gradients(&mut pool, shape, 5);
        }
    }

    #[test]
    fn curvature_matches_the_gauss_newton_diagonal() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(6);
        for act in [Activation::ScaledTanh, Activation::Sigmoid] {
            let mut pool = Subsampling::new(3, 2, &mut rng)
                .unwrap()
                .with_activation(act);
            check_curvature(&mut pool, [2, 3, 4, 6], 7);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
        let mut pool = Subsampling::new(6, 2, &mut rng).unwrap();
        assert!(matches!(
            pool.forward(Array4::zeros((1, 6, 27, 28)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            pool.forward(Array4::zeros((1, 5, 28, 28)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        let (input, grad) = (Array4::zeros((1, 6, 28, 28)), Array4::zeros((1, 6, 14, 13)));
        assert!(matches!(
            crate::testing::backprop(&mut pool, input.view(), grad.view(), crate::Mode::Full),
            Err(Error::Shape { .. })
        ));
        assert!(Subsampling::from_params(2, array![1.0], array![1.0, 2.0]).is_err());
        assert!(Subsampling::new(6, 0, &mut rng).is_err());
    }
}
