//! The layers, one file each: forward and backward side by side, tests below.

pub mod activation;
pub mod connect;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod flatten;
pub mod max_pool;
pub mod rbf_output;
pub mod subsampling;

use ndarray::{Array, Array1, Array2, Dimension, IntoDimension};
use rand::{Rng, RngExt};

use activation::Activation;
use serde::{Deserialize, Serialize};

use crate::kernels::{DenseStep, dense_step_apply, dense_step_check};
use crate::layer::{Backward, Descended, Layer, LayerConfig, Param};
use crate::{Connect, Conv, Dropout, Error, Flatten, MaxPool, RbfOutput, Result, Subsampling};

/// How a layer's trainable values are drawn, from each unit's fan-in `F` (its number of inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Init {
    /// The layer's activation's own, what `new` draws: weights and biases uniform in
    /// ±g / √F, with the gain g = √6 for ReLU (He et al. 2015), 4√3 for the sigmoid (its slope
    /// is at most 1/4), and √3 for the others (variance 1 / F, LeCun's). A new stack of
    /// default layers, sigmoid or ReLU, reaches over 90 % on MNIST after one epoch of
    /// [`Trainer::default`](crate::train::Trainer::default).
    #[default]
    Default,
    /// Weights and biases uniform in [-1, 1): the report's.
    Report,
    /// Weights and biases uniform in ±2.4 / F (LeCun et al. 1998, Appendix A), so that the
    /// weighted sums fall where the scaled tanh is steepest.
    LeCun,
    /// Weights uniform in ±√(6 / F), variance 2 / F (He et al. 2015), biases zero: for ReLU.
    He,
}

impl Init {
    /// A value for a weight of a unit with fan-in `fan_in` and `activation`.
    pub(crate) fn weight(self, fan_in: usize, activation: Activation, rng: &mut impl Rng) -> f32 {
        let f = fan_in as f32;
        let bound = match self {
            Init::Default => gain(activation) / f.sqrt(),
            Init::Report => 1.0,
            Init::LeCun => 2.4 / f,
            Init::He => (6.0 / f).sqrt(),
        };
        rng.random_range(-bound..bound)
    }

    /// `[n]` biases for units whose fan-ins are `fan_in(i)`.
    pub(crate) fn biases(
        self,
        n: usize,
        fan_in: impl Fn(usize) -> usize,
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Array1<f32> {
        match self {
            Init::He => Array1::zeros(n),
            _ => Array1::from_shape_fn(n, |i| self.weight(fan_in(i), activation, rng)),
        }
    }
}

/// The gain of [`Init::Default`] for `activation`.
pub(crate) fn gain(activation: Activation) -> f32 {
    match activation {
        Activation::Relu => 6f32.sqrt(),
        Activation::Sigmoid => 4.0 * 3f32.sqrt(),
        _ => 3f32.sqrt(),
    }
}

/// The factor that turns [`Init::Default`] values drawn for `from` into those for `to`: the
/// bounds differ only in their gain.
pub(crate) fn regain(from: Activation, to: Activation) -> f32 {
    gain(to) / gain(from)
}

/// The most values one parameter array may hold, 2^28 (1 GiB of `f32`, as much again for its
/// gradient): a constructor asked for more returns an error instead of failing to allocate.
pub const MAX_PARAM_VALUES: usize = 1 << 28;

/// An array of `shape` of zeros, allocated only if it can be.
///
/// # Errors
/// As [`try_filled`].
pub(crate) fn zeros_param<D: Dimension>(
    layer: &'static str,
    shape: impl IntoDimension<Dim = D>,
) -> Result<Array<f32, D>> {
    try_filled(layer, shape, || 0.0)
}

/// A dense layer's (a [`Connect`]'s, a [`Conv`]'s with one output position) side of
/// [`Layer::backward_descend`] and [`Layer::end_descend`]: the step begun and not yet ended,
/// and whether its gradient buffers are known to hold zeros, so that a step need not read
/// them (nor clear them after).
#[derive(Debug, Clone)]
pub(crate) struct DenseDescent {
    /// The last step's dL/d(sums) `[P]` and input `[R]`, kept from one step to the next so
    /// that their room is not allocated again.
    g: Vec<f32>,
    x: Vec<f32>,
    /// The rate of the step begun, if any, and whether its check read the gradient buffers
    /// (so that the end steps what the check checked).
    pending: Option<(f32, bool)>,
    /// No gradient added since the buffers were last left at zero.
    clear: bool,
}

impl DenseDescent {
    /// For a layer whose gradient buffers hold zeros.
    pub(crate) fn new() -> Self {
        Self {
            g: Vec::new(),
            x: Vec::new(),
            pending: None,
            clear: true,
        }
    }

