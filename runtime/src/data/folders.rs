//! Reading folders of class folders, shared by the image and text readers: the class names,
//! the files of each class, Keras' seeded split; and the JSON files that hold a preprocessing
//! layer's state.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Which part of a `validation_split` to return (Keras' `subset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    /// The first `1 - validation_split` of the shuffled files.
    Training,
    /// The last `validation_split` of them.
    Validation,
    /// Both: the training set, then the validation set.
    Both,
}

pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadFile { path: path.display().to_string(), reason: reason.into() }
}

/// Writes `json` (a vocabulary, a configuration) to `path`, atomically.
pub(crate) fn save_json(path: impl AsRef<Path>, json: &str) -> Result<()> {
    crate::io::atomic_write(path, |w| w.write_all(json.as_bytes()))
}

/// Reads `path` and parses it with `parse` (a `from_json`); every error names the file.
pub(crate) fn load_json<T>(path: impl AsRef<Path>, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    parse(&text).map_err(|e| bad(path, e.to_string()))
}

/// The sorted entries of a folder.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_error(dir))? {
        out.push(e.map_err(io_error(dir))?.path());
    }
    out.sort();
    Ok(out)
}

pub(crate) fn check_split(dir: &Path, opts: &Split) -> Result<()> {
    let invalid = |name, reason: String| Err(Error::InvalidArgument { name, reason });
    let split = opts.validation_split;
    if !(0.0..1.0).contains(&split) {
        return invalid("validation_split", format!("must be in [0, 1), got {split}"));
    }
    match (split > 0.0, opts.subset) {
        (true, None) => invalid(
            "subset",
            format!("validation_split = {split} needs a subset: Subset::Training, Subset::Validation or Subset::Both"),
        ),
        (false, Some(s)) => invalid("validation_split", format!("subset {s:?} needs a validation_split in (0, 1)")),
        _ if !dir.is_dir() => Err(bad(dir, "not a directory of class folders")),
        _ => Ok(()),
    }
}

/// How a reader of class folders splits and orders its files.
pub(crate) struct Split {
    pub validation_split: f32,
    pub subset: Option<Subset>,
    pub shuffle: bool,
    pub seed: u64,
}

/// The class folders of `dir` (their names in sorted order are the classes), the files `find`
/// finds in each (labelled with its class), shuffled and split as Keras does.
#[allow(clippy::type_complexity)]
pub(crate) fn class_files(
    dir: &Path,
    split: &Split,
    find: fn(&Path, &mut Vec<PathBuf>) -> Result<()>,
    what: &str,
) -> Result<(Vec<String>, Vec<(PathBuf, usize)>, Vec<(PathBuf, usize)>)> {
    check_split(dir, split)?;
    let classes: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(bad(dir, "holds no class folders: put each class's files in a folder of its own"));
    }
    let mut class_names = Vec::new();
    let mut samples: Vec<(PathBuf, usize)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let mut files = Vec::new();
        find(class, &mut files)?;
        if files.is_empty() {
            return Err(bad(class, format!("class folder holds no {what}")));
        }
        class_names.push(class.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        samples.extend(files.into_iter().map(|f| (f, label)));
    }
    if split.shuffle {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        samples.shuffle(&mut rand::rngs::StdRng::seed_from_u64(split.seed));
    }
    let held = (split.validation_split as f64 * samples.len() as f64) as usize;
    let validation = samples.split_off(samples.len() - held);
    Ok((class_names, samples, validation))
}
