//! Shipping a model: the inference code generated for a `sequential!` / `functional!` model with
//! embedded weights (`infer` on fixed-size arrays, no heap, no standard library), the memory it
//! needs as constants, and `#[budget(..)]`.
//!
//! Every buffer is planned here, when the model compiles: each layer's output gets a range of one
//! scratch array, reused once the layers reading it have run (first fit, in graph order), so the
//! scratch size is the largest set of outputs alive at once. Weights are laid out in one byte
//! string in the precision asked for (f32, bf16, or int8 with per-channel scales) and read in
//! place from the binary's static data.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::Attribute;

use crate::embed::{Checked, Precision, Weights};
use crate::ir::{Model, Op};

/// What a layer computes at inference, for the generated `infer` (see the runtime's `infer`
/// module); layers without one make `infer` unavailable.
pub enum Static {
    /// Passes its input on (Dropout, noise: inactive at inference).
    Identity,
    Dense {
        units: usize,
        act: &'static str,
    },
    /// `Conv1D` / `Conv2D`; `win` is a runtime `Window` expression.
    Conv {
        win: TokenStream,
        filters: usize,
        groups: usize,
        act: &'static str,
    },
    Depthwise {
        win: TokenStream,
        multiplier: usize,
        act: &'static str,
    },
    Pool {
        win: TokenStream,
        max: bool,
    },
    Global {
        max: bool,
    },
    BatchNorm {
        epsilon: f32,
        center: bool,
        scale: bool,
    },
    /// Keras' `Normalization` with its adapted mean and variance.
    Normalization,
    /// `PReLU`: a sample's shape and the axes sharing a slope (the runtime plans the strides).
    PRelu {
        shape: Vec<usize>,
        shared: Vec<usize>,
    },
    /// `Permute`: a sample's shape and the new order of its axes (the runtime plans the copy).
    Permute {
        shape: Vec<usize>,
        order: Vec<usize>,
    },
    Activation {
        act: &'static str,
    },
    LeakyRelu {
        slope: f32,
    },
    Rescaling {
        scale: f32,
        offset: f32,
    },
    /// An element-wise merge: the runtime `Merge` variant.
    Merge {
        op: &'static str,
    },
    Concat {
        outer: usize,
        widths: Vec<usize>,
    },
    LayerNorm {
        epsilon: f32,
        center: bool,
        scale: bool,
    },
    /// `ZeroPadding2D`, `Cropping2D`, `UpSampling2D`: the runtime `Resize` expression.
    Resample {
        op: TokenStream,
    },
    Dot,
    /// `win` is the convolution from the output back to the input.
    ConvTranspose {
        win: TokenStream,
        act: &'static str,
    },
    /// `work`: f32 values of the depthwise output between the two convolutions.
    Separable {
        win: TokenStream,
        multiplier: usize,
        filters: usize,
        act: &'static str,
        work: usize,
    },
    /// Reads token ids; with `mask_zero`, `mask` is the steps its mask covers (kept after the
    /// output).
    Embedding {
        dim: usize,
        mask: Option<usize>,
    },
    /// Keras' `Masking`: zeroes the padded rows of `features` values, its mask after the output.
    Masking {
        value: f32,
        features: usize,
        rows: usize,
    },
    /// `cfg`: the runtime `Recurrence`; `work`: its workspace.
    Recurrent {
        cfg: TokenStream,
        features: usize,
        units: usize,
        gates: usize,
        work: usize,
    },
    /// `mode`: the runtime `MergeMode` variant; `work`: both directions' outputs and one
    /// recurrence's workspace.
    Bidirectional {
        cfg: TokenStream,
        mode: &'static str,
        features: usize,
        units: usize,
        gates: usize,
        work: usize,
    },
    /// `cfg`: the runtime `Attention`; `work`: the projections, scores and heads' outputs.
    Attention {
        cfg: TokenStream,
        work: usize,
        bias: bool,
        /// Keras' `attention_mask`, the last input.
        mask: bool,
    },
    /// One of a layer's several outputs (`return_state`): `len` values from `start`.
    Take {
        start: usize,
        len: usize,
    },
    /// The inner layer on each of `steps` steps (its weights named as the wrapper's).
    TimeDistributed {
        inner: Box<Static>,
        steps: usize,
    },
}

/// `#[inference_only]` and `#[budget(..)]`, taken from a model's attributes.
#[derive(Default)]
pub struct Options {
    /// `#[inference_only]` as written, if it is.
    pub inference_only: Option<TokenStream>,
    pub budget: Option<Budget>,
}

/// `#[budget(ram = "64K", flash = "256K")]`: limits on scratch and weight bytes.
pub struct Budget {
    pub ram: Option<(usize, String)>,
    pub flash: Option<(usize, String)>,
    /// The attribute as written, where a budget error points.
    pub tokens: TokenStream,
}

/// A size as written in a budget: `65536`, `"64K"`, `"64KB"`, `"1M"` (K = 1024 bytes).
fn size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").or_else(|| t.strip_suffix('B')).unwrap_or(&t);
    let (digits, unit) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1024),
        'M' => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(unit)
}

