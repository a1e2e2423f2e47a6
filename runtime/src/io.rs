//! Saving and loading weights and checkpoints in the safetensors format.
//!
//! Tensor names are the model's parameter names (`dense_1.kernel`), stored as little-endian F32
//! with their shapes, plus metadata: `kiln.model` (the type name), `kiln.version`,
//! `kiln.architecture` (a hash of the layer table, activations and parameter shapes) and
//! `kiln.checksum.<tensor>` (a hash of each tensor's bytes). Checkpoints add the optimizer's
//! state as tensors named `optimizer.<i>`, and its step count, the epoch count, the model's seed
//! and its random stream's position as metadata, so training resumes exactly. Last comes
//! `kiln.checksum`, a hash over all the other metadata and every tensor's name, dtype, shape and
//! byte range ([`metadata_checksum`]): with the tensors' checksums, everything a load trusts is
//! covered.
//!
//! Saving is atomic: the file is written to a temporary file of its own in the same folder
//! (unique per write, so concurrent saves to one path cannot disturb each other), flushed to disk,
//! then renamed over the target; an error part-way leaves any previous file untouched. The
//! temporary file is locked while it is written: the temporaries of a process killed mid-save
//! are removed by the next save to that path (and by a run `BackupAndRestore` resumes). Loading
//! checks the whole file before changing any weight: it never panics and never reads out of
//! bounds, and every problem is an [`Error::BadFile`] naming the tensor and what is wrong: a
//! tensor whose bytes do not match its checksum (a corrupted file), a file saved by a model of
//! another architecture (unless [`LoadOptions::check_architecture`] is off), NaN or infinite
//! weights, a negative variance. Files without any kiln metadata (converted from Keras) load
//! without checksums; a file with kiln metadata must have every checksum.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result, Shape};
use crate::model::dynamic::DynModel;
use crate::optimizers::OptimizerState;

const OPTIMIZER_PREFIX: &str = "optimizer.";
const CHECKSUM_PREFIX: &str = "kiln.checksum.";
/// The metadata key of the checksum over the rest of the header.
const HEADER_CHECKSUM: &str = "kiln.checksum";

/// Writes a file atomically: `write` fills a temporary file beside `path`, which is flushed to
/// disk and renamed over `path` only if `write` succeeds. On any error the temporary file is
/// removed and an existing `path` is left as it was.
pub fn atomic_write(path: impl AsRef<Path>, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let path = path.as_ref();
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("path", "is empty: give the path of the file to write"));
    }
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| io(std::io::Error::other("the path names no file")))?;
    // A temporary file of its own for every write (removed if anything fails), renamed over the
    // target only once complete and on disk. It is locked while it is written, so that another
    // save can tell it from one left by a process killed mid-save (whose lock ended with it).
    let mut tmp = loop {
        let tmp = tempfile::Builder::new().prefix(&temp_prefix(name)).suffix(".tmp").tempfile_in(&dir).map_err(io)?;
        tmp.as_file().lock().map_err(io)?;
        // Another save may have taken it for a stale one between its creation and the lock.
        if same_file(tmp.path(), tmp.as_file()) {
            break tmp;
        }
    };
    remove_stale_temporaries(path);
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(io)?;
        w.flush().map_err(io)?;
    }
    // Temporary files are private to their owner; the saved file gets the permissions of the one
    // it replaces, or those of an ordinary new file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode());
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The start of the name of `atomic_write`'s temporary files for a target named `name`.
fn temp_prefix(name: &std::ffi::OsStr) -> String {
    format!(".{}.", name.to_string_lossy())
}

