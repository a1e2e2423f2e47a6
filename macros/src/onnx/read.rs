//! Reading an ONNX file when the model compiles: the bytes decoded with `prost` into the messages
//! of `proto`, checked to be a model kiln can read, and the helpers the lowering reads nodes
//! with (attributes, constant tensors).

use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, dtype};

/// The path as written, resolved: relative to the source file that names it (as `#[weights]`
/// and `include_bytes!` resolve theirs), else to the crate's `CARGO_MANIFEST_DIR`; the first
/// candidate that exists, or every candidate tried.
pub fn resolve(path: &str, source_file: Option<PathBuf>) -> Result<PathBuf, Vec<PathBuf>> {
    let p = Path::new(path);
    if p.is_absolute() {
        return if p.exists() { Ok(p.to_path_buf()) } else { Err(vec![p.to_path_buf()]) };
    }
    let mut tried = Vec::new();
    let bases = [
        source_file.and_then(|f| f.parent().map(Path::to_path_buf)),
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
    ];
    for base in bases.into_iter().flatten() {
        let joined = base.join(p);
        let abs = if joined.is_absolute() {
            joined
        } else {
            std::env::current_dir().map(|c| c.join(&joined)).unwrap_or(joined)
        };
        if abs.exists() {
            return Ok(abs);
        }
        tried.push(abs);
    }
    Err(tried)
}

/// Decodes the file's bytes; the sentence saying why they are not an ONNX model kiln can read.
pub fn decode(bytes: &[u8]) -> Result<ModelProto, String> {
    let not = "is not an ONNX model (a ModelProto with a graph)";
    let model = ModelProto::decode(bytes).map_err(|e| format!("{not}: {e}"))?;
    let Some(graph) = &model.graph else { return Err(format!("{not}: it has no graph")) };
    if model.ir_version <= 0 || graph.node.is_empty() || graph.output.is_empty() {
        return Err(format!("{not}: it has no IR version, nodes or outputs"));
    }
    Ok(model)
}

/// The version of the default operator set (`ai.onnx`) the model imports.
pub fn opset(model: &ModelProto) -> i64 {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version)
}

/// A node as messages name it: `` node `/conv1/Conv` (Conv) ``.
pub fn describe(node: &NodeProto) -> String {
    if node.name.is_empty() {
        let out = node.output.first().map_or("?", String::as_str);
        format!("node {} (output `{out}`)", node.op_type)
    } else {
        format!("node `{}` ({})", node.name, node.op_type)
    }
}

/// Attribute `name` of a node, if set.
pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An integer attribute, or its default.
pub fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

/// A float attribute, or its default.
pub fn float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

/// A list-of-integers attribute, if set.
pub fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A string attribute, or its default.
pub fn string(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map_or_else(|| default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A constant: its dimensions and values, as f64 (every integer an ONNX shape computation
/// holds is exact in it). In shape computations `NaN` stands for the batch size, which the file
/// leaves symbolic.
#[derive(Clone, Debug)]
pub struct Const {
    pub dims: Vec<usize>,
    pub vals: Vec<f64>,
}

impl Const {
    pub fn scalar(v: f64) -> Const {
        Const { dims: vec![], vals: vec![v] }
    }

    /// The values as f32 (weights).
    pub fn f32s(&self) -> Vec<f32> {
        self.vals.iter().map(|&v| v as f32).collect()
    }
}

/// Reads the values of the initializers kept in external files (ONNX's external data: each
/// tensor names a `location` relative to the model's folder, an `offset` and a `length`) into
/// the tensors; returns the files read, which the generated code names so that editing one
/// rebuilds the model. A location outside the model's folder, a missing file or a range past
/// its end is an error naming the tensor.
pub fn inline_external(model: &mut ModelProto, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let Some(graph) = model.graph.as_mut() else { return Ok(vec![]) };
    for t in graph.initializer.iter_mut().filter(|t| t.data_location == 1) {
        let entry = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
        let location = entry("location").ok_or_else(|| format!("tensor `{}` is external but names no file", t.name))?;
        let rel = Path::new(&location);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(format!(
                "tensor `{}` reads `{location}`, which is not a file inside the model's folder",
                t.name
            ));
        }
        let number = |k: &str| -> Result<Option<usize>, String> {
            entry(k)
                .map(|v| v.parse::<usize>().map_err(|_| format!("tensor `{}` has {k} `{v}`, not a count", t.name)))
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let path = dir.join(rel);
        let at = match files.iter().position(|(p, _)| *p == path) {
            Some(i) => i,
            None => {
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("tensor `{}` reads {}: {e}", t.name, path.display()))?;
                files.push((path.clone(), bytes));
                files.len() - 1
            }
        };
        let bytes = &files[at].1;
        let end = length.map_or(bytes.len(), |n| offset.saturating_add(n));
        if offset > end || end > bytes.len() {
            return Err(format!(
                "tensor `{}` reads bytes {offset}..{end} of {}, which holds {}",
                t.name,
                path.display(),
                bytes.len()
            ));
        }
        t.raw_data = bytes[offset..end].to_vec();
        t.data_location = 0;
        t.external_data.clear();
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// A tensor's values, whatever type it stores them in; the reason when kiln cannot read them.
pub fn tensor(t: &TensorProto) -> Result<Const, String> {
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{}` has a negative size", t.name)))
        .collect::<Result<_, _>>()?;
    if t.data_location == 1 {
        return Err(format!("tensor `{}` keeps its values in an external file that was not read", t.name));
    }
    let raw = &t.raw_data;
    let le = |n: usize| raw.chunks_exact(n);
    let vals: Vec<f64> = match t.data_type {
        dtype::FLOAT if !raw.is_empty() => le(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect(),
        dtype::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
        dtype::DOUBLE if !raw.is_empty() => le(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect(),
        dtype::DOUBLE => t.double_data.clone(),
        dtype::INT64 if !raw.is_empty() => {
            le(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64).collect()
        }
        dtype::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        dtype::INT32 if !raw.is_empty() => le(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect(),
        dtype::INT32 => t.int32_data.iter().map(|&v| v as f64).collect(),
        other => {
            return Err(format!(
                "tensor `{}` has ONNX data type {other}; kiln reads float, double, int32 and int64",
                t.name
            ));
        }
    };
    let n: usize = dims.iter().product();
    if vals.len() != n {
        return Err(format!("tensor `{}` holds {} values for dimensions {dims:?}", t.name, vals.len()));
    }
    Ok(Const { dims, vals })
}

/// The value of a `Constant` node.
pub fn constant(node: &NodeProto) -> Result<Const, String> {
    let a = node.attribute.first().ok_or("a Constant without a value")?;
    match a.name.as_str() {
        "value" => a.t.as_ref().ok_or_else(|| "a Constant without its tensor".to_string()).and_then(tensor),
        "value_float" => Ok(Const::scalar(a.f as f64)),
        "value_int" => Ok(Const::scalar(a.i as f64)),
        "value_floats" => Ok(Const { dims: vec![a.floats.len()], vals: a.floats.iter().map(|&v| v as f64).collect() }),
        "value_ints" => Ok(Const { dims: vec![a.ints.len()], vals: a.ints.iter().map(|&v| v as f64).collect() }),
        other => Err(format!("a Constant given as `{other}`, which kiln does not read")),
    }
}
