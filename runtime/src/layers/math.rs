//! User math: the element-wise functions and the reductions a `#[kiln::call]` body may write
//! (`exp(x)`, `x * 0.5`, `sum(x, axis = 1, keepdims = true)`, ...), each a small layer the model
//! macros place in the graph, so its backward is generated like any layer's.
//!
//! One table per kind of op: [`UnaryOp`] keeps each function's value and derivative side by side,
//! [`ReduceOp`] each reduction's value and how its gradient spreads back. The formulas and the
//! gradient conventions are Keras 3's (`keras.ops`, TensorFlow backend): the gradient of `max`
//! and `min` is shared equally between tied extremes, `clip` passes the gradient where
//! `lo <= x <= hi`.

use super::{BackwardOpts, Ctx, Layer, LayerBuffers, Shareable, sized};
pub use crate::infer::{BinaryOp, ReduceOp, UnaryOp};

impl UnaryOp {
    /// The function's value at `x`.
    #[inline]
    pub fn f(self, x: f32) -> f32 {
        match self {
            UnaryOp::Negative => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Scale(c) => x * c,
            UnaryOp::Shift(c) => x + c,
            UnaryOp::SubtractFrom(c) => c - x,
            UnaryOp::DivideBy(c) => x / c,
            UnaryOp::Reciprocal(c) => c / x,
            UnaryOp::Power(c) => x.powf(c),
            UnaryOp::Clip(lo, hi) => x.max(lo).min(hi),
            UnaryOp::Maximum(c) => x.max(c),
            UnaryOp::Minimum(c) => x.min(c),
            UnaryOp::StopGradient => x,
        }
    }

    /// The derivative at `x`, where the value is `y`.
    #[inline]
    pub fn df(self, x: f32, y: f32) -> f32 {
        match self {
            UnaryOp::Negative => -1.0,
            UnaryOp::Exp => y,
            UnaryOp::Log => 1.0 / x,
            UnaryOp::Sqrt => 0.5 / y,
            UnaryOp::Square => 2.0 * x,
            UnaryOp::Abs => x.signum() * (x != 0.0) as u8 as f32,
            UnaryOp::Scale(c) => c,
            UnaryOp::Shift(_) => 1.0,
            UnaryOp::SubtractFrom(_) => -1.0,
            UnaryOp::DivideBy(c) => 1.0 / c,
            UnaryOp::Reciprocal(c) => -c / (x * x),
            UnaryOp::Power(c) => c * x.powf(c - 1.0),
            UnaryOp::Clip(lo, hi) => ((lo..=hi).contains(&x)) as u8 as f32,
            UnaryOp::Maximum(c) => (x >= c) as u8 as f32,
            UnaryOp::Minimum(c) => (x <= c) as u8 as f32,
            UnaryOp::StopGradient => 0.0,
        }
    }
}

/// The most element-wise functions one [`Unary`] layer applies in a row.
pub const MAX_CHAIN: usize = 8;

/// Values a chain works on at a time: its intermediates stay in the L1 cache, on the stack.
const BLOCK: usize = 256;

/// An element-wise function as a layer, on inputs of any shape; or a chain of them applied one
/// after the other (`exp(0.5 * x)`), which the model macros fuse into one layer: one pass over
/// memory and one buffer for the whole chain, its intermediates recomputed block by block in the
/// backward pass (the same values and gradients, to the bit, as one layer per function).
#[derive(Clone, Debug)]
pub struct Unary {
    ops: [UnaryOp; MAX_CHAIN],
    len: usize,
    buf: MathBuffers,
}

/// What one application of a [`Unary`] or [`Reduce`] writes.
#[derive(Clone, Debug, Default)]
pub struct MathBuffers {
    pub(super) out: Vec<f32>,
    pub(super) dx: Vec<f32>,
}

impl Unary {
    /// The layer computing `op`.
    pub fn new(op: UnaryOp) -> Self {
        Self::chain(&[op])
    }

    /// The layer computing `ops` one after the other (1 to 8 of them; the macros
    /// never give more).
    pub fn chain(ops: &[UnaryOp]) -> Self {
        assert!((1..=MAX_CHAIN).contains(&ops.len()), "a chain of 1 to {MAX_CHAIN} functions");
        let mut all = [UnaryOp::StopGradient; MAX_CHAIN];
        all[..ops.len()].copy_from_slice(ops);
        Unary { ops: all, len: ops.len(), buf: MathBuffers::default() }
    }

    /// The functions it computes, first to last.
    pub fn ops(&self) -> &[UnaryOp] {
        &self.ops[..self.len]
    }
}

