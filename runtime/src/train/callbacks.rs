//! Keras' callbacks: code that runs at the start and end of training and of each epoch, reads the
//! epoch's logs, and may stop training, change the learning rate, or save and restore weights.
//!
//! ```ignore
//! let mut early = EarlyStopping::new("val_loss").patience(3).restore_best_weights(true);
//! let mut best = ModelCheckpoint::new("best.safetensors").save_best_only(true);
//! model.fit_with_callbacks(&x, &y, Fit { epochs: 50, validation_split: 0.2, ..Fit::default() },
//!     &mut [&mut early, &mut best])?;
//! ```

use std::path::PathBuf;

use crate::error::{Error, Result};

use super::history::Logs;

/// What a callback may do to the model being trained.
pub trait Trainee {
    /// The model's type name.
    fn model_name(&self) -> &'static str;
    /// Every weight's values, in traversal order.
    fn get_weights(&self) -> Vec<Vec<f32>>;
    /// Replaces every weight's values (as [`get_weights`](Self::get_weights) gave them).
    fn set_weights(&mut self, weights: &[Vec<f32>]) -> Result<()>;
    /// Saves the weights (safetensors, atomically).
    fn save_weights(&self, path: &std::path::Path) -> Result<()>;
    /// Saves weights and optimizer state (a checkpoint `load_checkpoint` resumes from).
    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()>;
    /// The optimizer's learning rate.
    fn learning_rate(&self) -> f32;
    /// Changes the optimizer's learning rate (finite and >= 0).
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;
    /// Ends training after the current epoch (Keras' `model.stop_training = True`).
    fn stop_training(&mut self);
    /// Whether this process writes files: process 0 of a data-parallel run (see
    /// `Model::distribute`), or the only one. `save_weights` and `save_checkpoint` do nothing on
    /// the others.
    fn is_chief(&self) -> bool {
        true
    }
}

