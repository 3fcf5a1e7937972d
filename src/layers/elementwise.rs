//! Standalone activation layers: [`Relu`], [`Sigmoid`], [`Tanh`] and [`ScaledTanh`], each an
//! [`Activation`] applied to every value, with no parameters. `Conv`, `Subsampling` and
//! `Connect` apply an activation themselves; these are for stacks that keep the two apart
//! (`Conv` with [`Activation::Identity`], then `Relu`), as PyTorch's `nn.ReLU` does.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Layer, Pass, Relu};
//! use lenet5::ndarray::array;
//! let out = Relu.forward(array![[[[-1.0, 2.0]]]].view(), Pass::Predict)?;
//! assert_eq!(out, array![[[[0.0, 2.0]]]]);
//! # Ok(()) }
//! ```

use ndarray::{Array4, ArrayView4};

use super::activation::Activation;
use crate::Result;
use crate::layer::{Backward, Layer, LayerConfig, Pass};

/// `f(input)` for every value, any shape.
fn apply(activation: Activation, input: ArrayView4<f32>) -> Array4<f32> {
    let mut output = input.as_standard_layout().into_owned();
    activation.apply(output.as_slice_mut().expect("standard layout"));
    output
}

/// dL/d(input) from the step's output (in a curvature pass, the squared slope).
fn backward(
    layer: &(impl Layer + ?Sized),
    activation: Activation,
    step: &Backward<'_>,
) -> Result<Option<Array4<f32>>> {
    let grad = activation.of_sum(layer, step)?;
    Ok(step.wants_input().then_some(grad))
}

/// Defines a unit-struct layer applying `Activation::$name` element by element.
macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl Layer for $name {
            fn name(&self) -> &'static str {
                stringify!($name)
            }

            fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
                Ok(input)
            }

            fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
                Ok(apply(Activation::$name, input))
            }

            fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
                backward(self, Activation::$name, &step)
            }

            fn config(&self) -> LayerConfig {
                LayerConfig::Activation {
                    activation: Activation::$name,
                }
            }
        }
    };
}

activation_layer!(
    /// `max(x, 0)` for every value.
    Relu
);
activation_layer!(
    /// `1 / (1 + e^-x)` for every value.
    Sigmoid
);
activation_layer!(
    /// `tanh(x)` for every value.
    Tanh
);
activation_layer!(
    /// LeCun 1998's `1.7159 · tanh(2x / 3)` for every value.
    ScaledTanh
);

/// The layer for `activation`, as a box (for rebuilding a stack from a file).
pub(crate) fn boxed(activation: Activation) -> Option<Box<dyn Layer>> {
    Some(match activation {
        Activation::Relu => Box::new(Relu),
        Activation::Sigmoid => Box::new(Sigmoid),
        Activation::Tanh => Box::new(Tanh),
        Activation::ScaledTanh => Box::new(ScaledTanh),
        Activation::Identity => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;

    #[test]
    fn gradients_and_curvatures_match_finite_differences() {
        let layers: [Box<dyn Layer>; 3] = [Box::new(Sigmoid), Box::new(Tanh), Box::new(ScaledTanh)];
        for mut layer in layers {
            let name = layer.name();
            let grad = check::gradients(layer.as_mut(), [2, 3, 4, 5], 1).unwrap();
            assert!(grad.passed(), "{name}: {grad}");
            let curv = check::curvature(layer.as_mut(), [2, 3, 4, 5], 2).unwrap();
            assert!(curv.passed(), "{name}: {curv}");
        }
    }

    #[test]
    fn relu_gradients_match_finite_differences_away_from_the_kink() {
        // no input within a difference step of 0, where the slope jumps
        let input = check::uniform((2, 3, 4, 5), 1).mapv(|x| x + 0.05f32.copysign(x));
        let r = check::uniform((2, 3, 4, 5), 2);
        let report =
            check::gradients_with(&mut Relu, input, |out| (check::dot(out, &r), r.clone()));
        assert!(report.unwrap().passed());
        let kinked = check::gradients(&mut Relu, [2, 3, 4, 5], 1).unwrap();
        assert!(
            !kinked.passed(),
            "a step across the kink must show: {kinked}"
        );
    }

    #[test]
    fn each_applies_its_own_function() {
        let x = ndarray::array![[[[-2.0f32, 0.5]]]];
        let run = |l: &dyn Layer| l.forward(x.view(), Pass::Predict).unwrap();
        assert_eq!(run(&Relu), ndarray::array![[[[0.0, 0.5]]]]);
        let t = run(&Tanh);
        assert!((t[[0, 0, 0, 0]] - (-2.0f32).tanh()).abs() < 1e-6);
        let s = run(&Sigmoid);
        assert!((s[[0, 0, 0, 1]] - 1.0 / (1.0 + (-0.5f32).exp())).abs() < 1e-6);
        let st = run(&ScaledTanh);
        assert!((st[[0, 0, 0, 0]] - 1.7159 * (-4.0f32 / 3.0).tanh()).abs() < 1e-5);
    }
}
