//! Optimisers: how a [`Trainer`](crate::train::Trainer) moves the parameters once the gradients
//! of a batch are in.
//!
//! Each keeps its own state (velocities, moments, curvature) per parameter value, in the order
//! of [`Layer::params_mut`](crate::Layer::params_mut), and refuses a step that would make a value
//! non-finite, so a diverging run keeps its last finite weights.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::{multiversion, step_values};
use crate::layer::ParamMut;
use crate::{Error, Result};

/// What an optimiser has learnt while training (moments, velocities, a step count), as a
/// checkpoint keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken, where the optimiser counts them.
    pub steps: u64,
    /// Its buffers, each one vector per parameter in the order of
    /// [`Layer::params_mut`](crate::Layer::params_mut).
    pub buffers: Vec<Vec<Vec<f32>>>,
}

/// `state`'s buffers, or an error naming `optimizer` when it holds another number of them.
fn buffers<const N: usize>(
    optimizer: &'static str,
    state: OptimizerState,
) -> Result<[Vec<Vec<f32>>; N]> {
    let held = state.buffers.len();
    state
        .buffers
        .try_into()
        .map_err(|_| Error::InvalidArgument {
            what: optimizer,
            reason: format!("a state of {held} buffers, {optimizer} keeps {N}"),
        })
}

/// Moves parameters by their gradients (the batch mean), then clears the gradients.
pub trait Optimizer: std::fmt::Debug + Send {
    /// One step at learning rate `lr`. Returns `Ok(false)`, with every value as it was and the
    /// gradients cleared, when the step would make a value non-finite.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`], with nothing changed, when the optimiser keeps state for
    /// parameters of other sizes (it was used on another network).
    fn step(&mut self, params: Vec<ParamMut<'_>>, lr: f32) -> Result<bool>;

    /// Whether a step is `value −= lr · grad` and nothing else (no state, no other rule), so
    /// that a trainer may fuse it into the backward pass of a single sample
    /// ([`Sequential::descend`](crate::Sequential::descend)); false by default.
    fn is_plain_descent(&self) -> bool {
        false
    }

    /// Samples on which to estimate the curvature before each epoch; none by default.
    fn curvature_samples(&self) -> usize {
        0
    }

    /// The estimated diagonal curvature (the mean squared sampled gradient), one vector per
    /// parameter; called before each epoch when [`Optimizer::curvature_samples`] is not zero.
    fn set_curvature(&mut self, _curvature: Vec<Vec<f32>>) {}

    /// What the optimiser has learnt so far, for a checkpoint; nothing by default. An
    /// optimiser that keeps state between steps implements this and [`Optimizer::restore`],
    /// so that a resumed run steps as an uninterrupted one would.
    fn state(&self) -> OptimizerState {
        OptimizerState::default()
    }

    /// Takes back a [`Optimizer::state`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `state` is not one this optimiser gives (the default
    /// takes only an empty one).
    fn restore(&mut self, state: OptimizerState) -> Result<()> {
        buffers::<0>("Optimizer", state).map(drop)
    }
}

/// Writes `next(value, grad, state)` into each value of every parameter when all of them are
/// finite, and changes no value otherwise; clears the gradients either way. `state` holds the
/// value's entries in `states` (buffers shaped like `params`, such as a running mean). Each
/// `next` is computed once ([`step_all`]), and a second pass only clears the gradients, or
/// moves the old values back when some new value is not finite ([`settle`]).
#[inline(always)]
fn update_if_finite<const N: usize>(
    mut params: Vec<ParamMut<'_>>,
    states: [&[Vec<f32>]; N],
    next: impl Fn(f32, f32, [f32; N]) -> f32,
) -> bool {
    let finite = step_all(&mut params, states, next);
    settle_all(&mut params, finite);
    finite
}

/// The first pass of [`update_if_finite`]: `next(value, grad, state)` in place of each value,
/// the old value in place of its gradient ([`step_values`]); whether every new value is
/// finite. The loop reads `states` by position in step with the values, so that it
/// vectorises.
#[inline(always)]
fn step_all<const N: usize>(
    params: &mut [ParamMut<'_>],
    states: [&[Vec<f32>]; N],
    next: impl Fn(f32, f32, [f32; N]) -> f32,
) -> bool {
    let mut finite = true;
    for (k, p) in params.iter_mut().enumerate() {
        let n = p.value.len();
        let mut rows: [&[f32]; N] = [&[]; N];
        for (row, state) in rows.iter_mut().zip(states) {
            *row = &state[k][..n];
        }
        finite &= step_values(p.value, p.grad, |i, v, g| {
            let mut state = [0.0; N];
            for (s, row) in state.iter_mut().zip(rows) {
                *s = row[i];
            }
            next(v, g, state)
        });
    }
    finite
}

/// The second pass after [`step_values`]: the old values back from `grad` unless the whole
/// step was `finite`, then the gradients cleared.
fn settle(value: &mut [f32], grad: &mut [f32], finite: bool) {
    if !finite {
        value.copy_from_slice(grad);
    }
    grad.fill(0.0);
}

/// One zeroed buffer per parameter, shaped like `params`.
fn zeros_like(params: &[ParamMut<'_>]) -> Vec<Vec<f32>> {
    params.iter().map(|p| vec![0.0; p.value.len()]).collect()
}

/// `state`, made for `params` when it is empty; an error when it was made for other sizes.
fn state_for<'s>(
    optimizer: &'static str,
    state: &'s mut Vec<Vec<f32>>,
    params: &[ParamMut<'_>],
) -> Result<&'s mut Vec<Vec<f32>>> {
    if state.is_empty() {
        *state = zeros_like(params);
    }
    check_sizes(optimizer, state, params)?;
    Ok(state)
}

/// That `state` holds one buffer per parameter, each of its parameter's length.
fn check_sizes(optimizer: &'static str, state: &[Vec<f32>], params: &[ParamMut<'_>]) -> Result<()> {
    let had: Vec<usize> = state.iter().map(Vec::len).collect();
    let got: Vec<usize> = params.iter().map(|p| p.value.len()).collect();
    if had != got {
        return Err(Error::InvalidArgument {
            what: optimizer,
            reason: format!(
                "its state is for parameters of sizes {had:?}, these have {got:?}: use a new optimiser for another network"
            ),
        });
    }
    Ok(())
}

/// Plain gradient descent: `value -= lr · grad` (the report's update).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradientDescent;

impl Optimizer for GradientDescent {
    fn step(&mut self, mut params: Vec<ParamMut<'_>>, lr: f32) -> Result<bool> {
        let finite = descend(&mut params, lr);
        settle_all(&mut params, finite);
        Ok(finite)
    }