/// The functions given loops of their own (the rest go through [`UnaryOp::f`]): `$each!(|x|
/// value)` for each, the match outside the loop so that each loop vectorises.
macro_rules! by_function {
    ($op:expr, $each:ident) => {
        match $op {
            UnaryOp::Square => $each!(|x| x * x),
            UnaryOp::Scale(c) => $each!(|x| x * c),
            UnaryOp::Shift(c) => $each!(|x| x + c),
            UnaryOp::Sqrt => $each!(|x| x.sqrt()),
            op => $each!(|x| op.f(x)),
        }
    };
}

/// `dst[i] = op(src[i])`; `exp` vectorised (`fastmath`, within 4 units in the last place of
/// `f32::exp`, with its limits: inf, subnormals and NaN as it gives them).
fn apply(op: UnaryOp, src: &[f32], dst: &mut [f32]) {
    if op == UnaryOp::Exp {
        dst.copy_from_slice(src);
        return crate::kernels::fastmath::exp_exact_limits(dst, src);
    }
    macro_rules! each {
        (|$x:ident| $e:expr) => {
            dst.iter_mut().zip(src).for_each(|(o, &$x)| *o = $e)
        };
    }
    by_function!(op, each)
}

/// `v[i] = op(v[i])`.
fn apply_in_place(op: UnaryOp, v: &mut [f32]) {
    if op == UnaryOp::Exp {
        let mut x = [0.0f32; BLOCK];
        for chunk in v.chunks_mut(BLOCK) {
            let x = &mut x[..chunk.len()];
            x.copy_from_slice(chunk);
            crate::kernels::fastmath::exp_exact_limits(chunk, x);
        }
        return;
    }
    macro_rules! each {
        (|$x:ident| $e:expr) => {
            v.iter_mut().for_each(|o| {
                let $x = *o;
                *o = $e
            })
        };
    }
    by_function!(op, each)
}

/// `d[i] *= op'(x[i])`, where the value is `y[i]` (the match outside the loop).
fn times_derivative(op: UnaryOp, x: &[f32], y: &[f32], d: &mut [f32]) {
    macro_rules! each {
        (|$x:ident, $y:ident| $e:expr) => {
            d.iter_mut().zip(x).zip(y).for_each(|((d, &$x), &$y)| *d *= $e)
        };
    }
    match op {
        UnaryOp::Exp => each!(|_x, y| y),
        UnaryOp::Square => each!(|x, _y| 2.0 * x),
        UnaryOp::Scale(c) => each!(|_x, _y| c),
        UnaryOp::Shift(_) => {}
        UnaryOp::Sqrt => each!(|_x, y| 0.5 / y),
        op => each!(|x, y| op.df(x, y)),
    }
}

