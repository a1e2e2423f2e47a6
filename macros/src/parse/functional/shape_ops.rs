//! Shape ops in `functional!` math, as Keras writes them with `keras.ops`: `reshape(x, [4, -1])`,
//! `transpose(x, [0, 2, 1])`, `expand_dims(x, axis = 1)`, `squeeze(x, axis = 1)`,
//! `concatenate([a, b], axis = -1)`, `stack([a, b], axis = 1)`, `tile(x, [1, 2])`,
//! `repeat(x, 2, axis = 1)`, `one_hot(ids, 10)` and `gather(table, ids)`. Each becomes the op
//! nodes a `call` body lowers it to (copies are new axes and joins), with numeric shape rules
//! checked when the graph's shapes are inferred.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;

use super::Lowering;
use crate::layers::{
    concatenate, expand_dims, merge_axes, number, one_hot, permute_spec, reshape_spec, squeeze, stack_join,
};

impl Lowering<'_> {
    /// `Some` of the node (or of `None` after an error) when `name` is one of this file's.
    pub(super) fn shape_function(
        &mut self,
        name: &str,
        c: &syn::ExprCall,
        tokens: TokenStream,
        at: usize,
    ) -> Option<Option<usize>> {
        let out = match name {
            "reshape" => self.reshape_op(c, tokens, at),
            "transpose" => self.transpose_op(c, tokens, at),
            "expand_dims" | "squeeze" => self.axis_op(name, c, tokens, at),
            "concatenate" | "stack" => self.join_op(name, c, tokens, at),
            "tile" => self.tile_op(c, tokens, at),
            "repeat" => self.repeat_op(c, tokens, at),
            "one_hot" => self.one_hot_op(c, tokens, at),
            "gather" => self.gather_op(c, tokens, at),
            _ => return None,
        };
        Some(out)
    }

    /// The positional arguments, exactly `n` of them, then the keywords in `keys`.
    fn arguments<'e>(
        &mut self,
        c: &'e syn::ExprCall,
        n: usize,
        keys: &[&str],
        usage: &str,
    ) -> Option<(Vec<&'e syn::Expr>, Vec<Option<&'e syn::Expr>>)> {
        let (mut positional, mut named) = (Vec::new(), vec![None; keys.len()]);
        for arg in &c.args {
            match arg {
                syn::Expr::Assign(a) => {
                    let key = quote::ToTokens::to_token_stream(&a.left).to_string();
                    let Some(k) = keys.iter().position(|k| *k == key) else {
                        self.errors.at(arg.span(), format!("unexpected argument `{key}`: {usage}"));
                        return None;
                    };
                    named[k] = Some(&*a.right);
                }
                e if named.iter().all(Option::is_none) => positional.push(e),
                e => {
                    self.errors.at(e.span(), format!("positional arguments come first: {usage}"));
                    return None;
                }
            }
        }
        // An axis may also be given in its position (`repeat(x, 2, 1)`).
        while positional.len() > n && named.first().is_some_and(Option::is_none) && !keys.is_empty() {
            named[0] = positional.pop();
        }
        if positional.len() != n {
            self.errors.at(c.span(), usage);
            return None;
        }
        Some((positional, named))
    }

    /// A list of integers written in the code: `[4, -1]`.
    fn int_list(&mut self, e: &syn::Expr, usage: &str) -> Option<Vec<i64>> {
        let list = match e {
            syn::Expr::Array(a) => {
                a.elems.iter().map(|d| number(d).filter(|v| v.fract() == 0.0).map(|v| v as i64)).collect()
            }
            _ => None,
        };
        if list.is_none() {
            self.errors.at(e.span(), format!("a list of integers written in the code: {usage}"));
        }
        list
    }

    /// An axis of Keras' numbering, not the batch's.
    fn axis_arg(&mut self, e: Option<&syn::Expr>, default: Option<i64>, what: &str, usage: &str) -> Option<i64> {
        let axis = match e {
            Some(e) => self.integer(e, "the axis")?,
            None => match default {
                Some(d) => d,
                None => {
                    self.errors.at(proc_macro2::Span::call_site(), format!("{what} needs its axis: {usage}"));
                    return None;
                }
            },
        };
        if axis == 0 {
            self.errors.at(
                e.map_or_else(proc_macro2::Span::call_site, Spanned::span),
                format!("{what} over axis 0, the batch: a sample's axes are 1, 2, .. (or -1, ..)"),
            );
            return None;
        }
        Some(axis)
    }

    fn reshape_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "reshape(x, [4, -1]), the new shape of a sample";
        let (args, _) = self.arguments(c, 2, &[], usage)?;
        let target = self.int_list(args[1], usage)?;
        let x = self.math(args[0], at)?;
        self.op(reshape_spec(target), vec![x], tokens, c.span())
    }

    fn transpose_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "transpose(x, [0, 2, 1]): Keras' axes, the batch (0) first";
        let (args, _) = self.arguments(c, 2, &[], usage)?;
        let axes = self.int_list(args[1], usage)?;
        let mut sorted = axes.clone();
        sorted.sort_unstable();
        if axes.first() != Some(&0) || sorted != (0..axes.len() as i64).collect::<Vec<_>>() {
            self.errors.at(args[1].span(), format!("{usage}; a permutation of 0, 1, .. starting with 0"));
            return None;
        }
        let order = axes[1..].iter().map(|&a| a as usize - 1).collect();
        let x = self.math(args[0], at)?;
        self.op(permute_spec(order), vec![x], tokens, c.span())
    }

    fn axis_op(&mut self, name: &str, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = format!("{name}(x, axis = 1)");
        let (args, named) = self.arguments(c, 1, &["axis"], &usage)?;
        let axis = self.axis_arg(named[0], None, name, &usage)?;
        let x = self.math(args[0], at)?;
        let kind = if name == "squeeze" { squeeze(axis) } else { expand_dims(axis) };
        self.op(kind, vec![x], tokens, c.span())
    }

    /// The values of a list of expressions: `[a, b * 2.0]`.
    fn value_list(&mut self, e: &syn::Expr, what: &str, usage: &str, at: usize) -> Option<Vec<usize>> {
        let syn::Expr::Array(list) = e else {
            self.errors.at(e.span(), format!("{what} takes a list of values: {usage}"));
            return None;
        };
        if list.elems.len() < 2 {
            self.errors.at(e.span(), format!("{what} joins at least two values"));
            return None;
        }
        list.elems.iter().map(|v| self.math(v, at)).collect::<Vec<_>>().into_iter().collect()
    }

    /// `concatenate([a, b], axis = -1)`; `stack([a, b], axis = 1)` (each gets a new axis there,
    /// then they are joined along it).
    fn join_op(&mut self, name: &str, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = format!("{name}([a, b], axis = {})", if name == "stack" { 1 } else { -1 });
        let (args, named) = self.arguments(c, 1, &["axis"], &usage)?;
        let axis = self.axis_arg(named[0], Some(if name == "stack" { 1 } else { -1 }), name, &usage)?;
        let mut ins = self.value_list(args[0], name, &usage, at)?;
        if name == "stack" {
            let span = c.span();
            ins = ins
                .into_iter()
                .map(|i| self.op(expand_dims(axis), vec![i], tokens.clone(), span))
                .collect::<Option<_>>()?;
            return self.op(stack_join(axis), ins, tokens, span);
        }
        self.op(concatenate(axis), ins, tokens, c.span())
    }

    /// Keras' repeats, one per axis with the batch's (1) first: `tile(x, [1, 2, 3])`, each
    /// sample axis its copies joined along it.
    fn tile_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "tile(x, [1, 2, ..]): one count per axis, the batch's 1 first";
        let (args, _) = self.arguments(c, 2, &[], usage)?;
        let counts = self.int_list(args[1], usage)?;
        if counts.first() != Some(&1) || counts.len() < 2 || counts.iter().any(|&n| !(1..=4096).contains(&n)) {
            self.errors.at(args[1].span(), format!("{usage}; counts from 1 to 4096"));
            return None;
        }
        let mut x = self.math(args[0], at)?;
        for (a, &r) in counts.iter().enumerate().skip(1) {
            if r > 1 {
                x = self.op(concatenate(a as i64), vec![x; r as usize], tokens.clone(), c.span())?;
            }
        }
        Some(x)
    }

    /// `repeat(x, 2, axis = 1)`: each value twice in a row along the axis (a new axis after
    /// it, copies joined along that, merged back).
    fn repeat_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "repeat(x, 2, axis = 1)";
        let (args, named) = self.arguments(c, 2, &["axis"], usage)?;
        let axis = self.axis_arg(named[0], None, "repeat", usage)?;
        let n = number(args[1]).filter(|v| v.fract() == 0.0 && (1.0..=4096.0).contains(v)).map(|v| v as usize);
        let Some(n) = n else {
            self.errors.at(args[1].span(), "repeat's count must be a whole number from 1 to 4096 written in the code");
            return None;
        };
        if axis < 0 {
            self.errors.at(c.span(), format!("repeat counts its axis from the front here: {usage}"));
            return None;
        }
        let span = c.span();
        let x = self.math(args[0], at)?;
        let lifted = self.op(expand_dims(axis + 1), vec![x], tokens.clone(), span)?;
        let tiled = if n > 1 { self.op(concatenate(axis + 1), vec![lifted; n], tokens.clone(), span)? } else { lifted };
        self.op(merge_axes(axis as usize - 1), vec![tiled], tokens, span)
    }

    /// `gather(x, ids)`: per sample, the rows of `x` the ids of an input declared `dtype = i32`
    /// name (`tf.gather(x, ids, axis = 1, batch_dims = 1)`).
    fn gather_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "gather(x, ids), ids an input declared `Input([k], dtype = i32)`";
        let (args, _) = self.arguments(c, 2, &[], usage)?;
        let (x, ids) = (self.math(args[0], at)?, self.math(args[1], at)?);
        self.op(crate::layers::gather(None), vec![x, ids], tokens, c.span())
    }

    /// `one_hot(ids, 10)` of an input declared `dtype = i32`.
    fn one_hot_op(&mut self, c: &syn::ExprCall, tokens: TokenStream, at: usize) -> Option<usize> {
        let usage = "one_hot(ids, 10), of an input declared `Input([..], dtype = i32)`";
        let (args, _) = self.arguments(c, 2, &[], usage)?;
        let n = number(args[1]).filter(|v| v.fract() == 0.0 && (1.0..=1e7).contains(v)).map(|v| v as usize);
        let Some(classes) = n else {
            self.errors.at(args[1].span(), format!("the number of classes must be a whole number: {usage}"));
            return None;
        };
        let ids = self.math(args[0], at)?;
        self.op(one_hot(classes), vec![ids], tokens, c.span())
    }
}
