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
/// expected and what was received. `Debug` prints the same sentence as `Display`, so that
/// `fn main() -> kiln::Result<()>` shows it when `?` returns an error.
#[derive(thiserror::Error)]
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
    #[error("unknown {kind} `{name}`{}; valid names are: {}", did_you_mean(name, valid), valid.join(", "))]
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
    /// A training step produced a NaN or infinite loss or gradient (Keras' TerminateOnNaN, on by
    /// default). The step was not applied: weights and optimizer state are those before it.
    #[error(
        "{what} became {value} at epoch {epoch}, batch {batch}: training stopped before applying that step, \
         the weights are those of the step before (lower the learning rate or check the data)"
    )]
    NonFiniteLoss {
        /// `loss`, or `the gradient of dense_1.kernel`.
        what: String,
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The offending value (NaN or ±inf).
        value: f32,
        /// The epochs that finished before it, as `fit` would have returned them.
        history: Box<crate::history::History>,
    },
    /// A dataset given to `fit_dataset` failed (an unreadable file, a bad record, a batch that
    /// does not fit the model): training stopped before that batch's step.
    #[error(
        "{source} (batch {batch} of epoch {epoch} from the dataset: training stopped before that batch's step; \
         the epochs finished are in this error's history)"
    )]
    Dataset {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// What went wrong.
        source: Box<Error>,
        /// The epochs that finished before it, as `fit_dataset` would have returned them.
        history: Box<crate::history::History>,
    },
    /// An update outside `fit` (`opt.apply`, `apply_gradients`, the moving statistics of
    /// `loss_and_grads`) that would have left a weight, a moving statistic or the optimizer's
    /// state NaN or infinite. It was refused: nothing changed.
    #[error(
        "{what} would become {value}: the update was refused, and the weights, moving statistics and optimizer \
         state are as they were (lower the learning rate or check the data and gradients)"
    )]
    NonFiniteUpdate {
        /// `dense_1.kernel after adam's update`, `adam's state for dense.bias`, or a moving statistic.
        what: String,
        /// The offending value.
        value: f32,
    },
    /// `predict` or `predict_one` computed a NaN or infinite output from finite input: the layer
    /// named is the first, in the order the layers ran, whose output held one.
    #[error(
        "layer `{layer}` of {model} computed {value} from finite input (row {row} of x), so {model}'s output is \
         not finite: check the scale of the input and the weights"
    )]
    NonFiniteOutput {
        /// The model.
        model: &'static str,
        /// The first layer whose output held a non-finite value (the output's name where the
        /// model does not list its layers' outputs).
        layer: String,
        /// The row of `x` (0-based).
        row: usize,
        /// The value.
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

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Edit distance counting a swap of two neighbours as one edit (`adma` is one edit from `adam`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = (a[i - 1] != b[j - 1]) as usize;
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// ` (did you mean `x`?)` when one of `valid` is within two edits of `name`.
pub(crate) fn did_you_mean(name: &str, valid: &[&str]) -> String {
    valid
        .iter()
        .map(|v| (distance(&name.to_lowercase(), &v.to_lowercase()), *v))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map_or_else(String::new, |(_, v)| format!(" (did you mean `{v}`?)"))
}

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { name, reason: reason.into() }
    }
}

/// An id or label as kiln read it: the value itself when f32 holds every integer near it, or
/// else what it became (integer inputs are converted to f32, exact only below 2²⁴), said so, so
/// that the message never quotes a number as if it were the one passed.
pub(crate) fn read_as(v: f32) -> String {
    const EXACT: f32 = 16_777_216.0;
    if v.is_finite() && v.abs() >= EXACT && v.fract() == 0.0 {
        format!("a value of magnitude 2^24 = 16777216 or more (read as {} once converted to f32, which holds integers exactly only below 2^24)", v as i64)
    } else {
        v.to_string()
    }
}

/// The error for a loss given where the optimizer goes, or the reverse: Keras' positional order
/// is `compile(optimizer, loss)`, kiln's `compile(loss, optimizer, metrics)`.
pub(crate) fn swapped(name: &str, is: &str, wanted: &'static str) -> Error {
    Error::invalid(
        wanted,
        format!(
            "`{name}` is {is}, not {}: kiln's compile takes the loss first, then the optimizer, as in \
             compile(\"mse\", \"sgd\", &[]) (Keras' positional order, compile(optimizer, loss), is the other way round)",
            if wanted == "loss" { "a loss" } else { "an optimizer" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_sentence() {
        let e =
            Error::Shape { what: "x (input of Func)".into(), expected: "[n, 64]".into(), got: Shape(vec![100, 32]) };
        assert_eq!(format!("{e:?}"), "x (input of Func): expected shape [n, 64], got [100, 32]");
        assert_eq!(format!("{e:?}"), e.to_string());
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let e = Error::UnknownName { kind: "optimizer", name: "adamm".into(), valid: vec!["sgd", "adam", "rmsprop"] };
        assert_eq!(
            e.to_string(),
            "unknown optimizer `adamm` (did you mean `adam`?); valid names are: sgd, adam, rmsprop"
        );
        let far = Error::UnknownName { kind: "loss", name: "zzzzzz".into(), valid: vec!["mse"] };
        assert!(!far.to_string().contains("did you mean"));
    }
}
