//! Finite-difference checks of a [`Layer`]'s backward pass, for any layer, a user's own
//! included: run them in a unit test.
//!
//! [`gradients`] compares the input's and every parameter's gradient with central differences
//! `(L(x + h) - L(x - h)) / 2h` of a scalar loss; [`curvature`] compares the
//! [`Mode::Curvature`] pass with the Gauss-Newton diagonal it stands for, `Σ_k c_k
//! (∂out_k/∂x)²`. Both run every forward pass in one [`Pass::Train`], so a random layer
//! ([`Dropout`](crate::Dropout)) is checked with its mask fixed, and both return a [`Report`]:
//! the worst relative error and where it occurred.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Activation, Connect, check};
//! use lenet5::rand::SeedableRng;
//! let mut rng = lenet5::rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
//! let mut layer = Connect::new(12, 5, &mut rng)?.with_activation(Activation::Tanh);
//! let report = check::gradients(&mut layer, [3, 3, 2, 2], 1)?; // input [B, C, H, W]
//! assert!(report.passed(), "{report}");
//! # Ok(()) }
//! ```

use std::fmt;

use ndarray::{Array, Array4, Dimension, ShapeBuilder};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::layer::{Backward, Layer, Mode, Pass};
use crate::layers::{MAX_PARAM_VALUES, bounded_len};
use crate::{Error, Result};

/// Step of the central difference. In f32 a smaller step drowns the difference in rounding
/// (about 1e-7 · |L| / H); a larger one lets the H² truncation term grow.
pub const STEP: f32 = 1e-2;
/// The error a check passes with: 1 %, the truncation error H² · f''' / 6 of smooth layers.
pub const TOLERANCE: f64 = 1e-2;
/// Values below this size are compared absolutely: the rounding noise of f32 forward passes,
/// divided by 2H, is about 2e-3, which is `TOLERANCE` of this.
pub const FLOOR: f64 = 0.2;
/// Entries checked per array: all of a small one, this many chosen at random from a large one.
pub const MAX_ENTRIES: usize = 300;

/// The outcome of a check: the worst entry and how many were compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The largest `|analytic - numeric| / max(|analytic|, |numeric|, FLOOR)`.
    pub worst: f64,
    /// Where it occurred: `input[i]` or `{parameter}[i]`, flat row-major indices.
    pub at: String,
    /// The backward pass's value there.
    pub analytic: f64,
    /// The finite differences' value there.
    pub numeric: f64,
    /// The entries compared.
    pub checked: usize,
}

impl Report {
    /// Whether the worst error is within [`TOLERANCE`].
    pub fn passed(&self) -> bool {
        self.worst <= TOLERANCE
    }
}

/// `worst relative error 3.2e-4 at weight[7] (analytic .., numeric ..), 412 entries`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst relative error {:.2e} at {} (analytic {}, numeric {}), {} entries",
            self.worst, self.at, self.analytic, self.numeric, self.checked
        )
    }
}

/// The pass every forward pass of a check runs in.
const PASS: Pass = Pass::Train { seed: 0x000c_4ec4 };

/// Checks `layer`'s input and parameter gradients for a random input of `input_shape`
/// `[B, C, H, W]` drawn from `seed`, and the loss `L = Σ output · r` with a random `r`, so that
/// dL/d(output) = r. The layer's gradients are cleared first and left holding the analytic
/// values; its parameter values are restored.
///
/// # Errors
/// The layer's own errors, and [`Error::InvalidArgument`] when `input_shape` holds more than
/// [`MAX_PARAM_VALUES`] values, or the layer's backward pass gives no input derivative or one
/// of the wrong shape.
pub fn gradients(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) -> Result<Report> {
    let input = random_input(input_shape, seed)?;
    let output = layer.forward(input.view(), PASS)?;
    let r = uniform(output.raw_dim(), seed.wrapping_add(1));
    gradients_with(layer, input, |out| (dot(out, &r), r.clone()))
}

/// As [`gradients`], for `input` and any scalar loss: `loss(output)` returns `(L,
/// dL/d(output))`.
///
/// # Errors
/// As [`gradients`].
pub fn gradients_with(
    layer: &mut dyn Layer,
    input: Array4<f32>,
    loss: impl Fn(&Array4<f32>) -> (f64, Array4<f32>),
) -> Result<Report> {
    let output = layer.forward(input.view(), PASS)?;
    let (_, grad_output) = loss(&output);
    let analytic = backward(layer, &input, &output, &grad_output, Mode::Full)?;
    compare(layer, &input, &analytic, 7, |plus, minus| {
        (loss(plus).0 - loss(minus).0) / (2.0 * f64::from(STEP))
    })
}

