//! `kiln::data`'s text tools against Keras 3 (`tests/fixtures/keras/text.txt`, from
//! `examples/keras/text_reference.py`): `TextVectorization` in every output mode and
//! standardization (vocabulary order, ids, multi-hot, counts, TF-IDF), its JSON round trip, and
//! `text_dataset_from_directory` on the committed folder.

use kiln::data::{
    OutputMode, SplitOn, Standardize, Subset, TextFolder, TextOptions, TextVectorization, text_dataset_from_directory,
};

const FIXTURE: &str = include_str!("../fixtures/keras/text.txt");
const TEXTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data/texts");

pub(crate) const CORPUS: [&str; 7] = [
    "The cat sat on the mat.",
    "The dog ate my homework!",
    "A cat, a dog; a bird?",
    "Don't stop-believing",
    "zeta alpha beta alpha beta zeta",
    "CAFÉ au lait, s'il vous plaît",
    "tabs\tand\nnewlines   and  spaces",
];
pub(crate) const PROBE: [&str; 4] = ["the cat ate the unknown bird", "Hello", "", "café CAFÉ au au au lait"];

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("{key} missing from text.txt"))
}

/// A tab-separated line of the fixture: the fields after its key.
fn fields(key: &str) -> Vec<String> {
    let line = FIXTURE.lines().find(|l| l.split('\t').next() == Some(key)).unwrap_or_else(|| panic!("{key} missing"));
    line.split('\t').skip(1).map(str::to_string).collect()
}

fn case(name: &str) -> TextVectorization {
    let tv = TextOptions::default();
    TextVectorization::new(match name {
        "int" => TextOptions { max_tokens: Some(12), output_sequence_length: Some(6), ..tv },
        "int_ragged" => tv,
        "int_short" => TextOptions { output_sequence_length: Some(2), ..tv },
        "multi_hot" => TextOptions { max_tokens: Some(10), output_mode: OutputMode::MultiHot, ..tv },
        "count" => TextOptions { max_tokens: Some(10), output_mode: OutputMode::Count, ..tv },
        "tf_idf" => TextOptions { max_tokens: Some(10), output_mode: OutputMode::TfIdf, ..tv },
        "tf_idf_all" => TextOptions { output_mode: OutputMode::TfIdf, ..tv },
        "lower" => {
            TextOptions { standardize: Standardize::Lower, max_tokens: Some(8), output_sequence_length: Some(5), ..tv }
        }
        "strip" => TextOptions {
            standardize: Standardize::StripPunctuation,
            max_tokens: Some(8),
            output_sequence_length: Some(5),
            ..tv
        },
        "chars" => TextOptions {
            standardize: Standardize::None,
            split: SplitOn::Character,
            max_tokens: Some(12),
            output_sequence_length: Some(8),
            ..tv
        },
        other => panic!("no case {other}"),
    })
}

const CASES: [&str; 10] =
    ["int", "int_ragged", "int_short", "multi_hot", "count", "tf_idf", "tf_idf_all", "lower", "strip", "chars"];

#[test]
fn text_vectorization_matches_keras_in_every_mode() {
    for name in CASES {
        let mut tv = case(name);
        tv.adapt(&CORPUS).unwrap();
        assert_eq!(tv.vocabulary(), fields(&format!("{name}.vocab")), "{name}: vocabulary");
        let out = tv.transform(&PROBE).unwrap();
        let shape: Vec<usize> = reference(&format!("{name}.shape")).iter().map(|d| *d as usize).collect();
        assert_eq!(out.shape(), &shape[..], "{name}: shape");
        let want = reference(&format!("{name}.out"));
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}: value {i} is {g}, Keras {w}");
        }
    }
}

#[test]
fn a_vocabulary_round_trips_through_json_and_a_file() {
    let mut tv = case("tf_idf");
    tv.adapt(&CORPUS).unwrap();
    let back = TextVectorization::from_json(&tv.to_json()).unwrap();
    assert_eq!(back, tv);
    assert_eq!(back.transform(&PROBE).unwrap(), tv.transform(&PROBE).unwrap());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-text-vocabulary.json");
    tv.save(&path).unwrap();
    assert_eq!(TextVectorization::load(&path).unwrap(), tv);
    // What is wrong with a file is named.
    std::fs::write(&path, tv.to_json().replace("\"TfIdf\"", "\"Tfidf\"")).unwrap();
    let e = TextVectorization::load(&path).unwrap_err().to_string();
    assert!(e.contains("kiln-text-vocabulary.json") && e.contains("`output_mode` is `Tfidf`"), "{e}");
    let e = TextVectorization::default().transform(&["x"]).unwrap_err().to_string();
    assert!(e.contains("call adapt"), "{e}");
    let mut small = TextVectorization::new(TextOptions { max_tokens: Some(2), ..Default::default() });
    let e = small.adapt(&CORPUS).unwrap_err().to_string();
    assert!(e.contains("`max_tokens`") && e.contains("reserved"), "{e}");
}

