//! The bare digits classifier with int8 weights alone, for its size (see `digits-firmware`).

#![no_std]
#![no_main]
#![no_builtins]

#[path = "../firmware/bare.rs"]
mod bare;

/// The int8 classifier's digit.
fn digit(x: &[f32; 64]) -> i32 {
    kiln_digits_no_std::classify_int8(x) as i32
}
