//! The statements of `call`: `let` bindings, rebinding a name (`h = self.block(h) + h;`), `for`
//! loops over a literal list unrolled when the model compiles (Keras' `for size in [..]:` blocks:
//! `for i in [0, 1, 2] { h = self.blocks[i](h); }`), and the returned outputs.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, Pat, Stmt};

use super::{Lower, SUPPORTED};

/// The most statements unrolled loops may produce in one `call`, a bound on what a typo in a
/// list could cost the compiler.
const MAX_UNROLLED: usize = 4096;

impl Lower {
    /// The statements of `call`: its bindings and loops, and the output nodes it returns with
    /// where they are returned.
    pub(super) fn body(&mut self, block: &syn::Block) -> Option<(Vec<usize>, Span)> {
        let mut result: Option<(Vec<usize>, Span)> = None;
        let mut budget = MAX_UNROLLED;
        for stmt in &block.stmts {
            if result.is_some() {
                self.errors.at(stmt.span(), "unreachable: nothing after `return` is part of the model");
                break;
            }
            self.statement(stmt, &mut result, &mut budget);
        }
        result
    }

    fn statement(&mut self, stmt: &Stmt, result: &mut Option<(Vec<usize>, Span)>, budget: &mut usize) {
        match stmt {
            Stmt::Local(local) => {
                let Pat::Ident(pi) = &local.pat else {
                    self.errors.at(local.pat.span(), "bind one tensor per `let`: let h = ...;");
                    return;
                };
                let Some(init) = &local.init else {
                    self.errors.at(local.span(), "a `let` needs a value");
                    return;
                };
                self.bind(pi.ident.to_string(), &init.expr);
            }
            // `h = expr;`: the name now stands for a new tensor.
            Stmt::Expr(Expr::Assign(a), Some(_)) => match &*a.left {
                Expr::Path(p) if p.path.get_ident().is_some_and(|i| self.env.contains_key(&i.to_string())) => {
                    self.bind(p.path.get_ident().expect("checked").to_string(), &a.right);
                }
                other => self.errors.at(other.span(), "assign to a tensor bound before: `let mut h = x; h = ...;`"),
            },
            Stmt::Expr(Expr::ForLoop(f), _) => self.unroll(f, result, budget),
            // `self.add_loss(term);` / `self.add_loss("kl_loss", term);`
            Stmt::Expr(Expr::MethodCall(mc), Some(_))
                if mc.method == "add_loss" && matches!(&*mc.receiver, Expr::Path(p) if p.path.is_ident("self")) =>
            {
                self.add_loss(mc)
            }
            Stmt::Expr(Expr::Return(r), _) => match &r.expr {
                Some(e) => *result = self.outputs(e).map(|o| (o, r.span())),
                None => self.errors.at(r.span(), "return the output tensor"),
            },
            Stmt::Expr(e, None) => *result = self.outputs(e).map(|o| (o, e.span())),
            other => self.errors.at(other.span(), format!("cannot differentiate this statement: {SUPPORTED}")),
        }
    }

