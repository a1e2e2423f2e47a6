//! User math on a sample's axes in `call`: `softmax(x, axis = 1)`, `log_softmax(x)`,
//! `slice(x, axis = -1, start = 0, end = 2)`, `matmul(a, b, transpose_b = true)` and
//! `concatenate([a, b], axis = 1)`. Axes are numbered as Keras does: 0 is the batch, negative
//! ones count from the end.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::Lower;
use crate::layers::number;
use crate::layers::{call_view, concatenate, matmul, matmul_shape, permute_spec, slice, softmax_axis};

impl Lower {
    /// `Some` of the node (or of `None` after an error) when `fname` with these arguments is one
    /// of this file's functions.
    pub(super) fn axis_function(
        &mut self,
        fname: &str,
        c: &syn::ExprCall,
        tokens: TokenStream,
    ) -> Option<Option<usize>> {
        let n = c.args.len();
        match fname {
            "softmax" if n >= 2 => Some(self.softmax_call(false, c, tokens)),
            "log_softmax" => Some(self.softmax_call(true, c, tokens)),
            "slice" => Some(self.slice_call(c, tokens)),
            "matmul" => Some(self.matmul_call(c, tokens)),
            "concatenate" if n == 2 => Some(self.concatenate_call(c, tokens)),
            "reshape" => Some(self.reshape_call(c, tokens)),
            "transpose" => Some(self.transpose_call(c, tokens)),
            "expand_dims" | "squeeze" => Some(self.axis_view(fname, c, tokens)),
            _ => None,
        }
    }

    /// The arguments after the first `skip`, by keyword (`axis = 1`) or in the order of `names`.
    pub(super) fn keywords<'e>(
        &mut self,
        c: &'e syn::ExprCall,
        skip: usize,
        names: &[&'static str],
        usage: &str,
    ) -> Option<HashMap<&'static str, &'e Expr>> {
        let mut out = HashMap::new();
        for (i, arg) in c.args.iter().enumerate().skip(skip) {
            let (key, value) = match arg {
                Expr::Assign(a) => {
                    let key = match &*a.left {
                        Expr::Path(p) => names.iter().find(|n| p.path.is_ident(n)).copied(),
                        _ => None,
                    };
                    let Some(key) = key else {
                        self.errors.at(a.left.span(), format!("unknown argument: {usage}"));
                        return None;
                    };
                    (key, &*a.right)
                }
                other => match names.get(i - skip) {
                    Some(key) => (*key, other),
                    None => {
                        self.errors.at(other.span(), format!("too many arguments: {usage}"));
                        return None;
                    }
                },
            };
            out.insert(key, value);
        }
        Some(out)
    }

    /// An integer argument written in the code.
    pub(super) fn integer(&mut self, e: &Expr, what: &str) -> Option<i64> {
        let v = number(e).filter(|v| v.fract() == 0.0).map(|v| v as i64);
        if v.is_none() {
            self.errors.at(e.span(), format!("{what} must be an integer written in the code"));
        }
        v
    }

