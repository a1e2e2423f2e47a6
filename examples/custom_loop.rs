//! A custom training loop, Keras' `GradientTape` pattern: for each batch, the model gives the
//! loss and the gradients, which are clipped by their global norm and applied by an optimizer.
//! Trains on the shipped digits data and prints the held-out accuracy.
//!
//! Run with `cargo run --release --example custom_loop`.

use kiln::ndarray::s;
use kiln::prelude::*;

#[kiln::model]
pub struct Classifier {
    hidden: Dense<64, 64, Relu>,
    out: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl Classifier {
    fn call(&self, x: Input<64>) -> Output<10> {
        self.out(self.hidden(x))
    }
}

fn main() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7))?;
    let x = pixels / 16.0;
    let n_train = (x.nrows() as f64 * 0.8).floor() as usize;
    let (x_train, y_train) = (x.slice(s![..n_train, ..]), labels.slice(s![..n_train]));
    let (x_test, y_test) = (x.slice(s![n_train.., ..]), labels.slice(s![n_train..]));

    let mut model = Classifier::new();
    let mut opt = Adam::new(0.003);
    let loss = Loss::SparseCategoricalCrossentropy;
    for epoch in 1..=30 {
        let (mut total, mut clipped, mut batches_seen) = (0.0, 0, 0);
        for (xb, yb) in batches(&x_train, &y_train, 32)? {
            let (value, mut grads) = model.loss_and_grads(&xb, &yb, &loss)?;
            if grads.global_norm() > 1.0 {
                clipped += 1;
            }
            grads.clip_by_global_norm(1.0)?;
            opt.apply(&mut model, &grads)?;
            total += value;
            batches_seen += 1;
        }
        if epoch % 5 == 0 {
            println!(
                "epoch {epoch:>2}: mean loss {:.4}, {clipped}/{batches_seen} batches clipped",
                total / batches_seen as f32
            );
        }
    }
    let pred = model.predict(&x_test)?;
    let correct = pred
        .rows()
        .into_iter()
        .zip(y_test.iter())
        .filter(|(p, y)| {
            let guess = p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
            guess as f32 == **y
        })
        .count();
    println!("held-out accuracy: {:.4} ({correct}/{})", correct as f64 / y_test.len() as f64, y_test.len());
    Ok(())
}
