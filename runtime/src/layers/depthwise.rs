use std::marker::PhantomData;

use rand::Rng;

use super::{ActivationFn, BackwardOpts, Conv, Ctx, Layer, LayerBuffers, Linear, Param, Shareable, sized};
use crate::kernels::activation::{act_backward, bias_act};
use crate::kernels::conv::Window;
use crate::kernels::matmul::column_sums;

/// Keras' `DepthwiseConv2D(kernel_size, strides, padding, depth_multiplier, dilation_rate)`: each
/// input channel convolved with `depth_multiplier` kernels of its own, output channel
/// `c · depth_multiplier + m`. The kernel is `[kh, kw, channels, depth_multiplier]` (Keras 3's
/// layout and name, `kernel`), `glorot_uniform`; the bias zeros.
#[derive(Clone, Debug)]
pub struct Depthwise<A: ActivationFn = Linear> {
    /// `[kh, kw, channels, depth_multiplier]`.
    pub kernel: Param,
    /// `[channels · depth_multiplier]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    geom: Window,
    multiplier: usize,
    buf: DepthwiseBuffers,
    _act: PhantomData<A>,
}

/// What one application of a [`Depthwise`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct DepthwiseBuffers {
    out: Vec<f32>,
    pre: Vec<f32>,
    dz: Vec<f32>,
    dx: Vec<f32>,
}

impl LayerBuffers for DepthwiseBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl<A: ActivationFn> Depthwise<A> {
    /// A layer over windows `geom` with `multiplier` kernels per channel, initialised as Keras does.
    pub fn new(geom: Window, multiplier: usize, use_bias: bool, rng: &mut impl Rng) -> Self {
        let field = geom.kh * geom.kw;
        let out = geom.c * multiplier;
        Depthwise {
            kernel: Param::glorot_uniform_shaped(
                &[geom.kh, geom.kw, geom.c, multiplier],
                field * geom.c,
                field * out,
                rng,
            ),
            bias: use_bias.then(|| Param::zeros(&[out])),
            geom,
            multiplier,
            buf: DepthwiseBuffers::default(),
            _act: PhantomData,
        }
    }
}

impl<A: ActivationFn> Layer for Depthwise<A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (g, dm) = (self.geom, self.multiplier);
        let (c, oc) = (g.c, g.c * dm);
        let n = xs[0].len() / g.in_len();
        let out = sized(&mut self.buf.out, n * g.out_positions() * oc);
        let k = &self.kernel.value;
        for s in 0..n {
            let sample = &xs[0][s * g.in_len()..(s + 1) * g.in_len()];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let o = &mut out[((s * g.oh + oy) * g.ow + ox) * oc..][..oc];
                    o.fill(0.0);
                    let mut tap = 0;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            if let Some(off) = g.offset(oy, ox, ky, kx) {
                                let (xv, kv) = (&sample[off..off + c], &k[tap * oc..(tap + 1) * oc]);
                                for (j, (o, w)) in o.iter_mut().zip(kv).enumerate() {
                                    *o += xv[j / dm] * w;
                                }
                            }
                            tap += 1;
                        }
                    }
                }
            }
        }
        let rows = n * g.out_positions();
        let pre = (ctx.training && A::KIND.needs_input()).then(|| sized(&mut self.buf.pre, rows * oc));
        bias_act(A::KIND, out, pre, self.bias.as_ref().map(|b| &b.value[..]), oc);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let (g, dm) = (self.geom, self.multiplier);
        let oc = g.c * dm;
        let n = xs[0].len() / g.in_len();
        let rows = n * g.out_positions();
        let dz = sized(&mut self.buf.dz, rows * oc);
        if opts.fused_output {
            dz.copy_from_slice(dy);
        } else {
            act_backward(A::KIND, &self.buf.out, &self.buf.pre, dy, dz, oc);
        }
        if !opts.accumulate {
            self.kernel.grad.fill(0.0);
        }
        if let Some(b) = &mut self.bias {
            column_sums(&self.buf.dz, oc, &mut b.grad, opts.accumulate);
        }
        let dx = sized(&mut self.buf.dx, xs[0].len());
        dx.fill(0.0);
        let (k, dk) = (&self.kernel.value, &mut self.kernel.grad);
        for s in 0..n {
            let sample = &xs[0][s * g.in_len()..(s + 1) * g.in_len()];
            let dxs = &mut dx[s * g.in_len()..(s + 1) * g.in_len()];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let d = &self.buf.dz[((s * g.oh + oy) * g.ow + ox) * oc..][..oc];
                    let mut tap = 0;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            if let Some(off) = g.offset(oy, ox, ky, kx) {
                                for j in 0..oc {
                                    let ch = j / dm;
                                    dk[tap * oc + j] += sample[off + ch] * d[j];
                                    dxs[off + ch] += k[tap * oc + j] * d[j];
                                }
                            }
                            tap += 1;
                        }
                    }
                }
            }
        }
    }

    super::kernel_bias_layer!();
}

impl<A: ActivationFn> Shareable for Depthwise<A> {
    type Buffers = DepthwiseBuffers;
    fn buffers_mut(&mut self) -> &mut DepthwiseBuffers {
        &mut self.buf
    }
}

/// Keras' `SeparableConv2D(filters, kernel_size, strides, padding, depth_multiplier,
/// dilation_rate, activation, use_bias)`: a depthwise convolution (no bias) followed by a 1×1
/// convolution to `filters` channels with the bias and activation. Weights `depthwise_kernel`
/// `[kh, kw, c, m]`, `pointwise_kernel` `[1, 1, c·m, filters]`, `bias`.
#[derive(Clone, Debug)]
pub struct Separable<A: ActivationFn = Linear> {
    depthwise: Depthwise<Linear>,
    pointwise: Conv<A>,
}

impl<A: ActivationFn> Separable<A> {
    /// A layer over windows `geom` (of the depthwise step) with `multiplier` kernels per channel
    /// and `filters` outputs.
    pub fn new(geom: Window, multiplier: usize, filters: usize, use_bias: bool, rng: &mut impl Rng) -> Self {
        let depthwise = Depthwise::new(geom, multiplier, false, rng);
        let point = Window {
            h: geom.oh,
            w: geom.ow,
            c: geom.c * multiplier,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            ph: 0,
            pw: 0,
            oh: geom.oh,
            ow: geom.ow,
        };
        Separable { depthwise, pointwise: Conv::new(point, filters, use_bias, false, rng) }
    }
}

impl<A: ActivationFn> Layer for Separable<A> {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        self.depthwise.forward(xs, ctx);
        self.pointwise.forward(&[self.depthwise.output()], ctx);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let inner = BackwardOpts { input_grad: true, ..opts };
        self.pointwise.backward(&[self.depthwise.output()], dy, ctx, inner);
        let outer = BackwardOpts { fused_output: false, ..opts };
        self.depthwise.backward(xs, self.pointwise.input_grad(0), ctx, outer);
    }

    fn output(&self) -> &[f32] {
        self.pointwise.output()
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        self.depthwise.input_grad(0)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("depthwise_kernel", &self.depthwise.kernel);
        f("pointwise_kernel", &self.pointwise.kernel);
        if let Some(b) = &self.pointwise.bias {
            f("bias", b);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.depthwise.kernel);
        f(&mut self.pointwise.kernel);
        if let Some(b) = &mut self.pointwise.bias {
            f(b);
        }
    }
}
