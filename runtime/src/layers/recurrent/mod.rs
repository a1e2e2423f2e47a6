//! Keras' `SimpleRNN`, `LSTM` and `GRU` over a sequence `[T, F]` per sample, with backward
//! through time over the static length `T`.
//!
//! The input projection of every step is one matrix product (`[n·T, F] · [F, G·U]`); each step
//! then adds its recurrent product (`[n, U] · [U, G·U]`) and applies the gates. Step buffers are
//! time-major (`[T, n, ..]`), so every per-step product reads and writes contiguous rows, and the
//! recurrent kernel's gradient is one product over all steps. Buffers grow to the largest batch
//! and are reused: a steady-state step allocates nothing.

use rand::Rng;

use super::chunks::{MAX_CHUNKS, chunks, cut};
use super::{BackwardOpts, Ctx, Initializer, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::fastmath;
use crate::kernels::matmul::{column_sums, gemm_rows, gemm_small, gemm_strided, transpose};
use crate::kernels::parallel;

/// Per-step work (`T · n · G·U · U`) from which a batch's two chunks run on two threads.
const PARALLEL_WORK: usize = 1 << 20;

pub use crate::infer::{Cell, Gate};

mod backward;
mod cells;
mod chunk;
mod forward;

use backward::backward_chunk;
use chunk::{Bwd, Fwd, FwdRef, Shared};
use forward::forward_chunk;

impl Gate {
    /// Applies the activation to every value, in place (vectorised).
    fn apply(self, v: &mut [f32]) {
        match self {
            Gate::Tanh => fastmath::tanh_slice(v),
            Gate::Sigmoid => fastmath::sigmoid_slice(v),
            Gate::HardSigmoid => v.iter_mut().for_each(|x| *x = (*x / 6.0 + 0.5).clamp(0.0, 1.0)),
            Gate::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Gate::Linear => {}
        }
    }

    /// The derivative as `a + b·y + c·y²` of the output `y`, where it is one (tanh, sigmoid,
    /// linear): loops over it then vectorise.
    fn df_poly(self) -> Option<[f32; 3]> {
        match self {
            Gate::Tanh => Some([1.0, 0.0, -1.0]),
            Gate::Sigmoid => Some([0.0, 1.0, -1.0]),
            Gate::Linear => Some([1.0, 0.0, 0.0]),
            Gate::HardSigmoid | Gate::Relu => None,
        }
    }

    /// The derivative at the input whose output is `y`.
    #[inline]
    fn df(self, y: f32) -> f32 {
        match self {
            Gate::Tanh => 1.0 - y * y,
            Gate::Sigmoid => y * (1.0 - y),
            Gate::HardSigmoid => {
                if y > 0.0 && y < 1.0 {
                    1.0 / 6.0
                } else {
                    0.0
                }
            }
            Gate::Relu => (y > 0.0) as u8 as f32,
            Gate::Linear => 1.0,
        }
    }
}

/// The static configuration of a [`Recurrent`] layer.
#[derive(Clone, Copy, Debug)]
pub struct RecurrentConfig {
    /// The recurrence.
    pub cell: Cell,
    /// Steps per sample.
    pub steps: usize,
    /// Features per step.
    pub features: usize,
    /// Size of the state.
    pub units: usize,
    /// Keras' `activation` (tanh).
    pub activation: Gate,
    /// Keras' `recurrent_activation` (sigmoid; unused by SimpleRNN).
    pub recurrent_activation: Gate,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// Output every step's state `[T, U]`, not only the last `[U]`.
    pub return_sequences: bool,
    /// Keras' `return_state`: after each sample's output, its final state `h` (and an LSTM's
    /// cell `c`), `U` values each, so a sample's output is `[(T or 1) + states, U]`.
    pub return_state: bool,
    /// Read the sequence from its last step to its first (the outputs come in that order).
    pub go_backwards: bool,
    /// Keras' `dropout`: in training, each sample's input features are dropped with this
    /// probability (the kept ones scaled by `1 / (1 - rate)`), one mask for every step and gate
    /// of the sequence, drawn from the model's random stream.
    pub dropout: f32,
    /// Keras' `recurrent_dropout`: in training, the state entering each gate's recurrent product
    /// is dropped with this probability, one mask per sample and gate for the whole sequence. As
    /// in Keras, input dropout then uses one mask per gate too.
    pub recurrent_dropout: f32,
}

impl RecurrentConfig {
    /// The final states `return_state` appends: `h`, and an LSTM's `c`.
    pub fn states(&self) -> usize {
        if self.return_state { self.cell.states() } else { 0 }
    }

    /// Values per sample of the output: every step's state or the last, then the final states.
    pub fn output_len(&self) -> usize {
        (if self.return_sequences { self.steps } else { 1 } + self.states()) * self.units
    }

    /// Which dropout masks a pass uses: one input mask per sample (`dropout` alone), one input
    /// mask per sample and gate (`dropout` with `recurrent_dropout`), state masks per gate
    /// (`recurrent_dropout`). None outside training.
    fn dropout_modes(&self, training: bool) -> (bool, bool, bool) {
        let (input, recurrent) = (training && self.dropout > 0.0, training && self.recurrent_dropout > 0.0);
        (input && !recurrent, input && recurrent, recurrent)
    }
}

/// A recurrent layer (`SimpleRNN`, `LSTM`, `GRU`): weights `kernel [F, G·U]`,
/// `recurrent_kernel [U, G·U]` and `bias` (`[G·U]`, or `[2, 3U]` for a GRU with `reset_after`),
/// initialised as Keras does (glorot-uniform, orthogonal, zeros; an LSTM's forget-gate bias ones).
#[derive(Clone, Debug)]
pub struct Recurrent {
    /// `[F, G·U]`, the input projection of every gate.
    pub kernel: Param,
    /// `[U, G·U]`, the state's projection.
    pub recurrent_kernel: Param,
    /// `[G·U]`, or `[2, 3U]` (input row, recurrent row) for a GRU with `reset_after`.
    pub bias: Option<Param>,
    cfg: RecurrentConfig,
    buf: RecurrentBuffers,
}

/// What one application of a [`Recurrent`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct RecurrentBuffers {
    out: Vec<f32>,
    /// Per step, the activated gates `[T, n, G·U]`.
    gates: Vec<f32>,
    /// GRU: the recurrent product per step `[T, n, 3U]` (with `reset_after`), or `r ⊙ h₋₁`
    /// `[T, n, U]` (without).
    rec: Vec<f32>,
    /// The input, time-major `[T, n, F]` (per chunk), after dropout.
    xt: Vec<f32>,
    /// The input dropout mask `[n, F]` of the last training pass; with recurrent dropout, the
    /// per-gate input masks `[n, G·F]` and state masks `[n, G·U]`, and their scratch.
    drop: Vec<f32>,
    gdrop: Vec<f32>,
    rdrop: Vec<f32>,
    hm: Vec<f32>,
    tmp: Vec<f32>,
    xq: Vec<f32>,
    hq: Vec<f32>,
    /// States `[T, n, U]`; LSTM cells and their activation.
    h: Vec<f32>,
    c: Vec<f32>,
    tc: Vec<f32>,
    /// Gradients with respect to the input-side pre-activations `[T, n, G·U]`, and (GRU) the
    /// recurrent-side ones.
    dg: Vec<f32>,
    drec: Vec<f32>,
    dh: Vec<f32>,
    dh_next: Vec<f32>,
    dc: Vec<f32>,
    /// GRU without `reset_after`: the gradient reaching `r ⊙ h₋₁`.
    dhr: Vec<f32>,
    dx: Vec<f32>,
    dxt: Vec<f32>,
    /// With an initial state, its gradient `[n, U]` (and an LSTM's cell's).
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    /// The recurrent kernel transposed `[G·U, U]`, for the per-step products of backward, and
    /// the kernel transposed `[G·U, F]`, for the input gradient.
    rt: Vec<f32>,
    wt: Vec<f32>,
    /// Each chunk's share of the kernel, recurrent-kernel and bias gradients, one after the
    /// other.
    dw: Vec<f32>,
    dr: Vec<f32>,
    db: Vec<f32>,
}

