//! The shape checks of a `call` body run while the macro expands, where it knows the numbers.
//!
//! Every check `lower` emits is a call of one of `kiln-shapes`' functions on constant
//! expressions: the input shapes `call`'s signature gives, arithmetic on them, and the rules of
//! the struct's fields (`field_rule::<Alias>()`, `<Alias as Shaped>::TENSOR`, the output shapes
//! the model's constants hold). The struct macro hands the call macro its fields' types (see
//! `lib.rs`: `__kiln_fields_<Model>!`); a field of one of kiln's own types written with numbers
//! (`Dense<10, 64, Relu>`, `kiln::Conv2D<1, 4, 3>`) has a rule known here. A check whose
//! arguments all evaluate is run now, by the function rustc would run, and a failure is a plain
//! compile error at the user's code, worded as the other styles' errors. A check on anything only
//! rustc knows (a size parameter, a nested model, a user's layer type) stays a constant rustc
//! evaluates.

use std::collections::HashMap;
use std::rc::Rc;

use kiln_shapes::{self as ks, FieldRule, InputRule, WindowRule};
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Expr, GenericArgument, PathArguments, Type};

use crate::errors::Errors;
use crate::layers::call::{LayerCall, understand};
use crate::layers::{ACTIVATIONS, Spec};

/// What the checks read of a field's type: its [`Shaped`](../../../kiln_runtime) constants.
#[derive(Clone, Copy)]
pub struct FieldType {
    rule: FieldRule,
    tensor: bool,
    matrix: bool,
    /// Reads token ids (an Embedding's `Shaped::IDS` is `Some`).
    pub ids: bool,
}

/// A generic argument of a field's type, as written.
enum Arg {
    Num(usize),
    Name(String),
    /// `true` or `false` (a causal mask's flag).
    Flag(bool),
}

/// A type's last path segment as written: its name and its generic arguments.
struct TypeArgs {
    class: String,
    args: Args,
}

/// A type's generic arguments, read by position.
struct Args(Vec<Arg>);

impl TypeArgs {
    /// `None` for a type that is not a plain path, or has an argument that is not a number, a
    /// name or a flag.
    fn of(ty: &Type) -> Option<TypeArgs> {
        let Type::Path(p) = ty else { return None };
        if p.qself.is_some() {
            return None;
        }
        let seg = p.path.segments.last()?;
        let args = match &seg.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().map(arg).collect::<Option<_>>()?,
            PathArguments::None => vec![],
            PathArguments::Parenthesized(_) => return None,
        };
        Some(TypeArgs { class: seg.ident.to_string(), args: Args(args) })
    }
}

impl Args {
    /// Argument `i` as a number.
    fn num(&self, i: usize) -> Option<usize> {
        match self.0.get(i) {
            Some(Arg::Num(n)) => Some(*n),
            _ => None,
        }
    }

    /// Argument `i` as a type's name, `default` when it is not written.
    fn word(&self, i: usize, default: &str) -> Option<String> {
        match self.0.get(i) {
            Some(Arg::Name(n)) => Some(n.clone()),
            None => Some(default.to_string()),
            _ => None,
        }
    }

    /// Argument `i` as `true` or `false`, `false` when it is not written.
    fn flag(&self, i: usize) -> Option<bool> {
        match self.0.get(i) {
            Some(Arg::Flag(b)) => Some(*b),
            None => Some(false),
            _ => None,
        }
    }
}

