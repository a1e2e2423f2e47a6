//! Keras' `Attention` layer (Luong's dot-product attention) and `AdditiveAttention` (Bahdanau's):
//! each query step attends over the value's steps by `softmax(scores)`, `q · kᵀ` (times a learnt
//! scalar `scale` with `use_scale`) or `Σ_d scale_d · tanh(q_d + k_d)` (a learnt `scale` per
//! feature with `use_scale`, Keras' default), and returns the weighted sum of the value's steps.
//! The key is the value unless given. No weights but the scale; masks as Keras: padded value
//! steps (and later steps, with `use_causal_mask`) get no weight, padded query steps output
//! zeros.

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
    /// `AdditiveAttention`: scores `Σ_d scale_d · tanh(q_d + k_d)`, `scale` per feature.
    pub additive: bool,
}

/// Keras' `Attention()([query, value(, key)])` and `AdditiveAttention()(..)`.
#[derive(Clone, Debug)]
pub struct DotAttention {
    /// With `use_scale`: `[]` (dot product, initially 1) or `[d]` (additive, glorot-uniform).
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
    /// A layer for calls of `cfg`'s shapes, its scale drawn from `rng` as Keras does.
    pub fn new(cfg: DotAttentionConfig, rng: &mut impl rand::Rng) -> Self {
        let scale = cfg.use_scale.then(|| match cfg.additive {
            true => Param::glorot_uniform_shaped(&[cfg.d], cfg.d, cfg.d, rng),
            false => {
                let mut p = Param::zeros(&[]);
                p.value[0] = 1.0;
                p
            }
        });
        DotAttention { scale, cfg, buf: DotAttentionBuffers::default() }
    }
}

/// One sample's scores before the mask: `q · kᵀ` (the scalar scale is applied by the caller),
/// or the additive form with its per-feature scale `w`.
fn scores(cfg: &DotAttentionConfig, w: Option<&[f32]>, q: &[f32], k: &[f32], out: &mut [f32]) {
    let DotAttentionConfig { tq, tv, d, .. } = *cfg;
    if !cfg.additive {
        return gemm(tq, d, tv, Mat::n(q), Mat::t(k), out, 0.0);
    }
    for a in 0..tq {
        let qa = &q[a * d..(a + 1) * d];
        for c in 0..tv {
            let kc = &k[c * d..(c + 1) * d];
            out[a * tv + c] = (0..d).map(|j| w.map_or(1.0, |w| w[j]) * (qa[j] + kc[j]).tanh()).sum();
        }
    }
}

impl Layer for DotAttention {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let DotAttentionConfig { tq, tv, d, dv, causal, .. } = self.cfg;
        let (q, v) = (xs[0], xs[1]);
        let k = xs.get(2).copied().unwrap_or(v);
        let s = match (&self.scale, self.cfg.additive) {
            (Some(p), false) => p.value[0],
            _ => 1.0,
        };
        let (qmask, vmask) = (ctx.masks[0], ctx.masks[1]);
        let b = &mut self.buf;
        let w = self.scale.as_ref().map(|p| &p.value[..]);
        let raw = sized(&mut b.raw, ctx.n * tq * tv);
        for i in 0..ctx.n {
            let ri = &mut raw[i * tq * tv..(i + 1) * tq * tv];
            scores(&self.cfg, w, &q[i * tq * d..(i + 1) * tq * d], &k[i * tv * d..(i + 1) * tv * d], ri);
        }
        let p = sized(&mut b.p, ctx.n * tq * tv);
        let out = sized(&mut b.out, ctx.n * tq * dv);
        for i in 0..ctx.n {
            let (ri, pi) = (&b.raw[i * tq * tv..(i + 1) * tq * tv], &mut p[i * tq * tv..(i + 1) * tq * tv]);
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
        let DotAttentionConfig { tq, tv, d, dv, additive, .. } = self.cfg;
        let (q, v) = (xs[0], xs[1]);
        let keyed = xs.len() > 2;
        let k = if keyed { xs[2] } else { v };
        let qmask = ctx.masks[0];
        let DotAttention { scale, buf: b, .. } = self;
        // The scale's values and gradient (zeroed unless accumulating), borrowed apart.
        let (w, mut wg) = match scale {
            Some(Param { value, grad, .. }) => {
                if !opts.accumulate {
                    grad.iter_mut().for_each(|g| *g = 0.0);
                }
                (Some(&value[..]), Some(&mut grad[..]))
            }
            None => (None, None),
        };
        let s = if additive { 1.0 } else { w.map_or(1.0, |w| w[0]) };
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
            let (qi, ki) = (&q[i * tq * d..(i + 1) * tq * d], &k[i * tv * d..(i + 1) * tv * d]);
            let dqi = &mut dq[i * tq * d..(i + 1) * tq * d];
            // The key's gradient; without a key the value is the key too, and adds both.
            let (dki, stride) = match keyed {
                true => (&mut dk[i * tv * d..(i + 1) * tv * d], d),
                false => (&mut dvv[i * tv * dv..(i + 1) * tv * dv], dv),
            };
            if additive {
                // d score / d q_a = d score / d k_c = scale ⊙ (1 − tanh²(q_a + k_c)).
                dqi.fill(0.0);
                if keyed {
                    dki.fill(0.0);
                }
                for a in 0..tq {
                    for c in 0..tv {
                        let g = dp[a * tv + c];
                        for j in 0..d {
                            let t = (qi[a * d + j] + ki[c * d + j]).tanh();
                            let gj = g * w.map_or(1.0, |w| w[j]) * (1.0 - t * t);
                            dqi[a * d + j] += gj;
                            dki[c * stride + j] += gj;
                            if let Some(wg) = wg.as_deref_mut() {
                                wg[j] += g * t;
                            }
                        }
                    }
                }
                continue;
            }
            // The scalar scale's gradient reads the raw scores; the inputs', the scaled ones.
            dscale += dp.iter().zip(ri).map(|(g, r)| (g * r) as f64).sum::<f64>();
            dp.iter_mut().for_each(|g| *g *= s);
            gemm(tq, tv, d, Mat::n(dp), Mat::n(ki), dqi, 0.0);
            gemm(tv, tq, d, Mat::t(dp), Mat::n(qi), dki, if keyed { 0.0 } else { 1.0 });
        }
        if let (false, Some(wg)) = (additive, wg) {
            wg[0] += dscale as f32;
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
