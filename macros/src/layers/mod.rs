//! One spec per layer kind: its Keras name and arguments, its static shape rule with the error a
//! user reads, its runtime type and constructor, and its parameters. Parsing, shape inference,
//! code generation, embedding and the summary all dispatch through [`Spec`]; adding a layer is
//! adding a file here and a line to [`KINDS`] (see `CONTRIBUTING.md`).

/// A layer's own argument names followed by the weight options (`kernel_initializer`, ...), and
/// `activity_regularizer` unless the list ends with `; no_activity`.
macro_rules! with_weight_args {
    ($($arg:literal),* ; no_activity) => {
        &[$($arg,)* "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
          "kernel_constraint", "bias_constraint"]
    };
    ($($arg:literal),* $(,)?) => {
        &[$($arg,)* "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
          "kernel_constraint", "bias_constraint", "activity_regularizer"]
    };
}

mod activation;
mod attention;
mod augment;
pub mod call;
mod custom;
mod dense;
mod embedding;
mod init;
mod leaky_relu;
mod math;
mod merge;
mod noise;
mod norm;
mod part;
mod preprocess;
mod recurrent;
mod resample;
mod tensor;
mod view;
mod window;
mod wrappers;

use std::rc::Rc;

pub use init::WeightOpts;

/// The weight options `#[layer(..)]` takes on a `#[kiln::model]` field.
pub const WEIGHT_ARGS: &[&str] = with_weight_args!();

/// Parses the weight options of a `#[kiln::model]` field.
pub fn weight_opts(args: &Args<'_>, errors: &mut Errors) -> Option<WeightOpts> {
    init::parse(args, true, errors)
}

use proc_macro2::TokenStream;
use quote::quote;

use self::call::Value;
use crate::errors::{Errors, suggestion};

pub use activation::{ACTIVATIONS, Act, Activation};
pub use custom::{Exported, Field, WeightRead};
pub use math::{
    Num, REDUCE, Scalar, add_loss, broadcast, draw, fused, named_constant, number, one_hot, reduce, reduced,
    sample_axis, scalar, unary,
};
pub use merge::{concatenate, dot, elementwise, stack_join};
pub use noise::dropout_spec as dropout;
pub use part::{last_step, part};
pub use resample::{as_image, permute_spec};
pub use tensor::{gather, matmul, matmul_shape, slice, softmax_axis};
pub use view::{call_view, expand_dims, flatten, merge_axes, reshape_spec, squeeze};
pub use window::global_pool;

/// One dimension in generated code: a literal (`16usize`) or, in a `#[kiln::model]` struct, a
/// constant expression rustc evaluates (`<Model>::__KILN_SHAPE_3[0]`).
pub type Dim = TokenStream;

/// What a layer kind is, once its arguments are understood.
pub trait Spec {
    /// Keras' class name, also the base of automatic layer names (`dense_1`).
    fn class(&self) -> &'static str;

    /// The base of automatic layer names, as Keras derives it from the class (`dense`, `dense_1`).
    fn auto_name(&self) -> String {
        snake_case(self.class())
    }

    /// How many inputs it takes.
    fn arity(&self) -> Arity {
        Arity::One
    }

    /// A layer of several inputs with weights of its own, applied as Keras calls it,
    /// `layer(query, value)` (MultiHeadAttention); a named one is shared by its applications.
    fn call_args(&self) -> bool {
        false
    }

    /// A view changes no value on row-major data (Flatten, Reshape): no field, no code, the
    /// input buffer is read under the new shape.
    fn is_view(&self) -> bool {
        false
    }

    /// The output shape of one sample for these input shapes, or the message (in Keras' words)
    /// that says why the layer cannot take them.
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String>;

    /// The runtime type, for input shapes `ins` (`Dense<64, 10, Softmax>`).
    fn runtime_type(&self, ins: &[Vec<Dim>]) -> TokenStream;

    /// The expression building it, given the input shapes as dimensions in generated code and,
    /// where the macro knows them, as numbers (`sequential!`, `functional!`; empty in a
    /// subclassed model's `call`); `rng` (a `&mut StdRng`) is in scope.
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let ty = self.runtime_type(ins);
        let rt = rt();
        quote!(<#ty as #rt::Init>::init(&mut rng))
    }

