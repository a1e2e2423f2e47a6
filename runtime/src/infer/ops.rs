//! User math at inference, with `core` alone: the element-wise functions of a `call` body or a
//! `functional!` statement (one or a fused chain), broadcasting operators, reductions and softmax
//! along an axis, slices. Each kernel runs on one sample, as `infer` does; the functions are the
//! `core` ones of [`super::math`] (within a few units in the last place of the standard
//! library's, which training uses).

use super::sequence::BadId;

/// An element-wise function of one tensor (a scalar operand is part of the op).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x` (Keras' `ops.negative`).
    Negative,
    /// `exp(x)`.
    Exp,
    /// `log(x)`, the natural logarithm.
    Log,
    /// `sqrt(x)`.
    Sqrt,
    /// `square(x)`, `x²`.
    Square,
    /// `abs(x)`; its gradient at 0 is 0, as TensorFlow's.
    Abs,
    /// `x * c` (or `c * x`).
    Scale(f32),
    /// `x + c` (or `c + x`); `x - c` is `Shift(-c)`.
    Shift(f32),
    /// `c - x`.
    SubtractFrom(f32),
    /// `x / c`.
    DivideBy(f32),
    /// `c / x`.
    Reciprocal(f32),
    /// `pow(x, c)`, `x` to a constant power.
    Power(f32),
    /// `clip(x, lo, hi)`.
    Clip(f32, f32),
    /// `maximum(x, c)`: the gradient goes to `x` where `x >= c`, as TensorFlow's.
    Maximum(f32),
    /// `minimum(x, c)`: the gradient goes to `x` where `x <= c`.
    Minimum(f32),
    /// `stop_gradient(x)`: `x` forward, nothing back.
    StopGradient,
}

/// A reduction along one axis of each sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// `sum`.
    Sum,
    /// `mean`.
    Mean,
    /// `max`: the gradient is shared equally between the values that attain it.
    Max,
    /// `min`: as `max`.
    Min,
    /// `logsumexp`, `log(Σ exp(x))`, computed from the maximum so it does not overflow.
    LogSumExp,
}

/// An element-wise operator between two tensors that broadcast (NumPy's rule, as Keras' ops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Subtract,
    /// `a * b`.
    Multiply,
    /// `a / b`.
    Divide,
}

/// `ln(x)`: `x = m·2^e` with `m` in `[1, 2)`, `ln x = e·ln 2 + ln(1 + (m - 1))`; NaN below 0,
/// `-inf` at 0.
#[inline(always)]
fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    // Subnormals scaled into the normal range first.
    let (x, shift) = if x < f32::MIN_POSITIVE { (x * 8_388_608.0, -23) } else { (x, 0) };
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127 + shift;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    e as f32 * core::f32::consts::LN_2 + super::math::ln_1p_unit(m - 1.0)
}

/// `x` to the constant power `c`: an integer power by repeated squaring (any sign of `x`), another
/// through `exp(c ln x)` (NaN for a negative `x`, as the standard library's).
fn powf(x: f32, c: f32) -> f32 {
    if c == (c as i32) as f32 && c.abs() <= 64.0 {
        let (mut base, mut n, mut acc) = (x, (c as i32).unsigned_abs(), 1.0f32);
        while n > 0 {
            if n & 1 == 1 {
                acc *= base;
            }
            base *= base;
            n >>= 1;
        }
        return if c < 0.0 { 1.0 / acc } else { acc };
    }
    if x == 0.0 {
        return if c > 0.0 { 0.0 } else { f32::INFINITY };
    }
    super::math::exp(c * ln(x))
}

/// `e^x`, with the standard library's limits: `inf` above 88.72, NaN kept.
#[inline(always)]
fn exp(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        super::math::exp(x)
    }
}

/// `√x`: NaN below 0, as the standard library's.
#[inline(always)]
fn sqrt(x: f32) -> f32 {
    if x < 0.0 || x.is_nan() {
        f32::NAN
    } else if x == f32::INFINITY {
        x
    } else {
        super::math::sqrt(x)
    }
}

