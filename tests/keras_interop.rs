//! Weights converted from Keras by `examples/keras/convert.py` give Keras' predictions in kiln,
//! within 1e-5. The fixture (weights, inputs, Keras' outputs) was made once with Keras 3 and is
//! committed; this test needs no Python.

use kiln::ndarray::Array2;
use kiln::prelude::*;

sequential! {
    /// The model `convert.py --fixture` builds in Keras.
    struct Small: [6] {
        Dense(16, activation = gelu),
        Dense(8, activation = tanh),
        Dense(3, activation = softmax),
    }
}

fn tensor(bytes: &[u8], name: &str) -> Array2<f32> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Array2::from_shape_vec((t.shape()[0], t.shape()[1]), v).unwrap()
}

#[test]
fn keras_weights_give_keras_predictions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras");
    let mut model = Small::new();
    model.load_weights(format!("{dir}/weights.safetensors")).unwrap();
    let bytes = std::fs::read(format!("{dir}/predictions.safetensors")).unwrap();
    let (x, want) = (tensor(&bytes, "x"), tensor(&bytes, "y"));
    let got = model.predict(&x).unwrap();
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("largest difference from Keras over {} predictions: {worst:e}", want.len());
    assert!(worst <= 1e-5, "kiln differs from Keras by {worst}");
}
