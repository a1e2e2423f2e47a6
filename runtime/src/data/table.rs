//! Tables: a CSV file with a header of column names, each column typed when it is read (numbers,
//! or text), missing cells kept as missing, as pandas' `read_csv` reads it; then the columns a
//! model takes, as arrays: numbers stacked, categories given integer ids (Keras'
//! `StringLookup`) or one-hot rows, missing values filled or their rows dropped. The CSV syntax
//! (quotes, embedded delimiters and newlines) is the `csv` crate's.

use std::path::Path;

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};

/// The cells pandas reads as missing by default (`na_values`), compared after trimming spaces.
pub const MISSING: [&str; 17] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a",
];

/// How [`read_table`] reads a file.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// The field separator (default `b','`).
    pub delimiter: u8,
    /// The cells read as missing, besides [`MISSING`] (`"?"` in some UCI files).
    pub missing: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { delimiter: b',', missing: Vec::new() }
    }
}

/// One column's cells: numbers where every present cell is one, text otherwise.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Numbers (`None`: missing).
    Number(Vec<Option<f32>>),
    /// Text (`None`: missing).
    Text(Vec<Option<String>>),
}

impl Column {
    /// Cells that are missing.
    pub fn missing(&self) -> usize {
        match self {
            Column::Number(v) => v.iter().filter(|c| c.is_none()).count(),
            Column::Text(v) => v.iter().filter(|c| c.is_none()).count(),
        }
    }
}

/// A table read by [`read_table`]: named, typed columns of equal length.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    names: Vec<String>,
    columns: Vec<Column>,
    path: String,
}

/// A column's categories as ids (Keras' `StringLookup` with one out-of-vocabulary index): id 0
/// is `[UNK]` (a missing cell, or a value not in the vocabulary), ids 1.. the values from the
/// most frequent to the least (ties in descending order of the value, as Keras orders them).
#[derive(Clone, Debug, PartialEq)]
pub struct Categories {
    /// Each row's id.
    pub ids: Array1<f32>,
    /// `[UNK]`, then the values by id.
    pub vocabulary: Vec<String>,
}

impl Categories {
    /// The id of `value` (0 when it is not in the vocabulary), as the layer would give it.
    pub fn id(&self, value: &str) -> usize {
        self.vocabulary.iter().skip(1).position(|v| v == value).map_or(0, |i| i + 1)
    }

    /// The ids as one-hot rows `[rows, vocabulary size]` (Keras' `output_mode="one_hot"`).
    pub fn one_hot(&self) -> Array2<f32> {
        let mut out = Array2::zeros((self.ids.len(), self.vocabulary.len()));
        for (r, &id) in self.ids.iter().enumerate() {
            out[[r, id as usize]] = 1.0;
        }
        out
    }
}

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::BadFile { path: path.to_string(), reason: reason.into() }
}

/// Reads a CSV file whose first line names the columns. A column whose present cells all parse
/// as numbers is numeric, any other is text; cells in [`MISSING`] or `opts.missing` are missing.
/// A row with more or fewer cells than the header is an error naming its line, as are a
/// duplicate or empty column name and a file without rows.
///
/// ```ignore
/// let mut t = kiln::data::read_table("penguins.csv", &CsvOptions::default())?;
/// t.drop_missing();
/// let x = t.numbers(&["bill_length_mm", "flipper_length_mm"])?;   // [rows, 2]
/// let species = t.categories("species")?;                          // ids and vocabulary
/// ```
pub fn read_table(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Table> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(true)
        .from_path(path)
        .map_err(|e| csv_error(&shown, e))?;
    let names: Vec<String> =
        reader.headers().map_err(|e| csv_error(&shown, e))?.iter().map(|h| h.trim().to_string()).collect();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(bad(&shown, format!("column {} of the header has no name", i + 1)));
        }
        if names[..i].contains(n) {
            return Err(bad(&shown, format!("the header names column `{n}` twice")));
        }
    }
    let is_missing = |cell: &str| MISSING.contains(&cell) || opts.missing.iter().any(|m| m == cell);
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&shown, e))?;
        for (col, cell) in cells.iter_mut().zip(record.iter()) {
            let cell = cell.trim();
            col.push((!is_missing(cell)).then(|| cell.to_string()));
        }
    }
    if cells.first().is_none_or(|c| c.is_empty()) {
        return Err(bad(&shown, "holds a header but no rows"));
    }
    let columns = cells
        .into_iter()
        .map(|col| {
            let numbers: Option<Vec<Option<f32>>> =
                col.iter().map(|c| c.as_deref().map_or(Some(None), |s| s.parse::<f32>().ok().map(Some))).collect();
            match numbers {
                Some(n) => Column::Number(n),
                None => Column::Text(col),
            }
        })
        .collect();
    Ok(Table { names, columns, path: shown })
}

