//! `#[kiln::call]` front end: a subclassed model's `call` body lowered to the graph IR that
//! `functional!` also produces. Field shapes are known only to rustc, so each field call and
//! merge gets a compile-time check through the struct macro's constants, worded as the other
//! styles' errors and spanned at the call. Tensors in `call` are vectors (rank 1); an input of
//! another rank is an error that says so.
//!
//! ```text
//! #[kiln::call]
//! impl NAME {
//!     fn call(&self, x: Input<W>, ...) -> Output<W> | (Output<W>, ...) {
//!         let v = self.FIELD(v) | self.FIELD[i](v) | v + v | v - v | v * v
//!               | relu(v) (any activation) | concatenate([v, ..]) | add([v, ..]) | average([..])
//!               | maximum([..]) | minimum([..]) | dot(v, v);
//!         return v;      // or a final expression; a tuple for several outputs
//!     }
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemImpl, Pat, ReturnType, Stmt, Type};

use super::Errors;
use crate::derive::{field_alias, konst};
use crate::ir::{LayerDef, Model, Node, Op};
use crate::layers::{Act, Activation, Field, Spec, concatenate, dot, elementwise};

/// The width of an input or output, from `Input<W>` / `Output<W>`.
fn port_width(ty: &Type, wrapper: &str) -> syn::Result<usize> {
    let err = || {
        syn::Error::new(
            ty.span(),
            format!("expected `{wrapper}<width>`, e.g. `{wrapper}<10>`: tensors in `call` are vectors"),
        )
    };
    let Type::Path(p) = ty else { return Err(err()) };
    let seg = p.path.segments.last().ok_or_else(err)?;
    if seg.ident != wrapper {
        return Err(err());
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else { return Err(err()) };
    if args.args.len() > 1 {
        return Err(syn::Error::new(
            args.span(),
            format!(
                "`{wrapper}` of a `call` body takes one width (`{wrapper}<10>`): subclassed models work on vectors; \
                 for samples of rank {} use `functional!`, which takes shapes of any rank",
                args.args.len()
            ),
        ));
    }
    match args.args.first() {
        Some(syn::GenericArgument::Const(Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }))) => {
            i.base10_parse().map_err(|_| err())
        }
        _ => Err(err()),
    }
}

const SUPPORTED: &str = "kiln can differentiate, in `call`: layer calls `self.layer(x)` and `self.layers[i](x)`, \
`+ - *` between tensors, activations such as `relu(x)`, merges `concatenate([a, b])`, `add([..])`, \
`average([..])`, `maximum([..])`, `minimum([..])`, `dot(a, b)`, `let` bindings and `return`";

pub struct Lower {
    pub model: Model,
    pub widths: Vec<TokenStream>,
    pub checks: Vec<TokenStream>,
    fields: HashMap<String, usize>,
    env: HashMap<String, usize>,
    ops: usize,
    errors: Errors,
    name: Ident,
    /// Array or Vec fields indexed in `call`, with the indices used.
    pub indexed: BTreeMap<String, BTreeSet<usize>>,
}

impl Lower {
    fn node(&mut self, layer: usize, inputs: Vec<usize>, tokens: TokenStream, width: TokenStream) -> usize {
        let id = self.model.nodes.len();
        self.model.nodes.push(Node {
            op: Op::Apply(layer),
            inputs,
            tokens,
            output_shape: vec![],
            input_shapes: vec![],
            dims: Some(vec![width.clone()]),
        });
        self.model.layers[layer].apps.push(id);
        self.widths.push(width);
        id
    }

    fn op_layer(&mut self, kind: Rc<dyn Spec>, tokens: TokenStream) -> usize {
        self.ops += 1;
        let name = format_ident!("__kiln_op{}", self.ops);
        self.model.layers.push(LayerDef { name, kind, tokens, apps: vec![], place: None });
        self.model.layers.len() - 1
    }

