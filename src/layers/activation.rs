//! The squashing function a layer applies to its weighted sum, and its derivative.
//!
//! Each derivative is written in terms of the function's *output* `y = f(a)`, so a layer keeps
//! only its output for backprop (the report's `g · s · (1 - s)` for the sigmoid).

use ndarray::Array4;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::kernels::{multiversion, scaled_tanh_in_place, sigmoid_in_place};
use crate::layer::{Backward, Layer};

/// LeCun 1998's `A` in `f(a) = A · tanh(S · a)` (Appendix A).
pub(crate) const TANH_A: f32 = 1.7159;
/// LeCun 1998's `S` in `f(a) = A · tanh(S · a)` (Appendix A).
pub(crate) const TANH_S: f32 = 2.0 / 3.0;

/// The magnitude, 2^-60, below which [`Activation::backprop`] sets dL/da to zero.
const NEGLIGIBLE: f32 = 1.0 / (1u64 << 60) as f32;

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Activation {
    /// `f(a) = 1 / (1 + e^-a)`, `f' = y · (1 - y)`: the report's choice.
    #[default]
    Sigmoid,
    /// `f(a) = a`.
    Identity,
    /// `f(a) = max(a, 0)`, `f' = 1 where y > 0`.
    Relu,
    /// LeCun 1998's squashing `f(a) = 1.7159 · tanh(2a / 3)`, `f' = S · (A - y² / A)`.
    ScaledTanh,
    /// `f(a) = tanh(a)`, `f' = 1 - y²`.
    Tanh,
}

impl Activation {
    /// Replaces each weighted sum `a` in `values` by `f(a)`.
    pub fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Sigmoid => sigmoid_in_place(values),
            Activation::Identity => {}
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::ScaledTanh => scaled_tanh_in_place(values, TANH_A, TANH_S),
            Activation::Tanh => scaled_tanh_in_place(values, 1.0, 1.0),
        }
    }

    /// Turns dL/dy into dL/da in place: `grad[i] *= f'(a_i)`, with `f'` computed from `output[i] = y_i`,
    /// and set to zero where that is below 2^-60 in magnitude.
    ///
    /// Where a sigmoid saturates, `y · (1 - y)` is tiny, and so is the gradient through it; left
    /// alone, such gradients and their products reach below f32's normal range (2^-126), and
    /// x86 processors compute with those subnormal numbers in microcode, at many times the
    /// cost of an ordinary operation (a per-sample step of the trained LeNet-5 took 1.6 times
    /// as long as one of a fresh network on an Intel Xeon). A gradient below 2^-60 moves no
    /// parameter of magnitude 2^-35 or more at a learning rate up to 1 (its step is under half
    /// the parameter's ulp), and the product of two gradients that are kept is still a normal
    /// number. The same values are zeroed on every processor.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when `grad` and `output` differ in length.
    pub fn backprop(self, grad: &mut [f32], output: &[f32]) -> Result<()> {
        if grad.len() != output.len() {
            return Err(crate::Error::shape(
                "Activation::backprop",
                &[output.len()],
                &[grad.len()],
            ));
        }
        scale_by_slope(self, grad, output);
        Ok(())
    }

    /// What `step` asks of the weighted sums `a` of a layer whose output is `f(a)`:
    /// dL/da `[B, C, H, W]` from dL/d(output), or in a curvature pass ∂²E/∂a² =
    /// `f'(a)² · ∂²E/∂output²`, the Gauss-Newton rule of LeCun et al. 1998 (Appendix C), which
    /// drops the `f''` term.
    ///
    /// # Errors
    /// As [`Backward::check`].
    pub(crate) fn of_sum(
        self,
        layer: &(impl Layer + ?Sized),
        step: &Backward<'_>,
    ) -> Result<Array4<f32>> {
        step.check(layer)?;
        let mut grad = step.grad_output.as_standard_layout().into_owned();
        let output = step.output.as_standard_layout();
        let output = output.as_slice().expect("standard layout");
        let times = if step.is_curvature() { 2 } else { 1 };
        for _ in 0..times {
            self.backprop(grad.as_slice_mut().expect("standard layout"), output)?;
        }
        Ok(grad)
    }
}