fn csv_error(path: &str, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => bad(
            path,
            format!(
                "line {} has {len} cells, the header {expected_len}",
                pos.as_ref().map_or(0, |p| p.line()),
            ),
        ),
        csv::ErrorKind::Utf8 { pos, .. } => {
            bad(path, format!("line {} is not UTF-8 text", pos.as_ref().map_or(0, |p| p.line())))
        }
        _ => match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io { path: path.to_string(), source },
            other => bad(path, format!("{other:?}")),
        },
    }
}

impl Table {
    /// The column names, in the file's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        match self.columns.first() {
            Some(Column::Number(v)) => v.len(),
            Some(Column::Text(v)) => v.len(),
            None => 0,
        }
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            bad(&self.path, format!("has no column `{name}`; its columns are {}", self.names.join(", ")))
        })
    }

    /// The column called `name`; an error lists the columns there are.
    pub fn column(&self, name: &str) -> Result<&Column> {
        Ok(&self.columns[self.index(name)?])
    }

    /// Numeric columns side by side, `[rows, names.len()]` (the features of a model). A text
    /// column or a missing cell is an error naming it (fill it or drop its row first).
    pub fn numbers(&self, names: &[&str]) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((self.rows(), names.len()));
        for (j, name) in names.iter().enumerate() {
            match self.column(name)? {
                Column::Number(v) => {
                    for (r, cell) in v.iter().enumerate() {
                        out[[r, j]] = cell.ok_or_else(|| {
                            bad(
                                &self.path,
                                format!(
                                    "column `{name}` is missing on line {} (fill_missing or drop_missing first)",
                                    r + 2
                                ),
                            )
                        })?;
                    }
                }
                Column::Text(v) => {
                    let (r, example) = v
                        .iter()
                        .enumerate()
                        .find_map(|(r, c)| c.as_deref().filter(|s| s.parse::<f32>().is_err()).map(|s| (r, s)))
                        .unwrap_or((0, ""));
                    return Err(bad(
                        &self.path,
                        format!(
                            "column `{name}` holds text (\"{example}\" on line {}): encode it with categories",
                            r + 2
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Fills the missing cells of a numeric column with `value` (pandas' `fillna`).
    pub fn fill_missing(&mut self, name: &str, value: f32) -> Result<()> {
        let i = self.index(name)?;
        match &mut self.columns[i] {
            Column::Number(v) => v.iter_mut().filter(|c| c.is_none()).for_each(|c| *c = Some(value)),
            Column::Text(_) => {
                return Err(bad(&self.path, format!("column `{name}` holds text: its missing cells are id 0 in categories")));
            }
        }
        Ok(())
    }

    /// The mean of a numeric column's present cells (what to fill its missing ones with).
    pub fn mean(&self, name: &str) -> Result<f32> {
        match self.column(name)? {
            Column::Number(v) => {
                let present: Vec<f64> = v.iter().flatten().map(|&x| x as f64).collect();
                if present.is_empty() {
                    return Err(bad(&self.path, format!("column `{name}` has no values")));
                }
                Ok((present.iter().sum::<f64>() / present.len() as f64) as f32)
            }
            Column::Text(_) => Err(bad(&self.path, format!("column `{name}` holds text, which has no mean"))),
        }
    }

    /// Drops every row with a missing cell (pandas' `dropna`); returns how many were dropped.
    pub fn drop_missing(&mut self) -> usize {
        let rows = self.rows();
        let keep: Vec<bool> = (0..rows)
            .map(|r| {
                self.columns.iter().all(|c| match c {
                    Column::Number(v) => v[r].is_some(),
                    Column::Text(v) => v[r].is_some(),
                })
            })
            .collect();
        for c in &mut self.columns {
            let mut k = keep.iter();
            match c {
                Column::Number(v) => v.retain(|_| *k.next().unwrap_or(&false)),
                Column::Text(v) => v.retain(|_| *k.next().unwrap_or(&false)),
            }
        }
        rows - self.rows()
    }

    /// A column's values as categories: ids and their vocabulary (see [`Categories`]). Numbers
    /// are categories too (`2` and `2.0` are one).
    pub fn categories(&self, name: &str) -> Result<Categories> {
        let values: Vec<Option<String>> = match self.column(name)? {
            Column::Number(v) => v.iter().map(|c| c.map(|x| x.to_string())).collect(),
            Column::Text(v) => v.clone(),
        };
        let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for v in values.iter().flatten() {
            *counts.entry(v.as_str()).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        // Most frequent first, ties in descending order of the value (Keras' order).
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        let index: std::collections::HashMap<&str, usize> = ranked.iter().enumerate().map(|(i, (v, _))| (*v, i + 1)).collect();
        let ids = values.iter().map(|v| v.as_deref().and_then(|s| index.get(s)).map_or(0.0, |&i| i as f32)).collect();
        let vocabulary: Vec<String> =
            std::iter::once("[UNK]".to_string()).chain(ranked.iter().map(|(s, _)| s.to_string())).collect();
        Ok(Categories { ids, vocabulary })
    }
}
