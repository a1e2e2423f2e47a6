//! User math that copies values in `call`, lowered to the nodes it is made of so its gradient
//! comes with them: `stack([a, b], axis = 1)` (each gets a new axis, then they are joined along
//! it), `tile(x, [1, 2, 3])` (copies joined along each axis, Keras' repeats with the batch's 1
//! first) and `repeat(x, 2, axis = 1)` (each value twice in a row: a new axis after `axis`,
//! tiled, then merged back).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Expr;
use syn::spanned::Spanned;

use super::Lower;
use crate::layers::number;
use crate::layers::{call_view, concatenate};

impl Lower {
    /// `Some` of the node (or of `None` after an error) when `fname` is one of this file's.
    pub(super) fn copy_function(
        &mut self,
        fname: &str,
        c: &syn::ExprCall,
        tokens: TokenStream,
    ) -> Option<Option<usize>> {
        match fname {
            "stack" => Some(self.stack_call(c, tokens)),
            "tile" => Some(self.tile_call(c, tokens)),
            "repeat" => Some(self.repeat_call(c, tokens)),
            "one_hot" => Some(self.one_hot_call(c, tokens)),
            "gather" => Some(self.gather_call(c, tokens)),
            _ => None,
        }
    }

    /// A view of `x` with a new axis of extent 1 at sample axis `a`.
    fn new_axis(&mut self, x: usize, a: usize, tokens: &TokenStream) -> usize {
        let mut shape = self.shapes[x].clone();
        shape.insert(a, quote!(1usize));
        let layer = self.op_layer(call_view("ExpandDims"), tokens.clone());
        self.node(layer, vec![x], tokens.clone(), shape)
    }

    /// `parts` (of one shape but for sample axis `a`) joined along `a`.
    fn join(&mut self, parts: Vec<usize>, a: usize, tokens: &TokenStream) -> usize {
        let mut shape = self.shapes[parts[0]].clone();
        let extents = parts.iter().map(|&i| self.shapes[i][a].clone());
        shape[a] = quote!((0 #(+ #extents)*));
        let layer = self.op_layer(concatenate(a as i64 + 1), tokens.clone());
        self.node(layer, parts, tokens.clone(), shape)
    }

    /// `x` copied `r` times along sample axis `a`.
    fn copies(&mut self, x: usize, r: usize, a: usize, tokens: &TokenStream) -> usize {
        if r == 1 { x } else { self.join(vec![x; r], a, tokens) }
    }

    /// A count written in the code, at least 1.
    fn count(&mut self, e: &Expr, what: &str) -> Option<usize> {
        let v = number(e).filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v <= 4096.0).map(|v| v as usize);
        if v.is_none() {
            self.errors.at(e.span(), format!("{what} must be a whole number from 1 to 4096 written in the code"));
        }
        v
    }

    fn stack_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "stack([a, b], axis = 1)";
        let args = self.keywords(c, 1, &["axis"], usage)?;
        let axis = match args.get("axis") {
            Some(e) => self.integer(e, "the axis")?,
            None => 1,
        };
        let ins = self.values(c.args.first()?)?;
        if ins.len() < 2 {
            self.errors.at(c.span(), "stack joins at least two tensors");
            return None;
        }
        let rank = self.shapes[ins[0]].len();
        if let Some(&i) = ins.iter().find(|&&i| self.shapes[i].len() != rank) {
            self.errors.at(
                c.span(),
                format!("stack needs tensors of one shape, got ranks {rank} and {}", self.shapes[i].len()),
            );
            return None;
        }
        let span = c.span();
        let first = self.slice(ins[0]);
        for &i in &ins[1..] {
            let other = self.slice(i);
            self.check(span, "expect_same_dims", "stack", first.clone(), other);
        }
        // The new axis may also be one past the last.
        let a = self.sample_axis("stack", axis, rank + 1, span)?;
        let parts = ins.into_iter().map(|i| self.new_axis(i, a, &tokens)).collect();
        Some(self.join(parts, a, &tokens))
    }