    /// The step of `g` and `x` at rate `lr`, the buffers read when `held`.
    fn step(&self, lr: f32, held: bool) -> DenseStep<'_> {
        DenseStep {
            g: &self.g,
            x: &self.x,
            lr,
            held,
        }
    }

    /// The gradient buffers may hold something now (a backward pass added to them, or they
    /// were handed out): the next step reads them.
    pub(crate) fn touched(&mut self) {
        self.clear = false;
    }

    /// Begins the step once the gradient of the sums `grad` `[1, P, 1, 1]` is known: `weight`
    /// `[P, R]` and `bias` `[P]` (any shapes of those sizes) are read, not changed; the input
    /// comes from `step` (`R` values). dL/d(input), in the shape of that input, when `step`
    /// wants it, and whether the step keeps every value finite ([`dense_step_check`]).
    pub(crate) fn begin<D: Dimension>(
        &mut self,
        (weight, bias): (&Param<D>, &Param<ndarray::Ix1>),
        grad: &ndarray::Array4<f32>,
        step: &Backward<'_>,
        lr: f32,
    ) -> Descended {
        refill(&mut self.g, grad.view());
        refill(&mut self.x, step.input.view());
        let held = !self.clear;
        let wanted = step.wants_input();
        let mut grad_input = ndarray::Array4::zeros(if wanted {
            step.input.raw_dim()
        } else {
            ndarray::Dim([0; 4])
        });
        let finite = dense_step_check(
            (flat(&weight.value), flat(&weight.grad)),
            (flat(&bias.value), flat(&bias.grad)),
            self.step(lr, held),
            grad_input.as_slice_mut().expect("fresh array"),
        );
        self.pending = Some((lr, held));
        Descended {
            grad_input: wanted.then_some(grad_input),
            finite,
        }
    }

    /// Ends the step begun: the values moved when `apply` ([`dense_step_apply`], which
    /// clears the buffers it read), the buffers left at zero either way. Nothing when no step
    /// was begun.
    pub(crate) fn end<D: Dimension>(
        &mut self,
        (weight, bias): (&mut Param<D>, &mut Param<ndarray::Ix1>),
        apply: bool,
    ) {
        let Some((lr, held)) = self.pending.take() else {
            return;
        };
        if apply {
            dense_step_apply(
                (flat_mut(&mut weight.value), flat_mut(&mut weight.grad)),
                (flat_mut(&mut bias.value), flat_mut(&mut bias.grad)),
                self.step(lr, held),
            );
        }
        // unless known clear or cleared by the step, the buffers may hold a gradient the step
        // did not take, or one added since it began
        let cleared = self.clear || (apply && held);
        if !cleared {
            weight.grad.fill(0.0);
            bias.grad.fill(0.0);
        }
        self.clear = true;
    }
}

/// `values` holding `array`'s values in logical order (copied as one slice when the array is
/// in standard layout).
fn refill(values: &mut Vec<f32>, array: ndarray::ArrayView4<f32>) {
    values.clear();
    match array.as_slice() {
        Some(slice) => values.extend_from_slice(slice),
        None => values.extend(array.iter().copied()),
    }
}

