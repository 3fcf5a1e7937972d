//! Fully connected layer (F6): a matrix product, plus bias, then an activation (sigmoid by default).
//!
//! `out[b, o] = f(bias[o] + Σ_i input[b, i] · weight[o, i])`
//!
//! The input `[B, C, H, W]` is read as `[B, C·H·W]` (flattened row by row), so C5's
//! `[B, 120, 1, 1]` feeds it as is; the output is `[B, outputs, 1, 1]`. `weight` is
//! `[outputs, inputs]`, the layout of PyTorch's `nn.Linear` (the report's `W` transposed).
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Connect, Layer, Pass};
//! use ndarray::array;
//! let fc = Connect::from_params(array![[1.0, -1.0]], array![0.5])?;
//! let out = fc.forward(array![[[[3.0]], [[1.0]]]].view(), Pass::Predict)?;
//! assert!((out[[0, 0, 0, 0]] - 0.92414).abs() < 1e-5); // sigmoid(3 - 1 + 0.5)
//! # Ok(()) }
//! ```

use ndarray::{
    Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, CowArray, Ix1, Ix2,
};
use rand::Rng;

use super::activation::Activation;
use super::{DenseDescent, Init, regain, zeros_param};
use crate::kernels::matmul;
use crate::layer::{
    Backward, Descended, Layer, LayerConfig, Param, ParamMut, ParamRef, Pass, chw, product,
    standard,
};
use crate::{Error, Result};

/// A fully connected layer from `inputs` to `outputs` values.
#[derive(Debug, Clone)]
pub struct Connect {
    /// `[outputs, inputs]`, uniform in [-1, 1) from [`Connect::new`].
    weight: Param<Ix2>,
    /// `[outputs]`, uniform in [-1, 1) from [`Connect::new`].
    bias: Param<Ix1>,
    activation: Activation,
    /// Whether the values are [`Init::Default`]'s, which follow the activation.
    default_init: bool,
    /// The fused step of plain gradient descent for one sample.
    descent: DenseDescent,
}

impl Connect {
    /// `inputs` to `outputs`, weights and biases drawn by [`Init::Default`] for the
    /// activation (sigmoid, until [`Connect::with_activation`] changes it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a size is zero.
    pub fn new(inputs: usize, outputs: usize, rng: &mut impl Rng) -> Result<Self> {
        let weight = zeros_param("Connect", [outputs, inputs])?;
        let bias = zeros_param("Connect", outputs)?;
        Ok(Self::from_params(weight, bias)?.with_init(Init::Default, rng))
    }

    /// A layer from every value of a `[C, H, W]` input to `outputs` values, as
    /// [`Connect::new`] makes it: the input size taken from the shape, as
    /// [`Sequential::add_with`](crate::Sequential::add_with) passes it.
    ///
    /// # Errors
    /// As [`Connect::new`], and [`Error::InvalidArgument`] when `C·H·W` overflows.
    pub fn flattening(input: [usize; 3], outputs: usize, rng: &mut impl Rng) -> Result<Self> {
        let inputs = product(&input).ok_or_else(|| Error::InvalidArgument {
            what: "Connect",
            reason: format!("an input of {input:?} has more values than memory holds"),
        })?;
        Self::new(inputs, outputs, rng)
    }

