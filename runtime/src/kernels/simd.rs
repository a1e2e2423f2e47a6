//! Run-time CPU dispatch for the element-wise hot loops.
//!
//! kiln is built for the baseline x86-64 target (SSE2), where these loops vectorise 4 wide. The
//! `multiversion!` macro compiles a loop twice — once as is, once with AVX2 and FMA enabled — and
//! picks the AVX2 copy at run time when the CPU has it (the check is cached by `std`). The bodies
//! use plain `a * b + c`: `f32::mul_add` would be a libm call in the baseline copy.

/// Whether the running CPU has AVX2 and FMA.
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
