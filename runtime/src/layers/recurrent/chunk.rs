//! The views one chunk of samples works on: its forward and backward buffers, and what every
//! chunk reads (the configuration, the input, the kernels, masks and initial states).

use super::*;

/// One chunk's time-major forward buffers (`[T, rows, ..]`).
pub(super) struct Fwd<'a> {
    /// The chunk's input, time-major `[T, rows, F]`.
    pub(super) xt: &'a mut [f32],
    pub(super) gates: &'a mut [f32],
    pub(super) rec: &'a mut [f32],
    pub(super) h: &'a mut [f32],
    pub(super) c: &'a mut [f32],
    pub(super) tc: &'a mut [f32],
    /// Scratch `[rows, U]`: the state after recurrent dropout.
    pub(super) hm: &'a mut [f32],
}

/// The same, read by backward.
#[derive(Clone, Copy)]
pub(super) struct FwdRef<'a> {
    pub(super) xt: &'a [f32],
    pub(super) gates: &'a [f32],
    pub(super) rec: &'a [f32],
    pub(super) h: &'a [f32],
    pub(super) c: &'a [f32],
    pub(super) tc: &'a [f32],
}

/// One chunk's backward buffers: per-step gradients (`[T, rows, ..]`) and per-row scratch.
pub(super) struct Bwd<'a> {
    pub(super) dg: &'a mut [f32],
    pub(super) drec: &'a mut [f32],
    pub(super) dh: &'a mut [f32],
    pub(super) dh_next: &'a mut [f32],
    pub(super) dc: &'a mut [f32],
    pub(super) dhr: &'a mut [f32],
    /// The chunk's input gradient rows `[nc, T, F]`, if asked for, and its time-major scratch.
    pub(super) dx: Option<&'a mut [f32]>,
    pub(super) dxt: &'a mut [f32],
    /// The chunk's rows of the initial state's (and cell's) gradient, if there is one.
    pub(super) dh0: Option<&'a mut [f32]>,
    pub(super) dc0: Option<&'a mut [f32]>,
    /// The chunk's share of the kernel, recurrent-kernel and bias gradients.
    pub(super) dw: &'a mut [f32],
    pub(super) dr: &'a mut [f32],
    pub(super) db: &'a mut [f32],
    /// Scratch for recurrent dropout: `[rows, U]`, and `[T, rows, F]` / `[T, rows, U]` copies.
    pub(super) tmp: &'a mut [f32],
    pub(super) xq: &'a mut [f32],
    pub(super) hq: &'a mut [f32],
}

/// What every chunk reads: the configuration, the input `[n, T, F]` (whole batch), the kernels
/// (and in backward the recurrent one transposed), the input bias (row) and a GRU's recurrent bias row.
#[derive(Clone, Copy)]
pub(super) struct Shared<'a> {
    pub(super) cfg: RecurrentConfig,
    pub(super) x: &'a [f32],
    pub(super) w: &'a [f32],
    pub(super) rk: &'a [f32],
    pub(super) rt: &'a [f32],
    pub(super) wt: &'a [f32],
    pub(super) in_bias: Option<&'a [f32]>,
    pub(super) rec_bias: Option<&'a [f32]>,
    /// Keras' mask over the input steps `[n, T]`: a padded step (0) leaves the state as it was.
    pub(super) mask: Option<&'a [f32]>,
    /// In training with `dropout`, each sample's input mask `[n, F]` (0 or `1 / (1 - rate)`).
    pub(super) drop: Option<&'a [f32]>,
    /// In training with `recurrent_dropout`: per sample, one input mask per gate `[n, G·F]` (with
    /// `dropout`) and one state mask per gate `[n, G·U]`.
    pub(super) gate_drop: Option<&'a [f32]>,
    pub(super) rec_drop: Option<&'a [f32]>,
    /// Keras' `initial_state`: each sample's first state `[n, U]` (and an LSTM's first cell),
    /// in place of zeros.
    pub(super) h0: Option<&'a [f32]>,
    pub(super) c0: Option<&'a [f32]>,
}

impl<'a> Shared<'a> {
    /// The state (`c`: the cell) before the first step of samples `i0..i0 + n`: the initial one
    /// given, or `None` for zeros.
    pub(super) fn initial(&self, c: bool, i0: usize, n: usize) -> Option<&'a [f32]> {
        let u = self.cfg.units;
        if c { self.c0 } else { self.h0 }.map(|s| &s[i0 * u..(i0 + n) * u])
    }

    /// Whether sample `i`'s input step `ti` is padding.
    #[inline]
    pub(super) fn padded(&self, i: usize, ti: usize) -> bool {
        self.mask.is_some_and(|m| m[i * self.cfg.steps + ti] == 0.0)
    }

    /// `dst[:, gates] += h · R[:, gates]` for samples `i0..i0 + n` (row stride G·U), each gate's
    /// `h` after its recurrent dropout mask when there is one (`hm` is scratch).
    pub(super) fn recurrent_in(
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
    pub(super) fn recurrent_back(
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
    pub(super) fn rec_mask(&self, i: usize, q: usize) -> Option<&[f32]> {
        let (u, gu) = (self.cfg.units, self.cfg.cell.gates() * self.cfg.units);
        self.rec_drop.map(|rd| &rd[i * gu + q * u..][..u])
    }

    /// Fills `out` (time-major `[T, n, F]`) with samples `i0..i0 + n` of the input, after gate
    /// `q`'s input dropout mask when there is one.
    pub(super) fn gate_input(&self, i0: usize, n: usize, q: usize, out: &mut [f32]) {
        let (g, nf) = (self.cfg.cell.gates(), self.cfg.features);
        self.steps_into(i0, n, self.gate_drop.map(|d| (&d[q * nf..], g * nf)), out)
    }

    /// Fills `out` (time-major `[T, n, F]`, in processing order) with samples `i0..i0 + n` of
    /// the input, times `mask` when given: `(masks, stride)`, sample `i`'s mask at `i · stride`.
    pub(super) fn steps_into(&self, i0: usize, n: usize, mask: Option<(&[f32], usize)>, out: &mut [f32]) {
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