    /// A compile-time check, spanned at the user's expression so the error underlines it.
    fn check(&mut self, span: Span, check: &str, what: &str, a: TokenStream, b: TokenStream) {
        let f = format_ident!("{}", check, span = span);
        self.checks.push(quote_spanned!(span=> const _: () = ::kiln::__private::#f(#what, #a, #b);));
    }

    fn field_layer(&mut self, key: String, place: TokenStream, ident: Ident, tokens: TokenStream) -> usize {
        if let Some(&l) = self.fields.get(&place.to_string()) {
            return l;
        }
        self.model.layers.push(LayerDef {
            name: ident,
            kind: Rc::new(Field { alias: field_alias(&self.name, &key), key }),
            tokens,
            apps: vec![],
            place: Some(place.clone()),
        });
        let l = self.model.layers.len() - 1;
        self.fields.insert(place.to_string(), l);
        l
    }

    fn values(&mut self, e: &Expr) -> Option<Vec<usize>> {
        match e {
            Expr::Array(a) => a.elems.iter().map(|x| self.value(x)).collect(),
            other => {
                self.errors.at(other.span(), "a merge takes a list of tensors, e.g. concatenate([a, b])");
                None
            }
        }
    }

    fn merge(
        &mut self,
        kind: Rc<dyn Spec>,
        what: &str,
        ins: Vec<usize>,
        tokens: TokenStream,
        span: Span,
    ) -> Option<usize> {
        if ins.len() < 2 {
            self.errors.at(span, format!("{what} merges at least two tensors"));
            return None;
        }
        let width = match kind.class() {
            "Concatenate" => {
                let ws = ins.iter().map(|&i| self.widths[i].clone());
                quote!((0 #(+ #ws)*))
            }
            "Dot" => quote!(1usize),
            _ => self.widths[ins[0]].clone(),
        };
        if kind.class() != "Concatenate" {
            let w0 = self.widths[ins[0]].clone();
            for &i in &ins[1..] {
                let wi = self.widths[i].clone();
                self.check(span, "expect_same", what, w0.clone(), wi);
            }
        }
        let layer = self.op_layer(kind, tokens.clone());
        Some(self.node(layer, ins, tokens, width))
    }

    fn value(&mut self, e: &Expr) -> Option<usize> {
        let tokens = e.to_token_stream();
        match e {
            Expr::Paren(p) => self.value(&p.expr),
            Expr::Group(g) => self.value(&g.expr),
            Expr::Path(p) if p.path.get_ident().is_some() => {
                let id = p.path.get_ident().expect("checked");
                match self.env.get(&id.to_string()) {
                    Some(&n) => Some(n),
                    None => {
                        self.errors.at(id.span(), format!("undefined tensor `{id}`"));
                        None
                    }
                }
            }
            Expr::Binary(b) => {
                let (kind, what) = match b.op {
                    syn::BinOp::Add(_) => ("Add", "`+`"),
                    syn::BinOp::Sub(_) => ("Subtract", "`-`"),
                    syn::BinOp::Mul(_) => ("Multiply", "`*`"),
                    _ => {
                        self.errors.at(b.op.span(), format!("unsupported operator: {SUPPORTED}"));
                        return None;
                    }
                };
                let (l, r) = (self.value(&b.left)?, self.value(&b.right)?);
                self.merge(elementwise(kind), what, vec![l, r], tokens, b.op.span())
            }
            // self.field(x)
            Expr::MethodCall(mc) if matches!(&*mc.receiver, Expr::Path(p) if p.path.is_ident("self")) => {
                if mc.args.len() != 1 {
                    self.errors.at(mc.span(), "a layer takes one tensor");
                    return None;
                }
                let m = mc.method.clone();
                self.field_call(m.to_string(), quote!(self.#m), m, &mc.args[0], tokens, mc.span())
            }
            Expr::Call(c) => match &*c.func {
                // self.field(x) / self.field[i](x)
                f @ (Expr::Field(_) | Expr::Index(_)) => {
                    let (key, place, ident) = match f {
                        Expr::Field(fe) if matches!(&*fe.base, Expr::Path(p) if p.path.is_ident("self")) => {
                            let syn::Member::Named(m) = &fe.member else {
                                self.errors.at(fe.span(), "layers are named fields: self.layer(x)");
                                return None;
                            };
                            (m.to_string(), quote!(self.#m), m.clone())
                        }
                        Expr::Index(ix) => match (&*ix.expr, &*ix.index) {
                            (Expr::Field(fe), Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. })) if matches!(&*fe.base, Expr::Path(p) if p.path.is_ident("self")) =>
                            {
                                let syn::Member::Named(m) = &fe.member else { return None };
                                let idx: usize = i.base10_parse().ok()?;
                                // Elements are bound to locals at the top of each generated
                                // function, so two elements can be borrowed at once.
                                let local = format_ident!("__kiln_{}_{}", m, idx);
                                self.indexed.entry(m.to_string()).or_default().insert(idx);
                                (m.to_string(), quote!((*#local)), format_ident!("{}_{}", m, idx))
                            }
                            _ => {
                                self.errors.at(ix.span(), "index a list of layers with a literal: self.blocks[2](x)");
                                return None;
                            }
                        },
                        other => {
                            self.errors.at(other.span(), format!("not a layer: {SUPPORTED}"));
                            return None;
                        }
                    };
                    if c.args.len() != 1 {
                        self.errors.at(c.span(), "a layer takes one tensor");
                        return None;
                    }
                    self.field_call(key, place, ident, &c.args[0], tokens, c.span())
                }
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let fname = p.path.get_ident().expect("checked").to_string();
                    if let Some(act) = Act::named(&fname) {
                        if c.args.len() != 1 {
                            self.errors.at(c.span(), format!("{fname} takes one tensor"));
                            return None;
                        }
                        let x = self.value(&c.args[0])?;
                        let w = self.widths[x].clone();
                        let layer = self.op_layer(Rc::new(Activation { act }), tokens.clone());
                        return Some(self.node(layer, vec![x], tokens, w));
                    }
                    let span = c.span();
                    match fname.as_str() {
                        "dot" if c.args.len() == 2 => {
                            let (a, b) = (self.value(&c.args[0])?, self.value(&c.args[1])?);
                            self.merge(dot(), "dot", vec![a, b], tokens, span)
                        }
                        "concatenate" | "add" | "average" | "maximum" | "minimum" | "multiply" | "subtract"
                            if c.args.len() == 1 =>
                        {
                            let ins = self.values(&c.args[0])?;
                            let kind = match fname.as_str() {
                                "concatenate" => concatenate(-1),
                                "add" => elementwise("Add"),
                                "average" => elementwise("Average"),
                                "maximum" => elementwise("Maximum"),
                                "minimum" => elementwise("Minimum"),
                                "multiply" => elementwise("Multiply"),
                                _ => elementwise("Subtract"),
                            };
                            self.merge(kind, &fname, ins, tokens, span)
                        }
                        _ => {
                            self.errors.at(p.span(), format!("unknown function `{fname}`: {SUPPORTED}"));
                            None
                        }
                    }
                }
                other => {
                    self.errors.at(other.span(), format!("cannot differentiate this call: {SUPPORTED}"));
                    None
                }
            },
            other => {
                self.errors.at(other.span(), format!("cannot differentiate this expression: {SUPPORTED}"));
                None
            }
        }
    }

    /// Applies field `key` (at `place`) to `arg`, with its compile-time width check.
    fn field_call(
        &mut self,
        key: String,
        place: TokenStream,
        ident: Ident,
        arg: &Expr,
        tokens: TokenStream,
        span: Span,
    ) -> Option<usize> {
        let x = self.value(arg)?;
        let name = self.name.clone();
        let (kin, kout) = (konst("IN", &key), konst("OUT", &key));
        let w = self.widths[x].clone();
        let what = format!("layer `{key}`");
        self.check(span, "expect_width", &what, quote!(<#name>::#kin), w);
        let layer = self.field_layer(key, place, ident, tokens.clone());
        Some(self.node(layer, vec![x], tokens, quote!(<#name>::#kout)))
    }

    fn outputs(&mut self, e: &Expr) -> Option<Vec<usize>> {
        match e {
            Expr::Tuple(t) => t.elems.iter().map(|x| self.value(x)).collect(),
            other => self.value(other).map(|v| vec![v]),
        }
    }
}

/// `#[kiln::call]`: lowers the `call` body to the graph IR, checks its shapes through the field
/// constants, and generates forward, backward and the model traits.
pub fn lower(item: ItemImpl) -> syn::Result<(Lower, Vec<usize>)> {
    let Type::Path(self_ty) = &*item.self_ty else {
        return Err(syn::Error::new(item.self_ty.span(), "#[kiln::call] goes on `impl YourModel { fn call(..) }`"));
    };
    let name = self_ty
        .path
        .segments
        .last()
        .map(|s| s.ident.clone())
        .ok_or_else(|| syn::Error::new(self_ty.span(), "expected a type"))?;
    let func = item
        .items
        .iter()
        .find_map(|i| match i {
            syn::ImplItem::Fn(f) if f.sig.ident == "call" => Some(f),
            _ => None,
        })
        .ok_or_else(|| {
            syn::Error::new(
                item.self_ty.span(),
                "#[kiln::call] needs `fn call(&self, x: Input<width>) -> Output<width>`",
            )
        })?;
    let mut lw = Lower {
        model: Model {
            attrs: vec![],
            vis: syn::Visibility::Inherited,
            name: name.clone(),
            layers: vec![],
            nodes: vec![],
            inputs: vec![],
            outputs: vec![],
            functional: false,
        },
        widths: vec![],
        checks: vec![],
        fields: HashMap::new(),
        env: HashMap::new(),
        ops: 0,
        errors: Errors::default(),
        name: name.clone(),
        indexed: Default::default(),
    };
    for arg in func.sig.inputs.iter() {
        let syn::FnArg::Typed(pt) = arg else { continue };
        let Pat::Ident(pi) = &*pt.pat else {
            lw.errors.at(pt.pat.span(), "name each input: x: Input<10>");
            continue;
        };
        // An input whose type is wrong is still bound (as width 1), so its uses report nothing
        // more than the type's own error.
        let w = port_width(&pt.ty, "Input").unwrap_or_else(|e| {
            lw.errors.push(e);
            1
        });
        let id = lw.model.nodes.len();
        lw.model.nodes.push(Node {
            op: Op::Input(lw.model.inputs.len()),
            inputs: vec![],
            tokens: pt.to_token_stream(),
            output_shape: vec![w],
            input_shapes: vec![],
            dims: None,
        });
        lw.widths.push(quote!(#w));
        lw.model.inputs.push((pi.ident.to_string(), id));
        lw.env.insert(pi.ident.to_string(), id);
    }
    let out_widths: Vec<usize> = match &func.sig.output {
        ReturnType::Type(_, t) => match &**t {
            Type::Tuple(tt) => {
                tt.elems.iter().filter_map(|t| port_width(t, "Output").map_err(|e| lw.errors.push(e)).ok()).collect()
            }
            t => port_width(t, "Output").map_err(|e| lw.errors.push(e)).into_iter().collect(),
        },
        ReturnType::Default => {
            lw.errors.at(func.sig.span(), "call must return `Output<width>`");
            vec![]
        }
    };
    let mut result: Option<(Vec<usize>, Span)> = None;
    for stmt in &func.block.stmts {
        if result.is_some() {
            lw.errors.at(stmt.span(), "unreachable: nothing after `return` is part of the model");
            break;
        }
        match stmt {
            Stmt::Local(local) => {
                let Pat::Ident(pi) = &local.pat else {
                    lw.errors.at(local.pat.span(), "bind one tensor per `let`: let h = ...;");
                    continue;
                };
                let Some(init) = &local.init else {
                    lw.errors.at(local.span(), "a `let` needs a value");
                    continue;
                };
                if let Some(v) = lw.value(&init.expr) {
                    lw.env.insert(pi.ident.to_string(), v);
                }
            }
            Stmt::Expr(Expr::Return(r), _) => match &r.expr {
                Some(e) => result = lw.outputs(e).map(|o| (o, r.span())),
                None => lw.errors.at(r.span(), "return the output tensor"),
            },
            Stmt::Expr(e, None) => result = lw.outputs(e).map(|o| (o, e.span())),
            other => lw.errors.at(other.span(), format!("cannot differentiate this statement: {SUPPORTED}")),
        }
    }
    match &result {
        Some((outs, span)) if outs.len() != out_widths.len() => lw.errors.at(
            *span,
            format!("call returns {} tensor(s) but its signature declares {} output(s)", outs.len(), out_widths.len()),
        ),
        None if lw.errors.is_empty() => lw.errors.at(func.block.span(), "call must end with the output tensor"),
        _ => {}
    }
    std::mem::take(&mut lw.errors).finish()?;
    let (outs, _) = result.expect("checked above");
    for (&o, &w) in outs.iter().zip(&out_widths) {
        let got = lw.widths[o].clone();
        let what = "the declared output";
        lw.check(func.sig.output.span(), "expect_width", what, quote!(#w), got);
        lw.model.nodes[o].output_shape = vec![w];
        lw.model.nodes[o].dims = Some(vec![quote!(#w)]);
    }
    lw.model.outputs = outs;
    // Every value must reach an output, and inputs be used, as in functional!.
    let mut errors = Errors::default();
    crate::shape::check_graph(&lw.model, &mut errors);
    errors.finish()?;
    Ok((lw, out_widths))
}
