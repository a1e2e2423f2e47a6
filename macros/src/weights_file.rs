//! `#[weights("file.safetensors")]` on a model: the attribute (with the precision `infer` embeds
//! the kernels in), and the file, read when the model compiles and checked against the model's
//! parameters. `embed` and `ship` generate code from what is read here; a subclassed model's
//! struct macro reads its file here too.

use std::path::{Path, PathBuf};

use proc_macro2::Span;
use safetensors::tensor::{Dtype, SafeTensors};
use syn::{Attribute, LitStr};

use crate::ir::Model;
use crate::layers::show;

/// The file named by a `#[weights("..")]` attribute, where the attribute is, and the precision
/// the weights are embedded in for `infer` (`dtype = int8`).
pub struct Weights {
    pub path: LitStr,
    pub precision: Precision,
    /// Where `dtype = ..` is written, if it is.
    pub dtype_span: Option<Span>,
    /// Weights made when the model compiles (an ONNX file's initializers) instead of read from
    /// `path`: the safetensors bytes, and the absolute path of the file they came from (which the
    /// generated code names with `include_bytes!`, so editing it rebuilds the model).
    pub memory: Option<(Vec<u8>, String)>,
    /// Further files the weights came from (an ONNX file's external data), named with
    /// `include_bytes!` too.
    pub external: Vec<String>,
}

/// How a model's `infer` stores its matrix kernels (Dense, convolutions); other parameters stay f32.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
    /// IEEE half precision.
    F16,
    /// Symmetric int8, one scale per output channel.
    Int8,
}

/// `"path"` optionally followed by `dtype = f32 | bf16 | f16 | int8` (how `infer` embeds the
/// kernels), as `#[weights(..)]` and `#[kiln::onnx(..)]` take them: the path, the precision, and
/// where the dtype was written.
pub fn path_and_dtype(
    input: syn::parse::ParseStream<'_>,
    usage: &str,
) -> syn::Result<(LitStr, Precision, Option<Span>)> {
    let path: LitStr = input.parse().map_err(|e| syn::Error::new(e.span(), usage))?;
    let (mut precision, mut dtype_span) = (Precision::F32, None);
    if input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
        let key: syn::Ident = input.parse()?;
        if key != "dtype" {
            return Err(syn::Error::new(key.span(), format!("unknown option `{key}`: {usage}")));
        }
        input.parse::<syn::Token![=]>()?;
        let v: syn::Ident = input.parse()?;
        precision = match v.to_string().as_str() {
            "f32" | "float32" => Precision::F32,
            "bf16" | "bfloat16" => Precision::Bf16,
            "f16" | "float16" => Precision::F16,
            "int8" | "i8" => Precision::Int8,
            other => {
                return Err(syn::Error::new(
                    v.span(),
                    format!("unknown weights dtype `{other}`; kiln embeds f32, bf16, f16 or int8"),
                ));
            }
        };
        dtype_span = Some(v.span());
        input.parse::<Option<syn::Token![,]>>()?;
    }
    Ok((path, precision, dtype_span))
}

/// Takes `#[weights("..")]` (or `#[weights("..", dtype = int8)]`) out of the attributes.
pub fn extract(attrs: &mut Vec<Attribute>) -> syn::Result<Option<Weights>> {
    let Some(i) = attrs.iter().position(|a| a.path().is_ident("weights")) else { return Ok(None) };
    let attr = attrs.remove(i);
    let usage = "write the weights file as #[weights(\"path/to/model.safetensors\")], relative to this source file, \
                 optionally with dtype = f32, bf16, f16 or int8 (how `infer` embeds the kernels)";
    attr.parse_args_with(|input: syn::parse::ParseStream<'_>| {
        let (path, precision, dtype_span) = path_and_dtype(input, usage)?;
        let w = Weights { path, precision, dtype_span, memory: None, external: vec![] };
        Ok(w)
    })
    .map(Some)
    .map_err(|e| if e.to_string().starts_with("unknown") { e } else { syn::Error::new_spanned(&attr, usage) })
}

/// The model's parameters, in traversal order: name and shape; or the layer whose parameters
/// only rustc knows.
fn parameters(model: &Model) -> Result<Vec<(String, Vec<usize>)>, String> {
    let mut out = Vec::new();
    for l in model.layers.iter().filter(|l| !l.kind.is_view()) {
        let params = l.kind.params(&model.nodes[l.apps[0]].input_shapes).ok_or_else(|| {
            format!(
                "layer `{}` is a {} layer, whose weights only rustc knows: checked embedding needs every layer's \
                 parameter shapes when the model compiles; load the file with `load_weights` instead",
                l.name,
                l.kind.class()
            )
        })?;
        out.extend(params.into_iter().map(|(p, s)| (format!("{}.{p}", l.name), s)));
    }
    Ok(out)
}

/// Resolves the path as `include_bytes!` does: relative to the file that invokes the macro.
fn resolve(path: &str, base: Option<PathBuf>) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let dir = base
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from))
        .unwrap_or_default();
    let joined = dir.join(p);
    // Source paths may be relative to the compiler's working directory; include_bytes! needs
    // the file from wherever the generated code sits.
    if joined.is_absolute() { joined } else { std::env::current_dir().map(|c| c.join(&joined)).unwrap_or(joined) }
}

