//! Backward through time for one chunk of samples: each step's gate gradients, the input and
//! initial-state gradients, and the weights' gradients over all steps.

use super::cells::lstm_row_back;
use super::*;

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
// Long because, as `forward_chunk`, it is one reverse loop over the steps with a `match` on the
// cell inside, followed by the products that turn the step gradients into the input, initial
// state and weight gradients; the phases share the chunk's buffers.
pub(super) fn backward_chunk(sh: Shared<'_>, dy: &[f32], i0: usize, nc: usize, f: FwdRef<'_>, mut b: Bwd<'_>) {
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
