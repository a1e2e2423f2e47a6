//! The digits classifier as a small std program: 64 pixel values (0 to 16, row by row) in, the
//! digit out, through the no_std crate's `infer` (no training runtime linked in).
//!
//! `cargo run -p kiln-digits-no-std --example classify -- 0 0 2 13 16 16 7 0 ...` (64 values);
//! add `--int8` for the int8 weights.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let int8 = args.iter().any(|a| a == "--int8");
    let values: Result<Vec<f32>, _> = args.iter().filter(|a| *a != "--int8").map(|a| a.parse::<f32>()).collect();
    let pixels: [f32; 64] = match values.ok().and_then(|v| <[f32; 64]>::try_from(v).ok()) {
        Some(p) => p.map(|v| v / 16.0),
        None => {
            eprintln!("give 64 pixel values from 0 to 16, row by row (and --int8 for the int8 weights)");
            return ExitCode::FAILURE;
        }
    };
    let digit = match int8 {
        true => kiln_digits_no_std::classify_int8(&pixels),
        false => kiln_digits_no_std::classify(&pixels),
    };
    println!("{digit}");
    ExitCode::SUCCESS
}
