//! Layers: parameters, buffers, forward and backward. One implementation per layer, used by every
//! model style: the macros generate calls into these types, and `#[derive(Model)]` structs hold
//! them as fields.
//!
//! Flatten and Reshape do not appear here as code: on row-major data they change no value, so the
//! model macros turn them into a renaming of the previous buffer (see the `LayerInfo` table).

mod activation;
mod dense;
mod merge;
mod param;
mod traits;

pub use activation::{
    Activation, ActivationFn, Elu, Gelu, LeakyRelu, Linear, Relu, Selu, Sigmoid, Silu, Softmax, Softplus, Swish, Tanh,
};
pub use dense::Dense;
pub use merge::{Add, Average, Concatenate, Dot, Maximum, Merge, Minimum, Multiply, Subtract, accumulate};
pub use param::Param;
pub use traits::{Init, Shaped, expect_same, expect_width, init_vec, set_trainable_all};

/// What [`Layer::backward`] should produce besides the parameter gradients.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOpts {
    /// Compute the gradient with respect to the layer's input (skipped for the first layer).
    pub input_grad: bool,
    /// Add the parameter gradients to those already there (a layer used more than once).
    pub accumulate: bool,
    /// The incoming gradient is already with respect to the activation's input: the loss fused
    /// softmax and cross-entropy into `p - y`.
    pub fused_output: bool,
}

/// A differentiable computation on a batch of rows, with its own buffers.
///
/// Data are row-major `f32` slices of `n` rows; the row widths are fixed by the layer's type.
/// Buffers grow to the largest batch seen and are then reused, so a steady-state training step
/// allocates nothing.
pub trait Layer: Clone + std::fmt::Debug + Send + Sync {
    /// Inference: the output for input `x` of `n` rows.
    fn forward(&mut self, x: &[f32], n: usize) -> &[f32];
    /// Training forward pass: like [`forward`](Self::forward) but keeps what `backward` needs.
    fn forward_train(&mut self, x: &[f32], n: usize) -> &[f32] {
        self.forward(x, n)
    }
    /// Given the input `x` of the last `forward_train` and the loss gradient `dy` with respect to
    /// the output, writes the parameter gradients and, if asked, the input gradient.
    fn backward(&mut self, x: &[f32], n: usize, dy: &[f32], opts: BackwardOpts);
    /// The output of the last forward pass.
    fn output(&self) -> &[f32];
    /// The input gradient written by the last `backward` with `input_grad`.
    fn input_grad(&self) -> &[f32];
    /// Visits each parameter with its name relative to this layer (`kernel`, `bias`).
    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param));
    /// Visits each parameter mutably, in the same order as [`visit_params`](Self::visit_params).
    /// Unnamed, so the optimizer's walk over the parameters builds no strings.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param));
    /// Freezes (`false`) or unfreezes every parameter of the layer: optimizers skip frozen ones.
    fn set_trainable(&mut self, trainable: bool) {
        self.visit_params_mut(&mut |p| p.trainable = trainable);
    }
}

/// Sets `buf` to `len` values without freeing capacity, so buffers stop allocating once they have
/// held the largest batch.
#[inline]
pub fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() != len {
        buf.resize(len, 0.0);
    }
    &mut buf[..]
}

/// The buffers one application of a layer writes: its output, what backward needs, and the input
/// gradient.
#[derive(Clone, Debug, Default)]
pub struct Buffers {
    /// The output of the forward pass.
    pub out: Vec<f32>,
    /// The activation's input, for activations whose derivative needs it.
    pub pre: Vec<f32>,
    /// The gradient with respect to the activation's input.
    pub dz: Vec<f32>,
    /// The gradient with respect to the layer's input.
    pub dx: Vec<f32>,
}

/// A layer that can be applied several times in one model with one set of weights (Keras' shared
/// layers). Each extra application keeps its own [`Buffers`], which the generated code swaps in
/// for that application's forward and backward passes: an exchange of three pointers per buffer,
/// with no copy and no allocation.
pub trait Shareable: Layer {
    /// The layer's own buffers.
    fn buffers_mut(&mut self) -> &mut Buffers;
}

/// Runs a layer's forward pass, keeping what backward needs when `train`.
#[inline]
pub fn run_layer<L: Layer>(layer: &mut L, x: &[f32], n: usize, train: bool) {
    if train {
        layer.forward_train(x, n);
    } else {
        layer.forward(x, n);
    }
}

/// Exchanges a shared layer's buffers with those of another of its applications.
#[inline]
pub fn swap_buffers<L: Shareable>(layer: &mut L, other: &mut Buffers) {
    std::mem::swap(layer.buffers_mut(), other);
}