/// FNV-1a over each string and a zero byte after it, as the runtime's checksums.
fn fnv(parts: impl IntoIterator<Item = String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes().iter().chain(&[0]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Checks every tensor of a kiln file against the checksum saved with it (`kiln.checksum.<name>`,
/// FNV-1a as the runtime writes it), and the metadata against `kiln.checksum` (over every other
/// entry and every tensor's name, dtype, shape and bytes, as the runtime's `header_hash`), so
/// what the model compiles in (a text model's vocabulary among it) is what kiln saved; files
/// without checksums pass.
fn verify_checksums(bytes: &[u8], st: &SafeTensors<'_>) -> Result<(), String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let Some(meta) = header.metadata() else { return Ok(()) };
    if let Some(want) = meta.get("kiln.checksum") {
        let mut entries: Vec<(&String, &String)> = meta.iter().filter(|(k, _)| *k != "kiln.checksum").collect();
        entries.sort();
        let mut tensors: Vec<_> = header.tensors().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let parts = entries.into_iter().flat_map(|(k, v)| [k.clone(), v.clone()]).chain(tensors.into_iter().flat_map(
            |(name, t)| {
                let (start, end) = t.data_offsets;
                [name, t.dtype.to_string(), format!("{:?}", t.shape), format!("{start}..{end}")]
            },
        ));
        if fnv(parts) != *want {
            return Err(
                "its metadata or tensor layout does not match its checksum (`kiln.checksum`): the file is corrupted"
                    .into(),
            );
        }
    }
    for (name, view) in st.tensors() {
        let Some(want) = meta.get(&format!("kiln.checksum.{name}")) else { continue };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in view.data() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        if format!("{h:016x}") != *want {
            return Err(format!("tensor `{name}` does not match its checksum: the file is corrupted"));
        }
    }
    Ok(())
}

/// A weights file as read at compile time: where it is, and each tensor (optimizer state left
/// out) with its shape and byte range.
pub struct File {
    /// The absolute path `include_bytes!` takes.
    pub abs: String,
    pub tensors: Vec<(String, Vec<usize>, usize, usize)>,
}

impl Weights {
    /// An error at the attribute's path, prefixed with the file name.
    pub fn error(&self, msg: impl std::fmt::Display) -> syn::Error {
        syn::Error::new(self.path.span(), format!("embedded weights `{}`: {msg}", self.path.value()))
    }

    /// Reads and parses the file; every tensor must be F32.
    pub fn read(&self, source_file: Option<PathBuf>) -> syn::Result<File> {
        let full = resolve(&self.path.value(), source_file);
        let bytes = std::fs::read(&full).map_err(|e| self.error(format!("cannot read {}: {e}", full.display())))?;
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| self.error(format!("not a valid safetensors file: {e}")))?;
        verify_checksums(&bytes, &st).map_err(|e| self.error(e))?;
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if name.starts_with("optimizer.") {
                continue;
            }
            if view.dtype() != Dtype::F32 {
                return Err(
                    self.error(format!("tensor `{name}` has dtype {}, but kiln's weights are F32", view.dtype()))
                );
            }
            let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            tensors.push((name, view.shape().to_vec(), start, start + view.data().len()));
        }
        tensors.sort();
        Ok(File { abs: full.to_string_lossy().into_owned(), tensors })
    }
}

/// A weights file checked against a model: its bytes, its absolute path, and each of the model's
/// parameters (traversal order) with its shape and byte range in the file.
pub struct Checked {
    pub bytes: Vec<u8>,
    pub abs: String,
    pub params: Vec<(String, Vec<usize>, usize, usize)>,
}

impl Checked {
    /// The f32 values of parameter `name` (`dense.kernel`), little-endian as safetensors stores them.
    pub fn values(&self, name: &str) -> Option<(&[usize], Vec<f32>)> {
        let (_, shape, start, end) = self.params.iter().find(|p| p.0 == name)?;
        let vals = self.bytes[*start..*end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Some((shape, vals.collect()))
    }
}

/// Reads the file and checks it against the model: every parameter present with its shape, F32,
/// checksums intact, no tensor the model does not have.
pub fn check(model: &Model, w: &Weights, source_file: Option<PathBuf>) -> syn::Result<Checked> {
    let span: Span = w.path.span();
    let shown = w.path.value();
    let full = match &w.memory {
        Some((_, abs)) => PathBuf::from(abs),
        None => resolve(&shown, source_file),
    };
    let err = |msg: String| syn::Error::new(span, format!("embedded weights `{shown}`: {msg}"));
    let bytes = match &w.memory {
        Some((bytes, _)) => bytes.clone(),
        None => std::fs::read(&full).map_err(|e| err(format!("cannot read {}: {e}", full.display())))?,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
    verify_checksums(&bytes, &st).map_err(err)?;
    let params = parameters(model).map_err(err)?;
    let mut out = Vec::new();
    for (name, shape) in params {
        let view = st.tensor(&name).map_err(|_| {
            err(format!("tensor `{name}` is missing (the model's parameter has shape {})", show(&shape)))
        })?;
        if view.shape() != &shape[..] {
            return Err(err(format!(
                "tensor `{name}` has shape {} in the file, but {}'s parameter `{name}` has shape {}",
                show(view.shape()),
                model.name,
                show(&shape)
            )));
        }
        if view.dtype() != Dtype::F32 {
            return Err(err(format!("tensor `{name}` has dtype {}, but kiln's weights are F32", view.dtype())));
        }
        let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
        let end = start + view.data().len();
        out.push((name, shape, start, end));
    }
    for name in st.names() {
        if !out.iter().any(|p| p.0 == *name) && !name.starts_with("optimizer.") {
            return Err(err(format!("tensor `{name}` is not a parameter of {}", model.name)));
        }
    }
    drop(st);
    Ok(Checked { bytes, abs: full.to_string_lossy().into_owned(), params: out })
}
