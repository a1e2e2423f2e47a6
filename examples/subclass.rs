//! The Keras tutorial's subclassed model: Dense(64, relu) then Dense(10, softmax) on 10 input
//! features, trained with sparse categorical cross-entropy, Adam and accuracy for 20 epochs
//! (validation_split 0.2, shuffle, batch_size 4), on data generated with a learnable rule.
//!
//! Run with `cargo run --release --example subclass`.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

#[kiln::model]
pub struct MyModel {
    dense1: Dense<10, 64, Relu>,
    dense2: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<10>) -> Output<10> {
        let x = self.dense1(x);
        self.dense2(x)
    }
}

/// 10 features uniform in [0, 1); the label is the index of the largest feature.
fn make_data(n: usize) -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x = Array2::from_shape_fn((n, 10), |_| rng.random::<f32>());
    let y = Array1::from_iter(
        x.rows()
            .into_iter()
            .map(|r| r.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as f32),
    );
    (x, y)
}

fn main() -> kiln::Result<()> {
    let (x, y) = make_data(1000);
    let mut model = MyModel::new();
    model.summary();
    model.compile("sparse_categorical_crossentropy", "adam", &["accuracy"])?;
    let history = model.fit(
        &x,
        &y,
        Fit { epochs: 20, validation_split: 0.2, shuffle: true, batch_size: 4, verbose: 2, ..Fit::default() },
    )?;
    println!(
        "validation accuracy after 20 epochs: {:.4} (chance: 0.10)",
        history.last("val_accuracy").unwrap_or_default()
    );
    Ok(())
}