/// The rule of a field of one of kiln's own layer types written with numbers (`Dense<10, 64,
/// Relu>`), as the runtime's `Shaped` impl states it; `None` for any other type.
pub fn field_type(ty: &Type) -> Option<FieldType> {
    let TypeArgs { class, args } = TypeArgs::of(ty)?;
    let num = |i: usize| args.num(i);
    let name_or = |i: usize, default: &str| args.word(i, default);
    let rule = |kind: &'static str, input: usize, output: usize| FieldRule {
        kind,
        input,
        output,
        any_width: false,
        flat: false,
        window: None,
        map: None,
        more: &[],
        required: 1,
    };
    let layer = |rule: FieldRule| Some(FieldType { rule, tensor: false, matrix: false, ids: false });
    let n = args.0.len();
    match class.as_str() {
        "Dense" if (2..=3).contains(&n) => layer(FieldRule { flat: true, ..rule("Dense", num(0)?, num(1)?) }),
        "Activation" if n == 2 => layer(rule("Activation", num(1)?, num(1)?)),
        "Embed" if n == 2 => Some(FieldType { ids: true, ..layer(rule("Embedding", 1, num(1)?))? }),
        "LayerNormalization" if n == 1 => layer(rule("LayerNormalization", num(0)?, num(0)?)),
        "BatchNormalization" if n == 1 => layer(rule("BatchNormalization", num(0)?, num(0)?)),
        "LstmSeq" if n == 2 => layer(rule("LSTM", num(0)?, num(1)?)),
        "GruSeq" | "SimpleRnnSeq" if n == 2 => {
            let kind = if class == "GruSeq" { "GRU" } else { "SimpleRNN" };
            let more: &'static [InputRule] = Box::leak(Box::new([InputRule::State(num(1)?)]));
            layer(FieldRule { more, ..rule(kind, num(0)?, num(1)?) })
        }
        "BiLstmSeq" | "BiGruSeq" if n == 2 => layer(rule("Bidirectional", num(0)?, 2 * num(1)?)),
        "SelfAttention" if (3..=4).contains(&n) => {
            layer(FieldRule { more: &[InputRule::Mask], ..rule("MultiHeadAttention", num(0)?, num(0)?) })
        }
        "CrossAttention" if (4..=5).contains(&n) => {
            let more: &'static [InputRule] = Box::leak(Box::new([InputRule::Steps(num(1)?), InputRule::Mask]));
            layer(FieldRule { more, required: 2, ..rule("MultiHeadAttention", num(0)?, num(0)?) })
        }
        "Conv1D" | "Conv2D" if (3..=6).contains(&n) => {
            let (kind, rank) = if class == "Conv1D" { ("Conv1D", 1) } else { ("Conv2D", 2) };
            let strides = if n == 6 { num(5)? } else { 1 };
            let same = padding(&name_or(4, "Valid")?)?;
            let window = WindowRule { class: kind, rank, kernel: num(2)?, strides, dilation: 1, same };
            layer(FieldRule { window: Some(window), ..rule(kind, num(0)?, num(1)?) })
        }
        "MaxPooling1D" | "MaxPooling2D" | "AveragePooling1D" | "AveragePooling2D" if (1..=2).contains(&n) => {
            let kind: &'static str = match class.as_str() {
                "MaxPooling1D" => "MaxPooling1D",
                "MaxPooling2D" => "MaxPooling2D",
                "AveragePooling1D" => "AveragePooling1D",
                _ => "AveragePooling2D",
            };
            let rank = if kind.ends_with("1D") { 1 } else { 2 };
            let same = padding(&name_or(1, "Valid")?)?;
            let k = num(0)?;
            let window = WindowRule { class: kind, rank, kernel: k, strides: k, dilation: 1, same };
            layer(FieldRule { window: Some(window), any_width: true, ..rule(kind, 0, 0) })
        }
        "Weight" if (1..=2).contains(&n) => {
            Some(FieldType { rule: rule("Weight", num(0)?, num(0)?), tensor: true, matrix: false, ids: false })
        }
        "Matrix" if (2..=3).contains(&n) => {
            Some(FieldType { rule: rule("Matrix", num(0)?, num(1)?), tensor: false, matrix: true, ids: false })
        }
        _ => None,
    }
}

/// How a field's calls read as the layer of the other styles it is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// As they are.
    Plain,
    /// `self.attn(x)` / `self.attn(x, mask)` is `mha(x, x)` / `mha(x, x, attention_mask = mask)`.
    SelfAttention,
    /// `self.cross(q, v, mask)` is `mha(q, v, attention_mask = mask)`.
    CrossAttention,
    /// `matmul(x, self.w)` is a Dense layer without bias whose kernel is the field's `value`.
    Matrix,
}

