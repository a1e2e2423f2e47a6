//! Checking and laying out user arrays, once per call, before any computation.

use std::borrow::Cow;

use ndarray::{ArrayBase, Data, Dimension};

use crate::error::{Error, Result, Shape};
use crate::losses::Loss;

/// An array's values as contiguous rows, and its row count.
pub(crate) struct Rows<'a> {
    pub data: Cow<'a, [f32]>,
    pub n: usize,
}

impl Rows<'_> {
    pub fn width(&self) -> usize {
        self.data.len().checked_div(self.n).unwrap_or(0)
    }
}

fn contiguous<'a, S: Data<Elem = f32>, D: Dimension>(a: &'a ArrayBase<S, D>) -> Cow<'a, [f32]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

fn shape_str(rows: &str, dims: &[usize]) -> String {
    let mut s = format!("[{rows}");
    for d in dims {
        s += &format!(", {d}");
    }
    s + "]"
}

/// Checks that `x` is `[n, ..feature_shape]` with finite values.
pub(crate) fn inputs<'a, S: Data<Elem = f32>, D: Dimension>(
    x: &'a ArrayBase<S, D>,
    feature_shape: &[usize],
    what: impl Fn() -> String,
) -> Result<Rows<'a>> {
    let shape = x.shape();
    if shape.len() != feature_shape.len() + 1 || &shape[1..] != feature_shape {
        return Err(Error::Shape { what: what(), expected: shape_str("n", feature_shape), got: Shape(shape.to_vec()) });
    }
    let n = shape[0];
    if n == 0 {
        return Err(Error::InvalidData { what: what(), reason: "it has no rows".into() });
    }
    let data = contiguous(x);
    let width = data.len() / n;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidData {
            what: what(),
            reason: format!("row {} holds {} (kiln does not train or predict on NaN or inf)", i / width, data[i]),
        });
    }
    Ok(Rows { data, n })
}

/// Checks that `y` has `n` rows of targets fitting `loss` for a model output `out_width` wide:
/// `[n, out_width]`, or for integer labels `[n]` or `[n, 1]`.
pub(crate) fn targets<'a, S: Data<Elem = f32>, D: Dimension>(
    y: &'a ArrayBase<S, D>,
    n: usize,
    loss: &Loss,
    out_width: usize,
    what: &str,
) -> Result<Rows<'a>> {
    let shape = y.shape();
    let tw = loss.target_width(out_width);
    let width: usize = shape.iter().skip(1).product();
    let rank_ok = shape.len() == 2 || (tw == 1 && shape.len() == 1);
    if !rank_ok || width != tw {
        let hint = if loss.is_sparse() {
            " (sparse_categorical_crossentropy takes one integer label per row)".to_string()
        } else if tw > 1 && shape.len() == 1 {
            format!(" ({} needs one-hot targets, {tw} wide)", loss.name())
        } else {
            format!(" (the model has {out_width} outputs and the loss is {})", loss.name())
        };
        return Err(Error::Shape {
            what: format!("{what}{hint}"),
            expected: shape_str("n", &[tw]),
            got: Shape(shape.to_vec()),
        });
    }
    if shape[0] != n {
        return Err(Error::InvalidData {
            what: what.to_string(),
            reason: format!("it has {} rows but x has {n}: x and y need one row per sample", shape[0]),
        });
    }
    let data = contiguous(y);
    loss.check_targets(&data, out_width, what)?;
    Ok(Rows { data, n })
}
