//! Applying a layer in `functional!`: the arguments of its call (inputs, Keras'
//! `attention_mask = m` and `initial_state = [h, c]`), checked against the layer and its other
//! applications, become one node of the graph.

use std::rc::Rc;

use proc_macro2::{Group, TokenStream};
use syn::Ident;
use syn::Token;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;

use super::Lowering;
use super::syntax::{CallArg, Expr, parse_call_arg};
use crate::ir::{Node, Op};
use crate::layers::{Arity, Spec};

/// A call's arguments: the inputs as written, and the keyword arguments it may take.
struct CallArgs {
    positional: Vec<Expr>,
    /// `attention_mask = m`.
    mask: Option<(Ident, Expr)>,
    /// `initial_state = [h, c]`.
    initial: Option<(Ident, Expr)>,
}

impl Lowering<'_> {
    /// Applies `layer` to the arguments of a call, `arg` (in statement `at`): the node it adds.
    pub(super) fn apply(&mut self, layer: usize, arg: &Group, tokens: TokenStream, at: usize) -> Option<usize> {
        let CallArgs { positional, mask, initial } = self.call_args(arg)?;
        let states = self.initial_state(layer, initial, &tokens, at)?;
        let mask = self.attention_mask(layer, mask, &tokens, at)?;
        let mut inputs = self.inputs(layer, positional, arg, &tokens, at)?;
        inputs.extend(states);
        inputs.extend(mask);
        Some(self.push_node(layer, inputs, tokens))
    }

    /// A node applying `layer` to `inputs`; its shapes are filled in by inference.
    pub(super) fn push_node(&mut self, layer: usize, inputs: Vec<usize>, tokens: TokenStream) -> usize {
        let node = self.nodes.len();
        self.nodes.push(Node {
            op: Op::Apply(layer),
            inputs,
            tokens,
            output_shape: vec![],
            input_shapes: vec![],
            dims: None,
        });
        self.layers[layer].apps.push(node);
        node
    }

    /// Parses a call's arguments and sorts out its keywords.
    fn call_args(&mut self, arg: &Group) -> Option<CallArgs> {
        let args = match (|s: ParseStream| Punctuated::<CallArg, Token![,]>::parse_terminated_with(s, parse_call_arg))
            .parse2(arg.stream())
        {
            Ok(e) => e.into_iter().collect::<Vec<_>>(),
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        // Keyword arguments of a call: Keras' `attention_mask = m` and `initial_state = [h, c]`.
        let (mut mask, mut initial, mut positional) = (None, None, Vec::new());
        for a in args {
            match a {
                CallArg::Positional(e) => positional.push(e),
                CallArg::Keyword(key, Some(e)) if key == "attention_mask" && mask.is_none() => mask = Some((key, e)),
                CallArg::Keyword(key, Some(e)) if key == "initial_state" && initial.is_none() => {
                    initial = Some((key, e))
                }
                CallArg::Keyword(key, _) => {
                    self.errors.at(
                        key.span(),
                        format!("unexpected `{key} = ..` in a call: a layer's call takes its inputs (MultiHeadAttention an attention_mask, a recurrent layer an initial_state)"),
                    );
                    return None;
                }
            }
        }
        Some(CallArgs { positional, mask, initial })
    }

    /// `initial_state = [h, c]` (or one state): the states become the layer's inputs after the first.
    fn initial_state(
        &mut self,
        layer: usize,
        initial: Option<(Ident, Expr)>,
        tokens: &TokenStream,
        at: usize,
    ) -> Option<Vec<usize>> {
        let states = match initial {
            None => vec![],
            Some((key, e)) => {
                self.keyword_form(layer, &key, |k| k.with_initial_state())?;
                let items = match e {
                    Expr::List(items, _) => items,
                    one => vec![one],
                };
                let mut states = Vec::new();
                for item in &items {
                    states.push(self.value(item, at)?);
                }
                states
            }
        };
        let has = self.layers[layer].kind.has_initial_state();
        self.same_form(layer, has, !states.is_empty(), "an initial_state", tokens)?;
        Some(states)
    }

    /// `attention_mask = m`: the mask becomes the layer's last input (`Some(None)` without one).
    fn attention_mask(
        &mut self,
        layer: usize,
        mask: Option<(Ident, Expr)>,
        tokens: &TokenStream,
        at: usize,
    ) -> Option<Option<usize>> {
        let mask = match mask {
            None => None,
            Some((key, e)) => {
                self.keyword_form(layer, &key, |k| k.with_mask_input())?;
                Some((key, self.value(&e, at)?))
            }
        };
        let has = self.layers[layer].kind.has_mask_input();
        self.same_form(layer, has, mask.is_some(), "an attention_mask", tokens)?;
        Some(mask.map(|(_, m)| m))
    }

    /// The layer's inputs from the positional arguments (`arg`: all of them as written): one
    /// value, the list a merge takes, or several arguments where the layer takes them
    /// (`MultiHeadAttention(..)(query, value)`).
    fn inputs(
        &mut self,
        layer: usize,
        args: Vec<Expr>,
        arg: &Group,
        tokens: &TokenStream,
        at: usize,
    ) -> Option<Vec<usize>> {
        let kind = self.layers[layer].kind.clone();
        // `MultiHeadAttention(..)(query, value)`: several inputs as arguments, as Keras calls it.
        let arg = match (args.len(), kind.call_args()) {
            (0, _) => {
                self.errors.over(tokens, format!("apply {} to its input: `layer(x)`", kind.class()));
                return None;
            }
            (1, _) => args.into_iter().next()?,
            (_, true) => {
                let mut list = TokenStream::new();
                args.iter().for_each(|a| list.extend(a.tokens()));
                Expr::List(args, list)
            }
            (_, false) => {
                let class = kind.class();
                let hint = if kind.arity() == Arity::One {
                    format!("{class} takes one input; merge a list first, e.g. Concatenate()([a, b])")
                } else {
                    format!("{class} merges a list of inputs, e.g. {class}()([a, b])")
                };
                self.errors.over(&arg.stream(), hint);
                return None;
            }
        };
        let inputs = match (&arg, kind.arity() != Arity::One) {
            (Expr::List(items, _), true) => {
                let mut ins = Vec::new();
                for item in items {
                    ins.push(self.value(item, at)?);
                }
                ins
            }
            (_, true) => {
                self.errors.over(
                    &arg.tokens(),
                    format!("{} merges a list of inputs, e.g. {}()([a, b])", kind.class(), kind.class()),
                );
                return None;
            }
            (Expr::List(..), false) => {
                self.errors.over(
                    &arg.tokens(),
                    format!("{} takes one input; merge a list first, e.g. Concatenate()([a, b])", kind.class()),
                );
                return None;
            }
            (e, false) => vec![self.value(e, at)?],
        };
        Some(inputs)
    }

    /// Switches `layer`, at its first use, to the form a keyword of its call asks for (`form`:
    /// `attention_mask`, `initial_state`); an error naming the keyword where it takes none.
    fn keyword_form(
        &mut self,
        layer: usize,
        key: &Ident,
        form: impl Fn(&dyn Spec) -> Option<Rc<dyn Spec>>,
    ) -> Option<()> {
        let first_use = self.layers[layer].apps.is_empty();
        match form(&*self.layers[layer].kind) {
            None => {
                let class = self.layers[layer].kind.class();
                self.errors.at(key.span(), format!("{class} takes no {key}"));
                None
            }
            Some(spec) => {
                if first_use {
                    self.layers[layer].kind = spec;
                }
                Some(())
            }
        }
    }

    /// A shared layer is called with `what` every time or never (`has`: its first call's form).
    fn same_form(&mut self, layer: usize, has: bool, given: bool, what: &str, tokens: &TokenStream) -> Option<()> {
        if self.layers[layer].apps.is_empty() || has == given {
            return Some(());
        }
        let name = &self.layers[layer].name;
        self.errors.over(
            tokens,
            format!("shared layer `{name}` is applied with {what} in one call and without in another: give it one in every call, or in none"),
        );
        None
    }
}
