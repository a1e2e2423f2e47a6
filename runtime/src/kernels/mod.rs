//! The primitive set every layer is built from: matrix products (matrixmultiply's sgemm) and the
//! element-wise activation kernels with their derivatives side by side.

pub mod activation;
pub mod matmul;
pub mod parallel;
pub mod simd;

pub use activation::ActKind;
pub use matmul::{gemm, sgemm_calls};
