//! Axes folded into the batch axis: PyTorch's `nn.MultiheadAttention` reshapes its
//! `[steps, batch, heads x size]` projections to `[steps, batch x heads, size]`, transposes,
//! reshapes back to `[batch, heads, steps, size]` for the products, and folds the steps into the
//! batch (`[steps x batch, features]`) for the output projection. kiln keeps the batch apart,
//! so the folded axis stays a sample axis the value hides from ONNX's view (`Val::hidden`):
//! folding and unfolding are views, and a Dense on the last axis reads through it.

use super::graph::{Hidden, Val, Value, identity};
use super::ops::Lowering;
use super::proto::NodeProto;
use super::read;

impl Lowering<'_> {
    /// A Reshape that folds an axis into the batch axis or unfolds one from it; `None` when the
    /// Reshape does neither. The batch slot of the target is the one symbolic (`NaN`) entry.
    pub fn fold_reshape(&mut self, node: &NodeProto, x: &Val, target: &[f64]) -> Result<Option<Value>, String> {
        let copy = read::int(node, "allowzero", 0) == 0;
        let mut full: Vec<f64> = x.shape.iter().map(|&d| d as f64).collect();
        full.insert(x.batch.min(full.len()), f64::NAN);
        let t: Vec<f64> = target
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 0.0 && copy { full.get(i).copied().unwrap_or(d) } else { d })
            .collect();
        let slots: Vec<usize> = (0..t.len()).filter(|&i| t[i].is_nan()).collect();
        let (&[s], false) = (&slots[..], t.iter().any(|&d| d < 0.0)) else { return Ok(None) };
        let rest: Vec<usize> = t.iter().enumerate().filter(|&(i, _)| i != s).map(|(_, &d)| d as usize).collect();
        let (vis, out): (usize, usize) = (x.shape.iter().product(), rest.iter().product());
        match x.hidden {
            Some(h) => self.unfold(x, h, s, &rest, vis, out),
            None if out < vis && out > 0 && vis % out == 0 => self.fold(x, s, &rest, vis / out),
            None => Ok(None),
        }
    }

    /// `x` with the axis hidden in its batch axis placed back beside it (after it when minor,
    /// before it when major), the other axes as they were.
    fn unfold(
        &mut self,
        x: &Val,
        h: Hidden,
        s: usize,
        rest: &[usize],
        vis: usize,
        out: usize,
    ) -> Result<Option<Value>, String> {
        let at = if h.major { s.checked_sub(1) } else { Some(s) };
        let Some(at) = at.filter(|&a| rest.get(a) == Some(&h.size) && out == vis * h.size) else { return Ok(None) };
        let mut others = rest.to_vec();
        others.remove(at);
        if others != x.shape || x.batch != if h.major { s - 1 } else { s } {
            return Ok(None);
        }
        let rank = x.shape.len();
        let order = x
            .order
            .iter()
            .map(|&a| {
                if a == rank {
                    at
                } else if a < at {
                    a
                } else {
                    a + 1
                }
            })
            .collect();
        let v = Val { node: x.node, shape: rest.to_vec(), order, batch: s, hidden: None };
        Ok(Some(Value::Graph(v)))
    }

    /// `x` with a factor `r` of the batch slot taken from its axes: the ones just after the batch
    /// axis (minor, the slot where the batch was) or all those before it (major, the slot first).
    fn fold(&mut self, x: &Val, s: usize, rest: &[usize], r: usize) -> Result<Option<Value>, String> {
        let b = x.batch;
        let x = self.g.onnx_layout(x)?;
        let (major, visible) = if s == b && rest[..b] == x.shape[..b] {
            (false, rest.to_vec())
        } else if s == 0 && b > 0 && x.shape[..b].iter().product::<usize>() == r {
            (true, rest.to_vec())
        } else {
            return Ok(None);
        };
        // Stored: the sample as the file orders it, the folded factor where it sits in the data.
        let mut stored = visible.clone();
        let hidden_at = if major { 0 } else { b };
        stored.insert(hidden_at, r);
        if stored.iter().product::<usize>() != x.shape.iter().product::<usize>() {
            return Ok(None);
        }
        let n = self.g.reshape(x.node, &stored)?;
        let rank = visible.len();
        let mut order = identity(rank);
        order.insert(hidden_at, rank);
        let v = Val {
            node: n,
            shape: visible,
            order,
            batch: if major { 0 } else { b },
            hidden: Some(Hidden { size: r, major }),
        };
        Ok(Some(Value::Graph(v)))
    }
}
