//! The Keras tutorial's functional model, trained on the shipped digits data with
//! categorical cross-entropy (one-hot targets), Adam and accuracy.
//!
//! Run with `cargo run --release --example functional`.

use kiln::ndarray::s;
use kiln::prelude::*;

functional! {
    /// The Keras tutorial's functional model.
    pub struct Classifier {
        inputs = Input([64]);
        hidden = Dense(64, activation = relu)(inputs);
        outputs = Dense(10, activation = softmax)(hidden);
        Model(inputs, outputs)
    }
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7))?;
    let x = pixels / 16.0;
    let y = kiln::data::one_hot(&labels, 10)?;

    let mut model = Classifier::new();
    model.summary();
    model.compile("categorical_crossentropy", "adam", &["accuracy"])?;
    model.fit(&x, &y, Fit { epochs: 40, validation_split: 0.2, verbose: 2, ..Fit::default() })?;

    let n_train = (x.nrows() as f64 * 0.8).floor() as usize;
    let held_out = model.evaluate(&x.slice(s![n_train.., ..]), &y.slice(s![n_train.., ..]))?;
    println!("held-out accuracy on {} images: {:.4}", x.nrows() - n_train, held_out["accuracy"]);
    Ok(())
}