/// The layer of the other styles a field of one of kiln's types is, for ONNX export
/// (`Dense<10, 64, Relu>` is `Dense(64, activation = relu)`), and how its calls read as that
/// layer's; `None` for a type with no such layer here (weights, nested models, users' types).
pub fn keras_spec(ty: &Type) -> Option<(Rc<dyn Spec>, Form)> {
    let TypeArgs { class, args } = TypeArgs::of(ty)?;
    let num = |i: usize| args.num(i);
    let word = |i: usize, default: &str| args.word(i, default);
    // An activation type by its Keras name (`Relu` is `relu`).
    let act = |i: usize| {
        let ty = word(i, "Linear")?;
        ACTIVATIONS.iter().find(|(_, t)| *t == ty).map(|(n, _)| n.to_string())
    };
    let pad = |i: usize| Some(if padding(&word(i, "Valid")?)? { "same" } else { "valid" });
    let causal = |i: usize| args.flag(i);
    let form = match class.as_str() {
        "SelfAttention" => Form::SelfAttention,
        "CrossAttention" => Form::CrossAttention,
        "Matrix" => Form::Matrix,
        _ => Form::Plain,
    };
    let call = match (class.as_str(), args.0.len()) {
        ("SelfAttention", 3..=4) => {
            format!(
                "MultiHeadAttention(num_heads = {}, key_dim = {}, use_causal_mask = {})",
                num(1)?,
                num(2)?,
                causal(3)?
            )
        }
        ("CrossAttention", 4..=5) => {
            format!(
                "MultiHeadAttention(num_heads = {}, key_dim = {}, use_causal_mask = {})",
                num(2)?,
                num(3)?,
                causal(4)?
            )
        }
        ("Dense", 2..=3) => format!("Dense({}, activation = {})", num(1)?, act(2)?),
        ("Matrix", 2..=3) => format!("Dense({}, use_bias = false)", num(1)?),
        ("Weight", 1..=2) => return Some((Rc::new(crate::layers::WeightRead), Form::Plain)),
        ("Activation", 2) => format!("Activation({})", act(0)?),
        ("Embed", 2) => format!("Embedding({}, {})", num(0)?, num(1)?),
        ("LayerNormalization", 1) => "LayerNormalization()".into(),
        ("BatchNormalization", 1) => "BatchNormalization()".into(),
        ("LstmSeq", 2) => format!("LSTM({}, return_sequences = true)", num(1)?),
        ("GruSeq", 2) => format!("GRU({}, return_sequences = true)", num(1)?),
        ("SimpleRnnSeq", 2) => format!("SimpleRNN({}, return_sequences = true)", num(1)?),
        ("BiLstmSeq", 2) => format!("Bidirectional(LSTM({}, return_sequences = true))", num(1)?),
        ("BiGruSeq", 2) => format!("Bidirectional(GRU({}, return_sequences = true))", num(1)?),
        ("Conv1D" | "Conv2D", 3..=6) => format!(
            "{class}({}, {}, strides = {}, padding = {}, activation = {})",
            num(1)?,
            num(2)?,
            if args.0.len() == 6 { num(5)? } else { 1 },
            pad(4)?,
            act(3)?
        ),
        ("MaxPooling1D" | "MaxPooling2D" | "AveragePooling1D" | "AveragePooling2D", 1..=2) => {
            format!("{class}({}, padding = {})", num(0)?, pad(1)?)
        }
        _ => return None,
    };
    let call: LayerCall = syn::parse_str(&call).ok()?;
    let mut errors = Errors::default();
    let understood = understand(&call, true, &mut errors);
    errors.finish().ok()?;
    understood.map(|u| (u.kind, form))
}

fn arg(a: &GenericArgument) -> Option<Arg> {
    match a {
        GenericArgument::Const(e) => match literal(e)? {
            Value::Int(n) => Some(Arg::Num(n)),
            Value::Bool(b) => Some(Arg::Flag(b)),
            _ => None,
        },
        GenericArgument::Type(Type::Path(p)) if p.qself.is_none() => {
            let seg = p.path.segments.last()?;
            Some(Arg::Name(seg.ident.to_string()))
        }
        // `Dense<10, 64>` parses its numbers as types in some positions.
        GenericArgument::Type(t) => {
            syn::parse2::<syn::LitInt>(t.to_token_stream()).ok().and_then(|l| l.base10_parse().ok()).map(Arg::Num)
        }
        _ => None,
    }
}

