//! `#[kiln::call]` front end: a subclassed model's `call` body lowered to the graph IR that
//! `functional!` also produces. Field shapes are known only to rustc, so each field call and
//! merge gets a compile-time check through the struct macro's constants, worded as the other
//! styles' errors and spanned at the call. Tensors have the rank their `Input<..>` gives
//! (`Input<10>` a vector, `Input<4, 16>` 4 steps of 16 features, `Input<28, 28, 1>` an image);
//! a field keeps its input's rank (Dense-like layers change the last axis, convolutions and
//! pooling the spatial axes too), and the functions below change it.
//!
//! ```text
//! #[kiln::call]
//! impl NAME {
//!     fn call(&self, x: Input<D, ..>, ...) -> Output<D, ..> | (Output<D, ..>, ...) {
//!         let v = self.FIELD(v) | self.FIELD[i](v) | self.FIELD(q, v, mask) (attention) | v + v | v - v | v * v
//!               | relu(v) (any activation) | flatten(v) | dropout(v, 0.25)
//!               | global_average_pooling(v) | global_max_pooling(v) | last_step(v)
//!               | concatenate([v, ..]) | add([v, ..]) | average([..])
//!               | maximum([..]) | minimum([..]) | dot(v, v);
//!         return v;      // or a final expression; a tuple for several outputs
//!     }
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemImpl, Type};

use crate::errors::Errors;
use crate::ir::subclass::{CallBody, field_alias};
use crate::ir::{LayerDef, Model, Node, Op};
use crate::layers::{
    Act, Activation, Field, Spec, concatenate, dot, dropout, elementwise, flatten, global_pool, last_step, product,
    unary,
};

mod axes;
mod copies;
mod export;
mod known;
mod math;
mod ports;
mod statements;

use known::field_type;
pub(crate) use ports::port_shape;
pub(crate) use statements::replace;
const SUPPORTED: &str = "kiln can differentiate, in `call`: layer calls `self.layer(x)` and `self.layers[i](x)`, \
`+ - * /` between tensors (broadcast) or with a number or a named constant (`x / TEMPERATURE`), `-x`, `exp log sqrt square abs negative`, \
`maximum(x, 0.0)`, `minimum(x, c)`, `stop_gradient(x)`, \
`pow(x, c)`, `clip(x, lo, hi)`, `sum mean max min logsumexp` along an axis \
(`sum(x, axis = -1, keepdims = true)`), `softmax(x, axis = 1)`, `log_softmax(x)`, `matmul(a, b)`, \
`slice(x, axis = -1, start = 0, end = 2)`, `concatenate([a, b], axis = 1)`, `stack([a, b], axis = 1)`, `tile(x, [1, 2])`, `repeat(x, 2, axis = 1)`, `one_hot(ids, 10)`, `gather(x, ids)`, `random_normal(x)`, \
`reshape(x, [4, -1])`, `transpose(x, [0, 2, 1])`, `expand_dims(x, axis = 1)`, `squeeze(x, axis = 1)`, \
weights read as `self.gamma`, `for i in 0..3 { .. }` loops, activations such as `relu(x)`, `flatten(x)`, `dropout(x, 0.25)`, \
`global_average_pooling(x)`, `global_max_pooling(x)`, `last_step(x)`, the merges `add([..])`, \
`average([..])`, `maximum([..])`, `minimum([..])`, `dot(a, b)`, `let` bindings and `return`";

/// The lowering of a `call` body under way: the graph so far, what each name and field is bound
/// to, and the checks and constants it has emitted.
struct Lower {
    model: Model,
    /// Each node's shape as constant expressions (its rank is known here, its dimensions to rustc).
    shapes: Vec<Vec<TokenStream>>,
    /// The shape checks, each spanned at the user's expression: a call of one of `kiln-shapes`'
    /// functions, run here where its arguments are known ([`known`]), else by rustc.
    checks: Vec<(Span, TokenStream)>,
    /// What the checks read that the macro knows: the fields' types, the field calls' shapes.
    known: known::Known,
    /// The layers of the other styles the fields are, by field name, for ONNX export.
    keras: HashMap<String, (Rc<dyn Spec>, known::Form)>,
    fields: HashMap<String, usize>,
    env: HashMap<String, usize>,
    /// Names whose `let` failed (reported there): a later use of one reports nothing more.
    failed: HashSet<String>,
    ops: usize,
    errors: Errors,
    name: Ident,
    /// Array or Vec fields indexed in `call`, with the indices used.
    indexed: BTreeMap<String, BTreeSet<usize>>,
    /// The model's constants: the output shape of each field call.
    consts: Vec<TokenStream>,
    /// `self.add_loss` terms: each one's name and layer.
    added: Vec<(String, usize)>,
    /// The model's size parameters as arguments (`<H>`; empty without any), and their names.
    ty_args: TokenStream,
    params: Vec<Ident>,
}

