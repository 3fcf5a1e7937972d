//! [`Sgd`]: the report's training schedule, per-sample stochastic gradient descent.

use std::ops::ControlFlow;
use std::time::Instant;

use ndarray::Array4;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::eval::evaluate;
use super::loss::softmax_cross_entropy;
use crate::data::mnist::{CLASSES, Dataset};
use crate::{Error, Layer, Result};

/// Per-sample SGD with the report's schedule as its default.
///
/// Each epoch takes every training example with probability `sample_fraction`, in data set
/// order; after each sample every parameter moves by `-lr · gradient`. After each epoch the
/// learning rate is multiplied by `lr_decay`.
///
/// | setting | default (the report's) |
/// |---|---|
/// | `lr` | 0.5 |
/// | `lr_decay` | 0.95 per epoch |
/// | `epochs` | 20 |
/// | `sample_fraction` | 0.1 (6 000 of 60 000) |
/// | `seed` | 1 (which samples each epoch takes) |
///
/// ```
/// use lenet5::train::Sgd;
/// let sgd = Sgd::default().with_epochs(3).with_lr(0.1);
/// assert_eq!(sgd.epochs(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    lr: f32,
    lr_decay: f32,
    epochs: usize,
    sample_fraction: f64,
    seed: u64,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 0.5,
            lr_decay: 0.95,
            epochs: 20,
            sample_fraction: 0.1,
            seed: 1,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean loss over the samples taken.
    pub loss: f64,
    /// Accuracy on the whole training set after the epoch.
    pub accuracy: f64,
    /// The learning rate used during the epoch.
    pub lr: f32,
    /// Samples taken.
    pub samples: usize,
    /// Wall time of the epoch, training and evaluation, in seconds.
    pub seconds: f64,
}

/// What [`Sgd::train`] reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A sample of `epoch` was trained on; `done` of about `expected` so far.
    Sample {
        /// 1-based.
        epoch: usize,
        /// Samples trained on so far in this epoch.
        done: usize,
        /// `sample_fraction · len`, the expected number of samples in the epoch.
        expected: usize,
    },
    /// An epoch ended.
    Epoch(&'a EpochStats),
}

impl Sgd {
    /// The report's schedule (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the initial learning rate.
    pub fn with_lr(mut self, lr: f32) -> Self {
        self.lr = lr;
        self
    }

    /// Sets the factor applied to the learning rate after each epoch.
    pub fn with_lr_decay(mut self, lr_decay: f32) -> Self {
        self.lr_decay = lr_decay;
        self
    }

    /// Sets the number of epochs.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets the probability with which each example is taken in an epoch.
    pub fn with_sample_fraction(mut self, sample_fraction: f64) -> Self {
        self.sample_fraction = sample_fraction;
        self
    }

    /// Sets the seed that picks each epoch's samples.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The number of epochs.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Moves every parameter of `net` by `-lr · grad` and clears the gradients.
    pub fn step(net: &mut (impl Layer + ?Sized), lr: f32) {
        for p in net.params_mut() {
            for (v, g) in p.value.iter_mut().zip(p.grad.iter_mut()) {
                *v -= lr * *g;
                *g = 0.0;
            }
        }
    }

    /// [`Sgd::step`] when it leaves every parameter finite; otherwise clears the gradients,
    /// leaves the values as they are, and returns `false`.
    fn step_if_finite(net: &mut (impl Layer + ?Sized), lr: f32) -> bool {
        // one read-only pass first, so that a bad step changes nothing
        let finite = net.params_mut().iter().all(|p| {
            let each = p.value.iter().zip(p.grad.iter());
            each.fold(true, |ok, (v, g)| ok & (v - lr * g).is_finite())
        });
        if finite {
            Self::step(net, lr);
        } else {
            net.params_mut().into_iter().for_each(|p| p.grad.fill(0.0));
        }
        finite
    }

