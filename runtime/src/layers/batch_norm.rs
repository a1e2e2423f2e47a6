use std::ops::Range;

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Param, Shareable, sized};
use crate::kernels::parallel;

/// Rows per part of the batch statistics' sums: the parts depend only on the row count (never on
/// the threads), and their sums are added pairwise (`kernels::pairwise`), so results do not
/// depend on the threads and lose about 64 + log₂(parts) roundings rather than one per row.
const PART_ROWS: usize = 64;

/// Work (`rows · channels`) from which the passes over the rows use every thread.
const PARALLEL_VALUES: usize = 1 << 15;

/// `out = Σ_parts acc(part)`, where `acc(rows, a)` adds rows `rows`' contributions to `a`
/// (zeroed first): the parts of [`PART_ROWS`] rows on the threads, their sums added pairwise.
fn part_sums(rows: usize, parts_buf: &mut Vec<f32>, out: &mut [f32], acc: impl Fn(Range<usize>, &mut [f32]) + Sync) {
    let (w, parts) = (out.len(), rows.div_ceil(PART_ROWS).max(1));
    let partial = sized(parts_buf, parts * w);
    let threads = if rows * w >= PARALLEL_VALUES { parallel::threads() } else { 1 };
    parallel::for_runs(parts, threads, [(&mut partial[..], w)], |p0, _, [a]| {
        for (k, a) in a.chunks_exact_mut(w).enumerate() {
            a.fill(0.0);
            let p = p0 + k;
            acc(p * PART_ROWS..((p + 1) * PART_ROWS).min(rows), a);
        }
    });
    out.copy_from_slice(crate::kernels::pairwise::tree_sum(partial, w));
}

/// Keras' `BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True)`:
/// each channel of the last axis normalised over every other axis and the batch.
///
/// In training it uses the batch's mean and (biased) variance and moves the moving statistics
/// towards them (`moving = moving · momentum + batch · (1 - momentum)`); in inference it uses the
/// moving statistics. These are weights of role [`Role::State`](super::Role::State): saved and
/// loaded, counted as non-trainable, never touched by an optimizer. As in Keras 3, a frozen layer
/// (`set_trainable(false)`) runs in inference mode even while the rest of the model trains.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// `[channels]`, the learned scale (`scale=True`).
    pub gamma: Option<Param>,
    /// `[channels]`, the learned offset (`center=True`).
    pub beta: Option<Param>,
    /// `[channels]`, state.
    pub moving_mean: Param,
    /// `[channels]`, state.
    pub moving_variance: Param,
    channels: usize,
    momentum: f32,
    epsilon: f32,
    frozen: bool,
    buf: BatchNormBuffers,
}

/// What one application of a [`BatchNorm`] layer writes.
#[derive(Clone, Debug, Default)]
pub struct BatchNormBuffers {
    out: Vec<f32>,
    /// The normalised input, `(x - mean) / sqrt(var + eps)`.
    xhat: Vec<f32>,
    /// Per channel: the mean and `1 / sqrt(var + eps)` the last forward pass used.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Whether the last forward pass used batch statistics.
    batch_stats: bool,
    /// Per channel, in backward: Σ dy, then Σ dy · xhat.
    sums: Vec<f32>,
    dx: Vec<f32>,
    /// Per channel: gamma (or ones) and beta (or zeros); the parts' partial sums.
    scale: Vec<f32>,
    shift: Vec<f32>,
    parts: Vec<f32>,
}

impl LayerBuffers for BatchNormBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

impl BatchNorm {
    /// A layer over `channels` channels with Keras' initial values (gamma ones, beta zeros, moving
    /// mean zeros, moving variance ones).
    pub fn new(channels: usize, momentum: f32, epsilon: f32, center: bool, scale: bool) -> Self {
        let mut gamma = Param::zeros(&[channels]);
        gamma.value.fill(1.0);
        BatchNorm {
            gamma: scale.then_some(gamma),
            beta: center.then(|| Param::zeros(&[channels])),
            moving_mean: Param::state(&[channels], 0.0),
            moving_variance: Param::state(&[channels], 1.0).non_negative(),
            channels,
            momentum,
            epsilon,
            frozen: false,
            buf: BatchNormBuffers::default(),
        }
    }
}