/// Code run during `fit_with_callbacks` (Keras' `keras.callbacks.Callback`). Every hook has a
/// default that does nothing; an error from a hook stops training with that error.
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// Before epoch `epoch` (0-based).
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// After epoch `epoch`, with its logs (`loss`, metrics, `val_` twins).
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// After the last epoch (or a stop), with the last epoch's logs.
    fn on_train_end(&mut self, _logs: &Logs, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// Before training batch `batch` (0-based within the epoch).
    fn on_train_batch_begin(&mut self, _batch: usize, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// After training batch `batch`, with the epoch's running logs so far (as Keras passes them).
    /// Stopping here ends the epoch after this batch.
    fn on_train_batch_end(&mut self, _batch: usize, _logs: &Logs, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// Before the validation pass of an epoch.
    fn on_test_begin(&mut self, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// After the validation pass, with its logs (without the `val_` prefix, as in Keras).
    fn on_test_end(&mut self, _logs: &Logs, _model: &mut dyn Trainee) -> Result<()> {
        Ok(())
    }
    /// A checkpoint `fit` resumes from, when it exists, before the first epoch: the model, its
    /// optimizer, epoch count and random stream are restored, and training continues with the
    /// epoch after the last one saved ([`BackupAndRestore`]). None by default.
    fn backup(&self) -> Option<&std::path::Path> {
        None
    }
    /// Whether a NaN or infinite loss ends training quietly ([`TerminateOnNaN`]) instead of
    /// returning an error. False by default.
    fn terminates_on_nan(&self) -> bool {
        false
    }
    /// The log key this callback reads each epoch, so `fit` can refuse an unknown one before
    /// training starts. None by default.
    fn monitors(&self) -> Option<&str> {
        None
    }
    /// Whether the epoch's logs (and so the `History`) get the optimizer's `learning_rate` after
    /// the epoch, as Keras' learning-rate callbacks add it. False by default.
    fn logs_learning_rate(&self) -> bool {
        false
    }
}

/// Keras' `TerminateOnNaN`: a NaN or infinite loss ends training and `fit` returns the history
/// of the epochs finished before, instead of the error it returns otherwise. Either way the bad
/// step is never applied: the weights are those after the last good step.
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminateOnNaN;

impl Callback for TerminateOnNaN {
    fn terminates_on_nan(&self) -> bool {
        true
    }
}

/// Whether a larger or a smaller value of the monitored quantity is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the metric, as Keras does: the metrics Keras marks as "up" (accuracies, top-k,
    /// precision, recall, AUC, F-scores, R²) are maximised, losses and errors minimised.
    Auto,
    /// Smaller is better.
    Min,
    /// Larger is better.
    Max,
}

impl Mode {
    fn maximises(self, monitor: &str) -> bool {
        match self {
            Mode::Max => true,
            Mode::Min => false,
            Mode::Auto => ["acc", "auc", "precision", "recall", "f1_score", "fbeta_score", "r2_score"]
                .iter()
                .any(|k| monitor.contains(k)),
        }
    }
}

/// The monitored value of an epoch, or an error naming the keys there are.
fn monitored(logs: &Logs, monitor: &str, who: &str) -> Result<f64> {
    logs.get(monitor).copied().ok_or_else(|| unknown_monitor(logs.keys().map(|k| k.as_str()), monitor, who))
}

/// The error for a monitored key the logs will not have.
pub(crate) fn unknown_monitor<'k>(keys: impl Iterator<Item = &'k str>, monitor: &str, who: &str) -> Error {
    let keys: Vec<&str> = keys.collect();
    Error::invalid(
        "monitor",
        format!("{who} monitors `{monitor}`, which the logs do not have; they have: {}", keys.join(", ")),
    )
}

/// Keras' `EarlyStopping(monitor="val_loss", min_delta=0, patience=0, mode="auto", baseline=None,
/// restore_best_weights=False, start_from_epoch=0)`: stops training when the monitored value has
/// not improved for `patience` epochs, optionally restoring the weights of the best epoch.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    monitor: String,
    min_delta: f64,
    patience: usize,
    mode: Mode,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    wait: usize,
    best: Option<f64>,
    best_weights: Option<Vec<Vec<f32>>>,
    best_epoch: usize,
    stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` (`val_loss`, `val_accuracy`, ...) with Keras' defaults.
    pub fn new(monitor: &str) -> Self {
        EarlyStopping {
            monitor: monitor.to_string(),
            min_delta: 0.0,
            patience: 0,
            mode: Mode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            wait: 0,
            best: None,
            best_weights: None,
            best_epoch: 0,
            stopped_epoch: None,
        }
    }
    /// Epochs without improvement before stopping (default 0).
    pub fn patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }
    /// The smallest change that counts as an improvement (default 0; its sign is ignored).
    pub fn min_delta(mut self, delta: f64) -> Self {
        self.min_delta = delta.abs();
        self
    }
    /// Whether larger or smaller is better (default `Auto`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// A value the monitored quantity must beat for the patience to reset.
    pub fn baseline(mut self, value: f64) -> Self {
        self.baseline = Some(value);
        self
    }
    /// Put back the best epoch's weights when stopping (default false).
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }
    /// Epochs to wait before watching (warm-up; default 0).
    pub fn start_from_epoch(mut self, epoch: usize) -> Self {
        self.start_from_epoch = epoch;
        self
    }
    /// The epoch training stopped at (0-based), if it did.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
    /// The best epoch seen (0-based).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    fn is_improvement(&self, value: f64, reference: Option<f64>) -> bool {
        match reference {
            None => true,
            Some(r) if self.mode.maximises(&self.monitor) => value - self.min_delta > r,
            Some(r) => value + self.min_delta < r,
        }
    }
}

impl Callback for EarlyStopping {
    fn monitors(&self) -> Option<&str> {
        Some(&self.monitor)
    }

    fn on_train_begin(&mut self, _model: &mut dyn Trainee) -> Result<()> {
        if !self.min_delta.is_finite() || self.baseline.is_some_and(|b| !b.is_finite()) {
            return Err(Error::invalid("EarlyStopping", "min_delta and baseline must be finite"));
        }
        self.wait = 0;
        self.best = None;
        self.best_weights = None;
        self.best_epoch = 0;
        self.stopped_epoch = None;
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        let current = monitored(logs, &self.monitor, "EarlyStopping")?;
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            // Without any improvement, the first watched epoch's weights are the best.
            self.best_weights = Some(model.get_weights());
        }
        self.wait += 1;
        if self.is_improvement(current, self.best) {
            self.best = Some(current);
            self.best_epoch = epoch;
            if self.restore_best_weights {
                self.best_weights = Some(model.get_weights());
            }
            if self.baseline.is_none() || self.is_improvement(current, self.baseline) {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            model.stop_training();
            if let (true, Some(w)) = (self.restore_best_weights, &self.best_weights) {
                model.set_weights(w)?;
            }
        }
        Ok(())
    }
}

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
    /// Saves to `filepath` after every epoch, monitoring `val_loss` for `save_best_only`.
    pub fn new(filepath: &str) -> Self {
        ModelCheckpoint {
            filepath: filepath.to_string(),
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
        if self.save_weights_only {
            model.save_weights(&path)?
        } else {
            model.save_checkpoint(&path)?
        }
        self.saved.push(path);
        Ok(())
    }
}

/// Keras' `ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, mode="auto",
/// min_delta=1e-4, cooldown=0, min_lr=0)`: multiplies the learning rate by `factor` when the
/// monitored value has not improved for `patience` epochs.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    monitor: String,
    factor: f32,
    patience: usize,
    mode: Mode,
    min_delta: f64,
    cooldown: usize,
    min_lr: f32,
    best: f64,
    wait: usize,
    cooldown_counter: usize,
}

