//! Matrix products on row-major `f32` slices.
//!
//! Every matrix product in kiln (Dense forward, and both backward products) goes through
//! [`gemm`], so the choice of kernel, and its threading, is made in one place: with AVX-512 an
//! unpacked register kernel ([`gemm_small`]) for untransposed operands and the packed kernel
//! with 32-wide panels ([`super::packed`]) for the others; with AVX2 the packed kernel with
//! 16-wide panels for all; matrixmultiply's sgemm on CPUs without AVX2.

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

/// Products with at most this many rows (one sample, or a few) use the row kernel [`axpy_rows`]
/// instead of sgemm, which would repack the whole weight matrix for a single row.
pub const SMALL_ROWS: usize = 4;

/// Products of at least this many flops are split across the threads (one part per half of it).
/// Below it (a batch of 32 through a 784 × 128 layer is 6.4 million), handing half to another
/// thread costs more than it saves: W1 ran at 0.85× on two threads with 4 million here.
pub const PARALLEL_FLOPS: usize = 16_000_000;

/// `c[m×n] = a[m×k] · b[k×n] + beta · c`, all row-major; `a` and `b` may be read transposed.
///
/// With `beta = 0` the previous contents of `c` are ignored (NaN included); `beta = 1`
/// accumulates, which shared layers use to add the parameter gradients of every use.
///
/// A few rows times a row-major matrix go through [`axpy_rows`]; with AVX-512, products of
/// untransposed operands take the unpacked [`gemm_small`]; large products are split by rows
/// across the threads (see [`super::parallel`]); everything else is one call of the packed
/// kernel where the CPU has AVX2, or of sgemm.
///
/// # Panics
/// When a slice is shorter than its dimensions say: that is a bug in kiln, never user input.
pub fn gemm(m: usize, k: usize, n: usize, a: Mat<'_>, b: Mat<'_>, c: &mut [f32], beta: f32) {
    assert!(a.data.len() >= m * k && b.data.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 {
        c.iter_mut().for_each(|v| *v *= beta);
        return;
    }
    if n == 1 {
        // A matrix times a vector (a Dense(1) head, or its weight gradient): read once in order,
        // no packing (which cost four fifths of such a product through sgemm). `b` is a
        // contiguous vector either way it is stored.
        let v = &b.data[..k];
        match a.t {
            // `a` stored as [k, m]: c = Σ_p v[p] · row p.
            true => axpy_rows(v, &a.data[..k * m], c, beta),
            false => dot_rows(&a.data[..m * k], v, c, beta),
        }
        return;
    }
    if m <= SMALL_ROWS && !a.t && !b.t {
        for (row, out) in a.data.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            axpy_rows(row, &b.data[..k * n], out, beta);
        }
        return;
    }
    // (row stride, column stride) of the logical matrix.
    let (rsa, csa) = if a.t { (1, m) } else { (k, 1) };
    let (rsb, csb) = if b.t { (1, k) } else { (n, 1) };
    // Runs of rows on the threads, each at least PARALLEL_FLOPS / 2 of work and a multiple of 8
    // rows (whole kernel tiles).
    let flops = 2 * m * k * n;
    // A product into a few columns (a classifier head's output or its weight gradient, e.g.
    // W5's [64, 5408] · [5408, 10]) pays for a second thread sooner: each thread packs only its
    // rows of `a`, and `b` is small beside them. (Wider ones at this size, W1's weight gradient
    // [784, 32] · [32, 128], ran slower split.)
    let tall = n <= 16 && m >= 64 && flops >= PARALLEL_FLOPS / 4;
    let parts = if (flops >= PARALLEL_FLOPS && m >= 16) || tall {
        super::parallel::threads().min(m / 8).min((8 * flops / PARALLEL_FLOPS).max(2))
    } else {
        1
    };
    let (ad, bd) = (a.data, b.data);
    // Neither operand transposed, on a CPU with AVX-512: the unpacked register kernel, faster
    // than sgemm on every such Dense shape measured (one core: `[32, 784] · [784, 128]` 80 → 114
    // GFLOP/s, `[128, 512] · [512, 512]` 101 → 115, `[1000, 512] · [512, 512]` 84 → 105), split
    // by rows only, so each element's sum is the same whatever the threads.
    if unpacked(a.t || b.t, n) {
        return super::parallel::for_rows(c, n, parts, 4, parts > 1, |r0, part| {
            gemm_small(part.len() / n, k, n, &ad[r0 * k..], (k, 1), bd, n, part, n, beta)
        });
    }
    if parts < 2 {
        return strided(m, k, n, a.data, (rsa, csa), b.data, (rsb, csb), c, n, beta);
    }
    // Few rows against a wide `b` (a small batch through a large layer): split the columns, so
    // each thread packs only its part of `b` (split by rows, every thread would pack all of it).
    if m < 8 * k.min(n) / 16 && n >= 64 {
        let parts = parts.min(n / 32);
        let per = n.div_ceil(parts).next_multiple_of(32);
        let base = CPtr(c.as_mut_ptr());
        let len = c.len();
        super::parallel::for_each(n.div_ceil(per), true, &|p| {
            let (j0, j1) = (p * per, ((p + 1) * per).min(n));
            assert!((m - 1) * n + j1 <= len && (k - 1) * rsb + (j1 - 1) * csb < bd.len());
            // SAFETY: part `p` writes only columns j0..j1 of `c`'s rows, which no other part
            // touches, and the assertion bounds every element it reaches.
            unsafe { product(m, k, j1 - j0, ad, (rsa, csa), &bd[j0 * csb..], (rsb, csb), base.at(j0), n, beta) }
        });
        return;
    }
    super::parallel::for_rows(c, n, parts, 8, true, |r0, part| {
        strided(part.len() / n, k, n, &ad[r0 * rsa..], (rsa, csa), bd, (rsb, csb), part, n, beta)
    });
}

