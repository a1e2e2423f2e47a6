//! `#[kiln::onnx("model.onnx")] pub struct Net;`: an ONNX file read when the code compiles and
//! lowered to the graph IR every model macro builds (`ir::Model`), through the same layer specs,
//! so shape inference, code generation, the summary, `fit` and `infer` are the ones of a
//! `functional!` model.
//!
//! - `proto`: the messages of onnx.proto kiln reads, decoded with `prost` (no `protoc`).
//! - `read`: the file, its checks, attributes and constant tensors.
//! - `graph`: the IR being built, each ONNX value's layout, the weights.
//! - `ops`, `arith`, `window`, `recurrent`, `fold`, `constant`: the operators; `batch`: axes an
//!   exporter folds into the batch axis (`nn.MultiheadAttention`).
//!
//! Layout: kiln's layers are channels-last (Keras), an ONNX file from PyTorch channels-first.
//! The model takes and returns tensors in the file's own layout; inside, each value remembers
//! the order its node stores the ONNX axes in, and a Permute is inserted only where a layer
//! needs another order (the first convolution, a Flatten after the last one). Transpose moves
//! nothing: it changes the recorded order, and the place of the batch axis among the ONNX axes
//! (recurrent operators' `[steps, batch, features]`).
//!
//! Weights: the initializers become the layers' parameters under kiln's names (`conv1d.kernel`)
//! in kiln's layouts (a Gemm's `[out, in]` transposed, a Conv's `[out, in, k..]` reordered to
//! `[k.., in, out]`), written to a safetensors buffer in memory and checked and embedded as
//! `#[weights("..")]` does with a file: `Net::embedded()` and, where every layer has a static
//! kernel, `Net::infer`.

mod arith;
mod batch;
mod constant;
mod export;
mod fold;
mod graph;
mod ops;
mod proto;
mod read;
mod recurrent;
mod window;

use proc_macro2::{Span, TokenStream};
use syn::LitStr;
use syn::parse::{Parse, ParseStream};

use crate::ir::Model;
use crate::weights_file::{Precision, Weights};

pub use export::{expand as export, expand_or as export_or};
use graph::{Graph, Value};

/// `"path.onnx"` optionally followed by `dtype = int8` (how `infer` embeds the kernels).
struct Attr {
    path: LitStr,
    precision: Precision,
    dtype_span: Option<Span>,
}

impl Parse for Attr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let usage = "write #[kiln::onnx(\"path/to/model.onnx\")], the path relative to this source file or to the \
                     crate's Cargo.toml, optionally with dtype = f32, bf16, f16 or int8 (how `infer` embeds the \
                     kernels)";
        let (path, precision, dtype_span) = crate::weights_file::path_and_dtype(input, usage)?;
        let attr = Attr { path, precision, dtype_span };
        if !input.is_empty() {
            return Err(input.error(usage));
        }
        Ok(attr)
    }
}

/// The attribute macro: the struct's header, then the model (or its errors and a fallback).
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: syn::ItemStruct = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let header = (item.ident.clone(), item.vis.clone());
    let lowered = syn::parse2::<Attr>(attr).and_then(|attr| import(&attr, item).map(|(m, w)| (m, Some(w))));
    match lowered {
        Ok((model, weights)) => crate::pipeline_with(Ok(model), header, weights),
        Err(e) => crate::pipeline_with(Err(e), header, None),
    }
}

