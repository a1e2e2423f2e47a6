//! Flush-to-zero while kiln computes.
//!
//! Adam's second-moment estimates of weights that stop receiving gradient (dead ReLU units) decay
//! geometrically into subnormal floats, and arithmetic on subnormals is 10-100x slower on x86: a
//! training step was measured 7-14x slower once it happens. kiln therefore sets the CPU's
//! flush-to-zero and denormals-are-zero modes for the duration of each training or inference call,
//! as TensorFlow and oneDNN do, and restores the caller's mode afterwards. The values lost are
//! below 1.2e-38, far under anything a model's outputs depend on.

/// The floating-point control mode of this thread (MXCSR on x86-64, FPCR on AArch64), to hand
/// to another thread that computes on its behalf.
pub(crate) fn mode() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr writes the SSE control register through a valid pointer to a local.
        unsafe { std::arch::asm!("stmxcsr [{0}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
        csr as u64
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads FPCR.
        unsafe { std::arch::asm!("mrs {0}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        fpcr
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    0
}

fn set_mode(mode: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = mode as u32;
        // SAFETY: ldmxcsr loads a value read from this or another thread's control register; only
        // rounding and subnormal handling depend on it.
        unsafe { std::arch::asm!("ldmxcsr [{0}]", in(reg) &csr, options(nostack, preserves_flags)) };
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: writes FPCR with a value read from FPCR.
    unsafe {
        std::arch::asm!("msr fpcr, {0}", in(reg) mode, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = mode;
}

/// Runs this thread in a given floating-point mode until dropped, then restores its own: the
/// worker thread computes each job in the mode of the thread that handed it over.
pub(crate) struct WithMode {
    saved: u64,
}

impl WithMode {
    pub(crate) fn new(mode: u64) -> Self {
        let saved = self::mode();
        set_mode(mode);
        WithMode { saved }
    }
}

impl Drop for WithMode {
    fn drop(&mut self) {
        set_mode(self.saved);
    }
}

/// The mode with flush-to-zero and denormals-are-zero added.
fn flushing(mode: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        mode | 0x8040
    }
    #[cfg(target_arch = "aarch64")]
    {
        mode | (1 << 24)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    mode
}

/// Sets flush-to-zero / denormals-are-zero on this thread until dropped.
pub struct FlushDenormals {
    _mode: WithMode,
}

impl FlushDenormals {
    /// Enters flush-to-zero mode on the current thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        FlushDenormals { _mode: WithMode::new(flushing(mode())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn subnormals_flush_inside_and_survive_outside() {
        let tiny = black_box(f32::MIN_POSITIVE);
        assert!(black_box(tiny * 0.5) > 0.0);
        {
            let _g = FlushDenormals::new();
            assert_eq!(black_box(tiny) * black_box(0.5), 0.0);
        }
        assert!(black_box(tiny) * black_box(0.5) > 0.0);
    }

    /// The worker thread computes in the mode of the thread that hands it a job, whatever the
    /// mode of the thread that started it.
    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn the_worker_computes_in_the_callers_mode() {
        crate::kernels::parallel::set_threads(2);
        let tiny = black_box(f32::MIN_POSITIVE);
        let half = |out: &mut f32| *out = black_box(black_box(tiny) * black_box(0.5));
        // Started outside any guard.
        let (mut a, mut b) = (1.0, 1.0);
        crate::kernels::parallel::join(true, || half(&mut a), || half(&mut b));
        assert!(a > 0.0 && b > 0.0, "no guard: subnormals survive on both threads");
        let _g = FlushDenormals::new();
        let (mut a, mut b) = (1.0, 1.0);
        crate::kernels::parallel::join(true, || half(&mut a), || half(&mut b));
        assert_eq!((a, b), (0.0, 0.0), "under the guard: flushed on both threads");
    }
}
