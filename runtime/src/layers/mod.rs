//! Layers: one trait, [`Layer`], for every layer kiln has and every layer a user writes.
//!
//! A layer takes one or several inputs (`xs`, each a row-major `f32` slice of `ctx.n` samples;
//! the per-sample shapes are fixed when the model compiles), writes its output into buffers it
//! owns, and in `backward` writes its parameter gradients and its input gradients. A [`Ctx`]
//! carries what varies per call: the batch size, whether this is a training pass, and the
//! model's seeded random stream. Each weight is a [`Param`] with a [`Role`]: trainable, frozen
//! by the user, or non-trainable state (moving statistics).
//!
//! Flatten and Reshape have no code here: on row-major data they change no value, so the model
//! macros turn them into a renaming of the previous buffer.
//!
//! Adding a layer is described in `CONTRIBUTING.md`.

/// The `Layer` methods of a layer with `kernel`, an optional `bias` and buffers `buf.out` and
/// `buf.dx`: its output, its input gradient and its weights, in Keras' order.
macro_rules! kernel_bias_layer {
    () => {
        fn output(&self) -> &[f32] {
            &self.buf.out
        }

        fn input_grad(&self, _i: usize) -> &[f32] {
            &self.buf.dx
        }

        fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
            f("kernel", &self.kernel);
            if let Some(b) = &self.bias {
                f("bias", b);
            }
        }

        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
            f(&mut self.kernel);
            if let Some(b) = &mut self.bias {
                f(b);
            }
        }
    };
}
use kernel_bias_layer;

/// The `Layer` and `Shareable` methods of a typed field (`typed.rs`, `typed_window.rs`), handed to
/// the layer it wraps, `layer`; a field whose geometry follows its input sizes it in the closure,
/// its `bind_input`.
macro_rules! field_layer {
    ([$($g:tt)*] $ty:ty, $buffers:ty) => {
        field_layer!([$($g)*] $ty, $buffers, |this, shape| ());
    };
    ([$($g:tt)*] $ty:ty, $buffers:ty, |$this:ident, $shape:ident| $bind:expr) => {
        impl<$($g)*> $crate::layers::Layer for $ty {
            fn forward(&mut self, xs: &[&[f32]], ctx: &mut $crate::layers::Ctx<'_>) {
                self.layer.forward(xs, ctx)
            }
            fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut $crate::layers::Ctx<'_>, opts: $crate::layers::BackwardOpts) {
                self.layer.backward(xs, dy, ctx, opts)
            }
            fn output(&self) -> &[f32] {
                self.layer.output()
            }
            fn input_grad(&self, i: usize) -> &[f32] {
                self.layer.input_grad(i)
            }
            fn set_activity_regularizer(&mut self, r: Option<$crate::layers::Regularizer>) -> bool {
                self.layer.set_activity_regularizer(r)
            }
            fn penalty(&self) -> f64 {
                self.layer.penalty()
            }
            fn visit_params(&self, f: &mut dyn FnMut(&str, &$crate::layers::Param)) {
                self.layer.visit_params(f)
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut $crate::layers::Param)) {
                self.layer.visit_params_mut(f)
            }
            fn set_trainable(&mut self, trainable: bool) {
                self.layer.set_trainable(trainable)
            }
            #[allow(unused_variables)]
            fn bind_input(&mut self, $shape: &[usize]) {
                let $this = self;
                $bind
            }
        }

        impl<$($g)*> $crate::layers::Shareable for $ty {
            type Buffers = $buffers;
            fn buffers_mut(&mut self) -> &mut $buffers {
                self.layer.buffers_mut()
            }
        }
    };
}

mod activation;
mod attention;
mod augment;
mod warp;
mod batch_norm;
mod checks;
mod chunks;
mod info;
mod conv;
mod conv_transpose;
mod dense;
mod depthwise;
mod dot_attention;
mod embedding;
mod init;
mod layer_norm;
mod leaky_relu;
mod masking;
mod add_loss;
mod math;
mod one_hot;
mod merge;
mod noise;
mod normalization;
mod param;
mod permute;
mod pool;
mod prelu;
mod recurrent;
mod resample;
mod resize;
mod take;
mod traits;
mod typed;
mod shared_model;
mod tensor;
mod typed_window;
mod weight;
mod wrappers;

