//! [`Trainer`]: the training loop every schedule shares, from the report's per-sample SGD to
//! mini-batch Adam with distortions.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use ndarray::{Array4, ArrayView4};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Best, Checkpoint};
use super::eval::evaluate;
use super::loss::Loss;
use super::optim::{Adam, Optimizer, OptimizerState};

use crate::data::Distortion;
use crate::data::mnist::{CLASSES, Dataset};
use crate::layer::{Layer, Mode, Pass};
use crate::seeds::stream;
use crate::sequential::Trace;
use crate::{Error, Result, Sequential, io};

/// [`Trainer::with_parts`]' default: one per core of a 2-core machine. Each part beyond the
/// first costs a copy of the weights and an addition of its gradients per batch: on a 2-core
/// Intel Xeon, an epoch of the modern preset's batches of 32 took 108 to 111 ms on both cores
/// with 2 parts against 122 to 136 ms with 4 (and 1.70x one thread's speed against 1.47x to
/// 1.59x). Set more with [`Trainer::with_parts`] on a machine with more cores.
pub const DEFAULT_PARTS: usize = 2;

/// Which training samples an epoch takes, and in what order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Each sample with this probability, in data set order (the report's 0.1).
    Fraction(f64),
    /// Every sample once, in a fresh random order each epoch.
    Shuffle,
}

/// The learning rate of each epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `lr` in the first epoch, multiplied by `decay` after each.
    Exponential {
        /// The first epoch's rate.
        lr: f32,
        /// The factor applied after each epoch.
        decay: f32,
    },
    /// One rate per epoch; the last repeats when there are more epochs.
    PerEpoch(Vec<f32>),
}

impl Schedule {
    /// The rate of `epoch` (1-based).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for epoch 0 or a [`Schedule::PerEpoch`] without rates.
    pub fn lr(&self, epoch: usize) -> Result<f32> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "Schedule::lr",
            reason,
        };
        if epoch == 0 {
            return Err(bad("epochs count from 1, got 0".into()));
        }
        match self {
            // multiplied epoch by epoch, as a running product would be
            Schedule::Exponential { lr, decay } => Ok((1..epoch).fold(*lr, |lr, _| lr * decay)),
            Schedule::PerEpoch(rates) => rates
                .get((epoch - 1).min(rates.len().saturating_sub(1)))
                .copied()
                .ok_or_else(|| bad("the schedule has no rates".into())),
        }
    }

    /// Checks that the rate of every epoch up to `epochs` is positive and finite: a rate that
    /// decays to zero (or underflows to it) would train nothing from then on.
    fn validate(&self, epochs: usize) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidArgument {
                what: "Trainer::schedule",
                reason,
            })
        };
        if let Schedule::Exponential { decay, .. } = self
            && !(decay.is_finite() && *decay > 0.0)
        {
            return bad(format!(
                "the decay must be positive and finite, got {decay}"
            ));
        }
        for epoch in 1..=epochs {
            let lr = self.lr(epoch)?;
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!(
                    "the learning rate of epoch {epoch} is {lr}: it must be positive and finite"
                ));
            }
        }
        Ok(())
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean loss over the samples taken.
    pub loss: f64,
    /// Accuracy on the whole training set after the epoch, when the trainer measures it
    /// ([`Trainer::with_train_accuracy`]).
    pub accuracy: Option<f64>,
    /// Accuracy on the validation set after the epoch, when there is one
    /// ([`Trainer::with_validation`]).
    pub validation_accuracy: Option<f64>,
    /// The learning rate used during the epoch.
    pub lr: f32,
    /// Samples taken.
    pub samples: usize,
    /// Wall time of the epoch in seconds: its training, then any wait for the accuracies of
    /// the epoch before (measured while this one trains), and for the last epoch its own
    /// accuracies. A run's epochs add up to its time.
    pub seconds: f64,
}

/// What [`Trainer::train`] reports while it runs about the network `N` it trains.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a, N: ?Sized> {
    /// A batch of `epoch` was trained on; `done` of about `expected` samples so far.
    Sample {
        /// 1-based.
        epoch: usize,
        /// Samples trained on so far in this epoch.
        done: usize,
        /// The expected number of samples in the epoch.
        expected: usize,
    },
    /// An epoch ended: its stats, and the network as the epoch left it (to save a
    /// checkpoint, or measure it on data of the caller's own). When the trainer measures
    /// accuracies after each epoch, it does so while the next epoch trains, so this can come
    /// after some of the next epoch's `Sample`s.
    Epoch(&'a EpochStats, &'a N),
}

/// A training schedule: epochs of batches, each a forward pass, the loss's gradient averaged
/// over the batch, one backprop and one optimiser step.
///
/// [`Trainer::default`] is the place to start for a network of your own: [`Adam`] at a rate
/// of 0.002 on batches of 32, which takes a new stack of default layers (sigmoid or ReLU) past
/// 90 % on MNIST in one epoch. [`Trainer::new`] takes any optimiser, with these defaults:
///
/// | setting | default |
/// |---|---|
/// | epochs | 20 |
/// | batch size | 1 |
/// | parts of a batch computed in parallel | [`DEFAULT_PARTS`] |
/// | sampling | [`Sampling::Shuffle`] |
/// | schedule | 0.01, constant |
/// | loss | [`Loss::SoftmaxCrossEntropy`] |
/// | distortion | none |
/// | accuracy on the training set after each epoch | not measured |
/// | validation set | none |
/// | keep the best epoch | no |
/// | checkpoints | none |
/// | seed | 1 |
///
/// Each batch is split into parts ([`Trainer::with_parts`]) whose gradients are computed on
/// all the cores of rayon's current thread pool and summed in a fixed order: the thread count
/// changes the speed, never the result.
///
/// The accuracies after an epoch (on the training set, on a validation set) are measured on
/// that pool too, while the next epoch trains on a copy of the network: other cores measure
/// while one trains, which is all a batch of one sample can use.
///
/// The seed gives four random streams, drawn anew for every epoch from the seed and the
/// epoch's number: the sample order, the distortions, the curvature samples and the
/// [`Pass::Train`] seeds of each part of a batch (dropout masks). None of them is the network's initial
/// weights' stream, which its constructor draws from a seed of its own; and since no stream
/// carries over from one epoch to the next, a run resumed from a [`Checkpoint`] draws what an
/// uninterrupted one would.
///
/// ```
/// use lenet5::train::{Adam, Schedule, Trainer};
/// let trainer = Trainer::new(Adam::default())
///     .with_batch_size(32)
///     .with_schedule(Schedule::Exponential { lr: 1e-3, decay: 0.8 });
/// assert_eq!(trainer.batch_size(), 32);
/// ```
#[derive(Debug)]
pub struct Trainer {
    optimizer: Box<dyn Optimizer>,
    epochs: usize,
    batch_size: usize,
    parts: usize,
    sampling: Sampling,
    schedule: Schedule,
    loss: Loss,
    distortion: Option<Distortion>,
    train_accuracy: bool,
    validation: Option<Arc<Dataset>>,
    keep_best: bool,
    checkpoints: Option<(usize, PathBuf)>,
    seed: u64,
}

/// The trainer's random streams (see [`Trainer`]).
#[derive(Clone, Copy)]
enum Stream {
    Order = 1,
    Distortion = 2,
    Curvature = 3,
    Pass = 4,
}

impl Stream {
    /// This stream's generator for `epoch` from `seed`.
    fn of(self, seed: u64, epoch: usize) -> Xoshiro256PlusPlus {
        stream(seed, self as u64, epoch as u64)
    }
}

/// Where a run starts: after `epoch` epochs, with their stats and best weights.
#[derive(Default)]
struct Start {
    epoch: usize,
    history: Vec<EpochStats>,
    best: Option<Best>,
}

/// [`Adam`] at a constant rate of 0.002 on shuffled batches of 32, for 20 epochs; every other
/// setting as [`Trainer::new`] has it.
impl Default for Trainer {
    fn default() -> Self {
        Trainer::new(Adam::default())
            .with_batch_size(32)
            .with_schedule(Schedule::PerEpoch(vec![0.002]))
    }
}

impl Trainer {
    /// A trainer that moves the parameters with `optimizer`, other settings at their defaults.
    pub fn new(optimizer: impl Optimizer + 'static) -> Self {
        Trainer {
            optimizer: Box::new(optimizer),
            epochs: 20,
            batch_size: 1,
            parts: DEFAULT_PARTS,
            sampling: Sampling::Shuffle,
            schedule: Schedule::PerEpoch(vec![0.01]),
            loss: Loss::SoftmaxCrossEntropy,
            distortion: None,
            train_accuracy: false,
            validation: None,
            keep_best: false,
            checkpoints: None,
            seed: 1,
        }
    }