    fn is_plain_descent(&self) -> bool {
        true
    }
}

multiversion! {
    /// The first half of [`GradientDescent`]'s step, vectorised: each value moved by `−lr ·`
    /// its gradient, the old value left in the gradient ([`step_all`]). Whether every new
    /// value is finite; [`settle_all`] finishes the step.
    fn descend(params: &mut [ParamMut<'_>], lr: f32) -> bool {
        step_all(params, [], |v, g, []| v - lr * g)
    }
}

/// The second half of a step after [`descend`]: [`settle`] for every parameter.
pub(crate) fn settle_all(params: &mut [ParamMut<'_>], finite: bool) {
    for p in params {
        settle(p.value, p.grad, finite);
    }
}

/// Gradient descent with momentum: `velocity = momentum · velocity + grad`,
/// `value -= lr · velocity` (PyTorch's `SGD(momentum=…)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Momentum {
    momentum: f32,
    velocity: Vec<Vec<f32>>,
}

impl Momentum {
    /// Momentum `momentum` (0.9 is usual).
    pub fn new(momentum: f32) -> Self {
        Momentum {
            momentum,
            velocity: Vec::new(),
        }
    }
}

impl Optimizer for Momentum {
    fn step(&mut self, mut params: Vec<ParamMut<'_>>, lr: f32) -> Result<bool> {
        state_for("Momentum", &mut self.velocity, &params)?;
        for (p, velocity) in params.iter_mut().zip(&mut self.velocity) {
            for (u, &g) in velocity.iter_mut().zip(p.grad.iter()) {
                *u = self.momentum * *u + g;
            }
        }
        Ok(update_if_finite(params, [&self.velocity], |v, _, [u]| {
            v - lr * u
        }))
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            steps: 0,
            buffers: vec![self.velocity.clone()],
        }
    }

    fn restore(&mut self, state: OptimizerState) -> Result<()> {
        [self.velocity] = buffers("Momentum", state)?;
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015): per-value steps from running means of the gradient and its square,
/// with bias correction; with a weight decay, AdamW's decoupled decay (Loshchilov & Hutter
/// 2019): each value also shrinks by `lr · weight_decay · value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    steps: i32,
    mean: Vec<Vec<f32>>,
    square: Vec<Vec<f32>>,
}

impl Default for Adam {
    /// β₁ 0.9, β₂ 0.999, ε 1e-8, as in the paper and PyTorch.
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            mean: Vec::new(),
            square: Vec::new(),
        }
    }
}

