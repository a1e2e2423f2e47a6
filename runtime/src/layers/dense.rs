use std::marker::PhantomData;

use rand::Rng;

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::activation::{act_backward, bias_act};
use crate::kernels::matmul::{Mat, column_sums, gemm};
use crate::layers::{ActivationFn, Linear};

/// Keras' `Dense(units, activation, use_bias)`: `y = activation(x · kernel + bias)` on the last
/// axis, so an input `[.., IN]` gives `[.., OUT]` (a sequence `[T, IN]` gives `[T, OUT]`).
///
/// `IN` and `OUT` are the widths of the last axis, `A` the activation: all known at compile time,
/// so a mismatch between two layers is a type error, and the model macros check them before rustc
/// does, with a message naming both shapes.
///
/// The kernel is `[IN, OUT]` (Keras' layout), initialised with `glorot_uniform`; the bias with
/// zeros. The forward pass is one sgemm over every row of every sample followed by one fused pass
/// that adds the bias and applies the activation; backward is two sgemms and a column sum.
#[derive(Clone, Debug)]
pub struct Dense<const IN: usize, const OUT: usize, A: ActivationFn = Linear> {
    /// `[IN, OUT]`.
    pub kernel: Param,
    /// `[OUT]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    /// Keras' `activity_regularizer`, on the output.
    activity: super::Activity,
    buf: DenseBuffers,
    _act: PhantomData<A>,
}

/// What one application of a [`Dense`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct DenseBuffers {
    out: Vec<f32>,
    /// The activation's input, for activations whose derivative needs it.
    pre: Vec<f32>,
    /// The gradient with respect to the activation's input.
    dz: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for DenseBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Dense<IN, OUT, A> {
    /// A layer initialised as Keras does (glorot_uniform kernel, zero bias) from `rng`.
    pub fn new(use_bias: bool, rng: &mut impl Rng) -> Self {
        Dense {
            kernel: Param::glorot_uniform(IN, OUT, rng),
            bias: use_bias.then(|| Param::zeros(&[OUT])),
            activity: super::Activity::default(),
            buf: DenseBuffers::default(),
            _act: PhantomData,
        }
    }
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Layer for Dense<IN, OUT, A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let x = xs[0];
        // Every position of every sample is one row of the product.
        let rows = x.len() / IN;
        let out = sized(&mut self.buf.out, rows * OUT);
        gemm(rows, IN, OUT, Mat::n(x), Mat::n(&self.kernel.value), out, 0.0);
        let pre = (ctx.training && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, rows * OUT));
        bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), OUT);
        self.activity.forward(&self.buf.out, ctx.n);
    }

    fn set_activity_regularizer(&mut self, regularizer: Option<super::Regularizer>) -> bool {
        self.activity.set(regularizer);
        true
    }

    fn penalty(&self) -> f64 {
        self.activity.penalty()
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let x = xs[0];
        let rows = x.len() / IN;
        let dz = sized(&mut self.buf.dz, rows * OUT);
        if opts.fused_output {
            dz.copy_from_slice(dy);
        } else {
            act_backward(A::KIND, &self.buf.out, &self.buf.pre, dy, dz, OUT);
        }
        self.activity.backward(A::KIND, &self.buf.out, &self.buf.pre, &mut self.buf.dz, OUT, ctx.n);
        let dz = &mut self.buf.dz[..rows * OUT];
        let beta = if opts.accumulate { 1.0 } else { 0.0 };
        // d kernel [IN, OUT] = xᵀ [IN, rows] · dz [rows, OUT]
        gemm(IN, rows, OUT, Mat::t(x), Mat::n(dz), &mut self.kernel.grad, beta);
        if let Some(b) = &mut self.bias {
            column_sums(dz, OUT, &mut b.grad, opts.accumulate);
        }
        if opts.input_grad {
            // dx [rows, IN] = dz [rows, OUT] · kernelᵀ [OUT, IN]
            let dx = sized(&mut self.buf.dx, rows * IN);
            gemm(rows, OUT, IN, Mat::n(&self.buf.dz), Mat::t(&self.kernel.value), dx, 0.0);
        }
    }

    super::kernel_bias_layer!();
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Shareable for Dense<IN, OUT, A> {
    type Buffers = DenseBuffers;
    fn buffers_mut(&mut self) -> &mut DenseBuffers {
        &mut self.buf
    }
}
