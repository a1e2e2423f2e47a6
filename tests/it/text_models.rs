//! Models that read raw text (`Input([], dtype = string)` then `TextVectorization`): `adapt` on
//! the model, `fit` / `evaluate` / `predict` on strings, the vocabulary saved and loaded with the
//! weights and compiled in with them.

use kiln::prelude::*;

sequential! {
    /// Reviews to two classes, from their words.
    pub struct Reviews: Input([], dtype = string) {
        TextVectorization(max_tokens = 40, output_sequence_length = 8),
        Embedding(40, 8),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

fn texts() -> (Vec<&'static str>, kiln::ndarray::Array1<f32>) {
    let good = ["a wonderful film", "wonderful acting and a great story", "great fun", "a great and wonderful cast"];
    let bad = ["a dull film", "dull acting and a poor story", "poor fun", "a dull and poor cast"];
    let texts: Vec<&str> = good.iter().chain(&bad).copied().collect();
    let labels = (0..8).map(|i| if i < 4 { 1.0 } else { 0.0 }).collect();
    (texts, labels)
}

#[test]
fn a_text_model_adapts_trains_and_predicts_on_strings() {
    let (texts, y) = texts();
    let mut m = Reviews::new();
    let summary = m.summary_string();
    assert!(summary.contains("text_vectorization (TextVectorization)") && summary.contains("(None, 8)"), "{summary}");
    assert!(m.vectorize(&texts).is_err(), "no vocabulary before adapt");
    m.adapt(&texts).unwrap();
    let ids = m.vectorize(&["a wonderful film"]).unwrap();
    assert_eq!(ids.shape(), &[1, 8]);
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &["accuracy"]).unwrap();
    let h = m.fit(&texts, &y, Fit { epochs: 60, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.last("accuracy").unwrap() == 1.0, "{:?}", h.get("accuracy"));
    let p = m.predict(&["great story", "poor story"]).unwrap();
    assert!(p[[0, 1]] > 0.5 && p[[1, 0]] > 0.5, "{p:?}");
    assert_eq!(m.evaluate(&texts, &y).unwrap()["accuracy"], 1.0);

    // The vocabulary goes with the weights.
    let dir = std::env::temp_dir().join(format!("kiln-text-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reviews.safetensors");
    m.save_weights(&path).unwrap();
    let mut back = Reviews::new();
    back.load_weights(&path).unwrap();
    assert_eq!(back.predict(&["great story", "poor story"]).unwrap(), p);
    std::fs::remove_dir_all(&dir).unwrap();
}