/// Whether [`gemm`] takes [`gemm_small`] for a product: with AVX-512, neither operand
/// transposed, and at least 16 columns (fewer leave most of a 16-lane register idle).
fn unpacked(transposed: bool, n: usize) -> bool {
    !transposed && n >= 16 && super::simd::avx512()
}

/// `c`'s base pointer, shared by the threads that write disjoint columns of it.
struct CPtr(*mut f32);

impl CPtr {
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: used only by `gemm`'s column split, where each thread writes its own columns.
unsafe impl Sync for CPtr {}

/// Whether the products that [`gemm_small`] does not take go through the packed kernels
/// ([`super::packed`]) rather than sgemm: on CPUs with AVX2 and FMA.
fn packed() -> bool {
    super::packed::available()
}

/// One product on this thread writing through a raw `c` (row stride `ldc`): the packed
/// kernel where [`packed`] says so, one sgemm call otherwise.
///
/// # Safety
/// As [`sgemm_raw`].
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    // SAFETY: as the caller guarantees; `packed()` implies the CPU has AVX2 and FMA.
    unsafe {
        if packed() {
            super::packed::gemm_raw(m, k, n, a, sa, b, sb, c, ldc, beta)
        } else {
            sgemm_raw(m, k, n, a, sa, b, sb, c, ldc, beta)
        }
    }
}

