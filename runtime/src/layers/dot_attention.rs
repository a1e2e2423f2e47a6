//! Keras' `Attention` layer (Luong's dot-product attention): each query step attends over the
//! value's steps by `softmax(q · kᵀ)` (times a learnt `scale` with `use_scale`), and returns the
//! weighted sum of the value's steps. The key is the value unless given. No weights but the
//! scale; masks as Keras: padded value steps (and later steps, with `use_causal_mask`) get no
//! weight, padded query steps output zeros.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::matmul::{Mat, gemm};

/// What Keras subtracts from a masked score.
const MASKED: f32 = 1e9;

/// The shapes of one call: `[tq, d]` queries over `[tv, d]` keys and `[tv, dv]` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DotAttentionConfig {
    /// Query steps.
    pub tq: usize,
    /// Value (and key) steps.
    pub tv: usize,
    /// Query (and key) width.
    pub d: usize,
    /// Value width.
    pub dv: usize,
    /// Keras' `use_scale`: a trainable scalar multiplying the scores (initially 1).
    pub use_scale: bool,
    /// Keras' `use_causal_mask`: query step `i` sees value steps `..= i` only.
    pub causal: bool,
}

/// Keras' `Attention()([query, value(, key)])`.
#[derive(Clone, Debug)]
pub struct DotAttention {
    /// `[]`, with `use_scale`.
    pub scale: Option<Param>,
    cfg: DotAttentionConfig,
    buf: DotAttentionBuffers,
}

/// What one application of a [`DotAttention`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct DotAttentionBuffers {
    out: Vec<f32>,
    /// Per sample: the scores before scaling `q · kᵀ`, then the attention weights.
    raw: Vec<f32>,
    p: Vec<f32>,
    /// The gradients of the query, value and key, and scratch for the weights' gradient.
    dq: Vec<f32>,
    dv: Vec<f32>,
    dk: Vec<f32>,
    dp: Vec<f32>,
    dout: Vec<f32>,
}

impl LayerBuffers for DotAttentionBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        match i {
            0 => &self.dq,
            1 => &self.dv,
            _ => &self.dk,
        }
    }
}

impl DotAttention {
    /// A layer for calls of `cfg`'s shapes.
    pub fn new(cfg: DotAttentionConfig) -> Self {
        let scale = cfg.use_scale.then(|| {
            let mut p = Param::zeros(&[]);
            p.value[0] = 1.0;
            p
        });
        DotAttention { scale, cfg, buf: DotAttentionBuffers::default() }
    }
}

