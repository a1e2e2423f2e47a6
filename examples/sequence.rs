//! Samples of rank 2: each 8×8 digit read as 4 steps of 16 pixels (two image rows per step),
//! classified as Keras would with `Input((4, 16)) → Dense(8, relu) → Flatten → Dense(3, softmax)`:
//! `Dense` works on the last axis, so the first layer maps every step to 8 features.
//!
//! Run with `cargo run --release --example sequence`.

use kiln::ndarray::{Array2, Axis, s};
use kiln::prelude::*;

sequential! {
    /// 4 steps of 16 pixels to the classes 0, 1 and 2.
    pub struct Steps: [4, 16] {
        Dense(8, activation = relu),
        Flatten,
        Dense(3, activation = softmax),
    }
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3))?;
    let keep: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] < 3.0).collect();
    let x: Array2<f32> = pixels.select(Axis(0), &keep) / 16.0;
    let y = labels.select(Axis(0), &keep);
    let x = x
        .into_shape_with_order((keep.len(), 4, 16))
        .map_err(|e| kiln::Error::InvalidData { what: "x".into(), reason: format!("not [n, 4, 16]: {e}") })?;

    let mut model = Steps::new();
    model.summary();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"])?;
    model.fit(&x, &y, Fit { epochs: 20, validation_split: 0.2, verbose: 2, ..Fit::default() })?;

    let n_train = (keep.len() as f64 * 0.8).floor() as usize;
    let held_out = model.evaluate(&x.slice(s![n_train.., .., ..]), &y.slice(s![n_train..]))?;
    println!("held-out accuracy on {} images: {:.4}", keep.len() - n_train, held_out["accuracy"]);
    Ok(())
}
