//! User math in `call`: numbers written in the code, element-wise ops of a tensor and
//! constants (`x * 0.5`, `clip(x, lo, hi)`), and reductions along an axis with Keras' axis
//! numbering (`sum(x, axis = 1, keepdims = true)`).

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Expr;
use syn::spanned::Spanned;

use super::{Lower, SUPPORTED};
use crate::layers::{
    Num, REDUCE, Scalar, Spec, broadcast, draw, named_constant, number, reduce, reduced, scalar, unary,
};

impl Lower {
    /// A constant of an op: a number written in the code or a named constant, unless the name is
    /// a tensor bound in `call`.
    pub(super) fn num(&self, e: &Expr) -> Option<Num> {
        if let Some(v) = number(e) {
            return Some(Num::Lit(v));
        }
        let bound =
            matches!(e, Expr::Path(p) if p.path.get_ident().is_some_and(|i| self.env.contains_key(&i.to_string())));
        if bound { None } else { named_constant(e, &self.name).map(Num::Named) }
    }

    /// `exp(x)` and the other element-wise functions, `pow`, `clip` and the reductions: `Some`
    /// of the node (or of `None` after an error) when `fname` is one of them.
    pub(super) fn math_function(
        &mut self,
        fname: &str,
        c: &syn::ExprCall,
        tokens: TokenStream,
    ) -> Option<Option<usize>> {
        let span = c.span();
        if let Some(kind) = unary(fname).or_else(|| draw(fname)) {
            if c.args.len() != 1 {
                self.errors.at(span, format!("{fname} takes one tensor: {fname}(x)"));
                return Some(None);
            }
            let Some(x) = self.value(&c.args[0]) else { return Some(None) };
            return Some(self.elementwise_op(kind, x, tokens));
        }
        if REDUCE.iter().any(|(n, _, _)| *n == fname) {
            return Some(self.reduction(fname, c, tokens));
        }
        match fname {
            "maximum" | "minimum" if c.args.len() == 2 => Some(self.extreme(fname, c, tokens)),
            "pow" | "power" if c.args.len() == 2 => Some(self.power(fname, c, tokens)),
            "clip" if c.args.len() == 3 => Some(self.clip(c, tokens)),
            _ => None,
        }
    }

    /// `maximum(x, c)` / `minimum(x, c)` with a number (either side), or of two tensors
    /// (broadcast).
    fn extreme(&mut self, fname: &str, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let (a, b) = (&c.args[0], &c.args[1]);
        let max = fname == "maximum";
        match (self.num(a), self.num(b)) {
            (Some(_), Some(_)) => {
                self.errors.at(c.span(), format!("{fname} of two numbers: one side must be a tensor"));
                None
            }
            (None, Some(k)) | (Some(k), None) => {
                let x = self.value(if self.num(a).is_some() { b } else { a })?;
                self.elementwise_op(scalar(if max { Scalar::Maximum(k) } else { Scalar::Minimum(k) }), x, tokens)
            }
            (None, None) => {
                let (x, y) = (self.value(a)?, self.value(b)?);
                let kind = crate::layers::elementwise(if max { "Maximum" } else { "Minimum" });
                self.merge(kind, fname, vec![x, y], tokens, c.span())
            }
        }
    }

    /// `pow(x, c)`.
    fn power(&mut self, fname: &str, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let x = self.value(&c.args[0])?;
        let p = self.constant(&c.args[1], &format!("{fname}'s exponent"))?;
        self.elementwise_op(scalar(Scalar::Power(p)), x, tokens)
    }

    /// `clip(x, lo, hi)`.
    fn clip(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let x = self.value(&c.args[0])?;
        let lo = self.constant(&c.args[1], "clip's lower bound")?;
        let hi = self.constant(&c.args[2], "clip's upper bound")?;
        if let (Some(lo), Some(hi)) = (lo.literal(), hi.literal())
            && lo > hi
        {
            self.errors.at(c.span(), format!("clip's bounds are the wrong way round: {lo} > {hi}"));
            return None;
        }
        self.elementwise_op(scalar(Scalar::Clip(lo, hi)), x, tokens)
    }