impl ReduceLrOnPlateau {
    /// Watches `monitor` with Keras' defaults.
    pub fn new(monitor: &str) -> Self {
        ReduceLrOnPlateau {
            monitor: monitor.to_string(),
            factor: 0.1,
            patience: 10,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: f64::NAN,
            wait: 0,
            cooldown_counter: 0,
        }
    }
    /// The factor the learning rate is multiplied by, in [0, 1) (default 0.1).
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }
    /// Epochs without improvement before reducing (default 10).
    pub fn patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }
    /// Epochs to wait after a reduction before watching again (default 0).
    pub fn cooldown(mut self, epochs: usize) -> Self {
        self.cooldown = epochs;
        self
    }
    /// The smallest learning rate (default 0).
    pub fn min_lr(mut self, lr: f32) -> Self {
        self.min_lr = lr;
        self
    }
    /// The smallest change that counts as an improvement (default 1e-4).
    pub fn min_delta(mut self, delta: f64) -> Self {
        self.min_delta = delta;
        self
    }
    /// Whether larger or smaller is better (default `Auto`).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
}

impl Callback for ReduceLrOnPlateau {
    fn monitors(&self) -> Option<&str> {
        Some(&self.monitor)
    }

    fn logs_learning_rate(&self) -> bool {
        true
    }

    fn on_train_begin(&mut self, _model: &mut dyn Trainee) -> Result<()> {
        if !(0.0..1.0).contains(&self.factor) {
            return Err(Error::invalid(
                "ReduceLROnPlateau",
                format!("factor must be in [0, 1), got {} (it reduces the learning rate)", self.factor),
            ));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_delta.is_finite()) {
            return Err(Error::invalid("ReduceLROnPlateau", "min_lr must be finite and >= 0, min_delta finite"));
        }
        let max = self.mode.maximises(&self.monitor);
        self.best = if max { f64::NEG_INFINITY } else { f64::INFINITY };
        self.wait = 0;
        self.cooldown_counter = 0;
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        let current = monitored(logs, &self.monitor, "ReduceLROnPlateau")?;
        let max = self.mode.maximises(&self.monitor);
        let better = if max { current > self.best + self.min_delta } else { current < self.best - self.min_delta };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if better {
            self.best = current;
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = model.learning_rate();
                if old > self.min_lr {
                    model.set_learning_rate((old * self.factor).max(self.min_lr))?;
                    self.cooldown_counter = self.cooldown;
                    self.wait = 0;
                }
            }
        }
        Ok(())
    }
}

/// Keras' `LearningRateScheduler(schedule)`: before each epoch, sets the learning rate to
/// `schedule(epoch, current learning rate)`.
pub struct LearningRateScheduler<F: FnMut(usize, f32) -> f32> {
    schedule: F,
}

impl<F: FnMut(usize, f32) -> f32> LearningRateScheduler<F> {
    /// A scheduler from a function of the epoch (0-based) and the current rate.
    pub fn new(schedule: F) -> Self {
        LearningRateScheduler { schedule }
    }
}

impl<F: FnMut(usize, f32) -> f32> Callback for LearningRateScheduler<F> {
    fn logs_learning_rate(&self) -> bool {
        true
    }

