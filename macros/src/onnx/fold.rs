//! Constant folding: nodes whose inputs are all known when the model compiles (initializers,
//! `Constant`s, and the shape computations PyTorch exports for `x.view(x.size(0), -1)`) are
//! computed here, with `NaN` standing for the symbolic batch size.

use super::graph::{Val, Value};
use super::ops::Lowering;
use super::proto::NodeProto;
use super::read::{self, Const};

/// The value of a node whose inputs are all constants.
pub fn fold(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let c = |k: usize| lw.constant(node, k);
    match node.op_type.as_str() {
        "Constant" => read::constant(node).or_else(|e| lw.fail(e)),
        "Identity" | "Dropout" => Ok((*c(0)?).clone()),
        "Cast" => {
            // To an integer type (ONNX's codes 2 to 7, 12 and 13): toward zero, as ONNX casts.
            let mut x = (*c(0)?).clone();
            if matches!(read::int(node, "to", 1), 2..=7 | 12 | 13) {
                x.vals.iter_mut().for_each(|v| *v = v.trunc());
            }
            Ok(x)
        }
        "Sqrt" => {
            let mut x = (*c(0)?).clone();
            x.vals.iter_mut().for_each(|v| *v = v.sqrt());
            Ok(x)
        }
        "Shape" => {
            let x = c(0)?;
            Ok(Const { dims: vec![x.dims.len()], vals: x.dims.iter().map(|&d| d as f64).collect() })
        }
        "Gather" => {
            let (data, idx) = (c(0)?, c(1)?);
            let axis = read::int(node, "axis", 0);
            if data.dims.len() != 1 || axis != 0 {
                return lw.fail("gathers from a constant of rank above 1; kiln folds Gather on vectors");
            }
            let n = data.vals.len() as i64;
            let vals = idx
                .vals
                .iter()
                .map(|&i| {
                    let i = if i < 0.0 { i as i64 + n } else { i as i64 };
                    data.vals.get(i as usize).copied().ok_or(())
                })
                .collect::<Result<Vec<_>, _>>()
                .or_else(|_| lw.fail("gathers past the end of its constant"))?;
            Ok(Const { dims: idx.dims.clone(), vals })
        }
        "Unsqueeze" | "Squeeze" => {
            let x = c(0)?;
            let (dims, _) = squeezed(lw, node, &x.dims)?;
            Ok(Const { dims, vals: x.vals.clone() })
        }
        "Concat" => concat(lw, node),
        "Reshape" => {
            let (x, t) = (c(0)?, c(1)?);
            let known: f64 = t.vals.iter().filter(|&&d| d > 0.0).product();
            let dims = t
                .vals
                .iter()
                .enumerate()
                .map(|(i, &d)| match d {
                    -1.0 => x.vals.len() / known.max(1.0) as usize,
                    0.0 => x.dims.get(i).copied().unwrap_or(0),
                    d => d as usize,
                })
                .collect::<Vec<_>>();
            if dims.iter().product::<usize>() != x.vals.len() {
                return lw.fail(format!("reshapes a constant of dimensions {:?} to {dims:?}", x.dims));
            }
            Ok(Const { dims, vals: x.vals.clone() })
        }
        "ConstantOfShape" => {
            let dims: Vec<usize> = c(0)?.vals.iter().map(|&d| d as usize).collect();
            let v = match read::attr(node, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => read::tensor(t).or_else(|e| lw.fail(e))?.vals.first().copied().unwrap_or(0.0),
                None => 0.0,
            };
            Ok(Const { vals: vec![v; dims.iter().product()], dims })
        }
        "Transpose" => transpose(lw, node),
        "Slice" => slice(lw, node),
        "Expand" => expand(lw, node),
        op @ ("Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min") if node.input.len() == 2 => {
            let (a, b) = (c(0)?, c(1)?);
            let f = |x: f64, y: f64| match op {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                // Integers: ONNX's Mod (fmod = 0) takes the divisor's sign, as Python's `%`.
                "Mod" => x - y * (x / y).floor(),
                "Max" => x.max(y),
                "Min" => x.min(y),
                _ => x / y,
            };
            match (a.vals.len(), b.vals.len()) {
                (n, m) if n == m => Ok(Const {
                    dims: a.dims.clone(),
                    vals: a.vals.iter().zip(&b.vals).map(|(x, y)| f(*x, *y)).collect(),
                }),
                (_, 1) => Ok(Const { dims: a.dims.clone(), vals: a.vals.iter().map(|x| f(*x, b.vals[0])).collect() }),
                (1, _) => Ok(Const { dims: b.dims.clone(), vals: b.vals.iter().map(|y| f(a.vals[0], *y)).collect() }),
                _ => lw.fail("combines constants of different sizes, which kiln does not fold"),
            }
        }
        _ => Err(lw.unsupported(node)),
    }
}

