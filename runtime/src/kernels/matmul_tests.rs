//! The products against plain sums: every kernel, shape and operand order.

use super::*;

/// The register-blocked kernel against plain sums, on shapes with odd rows and ragged columns,
/// strided operands and both betas.
#[test]
fn gemm_small_matches_plain_sums() {
    // (6, 1100, 70) sums in blocks of SMALL_KC rows, the last one short; (2, 70, 300) takes
    // the few-row blocks of 128 columns.
    for &(m, k, n) in &[(1, 1, 1), (2, 3, 32), (5, 7, 70), (64, 64, 256), (3, 0, 40), (6, 1100, 70), (2, 70, 300)] {
        let (lda, ldb, ldc) = (k + 3, n + 5, n + 2);
        let a: Vec<f32> = (0..m * lda).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
        let b: Vec<f32> = (0..k.max(1) * ldb).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        for beta in [0.0, 1.0] {
            let mut c: Vec<f32> = (0..m * ldc).map(|i| (i % 3) as f32).collect();
            let mut want = c.clone();
            small_plain(0, m, 0, n, k, &a, (lda, 1), &b, ldb, &mut want, ldc, beta);
            gemm_small(m, k, n, &a, (lda, 1), &b, ldb, &mut c, ldc, beta);
            for (i, (g, w)) in c.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{m}x{k}x{n} beta {beta} [{i}]: {g} vs {w}");
            }
            // `a` read transposed: the same values stored column-major.
            let at: Vec<f32> =
                (0..k * m + 1).map(|q| if q < k * m { a[(q % m) * lda + q / m] } else { 0.0 }).collect();
            gemm_small(m, k, n, &at, (1, m), &b, ldb, &mut c, ldc, 0.0);
            let mut want0 = vec![0.0; m * ldc];
            small_plain(0, m, 0, n, k, &a, (lda, 1), &b, ldb, &mut want0, ldc, 0.0);
            for (i, (g, w)) in c.iter().zip(&want0).enumerate().filter(|(i, _)| i % ldc < n) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "transposed {m}x{k}x{n} [{i}]: {g} vs {w}");
            }
        }
    }
}

/// The leftover-column paths (a transposed `a` into one contiguous column, four rows at a
/// time) give each element the very sum, bit for bit, of one chain of multiply-adds over `p`
/// in order, which is what the vector blocks compute.
#[test]
fn leftover_columns_are_the_plain_chains_bit_for_bit() {
    for &(m, k, n) in &[(7, 5, 1), (288, 300, 1), (9, 33, 3), (1, 4, 2)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        for (sa, name) in [((1, m), "transposed"), ((k, 1), "rows")] {
            for beta in [0.0, 0.5] {
                let mut c: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
                let want: Vec<f32> = (0..m * n)
                    .map(|q| {
                        let (i, j) = (q / n, q % n);
                        let mut acc = if beta == 0.0 { 0.0 } else { beta * c[q] };
                        for p in 0..k {
                            acc = a[i * sa.0 + p * sa.1].mul_add(b[p * n + j], acc);
                        }
                        acc
                    })
                    .collect();
                small_plain(0, m, 0, n, k, &a, sa, &b, n, &mut c, n, beta);
                assert_eq!(c, want, "{name} {m}x{k}x{n} beta {beta}");
            }
        }
    }
}

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
    // (5, 7, 3) through sgemm; one column (a matrix times a vector, both operand orders) through
    // the dot and axpy loops, with lengths that leave a tail after the 16-lane blocks.
    for (m, k, n) in [(5, 7, 3), (9, 37, 1), (300, 1, 1), (1, 50, 1)] {
        products_match_naive(m, k, n);
    }
}

fn products_match_naive(m: usize, k: usize, n: usize) {
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
    for at in [false, true] {
        for bt in [false, true] {
            let want = naive(m, k, n, &a, at, &b, bt);
            let mut c = vec![f32::NAN; m * n];
            gemm(m, k, n, Mat { data: &a, t: at }, Mat { data: &b, t: bt }, &mut c, 0.0);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5, "{m}x{k}x{n} at {at} bt {bt}: {x} vs {y}");
            }
            gemm(m, k, n, Mat { data: &a, t: at }, Mat { data: &b, t: bt }, &mut c, 1.0);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn row_kernel_and_threaded_split_match_naive() {
    for (m, k, n) in [(1, 37, 19), (3, 5, 7), (200, 150, 140)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for at in [false, true] {
            let want = naive(m, k, n, &a, at, &b, false);
            let mut c = vec![1.0; m * n];
            gemm(m, k, n, Mat { data: &a, t: at }, Mat::n(&b), &mut c, 0.0);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-3 * (1.0 + y.abs()), "{m}x{k}x{n}: {x} vs {y}");
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

/// The packed kernels (AVX2 and AVX-512 tiles) give each element the very chain of multiply-adds over `p` in order
/// that the other kernels compute, bit for bit, on odd sizes (1 × 1 × 1 up to primes past the
/// tile, the row block `MC`, the depth block `KC` and the column block `NC`), for every operand
/// order, with `c` a block of a wider matrix and both betas.
#[test]
fn packed_kernel_is_the_plain_chains_bit_for_bit() {
    if !super::super::packed::available() {
        return;
    }
    let shapes =
        [(1, 1, 1), (4, 0, 20), (5, 3, 15), (7, 17, 33), (127, 263, 37), (13, 521, 17), (3, 2, 2053), (241, 31, 131)];
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let ldc = n + 3;
        for (at, bt, beta) in [(false, false, 0.0), (true, false, 1.0), (false, true, 0.5), (true, true, 0.0)] {
            let sa = if at { (1, m) } else { (k, 1) };
            let sb = if bt { (1, k) } else { (n, 1) };
            let c0: Vec<f32> = (0..m * ldc).map(|i| (i % 5) as f32 - 2.0).collect();
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    let mut acc = if beta == 0.0 { 0.0 } else { beta * c0[i * ldc + j] };
                    for p in 0..k {
                        acc = a[i * sa.0 + p * sa.1].mul_add(b[p * sb.0 + j * sb.1], acc);
                    }
                    want[i * ldc + j] = acc;
                }
            }
            let mut c = c0.clone();
            // SAFETY: the CPU has AVX2 and FMA; `c` holds m rows of ldc ≥ n values.
            unsafe { super::super::packed::gemm_raw(m, k, n, &a, sa, &b, sb, c.as_mut_ptr(), ldc, beta) };
            assert_eq!(c, want, "{m}x{k}x{n} at {at} bt {bt} beta {beta}");
            // Both panel widths where the CPU has both: the AVX2 tile, and the AVX-512 one
            // (`gemm_raw` answers an empty sum itself).
            if k == 0 {
                continue;
            }
            let mut c = c0.clone();
            // SAFETY: as above.
            unsafe { super::super::packed::run::<16>(m, k, n, &a, sa, &b, sb, c.as_mut_ptr(), ldc, beta) };
            assert_eq!(c, want, "16 wide: {m}x{k}x{n} at {at} bt {bt} beta {beta}");
            if super::super::simd::avx512() {
                let mut c = c0.clone();
                // SAFETY: as above, and the CPU has AVX-512.
                unsafe { super::super::packed::run::<32>(m, k, n, &a, sa, &b, sb, c.as_mut_ptr(), ldc, beta) };
                assert_eq!(c, want, "32 wide: {m}x{k}x{n} at {at} bt {bt} beta {beta}");
            }
        }
    }
}
