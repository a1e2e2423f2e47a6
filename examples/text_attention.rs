//! A transformer-block classifier on a sequence task that only order can solve, next to a
//! bag-of-words model that cannot.
//!
//! The task (generated with a fixed seed): 16 tokens drawn from the ids 3..20, two of them then
//! replaced by the "markers" 1 and 2 at random distinct positions; the label says whether the 1
//! comes before the 2. Every sequence holds each marker exactly once, so the bag of its tokens
//! says nothing about the label: a model that averages token vectors stays at chance, while
//! attention over token and position embeddings reads the order.
//!
//! Run with `cargo run --release --example text_attention`. The trained transformer is written
//! as an ONNX file, `target/kiln-text-attention/transformer.onnx` (inputs `tokens` and
//! `positions`, int64), for onnxruntime or any other ONNX runtime.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

const STEPS: usize = 16;
const VOCAB: usize = 20;

functional! {
    /// Token and position embeddings, one self-attention block with a residual connection and
    /// layer normalisation, a position-wise Dense, average pooling over the steps, a softmax.
    pub struct Transformer {
        tokens = Input([16], dtype = i32);
        positions = Input([16], dtype = i32);
        t = Embedding(20, 32)(tokens);
        p = Embedding(16, 32)(positions);
        x = Add()([t, p]);
        a = MultiHeadAttention(num_heads = 2, key_dim = 16)(x, x);
        s = Add()([x, a]);
        n = LayerNormalization()(s);
        f = Dense(32, activation = relu)(n);
        g = GlobalAveragePooling1D()(f);
        out = Dense(2, activation = softmax)(g);
        Model([tokens, positions], out)
    }
}

sequential! {
    /// The same token vectors, averaged: a bag of words.
    pub struct BagOfWords: Input([16], dtype = i32) {
        Embedding(20, 32),
        GlobalAveragePooling1D,
        Dense(32, activation = relu),
        Dense(2, activation = softmax),
    }
}

/// `n` sequences and their labels (1: the marker 1 comes before the marker 2).
fn task(n: usize, seed: u64) -> (Array2<i32>, Array1<i32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Array2::from_shape_fn((n, STEPS), |_| rng.random_range(3..VOCAB as i32));
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let a = rng.random_range(0..STEPS);
        let b = (a + rng.random_range(1..STEPS)) % STEPS;
        x[[i, a]] = 1;
        x[[i, b]] = 2;
        y[i] = (a < b) as i32;
    }
    (x, y)
}

fn main() -> kiln::Result<()> {
    let (x, y) = task(6000, 1);
    let (x_test, y_test) = task(2000, 2);
    let pos = Array2::from_shape_fn((x.nrows(), STEPS), |(_, t)| t as i32);
    let pos_test = Array2::from_shape_fn((x_test.nrows(), STEPS), |(_, t)| t as i32);
    let opts = Fit { epochs: 15, batch_size: 32, verbose: 0, ..Fit::default() };

    let mut transformer = Transformer::new();
    transformer.summary();
    transformer.compile("sparse_categorical_crossentropy", Adam::new(0.002), &["accuracy"])?;
    transformer.fit((&x, &pos), &y, Fit { verbose: 2, ..opts.clone() })?;
    let acc = transformer.evaluate((&x_test, &pos_test), &y_test)?["accuracy"];

    let mut bag = BagOfWords::new();
    bag.compile("sparse_categorical_crossentropy", Adam::new(0.002), &["accuracy"])?;
    bag.fit(&x, &y, opts)?;
    let bag_acc = bag.evaluate(&x_test, &y_test)?["accuracy"];

    println!("held-out accuracy on {} sequences: transformer {acc:.4}, bag of words {bag_acc:.4}", y_test.len());
    let out = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kiln-text-attention"));
    std::fs::create_dir_all(out).map_err(|source| kiln::Error::Io { path: out.display().to_string(), source })?;
    transformer.save_onnx(out.join("transformer.onnx"))?;
    println!("wrote {}", out.join("transformer.onnx").display());
    if acc < 0.95 {
        return Err(kiln::Error::InvalidData { what: "transformer".into(), reason: format!("accuracy {acc} < 0.95") });
    }
    Ok(())
}