    /// `a op b` between two tensors, broadcast: the ranks are aligned here, each axis's extent
    /// is a constant rustc computes, and a compile-time check at the operator names both shapes
    /// when they do not broadcast.
    pub(super) fn broadcast(
        &mut self,
        class: &'static str,
        what: &str,
        a: usize,
        b: usize,
        tokens: TokenStream,
        span: proc_macro2::Span,
    ) -> Option<usize> {
        let rank = self.shapes[a].len().max(self.shapes[b].len());
        let pad = |s: &[TokenStream]| -> Vec<TokenStream> {
            std::iter::repeat_n(quote!(1usize), rank - s.len()).chain(s.iter().cloned()).collect()
        };
        let (pa, pb) = (pad(&self.shapes[a]), pad(&self.shapes[b]));
        let shape = pa.iter().zip(&pb).map(|(x, y)| quote!(::kiln::__private::broadcast_dim(#x, #y))).collect();
        let (sa, sb) = (self.slice(a), self.slice(b));
        self.check(span, "expect_broadcast", what, sa, sb);
        let layer = self.op_layer(broadcast(class), tokens.clone());
        Some(self.node(layer, vec![a, b], tokens, shape))
    }

    /// `self.gamma`: a [`Weight`] field read as a tensor of shape `[D]`, the same for every
    /// sample. Its node reads the first input only to know how many samples there are.
    pub(super) fn weight_read(&mut self, fe: &syn::ExprField, tokens: TokenStream) -> Option<usize> {
        let syn::Member::Named(m) = &fe.member else {
            self.errors.at(fe.span(), "weights and layers are named fields: self.gamma");
            return None;
        };
        let Some(&(_, input)) = self.model.inputs.first() else {
            self.errors.at(fe.span(), "a weight is read in a `call` that takes an input");
            return None;
        };
        let key = m.to_string();
        let alias = self.alias(&key);
        let what = format!("`self.{key}`");
        let span = fe.span();
        self.checks.push((
            span,
            quote::quote_spanned!(span=> ::kiln::__private::expect_tensor_field(
                #what,
                <#alias as ::kiln::__private::Shaped>::TENSOR,
                <#alias as ::kiln::__private::Shaped>::MATRIX,
            )),
        ));
        let layer = self.field_layer(key, quote!(self.#m), m.clone(), tokens.clone());
        let shape = vec![quote!(<#alias as ::kiln::__private::Shaped>::OUT)];
        Some(self.node(layer, vec![input], tokens, shape))
    }

    /// A node applying an element-wise op (any shape, kept) to `x`.
    pub(super) fn elementwise_op(&mut self, kind: Rc<dyn Spec>, x: usize, tokens: TokenStream) -> Option<usize> {
        // An element-wise function of a temporary element-wise result (`exp(0.5 * x)`): one
        // layer. A temporary is read once, here; a value bound to a name may be read again.
        let temporary = !self.env.values().any(|&v| v == x) && !self.model.nodes.iter().any(|n| n.inputs.contains(&x));
        if temporary
            && let crate::ir::Op::Apply(l) = self.model.nodes[x].op
            && let Some(chain) = crate::layers::fused(&*self.model.layers[l].kind, &*kind)
        {
            self.model.layers[l].kind = chain;
            self.model.layers[l].tokens = tokens.clone();
            self.model.nodes[x].tokens = tokens;
            return Some(x);
        }
        let shape = self.shapes[x].clone();
        let layer = self.op_layer(kind, tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }

    /// A number written in `call` (`0.5`, `-2`, `(1e-3)`) or a named constant (`EPS`), as an
    /// op's constant; an error naming `what` when it is neither.
    pub(super) fn constant(&mut self, e: &Expr, what: &str) -> Option<Num> {
        let n = self.num(e);
        if n.is_none() {
            self.errors
                .at(e.span(), format!("{what} must be a number or a constant written in the code, e.g. 0.5 or EPS"));
        }
        n
    }

    /// `x op c` or `c op x` with a number `c`: `Some(node)` (or `Some(None)` after an error), or
    /// `None` when neither side is a number.
    pub(super) fn with_number(&mut self, b: &syn::ExprBinary, tokens: TokenStream) -> Option<Option<usize>> {
        let (l, r) = (self.num(&b.left), self.num(&b.right));
        let (c, tensor, left) = match (l, r) {
            (Some(_), Some(_)) => {
                self.errors.at(b.span(), "both sides are numbers: one side of an op in `call` must be a tensor");
                return Some(None);
            }
            (Some(c), None) => (c, &*b.right, true),
            (None, Some(c)) => (c, &*b.left, false),
            (None, None) => return None,
        };
        let op = match (b.op, left) {
            (syn::BinOp::Mul(_), _) => Scalar::Scale(c),
            (syn::BinOp::Add(_), _) => Scalar::Shift(c),
            (syn::BinOp::Sub(_), false) => Scalar::Shift(c.neg()),
            (syn::BinOp::Sub(_), true) => Scalar::SubtractFrom(c),
            (syn::BinOp::Div(_), false) if c.literal() == Some(0.0) => {
                self.errors.at(b.right.span(), "division by zero");
                return Some(None);
            }
            (syn::BinOp::Div(_), false) => Scalar::DivideBy(c),
            (syn::BinOp::Div(_), true) => Scalar::Reciprocal(c),
            _ => {
                self.errors.at(b.op.span(), format!("unsupported operator: {SUPPORTED}"));
                return Some(None);
            }
        };
        let Some(x) = self.value(tensor) else { return Some(None) };
        Some(self.elementwise_op(scalar(op), x, tokens))
    }

    /// `sum(x, axis = a, keepdims = k)` and the other reductions (axis and keepdims also
    /// positional: `sum(x, 1, true)`); Keras' axes: 0 is the batch, negative ones count from the
    /// end.
    pub(super) fn reduction(&mut self, name: &str, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = format!("{name}(x, axis = -1, keepdims = false)");
        let args = self.keywords(c, 1, &["axis", "keepdims"], &usage)?;
        let Some(axis) = args.get("axis") else {
            self.errors.at(c.span(), format!("{name} needs the axis to reduce: {usage}"));
            return None;
        };
        let axis = self.integer(axis, &format!("{name}'s axis"))?;
        let keepdims = match args.get("keepdims") {
            Some(e) => self.boolean(e, "keepdims")?,
            None => false,
        };
        let x = self.value(c.args.first()?)?;
        let axis = self.sample_axis(name, axis, self.shapes[x].len(), c.span())?;
        let shape = reduced(&self.shapes[x], axis, keepdims, quote!(1usize));
        let layer = self.op_layer(reduce(name, axis as i64 + 1, keepdims).expect("listed"), tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }
}
