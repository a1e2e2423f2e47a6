//! Keras' `MultiHeadAttention(num_heads, key_dim, value_dim, use_bias, output_shape)` applied to
//! `(query, value)` or `(query, value, key)`, with an optional causal mask and Keras'
//! `attention_mask` (`[Tq, Tv]` per sample, 0 where a query step may not attend to a key step),
//! given as the last input.
//!
//! Every projection is one matrix product over the batch; the per-head score and mixing products
//! are strided products on the projected rows, so no head is copied out. Buffers grow to the
//! largest batch and are reused.

use rand::Rng;

use super::chunks::{MAX_CHUNKS, chunks, cut};
use super::{BackwardOpts, Ctx, Initializer, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::fastmath;
use crate::kernels::matmul::{Mat, column_sums, gemm, gemm_small, transpose};
use crate::kernels::parallel;

/// The static configuration of a [`MultiHeadAttention`] layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionConfig {
    /// Query steps.
    pub tq: usize,
    /// Query features.
    pub dq: usize,
    /// Value (and key) steps.
    pub tv: usize,
    /// Value features.
    pub dv: usize,
    /// Key features (the value's when no key is given).
    pub dk: usize,
    /// Keras' `num_heads`.
    pub heads: usize,
    /// Keras' `key_dim`: query and key width per head.
    pub key_dim: usize,
    /// Keras' `value_dim` (`key_dim` by default).
    pub value_dim: usize,
    /// Output features (Keras' `output_shape`; the query's width by default).
    pub out: usize,
    /// Whether the projections have biases.
    pub use_bias: bool,
    /// Query step `i` attends to key steps `0..=i` only.
    pub causal: bool,
    /// Keras' `attention_mask`: the last input is `[Tq, Tv]` per sample, and a query step
    /// attends only to the key steps where it is not 0 (besides the other masks).
    pub attention_mask: bool,
    /// Keras' `dropout` on the attention weights, in training.
    pub dropout: f32,
}

/// Keras' `MultiHeadAttention`: projections `query`, `key`, `value` (kernels `[D, heads, dim]`,
/// biases `[heads, dim]`), scaled dot-product attention per head, and the output projection
/// (`[heads, value_dim, out]`, bias `[out]`), initialised as Keras does (glorot-uniform kernels
/// with Keras' fans for these shapes, zero biases).
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    /// Kernel and bias of each projection: query, key, value, output.
    pub weights: [(Param, Option<Param>); 4],
    cfg: AttentionConfig,
    buf: AttentionBuffers,
}

/// What one application of a [`MultiHeadAttention`] writes.
#[derive(Clone, Debug, Default)]
pub struct AttentionBuffers {
    out: Vec<f32>,
    /// Projections `[n·T, heads·dim]` (the query already scaled by `1/√key_dim`).
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention weights `[n, heads, Tq, Tv]`.
    p: Vec<f32>,
    /// The heads' outputs side by side `[n·Tq, heads·value_dim]`.
    mixed: Vec<f32>,
    dmixed: Vec<f32>,
    dp: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    /// Scratch: one head's keys transposed per chunk.
    kt: Vec<f32>,
    /// With dropout in training: the mask over the attention weights (0 or `1 / (1 - rate)`) and
    /// the weights after it.
    drop: Vec<f32>,
    pd: Vec<f32>,
    /// Input gradients, by input: query, value, key, the attention mask's (zeros).
    dx: [Vec<f32>; 4],
}

impl LayerBuffers for AttentionBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        &self.dx[i]
    }
}

const Q: usize = 0;
const K: usize = 1;
const V: usize = 2;
const O: usize = 3;

