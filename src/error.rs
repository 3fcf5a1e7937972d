//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `lenet5`, with the offending value and its context in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array or a layer stack did not have the shape the layer needs.
    #[error("{layer}: expected shape {expected}, got {got:?}")]
    Shape {
        /// The layer (or function) that refused the array.
        layer: &'static str,
        /// The shape it needs, e.g. `[6, 14, 14]` or `[6, H >= 5, W >= 5]`.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A layer added to a [`Sequential`](crate::Sequential) does not fit the stack before it,
    /// or a layer of the stack gave an output or an input derivative of another shape than its
    /// [`Layer::output_shape`](crate::Layer::output_shape) and its input.
    #[error("layer {index}: {source}")]
    Layer {
        /// The layer's index in the stack, or the one it would have had.
        index: usize,
        /// Why it does not fit.
        #[source]
        source: Box<Error>,
    },
    /// A value given by the caller is out of its valid range.
    #[error("{what}: {reason}")]
    InvalidArgument {
        /// The argument, e.g. `"Trainer::schedule"`.
        what: &'static str,
        /// What was wrong with it, including the value.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file, or a stream inside it, holds more bytes than the crate reads for its kind.
    #[error("{}: larger than {limit} bytes, the most read for {what}", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of file, e.g. `"a model file"`.
        what: &'static str,
        /// The bound, in bytes.
        limit: u64,
    },
    /// An IDX file is malformed: bad magic number, bad dimensions, truncated, or inconsistent.
    #[error("{}: {reason}", .path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image could not be decoded, or has a size the caller cannot use.
    #[error("{source_name}: {reason}")]
    Image {
        /// The file, or a description of the in-memory image.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file is malformed, corrupted, of another version, or for another architecture.
    #[error("{source_name}: {reason}")]
    Model {
        /// The file, or `"<memory>"`.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No mirror gave a data file with the right checksum.
    #[cfg(feature = "download")]
    #[error("downloading {file}: {reason}")]
    Download {
        /// The file, e.g. `train-images-idx3-ubyte`.
        file: String,
        /// What each mirror answered.
        reason: String,
    },
    /// Training produced a NaN or infinite loss, or a step that would make a parameter NaN or
    /// infinite; the parameters are left as they were before that sample.
    #[error("training diverged at epoch {epoch}, sample {sample}: {what}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Index of the sample in the training set.
        sample: usize,
        /// What went non-finite, e.g. `"loss is NaN"`.
        what: String,
    },
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Shape`] for an exact expected shape.
    pub(crate) fn shape(layer: &'static str, expected: &[usize], got: &[usize]) -> Self {
        Error::Shape {
            layer,
            expected: format!("{expected:?}"),
            got: got.to_vec(),
        }
    }
}
