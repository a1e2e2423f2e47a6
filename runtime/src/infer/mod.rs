//! Inference with no heap and no standard library: the kernels the code generated for a model's
//! `infer` calls, on slices whose sizes the model's static shapes fix, with scratch space the
//! caller owns and weights read in place from the binary's static data.
//!
//! This module is all of `kiln-runtime` that builds without its `std` feature
//! (`default-features = false`): `#![no_std]` and no `alloc`.

pub(crate) mod cpu;
mod kernels;
pub mod math;
pub(crate) mod ops;
mod sequence;

pub use cpu::level;
pub use kernels::{
    Bf16, Elem, F16, Kernel, Merge, Resize, Window, activation, batch_norm, concatenate, conv, conv_transpose, dense,
    depthwise, dot, global_average_masked, global_pool, layer_norm, leaky_relu, merge, normalize, permute,
    permute_plan, pool, prelu, prelu_plan, resample, rescale, separable,
};
pub use math::ActKind;
pub use ops::{
    BinaryOp, MatMulPlan, ReduceOp, UnaryOp, broadcast, broadcast_plan, gather, matmul, matmul_plan, one_hot, reduce,
    resize, slice, softmax_axis, unary,
};
pub use sequence::{
    Attention, AttentionWeights, BadId, Cell, Gate, MergeMode, Recurrence, RecurrentWeights, attention, bidirectional,
    embedding, masking, recurrent,
};

/// Aligns what it holds to 64 bytes: `static W: &Align64<[u8; N]> = &Align64(*include_bytes!(..))`
/// puts a weights file in the binary where its f32 tensors can be read in place.
#[repr(C, align(64))]
pub struct Align64<T: ?Sized>(pub T);

/// `len` f32 values at byte `start` of embedded little-endian data, read in place.
///
/// # Panics
/// If the range is outside `bytes` or not 4-byte aligned: the generated code passes ranges
/// it checked when the model compiled.
#[cfg(target_endian = "little")]
pub fn f32s(bytes: &'static [u8], start: usize, len: usize) -> &'static [f32] {
    let range = &bytes[start..start + len * 4];
    assert!((range.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()), "misaligned f32 weights");
    // SAFETY: in bounds and aligned (checked above); every bit pattern is an f32; little-endian
    // bytes are the target's f32s.
    unsafe { core::slice::from_raw_parts(range.as_ptr().cast::<f32>(), len) }
}

/// `len` bfloat16 values at byte `start` of embedded little-endian data, read in place.
///
/// # Panics
/// As [`f32s`], for 2-byte alignment.
#[cfg(target_endian = "little")]
pub fn bf16s(bytes: &'static [u8], start: usize, len: usize) -> &'static [Bf16] {
    let range = &bytes[start..start + len * 2];
    assert!((range.as_ptr() as usize).is_multiple_of(core::mem::align_of::<Bf16>()), "misaligned bf16 weights");
    // SAFETY: in bounds and aligned; Bf16 is a transparent u16, any bit pattern valid.
    unsafe { core::slice::from_raw_parts(range.as_ptr().cast::<Bf16>(), len) }
}

/// `len` half-precision values at byte `start` of embedded little-endian data, read in place.
///
/// # Panics
/// As [`f32s`], for 2-byte alignment.
#[cfg(target_endian = "little")]
pub fn f16s(bytes: &'static [u8], start: usize, len: usize) -> &'static [F16] {
    let range = &bytes[start..start + len * 2];
    assert!((range.as_ptr() as usize).is_multiple_of(core::mem::align_of::<F16>()), "misaligned f16 weights");
    // SAFETY: in bounds and aligned; F16 is a transparent u16, any bit pattern valid.
    unsafe { core::slice::from_raw_parts(range.as_ptr().cast::<F16>(), len) }
}

/// `len` int8 values at byte `start` of embedded data, read in place.
pub fn i8s(bytes: &'static [u8], start: usize, len: usize) -> &'static [i8] {
    let range = &bytes[start..start + len];
    // SAFETY: i8 and u8 have one size and alignment; any bit pattern is valid.
    unsafe { core::slice::from_raw_parts(range.as_ptr().cast::<i8>(), len) }
}

/// Splits the scratch space around `start..end`: what lies before, the range itself (a layer's
/// output), and what lies after (where the layer's inputs are read).
#[inline(always)]
pub fn split(scratch: &mut [f32], start: usize, end: usize) -> (&[f32], &mut [f32], &[f32]) {
    let (lo, rest) = scratch.split_at_mut(start);
    let (mid, hi) = rest.split_at_mut(end - start);
    (lo, mid, hi)
}