impl MultiHeadAttention {
    /// A layer with Keras' initial weights drawn from `rng` (query, key, value, output).
    pub fn new(cfg: AttentionConfig, rng: &mut impl Rng) -> Self {
        let AttentionConfig { dq, dk, dv, heads: h, key_dim: kd, value_dim: vd, out, use_bias, .. } = cfg;
        let mut proj = |shape: &[usize], bias: &[usize]| {
            let mut w = Param::zeros(shape);
            Initializer::GlorotUniform.fill(&mut w, rng);
            (w, use_bias.then(|| Param::zeros(bias)))
        };
        let weights = [
            proj(&[dq, h, kd], &[h, kd]),
            proj(&[dk, h, kd], &[h, kd]),
            proj(&[dv, h, vd], &[h, vd]),
            proj(&[h, vd, out], &[out]),
        ];
        MultiHeadAttention { weights, cfg, buf: AttentionBuffers::default() }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    /// Whether the last input is Keras' `attention_mask` (a `#[kiln::model]` field learns it
    /// from its call).
    pub fn set_mask_input(&mut self, on: bool) {
        self.cfg.attention_mask = on;
    }
}

impl AttentionConfig {
    /// The steps' masks of query, value and key: without a key the third input is the attention
    /// mask, which has none.
    fn step_masks<'m>(&self, masks: [Option<&'m [f32]>; 3], inputs: usize) -> [Option<&'m [f32]>; 3] {
        let [q, v, k] = masks;
        [q, v, if self.attention_mask && inputs < 4 { None } else { k }]
    }

    /// Query, value and key (the value when no key is given), and the attention mask, from a
    /// call's inputs.
    #[allow(clippy::type_complexity)]
    fn inputs<'x>(&self, xs: &[&'x [f32]]) -> (&'x [f32], &'x [f32], &'x [f32], Option<&'x [f32]>) {
        let (data, mask) = match self.attention_mask {
            true => (&xs[..xs.len() - 1], xs.last().copied()),
            false => (xs, None),
        };
        (data[0], data[1], data.get(2).copied().unwrap_or(data[1]), mask)
    }
}

/// `y = x · w + b` over `rows` rows, `w` read as `[inner, cols]`.
fn project(x: &[f32], rows: usize, (w, b): &(Param, Option<Param>), cols: usize, y: &mut Vec<f32>) {
    let inner = w.value.len() / cols;
    let y = sized(y, rows * cols);
    gemm(rows, inner, cols, Mat::n(x), Mat::n(&w.value), y, 0.0);
    if let Some(b) = b {
        y.chunks_exact_mut(cols).for_each(|r| r.iter_mut().zip(&b.value).for_each(|(v, b)| *v += b));
    }
}

/// The gradients of `y = x · w + b` given `dy`: into `w` and `b` (added when `accumulate`), and,
/// when `dx` is given, `dx = dy · wᵀ` (added to it when its flag is set).
fn project_back(
    x: &[f32],
    dy: &[f32],
    rows: usize,
    (w, b): &mut (Param, Option<Param>),
    cols: usize,
    accumulate: bool,
    dx: Option<(&mut Vec<f32>, bool)>,
) {
    let inner = w.value.len() / cols;
    gemm(inner, rows, cols, Mat::t(x), Mat::n(dy), &mut w.grad, if accumulate { 1.0 } else { 0.0 });
    if let Some(b) = b {
        column_sums(dy, cols, &mut b.grad, accumulate);
    }
    if let Some((dx, add)) = dx {
        if !add {
            sized(dx, rows * inner);
        }
        gemm(rows, cols, inner, Mat::n(dy), Mat::t(&w.value), dx, if add { 1.0 } else { 0.0 });
    }
}