    /// Sets the number of epochs.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets the number of samples per optimiser step.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Splits each batch into `parts` parts (at most; no more than it has samples) whose
    /// gradients are computed in parallel on rayon's current thread pool, then summed in part
    /// order. The number of parts, not of threads, decides how the sums are rounded, so the same
    /// seed gives the same model bytes on any number of threads (set by `RAYON_NUM_THREADS` or
    /// [`rayon::ThreadPool::install`]). More parts than threads cost a little: each part beyond
    /// the first works on a copy of the network.
    pub fn with_parts(mut self, parts: usize) -> Self {
        self.parts = parts;
        self
    }

    /// Sets which samples each epoch takes.
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets the learning rate of each epoch.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets the loss.
    pub fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Distorts every training image afresh each time it is taken (`None`: never).
    pub fn with_distortion(mut self, distortion: Option<Distortion>) -> Self {
        self.distortion = distortion;
        self
    }

    /// Measures the accuracy on the whole training set after every epoch (the report prints
    /// it) when `on`; it costs a pass over the training set, made while the next epoch trains
    /// (see [`Trainer`]).
    pub fn with_train_accuracy(mut self, on: bool) -> Self {
        self.train_accuracy = on;
        self
    }

    /// Measures the accuracy on `validation` after every epoch (`None`: no validation set).
    pub fn with_validation(mut self, validation: Option<Dataset>) -> Self {
        self.validation = validation.map(Arc::new);
        self
    }

    /// Ends training (and a run stopped early, or one that diverged) with the weights of the
    /// epoch with the best validation accuracy, or the best training accuracy when there is no
    /// validation set (then measured whatever [`Trainer::with_train_accuracy`] says). The
    /// first of equal epochs wins.
    pub fn with_keep_best(mut self, on: bool) -> Self {
        self.keep_best = on;
        self
    }

    /// Sets the seed of the trainer's random streams (see [`Trainer`]).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Writes a [`Checkpoint`] to `path`, atomically, after every `every` epochs and the last
    /// one, and when the callback stops the run (the last finished epoch's);
    /// [`Trainer::resume`] goes on from it.
    pub fn with_checkpoints(mut self, every: usize, path: impl Into<PathBuf>) -> Self {
        self.checkpoints = Some((every, path.into()));
        self
    }

    /// The settings a checkpoint must have been written with to resume under this trainer:
    /// all but the number of epochs and the optimiser (whose state the checkpoint holds).
    fn settings(&self) -> String {
        format!(
            "batch {} in {} parts, {:?}, {:?}, {:?}, distortion {:?}, train accuracy {}, validation {:?}, keep best {}, seed {}",
            self.batch_size,
            self.parts,
            self.sampling,
            self.schedule,
            self.loss,
            self.distortion,
            self.train_accuracy,
            self.validation.as_deref().map(Dataset::len),
            self.keep_best,
            self.seed
        )
    }