fn padding(name: &str) -> Option<bool> {
    match name {
        "Valid" => Some(false),
        "Same" => Some(true),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<Value> {
    match e {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) => i.base10_parse().ok().map(Value::Int),
            syn::Lit::Bool(b) => Some(Value::Bool(b.value)),
            syn::Lit::Str(s) => Some(Value::Str(s.value())),
            _ => None,
        },
        Expr::Block(b) if b.block.stmts.len() == 1 => match &b.block.stmts[0] {
            syn::Stmt::Expr(e, None) => literal(e),
            _ => None,
        },
        _ => None,
    }
}

/// A constant as the evaluator holds it.
#[derive(Clone)]
enum Value {
    Int(usize),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
    Rule(FieldRule),
}

impl Value {
    fn int(&self) -> Option<usize> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
    fn boolean(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn shape(&self) -> Option<Vec<usize>> {
        match self {
            Value::List(v) => v.iter().map(Value::int).collect(),
            _ => None,
        }
    }
    fn rule(&self) -> Option<FieldRule> {
        match self {
            Value::Rule(r) => Some(*r),
            _ => None,
        }
    }
}

/// The constants a `call` body's checks read: its fields' types by alias, and the output
/// shapes of its field calls by constant name.
#[derive(Default)]
pub struct Known {
    pub fields: HashMap<String, FieldType>,
    pub shapes: HashMap<String, Vec<TokenStream>>,
}

impl Known {
    /// The verdict of a check, when every argument is known here: `Some(Some(message))` for a
    /// failure, `Some(None)` for a pass, `None` when only rustc can tell.
    pub fn verdict(&self, check: &TokenStream) -> Option<Option<String>> {
        let Expr::Call(call) = syn::parse2::<Expr>(check.clone()).ok()? else { return None };
        let name = callee(&call.func)?;
        let args: Vec<Value> = call.args.iter().map(|a| self.eval(a, 0)).collect::<Option<_>>()?;
        let what = match args.first()? {
            Value::Str(s) => s.as_str(),
            _ => return None,
        };
        let (i, s, b, r) = (
            |k: usize| args.get(k)?.int(),
            |k: usize| args.get(k)?.shape(),
            |k: usize| args.get(k)?.boolean(),
            |k: usize| args.get(k)?.rule(),
        );
        let msg = match name.as_str() {
            "expect_field" => ks::expect_field(what, r(1)?, &s(2)?),
            "expect_inputs" => {
                let Value::List(all) = args.get(2)? else { return None };
                let shapes: Vec<Vec<usize>> = all.iter().map(Value::shape).collect::<Option<_>>()?;
                let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
                ks::expect_inputs(what, r(1)?, &refs)
            }
            "expect_rebind" => ks::expect_rebind(what, r(1)?, &s(2)?, &s(3)?),
            "expect_layer_field" => ks::expect_layer_field(what, b(1)?),
            "expect_tensor_field" => ks::expect_tensor_field(what, b(1)?, b(2)?),
            "expect_matrix_field" => ks::expect_matrix_field(what, b(1)?),
            "expect_width" => ks::expect_width(what, i(1)?, i(2)?),
            "expect_dims" => ks::expect_dims(what, &s(1)?, &s(2)?),
            "expect_shape" => ks::expect_shape(what, i(1)?, &s(2)?),
            "expect_same" => ks::expect_same(what, i(1)?, i(2)?),
            "expect_same_dims" => ks::expect_same_dims(what, &s(1)?, &s(2)?),
            "expect_same_lead" => ks::expect_same_lead(what, &s(1)?, &s(2)?),
            "expect_broadcast" => ks::expect_broadcast(what, &s(1)?, &s(2)?),
            "expect_matmul" => {
                let (a, bb) = (s(1)?, s(2)?);
                // The function indexes from the end: a rank the lowering refused never gets here.
                if a.len() < 2 || bb.len() < 2 {
                    return None;
                }
                ks::expect_matmul(what, &a, &bb, b(3)?, b(4)?)
            }
            "expect_slice" => ks::expect_slice(what, i(1)?, i(2)?),
            "expect_same_except" => ks::expect_same_except(what, &s(1)?, &s(2)?, i(3)?),
            "expect_same_size" => ks::expect_same_size(what, &s(1)?, &s(2)?),
            "expect_one_per_sample" => ks::expect_one_per_sample(what, &s(1)?),
            "expect_extent_one" => ks::expect_extent_one(what, i(1)?),
            _ => return None,
        };
        Some(msg.map(|m| m.text().to_string()))
    }