    fn on_epoch_begin(&mut self, epoch: usize, model: &mut dyn Trainee) -> Result<()> {
        let lr = (self.schedule)(epoch, model.learning_rate());
        model.set_learning_rate(lr)
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

/// No hook: what [`LambdaCallback`] holds for the hooks not given.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

/// One of [`LambdaCallback`]'s hooks: a closure, or [`NoHook`].
pub trait Hook<A> {
    /// Runs it.
    fn run(&mut self, args: A) -> Result<()>;
}

impl<A> Hook<A> for NoHook {
    fn run(&mut self, _: A) -> Result<()> {
        Ok(())
    }
}

macro_rules! hook_impls {
    ($(($($arg:ident: $ty:ty),*)),*) => {$(
        impl<'x, F: FnMut($($ty),*) -> Result<()>> Hook<($($ty,)*)> for F {
            fn run(&mut self, ($($arg,)*): ($($ty,)*)) -> Result<()> {
                self($($arg),*)
            }
        }
    )*};
}
hook_impls!((a: usize, b: &'x Logs, c: &'x mut dyn Trainee), (a: usize, c: &'x mut dyn Trainee), (a: &'x Logs, c: &'x mut dyn Trainee), (c: &'x mut dyn Trainee));

/// Keras' `LambdaCallback`: hooks from closures. `LambdaCallback::on_epoch_end(f)` starts one;
/// `.and_on_epoch_begin`, `.and_on_train_batch_begin`, `.and_on_train_batch_end`,
/// `.and_on_train_begin` and `.and_on_train_end` add the others.
///
/// ```ignore
/// let mut log = LambdaCallback::on_epoch_end(|epoch, logs, _model| {
///     println!("epoch {epoch}: loss {:.4}", logs["loss"]);
///     Ok(())
/// })
/// .and_on_train_batch_end(|batch, logs, _model| Ok(()));
/// ```
pub struct LambdaCallback<EE, EB = NoHook, BB = NoHook, BE = NoHook, TB = NoHook, TE = NoHook> {
    epoch_end: EE,
    epoch_begin: EB,
    batch_begin: BB,
    batch_end: BE,
    train_begin: TB,
    train_end: TE,
}

impl<EE: FnMut(usize, &Logs, &mut dyn Trainee) -> Result<()>> LambdaCallback<EE> {
    /// Runs `on_epoch_end(epoch, logs, model)` after each epoch.
    pub fn on_epoch_end(on_epoch_end: EE) -> Self {
        LambdaCallback {
            epoch_end: on_epoch_end,
            epoch_begin: NoHook,
            batch_begin: NoHook,
            batch_end: NoHook,
            train_begin: NoHook,
            train_end: NoHook,
        }
    }
}

impl<EE, EB, BB, BE, TB, TE> LambdaCallback<EE, EB, BB, BE, TB, TE> {
    /// Also runs `f(epoch, model)` before each epoch.
    pub fn and_on_epoch_begin<F: FnMut(usize, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, F, BB, BE, TB, TE> {
        let LambdaCallback { epoch_end, batch_begin, batch_end, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin: f, batch_begin, batch_end, train_begin, train_end }
    }
    /// Also runs `f(batch, model)` before each training batch.
    pub fn and_on_train_batch_begin<F: FnMut(usize, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, F, BE, TB, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_end, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin: f, batch_end, train_begin, train_end }
    }
    /// Also runs `f(batch, logs, model)` after each training batch.
    pub fn and_on_train_batch_end<F: FnMut(usize, &Logs, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, F, TB, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, train_begin, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end: f, train_begin, train_end }
    }
    /// Also runs `f(model)` before training.
    pub fn and_on_train_begin<F: FnMut(&mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, BE, F, TE> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_end, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin: f, train_end }
    }
    /// Also runs `f(logs, model)` after training.
    pub fn and_on_train_end<F: FnMut(&Logs, &mut dyn Trainee) -> Result<()>>(
        self,
        f: F,
    ) -> LambdaCallback<EE, EB, BB, BE, TB, F> {
        let LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin, .. } = self;
        LambdaCallback { epoch_end, epoch_begin, batch_begin, batch_end, train_begin, train_end: f }
    }
}

impl<EE, EB, BB, BE, TB, TE> Callback for LambdaCallback<EE, EB, BB, BE, TB, TE>
where
    EE: for<'x> Hook<(usize, &'x Logs, &'x mut dyn Trainee)>,
    EB: for<'x> Hook<(usize, &'x mut dyn Trainee)>,
    BB: for<'x> Hook<(usize, &'x mut dyn Trainee)>,
    BE: for<'x> Hook<(usize, &'x Logs, &'x mut dyn Trainee)>,
    TB: for<'x> Hook<(&'x mut dyn Trainee,)>,
    TE: for<'x> Hook<(&'x Logs, &'x mut dyn Trainee)>,
{
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.epoch_end.run((epoch, logs, model))
    }
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut dyn Trainee) -> Result<()> {
        self.epoch_begin.run((epoch, model))
    }
    fn on_train_batch_begin(&mut self, batch: usize, model: &mut dyn Trainee) -> Result<()> {
        self.batch_begin.run((batch, model))
    }
    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.batch_end.run((batch, logs, model))
    }
    fn on_train_begin(&mut self, model: &mut dyn Trainee) -> Result<()> {
        self.train_begin.run((model,))
    }
    fn on_train_end(&mut self, logs: &Logs, model: &mut dyn Trainee) -> Result<()> {
        self.train_end.run((logs, model))
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
