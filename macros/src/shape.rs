//! Static shape inference and graph checks: every node's output shape from its inputs', with the
//! errors a user reads when layers do not fit, at the offending layer; then the checks that make
//! the graph trainable (everything reaches an output, shared layers see one shape).

use crate::ir::{LayerKind, Model, Op};
use crate::parse::Errors;

fn show(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

fn show_all(shapes: &[Vec<usize>]) -> String {
    let parts: Vec<String> = shapes.iter().map(|s| show(s)).collect();
    match parts.len() {
        2 => format!("{} and {}", parts[0], parts[1]),
        _ => parts.join(", "),
    }
}

/// The output shape of `kind` on `input` shapes, or the message explaining why it cannot be.
fn output_shape(kind: &LayerKind, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
    let class = kind.class();
    if !kind.is_merge() {
        let input = &ins[0];
        return match kind {
            LayerKind::Dense { units, .. } if input.len() == 1 => Ok(vec![*units]),
            LayerKind::Dense { .. } => {
                Err(format!("Dense expects a rank-1 input, got {}: add Flatten before it", show(input)))
            }
            LayerKind::Flatten => Ok(vec![input.iter().product()]),
            LayerKind::Activation { .. } => Ok(input.clone()),
            LayerKind::Reshape { target } => {
                let total: usize = input.iter().product();
                let unknown = target.iter().filter(|d| **d == -1).count();
                let known: i64 = target.iter().filter(|d| **d != -1).product();
                let t: Vec<String> = target.iter().map(|d| d.to_string()).collect();
                if unknown > 1 || target.iter().any(|d| *d == 0 || *d < -1) || target.is_empty() {
                    Err("Reshape's target dimensions must be positive, with at most one -1".into())
                } else if (unknown == 0 && known as usize != total)
                    || (unknown == 1 && !total.is_multiple_of(known as usize))
                {
                    Err(format!("Reshape cannot turn {} ({total} values) into [{}]", show(input), t.join(", ")))
                } else {
                    Ok(target.iter().map(|&d| if d == -1 { total / known as usize } else { d as usize }).collect())
                }
            }
            _ => unreachable!("merges handled below"),
        };
    }
    let two = matches!(kind, LayerKind::Dot) || class == "Subtract";
    if ins.len() < 2 || (two && ins.len() != 2) {
        return Err(format!(
            "{class} takes {} inputs, got {}",
            if two { "exactly 2" } else { "at least 2" },
            ins.len()
        ));
    }
    match kind {
        LayerKind::Elementwise { .. } => {
            if ins.iter().any(|s| s != &ins[0]) {
                Err(format!("{class} needs inputs of the same shape, got {}", show_all(ins)))
            } else {
                Ok(ins[0].clone())
            }
        }
        LayerKind::Concatenate { axis } => {
            let rank = ins[0].len() as i64;
            let a = if *axis < 0 { rank + 1 + axis } else { *axis };
            if a < 1 || a > rank {
                return Err(format!(
                    "Concatenate's axis {axis} is outside the inputs' axes 1..={rank} (axis 0 is the batch)"
                ));
            }
            let a = (a - 1) as usize;
            let fits = ins.iter().all(|s| {
                s.len() == ins[0].len() && s.iter().zip(&ins[0]).enumerate().all(|(i, (x, y))| i == a || x == y)
            });
            if !fits {
                return Err(format!(
                    "Concatenate on axis {axis} needs inputs whose other dimensions match, got {}",
                    show_all(ins)
                ));
            }
            let mut out = ins[0].clone();
            out[a] = ins.iter().map(|s| s[a]).sum();
            Ok(out)
        }
        LayerKind::Dot => {
            if ins[0].len() != 1 || ins[0] != ins[1] {
                Err(format!("Dot needs two vectors of the same width, got {}", show_all(ins)))
            } else {
                Ok(vec![1])
            }
        }
        _ => unreachable!("not a merge"),
    }
}

/// Fills in every node's shapes and checks the graph, reporting every problem at once.
pub fn infer(model: &mut Model) -> Result<(), syn::Error> {
    let mut errors = Errors::default();
    for i in 0..model.nodes.len() {
        let Op::Apply(l) = model.nodes[i].op else { continue };
        let ins: Vec<Vec<usize>> = model.nodes[i].inputs.iter().map(|&j| model.nodes[j].output_shape.clone()).collect();
        // An input whose shape failed already reported its error.
        if ins.iter().any(|s| s.is_empty()) {
            continue;
        }
        let layer = &model.layers[l];
        let first = layer.apps[0];
        if first != i && model.nodes[first].input_shapes != ins && !layer.kind.is_view() {
            errors.over(
                &model.nodes[i].tokens,
                format!(
                    "shared layer `{}` was built for input {} by its first use, got {}",
                    layer.name,
                    show_all(&model.nodes[first].input_shapes),
                    show_all(&ins)
                ),
            );
            continue;
        }
        if layer.apps.len() > 1
            && model.nodes[i]
                .inputs
                .iter()
                .any(|&j| model.layer_of(model.resolve(j)).is_some_and(|d| d.name == layer.name))
        {
            errors.over(
                &model.nodes[i].tokens,
                format!("shared layer `{}` cannot take its own output as input", layer.name),
            );
            continue;
        }
        match output_shape(&layer.kind, &ins) {
            Ok(out) => model.nodes[i].output_shape = out,
            Err(msg) => errors.over(&model.nodes[i].tokens, msg),
        }
        model.nodes[i].input_shapes = ins;
    }
    check_graph(model, &mut errors);
    errors.finish()
}

/// Everything reaches an output; every layer is applied; outputs are computed; few enough ports.
pub fn check_graph(model: &Model, errors: &mut Errors) {
    let mut reaches = vec![false; model.nodes.len()];
    for &o in &model.outputs {
        reaches[o] = true;
    }
    for i in (0..model.nodes.len()).rev() {
        if reaches[i] {
            for &j in &model.nodes[i].inputs {
                reaches[j] = true;
            }
        }
    }
    let consumed: Vec<bool> = (0..model.nodes.len())
        .map(|i| model.nodes.iter().any(|n| n.inputs.contains(&i)) || model.outputs.contains(&i))
        .collect();
    for (i, node) in model.nodes.iter().enumerate() {
        if reaches[i] {
            continue;
        }
        match node.op {
            Op::Input(k) => {
                errors.over(&node.tokens, format!("input `{}` is not used by any output", model.inputs[k].0))
            }
            // Report where a dead branch ends, not every node along it.
            Op::Apply(_) if !consumed[i] => {
                errors.over(&node.tokens, "this value does not reach any output: use it or remove it")
            }
            Op::Apply(_) => {}
        }
    }
    for layer in &model.layers {
        if layer.apps.is_empty() {
            errors.over(&layer.tokens, "this layer is defined but never applied: apply it to a value or remove it");
        }
    }
    for &o in &model.outputs {
        if model.layer_of(model.resolve(o)).is_none() {
            errors.over(&model.nodes[o].tokens, "an output must be computed by a layer, not be a model input");
        }
    }
    if model.inputs.len() > 8 || model.outputs.len() > 8 {
        errors.at(model.name.span(), "a model may have at most 8 inputs and 8 outputs");
    }
    if model.layers.iter().all(|l| l.kind.is_view()) && !model.layers.is_empty() {
        errors.at(
            model.name.span(),
            "the model has no layer that computes anything (only Flatten/Reshape): add a Dense or Activation layer",
        );
    }
}