pub use info::LayerInfo;
pub use crate::kernels::conv::Window;
pub use activation::{
    Activation, ActivationBuffers, ActivationFn, Elu, Gelu, GeluApproximate, LeakyRelu, Linear, Relu, Selu, Sigmoid,
    Silu, Softmax, Softplus, Swish, Tanh,
};
pub use augment::{AugmentBuffers, RandomBrightness, RandomContrast, RandomFlip};
pub use warp::{FillMode, RandomRotation, RandomTranslation, RandomZoom};
pub use attention::{AttentionBuffers, AttentionConfig, MultiHeadAttention};
pub use batch_norm::{BatchNorm, BatchNormBuffers};
pub use checks::{
    broadcast_dim, expect_broadcast, expect_extent_one, expect_one_per_sample, expect_matmul, expect_model_inputs, expect_same_size, expect_same_except, expect_slice, expect_custom, expect_layer_field, expect_matrix_field, expect_tensor_field, expect_dims, expect_field, expect_inputs, expect_params, expect_rebind, expect_same, expect_same_dims, expect_same_lead, expect_shape,
    expect_width,
    field_shape, same_shape, same_str, shape_eq, states_param, Msg,
};
pub use conv::{Conv, ConvBuffers};
pub use conv_transpose::{ConvTranspose, ConvTransposeBuffers};
pub use dense::{Dense, DenseBuffers};
pub use dot_attention::{DotAttention, DotAttentionBuffers, DotAttentionConfig};
pub use depthwise::{Depthwise, DepthwiseBuffers, Separable};
pub use embedding::{Embedding, EmbeddingBuffers};
pub use init::{Activity, Constraint, Initializer, Regularizer, configure};
pub use layer_norm::{LayerNorm, LayerNormBuffers};
pub use leaky_relu::{LeakyReLU, LeakyReluBuffers};
pub use shared_model::{ModelBuffers, swap_model_buffers};
pub use tensor::{Gather, GatherBuffers, MatMul, MatMulBuffers, Slice, SoftmaxAxis};
pub use weight::{GlorotUniform, Matrix, MatrixInit, Ones, Weight, WeightBuffers, WeightInit, Zeros};
pub use add_loss::AddLoss;
pub use one_hot::{CategoryEncode, Discretize, IntLookup, OneHot};
pub use math::{BinaryOp, Broadcast, BroadcastBuffers, Distribution, Draw, MathBuffers, Reduce, ReduceOp, Unary, UnaryOp};
pub use masking::{MaskSource, Masking, MaskingBuffers};
pub use merge::{Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, accumulate};
pub use noise::{Dropout, GaussianNoise, NoiseBuffers, Rescaling, SpatialDropout};
pub use normalization::{Normalization, NormalizationBuffers};
pub use param::{Param, Role};
pub use permute::{Permute, PermuteBuffers};
pub use prelu::{PReLU, PReluBuffers};
pub use pool::{GlobalPool, Pool, PoolBuffers, PoolKind};
pub use recurrent::{Cell, Gate, Recurrent, RecurrentBuffers, RecurrentConfig};
pub use resample::{Resample, ResampleBuffers};
pub use resize::{RandomCrop, Resize, ResizeBuffers, aspect_crop, resize_bilinear};
pub use take::{Take, TakeBuffers};
pub use traits::{
    FieldRule, Init, InputRule, Shaped, WindowRule, field_dim, field_rule, ids_below, init_vec, min_usize, set_trainable_all, window_of,
};
pub use typed::{BiGruSeq, BiLstmSeq, CrossAttention, Embed, GruSeq, LayerNormalization, LstmSeq, SelfAttention, SimpleRnnSeq};
pub use typed_window::{
    AveragePooling1D, AveragePooling2D, BatchNormalization, Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, Padding, Same,
    Valid,
};
pub use wrappers::{Bidirectional, BidirectionalBuffers, MergeMode, TimeDistributed};

pub use crate::random::Stream;

/// What a forward or backward pass receives besides the data.
pub struct Ctx<'a> {
    /// Samples in the batch.
    pub n: usize,
    /// A training pass: dropout and noise are active, normalisation uses and updates batch
    /// statistics. `false` for `predict` and `evaluate`.
    pub training: bool,
    /// The model's random stream (saved in checkpoints): layers draw masks and noise from it.
    pub rng: &'a mut Stream,
    /// Per input, Keras' mask over its steps (`[n, T]`, 1 = a real step, 0 = padding), for the
    /// layers that honour one (recurrent layers, attention, average pooling over steps). The
    /// model macros pass the mask of an `Embedding(mask_zero = true)` to them.
    pub masks: [Option<&'a [f32]>; 3],
}

impl<'a> Ctx<'a> {
    /// A context for `n` samples.
    pub fn new(n: usize, training: bool, rng: &'a mut Stream) -> Self {
        Ctx { n, training, rng, masks: [None; 3] }
    }

    /// The same context for a nested call (a model used as a layer).
    pub fn reborrow(&mut self) -> Ctx<'_> {
        Ctx { n: self.n, training: self.training, rng: self.rng, masks: [None; 3] }
    }

    /// The same context with masks for the inputs of one layer call.
    pub fn masked<'b>(&'b mut self, masks: [Option<&'b [f32]>; 3]) -> Ctx<'b> {
        Ctx { n: self.n, training: self.training, rng: self.rng, masks }
    }
}