impl Adam {
    /// The same optimiser with decoupled weight decay `weight_decay` (AdamW).
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: Vec<ParamMut<'_>>, lr: f32) -> Result<bool> {
        state_for("Adam", &mut self.mean, &params)?;
        state_for("Adam", &mut self.square, &params)?;
        Ok(adam_step(self, params, lr))
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            steps: u64::try_from(self.steps).unwrap_or(0),
            buffers: vec![self.mean.clone(), self.square.clone()],
        }
    }

    fn restore(&mut self, state: OptimizerState) -> Result<()> {
        let steps = i32::try_from(state.steps).unwrap_or(i32::MAX);
        [self.mean, self.square] = buffers("Adam", state)?;
        self.steps = steps;
        Ok(())
    }
}

/// Values per task of [`Adam`]'s step on rayon's pool: enough to outweigh handing the task
/// to a thread.
const ADAM_CHUNK: usize = 8192;

/// [`Adam`]'s step over all the cores, once its state fits `params`: the values in chunks of
/// [`ADAM_CHUNK`], each chunk's moments and new values at once ([`adam_chunk`]), then each
/// chunk settled once all are known to be finite. Each value's arithmetic is the same
/// whichever chunk and thread it falls to, so the result does not depend on the threads.
fn adam_step(adam: &mut Adam, params: Vec<ParamMut<'_>>, lr: f32) -> bool {
    adam.steps = adam.steps.saturating_add(1);
    let (b1, b2) = (adam.beta1, adam.beta2);
    let rule = AdamRule {
        b1,
        b2,
        c1: 1.0 - b1.powi(adam.steps),
        c2: 1.0 - b2.powi(adam.steps),
        eps: adam.eps,
        decay: adam.weight_decay,
        lr,
    };
    let mut chunks = Vec::new();
    for (p, (m, s)) in params
        .into_iter()
        .zip(adam.mean.iter_mut().zip(&mut adam.square))
    {
        let values = p
            .value
            .chunks_mut(ADAM_CHUNK)
            .zip(p.grad.chunks_mut(ADAM_CHUNK));
        let moments = m.chunks_mut(ADAM_CHUNK).zip(s.chunks_mut(ADAM_CHUNK));
        chunks.extend(values.zip(moments));
    }
    // every chunk computes its new values (no short cut at the first non-finite one)
    let finite = chunks
        .par_iter_mut()
        .map(|((value, grad), (mean, square))| adam_chunk(&rule, value, grad, mean, square))
        .reduce(|| true, |a, b| a && b);
    chunks
        .par_iter_mut()
        .for_each(|((value, grad), _)| settle(value, grad, finite));
    finite
}

/// The constants of one [`Adam`] step: its betas, their bias corrections for this step, and
/// the rest of its settings.
pub(crate) struct AdamRule {
    b1: f32,
    b2: f32,
    c1: f32,
    c2: f32,
    eps: f32,
    decay: f32,
    lr: f32,
}