/// Reads the file and lowers it: the model and its weights.
fn import(attr: &Attr, item: syn::ItemStruct) -> syn::Result<(Model, Weights)> {
    let shown = attr.path.value();
    let err = |msg: String| syn::Error::new(attr.path.span(), format!("ONNX model `{shown}`: {msg}"));
    if !matches!(item.fields, syn::Fields::Unit) || !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.ident,
            "#[kiln::onnx] goes on a unit struct without generics, e.g. `pub struct Net;`: the file gives its layers",
        ));
    }
    if let Some(a) = item.attrs.iter().find(|a| a.path().is_ident("weights")) {
        return Err(syn::Error::new_spanned(
            a,
            "an imported model's weights come from its ONNX file: remove #[weights(..)] (a file saved with \
             save_weights loads with load_weights)",
        ));
    }
    let source = proc_macro::Span::call_site().local_file();
    let path = read::resolve(&shown, source).map_err(|tried| match tried.first() {
        Some(first) if tried.len() > 1 => {
            err(format!("no such file beside this source file ({}) or the crate's Cargo.toml", first.display()))
        }
        Some(first) => err(format!("no such file ({})", first.display())),
        None => err("no such file".into()),
    })?;
    let bytes = std::fs::read(&path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let mut onnx = read::decode(&bytes).map_err(|e| err(format!("the file {e}")))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let external = read::inline_external(&mut onnx, dir).map_err(err)?;
    let (model, params) = lower(&onnx, attr.path.span(), item).map_err(err)?;
    let memory = weights_buffer(&params).map_err(err)?;
    let weights = Weights {
        path: attr.path.clone(),
        precision: attr.precision,
        dtype_span: attr.dtype_span,
        memory: Some((memory, path.to_string_lossy().into_owned())),
        external: external.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
    };
    Ok((model, weights))
}

/// The graph lowered to the IR, with the weights by kiln name.
type Params = Vec<(String, Vec<usize>, Vec<f32>)>;

fn lower(onnx: &proto::ModelProto, span: Span, item: syn::ItemStruct) -> Result<(Model, Params), String> {
    let graph = onnx.graph.as_ref().ok_or("the file has no graph")?;
    let mut g = Graph::new(span);
    for t in &graph.initializer {
        let c = read::tensor(t)?;
        g.values.insert(t.name.clone(), Value::Const(std::rc::Rc::new(c)));
    }
    let mut inputs = Vec::new();
    let mut int_inputs = Vec::new();
    let mut batch = None;
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for vi in graph.input.iter().filter(|vi| !initializers.contains(vi.name.as_str())) {
        let (shape, b, int) = input_shape(vi)?;
        batch = batch.or(b);
        let v = g.input(inputs.len(), shape);
        inputs.push((vi.name.clone(), v.node));
        int_inputs.push(int);
        g.values.insert(vi.name.clone(), Value::Graph(v));
    }
    if inputs.is_empty() {
        return Err("the graph has no input that is not an initializer".into());
    }
    let mut lw = ops::Lowering::new(g, read::opset(onnx), &graph.node, batch);
    // The graph's outputs are read too (by no node of the file).
    for vi in &graph.output {
        lw.consumers.entry(vi.name.clone()).or_default().push(usize::MAX);
    }
    for i in 0..graph.node.len() {
        lw.node(i)?;
    }
    let mut g = lw.g;
    let mut outputs = Vec::new();
    for vi in &graph.output {
        match g.values.get(&vi.name).cloned() {
            Some(Value::Graph(v)) if v.batch != 0 => {
                return Err(format!(
                    "output `{}` has its batch axis at ONNX axis {}; kiln returns values batch first",
                    vi.name, v.batch
                ));
            }
            Some(Value::Graph(v)) => {
                g.at = format!("output `{}`", vi.name);
                outputs.push(g.onnx_layout(&v)?.node);
            }
            Some(Value::Const(_)) => {
                return Err(format!("output `{}` is a constant: it does not depend on the inputs", vi.name));
            }
            None => return Err(format!("output `{}` is computed by no node", vi.name)),
        }
    }
    g.prune(&mut outputs);
    let inputs: Vec<(String, usize)> = inputs.into_iter().enumerate().map(|(k, (name, _))| (name, k)).collect();
    let inputs = inputs
        .into_iter()
        .map(|(name, k)| {
            let node = g.nodes.iter().position(|n| n.op == crate::ir::Op::Input(k)).unwrap_or(0);
            (name, node)
        })
        .collect::<Vec<_>>();
    let model = Model {
        attrs: item.attrs,
        vis: item.vis,
        name: item.ident,
        int_inputs,
        text: None,
        inputs,
        layers: g.layers,
        nodes: g.nodes,
        outputs,
        functional: true,
        invocation: None,
        generics: syn::Generics::default(),
    };
    Ok((model, g.params))
}