    /// Its parameters by name and shape, as saved (`kernel`, `[64, 10]`); `None` when only rustc
    /// knows them (a user's layer type).
    fn params(&self, _ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![])
    }

    /// The parameter count as a constant expression, for the summary.
    fn param_count(&self, ins: &[Vec<usize>]) -> TokenStream {
        let n: usize = self.params(ins).unwrap_or_default().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        quote!(#n)
    }

    /// For a layer that reads integer token ids (Embedding), one more than the largest id it
    /// accepts; `None` for layers that read floats.
    fn id_bound(&self) -> Option<usize> {
        None
    }

    /// Whether input `i` of the layer is integer token ids (every input of a layer with an
    /// [`Spec::id_bound`]; `gather`'s second).
    fn reads_ids(&self, _i: usize) -> bool {
        self.id_bound().is_some()
    }

    /// The bound of the ids the layer reads, given its input shapes (`gather` reads ids below
    /// its first input's extent).
    fn id_bound_for(&self, _ins: &[Vec<usize>]) -> Option<usize> {
        self.id_bound()
    }

    /// The bound as code, in a `call` body where shapes are constants for rustc.
    fn id_bound_dims(&self) -> Option<TokenStream> {
        self.id_bound().map(|b| quote!(#b))
    }

    /// Keras' masking: whether the layer makes a mask (`Embedding(mask_zero = true)`).
    fn makes_mask(&self) -> bool {
        false
    }

    /// Whether the layer reads its inputs' masks (recurrent layers, attention, average pooling
    /// over steps).
    fn uses_mask(&self) -> bool {
        false
    }

    /// Whether its output carries its (first) input's mask on, as Keras' layers with
    /// `supports_masking` do (element-wise and per-step layers, merges, sequence outputs).
    fn keeps_mask(&self) -> bool {
        false
    }

    /// For a recurrent layer (what Bidirectional wraps): its units.
    fn recurrent(&self) -> Option<usize> {
        None
    }

    /// Its outputs, when it has several (a recurrent layer's `return_state`): their names, in
    /// Keras' order, for messages. A layer of several outputs computes them one after the other
    /// in each sample's values; `functional!` binds each to a [`part`] that reads it.
    fn outputs(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// For a layer of several outputs, their shapes, split from its output shape.
    fn split(&self, out: &[usize]) -> Vec<Vec<usize>> {
        vec![out.to_vec()]
    }

    /// The same layer applied with Keras' `attention_mask = m` in its call (the mask then its
    /// last input); `None` for a layer that takes none.
    fn with_mask_input(&self) -> Option<Rc<dyn Spec>> {
        None
    }

    /// Whether it was applied with an `attention_mask`.
    fn has_mask_input(&self) -> bool {
        false
    }

    /// The same layer applied with Keras' `initial_state = [h, ..]` in its call (the states then
    /// its inputs after the first); `None` for a layer that takes none.
    fn with_initial_state(&self) -> Option<Rc<dyn Spec>> {
        None
    }

    /// Whether it was applied with an `initial_state`.
    fn has_initial_state(&self) -> bool {
        false
    }

    /// For one of a layer's several outputs: which one (hidden from the summary and plots, where
    /// the layer shows every output).
    fn part_index(&self) -> Option<usize> {
        None
    }

    /// Whether its code names types from the user's scope (a `Custom` layer's type).
    fn user_scope(&self) -> bool {
        false
    }

    /// For a field of a `#[kiln::model]` struct, its name.
    fn field_key(&self) -> Option<&str> {
        None
    }

    /// For ONNX export, the prefix of its weights' names where it is not the layer's name (an
    /// element of an array field: `blocks.0`).
    fn weight_prefix(&self) -> Option<&str> {
        None
    }

    /// For ONNX export, the full name of its weight `name` where it is not `<layer>.<name>` (a
    /// field's: `blocks.0.kernel`, a `Matrix` field's kernel `w.value`).
    fn weight_path(&self, _name: &str) -> Option<String> {
        None
    }

    /// The class shown in the summary, as a constant expression.
    fn summary_kind(&self) -> TokenStream {
        let c = self.class();
        quote!(#c)
    }

    /// The activation it applies, by Keras name, for the summary and plots.
    fn activation(&self) -> Option<&'static str> {
        None
    }

    /// Whether its output is a softmax over each whole sample, which a cross-entropy loss may
    /// fuse with (the fusion itself is decided once, in the runtime's `compile`).
    fn softmax_output(&self, _out: &[usize]) -> bool {
        false
    }

    /// What it computes at inference, for a model's generated `infer` (no heap, no standard
    /// library); `None` where kiln has no such kernel for it yet.
    fn infer(&self, _ins: &[Vec<usize>], _out: &[usize]) -> Option<crate::ir::Static> {
        None
    }
    /// What it computes, for ONNX export: `infer`'s description, also where only the `no_std`
    /// kernels lack something (a recurrent layer started from an `initial_state`).
    fn onnx(&self, ins: &[Vec<usize>], out: &[usize]) -> Option<crate::ir::Static> {
        self.infer(ins, out)
    }

    /// Compile-time checks rustc evaluates (a user layer's type against the model's shapes),
    /// spanned at `at`; `what` names the layer in the message.
    fn const_checks(&self, _what: &str, _ins: &[Vec<usize>], _out: &[usize], _at: &TokenStream) -> TokenStream {
        TokenStream::new()
    }
    /// An element-wise function of one tensor (user math): its runtime ops, first to last, and
    /// whether a constant of one is named in the user's code. Two in a row fuse (`math::fused`).
    fn unary_ops(&self) -> Option<(&[TokenStream], bool)> {
        None
    }
}

/// The number of inputs a layer takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    One,
    /// A merge of two or more inputs.
    AtLeastTwo,
    /// A merge of exactly two inputs.
    Two,
}

/// A layer kind as the parsers see it: name, argument names (positional ones first, in Keras'
/// order) and the function that understands the arguments.
pub struct Kind {
    pub class: &'static str,
    pub args: &'static [&'static str],
    pub arity: Arity,
    pub build: fn(&Args<'_>, &mut Errors) -> Option<Rc<dyn Spec>>,
}

/// Every layer kind kiln's model macros accept.
pub const KINDS: &[Kind] = &[
    dense::KIND,
    view::FLATTEN,
    view::RESHAPE,
    activation::KIND,
    activation::RELU,
    activation::SOFTMAX,
    activation::ELU,
    leaky_relu::KIND,
    leaky_relu::PRELU,
    window::CONV1D,
    window::CONV2D,
    window::DEPTHWISE2D,
    window::SEPARABLE2D,
    window::TRANSPOSE2D,
    window::MAX_POOL1D,
    window::MAX_POOL2D,
    window::AVG_POOL1D,
    window::AVG_POOL2D,
    window::GLOBAL_MAX1D,
    window::GLOBAL_MAX2D,
    window::GLOBAL_AVG1D,
    window::GLOBAL_AVG2D,
    norm::KIND,
    norm::LAYER_NORM,
    norm::NORMALIZATION,
    embedding::KIND,
    recurrent::SIMPLE_RNN,
    recurrent::LSTM,
    recurrent::GRU,
    attention::KIND,
    attention::DOT_ATTENTION,
    attention::ADDITIVE_ATTENTION,
    wrappers::TIME_DISTRIBUTED,
    wrappers::BIDIRECTIONAL,
    noise::DROPOUT,
    noise::SPATIAL_DROPOUT1D,
    noise::SPATIAL_DROPOUT2D,
    noise::GAUSSIAN_NOISE,
    resample::ZERO_PADDING2D,
    resample::CROPPING2D,
    resample::UP_SAMPLING2D,
    resample::ZERO_PADDING1D,
    resample::CROPPING1D,
    resample::UP_SAMPLING1D,
    resample::REPEAT_VECTOR,
    resample::PERMUTE,
    noise::RESCALING,
    augment::RANDOM_FLIP,
    augment::RANDOM_TRANSLATION,
    augment::RANDOM_ROTATION,
    augment::RANDOM_ZOOM,
    augment::RANDOM_CROP,
    augment::RANDOM_CONTRAST,
    augment::RANDOM_BRIGHTNESS,
    augment::RESIZING,
    augment::CENTER_CROP,
    noise::MASKING,
    preprocess::CATEGORY_ENCODING,
    preprocess::DISCRETIZATION,
    preprocess::INTEGER_LOOKUP,
    custom::KIND,
    merge::ADD,
    merge::SUBTRACT,
    merge::MULTIPLY,
    merge::AVERAGE,
    merge::MAXIMUM,
    merge::MINIMUM,
    merge::CONCATENATE,
    merge::DOT,
];

/// The kind named `class`.
pub fn kind(class: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.class == class)
}

/// The message for a layer name kiln does not know, listing those the model style accepts.
pub fn unknown_layer(class: &str, merges: bool) -> String {
    let known: Vec<&str> = KINDS.iter().filter(|k| merges || k.arity == Arity::One).map(|k| k.class).collect();
    let hint = match kind(class) {
        Some(k) if !merges && k.arity != Arity::One => {
            format!(" ({class} merges several inputs: use it in a functional! model)")
        }
        _ => suggestion(class, &known),
    };
    format!("unknown layer `{class}`{hint}; kiln's layers are: {}", known.join(", "))
}

/// A layer call's arguments, matched to their names.
pub struct Args<'a> {
    /// The layer's class, for messages.
    pub class: &'a str,
    pub named: Vec<(String, &'a Value)>,
    /// The whole call, where errors about a missing argument point.
    pub call: &'a TokenStream,
}

impl Args<'_> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.named.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A positive integer argument; `None` (with the error reported) when it is not one.
    pub fn positive(&self, key: &str, class: &str, example: &str, errors: &mut Errors) -> Option<Option<usize>> {
        match self.get(key) {
            Some(Value::Int(u, _)) if *u > 0 => Some(Some(*u as usize)),
            Some(v @ Value::Int(u, _)) => {
                errors.at(v.span(), format!("{class} {key} must be a positive integer, got {u}"));
                None
            }
            Some(v) => {
                errors.at(v.span(), format!("{class} {key} must be a positive integer, e.g. {example}"));
                None
            }
            None => Some(None),
        }
    }

    /// A number argument (integers allowed) with its default; `None` (reported) when it is not a
    /// number or fails `valid`, whose text says what is allowed.
    pub fn number(&self, key: &str, default: f64, valid: (fn(f64) -> bool, &str), errors: &mut Errors) -> Option<f64> {
        let v = match self.get(key) {
            Some(Value::Float(f, _)) => *f,
            Some(Value::Int(i, _)) => *i as f64,
            Some(v) => {
                errors.at(v.span(), format!("{}'s {key} must be a number, e.g. {key} = {default}", self.class));
                return None;
            }
            None => return Some(default),
        };
        if !valid.0(v) {
            let span = self.get(key).map(Value::span).unwrap_or_else(proc_macro2::Span::call_site);
            errors.at(span, format!("{}'s {key} must be {}, got {v}", self.class, valid.1));
            return None;
        }
        Some(v)
    }

    /// A boolean argument with its default.
    pub fn boolean(&self, key: &str, default: bool, errors: &mut Errors) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b, _)) => Some(*b),
            Some(v) => {
                errors.at(v.span(), format!("{key} must be true or false"));
                None
            }
            None => Some(default),
        }
    }
}

