//! The widest vector instructions the CPU offers, found once at run time with `cpuid` (which
//! `core` has, so this works without the standard library) and kept in an atomic.

use core::sync::atomic::{AtomicU8, Ordering};

/// What the kernels may use: 0 the baseline, 1 AVX2 + FMA, 2 AVX-512 (F, BW, VL) as well;
/// plus 4 where AVX-512 VNNI is there too, plus 8 where F16C is (with AVX2).
static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

fn detected() -> u8 {
    let l = LEVEL.load(Ordering::Relaxed);
    if l != u8::MAX {
        return l;
    }
    let l = detect();
    LEVEL.store(l, Ordering::Relaxed);
    l
}

/// The instruction level of this CPU: 0 baseline, 1 AVX2 + FMA, 2 AVX-512.
#[inline]
pub fn level() -> u8 {
    detected() & 3
}

/// Whether the CPU has AVX-512 VNNI (integer dot products, for int8 weights).
#[inline]
pub fn vnni() -> bool {
    detected() & 4 != 0
}

/// Whether the CPU has F16C beside AVX2 (half-precision conversions, for f16 weights).
#[inline]
pub fn f16c() -> bool {
    detected() & 8 != 0
}

#[cfg(target_arch = "x86_64")]
fn detect() -> u8 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // `cpuid` is a safe call on current Rust and an unsafe one before 1.87 (kiln's MSRV is 1.89).
    #[allow(unused_unsafe)]
    // SAFETY: cpuid exists on every x86_64 CPU.
    let (max, one, seven) = unsafe { (__cpuid(0).eax, __cpuid(1), __cpuid_count(7, 0)) };
    if max < 7 {
        return 0;
    }
    let (osxsave, avx, fma) = (one.ecx & (1 << 27) != 0, one.ecx & (1 << 28) != 0, one.ecx & (1 << 12) != 0);
    if !(osxsave && avx) {
        return 0;
    }
    // The OS must save the vector registers: XMM and YMM state (bits 1, 2); for AVX-512 also the
    // opmask and upper ZMM state (bits 5, 6, 7).
    let xcr0 = xgetbv();
    let avx2 = seven.ebx & (1 << 5) != 0 && fma && xcr0 & 0b110 == 0b110;
    if !avx2 {
        return 0;
    }
    let f16c = if one.ecx & (1 << 29) != 0 { 8 } else { 0 };
    let (f, bw, vl) = (seven.ebx & (1 << 16) != 0, seven.ebx & (1 << 30) != 0, seven.ebx & (1 << 31) != 0);
    if !(f && bw && vl && xcr0 & 0b1110_0110 == 0b1110_0110) {
        return 1 | f16c;
    }
    if seven.ecx & (1 << 11) != 0 { 2 | 4 | f16c } else { 2 | f16c }
}

#[cfg(target_arch = "x86_64")]
fn xgetbv() -> u64 {
    #[target_feature(enable = "xsave")]
    unsafe fn read() -> u64 {
        // SAFETY: called only when cpuid reports OSXSAVE.
        unsafe { core::arch::x86_64::_xgetbv(0) }
    }
    // SAFETY: the caller checked OSXSAVE, which makes xgetbv available.
    unsafe { read() }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> u8 {
    0
}

/// Defines a public function compiled three times (AVX-512, AVX2 + FMA, baseline) from one
/// body, which LLVM vectorises for each; calls take the widest the CPU has.
macro_rules! simd_fn {
    ($(#[$meta:meta])* pub fn $name:ident $(<$($g:ident : $bound:path),*>)? ($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name $(<$($g: $bound),*>)? ($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp $(<$($g: $bound),*>)? ($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn w512 $(<$($g: $bound),*>)? ($($arg: $ty),*) { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn w256 $(<$($g: $bound),*>)? ($($arg: $ty),*) { imp($($arg),*) }
                match $crate::infer::cpu::level() {
                    // SAFETY: the CPU has these instructions (checked by `level`).
                    2 => return unsafe { w512($($arg),*) },
                    1 => return unsafe { w256($($arg),*) },
                    _ => {}
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use simd_fn;
