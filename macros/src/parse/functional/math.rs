//! Math on values in `functional!` (Keras applies `keras.ops` to symbolic tensors the same way):
//! `z = z_mean + exp(0.5 * z_log_var) * eps;`, `d = sqrt(sum(square(a - b), axis = 1, keepdims =
//! true));`. Each operator or function becomes a node of the op it is in a `call` body (the same
//! specs, so the same forward, backward and shape rules); shapes are checked when the graph's
//! shapes are inferred, with the sentence the op gives there.

use std::rc::Rc;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::spanned::Spanned;

use super::syntax::parse_expr;
use super::{Binding, Lowering};
use crate::ir::{LayerDef, Op};
use crate::layers::{
    Act, Activation, Num, REDUCE, Scalar, Spec, broadcast, draw, named_constant, number, reduce, scalar, softmax_axis,
    unary,
};

const USAGE: &str = "math on values: `+ - * /` (broadcast) and with numbers, `-x`, `exp log sqrt square abs`, \
`pow(x, 2.0)`, `clip(x, lo, hi)`, `maximum(x, 0.0)`, `minimum(x, c)`, `stop_gradient(x)`, \
`sum mean max min logsumexp` along an axis (`sum(x, axis = -1, keepdims = true)`), \
`softmax(x, axis = 1)`, `log_softmax(x)`, `random_normal(x)`, `matmul(a, b)`, `slice(x, axis = 1, start = 0, end = 2)`, \
`reshape(x, [4, -1])`, `transpose(x, [0, 2, 1])`, `expand_dims(x, axis = 1)`, `squeeze(x, axis = 1)`, \
`concatenate([a, b], axis = -1)`, `stack([a, b], axis = 1)`, `tile(x, [1, 2])`, `repeat(x, 2, axis = 1)`, \
`one_hot(ids, 10)`, `gather(x, ids)`, activations such as `relu(x)`, and layer applications (`Dense(4)(h) * 2.0`)";

/// A number or a named constant written in the code (`0.5`, `TEMPERATURE`), read as `f32`.
fn num(e: &syn::Expr) -> Option<Num> {
    let none = syn::Ident::new("Self", proc_macro2::Span::call_site());
    number(e).map(Num::Lit).or_else(|| named_constant(e, &none).map(Num::Named))
}

