//! User math in a `#[kiln::call]` body: element-wise functions (`exp(x)`, `x * 0.5`, `clip(x, lo,
//! hi)`, ...) and reductions along one axis (`sum(x, axis = 1, keepdims = true)`, ...). Each is a
//! layer kind with a shape rule, whose runtime layer (`runtime/src/layers/math.rs`) holds the
//! value and the derivative, so the backward of a `call` using them is generated like any other.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Dim, Spec, rt};

/// An element-wise function: its Keras op class (`Exp`, `TrueDivide`) and the runtime op
/// (`Exp`, `DivideBy(4.0)`).
struct Unary {
    class: &'static str,
    /// The runtime `UnaryOp`s applied one after the other (`Exp`, `Scale(0.5)`): one, or a chain
    /// fused by [`fused`].
    ops: Vec<TokenStream>,
    /// Its constant is named in the user's code (`TEMPERATURE`), so the model is generated there.
    named: bool,
}

/// The most functions fused into one layer (the runtime's `MAX_CHAIN`).
const MAX_CHAIN: usize = 8;

/// `outer` applied to what `inner` computes, as one layer, where both are element-wise
/// functions of one tensor and the chain is not too long: `exp(0.5 * x)` is one pass over memory
/// and one buffer. Named after the outer function.
pub fn fused(inner: &dyn Spec, outer: &dyn Spec) -> Option<Rc<dyn Spec>> {
    let ((a, na), (b, nb)) = (inner.unary_ops()?, outer.unary_ops()?);
    if a.len() + b.len() > MAX_CHAIN {
        return None;
    }
    let ops = a.iter().chain(b).cloned().collect();
    Some(Rc::new(Unary { class: outer.class(), ops, named: na || nb }))
}

/// The element-wise functions, by the name a `call` body writes, with their Keras op classes.
pub const UNARY: &[(&str, &str, &str)] = &[
    ("exp", "Exp", "Exp"),
    ("log", "Log", "Log"),
    ("sqrt", "Sqrt", "Sqrt"),
    ("square", "Square", "Square"),
    ("abs", "Absolute", "Abs"),
    ("negative", "Negative", "Negative"),
    ("stop_gradient", "StopGradient", "StopGradient"),
];

