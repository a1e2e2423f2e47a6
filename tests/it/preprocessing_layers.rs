//! Keras' preprocessing layers inside a model, against Keras 3 (`tests/fixtures/keras/lookup.txt`):
//! `StringLookup` and `Hashing` reading a string input (as `TextVectorization` does, see
//! `text_models.rs`), and `CategoryEncoding`, `Discretization` and `IntegerLookup` as layers of
//! the graph, their state (boundaries, vocabulary) learned by `Model::adapt`, saved, loaded and
//! compiled in with the weights.

use kiln::prelude::*;

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

sequential! {
    /// Integers through an IntegerLookup's rows into a classifier.
    pub struct IntClassifier: [2] {
        IntegerLookup(max_tokens = 6, output_mode = count),
        Dense(2, activation = softmax),
    }
}

/// The gradients of the layers after a Discretization or an IntegerLookup, by finite
/// differences (their own inputs have none: buckets and lookups are flat).
#[test]
fn the_layers_after_discretization_and_integer_lookup_pass_the_gradient_check() {
    let x = kiln::ndarray::Array2::from_shape_fn((40, 1), |(i, _)| i as f32 / 4.0);
    let mut ages = Ages::new();
    ages.adapt("discretization", &x).unwrap();
    kiln::testing::check_model(&mut ages, &[&[0.5, 3.0, 6.0, 9.0]], 4, 10, 1e-2).unwrap();
    let mut ints = IntClassifier::new();
    let data = kiln::ndarray::array![[3.0f32], [3.0], [7.0], [9.0], [9.0], [9.0]];
    ints.adapt("integer_lookup", &data).unwrap();
    kiln::testing::check_model(&mut ints, &[&[3.0, 9.0, 7.0, 42.0, 9.0, 9.0]], 3, 12, 1e-2).unwrap();
}