multiversion! {
    /// One chunk of [`adam_step`], vectorised: the running means of the gradient and its
    /// square, then [`step_values`] with them; whether every new value is finite.
    fn adam_chunk(rule: &AdamRule, value: &mut [f32], grad: &mut [f32], mean: &mut [f32], square: &mut [f32]) -> bool {
        let AdamRule { b1, b2, c1, c2, eps, decay, lr } = *rule;
        for ((m, s), &g) in mean.iter_mut().zip(square.iter_mut()).zip(grad.iter()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *s = b2 * *s + (1.0 - b2) * g * g;
        }
        let (mean, square) = (&mean[..value.len()], &square[..value.len()]);
        step_values(value, grad, |i, v, _| {
            let (m, s) = (mean[i], square[i]);
            v - lr * (m / c1) / ((s / c2).sqrt() + eps) - lr * decay * v
        })
    }
}

/// Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, Appendix C): each value moves by
/// `lr / (mu + h) · grad`, where `h` is its diagonal curvature, re-estimated on
/// `samples` training samples before each epoch. `mu` keeps the step bounded where the
/// curvature is small.
#[derive(Debug, Clone, PartialEq)]
pub struct Sdlm {
    mu: f32,
    samples: usize,
    curvature: Vec<Vec<f32>>,
    /// A learning rate and `lr / (mu + h)` per value for it, computed once per epoch.
    factors: Option<(f32, Vec<Vec<f32>>)>,
}

impl Sdlm {
    /// The settings of [`Preset::LeCun1998`](crate::Preset::LeCun1998): the curvature
    /// estimated on 500 samples as in the paper (Section III-B), and `mu` 0.5 where the paper
    /// has 0.02. At initialisation the curvature of C1 to S4 is far below 0.02 (means of 2e-6
    /// to 2e-3), so their steps are `lr / mu`: with 0.02 and the paper's first learning rate,
    /// 0.0005, every unit here saturates within the first 10 samples. Over the paper's 20
    /// passes, seed 1, mu 0.2, 0.5 and 1.0 gave 1.56, 1.10 and 1.39 % test error (with the
    /// sample order of an earlier version; seeds 1-3 now give 1.07 to 1.23 % with 0.5).
    pub fn lecun1998() -> Self {
        Self::new(0.5, 500)
    }

    /// `mu` and the number of samples the curvature is estimated on.
    pub fn new(mu: f32, samples: usize) -> Self {
        Sdlm {
            mu,
            samples,
            curvature: Vec::new(),
            factors: None,
        }
    }
}

impl Optimizer for Sdlm {
    fn step(&mut self, params: Vec<ParamMut<'_>>, lr: f32) -> Result<bool> {
        if !self.curvature.is_empty() {
            check_sizes("Sdlm", &self.curvature, &params)?;
        }
        let stale = |factors: &Vec<Vec<f32>>| check_sizes("Sdlm", factors, &params).is_err();
        if self
            .factors
            .as_ref()
            .is_none_or(|(at, factors)| *at != lr || stale(factors))
        {
            // before any estimate the curvature counts as zero
            let (curvature, mu) = (&self.curvature, self.mu);
            let h = |k: usize, i: usize| curvature.get(k).map_or(0.0, |c: &Vec<f32>| c[i]);
            let factors = params
                .iter()
                .enumerate()
                .map(|(k, p)| (0..p.value.len()).map(|i| lr / (mu + h(k, i))).collect())
                .collect();
            self.factors = Some((lr, factors));
        }
        let (_, factors) = self.factors.as_ref().expect("computed above");
        Ok(update_if_finite(params, [factors], |v, g, [f]| v - f * g))
    }

    fn curvature_samples(&self) -> usize {
        self.samples
    }

