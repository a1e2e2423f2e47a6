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

const FIXTURE: &str = include_str!("../fixtures/keras/lookup.txt");

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("{key} missing from lookup.txt"))
}

sequential! {
    /// A colour (one string per sample) to two classes, through a StringLookup in the model.
    pub struct Colors: Input([], dtype = string) {
        StringLookup(max_tokens = 10, num_oov_indices = 2, mask_token = ""),
        Embedding(10, 4),
        Flatten,
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// The same through a salted Hashing, one-hot.
    pub struct HashedColors: Input([], dtype = string) {
        Hashing(num_bins = 7, salt = [133, 137], output_mode = one_hot),
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// `Colors` with the weights and vocabulary `write_the_string_fixtures` saved.
    #[weights("../fixtures/strings/colors.safetensors")]
    pub struct EmbeddedColors: Input([], dtype = string) {
        StringLookup(max_tokens = 10, num_oov_indices = 2, mask_token = ""),
        Embedding(10, 4),
        Flatten,
        Dense(2, activation = softmax),
    }
}

const WORDS: [&str; 15] =
    ["b", "a", "c", "a", "b", "d", "setosa", "versicolor", "setosa", "versicolor", "a", "zz", "", "", "b"];

fn colors() -> (Vec<&'static str>, kiln::ndarray::Array1<f32>) {
    let x = vec!["red", "blue", "red", "green", "blue", "green", "red", "blue"];
    let y = x.iter().map(|c| if *c == "red" { 1.0 } else { 0.0 }).collect();
    (x, y)
}

fn trained_colors() -> Colors {
    let (x, y) = colors();
    let mut m = Colors::new();
    m.adapt(&x).unwrap();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.1), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 30, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    m
}

/// Keras' StringLookup and Hashing as a model's first layer: their outputs are Keras 3's
/// (`tests/fixtures/keras/lookup.txt`), the model trains on strings, and their state goes with
/// the weights into files and into the binary.
#[test]
fn string_lookup_and_hashing_read_a_models_strings_as_keras_does() {
    // StringLookup(mask_token = "", num_oov_indices = 2) adapted on WORDS.
    let mut m = Colors::new();
    m.adapt(&WORDS).unwrap();
    let ids = m.vectorize(&["a", "", "unseen", "zz", "never", "d", "other"]).unwrap();
    assert_eq!(ids.iter().copied().collect::<Vec<_>>(), reference("mask_string_int.out"));
    let summary = m.summary_string();
    assert!(summary.contains("string_lookup (StringLookup)") && summary.contains("(None, 1)"), "{summary}");
    // Hashing(num_bins = 7, salt = [133, 137]), one-hot.
    let h = HashedColors::new();
    let texts = [
        "",
        "a",
        "hello world",
        "setosa",
        "a much longer string of more than sixty-four bytes, to reach the long path",
    ];
    let rows = h.vectorize(&texts).unwrap();
    let bins: Vec<f32> = rows.rows().into_iter().map(|r| r.iter().position(|&v| v == 1.0).unwrap() as f32).collect();
    assert_eq!(bins, reference("hash_salt.out"));
    assert!(HashedColors::new().adapt(&texts).unwrap_err().to_string().contains("Hashing learns nothing"));

    let (x, y) = colors();
    let mut m = trained_colors();
    assert_eq!(m.evaluate(&x, &y).unwrap()["accuracy"], 1.0);
    let p = m.predict(&["red", "green"]).unwrap();
    assert!(p[[0, 1]] > 0.5 && p[[1, 0]] > 0.5, "{p:?}");
    // Colours in bins of their own (red and green share bin 3 of 7 under this salt).
    let xh = ["red", "blue", "orange", "black", "red", "blue", "orange", "red"];
    let yh: kiln::ndarray::Array1<f32> = xh.iter().map(|c| if *c == "red" { 1.0 } else { 0.0 }).collect();
    let mut hashed = HashedColors::new();
    hashed.compile("sparse_categorical_crossentropy", Adam::new(0.1), &["accuracy"]).unwrap();
    hashed.fit(&xh, &yh, Fit { epochs: 40, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(hashed.evaluate(&xh, &yh).unwrap()["accuracy"], 1.0);

    // Saved and loaded with the weights; compiled in by #[weights].
    let dir = std::env::temp_dir().join(format!("kiln-string-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("colors.safetensors");
    m.save_weights(&path).unwrap();
    let mut back = Colors::new();
    back.load_weights(&path).unwrap();
    assert_eq!(back.predict(&["red", "green"]).unwrap(), p);
    std::fs::remove_dir_all(&dir).unwrap();
    let mut embedded = EmbeddedColors::embedded();
    let q = embedded.predict(&["red", "green", "blue"]).unwrap();
    let best: Vec<usize> = q.rows().into_iter().map(|r| usize::from(r[1] > r[0])).collect();
    assert_eq!(best, [1, 0, 0], "{q:?}");
}

#[test]
#[ignore = "writes tests/fixtures/strings/*.safetensors"]
fn write_the_string_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/strings");
    std::fs::create_dir_all(dir).unwrap();
    trained_colors().save_weights(format!("{dir}/colors.safetensors")).unwrap();
    let mut q = Quartiles::new();
    let data = kiln::ndarray::Array2::from_shape_vec((1000, 1), reference("discretize.data")).unwrap();
    q.adapt("discretization", &data).unwrap();
    q.save_weights(format!("{dir}/quartiles.safetensors")).unwrap();
}

sequential! {
    /// Keras' CategoryEncoding inside a model: counts of three ids per sample.
    pub struct Counts: Input([3], dtype = i32) {
        CategoryEncoding(num_tokens = 5, output_mode = count),
    }
}

sequential! {
    /// Multi-hot rows of three ids.
    pub struct MultiHot: Input([3], dtype = i32) {
        CategoryEncoding(num_tokens = 5),
    }
}

sequential! {
    /// One id per sample, one-hot, then a classifier.
    pub struct OneHotClassifier: Input([1], dtype = i32) {
        CategoryEncoding(num_tokens = 5, output_mode = one_hot),
        Dense(2, activation = softmax),
    }
}

/// CategoryEncoding inside a model gives Keras 3's rows; an id out of range is refused at the
/// input, naming it.
#[test]
fn category_encoding_inside_a_model_matches_keras() {
    let ids = kiln::ndarray::array![[0, 3, 3], [1, 1, 2], [4, 0, 4]];
    let counts = Counts::new().predict(&ids).unwrap();
    assert_eq!(counts.iter().copied().collect::<Vec<_>>(), reference("encoding_count.out"));
    let multi = MultiHot::new().predict(&ids).unwrap();
    assert_eq!(multi.iter().copied().collect::<Vec<_>>(), reference("encoding_multi_hot.out"));
    let mut m = OneHotClassifier::new();
    let first = ids.column(0).to_owned().insert_axis(kiln::ndarray::Axis(1));
    let w = m.get_weight("dense.kernel").unwrap();
    // The one-hot row picks the kernel's row of each id.
    let p = m.predict(&first).unwrap();
    assert_eq!(p.shape(), &[3, 2]);
    assert_eq!(w.len(), 10);
    let y = kiln::ndarray::array![1.0f32, 0.0, 1.0];
    m.compile("sparse_categorical_crossentropy", Adam::new(0.1), &["accuracy"]).unwrap();
    m.fit(&first, &y, Fit { epochs: 30, batch_size: 3, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(m.evaluate(&first, &y).unwrap()["accuracy"], 1.0);
    // The gradients of the weights after it, by finite differences.
    let ids = [3.0f32, 0.0, 4.0, 1.0];
    kiln::testing::check_model(&mut OneHotClassifier::new(), &[&ids], 4, 10, 1e-2).unwrap();
    let err = Counts::new().predict(&kiln::ndarray::array![[0, 5, 1]]).unwrap_err().to_string();
    assert!(err.contains('5'), "{err}");
}

sequential! {
    /// Keras' Discretization inside a model with given boundaries: bucket ids.
    pub struct Buckets: [7] {
        Discretization(bin_boundaries = [0.0, 1.0, 2.5]),
    }
}

sequential! {
    /// Four buckets learned by `adapt`.
    pub struct Quartiles: [7] {
        Discretization(num_bins = 4),
    }
}

sequential! {
    /// A number to one of four buckets, one-hot, then a classifier.
    pub struct Ages: [1] {
        Discretization(num_bins = 4, output_mode = one_hot),
        Dense(2, activation = softmax),
    }
}

/// Discretization inside a model: Keras 3's buckets for given boundaries, Keras 3's boundaries
/// (bit for bit) from `adapt` on the model, refused until adapted, saved with the weights.
#[test]
fn discretization_inside_a_model_matches_keras() {
    let probe = kiln::ndarray::Array2::from_shape_vec((1, 7), reference("discretize.probe")).unwrap();
    let out = Buckets::new().predict(&probe).unwrap();
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), reference("discretize_fixed.out"));

    let data = kiln::ndarray::Array2::from_shape_vec((1000, 1), reference("discretize.data")).unwrap();
    let mut q = Quartiles::new();
    let err = q.predict(&probe).unwrap_err().to_string();
    assert!(err.contains("layer `discretization` (Discretization) has no bin boundaries yet"), "{err}");
    q.adapt("discretization", &data).unwrap();
    assert_eq!(
        q.get_weight("discretization.bin_boundaries").unwrap().iter().copied().collect::<Vec<_>>(),
        reference("discretize_q4.bins")
    );
    assert_eq!(q.predict(&probe).unwrap().iter().copied().collect::<Vec<_>>(), reference("discretize_q4.out"));
    let err = q.set_weight("discretization.bin_boundaries", &kiln::ndarray::array![1.0f32, 0.0, 2.0]).unwrap_err();
    assert!(err.to_string().contains("they must increase"), "{err}");

    // Adapted, trained, saved and loaded with its boundaries.
    let x = kiln::ndarray::Array2::from_shape_fn((40, 1), |(i, _)| i as f32 / 4.0);
    let mut m = Ages::new();
    m.adapt("discretization", &x).unwrap();
    // Class 1 from the third bucket on: a rule the one-hot buckets can express exactly.
    let middle = m.get_weight("discretization.bin_boundaries").unwrap()[1];
    let y = x.column(0).mapv(|v| if v < middle { 0.0 } else { 1.0 });
    m.compile("sparse_categorical_crossentropy", Adam::new(0.1), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 40, batch_size: 40, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(m.evaluate(&x, &y).unwrap()["accuracy"], 1.0);
    let dir = std::env::temp_dir().join(format!("kiln-discretization-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ages.safetensors");
    m.save_weights(&path).unwrap();
    let mut back = Ages::new();
    back.load_weights(&path).unwrap();
    assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    // Not adapted: nothing to save.
    assert!(Ages::new().save_weights(dir.join("never.safetensors")).is_err());
}

sequential! {
    /// Keras' IntegerLookup inside a model: three integers per sample as multi-hot rows.
    pub struct IntRows: [3] {
        IntegerLookup(max_tokens = 8, output_mode = multi_hot),
    }
}

sequential! {
    /// The same as counts.
    pub struct IntCounts: [3] {
        IntegerLookup(max_tokens = 8, output_mode = count),
    }
}

/// IntegerLookup inside a model: `adapt` on the model learns Keras 3's vocabulary, the rows are
/// Keras 3's, and a model not yet adapted refuses to predict.
#[test]
fn integer_lookup_inside_a_model_matches_keras() {
    let ints = [7.0f32, 3.0, 3.0, 9.0, 7.0, 100.0, -4.0, 3.0, 0.0, 9.0, 12.0, 12.0];
    let data = kiln::ndarray::Array2::from_shape_vec((12, 1), ints.to_vec()).unwrap();
    let probe = kiln::ndarray::array![[3.0f32, 3.0, 9.0], [5.0, 100.0, 100.0], [0.0, -4.0, 7.0]];
    let mut m = IntRows::new();
    let err = m.predict(&probe).unwrap_err().to_string();
    assert!(err.contains("layer `integer_lookup` (IntegerLookup) has no vocabulary yet"), "{err}");
    m.adapt("integer_lookup", &data).unwrap();
    let vocab: Vec<f32> = m.get_weight("integer_lookup.vocabulary").unwrap().iter().copied().collect();
    let keras: Vec<f32> = reference_words("int_multi_hot.vocab").iter().skip(1).map(|v| v.parse().unwrap()).collect();
    assert_eq!(vocab, keras);
    assert_eq!(m.predict(&probe).unwrap().iter().copied().collect::<Vec<_>>(), reference("int_multi_hot.out"));
    let mut c = IntCounts::new();
    c.adapt("integer_lookup", &data).unwrap();
    assert_eq!(c.predict(&probe).unwrap().iter().copied().collect::<Vec<_>>(), reference("int_count.out"));
}

fn reference_words(key: &str) -> Vec<String> {
    let line = FIXTURE.lines().find(|l| l.split('\t').next() == Some(key)).unwrap_or_else(|| panic!("{key} missing"));
    line.split('\t').skip(1).map(str::to_string).collect()
}

sequential! {
    /// `Quartiles` with its adapted boundaries compiled in.
    #[weights("../fixtures/strings/quartiles.safetensors")]
    pub struct EmbeddedQuartiles: [7] {
        Discretization(num_bins = 4),
    }
}

/// A Discretization's adapted boundaries are compiled in with the weights.
#[test]
fn adapted_boundaries_are_compiled_in() {
    let probe = kiln::ndarray::Array2::from_shape_vec((1, 7), reference("discretize.probe")).unwrap();
    let out = EmbeddedQuartiles::embedded().predict(&probe).unwrap();
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), reference("discretize_q4.out"));
}