    /// The number of epochs.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Samples per optimiser step.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The loss trained on.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    fn validate(&self, net: &Sequential, data: &Dataset) -> Result<()> {
        let invalid = |what, reason: String| Err(Error::InvalidArgument { what, reason });
        if self.epochs == 0 {
            return invalid("Trainer::epochs", "must be at least 1, got 0".into());
        }
        self.schedule.validate(self.epochs)?;
        if self.batch_size == 0 {
            return invalid("Trainer::batch_size", "must be at least 1, got 0".into());
        }
        if self.parts == 0 {
            return invalid("Trainer::parts", "must be at least 1, got 0".into());
        }
        if data.is_empty() {
            return invalid("Trainer::train", "the training set is empty".into());
        }
        if let Sampling::Fraction(f) = self.sampling {
            if !(f > 0.0 && f <= 1.0) {
                return invalid(
                    "Trainer::sampling",
                    format!("the fraction must be in (0, 1], got {f}"),
                );
            }
            if f * (data.len() as f64) < 1.0 {
                return invalid(
                    "Trainer::sampling",
                    format!(
                        "a fraction of {f} of {} samples is less than one sample per epoch",
                        data.len()
                    ),
                );
            }
        }
        if let Some(d) = &self.distortion {
            d.validate()?;
        }
        if let Some((every, path)) = &self.checkpoints {
            if *every == 0 {
                return invalid(
                    "Trainer::checkpoints",
                    "every 0 epochs: must be at least 1".into(),
                );
            }
            io::check_writable(path)?;
        }
        if let Some(validation) = &self.validation {
            if validation.is_empty() {
                return invalid("Trainer::validation", "the validation set is empty".into());
            }
            check_scores_per_class(net, validation)?;
        }
        check_scores_per_class(net, data)
    }

    /// Trains `net` on `data`, calling `observe` after every batch and every epoch; returns one
    /// [`EpochStats`] per epoch run. `observe` returning `ControlFlow::Break` stops training:
    /// at a [`Progress::Sample`], after that batch (whose epoch's stats are then not recorded,
    /// though those of the epoch before are); at a [`Progress::Epoch`], with the network as
    /// that epoch left it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad setting or an empty data set; [`Error::Diverged`]
    /// when a loss or a step is NaN or infinite, with the parameters as they were before that
    /// batch (or those of the best epoch, with [`Trainer::with_keep_best`]); the network's
    /// shape errors; and [`Error::Io`] when a checkpoint cannot be written.
    pub fn train<N: AsMut<Sequential> + AsRef<Sequential> + ?Sized>(
        &mut self,
        net: &mut N,
        data: &Dataset,
        observe: impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
    ) -> Result<Vec<EpochStats>> {
        self.validate(net.as_ref(), data)?;
        self.run(net, data, observe, Start::default())
    }

    /// Goes on with the run `checkpoint` was written in, on `net` (the same stack, whose
    /// weights it replaces), from the epoch after the checkpoint's to [`Trainer::epochs`], as
    /// [`Trainer::train`] would have: the same settings give the same model bytes as a run
    /// that was never stopped. Returns the stats of every epoch, the checkpoint's first.
    ///
    /// ```no_run
    /// # fn main() -> lenet5::Result<()> {
    /// use std::ops::ControlFlow;
    /// use lenet5::train::Checkpoint;
    /// use lenet5::{Dataset, LeNet5, Preset, Split};
    /// let train = Dataset::load("data/mnist", Split::Train)?;
    /// let mut net = LeNet5::new();
    /// let mut trainer = Preset::Report.trainer(1).with_checkpoints(1, "run.ckpt");
    /// let checkpoint = Checkpoint::load("run.ckpt")?; // written by an earlier, stopped run
    /// trainer.resume(&mut net, &train, &checkpoint, |_| ControlFlow::Continue(()))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::train`], and [`Error::InvalidArgument`] when the checkpoint was written
    /// under other settings or past this trainer's epochs, or its optimiser state is not this
    /// optimiser's; [`Error::Model`] when its network is not `net`'s. `net` and the optimiser
    /// are then unchanged.
    pub fn resume<N: AsMut<Sequential> + AsRef<Sequential> + ?Sized>(
        &mut self,
        net: &mut N,
        data: &Dataset,
        checkpoint: &Checkpoint,
        observe: impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
    ) -> Result<Vec<EpochStats>> {
        self.validate(net.as_ref(), data)?;
        let invalid = |reason: String| Error::InvalidArgument {
            what: "Trainer::resume",
            reason,
        };
        if checkpoint.settings != self.settings() {
            return Err(invalid(format!(
                "the checkpoint was written with {}, this trainer has {}",
                checkpoint.settings,
                self.settings()
            )));
        }
        if checkpoint.epoch > self.epochs {
            return Err(invalid(format!(
                "the checkpoint is of epoch {}, this trainer runs {}",
                checkpoint.epoch, self.epochs
            )));
        }
        let mut resumed = net.as_ref().clone();
        io::load_weights_bytes(&mut resumed, &checkpoint.model, "the checkpoint")?;
        self.optimizer.restore(checkpoint.optimizer.clone())?;
        *net.as_mut() = resumed;
        let start = Start {
            epoch: checkpoint.epoch,
            history: checkpoint.history.clone(),
            best: checkpoint.best.clone(),
        };
        self.run(net, data, observe, start)
    }

    /// The epochs after `start`, ending with the best epoch's weights when asked, and writing
    /// the last finished epoch's checkpoint when `observe` stops the run mid-epoch.
    fn run<N: AsMut<Sequential> + AsRef<Sequential> + ?Sized>(
        &mut self,
        net: &mut N,
        data: &Dataset,
        mut observe: impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
        start: Start,
    ) -> Result<Vec<EpochStats>> {
        let Start {
            epoch: done,
            mut history,
            mut best,
        } = start;
        let mut run = Run {
            history: &mut history,
            best: &mut best,
            unsaved: None,
            keep_best: self.keep_best,
            checkpoints: self.checkpoints.clone(),
            settings: self.settings(),
            epochs: self.epochs,
        };
        let result = self.epochs_after(done, net, data, &mut observe, &mut run);
        if let (Ok(Flow::Stopped), Some((_, path)), Some(last)) =
            (&result, &self.checkpoints, run.unsaved.take())
        {
            last.save(path)?;
        }
        if let Some(best) = best {
            restore(net.as_mut(), &best.values);
        }
        result.map(|_| history)
    }

    /// Epochs `done + 1` to the last, recorded in `run`.
    ///
    /// Each epoch trains on a working copy of `net` while the accuracies of the epoch before
    /// are measured on `net`, which keeps that epoch's weights until it is recorded: the
    /// measurement runs on rayon's current thread pool beside the training, and the epoch is
    /// recorded after the first batch that finds it done (after the last epoch, at once).
    /// The network then takes the working copy's weights, unless `observe` stopped the run at
    /// that epoch's end.
    fn epochs_after<N: AsMut<Sequential> + AsRef<Sequential> + ?Sized>(
        &mut self,
        done: usize,
        net: &mut N,
        data: &Dataset,
        observe: &mut impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
        run: &mut Run<'_>,
    ) -> Result<Flow> {
        // one copy of the network for each part but the first, which the network computes
        let copies = self.parts.min(self.batch_size) - 1;
        let mut replicas = vec![net.as_ref().clone(); copies];
        let mut working = net.as_ref().clone();
        let train_accuracy = self.measures_train_accuracy();
        let measures = train_accuracy || self.validation.is_some();
        // the epoch in `net` whose accuracies are to be measured
        let mut measuring: Option<Trained> = None;
        for epoch in done + 1..=self.epochs {
            let start = Instant::now();
            let (sender, receiver) = mpsc::channel();
            let validation = self.validation.clone();
            let seen: &N = net;
            let trained = rayon::in_place_scope(|scope| {
                if measuring.is_some() {
                    let frozen = seen.as_ref();
                    scope.spawn(move |_| {
                        let accuracies =
                            measure(frozen, data, train_accuracy, validation.as_deref());
                        // the receiver lives until the scope has waited for this task
                        sender
                            .send(accuracies)
                            .expect("the receiver outlives the scope");
                    });
                }
                self.train_epoch(
                    epoch,
                    &mut working,
                    &mut replicas,
                    data,
                    |done, expected| {
                        let progress = Progress::Sample {
                            epoch,
                            done,
                            expected,
                        };
                        if observe(progress).is_break() {
                            return Ok(ControlFlow::Break(Flow::Stopped));
                        }
                        if let Ok(accuracies) = receiver.try_recv() {
                            let before = measuring.take().expect("only a measured epoch is sent");
                            if run.record(before, accuracies?, seen, observe)? {
                                return Ok(ControlFlow::Break(Flow::Done));
                            }
                        }
                        Ok(ControlFlow::Continue(()))
                    },
                )
            });
            // the scope has waited for the measurement, whatever the epoch's training did
            if let Some(before) = measuring.take() {
                let accuracies = receiver.try_recv().expect("the scope waits for its tasks");
                let stop = run.record(before, accuracies?, &*net, observe)?;
                if stop && matches!(trained, Ok(ControlFlow::Continue(_))) {
                    return Ok(Flow::Done);
                }
            }
            let trained = match trained {
                // stopped at the end of the epoch before: the network is as that epoch left it
                Ok(ControlFlow::Break(Flow::Done)) => return Ok(Flow::Done),
                result => {
                    net.as_mut().clone_from(&working);
                    result?
                }
            };
            let mut trained = match trained {
                ControlFlow::Break(flow) => return Ok(flow),
                ControlFlow::Continue(trained) => trained,
            };
            trained.stats.seconds = start.elapsed().as_secs_f64();
            if measures {
                measuring = Some(trained);
            } else if run.record(trained, Accuracies::default(), &*net, observe)? {
                return Ok(Flow::Done);
            }
        }
        if let Some(mut last) = measuring {
            let start = Instant::now();
            let accuracies = measure(
                net.as_ref(),
                data,
                train_accuracy,
                self.validation.as_deref(),
            )?;
            last.stats.seconds += start.elapsed().as_secs_f64();
            run.record(last, accuracies, &*net, observe)?;
        }
        Ok(Flow::Done)
    }

    /// Whether the accuracy on the training set is measured after each epoch: when asked, or
    /// when it is the only score keep-best has.
    fn measures_train_accuracy(&self) -> bool {
        self.train_accuracy || (self.keep_best && self.validation.is_none())
    }

    /// Trains `net` for one epoch, the other parts of each batch on `replicas`, calling
    /// `after_batch` with the samples done and expected after each batch. Returns the epoch,
    /// not yet measured, or the flow `after_batch` stopped it with.
    fn train_epoch(
        &mut self,
        epoch: usize,
        net: &mut Sequential,
        replicas: &mut [Sequential],
        data: &Dataset,
        mut after_batch: impl FnMut(usize, usize) -> Result<ControlFlow<Flow>>,
    ) -> Result<ControlFlow<Flow, Trained>> {
        let lr = self.schedule.lr(epoch)?;
        let wanted = self.optimizer.curvature_samples();
        if wanted > 0 {
            let mut rng = Stream::Curvature.of(self.seed, epoch);
            let curvature = estimate_curvature(net, data, self.loss, wanted, &mut rng)?;
            self.optimizer.set_curvature(curvature);
        }
        let order = self.order(data.len(), &mut Stream::Order.of(self.seed, epoch));
        let mut draws = Draws {
            pass: Stream::Pass.of(self.seed, epoch),
            distortion: Stream::Distortion.of(self.seed, epoch),
        };
        let (mut samples, mut loss_sum) = (0, 0.0);
        let fuse = self.batch_size == 1 && self.optimizer.is_plain_descent();
        for batch in order.chunks(self.batch_size) {
            let (loss, stepped) = if fuse {
                self.descend(net, data, batch, &mut draws, lr)?
            } else {
                self.batch_step(net, replicas, data, batch, &mut draws, lr)?
            };
            let diverged = |what| {
                Err(Error::Diverged {
                    epoch,
                    sample: batch[0],
                    what,
                })
            };
            if !loss.is_finite() {
                clear_gradients(net);
                return diverged(format!("loss is {loss}"));
            }
            if !stepped {
                return diverged(format!("a step of lr {lr} makes a parameter non-finite"));
            }
            samples += batch.len();
            loss_sum += loss;
            if let ControlFlow::Break(flow) = after_batch(samples, order.len())? {
                return Ok(ControlFlow::Break(flow));
            }
        }
        if samples == 0 {
            return Err(Error::InvalidArgument {
                what: "Trainer::sampling",
                reason: format!(
                    "epoch {epoch} drew no sample from {} (sampling {:?}): nothing was learned",
                    data.len(),
                    self.sampling
                ),
            });
        }
        Ok(ControlFlow::Continue(Trained {
            stats: EpochStats {
                epoch,
                loss: loss_sum / samples as f64,
                accuracy: None,
                validation_accuracy: None,
                lr,
                samples,
                seconds: 0.0,
            },
            optimizer: self.optimizer.state(),
        }))
    }

    /// [`Batching::gradients`] of `batch` and the optimiser's step: the loss summed over the
    /// batch, and whether the step was taken. Nothing is stepped when the loss is not finite.
    ///
    /// The whole runs as one task on rayon's current thread pool (at once when called from
    /// one of its threads), so that the batch's several fork-joins (the weights copied to the
    /// replicas, the parts, their sum, the optimiser's chunks) start from a thread of the pool
    /// that the others are working beside, rather than each waking the calling thread when it
    /// ends.
    fn batch_step(
        &mut self,
        net: &mut Sequential,
        replicas: &mut [Sequential],
        data: &Dataset,
        batch: &[usize],
        draws: &mut Draws,
        lr: f32,
    ) -> Result<(f64, bool)> {
        let batching = Batching {
            parts: self.parts,
            loss: self.loss,
            distortion: self.distortion.as_ref(),
        };
        let optimizer = &mut self.optimizer;
        rayon::scope(|_| {
            let loss = batching.gradients(net, replicas, data, batch, draws)?;
            let stepped = loss.is_finite() && optimizer.step(net.params_mut(), lr)?;
            Ok((loss, stepped))
        })
    }

    /// [`Batching::gradients`] and the optimiser's step for a `batch` of one sample,
    /// fused ([`Sequential::descend`]), when the optimiser is plain gradient descent: the
    /// loss, and whether the step was taken. Nothing is stepped when the loss is not finite.
    fn descend(
        &self,
        net: &mut Sequential,
        data: &Dataset,
        batch: &[usize],
        draws: &mut Draws,
        lr: f32,
    ) -> Result<(f64, bool)> {
        let part = Part::of(batch, 1, draws);
        part.with_loss(
            net,
            data,
            self.loss,
            self.distortion.as_ref(),
            |net, trace, loss, grad| {
                let stepped = loss.is_finite() && net.descend(trace, grad, lr)?;
                Ok((loss, stepped))
            },
        )
    }

    /// The samples of one epoch, in training order.
    fn order(&self, len: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
        match self.sampling {
            Sampling::Fraction(f) => (0..len).filter(|_| rng.random_bool(f)).collect(),
            Sampling::Shuffle => {
                let mut order: Vec<usize> = (0..len).collect();
                order.shuffle(rng);
                order
            }
        }
    }
}

