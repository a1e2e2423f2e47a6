//! The subclassing style: `#[kiln::model]` on a struct whose fields are layers, and
//! `#[kiln::call]` on the `impl` holding its `call` method.
//!
//! The struct macro sees the fields' types; the call macro sees the body. They meet through
//! constants the struct macro generates (`__KILN_IN_<field>`, `__KILN_OUT_<field>`, ...): the call
//! body is lowered to the same graph IR as `functional!`, checked with those constants at compile
//! time (a mismatch is a compile error naming the layer and both shapes), and turned into forward
//! and backward code by the same code generator. Tensors in `call` are vectors (rank 1).
//!
//! ```text
//! #[kiln::model]
//! struct NAME { FIELD: LAYER_TYPE, #[layer(trainable = false)] FIELD: [LAYER_TYPE; N], ... }
//!
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

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Fields, Ident, ItemImpl, ItemStruct, Pat, ReturnType, Stmt, Type};

use std::rc::Rc;

use crate::codegen::{Gen, ImplParts, impls};
use crate::ir::{LayerDef, Model, Node, Op};
use crate::layers::{Act, Activation, Field, Spec, concatenate, dot, elementwise, rt};
use crate::parse::Errors;

/// The type alias the struct macro emits for a field's (element) type, so the call macro can
/// name it (for a shared field's buffers).
fn field_alias(model: &Ident, field: &str) -> Ident {
    format_ident!("__KilnField{}_{}", model, field)
}

fn call_state(name: &Ident) -> Ident {
    format_ident!("__KilnCall{}", name)
}

fn konst(kind: &str, field: &str) -> Ident {
    format_ident!("__KILN_{}_{}", kind, field)
}

enum Container {
    One,
    Array,
    Vec(TokenStream),
}

