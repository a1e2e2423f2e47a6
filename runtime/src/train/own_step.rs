//! `fit` with a training step of your own that owns what it needs (Keras' `train_step` and
//! `test_step` overrides of a GAN or a distiller): several optimizers, other models, losses of its
//! own. The step returns its logs; `fit` keeps the rest — batches, shuffling, the progress bar,
//! validation, callbacks, checkpoints (every optimizer's state) and `History`.

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::model::dynamic::DynModel;
use crate::optimizers::Optimizer;

use super::{Logs, StepBatch};

/// A training step of your own for [`Model::fit_steps`](crate::Model::fit_steps): Keras'
/// `train_step` (and `test_step`) on a model of yours, with its own optimizers.
///
/// ```ignore
/// struct GanStep { d_opt: Adam, g_opt: Adam }
/// impl CustomStep<Gan> for GanStep {
///     fn train_step(&mut self, gan: &mut Gan, batch: StepBatch<'_>) -> kiln::Result<Logs> {
///         let real = batch.input(0);                      // [k, 8, 8, 1]
///         // ... forward_train / backward_train / apply on gan.generator and gan.discriminator
///         Ok(Logs::from([("d_loss".into(), d as f64), ("g_loss".into(), g as f64)]))
///     }
///     fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
///         vec![("d_opt", &mut self.d_opt), ("g_opt", &mut self.g_opt)]
///     }
/// }
/// ```
pub trait CustomStep<M> {
    /// One step on one batch (`x` and `y` as given to `fit`, the rows of this batch); returns the
    /// batch's logs, which `fit` averages over the epoch (weighted by the rows) and shows.
    fn train_step(&mut self, model: &mut M, batch: StepBatch<'_>) -> Result<Logs>;

    /// One validation step on a batch of the held-out rows (`validation_split` or
    /// `validation_data`); its logs are averaged and reported with a `val_` prefix. The default
    /// reports nothing.
    fn test_step(&mut self, _model: &mut M, _batch: StepBatch<'_>) -> Result<Logs> {
        Ok(Logs::new())
    }

    /// The optimizers the step owns, each with a name: checkpoints (`ModelCheckpoint` with
    /// `save_weights_only(false)`, `BackupAndRestore`) save and restore their state, and the
    /// learning-rate callbacks scale all of them (keeping their ratios).
    fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        Vec::new()
    }
}

/// A [`CustomStep`] as `fit` calls it, on the model as a trait object.
pub(crate) trait DynCustomStep {
    fn train(&mut self, m: &mut dyn DynModel, batch: StepBatch<'_>) -> Result<Logs>;
    fn test(&mut self, m: &mut dyn DynModel, batch: StepBatch<'_>) -> Result<Logs>;
    fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)>;
}

/// A step written for the model type `M`, which `fit` hands back its model as a trait object.
pub(crate) struct Typed<'s, S, M>(pub &'s mut S, pub PhantomData<fn(M)>);

fn concrete<M: Model>(m: &mut dyn DynModel) -> Result<&mut M> {
    m.as_any_mut().downcast_mut::<M>().ok_or(Error::invalid("fit", "the step's model"))
}

impl<S: CustomStep<M>, M: Model> DynCustomStep for Typed<'_, S, M> {
    fn train(&mut self, m: &mut dyn DynModel, batch: StepBatch<'_>) -> Result<Logs> {
        self.0.train_step(concrete(m)?, batch)
    }
    fn test(&mut self, m: &mut dyn DynModel, batch: StepBatch<'_>) -> Result<Logs> {
        self.0.test_step(concrete(m)?, batch)
    }
    fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        self.0.optimizers()
    }
}

/// Running means of a step's logs over an epoch (or a validation), weighted by rows, in the
/// order the keys first came.
#[derive(Debug, Default)]
pub(super) struct LogMeans {
    sums: Vec<(String, f64)>,
    rows: usize,
}

impl LogMeans {
    pub(super) fn reset(&mut self) {
        self.sums.iter_mut().for_each(|(_, s)| *s = 0.0);
        self.rows = 0;
    }

    /// Adds one batch's logs over `k` rows; returns a key whose value is not finite, if any
    /// (nothing is added then).
    pub(super) fn add(&mut self, logs: &Logs, k: usize) -> Option<(String, f64)> {
        if let Some((key, v)) = logs.iter().find(|(_, v)| !v.is_finite()) {
            return Some((key.clone(), *v));
        }
        for (key, v) in logs {
            match self.sums.iter_mut().find(|(s, _)| s == key) {
                Some((_, s)) => *s += v * k as f64,
                None => self.sums.push((key.clone(), v * k as f64)),
            }
        }
        self.rows += k;
        None
    }

    pub(super) fn logs(&self, prefix: &str, into: &mut Logs) {
        let rows = self.rows.max(1) as f64;
        for (key, s) in &self.sums {
            into.insert(format!("{prefix}{key}"), s / rows);
        }
    }
}

/// The learning rate the callbacks read of a step's optimizers: the first one's.
pub(super) fn learning_rate(opts: &mut [(&'static str, &mut dyn Optimizer)]) -> f32 {
    opts.first().map_or(0.0, |(_, o)| o.learning_rate())
}

/// Sets the first optimizer's rate to `lr` and scales the others by as much, keeping the ratios
/// the step chose (a GAN's discriminator and generator rates).
pub(super) fn set_learning_rate(opts: &mut [(&'static str, &mut dyn Optimizer)], lr: f32) {
    let first = learning_rate(opts);
    for (i, (_, o)) in opts.iter_mut().enumerate() {
        let new = if i == 0 || first == 0.0 { lr } else { o.learning_rate() * (lr / first) };
        o.set_learning_rate(new);
    }
}