    /// A shape's dimensions, when each is known here.
    pub fn dims(&self, dims: &[TokenStream]) -> Option<Vec<usize>> {
        dims.iter().map(|d| self.eval(&syn::parse2(d.clone()).ok()?, 0)?.int()).collect()
    }

    /// A constant expression's value, when it is known here.
    fn eval(&self, e: &Expr, depth: usize) -> Option<Value> {
        // The model's shape constants refer to earlier ones: bounded by the body's length.
        if depth > 256 {
            return None;
        }
        let ev = |e: &Expr| self.eval(e, depth + 1);
        match e {
            Expr::Lit(_) => literal(e),
            Expr::Paren(p) => ev(&p.expr),
            Expr::Group(g) => ev(&g.expr),
            Expr::Reference(r) => ev(&r.expr),
            Expr::Array(a) => a.elems.iter().map(ev).collect::<Option<_>>().map(Value::List),
            Expr::Binary(b) => {
                let (l, r) = (ev(&b.left)?.int()?, ev(&b.right)?.int()?);
                let v = match b.op {
                    syn::BinOp::Add(_) => l.checked_add(r)?,
                    syn::BinOp::Sub(_) => l.checked_sub(r)?,
                    syn::BinOp::Mul(_) => l.checked_mul(r)?,
                    syn::BinOp::Div(_) => l.checked_div(r)?,
                    syn::BinOp::Rem(_) => l.checked_rem(r)?,
                    _ => return None,
                };
                Some(Value::Int(v))
            }
            Expr::Index(ix) => match ev(&ix.expr)? {
                Value::List(v) => v.get(ev(&ix.index)?.int()?).cloned(),
                _ => None,
            },
            Expr::Path(p) => {
                let last = p.path.segments.last()?.ident.to_string();
                match &p.qself {
                    // `<Alias as Shaped>::TENSOR`
                    Some(q) if q.position > 0 => {
                        let f = self.fields.get(&q.ty.to_token_stream().to_string())?;
                        match last.as_str() {
                            "TENSOR" => Some(Value::Bool(f.tensor)),
                            "MATRIX" => Some(Value::Bool(f.matrix)),
                            "OUT" => Some(Value::Int(f.rule.output)),
                            "IN" => Some(Value::Int(f.rule.input)),
                            _ => None,
                        }
                    }
                    // `<Model>::__KILN_SHAPE_3`
                    _ => {
                        let dims = self.shapes.get(&last)?;
                        let dims: Vec<Expr> =
                            dims.iter().map(|d| syn::parse2(d.clone()).ok()).collect::<Option<_>>()?;
                        dims.iter().map(ev).collect::<Option<_>>().map(Value::List)
                    }
                }
            }
            Expr::Call(c) => {
                let name = callee(&c.func)?;
                let args = || c.args.iter().map(ev).collect::<Option<Vec<Value>>>();
                match name.as_str() {
                    "field_rule" => {
                        let Expr::Path(p) = &*c.func else { return None };
                        let PathArguments::AngleBracketed(g) = &p.path.segments.last()?.arguments else { return None };
                        let Some(GenericArgument::Type(t)) = g.args.first() else { return None };
                        self.fields.get(&t.to_token_stream().to_string()).map(|f| Value::Rule(f.rule))
                    }
                    "field_dim" => {
                        let a = args()?;
                        Some(Value::Int(ks::field_dim(a.first()?.rule()?, &a.get(1)?.shape()?, a.get(2)?.int()?)))
                    }
                    "broadcast_dim" => {
                        let a = args()?;
                        Some(Value::Int(ks::broadcast_dim(a.first()?.int()?, a.get(1)?.int()?)))
                    }
                    "min_usize" => {
                        let a = args()?;
                        Some(Value::Int(ks::min_usize(a.first()?.int()?, a.get(1)?.int()?)))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The name of the function a call expression calls.
fn callee(func: &Expr) -> Option<String> {
    match func {
        Expr::Path(p) => Some(p.path.segments.last()?.ident.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use kiln_runtime::layers::*;

    use super::field_type;

    /// The macro's rule of a type written as `ty` against the runtime's `Shaped` impl of `T`.
    fn agrees<T: Shaped>(ty: &str) {
        let f = field_type(&syn::parse_str(ty).expect("a type")).unwrap_or_else(|| panic!("{ty} is known"));
        assert_eq!(f.rule, field_rule::<T>(), "{ty}");
        assert_eq!((f.tensor, f.matrix, f.ids), (T::TENSOR, T::MATRIX, T::IDS.is_some()), "{ty}");
    }

    #[test]
    fn the_field_types_the_macro_knows_have_the_runtimes_rules() {
        agrees::<Dense<10, 64, Relu>>("Dense<10, 64, Relu>");
        agrees::<Dense<3, 5>>("kiln::Dense<3, 5>");
        agrees::<Activation<Tanh, 7>>("Activation<Tanh, 7>");
        agrees::<Embed<100, 8>>("Embed<100, 8>");
        agrees::<LayerNormalization<6>>("LayerNormalization<6>");
        agrees::<BatchNormalization<4>>("BatchNormalization<4>");
        agrees::<LstmSeq<3, 5>>("LstmSeq<3, 5>");
        agrees::<GruSeq<3, 5>>("GruSeq<3, 5>");
        agrees::<SimpleRnnSeq<2, 9>>("kiln::SimpleRnnSeq<2, 9>");
        agrees::<BiLstmSeq<3, 5>>("BiLstmSeq<3, 5>");
        agrees::<BiGruSeq<4, 2>>("BiGruSeq<4, 2>");
        agrees::<SelfAttention<8, 2, 4>>("SelfAttention<8, 2, 4>");
        agrees::<SelfAttention<8, 2, 4, true>>("SelfAttention<8, 2, 4, true>");
        agrees::<CrossAttention<6, 8, 2, 3>>("CrossAttention<6, 8, 2, 3>");
        agrees::<Conv2D<1, 4, 3>>("Conv2D<1, 4, 3>");
        agrees::<Conv2D<3, 8, 5, Relu, Same, 2>>("kiln::Conv2D<3, 8, 5, Relu, Same, 2>");
        agrees::<Conv1D<2, 6, 3, Linear, Valid>>("Conv1D<2, 6, 3, Linear, Valid>");
        agrees::<MaxPooling2D<2>>("MaxPooling2D<2>");
        agrees::<AveragePooling1D<3, Same>>("AveragePooling1D<3, Same>");
        agrees::<MaxPooling1D<2>>("MaxPooling1D<2>");
        agrees::<AveragePooling2D<2, Valid>>("AveragePooling2D<2, Valid>");
        agrees::<Weight<4>>("Weight<4>");
        agrees::<Weight<4, Ones>>("Weight<4, Ones>");
        agrees::<Matrix<4, 6>>("Matrix<4, 6>");
    }

    #[test]
    fn types_the_macro_cannot_read_are_left_to_rustc() {
        for ty in ["Dense<N, 4>", "Features", "Scale<16>", "Dense<{ 2 * 3 }, 4>", "Conv2D<1, 4, 3, Relu, Padded>"] {
            assert!(field_type(&syn::parse_str(ty).expect("a type")).is_none(), "{ty}");
        }
    }
}
