//! The buffer plan of the generated `infer`, made when the model compiles: each layer's output
//! gets a range of one scratch array, reused once the layers reading it have run (the largest
//! buffers placed first, each at the lowest offset free while it is alive), so the scratch size
//! is close to the largest set of outputs alive at once.

use crate::ir::{Model, Op, Static};

/// Where a node's values are while `infer` runs.
#[derive(Clone, Copy)]
pub enum Loc {
    /// In model input `k`.
    Input(usize),
    /// In the scratch array from this element.
    Scratch(usize),
}

/// The buffer plan: each node's location, the scratch length (f32 values), and the node with
/// the largest output.
pub struct Plan {
    pub loc: Vec<Loc>,
    pub len: usize,
    pub largest: Option<usize>,
}

/// Whether a node's values are its first input's: views and layers inactive at inference.
pub fn passes_on(model: &Model, node: usize) -> bool {
    model.layer_of(node).is_some_and(|l| {
        let n = &model.nodes[node];
        l.kind.is_view() || matches!(l.kind.infer(&n.input_shapes, &n.output_shape), Some(Static::Identity))
    })
}

/// Plans where every node's values are while `infer` runs.
pub fn plan(model: &Model) -> Plan {
    let n = model.nodes.len();
    let mut owner: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if passes_on(model, i) {
            owner[i] = owner[model.nodes[i].inputs[0]];
        }
    }
    // The last node reading each buffer; outputs live to the end.
    let mut last = vec![0usize; n];
    for i in 0..n {
        for &j in &model.nodes[i].inputs {
            last[owner[j]] = last[owner[j]].max(i);
        }
    }
    // A mask lives after its maker's output until the last layer that reads it.
    for i in 0..n {
        if model.layer_of(i).is_some_and(|l| l.kind.uses_mask()) {
            for &j in &model.nodes[i].inputs {
                if let Some(src) = model.mask_source(j) {
                    last[owner[src]] = last[owner[src]].max(i);
                }
            }
        }
    }
    for &o in &model.outputs {
        last[owner[o]] = usize::MAX;
    }
    // Greedy by size (as TensorFlow Lite's arena planner): the largest buffers are placed
    // first, each at the lowest offset free of the buffers alive at the same time.
    let mut owned: Vec<(usize, usize)> = (0..n)
        .filter(|&i| owner[i] == i && !matches!(model.nodes[i].op, Op::Input(_)))
        .map(|i| {
            let n = &model.nodes[i];
            let extra = model.layer_of(i).and_then(|l| l.kind.infer(&n.input_shapes, &n.output_shape));
            (n.output_shape.iter().product::<usize>() + extra.map_or(0, |s| s.extra()), i)
        })
        .collect();
    owned.sort_by_key(|&(size, i)| (std::cmp::Reverse(size), i));
    let mut placed: Vec<(usize, usize, usize)> = Vec::new();
    let mut start = vec![0usize; n];
    let mut len = 0;
    for &(size, i) in &owned {
        let mut overlapping: Vec<(usize, usize)> =
            placed.iter().filter(|&&(_, _, j)| j <= last[i] && i <= last[j]).map(|&(s, e, _)| (s, e)).collect();
        overlapping.sort_unstable();
        let mut at = 0;
        for (s, e) in overlapping {
            if s >= at + size {
                break;
            }
            at = at.max(e);
        }
        placed.push((at, at + size, i));
        start[i] = at;
        len = len.max(at + size);
    }
    let loc: Vec<Loc> = (0..n)
        .map(|i| match model.nodes[owner[i]].op {
            Op::Input(k) => Loc::Input(k),
            Op::Apply(_) => Loc::Scratch(start[owner[i]]),
        })
        .collect();
    let largest = owned.first().map(|&(_, i)| i);
    Plan { loc, len, largest }
}