/// A graph input's sample shape (without the batch axis), the batch size if the file fixes it
/// (every other axis must be a number), and whether it holds integers (token ids, which only an
/// Embedding reads).
fn input_shape(vi: &proto::ValueInfoProto) -> Result<(Vec<usize>, Option<usize>, bool), String> {
    let tensor = vi.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let Some(t) = tensor else { return Err(format!("input `{}` is not a tensor", vi.name)) };
    let int = matches!(t.elem_type, proto::dtype::INT64 | proto::dtype::INT32);
    if t.elem_type != proto::dtype::FLOAT && !int {
        return Err(format!(
            "input `{}` has ONNX element type {}; kiln imports float inputs, and int32 or int64 token ids",
            vi.name, t.elem_type
        ));
    }
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    if dims.len() < 2 {
        return Err(format!(
            "input `{}` has rank {}; kiln needs a batch axis and at least one more",
            vi.name,
            dims.len()
        ));
    }
    let batch = dims[0].dim_value.filter(|&d| d > 0).map(|d| d as usize);
    let mut shape = Vec::new();
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d.dim_value {
            Some(v) if v > 0 => shape.push(v as usize),
            _ => {
                let name = d.dim_param.clone().unwrap_or_default();
                return Err(format!(
                    "input `{}` has a symbolic axis {i} (`{name}`); kiln allows one on the batch axis only: export \
                     with a fixed size there",
                    vi.name
                ));
            }
        }
    }
    Ok((shape, batch, int))
}

/// The weights as a safetensors buffer (what `#[weights("..")]` reads from a file).
fn weights_buffer(params: &Params) -> Result<Vec<u8>, String> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, shape, vals)| (name.clone(), shape.clone(), vals.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("kiln could not lay out its weights: {e}"))?;
    safetensors::tensor::serialize(views, None).map_err(|e| format!("kiln could not lay out its weights: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed fixture `name`, read, lowered, checked and expanded (no compiler around:
    /// the path is read here).
    fn expand_fixture(name: &str) -> (Model, proc_macro2::TokenStream) {
        let path = format!("{}/../tests/fixtures/onnx/{name}.onnx", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).expect("fixture");
        let onnx = read::decode(&bytes).expect("an ONNX model");
        let item: syn::ItemStruct = syn::parse_str("pub struct Net;").expect("parses");
        let (mut model, params) = lower(&onnx, Span::call_site(), item).expect("lowers");
        crate::shape::infer(&mut model).expect("checks");
        assert!(weights_buffer(&params).is_ok());
        let code = crate::codegen::expand(&model);
        (model, code)
    }

    /// Importing the MNIST-1D CNN is fast and expands into code of the size a `functional!`
    /// model of its layers has (the time and size are printed with `--nocapture`); the weights
    /// are embedded apart from this, as bytes.
    #[test]
    fn the_mnist1d_cnn_imports_quickly() {
        let start = std::time::Instant::now();
        let (model, code) = expand_fixture("torch_mnist1d_cnn");
        let took = start.elapsed();
        let text = code.to_string();
        println!("MNIST-1D CNN import: {took:?}, {} layers, {} bytes of code", model.layers.len(), text.len());
        assert!(text.len() < 60_000, "{} bytes", text.len());
    }

    /// Every committed fixture lowers and passes shape inference.
    #[test]
    fn every_fixture_lowers() {
        for name in [
            "torch_mlp",
            "torch_mnist1d_cnn_trained",
            "torch_cnn2d",
            "torch_blocks",
            "torch_lstm",
            "torch_lstm_batch1",
            "torch_bilstm",
            "torch_gru",
            "torch_text",
            "torch_decoder",
            "torch_encoder",
            "torch_gelu",
            "torch_mha",
            "torch_encoder_layer",
            "keras_mlp",
            "keras_cnn1d",
            "ops_opset20",
            "ops_opset11",
        ] {
            let (model, _) = expand_fixture(name);
            assert!(!model.outputs.is_empty(), "{name}");
        }
    }

    /// Text that is not protobuf, and protobuf that is not a model, are refused with a reason.
    #[test]
    fn files_that_are_not_models_are_refused() {
        assert!(read::decode(b"not a model at all\n").is_err());
        assert!(read::decode(&[]).unwrap_err().contains("no graph"));
    }
}
