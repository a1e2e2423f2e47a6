//! Static shape inference: every node's output shape from its inputs', with the errors a user
//! reads when two layers do not fit, at the offending layer's span.

use crate::ir::{LayerKind, Model};
use crate::parse::Errors;

fn show(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// Fills in `input_shape` and `output_shape` of every node, or reports each mismatch.
pub fn infer(model: &mut Model) -> Result<(), syn::Error> {
    let mut errors = Errors::default();
    for i in 0..model.nodes.len() {
        let input = match model.nodes[i].inputs.first() {
            Some(&j) => model.nodes[j].output_shape.clone(),
            None => model.input_shape.clone(),
        };
        let node = &model.nodes[i];
        let out = match &node.kind {
            LayerKind::Dense { units, .. } => {
                if input.len() != 1 {
                    errors.over(
                        &node.tokens,
                        format!("Dense expects a rank-1 input, got {}: add Flatten before it", show(&input)),
                    );
                    vec![*units]
                } else {
                    vec![*units]
                }
            }
            LayerKind::Flatten => vec![input.iter().product()],
            LayerKind::Activation { .. } => input.clone(),
            LayerKind::Reshape { target } => {
                let total: usize = input.iter().product();
                let unknown = target.iter().filter(|d| **d == -1).count();
                let known: i64 = target.iter().filter(|d| **d != -1).product();
                if unknown > 1 || target.iter().any(|d| *d == 0 || *d < -1) || target.is_empty() {
                    errors.over(&node.tokens, "Reshape's target dimensions must be positive, with at most one -1");
                    input.clone()
                } else if (unknown == 0 && known as usize != total) || (unknown == 1 && total % known as usize != 0) {
                    let t: Vec<String> = target.iter().map(|d| d.to_string()).collect();
                    errors.over(
                        &node.tokens,
                        format!("Reshape cannot turn {} ({total} values) into [{}]", show(&input), t.join(", ")),
                    );
                    input.clone()
                } else {
                    target.iter().map(|&d| if d == -1 { total / known as usize } else { d as usize }).collect()
                }
            }
        };
        let node = &mut model.nodes[i];
        node.input_shape = input;
        node.output_shape = out;
    }
    if !model.nodes.is_empty() && model.nodes.iter().all(|n| n.kind.is_view()) {
        errors.at(
            model.name.span(),
            "the model has no layer that computes anything (only Flatten/Reshape): add a Dense or Activation layer",
        );
    }
    errors.finish()
}
