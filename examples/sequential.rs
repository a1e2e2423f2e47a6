//! The Keras tutorial's Sequential regression: Dense(64) on a 1-feature input, then Dense(1),
//! trained with mean squared error and SGD for 10 epochs on y = f(x) data it generates.
//!
//! Run with `cargo run --release --example sequential`.

use kiln::ndarray::Array2;
use kiln::prelude::*;

sequential! {
    /// y = f(x) regression, as in the Keras tutorial.
    pub struct Regressor: [1] {
        Dense(64),
        Dense(1),
    }
}

fn make_data(n: usize) -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((n, 1), |(i, _)| -1.0 + 2.0 * i as f32 / (n - 1) as f32);
    let y = x.mapv(|v| 3.0 * v - 0.5);
    (x, y)
}

fn main() -> kiln::Result<()> {
    let (x, y) = make_data(1000);
    let mut model = Regressor::new();
    model.summary();
    // By name, as in Keras ...
    model.compile("mse", "sgd", &[])?;
    // ... or as values, which is where the options are.
    model.compile(Loss::MeanSquaredError, Sgd::new(0.01), &[Metric::Mae])?;
    let history = model.fit(&x, &y, Fit { epochs: 10, verbose: 1, ..Fit::default() })?;
    let losses = history.get("loss").unwrap_or_default();
    println!("loss: first epoch {:.5}, last epoch {:.5}", losses[0], losses[losses.len() - 1]);

    let probe = Array2::from_shape_vec((3, 1), vec![-0.5, 0.0, 0.5]).expect("3 rows");
    let pred = model.predict(&probe)?;
    for (x, p) in probe.iter().zip(pred.iter()) {
        println!("f({x:+.1}) = {p:+.4} (true {:+.4})", 3.0 * x - 0.5);
    }
    Ok(())
}