impl Layer for BatchNorm {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, c) = (xs[0], self.channels);
        let rows = x.len() / c;
        let b = &mut self.buf;
        sized(&mut b.mean, c);
        sized(&mut b.inv_std, c);
        b.batch_stats = ctx.training && !self.frozen;
        if b.batch_stats {
            let row_range = |r: Range<usize>| &x[r.start * c..r.end * c];
            part_sums(rows, &mut b.parts, &mut b.mean, |r, a| {
                for row in row_range(r).chunks_exact(c) {
                    a.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
            });
            let inv_rows = 1.0 / rows.max(1) as f32;
            b.mean.iter_mut().for_each(|m| *m *= inv_rows);
            // The variance is gathered in inv_std, then turned into 1 / sqrt(var + eps).
            let mean = &b.mean;
            part_sums(rows, &mut b.parts, &mut b.inv_std, |r, a| {
                for row in row_range(r).chunks_exact(c) {
                    for ((v, m), x) in a.iter_mut().zip(mean).zip(row) {
                        *v += (x - m) * (x - m);
                    }
                }
            });
            let m = self.momentum;
            for ch in 0..c {
                let var = b.inv_std[ch] * inv_rows;
                self.moving_mean.value[ch] = self.moving_mean.value[ch] * m + b.mean[ch] * (1.0 - m);
                self.moving_variance.value[ch] = self.moving_variance.value[ch] * m + var * (1.0 - m);
                b.inv_std[ch] = 1.0 / (var + self.epsilon).sqrt();
            }
        } else {
            b.mean.copy_from_slice(&self.moving_mean.value);
            for (i, v) in b.inv_std.iter_mut().zip(&self.moving_variance.value) {
                *i = 1.0 / (v + self.epsilon).sqrt();
            }
        }
        let scale = sized(&mut b.scale, c);
        match &self.gamma {
            Some(g) => scale.copy_from_slice(&g.value),
            None => scale.fill(1.0),
        }
        let shift = sized(&mut b.shift, c);
        match &self.beta {
            Some(be) => shift.copy_from_slice(&be.value),
            None => shift.fill(0.0),
        }
        sized(&mut b.xhat, x.len());
        sized(&mut b.out, x.len());
        let (mean, inv_std, scale, shift) = (&b.mean[..], &b.inv_std[..], &b.scale[..], &b.shift[..]);
        let threads = if x.len() >= PARALLEL_VALUES { parallel::threads() } else { 1 };
        parallel::for_runs(rows, threads, [(&mut b.xhat[..], c), (&mut b.out[..], c)], |r0, nr, [xhat, out]| {
            let xr = &x[r0 * c..(r0 + nr) * c];
            for ((xr, hr), or) in xr.chunks_exact(c).zip(xhat.chunks_exact_mut(c)).zip(out.chunks_exact_mut(c)) {
                for ch in 0..c {
                    let h = (xr[ch] - mean[ch]) * inv_std[ch];
                    hr[ch] = h;
                    or[ch] = h * scale[ch] + shift[ch];
                }
            }
        });
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        let c = self.channels;
        let rows = (xs[0].len() / c).max(1);
        let b = &mut self.buf;
        let xhat = &b.xhat[..];
        part_sums(rows, &mut b.parts, sized(&mut b.sums, 2 * c), |r, a| {
            let (sum_dy, sum_dy_xhat) = a.split_at_mut(c);
            let (dy, xhat) = (&dy[r.start * c..r.end * c], &xhat[r.start * c..r.end * c]);
            for (dr, hr) in dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
                for ch in 0..c {
                    sum_dy[ch] += dr[ch];
                    sum_dy_xhat[ch] += dr[ch] * hr[ch];
                }
            }
        });
        let (sum_dy, sum_dy_xhat) = b.sums.split_at(c);
        let add = |grad: &mut [f32], v: &[f32]| {
            if opts.accumulate {
                grad.iter_mut().zip(v).for_each(|(g, v)| *g += v);
            } else {
                grad.copy_from_slice(v);
            }
        };
        if let Some(g) = &mut self.gamma {
            add(&mut g.grad, sum_dy_xhat);
        }
        if let Some(be) = &mut self.beta {
            add(&mut be.grad, sum_dy);
        }
        if !opts.input_grad {
            return;
        }
        sized(&mut b.dx, dy.len());
        let inv_rows = 1.0 / rows as f32;
        let (scale, inv_std, batch_stats) = (&b.scale[..], &b.inv_std[..], b.batch_stats);
        let threads = if dy.len() >= PARALLEL_VALUES { parallel::threads() } else { 1 };
        parallel::for_runs(rows, threads, [(&mut b.dx[..], c)], |r0, nr, [dx]| {
            let (dy, xhat) = (&dy[r0 * c..(r0 + nr) * c], &xhat[r0 * c..(r0 + nr) * c]);
            for ((dxr, dr), hr) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(xhat.chunks_exact(c)) {
                for ch in 0..c {
                    let g = scale[ch] * inv_std[ch];
                    dxr[ch] = if batch_stats {
                        // Through the batch mean and variance as well as directly.
                        g * (dr[ch] - inv_rows * (sum_dy[ch] + hr[ch] * sum_dy_xhat[ch]))
                    } else {
                        g * dr[ch]
                    };
                }
            }
        });
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }

    fn visit_params(&self, f: &mut dyn FnMut(&str, &Param)) {
        if let Some(g) = &self.gamma {
            f("gamma", g);
        }
        if let Some(b) = &self.beta {
            f("beta", b);
        }
        f("moving_mean", &self.moving_mean);
        f("moving_variance", &self.moving_variance);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        if let Some(g) = &mut self.gamma {
            f(g);
        }
        if let Some(b) = &mut self.beta {
            f(b);
        }
        f(&mut self.moving_mean);
        f(&mut self.moving_variance);
    }

    fn set_trainable(&mut self, trainable: bool) {
        self.frozen = !trainable;
        self.visit_params_mut(&mut |p| p.set_trainable(trainable));
    }
}

impl Shareable for BatchNorm {
    type Buffers = BatchNormBuffers;
    fn buffers_mut(&mut self) -> &mut BatchNormBuffers {
        &mut self.buf
    }
}
