//! Flush-to-zero while kiln computes.
//!
//! Adam's second-moment estimates of weights that stop receiving gradient (dead ReLU units) decay
//! geometrically into subnormal floats, and arithmetic on subnormals is 10-100x slower on x86: a
//! training step was measured 7-14x slower once it happens. kiln therefore sets the CPU's
//! flush-to-zero and denormals-are-zero modes for the duration of each training or inference call,
//! as TensorFlow and oneDNN do, and restores the caller's mode afterwards. The values lost are
//! below 1.2e-38, far under anything a model's outputs depend on.

/// Sets flush-to-zero / denormals-are-zero on this thread until dropped.
pub struct FlushDenormals {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    saved: u64,
}

impl FlushDenormals {
    /// Enters flush-to-zero mode on the current thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut csr: u32 = 0;
            // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register through a valid
            // pointer to a local; FTZ (bit 15) and DAZ (bit 6) only change how subnormals round.
            unsafe {
                std::arch::asm!("stmxcsr [{0}]", in(reg) &mut csr, options(nostack, preserves_flags));
                let new = csr | 0x8040;
                std::arch::asm!("ldmxcsr [{0}]", in(reg) &new, options(nostack, preserves_flags));
            }
            FlushDenormals { saved: csr as u64 }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let fpcr: u64;
            // SAFETY: reads and writes FPCR; bit 24 (FZ) flushes subnormals to zero.
            unsafe {
                std::arch::asm!("mrs {0}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
                std::arch::asm!("msr fpcr, {0}", in(reg) fpcr | (1 << 24), options(nomem, nostack, preserves_flags));
            }
            FlushDenormals { saved: fpcr }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            let csr = self.saved as u32;
            // SAFETY: restores the value read in `new`.
            unsafe { std::arch::asm!("ldmxcsr [{0}]", in(reg) &csr, options(nostack, preserves_flags)) };
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: restores the value read in `new`.
        unsafe {
            std::arch::asm!("msr fpcr, {0}", in(reg) self.saved, options(nomem, nostack, preserves_flags))
        };
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
}
