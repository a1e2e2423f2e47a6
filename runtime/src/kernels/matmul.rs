//! Matrix products on row-major `f32` slices, through matrixmultiply's sgemm.
//!
//! Every matrix product in kiln (Dense forward, and both backward products) goes through
//! [`gemm`], so the choice of kernel, and its threading, is made in one place.

use std::sync::atomic::{AtomicUsize, Ordering};

static SGEMM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many sgemm calls this process has made. matrixmultiply allocates one packing buffer per
/// call for all but the smallest products; the allocation test uses this count to tell those
/// apart from kiln's own allocations.
pub fn sgemm_calls() -> usize {
    SGEMM_CALLS.load(Ordering::Relaxed)
}

/// A row-major matrix operand: `data` holds `rows * cols` values, read transposed when `t`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// The values, row-major as stored.
    pub data: &'a [f32],
    /// Read as its transpose.
    pub t: bool,
}

impl<'a> Mat<'a> {
    /// The matrix as stored.
    pub fn n(data: &'a [f32]) -> Self {
        Mat { data, t: false }
    }
    /// The transpose of the stored matrix.
    pub fn t(data: &'a [f32]) -> Self {
        Mat { data, t: true }
    }
}

/// `c[m×n] = a[m×k] · b[k×n] + beta · c`, all row-major; `a` and `b` may be read transposed.
///
/// With `beta = 0` the previous contents of `c` are ignored (NaN included); `beta = 1`
/// accumulates, which shared layers use to add the parameter gradients of every use.
///
/// # Panics
/// When a slice is shorter than its dimensions say: that is a bug in kiln, never user input.
pub fn gemm(m: usize, k: usize, n: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], beta: f32) {
    assert!(a.data.len() >= m * k && b.data.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|v| *v *= beta);
        return;
    }
    // (row stride, column stride) of the logical matrix.
    let (rsa, csa) = if a.t { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if b.t { (1, k as isize) } else { (n as isize, 1) };
    SGEMM_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the assertion above guarantees every index the strides reach is in bounds:
    // a spans m*k values, b spans k*n, c spans m*n, and `c` is borrowed mutably alone.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            rsa,
            csa,
            b.data.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out[j] (+)= Σ_i g[i, j]`: the bias gradient, a column sum of a row-major `[rows, cols]` matrix.
pub fn column_sums(g: &[f32], cols: usize, out: &mut [f32], accumulate: bool) {
    if !accumulate {
        out.fill(0.0);
    }
    for row in g.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], at: bool, b: &[f32], bt: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if at { a[p * m + i] } else { a[i * k + p] };
                    let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_for_every_transpose() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for at in [false, true] {
            for bt in [false, true] {
                let want = naive(m, k, n, &a, at, &b, bt);
                let mut c = vec![f32::NAN; m * n];
                gemm(m, k, n, Mat { data: &a, t: at }, Mat { data: &b, t: bt }, &mut c, 0.0);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5, "{x} vs {y}");
                }
                gemm(m, k, n, Mat { data: &a, t: at }, Mat { data: &b, t: bt }, &mut c, 1.0);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn column_sums_adds_rows() {
        let g = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 3];
        column_sums(&g, 3, &mut out, false);
        assert_eq!(out, [5.0, 7.0, 9.0]);
        column_sums(&g, 3, &mut out, true);
        assert_eq!(out, [10.0, 14.0, 18.0]);
    }
}
