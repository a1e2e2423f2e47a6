//! Image layers against Keras 3 (Conv2D valid/same/strided/grouped, Conv1D dilated, depthwise,
//! separable and transposed convolutions, max/average/global pooling, BatchNormalization): for
//! each small model of `examples/keras/cnn_reference.py`, the
//! predictions, the loss and every gradient on one batch, and the weights (moving statistics
//! included) and predictions after one Adam step, within 1e-5. The fixtures are committed; this
//! test needs no Python.

use kiln::ndarray::ArrayD;
use kiln::prelude::*;

sequential! {
    struct ConvValid: [6, 6, 2] { Conv2D(3, 3, activation = tanh), Flatten, Dense(3, activation = softmax) }
}

sequential! {
    struct ConvSameStrided: [7, 7, 2] {
        Conv2D(4, 3, strides = 2, padding = same, activation = relu),
        GlobalAveragePooling2D,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct Pools: [8, 8, 2] {
        Conv2D(3, 3, padding = same),
        MaxPooling2D(2),
        AveragePooling2D(3, strides = 1, padding = same),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct BatchNorm: [5, 5, 2] {
        Conv2D(4, 3, use_bias = false),
        BatchNormalization,
        GlobalAveragePooling2D,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct Conv1dDilated: [9, 2] { Conv1D(4, 3, dilation_rate = 2, activation = tanh), Flatten, Dense(3, activation = softmax) }
}

sequential! {
    struct DepthwiseModel: [6, 6, 3] {
        DepthwiseConv2D(3, depth_multiplier = 2, padding = same, activation = tanh),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct SeparableModel: [7, 7, 2] {
        SeparableConv2D(4, 3, strides = 2, padding = same, depth_multiplier = 2, activation = relu),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct TransposeModel: [3, 3, 2] {
        Conv2DTranspose(3, 3, strides = 2, padding = same, activation = tanh),
        Conv2DTranspose(2, 2, strides = 1, padding = valid),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    struct GroupedModel: [5, 5, 4] {
        Conv2D(6, 3, groups = 2, padding = same, activation = tanh),
        Flatten,
        Dense(3, activation = softmax),
    }
}

fn tensors(name: &str) -> std::collections::HashMap<String, ArrayD<f32>> {
    let path = format!("{}/tests/fixtures/keras_cnn/{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, t)| {
            let v: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (n, ArrayD::from_shape_vec(t.shape(), v).unwrap())
        })
        .collect()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// Runs one fixture through a kiln model; returns the largest deviation seen.
fn matches_keras<M: Model<Prediction = kiln::ndarray::Array2<f32>>>(mut m: M, name: &str) -> f32 {
    let t = tensors(name);
    let names: Vec<String> = m.weights().into_iter().map(|(n, _)| n).collect();
    let mut i = 0;
    m.visit_weights_mut(&mut |p| {
        p.value = t[&names[i]].as_slice().unwrap().to_vec();
        i += 1;
    });
    let (x, y) = (&t["x"], &t["y"]);
    let mut dev = 0.0f32;
    let pred = m.predict(x).unwrap();
    let p: Vec<f32> = pred.iter().copied().collect();
    dev = dev.max(worst(&p, t["pred"].as_slice().unwrap()));
    let (loss, grads) = m.loss_and_grads(x, y, &Loss::SparseCategoricalCrossentropy).unwrap();
    dev = dev.max((loss - t["loss"][[0]]).abs());
    for (n, g) in grads.iter() {
        let d = worst(g, t[&format!("grad.{n}")].as_slice().unwrap());
        assert!(d <= 1e-5, "{name}: gradient of {n} differs by {d}");
        dev = dev.max(d);
    }
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.train_on_batch(x, y).unwrap();
    for (n, p) in m.weights() {
        let d = worst(&p.value, t[&format!("after.{n}")].as_slice().unwrap());
        assert!(d <= 1e-5, "{name}: {n} after one Adam step differs by {d}");
        dev = dev.max(d);
    }
    let after = m.predict(x).unwrap();
    let p: Vec<f32> = after.iter().copied().collect();
    dev = dev.max(worst(&p, t["pred_after"].as_slice().unwrap()));
    assert!(dev <= 1e-5, "{name}: largest deviation {dev}");
    dev
}

#[test]
fn image_layers_match_keras() {
    let devs = [
        ("conv_valid", matches_keras(ConvValid::new(), "conv_valid")),
        ("conv_same_strided", matches_keras(ConvSameStrided::new(), "conv_same_strided")),
        ("pools", matches_keras(Pools::new(), "pools")),
        ("batch_norm", matches_keras(BatchNorm::new(), "batch_norm")),
        ("conv1d_dilated", matches_keras(Conv1dDilated::new(), "conv1d_dilated")),
        ("depthwise", matches_keras(DepthwiseModel::new(), "depthwise")),
        ("separable_strided", matches_keras(SeparableModel::new(), "separable_strided")),
        ("transpose", matches_keras(TransposeModel::new(), "transpose")),
        ("grouped", matches_keras(GroupedModel::new(), "grouped")),
    ];
    for (name, d) in devs {
        println!("{name}: largest deviation from Keras {d:e}");
    }
}
