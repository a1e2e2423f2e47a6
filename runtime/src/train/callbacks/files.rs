//! The callbacks that write files: `ModelCheckpoint` (weights or checkpoints, every epoch or the
//! best), `BackupAndRestore` (resuming an interrupted run) and `CsvLogger` (the epochs' logs).

use super::*;

/// Keras' `ModelCheckpoint(filepath, monitor="val_loss", save_best_only=False,
/// save_weights_only=False, mode="auto")`: saves after each epoch (or only when the monitored value
/// improves), to a path that may hold `{epoch}` (1-based, `{epoch:03}` zero-padded) and any log
/// key (`{val_loss}`, `{val_loss:.4}`). Writes are atomic. `save_weights_only = false` writes a
/// checkpoint (weights and optimizer state).
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    filepath: String,
    monitor: String,
    save_best_only: bool,
    save_weights_only: bool,
    mode: Mode,
    best: Option<f64>,
    saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Saves to `filepath` (a `&str`, `String`, `Path` or `PathBuf`) after every epoch, monitoring
    /// `val_loss` for `save_best_only`. The folders of the path are created when needed, as Keras
    /// does.
    pub fn new(filepath: impl AsRef<std::path::Path>) -> Self {
        ModelCheckpoint {
            filepath: filepath.as_ref().to_string_lossy().into_owned(),
            monitor: "val_loss".into(),
            save_best_only: false,
            save_weights_only: false,
            mode: Mode::Auto,
            best: None,
            saved: Vec::new(),
        }
    }
    /// The quantity `save_best_only` watches (default `val_loss`).
    pub fn monitor(mut self, monitor: &str) -> Self {
        self.monitor = monitor.to_string();
        self
    }
    /// Save only when the monitored value improves.
    pub fn save_best_only(mut self, best_only: bool) -> Self {
        self.save_best_only = best_only;
        self
    }
    /// Save the weights alone instead of a checkpoint.
    pub fn save_weights_only(mut self, weights_only: bool) -> Self {
        self.save_weights_only = weights_only;
        self
    }
    /// Whether larger or smaller is better (default `Auto`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// The files written so far, in order.
    pub fn saved(&self) -> &[PathBuf] {
        &self.saved
    }

    /// The log keys the path names (`val_loss` in `{val_loss:.4}`), `{epoch}` aside; an
    /// unclosed `{` is an error.
    fn fields(&self) -> Result<Vec<&str>> {
        let mut keys = Vec::new();
        let mut rest = self.filepath.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').ok_or_else(|| {
                Error::invalid("ModelCheckpoint", format!("unclosed `{{` in the path `{}`", self.filepath))
            })? + open;
            let field = &rest[open + 1..close];
            let key = field.split_once(':').map_or(field, |(k, _)| k);
            if key != "epoch" {
                keys.push(key);
            }
            rest = &rest[close + 1..];
        }
        Ok(keys)
    }

    /// The path for this epoch: `{epoch}`, `{epoch:03}` and log keys filled in.
    fn path(&self, epoch: usize, logs: &Logs) -> Result<PathBuf> {
        let mut out = String::new();
        let mut rest = self.filepath.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').ok_or_else(|| {
                Error::invalid("ModelCheckpoint", format!("unclosed `{{` in the path `{}`", self.filepath))
            })? + open;
            let field = &rest[open + 1..close];
            let (key, spec) = field.split_once(':').unwrap_or((field, ""));
            let text = if key == "epoch" {
                let width: usize = spec.trim_start_matches('0').trim_end_matches('d').parse().unwrap_or(0);
                format!("{:0width$}", epoch + 1)
            } else {
                let v = monitored(logs, key, "ModelCheckpoint's path")?;
                match spec.trim_start_matches('.').trim_end_matches('f').parse::<usize>() {
                    Ok(p) if spec.starts_with('.') => format!("{v:.p$}"),
                    _ => format!("{v}"),
                }
            };
            out.push_str(&text);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(PathBuf::from(out))
    }
}

impl Callback for ModelCheckpoint {
    fn monitors(&self) -> Option<&str> {
        self.save_best_only.then_some(&self.monitor[..])
    }

