//! A 64-64-10 model trained on the shipped digits data reaches at least 95% accuracy on a held-out
//! 20% it never trained on.

use std::time::Instant;

use kiln::ndarray::s;
use kiln::prelude::*;

sequential! {
    struct Mlp: [64] {
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

#[test]
fn digits_held_out_accuracy_at_least_95_percent() {
    let start = Instant::now();
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    assert_eq!(table.shape(), &[1797, 65]);
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    let x = x / 16.0;
    let n_train = (x.nrows() as f64 * 0.8).floor() as usize;

    let mut model = Mlp::new();
    model.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"]).unwrap();
    let h = model.fit(&x, &y, Fit { epochs: 30, validation_split: 0.2, verbose: 0, ..Fit::default() }).unwrap();
    let held_out = model.evaluate(&x.slice(s![n_train.., ..]), &y.slice(s![n_train..])).unwrap();
    println!("held-out accuracy {:.4} after {:.2}s", held_out["accuracy"], start.elapsed().as_secs_f64());
    assert_eq!(held_out["accuracy"], h.last("val_accuracy").unwrap(), "evaluate and fit's validation agree");
    assert!(held_out["accuracy"] >= 0.95, "held-out accuracy {}", held_out["accuracy"]);
    assert!(start.elapsed().as_secs() < 60);
}