    fn validate(&self, data: &Dataset) -> Result<()> {
        let invalid = |what, reason: String| Err(Error::InvalidArgument { what, reason });
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid(
                "Sgd::lr",
                format!("must be positive and finite, got {}", self.lr),
            );
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0) {
            return invalid(
                "Sgd::lr_decay",
                format!("must be positive and finite, got {}", self.lr_decay),
            );
        }
        if self.epochs == 0 {
            return invalid("Sgd::epochs", "must be at least 1, got 0".into());
        }
        if !(self.sample_fraction > 0.0 && self.sample_fraction <= 1.0) {
            return invalid(
                "Sgd::sample_fraction",
                format!("must be in (0, 1], got {}", self.sample_fraction),
            );
        }
        if data.is_empty() {
            return invalid("Sgd::train", "the training set is empty".into());
        }
        Ok(())
    }

    /// Trains `net` on `data`, calling `observe` after every sample and every epoch; returns
    /// one [`EpochStats`] per epoch run. `observe` returning `ControlFlow::Break` stops training
    /// after the current sample (the epoch's stats are then not recorded).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-positive or non-finite learning rate or decay, zero
    /// epochs, a sample fraction outside (0, 1] or an empty data set; [`Error::Diverged`] when
    /// a loss or a step is NaN or infinite, with the parameters as they were before that
    /// sample; and the
    /// network's shape errors.
    pub fn train(
        &self,
        net: &mut (impl Layer + ?Sized),
        data: &Dataset,
        mut observe: impl FnMut(Progress<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<EpochStats>> {
        self.validate(data)?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let expected = (self.sample_fraction * data.len() as f64).round() as usize;
        let mut history = Vec::with_capacity(self.epochs);
        let mut lr = self.lr;
        let mut grad = Array4::zeros((1, CLASSES, 1, 1));
        for epoch in 1..=self.epochs {
            let start = Instant::now();
            let (mut done, mut loss_sum) = (0, 0.0);
            for sample in 0..data.len() {
                if !rng.random_bool(self.sample_fraction) {
                    continue;
                }
                let scores = net.forward(data.batch(sample..sample + 1).view())?;
                let scores = scores.as_slice().expect("standard layout");
                let label = usize::from(data.labels()[sample]);
                let loss = softmax_cross_entropy(
                    scores,
                    label,
                    grad.as_slice_mut().expect("standard layout"),
                );
                let diverged = |what| {
                    Err(Error::Diverged {
                        epoch,
                        sample,
                        what,
                    })
                };
                if !loss.is_finite() {
                    return diverged(format!("loss is {loss}"));
                }
                net.backprop_params(grad.view())?;
                if !Self::step_if_finite(net, lr) {
                    return diverged(format!("a step of lr {lr} makes a parameter non-finite"));
                }
                done += 1;
                loss_sum += f64::from(loss);
                if observe(Progress::Sample {
                    epoch,
                    done,
                    expected,
                })
                .is_break()
                {
                    return Ok(history);
                }
            }
            let accuracy = evaluate(net, data)?.accuracy;
            let loss = if done == 0 {
                0.0
            } else {
                loss_sum / done as f64
            };
            let stats = EpochStats {
                epoch,
                loss,
                accuracy,
                lr,
                samples: done,
                seconds: start.elapsed().as_secs_f64(),
            };
            lr *= self.lr_decay;
            let stop = observe(Progress::Epoch(&stats)).is_break();
            history.push(stats);
            if stop {
                break;
            }
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeNet5;
    use ndarray::Array3;

    /// `n` images with a bar in a place that depends on the label.
    fn bars(n: usize) -> Dataset {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images = Array3::from_shape_fn(
            (n, 28, 28),
            |(i, row, _)| if row / 2 == i % 10 { 255 } else { 0 },
        );
        Dataset::new(images, labels).unwrap()
    }

    fn values(net: &LeNet5) -> Vec<f32> {
        net.params().iter().flat_map(|p| p.value.to_vec()).collect()
    }

    #[test]
    fn bad_settings_are_errors_before_any_change() {
        let data = bars(20);
        let mut net = LeNet5::new();
        let before = values(&net);
        for sgd in [
            Sgd::default().with_lr(0.0),
            Sgd::default().with_lr(f32::NAN),
            Sgd::default().with_lr(-0.1),
            Sgd::default().with_lr_decay(f32::INFINITY),
            Sgd::default().with_epochs(0),
            Sgd::default().with_sample_fraction(0.0),
            Sgd::default().with_sample_fraction(1.5),
        ] {
            let result = sgd.train(&mut net, &data, |_| ControlFlow::Continue(()));
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{sgd:?}"
            );
        }
        let empty = data.slice(0..0);
        assert!(matches!(
            Sgd::default().train(&mut net, &empty, |_| ControlFlow::Continue(())),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(values(&net), before);
    }

    #[test]
    fn divergence_stops_with_the_last_finite_weights() {
        let mut net = LeNet5::new();
        let sgd = Sgd::default().with_lr(1e38).with_sample_fraction(1.0);
        let err = sgd
            .train(&mut net, &bars(50), |_| ControlFlow::Continue(()))
            .unwrap_err();
        assert!(matches!(err, Error::Diverged { epoch: 1, .. }), "{err}");
        assert!(values(&net).iter().all(|v| v.is_finite()));
        assert!(
            net.params_mut()
                .iter()
                .all(|p| p.grad.iter().all(|&g| g == 0.0))
        );
    }

    /// Weights, and loss and accuracy per epoch, of a short seeded run on `threads` threads.
    fn seeded_run(threads: usize) -> (Vec<f32>, Vec<(f64, f64)>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = LeNet5::with_seed(3);
            let sgd = Sgd::default()
                .with_epochs(2)
                .with_sample_fraction(0.5)
                .with_seed(9);
            let history = sgd
                .train(&mut net, &bars(500), |_| ControlFlow::Continue(()))
                .unwrap();
            (
                values(&net),
                history.iter().map(|s| (s.loss, s.accuracy)).collect(),
            )
        })
    }

    #[test]
    fn the_same_seed_gives_bit_identical_weights() {
        assert_eq!(seeded_run(2), seeded_run(2));
    }

    #[test]
    fn one_thread_and_two_give_the_same_weights_and_accuracy() {
        assert_eq!(seeded_run(1), seeded_run(2));
    }

    #[test]
    fn observe_sees_every_sample_and_can_stop() {
        let mut seen = Vec::new();
        let sgd = Sgd::default().with_epochs(3).with_sample_fraction(1.0);
        let history = sgd
            .train(&mut LeNet5::new(), &bars(10), |p| {
                if let Progress::Epoch(s) = p {
                    seen.push((s.epoch, s.samples));
                    return if s.epoch == 2 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    };
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, vec![(1, 10), (2, 10)]);
        assert_eq!(history.len(), 2);
    }
}
