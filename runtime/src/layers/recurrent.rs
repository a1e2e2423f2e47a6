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

/// One chunk's time-major forward buffers (`[T, rows, ..]`).
struct Fwd<'a> {
    /// The chunk's input, time-major `[T, rows, F]`.
    xt: &'a mut [f32],
    gates: &'a mut [f32],
    rec: &'a mut [f32],
    h: &'a mut [f32],
    c: &'a mut [f32],
    tc: &'a mut [f32],
    /// Scratch `[rows, U]`: the state after recurrent dropout.
    hm: &'a mut [f32],
}

/// The same, read by backward.
#[derive(Clone, Copy)]
struct FwdRef<'a> {
    xt: &'a [f32],
    gates: &'a [f32],
    rec: &'a [f32],
    h: &'a [f32],
    c: &'a [f32],
    tc: &'a [f32],
}

/// One chunk's backward buffers: per-step gradients (`[T, rows, ..]`) and per-row scratch.
struct Bwd<'a> {
    dg: &'a mut [f32],
    drec: &'a mut [f32],
    dh: &'a mut [f32],
    dh_next: &'a mut [f32],
    dc: &'a mut [f32],
    dhr: &'a mut [f32],
    /// The chunk's input gradient rows `[nc, T, F]`, if asked for, and its time-major scratch.
    dx: Option<&'a mut [f32]>,
    dxt: &'a mut [f32],
    /// The chunk's rows of the initial state's (and cell's) gradient, if there is one.
    dh0: Option<&'a mut [f32]>,
    dc0: Option<&'a mut [f32]>,
    /// The chunk's share of the kernel, recurrent-kernel and bias gradients.
    dw: &'a mut [f32],
    dr: &'a mut [f32],
    db: &'a mut [f32],
    /// Scratch for recurrent dropout: `[rows, U]`, and `[T, rows, F]` / `[T, rows, U]` copies.
    tmp: &'a mut [f32],
    xq: &'a mut [f32],
    hq: &'a mut [f32],
}

/// What every chunk reads: the configuration, the input `[n, T, F]` (whole batch), the kernels
/// (and in backward the recurrent one transposed), the input bias (row) and a GRU's recurrent bias row.
#[derive(Clone, Copy)]
struct Shared<'a> {
    cfg: RecurrentConfig,
    x: &'a [f32],
    w: &'a [f32],
    rk: &'a [f32],
    rt: &'a [f32],
    wt: &'a [f32],
    in_bias: Option<&'a [f32]>,
    rec_bias: Option<&'a [f32]>,
    /// Keras' mask over the input steps `[n, T]`: a padded step (0) leaves the state as it was.
    mask: Option<&'a [f32]>,
    /// In training with `dropout`, each sample's input mask `[n, F]` (0 or `1 / (1 - rate)`).
    drop: Option<&'a [f32]>,
    /// In training with `recurrent_dropout`: per sample, one input mask per gate `[n, G·F]` (with
    /// `dropout`) and one state mask per gate `[n, G·U]`.
    gate_drop: Option<&'a [f32]>,
    rec_drop: Option<&'a [f32]>,
    /// Keras' `initial_state`: each sample's first state `[n, U]` (and an LSTM's first cell),
    /// in place of zeros.
    h0: Option<&'a [f32]>,
    c0: Option<&'a [f32]>,
}