/// Checks `layer`'s [`Mode::Curvature`] pass against the Gauss-Newton diagonal it stands for,
/// `Σ_k c_k (∂out_k/∂θ)²` with random `c ≥ 0` and each slope from central differences, for
/// the input of `input_shape` and every parameter. The pass is given a zero `slope`, so that a
/// layer whose curvature adds a term of ∂E/∂output ([`RbfOutput`](crate::RbfOutput)) is held to
/// the plain diagonal. Gradients are cleared first and left holding the curvatures.
///
/// The rule is exact for one layer. Through a stack of several it drops the cross terms
/// between paths (LeCun et al. 1998's diagonal estimate), so check each layer on its own.
///
/// # Errors
/// As [`gradients`].
pub fn curvature(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) -> Result<Report> {
    let input = random_input(input_shape, seed)?;
    let output = layer.forward(input.view(), PASS)?;
    let c = uniform(output.raw_dim(), seed.wrapping_add(1)).mapv(f32::abs);
    let slope = Array4::zeros(output.raw_dim());
    let mode = Mode::Curvature {
        slope: Some(slope.view()),
    };
    let analytic = backward(layer, &input, &output, &c, mode)?;
    compare(layer, &input, &analytic, 8, |plus, minus| {
        let slopes = (plus - minus) / (2.0 * STEP);
        dot(&slopes.mapv(|s| s * s), &c)
    })
}

/// A random input of `shape` drawn from `seed`; an error instead of an allocation when it
/// holds more values than any parameter may ([`MAX_PARAM_VALUES`]).
fn random_input(shape: [usize; 4], seed: u64) -> Result<Array4<f32>> {
    bounded_len(&shape).ok_or_else(|| Error::InvalidArgument {
        what: "check",
        reason: format!("an input of {shape:?} holds more than {MAX_PARAM_VALUES} values"),
    })?;
    Ok(uniform(shape, seed))
}

/// Clears the gradients and runs the backward pass of `mode`, which must return an input
/// derivative of the input's shape.
fn backward<'a>(
    layer: &mut dyn Layer,
    input: &'a Array4<f32>,
    output: &'a Array4<f32>,
    grad_output: &'a Array4<f32>,
    mode: Mode<'a>,
) -> Result<Array4<f32>> {
    for p in layer.params_mut() {
        p.grad.fill(0.0);
    }
    let step = Backward {
        input: input.view(),
        output: output.view(),
        grad_output: grad_output.view(),
        mode,
        pass: PASS,
    };
    let bad = |reason: String| Error::InvalidArgument {
        what: "check",
        reason,
    };
    let name = layer.name();
    match layer.backward(step)? {
        Some(g) if g.dim() == input.dim() => Ok(g),
        Some(g) => Err(bad(format!(
            "{name} returned an input derivative of {:?} for an input of {:?}",
            g.shape(),
            input.shape()
        ))),
        None => Err(bad(format!("{name} returned no input derivative"))),
    }
}

/// Compares `analytic_input` and each parameter's gradient buffer, entry by entry (all of a
/// small array, a sample drawn from `seed` of a large one), with `numeric(out(x + H), out(x -
/// H))` where `x` is that one entry of the input or the parameter.
fn compare(
    layer: &mut dyn Layer,
    input: &Array4<f32>,
    analytic_input: &Array4<f32>,
    seed: u64,
    numeric: impl Fn(&Array4<f32>, &Array4<f32>) -> f64,
) -> Result<Report> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut report = Report {
        worst: 0.0,
        at: "nothing".into(),
        analytic: 0.0,
        numeric: 0.0,
        checked: 0,
    };
    let mut note = |at: &dyn Fn() -> String, analytic: f64, numeric: f64| {
        let error = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(FLOOR);
        // a NaN on either side is the worst there is
        let error = if error.is_nan() { f64::INFINITY } else { error };
        report.checked += 1;
        if report.checked == 1 || error > report.worst {
            report = Report {
                worst: error,
                at: at(),
                analytic,
                numeric,
                checked: report.checked,
            };
        }
    };

    let mut probe = input.clone();
    let flat_input = input
        .as_slice()
        .expect("a fresh array is in standard layout");
    let analytic_input = analytic_input.as_standard_layout();
    let analytic_input = analytic_input.as_slice().expect("standard layout");
    for i in picks(input.len(), &mut rng) {
        let mut at = |h: f32| -> Result<Array4<f32>> {
            probe.as_slice_mut().expect("standard layout")[i] = flat_input[i] + h;
            layer.forward(probe.view(), PASS)
        };
        let numeric = numeric(&at(STEP)?, &at(-STEP)?);
        probe.as_slice_mut().expect("standard layout")[i] = flat_input[i];
        note(
            &|| format!("input[{i}]"),
            f64::from(analytic_input[i]),
            numeric,
        );
    }

    let analytic: Vec<Vec<f32>> = layer
        .params_mut()
        .into_iter()
        .map(|p| p.grad.to_vec())
        .collect();
    for (p, analytic) in analytic.iter().enumerate() {
        let name = layer.params()[p].name;
        for i in picks(analytic.len(), &mut rng) {
            let original = layer.params_mut()[p].value[i];
            let mut at = |h: f32| -> Result<Array4<f32>> {
                layer.params_mut()[p].value[i] = original + h;
                layer.forward(input.view(), PASS)
            };
            let (plus, minus) = (at(STEP), at(-STEP));
            layer.params_mut()[p].value[i] = original;
            let numeric = numeric(&plus?, &minus?);
            note(&|| format!("{name}[{i}]"), f64::from(analytic[i]), numeric);
        }
    }
    Ok(report)
}