impl Lowering<'_> {
    /// A node applying op `kind` to `inputs`, named as Keras names layers (`add`, `exp_1`).
    pub(super) fn op(
        &mut self,
        kind: Rc<dyn Spec>,
        inputs: Vec<usize>,
        tokens: TokenStream,
        at: Span,
    ) -> Option<usize> {
        let name = self.namer.name(&kind.auto_name(), None, at, &mut self.errors)?;
        // An element-wise function of a temporary element-wise result (`exp(0.5 * x)`): one
        // layer, named after the outer function. A temporary is read once, here; a value bound
        // to a name may be read again.
        if let [x] = inputs[..]
            && let Op::Apply(l) = self.nodes[x].op
            && !self.env.values().any(|b| matches!(b, Binding::Value(v) if *v == x))
            && !self.nodes.iter().any(|n| n.inputs.contains(&x))
            && let Some(chain) = crate::layers::fused(&*self.layers[l].kind, &*kind)
        {
            self.layers[l] = LayerDef { name, kind: chain, tokens: tokens.clone(), apps: vec![x], place: None };
            self.nodes[x].tokens = tokens;
            return Some(x);
        }
        self.layers.push(LayerDef { name, kind, tokens: tokens.clone(), apps: vec![], place: None });
        let layer = self.layers.len() - 1;
        Some(self.push_node(layer, inputs, tokens))
    }

    /// The node computing math expression `e` of statement `at`.
    pub(super) fn math(&mut self, e: &syn::Expr, at: usize) -> Option<usize> {
        let tokens = e.to_token_stream();
        let span = e.span();
        match e {
            syn::Expr::Paren(p) => self.math(&p.expr, at),
            syn::Expr::Group(g) => self.math(&g.expr, at),
            syn::Expr::Binary(b) => self.binary(b, tokens, at),
            syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
                let x = self.math(&u.expr, at)?;
                self.op(unary("negative").expect("listed"), vec![x], tokens, span)
            }
            syn::Expr::Lit(_) => {
                self.errors.at(span, "a number alone is not a value: use it with one, as in `x * 0.5`");
                None
            }
            syn::Expr::Call(c) => match &*c.func {
                syn::Expr::Path(p)
                    if p.path.get_ident().is_some_and(|i| !i.to_string().starts_with(char::is_uppercase)) =>
                {
                    let name = p.path.get_ident().expect("checked").to_string();
                    self.function(&name, c, tokens, at)
                }
                // A layer application inside math: `Dense(4)(h)`, `shared(a)`.
                _ => self.layer_value(tokens, at),
            },
            syn::Expr::Path(_) => self.layer_value(tokens, at),
            other => {
                self.errors.at(other.span(), format!("cannot differentiate this: {USAGE}"));
                None
            }
        }
    }

    /// An expression of the layer grammar (a name, a layer applied) inside math.
    fn layer_value(&mut self, tokens: TokenStream, at: usize) -> Option<usize> {
        match parse_expr.parse2(tokens) {
            Ok(e) => self.value(&e, at),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn binary(&mut self, b: &syn::ExprBinary, tokens: TokenStream, at: usize) -> Option<usize> {
        let span = b.op.span();
        let class = match b.op {
            syn::BinOp::Add(_) => "Add",
            syn::BinOp::Sub(_) => "Subtract",
            syn::BinOp::Mul(_) => "Multiply",
            syn::BinOp::Div(_) => "Divide",
            _ => {
                self.errors.at(span, format!("unsupported operator: {USAGE}"));
                return None;
            }
        };
        let (l, r) = (num(&b.left), num(&b.right));
        let (c, tensor, left) = match (l, r) {
            (Some(_), Some(_)) => {
                self.errors.at(b.span(), "both sides are numbers: one side of an op must be a value");
                return None;
            }
            (Some(c), None) => (c, &*b.right, true),
            (None, Some(c)) => (c, &*b.left, false),
            (None, None) => {
                let (x, y) = (self.math(&b.left, at)?, self.math(&b.right, at)?);
                return self.op(broadcast(class), vec![x, y], tokens, span);
            }
        };
        let op = match (class, left) {
            ("Multiply", _) => Scalar::Scale(c),
            ("Add", _) => Scalar::Shift(c),
            ("Subtract", false) => Scalar::Shift(c.neg()),
            ("Subtract", true) => Scalar::SubtractFrom(c),
            ("Divide", false) if c.literal() == Some(0.0) => {
                self.errors.at(b.right.span(), "division by zero");
                return None;
            }
            ("Divide", false) => Scalar::DivideBy(c),
            _ => Scalar::Reciprocal(c),
        };
        let x = self.math(tensor, at)?;
        self.op(scalar(op), vec![x], tokens, span)
    }

    /// `name = value` arguments after the first, by keyword.
    fn keyword<'e>(&mut self, c: &'e syn::ExprCall, key: &str, usage: &str) -> Option<Option<&'e syn::Expr>> {
        for arg in c.args.iter().skip(1) {
            match arg {
                syn::Expr::Assign(a) if matches!(&*a.left, syn::Expr::Path(p) if p.path.is_ident(key)) => {
                    return Some(Some(&a.right));
                }
                syn::Expr::Assign(a) if matches!(&*a.left, syn::Expr::Path(p) if p.path.is_ident("axis") || p.path.is_ident("keepdims")) =>
                    {}
                other => {
                    self.errors.at(other.span(), format!("unexpected argument: {usage}"));
                    return None;
                }
            }
        }
        Some(None)
    }

    /// `slice(x, axis = -1, start = 0, end = 2)`: positions `start..end` of an axis.
    fn slice(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "slice(x, axis = -1, start = 0, end = 2)";
        let mut got = [None, None, None];
        for arg in c.args.iter().skip(1) {
            let (key, value) = match arg {
                syn::Expr::Assign(a) => (a.left.to_token_stream().to_string(), &*a.right),
                other => {
                    self.errors.at(other.span(), format!("slice's arguments are named: {usage}"));
                    return None;
                }
            };
            let slot = match key.as_str() {
                "axis" => 0,
                "start" => 1,
                "end" => 2,
                _ => {
                    self.errors.at(arg.span(), format!("unexpected argument: {usage}"));
                    return None;
                }
            };
            got[slot] = Some(self.integer(value, &key)?);
        }
        let [Some(axis), Some(start), Some(end)] = got else {
            self.errors.at(c.span(), format!("slice needs an axis, a start and an end: {usage}"));
            return None;
        };
        if axis == 0 || start < 0 || end <= start {
            self.errors.at(
                c.span(),
                format!("slice takes a sample's axis and 0 <= start < end, got axis {axis}, {start}..{end}"),
            );
            return None;
        }
        let x = self.math(c.args.first()?, at)?;
        self.op(crate::layers::slice(axis, start as usize, end as usize), vec![x], tokens, c.span())
    }

    /// `matmul(a, b, transpose_b = true)` over the last two axes.
    fn matmul(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "matmul(a, b, transpose_a = false, transpose_b = true)";
        let (mut ta, mut tb) = (false, false);
        for arg in c.args.iter().skip(2) {
            match arg {
                syn::Expr::Assign(a) => {
                    let key = a.left.to_token_stream().to_string();
                    let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(v), .. }) = &*a.right else {
                        self.errors.at(a.right.span(), format!("{key} is `true` or `false`"));
                        return None;
                    };
                    match key.as_str() {
                        "transpose_a" => ta = v.value,
                        "transpose_b" => tb = v.value,
                        _ => {
                            self.errors.at(arg.span(), format!("unexpected argument: {usage}"));
                            return None;
                        }
                    }
                }
                other => {
                    self.errors.at(other.span(), format!("unexpected argument: {usage}"));
                    return None;
                }
            }
        }
        let (Some(a), Some(b)) = (c.args.first(), c.args.iter().nth(1)) else {
            self.errors.at(c.span(), format!("matmul takes two values: {usage}"));
            return None;
        };
        let (a, b) = (self.math(a, at)?, self.math(b, at)?);
        self.op(crate::layers::matmul(ta, tb), vec![a, b], tokens, c.span())
    }

    pub(super) fn integer(&mut self, e: &syn::Expr, what: &str) -> Option<i64> {
        let v = number(e).filter(|v| v.fract() == 0.0).map(|v| v as i64);
        if v.is_none() {
            self.errors.at(e.span(), format!("{what} must be an integer written in the code"));
        }
        v
    }

    fn function(&mut self, name: &str, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let span = c.span();
        let first = |me: &mut Self| match c.args.first() {
            Some(x) => me.math(x, at),
            None => {
                me.errors.at(span, format!("{name} takes a value first: {name}(x)"));
                None
            }
        };
        if let Some(kind) = unary(name).or_else(|| draw(name)) {
            if c.args.len() != 1 {
                self.errors.at(span, format!("{name} takes one value: {name}(x)"));
                return None;
            }
            let x = first(self)?;
            return self.op(kind, vec![x], tokens, span);
        }
        if REDUCE.iter().any(|(n, _, _)| *n == name) || (name == "softmax" && c.args.len() > 1) || name == "log_softmax"
        {
            let usage =
                format!("{name}(x, axis = -1{})", if name.contains("softmax") { "" } else { ", keepdims = false" });
            let axis = match self.keyword(c, "axis", &usage)? {
                Some(e) => self.integer(e, "the axis")?,
                None if name.contains("softmax") => -1,
                None => {
                    self.errors.at(span, format!("{name} needs the axis to reduce: {usage}"));
                    return None;
                }
            };
            let keepdims = match self.keyword(c, "keepdims", &usage)? {
                Some(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. })) => b.value,
                Some(other) => {
                    self.errors.at(other.span(), "keepdims is `true` or `false`");
                    return None;
                }
                None => false,
            };
            if axis == 0 {
                self.errors
                    .at(span, format!("{name} over axis 0, the batch: a sample's axes are 1, 2, .. (or -1, ..)"));
                return None;
            }
            let x = first(self)?;
            let kind = match name {
                "softmax" | "log_softmax" => softmax_axis(name == "log_softmax", axis),
                _ => reduce(name, axis, keepdims).expect("listed"),
            };
            return self.op(kind, vec![x], tokens, span);
        }
        if let Some(act) = Act::named(name) {
            if c.args.len() != 1 {
                self.errors.at(span, format!("{name} takes one value: {name}(x)"));
                return None;
            }
            let x = first(self)?;
            return self.op(Rc::new(Activation::new(act)), vec![x], tokens, span);
        }
        if name == "slice" {
            return self.slice(c, tokens, at);
        }
        if name == "matmul" {
            return self.matmul(c, tokens, at);
        }
        if let Some(node) = self.shape_function(name, c, tokens.clone(), at) {
            return node;
        }
        let constant = |me: &mut Self, e: &syn::Expr, what: &str| {
            let v = num(e);
            if v.is_none() {
                me.errors.at(e.span(), format!("{what} must be a number or a constant written in the code, e.g. 0.5"));
            }
            v
        };
        let op = match (name, c.args.len()) {
            ("pow" | "power", 2) => Scalar::Power(constant(self, &c.args[1], "the exponent")?),
            ("clip", 3) => {
                let lo = constant(self, &c.args[1], "clip's lower bound")?;
                let hi = constant(self, &c.args[2], "clip's upper bound")?;
                if let (Some(lo), Some(hi)) = (lo.literal(), hi.literal())
                    && lo > hi
                {
                    self.errors.at(span, format!("clip's bounds are the wrong way round: {lo} > {hi}"));
                    return None;
                }
                Scalar::Clip(lo, hi)
            }
            ("maximum" | "minimum", 2) => {
                let k = constant(self, &c.args[1], &format!("{name}'s constant"))?;
                if name == "maximum" { Scalar::Maximum(k) } else { Scalar::Minimum(k) }
            }
            _ => {
                self.errors.at(span, format!("`{name}` with these arguments is not {USAGE}"));
                return None;
            }
        };
        let x = first(self)?;
        self.op(scalar(op), vec![x], tokens, span)
    }
}
