//! What a layer computes at inference, as its spec describes it: the [`Static`] kernel the
//! generated `infer` calls (`ship` turns it into code), with the parameters it may store in
//! reduced precision and the workspace it needs.

use proc_macro2::TokenStream;

/// What a resampling layer does to `[height, width]` (a sequence: height 1): rows and columns
/// added or removed as `[top, bottom, left, right]`, or each repeated `(rows, columns)` times.
#[derive(Clone, Copy)]
pub enum Resampling {
    Pad([usize; 4]),
    Crop([usize; 4]),
    Up(usize, usize),
}

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
    /// `ZeroPadding2D`, `Cropping2D`, `UpSampling2D` (and their 1-D forms): the runtime `Resize`
    /// expression, and what it does for the ONNX export.
    Resample {
        op: TokenStream,
        form: Resampling,
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
        /// The sizes ONNX export writes the heads with: heads, key and value widths, output width.
        heads: usize,
        key_dim: usize,
        value_dim: usize,
        out: usize,
        causal: bool,
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
    /// User math: element-wise functions applied one after the other (`UnaryOp` variants, as
    /// `Exp` or `Scale(0.5)`).
    Unary {
        ops: Vec<TokenStream>,
    },
    /// A `BinaryOp` (`Add`, ...) between inputs of these sample shapes, which broadcast.
    Broadcast {
        op: &'static str,
        a: Vec<usize>,
        b: Vec<usize>,
    },
    /// A `ReduceOp` along the middle axis of a sample seen as `[outer, len, inner]`.
    Reduce {
        op: &'static str,
        len: usize,
        inner: usize,
    },
    /// Softmax (or its logarithm) along the middle axis of `[outer, len, inner]`.
    SoftmaxAxis {
        log: bool,
        len: usize,
        inner: usize,
    },
    /// `matmul` of inputs of these sample shapes (leading axes that broadcast), either operand's
    /// last two axes read transposed.
    MatMul {
        a: Vec<usize>,
        b: Vec<usize>,
        ta: bool,
        tb: bool,
    },
    /// `one_hot` of an input of token ids.
    OneHot {
        classes: usize,
    },
    /// A `#[kiln::model]` struct's `Weight` field read as a tensor (ONNX export only): its
    /// `value`, the same for every sample.
    WeightRead,
    /// CategoryEncoding (ONNX export only): a sample's ids as one row of `depth`, ones or
    /// `count`s.
    CategoryRows {
        depth: usize,
        count: bool,
    },
    /// Keras' `Attention` and `AdditiveAttention` (ONNX export only) of `tq` query steps over
    /// `tv` value steps.
    DotAttention {
        use_scale: bool,
        causal: bool,
        additive: bool,
        tq: usize,
        tv: usize,
    },
    /// IntegerLookup (ONNX export only): a sample's values as one row of `oov` columns then one
    /// per entry of the weight `vocabulary` (unused entries -1), ones or `count`s.
    Lookup {
        oov: usize,
        count: bool,
    },
    /// Discretization (ONNX export only): bucket ids among the weight `bin_boundaries`, or with
    /// `rows` (`Some(count)`) rows of `bins`.
    Buckets {
        bins: usize,
        rows: Option<bool>,
    },
    /// `gather(x, ids)`: rows of `x` (`rows` of them) by an input of token ids.
    Gather {
        rows: usize,
    },
    /// `Resizing`, `CenterCrop`, `RandomCrop` at inference: the row and column taps (low and
    /// high input position, fraction) of `[h, w, c]` images.
    Resize {
        rows: Vec<(usize, usize, f32)>,
        cols: Vec<(usize, usize, f32)>,
        w: usize,
        c: usize,
    },
    /// Positions `start..end` of the middle axis of `[outer, len, inner]`.
    Slice {
        len: usize,
        inner: usize,
        start: usize,
        end: usize,
    },
}

impl Static {
    /// The parameters `infer` may store in reduced precision, each with whether int8 keeps its
    /// rows in pairs (a matrix product) or plain (a depthwise kernel, one value per channel).
    pub fn kernels(&self) -> &'static [(&'static str, bool)] {
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
    pub fn extra(&self) -> usize {
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