/// That `net` takes the images of `data` (see [`Dataset::input_for`]) and turns each into one
/// score per class.
///
/// # Errors
/// As [`Dataset::input_for`], and [`Error::InvalidArgument`] when the network gives another
/// number of scores than there are classes.
pub(crate) fn check_scores_per_class(net: &Sequential, data: &Dataset) -> Result<()> {
    data.input_for(net)?;
    let [c, h, w] = net.output_shape();
    if c * h * w != CLASSES {
        return Err(Error::InvalidArgument {
            what: "network",
            reason: format!(
                "it gives {c}x{h}x{w} scores per image, the data has {CLASSES} classes"
            ),
        });
    }
    Ok(())
}

/// The random draws of an epoch's batches, made in batch and part order whatever the threads.
struct Draws {
    /// Each part's [`Pass::Train`] seed.
    pass: Xoshiro256PlusPlus,
    /// Each part's distortions' seed.
    distortion: Xoshiro256PlusPlus,
}

/// One part of a batch: its samples, the batch's size, and its random seeds.
struct Part<'a> {
    indices: &'a [usize],
    /// Samples in the whole batch, over which the loss is averaged.
    of: usize,
    pass: Pass,
    distortion: u64,
}

impl<'a> Part<'a> {
    /// The part `indices` of a batch of `of` samples, its seeds the next of `draws`.
    fn of(indices: &'a [usize], of: usize, draws: &mut Draws) -> Self {
        Part {
            indices,
            of,
            pass: Pass::Train {
                seed: draws.pass.random(),
            },
            distortion: draws.distortion.random(),
        }
    }

    /// Adds into `net`'s gradients those of the batch's mean loss from this part's samples,
    /// and returns their summed loss.
    fn gradients(
        &self,
        net: &mut Sequential,
        data: &Dataset,
        loss: Loss,
        distortion: Option<&Distortion>,
    ) -> Result<f64> {
        self.with_loss(net, data, loss, distortion, |net, trace, loss, grad| {
            net.backprop(trace, grad, Mode::Params)?;
            Ok(loss)
        })
    }

    /// `then(net, trace, loss, grad)` after the forward pass of this part's samples: their
    /// summed loss, and its gradient for the batch's mean loss.
    fn with_loss<T>(
        &self,
        net: &mut Sequential,
        data: &Dataset,
        loss: Loss,
        distortion: Option<&Distortion>,
        then: impl FnOnce(&mut Sequential, &Trace<'_>, f64, ArrayView4<f32>) -> Result<T>,
    ) -> Result<T> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.distortion);
        let distortion = distortion.map(|d| (d, &mut rng as &mut dyn rand::Rng));
        let input = data.batch_for(net, self.indices, distortion)?;
        let trace = net.trace(input.view(), self.pass)?;
        let labels: Vec<usize> = self
            .indices
            .iter()
            .map(|&i| data.labels()[i].into())
            .collect();
        let (mean, mut grad) = loss.batch(trace.output(), &labels)?;
        let n = self.indices.len();
        if n != self.of {
            grad *= n as f32 / self.of as f32;
        }
        then(net, &trace, mean * n as f64, grad.view())
    }
}

/// The settings of a [`Trainer`] that a batch's gradients need.
#[derive(Clone, Copy)]
struct Batching<'a> {
    parts: usize,
    loss: Loss,
    distortion: Option<&'a Distortion>,
}

impl Batching<'_> {
    /// The forward and backward passes of `batch`, split into at most [`Trainer::with_parts`]
    /// parts computed in parallel, the first on `net` and the others on `replicas` (given
    /// `net`'s weights first). Leaves in `net`'s gradients the sum of the parts', added in
    /// part order, and returns the loss summed over the batch.
    fn gradients(
        &self,
        net: &mut Sequential,
        replicas: &mut [Sequential],
        data: &Dataset,
        batch: &[usize],
        draws: &mut Draws,
    ) -> Result<f64> {
        let parts: Vec<Part<'_>> = batch
            .chunks(batch.len().div_ceil(self.parts))
            .map(|indices| Part::of(indices, batch.len(), draws))
            .collect();
        let (loss, distortion) = (self.loss, self.distortion);
        let (first, rest) = parts.split_first().expect("a batch is never empty");
        if rest.is_empty() {
            return first.gradients(net, data, loss, distortion);
        }
        let replicas = &mut replicas[..rest.len()];
        share_weights(net, replicas);
        let (first_loss, rest_losses) = rayon::join(
            || first.gradients(net, data, loss, distortion),
            || {
                rest.par_iter()
                    .zip(replicas.par_iter_mut())
                    .map(|(part, replica)| part.gradients(replica, data, loss, distortion))
                    .collect::<Result<Vec<f64>>>()
            },
        );
        let sum = rest_losses?
            .into_iter()
            .fold(first_loss?, |sum, loss| sum + loss);
        add_gradients(net, replicas);
        Ok(sum)
    }
}

/// Values per task of [`add_gradients`]: enough to outweigh handing the task to a thread.
const REDUCTION_CHUNK: usize = 4096;

/// Copies `net`'s weights to each of `replicas`, in chunks of [`REDUCTION_CHUNK`] values on
/// rayon's pool.
fn share_weights(net: &Sequential, replicas: &mut [Sequential]) {
    let sources = net.params();
    let tasks: Vec<(&mut [f32], &[f32])> = replicas
        .iter_mut()
        .flat_map(|replica| replica.params_mut().into_iter().zip(&sources))
        .flat_map(|(to, from)| {
            to.value
                .chunks_mut(REDUCTION_CHUNK)
                .zip(from.value.chunks(REDUCTION_CHUNK))
        })
        .collect();
    tasks
        .into_par_iter()
        .for_each(|(to, from)| to.copy_from_slice(from));
}

/// Adds the gradients of `replicas` to `net`'s, one replica after another for each value (so
/// the sums do not depend on the threads), and clears the replicas'. Runs in chunks of
/// [`REDUCTION_CHUNK`] values on rayon's pool.
fn add_gradients(net: &mut Sequential, replicas: &mut [Sequential]) {
    let mut grads: Vec<Vec<&mut [f32]>> = replicas
        .iter_mut()
        .map(|replica| replica.params_mut().into_iter().map(|p| p.grad).collect())
        .collect();
    let mut tasks = Vec::new();
    for (k, target) in net.params_mut().into_iter().enumerate() {
        let mut sources: Vec<_> = grads
            .iter_mut()
            .map(|grads| std::mem::take(&mut grads[k]).chunks_mut(REDUCTION_CHUNK))
            .collect();
        for to in target.grad.chunks_mut(REDUCTION_CHUNK) {
            let from: Vec<&mut [f32]> = sources
                .iter_mut()
                .map(|chunks| chunks.next().expect("replicas of the network"))
                .collect();
            tasks.push((to, from));
        }
    }
    tasks.into_par_iter().for_each(|(to, from)| {
        for from in from {
            for (t, f) in to.iter_mut().zip(from.iter_mut()) {
                *t += *f;
                *f = 0.0;
            }
        }
    });
}

/// How a run's epochs ended: all run (or stopped at an epoch's end), or stopped mid-epoch.
enum Flow {
    Done,
    Stopped,
}

/// An epoch trained and not yet recorded: its stats but the accuracies, and the optimiser's
/// state after it.
struct Trained {
    stats: EpochStats,
    optimizer: OptimizerState,
}

/// The accuracies measured after an epoch, those the trainer measures.
#[derive(Default)]
struct Accuracies {
    train: Option<f64>,
    validation: Option<f64>,
}

/// The accuracies of `net` on `data` (when `train`) and on `validation`.
fn measure(
    net: &Sequential,
    data: &Dataset,
    train: bool,
    validation: Option<&Dataset>,
) -> Result<Accuracies> {
    let accuracy = |data| evaluate(net, data).map(|e| e.accuracy);
    Ok(Accuracies {
        validation: validation.map(accuracy).transpose()?,
        train: train.then(|| accuracy(data)).transpose()?,
    })
}

/// What a run carries across its epochs (their stats, the best epoch's weights, and the last
/// finished epoch's checkpoint while it is not yet written) and the trainer's settings that
/// recording an epoch needs.
struct Run<'a> {
    history: &'a mut Vec<EpochStats>,
    best: &'a mut Option<Best>,
    unsaved: Option<Checkpoint>,
    keep_best: bool,
    checkpoints: Option<(usize, PathBuf)>,
    /// [`Trainer::settings`].
    settings: String,
    /// The trainer's last epoch.
    epochs: usize,
}

