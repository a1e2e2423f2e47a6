//! Sequence layers for one sample: `Embedding`, `SimpleRNN` / `LSTM` / `GRU` (Keras' gate orders)
//! and `Bidirectional`, with their state in the caller's workspace.

use super::cpu::simd_fn;
use super::kernels::Kernel;
use super::math::{sigmoid, tanh};

/// Which recurrence a recurrent layer computes (Keras' gate order in each).
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

    /// Final states `return_state` gives: `h`, and an LSTM's cell `c`.
    pub const fn states(self) -> usize {
        match self {
            Cell::Lstm => 2,
            _ => 1,
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

/// An activation a recurrent layer applies.
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
    /// Applies the gate to every value, in place, with `core` alone (one loop per kind).
    #[inline(always)]
    pub fn apply_core(self, v: &mut [f32]) {
        match self {
            Gate::Tanh => v.iter_mut().for_each(|x| *x = tanh(*x)),
            Gate::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
            Gate::HardSigmoid => v.iter_mut().for_each(|x| *x = (*x / 6.0 + 0.5).clamp(0.0, 1.0)),
            Gate::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Gate::Linear => {}
        }
    }
}

/// How `Bidirectional` combines its two directions (Keras' `merge_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// Side by side: `[.., 2·units]` (Keras' default).
    Concat,
    /// Added.
    Sum,
    /// Multiplied element by element.
    Mul,
    /// Averaged.
    Ave,
}

impl MergeMode {
    /// One row of each direction, `a` forward and `b` backward (`units` values each), merged
    /// into `out` (`2·units` values for `Concat`, else `units`).
    pub fn merge(self, a: &[f32], b: &[f32], out: &mut [f32]) {
        let u = a.len();
        match self {
            MergeMode::Concat => {
                out[..u].copy_from_slice(a);
                out[u..2 * u].copy_from_slice(b);
            }
            MergeMode::Sum => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x + y),
            MergeMode::Mul => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y),
            MergeMode::Ave => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = (x + y) * 0.5),
        }
    }
}

/// A recurrent layer as `recurrent` runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// The recurrence.
    pub cell: Cell,
    /// Steps in a sample.
    pub steps: usize,
    /// Features per step.
    pub features: usize,
    /// Size of the state.
    pub units: usize,
    /// Keras' `activation`.
    pub activation: Gate,
    /// Keras' `recurrent_activation`.
    pub recurrent_activation: Gate,
    /// Output every step's state `[T, U]`, not only the last `[U]`.
    pub return_sequences: bool,
    /// Keras' `return_state`: the final state `h` (and an LSTM's `c`) after the output.
    pub return_state: bool,
    /// Read the sequence from its last step to its first (outputs in that order).
    pub go_backwards: bool,
}

impl Recurrence {
    /// f32 values of workspace `recurrent` needs: gates, the recurrent product, state and cell.
    pub const fn work(&self) -> usize {
        2 * self.cell.gates() * self.units + 2 * self.units
    }

    /// f32 values of the output, the final states `return_state` adds included.
    pub const fn out_len(&self) -> usize {
        let states = if self.return_state { self.cell.states() } else { 0 };
        (if self.return_sequences { self.steps } else { 1 } + states) * self.units
    }
}

/// A recurrent layer's weights as embedded: `kernel [F, G·U]`, `recurrent_kernel [U, G·U]`, and
/// `bias` (`[G·U]`, or `[2, G·U]` for a GRU with `reset_after`).
#[derive(Clone, Copy, Debug)]
pub struct RecurrentWeights<'a> {
    /// The input kernel.
    pub kernel: Kernel<'a>,
    /// The recurrent kernel.
    pub recurrent_kernel: Kernel<'a>,
    /// The bias, if the layer has one.
    pub bias: Option<&'a [f32]>,
}

