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
    // And with a checkpoint, which resumes training on texts.
    let ckpt = dir.join("reviews.ckpt.safetensors");
    m.save_checkpoint(&ckpt).unwrap();
    let mut resumed = Reviews::new();
    resumed.compile("sparse_categorical_crossentropy", Adam::new(0.05), &["accuracy"]).unwrap();
    resumed.load_checkpoint(&ckpt).unwrap();
    assert_eq!(resumed.vectorize(&texts).unwrap(), m.vectorize(&texts).unwrap());
    resumed.fit(&texts, &y, Fit { epochs: 1, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    // Texts the vocabulary never saw are out-of-vocabulary ids, not errors; no texts at all is one.
    assert_eq!(m.predict(&["zzz qqq", ""]).unwrap().shape(), &[2, 2]);
    assert!(m.predict::<&str>(&[]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

functional! {
    /// A review's words beside its star rating: a text input and a numeric one.
    pub struct ReviewsAndStars {
        text = Input([], dtype = string);
        stars = Input([1]);
        ids = TextVectorization(max_tokens = 40, output_sequence_length = 8)(text);
        words = GlobalAveragePooling1D()(Embedding(40, 8, mask_zero = true)(ids));
        y = Dense(2, activation = softmax)(Concatenate()([words, stars]));
        Model([text, stars], y)
    }
}

/// In `functional!`, a text input among others: `x` is a tuple with the texts in its place.
#[test]
fn a_functional_model_reads_text_beside_numbers() {
    let (texts, y) = texts();
    let stars = kiln::ndarray::Array2::from_shape_fn((8, 1), |(i, _)| if i < 4 { 0.8 } else { 0.2 });
    let mut m = ReviewsAndStars::new();
    let summary = m.summary_string();
    assert!(summary.contains("text_vectorization (TextVectorization)"), "{summary}");
    m.adapt(&texts).unwrap();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &["accuracy"]).unwrap();
    let h = m.fit((&texts, &stars), &y, Fit { epochs: 60, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(h.last("accuracy").unwrap(), 1.0, "{:?}", h.get("accuracy"));
    assert_eq!(m.evaluate((&texts, &stars), &y).unwrap()["accuracy"], 1.0);
    let one = kiln::ndarray::Array2::from_elem((1, 1), 0.8f32);
    let p = m.predict((&["a great story"], &one)).unwrap();
    assert!(p[[0, 1]] > 0.5, "{p:?}");
    let dir = std::env::temp_dir().join(format!("kiln-text-functional-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reviews.safetensors");
    m.save_weights(&path).unwrap();
    let mut back = ReviewsAndStars::new();
    back.load_weights(&path).unwrap();
    assert_eq!(back.predict((&["a great story"], &one)).unwrap(), p);
    std::fs::remove_dir_all(&dir).unwrap();
}

sequential! {
    /// `examples/text_from_folder.rs`'s model, its weights and vocabulary compiled in from the
    /// file that example writes with `--refresh`.
    #[weights("../../examples/models/rust_docs.safetensors")]
    pub struct RustDocs: Input([], dtype = string) {
        TextVectorization(max_tokens = 2000, output_sequence_length = 120),
        Embedding(2000, 16, mask_zero = true),
        GlobalAveragePooling1D,
        Dense(3, activation = softmax),
    }
}

/// The trained text classifier, embedded with `#[weights]`, tells raw sentences apart by the
/// book they sound like (classes in folder order: book, cargo, nomicon).
#[test]
fn an_embedded_text_model_classifies_raw_strings() {
    let mut m = RustDocs::embedded();
    let p = m
        .predict(&[
            "Add the crate to the dependencies section of Cargo.toml and run cargo build.",
            "Dereferencing a raw pointer is undefined behavior unless it is aligned and points to initialized memory.",
            "A closure can capture values from the scope in which it is defined.",
        ])
        .unwrap();
    let best: Vec<usize> =
        p.rows().into_iter().map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()).collect();
    assert_eq!(best, [1, 2, 0], "{p:?}");
    assert_eq!(m.vectorize(&["cargo build"]).unwrap().shape(), &[1, 120]);
}

/// A text model refuses a weights file without a vocabulary, and numbers where it reads text.
#[test]
fn a_text_model_refuses_weights_without_a_vocabulary() {
    let dir = std::env::temp_dir().join(format!("kiln-text-model-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("numbers.safetensors");
    // The same layers reading token ids: its file has the weights but no vocabulary.
    sequential! {
        pub struct Ids: Input([8], dtype = i32) {
            Embedding(40, 8),
            GlobalAveragePooling1D,
            Dense(2, activation = softmax),
        }
    }
    Ids::new().save_weights(&path).unwrap();
    let mut m = Reviews::new();
    let err = m.load_weights_with(&path, kiln::LoadOptions { check_architecture: false }).unwrap_err().to_string();
    assert!(err.contains("holds no `kiln.text_vectorization`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

sequential! {
    /// TextVectorization's multi-hot rows as a model's input.
    pub struct BagOfWords: Input([], dtype = string) {
        TextVectorization(max_tokens = 10, output_mode = multi_hot),
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// Its TF-IDF rows.
    pub struct TfIdfWords: Input([], dtype = string) {
        TextVectorization(max_tokens = 10, output_mode = tf_idf),
        Dense(2, activation = softmax),
    }
}

/// Rows over the vocabulary inside a model are Keras 3's (`tests/fixtures/keras/text.txt`),
/// padded to max_tokens when the vocabulary is smaller.
#[test]
fn multi_hot_and_tf_idf_rows_inside_a_model_match_keras() {
    const TEXT: &str = include_str!("../fixtures/keras/text.txt");
    // The corpus and probe of `text.rs`, whose references these are.
    let (corpus, probe) = (super::text::CORPUS, super::text::PROBE);
    let keras = |key: &str| kiln::testing::reference(TEXT, key).unwrap();
    let mut m = BagOfWords::new();
    m.adapt(&corpus).unwrap();
    assert_eq!(m.vectorize(&probe).unwrap().iter().copied().collect::<Vec<_>>(), keras("multi_hot.out"));
    let mut t = TfIdfWords::new();
    t.adapt(&corpus).unwrap();
    let got: Vec<f32> = t.vectorize(&probe).unwrap().iter().copied().collect();
    kiln::testing::assert_close("tf_idf", &got, &keras("tf_idf.out"), 1e-6);
    // A vocabulary smaller than max_tokens: the rows keep the model's width.
    let mut small = BagOfWords::new();
    small.adapt(&["one two"]).unwrap();
    assert_eq!(small.vectorize(&["two"]).unwrap().shape(), &[1, 10]);
    let (texts, y) = texts();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &[]).unwrap();
    m.adapt(&texts).unwrap();
    m.fit(&texts, &y, Fit { epochs: 2, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
}