impl Layer for MultiHeadAttention {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        // The steps follow the inputs (a `#[kiln::model]` field learns them at its first call).
        if ctx.n > 0 {
            self.cfg.tq = (xs[0].len() / (ctx.n * self.cfg.dq)).max(1);
            self.cfg.tv = (xs[1].len() / (ctx.n * self.cfg.dv)).max(1);
        }
        let AttentionConfig { tq, tv, heads: h, key_dim: kd, value_dim: vd, .. } = self.cfg;
        let n = ctx.n;
        let (xq, xv, xk, explicit) = self.cfg.inputs(xs);
        let step_masks = self.cfg.step_masks(ctx.masks, xs.len());
        let b = &mut self.buf;
        let (hk, hv) = (h * kd, h * vd);
        project(xq, n * tq, &self.weights[Q], hk, &mut b.q);
        let scale = 1.0 / (kd as f32).sqrt();
        b.q.iter_mut().for_each(|v| *v *= scale);
        project(xk, n * tv, &self.weights[K], hk, &mut b.k);
        project(xv, n * tv, &self.weights[V], hv, &mut b.v);
        let p = sized(&mut b.p, n * h * tq * tv);
        let mixed = sized(&mut b.mixed, n * tq * hv);
        // Dropout on the attention weights: the mask drawn in order, whatever the threads.
        let dropping = ctx.training && self.cfg.dropout > 0.0;
        let cells = if dropping { n * h * tq * tv } else { 0 };
        if dropping {
            let (rate, keep) = (self.cfg.dropout, 1.0 / (1.0 - self.cfg.dropout));
            sized(&mut b.drop, cells).iter_mut().for_each(|m| *m = if ctx.rng.uniform() >= rate { keep } else { 0.0 });
        }
        let pd = sized(&mut b.pd, cells);
        // The heads of a batch in chunks of samples (fixed by the batch size) on the threads.
        let ch = chunks(n);
        let (q, k, v, cfg) = (&b.q[..], &b.k[..], &b.v[..], &self.cfg);
        let drop = dropping.then_some(&b.drop[..]);
        {
            let mut p = cut(p, ch, h * tq * tv).into_iter();
            let mut pd = cut(pd, ch, if dropping { h * tq * tv } else { 0 }).into_iter();
            let mut mixed = cut(mixed, ch, tq * hv).into_iter();
            let mut kt = sized(&mut b.kt, MAX_CHUNKS * kd * tv).chunks_mut(kd * tv);
            let mut items: [Option<Attend<'_>>; MAX_CHUNKS] = std::array::from_fn(|c| {
                let item = (
                    ch.0[c],
                    ch.0[c + 1].saturating_sub(ch.0[c]),
                    p.next().unwrap_or_default(),
                    pd.next().unwrap_or_default(),
                    mixed.next().unwrap_or_default(),
                    kt.next().unwrap_or_default(),
                );
                (c < ch.1).then_some(item)
            });
            let parallel = ch.1 > 1 && n * h * tq * tv * (kd + vd) >= PARALLEL_WORK;
            parallel::for_each_mut(&mut items[..ch.1], parallel, |item| {
                if let Some((i0, nc, p, pd, mixed, kt)) = item.take() {
                    attend(cfg, (step_masks, explicit), drop, i0, nc, q, k, v, p, pd, mixed, kt)
                }
            });
        }
        project(&b.mixed, n * tq, &self.weights[O], self.cfg.out, &mut b.out);
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let AttentionConfig { tq, tv, heads: h, key_dim: kd, value_dim: vd, .. } = self.cfg;
        let n = ctx.n;
        let (xq, xv, xk, explicit) = self.cfg.inputs(xs);
        let step_masks = self.cfg.step_masks(ctx.masks, xs.len());
        let (hk, hv) = (h * kd, h * vd);
        let acc = opts.accumulate;
        let b = &mut self.buf;
        let [wq, wk, wv, wo] = &mut self.weights;
        project_back(&b.mixed, dy, n * tq, wo, self.cfg.out, acc, Some((&mut b.dmixed, false)));
        let dq = sized(&mut b.dq, n * tq * hk);
        let dk = sized(&mut b.dk, n * tv * hk);
        let dv = sized(&mut b.dv, n * tv * hv);
        let ch = chunks(n);
        let cfg = &self.cfg;
        let fwd = (&b.q[..], &b.k[..], &b.v[..], &b.p[..], &b.dmixed[..]);
        let dropped = (ctx.training && cfg.dropout > 0.0).then_some((&b.drop[..], &b.pd[..]));
        {
            let mut dq = cut(dq, ch, tq * hk).into_iter();
            let mut dk = cut(dk, ch, tv * hk).into_iter();
            let mut dv = cut(dv, ch, tv * hv).into_iter();
            let mut scratch = sized(&mut b.dp, MAX_CHUNKS * (tq * tv + vd * tv)).chunks_mut(tq * tv + vd * tv);
            let mut items: [Option<AttendBack<'_>>; MAX_CHUNKS] = std::array::from_fn(|c| {
                let item = (
                    ch.0[c],
                    ch.0[c + 1].saturating_sub(ch.0[c]),
                    dq.next().unwrap_or_default(),
                    dk.next().unwrap_or_default(),
                    dv.next().unwrap_or_default(),
                    scratch.next().unwrap_or_default(),
                );
                (c < ch.1).then_some(item)
            });
            let parallel = ch.1 > 1 && n * h * tq * tv * (kd + vd) >= PARALLEL_WORK;
            parallel::for_each_mut(&mut items[..ch.1], parallel, |item| {
                if let Some((i0, nc, dq, dk, dv, s)) = item.take() {
                    attend_back(cfg, (step_masks, explicit), dropped, i0, nc, fwd, dq, dk, dv, s)
                }
            });
        }
        let dq = &mut b.dq;
        // The query was scaled after its projection.
        let scale = 1.0 / (kd as f32).sqrt();
        dq.iter_mut().for_each(|v| *v *= scale);
        let [dxq, dxv, dxk, _] = &mut b.dx;
        let want = opts.input_grad;
        project_back(xq, &b.dq, n * tq, wq, hk, acc, want.then_some((dxq, false)));
        project_back(xv, &b.dv, n * tv, wv, hv, acc, want.then_some((&mut *dxv, false)));
        // Without a key input the key is the value: its gradient adds to the value's.
        let keyed = xs.len() > 2 + usize::from(self.cfg.attention_mask);
        let dxk = if keyed { (dxk, false) } else { (dxv, true) };
        project_back(xk, &b.dk, n * tv, wk, hk, acc, want.then_some(dxk));
        // The attention mask (the last input) is not differentiable: its gradient is zero.
        if let (true, Some(m)) = (want, explicit) {
            sized(&mut b.dx[xs.len() - 1], m.len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        &self.buf.dx[i]
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        const NAMES: [(&str, &str); 4] = [
            ("query_kernel", "query_bias"),
            ("key_kernel", "key_bias"),
            ("value_kernel", "value_bias"),
            ("attention_output_kernel", "attention_output_bias"),
        ];
        for ((kn, bn), (w, b)) in NAMES.iter().zip(&self.weights) {
            f(kn, w);
            if let Some(b) = b {
                f(bn, b);
            }
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for (w, b) in &mut self.weights {
            f(w);
            if let Some(b) = b {
                f(b);
            }
        }
    }
}

/// Per-head work (`n · heads · Tq · Tv · (key_dim + value_dim)`) from which the chunks of a
/// batch (the recurrent layers' chunks: fixed by the batch size, so results do not depend on
/// the threads) run on several threads.
const PARALLEL_WORK: usize = 1 << 18;

/// One chunk's forward work: first sample, samples, and its parts of the attention weights
/// (before and after dropout), of the mixed values, and of the keys' scratch.
type Attend<'a> = (usize, usize, &'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// One chunk's backward work: first sample, samples, its parts of the query, key and value
/// gradients, and scratch.
type AttendBack<'a> = (usize, usize, &'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// Attention weights and mixed values of samples `i0..i0 + nc`, every head: `p` and `mixed` are
/// the chunk's parts, `kt` scratch for one head's keys transposed.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn attend(
    cfg: &AttentionConfig,
    (masks, explicit): ([Option<&[f32]>; 3], Option<&[f32]>),
    drop: Option<&[f32]>,
    i0: usize,
    nc: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &mut [f32],
    pd: &mut [f32],
    mixed: &mut [f32],
    kt: &mut [f32],
) {
    let AttentionConfig { tq, tv, heads: h, key_dim: kd, value_dim: vd, .. } = *cfg;
    let (hk, hv) = (h * kd, h * vd);
    for li in 0..nc {
        let i = i0 + li;
        for hh in 0..h {
            let ph = &mut p[(li * h + hh) * tq * tv..(li * h + hh + 1) * tq * tv];
            transpose(&k[i * tv * hk + hh * kd..], tv, kd, hk, kt);
            gemm_small(tq, kd, tv, &q[i * tq * hk + hh * kd..], (hk, 1), kt, tv, ph, tv, 0.0);
            let masked = masks.iter().any(Option::is_some) || explicit.is_some();
            for (r, row) in ph.chunks_exact_mut(tv).enumerate() {
                if masked {
                    masked_softmax(row, seen(cfg, (masks, explicit), i, r));
                } else {
                    // No mask but the causal one: a softmax over the steps the query sees.
                    let len = if cfg.causal { (r + 1).min(tv) } else { tv };
                    fastmath::softmax_in_place(&mut row[..len]);
                    row[len..].fill(0.0);
                }
            }
            // The weights the values are mixed with: after dropout, in training.
            let used: &[f32] = match drop {
                Some(d) => {
                    let cell = (i * h + hh) * tq * tv;
                    let pdh = &mut pd[(li * h + hh) * tq * tv..(li * h + hh + 1) * tq * tv];
                    pdh.iter_mut().zip(ph.iter().zip(&d[cell..cell + tq * tv])).for_each(|(o, (p, m))| *o = p * m);
                    pdh
                }
                None => ph,
            };
            let vh = &v[i * tv * hv + hh * vd..];
            gemm_small(tq, tv, vd, used, (tv, 1), vh, hv, &mut mixed[li * tq * hv + hh * vd..], hv, 0.0);
        }
    }
}

