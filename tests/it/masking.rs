//! Keras' masking: `Embedding(mask_zero = true)` marks id 0 as padding, and the mask reaches the
//! layers that honour it (LSTM, Bidirectional(GRU), MultiHeadAttention through Add and
//! LayerNormalization, GlobalAveragePooling1D). Keras 3 parity on committed values
//! (`examples/keras/masking_reference.py`): predictions, loss and every weight gradient of a
//! padded batch within 1e-5, and padding that changes nothing.

use kiln::ndarray::{Array1, Array2, ArrayD, IxDyn};
use kiln::prelude::*;

sequential! {
    pub struct MaskedLstm: Input([6], dtype = i32) {
        Embedding(7, 4, mask_zero = true),
        LSTM(3, return_sequences = true),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

sequential! {
    pub struct MaskedBiGru: Input([6], dtype = i32) {
        Embedding(7, 4, mask_zero = true),
        Bidirectional(GRU(3)),
        Dense(2, activation = softmax),
    }
}

functional! {
    pub struct MaskedAttention {
        ids = Input([6], dtype = i32);
        h = Embedding(7, 4, mask_zero = true)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 2)(h, h);
        n = LayerNormalization()(Add()([h, a]));
        p = GlobalAveragePooling1D()(n);
        out = Dense(2, activation = softmax)(p);
        Model(ids, out)
    }
}

sequential! {
    pub struct MaskedFloats: [6, 3] {
        Masking,
        GRU(3, return_sequences = true),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

fn fixture(key: &str) -> Vec<f32> {
    kiln::testing::reference(include_str!("../fixtures/keras/masking.txt"), key)
        .unwrap_or_else(|| panic!("{key} missing from the fixture"))
}

use kiln::testing::assert_close as close;

fn matches_keras<M: Model>(case: &str, mut m: M) {
    let shape: Vec<usize> = std::iter::once(3).chain(M::INPUTS[0].shape.iter().copied()).collect();
    let ids = ArrayD::from_shape_vec(IxDyn(&shape), fixture(&format!("{case}.ids"))).unwrap();
    let labels = Array1::from_vec(fixture(&format!("{case}.labels")));
    let mut names = Vec::new();
    m.visit_weights(&mut |n, p| names.push((n.to_string(), p.shape().to_vec())));
    for (name, shape) in &names {
        let v = ArrayD::from_shape_vec(IxDyn(shape), fixture(&format!("{case}.{name}"))).unwrap();
        m.set_weight(name, &v).unwrap();
    }
    let flat: Vec<f32> = ids.iter().copied().collect();
    let mut stream = kiln::Stream::new(0);
    m.run(&[&flat], &mut kiln::Ctx::new(3, false, &mut stream));
    close(&format!("{case}.pred"), m.output(0), &fixture(&format!("{case}.pred")), 1e-5);
    let (loss, grads) = m.loss_and_grads(&ids, &labels, &kiln::Loss::SparseCategoricalCrossentropy).unwrap();
    close(&format!("{case}.loss"), &[loss], &fixture(&format!("{case}.loss")), 1e-5);
    for (name, _) in &names {
        close(&format!("{case}.d.{name}"), grads.get(name).unwrap(), &fixture(&format!("{case}.d.{name}")), 1e-5);
    }
}

#[test]
fn masked_models_match_keras() {
    matches_keras("lstm", MaskedLstm::new());
    matches_keras("bigru", MaskedBiGru::new());
    matches_keras("attention", MaskedAttention::new());
    matches_keras("floats", MaskedFloats::new());
}

/// Where the padding sits changes nothing: the same tokens padded at the end or the start give
/// the same prediction.
#[test]
fn padding_changes_nothing() {
    let ids = Array2::from_shape_vec((2, 6), vec![3, 1, 5, 0, 0, 0, 0, 0, 0, 3, 1, 5]).unwrap();
    fn same<M: Model>(mut m: M, ids: &Array2<i32>) {
        let flat: Vec<f32> = ids.iter().map(|&v| v as f32).collect();
        let mut stream = kiln::Stream::new(0);
        m.run(&[&flat], &mut kiln::Ctx::new(2, false, &mut stream));
        let (a, b) = m.output(0).split_at(2);
        close(M::NAME, a, b, 1e-6);
    }
    same(MaskedLstm::new(), &ids);
    same(MaskedBiGru::new(), &ids);
    same(MaskedAttention::new(), &ids);
}

#[test]
fn masked_models_have_correct_gradients() {
    let ids: Vec<f32> = [3, 1, 5, 0, 0, 0, 0, 0, 2, 6, 1, 4, 4, 0, 3, 0, 2, 2].iter().map(|&v| v as f32).collect();
    kiln::testing::check_model(&mut MaskedLstm::new(), &[&ids], 3, 12, 3e-3).unwrap();
    kiln::testing::check_model(&mut MaskedBiGru::new(), &[&ids], 3, 12, 3e-3).unwrap();
    kiln::testing::check_model(&mut MaskedAttention::new(), &[&ids], 3, 12, 3e-3).unwrap();
    let floats = fixture("floats.ids");
    kiln::testing::check_model(&mut MaskedFloats::new(), &[&floats], 3, 12, 3e-3).unwrap();
}
