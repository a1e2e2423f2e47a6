use std::marker::PhantomData;

use rand::Rng;

use super::{ActivationFn, BackwardOpts, Ctx, Layer, LayerBuffers, Linear, Param, Shareable, sized};
use crate::kernels::activation::{act_backward, bias_act};
use crate::kernels::conv::{SMALL_PATCH, Window, small_patch_forward};
use crate::kernels::matmul::{Mat, PARALLEL_FLOPS, column_sums, gemm};
use crate::kernels::parallel;

/// Keras' `Conv2D` and `Conv1D` (`channels_last`): `filters` kernels of `kernel_size` slid over
/// the input with `strides`, `padding` and `dilation_rate`, plus a bias, then the activation.
///
/// The geometry is fixed when the model compiles ([`Window`]); the layer turns each batch into one
/// matrix product: im2col writes every window as a row, and `[positions, patch] · [patch,
/// filters]` gives the `channels_last` output directly. Backward is two products and col2im.
/// The kernel is `[kh, kw, channels, filters]` (`[k, channels, filters]` for Conv1D), Keras'
/// layout, initialised with `glorot_uniform`; the bias with zeros.
#[derive(Clone, Debug)]
pub struct Conv<A: ActivationFn = Linear> {
    /// `[kh, kw, channels, filters]`, or `[k, channels, filters]` for a 1-D convolution.
    pub kernel: Param,
    /// `[filters]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    geom: Window,
    filters: usize,
    buf: ConvBuffers,
    _act: PhantomData<A>,
}

/// What one application of a [`Conv`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct ConvBuffers {
    /// The im2col matrix of the last forward pass.
    cols: Vec<f32>,
    out: Vec<f32>,
    pre: Vec<f32>,
    dz: Vec<f32>,
    dcols: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for ConvBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<A: ActivationFn> Conv<A> {
    /// A layer over windows `geom` with `filters` outputs, initialised as Keras does from `rng`;
    /// `one_d` gives the kernel Conv1D's shape `[k, channels, filters]`.
    pub fn new(geom: Window, filters: usize, use_bias: bool, one_d: bool, rng: &mut impl Rng) -> Self {
        let shape: Vec<usize> =
            if one_d { vec![geom.kw, geom.c, filters] } else { vec![geom.kh, geom.kw, geom.c, filters] };
        let field = geom.kh * geom.kw;
        Conv {
            kernel: Param::glorot_uniform_shaped(&shape, field * geom.c, field * filters, rng),
            bias: use_bias.then(|| Param::zeros(&[filters])),
            geom,
            filters,
            buf: ConvBuffers::default(),
            _act: PhantomData,
        }
    }

    /// The window geometry.
    pub fn window(&self) -> &Window {
        &self.geom
    }
}

impl<A: ActivationFn> Layer for Conv<A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (g, f) = (&self.geom, self.filters);
        let n = xs[0].len() / g.in_len();
        let rows = n * g.out_positions();
        let cols = sized(&mut self.buf.cols, rows * g.patch());
        g.im2col(xs[0], n, cols);
        let out = sized(&mut self.buf.out, rows * f);
        let patch = g.patch();
        if patch <= SMALL_PATCH {
            // Split by rows across the cores: each output row is computed the same way either way.
            let (cols, w) = (&self.buf.cols[..], &self.kernel.value[..]);
            let half = if 2 * rows * patch * f >= PARALLEL_FLOPS { rows / 2 } else { rows };
            let (o0, o1) = out.split_at_mut(half * f);
            let (c0, c1) = cols.split_at(half * patch);
            parallel::join(
                half < rows,
                || small_patch_forward(c0, w, patch, f, o0),
                || small_patch_forward(c1, w, patch, f, o1),
            );
        } else {
            gemm(rows, patch, f, Mat::n(&self.buf.cols), Mat::n(&self.kernel.value), out, 0.0);
        }
        let pre = (ctx.training && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, rows * f));
        bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), f);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (g, f) = (self.geom, self.filters);
        let n = xs[0].len() / g.in_len();
        let rows = n * g.out_positions();
        {
            let dz = sized(&mut self.buf.dz, rows * f);
            if opts.fused_output {
                dz.copy_from_slice(dy);
            } else {
                act_backward(A::KIND, &self.buf.out, &self.buf.pre, dy, dz, f);
            }
        }
        let beta = if opts.accumulate { 1.0 } else { 0.0 };
        let patch = g.patch();
        // d kernel [patch, f] = colsᵀ [patch, rows] · dz [rows, f]
        gemm(patch, rows, f, Mat::t(&self.buf.cols), Mat::n(&self.buf.dz), &mut self.kernel.grad, beta);
        if let Some(b) = &mut self.bias {
            column_sums(&self.buf.dz, f, &mut b.grad, opts.accumulate);
        }
        if opts.input_grad {
            // d cols [rows, patch] = dz [rows, f] · kernelᵀ [f, patch], then back onto the input.
            let dcols = sized(&mut self.buf.dcols, rows * g.patch());
            gemm(rows, f, g.patch(), Mat::n(&self.buf.dz), Mat::t(&self.kernel.value), dcols, 0.0);
            let dx = sized(&mut self.buf.dx, n * g.in_len());
            g.col2im(&self.buf.dcols, n, dx);
        }
    }

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
}

impl<A: ActivationFn> Shareable for Conv<A> {
    type Buffers = ConvBuffers;
    fn buffers_mut(&mut self) -> &mut ConvBuffers {
        &mut self.buf
    }
}