/// `Concat` of constants along any axis.
fn concat(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let c = |k: usize| lw.constant(node, k);
    let parts = (0..node.input.len()).map(c).collect::<Result<Vec<_>, _>>()?;
    let rank = parts[0].dims.len() as i64;
    let axis = read::int(node, "axis", 0);
    let axis = if axis < 0 { axis + rank } else { axis } as usize;
    let fits = |p: &Const| {
        p.dims.len() == parts[0].dims.len()
            && p.dims.iter().zip(&parts[0].dims).enumerate().all(|(a, (x, y))| a == axis || x == y)
    };
    if axis >= parts[0].dims.len().max(1) || !parts.iter().all(|p| fits(p)) {
        return lw.fail("concatenates constants whose dimensions do not fit");
    }
    if parts[0].dims.is_empty() {
        return Ok(Const { dims: vec![parts.len()], vals: parts.iter().map(|p| p.vals[0]).collect() });
    }
    let (outer, inner): (usize, usize) =
        (parts[0].dims[..axis].iter().product(), parts[0].dims[axis + 1..].iter().product());
    let mut dims = parts[0].dims.clone();
    dims[axis] = parts.iter().map(|p| p.dims[axis]).sum();
    let mut vals = Vec::new();
    for o in 0..outer {
        for p in &parts {
            let n = p.dims[axis] * inner;
            vals.extend_from_slice(&p.vals[o * n..(o + 1) * n]);
        }
    }
    Ok(Const { dims, vals })
}

/// `Transpose` of a constant.
fn transpose(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let c = |k: usize| lw.constant(node, k);
    let x = c(0)?;
    let rank = x.dims.len();
    let perm: Vec<usize> =
        read::ints(node, "perm").map_or_else(|| (0..rank).rev().collect(), |p| p.iter().map(|&a| a as usize).collect());
    let dims: Vec<usize> = perm.iter().map(|&a| x.dims.get(a).copied().unwrap_or(0)).collect();
    let vals = (0..x.vals.len())
        .map(|i| {
            let out = unravel(i, &dims);
            let mut at = vec![0; rank];
            perm.iter().zip(&out).for_each(|(&a, &o)| at[a] = o);
            x.vals[ravel(&at, &x.dims)]
        })
        .collect();
    Ok(Const { dims, vals })
}

/// `Expand` of a constant: broadcast to the shape, NumPy's way; the batch size (unknown) counts
/// as 1.
fn expand(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let c = |k: usize| lw.constant(node, k);
    let (x, to) = (c(0)?, c(1)?);
    let to: Vec<usize> = to.vals.iter().map(|&d| if d.is_nan() { 1 } else { d as usize }).collect();
    let rank = x.dims.len().max(to.len());
    let pad = |d: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - d.len()).chain(d.iter().copied()).collect() };
    let (xd, td) = (pad(&x.dims), pad(&to));
    let dims: Vec<usize> = xd.iter().zip(&td).map(|(&a, &b)| if a == 1 { b } else { a }).collect();
    if xd.iter().zip(&dims).any(|(&a, &d)| a != 1 && a != d) {
        return lw.fail(format!("expands a constant of dimensions {:?} to {to:?}", x.dims));
    }
    let n: usize = dims.iter().product();
    let vals = (0..n)
        .map(|i| {
            let at: Vec<usize> = unravel(i, &dims).iter().zip(&xd).map(|(&o, &a)| if a == 1 { 0 } else { o }).collect();
            x.vals[ravel(&at, &xd)]
        })
        .collect();
    Ok(Const { dims, vals })
}

