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

sequential! {
    /// `convert.py --sequence-fixture`'s first model: Dense on the last axis of [4, 16], Flatten.
    struct Flat: [4, 16] {
        Dense(8, activation = relu),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    /// Its second model: one softmax over 3 classes per step.
    struct PerStep: [4, 16] {
        Dense(8, activation = tanh),
        Dense(3, activation = softmax),
    }
}

fn array(bytes: &[u8], name: &str) -> kiln::ndarray::ArrayD<f32> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    kiln::ndarray::ArrayD::from_shape_vec(t.shape(), v).unwrap()
}

fn worst(a: &kiln::ndarray::ArrayD<f32>, b: &kiln::ndarray::ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
}

#[test]
fn keras_rank_2_models_give_keras_predictions_and_loss() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras_sequence");
    let bytes = std::fs::read(format!("{dir}/predictions.safetensors")).unwrap();
    let x = array(&bytes, "x");

    let mut flat = Flat::new();
    flat.load_weights(format!("{dir}/flat.safetensors")).unwrap();
    let got = flat.predict(&x).unwrap().into_dyn();
    let w = worst(&got, &array(&bytes, "flat"));
    assert!(w <= 1e-5, "Dense on the last axis, then Flatten: kiln differs from Keras by {w}");

    let mut steps = PerStep::new();
    steps.load_weights(format!("{dir}/steps.safetensors")).unwrap();
    let got = steps.predict(&x).unwrap().into_dyn();
    assert_eq!(got.shape(), &[64, 4, 3]);
    let w = worst(&got, &array(&bytes, "steps"));
    assert!(w <= 1e-5, "one softmax per step: kiln differs from Keras by {w}");

    // Keras' loss over per-step labels: the mean over samples and steps.
    steps.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let y = array(&bytes, "y_steps");
    let loss = steps.evaluate(&x, &y).unwrap()["loss"];
    let keras = array(&bytes, "steps_loss")[[0]] as f64;
    println!("per-step loss: kiln {loss}, Keras {keras}");
    assert!((loss - keras).abs() <= 1e-5 * keras.max(1.0), "kiln {loss} vs Keras {keras}");
}

kiln::sequential! {
    /// `convert.py --text-fixture`'s LSTM model.
    pub struct TextLstm: Input([12], dtype = i32) {
        Embedding(40, 8),
        LSTM(16),
        Dense(1, activation = sigmoid),
    }
}

kiln::functional! {
    /// `convert.py --text-fixture`'s transformer block, its layers defined in Keras' order.
    pub struct TextBlock {
        ids = Input([12], dtype = i32);
        h = Embedding(40, 16)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 8)(h, h);
        n1 = LayerNormalization()(Add()([h, a]));
        f = Dense(16)(Dense(32, activation = relu)(n1));
        n2 = LayerNormalization()(Add()([n1, f]));
        out = Dense(2, activation = softmax)(GlobalAveragePooling1D()(n2));
        Model(ids, out)
    }
}

#[test]
fn keras_text_models_give_keras_predictions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras");
    let bytes = std::fs::read(format!("{dir}/text_predictions.safetensors")).unwrap();
    let ids = array(&bytes, "ids");
    let mut lstm = TextLstm::new();
    lstm.load_weights(format!("{dir}/text_lstm.safetensors")).unwrap();
    let got = lstm.predict(&ids).unwrap().into_dyn();
    assert!(worst(&got, &array(&bytes, "lstm")) <= 1e-5, "LSTM: {}", worst(&got, &array(&bytes, "lstm")));
    let mut block = TextBlock::new();
    block.load_weights(format!("{dir}/text_block.safetensors")).unwrap();
    let got = block.predict(&ids).unwrap().into_dyn();
    assert!(worst(&got, &array(&bytes, "block")) <= 1e-5, "block: {}", worst(&got, &array(&bytes, "block")));
}
