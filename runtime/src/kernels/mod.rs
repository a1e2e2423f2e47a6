//! The primitive set every layer is built from: matrix products (kiln's register kernels, with
//! matrixmultiply's sgemm as the portable fallback) and the
//! element-wise activation kernels with their derivatives side by side.

pub mod activation;
pub mod conv;
pub mod fastmath;
pub mod matmul;
pub mod packed;
pub mod pairwise;
pub mod parallel;
pub mod peak;
pub mod simd;

pub use activation::ActKind;
pub use matmul::{gemm, sgemm_calls};

/// The index of the first NaN or infinite value, if any. A branch-free pass per block vectorises;
/// only a block holding a bad value is searched.
pub fn first_non_finite(data: &[f32]) -> Option<usize> {
    const BLOCK: usize = 4096;
    let block = data.chunks(BLOCK).position(|c| !c.iter().fold(true, |ok, v| ok & v.is_finite()))?;
    data[block * BLOCK..].iter().position(|v| !v.is_finite()).map(|j| block * BLOCK + j)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_first_bad_value_in_any_block() {
        let mut v = vec![1.0f32; 10_000];
        assert_eq!(super::first_non_finite(&v), None);
        v[9_000] = f32::INFINITY;
        v[5_000] = f32::NAN;
        assert_eq!(super::first_non_finite(&v), Some(5_000));
    }
}