impl LayerBuffers for RecurrentBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        match i {
            1 => &self.dh0,
            2 => &self.dc0,
            _ => &self.dx,
        }
    }
}

impl Recurrent {
    /// A layer with Keras' initial weights drawn from `rng` (kernel, then recurrent kernel).
    pub fn new(cfg: RecurrentConfig, rng: &mut impl Rng) -> Self {
        let (f, u, g) = (cfg.features, cfg.units, cfg.cell.gates());
        let mut kernel = Param::zeros(&[f, g * u]);
        Initializer::GlorotUniform.fill(&mut kernel, rng);
        let mut recurrent_kernel = Param::zeros(&[u, g * u]);
        Initializer::Orthogonal(1.0).fill(&mut recurrent_kernel, rng);
        let bias = cfg.use_bias.then(|| match cfg.cell {
            Cell::Gru { reset_after: true } => Param::zeros(&[2, g * u]),
            Cell::Lstm => {
                let mut b = Param::zeros(&[g * u]);
                b.value[u..2 * u].fill(1.0);
                b
            }
            _ => Param::zeros(&[g * u]),
        });
        Recurrent { kernel, recurrent_kernel, bias, cfg, buf: RecurrentBuffers::default() }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RecurrentConfig {
        &self.cfg
    }

    /// The same layer reading the sequence the other way (`go_backwards` flipped), as
    /// `Bidirectional` builds its backward direction.
    pub fn reversed(mut self) -> Self {
        self.cfg.go_backwards = !self.cfg.go_backwards;
        self
    }
}

impl Layer for Recurrent {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        // The steps follow the input (a `#[kiln::model]` field learns them at its first call).
        if ctx.n > 0 {
            self.cfg.steps = (xs[0].len() / (ctx.n * self.cfg.features)).max(1);
        }
        let RecurrentConfig { cell, steps: t, units: u, return_sequences, .. } = self.cfg;
        let (n, gu) = (ctx.n, cell.gates() * u);
        let b = &mut self.buf;
        let rec_w = match cell {
            Cell::Gru { reset_after: true } => gu,
            Cell::Gru { reset_after: false } => u,
            _ => 0,
        };
        let lstm_w = if cell == Cell::Lstm { u } else { 0 };
        sized(&mut b.xt, t * n * self.cfg.features);
        sized(&mut b.gates, t * n * gu);
        sized(&mut b.h, t * n * u);
        sized(&mut b.c, t * n * lstm_w);
        sized(&mut b.tc, t * n * lstm_w);
        sized(&mut b.rec, t * n * rec_w);
        // Dropout masks, drawn in sample order (whatever the threads): with recurrent dropout,
        // one input mask and one state mask per sample and gate (Keras' implementation 1); else
        // one input mask per sample.
        let (dropping, gated, recurrent) = self.cfg.dropout_modes(ctx.training);
        let mut draw = |buf: &mut Vec<f32>, len: usize, rate: f32| {
            let keep = 1.0 / (1.0 - rate);
            sized(buf, len).iter_mut().for_each(|m| *m = if ctx.rng.uniform() >= rate { keep } else { 0.0 });
        };
        if dropping {
            draw(&mut b.drop, n * self.cfg.features, self.cfg.dropout);
        }
        if gated {
            draw(&mut b.gdrop, n * cell.gates() * self.cfg.features, self.cfg.dropout);
        }
        if recurrent {
            draw(&mut b.rdrop, n * gu, self.cfg.recurrent_dropout);
        }
        let (in_bias, rec_bias) = match (cell, &self.bias) {
            (Cell::Gru { reset_after: true }, Some(bias)) => (Some(&bias.value[..gu]), Some(&bias.value[gu..])),
            (_, Some(bias)) => (Some(&bias.value[..]), None),
            (_, None) => (None, None),
        };
        let sh = Shared {
            cfg: self.cfg,
            x: xs[0],
            w: &self.kernel.value,
            rk: &self.recurrent_kernel.value,
            rt: &[],
            wt: &[],
            in_bias,
            rec_bias,
            mask: ctx.masks[0],
            drop: dropping.then_some(&b.drop[..]),
            gate_drop: gated.then_some(&b.gdrop[..]),
            rec_drop: recurrent.then_some(&b.rdrop[..]),
            h0: xs.get(1).copied(),
            c0: xs.get(2).copied().filter(|_| cell == Cell::Lstm),
        };
        let ch = chunks(n);
        {
            let mut xt = cut(&mut b.xt, ch, t * self.cfg.features).into_iter();
            let mut gates = cut(&mut b.gates, ch, t * gu).into_iter();
            let mut rec = cut(&mut b.rec, ch, t * rec_w).into_iter();
            let mut h = cut(&mut b.h, ch, t * u).into_iter();
            let mut c = cut(&mut b.c, ch, t * lstm_w).into_iter();
            let mut tc = cut(&mut b.tc, ch, t * lstm_w).into_iter();
            let hm_w = if recurrent { u } else { 0 };
            let mut hm = cut(sized(&mut b.hm, n * hm_w), ch, hm_w).into_iter();
            let mut items: [Option<(usize, usize, Fwd<'_>)>; MAX_CHUNKS] = std::array::from_fn(|k| {
                let fwd = Fwd {
                    xt: xt.next().unwrap_or_default(),
                    gates: gates.next().unwrap_or_default(),
                    rec: rec.next().unwrap_or_default(),
                    h: h.next().unwrap_or_default(),
                    c: c.next().unwrap_or_default(),
                    tc: tc.next().unwrap_or_default(),
                    hm: hm.next().unwrap_or_default(),
                };
                (k < ch.1).then(|| (ch.0[k], ch.0[k + 1] - ch.0[k], fwd))
            });
            parallel::for_each_mut(&mut items[..ch.1], ch.1 > 1 && t * n * gu * u >= PARALLEL_WORK, |item| {
                if let Some((i0, nc, fwd)) = item.take() {
                    forward_chunk(sh, i0, nc, fwd)
                }
            });
        }
        // The outputs, sample-major: every step's state or the last one, then the final states.
        let per = self.cfg.output_len();
        let out = sized(&mut b.out, n * per);
        for (i0, nc) in (0..ch.1).map(|k| (ch.0[k], ch.0[k + 1] - ch.0[k])) {
            let h = &b.h[i0 * t * u..(i0 + nc) * t * u];
            for i in 0..nc {
                let row = &mut out[(i0 + i) * per..(i0 + i + 1) * per];
                let last = ((t - 1) * nc + i) * u;
                let rest = if return_sequences {
                    for s in 0..t {
                        row[s * u..(s + 1) * u].copy_from_slice(&h[(s * nc + i) * u..(s * nc + i + 1) * u]);
                    }
                    &mut row[t * u..]
                } else {
                    row[..u].copy_from_slice(&h[last..last + u]);
                    &mut row[u..]
                };
                if self.cfg.return_state {
                    rest[..u].copy_from_slice(&h[last..last + u]);
                    if cell == Cell::Lstm {
                        rest[u..2 * u].copy_from_slice(&b.c[i0 * t * u + last..][..u]);
                    }
                }
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let RecurrentConfig { cell, steps: t, features: f, units: u, .. } = self.cfg;
        let (n, gu) = (ctx.n, cell.gates() * u);
        let b = &mut self.buf;
        transpose(&self.recurrent_kernel.value, u, gu, gu, sized(&mut b.rt, gu * u));
        let wt_len = if opts.input_grad { gu * f } else { 0 };
        transpose(&self.kernel.value[..wt_len], wt_len / gu, gu, gu, sized(&mut b.wt, wt_len));
        let gru = matches!(cell, Cell::Gru { .. });
        let drec_w = if gru { gu } else { 0 };
        sized(&mut b.dg, t * n * gu);
        sized(&mut b.drec, t * n * drec_w);
        sized(&mut b.dh, n * u);
        sized(&mut b.dh_next, n * u);
        sized(&mut b.dc, n * u);
        sized(&mut b.dhr, n * u);
        let ch = chunks(n);
        let (dropping, gated, recurrent) = self.cfg.dropout_modes(ctx.training);
        let per = |on: bool, len: usize| if on { len } else { 0 };
        sized(&mut b.tmp, n * per(recurrent, u));
        sized(&mut b.xq, n * per(gated, t * f));
        sized(&mut b.hq, n * per(recurrent, t * u));
        sized(&mut b.dw, ch.1 * f * gu);
        sized(&mut b.dr, ch.1 * u * gu);
        let db_w = self.bias.as_ref().map_or(0, |b| b.value.len());
        sized(&mut b.db, ch.1 * db_w);
        sized(&mut b.dx, if opts.input_grad { n * t * f } else { 0 });
        sized(&mut b.dxt, if opts.input_grad { n * t * f } else { 0 });
        let initial = |k: usize| opts.input_grad && xs.len() > k && (k == 1 || cell == Cell::Lstm);
        let (h0_w, c0_w) = (if initial(1) { u } else { 0 }, if initial(2) { u } else { 0 });
        sized(&mut b.dh0, n * h0_w);
        sized(&mut b.dc0, n * c0_w);
        let sh = Shared {
            cfg: self.cfg,
            x: xs[0],
            w: &self.kernel.value,
            rk: &self.recurrent_kernel.value,
            rt: &b.rt,
            wt: &b.wt,
            in_bias: None,
            rec_bias: None,
            mask: ctx.masks[0],
            drop: dropping.then_some(&b.drop[..]),
            gate_drop: gated.then_some(&b.gdrop[..]),
            rec_drop: recurrent.then_some(&b.rdrop[..]),
            h0: xs.get(1).copied(),
            c0: xs.get(2).copied().filter(|_| cell == Cell::Lstm),
        };
        let rec_w = b.rec.len() / (t * n).max(1);
        let lstm_w = b.c.len() / (t * n).max(1);
        let fwd = |i0: usize, nc: usize| FwdRef {
            xt: &b.xt[i0 * t * f..(i0 + nc) * t * f],
            gates: &b.gates[i0 * t * gu..(i0 + nc) * t * gu],
            rec: &b.rec[i0 * t * rec_w..(i0 + nc) * t * rec_w],
            h: &b.h[i0 * t * u..(i0 + nc) * t * u],
            c: &b.c[i0 * t * lstm_w..(i0 + nc) * t * lstm_w],
            tc: &b.tc[i0 * t * lstm_w..(i0 + nc) * t * lstm_w],
        };
        {
            let mut dg = cut(&mut b.dg, ch, t * gu).into_iter();
            let mut drec = cut(&mut b.drec, ch, t * drec_w).into_iter();
            let mut dh = cut(&mut b.dh, ch, u).into_iter();
            let mut dh_next = cut(&mut b.dh_next, ch, u).into_iter();
            let mut dc = cut(&mut b.dc, ch, u).into_iter();
            let mut dhr = cut(&mut b.dhr, ch, u).into_iter();
            let mut dx = cut(&mut b.dx, ch, t * f).into_iter();
            let mut dxt = cut(&mut b.dxt, ch, t * f).into_iter();
            let mut dh0 = cut(&mut b.dh0, ch, h0_w).into_iter();
            let mut dc0 = cut(&mut b.dc0, ch, c0_w).into_iter();
            let mut tmp = cut(&mut b.tmp, ch, per(recurrent, u)).into_iter();
            let mut xq = cut(&mut b.xq, ch, per(gated, t * f)).into_iter();
            let mut hq = cut(&mut b.hq, ch, per(recurrent, t * u)).into_iter();
            let mut dw = b.dw.chunks_mut(f * gu);
            let mut dr = b.dr.chunks_mut(u * gu);
            let mut db = b.db.chunks_mut(db_w.max(1));
            let want_dx = opts.input_grad;
            let mut items: [Option<(usize, usize, FwdRef<'_>, Bwd<'_>)>; MAX_CHUNKS] = std::array::from_fn(|k| {
                let (i0, nc) = (ch.0[k], ch.0[k + 1].saturating_sub(ch.0[k]));
                let bw = Bwd {
                    dg: dg.next().unwrap_or_default(),
                    drec: drec.next().unwrap_or_default(),
                    dh: dh.next().unwrap_or_default(),
                    dh_next: dh_next.next().unwrap_or_default(),
                    dc: dc.next().unwrap_or_default(),
                    dhr: dhr.next().unwrap_or_default(),
                    dx: dx.next().filter(|_| want_dx),
                    dxt: dxt.next().unwrap_or_default(),
                    dh0: dh0.next().filter(|_| h0_w > 0),
                    dc0: dc0.next().filter(|_| c0_w > 0),
                    dw: dw.next().unwrap_or_default(),
                    dr: dr.next().unwrap_or_default(),
                    db: db.next().unwrap_or_default(),
                    tmp: tmp.next().unwrap_or_default(),
                    xq: xq.next().unwrap_or_default(),
                    hq: hq.next().unwrap_or_default(),
                };
                (k < ch.1).then(|| (i0, nc, fwd(i0, nc), bw))
            });
            parallel::for_each_mut(&mut items[..ch.1], ch.1 > 1 && t * n * gu * u >= PARALLEL_WORK, |item| {
                if let Some((i0, nc, f, bw)) = item.take() {
                    backward_chunk(sh, dy, i0, nc, f, bw)
                }
            });
        }
        // The chunks' shares, added in a fixed order.
        let keep = if opts.accumulate { 1.0 } else { 0.0 };
        let (k, r, bias) = (&mut self.kernel.grad, &mut self.recurrent_kernel.grad, self.bias.as_mut());
        for (grad, parts) in [(Some(k), &b.dw), (Some(r), &b.dr), (bias.map(|b| &mut b.grad), &b.db)] {
            let Some(grad) = grad else { continue };
            grad.iter_mut().for_each(|g| *g *= keep);
            for part in parts.chunks_exact(grad.len()) {
                grad.iter_mut().zip(part).for_each(|(g, p)| *g += p);
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    /// Input 0 is the sequence; with Keras' `initial_state`, inputs 1 and 2 are the first state
    /// and (LSTM) cell.
    fn input_grad(&self, i: usize) -> &[f32] {
        self.buf.input_grad(i)
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        f("kernel", &self.kernel);
        f("recurrent_kernel", &self.recurrent_kernel);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.kernel);
        f(&mut self.recurrent_kernel);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}

impl Shareable for Recurrent {
    type Buffers = RecurrentBuffers;
    fn buffers_mut(&mut self) -> &mut RecurrentBuffers {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::cells::lstm_row_forward;
    use super::*;

    /// The one-pass LSTM row gives the bits of the general path (activation slices, then the
    /// cell, its `tanh` and the state), with and without a previous cell.
    #[test]
    fn the_fused_lstm_row_is_the_general_path() {
        let u = 37;
        let pre: Vec<f32> = (0..4 * u).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 90.0).collect();
        let cp: Vec<f32> = (0..u).map(|i| ((i * 31 % 17) as f32 - 8.0) / 3.0).collect();
        for prev in [None, Some(&cp[..])] {
            let (mut g, mut c, mut tc, mut h) = (pre.clone(), vec![0.0; u], vec![0.0; u], vec![0.0; u]);
            lstm_row_forward(&mut g, prev, &mut c, &mut tc, &mut h);
            let mut want = pre.clone();
            Gate::Sigmoid.apply(&mut want[..2 * u]);
            Gate::Tanh.apply(&mut want[2 * u..3 * u]);
            Gate::Sigmoid.apply(&mut want[3 * u..]);
            let want_c: Vec<f32> = (0..u)
                .map(|k| match prev {
                    Some(p) => want[u + k] * p[k] + want[k] * want[2 * u + k],
                    None => want[k] * want[2 * u + k],
                })
                .collect();
            let mut want_tc = want_c.clone();
            Gate::Tanh.apply(&mut want_tc);
            let want_h: Vec<f32> = (0..u).map(|k| want[3 * u + k] * want_tc[k]).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&g), bits(&want));
            assert_eq!(bits(&c), bits(&want_c));
            assert_eq!(bits(&tc), bits(&want_tc));
            assert_eq!(bits(&h), bits(&want_h));
        }
    }
}
