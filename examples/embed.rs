//! Predicts digits with weights compiled into the binary: no model file beside it, nothing to
//! parse at start-up, and no way to load weights that do not fit the model.
//!
//! The weights come from `examples/models/digits.safetensors`, which
//! `cargo run --release --example digits` writes; the model below must match the file, tensor by
//! tensor, or this example does not compile. Rebuilding after retraining picks the new file up.
//!
//! Run with `cargo run --release --example embed`.

use kiln::prelude::*;

sequential! {
    /// The digits classifier of examples/digits.rs, with its trained weights.
    #[weights("models/digits.safetensors")]
    pub struct Digits: [8, 8, 1] {
        Flatten,
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

fn main() -> kiln::Result<()> {
    let start = std::time::Instant::now();
    let mut model = Digits::embedded();
    let ready = start.elapsed();

    // Score the embedded model on the last 20% of the shuffled digits, which training held out.
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7))?;
    let n = pixels.nrows();
    let from = (n as f64 * 0.8).floor() as usize;
    let mut correct = 0;
    for (row, &label) in pixels.rows().into_iter().zip(labels.iter()).skip(from) {
        let image: Vec<f32> = row.iter().map(|p| p / 16.0).collect();
        let probs = model.predict_one(&image)?;
        let guess = probs.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b }).0;
        correct += (guess as f32 == label) as usize;
    }
    println!(
        "model ready in {:.1} µs; held-out accuracy with the embedded weights: {:.4} ({correct}/{})",
        ready.as_secs_f64() * 1e6,
        correct as f64 / (n - from) as f64,
        n - from
    );
    Ok(())
}
#[allow(dead_code)]
fn check_infer() {
    let x = [0f32; 64];
    let _: [f32; 10] = Digits::infer(&x);
}