simd_fn! {
    /// `SimpleRNN`, `LSTM` or `GRU` over one sample `x [T, F]` into `y` (`[T, U]` or `[U]`), with
    /// [`Recurrence::work`] values of workspace. A step whose `mask` is 0 (Keras' masking) carries
    /// the state over, and its output repeats it.
    pub fn recurrent(x: &[f32], w: RecurrentWeights<'_>, r: &Recurrence, mask: Option<&[f32]>, work: &mut [f32], y: &mut [f32]) {
        let (u, gu) = (r.units, r.cell.gates() * r.units);
        let (g, rest) = work.split_at_mut(gu);
        let (rec, rest) = rest.split_at_mut(gu);
        let (h, c) = rest.split_at_mut(u);
        let c = &mut c[..u];
        h.fill(0.0);
        c.fill(0.0);
        let (in_bias, rec_bias) = match (r.cell, w.bias) {
            (Cell::Gru { reset_after: true }, Some(b)) => (Some(&b[..gu]), Some(&b[gu..2 * gu])),
            (_, b) => (b, None),
        };
        let (act, ra) = (r.activation, r.recurrent_activation);
        for s in 0..r.steps {
            let t = if r.go_backwards { r.steps - 1 - s } else { s };
            if mask.is_some_and(|m| m[t] == 0.0) {
                if r.return_sequences {
                    y[s * u..][..u].copy_from_slice(h);
                }
                continue;
            }
            match in_bias {
                Some(b) => g.copy_from_slice(b),
                None => g.fill(0.0),
            }
            w.kernel.rows(&x[t * r.features..][..r.features], 0, gu, 0, g);
            match r.cell {
                Cell::Simple => {
                    w.recurrent_kernel.rows(h, 0, gu, 0, g);
                    act.apply_core(g);
                    h.copy_from_slice(g);
                }
                Cell::Lstm => {
                    w.recurrent_kernel.rows(h, 0, gu, 0, g);
                    ra.apply_core(&mut g[..2 * u]);
                    act.apply_core(&mut g[2 * u..3 * u]);
                    ra.apply_core(&mut g[3 * u..]);
                    for k in 0..u {
                        c[k] = g[u + k] * c[k] + g[k] * g[2 * u + k];
                    }
                    h.copy_from_slice(c);
                    act.apply_core(h);
                    for k in 0..u {
                        h[k] *= g[3 * u + k];
                    }
                }
                Cell::Gru { reset_after: true } => {
                    match rec_bias {
                        Some(b) => rec.copy_from_slice(b),
                        None => rec.fill(0.0),
                    }
                    w.recurrent_kernel.rows(h, 0, gu, 0, rec);
                    for k in 0..2 * u {
                        g[k] += rec[k];
                    }
                    ra.apply_core(&mut g[..2 * u]);
                    for k in 0..u {
                        g[2 * u + k] += g[u + k] * rec[2 * u + k];
                    }
                    act.apply_core(&mut g[2 * u..]);
                    for k in 0..u {
                        h[k] = g[k] * h[k] + (1.0 - g[k]) * g[2 * u + k];
                    }
                }
                Cell::Gru { reset_after: false } => {
                    w.recurrent_kernel.rows(h, 0, gu, 0, &mut g[..2 * u]);
                    ra.apply_core(&mut g[..2 * u]);
                    for k in 0..u {
                        rec[k] = g[u + k] * h[k];
                    }
                    w.recurrent_kernel.rows(&rec[..u], 0, gu, 2 * u, &mut g[2 * u..]);
                    act.apply_core(&mut g[2 * u..]);
                    for k in 0..u {
                        h[k] = g[k] * h[k] + (1.0 - g[k]) * g[2 * u + k];
                    }
                }
            }
            if r.return_sequences {
                y[s * u..][..u].copy_from_slice(h);
            }
        }
        let rest = if r.return_sequences {
            &mut y[r.steps * u..]
        } else {
            y[..u].copy_from_slice(h);
            &mut y[u..]
        };
        if r.return_state {
            rest[..u].copy_from_slice(h);
            if r.cell == Cell::Lstm {
                rest[u..2 * u].copy_from_slice(c);
            }
        }
    }
}

