//! What a callback sees of the model in training: [`Handle`], kiln's [`Trainee`].

use crate::error::{Error, Result};
use crate::model::dynamic::DynModel;
use crate::optimizers::Optimizer;

use super::super::callbacks::Trainee;
use super::super::own_step::{self, DynCustomStep};

/// A callback's view of the model in training: the model, its optimizer and the loop's state.
pub(super) struct Handle<'a> {
    pub m: &'a mut dyn DynModel,
    pub optimizer: &'a mut dyn Optimizer,
    /// A step's own optimizers, which the learning-rate callbacks and checkpoints reach instead.
    pub own: std::cell::RefCell<Option<&'a mut dyn DynCustomStep>>,
    /// Not compiled: `optimizer` is a stand-in that never runs.
    pub uncompiled: bool,
    pub stop: &'a mut bool,
    pub epochs: u64,
    pub seed: u64,
    pub stream: u64,
    /// Process 0 of a data-parallel run, or the only process: the one that writes files.
    pub chief: bool,
}

impl Trainee for Handle<'_> {
    fn model_name(&self) -> &'static str {
        self.m.meta().name
    }

    fn get_weights(&self) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        self.m.visit_weights(&mut |_, p| out.push(p.value.clone()));
        out
    }

    fn set_weights(&mut self, weights: &[Vec<f32>]) -> Result<()> {
        let mut lens = Vec::new();
        self.m.visit_weights(&mut |_, p| lens.push(p.len()));
        if lens.len() != weights.len() || lens.iter().zip(weights).any(|(l, w)| *l != w.len()) {
            return Err(Error::invalid("weights", format!("these are not the weights of {}", self.m.meta().name)));
        }
        let mut i = 0;
        self.m.visit_weights_mut(&mut |p| {
            p.value.copy_from_slice(&weights[i]);
            i += 1;
        });
        Ok(())
    }

    fn save_weights(&self, path: &std::path::Path) -> Result<()> {
        if !self.chief {
            return Ok(());
        }
        crate::io::save_weights(&*self.m, path)
    }

    fn is_chief(&self) -> bool {
        self.chief
    }

    fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        if !self.chief {
            return Ok(());
        }
        let state = if self.uncompiled { Default::default() } else { self.optimizer.state() };
        let step_optimizers = match self.own.borrow_mut().as_deref_mut() {
            Some(own) => own.optimizers().into_iter().map(|(slot, o)| (slot, o.name(), o.state())).collect(),
            None => Vec::new(),
        };
        let resume = crate::io::Resume {
            optimizer: if self.uncompiled { crate::io::NO_OPTIMIZER } else { self.optimizer.name() },
            state: &state,
            epochs: self.epochs,
            seed: self.seed,
            stream: self.stream,
            step_optimizers,
        };
        crate::io::save_checkpoint_with(&*self.m, resume, path)
    }

    fn learning_rate(&self) -> f32 {
        match self.own.borrow_mut().as_deref_mut() {
            Some(own) => own_step::learning_rate(&mut own.optimizers()),
            None => self.optimizer.learning_rate(),
        }
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::invalid("learning_rate", format!("must be finite and >= 0, got {lr}")));
        }
        match self.own.get_mut().as_deref_mut() {
            Some(own) => own_step::set_learning_rate(&mut own.optimizers(), lr),
            None => self.optimizer.set_learning_rate(lr),
        }
        Ok(())
    }

    fn stop_training(&mut self) {
        *self.stop = true;
    }
}