    /// A layer with known `weight` `[outputs, inputs]` and `bias` `[outputs]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `bias` is not `[outputs]` or a size is zero.
    pub fn from_params(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self> {
        if weight.is_empty() {
            return Err(Error::Shape {
                layer: "Connect",
                expected: "weight [outputs > 0, inputs > 0]".into(),
                got: weight.shape().to_vec(),
            });
        }
        if bias.len() != weight.nrows() {
            return Err(Error::shape("Connect", &[weight.nrows()], bias.shape()));
        }
        Ok(Connect {
            weight: Param::new(weight.as_standard_layout().into_owned()),
            bias: Param::new(bias),
            activation: Activation::Sigmoid,
            default_init: false,
            descent: DenseDescent::new(),
        })
    }

    /// The same layer with another activation (sigmoid by default). Values drawn by
    /// [`Init::Default`] are rescaled to that activation's.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        if self.default_init {
            let factor = regain(self.activation, activation);
            self.weight.value *= factor;
            self.bias.value *= factor;
        }
        self.activation = activation;
        self
    }

    /// The same layer with weights and biases drawn by `init`; every unit's fan-in is `inputs`.
    pub fn with_init(mut self, init: Init, rng: &mut impl Rng) -> Self {
        let (fan_in, act) = (self.weight.value.ncols(), self.activation);
        self.weight
            .value
            .iter_mut()
            .for_each(|w| *w = init.weight(fan_in, act, rng));
        self.bias.value = init.biases(self.bias.value.len(), |_| fan_in, act, rng);
        self.default_init = init == Init::Default;
        self
    }

    /// The weights, `[outputs, inputs]`.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.value.view()
    }

    /// The biases, `[outputs]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.value.view()
    }

    /// `input` `[B, C, H, W]` as the `[B, C·H·W]` matrix (a copy only when it is not in
    /// standard layout), after checking its size.
    fn flatten<'a>(&self, input: ArrayView4<'a, f32>) -> Result<CowArray<'a, f32, Ix2>> {
        self.output_shape(chw(input.shape()))?;
        let batch = input.dim().0;
        let inputs = self.weight.value.ncols();
        Ok(standard(input)
            .into_shape_with_order((batch, inputs))
            .expect("size checked"))
    }

    /// `f(x · Wᵀ + bias)` as `[B, outputs, 1, 1]` for `x` `[B, inputs]`.
    fn compute(&self, x: ArrayView2<f32>) -> Array4<f32> {
        let mut out = Array2::from_shape_fn((x.nrows(), self.bias.value.len()), |(_, o)| {
            self.bias.value[o]
        });
        matmul(x, self.weight.value.t(), 1.0, out.view_mut());
        self.activation
            .apply(out.as_slice_mut().expect("standard layout"));
        let (batch, outputs) = out.dim();
        out.into_shape_with_order((batch, outputs, 1, 1))
            .expect("same size")
    }

    /// Adds the weight and bias gradients for `grad` (dL/d(weighted sum), `[B, outputs, 1, 1]`)
    /// and returns dL/d(input) `[B, C, H, W]` for `input` when `step` wants it; in a curvature
    /// pass, inputs and weights enter squared, which turns gradients into Gauss-Newton
    /// curvatures.
    fn accumulate(
        &mut self,
        grad: &Array4<f32>,
        step: &Backward<'_>,
    ) -> Result<Option<Array4<f32>>> {
        let g = grad.index_axis(Axis(3), 0).index_axis_move(Axis(2), 0); // [B, outputs]
        let square = step.is_curvature();
        fn squared<'a>(a: CowArray<'a, f32, Ix2>, square: bool) -> CowArray<'a, f32, Ix2> {
            if square { a.mapv(|v| v * v).into() } else { a }
        }
        let input = squared(self.flatten(step.input)?, square);
        // dL/dW += gᵀ · x, dL/dbias += Σ_b g, dL/dx = g · W
        matmul(g.t(), input.view(), 1.0, self.weight.grad.view_mut());
        self.bias.grad += &g.sum_axis(Axis(0));
        if !step.wants_input() {
            return Ok(None);
        }
        let weight = squared(self.weight.value.view().into(), square);
        let mut grad_input = Array2::zeros((g.nrows(), weight.ncols()));
        matmul(g, weight.view(), 0.0, grad_input.view_mut());
        Ok(Some(
            grad_input
                .into_shape_with_order(step.input.raw_dim())
                .expect("same size"),
        ))
    }
}

