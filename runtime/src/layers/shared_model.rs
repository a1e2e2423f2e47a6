//! A model applied several times inside another (a Siamese tower, a block used twice): each
//! application keeps its own activations while the weights stay one set.
//!
//! A model's activations are spread over all its layers, so they are not one buffer to swap.
//! Instead, a second application runs on a copy of the model made once, with the weights moved
//! into it for that application's passes and moved back after: a few pointer exchanges per
//! application and step, and no allocation after the first.

use std::any::Any;

use super::{Layer, LayerBuffers, Param};

/// What [`ModelBuffers`] keeps of a model: its outputs and input gradients, read while the copy
/// is swapped out, as an object (the model's type is known only where it was defined).
pub trait Replica: Any + Send + Sync + std::fmt::Debug {
    /// [`Layer::output`] of the copy.
    fn output(&self) -> &[f32];
    /// [`Layer::input_grad`] of the copy.
    fn input_grad(&self, i: usize) -> &[f32];
    /// A boxed clone.
    fn clone_box(&self) -> Box<dyn Replica>;
    /// The copy as `Any`, to get its type back.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<L: Layer + Clone + Send + Sync + std::fmt::Debug + 'static> Replica for L {
    fn output(&self) -> &[f32] {
        Layer::output(self)
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        Layer::input_grad(self, i)
    }
    fn clone_box(&self) -> Box<dyn Replica> {
        Box::new(self.clone())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The buffers of one extra application of a shared model: a copy of the model (made at the
/// first application), and the slots its weights pass through.
#[derive(Debug, Default)]
pub struct ModelBuffers {
    copy: Option<Box<dyn Replica>>,
    weights: Vec<Param>,
}

impl Clone for ModelBuffers {
    fn clone(&self) -> Self {
        ModelBuffers { copy: self.copy.as_ref().map(|c| c.clone_box()), weights: self.weights.clone() }
    }
}

impl LayerBuffers for ModelBuffers {
    fn output(&self) -> &[f32] {
        self.copy.as_ref().map_or(&[], |c| c.output())
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        self.copy.as_ref().map_or(&[], |c| c.input_grad(i))
    }
}

/// Swaps model `m`'s activations with those of another application kept in `other`, keeping
/// `m`'s weights in `m`: called before and after that application's passes, it leaves `m` as it
/// was with the other application's activations updated in `other`.
pub fn swap_model_buffers<M: Layer + Clone + Send + Sync + std::fmt::Debug + 'static>(m: &mut M, other: &mut ModelBuffers) {
    let copy = other.copy.get_or_insert_with(|| Box::new(m.clone()));
    let Some(copy) = copy.as_any_mut().downcast_mut::<M>() else {
        // Buffers made by another model type: nothing of theirs can be exchanged with `m`.
        return;
    };
    other.weights.clear();
    m.visit_params_mut(&mut |p| other.weights.push(std::mem::replace(p, Param::empty())));
    std::mem::swap(m, copy);
    let mut i = 0;
    m.visit_params_mut(&mut |p| {
        if let Some(w) = other.weights.get_mut(i) {
            std::mem::swap(p, w);
        }
        i += 1;
    });
}
