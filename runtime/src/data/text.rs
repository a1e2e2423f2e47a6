//! Text: Keras' `text_dataset_from_directory` (a folder of `.txt` files per class) and its
//! `TextVectorization` (text to token ids, multi-hot, counts or TF-IDF rows, with a vocabulary
//! learned by `adapt`), applied to the data as Keras' guide applies it in a `tf.data` pipeline.
//! The vocabulary is saved and loaded as a small JSON file, or compiled into a binary
//! (`TextVectorization::from_json(include_str!(..))`), so a shipped model reads raw strings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

use super::Subset;
use super::folders::{Split, bad, class_files, entries, io_error, load_json, save_json};
use crate::error::{Error, Result};

/// The options of [`text_dataset_from_directory`], Keras' arguments and defaults.
#[derive(Clone, Debug)]
pub struct TextFolder {
    /// The fraction held out for validation (0: none). Needs a `subset`, as in Keras.
    pub validation_split: f32,
    /// Which part of the split to return; `None` without a split.
    pub subset: Option<Subset>,
    /// Shuffle the files (with `seed`) before splitting, as Keras does by default.
    pub shuffle: bool,
    /// The seed of that shuffle (kiln's own order, not NumPy's).
    pub seed: u64,
}

impl Default for TextFolder {
    fn default() -> Self {
        TextFolder { validation_split: 0.0, subset: None, shuffle: true, seed: crate::DEFAULT_SEED }
    }
}

/// Texts read from class folders.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSet {
    /// Each file's text.
    pub texts: Vec<String>,
    /// Each text's class, an index into `class_names`.
    pub labels: Array1<f32>,
    /// The class folders' names in label order.
    pub class_names: Vec<String>,
    /// Each text's file.
    pub files: Vec<PathBuf>,
}

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let all = entries(dir)?;
    out.extend(all.iter().filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt")).cloned());
    for sub in all.iter().filter(|p| p.is_dir()) {
        text_files(sub, out)?;
    }
    Ok(())
}

/// Reads a folder holding one folder of `.txt` files per class, as Keras'
/// `text_dataset_from_directory(dir, labels="inferred", label_mode="int")`: classes are the
/// folders' names in sorted order, files are walked as Keras walks them (other files skipped),
/// and `validation_split` with `subset` holds out the last fraction after a seeded shuffle. A
/// file that is not UTF-8, a class folder without `.txt` files or a folder without class
/// folders is an error naming it.
pub fn text_dataset_from_directory(dir: impl AsRef<Path>, opts: &TextFolder) -> Result<(TextSet, Option<TextSet>)> {
    let split = Split { validation_split: opts.validation_split, subset: opts.subset, shuffle: opts.shuffle, seed: opts.seed };
    let (class_names, train, validation) = class_files(dir.as_ref(), &split, text_files, "text files (.txt)")?;
    let read = |part: &[(PathBuf, usize)]| -> Result<TextSet> {
        let texts = part
            .iter()
            .map(|(path, _)| {
                let bytes = std::fs::read(path).map_err(io_error(path))?;
                String::from_utf8(bytes).map_err(|e| bad(path, format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TextSet {
            texts,
            labels: part.iter().map(|(_, l)| *l as f32).collect(),
            class_names: class_names.clone(),
            files: part.iter().map(|(f, _)| f.clone()).collect(),
        })
    };
    Ok(match opts.subset {
        None | Some(Subset::Training) => (read(&train)?, None),
        Some(Subset::Validation) => (read(&validation)?, None),
        Some(Subset::Both) => (read(&train)?, Some(read(&validation)?)),
    })
}

/// How [`TextVectorization`] standardizes text before splitting it (Keras' `standardize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Standardize {
    /// ASCII letters lowercased (as TensorFlow's `lower`: `É` stays), then the ASCII punctuation
    /// `` !"#$%&()*+,-./:;<=>?@[\]^_`{|}~' `` removed (Keras' default).
    #[default]
    LowerAndStripPunctuation,
    /// ASCII letters lowercased only.
    Lower,
    /// Punctuation removed only.
    StripPunctuation,
    /// The text as it is.
    None,
}

/// How [`TextVectorization`] splits standardized text into tokens (Keras' `split`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitOn {
    /// Runs of whitespace (space, tab, newline, vertical tab, form feed, carriage return).
    #[default]
    Whitespace,
    /// Each character (Unicode scalar value) a token.
    Character,
    /// The whole text one token.
    None,
}

/// What [`TextVectorization`] makes of each text (Keras' `output_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// Token ids, 0 for padding and 1 for a token not in the vocabulary, padded or cut to
    /// `output_sequence_length` (or to the longest text of the call).
    #[default]
    Int,
    /// One row per text over the vocabulary: 1 where the token occurs (index 0: any unknown one).
    MultiHot,
    /// How many times each token occurs.
    Count,
    /// Counts times each token's inverse document frequency, `ln(1 + texts / (1 + texts with
    /// it))` from `adapt`; unknown tokens weigh the mean of the vocabulary's.
    TfIdf,
}