/// What [`Layer::backward`] should produce besides the parameter gradients.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOpts {
    /// Compute the gradients with respect to the layer's inputs (skipped for the first layer).
    pub input_grad: bool,
    /// Add the parameter gradients to those already there (a layer used more than once).
    pub accumulate: bool,
    /// The incoming gradient is already with respect to the activation's input: the loss fused
    /// softmax and cross-entropy into `p - y`. Only a model's output layer ever receives it.
    pub fused_output: bool,
}

/// A differentiable computation on a batch, with its own buffers.
///
/// Buffers grow to the largest batch seen and are then reused, so a steady-state training step
/// allocates nothing. Keras equivalent: `keras.layers.Layer` (`call` is `forward`; `build` is
/// the constructor, given the static shapes the model macro computed).
pub trait Layer: Clone + std::fmt::Debug + Send + Sync {
    /// Computes the output for inputs `xs` (one slice per input, `ctx.n` samples each). In a
    /// training pass, keeps what `backward` needs.
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>);
    /// Given the inputs of the last training `forward` and the loss gradient `dy` with respect
    /// to the output, writes the parameter gradients and, if asked, the input gradients.
    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts);
    /// The output of the last forward pass.
    fn output(&self) -> &[f32];
    /// The gradient with respect to input `i`, written by the last `backward` with `input_grad`.
    fn input_grad(&self, i: usize) -> &[f32];
    /// Sets Keras' `activity_regularizer`, a penalty on this layer's output added to the loss;
    /// false for a layer that does not take one.
    fn set_activity_regularizer(&mut self, _regularizer: Option<Regularizer>) -> bool {
        false
    }
    /// The activity penalty of the last forward pass, divided by the batch size as Keras 3 does
    /// (0 without an activity regularizer).
    fn penalty(&self) -> f64 {
        0.0
    }
    /// Visits each weight with its name relative to this layer (`kernel`, `bias`).
    fn visit_params(&self, _f: &mut dyn FnMut(&str, &Param)) {}
    /// Visits each weight mutably, in the same order as [`visit_params`](Self::visit_params).
    /// Unnamed, so the optimizer's walk over the weights builds no strings.
    fn visit_params_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
    /// Freezes (`false`) or unfreezes the layer's trainable weights; non-trainable state
    /// (moving statistics) stays non-trainable either way.
    fn set_trainable(&mut self, trainable: bool) {
        self.visit_params_mut(&mut |p| p.set_trainable(trainable));
    }
    /// Told, when a `#[kiln::model]` struct is built, the shape of one sample of this field's
    /// input at its first call in `call` (which the model checked when it compiled). Layers whose
    /// geometry follows their input (convolutions, pooling) size their windows here; the default
    /// does nothing.
    fn bind_input(&mut self, _shape: &[usize]) {}
}

/// A layer that can be applied several times in one model with one set of weights (Keras' shared
/// layers). Each extra application keeps its own buffers, which the generated code swaps in for
/// that application's passes: an exchange of pointers, with no copy and no allocation.
pub trait Shareable: Layer {
    /// Everything one application writes (outputs, what backward keeps, input gradients).
    type Buffers: LayerBuffers + Clone + std::fmt::Debug + Default + Send + Sync;
    /// The layer's own buffers.
    fn buffers_mut(&mut self) -> &mut Self::Buffers;
    /// Exchanges the layer's buffers with those of another of its applications (by default the
    /// ones [`buffers_mut`](Self::buffers_mut) names; a model swaps everything but its weights).
    fn swap(&mut self, other: &mut Self::Buffers) {
        std::mem::swap(self.buffers_mut(), other);
    }
}

/// The buffers of one application of a shared layer, read while they are swapped out.
pub trait LayerBuffers {
    /// The output that application wrote.
    fn output(&self) -> &[f32];
    /// The gradient with respect to its input `i`.
    fn input_grad(&self, i: usize) -> &[f32];
}

/// Sets `buf` to `len` values without freeing capacity, so buffers stop allocating once they have
/// held the largest batch.
#[inline]
pub fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() != len {
        resize_zeroed(buf, len);
    }
    &mut buf[..]
}

/// `sized`'s resize, kept out of line: a layer generic over its activation is compiled in the
/// user's crate (unoptimised in a debug build), and this fill then still runs optimised code.
#[inline(never)]
fn resize_zeroed(buf: &mut Vec<f32>, len: usize) {
    buf.resize(len, 0.0);
}

/// Exchanges a shared layer's buffers with those of another of its applications.
#[inline]
pub fn swap_buffers<L: Shareable>(layer: &mut L, other: &mut L::Buffers) {
    layer.swap(other);
}
