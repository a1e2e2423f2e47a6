//! Keras' `EarlyStopping`: stops training when a monitored value stops improving, and may put
//! back the best epoch's weights.

use super::*;

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