/// `#[kiln::model]`: adds kiln's state to the struct and generates construction, parameter
/// traversal and the per-field constants the call macro checks shapes with.
///
/// With `derived`, the struct is `#[derive(Model)]`'s: it is left as written and must declare the
/// state field itself, `kiln: ModelState<Self>`.
pub fn model(mut item: ItemStruct, derived: bool) -> syn::Result<TokenStream> {
    let rt = rt();
    let name = item.ident.clone();
    let Fields::Named(fields) = &mut item.fields else {
        return Err(syn::Error::new(item.ident.span(), "a kiln model needs a struct with named fields, one per layer"));
    };
    let has_state = fields.named.iter().any(|f| f.ident.as_ref().is_some_and(|i| i == "kiln"));
    if derived && !has_state {
        return Err(syn::Error::new(
            item.ident.span(),
            "#[derive(Model)] needs a field `kiln: kiln::ModelState<Self>`, where kiln keeps the optimizer and \
             buffers (Keras' `super().__init__()`); or write `#[kiln::model]` above the struct, which adds it",
        ));
    }
    if !derived && has_state {
        return Err(syn::Error::new(item.ident.span(), "#[kiln::model] adds the `kiln` field itself: remove yours"));
    }
    let mut errors = Errors::default();
    let (mut inits, mut consts, mut visits, mut visits_mut, mut infos, mut freeze, mut params) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut aliases = Vec::new();
    for field in fields.named.iter_mut() {
        let f = field.ident.clone().expect("named fields");
        let key = f.to_string();
        if key == "kiln" {
            continue;
        }
        let (mut trainable, mut len) = (true, None);
        let mut keep = Vec::new();
        for attr in field.attrs.drain(..) {
            if !attr.path().is_ident("layer") {
                keep.push(attr);
                continue;
            }
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("trainable") {
                    trainable = meta.value()?.parse::<syn::LitBool>()?.value;
                } else if meta.path.is_ident("len") {
                    len = Some(meta.value()?.parse::<syn::LitInt>()?.to_token_stream());
                } else {
                    return Err(meta.error("#[layer(..)] takes `trainable = false` and, on a Vec field, `len = N`"));
                }
                Ok(())
            });
            if let Err(e) = r {
                errors.push(e);
            }
        }
        field.attrs = keep;
        let ty = &field.ty;
        let (container, elem): (Container, Type) = match ty {
            Type::Array(a) => (Container::Array, (*a.elem).clone()),
            Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Vec") => {
                let elem = match &p.path.segments.last().map(|s| &s.arguments) {
                    Some(syn::PathArguments::AngleBracketed(a)) => match a.args.first() {
                        Some(syn::GenericArgument::Type(t)) => t.clone(),
                        _ => ty.clone(),
                    },
                    _ => ty.clone(),
                };
                match len.clone() {
                    Some(l) => (Container::Vec(l), elem),
                    None => {
                        errors.at(ty.span(), "a Vec of layers needs its length: #[layer(len = 4)]");
                        // Generated as empty, so the rest of the model reports nothing more.
                        (Container::Vec(quote!(0)), elem)
                    }
                }
            }
            _ => (Container::One, ty.clone()),
        };
        let alias = field_alias(&name, &key);
        aliases.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            type #alias = #elem;
        });
        let (kin, kout, kact) = (konst("IN", &key), konst("OUT", &key), konst("ACT", &key));
        consts.push(quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #kin: usize = <#ty as #rt::Shaped>::IN;
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #kout: usize = <#ty as #rt::Shaped>::OUT;
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #kact: #rt::ActKind = <#ty as #rt::Shaped>::ACT;
        });
        // A Vec's length is known here, not to its type.
        let field_params = match &container {
            Container::Vec(l) => quote!(<#elem as #rt::Shaped>::PARAMS * #l),
            _ => quote!(<#ty as #rt::Shaped>::PARAMS),
        };
        params.push(field_params.clone());
        infos.push(quote!(#rt::LayerInfo {
            name: #key,
            kind: <#ty as #rt::Shaped>::KIND,
            output_shape: &[<#ty as #rt::Shaped>::OUT],
            params: #field_params,
            connected: &[],
            activation: <#ty as #rt::Shaped>::ACT.name(),
            nested: <#ty as #rt::Shaped>::LAYERS,
        },));
        match &container {
            Container::One => {
                let _ = &elem;
                inits.push(quote!(#f: <#ty as #rt::Init>::init(&mut rng),));
                visits.push(
                    quote!(#rt::Layer::visit_params(&self.#f, &mut |p, v| f(&::std::format!("{}.{}", #key, p), v));),
                );
                visits_mut.push(quote!(#rt::Layer::visit_params_mut(&mut self.#f, f);));
                if !trainable {
                    freeze.push(quote!(#rt::Layer::set_trainable(&mut model.#f, false);));
                }
            }
            Container::Array | Container::Vec(_) => {
                inits.push(match &container {
                    Container::Vec(l) => quote!(#f: #rt::init_vec::<#elem>(#l, &mut rng),),
                    _ => quote!(#f: <#ty as #rt::Init>::init(&mut rng),),
                });
                visits.push(quote! {
                    for (i, layer) in self.#f.iter().enumerate() {
                        #rt::Layer::visit_params(layer, &mut |p, v| f(&::std::format!("{}.{}.{}", #key, i, p), v));
                    }
                });
                visits_mut.push(quote! {
                    for layer in self.#f.iter_mut() {
                        #rt::Layer::visit_params_mut(layer, f);
                    }
                });
                if !trainable {
                    freeze.push(quote!(#rt::set_trainable_all(&mut model.#f, false);));
                }
            }
        }
    }
    // The struct and its impls are generated even beside an error in a field's attribute, so
    // the `call` impl and code using the model report nothing more.
    let errors = errors.finish().err().map(|e| e.to_compile_error());
    let item = if derived {
        None
    } else {
        let hidden: syn::FieldsNamed = syn::parse_quote!({
            #[doc(hidden)]
            pub kiln: #rt::ModelState<Self>,
        });
        fields.named.extend(hidden.named);
        item.attrs.push(syn::parse_quote!(#[derive(Clone, Debug)]));
        Some(item)
    };
    Ok(quote! {
        #errors
        #item

        #(#aliases)*

        impl #name {
            /// A new model, initialised as Keras does, from kiln's default seed.
            pub fn new() -> Self {
                Self::with_seed(#rt::DEFAULT_SEED)
            }

            /// A new model whose initial weights and shuffling all follow from `seed`.
            pub fn with_seed(seed: u64) -> Self {
                let mut rng = <#rt::StdRng as #rt::SeedableRng>::seed_from_u64(seed);
                #[allow(unused_mut)]
                let mut model = Self {
                    #(#inits)*
                    kiln: #rt::ModelState::new(seed),
                };
                #(#freeze)*
                model
            }

            #(#consts)*

            #[doc(hidden)]
            pub const __KILN_LAYERS: &'static [#rt::LayerInfo] = &[#(#infos)*];
            #[doc(hidden)]
            pub const __KILN_PARAMS: usize = 0 #(+ #params)*;

            fn __kiln_visit(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                #(#visits)*
            }

            fn __kiln_visit_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                #(#visits_mut)*
            }
        }

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl #rt::Init for #name {
            fn init(rng: &mut #rt::StdRng) -> Self {
                Self::with_seed(#rt::RngCore::next_u64(rng))
            }
        }
    })
}

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

struct Lower {
    model: Model,
    widths: Vec<TokenStream>,
    checks: Vec<TokenStream>,
    fields: HashMap<String, usize>,
    env: HashMap<String, usize>,
    ops: usize,
    errors: Errors,
    name: Ident,
    /// Array or Vec fields indexed in `call`, with the indices used.
    indexed: std::collections::BTreeMap<String, std::collections::BTreeSet<usize>>,
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
pub fn call(item: ItemImpl) -> syn::Result<TokenStream> {
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
    Ok(expand(&lw, &out_widths))
}

fn expand(lw: &Lower, out_widths: &[usize]) -> TokenStream {
    let rt = rt();
    let model = &lw.model;
    let name = &model.name;
    let state = call_state(name);
    let g = Gen { m: model, state: quote!(self.kiln.call) };

    // The call state: generated layers (merges, activations), extra buffers of shared fields,
    // gradient accumulators.
    let (mut fields, mut inits) = (vec![], vec![]);
    for l in model.layers.iter().filter(|l| l.kind.class() != "Field") {
        let (f, ty, init) = (&l.name, g.ty(l), g.constructor(l));
        fields.push(quote!(#f: #ty,));
        inits.push(quote!(#f: #init,));
    }
    let (bufs, buf_tys): (Vec<Ident>, Vec<TokenStream>) = g.extra_bufs().into_iter().unzip();
    let (accs, outputs) = (g.accumulators(), g.output_arms());
    let forward = g.forward();
    let backward = g.backward();
    let in_ports: Vec<TokenStream> = model
        .inputs
        .iter()
        .map(|(n, node)| {
            let w = model.nodes[*node].output_shape[0];
            quote!(#rt::Port { name: #n, shape: &[#w] })
        })
        .collect();
    let out_ports: Vec<TokenStream> = model
        .outputs
        .iter()
        .zip(out_widths)
        .enumerate()
        .map(|(k, (&o, w))| {
            let n = match model.layer_of(o).and_then(|l| l.kind.field_key()) {
                Some(key) => key.to_string(),
                None => format!("output_{k}"),
            };
            quote!(#rt::Port { name: #n, shape: &[#w] })
        })
        .collect();
    let out_acts: Vec<TokenStream> = model
        .outputs
        .iter()
        .map(|&o| {
            let c = model.resolve(o);
            match (model.layer_of(c).and_then(|l| l.kind.field_key()), g.fusable_output(c)) {
                (Some(key), Some(_)) => {
                    let k = konst("ACT", key);
                    quote!(<#name>::#k)
                }
                _ => quote!(#rt::ActKind::Linear),
            }
        })
        .collect();
    let prediction = g.prediction();
    let bind = |mutable: bool| -> TokenStream {
        let lets = lw.indexed.iter().map(|(field, idx)| {
            let f = format_ident!("{}", field);
            let max = *idx.iter().max().unwrap_or(&0);
            let pats = (0..=max).map(|i| {
                if idx.contains(&i) {
                    let l = format_ident!("__kiln_{}_{}", field, i);
                    quote!(#l)
                } else {
                    quote!(_)
                }
            });
            let msg = format!("`{field}` holds fewer layers than `call` uses ({})", max + 1);
            let borrow = if mutable { quote!(&mut self.#f[..]) } else { quote!(&self.#f[..]) };
            quote!(let [#(#pats,)* ..] = #borrow else { panic!(#msg) };)
        });
        quote!(#(#lets)*)
    };
    let (bind_mut, bind_ref) = (bind(true), bind(false));
    let act0 = out_acts.first().cloned().unwrap_or_default();
    let trait_impls = impls(
        &g,
        &ImplParts {
            in_ports,
            out_ports,
            out_acts,
            prediction,
            layers: quote!(Self::__KILN_LAYERS),
            prelude: bind_ref.clone(),
            train_state: quote!(self.kiln.train),
        },
    );
    let checks = &lw.checks;
    let shaped = (model.inputs.len() == 1 && model.outputs.len() == 1).then(|| {
        let (win, wout, act) = (model.nodes[model.inputs[0].1].output_shape[0], out_widths[0], &act0);
        crate::codegen::shaped_impl(name, win, wout, act, &quote!(<#name>::__KILN_PARAMS))
    });
    quote! {
        #[doc(hidden)]
        #[derive(Clone, Debug)]
        pub struct #state {
            #(#fields)*
            #(#bufs: #buf_tys,)*
            #(#accs: ::std::vec::Vec<f32>,)*
        }

        impl ::core::default::Default for #state {
            fn default() -> Self {
                Self {
                    #(#inits)*
                    #(#bufs: ::core::default::Default::default(),)*
                    #(#accs: ::std::vec::Vec::new(),)*
                }
            }
        }

        #(#checks)*

        impl #name {
            #[allow(unused_variables)]
            fn __kiln_run(&mut self, xs: &[&[f32]], ctx: &mut #rt::Ctx<'_>) {
                #bind_mut
                #forward
            }

            #[allow(unused_variables)]
            fn __kiln_output(&self, k: usize) -> &[f32] {
                #bind_ref
                match k {
                    #(#outputs)*
                    _ => &[],
                }
            }

            #[allow(unused_variables)]
            fn __kiln_backward(&mut self, xs: &[&[f32]], dys: &[&[f32]], fused: &[bool], accumulate: bool, input_grad: bool, ctx: &mut #rt::Ctx<'_>) {
                #bind_mut
                #backward
            }
        }

        impl #rt::HasCallState for #name {
            type CallState = #state;
        }

        #trait_impls
        #shaped
    }
}