/// `Bidirectional(rnn)`: `r` forwards with the first weights, backwards (its `go_backwards`
/// flipped) with the second, each direction's output put back in time order and merged.
/// Workspace: two outputs and one [`Recurrence::work`].
#[allow(clippy::too_many_arguments)]
pub fn bidirectional(
    x: &[f32],
    (forward, backward): (RecurrentWeights<'_>, RecurrentWeights<'_>),
    r: &Recurrence,
    mode: MergeMode,
    mask: Option<&[f32]>,
    work: &mut [f32],
    y: &mut [f32],
) {
    let n = r.out_len();
    let (a, rest) = work.split_at_mut(n);
    let (b, rest) = rest.split_at_mut(n);
    recurrent(x, forward, r, mask, rest, a);
    let back = Recurrence { go_backwards: !r.go_backwards, ..*r };
    recurrent(x, backward, &back, mask, rest, b);
    let (u, rows) = (r.units, n / r.units);
    let w = if mode == MergeMode::Concat { 2 * u } else { u };
    for i in 0..rows {
        let (af, bf) = (&a[i * u..][..u], &b[(rows - 1 - i) * u..][..u]);
        mode.merge(af, bf, &mut y[i * w..][..w]);
    }
}

/// A token id outside an `Embedding`'s `0..input_dim`: `infer` of a model reading token ids
/// returns it instead of reading out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadId {
    /// Which of the model's inputs held it.
    pub input: usize,
    /// Its position in that input.
    pub position: usize,
    /// The id.
    pub id: i64,
    /// One more than the largest id the Embedding accepts.
    pub bound: usize,
}

impl core::fmt::Display for BadId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "input {}, position {} holds {}, not a token id in 0..{}",
            self.input, self.position, self.id, self.bound
        )
    }
}

/// `Embedding`: row `ids[i]` of `table` (`[input_dim, dim]`) for each id; an id outside
/// `0..input_dim` is the error (input `input`). With `mask_zero`, `mask[i]` says whether id `i`
/// is real (not 0).
pub fn embedding(
    ids: &[i32],
    table: &[f32],
    (dim, input): (usize, usize),
    y: &mut [f32],
    mut mask: Option<&mut [f32]>,
) -> Result<(), BadId> {
    let bound = table.len() / dim.max(1);
    for (position, (&id, out)) in ids.iter().zip(y.chunks_exact_mut(dim)).enumerate() {
        if id < 0 || id as usize >= bound {
            return Err(BadId { input, position, id: id as i64, bound });
        }
        out.copy_from_slice(&table[id as usize * dim..][..dim]);
        if let Some(m) = mask.as_deref_mut() {
            m[position] = (id != 0) as u8 as f32;
        }
    }
    Ok(())
}

/// `Masking(mask_value)`: a row of `features` values all equal to `value` is padding: it is
/// zeroed and its `mask` entry is 0.
pub fn masking(x: &[f32], value: f32, features: usize, y: &mut [f32], mask: &mut [f32]) {
    for ((row, out), m) in x.chunks_exact(features).zip(y.chunks_exact_mut(features)).zip(mask.iter_mut()) {
        let keep = row.iter().any(|&v| v != value);
        *m = keep as u8 as f32;
        out.iter_mut().zip(row).for_each(|(o, &v)| *o = if keep { v } else { 0.0 });
    }
}

/// A `MultiHeadAttention` layer's sizes as `attention` runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attention {
    /// Heads.
    pub heads: usize,
    /// Query and key width per head.
    pub key_dim: usize,
    /// Value width per head.
    pub value_dim: usize,
    /// Steps of the query.
    pub query_steps: usize,
    /// Steps of the value (and the key).
    pub value_steps: usize,
    /// Features of the query, key and value inputs.
    pub features: [usize; 3],
    /// Features of the output.
    pub out_dim: usize,
    /// Whether query step `i` sees only value steps `j ≤ i` (Keras' `use_causal_mask`).
    pub causal: bool,
}

impl Attention {
    /// f32 values of workspace `attention` needs: the three projections, one row of scores and
    /// the heads' outputs.
    pub const fn work(&self) -> usize {
        let (tq, tv, h) = (self.query_steps, self.value_steps, self.heads);
        tq * h * self.key_dim + tv * h * (self.key_dim + self.value_dim) + tv + tq * h * self.value_dim
    }
}