/// Whether `path` still names the open file `file`.
fn same_file(path: &Path, file: &std::fs::File) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::metadata(path), file.metadata()) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Removes the temporary files that saves to `path` left behind when their process was killed
/// mid-save: those beside it, named for it, that no running save holds locked. Every save and a
/// run resumed by `BackupAndRestore` call it; failures are ignored (the next save tries again).
pub(crate) fn remove_stale_temporaries(path: &Path) {
    let Some(name) = path.file_name() else { return };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else { continue };
        if !(n.starts_with(&prefix) && n.ends_with(".tmp") && n.len() > prefix.len() + 4) {
            continue;
        }
        let Ok(file) = std::fs::File::open(entry.path()) else { continue };
        // A save in progress holds its lock until its file is renamed over the target.
        if file.try_lock().is_ok() && same_file(&entry.path(), &file) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A 64-bit FNV-1a hash of a tensor's bytes, as hex: the checksum saved with each tensor.
pub fn checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// FNV-1a over a file's header as parsed: every metadata entry but [`HEADER_CHECKSUM`] itself
/// (sorted by key), then every tensor's name, dtype, shape and byte range (sorted by name).
fn header_hash<'a>(
    metadata: impl Iterator<Item = (&'a str, &'a str)>,
    tensors: impl Iterator<Item = (&'a str, String, &'a [usize], (usize, usize))>,
) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &[u8]| {
        for &b in s.iter().chain(&[0]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut metadata: Vec<_> = metadata.filter(|(k, _)| *k != HEADER_CHECKSUM).collect();
    metadata.sort();
    for (k, v) in metadata {
        eat(k.as_bytes());
        eat(v.as_bytes());
    }
    let mut tensors: Vec<_> = tensors.collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, dtype, shape, (start, end)) in tensors {
        eat(name.as_bytes());
        eat(dtype.as_bytes());
        eat(format!("{shape:?}").as_bytes());
        eat(format!("{start}..{end}").as_bytes());
    }
    format!("{h:016x}")
}

/// The checksum that the metadata entry `kiln.checksum` of a file holds when the header is intact:
/// over every other metadata entry (the architecture, the tensors' checksums, a checkpoint's
/// optimizer, step and epoch counts, seed and stream position) and every tensor's name, dtype,
/// shape and byte range. With the tensors' own checksums it covers everything a load trusts.
/// (For tools that edit a file's metadata on purpose; kiln writes and checks it itself.)
pub fn metadata_checksum(bytes: &[u8]) -> Result<String> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::invalid("bytes", format!("not a valid safetensors file: {e}")))?;
    Ok(header_of(&meta))
}

fn header_of(meta: &safetensors::tensor::Metadata) -> String {
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = meta.tensors();
    header_hash(
        metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        tensors.iter().map(|(n, t)| (n.as_str(), t.dtype.to_string(), &t.shape[..], t.data_offsets)),
    )
}

/// How [`crate::Model::load_weights_with`] checks a file.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Refuse a file saved by a model of another architecture (other layers, activations or
    /// shapes), even if every tensor's name and shape fit (default true). Turn it off to load
    /// weights into a model built differently on purpose (transfer learning).
    pub check_architecture: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { check_architecture: true }
    }
}

/// The largest step and epoch counts a checkpoint may hold (optimizers raise their decay rates
/// to the step count as an `i32`).
const MAX_COUNT: u64 = i32::MAX as u64;

/// FNV-1a over the model's structure: changes when layers, shapes or parameter names change.
pub fn architecture_hash(m: &dyn DynModel) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for p in m.meta().inputs.iter().chain(m.meta().outputs) {
        eat(p.name);
        eat(&format!("{:?}", p.shape));
    }
    for l in m.meta().layers {
        eat(&format!("{}:{}:{:?}:{}:{}", l.name, l.kind, l.output_shape, l.params, l.activation));
    }
    m.visit_weights(&mut |n, p| eat(&format!("{n}{:?}", p.shape())));
    format!("{h:016x}")
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// What a checkpoint stores besides the weights: the optimizer's name and state, the epoch count,
/// the seed and the random stream's position.
pub(crate) struct Resume<'a> {
    pub optimizer: &'a str,
    pub state: &'a OptimizerState,
    pub epochs: u64,
    pub seed: u64,
    pub stream: u64,
    /// The optimizers a training step of the user's owns (`CustomStep::optimizers`): each one's
    /// name in the step, kind and state.
    pub step_optimizers: Vec<(&'static str, &'static str, OptimizerState)>,
}

/// What a checkpoint names as the model's optimizer when only a step's own optimizers train it.
pub(crate) const NO_OPTIMIZER: &str = "none";

/// Where a checkpoint keeps the state of a step's own optimizer named `slot`.
const STEP_OPTIMIZER_PREFIX: &str = "step_optimizer.";


