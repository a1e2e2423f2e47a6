//! Checking and laying out user arrays, once per call, before any computation.

use std::borrow::Cow;

use crate::error::{Error, Result, Shape};
use crate::model::{InputArray, Meta};

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

/// The array's values in row-major order: borrowed when they already are, else copied. The copy
/// iterates with the array's fixed rank (a dynamic-rank iterator costs an index vector update per
/// value, 10x the copy itself), so a transposed or stepped view costs about a contiguous copy.
pub(crate) fn contiguous<'a>(a: &'a InputArray<'_>) -> Cow<'a, [f32]> {
    if let Some(s) = a.as_slice() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(a.len());
    // Rows along the last axis that are contiguous (a stepped or sliced view): one copy each.
    if a.ndim() > 0 && a.strides().last() == Some(&1) {
        for lane in a.lanes(ndarray::Axis(a.ndim() - 1)) {
            match lane.as_slice() {
                Some(s) => out.extend_from_slice(s),
                None => out.extend(lane.iter().copied()),
            }
        }
        return Cow::Owned(out);
    }
    macro_rules! typed {
        ($($rank:literal => $ix:ty),*) => {
            match a.ndim() {
                $($rank => match a.view().into_dimensionality::<$ix>() {
                    Ok(v) => out.extend(v.iter().copied()),
                    Err(_) => out.extend(a.iter().copied()),
                },)*
                _ => out.extend(a.iter().copied()),
            }
        };
    }
    typed!(1 => ndarray::Ix1, 2 => ndarray::Ix2, 3 => ndarray::Ix3, 4 => ndarray::Ix4, 5 => ndarray::Ix5, 6 => ndarray::Ix6);
    Cow::Owned(out)
}

fn shape_str(rows: &str, dims: &[usize]) -> String {
    let mut s = format!("[{rows}");
    for d in dims {
        s += &format!(", {d}");
    }
    s + "]"
}