    fn check(&self, keys: &[&str], writes_files: bool) -> Result<()> {
        if let Some(key) = self.fields()?.into_iter().find(|k| !keys.contains(k)) {
            return Err(Error::invalid(
                "filepath",
                format!(
                    "ModelCheckpoint's path `{}` names `{{{key}}}`, which the logs do not have; they have: epoch, {}",
                    self.filepath,
                    keys.join(", ")
                ),
            ));
        }
        if !writes_files {
            return Ok(());
        }
        // The folders before the first field are known now: created and tried before training.
        let fixed = &self.filepath[..self.filepath.find('{').unwrap_or(self.filepath.len())];
        let dir = fixed.rfind(std::path::is_separator).map_or("", |i| &fixed[..i.max(1)]);
        writable_folder(std::path::Path::new(dir), true, "ModelCheckpoint")
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        if self.save_best_only {
            let current = monitored(logs, &self.monitor, "ModelCheckpoint")?;
            let better = match self.best {
                None => true,
                Some(b) if self.mode.maximises(&self.monitor) => current > b,
                Some(b) => current < b,
            };
            if !better {
                return Ok(());
            }
            self.best = Some(current);
        }
        let path = self.path(epoch, logs)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists())
            && model.is_chief()
        {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        }
        if self.save_weights_only {
            model.save_weights(&path)?
        } else {
            model.save_checkpoint(&path)?
        }
        self.saved.push(path);
        Ok(())
    }
}

/// Keras' `CSVLogger(filename, separator=",", append=False)`: one row per epoch, `epoch` then the
/// logs' keys in order, with a header.
#[derive(Clone, Debug)]
pub struct CsvLogger {
    path: PathBuf,
    append: bool,
    keys: Vec<String>,
    text: String,
}

impl CsvLogger {
    /// Writes to `path`; with `append`, adds to an existing file (without a second header).
    pub fn new(path: impl Into<PathBuf>, append: bool) -> Self {
        CsvLogger { path: path.into(), append, keys: Vec::new(), text: String::new() }
    }
}

impl Callback for CsvLogger {
    fn check(&self, _keys: &[&str], writes_files: bool) -> Result<()> {
        let dir = self.path.parent().unwrap_or(std::path::Path::new(""));
        if writes_files { writable_folder(dir, false, "CsvLogger") } else { Ok(()) }
    }

    fn on_train_begin(&mut self, _model: &mut dyn Trainee) -> Result<()> {
        self.keys.clear();
        self.text = if self.append { std::fs::read_to_string(&self.path).unwrap_or_default() } else { String::new() };
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        if self.keys.is_empty() {
            self.keys = logs.keys().cloned().collect();
            if self.text.is_empty() {
                self.text = format!("epoch,{}\n", self.keys.join(","));
            }
        }
        let values: Vec<String> =
            self.keys.iter().map(|k| logs.get(k).map_or(String::new(), |v| v.to_string())).collect();
        self.text += &format!("{epoch},{}\n", values.join(","));
        // The whole file each epoch, atomically: an interrupted run leaves the last complete one.
        let text = self.text.clone();
        if !model.is_chief() {
            return Ok(());
        }
        crate::io::atomic_write(&self.path, |w| w.write_all(text.as_bytes()))
    }
}

/// Keras' `BackupAndRestore(backup_dir)`: saves a checkpoint after every epoch, and when `fit`
/// starts and finds one (the process was killed, the machine rebooted), resumes from it, so the
/// run ends exactly as an uninterrupted one would have. The checkpoint is deleted when training
/// ends normally (`delete_checkpoint`, default true).
///
/// Epochs count from the model's own count when `fit` begins: give a fresh model (as a restarted
/// process has) the same `Fit` options as the interrupted run.
#[derive(Clone, Debug)]
pub struct BackupAndRestore {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
    delete_checkpoint: bool,
}

impl BackupAndRestore {
    /// Backs up into `backup_dir` (created when needed), as `backup.safetensors`.
    pub fn new(backup_dir: impl AsRef<std::path::Path>) -> Self {
        let dir = backup_dir.as_ref().to_path_buf();
        BackupAndRestore { path: dir.join("backup.safetensors"), dir, delete_checkpoint: true }
    }

    /// Keep the checkpoint after training ends.
    pub fn delete_checkpoint(mut self, delete: bool) -> Self {
        self.delete_checkpoint = delete;
        self
    }

    /// Where the checkpoint is written.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Callback for BackupAndRestore {
    fn check(&self, _keys: &[&str], writes_files: bool) -> Result<()> {
        if writes_files { writable_folder(&self.dir, true, "BackupAndRestore") } else { Ok(()) }
    }

    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        if !model.is_chief() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| Error::Io { path: self.dir.display().to_string(), source })?;
        model.save_checkpoint(&self.path)
    }

    fn on_train_end(&mut self, _logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        if self.delete_checkpoint && model.is_chief() && self.path.exists() {
            std::fs::remove_file(&self.path)
                .map_err(|source| Error::Io { path: self.path.display().to_string(), source })?;
        }
        Ok(())
    }

    fn backup(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }
}
