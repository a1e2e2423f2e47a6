//! A bare binary around the no_std digits classifier: no `main`, no C runtime, no standard
//! library, no allocator. It classifies one embedded image and exits with the digit as its status
//! (Linux x86-64 system call), so CI can run it. On a microcontroller target `compiler_builtins`
//! brings `memcpy` and `memset`; on a hosted target, with the C library left out, they are
//! here. Built by `.ci/run`:
//!
//! ```text
//! cargo build -p kiln-digits-no-std --features firmware --profile firmware
//! ```

#![no_std]
#![no_main]
// The memory functions in `bare` must not be compiled into calls to themselves.
#![no_builtins]

#[path = "../firmware/bare.rs"]
mod bare;

/// The f32 classifier's digit, or 100 if the int8 one disagrees.
fn digit(x: &[f32; 64]) -> i32 {
    let (a, b) = (kiln_digits_no_std::classify(x), kiln_digits_no_std::classify_int8(x));
    if a == b { a as i32 } else { 100 }
}
