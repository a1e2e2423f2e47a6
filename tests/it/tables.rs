//! `kiln::data::read_table`: a CSV file with named columns, typed when read, missing cells kept
//! as missing, categories as ids. The fixture `tests/fixtures/data/iris_named.csv` is the shipped
//! iris data (UCI, CC BY 4.0) with the species by name, five cells blanked in pandas' spellings
//! of missing (and one as `?`), and a `collector` column added to exercise quoting.

use std::path::{Path, PathBuf};

use kiln::data::{Column, CsvOptions, read_table};
use kiln::prelude::*;

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data/iris_named.csv");

fn scratch(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-table-{name}.csv"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn columns_are_named_typed_and_missing_cells_kept() {
    let t = read_table(IRIS, &CsvOptions::default()).unwrap();
    assert_eq!(t.names(), ["sepal_length", "sepal_width", "petal_length", "petal_width", "species", "collector"]);
    assert_eq!(t.rows(), 150);
    // `?` is not one of pandas' missing spellings: that column reads as text unless told.
    assert!(matches!(t.column("sepal_length").unwrap(), Column::Text(_)));
    let told = read_table(IRIS, &CsvOptions { missing: vec!["?".into()], ..CsvOptions::default() }).unwrap();
    let missing: Vec<usize> = told.names().iter().map(|n| told.column(n).unwrap().missing()).collect();
    assert_eq!(missing, [1, 1, 1, 1, 1, 0]);
    match told.column("sepal_width").unwrap() {
        Column::Number(v) => assert_eq!((v[0], v[7]), (Some(3.5), None)),
        other => panic!("{other:?}"),
    }
    // Quoted cells keep their commas and quotes.
    match told.column("collector").unwrap() {
        Column::Text(v) => {
            assert_eq!((v[0].as_deref(), v[1].as_deref()), (Some("Fisher, R. A."), Some("Anderson \"E.\"")))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_cells_are_filled_or_dropped_and_categories_become_ids() {
    let opts = CsvOptions { missing: vec!["?".into()], ..CsvOptions::default() };
    let mut t = read_table(IRIS, &opts).unwrap();
    let features = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
    let e = t.numbers(&features).unwrap_err().to_string();
    assert!(e.contains("iris_named.csv") && e.contains("`sepal_length` is missing on line 63"), "{e}");
    let e = t.numbers(&["species"]).unwrap_err().to_string();
    assert!(e.contains("`species` holds text (\"setosa\" on line 2)"), "{e}");
    let e = t.column("petal").unwrap_err().to_string();
    assert!(e.contains("no column `petal`") && e.contains("petal_length, petal_width"), "{e}");
    // Categories: [UNK] (the missing species) first, then by frequency (virginica lost a cell),
    // ties in descending order (Keras' StringLookup order).
    let species = t.categories("species").unwrap();
    assert_eq!(species.vocabulary, ["[UNK]", "versicolor", "setosa", "virginica"]);
    assert_eq!((species.ids[0], species.ids[60], species.ids[120], species.ids[149]), (2.0, 1.0, 0.0, 3.0));
    assert_eq!((species.id("virginica"), species.id("daisy")), (3, 0));
    assert_eq!(species.one_hot().row(60).to_vec(), [0.0, 1.0, 0.0, 0.0]);
    // Filling with the mean, then dropping what is left.
    let mean = t.mean("sepal_width").unwrap();
    t.fill_missing("sepal_width", mean).unwrap();
    assert_eq!(t.column("sepal_width").unwrap().missing(), 0);
    assert_eq!(t.drop_missing(), 4);
    assert_eq!(t.rows(), 146);
    let x = t.numbers(&features).unwrap();
    assert_eq!(x.shape(), &[146, 4]);
    // The species as labels train a classifier.
    let species = t.categories("species").unwrap();
    assert_eq!(species.vocabulary[0], "[UNK]");
    let y = species.ids.mapv(|id| id - 1.0); // versicolor 0, setosa 1, virginica 2
    let mut m = IrisNet::new();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 60, batch_size: 16, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&x, &y).unwrap()["accuracy"];
    assert!(acc > 0.9, "accuracy {acc}");
}

sequential! {
    /// Four measurements to three species.
    pub struct IrisNet: [4] {
        Dense(16, activation = relu),
        Dense(3, activation = softmax),
    }
}

#[test]
fn bad_tables_are_errors_naming_the_line() {
    let read =
        |name: &str, text: &str| read_table(scratch(name, text), &CsvOptions::default()).unwrap_err().to_string();
    let e = read("ragged", "a,b\n1,2\n3,4,5\n");
    assert!(e.contains("kiln-table-ragged.csv") && e.contains("line 3 has 3 cells, the header 2"), "{e}");
    let e = read("twice", "a,b,a\n1,2,3\n");
    assert!(e.contains("names column `a` twice"), "{e}");
    let e = read("unnamed", "a,,c\n1,2,3\n");
    assert!(e.contains("column 2 of the header has no name"), "{e}");
    let e = read("header", "a,b\n");
    assert!(e.contains("a header but no rows"), "{e}");
    let e = read_table("no/such/table.csv", &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no/such/table.csv"), "{e}");
    let tabs = read_table(scratch("tabs", "x\ty\n1\t2\n"), &CsvOptions { delimiter: b'\t', ..CsvOptions::default() });
    assert_eq!(tabs.unwrap().numbers(&["y", "x"]).unwrap().row(0).to_vec(), [2.0, 1.0]);
}