fn serialize(m: &dyn DynModel, resume: Option<Resume<'_>>) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    m.visit_weights(&mut |n, p| tensors.push((n.to_string(), p.shape().to_vec(), le_bytes(&p.value))));
    let mut meta = BTreeMap::from([
        ("kiln.model".to_string(), m.meta().name.to_string()),
        ("kiln.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("kiln.architecture".to_string(), architecture_hash(m)),
    ]);
    if let Some(s) = m.train_state().strings() {
        let (key, json) = s.to_metadata();
        meta.insert(key.to_string(), json);
    }
    if let Some(Resume { optimizer: name, state, epochs, seed, stream, step_optimizers }) = resume {
        for (slot, kind, state) in &step_optimizers {
            meta.insert(format!("kiln.step_optimizer.{slot}"), kind.to_string());
            meta.insert(format!("kiln.step_optimizer.{slot}.iterations"), state.iterations.to_string());
            for (i, a) in state.arrays.iter().enumerate() {
                tensors.push((format!("{STEP_OPTIMIZER_PREFIX}{slot}.{i}"), vec![a.len()], le_bytes(a)));
            }
        }
        meta.insert("kiln.optimizer".into(), name.to_string());
        meta.insert("kiln.optimizer.iterations".into(), state.iterations.to_string());
        meta.insert("kiln.epochs".into(), epochs.to_string());
        meta.insert("kiln.rng".into(), stream.to_string());
        meta.insert("kiln.seed".into(), seed.to_string());
        for (i, a) in state.arrays.iter().enumerate() {
            tensors.push((format!("{OPTIMIZER_PREFIX}{i}"), vec![a.len()], le_bytes(a)));
        }
    }
    for (name, _, bytes) in &tensors {
        meta.insert(format!("{CHECKSUM_PREFIX}{name}"), checksum(bytes));
    }
    // The header is written here rather than by the safetensors crate, whose metadata map comes
    // out in hash order: the same model must give the same bytes, run after run.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ranges = Vec::with_capacity(tensors.len());
    let mut offset = 0;
    for (_, _, bytes) in &tensors {
        ranges.push((offset, offset + bytes.len()));
        offset += bytes.len();
    }
    let sum = header_hash(
        meta.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        tensors.iter().zip(&ranges).map(|((n, shape, _), r)| (n.as_str(), Dtype::F32.to_string(), &shape[..], *r)),
    );
    meta.insert(HEADER_CHECKSUM.into(), sum);
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(&meta).map_err(|e| Error::invalid("weights", e.to_string()))?,
    );
    let mut offset = 0;
    for (name, shape, bytes) in &tensors {
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes.len()] }),
        );
        offset += bytes.len();
    }
    let mut head = serde_json::to_vec(&header).map_err(|e| Error::invalid("weights", e.to_string()))?;
    // Data start at a multiple of 8, as the safetensors writer pads them.
    head.resize(head.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, _, bytes) in &tensors {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// Writes the model's weights to `path` (safetensors, atomically).
pub fn save_weights(m: &dyn DynModel, path: &Path) -> Result<()> {
    let bytes = serialize(m, None)?;
    atomic_write(path, |w| w.write_all(&bytes))
}

/// Writes weights, optimizer state and epoch count to `path` (safetensors, atomically).
pub fn save_checkpoint(m: &dyn DynModel, path: &Path) -> Result<()> {
    let st = m.train_state();
    let opt = st.optimizer().ok_or(Error::NotCompiled("save_checkpoint"))?;
    let state = opt.state();
    let resume = Resume {
        optimizer: opt.name(),
        state: &state,
        epochs: st.epochs(),
        seed: st.seed(),
        stream: st.stream().position(),
        step_optimizers: Vec::new(),
    };
    save_checkpoint_with(m, resume, path)
}

/// Writes a checkpoint from its parts (what `fit` holds while a callback saves one).
pub(crate) fn save_checkpoint_with(m: &dyn DynModel, resume: Resume<'_>, path: &Path) -> Result<()> {
    let bytes = serialize(m, Some(resume))?;
    atomic_write(path, |w| w.write_all(&bytes))
}

/// The checked contents of a file: one value array per model parameter, in traversal order,
/// then the optimizer arrays and metadata of a checkpoint.
pub struct Loaded {
    weights: Vec<Vec<f32>>,
    optimizer: Vec<Vec<f32>>,
    metadata: HashMap<String, String>,
    /// A string-reading model's preprocessing state, from the file.
    strings: Option<crate::data::StringInput>,
}

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::BadFile { path: path.to_string(), reason: reason.into() }
}