impl<'a> Shared<'a> {
    /// The state (`c`: the cell) before the first step of samples `i0..i0 + n`: the initial one
    /// given, or `None` for zeros.
    fn initial(&self, c: bool, i0: usize, n: usize) -> Option<&'a [f32]> {
        let u = self.cfg.units;
        if c { self.c0 } else { self.h0 }.map(|s| &s[i0 * u..(i0 + n) * u])
    }

    /// Whether sample `i`'s input step `ti` is padding.
    #[inline]
    fn padded(&self, i: usize, ti: usize) -> bool {
        self.mask.is_some_and(|m| m[i * self.cfg.steps + ti] == 0.0)
    }

    /// `dst[:, gates] += h · R[:, gates]` for samples `i0..i0 + n` (row stride G·U), each gate's
    /// `h` after its recurrent dropout mask when there is one (`hm` is scratch).
    fn recurrent_in(
        &self,
        i0: usize,
        n: usize,
        h: &[f32],
        gates: std::ops::Range<usize>,
        dst: &mut [f32],
        hm: &mut [f32],
    ) {
        let (u, gu) = (self.cfg.units, self.cfg.cell.gates() * self.cfg.units);
        let Some(rd) = self.rec_drop else {
            let w = gates.len() * u;
            return gemm_small(
                n,
                u,
                w,
                h,
                (u, 1),
                &self.rk[gates.start * u..],
                gu,
                &mut dst[gates.start * u..],
                gu,
                1.0,
            );
        };
        for q in gates {
            for i in 0..n {
                let m = &rd[(i0 + i) * gu + q * u..][..u];
                hm[i * u..(i + 1) * u].iter_mut().zip(h[i * u..].iter().zip(m)).for_each(|(o, (h, m))| *o = h * m);
            }
            gemm_small(n, u, u, hm, (u, 1), &self.rk[q * u..], gu, &mut dst[q * u..], gu, 1.0);
        }
    }

    /// `dh (+)= Σ_gates (d_q · R_qᵀ) ⊙ mask_q` for samples `i0..i0 + n`, `d` with row stride G·U
    /// (`tmp` is scratch); `add` keeps what `dh` holds.
    #[allow(clippy::too_many_arguments)]
    fn recurrent_back(
        &self,
        i0: usize,
        n: usize,
        d: &[f32],
        gates: std::ops::Range<usize>,
        dh: &mut [f32],
        tmp: &mut [f32],
        add: bool,
    ) {
        let (u, gu) = (self.cfg.units, self.cfg.cell.gates() * self.cfg.units);
        let Some(rd) = self.rec_drop else {
            let (w, beta) = (gates.len() * u, if add { 1.0 } else { 0.0 });
            return gemm_small(
                n,
                w,
                u,
                &d[gates.start * u..],
                (gu, 1),
                &self.rt[gates.start * u * u..],
                u,
                dh,
                u,
                beta,
            );
        };
        if !add {
            dh.fill(0.0);
        }
        for q in gates {
            gemm_small(n, u, u, &d[q * u..], (gu, 1), &self.rt[q * u * u..], u, tmp, u, 0.0);
            for i in 0..n {
                let m = &rd[(i0 + i) * gu + q * u..][..u];
                let (o, t) = (&mut dh[i * u..(i + 1) * u], &tmp[i * u..(i + 1) * u]);
                o.iter_mut().zip(t.iter().zip(m)).for_each(|(o, (t, m))| *o += t * m);
            }
        }
    }

    /// Sample `i`'s recurrent dropout mask for gate `q`, if any.
    fn rec_mask(&self, i: usize, q: usize) -> Option<&[f32]> {
        let (u, gu) = (self.cfg.units, self.cfg.cell.gates() * self.cfg.units);
        self.rec_drop.map(|rd| &rd[i * gu + q * u..][..u])
    }

    /// Fills `out` (time-major `[T, n, F]`) with samples `i0..i0 + n` of the input, after gate
    /// `q`'s input dropout mask when there is one.
    fn gate_input(&self, i0: usize, n: usize, q: usize, out: &mut [f32]) {
        let (g, nf) = (self.cfg.cell.gates(), self.cfg.features);
        self.steps_into(i0, n, self.gate_drop.map(|d| (&d[q * nf..], g * nf)), out)
    }

    /// Fills `out` (time-major `[T, n, F]`, in processing order) with samples `i0..i0 + n` of
    /// the input, times `mask` when given: `(masks, stride)`, sample `i`'s mask at `i · stride`.
    fn steps_into(&self, i0: usize, n: usize, mask: Option<(&[f32], usize)>, out: &mut [f32]) {
        let RecurrentConfig { steps: t, features: nf, go_backwards, .. } = self.cfg;
        for s in 0..t {
            let ti = if go_backwards { t - 1 - s } else { s };
            for i in 0..n {
                let src = &self.x[((i0 + i) * t + ti) * nf..][..nf];
                let dst = &mut out[(s * n + i) * nf..(s * n + i + 1) * nf];
                match mask {
                    Some((d, stride)) => {
                        let m = &d[(i0 + i) * stride..][..nf];
                        dst.iter_mut().zip(src.iter().zip(m)).for_each(|(o, (x, m))| *o = x * m)
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
    }
}

/// The recurrence over samples `i0..i0 + nc` of the batch.
fn forward_chunk(sh: Shared<'_>, i0: usize, nc: usize, f: Fwd<'_>) {
    let RecurrentConfig {
        cell,
        steps: t,
        features: nf,
        units: u,
        activation: act,
        recurrent_activation: ra,
        go_backwards,
        ..
    } = sh.cfg;
    let gu = cell.gates() * u;
    let (n, rk) = (nc, sh.rk);
    if n == 0 {
        return;
    }
    // The chunk's steps in processing order, then every step's input projection in one product.
    sh.steps_into(i0, n, sh.drop.map(|d| (d, nf)), f.xt);
    match sh.gate_drop {
        None => gemm_rows(t * n, nf, gu, f.xt, (nf, 1), sh.w, gu, f.gates, gu, 0.0),
        // Each gate reads the input through a mask of its own.
        Some(_) => {
            for q in 0..cell.gates() {
                sh.gate_input(i0, n, q, f.xt);
                gemm_strided(t * n, nf, u, f.xt, (nf, 1), &sh.w[q * u..], (gu, 1), &mut f.gates[q * u..], gu, 0.0);
            }
        }
    }
    if let Some(bias) = sh.in_bias {
        f.gates.chunks_exact_mut(gu).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
    }
    for s in 0..t {
        let g = &mut f.gates[s * n * gu..(s + 1) * n * gu];
        let (h_before, h_rest) = f.h.split_at_mut(s * n * u);
        let h_prev = if s > 0 { Some(&h_before[(s - 1) * n * u..]) } else { sh.initial(false, i0, n) };
        let h = &mut h_rest[..n * u];
        match cell {
            Cell::Simple => {
                if let Some(hp) = h_prev {
                    sh.recurrent_in(i0, n, hp, 0..1, g, f.hm);
                }
                act.apply(g);
                h.copy_from_slice(g);
            }
            Cell::Lstm => {
                if let Some(hp) = h_prev {
                    sh.recurrent_in(i0, n, hp, 0..4, g, f.hm);
                }
                let (c_before, c_rest) = f.c.split_at_mut(s * n * u);
                let c_prev = if s > 0 { Some(&c_before[(s - 1) * n * u..]) } else { sh.initial(true, i0, n) };
                let c = &mut c_rest[..n * u];
                let tc = &mut f.tc[s * n * u..(s + 1) * n * u];
                if (act, ra) == (Gate::Tanh, Gate::Sigmoid) {
                    // Keras' default activations: each row's gates, cell and state in one pass.
                    for i in 0..n {
                        let r = i * u..(i + 1) * u;
                        let cp = c_prev.map(|c| &c[r.clone()]);
                        let (ci, ti, hi) = (&mut c[r.clone()], &mut tc[r.clone()], &mut h[r]);
                        lstm_row_forward(&mut g[i * gu..(i + 1) * gu], cp, ci, ti, hi);
                    }
                } else {
                    for i in 0..n {
                        let gi = &mut g[i * gu..(i + 1) * gu];
                        ra.apply(&mut gi[..2 * u]);
                        act.apply(&mut gi[2 * u..3 * u]);
                        ra.apply(&mut gi[3 * u..]);
                        let (ig, rest) = gi.split_at(u);
                        let (fg, cg) = (&rest[..u], &rest[u..2 * u]);
                        let ci = &mut c[i * u..(i + 1) * u];
                        match c_prev {
                            Some(cp) => {
                                let cp = &cp[i * u..(i + 1) * u];
                                for k in 0..u {
                                    ci[k] = fg[k] * cp[k] + ig[k] * cg[k];
                                }
                            }
                            None => (0..u).for_each(|k| ci[k] = ig[k] * cg[k]),
                        }
                    }
                    tc.copy_from_slice(c);
                    act.apply(tc);
                    for i in 0..n {
                        let (og, ti) = (&g[i * gu + 3 * u..(i + 1) * gu], &tc[i * u..(i + 1) * u]);
                        h[i * u..(i + 1) * u].iter_mut().zip(og.iter().zip(ti)).for_each(|(h, (o, t))| *h = o * t);
                    }
                }
            }
            Cell::Gru { reset_after: true } => {
                let rec = &mut f.rec[s * n * gu..(s + 1) * n * gu];
                match sh.rec_bias {
                    Some(rb) => rec.chunks_exact_mut(gu).for_each(|row| row.copy_from_slice(rb)),
                    None => rec.fill(0.0),
                }
                if let Some(hp) = h_prev {
                    sh.recurrent_in(i0, n, hp, 0..3, rec, f.hm);
                }
                for i in 0..n {
                    let (gi, ri) = (&mut g[i * gu..(i + 1) * gu], &rec[i * gu..(i + 1) * gu]);
                    gi[..2 * u].iter_mut().zip(&ri[..2 * u]).for_each(|(g, r)| *g += r);
                    ra.apply(&mut gi[..2 * u]);
                    let (zr, hh) = gi.split_at_mut(2 * u);
                    hh.iter_mut().zip(&zr[u..]).zip(&ri[2 * u..]).for_each(|((h, r), rh)| *h += r * rh);
                    act.apply(hh);
                    mix(&mut h[i * u..(i + 1) * u], &zr[..u], hh, h_prev.map(|hp| &hp[i * u..(i + 1) * u]));
                }
            }
            Cell::Gru { reset_after: false } => {
                if let Some(hp) = h_prev {
                    sh.recurrent_in(i0, n, hp, 0..2, g, f.hm);
                }
                let hr = &mut f.rec[s * n * u..(s + 1) * n * u];
                for i in 0..n {
                    let gi = &mut g[i * gu..(i + 1) * gu];
                    ra.apply(&mut gi[..2 * u]);
                    let hri = &mut hr[i * u..(i + 1) * u];
                    match h_prev {
                        Some(hp) => {
                            hri.iter_mut()
                                .zip(&gi[u..2 * u])
                                .zip(&hp[i * u..(i + 1) * u])
                                .for_each(|((o, r), h)| *o = r * h);
                            if let Some(m) = sh.rec_mask(i0 + i, 2) {
                                hri.iter_mut().zip(m).for_each(|(o, m)| *o *= m);
                            }
                        }
                        None => hri.fill(0.0),
                    }
                }
                if h_prev.is_some() {
                    gemm_small(n, u, u, hr, (u, 1), &rk[2 * u..], gu, &mut g[2 * u..], gu, 1.0);
                }
                for i in 0..n {
                    let (zr, hh) = g[i * gu..(i + 1) * gu].split_at_mut(2 * u);
                    act.apply(hh);
                    mix(&mut h[i * u..(i + 1) * u], &zr[..u], hh, h_prev.map(|hp| &hp[i * u..(i + 1) * u]));
                }
            }
        }
        // A padded step carries the state over (and the output repeats it), as Keras does.
        if sh.mask.is_some() {
            let ti = if go_backwards { t - 1 - s } else { s };
            for i in (0..n).filter(|&i| sh.padded(i0 + i, ti)) {
                match h_prev {
                    Some(hp) => h[i * u..(i + 1) * u].copy_from_slice(&hp[i * u..(i + 1) * u]),
                    None => h[i * u..(i + 1) * u].fill(0.0),
                }
                if cell == Cell::Lstm {
                    let (before, rest) = f.c.split_at_mut(s * n * u);
                    match (s, sh.initial(true, i0, n)) {
                        (0, None) => rest[i * u..(i + 1) * u].fill(0.0),
                        (0, Some(c0)) => rest[i * u..(i + 1) * u].copy_from_slice(&c0[i * u..(i + 1) * u]),
                        _ => rest[i * u..(i + 1) * u].copy_from_slice(&before[(s - 1) * n * u + i * u..][..u]),
                    }
                }
            }
        }
    }
}

crate::infer::cpu::simd_fn! {
    /// One LSTM step of one row with Keras' default activations: the gates `gi` (`[4U]`, i, f,
    /// c, o; pre-activations in, activated out), the cell `c` from the previous one `cp` (none at
    /// the first step), its `tanh` in `tc` and the state `h`; the same operations in the same
    /// order as the general path, so the same bits.
    pub fn lstm_row_forward(gi: &mut [f32], cp: Option<&[f32]>, c: &mut [f32], tc: &mut [f32], h: &mut [f32]) {
        use crate::kernels::fastmath::{sigmoid, tanh};
        let u = c.len();
        let (ig, rest) = gi[..4 * u].split_at_mut(u);
        let (fg, rest) = rest.split_at_mut(u);
        let (cg, og) = rest.split_at_mut(u);
        let (tc, h, fg, cg, og) = (&mut tc[..u], &mut h[..u], &mut fg[..u], &mut cg[..u], &mut og[..u]);
        for k in 0..u {
            let (i, cc) = (sigmoid(ig[k]), tanh(cg[k]));
            (ig[k], cg[k]) = (i, cc);
            c[k] = i * cc;
        }
        if let Some(cp) = cp {
            let cp = &cp[..u];
            for k in 0..u {
                let f = sigmoid(fg[k]);
                fg[k] = f;
                c[k] += f * cp[k];
            }
        } else {
            fg.iter_mut().for_each(|f| *f = sigmoid(*f));
        }
        for k in 0..u {
            let (o, t) = (sigmoid(og[k]), tanh(c[k]));
            (og[k], tc[k], h[k]) = (o, t, o * t);
        }
    }
}

crate::infer::cpu::simd_fn! {
    /// One LSTM row's gate gradients `di` (`[4U]`, Keras' order i, f, c, o) from its activated
    /// gates `gi`, the gradient `dh` reaching its state, the cell's activation `tc` and the
    /// previous cell `cp` (none at the first step), the gradient `dc` from the next step
    /// replaced by this step's; the gates' derivatives as polynomials of their outputs.
    #[allow(clippy::type_complexity)]
    pub fn lstm_row_back(
        gi: &[f32],
        rows: (&[f32], &[f32], Option<&[f32]>),
        dc: &mut [f32],
        di: &mut [f32],
        poly: ([f32; 3], [f32; 3]),
    ) {
        let ((dh, tc, cp), ([a0, a1, a2], [r0, r1, r2])) = (rows, poly);
        let u = dh.len();
        let (ig, rest) = gi[..4 * u].split_at(u);
        let (fg, rest) = rest.split_at(u);
        let (cg, og) = rest.split_at(u);
        let (di_i, rest) = di[..4 * u].split_at_mut(u);
        let (di_f, rest) = rest.split_at_mut(u);
        let (di_c, di_o) = rest.split_at_mut(u);
        let (tc, dc) = (&tc[..u], &mut dc[..u]);
        let (dh, og, cg, fg) = (&dh[..u], &og[..u], &cg[..u], &fg[..u]);
        let (di_o, di_c, di_f) = (&mut di_o[..u], &mut di_c[..u], &mut di_f[..u]);
        for k in 0..u {
            let (i, c, o, t) = (ig[k], cg[k], og[k], tc[k]);
            let d = dh[k] * o * (a0 + t * (a1 + a2 * t)) + dc[k];
            di_o[k] = dh[k] * t * (r0 + o * (r1 + r2 * o));
            di_i[k] = d * c * (r0 + i * (r1 + r2 * i));
            di_c[k] = d * i * (a0 + c * (a1 + a2 * c));
            di_f[k] = d;
            dc[k] = d * fg[k];
        }
        // The forget gate's, `c_prev` being 0 at the first step.
        match cp {
            Some(cp) => {
                let cp = &cp[..u];
                for k in 0..u {
                    let f = fg[k];
                    di_f[k] *= cp[k] * (r0 + f * (r1 + r2 * f));
                }
            }
            None => di_f.fill(0.0),
        }
    }
}

/// A GRU's new state `z ⊙ h₋₁ + (1 − z) ⊙ ĥ` (no `h₋₁` at the first step).
#[inline]
fn mix(h: &mut [f32], z: &[f32], hh: &[f32], h_prev: Option<&[f32]>) {
    match h_prev {
        Some(hp) => {
            for k in 0..h.len() {
                h[k] = z[k] * hp[k] + (1.0 - z[k]) * hh[k];
            }
        }
        None => (0..h.len()).for_each(|k| h[k] = (1.0 - z[k]) * hh[k]),
    }
}

/// The recurrent kernel's gradient `dr (β)= Σ_r h_rᵀ · d_r` over the states `h` (rows of `n`
/// samples, step after step) and the gradients of the steps that read them, which start at row
/// `off` of `dg`, `drec` (GRU) and `rec` (`r ⊙ h₋₁` of a GRU without `reset_after`); each gate's
/// states through its recurrent dropout mask when there is one (`hq` is scratch).
#[allow(clippy::too_many_arguments)]
fn rec_kernel_grad(
    sh: &Shared<'_>,
    i0: usize,
    n: usize,
    (h, off): (&[f32], usize),
    (dg, drec, rec): (&[f32], &[f32], &[f32]),
    hq: &mut [f32],
    dr: &mut [f32],
    beta: f32,
) {
    let (cell, u) = (sh.cfg.cell, sh.cfg.units);
    let (gu, m) = (cell.gates() * u, h.len() / u);
    let hr = || &rec[off * u..(off + m) * u];
    if sh.rec_drop.is_some() {
        // Each gate's recurrent product read the state through its own mask.
        let (src, gates) = match cell {
            Cell::Gru { reset_after: true } => (drec, 0..3),
            Cell::Gru { reset_after: false } => (dg, 0..2),
            _ => (dg, 0..cell.gates()),
        };
        for q in gates {
            for r in 0..m {
                let mq = sh.rec_mask(i0 + r % n, q).unwrap_or_default();
                hq[r * u..(r + 1) * u].iter_mut().zip(h[r * u..].iter().zip(mq)).for_each(|(o, (h, m))| *o = h * m);
            }
            gemm_strided(u, m, u, &hq[..m * u], (1, u), &src[off * gu + q * u..], (gu, 1), &mut dr[q * u..], gu, beta);
        }
        if cell == (Cell::Gru { reset_after: false }) {
            gemm_strided(u, m, u, hr(), (1, u), &dg[off * gu + 2 * u..], (gu, 1), &mut dr[2 * u..], gu, beta);
        }
        return;
    }
    match cell {
        Cell::Simple | Cell::Lstm => gemm_rows(u, m, gu, h, (1, u), &dg[off * gu..], gu, dr, gu, beta),
        Cell::Gru { reset_after: true } => gemm_rows(u, m, gu, h, (1, u), &drec[off * gu..], gu, dr, gu, beta),
        Cell::Gru { reset_after: false } => {
            gemm_strided(u, m, 2 * u, h, (1, u), &dg[off * gu..], (gu, 1), dr, gu, beta);
            gemm_strided(u, m, u, hr(), (1, u), &dg[off * gu + 2 * u..], (gu, 1), &mut dr[2 * u..], gu, beta);
        }
    }
}

/// Backward through time over samples `i0..i0 + nc`: the gradients with respect to each step's
/// pre-activations (input side `dg`, recurrent side `drec` for a GRU).
fn backward_chunk(sh: Shared<'_>, dy: &[f32], i0: usize, nc: usize, f: FwdRef<'_>, mut b: Bwd<'_>) {
    let RecurrentConfig {
        cell,
        steps: t,
        features: nf,
        units: u,
        activation: act,
        recurrent_activation: ra,
        return_sequences,
        go_backwards,
        ..
    } = sh.cfg;
    let (n, gu, rt) = (nc, cell.gates() * u, sh.rt);
    let step_of = |s: usize| if go_backwards { t - 1 - s } else { s };
    b.db.fill(0.0);
    if n == 0 {
        b.dw.fill(0.0);
        b.dr.fill(0.0);
        return;
    }
    // With `return_state`, the final states' gradients start the recursion.
    let (per, seq_len) = (sh.cfg.output_len(), if return_sequences { t * u } else { u });
    b.dh_next.fill(0.0);
    b.dc.fill(0.0);
    if sh.cfg.return_state {
        for i in 0..n {
            let d = &dy[(i0 + i) * per + seq_len..(i0 + i + 1) * per];
            b.dh_next[i * u..(i + 1) * u].copy_from_slice(&d[..u]);
            if cell == Cell::Lstm {
                b.dc[i * u..(i + 1) * u].copy_from_slice(&d[u..2 * u]);
            }
        }
    }
    for s in (0..t).rev() {
        // The gradient reaching this step's state: from the output and from the next step.
        for i in 0..n {
            let from_out = if return_sequences {
                Some(&dy[(i0 + i) * per + s * u..][..u])
            } else if s == t - 1 {
                Some(&dy[(i0 + i) * per..][..u])
            } else {
                None
            };
            let (dh, next) = (&mut b.dh[i * u..(i + 1) * u], &b.dh_next[i * u..(i + 1) * u]);
            match from_out {
                Some(d) => dh.iter_mut().zip(d.iter().zip(next)).for_each(|(o, (a, b))| *o = a + b),
                None => dh.copy_from_slice(next),
            }
        }
        let g = &f.gates[s * n * gu..(s + 1) * n * gu];
        let dgs = &mut b.dg[s * n * gu..(s + 1) * n * gu];
        let h_prev = if s > 0 { Some(&f.h[(s - 1) * n * u..s * n * u]) } else { sh.initial(false, i0, n) };
        // The gradient reaches the state before this step: an earlier step's, or the initial one.
        let back = h_prev.is_some();
        match cell {
            Cell::Simple => {
                match act.df_poly() {
                    Some([p0, p1, p2]) => dgs
                        .iter_mut()
                        .zip(g)
                        .zip(b.dh.iter())
                        .for_each(|((d, &y), &dh)| *d = dh * (p0 + y * (p1 + p2 * y))),
                    None => dgs.iter_mut().zip(g).zip(b.dh.iter()).for_each(|((d, &y), &dh)| *d = dh * act.df(y)),
                }
                if back {
                    sh.recurrent_back(i0, n, dgs, 0..1, b.dh_next, b.tmp, false);
                }
            }
            Cell::Lstm => {
                let c_prev = if s > 0 { Some(&f.c[(s - 1) * n * u..s * n * u]) } else { sh.initial(true, i0, n) };
                let tc = &f.tc[s * n * u..(s + 1) * n * u];
                for i in 0..n {
                    let (gi, di) = (&g[i * gu..(i + 1) * gu], &mut dgs[i * gu..(i + 1) * gu]);
                    if sh.padded(i0 + i, step_of(s)) {
                        // The cell was carried over: its gradient passes on unchanged.
                        continue;
                    }
                    if let (Some(pa), Some(pr)) = (act.df_poly(), ra.df_poly()) {
                        let r = i * u..(i + 1) * u;
                        let (dh, tc, cp) = (&b.dh[r.clone()], &tc[r.clone()], c_prev.map(|c| &c[r]));
                        lstm_row_back(gi, (dh, tc, cp), &mut b.dc[i * u..(i + 1) * u], di, (pa, pr));
                        continue;
                    }
                    for k in 0..u {
                        let j = i * u + k;
                        let (ig, fg, cg, og) = (gi[k], gi[u + k], gi[2 * u + k], gi[3 * u + k]);
                        let dh = b.dh[j];
                        let dc = dh * og * act.df(tc[j]) + b.dc[j];
                        di[3 * u + k] = dh * tc[j] * ra.df(og);
                        di[k] = dc * cg * ra.df(ig);
                        di[u + k] = dc * c_prev.map_or(0.0, |c| c[j]) * ra.df(fg);
                        di[2 * u + k] = dc * ig * act.df(cg);
                        b.dc[j] = dc * fg;
                    }
                }
                if back {
                    sh.recurrent_back(i0, n, dgs, 0..4, b.dh_next, b.tmp, false);
                }
            }
            Cell::Gru { reset_after: true } => {
                let rec = &f.rec[s * n * gu..(s + 1) * n * gu];
                let drec = &mut b.drec[s * n * gu..(s + 1) * n * gu];
                for i in 0..n {
                    let (gi, di, dri) =
                        (&g[i * gu..(i + 1) * gu], &mut dgs[i * gu..(i + 1) * gu], &mut drec[i * gu..(i + 1) * gu]);
                    for k in 0..u {
                        let j = i * u + k;
                        let (z, r, hh) = (gi[k], gi[u + k], gi[2 * u + k]);
                        let dh = b.dh[j];
                        let hp = h_prev.map_or(0.0, |h| h[j]);
                        let dz = dh * (hp - hh) * ra.df(z);
                        let dhh = dh * (1.0 - z) * act.df(hh);
                        let dr = dhh * rec[i * gu + 2 * u + k] * ra.df(r);
                        (di[k], di[u + k], di[2 * u + k]) = (dz, dr, dhh);
                        (dri[k], dri[u + k], dri[2 * u + k]) = (dz, dr, dhh * r);
                        b.dh_next[j] = dh * z;
                    }
                }
                if back {
                    sh.recurrent_back(i0, n, drec, 0..3, b.dh_next, b.tmp, true);
                }
            }
            Cell::Gru { reset_after: false } => {
                for i in 0..n {
                    for k in 0..u {
                        let j = i * u + k;
                        let (z, hh) = (g[i * gu + k], g[i * gu + 2 * u + k]);
                        let dh = b.dh[j];
                        let hp = h_prev.map_or(0.0, |h| h[j]);
                        dgs[i * gu + k] = dh * (hp - hh) * ra.df(z);
                        dgs[i * gu + 2 * u + k] = dh * (1.0 - z) * act.df(hh);
                        b.dh_next[j] = dh * z;
                    }
                }
                // The candidate's recurrent input is r ⊙ h₋₁: its gradient reaches r and h₋₁.
                gemm_small(n, u, u, &dgs[2 * u..], (gu, 1), &rt[2 * u * u..], u, b.dhr, u, 0.0);
                for i in 0..n {
                    for k in 0..u {
                        let j = i * u + k;
                        let r = g[i * gu + u + k];
                        let hp = h_prev.map_or(0.0, |h| h[j]);
                        let m = sh.rec_mask(i0 + i, 2).map_or(1.0, |m| m[k]);
                        dgs[i * gu + u + k] = b.dhr[j] * hp * m * ra.df(r);
                        b.dh_next[j] += b.dhr[j] * r * m;
                    }
                }
                if back {
                    sh.recurrent_back(i0, n, dgs, 0..2, b.dh_next, b.tmp, true);
                }
            }
        }
        // A padded step passed the state through: no gate saw it, its gradient goes straight back.
        if sh.mask.is_some() {
            for i in (0..n).filter(|&i| sh.padded(i0 + i, step_of(s))) {
                dgs[i * gu..(i + 1) * gu].fill(0.0);
                if matches!(cell, Cell::Gru { reset_after: true }) {
                    b.drec[(s * n + i) * gu..(s * n + i + 1) * gu].fill(0.0);
                }
                b.dh_next[i * u..(i + 1) * u].copy_from_slice(&b.dh[i * u..(i + 1) * u]);
            }
        }
        // The bias gradient's share while the step's gradients are in cache.
        if !b.db.is_empty() {
            column_sums(dgs, gu, &mut b.db[..gu], true);
            if cell == (Cell::Gru { reset_after: true }) {
                column_sums(&b.drec[s * n * gu..(s + 1) * n * gu], gu, &mut b.db[gu..], true);
            }
        }
    }
    // The weight gradients over all steps at once: Σ_s x_sᵀ · dg_s and Σ_s h_{s-1}ᵀ · drec_s.
    match sh.gate_drop {
        None => gemm_rows(nf, t * n, gu, f.xt, (1, nf), b.dg, gu, b.dw, gu, 0.0),
        Some(_) => {
            for q in 0..cell.gates() {
                sh.gate_input(i0, n, q, b.xq);
                gemm_strided(nf, t * n, u, b.xq, (1, nf), &b.dg[q * u..], (gu, 1), &mut b.dw[q * u..], gu, 0.0);
            }
        }
    }
    // What reached the state (and cell) before the first step is the initial state's gradient.
    if let Some(d) = b.dh0.as_deref_mut() {
        d.copy_from_slice(b.dh_next);
    }
    if let Some(d) = b.dc0.as_deref_mut() {
        d.copy_from_slice(b.dc);
    }
    // Σ_s h_{s-1}ᵀ · d_s: steps 1.. read the states of the steps before them; step 0 reads the
    // initial state, when one was given (its term added after, in a fixed order).
    let m = (t - 1) * n;
    rec_kernel_grad(&sh, i0, n, (&f.h[..m * u], n), (b.dg, b.drec, f.rec), b.hq, b.dr, 0.0);
    if let Some(h0) = sh.initial(false, i0, n) {
        rec_kernel_grad(&sh, i0, n, (h0, 0), (b.dg, b.drec, f.rec), b.hq, b.dr, 1.0);
    }
    // The input gradient, time-major, then back to the samples' order.
    if let (Some(dx), Some(gd)) = (b.dx.as_deref_mut(), sh.gate_drop) {
        // Per gate through its input mask.
        let g = cell.gates();
        for q in 0..g {
            gemm_strided(t * n, u, nf, &b.dg[q * u..], (gu, 1), &sh.w[q * u..], (1, gu), b.dxt, nf, 0.0);
            for s in 0..t {
                let ti = if go_backwards { t - 1 - s } else { s };
                for i in 0..n {
                    let (src, m) = (&b.dxt[(s * n + i) * nf..][..nf], &gd[(i0 + i) * g * nf + q * nf..][..nf]);
                    let dst = &mut dx[(i * t + ti) * nf..(i * t + ti + 1) * nf];
                    if q == 0 {
                        dst.iter_mut().zip(src.iter().zip(m)).for_each(|(o, (v, m))| *o = v * m);
                    } else {
                        dst.iter_mut().zip(src.iter().zip(m)).for_each(|(o, (v, m))| *o += v * m);
                    }
                }
            }
        }
    } else if let Some(dx) = b.dx {
        gemm_rows(t * n, gu, nf, b.dg, (gu, 1), sh.wt, nf, b.dxt, nf, 0.0);
        for s in 0..t {
            let ti = if go_backwards { t - 1 - s } else { s };
            for i in 0..n {
                let src = &b.dxt[(s * n + i) * nf..(s * n + i + 1) * nf];
                let dst = &mut dx[(i * t + ti) * nf..(i * t + ti + 1) * nf];
                match sh.drop {
                    Some(d) => {
                        dst.iter_mut().zip(src.iter().zip(&d[(i0 + i) * nf..])).for_each(|(o, (g, m))| *o = g * m)
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
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