impl Run<'_> {
    /// Records `trained` with its `accuracies`, on `net` as the epoch left it: keeps its
    /// weights when they score best so far, shows its stats to `observe`, then writes its
    /// checkpoint when due or when `observe` stops the run, and otherwise keeps it unsaved.
    /// Returns whether `observe` stopped the run.
    fn record<N: AsRef<Sequential> + ?Sized>(
        &mut self,
        trained: Trained,
        accuracies: Accuracies,
        net: &N,
        observe: &mut impl FnMut(Progress<'_, N>) -> ControlFlow<()>,
    ) -> Result<bool> {
        let Trained {
            mut stats,
            optimizer,
        } = trained;
        stats.accuracy = accuracies.train;
        stats.validation_accuracy = accuracies.validation;
        if self.keep_best {
            let score = stats.validation_accuracy.or(stats.accuracy).unwrap_or(0.0);
            if self.best.as_ref().is_none_or(|b| score > b.score) {
                let params = net.as_ref().params();
                let values = params.iter().map(|p| p.value.to_vec()).collect();
                *self.best = Some(Best { score, values });
            }
        }
        let stop = observe(Progress::Epoch(&stats, net)).is_break();
        let epoch = stats.epoch;
        self.history.push(stats);
        if let Some((every, path)) = &self.checkpoints {
            let checkpoint = Checkpoint {
                settings: self.settings.clone(),
                epoch,
                model: io::to_bytes(net.as_ref(), Sequential::ARCHITECTURE),
                optimizer,
                history: self.history.clone(),
                best: self.best.clone(),
            };
            self.unsaved = None;
            if stop || epoch % every == 0 || epoch == self.epochs {
                checkpoint.save(path)?;
            } else {
                self.unsaved = Some(checkpoint);
            }
        }
        Ok(stop)
    }
}

/// Writes `values` (one vector per parameter, as [`Layer::params`] lists them) back into `net`.
fn restore(net: &mut Sequential, values: &[Vec<f32>]) {
    for (p, v) in net.params_mut().into_iter().zip(values) {
        p.value.copy_from_slice(v);
    }
}

fn clear_gradients(net: &mut Sequential) {
    net.params_mut().into_iter().for_each(|p| p.grad.fill(0.0));
}