impl UnaryOp {
    /// The function's value at `x` with `core` alone.
    #[inline]
    pub fn value(self, x: f32) -> f32 {
        match self {
            UnaryOp::Negative => -x,
            UnaryOp::Exp => exp(x),
            UnaryOp::Log => ln(x),
            UnaryOp::Sqrt => sqrt(x),
            UnaryOp::Square => x * x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Scale(c) => x * c,
            UnaryOp::Shift(c) => x + c,
            UnaryOp::SubtractFrom(c) => c - x,
            UnaryOp::DivideBy(c) => x / c,
            UnaryOp::Reciprocal(c) => c / x,
            UnaryOp::Power(c) => powf(x, c),
            UnaryOp::Clip(lo, hi) => x.max(lo).min(hi),
            UnaryOp::Maximum(c) => x.max(c),
            UnaryOp::Minimum(c) => x.min(c),
            UnaryOp::StopGradient => x,
        }
    }
}

/// `ops` applied one after the other to each value of `x`.
pub fn unary(x: &[f32], ops: &[UnaryOp], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = ops.iter().fold(v, |v, op| op.value(v));
    }
}

/// The most axes a sample has.
const RANK: usize = 6;

/// A broadcast of samples of shapes `a` and `b` (aligned from the last axis, an extent of 1
/// stretched): the output's shape padded to rank 6, and each operand's strides along it (0 along
/// a stretched axis). Computed when the model compiles.
pub const fn broadcast_plan(a: &[usize], b: &[usize]) -> ([usize; RANK], [usize; RANK], [usize; RANK]) {
    let (mut dims, mut sa, mut sb) = ([1usize; RANK], [0usize; RANK], [0usize; RANK]);
    let (mut ia, mut ib, mut k) = (a.len(), b.len(), RANK);
    let (mut stride_a, mut stride_b) = (1, 1);
    while k > 0 {
        k -= 1;
        let da = if ia > 0 { a[ia - 1] } else { 1 };
        let db = if ib > 0 { b[ib - 1] } else { 1 };
        dims[k] = if da == 1 { db } else { da };
        sa[k] = if da == 1 { 0 } else { stride_a };
        sb[k] = if db == 1 { 0 } else { stride_b };
        stride_a *= da;
        stride_b *= db;
        ia = ia.saturating_sub(1);
        ib = ib.saturating_sub(1);
    }
    (dims, sa, sb)
}

/// Steps `at`, a position in a shape of extents `dims`, to the next one in row-major order (the
/// last axis fastest; past the end it wraps to the start).
pub(crate) fn next_position(at: &mut [usize], dims: &[usize]) {
    for d in (0..at.len()).rev() {
        at[d] += 1;
        if at[d] < dims[d] {
            return;
        }
        at[d] = 0;
    }
}

/// `a op b` on one sample, broadcast as [`broadcast_plan`] planned.
pub fn broadcast(
    a: &[f32],
    b: &[f32],
    op: BinaryOp,
    (dims, sa, sb): ([usize; RANK], [usize; RANK], [usize; RANK]),
    y: &mut [f32],
) {
    let mut at = [0usize; RANK];
    for o in y.iter_mut() {
        let (mut i, mut j) = (0, 0);
        for d in 0..RANK {
            i += at[d] * sa[d];
            j += at[d] * sb[d];
        }
        let (u, v) = (a[i], b[j]);
        *o = match op {
            BinaryOp::Add => u + v,
            BinaryOp::Subtract => u - v,
            BinaryOp::Multiply => u * v,
            BinaryOp::Divide => u / v,
        };
        next_position(&mut at, &dims);
    }
}