    fn set_curvature(&mut self, curvature: Vec<Vec<f32>>) {
        self.curvature = curvature;
        self.factors = None;
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            steps: 0,
            buffers: vec![self.curvature.clone()],
        }
    }

    fn restore(&mut self, state: OptimizerState) -> Result<()> {
        let [curvature] = buffers("Sdlm", state)?;
        self.set_curvature(curvature);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Runs `steps` steps of `opt` on one parameter `[value]` with gradient `grad` each time.
    fn run(opt: &mut dyn Optimizer, value: f32, grad: f32, steps: usize, lr: f32) -> f32 {
        let mut v = [value];
        for _ in 0..steps {
            let mut g = [grad];
            let param = ParamMut {
                name: "w",
                value: &mut v,
                grad: &mut g,
            };
            assert!(opt.step(vec![param], lr).unwrap());
            assert_eq!(g, [0.0]);
        }
        v[0]
    }

    #[test]
    fn updates_by_hand() {
        assert_relative_eq!(run(&mut GradientDescent, 1.0, 2.0, 1, 0.1), 0.8);
        // velocities 2, 3.8: 1 - 0.1 · (2 + 3.8)
        assert_relative_eq!(run(&mut Momentum::new(0.9), 1.0, 2.0, 2, 0.1), 0.42);
        // Adam's bias-corrected first steps are lr · sign(grad)
        assert_relative_eq!(
            run(&mut Adam::default(), 1.0, 2.0, 3, 0.1),
            0.7,
            max_relative = 1e-5
        );
        // a gradient near eps: the first step is lr · g / (|g| + eps) = 0.1 · 1e-9 / 1.1e-8
        assert_relative_eq!(
            run(&mut Adam::default(), 1.0, 1e-9, 1, 0.1),
            1.0 - 0.1 / 11.0,
            max_relative = 1e-6
        );
        // zero gradient: only the decay, 1 - 0.1 · 0.5 · 1
        let mut adamw = Adam::default().with_weight_decay(0.5);
        assert_relative_eq!(run(&mut adamw, 1.0, 0.0, 1, 0.1), 0.95, max_relative = 1e-6);
        // no curvature yet: lr / mu; with h = 0.03: 1 - 0.01 / 0.05 · 2
        let mut sdlm = Sdlm::new(0.02, 10);
        assert_relative_eq!(run(&mut sdlm, 1.0, 2.0, 1, 0.01), 0.0);
        sdlm.set_curvature(vec![vec![0.03]]);
        assert_relative_eq!(run(&mut sdlm, 1.0, 2.0, 1, 0.01), 0.6, max_relative = 1e-6);
        // a new rate makes new step factors: 1 - 0.02 / 0.05 · 2
        assert_relative_eq!(run(&mut sdlm, 1.0, 2.0, 1, 0.02), 0.2, max_relative = 1e-6);
        assert_eq!(sdlm.curvature_samples(), 10);
    }

    #[test]
    fn only_sdlm_wants_curvature_and_a_stateless_optimiser_takes_no_state() {
        for opt in [
            &GradientDescent as &dyn Optimizer,
            &Momentum::new(0.9),
            &Adam::default(),
        ] {
            assert_eq!(opt.curvature_samples(), 0, "{opt:?}");
        }
        assert_eq!(Sdlm::new(0.5, 7).curvature_samples(), 7);
        let mut sgd = GradientDescent;
        assert_eq!(sgd.state(), OptimizerState::default());
        sgd.restore(OptimizerState::default()).unwrap();
        let held = OptimizerState {
            steps: 3,
            buffers: vec![vec![vec![1.0]]],
        };
        let err = sgd.restore(held).unwrap_err().to_string();
        assert!(err.contains("1 buffers"), "{err}");
    }

    #[test]
    fn a_restored_state_steps_as_the_optimiser_it_came_from() {
        let optimisers = || -> [Box<dyn Optimizer>; 3] {
            [
                Box::new(Momentum::new(0.9)),
                Box::new(Adam::default().with_weight_decay(0.1)),
                Box::new(Sdlm::new(0.5, 1)),
            ]
        };
        for (mut opt, mut resumed) in optimisers().into_iter().zip(optimisers()) {
            opt.set_curvature(vec![vec![0.25]]);
            let value = run(opt.as_mut(), 1.0, 2.0, 3, 0.1);
            resumed.restore(opt.state()).unwrap();
            assert_eq!(resumed.state(), opt.state(), "{opt:?}");
            // another gradient, so that the kept state shows in the steps
            let after = run(opt.as_mut(), value, -0.5, 2, 0.1);
            assert_eq!(run(resumed.as_mut(), value, -0.5, 2, 0.1), after, "{opt:?}");
        }
    }

    #[test]
    fn a_step_to_infinity_changes_nothing() {
        for opt in [
            &mut GradientDescent as &mut dyn Optimizer,
            &mut Momentum::new(0.9),
            &mut Sdlm::new(0.02, 1),
        ] {
            // the first parameter's new values are finite (-1e30 and 2), the second's not
            let (mut v, mut g) = ([1.0, 2.0], [1.0, 0.0]);
            let (mut w, mut h) = ([3.0], [1e30]);
            let params = vec![
                ParamMut {
                    name: "v",
                    value: &mut v,
                    grad: &mut g,
                },
                ParamMut {
                    name: "w",
                    value: &mut w,
                    grad: &mut h,
                },
            ];
            assert!(!opt.step(params, 1e30).unwrap());
            assert_eq!((v, g, w, h), ([1.0, 2.0], [0.0, 0.0], [3.0], [0.0]));
        }
    }

    #[test]
    fn adam_over_chunks_matches_its_formula_on_any_number_of_threads() {
        let n = 2 * ADAM_CHUNK + 5;
        let grads =
            |step: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7 + step) as f32).sin()).collect() };
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).cos()).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut adam = Adam::default().with_weight_decay(0.01);
                let mut v = start.clone();
                for step in 0..3 {
                    let mut g = grads(step);
                    let param = ParamMut {
                        name: "w",
                        value: &mut v,
                        grad: &mut g,
                    };
                    assert!(adam.step(vec![param], 0.1).unwrap());
                    assert!(g.iter().all(|&g| g == 0.0));
                }
                v
            })
        };
        // the formula one value at a time, with the same operations
        let (b1, b2, eps, decay, lr) = (0.9f32, 0.999f32, 1e-8f32, 0.01f32, 0.1f32);
        let mut expected = start.clone();
        let (mut m, mut s) = (vec![0.0f32; n], vec![0.0f32; n]);
        for step in 0..3 {
            // at run time, as the optimiser computes them (`powi` folded at compile time may
            // round otherwise)
            let power = |b: f32| std::hint::black_box(b).powi(step + 1);
            let (c1, c2) = (1.0 - power(b1), 1.0 - power(b2));
            for (i, g) in grads(step as usize).into_iter().enumerate() {
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                s[i] = b2 * s[i] + (1.0 - b2) * g * g;
                let v = expected[i];
                expected[i] = v - lr * (m[i] / c1) / ((s[i] / c2).sqrt() + eps) - lr * decay * v;
            }
        }
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(run(1)), bits(expected.clone()));
        assert_eq!(bits(run(2)), bits(expected));
    }

    #[test]
    fn adam_refuses_a_step_whole_when_one_chunk_is_not_finite() {
        let n = 2 * ADAM_CHUNK + 5;
        let start: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let (mut v, mut g) = (start.clone(), vec![0.5; n]);
        g[n - 1] = f32::NAN;
        let param = ParamMut {
            name: "w",
            value: &mut v,
            grad: &mut g,
        };
        assert!(!Adam::default().step(vec![param], 0.1).unwrap());
        assert_eq!(v, start);
        assert!(g.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn an_optimiser_refuses_a_network_of_other_sizes() {
        let step = |opt: &mut dyn Optimizer, n: usize| {
            let (mut v, mut g) = (vec![1.0; n], vec![0.5; n]);
            let param = ParamMut {
                name: "w",
                value: &mut v,
                grad: &mut g,
            };
            let result = opt.step(vec![param], 0.1);
            (result, v)
        };
        let mut sdlm = Sdlm::new(0.5, 1);
        sdlm.set_curvature(vec![vec![0.1; 3]]);
        for opt in [
            &mut Momentum::new(0.9) as &mut dyn Optimizer,
            &mut Adam::default(),
            &mut sdlm,
        ] {
            assert!(step(opt, 3).0.unwrap());
            let (result, v) = step(opt, 4);
            let err = result.unwrap_err().to_string();
            assert!(err.contains("[3]") && err.contains("[4]"), "{err}");
            assert_eq!(v, vec![1.0; 4]);
        }
    }
}