/// The options of [`TextVectorization`], Keras' arguments and defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// The largest vocabulary, its reserved entries (`""` and `[UNK]` in `Int` mode, `[UNK]`
    /// otherwise) included; `None`: every token seen.
    pub max_tokens: Option<usize>,
    /// How texts are standardized.
    pub standardize: Standardize,
    /// How they are split.
    pub split: SplitOn,
    /// What each text becomes.
    pub output_mode: OutputMode,
    /// `Int` mode: the length every row is padded or cut to.
    pub output_sequence_length: Option<usize>,
}

/// Keras' `TextVectorization`: a vocabulary learned from texts by [`adapt`](Self::adapt), then
/// texts to arrays by [`transform`](Self::transform). Checked against Keras 3 on every output
/// mode and standardization (`tests/it/text.rs`).
///
/// ```ignore
/// let mut tv = TextVectorization::new(TextOptions { max_tokens: Some(20_000), output_sequence_length: Some(200), ..Default::default() });
/// tv.adapt(&train.texts)?;
/// let x = tv.transform(&train.texts)?;     // [n, 200] token ids for an Embedding
/// tv.save("vocabulary.json")?;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextVectorization {
    opts: TextOptions,
    vocabulary: Vec<String>,
    idf: Vec<f32>,
    index: HashMap<String, usize>,
}

const PUNCTUATION: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'";

impl TextVectorization {
    /// A vectorizer with these options and no vocabulary yet.
    pub fn new(opts: TextOptions) -> Self {
        TextVectorization { opts, ..Default::default() }
    }

    /// Its options.
    pub fn options(&self) -> &TextOptions {
        &self.opts
    }

    fn standardized(&self, text: &str) -> String {
        let lower = matches!(self.opts.standardize, Standardize::LowerAndStripPunctuation | Standardize::Lower);
        let strip = matches!(self.opts.standardize, Standardize::LowerAndStripPunctuation | Standardize::StripPunctuation);
        text.chars()
            .filter(|c| !(strip && PUNCTUATION.contains(*c)))
            .map(|c| if lower { c.to_ascii_lowercase() } else { c })
            .collect()
    }

