use std::marker::PhantomData;

use rand::Rng;

use super::{BackwardOpts, Buffers, Layer, Param, Shareable, sized};
use crate::kernels::activation::{act_backward, bias_act};
use crate::kernels::matmul::{Mat, column_sums, gemm};
use crate::layers::{ActivationFn, Linear};

/// Keras' `Dense(units, activation, use_bias)`: `y = activation(x · kernel + bias)`.
///
/// `IN` and `OUT` are the input and output widths, `A` the activation: all known at compile
/// time, so a mismatch between two layers is a type error, and the model macros check them before
/// rustc does, with a message naming both shapes.
///
/// The kernel is `[IN, OUT]` (Keras' layout), initialised with `glorot_uniform`; the bias with
/// zeros. The forward pass is one sgemm followed by one fused pass that adds the bias and applies
/// the activation; backward is two sgemms (kernel and input gradients) and a column sum.
#[derive(Clone, Debug)]
pub struct Dense<const IN: usize, const OUT: usize, A: ActivationFn = Linear> {
    /// `[IN, OUT]`.
    pub kernel: Param,
    /// `[OUT]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    buf: Buffers,
    _act: PhantomData<A>,
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Dense<IN, OUT, A> {
    /// A layer initialised as Keras does (glorot_uniform kernel, zero bias) from `rng`.
    pub fn new(use_bias: bool, rng: &mut impl Rng) -> Self {
        Dense {
            kernel: Param::glorot_uniform(IN, OUT, rng),
            bias: use_bias.then(|| Param::zeros(&[OUT])),
            buf: Buffers::default(),
            _act: PhantomData,
        }
    }

    fn run(&mut self, x: &[f32], n: usize, keep_pre: bool) -> &[f32] {
        debug_assert_eq!(x.len(), n * IN);
        let out = sized(&mut self.buf.out, n * OUT);
        gemm(n, IN, OUT, Mat::n(x), Mat::n(&self.kernel.value), out, 0.0);
        let pre = (keep_pre && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, n * OUT));
        bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), OUT);
        &self.buf.out
    }
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Layer for Dense<IN, OUT, A> {
    fn forward(&mut self, x: &[f32], n: usize) -> &[f32] {
        self.run(x, n, false)
    }

    fn forward_train(&mut self, x: &[f32], n: usize) -> &[f32] {
        self.run(x, n, true)
    }

    fn backward(&mut self, x: &[f32], n: usize, dy: &[f32], opts: BackwardOpts) {
        let dz = sized(&mut self.buf.dz, n * OUT);
        if opts.fused_output {
            dz.copy_from_slice(dy);
        } else {
            act_backward(A::KIND, &self.buf.out, &self.buf.pre, dy, dz, OUT);
        }
        let beta = if opts.accumulate { 1.0 } else { 0.0 };
        // d kernel [IN, OUT] = xᵀ [IN, n] · dz [n, OUT]
        gemm(IN, n, OUT, Mat::t(x), Mat::n(dz), &mut self.kernel.grad, beta);
        if let Some(b) = &mut self.bias {
            column_sums(dz, OUT, &mut b.grad, opts.accumulate);
        }
        if opts.input_grad {
            // dx [n, IN] = dz [n, OUT] · kernelᵀ [OUT, IN]
            let dx = sized(&mut self.buf.dx, n * IN);
            gemm(n, OUT, IN, Mat::n(&self.buf.dz), Mat::t(&self.kernel.value), dx, 0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self) -> &[f32] {
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
}

impl<const IN: usize, const OUT: usize, A: ActivationFn> Shareable for Dense<IN, OUT, A> {
    fn buffers_mut(&mut self) -> &mut Buffers {
        &mut self.buf
    }
}
