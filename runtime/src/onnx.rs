//! Writing a model as an ONNX file: `save_onnx`, which the model macros generate. The graph is
//! encoded when the model compiles (`kiln-macros`' `onnx/export.rs`); the weights, as they are
//! when this runs, are appended here as the graph's initializers under the names kiln gives them
//! (`dense.kernel`, `batch_normalization.moving_mean`), in kiln's layouts, which the exported
//! graph reads as they are.

use std::path::Path;

use crate::error::Result;
use crate::model::dynamic::DynModel;

/// Protobuf's base-128 varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A varint field (wire type 0).
fn int_field(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

/// Writes `path` atomically: `head` (a ModelProto's fields but its graph), then the graph:
/// `graph` (a GraphProto's fields but its initializers) followed by a float TensorProto for each
/// of the model's weights.
#[doc(hidden)]
pub fn save_onnx(m: &dyn DynModel, path: &Path, head: &[u8], graph: &[u8]) -> Result<()> {
    let mut g = graph.to_vec();
    m.visit_weights(&mut |name, p| {
        let mut t = Vec::new();
        for &d in p.shape() {
            int_field(&mut t, 1, d as u64); // dims
        }
        int_field(&mut t, 2, 1); // data_type: FLOAT
        bytes_field(&mut t, 8, name.as_bytes());
        let raw: Vec<u8> = p.value.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes_field(&mut t, 9, &raw); // raw_data, little-endian
        bytes_field(&mut g, 5, &t); // GraphProto.initializer
    });
    let mut model = head.to_vec();
    bytes_field(&mut model, 7, &g); // ModelProto.graph
    crate::io::atomic_write(path, |w| w.write_all(&model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_protobufs() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut f = Vec::new();
        bytes_field(&mut f, 8, b"ab");
        assert_eq!(f, [0x42, 2, b'a', b'b']);
    }
}