/// `Split` of a constant along `axis`: the parts, by the sizes given (input 2 from opset 13,
/// the attribute before) or equal.
pub fn split(lw: &Lowering<'_>, node: &NodeProto) -> Result<Vec<Const>, String> {
    let x = lw.constant(node, 0)?;
    let rank = x.dims.len() as i64;
    let axis = read::int(node, "axis", 0);
    let axis = if axis < 0 { axis + rank } else { axis } as usize;
    let Some(&d) = x.dims.get(axis) else { return lw.fail(format!("splits axis {axis} of a constant of rank {rank}")) };
    let sizes: Vec<usize> = match lw.input(node, 1)? {
        Some(Value::Const(c)) => c.vals.iter().map(|&v| v as usize).collect(),
        Some(Value::Graph(_)) => return lw.fail("splits by computed sizes"),
        None => match read::ints(node, "split") {
            Some(s) => s.iter().map(|&v| v as usize).collect(),
            None => vec![d / node.output.len().max(1); node.output.len()],
        },
    };
    if sizes.iter().sum::<usize>() != d || sizes.len() != node.output.len() {
        return lw.fail(format!("splits an axis of {d} into {sizes:?} for {} outputs", node.output.len()));
    }
    let (outer, inner): (usize, usize) = (x.dims[..axis].iter().product(), x.dims[axis + 1..].iter().product());
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&n| {
            let mut dims = x.dims.clone();
            dims[axis] = n;
            let vals = (0..outer)
                .flat_map(|o| x.vals[(o * d + start) * inner..(o * d + start + n) * inner].to_vec())
                .collect();
            start += n;
            Const { dims, vals }
        })
        .collect())
}

/// The multi-index of flat position `i` in `dims` (row-major).
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut out = vec![0; dims.len()];
    for (o, &d) in out.iter_mut().zip(dims).rev() {
        *o = i % d.max(1);
        i /= d.max(1);
    }
    out
}

/// The flat position of multi-index `at` in `dims`.
fn ravel(at: &[usize], dims: &[usize]) -> usize {
    at.iter().zip(dims).fold(0, |acc, (&a, &d)| acc * d + a)
}

/// `Slice` of a constant (opset 10 and later: starts, ends, axes and steps as inputs).
fn slice(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let x = lw.constant(node, 0)?;
    let ints = |k: usize| -> Result<Option<Vec<i64>>, String> {
        Ok(match lw.input(node, k)? {
            Some(Value::Const(c)) => {
                Some(c.vals.iter().map(|&v| v.clamp(i64::MIN as f64, i64::MAX as f64) as i64).collect())
            }
            Some(Value::Graph(_)) => return lw.fail("slices with computed bounds"),
            None => None,
        })
    };
    let (starts, ends) = match (ints(1)?, ints(2)?) {
        (Some(s), Some(e)) => (s, e),
        _ => return lw.fail("needs its starts and ends as inputs (opset 10 and later)"),
    };
    let rank = x.dims.len() as i64;
    let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    // Per axis, the positions taken, in order.
    let mut picks: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for (((&a, &s), &e), &st) in axes.iter().zip(&starts).zip(&ends).zip(&steps) {
        let a = if a < 0 { a + rank } else { a };
        let Some(&d) = usize::try_from(a).ok().and_then(|a| x.dims.get(a)) else {
            return lw.fail(format!("slices axis {a} of a constant of rank {rank}"));
        };
        let d = d as i64;
        if st == 0 {
            return lw.fail("slices with step 0");
        }
        let clampi = |v: i64, lo: i64, hi: i64| (if v < 0 { v + d } else { v }).clamp(lo, hi);
        let (mut i, end) =
            if st > 0 { (clampi(s, 0, d), clampi(e, 0, d)) } else { (clampi(s, -1, d - 1), clampi(e, -1, d - 1)) };
        let mut taken = Vec::new();
        while (st > 0 && i < end) || (st < 0 && i > end) {
            taken.push(i as usize);
            i += st;
        }
        picks[a as usize] = taken;
    }
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let n: usize = dims.iter().product();
    let vals = (0..n)
        .map(|i| {
            let at: Vec<usize> = unravel(i, &dims).iter().zip(&picks).map(|(&o, p)| p[o]).collect();
            x.vals[ravel(&at, &x.dims)]
        })
        .collect();
    Ok(Const { dims, vals })
}

/// `Shape(x)` of a computed value: its dimensions, the batch `NaN`.
pub fn shape_of(lw: &Lowering<'_>, node: &NodeProto) -> Result<Const, String> {
    let x = lw.graph_folded(node, 0)?;
    let mut vals: Vec<f64> = x.shape.iter().map(|&d| d as f64).collect();
    vals.insert(x.batch, lw.batch.map_or(f64::NAN, |b| b as f64));
    let n = vals.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
    let (start, end) = (clamp(read::int(node, "start", 0)), clamp(read::int(node, "end", n)));
    let vals = vals.get(start..end.max(start)).unwrap_or_default().to_vec();
    Ok(Const { dims: vec![vals.len()], vals })
}

