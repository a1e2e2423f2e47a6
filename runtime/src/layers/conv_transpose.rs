use std::marker::PhantomData;

use rand::Rng;

use super::{ActivationFn, BackwardOpts, Ctx, Layer, LayerBuffers, Linear, Param, Shareable, sized};
use crate::kernels::activation::{act_backward, bias_act};
use crate::kernels::conv::Window;
use crate::kernels::matmul::{Mat, column_sums, gemm};

/// Keras' `Conv2DTranspose(filters, kernel_size, strides, padding)`: the adjoint of a convolution,
/// growing `[h, w, in]` to `[(h-1)·s + k, ..]` (`valid`) or `[h·s, ..]` (`same`).
///
/// `geom` is the convolution this one transposes: from the *output* `[oh', ow', filters]` back to
/// the input `[h, w, ·]`. Forward is that convolution's input gradient: one product
/// `x · kernelᵀ` into columns, then col2im; backward is im2col and two products. The kernel is
/// `[kh, kw, filters, in_channels]`, Keras' layout, `glorot_uniform`; the bias zeros.
#[derive(Clone, Debug)]
pub struct ConvTranspose<A: ActivationFn = Linear> {
    /// `[kh, kw, filters, in_channels]`.
    pub kernel: Param,
    /// `[filters]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    geom: Window,
    in_channels: usize,
    buf: ConvTransposeBuffers,
    _act: PhantomData<A>,
}

/// What one application of a [`ConvTranspose`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct ConvTransposeBuffers {
    cols: Vec<f32>,
    out: Vec<f32>,
    pre: Vec<f32>,
    dz: Vec<f32>,
    dcols: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for ConvTransposeBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<A: ActivationFn> ConvTranspose<A> {
    /// A layer whose output is the input of the convolution `geom` (`geom.c` = filters), with
    /// `in_channels` input channels.
    pub fn new(geom: Window, in_channels: usize, use_bias: bool, rng: &mut impl Rng) -> Self {
        let field = geom.kh * geom.kw;
        ConvTranspose {
            kernel: Param::glorot_uniform_shaped(
                &[geom.kh, geom.kw, geom.c, in_channels],
                field * in_channels,
                field * geom.c,
                rng,
            ),
            bias: use_bias.then(|| Param::zeros(&[geom.c])),
            geom,
            in_channels,
            buf: ConvTransposeBuffers::default(),
            _act: PhantomData,
        }
    }
}

impl<A: ActivationFn> Layer for ConvTranspose<A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (g, ic) = (self.geom, self.in_channels);
        let rows = xs[0].len() / ic;
        let n = rows / g.out_positions();
        // cols [rows, patch] = x [rows, in] · kernelᵀ [in, patch], then onto the output.
        let cols = sized(&mut self.buf.cols, rows * g.patch());
        gemm(rows, ic, g.patch(), Mat::n(xs[0]), Mat::t(&self.kernel.value), cols, 0.0);
        let out = sized(&mut self.buf.out, n * g.in_len());
        g.col2im(&self.buf.cols, n, out);
        let pre = (ctx.training && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, n * g.in_len()));
        bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), g.c);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (g, ic) = (self.geom, self.in_channels);
        let rows = xs[0].len() / ic;
        let n = rows / g.out_positions();
        {
            let dz = sized(&mut self.buf.dz, n * g.in_len());
            if opts.fused_output {
                dz.copy_from_slice(dy);
            } else {
                act_backward(A::KIND, &self.buf.out, &self.buf.pre, dy, dz, g.c);
            }
        }
        if let Some(b) = &mut self.bias {
            column_sums(&self.buf.dz, g.c, &mut b.grad, opts.accumulate);
        }
        let dcols = sized(&mut self.buf.dcols, rows * g.patch());
        g.im2col(&self.buf.dz, n, dcols);
        let beta = if opts.accumulate { 1.0 } else { 0.0 };
        // d kernel [patch, in] = dcolsᵀ [patch, rows] · x [rows, in]
        gemm(g.patch(), rows, ic, Mat::t(&self.buf.dcols), Mat::n(xs[0]), &mut self.kernel.grad, beta);
        if opts.input_grad {
            // dx [rows, in] = dcols [rows, patch] · kernel [patch, in]
            let dx = sized(&mut self.buf.dx, rows * ic);
            gemm(rows, g.patch(), ic, Mat::n(&self.buf.dcols), Mat::n(&self.kernel.value), dx, 0.0);
        }
    }

    super::kernel_bias_layer!();
}

impl<A: ActivationFn> Shareable for ConvTranspose<A> {
    type Buffers = ConvTransposeBuffers;
    fn buffers_mut(&mut self) -> &mut ConvTransposeBuffers {
        &mut self.buf
    }
}