multiversion! { wide
    /// [`Activation::backprop`] once the lengths are checked, in the widest registers the
    /// processor has.
    fn scale_by_slope(activation: Activation, grad: &mut [f32], output: &[f32]) {
        match activation {
            Activation::Sigmoid => scale_each(grad, output, |g, y| g * (y * (1.0 - y))),
            Activation::Identity => scale_each(grad, output, |g, _| g),
            Activation::Relu => scale_each(grad, output, |g, y| if y > 0.0 { g } else { 0.0 }),
            Activation::ScaledTanh => scale_each(grad, output, |g, y| {
                g * (TANH_S * (TANH_A - y * y / TANH_A))
            }),
            Activation::Tanh => scale_each(grad, output, |g, y| g * (1.0 - y * y)),
        }
    }
}

/// `grad[i] = scale(grad[i], output[i])`, or zero where that is below [`NEGLIGIBLE`] in
/// magnitude.
#[inline(always)]
fn scale_each(grad: &mut [f32], output: &[f32], scale: impl Fn(f32, f32) -> f32) {
    for (g, &y) in grad.iter_mut().zip(output) {
        let v = scale(*g, y);
        *g = if v.abs() < NEGLIGIBLE { 0.0 } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    const ALL: [Activation; 5] = [
        Activation::Sigmoid,
        Activation::Identity,
        Activation::Relu,
        Activation::ScaledTanh,
        Activation::Tanh,
    ];

    #[test]
    fn known_values() {
        // sigmoid(0) = 0.5, sigmoid(2) = 1 / (1 + e^-2) = 0.880797 (computed with e^x to 2 ulp); 1.7159 · tanh(2/3 · 1.5) = 1.7159 · 0.761594 = 1.30682
        let mut v = [0.0, 2.0];
        Activation::Sigmoid.apply(&mut v);
        assert_relative_eq!(&v[..], &[0.5, 0.880797][..], max_relative = 1e-6);
        let mut v = [-1.0, 3.0];
        Activation::Relu.apply(&mut v);
        assert_eq!(v, [0.0, 3.0]);
        let mut v = [1.5];
        Activation::ScaledTanh.apply(&mut v);
        assert_relative_eq!(v[0], 1.30682, max_relative = 1e-6);
    }

    #[test]
    fn scaled_tanh_is_within_4e7_of_the_standard_library() {
        let inputs: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.05).collect();
        let mut values = inputs.clone();
        Activation::ScaledTanh.apply(&mut values);
        for (&a, &y) in inputs.iter().zip(&values) {
            let exact = f64::from(TANH_A) * (f64::from(TANH_S) * f64::from(a)).tanh();
            assert!((f64::from(y) - exact).abs() < 4e-7, "{a}: {y} vs {exact}");
        }
    }

    #[test]
    fn gradients_below_2_to_the_minus_60_become_zero() {
        let tiny = 2.0f32.powi(-60);
        assert_eq!(NEGLIGIBLE, tiny);
        let grad = [
            tiny,
            -tiny,
            tiny * 0.99,
            -tiny * 0.99,
            f32::MIN_POSITIVE / 4.0,
            0.5,
        ];
        let mut through = grad;
        Activation::Identity
            .backprop(&mut through, &[1.0; 6])
            .unwrap();
        assert_eq!(through, [tiny, -tiny, 0.0, 0.0, 0.0, 0.5]);
        // a saturated sigmoid: y · (1 - y) = 1e-30 would leave a subnormal 1e-39
        let mut through = [1e-9, 1e-9];
        Activation::Sigmoid
            .backprop(&mut through, &[1e-30, 0.5])
            .unwrap();
        assert_eq!(through, [0.0, 0.25e-9]);
    }

    #[test]
    fn derivative_from_output_matches_finite_difference() {
        const H: f32 = 1e-3;
        for act in ALL {
            for a in [-2.3f32, -0.4, 0.7, 1.9] {
                let f = |x: f32| {
                    let mut v = [x];
                    act.apply(&mut v);
                    v[0]
                };
                let numeric = (f(a + H) - f(a - H)) / (2.0 * H);
                let mut grad = [1.0];
                act.backprop(&mut grad, &[f(a)]).unwrap();
                assert_relative_eq!(grad[0], numeric, epsilon = 1e-3, max_relative = 1e-2);
            }
        }
    }
}