impl Lower {
    /// The model's type, with its size parameters (`Mlp<H>`).
    fn model_ty(&self) -> TokenStream {
        let (name, args) = (&self.name, &self.ty_args);
        quote!(#name #args)
    }

    /// The type alias of field `key`, with the model's size parameters.
    pub(super) fn alias(&self, key: &str) -> TokenStream {
        let (alias, args) = (field_alias(&self.name, key), &self.ty_args);
        quote!(#alias #args)
    }

    fn node(&mut self, layer: usize, inputs: Vec<usize>, tokens: TokenStream, shape: Vec<TokenStream>) -> usize {
        let id = self.model.nodes.len();
        self.model.nodes.push(Node {
            op: Op::Apply(layer),
            inputs,
            tokens,
            output_shape: vec![],
            input_shapes: vec![],
            dims: Some(shape.clone()),
        });
        self.model.layers[layer].apps.push(id);
        self.shapes.push(shape);
        id
    }

    /// A shape as a constant slice expression, for the checks.
    fn slice(&self, node: usize) -> TokenStream {
        let dims = &self.shapes[node];
        quote!(&[#(#dims),*])
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
        self.checks.push((span, quote_spanned!(span=> ::kiln::__private::#f(#what, #a, #b))));
    }

    fn field_layer(&mut self, key: String, place: TokenStream, ident: Ident, tokens: TokenStream) -> usize {
        if let Some(&l) = self.fields.get(&place.to_string()) {
            return l;
        }
        self.model.layers.push(LayerDef {
            name: ident,
            kind: Rc::new(Field { alias: self.alias(&key), key }),
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
        // Ranks are known here; dimensions are checked by rustc.
        let rank = self.shapes[ins[0]].len();
        if let Some(&i) = ins.iter().find(|&&i| self.shapes[i].len() != rank) {
            self.errors
                .at(span, format!("{what} needs inputs of the same rank, got {rank} and {}", self.shapes[i].len()));
            return None;
        }
        if kind.class() == "Dot" && rank != 1 {
            self.errors.at(span, format!("dot takes two vectors, got tensors of rank {rank}"));
            return None;
        }
        let mut shape = self.shapes[ins[0]].clone();
        match kind.class() {
            "Concatenate" => {
                let lasts = ins.iter().map(|&i| self.shapes[i][rank - 1].clone());
                shape[rank - 1] = quote!((0 #(+ #lasts)*));
                let first = self.slice(ins[0]);
                for &i in &ins[1..] {
                    let other = self.slice(i);
                    self.check(span, "expect_same_lead", what, first.clone(), other);
                }
            }
            "Dot" => shape = vec![quote!(1usize)],
            _ => {}
        }
        if kind.class() != "Concatenate" {
            for &i in &ins[1..] {
                if rank == 1 {
                    let (w0, wi) = (self.shapes[ins[0]][0].clone(), self.shapes[i][0].clone());
                    self.check(span, "expect_same", what, w0, wi);
                } else {
                    let (a, b) = (self.slice(ins[0]), self.slice(i));
                    self.check(span, "expect_same_dims", what, a, b);
                }
            }
        }
        let layer = self.op_layer(kind, tokens.clone());
        Some(self.node(layer, ins, tokens, shape))
    }

    /// The node computing an expression of `call`; `None` after an error (reported).
    fn value(&mut self, e: &Expr) -> Option<usize> {
        let tokens = e.to_token_stream();
        match e {
            Expr::Paren(p) => self.value(&p.expr),
            Expr::Group(g) => self.value(&g.expr),
            Expr::Path(p) if p.path.get_ident().is_some() => {
                let id = p.path.get_ident().expect("checked");
                match self.env.get(&id.to_string()) {
                    Some(&n) => Some(n),
                    None if self.failed.contains(&id.to_string()) => None,
                    None => {
                        self.errors.at(id.span(), format!("undefined tensor `{id}`"));
                        None
                    }
                }
            }
            Expr::Binary(b) => {
                if let Some(n) = self.with_number(b, tokens.clone()) {
                    return n;
                }
                let (kind, what) = match b.op {
                    syn::BinOp::Add(_) => ("Add", "`+`"),
                    syn::BinOp::Sub(_) => ("Subtract", "`-`"),
                    syn::BinOp::Mul(_) => ("Multiply", "`*`"),
                    syn::BinOp::Div(_) => ("Divide", "`/`"),
                    _ => {
                        self.errors.at(b.op.span(), format!("unsupported operator: {SUPPORTED}"));
                        return None;
                    }
                };
                let (l, r) = (self.value(&b.left)?, self.value(&b.right)?);
                self.broadcast(kind, what, l, r, tokens, b.op.span())
            }
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
                let x = self.value(&u.expr)?;
                self.elementwise_op(unary("negative").expect("listed"), x, tokens)
            }
            Expr::Lit(_) => {
                self.errors.at(e.span(), "a number alone is not a tensor: use it with one, as in `x * 0.5`");
                None
            }
            // self.gamma: a weight read as a tensor
            Expr::Field(fe) if matches!(&*fe.base, Expr::Path(p) if p.path.is_ident("self")) => {
                self.weight_read(fe, tokens)
            }
            // self.field(x)
            Expr::MethodCall(mc) if matches!(&*mc.receiver, Expr::Path(p) if p.path.is_ident("self")) => {
                if mc.args.is_empty() {
                    self.errors.at(mc.span(), "a layer takes its input tensor: self.layer(x)");
                    return None;
                }
                let m = mc.method.clone();
                let args: Vec<&Expr> = mc.args.iter().collect();
                self.field_call(m.to_string(), quote!(self.#m), m, &args, tokens, mc.span())
            }
            Expr::Call(c) => match &*c.func {
                f @ (Expr::Field(_) | Expr::Index(_)) => self.layer_call(f, c, tokens),
                Expr::Path(p) if p.path.get_ident().is_some() => self.function(p, c, tokens),
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

    /// `self.field(x)` / `self.field[i](x)`: a field applied, or an element of an array or Vec
    /// field (`f`: the callee).
    fn layer_call(&mut self, f: &Expr, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
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
                    let local = format_ident!("__kiln_{}_{}", m.to_string(), idx);
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
        if c.args.is_empty() {
            self.errors.at(c.span(), "a layer takes its input tensor: self.layer(x)");
            return None;
        }
        let args: Vec<&Expr> = c.args.iter().collect();
        self.field_call(key, place, ident, &args, tokens, c.span())
    }

    /// A function of tensors in `call`: an activation (`relu(x)`), `flatten`, `dropout`,
    /// `last_step`, global pooling, `dot` and the merges.
    fn function(&mut self, p: &syn::ExprPath, c: &syn::ExprCall, tokens: TokenStream) -> Option<usize> {
        let fname = p.path.get_ident().expect("checked").to_string();
        if let Some(node) = self.axis_function(&fname, c, tokens.clone()) {
            return node;
        }
        if let Some(node) = self.copy_function(&fname, c, tokens.clone()) {
            return node;
        }
        if let Some(act) = Act::named(&fname) {
            if c.args.len() != 1 {
                self.errors.at(c.span(), format!("{fname} takes one tensor"));
                return None;
            }
            let x = self.value(&c.args[0])?;
            let shape = self.shapes[x].clone();
            let layer = self.op_layer(Rc::new(Activation::new(act)), tokens.clone());
            return Some(self.node(layer, vec![x], tokens, shape));
        }
        let span = c.span();
        if let Some(node) = self.math_function(&fname, c, tokens.clone()) {
            return node;
        }
        match fname.as_str() {
            "flatten" if c.args.len() == 1 => {
                let x = self.value(&c.args[0])?;
                let shape = vec![product(&self.shapes[x])];
                let layer = self.op_layer(flatten(), tokens.clone());
                Some(self.node(layer, vec![x], tokens, shape))
            }
            "dropout" if c.args.len() == 2 => {
                let x = self.value(&c.args[0])?;
                let rate = match &c.args[1] {
                    Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
                    Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<f64>().ok(),
                    _ => None,
                };
                let Some(rate) = rate.filter(|r| (0.0..1.0).contains(r)) else {
                    self.errors
                        .at(c.args[1].span(), "dropout's rate must be a number in [0, 1), e.g. dropout(h, 0.25)");
                    return None;
                };
                let shape = self.shapes[x].clone();
                let layer = self.op_layer(dropout(rate as f32), tokens.clone());
                Some(self.node(layer, vec![x], tokens, shape))
            }
            "last_step" if c.args.len() == 1 => {
                let x = self.value(&c.args[0])?;
                if self.shapes[x].len() != 2 {
                    self.errors.at(
                        span,
                        format!(
                            "last_step takes a sequence [steps, features], got a tensor of rank {}",
                            self.shapes[x].len()
                        ),
                    );
                    return None;
                }
                let shape = vec![self.shapes[x][1].clone()];
                let layer = self.op_layer(last_step(), tokens.clone());
                Some(self.node(layer, vec![x], tokens, shape))
            }
            "global_average_pooling" | "global_max_pooling" if c.args.len() == 1 => {
                let x = self.value(&c.args[0])?;
                let rank = self.shapes[x].len();
                if !(2..=3).contains(&rank) {
                    self.errors.at(
                        span,
                        format!(
                            "{fname} takes steps [steps, channels] or an image [height, width, channels], \
                             got a tensor of rank {rank}"
                        ),
                    );
                    return None;
                }
                let shape = vec![self.shapes[x][rank - 1].clone()];
                let layer = self.op_layer(global_pool(fname == "global_max_pooling", rank), tokens.clone());
                Some(self.node(layer, vec![x], tokens, shape))
            }
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

    /// Applies field `key` (at `place`) to `arg`, with its compile-time shape check: the field
    /// type's rule (`Shaped`: the last axis `IN` wide to `OUT` wide, a window over the axes
    /// before, or a width kept) applied to the input's shape, whose result is a constant of the
    /// model (`__KILN_SHAPE_<node>`), so a stack of windows stays a short expression.
    pub(super) fn field_call(
        &mut self,
        key: String,
        place: TokenStream,
        ident: Ident,
        args: &[&Expr],
        tokens: TokenStream,
        span: Span,
    ) -> Option<usize> {
        // The first input sets the output's shape; others (attention's value and mask) are
        // checked by the type's rules for them.
        let ins = args.iter().map(|a| self.value(a)).collect::<Option<Vec<usize>>>()?;
        let x = ins[0];
        let model_ty = self.model_ty();
        let alias = self.alias(&key);
        let rule = quote!(::kiln::__private::field_rule::<#alias>());
        let what = format!("layer `{key}`");
        let got = self.slice(x);
        self.check(span, "expect_field", &what, rule.clone(), got.clone());
        let all = ins.iter().map(|&i| self.slice(i));
        self.check(span, "expect_inputs", &what, rule.clone(), quote!(&[#(#all),*]));
        let first = self.fields.get(&place.to_string()).and_then(|&l| self.model.layers[l].apps.first().copied());
        if let Some(first) = first {
            // A window was sized for the shape of the field's first call.
            let before = self.slice(self.model.nodes[first].inputs[0]);
            self.check(span, "expect_rebind", &what, quote!(#rule, #before), got.clone());
        }
        let tensor = quote!(<#alias as ::kiln::__private::Shaped>::TENSOR);
        self.checks.push((span, quote_spanned!(span=> ::kiln::__private::expect_layer_field(#what, #tensor))));
        let layer = self.field_layer(key, place, ident, tokens.clone());
        let id = self.model.nodes.len();
        let konst = format_ident!("__KILN_SHAPE_{}", id);
        let rank = self.shapes[x].len();
        let dims = (0..rank).map(|i| quote!(::kiln::__private::field_dim(#rule, #got, #i)));
        let dims: Vec<TokenStream> = dims.collect();
        self.known.shapes.insert(konst.to_string(), dims.clone());
        self.consts.push(quote! {
            #[doc(hidden)]
            pub const #konst: [usize; #rank] = [#(#dims),*];
        });
        let shape = (0..rank).map(|i| quote!(<#model_ty>::#konst[#i])).collect();
        Some(self.node(layer, ins, tokens, shape))
    }

    fn outputs(&mut self, e: &Expr) -> Option<Vec<usize>> {
        match e {
            Expr::Tuple(t) => t.elems.iter().map(|x| self.value(x)).collect(),
            other => self.value(other).map(|v| vec![v]),
        }
    }
}

/// `#[kiln::call]`: lowers the `call` body to the graph IR, with the checks of its shapes that
/// rustc evaluates through the field constants; and the output shapes its signature declares.
///
/// `fields` are the struct's fields and their (element) types, as the struct macro hands them on:
/// the checks on fields of kiln's own types written with numbers run here.
pub fn lower(item: ItemImpl, fields: &[(Ident, Type)]) -> syn::Result<(CallBody, Vec<Vec<TokenStream>>)> {
    let (name, func) = call_fn(&item)?;
    let ty_args = {
        let (_, ty_g, _) = item.generics.split_for_impl();
        quote!(#ty_g)
    };
    let (mut known, mut keras) = (known::Known::default(), HashMap::new());
    if item.generics.params.is_empty() {
        for (key, ty) in fields {
            if let Some(f) = field_type(ty) {
                known.fields.insert(field_alias(&name, &key.to_string()).to_string(), f);
            }
            if let Some(spec) = known::keras_spec(ty) {
                keras.insert(key.to_string(), spec);
            }
        }
    }
    let mut lw = Lower {
        model: Model {
            attrs: vec![],
            vis: syn::Visibility::Inherited,
            name: name.clone(),
            layers: vec![],
            nodes: vec![],
            inputs: vec![],
            int_inputs: vec![],
            text: None,
            outputs: vec![],
            functional: false,
            invocation: None,
            generics: syn::Generics::default(),
        },
        shapes: vec![],
        checks: vec![],
        known,
        keras,
        fields: HashMap::new(),
        env: HashMap::new(),
        ops: 0,
        errors: Errors::default(),
        name: name.clone(),
        indexed: Default::default(),
        failed: Default::default(),
        consts: vec![],
        added: vec![],
        ty_args,
        params: item.generics.const_params().map(|c| c.ident.clone()).collect(),
    };
    lw.inputs(&func.sig);
    let out_shapes = lw.out_shapes(&func.sig);
    let result = lw.body(&func.block);
    match &result {
        Some((outs, span)) if outs.len() != out_shapes.len() => lw.errors.at(
            *span,
            format!("call returns {} tensor(s) but its signature declares {} output(s)", outs.len(), out_shapes.len()),
        ),
        None if lw.errors.is_empty() => lw.errors.at(func.block.span(), "call must end with the output tensor"),
        _ => {}
    }
    std::mem::take(&mut lw.errors).finish()?;
    let (outs, _) = result.expect("checked above");
    lw.declared_outputs(&outs, &out_shapes, func.sig.output.span());
    std::mem::take(&mut lw.errors).finish()?;
    lw.model.outputs = outs;
    lw.check_ids();
    std::mem::take(&mut lw.errors).finish()?;
    // Every value must reach an output, and inputs be used, as in functional!.
    let mut errors = Errors::default();
    crate::shape::check_graph(&lw.model, &mut errors);
    errors.finish()?;
    let checks = lw.run_checks()?;
    let export = lw.exportable();
    let Lower { model, indexed, consts, added, .. } = lw;
    let added_losses = added.into_iter().map(|(n, l)| (n, model.layers[l].name.clone())).collect();
    let generics = item.generics.clone();
    Ok((CallBody { model, checks, indexed, consts, added_losses, generics, export }, out_shapes))
}

/// The model's name and its `call` method.
fn call_fn(item: &ItemImpl) -> syn::Result<(Ident, &syn::ImplItemFn)> {
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
    Ok((name, func))
}

impl Lower {
    /// Runs the checks whose arguments the macro knows: their failures are the errors, at the
    /// user's code; the others are left to rustc, as constants of the model (those that passed
    /// too, so that rustc has the last word on every type).
    fn run_checks(&mut self) -> syn::Result<Vec<TokenStream>> {
        let mut errors = Errors::default();
        for (span, check) in &self.checks {
            if let Some(Some(message)) = self.known.verdict(check) {
                errors.at(*span, message);
            }
        }
        errors.finish()?;
        Ok(self.checks.iter().map(|(span, check)| crate::layers::const_check(*span, check.clone())).collect())
    }

    fn check_ids(&mut self) {
        let model = &self.model;
        for (k, &(_, input)) in model.inputs.iter().enumerate().filter(|(k, _)| model.int_inputs[*k]) {
            for node in model.nodes.iter().filter(|n| n.inputs.contains(&input)) {
                let at = node.inputs.iter().position(|&i| i == input).unwrap_or(0);
                let layer = model.layer_of_node(node);
                // A field of a kiln type the macro knows reads floats unless it is an Embedding
                // (rustc checks the others' `Shaped::IDS`).
                let floats = layer.and_then(|l| l.kind.field_key()).and_then(|key| {
                    self.known.fields.get(&field_alias(&self.name, key).to_string()).filter(|f| !f.ids).map(|_| key)
                });
                if let Some(key) = floats {
                    self.errors.over(
                        &node.tokens,
                        format!(
                            "field `{key}` reads floats, but `{}` holds token ids (Ids<..>): give the ids to a model \
                             whose input is `dtype = i32`",
                            model.inputs[k].0
                        ),
                    );
                } else if layer.is_none_or(|l| l.kind.field_key().is_none() && !l.kind.reads_ids(at)) {
                    self.errors.over(
                        &node.tokens,
                        format!(
                            "`{}` holds token ids (Ids<..>): give it to a field that reads them, a model whose input \
                             is `dtype = i32`",
                            model.inputs[k].0
                        ),
                    );
                }
            }
        }
    }
}