/// The runtime path generated code uses.
pub fn rt() -> TokenStream {
    quote!(::kiln::__private)
}

/// Literal dimensions.
pub fn lit(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|d| quote!(#d)).collect()
}

/// The product of dimensions as an expression.
pub fn product(dims: &[Dim]) -> TokenStream {
    let Some((first, rest)) = dims.split_first() else { return quote!(1usize) };
    quote!((#first #(* #rest)*))
}

/// The last dimension (the feature axis).
pub fn last(dims: &[Dim]) -> Dim {
    dims.last().cloned().unwrap_or_else(|| quote!(1usize))
}

/// Keras' automatic layer name for a class: `GlobalAveragePooling1D` → `global_average_pooling1d`.
pub fn snake_case(class: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
        if c.is_uppercase() && i > 0 && (prev_lower || next_lower) && !chars[i - 1].is_ascii_digit() {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `[4, 8]` as a user reads it.
pub fn show(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// `[4, 8] and [4, 9]`.
pub fn show_all(shapes: &[Vec<usize>]) -> String {
    let parts: Vec<String> = shapes.iter().map(|s| show(s)).collect();
    match parts.len() {
        2 => format!("{} and {}", parts[0], parts[1]),
        _ => parts.join(", "),
    }
}

/// A compile-time check of shapes only rustc knows, spanned at the user's code: `verdict` is a
/// call of one of the runtime's `expect_*` const fns, which returns the message of a failure;
/// the panic is in the user's crate, so rustc reports the sentence at the span with no note into
/// kiln's sources.
pub fn const_check(span: proc_macro2::Span, verdict: TokenStream) -> TokenStream {
    quote::quote_spanned! {span=>
        const _: () = if let ::core::option::Option::Some(m) = &#verdict { ::core::panic!("{}", m.text()) };
    }
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn automatic_names_follow_keras() {
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(snake_case("GlobalAveragePooling1D"), "global_average_pooling1d");
        assert_eq!(snake_case("Conv2DTranspose"), "conv2d_transpose");
        assert_eq!(snake_case("LSTM"), "lstm");
        assert_eq!(snake_case("MultiHeadAttention"), "multi_head_attention");
    }
}