/// A `MultiHeadAttention` layer's weights: each projection's kernel (`[features, heads, dim]`,
/// the output's `[heads, value_dim, out]`) and bias.
#[derive(Clone, Copy, Debug)]
pub struct AttentionWeights<'a> {
    /// Query, key, value and output kernels, in that order (each a `[rows, columns]` matrix:
    /// `[features, heads · dim]`, and `[heads · value_dim, out]` for the output).
    pub kernels: [Kernel<'a>; 4],
    /// Their biases, if the layer has them.
    pub biases: [Option<&'a [f32]>; 4],
}

/// `MultiHeadAttention(query, value, key)` for one sample (pass the value as the key when there
/// is none): projections, scaled dot-product attention per head (softmax over the value steps,
/// causal if asked), the output projection.
/// Masks (Keras' masking) of the query's, the value's and the key's steps, where they have one: a
/// query step that is padding attends to nothing (uniformly to every step, as Keras' -1e9 gives),
/// a padded value or key step is not attended to.
pub fn attention(
    (query, value, key): (&[f32], &[f32], &[f32]),
    w: &AttentionWeights<'_>,
    a: &Attention,
    masks: [Option<&[f32]>; 4],
    work: &mut [f32],
    y: &mut [f32],
) {
    use super::kernels::dense;
    use super::math::{ActKind, exp, sqrt};
    let (tq, tv, h, kd, vd) = (a.query_steps, a.value_steps, a.heads, a.key_dim, a.value_dim);
    let (q, rest) = work.split_at_mut(tq * h * kd);
    let (k, rest) = rest.split_at_mut(tv * h * kd);
    let (v, rest) = rest.split_at_mut(tv * h * vd);
    let (scores, o) = rest.split_at_mut(tv);
    let o = &mut o[..tq * h * vd];
    let [fq, fv, fk] = a.features;
    let linear = ActKind::Linear;
    dense(query, w.kernels[0], w.biases[0], linear, fq, h * kd, q);
    dense(key, w.kernels[1], w.biases[1], linear, fk, h * kd, k);
    dense(value, w.kernels[2], w.biases[2], linear, fv, h * vd, v);
    let scale = 1.0 / sqrt(kd as f32);
    q.iter_mut().for_each(|x| *x *= scale);
    let real = |m: Option<&[f32]>, t: usize| m.is_none_or(|m| m[t] != 0.0);
    for i in 0..tq {
        let steps = if a.causal { (i + 1).min(tv) } else { tv };
        // Keras' attention_mask, `[Tq, Tv]`, beside the steps' masks.
        let allowed = masks[3].map(|m| &m[i * tv..(i + 1) * tv]);
        let seen =
            |j: usize| j < steps && real(masks[0], i) && real(masks[1], j) && real(masks[2], j) && real(allowed, j);
        let any = (0..tv).any(seen);
        for head in 0..h {
            let qi = &q[(i * h + head) * kd..][..kd];
            let mut max = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate() {
                *s = match seen(j) {
                    true => {
                        let kj = &k[(j * h + head) * kd..][..kd];
                        qi.iter().zip(kj).map(|(a, b)| a * b).sum()
                    }
                    false => f32::NEG_INFINITY,
                };
                max = max.max(*s);
            }
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                // A row that sees nothing is uniform over every step.
                *s = match (any, *s == f32::NEG_INFINITY) {
                    (false, _) => 1.0,
                    (true, true) => 0.0,
                    (true, false) => exp(*s - max),
                };
                sum += *s;
            }
            let oi = &mut o[(i * h + head) * vd..][..vd];
            oi.fill(0.0);
            for (j, s) in scores.iter().enumerate() {
                let p = s / sum;
                oi.iter_mut().zip(&v[(j * h + head) * vd..][..vd]).for_each(|(o, v)| *o += p * v);
            }
        }
    }
    dense(o, w.kernels[3], w.biases[3], linear, h * vd, a.out_dim, y);
}