/// Backward through [`attend`] for samples `i0..i0 + nc`: the gradients of the chunk's
/// projections (`dq` not yet scaled); `scratch` holds one head's `dP` and values transposed.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn attend_back(
    cfg: &AttentionConfig,
    masks: ([Option<&[f32]>; 3], Option<&[f32]>),
    dropped: Option<(&[f32], &[f32])>,
    i0: usize,
    nc: usize,
    (q, k, v, p, dmixed): (&[f32], &[f32], &[f32], &[f32], &[f32]),
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    scratch: &mut [f32],
) {
    let AttentionConfig { tq, tv, heads: h, key_dim: kd, value_dim: vd, .. } = *cfg;
    let (hk, hv) = (h * kd, h * vd);
    let (dp, vt) = scratch.split_at_mut(tq * tv);
    for li in 0..nc {
        let i = i0 + li;
        for hh in 0..h {
            let cell = (i * h + hh) * tq * tv;
            let ph = &p[cell..cell + tq * tv];
            let dm = &dmixed[i * tq * hv + hh * vd..];
            // dP = dMixed_h · V_hᵀ; dV_h = Pᵀ · dMixed_h (P after dropout, which dP then undoes).
            transpose(&v[i * tv * hv + hh * vd..], tv, vd, hv, vt);
            gemm_small(tq, vd, tv, dm, (hv, 1), vt, tv, dp, tv, 0.0);
            let used = dropped.map_or(ph, |(_, pd)| &pd[cell..cell + tq * tv]);
            gemm_small(tv, tq, vd, used, (1, tv), dm, hv, &mut dv[li * tv * hv + hh * vd..], hv, 0.0);
            if let Some((d, _)) = dropped {
                dp.iter_mut().zip(&d[cell..cell + tq * tv]).for_each(|(g, m)| *g *= m);
            }
            // Through the softmax: dS = P ⊙ (dP − Σ dP ⊙ P) per row. A row that sees nothing
            // took no scores (Keras replaces masked scores), so nothing flows back from it.
            let any_mask = masks.0.iter().any(Option::is_some) || masks.1.is_some();
            for (r, (prow, drow)) in ph.chunks_exact(tv).zip(dp.chunks_exact_mut(tv)).enumerate() {
                if any_mask && !(0..tv).any(seen(cfg, masks, i, r)) {
                    drow.fill(0.0);
                    continue;
                }
                let dot: f32 = prow.iter().zip(drow.iter()).map(|(p, d)| p * d).sum();
                drow.iter_mut().zip(prow).for_each(|(d, p)| *d = p * (*d - dot));
            }
            // S = Qs · Kᵀ: dQs = dS · K_h, dK_h = dSᵀ · Qs.
            let kh = &k[i * tv * hk + hh * kd..];
            let qh = &q[i * tq * hk + hh * kd..];
            gemm_small(tq, tv, kd, dp, (tv, 1), kh, hk, &mut dq[li * tq * hk + hh * kd..], hk, 0.0);
            gemm_small(tv, tq, kd, dp, (1, tv), qh, hk, &mut dk[li * tv * hk + hh * kd..], hk, 0.0);
        }
    }
}