    /// `self.add_loss([name,] term)`: a node adding the term's batch mean to the loss, logged
    /// under `name` (by default `add_loss`, `add_loss_1`, ..).
    fn add_loss(&mut self, mc: &syn::ExprMethodCall) {
        let usage = "self.add_loss(term) or self.add_loss(\"name\", term), with one value per sample";
        let args: Vec<&Expr> = mc.args.iter().collect();
        let (name, term) = match &args[..] {
            [term] => (None, *term),
            [Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }), term] => (Some(s), *term),
            _ => {
                self.errors.at(mc.span(), format!("add_loss takes a term: {usage}"));
                return;
            }
        };
        let name = match name {
            Some(s) => s.value(),
            None => match self.added.len() {
                0 => "add_loss".to_string(),
                k => format!("add_loss_{k}"),
            },
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.errors.at(mc.args[0].span(), "an added loss's name is letters, digits and `_`, as a log key");
            return;
        }
        if self.added.iter().any(|(n, _)| *n == name) {
            self.errors
                .at(mc.args[0].span(), format!("a loss named `{name}` is added already: give each its own name"));
            return;
        }
        let Some(x) = self.value(term) else { return };
        let tokens = mc.to_token_stream();
        let shape = self.slice(x);
        self.check(mc.span(), "expect_one_per_sample", "add_loss", shape, TokenStream::new());
        let layer = self.op_layer(crate::layers::add_loss(), tokens.clone());
        let dims = self.shapes[x].clone();
        self.node(layer, vec![x], tokens, dims);
        self.added.push((name, layer));
    }

    /// Binds `name` to the value of `e`; after an error the name is remembered as failed, so its
    /// uses report nothing more.
    fn bind(&mut self, name: String, e: &Expr) {
        match self.value(e) {
            Some(v) => {
                self.env.insert(name, v);
            }
            None => {
                self.failed.insert(name);
            }
        }
    }

    /// `for i in [a, b, ..] { .. }`: the body once per element, with `i` replaced by it.
    fn unroll(&mut self, f: &syn::ExprForLoop, result: &mut Option<(Vec<usize>, Span)>, budget: &mut usize) {
        let usage = "loop over a list or a range written in the code: for i in [0, 1, 2] { .. }, for i in 0..3 { .. }";
        let Pat::Ident(var) = &*f.pat else {
            self.errors.at(f.pat.span(), usage);
            return;
        };
        let Some(items) = self.loop_items(&f.expr, usage) else { return };
        for lit in items {
            let body = replace(f.body.stmts.iter().map(quote::ToTokens::to_token_stream).collect(), &var.ident, &lit);
            let Ok(block) = syn::parse2::<syn::Block>(quote::quote!({ #body })) else {
                self.errors.at(f.body.span(), "this loop's body does not read as Rust once unrolled");
                return;
            };
            for stmt in &block.stmts {
                if *budget == 0 {
                    self.errors.at(f.span(), format!("loops unroll to more than {MAX_UNROLLED} statements"));
                    return;
                }
                *budget -= 1;
                if result.is_some() {
                    self.errors.at(stmt.span(), "a loop's body cannot return: bind the tensor and return it after");
                    return;
                }
                self.statement(stmt, result, budget);
            }
        }
    }
}

impl Lower {
    /// The elements a loop runs over: a list of literals (`[256, 512, 728]`) or a range of
    /// integers written in the code (`0..3`, `0..=2`).
    fn loop_items(&mut self, e: &Expr, usage: &str) -> Option<Vec<syn::Lit>> {
        let int = |e: &Expr| match e {
            Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<u64>().ok(),
            _ => None,
        };
        match e {
            Expr::Array(list) => list
                .elems
                .iter()
                .map(|item| match item {
                    Expr::Lit(lit) => Some(lit.lit.clone()),
                    other => {
                        self.errors
                            .at(other.span(), format!("a loop's list holds numbers written in the code: {usage}"));
                        None
                    }
                })
                .collect(),
            Expr::Range(r) => {
                let (Some(from), Some(to)) = (r.start.as_deref().and_then(int), r.end.as_deref().and_then(int)) else {
                    self.errors.at(r.span(), format!("a loop's range has integer bounds written in the code: {usage}"));
                    return None;
                };
                let to = if matches!(r.limits, syn::RangeLimits::Closed(_)) { to + 1 } else { to };
                Some((from..to).map(|i| syn::Lit::Int(syn::LitInt::new(&i.to_string(), r.span()))).collect())
            }
            other => {
                let hint = "to run a list of layers, index it: for i in 0..3 { h = self.blocks[i](h); }";
                self.errors.at(other.span(), format!("{usage}; {hint}"));
                None
            }
        }
    }
}

/// `tokens` with every `var` replaced by `lit`, inside groups too.
/// `tokens` with every `var` replaced by `lit` (a loop's variable by one of its elements).
pub(crate) fn replace(tokens: TokenStream, var: &syn::Ident, lit: &syn::Lit) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|t| -> TokenStream {
            match t {
                TokenTree::Ident(i) if i == *var => {
                    let mut l = quote::ToTokens::to_token_stream(lit).into_iter().collect::<Vec<_>>();
                    l.iter_mut().for_each(|t| t.set_span(i.span()));
                    l.into_iter().collect()
                }
                TokenTree::Group(g) => {
                    let mut ng = proc_macro2::Group::new(g.delimiter(), replace(g.stream(), var, lit));
                    ng.set_span(g.span());
                    TokenTree::Group(ng).into()
                }
                other => other.into(),
            }
        })
        .collect()
}