    /// Keras' repeats, one per axis with the batch's (1) first, as sample axes' counts.
    fn repeats(&mut self, e: &Expr, rank: usize, span: Span) -> Option<Vec<usize>> {
        let usage = format!("tile(x, [1, 2, ..]): one count per axis, {} here, the batch's 1 first", rank + 1);
        let Expr::Array(list) = e else {
            self.errors.at(e.span(), usage);
            return None;
        };
        let counts: Vec<usize> = list.elems.iter().map(|d| self.count(d, "a repeat")).collect::<Option<_>>()?;
        if counts.len() != rank + 1 || counts[0] != 1 {
            self.errors.at(span, usage);
            return None;
        }
        Some(counts[1..].to_vec())
    }

    fn tile_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let (Some(x), Some(reps), 2) = (c.args.first(), c.args.iter().nth(1), c.args.len()) else {
            self.errors.at(c.span(), "tile(x, [1, 2, ..]): one count per axis, the batch's 1 first");
            return None;
        };
        let mut x = self.value(x)?;
        let counts = self.repeats(reps, self.shapes[x].len(), c.span())?;
        for (a, r) in counts.into_iter().enumerate() {
            x = self.copies(x, r, a, &tokens);
        }
        Some(x)
    }

    /// `one_hot(ids, 10)`: an input of token ids (`Ids<..>`) as rows of 10, the ids checked
    /// below 10 when data comes in.
    fn one_hot_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "one_hot(ids, 10), of an input declared `ids: Ids<..>`";
        let (Some(x), Some(n), 2) = (c.args.first(), c.args.iter().nth(1), c.args.len()) else {
            self.errors.at(c.span(), usage);
            return None;
        };
        let classes = self.count(n, "one_hot's number of classes")?;
        let ids = self.value(x)?;
        let is_ids =
            self.model.inputs.iter().position(|(_, node)| *node == ids).is_some_and(|k| self.model.int_inputs[k]);
        if !is_ids {
            self.errors.at(x.span(), format!("one_hot reads token ids: {usage}"));
            return None;
        }
        let mut shape = self.shapes[ids].clone();
        shape.push(quote!(#classes));
        let layer = self.op_layer(crate::layers::one_hot(classes), tokens.clone());
        Some(self.node(layer, vec![ids], tokens, shape))
    }

    /// `gather(x, ids)`: per sample, the rows of `x` (its first axis) an input of token ids
    /// (`Ids<K>`) names, their ids checked below the rows when data comes in.
    fn gather_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "gather(x, ids), ids an input declared `ids: Ids<K>`";
        let (Some(x), Some(ids), 2) = (c.args.first(), c.args.iter().nth(1), c.args.len()) else {
            self.errors.at(c.span(), usage);
            return None;
        };
        let (span, x) = (ids.span(), self.value(x)?);
        let ids = self.value(ids)?;
        let is_ids =
            self.model.inputs.iter().position(|(_, node)| *node == ids).is_some_and(|k| self.model.int_inputs[k]);
        if !is_ids || self.shapes[ids].len() != 1 {
            self.errors.at(span, format!("gather reads one axis of token ids per sample: {usage}"));
            return None;
        }
        let bound = self.shapes[x][0].clone();
        let shape = [&self.shapes[ids][..], &self.shapes[x][1..]].concat();
        let layer = self.op_layer(crate::layers::gather(Some(bound)), tokens.clone());
        Some(self.node(layer, vec![x, ids], tokens, shape))
    }

    fn repeat_call(&mut self, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let usage = "repeat(x, 2, axis = 1)";
        let args = self.keywords(c, 2, &["axis"], usage)?;
        let (Some(x), Some(n)) = (c.args.first(), c.args.iter().nth(1)) else {
            self.errors.at(c.span(), usage);
            return None;
        };
        let Some(axis) = args.get("axis") else {
            self.errors.at(c.span(), format!("repeat needs its axis: {usage}"));
            return None;
        };
        let axis = self.integer(axis, "the axis")?;
        let n = self.count(n, "repeat's count")?;
        let x = self.value(x)?;
        let a = self.sample_axis("repeat", axis, self.shapes[x].len(), c.span())?;
        // [.., d, ..] → [.., d, 1, ..] → [.., d, n, ..] → [.., d·n, ..]
        let lifted = self.new_axis(x, a + 1, &tokens);
        let tiled = self.copies(lifted, n, a + 1, &tokens);
        let mut shape = self.shapes[x].clone();
        let d = &shape[a];
        shape[a] = quote!((#d * #n));
        let layer = self.op_layer(call_view("Reshape"), tokens.clone());
        Some(self.node(layer, vec![tiled], tokens, shape))
    }
}
