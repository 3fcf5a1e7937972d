//! Test helpers: seeded random arrays and the finite-difference gradient check every layer uses.

use approx::assert_relative_eq;
use ndarray::{Array, Array4, Dimension, ShapeBuilder};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::Layer;

/// Step of the central difference `(L(x + H) - L(x - H)) / 2H`. In f32 a smaller step drowns
/// the difference in rounding (about 1e-7 · |L| / H); a larger one lets the H² truncation term grow.
const H: f32 = 1e-2;
/// Absolute tolerance: the rounding noise of the f32 forward passes, divided by 2H.
const EPS: f64 = 2e-3;
/// Relative tolerance: the truncation error H² · f''' / 6 of the sigmoid stacks checked here.
const REL: f64 = 1e-2;
/// Entries checked per array: all of a small one, this many chosen at random from a large one.
const MAX_ENTRIES: usize = 300;

/// An array of the given shape, uniform in [-1, 1), from `seed`.
pub(crate) fn uniform<Sh: ShapeBuilder>(shape: Sh, seed: u64) -> Array<f32, Sh::Dim> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    Array::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// Checks `layer`'s input and parameter gradients against central differences, for a random
/// input of `input_shape` and the loss `L = Σ output · r` with a random `r`, so that
/// dL/d(output) = r (llm.c's `fakeloss`).
pub(crate) fn check_gradients(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) {
    let input = uniform(input_shape, seed);
    let output = layer.forward(input.view()).expect("forward");
    let r = uniform(output.raw_dim(), seed + 1);
    check_gradients_with(layer, input, |out| (dot(out, &r), r.clone()));
}

/// Checks `layer`'s gradients for any scalar loss: `loss(output)` returns `(L, dL/d(output))`.
pub(crate) fn check_gradients_with(
    layer: &mut dyn Layer,
    input: Array4<f32>,
    loss: impl Fn(&Array4<f32>) -> (f64, Array4<f32>),
) {
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    let output = layer.forward(input.view()).expect("forward");
    let (_, grad_output) = loss(&output);
    let grad_input = layer.backprop(grad_output.view()).expect("backprop");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut picks = |len: usize| -> Vec<usize> {
        if len <= MAX_ENTRIES {
            (0..len).collect()
        } else {
            (0..MAX_ENTRIES).map(|_| rng.random_range(0..len)).collect()
        }
    };

    let mut probe = input.clone();
    for i in picks(input.len()) {
        let numeric = central_difference(|h| {
            probe.as_slice_mut().unwrap()[i] = input.as_slice().unwrap()[i] + h;
            loss(&layer.predict(probe.view()).expect("predict")).0
        });
        probe.as_slice_mut().unwrap()[i] = input.as_slice().unwrap()[i];
        let analytic = f64::from(grad_input.as_slice().unwrap()[i]);
        assert_relative_eq!(analytic, numeric, epsilon = EPS, max_relative = REL);
    }

    let analytic: Vec<Vec<f32>> = layer
        .params_mut()
        .into_iter()
        .map(|p| p.grad.to_vec())
        .collect();
    for (p, analytic) in analytic.iter().enumerate() {
        for i in picks(analytic.len()) {
            let original = layer.params_mut()[p].value[i];
            let numeric = central_difference(|h| {
                layer.params_mut()[p].value[i] = original + h;
                loss(&layer.predict(input.view()).expect("predict")).0
            });
            layer.params_mut()[p].value[i] = original;
            let name = layer.params()[p].name;
            assert!(
                approx::relative_eq!(
                    f64::from(analytic[i]),
                    numeric,
                    epsilon = EPS,
                    max_relative = REL
                ),
                "{} {name}[{i}]: analytic {} vs numeric {numeric}",
                layer.name(),
                analytic[i]
            );
        }
    }
}

/// `(f(H) - f(-H)) / 2H`.
fn central_difference(mut f: impl FnMut(f32) -> f64) -> f64 {
    (f(H) - f(-H)) / (2.0 * f64::from(H))
}

/// `Σ a · b` in f64.
pub(crate) fn dot<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