impl Layer for DotAttention {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let DotAttentionConfig { tq, tv, d, dv, causal, .. } = self.cfg;
        let (q, v) = (xs[0], xs[1]);
        let k = xs.get(2).copied().unwrap_or(v);
        let s = self.scale.as_ref().map_or(1.0, |p| p.value[0]);
        let (qmask, vmask) = (ctx.masks[0], ctx.masks[1]);
        let b = &mut self.buf;
        let raw = sized(&mut b.raw, ctx.n * tq * tv);
        let p = sized(&mut b.p, ctx.n * tq * tv);
        let out = sized(&mut b.out, ctx.n * tq * dv);
        for i in 0..ctx.n {
            let (ri, pi) = (&mut raw[i * tq * tv..(i + 1) * tq * tv], &mut p[i * tq * tv..(i + 1) * tq * tv]);
            gemm(tq, d, tv, Mat::n(&q[i * tq * d..]), Mat::t(&k[i * tv * d..]), ri, 0.0);
            for a in 0..tq {
                let (row, prow) = (&ri[a * tv..(a + 1) * tv], &mut pi[a * tv..(a + 1) * tv]);
                for (c, (o, r)) in prow.iter_mut().zip(row).enumerate() {
                    let padded = vmask.is_some_and(|m| m[i * tv + c] == 0.0) || (causal && c > a);
                    *o = s * r - if padded { MASKED } else { 0.0 };
                }
                let max = prow.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0.0;
                prow.iter_mut().for_each(|v| {
                    *v = (*v - max).exp();
                    sum += *v;
                });
                prow.iter_mut().for_each(|v| *v /= sum);
            }
            let oi = &mut out[i * tq * dv..(i + 1) * tq * dv];
            gemm(tq, tv, dv, Mat::n(pi), Mat::n(&v[i * tv * dv..]), oi, 0.0);
            if let Some(m) = qmask {
                for a in 0..tq {
                    let keep = m[i * tq + a];
                    oi[a * dv..(a + 1) * dv].iter_mut().for_each(|o| *o *= keep);
                }
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let DotAttentionConfig { tq, tv, d, dv, .. } = self.cfg;
        let (q, v) = (xs[0], xs[1]);
        let keyed = xs.len() > 2;
        let k = if keyed { xs[2] } else { v };
        let s = self.scale.as_ref().map_or(1.0, |p| p.value[0]);
        let qmask = ctx.masks[0];
        let b = &mut self.buf;
        let dq = sized(&mut b.dq, ctx.n * tq * d);
        let dvv = sized(&mut b.dv, ctx.n * tv * dv);
        let dk = sized(&mut b.dk, if keyed { ctx.n * tv * d } else { 0 });
        let dp = sized(&mut b.dp, tq * tv);
        let dout = sized(&mut b.dout, tq * dv);
        let mut dscale = 0.0f64;
        for i in 0..ctx.n {
            let (ri, pi) = (&b.raw[i * tq * tv..(i + 1) * tq * tv], &b.p[i * tq * tv..(i + 1) * tq * tv]);
            dout.copy_from_slice(&dy[i * tq * dv..(i + 1) * tq * dv]);
            if let Some(m) = qmask {
                for a in 0..tq {
                    let keep = m[i * tq + a];
                    dout[a * dv..(a + 1) * dv].iter_mut().for_each(|o| *o *= keep);
                }
            }
            // dV = Pᵀ · dO; dP = dO · Vᵀ, then the softmax's gradient in place.
            gemm(tv, tq, dv, Mat::t(pi), Mat::n(dout), &mut dvv[i * tv * dv..(i + 1) * tv * dv], 0.0);
            gemm(tq, dv, tv, Mat::n(dout), Mat::t(&v[i * tv * dv..]), dp, 0.0);
            for a in 0..tq {
                let (prow, drow) = (&pi[a * tv..(a + 1) * tv], &mut dp[a * tv..(a + 1) * tv]);
                let dot: f32 = prow.iter().zip(drow.iter()).map(|(p, g)| p * g).sum();
                drow.iter_mut().zip(prow).for_each(|(g, p)| *g = p * (*g - dot));
            }
            // The scale's gradient reads the raw scores; the inputs', the scaled ones.
            dscale += dp.iter().zip(ri).map(|(g, r)| (g * r) as f64).sum::<f64>();
            dp.iter_mut().for_each(|g| *g *= s);
            gemm(tq, tv, d, Mat::n(dp), Mat::n(&k[i * tv * d..]), &mut dq[i * tq * d..(i + 1) * tq * d], 0.0);
            let dki = if keyed { &mut dk[i * tv * d..(i + 1) * tv * d] } else { &mut dvv[i * tv * dv..(i + 1) * tv * dv] };
            // Without a key the value is the key too: its gradient adds both.
            gemm(tv, tq, d, Mat::t(dp), Mat::n(&q[i * tq * d..]), dki, if keyed { 0.0 } else { 1.0 });
        }
        if let Some(p) = &mut self.scale {
            let keep = if opts.accumulate { p.grad[0] } else { 0.0 };
            p.grad[0] = keep + dscale as f32;
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        self.buf.input_grad(i)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(p) = &self.scale {
            f("scale", p);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        if let Some(p) = &mut self.scale {
            f(p);
        }
    }
}

impl Shareable for DotAttention {
    type Buffers = DotAttentionBuffers;
    fn buffers_mut(&mut self) -> &mut DotAttentionBuffers {
        &mut self.buf
    }
}