fn names(ports: &[crate::model::Port]) -> String {
    ports.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// How a message names array `i` of `what` (`x`, `y`, `validation_data x`).
fn label(meta: &Meta, what: &str, i: usize, targets: bool) -> String {
    let (ports, role) = if targets { (meta.outputs, "target of output") } else { (meta.inputs, "input") };
    if ports.len() == 1 {
        if targets { what.to_string() } else { format!("{what} (input of {})", meta.name) }
    } else {
        format!("{what}[{i}] ({role} `{}` of {})", ports[i].name, meta.name)
    }
}

fn check_count(meta: &Meta, got: usize, what: &str, targets: bool) -> Result<()> {
    let (ports, kind) = if targets { (meta.outputs, "outputs") } else { (meta.inputs, "inputs") };
    if got != ports.len() {
        return Err(Error::InvalidData {
            what: what.to_string(),
            reason: format!(
                "{} has {} {kind} ({}), so it takes {} array(s) in that order; got {got}",
                meta.name,
                ports.len(),
                names(ports),
                ports.len()
            ),
        });
    }
    Ok(())
}

/// Checks every input array: count, `[n, ..shape]`, equal row counts, finite values.
/// The rows of arrays a custom step reads, of any shapes: one row per sample (`n` of them, or as
/// many as the first array has), finite values. `None` of several arrays is refused.
pub(crate) fn free_rows<'v>(views: &'v [InputArray<'_>], n: Option<usize>, what: &str) -> Result<Vec<Rows<'v>>> {
    if views.len() > crate::model::MAX_PORTS || (n.is_none() && views.is_empty()) {
        return Err(Error::invalid(
            "fit_steps",
            format!("takes 1 to {} arrays of {what}, got {}", crate::model::MAX_PORTS, views.len()),
        ));
    }
    let mut out: Vec<Rows<'v>> = Vec::with_capacity(views.len());
    for (i, a) in views.iter().enumerate() {
        let label = if views.len() > 1 { format!("{what} (array {i})") } else { what.to_string() };
        let rows = a.shape().first().copied().unwrap_or(0);
        let want = n.or(out.first().map(|r| r.n)).unwrap_or(rows);
        if a.ndim() == 0 || rows == 0 || rows != want {
            return Err(Error::InvalidData {
                what: label,
                reason: format!("it has shape {:?}, but every array needs {want} rows (one per sample)", a.shape()),
            });
        }
        let data = contiguous(a);
        if let Some(j) = crate::kernels::first_non_finite(&data) {
            return Err(Error::InvalidData {
                what: label,
                reason: format!("row {} holds {} (kiln does not train on NaN or inf)", j / (data.len() / rows), data[j]),
            });
        }
        out.push(Rows { data, n: rows });
    }
    Ok(out)
}

pub(crate) fn inputs<'v>(meta: &Meta, views: &'v [InputArray<'_>], what: &str) -> Result<Vec<Rows<'v>>> {
    check_count(meta, views.len(), what, false)?;
    let mut out: Vec<Rows<'v>> = Vec::with_capacity(views.len());
    for (i, (x, port)) in views.iter().zip(meta.inputs).enumerate() {
        let shape = x.shape();
        if shape.len() != port.shape.len() + 1 || &shape[1..] != port.shape {
            return Err(Error::Shape {
                what: label(meta, what, i, false),
                expected: shape_str("n", port.shape),
                got: Shape(shape.to_vec()),
            });
        }
        let n = shape[0];
        if n == 0 {
            return Err(Error::InvalidData { what: label(meta, what, i, false), reason: "it has no rows".into() });
        }
        if let Some(first) = out.first()
            && first.n != n
        {
            return Err(Error::InvalidData {
                what: label(meta, what, i, false),
                reason: format!(
                    "it has {n} rows but input `{}` has {}: every input needs one row per sample",
                    meta.inputs[0].name,
                    first.n
                ),
            });
        }
        let data = contiguous(x);
        let width = data.len() / n;
        if let Some(j) = crate::kernels::first_non_finite(&data) {
            return Err(Error::InvalidData {
                what: label(meta, what, i, false),
                reason: format!("row {} holds {} (kiln does not train or predict on NaN or inf)", j / width, data[j]),
            });
        }
        if let crate::model::DType::I32 { below } = port.dtype {
            check_ids(&data, width, port.shape, below).map_err(|reason| Error::InvalidData {
                what: label(meta, what, i, false),
                reason: format!("{reason} (`{}` holds token ids for an Embedding)", port.name),
            })?;
        }
        out.push(Rows { data, n });
    }
    Ok(out)
}

/// Every value an integral id in `0..below`; the message names the first that is not by its row
/// and position in the sample.
pub(crate) fn check_ids(data: &[f32], width: usize, shape: &[usize], below: usize) -> std::result::Result<(), String> {
    let Some(j) = data.iter().position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < below)) else {
        return Ok(());
    };
    let (row, mut k) = (j / width, j % width);
    let mut index = vec![0; shape.len()];
    for (d, &size) in shape.iter().enumerate().rev() {
        index[d] = k % size;
        k /= size;
    }
    let at = index.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    Err(format!("row {row}, position [{at}] holds {}, not a token id in 0..{below}", crate::error::read_as(data[j])))
}


/// Checks every target array against its output's loss: `[n, ..output shape]`, or for integer
/// labels the output shape without its last axis (`[n]` or `[n, 1]` for a vector output, `[n, T]`
/// for a sequence of class scores `[T, C]`); `n` rows; valid values.
pub(crate) fn targets<'v>(
    meta: &Meta,
    views: &'v [InputArray<'_>],
    n: usize,
    losses: &[Loss],
    what: &str,
) -> Result<Vec<Rows<'v>>> {
    check_count(meta, views.len(), what, true)?;
    let mut out = Vec::with_capacity(views.len());
    for (i, y) in views.iter().enumerate() {
        let port = &meta.outputs[i];
        let (loss, out_width) = (&losses[i.min(losses.len() - 1)], port.last());
        let shape = y.shape();
        let tw = loss.target_width(out_width);
        let lead = &port.shape[..port.shape.len().saturating_sub(1)];
        let mut expected = lead.to_vec();
        expected.push(tw);
        // Integer labels for a sequence of class scores read best without the trailing 1.
        let shown = if tw == 1 && !lead.is_empty() { lead } else { &expected[..] };
        let fits = !shape.is_empty() && (shape[1..] == expected[..] || (tw == 1 && &shape[1..] == lead));
        let name = label(meta, what, i, true);
        if !fits {
            let hint = if loss.is_sparse() {
                " (sparse_categorical_crossentropy takes one integer label per row)".to_string()
            } else if tw > 1 && !shape.is_empty() && (shape.len() == port.shape.len() || shape[1..].ends_with(&[1])) {
                // One value per row where a row of tw is expected: class ids.
                format!(
                    " ({} needs one-hot targets, {tw} wide: for class ids use sparse_categorical_crossentropy, \
                     or one-hot them with kiln::data::one_hot)",
                    loss.name()
                )
            } else {
                format!(" (the output is {out_width} wide and the loss is {})", loss.name())
            };
            return Err(Error::Shape {
                what: format!("{name}{hint}"),
                expected: shape_str("n", shown),
                got: Shape(shape.to_vec()),
            });
        }
        if shape[0] != n {
            return Err(Error::InvalidData {
                what: name,
                reason: format!("it has {} rows but x has {n}: x and y need one row per sample", shape[0]),
            });
        }
        let data = contiguous(y);
        loss.check_targets(&data, out_width, &name)?;
        out.push(Rows { data, n });
    }
    Ok(out)
}

