//! Test helpers: seeded random arrays and the finite-difference gradient check every layer uses.

use approx::assert_relative_eq;
use ndarray::{Array, Array4, Dimension, ShapeBuilder};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::Layer;
use crate::data::mnist::Dataset;

/// `n` images with a bar in a place that depends on the label.
pub(crate) fn bars(n: usize) -> Dataset {
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let images =
        ndarray::Array3::from_shape_fn(
            (n, 28, 28),
            |(i, row, _)| if row / 2 == i % 10 { 255 } else { 0 },
        );
    Dataset::new(images, labels).unwrap()
}

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
    compare_with_differences(layer, &input, &grad_input, 7, |plus, minus| {
        (loss(plus).0 - loss(minus).0) / (2.0 * f64::from(H))
    });
}

/// Checks `layer`'s [`Layer::backprop_curvature`] against the Gauss-Newton diagonal it stands
/// for, `Σ_k c_k (∂out_k/∂θ)²` with random `c ≥ 0` and each slope from central differences, for
/// the input and every parameter.
pub(crate) fn check_curvature(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) {
    let input = uniform(input_shape, seed);
    let output = layer.forward(input.view()).expect("forward");
    let c = uniform(output.raw_dim(), seed + 1).mapv(f32::abs);
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    let curvature_input = layer.backprop_curvature(c.view()).expect("curvature");
    compare_with_differences(layer, &input, &curvature_input, 8, |plus, minus| {
        let slopes = (plus - minus) / (2.0 * H);
        dot(&slopes.mapv(|s| s * s), &c)
    });
}

/// Compares `analytic_input` and each parameter's gradient buffer, entry by entry (all of a
/// small array, a sample drawn from `seed` of a large one), with `numeric(out(x + H), out(x - H))`
/// where `x` is that one entry of the input or the parameter.
fn compare_with_differences(
    layer: &mut dyn Layer,
    input: &Array4<f32>,
    analytic_input: &Array4<f32>,
    seed: u64,
    numeric: impl Fn(&Array4<f32>, &Array4<f32>) -> f64,
) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut probe = input.clone();
    for i in picks(input.len(), &mut rng) {
        let mut at = |h: f32| {
            probe.as_slice_mut().unwrap()[i] = input.as_slice().unwrap()[i] + h;
            layer.predict(probe.view()).expect("predict")
        };
        let numeric = numeric(&at(H), &at(-H));
        probe.as_slice_mut().unwrap()[i] = input.as_slice().unwrap()[i];
        let analytic = f64::from(analytic_input.as_slice().unwrap()[i]);
        assert_relative_eq!(analytic, numeric, epsilon = EPS, max_relative = REL);
    }

    let analytic: Vec<Vec<f32>> = layer
        .params_mut()
        .into_iter()
        .map(|p| p.grad.to_vec())
        .collect();
    for (p, analytic) in analytic.iter().enumerate() {
        for i in picks(analytic.len(), &mut rng) {
            let original = layer.params_mut()[p].value[i];
            let mut at = |h: f32| {
                layer.params_mut()[p].value[i] = original + h;
                layer.predict(input.view()).expect("predict")
            };
            let numeric = numeric(&at(H), &at(-H));
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

/// All indices below `len` when it is small, else `MAX_ENTRIES` of them at random.
fn picks(len: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    if len <= MAX_ENTRIES {
        (0..len).collect()
    } else {
        (0..MAX_ENTRIES).map(|_| rng.random_range(0..len)).collect()
    }
}

/// `Σ a · b` in f64.
pub(crate) fn dot<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
