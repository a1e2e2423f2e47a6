//! What a model's string input goes through before its layers: Keras' `TextVectorization`,
//! `StringLookup` or `Hashing` as the first layer after `Input([], dtype = string)`. The model
//! keeps it in its state, `adapt` teaches it, and the weights files carry its state.

use ndarray::Array2;

use super::{Encoding, Hashing, StringLookup, TextVectorization};
use crate::error::{Error, Result};

/// A model's string preprocessing (see `sequential!` and `functional!`'s `Input([], dtype =
/// string)`): one string per sample in, the numbers the model's layers read out.
#[derive(Clone, Debug, PartialEq)]
pub enum StringInput {
    /// Texts to token ids, `[output_sequence_length]`.
    Text(TextVectorization),
    /// A category to its id, `[1]` (int mode).
    Lookup(StringLookup),
    /// A category to its bin: `[1]` (`Encoding::Int`) or one-hot `[num_bins]`.
    Hashing(Hashing, Encoding),
}

impl StringInput {
    /// Learns the state from `texts` (Keras' `adapt`); `Hashing` has none to learn.
    pub fn adapt<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<()> {
        match self {
            StringInput::Text(tv) => tv.adapt(texts),
            StringInput::Lookup(l) => l.adapt(&texts.iter().map(|t| t.as_ref().to_string()).collect::<Vec<_>>()),
            StringInput::Hashing(..) => {
                Err(Error::invalid("adapt", "Hashing learns nothing: its bins are its hash function's"))
            }
        }
    }

    /// The numbers the model reads for `texts`, one row per text.
    pub fn transform<S: AsRef<str>>(&self, texts: &[S]) -> Result<Array2<f32>> {
        if texts.is_empty() {
            return Err(Error::invalid("texts", "is empty: give at least one string"));
        }
        match self {
            StringInput::Text(tv) => {
                let rows = tv.transform(texts)?;
                // Rows over the vocabulary, padded to max_tokens (Keras' pad_to_max_tokens): a
                // model's input has one width whatever the vocabulary learned.
                match (tv.options().output_mode, tv.options().max_tokens) {
                    (super::OutputMode::Int, _) | (_, None) => Ok(rows),
                    (_, Some(m)) if rows.ncols() < m => {
                        let mut padded = Array2::zeros((rows.nrows(), m));
                        padded.slice_mut(ndarray::s![.., ..rows.ncols()]).assign(&rows);
                        Ok(padded)
                    }
                    _ => Ok(rows),
                }
            }
            StringInput::Lookup(l) => l.encode(&texts.iter().map(|t| t.as_ref().to_string()).collect::<Vec<_>>()),
            StringInput::Hashing(h, mode) => {
                let bins = h.bins(texts);
                Ok(match mode {
                    Encoding::Int => Array2::from_shape_fn((bins.len(), 1), |(i, _)| bins[i] as f32),
                    _ => Array2::from_shape_fn((bins.len(), h.num_bins()), |(i, j)| f32::from(bins[i] == j)),
                })
            }
        }
    }

    /// The metadata entry of a weights file holding the state, and the state as JSON.
    pub fn to_metadata(&self) -> (&'static str, String) {
        match self {
            StringInput::Text(tv) => (TEXT_VECTORIZATION, tv.to_json()),
            StringInput::Lookup(l) => (STRING_LOOKUP, l.to_json()),
            StringInput::Hashing(h, _) => (HASHING, h.to_json()),
        }
    }

    /// The state a file's `metadata` holds for a model whose preprocessing is `self` (as built):
    /// its kind's entry, parsed, with the same configuration.
    pub fn from_metadata(&self, get: impl Fn(&str) -> Option<String>) -> std::result::Result<Self, String> {
        let (key, _) = self.to_metadata();
        let json = get(key).ok_or_else(|| format!("holds no `{key}`, the state of the model's {}", self.class()))?;
        let bad = |e: Error| format!("`{key}`: {e}");
        let loaded = match self {
            StringInput::Text(_) => StringInput::Text(TextVectorization::from_json(&json).map_err(bad)?),
            StringInput::Lookup(_) => StringInput::Lookup(StringLookup::from_json(&json).map_err(bad)?),
            StringInput::Hashing(_, mode) => StringInput::Hashing(Hashing::from_json(&json).map_err(bad)?, *mode),
        };
        if loaded.config() != self.config() {
            return Err(format!(
                "its {} is configured {}, but the model's is {}",
                self.class(),
                loaded.config(),
                self.config()
            ));
        }
        Ok(loaded)
    }

    /// Keras' class name.
    pub fn class(&self) -> &'static str {
        match self {
            StringInput::Text(_) => "TextVectorization",
            StringInput::Lookup(_) => "StringLookup",
            StringInput::Hashing(..) => "Hashing",
        }
    }

    /// The configuration (everything but the learned state), for comparing a file with a model.
    fn config(&self) -> String {
        match self {
            StringInput::Text(tv) => format!("{:?}", tv.options()),
            StringInput::Lookup(l) => l.config(),
            StringInput::Hashing(h, mode) => format!("{h:?} {mode:?}"),
        }
    }
}

/// The metadata entry of a text model's `TextVectorization` (options and vocabulary).
pub const TEXT_VECTORIZATION: &str = "kiln.text_vectorization";
/// The metadata entry of a `StringLookup` read by a model's string input.
pub const STRING_LOOKUP: &str = "kiln.string_lookup";
/// The metadata entry of a `Hashing` read by a model's string input.
pub const HASHING: &str = "kiln.hashing";
