//! Training and evaluation: losses, optimisers, the [`Trainer`] loop, the report's [`Sgd`]
//! schedule, accuracy and confusion matrix.

pub mod checkpoint;
pub mod eval;
pub mod loss;
pub mod optim;
pub mod sgd;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use eval::{Evaluation, evaluate, predict_classes};
pub use loss::{Loss, softmax, softmax_cross_entropy};
pub use optim::{Adam, GradientDescent, Momentum, Optimizer, OptimizerState, Sdlm};
pub use sgd::Sgd;
pub use trainer::{DEFAULT_PARTS, EpochStats, Progress, Sampling, Schedule, Trainer};
