//! [`Sgd`]: the report's training schedule, per-sample stochastic gradient descent.

use std::ops::ControlFlow;

use super::loss::Loss;
use super::optim::GradientDescent;
use super::trainer::{EpochStats, Progress, Sampling, Schedule, Trainer};
use crate::data::mnist::Dataset;
use crate::{Result, Sequential};

/// The report's recipe: per-sample SGD on the one training loop, [`Trainer`].
///
/// Each epoch takes every training example with probability 0.1, in data set order; after each
/// sample every parameter moves by `-lr · gradient`. After each epoch the learning rate is
/// multiplied by 0.95 and the accuracy on the whole training set is measured (the report
/// prints it).
///
/// | setting | the report's |
/// |---|---|
/// | learning rate | 0.5, x0.95 per epoch ([`Schedule::Exponential`]) |
/// | epochs | 20 |
/// | sampling | [`Sampling::Fraction`] 0.1 (about 6 000 of 60 000) |
/// | batch size | 1 |
/// | loss | softmax cross-entropy |
/// | seed | 1 (which samples each epoch takes) |
///
/// These are the report's settings for its saturated sigmoid network, not general defaults:
/// each epoch trains on a tenth of the data. Change any of them on the [`Trainer`] that
/// [`Sgd::trainer`] gives; for a network of your own, [`Sampling::Shuffle`] (every sample once
/// per epoch) is the usual choice.
///
/// ```
/// use lenet5::train::{Sampling, Schedule, Sgd};
/// let trainer = Sgd.trainer()
///     .with_schedule(Schedule::Exponential { lr: 0.1, decay: 0.95 })
///     .with_sampling(Sampling::Fraction(1.0))
///     .with_epochs(3);
/// assert_eq!(trainer.epochs(), 3);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sgd;

impl Sgd {
    /// The [`Trainer`] that runs the report's recipe (see the table above).
    pub fn trainer(self) -> Trainer {
        Trainer::new(GradientDescent)
            .with_epochs(20)
            .with_batch_size(1)
            .with_sampling(Sampling::Fraction(0.1))
            .with_schedule(Schedule::Exponential {
                lr: 0.5,
                decay: 0.95,
            })
            .with_loss(Loss::SoftmaxCrossEntropy)
            .with_train_accuracy(true)
            .with_seed(1)
    }

    /// Trains `net` on `data` with the report's recipe, calling `observe` after every sample and
    /// every epoch; returns one [`EpochStats`] per epoch run (see [`Trainer::train`]).
    ///
    /// # Errors
    /// As [`Trainer::train`].
    pub fn train<N: AsMut<Sequential> + AsRef<Sequential> + ?Sized>(
        self,
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
    use crate::{Error, Layer, LeNet5};

    fn values(net: &LeNet5) -> Vec<f32> {
        net.params().iter().flat_map(|p| p.value.to_vec()).collect()
    }

    #[test]
    fn bad_settings_are_errors_before_any_change() {
        let data = bars(20);
        let mut net = LeNet5::new();
        let before = values(&net);
        let rate = |lr, decay| Schedule::Exponential { lr, decay };
        for trainer in [
            Sgd.trainer().with_schedule(rate(0.0, 0.95)),
            Sgd.trainer().with_schedule(rate(f32::NAN, 0.95)),
            Sgd.trainer().with_schedule(rate(-0.1, 0.95)),
            Sgd.trainer().with_schedule(rate(0.5, f32::INFINITY)),
            Sgd.trainer().with_epochs(0),
            Sgd.trainer().with_sampling(Sampling::Fraction(0.0)),
            Sgd.trainer().with_sampling(Sampling::Fraction(1.5)),
        ] {
            let mut trainer = trainer;
            let result = trainer.train(&mut net, &data, |_| ControlFlow::Continue(()));
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{trainer:?}"
            );
        }
        let empty = data.slice(0..0).unwrap();
        assert!(matches!(
            Sgd.train(&mut net, &empty, |_| ControlFlow::Continue(())),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(values(&net), before);
    }

    #[test]
    fn divergence_stops_with_the_last_finite_weights() {
        let mut net = LeNet5::new();
        let mut sgd = Sgd
            .trainer()
            .with_schedule(Schedule::Exponential {
                lr: 1e38,
                decay: 0.95,
            })
            .with_sampling(Sampling::Fraction(1.0));
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
            let mut sgd = Sgd
                .trainer()
                .with_epochs(2)
                .with_sampling(Sampling::Fraction(0.5))
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
        let mut sgd = Sgd
            .trainer()
            .with_epochs(3)
            .with_sampling(Sampling::Fraction(1.0));
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
