//! [`Checkpoint`]: all a [`Trainer`](super::Trainer) needs to go on with a run from the end of
//! an epoch, in one file.
//!
//! A checkpoint holds the network (as a model file), the optimiser's state, the number of
//! epochs done, their [`EpochStats`], the best epoch's weights when the trainer keeps them, and
//! the trainer's settings. Random draws need no state of their own: every epoch draws its
//! sample order, distortions, curvature samples and dropout masks from generators made anew
//! from the seed and the epoch's number, so a resumed run draws what an uninterrupted one
//! would, and writes the same model bytes.
//!
//! The file is framed as model files are (magic `LENET5\0C`, version, length, CRC-32, then a
//! bincode payload of at most 64 MiB) and written atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::optim::OptimizerState;
use super::trainer::EpochStats;
use crate::Result;
use crate::io::{
    MAX_MODEL_FILE, decode_payload, frame_as, model_error, read_limited, unframe, write_atomic,
};

/// The first bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"LENET5\0C";
/// The checkpoint format version this crate writes.
pub const VERSION: u32 = 1;

/// A run's state at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The trainer's settings, all but the number of epochs, as [`Trainer`](super::Trainer)
    /// describes them: a run resumes only under the same.
    pub(crate) settings: String,
    /// Epochs done.
    pub(crate) epoch: usize,
    /// The network, as a model file.
    pub(crate) model: Vec<u8>,
    pub(crate) optimizer: OptimizerState,
    pub(crate) history: Vec<EpochStats>,
    /// The best epoch's score and weights, when the trainer keeps them.
    pub(crate) best: Option<Best>,
}

/// The weights of the best epoch so far, and its accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Best {
    pub(crate) score: f64,
    pub(crate) values: Vec<Vec<f32>>,
}

impl Checkpoint {
    /// Epochs done.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The stats of the epochs done.
    pub fn history(&self) -> &[EpochStats] {
        &self.history
    }

    /// The checkpoint as file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        frame_as(MAGIC, VERSION, self)
    }

    /// A checkpoint from file bytes; `source_name` names them in errors.
    ///
    /// # Errors
    /// [`Error::Model`](crate::Error::Model) when the bytes are not a whole checkpoint of a
    /// version this crate reads.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Self> {
        let (_, payload) = unframe(bytes, MAGIC, VERSION, "a lenet5 checkpoint", source_name)?;
        decode_payload(payload).map_err(|reason| model_error(source_name, reason))
    }

    /// Writes the checkpoint to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the file cannot be written; a previous file is
    /// left intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes())
    }

    /// The checkpoint saved at `path`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) and [`Error::TooLarge`](crate::Error::TooLarge) when it
    /// cannot be read, and as [`Checkpoint::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read_limited(path, MAX_MODEL_FILE, "a checkpoint")?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}
