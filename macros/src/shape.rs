//! Static shape inference and graph checks: every node's output shape from its inputs', with the
//! errors a user reads when layers do not fit, at the offending layer; then the checks that make
//! the graph trainable (everything reaches an output, shared layers see one shape).

use crate::errors::Errors;
use crate::ir::{Model, Op};
use crate::layers::show_all;

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
        if let Some(msg) = several_error(model, i) {
            errors.over(&model.nodes[i].tokens, msg);
            continue;
        }
        if let Some(msg) = mask_error(model, i) {
            errors.over(&model.nodes[i].tokens, msg);
            continue;
        }
        if let Some(msg) = dtype_error(model, i) {
            errors.over(&model.nodes[i].tokens, msg);
            continue;
        }
        match layer.kind.output_shape(&ins) {
            Ok(out) => model.nodes[i].output_shape = out,
            Err(msg) => errors.over(&model.nodes[i].tokens, msg),
        }
        model.nodes[i].input_shapes = ins;
    }
    check_graph(model, &mut errors);
    errors.finish()
}

/// A layer of several outputs (`return_state`) is read only through its parts, which
/// `functional!` binds to names.
fn several_error(model: &Model, node: usize) -> Option<String> {
    if model.layer_of(node)?.kind.part_index().is_some() {
        return None;
    }
    model.nodes[node].inputs.iter().find_map(|&j| {
        let l = model.layer_of(j)?;
        let names = l.kind.outputs()?;
        Some(if model.functional {
            several_values(l.kind.class(), names)
        } else {
            format!(
                "{}(.., return_state = true) gives {} values ({}), and a Sequential model passes one value from \
                 layer to layer: write the model with functional! and bind each",
                l.kind.class(),
                names.len(),
                names.join(", ")
            )
        })
    })
}

/// Token ids (an input declared `dtype = i32`) go to the layers that read ids (Embedding), and
/// only there; Flatten and Reshape pass them on.
fn dtype_error(model: &Model, node: usize) -> Option<String> {
    let layer = model.layer_of(node)?;
    if layer.kind.is_view() {
        return None;
    }
    let class = layer.kind.class();
    for (i, &j) in model.nodes[node].inputs.iter().enumerate() {
        let ids = model.holds_ids(j);
        let input = model.nodes[model.resolve(j)].op;
        match (layer.kind.reads_ids(i), ids) {
            (true, false) => {
                return Some(format!(
                    "{class} reads integer token ids, but its input holds floats: declare the input with \
                     `dtype = i32`, e.g. `tokens = Input([100], dtype = i32)`"
                ));
            }
            (false, true) => {
                let Op::Input(k) = input else { continue };
                return Some(format!(
                    "input `{}` holds integer token ids (dtype = i32) and {class} reads floats: map the ids to \
                     vectors with an Embedding first",
                    model.inputs[k].0
                ));
            }
            _ => {}
        }
    }
    None
}

/// Masks kiln cannot carry as Keras would: two Embeddings' masks meeting, a mask reaching
/// BatchNormalization (Keras takes masked moments), a shared masking Embedding.
fn mask_error(model: &Model, node: usize) -> Option<String> {
    let layer = model.layer_of(node)?;
    if layer.kind.makes_mask() && layer.apps.len() > 1 {
        return Some("an Embedding with mask_zero = true can be applied once: define one per input".into());
    }
    let sources: Vec<usize> = model.nodes[node].inputs.iter().filter_map(|&j| model.mask_source(j)).collect();
    if layer.kind.keeps_mask() && sources.windows(2).any(|w| w[0] != w[1]) {
        return Some(format!(
            "masks of two Embeddings (mask_zero = true) meet at this {}: kiln carries one mask through a model",
            layer.kind.class()
        ));
    }
    if !sources.is_empty() && layer.kind.class() == "BatchNormalization" {
        return Some(
            "BatchNormalization after an Embedding with mask_zero = true: Keras takes masked statistics, which kiln \
             does not; use LayerNormalization"
                .into(),
        );
    }
    None
}

/// Everything reaches an output; every layer is applied; outputs are computed; few enough ports.
pub fn check_graph(model: &Model, errors: &mut Errors) {
    let mut reaches = vec![false; model.nodes.len()];
    for &o in &model.outputs {
        reaches[o] = true;
    }
    // A term added to the loss (`self.add_loss`) is an end of the graph, as an output is.
    for (i, r) in reaches.iter_mut().enumerate() {
        if model.layer_of(i).is_some_and(|l| l.kind.class() == "AddLoss") {
            *r = true;
        }
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
            Op::Apply(_) if !consumed[i] && model.layer_of(i).is_some_and(|l| l.kind.part_index().is_some()) => {
                errors.over(&node.tokens, "this output does not reach any model output: use it, or bind it to `_`")
            }
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
        if let Some(l) = model.layer_of(o)
            && let Some(names) = l.kind.outputs()
        {
            errors.over(&model.nodes[o].tokens, several_values(l.kind.class(), names));
        }
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

/// The error for a layer of several outputs used as one value.
pub fn several_values(class: &str, names: &[&str]) -> String {
    let example = match names.len() {
        5 => "(out, fh, fc, bh, bc)",
        3 if class == "Bidirectional" => "(out, fh, bh)",
        3 => "(out, h, c)",
        _ => "(out, h)",
    };
    format!(
        "{class}(.., return_state = true) gives {} values ({}): bind each to a name in functional!, \
         `{example} = {class}(..)(x)`, and use them by name",
        names.len(),
        names.join(", ")
    )
}