    /// A text's tokens, as `adapt` and `transform` see them.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let s = self.standardized(text);
        match self.opts.split {
            SplitOn::Whitespace => s
                .split([' ', '\t', '\n', '\x0B', '\x0C', '\r'])
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            SplitOn::Character => s.chars().map(String::from).collect(),
            SplitOn::None => vec![s],
        }
    }

    /// Entries reserved before the learned tokens.
    fn reserved(&self) -> Vec<String> {
        match self.opts.output_mode {
            OutputMode::Int => vec![String::new(), "[UNK]".into()],
            _ => vec!["[UNK]".into()],
        }
    }

    /// Learns the vocabulary from `texts` (Keras' `adapt`): the tokens from the most frequent to
    /// the least, ties in descending order of their bytes (Keras' order), cut to `max_tokens`;
    /// and for `TfIdf`, each token's inverse document frequency.
    pub fn adapt<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<()> {
        let reserved = self.reserved();
        if self.opts.max_tokens.is_some_and(|m| m <= reserved.len()) {
            return Err(Error::InvalidArgument {
                name: "max_tokens",
                reason: format!(
                    "must exceed the {} reserved entries ({reserved:?}), got {}",
                    reserved.len(),
                    self.opts.max_tokens.unwrap_or(0)
                ),
            });
        }
        // Each token's count and the number of texts holding it.
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for text in texts {
            seen.clear();
            for t in self.tokens(text.as_ref()) {
                let first = !seen.contains(&t);
                let entry = match counts.get_mut(&t) {
                    Some(e) => e,
                    None => counts.entry(t.clone()).or_insert((0, 0)),
                };
                entry.0 += 1;
                if first {
                    entry.1 += 1;
                    seen.insert(t);
                }
            }
        }
        let mut ranked: Vec<(String, (usize, usize))> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| b.0.cmp(&a.0)));
        let keep = self.opts.max_tokens.map_or(ranked.len(), |m| (m - reserved.len()).min(ranked.len()));
        ranked.truncate(keep);
        let n = texts.len() as f64;
        let idf: Vec<f64> = ranked.iter().map(|(_, (_, docs))| (1.0 + n / (1.0 + *docs as f64)).ln()).collect();
        let unknown = if idf.is_empty() { 0.0 } else { idf.iter().sum::<f64>() / idf.len() as f64 };
        let vocabulary: Vec<String> = reserved.into_iter().chain(ranked.into_iter().map(|(t, _)| t)).collect();
        let idf = match self.opts.output_mode {
            OutputMode::TfIdf => std::iter::once(unknown).chain(idf).map(|v| v as f32).collect(),
            _ => Vec::new(),
        };
        self.set(vocabulary, idf);
        Ok(())
    }

    fn set(&mut self, vocabulary: Vec<String>, idf: Vec<f32>) {
        self.index = vocabulary.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        self.vocabulary = vocabulary;
        self.idf = idf;
    }

    /// The vocabulary, reserved entries first (Keras' `get_vocabulary()`).
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// The inverse document frequencies (`TfIdf` mode), one per vocabulary entry.
    pub fn idf_weights(&self) -> &[f32] {
        &self.idf
    }

    /// A token's id: its index in the vocabulary, or that of `[UNK]`.
    pub fn id(&self, token: &str) -> usize {
        let unknown = usize::from(self.opts.output_mode == OutputMode::Int);
        self.index.get(token).copied().unwrap_or(unknown)
    }

    /// Texts to rows: `[texts, length]` ids (`Int`), or `[texts, vocabulary size]`. An error
    /// before `adapt` (or `load`).
    pub fn transform<S: AsRef<str>>(&self, texts: &[S]) -> Result<Array2<f32>> {
        if self.vocabulary.is_empty() {
            return Err(Error::InvalidArgument {
                name: "TextVectorization",
                reason: "has no vocabulary: call adapt (or load one) before transform".into(),
            });
        }
        let ids: Vec<Vec<usize>> =
            texts.iter().map(|t| self.tokens(t.as_ref()).iter().map(|tok| self.id(tok)).collect()).collect();
        let width = match self.opts.output_mode {
            OutputMode::Int => self.opts.output_sequence_length.unwrap_or_else(|| ids.iter().map(Vec::len).max().unwrap_or(0)),
            _ => self.vocabulary.len(),
        };
        let mut out = Array2::zeros((texts.len(), width));
        for (mut row, ids) in out.outer_iter_mut().zip(&ids) {
            match self.opts.output_mode {
                OutputMode::Int => row.iter_mut().zip(ids).for_each(|(o, &i)| *o = i as f32),
                OutputMode::MultiHot => ids.iter().for_each(|&i| row[i] = 1.0),
                OutputMode::Count => ids.iter().for_each(|&i| row[i] += 1.0),
                OutputMode::TfIdf => {
                    ids.iter().for_each(|&i| row[i] += 1.0);
                    row.iter_mut().zip(&self.idf).for_each(|(o, w)| *o *= w);
                }
            }
        }
        Ok(out)
    }

    /// The configuration and vocabulary as JSON (what [`save`](Self::save) writes).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "max_tokens": self.opts.max_tokens,
            "standardize": format!("{:?}", self.opts.standardize),
            "split": format!("{:?}", self.opts.split),
            "output_mode": format!("{:?}", self.opts.output_mode),
            "output_sequence_length": self.opts.output_sequence_length,
            "vocabulary": self.vocabulary,
            "idf_weights": self.idf,
        })
        .to_string()
    }

    /// A vectorizer from [`to_json`](Self::to_json)'s text (`include_str!` a saved file to
    /// compile it into a binary). A field that is missing or of the wrong kind is an error
    /// naming it.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidData { what: "TextVectorization JSON".into(), reason };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| v.get(k).ok_or_else(|| bad(format!("has no `{k}`")));
        let word = |k: &str| field(k)?.as_str().map(str::to_string).ok_or_else(|| bad(format!("`{k}` is not a string")));
        let count = |k: &str| -> Result<Option<usize>> {
            let f = field(k)?;
            if f.is_null() {
                return Ok(None);
            }
            f.as_u64().map(|n| Some(n as usize)).ok_or_else(|| bad(format!("`{k}` is not a count")))
        };
        let pick = |k: &str, names: &[&str]| -> Result<usize> {
            let w = word(k)?;
            names.iter().position(|n| *n == w).ok_or_else(|| bad(format!("`{k}` is `{w}`, not one of {names:?}")))
        };
        let standardize = [Standardize::LowerAndStripPunctuation, Standardize::Lower, Standardize::StripPunctuation, Standardize::None]
            [pick("standardize", &["LowerAndStripPunctuation", "Lower", "StripPunctuation", "None"])?];
        let split = [SplitOn::Whitespace, SplitOn::Character, SplitOn::None][pick("split", &["Whitespace", "Character", "None"])?];
        let output_mode = [OutputMode::Int, OutputMode::MultiHot, OutputMode::Count, OutputMode::TfIdf]
            [pick("output_mode", &["Int", "MultiHot", "Count", "TfIdf"])?];
        let vocabulary: Vec<String> = field("vocabulary")?
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("`vocabulary` is not a list of strings".into()))?;
        let idf: Vec<f32> = field("idf_weights")?
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_f64().map(|x| x as f32)).collect())
            .ok_or_else(|| bad("`idf_weights` is not a list of numbers".into()))?;
        let mut tv = TextVectorization::new(TextOptions {
            max_tokens: count("max_tokens")?,
            standardize,
            split,
            output_mode,
            output_sequence_length: count("output_sequence_length")?,
        });
        let reserved = tv.reserved();
        if vocabulary.len() < reserved.len() || vocabulary[..reserved.len()] != reserved[..] {
            return Err(bad(format!("the vocabulary does not start with {reserved:?}")));
        }
        if output_mode == OutputMode::TfIdf && idf.len() != vocabulary.len() {
            return Err(bad(format!("{} idf weights for {} tokens", idf.len(), vocabulary.len())));
        }
        tv.set(vocabulary, idf);
        Ok(tv)
    }

    /// Writes [`to_json`](Self::to_json) to `path`, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_json(path, &self.to_json())
    }

    /// Reads a vectorizer [`save`](Self::save) wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        load_json(path, Self::from_json)
    }
}
