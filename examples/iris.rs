//! Keras' tabular recipe on the shipped iris measurements: a `Normalization` layer adapted to the
//! training rows (Keras' `normalizer.adapt(x_train)`), then a small classifier, scored on a
//! held-out fifth.
//!
//! Run with `cargo run --release --example iris`.

use kiln::ndarray::s;
use kiln::prelude::*;

sequential! {
    /// 4 measurements (cm) to the probabilities of the 3 species.
    pub struct Iris: [4] {
        Normalization(),
        Dense(16, activation = relu),
        Dense(3, activation = softmax),
    }
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/iris.csv"), true)?;
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3))?;
    let (x_train, y_train) = (x.slice(s![..120, ..]), y.slice(s![..120]));
    let (x_test, y_test) = (x.slice(s![120.., ..]), y.slice(s![120..]));

    let mut model = Iris::new();
    // The statistics come from the training rows only, as in Keras.
    model.adapt("normalization", &x_train)?;
    if let (Some(mean), Some(var)) =
        (model.get_weight("normalization.mean"), model.get_weight("normalization.variance"))
    {
        println!("adapted: mean {mean:.2}, variance {var:.2}");
    }
    model.summary();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"])?;
    model.fit(&x_train, &y_train, Fit { epochs: 60, batch_size: 16, verbose: 0, ..Fit::default() })?;
    let scores = model.evaluate(&x_test, &y_test)?;
    println!("held-out accuracy on {} flowers: {:.4} (loss {:.4})", y_test.len(), scores["accuracy"], scores["loss"]);
    Ok(())
}