/// Checks one weight per row: `n` of them, each finite and >= 0.
pub(crate) fn sample_weights(w: ndarray::ArrayView1<'_, f32>, n: usize, what: &'static str) -> Result<Vec<f32>> {
    if w.len() != n {
        return Err(Error::invalid(what, format!("needs one weight per row: {n}, got {}", w.len())));
    }
    if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::invalid(what, format!("weights must be finite and >= 0; row {i} has {v}")));
    }
    Ok(w.to_vec())
}

/// The training rows' weights from `sample_weight` or `class_weight` (Keras' rules), or `None`
/// when neither is given.
pub(crate) fn row_weights(
    meta: &Meta,
    opts: &super::Fit<'_>,
    n: usize,
    ys: &[Rows<'_>],
    losses: &[Loss],
) -> Result<Option<Vec<f32>>> {
    match (opts.sample_weight, opts.class_weight) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "class_weight",
            "give class_weight or sample_weight, not both (multiply them into sample_weight)",
        )),
        (Some(w), None) => sample_weights(w, n, "sample_weight").map(Some),
        (None, Some(classes)) => {
            if meta.outputs.len() != 1 {
                return Err(Error::invalid(
                    "class_weight",
                    format!("is for models with one output; {} has {}", meta.name, meta.outputs.len()),
                ));
            }
            let (sparse, width) = (losses[0].is_sparse(), meta.outputs[0].last());
            if ys[0].n * (if sparse { 1 } else { width }) != ys[0].data.len() {
                return Err(Error::invalid(
                    "class_weight",
                    "needs one class per row (a vector or sequence output has none)",
                ));
            }
            // A single sigmoid output has classes 0 and 1.
            let count = if sparse || width > 1 { width } else { 2 };
            let mut table = vec![1.0f32; count];
            for &(class, w) in classes {
                if class >= count {
                    return Err(Error::invalid(
                        "class_weight",
                        format!(
                            "names class {class}, but output `{}` has {count} classes (0..={})",
                            meta.outputs[0].name,
                            count - 1
                        ),
                    ));
                }
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::invalid(
                        "class_weight",
                        format!("class {class}'s weight must be finite and >= 0, got {w}"),
                    ));
                }
                table[class] = w;
            }
            let y = &ys[0].data;
            let class_of = |r: usize| -> usize {
                if sparse {
                    y[r] as usize
                } else if width == 1 {
                    y[r].round().clamp(0.0, 1.0) as usize
                } else {
                    let row = &y[r * width..(r + 1) * width];
                    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
                }
            };
            Ok(Some((0..n).map(|r| table[class_of(r).min(count - 1)]).collect()))
        }
        (None, None) => Ok(None),
    }
}
