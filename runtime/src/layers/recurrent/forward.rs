//! The forward sequence loop of one chunk of samples: each step's recurrent product, then the
//! cell's gates.

use super::cells::{lstm_row_forward, mix};
use super::*;

/// The recurrence over samples `i0..i0 + nc` of the batch.
// Long because it is one loop over the steps whose body is a `match` on the cell (SimpleRNN,
// LSTM, GRU in both reset modes) sharing the step's buffers; each arm is the cell's equations
// in Keras' order, and splitting them would pass a dozen slices to each piece.
pub(super) fn forward_chunk(sh: Shared<'_>, i0: usize, nc: usize, f: Fwd<'_>) {
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