impl Layer for Connect {
    fn name(&self) -> &'static str {
        "Connect"
    }

    fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let (outputs, inputs) = self.weight.value.dim();
        if c * h * w != inputs {
            return Err(Error::Shape {
                layer: "Connect",
                expected: format!("[C, H, W] with C·H·W = {inputs}"),
                got: vec![c, h, w],
            });
        }
        Ok([outputs, 1, 1])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        Ok(self.compute(self.flatten(input)?.view()))
    }

    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        let grad = self.activation.of_sum(self, &step)?;
        self.descent.touched();
        self.accumulate(&grad, &step)
    }

    /// The fused pass for one sample outside a curvature pass: the weights read once.
    fn backward_descend(&mut self, step: Backward<'_>, lr: f32) -> Option<Result<Descended>> {
        if step.input.dim().0 != 1 || step.is_curvature() {
            return None;
        }
        let descended = self.activation.of_sum(self, &step).map(|grad| {
            self.descent
                .begin((&self.weight, &self.bias), &grad, &step, lr)
        });
        Some(descended)
    }

    fn end_descend(&mut self, apply: bool) {
        self.descent.end((&mut self.weight, &mut self.bias), apply);
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        vec![self.weight.as_ref("weight"), self.bias.as_ref("bias")]
    }

    fn config(&self) -> LayerConfig {
        let (outputs, inputs) = self.weight.value.dim();
        LayerConfig::Connect {
            inputs,
            outputs,
            activation: self.activation,
        }
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.descent.touched();
        vec![self.weight.as_mut("weight"), self.bias.as_mut("bias")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Mode;
    use crate::testing::{backprop, check_curvature, check_gradients};
    use approx::assert_abs_diff_eq;
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn forward_by_hand() {
        // x = [1, 2], W = [[1, 1], [0.5, -1]], b = [0, 1]: sums 3 and 0.5 - 2 + 1 = -0.5;
        // sigmoid(3) = 0.952574, sigmoid(-0.5) = 0.377541
        let fc = Connect::from_params(array![[1.0, 1.0], [0.5, -1.0]], array![0.0, 1.0]).unwrap();
        let out = fc
            .forward(array![[[[1.0]], [[2.0]]]].view(), Pass::Predict)
            .unwrap();
        assert_abs_diff_eq!(out, array![[[[0.952574]], [[0.377541]]]], epsilon = 1e-6);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
        // (inputs, outputs, input [B, C, H, W], activation): F6's size, a flattened map, tanh
        for (inputs, outputs, shape, act) in [
            (120, 84, [1, 120, 1, 1], Activation::Sigmoid),
            (12, 5, [3, 3, 2, 2], Activation::Sigmoid),
            (7, 4, [2, 7, 1, 1], Activation::ScaledTanh),
        ] {
            let mut fc = Connect::new(inputs, outputs, &mut rng)
                .unwrap()
                .with_activation(act);
            check_gradients(&mut fc, shape, 6);
        }
    }

    #[test]
    fn curvature_matches_the_gauss_newton_diagonal() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
        for act in [Activation::ScaledTanh, Activation::Identity] {
            let mut fc = Connect::new(12, 5, &mut rng).unwrap().with_activation(act);
            check_curvature(&mut fc, [3, 3, 2, 2], 8);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
        let mut fc = Connect::new(120, 84, &mut rng).unwrap();
        assert!(matches!(
            fc.forward(Array4::zeros((1, 119, 1, 1)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        let input = Array4::zeros((2, 120, 1, 1));
        let grad = Array4::zeros((1, 84, 1, 1));
        assert!(matches!(
            backprop(&mut fc, input.view(), grad.view(), Mode::Full),
            Err(Error::Shape { .. })
        ));
        assert!(Connect::from_params(Array2::zeros((3, 2)), Array1::zeros(2)).is_err());
        // an empty weight is named as the weight's shape, not as a bias of the right length
        for weight in [Array2::zeros((0, 3)), Array2::zeros((3, 0))] {
            let err = Connect::from_params(weight.clone(), Array1::zeros(weight.nrows()));
            let Err(Error::Shape { got, .. }) = err else {
                panic!("{err:?}")
            };
            assert_eq!(got, weight.shape());
        }
    }
}
