//! The object-safe face of a [`Model`]: what the training loop, the file formats and the summary
//! need of a model, as a trait object.
//!
//! `fit`, `evaluate`, `predict`, `save_weights`, ... are written once against `&mut dyn
//! DynModel` and compiled once, in this crate: a program using kiln instantiates only the thin
//! generic methods of [`Model`] that forward to them, so rebuilding it after a change to its
//! `main` recompiles a few functions, not the training loop (measured in CONTRIBUTING.md).

use std::any::Any;

use crate::kernels::ActKind;
use crate::layers::{Ctx, Param};
use crate::layers::LayerInfo;
use crate::train::TrainState;

use super::{Model, Port};

/// A model's static description: the associated constants of [`Model`] as one value.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// [`Model::NAME`].
    pub name: &'static str,
    /// [`Model::INPUTS`].
    pub inputs: &'static [Port],
    /// [`Model::OUTPUTS`].
    pub outputs: &'static [Port],
    /// [`Model::OUTPUT_ACTIVATIONS`].
    pub output_activations: &'static [ActKind],
    /// [`Model::LAYERS`].
    pub layers: &'static [LayerInfo],
    /// [`Model::MEMORY`].
    pub memory: Option<[usize; 2]>,
    /// [`Model::ADDED_LOSSES`].
    pub added_losses: &'static [&'static str],
}

/// Every [`Model`] as a trait object (implemented for all of them; you never implement it).
/// The methods are those of [`Model`] of the same names.
pub trait DynModel: Any + Send + Sync {
    /// The model's static description.
    fn meta(&self) -> Meta;
    /// [`Model::run`].
    fn run(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>);
    /// [`Model::output`].
    fn output(&self, k: usize) -> &[f32];
    /// [`Model::run_backward`].
    fn run_backward(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>);
    /// [`Model::backward_to_inputs`].
    fn backward_to_inputs(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>);
    /// [`Model::input_grad_of`].
    fn input_grad_of<'s>(&'s self, i: usize, dys: &[&'s [f32]]) -> &'s [f32];
    /// [`Model::visit_weights`].
    fn visit_weights(&self, f: &mut dyn FnMut(&str, &Param));
    /// [`Model::visit_weights_mut`].
    fn visit_weights_mut(&mut self, f: &mut dyn FnMut(&mut Param));
    /// [`Model::visit_layer_outputs`].
    fn visit_layer_outputs(&self, f: &mut dyn FnMut(&str, &[f32]));
    /// [`Model::activity_penalty`].
    fn activity_penalty(&self) -> f64;
    /// [`Model::added_loss`].
    fn added_loss(&self, i: usize) -> f64;
    /// [`Model::train_state`].
    fn train_state(&self) -> &TrainState;
    /// [`Model::train_state_mut`].
    fn train_state_mut(&mut self) -> &mut TrainState;
    /// The model as `Any`, so a training step written for the concrete type gets it back.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<M: Model> DynModel for M {
    fn meta(&self) -> Meta {
        Meta {
            name: M::NAME,
            inputs: M::INPUTS,
            outputs: M::OUTPUTS,
            output_activations: M::OUTPUT_ACTIVATIONS,
            layers: M::LAYERS,
            memory: M::MEMORY,
            added_losses: M::ADDED_LOSSES,
        }
    }
    fn run(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        Model::run(self, xs, ctx)
    }
    fn output(&self, k: usize) -> &[f32] {
        Model::output(self, k)
    }
    fn run_backward(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>) {
        Model::run_backward(self, xs, dys, fused, ctx)
    }
    fn backward_to_inputs(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], ctx: &mut Ctx<'_>) {
        Model::backward_to_inputs(self, xs, dys, fused, ctx)
    }
    fn input_grad_of<'s>(&'s self, i: usize, dys: &[&'s [f32]]) -> &'s [f32] {
        Model::input_grad_of(self, i, dys)
    }
    fn visit_weights(&self, f: &mut dyn FnMut(&str, &Param)) {
        Model::visit_weights(self, f)
    }
    fn visit_weights_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        Model::visit_weights_mut(self, f)
    }
    fn visit_layer_outputs(&self, f: &mut dyn FnMut(&str, &[f32])) {
        Model::visit_layer_outputs(self, f)
    }
    fn activity_penalty(&self) -> f64 {
        Model::activity_penalty(self)
    }
    fn added_loss(&self, i: usize) -> f64 {
        Model::added_loss(self, i)
    }
    fn train_state(&self) -> &TrainState {
        Model::train_state(self)
    }
    fn train_state_mut(&mut self) -> &mut TrainState {
        Model::train_state_mut(self)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
