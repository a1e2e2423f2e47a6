//! Reading data sets: numeric CSV files (optionally gzip-compressed), NumPy `.npy` / `.npz`
//! files, folders of images per class (Keras' `image_dataset_from_directory`), and datasets that
//! stream batches through `fit` (see [`Dataset`]).

mod dataset;
mod folders;
#[cfg(feature = "images")]
mod images;
mod lookup;
#[cfg(feature = "npy")]
mod npy;
mod strings;
mod table;
mod text;

pub use dataset::{
    Batch, Batched, Dataset, Generator, Map, Prefetch, Repeat, Sample, Shuffle, Take, from_arrays, from_generator,
};
pub use folders::Subset;
#[cfg(feature = "images")]
pub use images::{
    ColorMode, ImageBatches, ImageFolder, ImageSet, image_batches_from_directory, image_dataset_from_directory,
};
pub use lookup::{CategoryEncoding, Discretization, Encoding, Hashing, IntegerLookup, Lookup, LookupKey, StringLookup};
#[cfg(feature = "npy")]
pub use npy::{read_npy, read_npz};
pub use text::{
    OutputMode, SplitOn, Standardize, TextFolder, TextOptions, TextSet, TextVectorization, text_dataset_from_directory,
};
pub use strings::{HASHING, STRING_LOOKUP, StringInput, TEXT_VECTORIZATION};
pub use table::{Categories, Column, CsvOptions, MISSING, Table, read_table};

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ndarray::{Array1, Array2, Axis, s};

use crate::error::{Error, Result};

/// Reads a numeric CSV file into `[rows, columns]`. A path ending in `.gz` is decompressed.
/// `skip_header`: `true` drops the first line (a header of column names, as pandas'
/// `read_csv` expects by default), `false` reads every line as numbers. Every row must have the
/// same number of columns; the error for a bad cell names its line and column.
///
/// ```ignore
/// let iris = kiln::data::read_csv("examples/data/iris.csv", true)?;          // has a header
/// let digits = kiln::data::read_csv("examples/data/digits.csv.gz", false)?;  // numbers only
/// ```
pub fn read_csv(path: impl AsRef<Path>, skip_header: bool) -> Result<Array2<f32>> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let io = |source| Error::Io { path: shown.clone(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let bad = |reason: String| Error::InvalidData { what: shown.clone(), reason };
    let mut values = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(io)?;
        if (skip_header && i == 0) || line.trim().is_empty() {
            continue;
        }
        let before = values.len();
        for (c, cell) in line.split(',').enumerate() {
            let v: f32 = cell
                .trim()
                .parse()
                .map_err(|_| bad(format!("line {}, column {}: `{cell}` is not a number", i + 1, c + 1)))?;
            values.push(v);
        }
        let n = values.len() - before;
        match cols {
            None => cols = Some(n),
            Some(c) if c != n => return Err(bad(format!("line {} has {n} columns, the first row has {c}", i + 1))),
            _ => {}
        }
        rows += 1;
    }
    let cols = cols.ok_or_else(|| bad("the file holds no rows".into()))?;
    Array2::from_shape_vec((rows, cols), values).map_err(|e| bad(e.to_string()))
}

/// Splits a table whose last column is the label into features `[n, columns - 1]` and labels `[n]`.
/// A table with fewer than two columns is an error.
pub fn split_label(table: &Array2<f32>) -> Result<(Array2<f32>, Array1<f32>)> {
    if table.ncols() < 2 {
        return Err(Error::InvalidData {
            what: "table".into(),
            reason: format!("it has {} column(s): split_label needs features and a label column", table.ncols()),
        });
    }
    let last = table.ncols() - 1;
    Ok((table.slice(s![.., ..last]).to_owned(), table.index_axis(Axis(1), last).to_owned()))
}

/// One-hot encodes integer labels `[n]` into `[n, classes]`; a label outside `0..classes` is an error.
pub fn one_hot(labels: &Array1<f32>, classes: usize) -> Result<Array2<f32>> {
    let mut out = Array2::zeros((labels.len(), classes));
    for (i, &l) in labels.iter().enumerate() {
        if l < 0.0 || l.fract() != 0.0 || l as usize >= classes {
            return Err(Error::InvalidData {
                what: "labels".into(),
                reason: format!("row {i} has label {l}, outside 0..{classes}"),
            });
        }
        out[[i, l as usize]] = 1.0;
    }
    Ok(out)
}

/// Shuffles the rows of a table with a seeded permutation (the same seed, the same order), so a
/// file ordered by class or by writer can be split into representative training and held-out parts.
pub fn shuffle_rows(table: &Array2<f32>, seed: u64) -> Array2<f32> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..table.nrows()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    table.select(Axis(0), &order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_cells_and_ragged_rows_name_the_line() {
        let dir = std::env::temp_dir().join(format!("kiln-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(&path, "a,b,c\n1,2,3\n4,x,6\n").unwrap();
        let e = read_csv(&path, true).unwrap_err().to_string();
        assert!(e.contains("line 3, column 2: `x` is not a number"), "{e}");
        std::fs::write(&path, "1,2,3\n4,5\n").unwrap();
        let e = read_csv(&path, false).unwrap_err().to_string();
        assert!(e.contains("line 2 has 2 columns, the first row has 3"), "{e}");
        std::fs::write(&path, "1,2,3\n4,5,6\n").unwrap();
        let t = read_csv(&path, false).unwrap();
        let (x, y) = split_label(&t).unwrap();
        assert_eq!((x.shape(), y.to_vec()), (&[2, 2][..], vec![3.0, 6.0]));
        assert!(split_label(&Array2::zeros((3, 1))).unwrap_err().to_string().contains("1 column(s)"));
        assert!(one_hot(&Array1::from_vec(vec![0.0, 3.0]), 3).unwrap_err().to_string().contains("row 1 has label 3"));
    }
}