/// One sgemm call writing through a raw `c` (row stride `ldc`).
///
/// # Safety
/// `c` must be valid for writes of `m` rows of `n` values `ldc` apart, which no other thread
/// reads or writes during the call; `a` and `b` must hold every element their strides reach.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: *mut f32,
    ldc: usize,
    beta: f32,
) {
    assert!((m - 1) * rsa + (k - 1) * csa < a.len());
    assert!((k - 1) * rsb + (n - 1) * csb < b.len());
    SGEMM_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller guarantees `c`; the assertions bound `a` and `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c,
            ldc as isize,
            1,
        );
    }
}

/// `c[m×n] = a[m×k] · b[k×n] + beta · c` on sub-matrices: `a` and `b` given by their (row,
/// column) strides, `c` by its row stride `ldc` (a block of columns of a wider matrix). One sgemm
/// call on this thread; the recurrent layers use it for their per-gate blocks.
///
/// # Panics
/// When a stride reaches outside its slice: a bug in kiln, never user input.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            c[r * ldc..r * ldc + n].iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    strided(m, k, n, a, sa, b, sb, c, ldc, beta)
}

/// One product on this thread ([`product`]) on strided operands, after checking that every index
/// they reach is in bounds.
#[allow(clippy::too_many_arguments)]
fn strided(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len());
    // SAFETY: the assertion bounds every element of `c` the call writes, and `c` is borrowed
    // mutably alone; `product` checks `a` and `b`.
    unsafe { product(m, k, n, a, (rsa, csa), b, (rsb, csb), c.as_mut_ptr(), ldc, beta) }
}

super::simd::multiversion! {
    /// `out[i] = a[i, :] · v + beta · out[i]` for the rows of `a` (`[out.len(), v.len()]`), each
    /// a sum over 16 lanes in blocks, then the lanes added in order.
    pub fn dot_rows(a: &[f32], v: &[f32], out: &mut [f32], beta: f32) {
        let k = v.len();
        for (o, row) in out.iter_mut().zip(a.chunks_exact(k)) {
            let mut acc = [0.0f32; 16];
            let (blocks, tail) = (row.chunks_exact(16), row.len() / 16 * 16);
            for (r, x) in blocks.zip(v.chunks_exact(16)) {
                for l in 0..16 {
                    acc[l] += r[l] * x[l];
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for (r, x) in row[tail..].iter().zip(&v[tail..]) {
                sum += r * x;
            }
            *o = if beta == 0.0 { sum } else { beta * *o + sum };
        }
    }
}

super::simd::multiversion! {
    /// `out[n] = x[k] · b[k×n] + beta · out`, as a sum of the rows of `b` scaled by `x`: reads the
    /// weights once, in order, with no packing, and skips the rows where `x` is zero (a ReLU's
    /// output is often half zeros).
    pub fn axpy_rows(x: &[f32], b: &[f32], out: &mut [f32], beta: f32) {
        let n = out.len();
        if beta == 0.0 {
            out.fill(0.0);
        } else if beta != 1.0 {
            out.iter_mut().for_each(|v| *v *= beta);
        }
        // Four weight rows per pass over `out`: one load and one store of `out` for four rows.
        let quads = x.len() / 4;
        for q in 0..quads {
            let xs = &x[4 * q..4 * q + 4];
            if xs.iter().all(|v| *v == 0.0) {
                continue;
            }
            let rows = &b[4 * q * n..(4 * q + 4) * n];
            let (r0, rest) = rows.split_at(n);
            let (r1, rest) = rest.split_at(n);
            let (r2, r3) = rest.split_at(n);
            let (x0, x1, x2, x3) = (xs[0], xs[1], xs[2], xs[3]);
            for ((((o, a), b1), c), d) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                *o += x0 * a + x1 * b1 + x2 * c + x3 * d;
            }
        }
        for (&xp, row) in x[4 * quads..].iter().zip(b[4 * quads * n..].chunks_exact(n)) {
            if xp != 0.0 {
                for (o, w) in out.iter_mut().zip(row) {
                    *o += xp * w;
                }
            }
        }
    }
}

/// `c[m×n] = a[m×k] · b[k×n] + beta · c` for a large product on this thread, `a` by its (row,
/// column) strides, `b` row-major (row stride `ldb`), `c` with row stride `ldc`: [`gemm_small`]
/// where the CPU has AVX-512, whose 4 × 64 register block needs no packing (sgemm repacks `a` on
/// every call; the unpacked kernel ran 1.1–2× faster on every shape of the recurrent and
/// convolution layers measured, e.g. 99 against 50 GFLOP/s on `[8192, 288] · [288, 64]`), the
/// packed AVX2 kernel where the CPU has AVX2 (through [`gemm_strided`]), sgemm elsewhere.
/// Each element is computed by the same operations however the rows are split among callers.
#[allow(clippy::too_many_arguments)]
pub fn gemm_rows(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    if super::simd::avx512() {
        return gemm_small(m, k, n, a, sa, b, ldb, c, ldc, beta);
    }
    gemm_strided(m, k, n, a, sa, b, (ldb, 1), c, ldc, beta)
}

/// The rows of `b` [`gemm_small`] sums over at a time when `k` is long: 256 rows of a 256-wide
/// `b` (256 KB) stay in L2 while every row of `c` passes over them.
const SMALL_KC: usize = 256;

/// `c[m×n] = a[m×k] · b[k×n] + beta · c` for the products of a recurrent layer: a step's state
/// `[batch, units]` times a recurrent kernel held for the whole sequence, and the products over
/// all of a chunk's steps and a convolution's (through [`gemm_rows`]: the input projection, the
/// weight gradients, whose `a` is read transposed, the input gradient), where sgemm's packing of
/// both operands on every call cost more than it saved. `a` is given by its (row, column) strides, `b` and `c` by their row
/// strides. No packing: a block of rows of `c` by 32 or 64 columns stays in registers while `b`'s
/// block of columns streams from cache, one broadcast and a few fused multiply-adds per loaded
/// vector; long sums go in blocks of `SMALL_KC` rows of `b`. With AVX2 but not AVX-512, the
/// packed AVX2 kernel (whose packing of `b` costs a few percent here, against a 2 × 32 block
/// that left the FMA units waiting: 55% of the peak, 62–83% packed); the same sums in a plain
/// loop without AVX2. Deterministic: each element's sum runs over `k` in order.
///
/// # Panics
/// When a stride reaches outside its slice: a bug in kiln, never user input.
#[allow(clippy::too_many_arguments)]
pub fn gemm_small(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldb >= n && ldc >= n && (m - 1) * ldc + n <= c.len());
    assert!(k == 0 || ((m - 1) * sa.0 + (k - 1) * sa.1 < a.len() && (k - 1) * ldb + n <= b.len()));
    if k > 2 * SMALL_KC {
        // A long sum (a weight gradient over every step of a sequence) in blocks of `b`'s rows
        // that stay in cache while every row of `c` passes over them; each block adds onto the
        // sums so far, in the same order as one pass, so the same bits.
        for k0 in (0..k).step_by(SMALL_KC) {
            let (kb, beta) = (SMALL_KC.min(k - k0), if k0 == 0 { beta } else { 1.0 });
            gemm_small(m, kb, n, &a[k0 * sa.1..], sa, &b[k0 * ldb..], ldb, c, ldc, beta);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx512() {
        // SAFETY: the CPU has AVX-512F (and so AVX2 and FMA), and the assertions bound every
        // access.
        unsafe { small_512(m, k, n, a, sa, b, ldb, c, ldc, beta) };
        return;
    }
    if super::simd::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, and the assertions bound every access.
        unsafe { super::packed::gemm_raw(m, k, n, a, sa, b, (ldb, 1), c.as_mut_ptr(), ldc, beta) };
        return;
    }
    small_plain(0, m, 0, n, k, a, sa, b, ldb, c, ldc, beta);
}

/// Rows `r0..r1`, columns `j0..j1` of [`gemm_small`] (the columns the vector blocks leave, or all
/// of them without AVX2): each element's sum over `p` in order, as the blocks do, so the bits do
/// not depend on which path computed an element. Two layouts go faster with the same sums: `a`
/// read transposed (its columns contiguous: a weight gradient's `xᵀ·dy` for one filter) updates a
/// whole column of `c` per `p`; rows of `a` four at a time keep four independent chains in flight.
/// Always inlined: in the AVX2/AVX-512 kernels `mul_add` is then one FMA instruction, not a call
/// to the software `fmaf` it is in a baseline build (which took 40% of a small GAN's step).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn small_plain(
    r0: usize,
    r1: usize,
    j0: usize,
    j1: usize,
    k: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    let start = |c: &mut [f32], at: usize| if beta == 0.0 { 0.0 } else { beta * c[at] };
    if rsa == 1 && ldc == 1 && r1 > r0 {
        // One column of `c`, contiguous, as is each column of `a`: a[.., p] · b[p] added for p
        // in order, a vector of rows at a time.
        for j in j0..j1 {
            for i in r0..r1 {
                c[i + j] = start(c, i + j);
            }
            for p in 0..k {
                let bp = b[p * ldb + j];
                let col = &a[p * csa + r0..p * csa + r1];
                for (ci, &av) in c[r0 + j..r1 + j].iter_mut().zip(col) {
                    *ci = av.mul_add(bp, *ci);
                }
            }
        }
        return;
    }
    for j in j0..j1 {
        let mut i = r0;
        while i + 4 <= r1 {
            let mut acc = [0.0f32; 4];
            for (r, v) in acc.iter_mut().enumerate() {
                *v = start(c, (i + r) * ldc + j);
            }
            for p in 0..k {
                let bp = b[p * ldb + j];
                for (r, v) in acc.iter_mut().enumerate() {
                    *v = a[(i + r) * rsa + p * csa].mul_add(bp, *v);
                }
            }
            for (r, v) in acc.iter().enumerate() {
                c[(i + r) * ldc + j] = *v;
            }
            i += 4;
        }
        for i in i..r1 {
            let mut acc = start(c, i * ldc + j);
            for p in 0..k {
                acc = a[i * rsa + p * csa].mul_add(b[p * ldb + j], acc);
            }
            c[i * ldc + j] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_fma(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    beta: f32,
    j0: usize,
) {
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut j = j0;
    // SAFETY: every block below reads rows < m, columns < n and p < k, inside the slices as
    // `gemm_small` asserted.
    unsafe {
        while j + 32 <= n {
            let mut i = 0;
            while i + 2 <= m {
                fma_block::<2, 4>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
                i += 2;
            }
            if i < m {
                fma_block::<1, 4>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
            }
            j += 32;
        }
        while j + 8 <= n {
            for i in 0..m {
                fma_block::<1, 1>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
            }
            j += 8;
        }
    }
    small_plain(0, m, j, n, k, a, sa, b, ldb, c, ldc, beta);
}

/// [`gemm_small`] with AVX-512: four rows by 64 columns in registers (16 accumulators), then
/// narrower blocks, and the AVX2 kernel for the last columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_512(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    beta: f32,
) {
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut j = 0;
    // SAFETY: every block reads rows < m, columns < n and p < k, inside the slices as
    // `gemm_small` asserted.
    unsafe {
        macro_rules! columns {
            ($v:literal) => {
                while j + 16 * $v <= n {
                    let mut i = 0;
                    while i + 4 <= m {
                        block_512::<4, $v>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
                        i += 4;
                    }
                    while i < m {
                        block_512::<1, $v>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
                        i += 1;
                    }
                    j += 16 * $v;
                }
            };
        }
        // One to three rows (a single sequence's step): 128 columns at a time, eight independent
        // sums per row instead of four, so the multiply-adds do not wait on each other.
        if m < 4 {
            while j + 128 <= n {
                for i in 0..m {
                    block_512::<1, 8>(i, j, k, ap, sa, bp, ldb, cp, ldc, beta);
                }
                j += 128;
            }
        }
        columns!(4);
        columns!(2);
        columns!(1);
        small_fma(m, k, n, a, sa, b, ldb, c, ldc, beta, j);
    }
}

/// Defines a register block of [`gemm_small`]: rows `i..i + R` by columns `j..j + LANES·V`,
/// accumulated in vector registers over `k`, for one instruction set.
macro_rules! register_block {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal,
     $zero:ident, $set1:ident, $load:ident, $store:ident, $mul:ident, $fmadd:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU has the instruction set; the block lies inside the operands.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        #[inline]
        unsafe fn $name<const R: usize, const V: usize>(
            i: usize,
            j: usize,
            k: usize,
            a: *const f32,
            (rsa, csa): (usize, usize),
            b: *const f32,
            ldb: usize,
            c: *mut f32,
            ldc: usize,
            beta: f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY: the caller keeps the block inside the operands.
            unsafe {
                let mut acc = [[$zero(); V]; R];
                if beta != 0.0 {
                    let vb = $set1(beta);
                    for (r, row) in acc.iter_mut().enumerate() {
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = $mul(vb, $load(c.add((i + r) * ldc + j + $lanes * v)));
                        }
                    }
                }
                for p in 0..k {
                    let brow = b.add(p * ldb + j);
                    let mut w = [$zero(); V];
                    for (v, x) in w.iter_mut().enumerate() {
                        *x = $load(brow.add($lanes * v));
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let x = $set1(*a.add((i + r) * rsa + p * csa));
                        for (v, y) in row.iter_mut().enumerate() {
                            *y = $fmadd(x, w[v], *y);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (v, x) in row.iter().enumerate() {
                        $store(c.add((i + r) * ldc + j + $lanes * v), *x);
                    }
                }
            }
        }
    };
}

register_block!(
    /// A block in AVX-512 registers (16 lanes).
    block_512, "avx512f", 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
    _mm512_mul_ps, _mm512_fmadd_ps
);

register_block!(
    /// A block in AVX2 registers (8 lanes), with fused multiply-adds.
    fma_block, "avx2,fma", 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
    _mm256_mul_ps, _mm256_fmadd_ps
);

/// `out[c, r] = m[r, c]` for `m` of `rows` rows (row stride `ld`) and `cols` columns: `out` is
/// `[cols, rows]`, row-major.
pub fn transpose(m: &[f32], rows: usize, cols: usize, ld: usize, out: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * ld + c];
        }
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
#[path = "matmul_tests.rs"]
mod tests;