fn floats(path: &str, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    if view.dtype() != Dtype::F32 {
        return Err(bad(path, format!("tensor `{name}` has dtype {}, but kiln's weights are F32", view.dtype())));
    }
    let v: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(bad(
            path,
            format!("tensor `{name}` holds {} at index {i}: refusing to load non-finite weights", v[i]),
        ));
    }
    Ok(v)
}

/// Reads and checks `bytes` (the contents of `path`) against the model: every tensor matching its
/// checksum, the architecture (unless `opts` turns that off), every parameter present with its
/// shape and dtype, nothing unknown, every value finite.
pub fn check(m: &dyn DynModel, path: &str, bytes: &[u8], checkpoint: bool, opts: LoadOptions) -> Result<Loaded> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut names = st.names();
    names.sort();
    // A file with kiln's metadata is checked whole; only one without any (converted from Keras)
    // loads unchecked, so a renamed or lost checksum entry cannot pass for such a file.
    if metadata.keys().any(|k| k.starts_with("kiln.")) {
        for name in &names {
            let Some(want) = metadata.get(&format!("{CHECKSUM_PREFIX}{name}")) else {
                return Err(bad(
                    path,
                    format!("tensor `{name}` has no checksum (`{CHECKSUM_PREFIX}{name}`): the file is corrupted"),
                ));
            };
            let view = st.tensor(name).map_err(|e| bad(path, format!("tensor `{name}`: {e}")))?;
            if checksum(view.data()) != *want {
                return Err(bad(path, format!("tensor `{name}` does not match its checksum: the file is corrupted")));
            }
        }
        match metadata.get(HEADER_CHECKSUM) {
            None => {
                return Err(bad(
                    path,
                    format!(
                        "it has kiln's metadata but no `{HEADER_CHECKSUM}` over it: the file is corrupted, or was \
                         saved by a kiln from before metadata was checksummed (load it there and save it again)"
                    ),
                ));
            }
            Some(want) if *want != header_of(&meta) => {
                return Err(bad(
                    path,
                    "its metadata (architecture, checksums, a checkpoint's counts, seed and stream) or tensor \
                     layout does not match its checksum: the file is corrupted",
                ));
            }
            Some(_) => {}
        }
    }
    if opts.check_architecture
        && let Some(saved) = metadata.get("kiln.architecture")
    {
        let ours = architecture_hash(m);
        if *saved != ours {
            let by = metadata.get("kiln.model").map_or("a model", |s| s.as_str());
            return Err(bad(
                path,
                format!(
                    "saved by {by} of architecture {saved}, but {} has architecture {ours} (other layers, \
                     activations or shapes); to load it anyway (transfer learning), use \
                     load_weights_with(path, LoadOptions {{ check_architecture: false }})",
                    m.meta().name
                ),
            ));
        }
    }
    let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
    m.visit_weights(&mut |n, p| expected.push((n.to_string(), p.shape().to_vec())));
    let mut weights = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let view = st.tensor(name).map_err(|_| {
            bad(path, format!("tensor `{name}` is missing (the model has it, shape {})", Shape(shape.clone())))
        })?;
        if view.shape() != &shape[..] {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}` has shape {} in the file, but {}'s parameter has shape {}",
                    Shape(view.shape().to_vec()),
                    m.meta().name,
                    Shape(shape.clone())
                ),
            ));
        }
        weights.push(floats(path, name, &view)?);
    }
    // A variance may not be negative.
    let (mut i, mut refused) = (0, None);
    m.visit_weights(&mut |name, p| {
        if refused.is_none() {
            refused = p.refuse(&weights[i]).map(|why| format!("tensor `{name}` {why}"));
        }
        i += 1;
    });
    if let Some(reason) = refused {
        return Err(bad(path, reason));
    }
    let mut optimizer = Vec::new();
    for name in names {
        if expected.iter().any(|(n, _)| n == name) {
            continue;
        }
        let of_step = name.strip_prefix(STEP_OPTIMIZER_PREFIX).and_then(|r| r.rsplit_once('.'));
        match (name.strip_prefix(OPTIMIZER_PREFIX).map(str::parse::<usize>), of_step.map(|(_, i)| i.parse::<usize>())) {
            (Some(Ok(_)), _) | (_, Some(Ok(_))) => {}
            _ => return Err(bad(path, format!("tensor `{name}` is not a parameter of {}", m.meta().name))),
        }
    }
    if checkpoint {
        for i in 0.. {
            match st.tensor(&format!("{OPTIMIZER_PREFIX}{i}")) {
                Ok(view) => optimizer.push(floats(path, &format!("{OPTIMIZER_PREFIX}{i}"), &view)?),
                Err(_) => break,
            }
        }
    }
    let strings = match m.train_state().strings() {
        None => None,
        Some(ours) => Some(ours.from_metadata(|k| metadata.get(k).cloned()).map_err(|why| {
            bad(path, format!("{why} ({} reads strings through it: save the weights of that model, adapted)", m.meta().name))
        })?),
    };
    Ok(Loaded { weights, optimizer, metadata, strings })
}

fn read(path: &Path) -> Result<(String, Vec<u8>)> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("path", "is empty: give the path of a safetensors file to load"));
    }
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: shown.clone(), source })?;
    Ok((shown, bytes))
}

fn install(m: &mut dyn DynModel, loaded: Loaded) {
    if let Some(s) = loaded.strings {
        m.train_state_mut().set_strings(s);
    }
    let mut it = loaded.weights.into_iter();
    m.visit_weights_mut(&mut |p| {
        if let Some(v) = it.next() {
            p.value = v;
        }
    });
}

/// Loads weights saved by [`save_weights`] (or a checkpoint, whose optimizer state is ignored).
pub fn load_weights(m: &mut dyn DynModel, path: &Path, opts: LoadOptions) -> Result<()> {
    let (shown, bytes) = read(path)?;
    let loaded = check(m, &shown, &bytes, false, opts)?;
    install(m, loaded);
    Ok(())
}

/// Loads a checkpoint: weights, optimizer state and epoch count. The model must be compiled with
/// the same optimizer as when it was saved.
pub fn load_checkpoint(m: &mut dyn DynModel, path: &Path) -> Result<()> {
    load_checkpoint_with(m, path, &mut [])
}

/// [`load_checkpoint`] that also restores the optimizers a training step of the user's owns
/// (`step`, by their names in the step). A model `fit` trains only through such a step (not
/// compiled) resumes without an optimizer of its own.
pub(crate) fn load_checkpoint_with(
    m: &mut dyn DynModel,
    path: &Path,
    step: &mut [(&'static str, &mut dyn crate::optimizers::Optimizer)],
) -> Result<()> {
    let (shown, bytes) = read(path)?;
    let loaded = check(m, &shown, &bytes, true, LoadOptions::default())?;
    let meta = |k: &str| loaded.metadata.get(k).cloned();
    let (Some(opt_name), Some(iters), Some(epochs)) =
        (meta("kiln.optimizer"), meta("kiln.optimizer.iterations"), meta("kiln.epochs"))
    else {
        return Err(bad(&shown, "not a checkpoint (no optimizer state): use load_weights"));
    };
    let parse =
        |s: &str, k: &str| s.parse::<u64>().map_err(|_| bad(&shown, format!("metadata `{k}` is not a number: `{s}`")));
    let count = |s: &str, k: &str| {
        let v = parse(s, k)?;
        if v > MAX_COUNT {
            return Err(bad(
                &shown,
                format!("metadata `{k}` is {v}, above the largest count kiln resumes from ({MAX_COUNT})"),
            ));
        }
        Ok(v)
    };
    let (iterations, epochs) = (count(&iters, "kiln.optimizer.iterations")?, count(&epochs, "kiln.epochs")?);
    // Checkpoints written before the random stream and the seed were saved resume the stream from
    // its start and keep the model's own seed.
    let stream = match meta("kiln.rng") {
        Some(s) => parse(&s, "kiln.rng")?,
        None => 0,
    };
    let seed = match meta("kiln.seed") {
        Some(s) => parse(&s, "kiln.seed")?,
        None => m.train_state().seed(),
    };
    let st = m.train_state();
    let current = match st.optimizer() {
        Some(o) => o.name(),
        None if opt_name == NO_OPTIMIZER && !step.is_empty() => NO_OPTIMIZER,
        None => return Err(Error::NotCompiled("load_checkpoint")),
    };
    if current != opt_name {
        return Err(bad(
            &shown,
            format!("the checkpoint holds {opt_name} state, but the model is compiled with {current}"),
        ));
    }
    let state = OptimizerState { iterations, arrays: loaded.optimizer.clone() };
    let step_states = step_optimizer_states(&shown, &bytes, &loaded, step)?;
    install(m, loaded);
    m.train_state_mut().restore(state, epochs, seed, stream);
    for ((_, opt), state) in step.iter_mut().zip(step_states) {
        opt.load_state(state);
    }
    Ok(())
}

/// The states of a step's own optimizers in a checkpoint, checked against `step`'s: the same
/// names and kinds, every one there.
fn step_optimizer_states(
    shown: &str,
    bytes: &[u8],
    loaded: &Loaded,
    step: &[(&'static str, &mut dyn crate::optimizers::Optimizer)],
) -> Result<Vec<OptimizerState>> {
    let saved: Vec<&str> = loaded
        .metadata
        .keys()
        .filter_map(|k| k.strip_prefix("kiln.step_optimizer."))
        .filter(|k| !k.ends_with(".iterations"))
        .collect();
    let mine: Vec<&str> = step.iter().map(|(n, _)| *n).collect();
    let (mut a, mut b) = (saved.clone(), mine.clone());
    a.sort();
    b.sort();
    if a != b {
        return Err(bad(
            shown,
            format!(
                "the checkpoint holds the state of the step's optimizers [{}], but this step has [{}]",
                saved.join(", "),
                mine.join(", ")
            ),
        ));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(shown, format!("not a valid safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (slot, opt) in step {
        let kind = &loaded.metadata[&format!("kiln.step_optimizer.{slot}")];
        if kind != opt.name() {
            return Err(bad(shown, format!("the step's optimizer `{slot}` was {kind}, it is now {}", opt.name())));
        }
        let key = format!("kiln.step_optimizer.{slot}.iterations");
        let iterations = loaded
            .metadata
            .get(&key)
            .and_then(|v| v.parse::<u64>().ok().filter(|v| *v <= MAX_COUNT))
            .ok_or_else(|| bad(shown, format!("metadata `{key}` is missing or not a count")))?;
        let mut arrays = Vec::new();
        for i in 0.. {
            let name = format!("{STEP_OPTIMIZER_PREFIX}{slot}.{i}");
            match st.tensor(&name) {
                Ok(view) => arrays.push(floats(shown, &name, &view)?),
                Err(_) => break,
            }
        }
        out.push(OptimizerState { iterations, arrays });
    }
    Ok(out)
}

/// Copies embedded weights into `m` by name: `table` lists each weight's full name and byte range
/// within `bytes`, as read by the model macro, which checked names and shapes at compile time.
#[doc(hidden)]
pub fn install_embedded_named(m: &mut dyn DynModel, bytes: &'static [u8], table: &[(&str, usize, usize)]) {
    let mut ranges = Vec::new();
    m.visit_weights(&mut |name, _| {
        ranges.push(table.iter().find(|(n, _, _)| *n == name).map_or((0, 0), |&(_, s, e)| (s, e)));
    });
    install_embedded(m, bytes, &ranges);
}

/// Copies embedded weights into `m`: `ranges[i]` is the byte range of parameter `i` (traversal
/// order) within `bytes`, as checked by the model macro at compile time.
#[doc(hidden)]
pub fn install_embedded(m: &mut dyn DynModel, bytes: &'static [u8], ranges: &[(usize, usize)]) {
    let mut i = 0;
    m.visit_weights_mut(&mut |p| {
        if let Some(&(start, end)) = ranges.get(i) {
            for (v, c) in p.value.iter_mut().zip(bytes[start..end].chunks_exact(4)) {
                *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        i += 1;
    });
}
