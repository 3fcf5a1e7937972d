//! [`Sgd`]: the report's training schedule, per-sample stochastic gradient descent.

use std::ops::ControlFlow;

use super::loss::Loss;
use super::optim::GradientDescent;
use super::trainer::{EpochStats, Progress, Sampling, Schedule, Trainer};
use crate::data::mnist::Dataset;
use crate::{Layer, Result};

/// Per-sample SGD with the report's schedule as its default: the report's recipe, run by the
/// one training loop, [`Trainer`] ([`Sgd::trainer`] gives it).
///
/// Each epoch takes every training example with probability `sample_fraction`, in data set
/// order; after each sample every parameter moves by `-lr · gradient`. After each epoch the
/// learning rate is multiplied by `lr_decay`, and the accuracy on the whole training set is
/// measured (the report prints it).
///
/// The defaults are the report's, chosen for its saturated sigmoid network, not as general
/// ones: each epoch trains on about a tenth of the data (6 000 of MNIST's 60 000 samples),
/// at a rate of 0.5. For a network of your own, a [`Trainer`] with
/// [`Sampling::Shuffle`] (every sample once per epoch) is the usual choice.
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

    /// The [`Trainer`] that runs this schedule: batches of one, plain gradient descent,
    /// softmax cross-entropy, the samples of each epoch drawn in data set order.
    pub fn trainer(&self) -> Trainer {
        Trainer::new(GradientDescent)
            .with_epochs(self.epochs)
            .with_batch_size(1)
            .with_sampling(Sampling::Fraction(self.sample_fraction))
            .with_schedule(Schedule::Exponential {
                lr: self.lr,
                decay: self.lr_decay,
            })
            .with_loss(Loss::SoftmaxCrossEntropy)
            .with_train_accuracy(true)
            .with_seed(self.seed)
    }

    /// Trains `net` on `data` with this schedule, calling `observe` after every sample and every
    /// epoch; returns one [`EpochStats`] per epoch run (see [`Trainer::train`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a non-positive or
    /// non-finite learning rate or decay, zero epochs, a sample fraction outside (0, 1] or an
    /// empty data set; [`Error::Diverged`](crate::Error::Diverged) when a loss or a step is NaN
    /// or infinite, with the parameters as they were before that sample; and the network's
    /// shape errors.
    pub fn train<N: Layer + ?Sized>(
        &self,
        net: &mut N,
        data: &Dataset,
        observe: impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
    ) -> Result<Vec<EpochStats>> {
        self.trainer().train(net, data, observe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bars;
    use crate::{Error, LeNet5};

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
        let empty = data.slice(0..0).unwrap();
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
    fn seeded_run(threads: usize) -> (Vec<f32>, Vec<(f64, Option<f64>)>) {
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
                if let Progress::Epoch(s, _) = p {
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
