//! A lowered `call` body as ONNX export reads it: the shapes the macro evaluated, and each
//! field as the layer of the other styles its type is.

use std::rc::Rc;

use super::{Lower, known};
use crate::ir::Model;

impl Lower {
    /// The model as ONNX export reads it: every shape in numbers, each field the layer of the other
    /// styles its type is; or why it cannot be written.
    pub(super) fn exportable(&self) -> Result<Model, String> {
        let mut m = self.model.clone();
        for node in &mut m.nodes {
            if let Some(dims) = &node.dims {
                node.output_shape = self.known.dims(dims).ok_or(
                    "its shapes are known to rustc only (a size parameter, a nested model or a layer type of your own)",
                )?;
            }
        }
        let outputs: Vec<Vec<usize>> = m.nodes.iter().map(|n| n.output_shape.clone()).collect();
        for node in &mut m.nodes {
            node.input_shapes = node.inputs.iter().map(|&j| outputs[j].clone()).collect();
        }
        for layer in &mut m.layers {
            let Some(key) = layer.kind.field_key().map(str::to_string) else { continue };
            let unsupported = || {
                format!(
                    "field `{key}` has no ONNX export yet (fields of kiln's layer types are written, not nested models or \
                     layer types of your own)"
                )
            };
            let (spec, form) = self.keras.get(&key).ok_or_else(unsupported)?;
            let given = layer.apps.first().map_or(1, |&a| m.nodes[a].inputs.len());
            let inner = match form {
                // Self-attention reads its one input as query and value: `mha(x, x)`.
                known::Form::SelfAttention => {
                    for &a in &layer.apps {
                        let node = &mut m.nodes[a];
                        node.inputs.insert(1, node.inputs[0]);
                        node.input_shapes.insert(1, node.input_shapes[0].clone());
                    }
                    if given > 1 { spec.with_mask_input().ok_or_else(unsupported)? } else { spec.clone() }
                }
                known::Form::CrossAttention if given > 2 => spec.with_mask_input().ok_or_else(unsupported)?,
                known::Form::CrossAttention => spec.clone(),
                // The inputs after the first are a recurrent layer's initial state.
                known::Form::Plain if given > 1 => spec.with_initial_state().ok_or_else(unsupported)?,
                known::Form::Plain | known::Form::Matrix => spec.clone(),
            };
            let rename = (*form == known::Form::Matrix).then_some(("kernel", "value"));
            // An element of an array field is named `blocks_0` here and `blocks.0` in the weights.
            let name = layer.name.to_string();
            let prefix = name.strip_prefix(&format!("{key}_")).map_or(key.clone(), |i| format!("{key}.{i}"));
            layer.kind = Rc::new(crate::layers::Exported { inner, prefix, rename });
        }
        Ok(m)
    }
}