/// The mean Gauss-Newton curvature ∂²E/∂param² of `samples` training samples drawn from
/// `rng` (a [`Mode::Curvature`] pass after [`Loss::curvature`]), one vector per parameter;
/// each pass's [`Pass`] seed comes from `rng` too. The gradients are left cleared.
fn estimate_curvature(
    net: &mut Sequential,
    data: &Dataset,
    loss: Loss,
    samples: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<Vec<f32>>> {
    let mut sums: Vec<Vec<f32>> = net
        .params()
        .iter()
        .map(|p| vec![0.0; p.value.len()])
        .collect();
    clear_gradients(net);
    for _ in 0..samples {
        let i = rng.random_range(0..data.len());
        let label = usize::from(data.labels()[i]);
        let input = data.batch_for(net, &[i], None)?;
        let trace = net.trace(input.view(), Pass::Train { seed: rng.random() })?;
        let (_, grad) = loss.batch(trace.output(), &[label])?;
        let mut curvature = Array4::zeros(grad.raw_dim());
        loss.curvature(
            grad.as_slice()
                .expect("a fresh array is in standard layout"),
            label,
            curvature
                .as_slice_mut()
                .expect("zeros are in standard layout"),
        )?;
        let mode = Mode::Curvature {
            slope: Some(grad.view()),
        };
        net.backprop(&trace, curvature.view(), mode)?;
        for (sum, p) in sums.iter_mut().zip(net.params_mut()) {
            sum.iter_mut().zip(p.grad.iter()).for_each(|(s, c)| *s += c);
        }
        clear_gradients(net);
    }
    let n = samples as f32;
    sums.iter_mut().flatten().for_each(|s| *s /= n);
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeNet5;
    use crate::testing::bars;
    use crate::train::{GradientDescent, Sdlm};
    use rand::SeedableRng;

    fn grads(net: &mut LeNet5) -> Vec<f32> {
        grads_of(net)
    }

    fn grads_of(net: &mut Sequential) -> Vec<f32> {
        net.params_mut()
            .iter()
            .flat_map(|p| p.grad.to_vec())
            .collect()
    }

    /// Plain gradient descent that does not say so: a trainer steps it after the pass.
    #[derive(Debug)]
    struct Unfused;

    impl Optimizer for Unfused {
        fn step(&mut self, params: Vec<crate::ParamMut<'_>>, lr: f32) -> Result<bool> {
            GradientDescent.step(params, lr)
        }
    }

    #[test]
    fn a_per_sample_run_fused_or_not_writes_the_same_bytes() {
        let run = |trainer: Trainer| {
            let mut net = LeNet5::with_seed(3);
            let mut trainer = trainer.with_epochs(2).with_sampling(Sampling::Shuffle);
            assert_eq!(trainer.batch_size(), 1);
            trainer
                .train(&mut net, &bars(30), |_| ControlFlow::Continue(()))
                .unwrap();
            io::to_bytes(&net, Sequential::ARCHITECTURE)
        };
        // only plain gradient descent says it may be fused: the others' steps are their own
        assert!(GradientDescent.is_plain_descent());
        assert!(!Unfused.is_plain_descent());
        let momentum = run(Trainer::new(crate::train::Momentum::new(0.5)));
        assert_ne!(momentum, run(Trainer::new(GradientDescent)));
        for distortion in [None, Some(Distortion::default())] {
            let fused = run(Trainer::new(GradientDescent).with_distortion(distortion));
            assert_eq!(
                fused,
                run(Trainer::new(Unfused).with_distortion(distortion))
            );
            assert_ne!(
                fused,
                io::to_bytes(&LeNet5::with_seed(3), Sequential::ARCHITECTURE)
            );
        }
    }

    #[test]
    fn a_batch_step_uses_the_mean_of_the_samples_gradients() {
        let data = bars(4);
        let trainer = Trainer::new(GradientDescent).with_batch_size(4);
        let mut net = LeNet5::with_seed(2);
        let step = |net: &mut LeNet5, batch: &[usize]| {
            let input = data.batch_of(batch, None).unwrap();
            let trace = net.trace(input.view(), Pass::Predict).unwrap();
            let labels: Vec<usize> = batch.iter().map(|&i| data.labels()[i].into()).collect();
            let (_, grad) = trainer.loss().batch(trace.output(), &labels).unwrap();
            net.backprop(&trace, grad.view(), Mode::Params).unwrap();
        };
        step(&mut net, &[0, 1, 2, 3]);
        let batched = grads(&mut net);
        let mut one_by_one = vec![0.0f32; batched.len()];
        for i in 0..4 {
            let mut single = LeNet5::with_seed(2);
            step(&mut single, &[i]);
            one_by_one
                .iter_mut()
                .zip(grads(&mut single))
                .for_each(|(s, g)| *s += g / 4.0);
        }
        for (a, b) in batched.iter().zip(&one_by_one) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} {b}");
        }
    }

    /// A small stack with dropout, so that the parts' pass seeds matter.
    fn dropout_stack() -> Sequential {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        Sequential::new([1, 28, 28])
            .add(crate::Conv::new(1, 3, 5, &mut rng).unwrap())
            .unwrap()
            .add(crate::MaxPool::new(4).unwrap())
            .unwrap()
            .add(crate::Dropout::new(0.3, 5).unwrap())
            .unwrap()
            .add_with(|shape| crate::Connect::flattening(shape, 10, &mut rng))
            .unwrap()
    }

    /// The model bytes and the epochs' accuracies of a run on `threads` threads, each epoch
    /// measured on a validation set and the training set while the next trains, the best kept.
    fn mini_batch_run(parts: usize, threads: usize) -> (Vec<u8>, Vec<Option<f64>>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = dropout_stack();
            let history = Trainer::default()
                .with_epochs(3)
                .with_batch_size(10)
                .with_parts(parts)
                .with_distortion(Some(Distortion::default()))
                .with_train_accuracy(true)
                .with_validation(Some(bars(40)))
                .with_keep_best(true)
                .train(&mut net, &bars(95), |_| ControlFlow::Continue(()))
                .unwrap();
            let accuracies = history
                .iter()
                .flat_map(|s| [s.accuracy, s.validation_accuracy])
                .collect();
            (io::to_bytes(&net, Sequential::ARCHITECTURE), accuracies)
        })
    }

    #[test]
    fn one_thread_and_two_write_the_same_model_bytes_for_mini_batches() {
        let one = mini_batch_run(4, 1);
        assert!(one.1.len() == 6 && one.1.iter().all(Option::is_some));
        assert!(one == mini_batch_run(4, 2));
        assert!(one == mini_batch_run(4, 3));
        // the parts' seeds and sums are not those of one whole batch
        assert!(one.0 != mini_batch_run(1, 2).0);
        assert!(mini_batch_run(1, 1) == mini_batch_run(1, 2));
    }

    #[test]
    fn a_batch_in_parts_has_the_gradient_of_the_whole_batch() {
        let data = bars(10);
        let batch_gradients = |parts: usize| {
            let batching = Batching {
                parts,
                loss: Loss::SoftmaxCrossEntropy,
                distortion: None,
            };
            let mut net = LeNet5::with_seed(2);
            // copies holding other weights: the batch's gradients take the network's
            let mut replicas = vec![Sequential::clone(&LeNet5::with_seed(3)); parts - 1];
            let mut draws = Draws {
                pass: Stream::Pass.of(1, 1),
                distortion: Stream::Distortion.of(1, 1),
            };
            let batch: Vec<usize> = (0..10).collect();
            let loss = batching
                .gradients(&mut net, &mut replicas, &data, &batch, &mut draws)
                .unwrap();
            let left = replicas.iter_mut().flat_map(grads_of).collect();
            (loss, grads(&mut net), left)
        };
        let (whole_loss, whole, _) = batch_gradients(1);
        for parts in [2, 3, 4, 10] {
            let (loss, split, left): (f64, Vec<f32>, Vec<f32>) = batch_gradients(parts);
            assert!(
                (loss - whole_loss).abs() < 1e-5 * whole_loss,
                "{parts}: {loss} {whole_loss}"
            );
            for (a, b) in split.iter().zip(&whole) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{parts}: {a} {b}");
            }
            assert!(
                left.iter().all(|&g| g == 0.0),
                "{parts}: the copies' gradients remain"
            );
        }
    }

    #[test]
    fn the_epoch_loss_is_the_mean_over_its_samples_and_the_seed_picks_them() {
        let data = bars(20);
        // a rate so small that no weight moves: every batch sees the initial network
        let epoch = |sampling: Sampling, seed: u64| {
            let mut net = LeNet5::with_seed(2);
            Trainer::new(GradientDescent)
                .with_schedule(Schedule::PerEpoch(vec![1e-30]))
                .with_batch_size(6)
                .with_epochs(1)
                .with_sampling(sampling)
                .with_seed(seed)
                .train(&mut net, &data, |_| ControlFlow::Continue(()))
                .unwrap()
                .remove(0)
        };
        let net = LeNet5::with_seed(2);
        let scores = net.predict(
            data.batch_of(&(0..20).collect::<Vec<_>>(), None)
                .unwrap()
                .view(),
        );
        let labels: Vec<usize> = data.labels().iter().map(|&l| l.into()).collect();
        let (mean, _) = Loss::SoftmaxCrossEntropy
            .batch(scores.unwrap().view(), &labels)
            .unwrap();
        let all = epoch(Sampling::Shuffle, 3);
        assert_eq!(all.samples, 20);
        assert!(
            (all.loss - mean).abs() <= 1e-6 * mean,
            "{} {mean}",
            all.loss
        );
        // half the samples, which the seed picks
        let (half, other) = (
            epoch(Sampling::Fraction(0.5), 3),
            epoch(Sampling::Fraction(0.5), 4),
        );
        assert!(half.samples < 20 && other.samples < 20);
        assert_ne!((half.samples, half.loss), (other.samples, other.loss));
    }

    #[test]
    fn curvature_is_a_non_negative_estimate_and_leaves_no_gradient() {
        let mut net = LeNet5::lecun1998();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let data = bars(20).with_encoding(crate::Preset::LeCun1998.encoding());
        let h = estimate_curvature(&mut net, &data, Loss::Map { j: 1.0 }, 50, &mut rng).unwrap();
        assert_eq!(h.len(), net.params().len());
        assert!(h.iter().flatten().all(|&v| v >= 0.0 && v.is_finite()));
        assert!(h.iter().flatten().any(|&v| v > 0.0));
        assert!(grads(&mut net).iter().all(|&g| g == 0.0));
    }

    #[test]
    fn mini_batch_sdlm_and_shuffled_training_learn_the_bars() {
        let preset = crate::Preset::Modern;
        let data = bars(200).with_encoding(preset.encoding());
        let mut net = LeNet5::from_preset(preset, 1);
        let before = evaluate(&net, &data).unwrap().accuracy;
        let history = Trainer::new(Sdlm::new(0.02, 50))
            .with_schedule(Schedule::PerEpoch(vec![0.001]))
            .with_loss(preset.loss())
            .with_batch_size(2)
            .with_epochs(3)
            .with_train_accuracy(true)
            .train(&mut net, &data, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(history.len(), 3);
        assert!(history.iter().all(|s| s.samples == 200));
        assert!(
            history[2].accuracy.unwrap() > 0.9 && before < 0.5,
            "{before} {history:?}"
        );
    }

    #[test]
    fn schedules() {
        let exp = Schedule::Exponential {
            lr: 0.5,
            decay: 0.5,
        };
        assert_eq!([exp.lr(1).unwrap(), exp.lr(3).unwrap()], [0.5, 0.125]);
        assert!(exp.lr(0).is_err() && Schedule::PerEpoch(vec![]).lr(1).is_err());
        let steps = Schedule::PerEpoch(vec![3.0, 2.0]);
        let rates = [1, 2, 9].map(|e| steps.lr(e).unwrap());
        assert_eq!(rates, [3.0, 2.0, 2.0]);
        for bad in [
            Schedule::PerEpoch(vec![]),
            Schedule::PerEpoch(vec![0.1, f32::NAN]),
            Schedule::Exponential {
                lr: 0.1,
                decay: 0.0,
            },
            // a rate that decays to zero by epoch 20
            Schedule::Exponential {
                lr: 0.1,
                decay: 1e-4,
            },
        ] {
            assert!(bad.validate(20).is_err(), "{bad:?}");
        }
        // a bad decay is refused even where no epoch would use it
        for decay in [0.0, -0.5, f32::INFINITY, f32::NAN] {
            let one_epoch = Schedule::Exponential { lr: 0.1, decay };
            assert!(one_epoch.validate(1).is_err(), "{decay}");
        }
        assert!(exp.validate(1).is_ok());
        let trainer = Trainer::new(GradientDescent)
            .with_epochs(7)
            .with_batch_size(3);
        assert_eq!((trainer.epochs(), trainer.batch_size()), (7, 3));
        let bad_distortion = Distortion {
            shift: -2.0,
            ..Distortion::default()
        };
        for mut bad in [
            Trainer::new(GradientDescent).with_batch_size(0),
            Trainer::new(GradientDescent).with_distortion(Some(bad_distortion)),
            Trainer::new(GradientDescent).with_sampling(Sampling::Fraction(0.0)),
        ] {
            assert!(matches!(
                bad.train(&mut LeNet5::new(), &bars(5), |_| ControlFlow::Continue(())),
                Err(Error::InvalidArgument { .. })
            ));
        }
    }

    #[test]
    fn runs_that_cannot_learn_are_refused() {
        let data = bars(5);
        let run = |trainer: Trainer, data: &Dataset| {
            let mut trainer = trainer;
            trainer
                .train(&mut LeNet5::new(), data, |_| ControlFlow::Continue(()))
                .unwrap_err()
                .to_string()
        };
        // 0.1 of 5 samples: less than one sample per epoch
        let err = run(
            Trainer::new(GradientDescent).with_sampling(Sampling::Fraction(0.1)),
            &data,
        );
        assert!(err.contains("less than one sample per epoch"), "{err}");
        // exactly one sample per epoch is enough; a fraction of 0 is out of range
        let net = LeNet5::new();
        let fraction = |f| Trainer::new(GradientDescent).with_sampling(Sampling::Fraction(f));
        assert!(fraction(0.2).validate(&net, &data).is_ok());
        let err = fraction(0.0).validate(&net, &data).unwrap_err().to_string();
        assert!(err.contains("must be in (0, 1]"), "{err}");
        // 0.25 of 5: most epochs draw a sample or two, some none; none is an error, not a loss of 0
        let err = run(
            Trainer::new(GradientDescent)
                .with_sampling(Sampling::Fraction(0.25))
                .with_epochs(200),
            &data,
        );
        assert!(err.contains("drew no sample"), "{err}");
        let err = run(
            Trainer::new(GradientDescent).with_schedule(Schedule::Exponential {
                lr: 0.1,
                decay: 1e-10,
            }),
            &data,
        );
        assert!(err.contains("learning rate of epoch 6 is 0"), "{err}");
    }

    #[test]
    fn networks_of_28x28_inputs_train_on_the_images_unpadded_and_in_their_encoding() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let linear = crate::Encoding::Linear {
            background: -0.5,
            ink: 0.5,
        };
        let mut net = crate::Sequential::new([1, 28, 28])
            .with_encoding(linear)
            .add(
                crate::Connect::new(28 * 28, 10, &mut rng)
                    .unwrap()
                    .with_activation(crate::Activation::Identity)
                    .with_init(crate::Init::He, &mut rng),
            )
            .unwrap();
        let data = bars(200);
        // the batches are the images themselves, encoded the network's way
        let batch = data.batch_for(&net, &[3], None).unwrap();
        assert_eq!(batch.dim(), (1, 1, 28, 28));
        assert_eq!(batch[[0, 0, 6, 0]], 0.5); // a bar pixel (row 6 for label 3)
        assert_eq!(batch[[0, 0, 0, 0]], -0.5);
        let mut trainer = Trainer::new(crate::train::Adam::default())
            .with_epochs(3)
            .with_schedule(Schedule::Exponential {
                lr: 0.01,
                decay: 0.9,
            });
        trainer
            .train(&mut net, &data, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(evaluate(&net, &data).unwrap().accuracy, 1.0);
        // data meant for another encoding is refused, not fed in silently
        let binary = bars(20).with_encoding(crate::Encoding::Binary);
        let err = evaluate(&net, &binary).unwrap_err().to_string();
        assert!(err.contains("meant for Binary inputs"), "{err}");
        assert!(
            trainer
                .train(&mut net, &binary, |_| ControlFlow::Continue(()))
                .is_err()
        );
    }

    #[test]
    fn a_network_without_one_score_per_class_is_refused() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut net = crate::Sequential::new([1, 32, 32])
            .add(crate::Connect::new(32 * 32, 12, &mut rng).unwrap())
            .unwrap();
        let data = bars(5);
        let err = Trainer::new(GradientDescent)
            .train(&mut net, &data, |_| ControlFlow::Continue(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("12x1x1 scores per image"), "{err}");
        assert!(evaluate(&net, &data).is_err());
        // ten maps of 2x2 are 40 scores, not ten
        let maps = crate::Sequential::new([1, 32, 32])
            .add(crate::Conv::new(1, 10, 31, &mut rng).unwrap())
            .unwrap();
        let err = evaluate(&maps, &data).unwrap_err().to_string();
        assert!(err.contains("10x2x2 scores per image"), "{err}");
        // 28 rows but 30 columns: no square margin around the images fits it
        let mut small = crate::Sequential::new([1, 28, 30]);
        assert!(matches!(evaluate(&small, &data), Err(Error::Shape { .. })));
        assert!(
            Trainer::new(GradientDescent)
                .train(&mut small, &data, |_| ControlFlow::Continue(()))
                .is_err()
        );
    }

    #[test]
    fn shuffling_draws_a_new_permutation_each_epoch() {
        let trainer = Trainer::new(GradientDescent);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let (first, second) = (trainer.order(50, &mut rng), trainer.order(50, &mut rng));
        for order in [&first, &second] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
            assert_ne!(order, &sorted);
        }
        assert_ne!(first, second);
        // the report's sampling keeps data set order
        let fraction = trainer.with_sampling(Sampling::Fraction(0.5));
        let taken = fraction.order(50, &mut rng);
        assert!(taken.windows(2).all(|w| w[0] < w[1]) && !taken.is_empty());
    }

    #[test]
    fn distortions_change_what_is_trained_on() {
        let weights = |distortion: Option<Distortion>| {
            let mut net = LeNet5::with_seed(2);
            Trainer::new(GradientDescent)
                .with_epochs(1)
                .with_distortion(distortion)
                .train(&mut net, &bars(20), |_| ControlFlow::Continue(()))
                .unwrap();
            net.params()
                .iter()
                .flat_map(|p| p.value.to_vec())
                .collect::<Vec<f32>>()
        };
        assert_eq!(weights(None), weights(None));
        assert_ne!(weights(None), weights(Some(Distortion::default())));
    }

    #[test]
    fn the_curvature_estimate_is_a_mean_over_samples() {
        // every sample the same image and label: the mean of 1 and of 40 samples agree
        let images = ndarray::Array3::from_shape_fn((3, 28, 28), |(_, r, c)| ((r * c) % 256) as u8);
        let data = Dataset::new(images, vec![4, 4, 4])
            .unwrap()
            .with_encoding(crate::Preset::LeCun1998.encoding());
        let estimate = |samples| {
            let mut net = LeNet5::lecun1998();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
            estimate_curvature(&mut net, &data, Loss::Map { j: 1.0 }, samples, &mut rng).unwrap()
        };
        let (one, many) = (estimate(1), estimate(40));
        for (a, b) in one.iter().flatten().zip(many.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * (a.abs() + 1e-12) + 1e-12, "{a} {b}");
        }
    }

    /// A first epoch of Adam too slow to learn much, two sound ones, then a rate that wrecks
    /// the weights: the best epoch is neither the first nor the last.
    fn wrecked() -> Schedule {
        Schedule::PerEpoch(vec![1e-5, 2e-3, 2e-3, 0.5])
    }

    #[test]
    fn validation_and_keep_best_end_on_the_best_epoch() {
        let encoding = crate::Preset::Modern.encoding();
        let (train, validation) = (
            bars(200).with_encoding(encoding),
            bars(50).with_encoding(encoding),
        );
        let mut seen = Vec::new();
        let mut weights = Vec::new();
        let mut net = LeNet5::from_preset(crate::Preset::Modern, 1);
        let history = Trainer::new(crate::train::Adam::default())
            .with_schedule(wrecked())
            .with_batch_size(4)
            .with_epochs(4)
            .with_validation(Some(validation.clone()))
            .with_keep_best(true)
            .train(&mut net, &train, |p| {
                if let Progress::Epoch(stats, net) = p {
                    // the callback sees the network the epoch left
                    let now = evaluate(net, &validation).unwrap().accuracy;
                    seen.push((stats.validation_accuracy, now));
                    weights.push(crate::io::to_bytes(net, "x"));
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(seen.iter().all(|&(reported, now)| reported == Some(now)));
        for (i, stats) in history.iter().enumerate() {
            assert_eq!(
                (stats.epoch, stats.lr),
                (i + 1, wrecked().lr(i + 1).unwrap())
            );
            assert_eq!(stats.samples, 200);
            assert!(stats.loss.is_finite() && stats.loss > 0.0 && stats.seconds > 0.0);
        }
        assert!(history.iter().all(|s| s.accuracy.is_none()));
        let scores: Vec<f64> = history
            .iter()
            .map(|s| s.validation_accuracy.unwrap())
            .collect();
        let best = scores.iter().copied().fold(0.0, f64::max);
        assert!(
            best > scores[0] && best > scores[3],
            "{scores:?}: the first and last epochs must be worse for this test"
        );
        assert_eq!(evaluate(&net, &validation).unwrap().accuracy, best);
        // the weights of the first epoch with that score (a later tie does not replace it)
        let first_best = scores.iter().position(|&s| s == best).unwrap();
        assert_eq!(crate::io::to_bytes(&net, "x"), weights[first_best]);
    }

    #[test]
    fn a_stop_at_an_epochs_end_keeps_its_weights_though_the_next_epoch_has_begun() {
        let data = bars(60);
        let trainer = |epochs| {
            Trainer::new(GradientDescent)
                .with_epochs(epochs)
                .with_schedule(Schedule::PerEpoch(vec![0.05]))
                .with_train_accuracy(true)
        };
        let mut seen = Vec::new();
        let mut net = LeNet5::new();
        let history = trainer(4)
            .train(&mut net, &data, |p| match p {
                Progress::Epoch(stats, net) => {
                    seen.push(crate::io::to_bytes(net, "x"));
                    if stats.epoch == 2 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                Progress::Sample { .. } => ControlFlow::Continue(()),
            })
            .unwrap();
        assert_eq!(history.len(), 2);
        assert!(
            seen[0] != seen[1],
            "the epochs must change the weights for this test"
        );
        assert!(
            crate::io::to_bytes(&net, "x") == seen[1],
            "the network is not as epoch 2 left it"
        );
        let mut two = LeNet5::new();
        trainer(2)
            .train(&mut two, &data, |_| ControlFlow::Continue(()))
            .unwrap();
        assert!(crate::io::to_bytes(&two, "x") == seen[1]);
    }

    #[test]
    fn the_epochs_seconds_add_up_to_at_most_the_runs_time() {
        // a validation set far larger than the training set: measuring it after an epoch
        // overlaps most of the next one's training
        let net = || {
            crate::Sequential::new([1, 32, 32])
                .add(
                    crate::Connect::new(32 * 32, 10, &mut Xoshiro256PlusPlus::seed_from_u64(1))
                        .unwrap(),
                )
                .unwrap()
        };
        let (train, validation) = (bars(20), bars(2000));
        let timed = |epochs| {
            let mut trainer = Trainer::new(GradientDescent)
                .with_epochs(epochs)
                .with_validation(Some(validation.clone()));
            let started = Instant::now();
            let history = trainer
                .train(&mut net(), &train, |_| ControlFlow::Continue(()))
                .unwrap();
            let seconds: Vec<f64> = history.iter().map(|s| s.seconds).collect();
            (seconds, started.elapsed().as_secs_f64())
        };
        let (seconds, total) = timed(4);
        assert!(seconds.iter().all(|&s| s > 0.0), "{seconds:?}");
        assert!(
            seconds.iter().sum::<f64>() <= total,
            "{seconds:?} in {total} s"
        );
        // one epoch: its seconds are the run, its measurement included
        let (seconds, total) = timed(1);
        assert!(
            seconds[0] <= total && seconds[0] > 0.5 * total,
            "{seconds:?} in {total} s"
        );
    }

    #[test]
    fn an_epoch_that_fails_records_the_epoch_before_it_first() {
        // 0.25 of 5 samples: some epoch draws none, which is an error
        let dir = crate::testing::temp_dir("fails");
        let path = dir.join("run.ckpt");
        let mut epochs = Vec::new();
        let err = Trainer::new(GradientDescent)
            .with_sampling(Sampling::Fraction(0.25))
            .with_epochs(200)
            .with_train_accuracy(true)
            .with_checkpoints(1, &path)
            .with_seed(4) // a seed whose first epochs draw samples
            .train(&mut LeNet5::new(), &bars(5), |p| {
                if let Progress::Epoch(stats, _) = p {
                    epochs.push(stats.epoch);
                }
                ControlFlow::Continue(())
            })
            .unwrap_err()
            .to_string();
        let failed: usize = err
            .split_once("epoch ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!(
            failed > 2,
            "{err}: the test needs epochs before the failing one"
        );
        assert_eq!(epochs, (1..failed).collect::<Vec<_>>());
        assert_eq!(Checkpoint::load(&path).unwrap().epoch(), failed - 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keep_best_without_validation_uses_the_training_accuracy() {
        let train = bars(200).with_encoding(crate::Preset::Modern.encoding());
        let mut net = LeNet5::from_preset(crate::Preset::Modern, 1);
        let history = Trainer::new(crate::train::Adam::default())
            .with_schedule(wrecked())
            .with_batch_size(4)
            .with_epochs(4)
            .with_keep_best(true)
            .train(&mut net, &train, |_| ControlFlow::Continue(()))
            .unwrap();
        let scores: Vec<f64> = history.iter().map(|s| s.accuracy.unwrap()).collect();
        let best = scores.iter().copied().fold(0.0, f64::max);
        assert!(best > scores[0] && best > scores[3], "{scores:?}");
        assert_eq!(evaluate(&net, &train).unwrap().accuracy, best);
    }

    /// A stack with dropout (so that the pass seeds matter), trained with distortions, a
    /// validation set and keep-best (so that every carried state matters).
    fn resumable(seed: u64) -> (crate::Sequential, Trainer) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let net = crate::Sequential::new([1, 32, 32])
            .add(
                crate::Conv::new(1, 4, 5, &mut rng)
                    .unwrap()
                    .with_init(crate::Init::He, &mut rng),
            )
            .unwrap()
            .add(crate::MaxPool::new(4).unwrap())
            .unwrap()
            .add(crate::Dropout::new(0.3, 9).unwrap())
            .unwrap()
            .add_with(|shape| {
                Ok(crate::Connect::flattening(shape, 10, &mut rng)?
                    .with_activation(crate::Activation::Identity))
            })
            .unwrap();
        let trainer = Trainer::new(crate::train::Adam::default())
            .with_epochs(4)
            .with_batch_size(8)
            .with_schedule(Schedule::Exponential {
                lr: 0.01,
                decay: 0.8,
            })
            .with_distortion(Some(Distortion::default()))
            .with_validation(Some(bars(30)))
            .with_keep_best(true)
            .with_seed(5);
        (net, trainer)
    }

    #[test]
    fn checkpoints_are_written_every_n_epochs_after_the_last_and_on_a_stop() {
        let data = bars(40);
        let dir = crate::testing::temp_dir("every");
        let path = dir.join("run.ckpt");
        let on_disk = || Checkpoint::load(&path).ok().map(|c| c.epoch());
        // every 3 of 4 epochs: epoch 3's, then the last one's
        let (mut net, trainer) = resumable(1);
        let mut seen = Vec::new();
        trainer
            .with_checkpoints(3, &path)
            .train(&mut net, &data, |p| {
                if let Progress::Epoch(..) = p {
                    seen.push(on_disk());
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, vec![None, None, None, Some(3)]);
        assert_eq!(on_disk(), Some(4));
        // a run stopped after epoch 1 writes epoch 1's, though not due
        std::fs::remove_file(&path).unwrap();
        let (mut net, trainer) = resumable(1);
        trainer
            .with_checkpoints(3, &path)
            .train(&mut net, &data, |p| match p {
                Progress::Epoch(..) => ControlFlow::Break(()),
                Progress::Sample { .. } => ControlFlow::Continue(()),
            })
            .unwrap();
        assert_eq!(on_disk(), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_stopped_and_resumed_writes_the_bytes_of_one_never_stopped() {
        let data = bars(80);
        let dir = crate::testing::temp_dir("resume");
        let path = dir.join("run.ckpt");
        let (mut whole, mut trainer) = resumable(1);
        let history = trainer
            .train(&mut whole, &data, |_| ControlFlow::Continue(()))
            .unwrap();
        let expected = crate::io::to_bytes(&whole, "x");

        // stopped in the middle of epoch 3: the checkpoint is epoch 2's
        let (mut stopped, trainer) = resumable(1);
        let mut trainer = trainer.with_checkpoints(5, &path);
        let partial = trainer
            .train(&mut stopped, &data, |p| match p {
                Progress::Sample { epoch: 3, done, .. } if done >= 40 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .unwrap();
        assert_eq!(partial.len(), 2);
        let checkpoint = Checkpoint::load(&path).unwrap();
        assert_eq!(checkpoint.epoch(), 2);
        assert_eq!(checkpoint.history(), &partial[..]);

        // resumed on a network of other weights, by a new trainer of the same settings
        let (mut resumed, trainer) = resumable(2);
        let mut trainer = trainer.with_checkpoints(5, &path);
        let all = trainer
            .resume(&mut resumed, &data, &checkpoint, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(crate::io::to_bytes(&resumed, "x"), expected);
        let losses = |h: &[EpochStats]| {
            h.iter()
                .map(|s| (s.loss, s.validation_accuracy))
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(&all), losses(&history));
        let last = Checkpoint::load(&path).unwrap();
        assert_eq!(last.epoch(), 4);
        // the last epoch's checkpoint resumes to the finished run; a trainer of fewer epochs
        // refuses it
        let (mut finished, trainer) = resumable(3);
        let done = trainer
            .with_checkpoints(5, &path)
            .resume(&mut finished, &data, &last, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(losses(&done), losses(&history));
        assert_eq!(crate::io::to_bytes(&finished, "x"), expected);
        let (mut shorter, trainer) = resumable(3);
        let err = trainer
            .with_epochs(3)
            .with_checkpoints(5, &path)
            .resume(&mut shorter, &data, &last, |_| ControlFlow::Continue(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the checkpoint is of epoch 4"), "{err}");

        // other settings, or another network, are refused and change nothing
        let (mut other, trainer) = resumable(2);
        let before = crate::io::to_bytes(&other, "x");
        let err = trainer
            .with_seed(6)
            .resume(
                &mut other,
                &data,
                &checkpoint,
                |_| ControlFlow::Continue(()),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("seed 5"), "{err}");
        let (_, mut trainer) = resumable(2);
        let mut small = crate::Sequential::new([1, 32, 32])
            .add(
                crate::Connect::new(32 * 32, 10, &mut Xoshiro256PlusPlus::seed_from_u64(1))
                    .unwrap(),
            )
            .unwrap();
        assert!(
            trainer
                .resume(
                    &mut small,
                    &data,
                    &checkpoint,
                    |_| ControlFlow::Continue(())
                )
                .is_err()
        );
        assert_eq!(crate::io::to_bytes(&other, "x"), before);
        let mut bytes = checkpoint.to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(Checkpoint::from_bytes(&bytes, "mem").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sdlm_runs_resume_too() {
        let data = bars(40).with_encoding(crate::Preset::LeCun1998.encoding());
        let trainer = || {
            Trainer::new(Sdlm::new(0.5, 10))
                .with_epochs(3)
                .with_loss(Loss::Map { j: 1.0 })
                .with_schedule(Schedule::PerEpoch(vec![0.0005]))
        };
        let mut whole = LeNet5::lecun1998();
        trainer()
            .train(&mut whole, &data, |_| ControlFlow::Continue(()))
            .unwrap();
        let dir = crate::testing::temp_dir("resume-sdlm");
        let path = dir.join("run.ckpt");
        let mut stopped = LeNet5::lecun1998();
        trainer()
            .with_checkpoints(1, &path)
            .train(&mut stopped, &data, |p| match p {
                Progress::Epoch(stats, _) if stats.epoch == 1 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .unwrap();
        let checkpoint = Checkpoint::load(&path).unwrap();
        // the epoch stepped with a curvature estimated for it: one per value, none negative
        let [curvature] = &checkpoint.optimizer.buffers[..] else {
            panic!("SDLM keeps one buffer");
        };
        let sizes = |c: &Vec<Vec<f32>>| c.iter().map(Vec::len).collect::<Vec<_>>();
        let values = whole
            .params()
            .iter()
            .map(|p| p.value.len())
            .collect::<Vec<_>>();
        assert_eq!(sizes(curvature), values);
        assert!(curvature.iter().flatten().all(|&h| h >= 0.0));
        assert!(curvature.iter().flatten().any(|&h| h > 0.0));
        let mut resumed = LeNet5::lecun1998();
        trainer()
            .with_checkpoints(1, &path)
            .resume(&mut resumed, &data, &checkpoint, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(
            crate::io::to_bytes(&resumed, "x"),
            crate::io::to_bytes(&whole, "x")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
