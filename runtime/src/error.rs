//! The one error type of kiln's public API.

use std::fmt;

/// A shape, printed the way Keras prints it: `[8, 8, 1]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(s: &[usize]) -> Self {
        Shape(s.to_vec())
    }
}

/// Everything that can go wrong in kiln's public API.
///
/// Every variant carries what a user needs to act: the argument or tensor concerned, what was
/// expected and what was received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array had the wrong shape.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        /// Which argument or tensor, e.g. `x (input of Digits)`.
        what: String,
        /// The shape kiln expected (`0` stands for "any number of rows").
        expected: String,
        /// The shape it received.
        got: Shape,
    },
    /// A name (loss, optimizer, metric) that kiln does not know.
    #[error("unknown {kind} `{name}`; valid names are: {}", valid.join(", "))]
    UnknownName {
        /// `loss`, `optimizer` or `metric`.
        kind: &'static str,
        /// The name the user gave.
        name: String,
        /// Every name kiln accepts here.
        valid: Vec<&'static str>,
    },
    /// An argument outside its valid range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name, as in Keras (`batch_size`, `validation_split`).
        name: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Input data that kiln refuses to compute with (NaN, inf, labels out of range).
    #[error("invalid data in {what}: {reason}")]
    InvalidData {
        /// Which array.
        what: String,
        /// What is wrong, naming the first bad row.
        reason: String,
    },
    /// `fit`, `evaluate` or `train_on_batch` called before `compile`.
    #[error("the model is not compiled: call `model.compile(loss, optimizer, metrics)` before `{0}`")]
    NotCompiled(&'static str),
    /// Training produced a NaN or infinite loss (Keras' TerminateOnNaN, on by default).
    #[error(
        "loss became {value} at epoch {epoch}, batch {batch}: training stopped (lower the learning rate or check the data)"
    )]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The loss value (NaN or ±inf).
        value: f32,
    },
    /// A weights file that kiln will not load, and why (naming the tensor concerned).
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { name, reason: reason.into() }
    }
}
