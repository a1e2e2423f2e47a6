//! Run-time CPU dispatch for the element-wise hot loops and the products.
//!
//! kiln is built for the baseline x86-64 target (SSE2), where these loops vectorise 4 wide. The
//! `multiversion!` macro compiles a loop twice — once as is, once with AVX2 and FMA enabled — and
//! picks the AVX2 copy at run time when the CPU has it. The bodies use plain `a * b + c`:
//! `f32::mul_add` would be a libm call in the baseline copy.
//!
//! [`level`] is the widest instruction set the kernels use: what the CPU has, capped by the
//! `KILN_SIMD` environment variable (`avx512`, `avx2` or `base`, read once) or by
//! [`set_max_level`]. The cap lets one machine run, test and measure the AVX2 and baseline paths
//! its users' machines take (an AVX-512 CPU measuring the AVX2 kernels); results differ between
//! levels by rounding only.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the kernels, in increasing width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The baseline target (SSE2 on x86-64, or any other architecture).
    Base = 0,
    /// AVX2 with fused multiply-add.
    Avx2 = 1,
    /// AVX-512F (with AVX2 and FMA).
    Avx512 = 2,
}

/// The cap: `UNSET` until the first [`level`] reads `KILN_SIMD`.
static CAP: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// The widest level the CPU supports, whatever the cap.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Base
}

/// The level the kernels use: [`detected`], capped by `KILN_SIMD` or [`set_max_level`].
#[inline]
pub fn level() -> Level {
    let cap = match CAP.load(Ordering::Relaxed) {
        UNSET => {
            let cap = match std::env::var("KILN_SIMD").as_deref() {
                Ok("base") => Level::Base,
                Ok("avx2") => Level::Avx2,
                _ => Level::Avx512,
            };
            CAP.store(cap as u8, Ordering::Relaxed);
            cap
        }
        0 => Level::Base,
        1 => Level::Avx2,
        _ => Level::Avx512,
    };
    detected().min(cap)
}

/// Caps the kernels at `max` (`None`: the CPU's widest again) for the whole process, overriding
/// `KILN_SIMD`. For tests and measurements of a narrower machine's paths; the products of a model
/// trained under one cap may differ from another's in the last bits.
pub fn set_max_level(max: Option<Level>) {
    CAP.store(max.unwrap_or(Level::Avx512) as u8, Ordering::Relaxed);
}

/// Whether the kernels may use AVX2 and FMA.
#[inline]
pub fn avx2_fma() -> bool {
    level() >= Level::Avx2
}

/// Whether the kernels may use AVX-512F.
#[inline]
pub fn avx512() -> bool {
    level() >= Level::Avx512
}

/// Defines `pub fn $name(..)` that runs an AVX2+FMA-compiled copy of its body when the CPU has
/// those features, and the baseline copy otherwise.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn wide($($arg: $ty),*) $body
            fn base($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if $crate::kernels::simd::avx2_fma() {
                // SAFETY: the CPU supports the features `wide` was compiled for.
                return unsafe { wide($($arg),*) };
            }
            base($($arg),*)
        }
    };
}

pub(crate) use multiversion;