/// `name(x)` for a name of [`UNARY`].
pub fn unary(name: &str) -> Option<Rc<dyn Spec>> {
    let &(_, class, op) = UNARY.iter().find(|(n, _, _)| *n == name)?;
    let op = quote::format_ident!("{op}");
    Some(Rc::new(Unary { class, ops: vec![quote!(#op)], named: false }))
}

/// A scalar operand with a tensor: `x * c`, `c - x`, `x / c`, `pow(x, c)`, `clip(x, lo, hi)`.
pub enum Scalar {
    Scale(Num),
    Shift(Num),
    SubtractFrom(Num),
    DivideBy(Num),
    Reciprocal(Num),
    Power(Num),
    Clip(Num, Num),
    Maximum(Num),
    Minimum(Num),
}

/// A number written in the code: a literal, negated or in parentheses.
pub fn number(e: &syn::Expr) -> Option<f32> {
    match e {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f32>().ok(),
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<f32>().ok(),
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => number(&u.expr).map(|v| -v),
        syn::Expr::Paren(p) => number(&p.expr),
        syn::Expr::Group(g) => number(&g.expr),
        _ => None,
    }
}

/// A constant named in the code: a path whose last segment is written as constants are
/// (`TEMPERATURE`, `Self::EPS`, with `Self` the model `model`: ops are built outside its impl,
/// where `Self` is another type), or one negated or in parentheses.
pub fn named_constant(e: &syn::Expr, model: &syn::Ident) -> Option<TokenStream> {
    match e {
        syn::Expr::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?.ident.to_string();
            let constant = last.chars().any(|c| c.is_ascii_uppercase())
                && last.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let mut path = p.path.clone();
            if let Some(first) = path.segments.first_mut()
                && first.ident == "Self"
            {
                first.ident = model.clone();
            }
            constant.then(|| quote!(#path))
        }
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
            named_constant(&u.expr, model).map(|t| quote!(-(#t)))
        }
        syn::Expr::Paren(p) => named_constant(&p.expr, model),
        syn::Expr::Group(g) => named_constant(&g.expr, model),
        _ => None,
    }
}

/// A constant of an op: a number written in the code, or a named constant (`TEMPERATURE`,
/// `Self::EPS`) whose value rustc knows, read as `f32`.
#[derive(Clone)]
pub enum Num {
    Lit(f32),
    Named(TokenStream),
}

impl Num {
    /// The constant as code, its sign apart (a literal token cannot be negative).
    pub fn tokens(&self) -> TokenStream {
        match self {
            Num::Lit(c) => {
                let a = c.abs();
                if c.is_sign_negative() { quote!(-#a) } else { quote!(#a) }
            }
            Num::Named(t) => quote!(((#t) as f32)),
        }
    }

    /// `-c`.
    pub fn neg(self) -> Num {
        match self {
            Num::Lit(c) => Num::Lit(-c),
            Num::Named(t) => Num::Named(quote!(-((#t) as f32))),
        }
    }

    /// The value, where it is written in the code.
    pub fn literal(&self) -> Option<f32> {
        match self {
            Num::Lit(c) => Some(*c),
            Num::Named(_) => None,
        }
    }
}

/// The element-wise function of a tensor and constants.
pub fn scalar(s: Scalar) -> Rc<dyn Spec> {
    let op = |name: &str, c: &Num| {
        let (name, c) = (quote::format_ident!("{name}"), c.tokens());
        quote!(#name(#c))
    };
    let named = matches!(
        &s,
        Scalar::Scale(Num::Named(_))
            | Scalar::Shift(Num::Named(_))
            | Scalar::SubtractFrom(Num::Named(_))
            | Scalar::DivideBy(Num::Named(_))
            | Scalar::Reciprocal(Num::Named(_))
            | Scalar::Power(Num::Named(_))
            | Scalar::Maximum(Num::Named(_))
            | Scalar::Minimum(Num::Named(_))
    ) || matches!(&s, Scalar::Clip(a, b) if matches!(a, Num::Named(_)) || matches!(b, Num::Named(_)));
    let (class, op) = match s {
        Scalar::Scale(c) => ("Multiply", op("Scale", &c)),
        Scalar::Shift(c) => (if c.literal().is_some_and(|c| c < 0.0) { "Subtract" } else { "Add" }, op("Shift", &c)),
        Scalar::SubtractFrom(c) => ("Subtract", op("SubtractFrom", &c)),
        Scalar::DivideBy(c) => ("TrueDivide", op("DivideBy", &c)),
        Scalar::Reciprocal(c) => ("TrueDivide", op("Reciprocal", &c)),
        Scalar::Power(c) => ("Power", op("Power", &c)),
        Scalar::Maximum(c) => ("Maximum", op("Maximum", &c)),
        Scalar::Minimum(c) => ("Minimum", op("Minimum", &c)),
        Scalar::Clip(lo, hi) => {
            let (lo, hi) = (lo.tokens(), hi.tokens());
            ("Clip", quote!(Clip(#lo, #hi)))
        }
    };
    Rc::new(Unary { class, ops: vec![op], named })
}

impl Spec for Unary {
    fn keeps_mask(&self) -> bool {
        true
    }
    fn user_scope(&self) -> bool {
        self.named
    }
    fn class(&self) -> &'static str {
        self.class
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Unary)
    }
    fn constructor(&self, _: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, ops) = (rt(), &self.ops);
        match &ops[..] {
            [op] => quote!(#rt::Unary::new(#rt::UnaryOp::#op)),
            ops => quote!(#rt::Unary::chain(&[#(#rt::UnaryOp::#ops),*])),
        }
    }
    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Unary { ops: self.ops.clone() })
    }
    fn unary_ops(&self) -> Option<(&[TokenStream], bool)> {
        Some((&self.ops, self.named))
    }
}

/// The reductions, by the name a `call` body writes, with their Keras op classes.
pub const REDUCE: &[(&str, &str, &str)] = &[
    ("sum", "Sum", "Sum"),
    ("mean", "Mean", "Mean"),
    ("max", "Max", "Max"),
    ("min", "Min", "Min"),
    ("logsumexp", "Logsumexp", "LogSumExp"),
];

/// A reduction along one axis of a sample.
struct Reduce {
    class: &'static str,
    op: &'static str,
    /// Keras' axis: 1.. within a sample (0 is the batch), negative from the end.
    axis: i64,
    keepdims: bool,
}

/// `name(x, axis, keepdims)` for a name of [`REDUCE`], with Keras' `axis` (resolved against the
/// input's rank when it is known).
pub fn reduce(name: &str, axis: i64, keepdims: bool) -> Option<Rc<dyn Spec>> {
    let &(_, class, op) = REDUCE.iter().find(|(n, _, _)| *n == name)?;
    Some(Rc::new(Reduce { class, op, axis, keepdims }))
}

/// Keras' axis `axis` of a sample of rank `rank` as a 0-based sample axis: `None` for the batch
/// or an axis the sample does not have.
pub fn sample_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { rank as i64 + 1 + axis } else { axis };
    (1..=rank as i64).contains(&a).then(|| (a - 1) as usize)
}

/// The error for an axis a sample of `shape` does not have.
pub fn missing_axis(what: &str, axis: i64, shape: &[usize]) -> String {
    let rank = shape.len();
    format!(
        "{what} over axis {axis} of a tensor of shape {shape:?}: a sample's axes are 1..={rank} (or -{rank}..=-1); \
         axis 0 is the batch"
    )
}

/// The shape after reducing `axis` of `shape` (`one`: the extent a kept axis gets).
pub fn reduced<T: Clone>(shape: &[T], axis: usize, keepdims: bool, one: T) -> Vec<T> {
    let mut out = shape.to_vec();
    if keepdims {
        out[axis] = one;
    } else {
        out.remove(axis);
    }
    out
}

impl Spec for Reduce {
    fn class(&self) -> &'static str {
        self.class
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let axis = sample_axis(self.axis, ins[0].len()).ok_or_else(|| missing_axis(self.class, self.axis, &ins[0]))?;
        Ok(reduced(&ins[0], axis, self.keepdims, 1))
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Reduce)
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let axis = sample_axis(self.axis, ins[0].len()).unwrap_or(0);
        let (rt, op) = (rt(), quote::format_ident!("{}", self.op));
        let dims = &ins[0];
        quote!(#rt::Reduce::new(#rt::ReduceOp::#op, &[#(#dims),*], #axis))
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (len, inner) = middle(&ins[0], self.axis)?;
        Some(crate::ir::Static::Reduce { op: self.op, len, inner })
    }
}

/// A sample of `shape` seen as `[outer, len, inner]` around Keras' axis `axis`: `len` and `inner`.
pub fn middle(shape: &[usize], axis: i64) -> Option<(usize, usize)> {
    let a = sample_axis(axis, shape.len())?;
    Some((shape[a], shape[a + 1..].iter().product()))
}

/// `a op b` between two tensors, broadcast (NumPy's rule): `Add`, `Subtract`, `Multiply`,
/// `Divide`.
struct Broadcast {
    class: &'static str,
}

/// The broadcasting operator of Keras' op class `class`.
pub fn broadcast(class: &'static str) -> Rc<dyn Spec> {
    Rc::new(Broadcast { class })
}

/// The shape `a` and `b` broadcast to, or `None` when an axis differs and neither extent is 1.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| if i < rank - s.len() { 1 } else { s[i - (rank - s.len())] };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

impl Spec for Broadcast {
    fn keeps_mask(&self) -> bool {
        true
    }
    fn class(&self) -> &'static str {
        self.class
    }
    fn arity(&self) -> super::Arity {
        super::Arity::Two
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        broadcast_shape(&ins[0], &ins[1]).ok_or_else(|| {
            format!("{} cannot broadcast {:?} and {:?}: aligned from the last axis, each pair of extents must be equal or one of them 1", self.class, ins[0], ins[1])
        })
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Broadcast)
    }
    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        // Shapes that are the same take the element-wise merge kernel.
        match ins {
            [a, b] if a == b => Some(crate::ir::Static::Merge { op: self.class }),
            [a, b] => Some(crate::ir::Static::Broadcast { op: self.class, a: a.clone(), b: b.clone() }),
            _ => None,
        }
    }
    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, op) = (rt(), quote::format_ident!("{}", self.class));
        let (a, b) = (&ins[0], &ins[1]);
        quote!(#rt::Broadcast::new(#rt::BinaryOp::#op, &[#(#a),*], &[#(#b),*]))
    }
}

/// `random_normal(x)` / `random_uniform(x)`: values drawn on every forward pass, shaped like `x`.
struct Draw {
    class: &'static str,
    dist: &'static str,
}

/// The draw of a `call` body's function name, if it is one.
pub fn draw(name: &str) -> Option<Rc<dyn Spec>> {
    let (class, dist) = match name {
        "random_normal" => ("RandomNormal", "Normal"),
        "random_uniform" => ("RandomUniform", "Uniform"),
        _ => return None,
    };
    Some(Rc::new(Draw { class, dist }))
}

impl Spec for Draw {
    fn class(&self) -> &'static str {
        self.class
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Draw)
    }
    fn constructor(&self, _: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, d) = (rt(), quote::format_ident!("{}", self.dist));
        quote!(#rt::Draw::new(#rt::Distribution::#d))
    }
}

/// `self.add_loss(term)`: a term of the loss computed in `call` (see the runtime's `AddLoss`).
struct AddLoss;

/// The spec of `self.add_loss(..)`.
pub fn add_loss() -> Rc<dyn Spec> {
    Rc::new(AddLoss)
}

impl Spec for AddLoss {
    fn class(&self) -> &'static str {
        "AddLoss"
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].clone())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::AddLoss)
    }
    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::AddLoss::new())
    }
}

/// `one_hot(ids, classes)`: token ids to rows of `classes` (see the runtime's `OneHot`).
struct OneHot {
    classes: usize,
}

/// The spec of `one_hot(ids, classes)`.
pub fn one_hot(classes: usize) -> Rc<dyn Spec> {
    Rc::new(OneHot { classes })
}

impl Spec for OneHot {
    fn class(&self) -> &'static str {
        "OneHot"
    }
    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        Ok(ins[0].iter().copied().chain([self.classes]).collect())
    }
    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::OneHot)
    }
    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, c) = (rt(), self.classes);
        quote!(#rt::OneHot::new(#c))
    }
    fn id_bound(&self) -> Option<usize> {
        Some(self.classes)
    }
    fn infer(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::OneHot { classes: self.classes })
    }
}
