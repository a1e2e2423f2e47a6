//! One row of one step of a cell: the fused LSTM row forward and backward, and a GRU's state mix.

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
pub(super) fn mix(h: &mut [f32], z: &[f32], hh: &[f32], h_prev: Option<&[f32]>) {
    match h_prev {
        Some(hp) => {
            for k in 0..h.len() {
                h[k] = z[k] * hp[k] + (1.0 - z[k]) * hh[k];
            }
        }
        None => (0..h.len()).for_each(|k| h[k] = (1.0 - z[k]) * hh[k]),
    }
}