/// The dimensions after `Squeeze` / `Unsqueeze` (axes from the attribute before opset 13, from
/// the second input after), and the axes removed (Squeeze, numbered in `dims`) or inserted
/// (Unsqueeze, numbered in the result), in increasing order.
fn squeezed(lw: &Lowering<'_>, node: &NodeProto, dims: &[usize]) -> Result<(Vec<usize>, Vec<usize>), String> {
    let axes: Option<Vec<i64>> = match lw.input(node, 1)? {
        Some(Value::Const(c)) => Some(c.vals.iter().map(|&v| v as i64).collect()),
        Some(Value::Graph(_)) => return lw.fail("takes its axes from a computed value"),
        None => read::ints(node, "axes"),
    };
    if node.op_type == "Unsqueeze" {
        let axes = axes.map_or_else(|| lw.fail("needs its axes"), Ok)?;
        let rank = (dims.len() + axes.len()) as i64;
        let mut axes: Vec<usize> = axes.iter().map(|&a| if a < 0 { a + rank } else { a } as usize).collect();
        axes.sort();
        let mut out = dims.to_vec();
        for &a in &axes {
            if a > out.len() {
                return lw.fail("inserts an axis past the end");
            }
            out.insert(a, 1);
        }
        return Ok((out, axes));
    }
    let rank = dims.len() as i64;
    let mut drop: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| if a < 0 { a + rank } else { a } as usize).collect(),
        None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
    };
    drop.sort();
    if drop.iter().any(|&a| dims.get(a) != Some(&1)) {
        return lw.fail(format!("squeezes an axis of dimensions {dims:?} that is not 1"));
    }
    let out = dims.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, &d)| d).collect();
    Ok((out, drop))
}

/// `Squeeze` / `Unsqueeze` of a computed value: a view (only axes of size one come and go, so
/// no value moves), in the value's own layout; the batch axis stays where it is among the others.
pub fn squeeze(lw: &mut Lowering<'_>, node: &NodeProto) -> Result<Value, String> {
    let x = lw.graph_any(node, 0)?;
    // The batch axis as 0, which no axis of a sample is.
    let mut full = x.shape.clone();
    full.insert(x.batch, 0);
    let (out, axes) = squeezed(lw, node, &full)?;
    let squeeze = node.op_type == "Squeeze";
    if squeeze && axes.contains(&x.batch) {
        return lw.fail("squeezes the batch axis, which kiln keeps");
    }
    let batch = out.iter().position(|&d| d == 0).unwrap_or(0);
    let shape: Vec<usize> = out.iter().copied().filter(|&d| d != 0).collect();
    if shape.is_empty() {
        return lw.fail("leaves one number per sample; kiln keeps at least one axis besides the batch");
    }
    // Full axes to sample axes, without the batch.
    let sample = |full: usize, b: usize| full - usize::from(full > b);
    let order = if squeeze {
        let gone: Vec<usize> = axes.iter().map(|&a| sample(a, x.batch)).collect();
        let renumber = |a: usize| a - gone.iter().filter(|&&d| d < a).count();
        x.order.iter().filter(|a| !gone.contains(a)).map(|&a| renumber(a)).collect()
    } else {
        let new: Vec<usize> = axes.iter().map(|&a| sample(a, batch)).collect();
        // Old sample axis a is the a-th new axis that was not inserted.
        let new_of_old: Vec<usize> = (0..shape.len()).filter(|n| !new.contains(n)).collect();
        let mut order: Vec<usize> = x.order.iter().map(|&a| new_of_old[a]).collect();
        // Each new axis goes just before the stored place of the axis that follows it.
        for &n in new.iter().rev() {
            let next = (n + 1..shape.len()).find_map(|b| order.iter().position(|&s| s == b));
            order.insert(next.unwrap_or(order.len()), n);
        }
        order
    };
    let v = Val { node: x.node, shape, order, batch, hidden: None };
    let n = lw.g.reshape(x.node, &v.stored())?;
    Ok(Value::Graph(Val { node: n, ..v }))
}