/// Keras' attention mask for sample `i`'s query step `r`: whether it sees key step `j` (the
/// query's step is real, the key's and value's steps are real, the explicit mask allows it, and
/// (causal) the key does not come after the query).
#[allow(clippy::type_complexity)]
fn seen<'m>(
    cfg: &AttentionConfig,
    (masks, explicit): ([Option<&'m [f32]>; 3], Option<&'m [f32]>),
    i: usize,
    r: usize,
) -> impl Fn(usize) -> bool + 'm {
    let (tq, tv, causal) = (cfg.tq, cfg.tv, cfg.causal);
    let query = masks[0].is_none_or(|m| m[i * tq + r] != 0.0);
    let allowed = explicit.map(|m| &m[(i * tq + r) * tv..(i * tq + r + 1) * tv]);
    move |j: usize| {
        query
            && (!causal || j <= r)
            && masks[1].is_none_or(|m| m[i * tv + j] != 0.0)
            && masks[2].is_none_or(|m| m[i * tv + j] != 0.0)
            && allowed.is_none_or(|m| m[j] != 0.0)
    }
}

/// Softmax over the entries of `row` that are `seen`; the others get weight 0. A row that sees
/// nothing is uniform over all entries, as in Keras (whose mask adds -1e9 to every score alike).
fn masked_softmax(row: &mut [f32], seen: impl Fn(usize) -> bool) {
    let max = row.iter().enumerate().filter(|(j, _)| seen(*j)).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
        return;
    }
    let mut sum = 0.0;
    for (j, v) in row.iter_mut().enumerate() {
        *v = if seen(j) { fastmath::exp(*v - max) } else { 0.0 };
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

impl Shareable for MultiHeadAttention {
    type Buffers = AttentionBuffers;
    fn buffers_mut(&mut self) -> &mut AttentionBuffers {
        &mut self.buf
    }
}