/// `op` along the middle axis of one sample seen as `[outer, len, inner]`, into `[outer, inner]`.
pub fn reduce(x: &[f32], op: ReduceOp, len: usize, inner: usize, y: &mut [f32]) {
    for (p, o) in y.iter_mut().enumerate() {
        let (outer, i) = (p / inner, p % inner);
        let at = |k: usize| x[(outer * len + k) * inner + i];
        let max = (0..len).map(at).fold(f32::NEG_INFINITY, f32::max);
        *o = match op {
            ReduceOp::Sum => (0..len).map(at).sum(),
            ReduceOp::Mean => (0..len).map(at).sum::<f32>() / len as f32,
            ReduceOp::Max => max,
            ReduceOp::Min => (0..len).map(at).fold(f32::INFINITY, f32::min),
            ReduceOp::LogSumExp if !max.is_finite() => max,
            ReduceOp::LogSumExp => max + ln((0..len).map(|k| exp(at(k) - max)).sum::<f32>()),
        };
    }
}

/// Softmax (or its logarithm, `log`) along the middle axis of one sample seen as
/// `[outer, len, inner]`.
pub fn softmax_axis(x: &[f32], log: bool, len: usize, inner: usize, y: &mut [f32]) {
    for outer in 0..x.len() / (len * inner).max(1) {
        for i in 0..inner {
            let at = |k: usize| (outer * len + k) * inner + i;
            let max = (0..len).map(|k| x[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..len).map(|k| exp(x[at(k)] - max)).sum();
            for k in 0..len {
                let z = x[at(k)] - max;
                y[at(k)] = if log { z - ln(sum) } else { exp(z) / sum };
            }
        }
    }
}

/// A `matmul` of one sample's operands, planned when the model compiles: each product's rows,
/// inner size and columns, whether each operand's last two axes are read transposed, and the
/// leading axes' broadcast (as [`broadcast_plan`], in products).
pub struct MatMulPlan {
    dims: [usize; 3],
    transposed: [bool; 2],
    lead: ([usize; RANK], [usize; RANK], [usize; RANK]),
}

/// The plan of `matmul(a, b)` for operands of sample shapes `a` and `b` (rank 2 or more).
pub const fn matmul_plan(a: &[usize], b: &[usize], ta: bool, tb: bool) -> MatMulPlan {
    let (ra, rb) = (a.len(), b.len());
    let (m, k) = if ta { (a[ra - 1], a[ra - 2]) } else { (a[ra - 2], a[ra - 1]) };
    let n = if tb { b[rb - 2] } else { b[rb - 1] };
    let (lead_a, _) = a.split_at(ra - 2);
    let (lead_b, _) = b.split_at(rb - 2);
    MatMulPlan { dims: [m, k, n], transposed: [ta, tb], lead: broadcast_plan(lead_a, lead_b) }
}

/// `matmul` of one sample's `a` and `b` into `y`, as `plan` says: for each product, each output
/// a sum over the inner size in order.
pub fn matmul(a: &[f32], b: &[f32], plan: &MatMulPlan, y: &mut [f32]) {
    let [m, k, n] = plan.dims;
    let [ta, tb] = plan.transposed;
    let (dims, sa, sb) = plan.lead;
    let mut at = [0usize; RANK];
    for out in y.chunks_exact_mut((m * n).max(1)) {
        let (mut i, mut j) = (0, 0);
        for d in 0..RANK {
            i += at[d] * sa[d];
            j += at[d] * sb[d];
        }
        let (ap, bp) = (&a[i * m * k..][..m * k], &b[j * k * n..][..k * n]);
        for r in 0..m {
            for c in 0..n {
                let mut sum = 0.0f32;
                for q in 0..k {
                    let u = if ta { ap[q * m + r] } else { ap[r * k + q] };
                    let v = if tb { bp[c * k + q] } else { bp[q * n + c] };
                    sum += u * v;
                }
                out[r * n + c] = sum;
            }
        }
        next_position(&mut at, &dims);
    }
}

/// `one_hot` of one sample's token ids into rows of `classes`; an id outside `0..classes` is an
/// error naming model input `input` and its position.
pub fn one_hot(ids: &[i32], (classes, input): (usize, usize), y: &mut [f32]) -> Result<(), BadId> {
    y.fill(0.0);
    for (position, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= classes {
            return Err(BadId { input, position, id: id as i64, bound: classes });
        }
        y[position * classes + id as usize] = 1.0;
    }
    Ok(())
}

/// `gather(x, ids)` of one sample: the rows of `x` (`rows` of them) its token ids name; an id
/// outside `0..rows` is an error naming model input `input` and its position.
pub fn gather(x: &[f32], ids: &[i32], (rows, input): (usize, usize), y: &mut [f32]) -> Result<(), BadId> {
    let w = x.len() / rows.max(1);
    for (position, (&id, out)) in ids.iter().zip(y.chunks_exact_mut(w.max(1))).enumerate() {
        if id < 0 || id as usize >= rows {
            return Err(BadId { input, position, id: id as i64, bound: rows });
        }
        out.copy_from_slice(&x[id as usize * w..][..w]);
    }
    Ok(())
}

/// Positions `start..end` of the middle axis of one sample seen as `[outer, len, inner]`.
pub fn slice(x: &[f32], len: usize, inner: usize, (start, end): (usize, usize), y: &mut [f32]) {
    let w = (end - start) * inner;
    for (o, dst) in y.chunks_exact_mut(w.max(1)).enumerate() {
        dst.copy_from_slice(&x[(o * len + start) * inner..][..w]);
    }
}

/// `Resizing`, `CenterCrop` and `RandomCrop` at inference: each `[h, w, c]` image of `x` read at
/// output row `r` between input rows `rows[r].0` and `rows[r].1` (fraction `rows[r].2`), and
/// likewise along columns, in TensorFlow's order of operations (the taps are computed when the
/// model compiles; the same values as the layer's).
pub fn resize(
    x: &[f32],
    rows: &[(usize, usize, f32)],
    cols: &[(usize, usize, f32)],
    (w, c): (usize, usize),
    y: &mut [f32],
) {
    let out = rows.len() * cols.len() * c;
    let inp = if y.is_empty() { 0 } else { x.len() / (y.len() / out) };
    for (src, dst) in x.chunks_exact(inp.max(1)).zip(y.chunks_exact_mut(out.max(1))) {
        let mut o = dst.chunks_exact_mut(c);
        for &(r0, r1, fr) in rows {
            for &(q0, q1, fq) in cols {
                let Some(o) = o.next() else { return };
                let (tl, tr) = (&src[(r0 * w + q0) * c..][..c], &src[(r0 * w + q1) * c..][..c]);
                let (bl, br) = (&src[(r1 * w + q0) * c..][..c], &src[(r1 * w + q1) * c..][..c]);
                for ch in 0..c {
                    let top = tl[ch] + (tr[ch] - tl[ch]) * fq;
                    let bottom = bl[ch] + (br[ch] - bl[ch]) * fq;
                    o[ch] = top + (bottom - top) * fr;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `core` functions against the standard library's, over the ranges user math meets.
    #[test]
    fn core_functions_are_close_to_the_standard_librarys() {
        for i in 1..4000 {
            let x = i as f32 * 0.01;
            assert!((ln(x) - x.ln()).abs() <= 2e-7 * x.ln().abs().max(1.0), "ln {x}");
            assert!((powf(x, 1.5) - x.powf(1.5)).abs() <= 1e-6 * x.powf(1.5).max(1.0), "pow {x}");
            assert_eq!(powf(-x, 2.0), x * x);
        }
        assert!(ln(-1.0).is_nan() && ln(0.0) == f32::NEG_INFINITY && ln(1e-40) < -90.0);
        assert!(exp(100.0).is_infinite() && sqrt(-1.0).is_nan() && exp(f32::NAN).is_nan());
        let plan = broadcast_plan(&[4, 1], &[1, 5]);
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0, 50.0]);
        let mut y = [0.0; 20];
        broadcast(&a, &b, BinaryOp::Add, plan, &mut y);
        assert_eq!((y[0], y[4], y[19]), (11.0, 51.0, 54.0));
    }
}
