//! Keras' `SimpleRNN`, `LSTM` and `GRU` over a sequence `[T, F]` per sample, with backward
//! through time over the static length `T`.
//!
//! The input projection of every step is one matrix product (`[n·T, F] · [F, G·U]`); each step
//! then adds its recurrent product (`[n, U] · [U, G·U]`) and applies the gates. Step buffers are
//! time-major (`[T, n, ..]`), so every per-step product reads and writes contiguous rows, and the
//! recurrent kernel's gradient is one product over all steps. Buffers grow to the largest batch
//! and are reused: a steady-state step allocates nothing.

use rand::Rng;

use super::{BackwardOpts, Ctx, Initializer, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::fastmath;
use crate::kernels::matmul::{Mat, column_sums, gemm, gemm_small, gemm_strided};

/// Which recurrence a [`Recurrent`] layer computes (Keras' gate order in each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `h = act(x·W + h₋₁·R + b)`.
    Simple,
    /// Gates `i, f, c, o`: `c = f ⊙ c₋₁ + i ⊙ act(ĉ)`, `h = o ⊙ act(c)`.
    Lstm,
    /// Gates `z, r, h`: `h = z ⊙ h₋₁ + (1 − z) ⊙ ĥ`. With `reset_after` (Keras' default) the reset
    /// gate scales the recurrent product, and the bias has an input row and a recurrent row.
    Gru {
        /// Keras' `reset_after`.
        reset_after: bool,
    },
}

impl Cell {
    /// Gates per unit.
    pub const fn gates(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
        }
    }

    /// Keras' class name.
    pub const fn class(self) -> &'static str {
        match self {
            Cell::Simple => "SimpleRNN",
            Cell::Lstm => "LSTM",
            Cell::Gru { .. } => "GRU",
        }
    }
}

/// An activation a recurrent layer applies, differentiated from its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// `tanh`.
    Tanh,
    /// `sigmoid`.
    Sigmoid,
    /// Keras 3's `hard_sigmoid`: `clip(x / 6 + 1/2, 0, 1)`.
    HardSigmoid,
    /// `relu`.
    Relu,
    /// `linear` (none).
    Linear,
}

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
    /// Read the sequence from its last step to its first (the outputs come in that order).
    pub go_backwards: bool,
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
    /// `x · W + b`, sample-major `[n·T, G·U]`.
    xw: Vec<f32>,
    /// Per step, the activated gates `[T, n, G·U]`.
    gates: Vec<f32>,
    /// GRU: the recurrent product per step `[T, n, 3U]` (with `reset_after`), or `r ⊙ h₋₁`
    /// `[T, n, U]` (without).
    rec: Vec<f32>,
    /// States `[T, n, U]`; LSTM cells and their activation.
    h: Vec<f32>,
    c: Vec<f32>,
    tc: Vec<f32>,
    /// Gradients with respect to the input-side pre-activations `[T, n, G·U]`, the same
    /// sample-major, and (GRU) the recurrent-side ones.
    dg: Vec<f32>,
    dgs: Vec<f32>,
    drec: Vec<f32>,
    dh: Vec<f32>,
    dh_next: Vec<f32>,
    dc: Vec<f32>,
    /// GRU without `reset_after`: the gradient reaching `r ⊙ h₋₁`.
    dhr: Vec<f32>,
    dx: Vec<f32>,
    /// The recurrent kernel transposed `[G·U, U]`, for the per-step products of backward.
    rt: Vec<f32>,
}

impl LayerBuffers for RecurrentBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
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
}