/// The values of a parameter's array, which [`Param`] keeps in standard layout.
fn flat<D: Dimension>(a: &Array<f32, D>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

/// [`flat`], to change.
fn flat_mut<D: Dimension>(a: &mut Array<f32, D>) -> &mut [f32] {
    a.as_slice_mut().expect("standard layout")
}

/// The number of values `sizes` make, if it is at most [`MAX_PARAM_VALUES`]: the largest
/// array the crate allocates from sizes a caller gives.
pub(crate) fn bounded_len(sizes: &[usize]) -> Option<usize> {
    crate::layer::product(sizes).filter(|&n| n <= MAX_PARAM_VALUES)
}

/// An array of `shape` whose values `fill` gives in row-major order, allocated only if it
/// can be.
///
/// # Errors
/// [`Error::InvalidArgument`] when a size is zero, the sizes multiply past
/// [`MAX_PARAM_VALUES`], or the memory cannot be had.
fn try_filled<D: Dimension>(
    layer: &'static str,
    shape: impl IntoDimension<Dim = D>,
    fill: impl FnMut() -> f32,
) -> Result<Array<f32, D>> {
    let shape = shape.into_dimension();
    let bad = |reason: String| Error::InvalidArgument {
        what: layer,
        reason,
    };
    let sizes = shape.slice();
    if sizes.contains(&0) {
        return Err(bad(format!("every size must be positive, got {sizes:?}")));
    }
    let len = bounded_len(sizes).ok_or_else(|| {
        bad(format!(
            "sizes {sizes:?} make more than {MAX_PARAM_VALUES} values in one parameter"
        ))
    })?;
    let mut values = Vec::new();
    values
        .try_reserve_exact(len)
        .map_err(|e| bad(format!("cannot allocate {len} values: {e}")))?;
    values.extend(std::iter::repeat_with(fill).take(len));
    Ok(Array::from_shape_vec(shape, values).expect("the length is the product of the sizes"))
}

/// The number of trainable values a layer of `config` holds, or `None` when its sizes
/// overflow or it is not one of this crate's layers.
pub(crate) fn param_values(config: &LayerConfig) -> Option<usize> {
    let weights_and_biases =
        |outputs: usize, per_output: usize| outputs.checked_mul(per_output)?.checked_add(outputs);
    match *config {
        LayerConfig::Conv {
            in_channels,
            out_channels,
            kernel,
            ..
        } => weights_and_biases(
            out_channels,
            in_channels.checked_mul(kernel)?.checked_mul(kernel)?,
        ),
        LayerConfig::Subsampling { channels, .. } => channels.checked_mul(2),
        LayerConfig::Connect {
            inputs, outputs, ..
        } => weights_and_biases(outputs, inputs),
        LayerConfig::RbfOutput { .. }
        | LayerConfig::MaxPool { .. }
        | LayerConfig::Activation { .. }
        | LayerConfig::Flatten
        | LayerConfig::Dropout { .. } => Some(0),
        LayerConfig::Other { .. } => None,
    }
}

/// A layer of this crate built from `config`, with every parameter zero (for loading).
///
/// # Errors
/// [`Error::InvalidArgument`] for [`LayerConfig::Other`] (a layer this crate cannot build),
/// for sizes that cannot be held, and for fixed values of the wrong length; the layer's own
/// errors for sizes it refuses.
pub fn from_config(config: &LayerConfig) -> Result<Box<dyn Layer>> {
    let zeros1 = |layer, n: usize| try_filled(layer, n, || 0.0);
    Ok(match config {
        &LayerConfig::Conv {
            in_channels,
            out_channels,
            kernel,
            activation,
            ref connections,
        } => {
            let weight = try_filled("Conv", [out_channels, in_channels, kernel, kernel], || 0.0)?;
            let conv = Conv::from_params(weight, zeros1("Conv", out_channels)?)?
                .with_activation(activation);
            match connections {
                None => Box::new(conv),
                Some(table) => {
                    let table = Array2::from_shape_vec((out_channels, in_channels), table.clone())
                        .map_err(|e| Error::InvalidArgument {
                            what: "Conv",
                            reason: format!("a connection table of {} entries: {e}", table.len()),
                        })?;
                    Box::new(conv.with_connections(table)?)
                }
            }
        }
        &LayerConfig::Subsampling {
            channels,
            kernel,
            activation,
        } => Box::new(
            Subsampling::from_params(
                kernel,
                zeros1("Subsampling", channels)?,
                zeros1("Subsampling", channels)?,
            )?
            .with_activation(activation),
        ),
        &LayerConfig::Connect {
            inputs,
            outputs,
            activation,
        } => Box::new(
            Connect::from_params(
                try_filled("Connect", [outputs, inputs], || 0.0)?,
                zeros1("Connect", outputs)?,
            )?
            .with_activation(activation),
        ),
        LayerConfig::RbfOutput {
            classes,
            inputs,
            prototypes,
        } => {
            let weight =
                Array2::from_shape_vec((*classes, *inputs), prototypes.clone()).map_err(|e| {
                    Error::InvalidArgument {
                        what: "RbfOutput",
                        reason: format!(
                            "{} prototype values for {classes}x{inputs}: {e}",
                            prototypes.len()
                        ),
                    }
                })?;
            Box::new(RbfOutput::from_params(weight)?)
        }
        &LayerConfig::MaxPool { kernel } => Box::new(MaxPool::new(kernel)?),
        &LayerConfig::Activation { activation } => {
            elementwise::boxed(activation).ok_or_else(|| Error::InvalidArgument {
                what: "layers::from_config",
                reason: format!("there is no standalone {activation:?} layer"),
            })?
        }
        LayerConfig::Flatten => Box::new(Flatten),
        &LayerConfig::Dropout { rate, seed } => Box::new(Dropout::new(rate, seed)?),
        LayerConfig::Other { name } => {
            return Err(Error::InvalidArgument {
                what: "layers::from_config",
                reason: format!(
                    "{name} is not one of this crate's layers: build the stack yourself and load its weights"
                ),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::layer::{Backward, Layer, Mode, Pass};
    use crate::testing::uniform;
    use crate::train::{GradientDescent, Optimizer};
    use crate::{Connect, Conv, Subsampling};
    use rand::SeedableRng;

    /// Each value and gradient of `layer`.
    fn values_and_grads(layer: &mut dyn Layer) -> (Vec<f32>, Vec<f32>) {
        let params = layer.params_mut();
        let values = params
            .iter()
            .flat_map(|p| p.value.iter().copied())
            .collect();
        (
            values,
            params.iter().flat_map(|p| p.grad.iter().copied()).collect(),
        )
    }

    /// The backward step of a prediction pass from `input` to `output`, with `grad_output`.
    fn predicted<'a>(
        input: &'a ndarray::Array4<f32>,
        output: &'a ndarray::Array4<f32>,
        grad_output: &'a ndarray::Array4<f32>,
        mode: Mode<'a>,
    ) -> Backward<'a> {
        Backward {
            input: input.view(),
            output: output.view(),
            grad_output: grad_output.view(),
            mode,
            pass: Pass::Predict,
        }
    }

    #[test]
    fn dense_layers_fuse_a_step_with_the_bits_of_backward_then_descent() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let table = ndarray::array![[true, false], [true, true], [false, true]];
        let conv = || {
            Conv::new(
                2,
                3,
                2,
                &mut rand::rngs::Xoshiro256PlusPlus::seed_from_u64(2),
            )
        };
        // (layer, input shape, whether it fuses)
        let cases: Vec<(Box<dyn Layer>, [usize; 4], bool)> = vec![
            (
                Box::new(Connect::new(6, 4, &mut rng).unwrap()),
                [1, 6, 1, 1],
                true,
            ),
            (
                Box::new(Connect::flattening([2, 2, 2], 3, &mut rng).unwrap()),
                [1, 2, 2, 2],
                true,
            ),
            (Box::new(conv().unwrap()), [1, 2, 2, 2], true),
            (
                Box::new(Connect::new(6, 4, &mut rng).unwrap()),
                [2, 6, 1, 1],
                false,
            ),
            (Box::new(conv().unwrap()), [1, 2, 3, 3], false),
            (
                Box::new(conv().unwrap().with_connections(table).unwrap()),
                [1, 2, 2, 2],
                false,
            ),
        ];
        for (layer, shape, fuses) in cases {
            let input = uniform(shape, 3);
            let output = layer.forward(input.view(), Pass::Predict).unwrap();
            let grad_output = uniform(output.raw_dim(), 4);
            // the last: steps of 1e38 · (gradients of about 1e4) overflow
            let huge = &grad_output * 1e6;
            let cases = [
                (Mode::Full, 0.5, &grad_output, true),
                (Mode::Params, 0.5, &grad_output, true),
                (Mode::Full, 1e38, &huge, false),
            ];
            // a gradient already in the buffers, or none since the layer was made
            for ((mode, lr, grad_output, finite), held) in
                cases.into_iter().flat_map(|c| [(c, false), (c, true)])
            {
                let step = predicted(&input, &output, grad_output, mode);
                let mut layer = layer.clone();
                if held {
                    let earlier = Backward {
                        grad_output: output.view(),
                        ..step
                    };
                    layer.backward(earlier).unwrap();
                }
                let mut plain = layer.clone();
                let values = |layer: &dyn Layer| {
                    layer
                        .params()
                        .iter()
                        .flat_map(|p| p.value.to_vec())
                        .collect::<Vec<_>>()
                };
                let old = values(layer.as_ref());
                let Some(descended) = layer.backward_descend(step, lr) else {
                    assert!(!fuses, "{shape:?}");
                    continue;
                };
                assert!(fuses, "{shape:?}");
                let descended = descended.unwrap();
                let grad_input = plain.backward(step).unwrap();
                let plain_finite = GradientDescent.step(plain.params_mut(), lr).unwrap();
                assert_eq!((descended.finite, plain_finite), (finite, finite));
                assert_eq!(descended.grad_input, grad_input);
                // nothing moves before the step ends, which the caller asks for when every
                // layer's is finite
                assert_eq!(values(layer.as_ref()), old);
                layer.end_descend(descended.finite);
                let (stepped, buffers) = values_and_grads(layer.as_mut());
                assert_eq!(
                    stepped,
                    if finite {
                        values(plain.as_ref())
                    } else {
                        old.clone()
                    },
                    "{shape:?} {held}"
                );
                assert!(buffers.iter().all(|&g| g == 0.0));
                // a step taken back, the values as they were
                if finite {
                    let mut back = plain.clone();
                    back.backward_descend(step, lr).unwrap().unwrap();
                    back.end_descend(false);
                    assert_eq!(values(back.as_ref()), values(plain.as_ref()));
                }
            }
        }
    }

    #[test]
    fn a_step_is_refused_when_only_a_weight_or_only_a_bias_would_overflow() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(8);
        let identity = crate::Activation::Identity;
        let dense: [Box<dyn Layer>; 2] = [
            Box::new(
                Connect::new(3, 2, &mut rng)
                    .unwrap()
                    .with_activation(identity),
            ),
            Box::new(
                Conv::new(3, 2, 1, &mut rng)
                    .unwrap()
                    .with_activation(identity),
            ),
        ];
        // (input, rate) with g = 10: the weights' step lr · g · x overflows and the bias's
        // lr · g does not, or the other way round (x = 0 leaves the weights' step at zero)
        let cases = [(1e30, 1e10), (0.0, 1e38)];
        for layer in dense {
            for ((x, lr), full) in cases.into_iter().flat_map(|c| [(c, true), (c, false)]) {
                let mode = if full { Mode::Full } else { Mode::Params };
                let input = ndarray::Array4::from_elem((1, 3, 1, 1), x);
                let output = layer.forward(input.view(), Pass::Predict).unwrap();
                let grad_output = ndarray::Array4::from_elem(output.raw_dim(), 10.0);
                let step = predicted(&input, &output, &grad_output, mode);
                let mut fused = layer.clone();
                let descended = fused.backward_descend(step, lr).unwrap().unwrap();
                let mut plain = layer.clone();
                plain.backward(step).unwrap();
                assert!(!GradientDescent.step(plain.params_mut(), lr).unwrap());
                assert!(!descended.finite, "{} {x} {lr} {full}", layer.name());
            }
        }
    }

    #[test]
    fn a_gradient_added_while_a_step_is_pending_is_cleared_not_stepped() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
        let layer = Connect::new(3, 2, &mut rng).unwrap();
        let input = uniform([1, 3, 1, 1], 6);
        let output = layer.forward(input.view(), Pass::Predict).unwrap();
        let grad_output = uniform(output.raw_dim(), 7);
        let step = predicted(&input, &output, &grad_output, Mode::Full);
        let mut plain = layer.clone();
        plain.backward(step).unwrap();
        GradientDescent.step(plain.params_mut(), 0.5).unwrap();
        for apply in [true, false] {
            let mut fused = layer.clone();
            let before = values_and_grads(&mut fused.clone()).0;
            assert!(fused.backward_descend(step, 0.5).unwrap().unwrap().finite);
            for p in fused.params_mut() {
                p.grad.fill(1.0);
            }
            fused.end_descend(apply);
            let (values, buffers) = values_and_grads(&mut fused);
            let expected = if apply {
                values_and_grads(&mut plain).0
            } else {
                before
            };
            assert_eq!(values, expected, "{apply}");
            assert!(buffers.iter().all(|&g| g == 0.0), "{apply}");
        }
    }

    #[test]
    fn sizes_too_large_to_hold_are_errors_not_aborts() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
        assert!(Conv::new(usize::MAX, 2, 3, &mut rng).is_err());
        assert!(Conv::new(1, 2, 1 << 33, &mut rng).is_err());
        assert!(Connect::new(1 << 20, 1 << 20, &mut rng).is_err());
        let err = Subsampling::new(usize::MAX, 2, &mut rng).unwrap_err();
        assert!(
            err.to_string().contains("more than 268435456 values"),
            "{err}"
        );
        // one value over the bound
        assert!(Connect::new(1 << 14, (1 << 14) + 1, &mut rng).is_err());
    }
}
