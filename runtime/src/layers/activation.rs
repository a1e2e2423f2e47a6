use std::marker::PhantomData;

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};
use crate::kernels::ActKind;
use crate::kernels::activation::{act_backward, bias_act};

/// An activation as a type, so a layer's activation is part of its type (`Dense<64, 10, Softmax>`)
/// and the generated code needs no run-time lookup.
pub trait ActivationFn: Copy + Default + std::fmt::Debug + Send + Sync + 'static {
    /// The kernel this type selects.
    const KIND: ActKind;
}

macro_rules! activations {
    ($($(#[$doc:meta])* $ty:ident => $kind:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty;
        impl ActivationFn for $ty {
            const KIND: ActKind = ActKind::$kind;
        }
    )*};
}

activations! {
    /// `linear`: the identity (Keras' default for Dense).
    Linear => Linear,
    /// `relu`.
    Relu => Relu,
    /// `sigmoid`.
    Sigmoid => Sigmoid,
    /// `tanh`.
    Tanh => Tanh,
    /// `softmax` over the last axis.
    Softmax => Softmax,
    /// `gelu` (exact form, Keras' default).
    Gelu => Gelu,
    /// `elu` with alpha 1.
    Elu => Elu,
    /// `selu`.
    Selu => Selu,
    /// `leaky_relu` with negative slope 0.2.
    LeakyRelu => LeakyRelu,
    /// `softplus`.
    Softplus => Softplus,
    /// `swish` (also `silu`).
    Swish => Swish,
    /// `gelu_approximate`: Keras' `gelu(x, approximate=True)`, the tanh form.
    GeluApproximate => GeluApproximate,
}

/// `silu` is Keras' other name for swish.
pub type Silu = Swish;

/// Keras' `Activation(name)` layer: applies an activation to the previous layer's output, of
/// any shape; softmax normalises over the last axis, `WIDTH` wide (or, with `WIDTH` 0, as wide
/// as [`with_width`](Activation::with_width) says: a width only known per instantiation of a
/// model with size parameters).
#[derive(Clone, Debug)]
pub struct Activation<A: ActivationFn, const WIDTH: usize> {
    buf: ActivationBuffers,
    width: usize,
    _act: PhantomData<A>,
}

impl<A: ActivationFn, const WIDTH: usize> Default for Activation<A, WIDTH> {
    fn default() -> Self {
        Activation { buf: ActivationBuffers::default(), width: WIDTH, _act: PhantomData }
    }
}

/// What one application of an [`Activation`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct ActivationBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for ActivationBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<A: ActivationFn, const WIDTH: usize> Activation<A, WIDTH> {
    /// A new layer; `WIDTH` is the row width softmax normalises over (the last axis).
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer whose rows are `width` wide, whatever `WIDTH` says.
    pub fn with_width(width: usize) -> Self {
        Activation { width, ..Self::default() }
    }
}

impl<A: ActivationFn, const WIDTH: usize> Layer for Activation<A, WIDTH> {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        out.copy_from_slice(xs[0]);
        bias_act(A::KIND, out, None, None, self.width);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let dx = sized(&mut self.buf.dx, dy.len());
        if opts.fused_output {
            dx.copy_from_slice(dy);
        } else {
            act_backward(A::KIND, &self.buf.out, xs[0], dy, dx, self.width);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl<A: ActivationFn, const WIDTH: usize> Shareable for Activation<A, WIDTH> {
    type Buffers = ActivationBuffers;
    fn buffers_mut(&mut self) -> &mut ActivationBuffers {
        &mut self.buf
    }
}