impl Layer for Recurrent {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let RecurrentConfig {
            cell, steps: t, features: f, units: u, activation: act, recurrent_activation: ra, ..
        } = self.cfg;
        let (n, gu) = (ctx.n, cell.gates() * u);
        let rk = &self.recurrent_kernel.value;
        let b = &mut self.buf;
        let xw = sized(&mut b.xw, n * t * gu);
        gemm(n * t, f, gu, Mat::n(xs[0]), Mat::n(&self.kernel.value), xw, 0.0);
        if let Some(bias) = &self.bias {
            let bias = &bias.value[..gu];
            xw.chunks_exact_mut(gu).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
        }
        sized(&mut b.gates, t * n * gu);
        sized(&mut b.h, t * n * u);
        if cell == Cell::Lstm {
            sized(&mut b.c, t * n * u);
            sized(&mut b.tc, t * n * u);
        }
        match cell {
            Cell::Gru { reset_after: true } => sized(&mut b.rec, t * n * gu),
            Cell::Gru { reset_after: false } => sized(&mut b.rec, t * n * u),
            _ => &mut [],
        };
        for s in 0..t {
            let ti = if self.cfg.go_backwards { t - 1 - s } else { s };
            let g = &mut b.gates[s * n * gu..(s + 1) * n * gu];
            for i in 0..n {
                g[i * gu..(i + 1) * gu].copy_from_slice(&b.xw[(i * t + ti) * gu..(i * t + ti + 1) * gu]);
            }
            let (h_before, h_rest) = b.h.split_at_mut(s * n * u);
            let h_prev = (s > 0).then(|| &h_before[(s - 1) * n * u..]);
            let h = &mut h_rest[..n * u];
            match cell {
                Cell::Simple => {
                    if let Some(hp) = h_prev {
                        gemm_small(n, u, u, hp, u, rk, u, g, u, 1.0);
                    }
                    act.apply(g);
                    h.copy_from_slice(g);
                }
                Cell::Lstm => {
                    if let Some(hp) = h_prev {
                        gemm_small(n, u, gu, hp, u, rk, gu, g, gu, 1.0);
                    }
                    let (c_before, c_rest) = b.c.split_at_mut(s * n * u);
                    let c_prev = (s > 0).then(|| &c_before[(s - 1) * n * u..]);
                    let c = &mut c_rest[..n * u];
                    let tc = &mut b.tc[s * n * u..(s + 1) * n * u];
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
                Cell::Gru { reset_after: true } => {
                    let rec = &mut b.rec[s * n * gu..(s + 1) * n * gu];
                    match &self.bias {
                        Some(bias) => {
                            let rb = &bias.value[gu..];
                            rec.chunks_exact_mut(gu).for_each(|row| row.copy_from_slice(rb));
                        }
                        None => rec.fill(0.0),
                    }
                    if let Some(hp) = h_prev {
                        gemm_small(n, u, gu, hp, u, rk, gu, rec, gu, 1.0);
                    }
                    for i in 0..n {
                        let (gi, ri) = (&mut g[i * gu..(i + 1) * gu], &rec[i * gu..(i + 1) * gu]);
                        gi[..2 * u].iter_mut().zip(&ri[..2 * u]).for_each(|(g, r)| *g += r);
                        ra.apply(&mut gi[..2 * u]);
                        let (zr, hh) = gi.split_at_mut(2 * u);
                        hh.iter_mut().zip(&zr[u..]).zip(&ri[2 * u..]).for_each(|((h, r), rh)| *h += r * rh);
                        act.apply(hh);
                        let hi = &mut h[i * u..(i + 1) * u];
                        match h_prev {
                            Some(hp) => {
                                let hp = &hp[i * u..(i + 1) * u];
                                for k in 0..u {
                                    hi[k] = zr[k] * hp[k] + (1.0 - zr[k]) * hh[k];
                                }
                            }
                            None => (0..u).for_each(|k| hi[k] = (1.0 - zr[k]) * hh[k]),
                        }
                    }
                }
                Cell::Gru { reset_after: false } => {
                    if let Some(hp) = h_prev {
                        gemm_small(n, u, 2 * u, hp, u, rk, gu, g, gu, 1.0);
                    }
                    let hr = &mut b.rec[s * n * u..(s + 1) * n * u];
                    for i in 0..n {
                        let gi = &mut g[i * gu..(i + 1) * gu];
                        ra.apply(&mut gi[..2 * u]);
                        let hri = &mut hr[i * u..(i + 1) * u];
                        match h_prev {
                            Some(hp) => hri.iter_mut().zip(&gi[u..2 * u]).zip(&hp[i * u..(i + 1) * u]).for_each(|((o, r), h)| *o = r * h),
                            None => hri.fill(0.0),
                        }
                    }
                    if s > 0 {
                        gemm_small(n, u, u, hr, u, &rk[2 * u..], gu, &mut g[2 * u..], gu, 1.0);
                    }
                    for i in 0..n {
                        let gi = &mut g[i * gu..(i + 1) * gu];
                        let (zr, hh) = gi.split_at_mut(2 * u);
                        act.apply(hh);
                        let hi = &mut h[i * u..(i + 1) * u];
                        match h_prev {
                            Some(hp) => {
                                let hp = &hp[i * u..(i + 1) * u];
                                for k in 0..u {
                                    hi[k] = zr[k] * hp[k] + (1.0 - zr[k]) * hh[k];
                                }
                            }
                            None => (0..u).for_each(|k| hi[k] = (1.0 - zr[k]) * hh[k]),
                        }
                    }
                }
            }
        }
        if self.cfg.return_sequences {
            let out = sized(&mut b.out, n * t * u);
            for s in 0..t {
                for i in 0..n {
                    out[(i * t + s) * u..(i * t + s + 1) * u]
                        .copy_from_slice(&b.h[(s * n + i) * u..(s * n + i + 1) * u]);
                }
            }
        } else {
            let out = sized(&mut b.out, n * u);
            out.copy_from_slice(&b.h[(t - 1) * n * u..t * n * u]);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let RecurrentConfig {
            cell, steps: t, features: f, units: u, activation: act, recurrent_activation: ra, ..
        } = self.cfg;
        let (n, gu) = (ctx.n, cell.gates() * u);
        let rk = &self.recurrent_kernel.value;
        let b = &mut self.buf;
        let rt = sized(&mut b.rt, gu * u);
        for (k, row) in rk.chunks_exact(gu).enumerate() {
            row.iter().enumerate().for_each(|(j, &v)| rt[j * u + k] = v);
        }
        let dg = sized(&mut b.dg, t * n * gu);
        let gru = matches!(cell, Cell::Gru { .. });
        if gru {
            sized(&mut b.drec, t * n * gu);
        }
        sized(&mut b.dh, n * u);
        sized(&mut b.dh_next, n * u).fill(0.0);
        if cell == Cell::Lstm {
            sized(&mut b.dc, n * u).fill(0.0);
        }
        if cell == (Cell::Gru { reset_after: false }) {
            sized(&mut b.dhr, n * u);
        }
        for s in (0..t).rev() {
            // The gradient reaching this step's state: from the output and from the next step.
            for i in 0..n {
                for k in 0..u {
                    let from_out = if self.cfg.return_sequences {
                        dy[(i * t + s) * u + k]
                    } else if s == t - 1 {
                        dy[i * u + k]
                    } else {
                        0.0
                    };
                    b.dh[i * u + k] = from_out + b.dh_next[i * u + k];
                }
            }
            let g = &b.gates[s * n * gu..(s + 1) * n * gu];
            let dgs = &mut dg[s * n * gu..(s + 1) * n * gu];
            let h_prev = (s > 0).then(|| &b.h[(s - 1) * n * u..s * n * u]);
            match cell {
                Cell::Simple => {
                    dgs.iter_mut().zip(g).zip(&b.dh).for_each(|((d, &y), &dh)| *d = dh * act.df(y));
                    if s > 0 {
                        gemm_small(n, u, u, dgs, u, &b.rt, u, &mut b.dh_next, u, 0.0);
                    }
                }
                Cell::Lstm => {
                    let c_prev = (s > 0).then(|| &b.c[(s - 1) * n * u..s * n * u]);
                    let tc = &b.tc[s * n * u..(s + 1) * n * u];
                    for i in 0..n {
                        let (gi, di) = (&g[i * gu..(i + 1) * gu], &mut dgs[i * gu..(i + 1) * gu]);
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
                    if s > 0 {
                        gemm_small(n, gu, u, dgs, gu, &b.rt, u, &mut b.dh_next, u, 0.0);
                    }
                }
                Cell::Gru { reset_after: true } => {
                    let rec = &b.rec[s * n * gu..(s + 1) * n * gu];
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
                    if s > 0 {
                        gemm_small(n, gu, u, drec, gu, &b.rt, u, &mut b.dh_next, u, 1.0);
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
                    gemm_small(n, u, u, &dgs[2 * u..], gu, &b.rt[2 * u * u..], u, &mut b.dhr, u, 0.0);
                    for i in 0..n {
                        for k in 0..u {
                            let j = i * u + k;
                            let r = g[i * gu + u + k];
                            let hp = h_prev.map_or(0.0, |h| h[j]);
                            dgs[i * gu + u + k] = b.dhr[j] * hp * ra.df(r);
                            b.dh_next[j] += b.dhr[j] * r;
                        }
                    }
                    if s > 0 {
                        gemm_small(n, 2 * u, u, dgs, gu, &b.rt, u, &mut b.dh_next, u, 1.0);
                    }
                }
            }
        }
        // Parameter gradients over all steps at once.
        let beta = if opts.accumulate { 1.0 } else { 0.0 };
        let dgs = sized(&mut b.dgs, n * t * gu);
        for s in 0..t {
            let ti = if self.cfg.go_backwards { t - 1 - s } else { s };
            for i in 0..n {
                dgs[(i * t + ti) * gu..(i * t + ti + 1) * gu]
                    .copy_from_slice(&dg[(s * n + i) * gu..(s * n + i + 1) * gu]);
            }
        }
        gemm(f, n * t, gu, Mat::t(xs[0]), Mat::n(dgs), &mut self.kernel.grad, beta);
        let m = (t - 1) * n;
        {
            let rg = &mut self.recurrent_kernel.grad;
            match cell {
                Cell::Simple | Cell::Lstm => gemm(u, m, gu, Mat::t(&b.h[..m * u]), Mat::n(&dg[n * gu..]), rg, beta),
                Cell::Gru { reset_after: true } => {
                    gemm(u, m, gu, Mat::t(&b.h[..m * u]), Mat::n(&b.drec[n * gu..]), rg, beta)
                }
                Cell::Gru { reset_after: false } => {
                    gemm_strided(u, m, 2 * u, &b.h[..m * u], (1, u), &dg[n * gu..], (gu, 1), rg, gu, beta);
                    let hr = &b.rec[n * u..];
                    gemm_strided(u, m, u, hr, (1, u), &dg[n * gu + 2 * u..], (gu, 1), &mut rg[2 * u..], gu, beta);
                }
            }
        }
        if let Some(bias) = &mut self.bias {
            column_sums(dgs, gu, &mut bias.grad[..gu], opts.accumulate);
            if cell == (Cell::Gru { reset_after: true }) {
                column_sums(&b.drec, gu, &mut bias.grad[gu..], opts.accumulate);
            }
        }
        if opts.input_grad {
            let dx = sized(&mut b.dx, n * t * f);
            gemm(n * t, gu, f, Mat::n(dgs), Mat::t(&self.kernel.value), dx, 0.0);
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
