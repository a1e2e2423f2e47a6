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

use crate::history::Logs;

mod early_stopping;
mod files;
mod lambda;
mod schedule;

pub use early_stopping::EarlyStopping;
pub use files::{BackupAndRestore, CsvLogger, ModelCheckpoint};
pub use lambda::{Hook, LambdaCallback, NoHook};
pub use schedule::{LearningRateScheduler, ReduceLrOnPlateau};

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
    /// Checks what the callback will need, before the first step and before any weight changes:
    /// `keys` are the log keys every epoch will have, and `writes_files` is false on the
    /// processes of a data-parallel run that write none. [`ModelCheckpoint`] checks the keys its
    /// path names and its folder, [`CsvLogger`] and [`BackupAndRestore`] their folders. Ok by
    /// default.
    fn check(&self, _keys: &[&str], _writes_files: bool) -> Result<()> {
        Ok(())
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

/// Checks that files can be written into the folder `dir` (a file created and removed at once),
/// creating it first when `create`; `who` names the callback in the error.
fn writable_folder(dir: &std::path::Path, create: bool, who: &str) -> Result<()> {
    let shown = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let why = |reason: String| Error::invalid("filepath", format!("{who} writes into `{}`, which {reason}", shown.display()));
    if shown.exists() && !shown.is_dir() {
        return Err(why("is a file, not a folder".into()));
    }
    if !shown.exists() {
        if !create {
            return Err(why("does not exist (create it first)".into()));
        }
        std::fs::create_dir_all(shown).map_err(|e| why(format!("could not be created: {e}")))?;
    }
    tempfile::tempfile_in(shown).map_err(|e| why(format!("does not take new files: {e}")))?;
    Ok(())
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