/// Takes `#[inference_only]` and `#[budget(..)]` out of the attributes.
pub fn extract(attrs: &mut Vec<Attribute>) -> syn::Result<Options> {
    let mut opts = Options::default();
    if let Some(i) = attrs.iter().position(|a| a.path().is_ident("inference_only")) {
        let attr = attrs.remove(i);
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(&attr, "write #[inference_only] without arguments"));
        }
        opts.inference_only = Some(quote!(#attr));
    }
    if let Some(i) = attrs.iter().position(|a| a.path().is_ident("budget")) {
        let attr = attrs.remove(i);
        let usage = "write the budget as #[budget(ram = \"64K\", flash = \"256K\")] (bytes; K = 1024, M = 1024 K)";
        let mut b = Budget { ram: None, flash: None, tokens: quote!(#attr) };
        attr.parse_nested_meta(|meta| {
            let key = if meta.path.is_ident("ram") {
                &mut b.ram
            } else if meta.path.is_ident("flash") {
                &mut b.flash
            } else {
                let p = &meta.path;
                return Err(meta.error(format!("unknown budget `{}`: {usage}", quote!(#p))));
            };
            let text = match meta.value()?.parse::<syn::Lit>()? {
                syn::Lit::Str(s) => s.value(),
                syn::Lit::Int(i) => i.base10_digits().to_string(),
                _ => return Err(meta.error(usage)),
            };
            let n = size(&text).ok_or_else(|| meta.error(format!("`{text}` is not a size: {usage}")))?;
            *key = Some((n, text));
            Ok(())
        })?;
        opts.budget = Some(b);
    }
    Ok(opts)
}

/// Where a node's values are while `infer` runs.
#[derive(Clone, Copy)]
enum Loc {
    /// In model input `k`.
    Input(usize),
    /// In the scratch array from this element.
    Scratch(usize),
}

/// The buffer plan: each node's location, the scratch length (f32 values), and the node with
/// the largest output.
struct Plan {
    loc: Vec<Loc>,
    len: usize,
    largest: Option<usize>,
}

/// Whether a node's values are its first input's: views and layers inactive at inference.
fn passes_on(model: &Model, node: usize) -> bool {
    model.layer_of(node).is_some_and(|l| {
        let n = &model.nodes[node];
        l.kind.is_view() || matches!(l.kind.infer(&n.input_shapes, &n.output_shape), Some(Static::Identity))
    })
}

fn plan(model: &Model) -> Plan {
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

/// The weight and scratch bytes of a `sequential!` / `functional!` model (f32 weights): what its
/// `WEIGHT_BYTES` and `SCRATCH_BYTES` say, or `None` when a layer's parameters only rustc knows.
pub fn memory(model: &Model) -> Option<(usize, usize)> {
    // A `#[kiln::model]` struct's shapes are constant expressions only rustc evaluates.
    if model.nodes.iter().any(|n| n.dims.is_some() || n.input_shapes.len() < n.inputs.len()) {
        return None;
    }
    let mut weights = 0;
    for l in model.layers.iter().filter(|l| !l.kind.is_view()) {
        let params = l.kind.params(&model.nodes[l.apps[0]].input_shapes)?;
        weights += 4 * params.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>();
    }
    Some((weights, 4 * plan(model).len))
}

/// The inherent constants every `sequential!` / `functional!` model has (inside its `impl`).
pub fn constant_items(model: &Model) -> TokenStream {
    let Some((weights, scratch)) = memory(model) else { return TokenStream::new() };
    quote! {
        /// Bytes of the model's parameters as f32 (trainable and not).
        pub const WEIGHT_BYTES: usize = #weights;
        /// Bytes of scratch space inference needs for one sample: the largest set of layer
        /// outputs alive at once, as planned when the model compiled.
        pub const SCRATCH_BYTES: usize = #scratch;
    }
}

/// A `sequential!` / `functional!` model's `#[budget(..)]` check (f32 weights).
pub fn budget(model: &Model, opts: &Options) -> syn::Result<()> {
    let Some((weights, scratch)) = memory(model) else { return Ok(()) };
    check_budget(model, opts, weights, scratch, &|| largest_weights(model, Precision::F32))
}

/// The bytes a layer's weights take as `infer` embeds them in a precision (alignment padding
/// aside); `None` when only rustc knows its parameters.
fn layer_bytes(model: &Model, l: &crate::ir::LayerDef, precision: Precision) -> Option<usize> {
    let n = &model.nodes[l.apps[0]];
    let st = l.kind.infer(&n.input_shapes, &n.output_shape);
    let kernels = st.as_ref().map_or(&[][..], Static::kernels);
    let params = l.kind.params(&n.input_shapes)?;
    Some(
        params
            .iter()
            .map(|(p, s)| {
                let count: usize = s.iter().product();
                let Some(&(_, pairs)) = kernels.iter().find(|(k, _)| k == p) else { return 4 * count };
                let (rows, cols) = matrix(p, s, pairs);
                // Pairs of rows: an odd block of a Dense's or convolution's rows gets a zero row.
                let padded = if pairs { count / (rows * cols) * rows.next_multiple_of(2) * cols } else { count };
                match precision {
                    Precision::Int8 => padded + 4 * cols,
                    Precision::Bf16 | Precision::F16 => 2 * count,
                    Precision::F32 => 4 * count,
                }
            })
            .sum(),
    )
}

/// How a quantised kernel of shape `s` is read: rows of one block (the pairs int8 interleaves)
/// and columns (its output channels, one int8 scale each). A matrix product's kernel is
/// `[.., rows, cols]`, an attention projection `[features, heads, dim]` (rows: the features) and
/// its output `[heads, dim, out]` (columns: the output); a depthwise kernel's channels are its last
/// two axes.
fn matrix(name: &str, s: &[usize], pairs: bool) -> (usize, usize) {
    let r = s.len();
    match (name, pairs) {
        ("query_kernel" | "key_kernel" | "value_kernel", _) => (s[0], s[1..].iter().product()),
        ("attention_output_kernel", _) => (s[..r - 1].iter().product(), s[r - 1]),
        (_, true) => (s[r - 2], s[r - 1]),
        (_, false) => (s[r - 2], s[r - 2] * s[r - 1]),
    }
}

/// The layer with the most weight bytes in this precision, and the bytes.
fn largest_weights(model: &Model, precision: Precision) -> Option<(String, usize)> {
    model
        .layers
        .iter()
        .filter(|l| !l.kind.is_view())
        .filter_map(|l| Some((l.name.to_string(), layer_bytes(model, l, precision)?)))
        .max_by_key(|(_, b)| *b)
}

fn check_budget(
    model: &Model,
    opts: &Options,
    weights: usize,
    scratch: usize,
    heaviest: &dyn Fn() -> Option<(String, usize)>,
) -> syn::Result<()> {
    let Some(b) = &opts.budget else { return Ok(()) };
    let mut errors = Vec::new();
    if let Some((limit, text)) = &b.ram
        && scratch > *limit
    {
        let p = plan(model);
        let at = p.largest.map_or_else(String::new, |node| {
            let size: usize = model.nodes[node].output_shape.iter().product();
            format!(
                "; the largest buffer is the output of layer `{}`, {} bytes ({})",
                model.output_name(node),
                4 * size,
                crate::layers::show(&model.nodes[node].output_shape)
            )
        });
        errors.push(format!(
            "{} needs {scratch} bytes of scratch space for inference, over its ram budget of {text} ({limit} bytes){at}",
            model.name
        ));
    }
    if let Some((limit, text)) = &b.flash
        && weights > *limit
    {
        let at = heaviest().map_or_else(String::new, |(l, n)| format!("; the largest is layer `{l}`, {n} bytes"));
        errors.push(format!(
            "{} has {weights} bytes of weights, over its flash budget of {text} ({limit} bytes){at}",
            model.name
        ));
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(syn::Error::new_spanned(&b.tokens, errors.join("\n"))),
    }
}

impl Static {
    /// The parameters `infer` may store in reduced precision, each with whether int8 keeps its
    /// rows in pairs (a matrix product) or plain (a depthwise kernel, one value per channel).
    fn kernels(&self) -> &'static [(&'static str, bool)] {
        match self {
            Static::Dense { .. } | Static::Conv { .. } => &[("kernel", true)],
            Static::Depthwise { .. } => &[("kernel", false)],
            Static::Separable { .. } => &[("depthwise_kernel", false), ("pointwise_kernel", true)],
            Static::Recurrent { .. } => &[("kernel", true), ("recurrent_kernel", true)],
            Static::Bidirectional { .. } => &[
                ("forward_kernel", true),
                ("forward_recurrent_kernel", true),
                ("backward_kernel", true),
                ("backward_recurrent_kernel", true),
            ],
            Static::TimeDistributed { inner, .. } => inner.kernels(),
            Static::Attention { .. } => &[
                ("query_kernel", true),
                ("key_kernel", true),
                ("value_kernel", true),
                ("attention_output_kernel", true),
            ],
            _ => &[],
        }
    }

    /// f32 values of workspace the layer needs beside its output.
    fn extra(&self) -> usize {
        match self {
            Static::Separable { work, .. }
            | Static::Recurrent { work, .. }
            | Static::Bidirectional { work, .. }
            | Static::Attention { work, .. } => *work,
            Static::Embedding { mask, .. } => mask.unwrap_or(0),
            Static::Masking { rows, .. } => *rows,
            _ => 0,
        }
    }
}

/// Lays the embedded weights out in one byte string, each tensor at an aligned offset.
struct Blob {
    bytes: Vec<u8>,
    precision: Precision,
    /// Each parameter's expression once laid out (a shared layer's weights are stored once).
    seen: std::collections::HashMap<String, TokenStream>,
}

impl Blob {
    /// The expression for parameter `key`, laid out by `make` the first time.
    fn named(&mut self, key: String, make: impl FnOnce(&mut Blob) -> TokenStream) -> TokenStream {
        if let Some(t) = self.seen.get(&key) {
            return t.clone();
        }
        let t = make(self);
        self.seen.insert(key, t.clone());
        t
    }

    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }

    /// f32 values; the expression reading them in place.
    fn f32s(&mut self, vals: &[f32]) -> TokenStream {
        self.align(4);
        let (start, len) = (self.bytes.len(), vals.len());
        self.bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        quote!(::kiln::infer::f32s(__w, #start, #len))
    }

    /// A kernel whose last axes (`cols` values per row) are its output channels, in the blob's
    /// precision; the `Kernel` expression. `block` is the rows of one input block (a Dense's
    /// inputs, a convolution's channels per window position), which int8 stores in interleaved
    /// pairs for the 16-bit multiply-add; `None` keeps rows plain (depthwise kernels).
    fn kernel(&mut self, vals: &[f32], cols: usize, block: Option<usize>) -> TokenStream {
        match self.precision {
            Precision::F32 => {
                let v = self.f32s(vals);
                quote!(::kiln::infer::Kernel::F32(#v))
            }
            Precision::Bf16 => {
                self.align(2);
                let (start, len) = (self.bytes.len(), vals.len());
                for &v in vals {
                    self.bytes.extend(bf16(v).to_le_bytes());
                }
                quote!(::kiln::infer::Kernel::Bf16(::kiln::infer::bf16s(__w, #start, #len)))
            }
            Precision::F16 => {
                self.align(2);
                let (start, len) = (self.bytes.len(), vals.len());
                for &v in vals {
                    self.bytes.extend(f16(v).to_le_bytes());
                }
                quote!(::kiln::infer::Kernel::F16(::kiln::infer::f16s(__w, #start, #len)))
            }
            Precision::Int8 => {
                let (q, scales) = quantise(vals, cols);
                let s = self.f32s(&scales);
                let start = self.bytes.len();
                let Some(rows) = block.filter(|&r| r > 0 && cols > 0) else {
                    self.bytes.extend(q.iter().map(|&v| v as u8));
                    let len = q.len();
                    return quote!(::kiln::infer::Kernel::Int8(::kiln::infer::i8s(__w, #start, #len), #s));
                };
                for b in q.chunks(rows * cols) {
                    for p in 0..rows.div_ceil(2) {
                        for j in 0..cols {
                            self.bytes.push(b[2 * p * cols + j] as u8);
                            self.bytes.push(if 2 * p + 1 < rows { b[(2 * p + 1) * cols + j] as u8 } else { 0 });
                        }
                    }
                }
                let len = self.bytes.len() - start;
                quote!(::kiln::infer::Kernel::Int8Pairs(::kiln::infer::i8s(__w, #start, #len), #s))
            }
        }
    }
}

/// The IEEE half-precision bits nearest to `x` (ties to even; beyond 65504 infinity, below
/// 2^-24 zero, subnormals in between).
fn f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let a = x.abs();
    if a.is_nan() {
        return sign | 0x7e00;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 6.103_515_6e-5 {
        // Subnormal: a multiple of 2^-24, rounded to even.
        return sign | (a * 16_777_216.0).round_ties_even() as u16;
    }
    let e = ((a.to_bits() >> 23) as i32) - 127 + 15;
    let m = a.to_bits() & 0x7f_ffff;
    let half = ((e as u32) << 10) | (m >> 13);
    let rest = m & 0x1fff;
    let up = rest > 0x1000 || (rest == 0x1000 && half & 1 == 1);
    sign | (half + up as u32) as u16
}

/// The bfloat16 bits nearest to `x` (ties to even).
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x40;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Symmetric int8 with one scale per output channel (column): `w ≈ q · scale`, `q` in
/// `-127..=127`, the column's largest magnitude mapped to 127.
fn quantise(vals: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut max = vec![0f32; cols];
    for (i, v) in vals.iter().enumerate() {
        max[i % cols] = max[i % cols].max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = vals.iter().enumerate().map(|(i, v)| (v / scales[i % cols]).round().clamp(-127.0, 127.0) as i8).collect();
    (q, scales)
}

/// Why `infer` cannot be generated for a model, if it cannot: the first layer without a static
/// kernel, or an integer input.
fn unsupported(model: &Model) -> Option<String> {
    model.nodes.iter().find_map(|n| {
        let l = model.layer_of_node(n)?;
        (!l.kind.is_view() && l.kind.infer(&n.input_shapes, &n.output_shape).is_none()).then(|| {
            let what = if l.kind.has_initial_state() {
                "starts from an initial_state, which kiln's kernels without the standard library do not take yet"
            } else if l.kind.class() == "Bidirectional" && l.kind.outputs().is_some() {
                "returns its final states, which kiln's kernels without the standard library do not give yet"
            } else {
                "has no kernel kiln can run without the standard library yet"
            };
            format!("layer `{}` ({}) {what}", l.name, l.kind.class())
        })
    })
}

/// The layers `infer` supports, for error messages.
const SUPPORTED: &str = "every layer kiln has except users' own layers, recurrent layers given an \
initial_state, a Bidirectional layer returning its states, Attention and AdditiveAttention";

/// Generates one layer's call in `infer_with`, laying its weights out in the blob.
struct Caller<'a> {
    blob: &'a mut Blob,
    checked: &'a Checked,
    layer: String,
}

impl Caller<'_> {
    fn key(&self, p: &str) -> String {
        format!("{}.{p}", self.layer)
    }

    fn param(&self, p: &str) -> Vec<f32> {
        self.checked.values(&self.key(p)).map(|(_, v)| v).unwrap_or_default()
    }

    fn f32s(&mut self, p: &str) -> TokenStream {
        let vals = self.param(p);
        self.blob.named(self.key(p), |b| b.f32s(&vals))
    }

    fn kernel(&mut self, p: &str, cols: usize, block: Option<usize>) -> TokenStream {
        let vals = self.param(p);
        self.blob.named(self.key(p), |b| b.kernel(&vals, cols, block))
    }

    /// An optional parameter (a bias, a normalisation's gamma and beta) the file may not have.
    fn opt(&mut self, p: &str, present: bool) -> TokenStream {
        match present && self.checked.values(&self.key(p)).is_some() {
            false => quote!(::core::option::Option::None),
            true => {
                let v = self.f32s(p);
                quote!(::core::option::Option::Some(#v))
            }
        }
    }

    /// A recurrent layer's weights (`prefix` names a Bidirectional direction), as a
    /// `RecurrentWeights` expression.
    fn recurrent_weights(&mut self, prefix: &str, features: usize, units: usize, gu: usize) -> TokenStream {
        let k = self.kernel(&format!("{prefix}kernel"), gu, Some(features));
        let rk = self.kernel(&format!("{prefix}recurrent_kernel"), gu, Some(units));
        let b = self.opt(&format!("{prefix}bias"), true);
        quote!(::kiln::infer::RecurrentWeights { kernel: #k, recurrent_kernel: #rk, bias: #b })
    }

    /// The call computing `st` from `ins` into `__out` (with its workspace after the output);
    /// `None` for a layer that passes its input on. `input` is the model input the first input
    /// reads, if it is one (for the error naming a bad token id).
    fn call(
        &mut self,
        st: &Static,
        ins: &[TokenStream],
        in_shape: &[usize],
        out_shape: &[usize],
        input: Option<usize>,
        masks: &[TokenStream; 3],
    ) -> Option<TokenStream> {
        let [m0, m1, m2] = masks;
        let act = |a: &str| {
            let a = format_ident!("{a}");
            quote!(::kiln::infer::ActKind::#a)
        };
        let x = &ins[0];
        let out_len: usize = out_shape.iter().product();
        let out_last = out_shape.last().copied().unwrap_or(1);
        let in_last = in_shape.last().copied().unwrap_or(1);
        // The output, then the workspace behind it.
        let split = quote!(let (__out, __work) = __out.split_at_mut(#out_len););
        Some(match st {
            Static::Identity => return None,
            Static::Take { start, len } => quote!(__out.copy_from_slice(&(#x)[#start..#start + #len])),
            Static::Dense { units, act: a } => {
                let k = self.kernel("kernel", *units, Some(in_last));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::dense(#x, #k, #b, #a, #in_last, #units, __out))
            }
            Static::Conv { win, filters, groups, act: a } => {
                let k = self.kernel("kernel", *filters, Some(in_last / groups));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::conv(#x, #k, #b, #a, &#win, #filters, #groups, __out))
            }
            Static::Depthwise { win, multiplier, act: a } => {
                let k = self.kernel("kernel", out_last, None);
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::depthwise(#x, #k, #b, #a, &#win, #multiplier, __out))
            }
            Static::Pool { win, max } => quote!(::kiln::infer::pool(#x, &#win, #max, __out)),
            Static::Global { max } => match m0.to_string().contains("None") {
                true => quote!(::kiln::infer::global_pool(#x, #out_last, #max, __out)),
                false => quote!(
                    ::kiln::infer::global_average_masked(#x, #out_last, #m0.unwrap_or(&[]), __out)
                ),
            },
            Static::BatchNorm { epsilon, center, scale } => {
                let (g, b) = (self.opt("gamma", *scale), self.opt("beta", *center));
                let (mean, var) = (self.f32s("moving_mean"), self.f32s("moving_variance"));
                quote!(::kiln::infer::batch_norm(#x, #g, #b, #mean, #var, #epsilon, __out))
            }
            Static::PRelu { shape, shared } => {
                let alpha = self.f32s("alpha");
                quote!({
                    const PLAN: ([usize; 3], [usize; 3]) = ::kiln::infer::prelu_plan(&[#(#shape),*], &[#(#shared),*]);
                    ::kiln::infer::prelu(#x, #alpha, PLAN.0, PLAN.1, __out)
                })
            }
            Static::Permute { shape, order } => quote!({
                const PLAN: ([usize; 3], [usize; 3]) = ::kiln::infer::permute_plan(&[#(#shape),*], &[#(#order),*]);
                ::kiln::infer::permute(#x, PLAN.0, PLAN.1, __out)
            }),
            Static::Normalization => {
                let (mean, var) = (self.f32s("mean"), self.f32s("variance"));
                quote!(::kiln::infer::normalize(#x, #mean, #var, __out))
            }
            Static::Activation { act: a } => {
                let a = act(a);
                quote!(::kiln::infer::activation(#x, #a, #out_last, __out))
            }
            Static::LeakyRelu { slope } => quote!(::kiln::infer::leaky_relu(#x, #slope, __out)),
            Static::Rescaling { scale, offset } => quote!(::kiln::infer::rescale(#x, #scale, #offset, __out)),
            Static::Merge { op } => {
                let op = format_ident!("{op}");
                quote!(::kiln::infer::merge(&[#(#ins),*], ::kiln::infer::Merge::#op, __out))
            }
            Static::Concat { outer, widths } => {
                quote!(::kiln::infer::concatenate(&[#(#ins),*], &[#(#widths),*], #outer, __out))
            }
            Static::LayerNorm { epsilon, center, scale } => {
                let (g, b) = (self.opt("gamma", *scale), self.opt("beta", *center));
                quote!(::kiln::infer::layer_norm(#x, #g, #b, #epsilon, #out_last, __out))
            }
            Static::Resample { op } => {
                let (h, w, c) = crate::layers::as_image(in_shape);
                let (oh, ow, _) = crate::layers::as_image(out_shape);
                quote!(::kiln::infer::resample(#x, (#h, #w, #c), (#oh, #ow), #op, __out))
            }
            Static::Dot => {
                let y = &ins[1];
                quote!(::kiln::infer::dot(#x, #y, __out))
            }
            Static::ConvTranspose { win, act: a } => {
                let k = self.f32s("kernel");
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::conv_transpose(#x, #k, #b, #a, &#win, #in_last, __out))
            }
            Static::Separable { win, multiplier, filters, act: a, work } => {
                let cm = in_last * multiplier;
                let dk = self.kernel("depthwise_kernel", cm, None);
                let pk = self.kernel("pointwise_kernel", *filters, Some(cm));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!({
                    #split
                    ::kiln::infer::separable(#x, (#dk, #pk), #b, #a, &#win, (#multiplier, #filters), &mut __work[..#work], __out)
                })
            }
            Static::Embedding { dim, mask } => {
                let table = self.f32s("embeddings");
                let k = input.unwrap_or(0);
                match mask {
                    None => quote!(::kiln::infer::embedding(#x, #table, (#dim, #k), __out, None)?),
                    Some(_) => quote!({
                        #split
                        ::kiln::infer::embedding(#x, #table, (#dim, #k), __out, Some(__work))?
                    }),
                }
            }
            Static::Masking { value, features, .. } => quote!({
                #split
                ::kiln::infer::masking(#x, #value, #features, __out, __work)
            }),
            Static::Recurrent { cfg, features, units, gates, .. } => {
                let w = self.recurrent_weights("", *features, *units, gates * units);
                quote!({
                    #split
                    ::kiln::infer::recurrent(#x, #w, &#cfg, #m0, __work, __out)
                })
            }
            Static::Bidirectional { cfg, mode, features, units, gates, .. } => {
                let f = self.recurrent_weights("forward_", *features, *units, gates * units);
                let b = self.recurrent_weights("backward_", *features, *units, gates * units);
                let mode = format_ident!("{mode}");
                quote!({
                    #split
                    ::kiln::infer::bidirectional(#x, (#f, #b), &#cfg, ::kiln::infer::MergeMode::#mode, #m0, __work, __out)
                })
            }
            Static::Attention { cfg, bias, mask, .. } => {
                let names = ["query", "key", "value", "attention_output"];
                let kernels = names.map(|n| {
                    let name = format!("{n}_kernel");
                    let shape = self.checked.values(&self.key(&name)).map(|(s, _)| s.to_vec()).unwrap_or_default();
                    let (rows, cols) = if shape.len() == 3 { matrix(&name, &shape, true) } else { (1, 1) };
                    self.kernel(&name, cols, Some(rows))
                });
                let biases = names.map(|n| self.opt(&format!("{n}_bias"), *bias));
                let data = &ins[..ins.len() - usize::from(*mask)];
                let (value, key) = (&data[1], data.get(2).unwrap_or(&data[1]));
                let none = quote!(::core::option::Option::None);
                let explicit = match (mask, ins.last()) {
                    (true, Some(m)) => quote!(::core::option::Option::Some(#m)),
                    _ => none.clone(),
                };
                // The third step mask is the key's; without a key the third input is the mask.
                let m2 = if data.len() == 3 { m2.clone() } else { none };
                quote!({
                    #split
                    let __w = ::kiln::infer::AttentionWeights { kernels: [#(#kernels),*], biases: [#(#biases),*] };
                    ::kiln::infer::attention((#x, #value, #key), &__w, &#cfg, [#m0, #m1, #m2, #explicit], __work, __out)
                })
            }
            Static::TimeDistributed { inner, steps } => {
                let (inner_in, inner_out) = (&in_shape[1..], &out_shape[1..]);
                let (il, ol): (usize, usize) = (inner_in.iter().product(), inner_out.iter().product());
                let none = quote!(::core::option::Option::None);
                let call =
                    self.call(inner, &[quote!(__x)], inner_in, inner_out, None, &[none.clone(), none.clone(), none])?;
                quote!({
                    let __all = __out;
                    for __t in 0..#steps {
                        let __x = &(#x)[__t * #il..][..#il];
                        let __out = &mut __all[__t * #ol..][..#ol];
                        #call;
                    }
                })
            }
        })
    }
}

/// `infer` for a model whose weights are embedded, and the bytes of its embedded weights; the
/// reason when a layer has no static kernel.
pub fn infer(model: &Model, w: &Weights, checked: &Checked) -> Result<(TokenStream, usize), String> {
    if let Some(why) = unsupported(model) {
        return Err(format!("{why}; `infer` supports {SUPPORTED}"));
    }
    let plan = plan(model);
    let mut blob = Blob { bytes: Vec::new(), precision: w.precision, seen: Default::default() };
    let mut steps = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let Some(l) = model.layer_of_node(node) else { continue };
        if passes_on(model, i) {
            continue;
        }
        let Some(st) = l.kind.infer(&node.input_shapes, &node.output_shape) else { continue };
        let Loc::Scratch(start) = plan.loc[i] else { continue };
        let out_len = node.output_shape.iter().product::<usize>();
        let end = start + out_len + st.extra();
        let ins: Vec<TokenStream> = node
            .inputs
            .iter()
            .map(|&j| {
                let len: usize = model.nodes[j].output_shape.iter().product();
                match plan.loc[j] {
                    Loc::Input(k) => {
                        let x = format_ident!("x{k}");
                        quote!(&#x[..])
                    }
                    Loc::Scratch(a) if a + len <= start => quote!(&__lo[#a..#a + #len]),
                    Loc::Scratch(a) => {
                        let a = a - end;
                        quote!(&__hi[#a..#a + #len])
                    }
                }
            })
            .collect();
        let input = node.inputs.first().and_then(|&j| match plan.loc[j] {
            Loc::Input(k) => Some(k),
            Loc::Scratch(_) => None,
        });
        // The masks of the inputs (Keras' masking), where the layer reads them: each after the
        // output of the Embedding or Masking that made it.
        let masks: [TokenStream; 3] = std::array::from_fn(|s| {
            let src = node.inputs.get(s).and_then(|&j| model.mask_source(j)).filter(|_| l.kind.uses_mask());
            let at = src.and_then(|e| match plan.loc[e] {
                Loc::Scratch(a) => {
                    let n = &model.nodes[e];
                    let out: usize = n.output_shape.iter().product();
                    let len = model.layer_of(e)?.kind.infer(&n.input_shapes, &n.output_shape)?.extra();
                    Some((a + out, len))
                }
                Loc::Input(_) => None,
            });
            match at {
                None => quote!(::core::option::Option::None),
                Some((a, len)) if a + len <= start => quote!(::core::option::Option::Some(&__lo[#a..#a + #len])),
                Some((a, len)) => {
                    let a = a - end;
                    quote!(::core::option::Option::Some(&__hi[#a..#a + #len]))
                }
            }
        });
        let mut caller = Caller { blob: &mut blob, checked, layer: l.name.to_string() };
        let Some(call) = caller.call(&st, &ins, &node.input_shapes[0], &node.output_shape, input, &masks) else {
            continue;
        };
        steps.push(quote! {
            {
                let (__lo, __out, __hi) = ::kiln::infer::split(__s, #start, #end);
                let _ = (&__lo, &__hi);
                #call;
            }
        });
    }

    let name = &model.name;
    let len = plan.len;
    let weight_bytes = blob.bytes.len();
    let data = Literal::byte_string(&blob.bytes);
    let abs = &checked.abs;
    let args: Vec<TokenStream> = model
        .inputs
        .iter()
        .enumerate()
        .map(|(k, (_, node))| {
            let (x, n) = (format_ident!("x{k}"), model.nodes[*node].output_shape.iter().product::<usize>());
            match model.int_inputs.get(k).copied().unwrap_or(false) {
                true => quote!(#x: &[i32; #n]),
                false => quote!(#x: &[f32; #n]),
            }
        })
        .collect();
    let arg_names: Vec<TokenStream> = (0..model.inputs.len())
        .map(|k| {
            let x = format_ident!("x{k}");
            quote!(#x)
        })
        .collect();
    let outs: Vec<(TokenStream, TokenStream)> = model
        .outputs
        .iter()
        .map(|&o| {
            let n: usize = model.nodes[o].output_shape.iter().product();
            let read = match plan.loc[o] {
                Loc::Input(k) => {
                    let x = format_ident!("x{k}");
                    quote!(&#x[..])
                }
                Loc::Scratch(a) => quote!(&__s[#a..#a + #n]),
            };
            (quote!([f32; #n]), quote!({ let mut y = [0f32; #n]; y.copy_from_slice(#read); y }))
        })
        .collect();
    let (out_tys, out_vals): (Vec<_>, Vec<_>) = outs.into_iter().unzip();
    let (mut ret, mut value) = match out_tys.len() {
        1 => (out_tys[0].clone(), out_vals[0].clone()),
        _ => (quote!((#(#out_tys),*)), quote!((#(#out_vals),*))),
    };
    // A model reading token ids answers a bad id with the error, not a wrong read.
    if model.int_inputs.iter().any(|&b| b) {
        ret = quote!(::core::result::Result<#ret, ::kiln::infer::BadId>);
        value = quote!(::core::result::Result::Ok(#value));
    }
    let shown = w.path.value();
    let dtype = match w.precision {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16 kernels",
        Precision::F16 => "f16 kernels",
        Precision::Int8 => "int8 kernels (one scale per output channel)",
    };
    let doc_w = format!("The weights `infer` reads ({dtype}), in place in the binary's static data, from `{shown}`.");
    Ok((
        quote! {
            impl #name {
                /// f32 values of scratch space `infer_with` takes.
                pub const SCRATCH_LEN: usize = #len;

                #[doc = #doc_w]
                pub fn weight_data() -> &'static [u8] {
                    // Rebuilds the model when the file changes; the bytes below are what it needs.
                    const _: &[u8] = include_bytes!(#abs);
                    static DATA: ::kiln::infer::Align64<[u8; #weight_bytes]> = ::kiln::infer::Align64(*#data);
                    &DATA.0
                }

                /// Runs the model on one sample with its scratch space on the stack
                /// ([`SCRATCH_LEN`](Self::SCRATCH_LEN) f32 values): no heap, no standard library.
                #[inline]
                pub fn infer(#(#args),*) -> #ret {
                    let mut scratch = [0f32; #len];
                    Self::infer_with(#(#arg_names,)* &mut scratch)
                }

                /// Runs the model on one sample with the caller's scratch space (a `static` buffer
                /// on a device with little stack).
                #[allow(clippy::identity_op, clippy::erasing_op)]
                pub fn infer_with(#(#args,)* scratch: &mut [f32; #len]) -> #ret {
                    let __w = Self::weight_data();
                    let __s: &mut [f32] = &mut scratch[..];
                    #(#steps)*
                    #value
                }
            }
        },
        weight_bytes,
    ))
}

/// An `#[inference_only]` model: a unit struct with `infer`, its memory constants and its budget
/// check, and nothing that needs the standard library.
pub fn inference_only(
    model: &Model,
    opts: &Options,
    w: Option<&Weights>,
    source_file: Option<std::path::PathBuf>,
) -> syn::Result<TokenStream> {
    let at = opts.inference_only.clone().unwrap_or_default();
    let fail = |msg: String| syn::Error::new_spanned(&at, format!("#[inference_only]: {msg}"));
    if let Some(why) = unsupported(model) {
        return Err(fail(format!("{why}; `infer` supports {SUPPORTED}")));
    }
    let Some(w) = w else {
        return Err(fail("the model needs its trained weights: add #[weights(\"model.safetensors\")]".into()));
    };
    let checked = crate::embed::check(model, w, source_file)?;
    let (code, weights) = infer(model, w, &checked).map_err(fail)?;
    let scratch = 4 * plan(model).len;
    check_budget(model, opts, weights, scratch, &|| largest_weights(model, w.precision))?;
    let Model { attrs, vis, name, .. } = model;
    Ok(quote! {
        #(#attrs)*
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        impl #name {
            /// Bytes of the weights as embedded for `infer` (per-tensor alignment included).
            pub const WEIGHT_BYTES: usize = #weights;
            /// Bytes of scratch space `infer` needs for one sample.
            pub const SCRATCH_BYTES: usize = #scratch;
        }

        #code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_written() {
        assert_eq!(size("64K"), Some(65536));
        assert_eq!(size("64KB"), Some(65536));
        assert_eq!(size("64KiB"), Some(65536));
        assert_eq!(size("1M"), Some(1 << 20));
        assert_eq!(size("1000"), Some(1000));
        assert_eq!(size("lots"), None);
    }

    #[test]
    fn quantisation_keeps_each_column_within_half_a_step() {
        let vals: Vec<f32> =
            (0..40).map(|i| ((i * 37 % 17) as f32 - 8.0) * if i % 2 == 0 { 0.01 } else { 3.0 }).collect();
        let (q, s) = quantise(&vals, 2);
        for (i, v) in vals.iter().enumerate() {
            assert!((q[i] as f32 * s[i % 2] - v).abs() <= s[i % 2] / 2.0 + 1e-7);
        }
        assert_eq!(bf16(1.0), 0x3f80);
        for (x, h) in
            [(1.0f32, 0x3c00u16), (-2.0, 0xc000), (65504.0, 0x7bff), (1e6, 0x7c00), (5.960_464_5e-8, 1), (0.0, 0)]
        {
            assert_eq!(f16(x), h, "{x}");
        }
        assert_eq!(f16(1.0 + 1.0 / 2048.0), 0x3c00); // a tie rounds to even
        assert_eq!(f16(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // a tie rounds to even
    }
}
