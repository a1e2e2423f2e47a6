//! The callbacks that change the learning rate: `ReduceLROnPlateau` and
//! `LearningRateScheduler`.

use super::*;

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
