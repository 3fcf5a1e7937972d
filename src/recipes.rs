//! The presets' training recipes: each [`Preset`]'s loss and [`Trainer`]. This module sits
//! above both the networks ([`LeNet5`](crate::LeNet5), which know nothing of training) and the
//! training loop ([`crate::train`], which knows nothing of presets); a preset's layers and
//! input encoding are with the network.

use crate::Preset;
use crate::train::{Adam, Loss, Sampling, Schedule, Sdlm, Sgd, Trainer};

/// The MAP loss constant `j` of [`Preset::LeCun1998`]; the paper gives no value.
pub const LECUN_J: f32 = 1.0;

/// Each preset's recipe.
impl Preset {
    /// The loss this network trains on.
    pub fn loss(self) -> Loss {
        match self {
            Preset::Report | Preset::Modern => Loss::SoftmaxCrossEntropy,
            Preset::LeCun1998 => Loss::Map { j: LECUN_J },
        }
    }

    /// This network's training schedule, seeded by `seed`.
    pub fn trainer(self, seed: u64) -> Trainer {
        match self {
            Preset::Report => Sgd.trainer().with_seed(seed),
            Preset::LeCun1998 => {
                let passes = [
                    (2, 0.0005),
                    (3, 0.0002),
                    (3, 0.0001),
                    (4, 0.00005),
                    (8, 0.00001),
                ];
                let rates = passes
                    .iter()
                    .flat_map(|&(n, lr)| std::iter::repeat_n(lr, n))
                    .collect();
                Trainer::new(Sdlm::lecun1998())
                    .with_epochs(20)
                    .with_schedule(Schedule::PerEpoch(rates))
                    .with_sampling(Sampling::Shuffle)
                    .with_loss(self.loss())
                    .with_train_accuracy(true)
                    .with_seed(seed)
            }
            Preset::Modern => Trainer::new(Adam::default())
                .with_epochs(20)
                .with_batch_size(32)
                .with_schedule(Schedule::Exponential {
                    lr: 1e-3,
                    decay: 0.85,
                })
                .with_sampling(Sampling::Shuffle)
                .with_loss(self.loss())
                .with_train_accuracy(true)
                .with_seed(seed),
        }
    }
}
