//! Two inputs, a shared layer, a skip connection and two heads: a 3-class label and a score,
//! learned together from data generated with a known rule. Prints both heads' losses per epoch.
//!
//! Run with `cargo run --release --example two_towers`.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

functional! {
    /// Two inputs, a skip connection, a shared layer and two outputs.
    pub struct Tower {
        a = Input([32]);
        b = Input([32]);
        shared = Dense(32, activation = relu);   // one layer, one set of weights ...
        ha = shared(a);                          // ... applied twice
        hb = shared(b);
        merged = Concatenate()([ha, hb]);
        h = Dense(64, activation = relu)(merged);
        res = Add()([h, Dense(64)(merged)]);
        class = Dense(3, activation = softmax, name = "class")(res);
        score = Dense(1, name = "score")(res);
        Model([a, b], [class, score])
    }
}

/// `a`, `b` uniform in [-1, 1]; the class is the arg-max of three fixed linear views of `a - b`;
/// the score a smooth function of both.
fn make_data(n: usize) -> (Array2<f32>, Array2<f32>, Array1<f32>, Array2<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let a = Array2::from_shape_fn((n, 32), |_| rng.random_range(-1.0f32..1.0));
    let b = Array2::from_shape_fn((n, 32), |_| rng.random_range(-1.0f32..1.0));
    let w = Array2::from_shape_fn((32, 3), |_| rng.random_range(-1.0f32..1.0));
    let logits = (&a - &b).dot(&w);
    let class = Array1::from_iter(
        logits
            .rows()
            .into_iter()
            .map(|r| r.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0 as f32),
    );
    let score = Array2::from_shape_fn((n, 1), |(i, _)| {
        (a[[i, 0]] + a[[i, 1]]).tanh() - 0.5 * b[[i, 2]] * b[[i, 3]] + 0.25 * (a[[i, 4]] * b[[i, 4]])
    });
    (a, b, class, score)
}

fn main() -> kiln::Result<()> {
    let (a, b, class, score) = make_data(4000);
    let mut model = Tower::new();
    model.summary();
    model.compile_with(
        Compile::new(Adam::new(0.002))
            .output_loss("class", "sparse_categorical_crossentropy")
            .output_loss("score", "mse")
            .output_metrics("class", &["accuracy"]),
    )?;
    let history = model.fit((&a, &b), (&class, &score), Fit { epochs: 15, verbose: 0, ..Fit::default() })?;
    println!("epoch  class_loss  score_loss  class_accuracy");
    for e in history.epoch.iter().copied() {
        let get = |k: &str| history.get(k).map_or(f64::NAN, |v| v[e]);
        println!(
            "{:>5}  {:>10.4}  {:>10.4}  {:>14.4}",
            e + 1,
            get("class_loss"),
            get("score_loss"),
            get("class_accuracy")
        );
    }
    for head in ["class_loss", "score_loss"] {
        let v = history.get(head).unwrap_or_default();
        let (first, last) = (v[0], v[v.len() - 1]);
        println!("{head}: {first:.4} -> {last:.4} ({:.0}% lower)", 100.0 * (1.0 - last / first));
    }
    Ok(())
}
