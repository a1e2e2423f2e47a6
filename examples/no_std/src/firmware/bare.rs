//! What the bare binaries share: the entry point, the exit system call, the C memory functions
//! a hosted target's C library would provide, and the image they classify. Each binary defines
//! `digit(&[f32; 64]) -> i32`.

/// The first 7 among the held-out digits (training never saw it), pixels in 0..=16.
static SEVEN: [u8; 64] = [
    0, 0, 2, 13, 16, 16, 7, 0, 0, 0, 12, 15, 12, 16, 10, 0, 0, 0, 16, 9, 0, 14, 6, 0, 0, 0, 3, 0, 4, 16, 1, 0, 0, 0, 0,
    10, 14, 16, 6, 0, 0, 0, 3, 16, 16, 11, 2, 0, 0, 0, 0, 9, 14, 0, 0, 0, 0, 0, 2, 15, 6, 0, 0, 0,
];

// The entry point: align the stack as a call would, then run.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
core::arch::global_asm!(".globl _start", "_start:", "xor ebp, ebp", "and rsp, -16", "call {run}", run = sym run);

/// Scales the image to [0, 1], classifies it, exits with the binary's answer.
extern "C" fn run() -> ! {
    let mut x = [0f32; 64];
    for (v, &p) in x.iter_mut().zip(core::hint::black_box(&SEVEN)) {
        *v = p as f32 / 16.0;
    }
    exit(crate::digit(&x))
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn exit(code: i32) -> ! {
    // SAFETY: the exit system call takes a status and does not return.
    unsafe { core::arch::asm!("syscall", in("rax") 60, in("rdi") code, options(noreturn)) }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn exit(_code: i32) -> ! {
    loop {}
}

/// `memcpy`, `memmove`, `memset` and `memcmp`, which a hosted target's C library would provide.
mod mem {
    #[unsafe(no_mangle)]
    unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller passes valid, non-overlapping ranges of n bytes.
        unsafe { memmove(dst, src, n) }
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller passes valid ranges of n bytes; copying backwards when dst is
        // above src keeps overlapping ranges intact.
        unsafe {
            if (dst as usize) < (src as usize) {
                for i in 0..n {
                    *dst.add(i) = *src.add(i);
                }
            } else {
                for i in (0..n).rev() {
                    *dst.add(i) = *src.add(i);
                }
            }
        }
        dst
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        for i in 0..n {
            // SAFETY: the caller passes a valid range of n bytes.
            unsafe { *dst.add(i) = c as u8 };
        }
        dst
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        for i in 0..n {
            // SAFETY: the caller passes valid ranges of n bytes.
            let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
            if x != y {
                return x as i32 - y as i32;
            }
        }
        0
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: as memcmp.
        unsafe { memcmp(a, b, n) }
    }
}