#[test]
fn text_folders_read_as_keras_reads_them() {
    let opts = TextFolder { shuffle: false, ..TextFolder::default() };
    let (set, none) = text_dataset_from_directory(TEXTS, &opts).unwrap();
    assert!(none.is_none());
    assert_eq!(set.class_names, fields("folder.class_names"));
    assert_eq!(set.labels.to_vec(), reference("folder.labels"));
    for (i, text) in set.texts.iter().enumerate() {
        assert_eq!(text.replace('\n', "\\n"), fields(&format!("folder.text.{i}"))[0], "text {i}");
    }
    // A seeded split: disjoint, complete, the same for the same seed.
    let split = TextFolder { validation_split: 0.4, subset: Some(Subset::Both), seed: 3, ..TextFolder::default() };
    let (train, val) = text_dataset_from_directory(TEXTS, &split).unwrap();
    let val = val.unwrap();
    assert_eq!((train.texts.len(), val.texts.len()), (3, 2));
    let mut all: Vec<_> = train.files.iter().chain(&val.files).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5);
    assert_eq!(text_dataset_from_directory(TEXTS, &split).unwrap().0, train);
    // Bad folders and files are named.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-text-bad");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let e = text_dataset_from_directory(&dir, &TextFolder::default()).unwrap_err().to_string();
    assert!(e.contains("class folder holds no text files (.txt)"), "{e}");
    std::fs::write(dir.join("a/x.txt"), [0x66, 0xff, 0x66]).unwrap();
    let e = text_dataset_from_directory(&dir, &TextFolder::default()).unwrap_err().to_string();
    assert!(e.contains("x.txt: is not UTF-8 text (byte 1)"), "{e}");
}

kiln::sequential! {
    /// Token ids to two classes: an embedding averaged over the sequence.
    pub struct Reviews: Input([8], dtype = i32) {
        Embedding(40, 8),
        GlobalAveragePooling1D,
        Dense(2, activation = softmax),
    }
}

/// Texts to ids to a trained classifier, the vocabulary saved and loaded in between: what a
/// binary that takes raw strings does.
#[test]
fn texts_from_a_folder_train_a_classifier_that_reads_raw_strings() {
    use kiln::prelude::*;
    let (set, _) = text_dataset_from_directory(TEXTS, &TextFolder { shuffle: false, ..TextFolder::default() }).unwrap();
    let mut tv = TextVectorization::new(TextOptions {
        max_tokens: Some(40),
        output_sequence_length: Some(8),
        ..Default::default()
    });
    tv.adapt(&set.texts).unwrap();
    let x = tv.transform(&set.texts).unwrap();
    let mut m = Reviews::new();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &["accuracy"]).unwrap();
    m.fit(&x, &set.labels, Fit { epochs: 60, batch_size: 5, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(m.evaluate(&x, &set.labels).unwrap()["accuracy"], 1.0);
    let shipped = TextVectorization::from_json(&tv.to_json()).unwrap();
    let p = m.predict(&shipped.transform(&["a dull slow film", "wonderful and funny"]).unwrap()).unwrap();
    assert!(p[[0, 0]] > 0.5 && p[[1, 1]] > 0.5, "{p:?}");
}

/// `read_table`'s `categories` orders and numbers values as Keras' `StringLookup` does.
#[test]
fn table_categories_are_keras_string_lookup_ids() {
    let values = ["b", "a", "c", "a", "b", "d", "setosa", "versicolor", "setosa", "versicolor"];
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-text-lookup.csv");
    std::fs::write(&path, format!("kind\n{}\n", values.join("\n"))).unwrap();
    let t = kiln::data::read_table(&path, &kiln::data::CsvOptions::default()).unwrap();
    let c = t.categories("kind").unwrap();
    assert_eq!(c.vocabulary, fields("lookup.vocab"));
    let mut ids: Vec<f32> = c.ids.to_vec();
    ids.push(c.id("zebra") as f32);
    assert_eq!(ids, reference("lookup.ids"));
}