/// All indices below `len` when it is small, else `MAX_ENTRIES` of them at random.
fn picks(len: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    if len <= MAX_ENTRIES {
        (0..len).collect()
    } else {
        (0..MAX_ENTRIES).map(|_| rng.random_range(0..len)).collect()
    }
}

/// An array of the given shape, uniform in [-1, 1), from `seed`.
pub(crate) fn uniform<Sh: ShapeBuilder>(shape: Sh, seed: u64) -> Array<f32, Sh::Dim> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    Array::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// `Σ a · b` in f64.
pub(crate) fn dot<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connect;
    use ndarray::ArrayView4;

    /// A crate layer whose backward pass halves what it adds and returns when `halve`.
    #[derive(Debug, Clone)]
    struct Halved {
        inner: Connect,
        halve: bool,
    }

    impl Layer for Halved {
        fn name(&self) -> &'static str {
            "Halved"
        }
        fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
            self.inner.output_shape(input)
        }
        fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>> {
            self.inner.forward(input, pass)
        }
        fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
            let factor = if self.halve { 0.5 } else { 1.0 };
            let grad = self.inner.backward(step)?.map(|g| g * factor);
            for p in self.inner.params_mut() {
                p.grad.iter_mut().for_each(|g| *g *= factor);
            }
            Ok(grad)
        }
        fn params(&self) -> Vec<crate::ParamRef<'_>> {
            self.inner.params()
        }
        fn params_mut(&mut self) -> Vec<crate::ParamMut<'_>> {
            self.inner.params_mut()
        }
    }

    fn halved(halve: bool) -> Halved {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let inner = Connect::new(6, 3, &mut rng)
            .unwrap()
            .with_activation(crate::Activation::Identity);
        Halved { inner, halve }
    }

    #[test]
    fn a_right_backward_passes_and_a_wrong_one_is_found_where_it_is_wrong() {
        let report = gradients(&mut halved(false), [2, 6, 1, 1], 1).unwrap();
        assert!(report.passed(), "{report}");
        // every input, weight and bias entry
        assert_eq!(report.checked, 12 + 18 + 3);
        let report = gradients(&mut halved(true), [2, 6, 1, 1], 1).unwrap();
        assert!(!report.passed());
        // half of the true derivative: a relative error of 1/2 wherever it is not tiny
        assert!((report.worst - 0.5).abs() < 1e-3, "{report}");
    }

    #[test]
    fn a_curvature_pass_that_is_not_the_gauss_newton_diagonal_fails() {
        let report = curvature(&mut halved(false), [2, 6, 1, 1], 9).unwrap();
        assert!(report.passed(), "{report}");
        assert!(
            !curvature(&mut halved(true), [2, 6, 1, 1], 9)
                .unwrap()
                .passed()
        );
    }

    #[test]
    fn an_input_too_large_to_draw_is_an_error_not_an_allocation() {
        for shape in [
            [1 << 20, 6, 1 << 20, 1],
            [usize::MAX, 6, 2, 1],
            [1, 6, 1 << 15, 1 << 13],
        ] {
            let err = gradients(&mut halved(false), shape, 1).unwrap_err();
            assert!(err.to_string().contains("values"), "{err}");
            assert!(curvature(&mut halved(false), shape, 1).is_err());
        }
    }

    #[test]
    fn a_nan_is_the_worst_error_there_is() {
        let mut layer = halved(false);
        let report = gradients_with(&mut layer, Array4::ones((1, 6, 1, 1)), |out| {
            (f64::NAN, Array4::ones(out.raw_dim()))
        })
        .unwrap();
        assert_eq!(report.worst, f64::INFINITY);
        assert!(!report.passed());
    }
}