impl Layer for Unary {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (ops, x) = (&self.ops[..self.len], xs[0]);
        let out = sized(&mut self.buf.out, x.len());
        // Large tensors on the threads, in parts that depend on the length only; a chain a
        // block at a time, so the block stays in the cache from one function to the next.
        crate::kernels::parallel::parts_mut(out, |at, part| {
            for (k, block) in part.chunks_mut(BLOCK).enumerate() {
                apply(ops[0], &x[at + k * BLOCK..][..block.len()], block);
                for &op in &ops[1..] {
                    apply_in_place(op, block);
                }
            }
        });
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (ops, x, y) = (&self.ops[..self.len], xs[0], &self.buf.out[..]);
        let dx = sized(&mut self.buf.dx, dy.len());
        if let [op] = ops {
            let op = *op;
            crate::kernels::parallel::parts_mut(dx, |at, part| {
                for (((d, &g), &x), &y) in part.iter_mut().zip(&dy[at..]).zip(&x[at..]).zip(&y[at..]) {
                    *d = g * op.df(x, y);
                }
            });
            return;
        }
        // A chain: each block's intermediates recomputed, then the derivatives multiplied in from
        // the last function to the first, as one layer per function would.
        // The last function's value is the output, kept from the forward pass.
        crate::kernels::parallel::parts_mut(dx, |at, part| {
            let mut vals = [[0.0f32; BLOCK]; MAX_CHAIN - 1];
            for (k, block) in part.chunks_mut(BLOCK).enumerate() {
                let (from, n) = (at + k * BLOCK, block.len());
                let x = &x[from..][..n];
                for (i, &op) in ops[..ops.len() - 1].iter().enumerate() {
                    let (done, rest) = vals.split_at_mut(i);
                    apply(op, done.last().map_or(x, |v| &v[..n]), &mut rest[0][..n]);
                }
                block.copy_from_slice(&dy[from..][..n]);
                for (i, &op) in ops.iter().enumerate().rev() {
                    let input = if i == 0 { x } else { &vals[i - 1][..n] };
                    let value = if i + 1 == ops.len() { &y[from..][..n] } else { &vals[i][..n] };
                    times_derivative(op, input, value, block);
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
}

/// A reduction as a layer: each sample's values seen as `[outer, len, inner]` (the axes before
/// the reduced one, the reduced one, the axes after it) and reduced to `[outer, inner]`. Keeping
/// the axis (`keepdims`) changes the shape the model macros give the output, not its values.
#[derive(Clone, Debug)]
pub struct Reduce {
    op: ReduceOp,
    len: usize,
    inner: usize,
    buf: MathBuffers,
}

impl Reduce {
    /// The layer reducing axis `axis` (0-based, within a sample) of samples of shape `shape`.
    /// An axis outside the shape reduces nothing (the model macros reject it when they compile).
    pub fn new(op: ReduceOp, shape: &[usize], axis: usize) -> Self {
        let len = shape.get(axis).copied().unwrap_or(1).max(1);
        let inner = shape.iter().skip(axis + 1).product::<usize>().max(1);
        Reduce { op, len, inner, buf: MathBuffers::default() }
    }

    /// The reduction it computes.
    pub fn op(&self) -> ReduceOp {
        self.op
    }

    fn reduce(&self, x: &[f32], o: usize, i: usize) -> f32 {
        let (len, inner) = (self.len, self.inner);
        let at = |k: usize| x[(o * len + k) * inner + i];
        match self.op {
            ReduceOp::Sum => (0..len).map(at).sum(),
            ReduceOp::Mean => (0..len).map(at).sum::<f32>() / len as f32,
            ReduceOp::Max => (0..len).map(at).fold(f32::NEG_INFINITY, f32::max),
            ReduceOp::Min => (0..len).map(at).fold(f32::INFINITY, f32::min),
            ReduceOp::LogSumExp => {
                let m = (0..len).map(at).fold(f32::NEG_INFINITY, f32::max);
                if !m.is_finite() {
                    return m;
                }
                m + (0..len).map(|k| (at(k) - m).exp()).sum::<f32>().ln()
            }
        }
    }
}

impl Layer for Reduce {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let x = xs[0];
        let inner = self.inner;
        let outer = x.len() / (self.len * inner);
        let mut out = std::mem::take(&mut self.buf.out);
        sized(&mut out, outer * inner);
        // Each output is one thread's whole sum, so the split changes no bits.
        let parallel = x.len() >= crate::kernels::parallel::ELEMENTWISE_SPLIT;
        crate::kernels::parallel::for_rows(&mut out, inner, threads(), 1, parallel, |first, rows| {
            for (r, row) in rows.chunks_exact_mut(inner).enumerate() {
                row.iter_mut().enumerate().for_each(|(i, v)| *v = self.reduce(x, first + r, i));
            }
        });
        self.buf.out = out;
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (x, y, len, inner, op) = (xs[0], &self.buf.out, self.len, self.inner, self.op);
        let dx = sized(&mut self.buf.dx, x.len());
        let parallel = x.len() >= crate::kernels::parallel::ELEMENTWISE_SPLIT;
        crate::kernels::parallel::for_rows(dx, len * inner, threads(), 1, parallel, |first, rows| {
            for (r, dx) in rows.chunks_exact_mut(len * inner).enumerate() {
                let o = first + r;
                let x = &x[o * len * inner..][..len * inner];
                for i in 0..inner {
                    let (g, v) = (dy[o * inner + i], y[o * inner + i]);
                    let at = |k: usize| k * inner + i;
                    match op {
                        ReduceOp::Sum => (0..len).for_each(|k| dx[at(k)] = g),
                        ReduceOp::Mean => (0..len).for_each(|k| dx[at(k)] = g / len as f32),
                        ReduceOp::Max | ReduceOp::Min => {
                            let ties = (0..len).filter(|&k| x[at(k)] == v).count().max(1) as f32;
                            (0..len).for_each(|k| dx[at(k)] = if x[at(k)] == v { g / ties } else { 0.0 });
                        }
                        ReduceOp::LogSumExp => (0..len).for_each(|k| dx[at(k)] = g * (x[at(k)] - v).exp()),
                    }
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
}

/// The threads a split may use.
fn threads() -> usize {
    crate::kernels::parallel::threads()
}

impl BinaryOp {
    /// The value.
    #[inline]
    fn eval(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Subtract => a - b,
            BinaryOp::Multiply => a * b,
            BinaryOp::Divide => a / b,
        }
    }

    /// The derivatives with respect to `a` and to `b`.
    #[inline]
    fn grads(self, a: f32, b: f32) -> (f32, f32) {
        match self {
            BinaryOp::Add => (1.0, 1.0),
            BinaryOp::Subtract => (1.0, -1.0),
            BinaryOp::Multiply => (b, a),
            BinaryOp::Divide => (1.0 / b, -a / (b * b)),
        }
    }
}

/// Two tensors combined element-wise with broadcasting: each sample's shapes aligned from the last
/// axis, an extent of 1 stretched to the other's. The backward sums each gradient over the axes
/// its input was stretched along. Shapes that are the same take a plain element-wise loop.
#[derive(Clone, Debug)]
pub struct Broadcast {
    op: BinaryOp,
    /// Values per sample of `a`, `b` and the output.
    sizes: [usize; 3],
    /// For each value of an output sample, where it reads `a` and `b` within their samples
    /// (empty when the shapes are the same).
    from: Vec<(u32, u32)>,
    buf: BroadcastBuffers,
}

/// What one application of a [`Broadcast`] writes.
#[derive(Clone, Debug, Default)]
pub struct BroadcastBuffers {
    out: Vec<f32>,
    da: Vec<f32>,
    db: Vec<f32>,
}

impl Broadcast {
    /// The layer computing `a op b` for samples of shapes `a` and `b`, which must broadcast (the
    /// model macros check it when they compile; extents that do not are treated as 1).
    pub fn new(op: BinaryOp, a: &[usize], b: &[usize]) -> Self {
        let rank = a.len().max(b.len());
        let pad =
            |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect() };
        let (pa, pb) = (pad(a), pad(b));
        let out: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| if x == 1 { y } else { x }).collect();
        let size = |s: &[usize]| s.iter().product::<usize>();
        let sizes = [size(&pa), size(&pb), size(&out)];
        let from = if pa == pb {
            Vec::new()
        } else {
            // Row-major strides, 0 along a stretched axis.
            let strides = |s: &[usize]| -> Vec<usize> {
                let mut st = vec![0; rank];
                let mut acc = 1;
                for i in (0..rank).rev() {
                    st[i] = if s[i] == 1 && out[i] != 1 { 0 } else { acc };
                    acc *= s[i];
                }
                st
            };
            let (sa, sb) = (strides(&pa), strides(&pb));
            (0..sizes[2])
                .map(|mut k| {
                    let (mut ia, mut ib) = (0, 0);
                    for i in (0..rank).rev() {
                        let d = k % out[i];
                        k /= out[i];
                        ia += d * sa[i];
                        ib += d * sb[i];
                    }
                    (ia as u32, ib as u32)
                })
                .collect()
        };
        Broadcast { op, sizes, from, buf: BroadcastBuffers::default() }
    }
}

impl Layer for Broadcast {
    fn forward(&mut self, xs: &[&[f32]], _ctx: &mut Ctx<'_>) {
        let (a, b, op) = (xs[0], xs[1], self.op);
        let [na, nb, no] = self.sizes;
        let n = a.len() / na.max(1);
        let out = sized(&mut self.buf.out, n * no);
        let from = &self.from[..];
        // Large tensors on the threads, in parts that depend on the length only.
        crate::kernels::parallel::parts_mut(out, |at, part| {
            if from.is_empty() {
                part.iter_mut().zip(a[at..].iter().zip(&b[at..])).for_each(|(o, (&x, &y))| *o = op.eval(x, y));
                return;
            }
            // One value of `b` per sample against all of `a`'s (`x - mean`, `d / std`): no table.
            if nb == 1 && na == no {
                for (k, o) in (at..).zip(part.iter_mut()) {
                    *o = op.eval(a[k], b[k / no]);
                }
                return;
            }
            for (k, o) in (at..).zip(part.iter_mut()) {
                let (s, (ia, ib)) = (k / no, from[k % no]);
                *o = op.eval(a[s * na + ia as usize], b[s * nb + ib as usize]);
            }
        });
    }

    fn backward(&mut self, xs: &[&[f32]], dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if !opts.input_grad {
            return;
        }
        let (a, b, op) = (xs[0], xs[1], self.op);
        let [na, nb, no] = self.sizes;
        let n = a.len() / na.max(1);
        let da = sized(&mut self.buf.da, a.len());
        let db = sized(&mut self.buf.db, b.len());
        if self.from.is_empty() {
            // Element by element, as far as `dy` goes: each gradient in a pass of its own over
            // the threads.
            let m = dy.len().min(da.len()).min(db.len());
            let (da, db) = (&mut da[..m], &mut db[..m]);
            crate::kernels::parallel::parts_mut(da, |at, part| {
                for (k, d) in (at..).zip(part.iter_mut()) {
                    *d = dy[k] * op.grads(a[k], b[k]).0;
                }
            });
            crate::kernels::parallel::parts_mut(db, |at, part| {
                for (k, d) in (at..).zip(part.iter_mut()) {
                    *d = dy[k] * op.grads(a[k], b[k]).1;
                }
            });
            return;
        }
        // Each sample's sums over the stretched axes on one thread, in the same order on any
        // thread count; large batches split by samples.
        let parts = if n * no >= crate::kernels::parallel::ELEMENTWISE_SPLIT { threads() } else { 1 };
        let from = &self.from[..];
        crate::kernels::parallel::for_runs(n, parts, [(da, na), (db, nb)], |first, count, [da, db]| {
            da.fill(0.0);
            db.fill(0.0);
            for s in first..first + count {
                let (a, b) = (&a[s * na..(s + 1) * na], &b[s * nb..(s + 1) * nb]);
                let r = s - first;
                let (da, db) = (&mut da[r * na..(r + 1) * na], &mut db[r * nb..(r + 1) * nb]);
                let g = &dy[s * no..(s + 1) * no];
                if nb == 1 && na == no {
                    // One value of `b` per sample: the same sums as below, without the table.
                    for ((d, &g), &x) in da.iter_mut().zip(g).zip(a) {
                        let (ga, gb) = op.grads(x, b[0]);
                        *d += g * ga;
                        db[0] += g * gb;
                    }
                    continue;
                }
                for (&g, &(ia, ib)) in g.iter().zip(from) {
                    let (ia, ib) = (ia as usize, ib as usize);
                    let (ga, gb) = op.grads(a[ia], b[ib]);
                    da[ia] += g * ga;
                    db[ib] += g * gb;
                }
            }
        });
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.buf.da } else { &self.buf.db }
    }
}

impl LayerBuffers for BroadcastBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, i: usize) -> &[f32] {
        if i == 0 { &self.da } else { &self.db }
    }
}

impl Shareable for Broadcast {
    type Buffers = BroadcastBuffers;
    fn buffers_mut(&mut self) -> &mut BroadcastBuffers {
        &mut self.buf
    }
}

/// The distribution a [`Draw`] samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// `N(0, 1)` (Keras' `random.normal`).
    Normal,
    /// Uniform on `[0, 1)` (Keras' `random.uniform`).
    Uniform,
}

/// Random values shaped like its input, drawn from the model's stream on every forward pass
/// (Keras' `keras.random.normal(shape)` in a layer's `call`: a VAE's sampling): in training from
/// the model's seeded stream, so a run is reproducible and resumes bit for bit; in `predict` from
/// the stream of the call. Nothing flows back to the input, which gives only the shape.
#[derive(Clone, Debug)]
pub struct Draw {
    dist: Distribution,
    buf: MathBuffers,
}

impl Draw {
    /// The layer drawing from `dist`.
    pub fn new(dist: Distribution) -> Self {
        Draw { dist, buf: MathBuffers::default() }
    }
}

impl Layer for Draw {
    fn forward(&mut self, xs: &[&[f32]], ctx: &mut Ctx<'_>) {
        let out = sized(&mut self.buf.out, xs[0].len());
        match self.dist {
            Distribution::Normal => out.iter_mut().for_each(|o| *o = ctx.rng.normal()),
            Distribution::Uniform => out.iter_mut().for_each(|o| *o = ctx.rng.uniform()),
        }
    }

    fn backward(&mut self, xs: &[&[f32]], _dy: &[f32], _ctx: &mut Ctx<'_>, opts: BackwardOpts) {
        if opts.input_grad {
            sized(&mut self.buf.dx, xs[0].len()).fill(0.0);
        }
    }

    fn output(&self) -> &[f32] {
        &self.buf.out
    }

    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.buf.dx
    }
}

impl LayerBuffers for MathBuffers {
    fn output(&self) -> &[f32] {
        &self.out
    }
    fn input_grad(&self, _i: usize) -> &[f32] {
        &self.dx
    }
}

/// `Shareable` for a layer that keeps its application's values in a `buf: MathBuffers`.
macro_rules! math_buffers {
    ($($layer:ty),*) => {$(
        impl Shareable for $layer {
            type Buffers = MathBuffers;
            fn buffers_mut(&mut self) -> &mut MathBuffers {
                &mut self.buf
            }
        }
    )*};
}
pub(super) use math_buffers;

math_buffers!(Unary, Reduce, Draw);

#[cfg(test)]
#[path = "math_tests.rs"]
mod tests;
