//! Training and evaluation: the report's loss, per-sample [`Sgd`], accuracy and confusion matrix.

pub mod eval;
pub mod loss;
pub mod sgd;

pub use eval::{Evaluation, evaluate, predict_classes};
pub use loss::{softmax, softmax_cross_entropy};
pub use sgd::{EpochStats, Progress, Sgd};
