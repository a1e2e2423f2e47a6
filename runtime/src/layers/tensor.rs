//! User math on a sample's axes: `softmax` and `log_softmax` along any axis, `slice` along an
//! axis, and `matmul` (batched over the leading axes, either operand transposed), each with its
//! backward beside its forward (Keras' `keras.ops` semantics).

use super::math::MathBuffers;
use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};
use crate::kernels::matmul::{Mat, gemm};

/// A sample's shape seen around one axis: the values before it, its extent, the values after.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    let len = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner = shape.iter().skip(axis + 1).product::<usize>().max(1);
    (len, inner)
}

/// `softmax(x, axis)` (or `log_softmax`) along one axis of each sample.
#[derive(Clone, Debug)]
pub struct SoftmaxAxis {
    log: bool,
    len: usize,
    inner: usize,
    buf: MathBuffers,
}

impl SoftmaxAxis {
    /// Softmax (`log`: its logarithm) along `axis` (0-based, within a sample) of samples of
    /// shape `shape`.
    pub fn new(log: bool, shape: &[usize], axis: usize) -> Self {
        let (len, inner) = around(shape, axis);
        SoftmaxAxis { log, len, inner, buf: MathBuffers::default() }
    }
}

impl Layer for SoftmaxAxis {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, len, inner, log) = (xs[0], self.len, self.inner, self.log);
        let out = sized(&mut self.buf.out, x.len());
        for o in 0..x.len() / (len * inner) {
            for i in 0..inner {
                let at = |k: usize| (o * len + k) * inner + i;
                let m = (0..len).map(|k| x[at(k)]).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..len).map(|k| (x[at(k)] - m).exp()).sum();
                for k in 0..len {
                    out[at(k)] = if log { x[at(k)] - m - sum.ln() } else { (x[at(k)] - m).exp() / sum };
                }
            }
        }
    }

    fn backward(&mut self, _xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (y, len, inner, log) = (&self.buf.out, self.len, self.inner, self.log);
        let dx = sized(&mut self.buf.dx, dy.len());
        for o in 0..dy.len() / (len * inner) {
            for i in 0..inner {
                let at = |k: usize| (o * len + k) * inner + i;
                if log {
                    // y = x - logsumexp(x): dx = dy - softmax · Σ dy.
                    let s: f32 = (0..len).map(|k| dy[at(k)]).sum();
                    (0..len).for_each(|k| dx[at(k)] = dy[at(k)] - y[at(k)].exp() * s);
                } else {
                    // dx = y ⊙ (dy - Σ dy ⊙ y).
                    let s: f32 = (0..len).map(|k| dy[at(k)] * y[at(k)]).sum();
                    (0..len).for_each(|k| dx[at(k)] = y[at(k)] * (dy[at(k)] - s));
                }
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// `slice(x, axis, start, end)`: positions `start..end` of one axis of each sample.
#[derive(Clone, Debug)]
pub struct Slice {
    len: usize,
    inner: usize,
    start: usize,
    end: usize,
    buf: MathBuffers,
}

impl Slice {
    /// Positions `start..end` of `axis` (0-based, within a sample) of samples of shape `shape`
    /// (the model macros check that they lie inside the axis).
    pub fn new(shape: &[usize], axis: usize, start: usize, end: usize) -> Self {
        let (len, inner) = around(shape, axis);
        let end = end.min(len);
        Slice { len, inner, start: start.min(end), end, buf: MathBuffers::default() }
    }
}

impl Layer for Slice {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (x, len, inner) = (xs[0], self.len, self.inner);
        let (from, w) = (self.start * inner, (self.end - self.start) * inner);
        let outer = x.len() / (len * inner);
        let out = sized(&mut self.buf.out, outer * w);
        for (o, dst) in out.chunks_exact_mut(w.max(1)).enumerate().take(outer) {
            dst.copy_from_slice(&x[o * len * inner + from..][..w]);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (len, inner) = (self.len, self.inner);
        let (from, w) = (self.start * inner, (self.end - self.start) * inner);
        let dx = sized(&mut self.buf.dx, xs[0].len());
        dx.fill(0.0);
        for (o, src) in dy.chunks_exact(w.max(1)).enumerate() {
            dx[o * len * inner + from..][..w].copy_from_slice(src);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

/// `matmul(a, b)`: per sample and per position of the leading axes, the product of the last two
/// axes, `a` `[m, k]` (or `[k, m]` read transposed) by `b` `[k, n]` (or `[n, k]` transposed).
/// The leading axes broadcast as NumPy's (`[4, m, k]` by `[k, n]`: the one `b` for each of the 4),
/// the gradient of a broadcast operand summed over the positions that read it.
#[derive(Clone, Debug)]
pub struct MatMul {
    ta: bool,
    tb: bool,
    /// Rows, inner size and columns of each product.
    dims: [usize; 3],
    /// Per sample, for each product of the output, the products of `a` and `b` it multiplies.
    pairs: Vec<(usize, usize)>,
    /// Products of `a` and of `b` per sample.
    per_sample: [usize; 2],
    buf: MatMulBuffers,
}

/// What one application of a [`MatMul`] writes.
#[derive(Clone, Debug, Default)]
pub struct MatMulBuffers {
    out: Vec<f32>,
    da: Vec<f32>,
    db: Vec<f32>,
}

impl MatMul {
    /// The product of samples of shapes `a` and `b` (rank 2 or more, leading axes that
    /// broadcast), transposing the last two axes of `a` (`ta`) or `b` (`tb`) first.
    pub fn new(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Self {
        let last2 = |s: &[usize]| (s[s.len().saturating_sub(2)..].first().copied().unwrap_or(1), s.last().copied().unwrap_or(1));
        let ((a0, a1), (b0, b1)) = (last2(a), last2(b));
        let (m, k) = if ta { (a1, a0) } else { (a0, a1) };
        let n = if tb { b0 } else { b1 };
        let (la, lb) = (&a[..a.len().saturating_sub(2)], &b[..b.len().saturating_sub(2)]);
        let rank = la.len().max(lb.len());
        let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect() };
        let (pa, pb) = (pad(la), pad(lb));
        let out: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
        let pairs = (0..out.iter().product::<usize>())
            .map(|p| {
                // The output position's index along each leading axis, and the operands' products.
                let (mut rest, mut i, mut j, mut sa, mut sb) = (p, 0, 0, 1, 1);
                for d in (0..rank).rev() {
                    let at = rest % out[d];
                    rest /= out[d];
                    i += if pa[d] == 1 { 0 } else { at * sa };
                    j += if pb[d] == 1 { 0 } else { at * sb };
                    sa *= pa[d];
                    sb *= pb[d];
                }
                (i, j)
            })
            .collect();
        let per_sample = [pa.iter().product(), pb.iter().product()];
        MatMul { ta, tb, dims: [m, k, n], pairs, per_sample, buf: MatMulBuffers::default() }
    }

    /// Whether an operand is read by more than one product of a sample.
    fn broadcast(&self) -> bool {
        self.per_sample.iter().any(|&c| c != self.pairs.len())
    }
}

impl Layer for MatMul {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let [m, k, n] = self.dims;
        let (a, b) = (xs[0], xs[1]);
        let [ca, cb] = self.per_sample;
        let (per, samples) = (self.pairs.len(), a.len() / (ca * m * k).max(1));
        let out = sized(&mut self.buf.out, samples * per * m * n);
        let mat = |d, t| if t { Mat::t(d) } else { Mat::n(d) };
        for s in 0..samples {
            for (p, &(i, j)) in self.pairs.iter().enumerate() {
                let (ap, bp) = (&a[(s * ca + i) * m * k..][..m * k], &b[(s * cb + j) * k * n..][..k * n]);
                let o = &mut out[(s * per + p) * m * n..][..m * n];
                gemm(m, k, n, mat(ap, self.ta), mat(bp, self.tb), o, 0.0);
            }
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let [m, k, n] = self.dims;
        let (a, b) = (xs[0], xs[1]);
        let [ca, cb] = self.per_sample;
        let (per, samples) = (self.pairs.len(), a.len() / (ca * m * k).max(1));
        // A broadcast operand's gradient sums over the products that read it.
        let beta = if self.broadcast() { 1.0 } else { 0.0 };
        let da = sized(&mut self.buf.da, a.len());
        let db = sized(&mut self.buf.db, b.len());
        if beta != 0.0 {
            da.fill(0.0);
            db.fill(0.0);
        }
        for s in 0..samples {
            for (p, &(i, j)) in self.pairs.iter().enumerate() {
                let (ia, ib) = ((s * ca + i) * m * k, (s * cb + j) * k * n);
                let (ap, bp, g) = (&a[ia..][..m * k], &b[ib..][..k * n], &dy[(s * per + p) * m * n..][..m * n]);
                let (dap, dbp) = (&mut da[ia..][..m * k], &mut db[ib..][..k * n]);
                // C = A·B: dA = dC·Bᵀ [m, k], dB = Aᵀ·dC [k, n]; a transposed operand's gradient is
                // the transpose: dAᵀ = B·dCᵀ [k, m], dBᵀ = dCᵀ·A [n, k].
                match self.ta {
                    false => gemm(m, n, k, Mat::n(g), if self.tb { Mat::n(bp) } else { Mat::t(bp) }, dap, beta),
                    true => gemm(k, n, m, if self.tb { Mat::t(bp) } else { Mat::n(bp) }, Mat::t(g), dap, beta),
                }
                match self.tb {
                    false => gemm(k, m, n, if self.ta { Mat::n(ap) } else { Mat::t(ap) }, Mat::n(g), dbp, beta),
                    true => gemm(n, m, k, Mat::t(g), if self.ta { Mat::t(ap) } else { Mat::n(ap) }, dbp, beta),
                }
            }
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.buf.da } else { &self.buf.db }
    }
}

impl LayerBuffers for MatMulBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.da } else { &self.db }
    }
}

impl Shareable for MatMul {
    type Buffers = MatMulBuffers;
    fn buffers_mut(&mut self) -> &mut MatMulBuffers {
        &mut self.buf
    }
}

impl Shareable for SoftmaxAxis {
    type Buffers = MathBuffers;
    fn buffers_mut(&mut self) -> &mut MathBuffers {
        &mut self.buf
    }
}

impl Shareable for Slice {
    type Buffers = MathBuffers;
    fn buffers_mut(&mut self) -> &mut MathBuffers {
        &mut self.buf
    }
}

/// `gather(x, ids)`: per sample, the rows of `x` (its first axis, `rows` long, each row `width`
/// values) that the sample's integer ids name, in their order — TensorFlow's
/// `tf.gather(x, ids, axis = 1, batch_dims = 1)`. The gradient of a row read several times is
/// the sum of what reaches each read; the ids get none.
#[derive(Clone, Debug)]
pub struct Gather {
    rows: usize,
    width: usize,
    buf: GatherBuffers,
}

/// What one application of a [`Gather`] writes.
#[derive(Clone, Debug, Default)]
pub struct GatherBuffers {
    out: Vec<f32>,
    dx: Vec<f32>,
    /// Zeros as long as the ids: integers have no gradient.
    dids: Vec<f32>,
}

impl Gather {
    /// Rows of samples of shape `shape` (`[rows, ..]`); the ids are checked below `rows` when
    /// data comes in.
    pub fn new(shape: &[usize]) -> Self {
        let rows = shape.first().copied().unwrap_or(1).max(1);
        Gather { rows, width: shape.iter().skip(1).product(), buf: GatherBuffers::default() }
    }

}

/// The row an id names among `rows` (an id was checked below `rows` where it came in; one that
/// was not reads the last row rather than past the sample).
fn row(id: f32, rows: usize) -> usize {
    (id.max(0.0) as usize).min(rows - 1)
}

impl Layer for Gather {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let (x, ids, w, rows) = (xs[0], xs[1], self.width, self.rows);
        let k = (ids.len() / ctx.n.max(1)).max(1);
        let out = sized(&mut self.buf.out, ids.len() * w);
        for (j, (&id, dst)) in ids.iter().zip(out.chunks_exact_mut(w.max(1))).enumerate() {
            dst.copy_from_slice(&x[(j / k * rows + row(id, rows)) * w..][..w]);
        }
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (x, ids, w, rows) = (xs[0], xs[1], self.width, self.rows);
        let k = (ids.len() / ctx.n.max(1)).max(1);
        let dx = sized(&mut self.buf.dx, x.len());
        dx.fill(0.0);
        for (j, (&id, g)) in ids.iter().zip(dy.chunks_exact(w.max(1))).enumerate() {
            let read = &mut dx[(j / k * rows + row(id, rows)) * w..][..w];
            read.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        sized(&mut self.buf.dids, ids.len()).fill(0.0);
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.buf.dx } else { &self.buf.dids }
    }
}

impl LayerBuffers for GatherBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.dx } else { &self.dids }
    }
}

impl Shareable for Gather {
    type Buffers = GatherBuffers;
    fn buffers_mut(&mut self) -> &mut GatherBuffers {
        &mut self.buf
    }
}