    /// A `true` / `false` argument.
    pub(super) fn boolean(&mut self, e: &Expr, what: &str) -> Option<bool> {
        match e {
            Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. }) => Some(b.value),
            other => {
                self.errors.at(other.span(), format!("{what} is `true` or `false`"));
                None
            }
        }
    }

    /// Keras' axis `axis` of a tensor whose samples have rank `rank`, as a 0-based sample axis.
    pub(super) fn sample_axis(&mut self, what: &str, axis: i64, rank: usize, span: Span) -> Option<usize> {
        let a = crate::layers::sample_axis(axis, rank);
        if a.is_none() {
            self.errors.at(
                span,
                format!(
                    "{what} over axis {axis} of a tensor of rank {rank}: a sample's axes are 1..={rank} \
                     (or -{rank}..=-1); axis 0 is the batch"
                ),
            );
            return None;
        }
        a
    }

    fn softmax_call(&mut self, log: bool, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let name = if log { "log_softmax" } else { "softmax" };
        let usage = format!("{name}(x, axis = -1)");
        let args = self.keywords(c, 1, &["axis"], &usage)?;
        let axis = match args.get("axis") {
            Some(e) => self.integer(e, "the axis")?,
            None => -1,
        };
        let x = self.value(c.args.first()?)?;
        let axis = self.sample_axis(name, axis, self.shapes[x].len(), c.span())?;
        self.elementwise_op(softmax_axis(log, axis as i64 + 1), x, tokens)
    }

    fn slice_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "slice(x, axis = -1, start = 0, end = 2)";
        let args = self.keywords(c, 1, &["axis", "start", "end"], usage)?;
        let (Some(a), Some(s), Some(e)) = (args.get("axis"), args.get("start"), args.get("end")) else {
            self.errors.at(c.span(), format!("slice needs an axis, a start and an end: {usage}"));
            return None;
        };
        let (axis, start, end) = (self.integer(a, "the axis")?, self.integer(s, "start")?, self.integer(e, "end")?);
        if start < 0 || end <= start {
            self.errors
                .at(c.span(), format!("slice takes positions start..end with 0 <= start < end, got {start}..{end}"));
            return None;
        }
        let x = self.value(c.args.first()?)?;
        let axis = self.sample_axis("slice", axis, self.shapes[x].len(), c.span())?;
        let (start, end) = (start as usize, end as usize);
        let len = self.shapes[x][axis].clone();
        let (span, what) = (c.span(), format!("slice {start}..{end}"));
        self.checks.push((span, quote::quote_spanned!(span=> ::kiln::__private::expect_slice(#what, #len, #end))));
        let mut shape = self.shapes[x].clone();
        shape[axis] = quote!((#end - #start));
        let layer = self.op_layer(slice(axis as i64 + 1, start, end), tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }

    /// `matmul(x, self.w)`: the `Matrix` field applied to `x` (its last axis `R` wide to `C`).
    fn matrix_product(&mut self, c: &syn::ExprCall, m: Ident, transposed: bool, tokens: TokenStream) -> Option<usize> {
        let key = m.to_string();
        if transposed {
            self.errors.at(c.span(), format!("matmul by a weight takes it as it is: matmul(x, self.{key})"));
            return None;
        }
        let (alias, span) = (self.alias(&key), c.span());
        let what = format!("`self.{key}`");
        self.checks.push((span, quote::quote_spanned!(span=> ::kiln::__private::expect_matrix_field(#what, <#alias as ::kiln::__private::Shaped>::MATRIX))));
        self.field_call(key, quote::quote!(self.#m), m, &[&c.args[0]], tokens, span)
    }

    fn matmul_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "matmul(a, b, transpose_a = false, transpose_b = false)";
        if c.args.len() < 2 {
            self.errors.at(c.span(), format!("matmul takes two tensors: {usage}"));
            return None;
        }
        let args = self.keywords(c, 2, &["transpose_a", "transpose_b"], usage)?;
        let ta = match args.get("transpose_a") {
            Some(e) => self.boolean(e, "transpose_a")?,
            None => false,
        };
        let tb = match args.get("transpose_b") {
            Some(e) => self.boolean(e, "transpose_b")?,
            None => false,
        };
        // `matmul(x, self.w)` multiplies by the model's own `Matrix`: one product over the batch.
        if let Expr::Field(fe) = &c.args[1]
            && matches!(&*fe.base, Expr::Path(p) if p.path.is_ident("self"))
            && let syn::Member::Named(m) = &fe.member
        {
            return self.matrix_product(c, m.clone(), ta || tb, tokens);
        }
        let (a, b) = (self.value(&c.args[0])?, self.value(&c.args[1])?);
        let (ra, rb) = (self.shapes[a].len(), self.shapes[b].len());
        if ra < 2 || rb < 2 {
            self.errors.at(
                c.span(),
                format!("matmul multiplies the last two axes of tensors of rank 2 or more: got ranks {ra} and {rb}"),
            );
            return None;
        }
        let (sa, sb) = (self.slice(a), self.slice(b));
        let span = c.span();
        self.checks
            .push((span, quote::quote_spanned!(span=> ::kiln::__private::expect_matmul("matmul", #sa, #sb, #ta, #tb))));
        let one = quote!(1usize);
        let shape = matmul_shape(&self.shapes[a], &self.shapes[b], ta, tb, |x, y| {
            let (x, y) = (x.unwrap_or(&one), y.unwrap_or(&one));
            quote!(::kiln::__private::broadcast_dim(#x, #y))
        });
        let layer = self.op_layer(matmul(ta, tb), tokens.clone());
        Some(self.node(layer, vec![a, b], tokens, shape))
    }

    fn concatenate_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "concatenate([a, b], axis = -1)";
        let args = self.keywords(c, 1, &["axis"], usage)?;
        let axis = self.integer(args.get("axis")?, "the axis")?;
        let ins = self.values(&c.args[0])?;
        if ins.len() < 2 {
            self.errors.at(c.span(), "concatenate joins at least two tensors");
            return None;
        }
        let rank = self.shapes[ins[0]].len();
        if let Some(&i) = ins.iter().find(|&&i| self.shapes[i].len() != rank) {
            self.errors
                .at(c.span(), format!("concatenate needs inputs of one rank, got {rank} and {}", self.shapes[i].len()));
            return None;
        }
        let a = self.sample_axis("concatenate", axis, rank, c.span())?;
        let span = c.span();
        let first = self.slice(ins[0]);
        for &i in &ins[1..] {
            let other = self.slice(i);
            self.checks.push((
                span,
                quote::quote_spanned!(span=> ::kiln::__private::expect_same_except("concatenate", #first, #other, #a)),
            ));
        }
        let mut shape = self.shapes[ins[0]].clone();
        let parts = ins.iter().map(|&i| self.shapes[i][a].clone());
        shape[a] = quote!((0 #(+ #parts)*));
        // Keras' axis convention for the layer: 1-based within a sample.
        let layer = self.op_layer(concatenate(a as i64 + 1), tokens.clone());
        Some(self.node(layer, ins, tokens, shape))
    }

    /// `reshape(x, [4, -1])`: a sample's values under a new shape (one `-1`, worked out), as
    /// Keras' Reshape layer takes it.
    fn reshape_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "reshape(x, [4, -1]), the new shape of a sample";
        let (Some(x), Some(Expr::Array(target)), 2) = (c.args.first(), c.args.iter().nth(1), c.args.len()) else {
            self.errors.at(c.span(), usage);
            return None;
        };
        let dims = target
            .elems
            .iter()
            .map(|d| number(d).filter(|v| v.fract() == 0.0).map(|v| v as i64))
            .collect::<Option<Vec<i64>>>();
        let Some(dims) = dims.filter(|d| {
            !d.is_empty() && d.iter().all(|&v| v > 0 || v == -1) && d.iter().filter(|&&v| v == -1).count() <= 1
        }) else {
            self.errors.at(
                target.span(),
                format!("the new shape is positive integers written in the code, with at most one -1: {usage}"),
            );
            return None;
        };
        let x = self.value(x)?;
        let from = self.shapes[x].clone();
        let known: i64 = dims.iter().filter(|&&v| v != -1).product();
        let shape: Vec<TokenStream> = dims
            .iter()
            .map(|&v| {
                if v == -1 {
                    quote!(((1 #(* #from)*) / #known as usize))
                } else {
                    let v = v as usize;
                    quote!(#v)
                }
            })
            .collect();
        let (span, a, b) = (c.span(), self.slice(x), quote!(&[#(#shape),*]));
        self.checks.push((span, quote::quote_spanned!(span=> ::kiln::__private::expect_same_size("reshape", #a, #b))));
        let layer = self.op_layer(call_view("Reshape"), tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }

    /// `expand_dims(x, axis)` (a new axis of extent 1 at Keras' `axis`) and `squeeze(x, axis)`.
    fn axis_view(&mut self, fname: &str, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = format!("{fname}(x, axis = 1)");
        let args = self.keywords(c, 1, &["axis"], &usage)?;
        let Some(axis) = args.get("axis") else {
            self.errors.at(c.span(), format!("{fname} needs an axis: {usage}"));
            return None;
        };
        let axis = self.integer(axis, "the axis")?;
        let x = self.value(c.args.first()?)?;
        let mut shape = self.shapes[x].clone();
        let span = c.span();
        if fname == "expand_dims" {
            // The new axis may also be one past the last.
            let a = self.sample_axis(fname, axis, shape.len() + 1, span)?;
            shape.insert(a, quote!(1usize));
        } else {
            let a = self.sample_axis(fname, axis, shape.len(), span)?;
            let extent = shape.remove(a);
            self.checks
                .push((span, quote::quote_spanned!(span=> ::kiln::__private::expect_extent_one("squeeze", #extent))));
        }
        let layer = self.op_layer(call_view(if fname == "squeeze" { "Squeeze" } else { "ExpandDims" }), tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }

    /// `transpose(x, [0, 2, 1])`: a sample's axes reordered, written as Keras' `ops.transpose`
    /// axes (the batch, 0, stays first).
    fn transpose_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "transpose(x, [0, 2, 1]): Keras' axes, the batch (0) first";
        let (Some(x), Some(Expr::Array(list)), 2) = (c.args.first(), c.args.iter().nth(1), c.args.len()) else {
            self.errors.at(c.span(), usage);
            return None;
        };
        let axes = list
            .elems
            .iter()
            .map(|e| number(e).filter(|v| v.fract() == 0.0 && *v >= 0.0).map(|v| v as usize))
            .collect::<Option<Vec<usize>>>();
        let x = self.value(x)?;
        let rank = self.shapes[x].len();
        let mut sorted = axes.clone().unwrap_or_default();
        sorted.sort_unstable();
        let valid = axes.as_ref().is_some_and(|a| a.first() == Some(&0)) && sorted == (0..=rank).collect::<Vec<_>>();
        if !valid {
            self.errors.at(
                list.span(),
                format!("{usage}; for samples of rank {rank} a permutation of 0..={rank} starting with 0"),
            );
            return None;
        }
        let order: Vec<usize> = axes.unwrap_or_default()[1..].iter().map(|a| a - 1).collect();
        let shape = order.iter().map(|&o| self.shapes[x][o].clone()).collect();
        let layer = self.op_layer(permute_spec(order), tokens.clone());
        Some(self.node(layer, vec![x], tokens, shape))
    }
}
