//! Back end: a checked [`Model`] to Rust. Assumes shapes were inferred and the graph checked.
//!
//! The generated struct has one field per layer that computes (views have none), typed with the
//! layer's static shape (`Dense<64, 10, Softmax>`); extra buffers for the second and later uses
//! of a shared layer; and one gradient accumulator per value read by several layers. Forward and
//! backward are straight-line code in node order, with every dimension a constant: no graph is
//! interpreted at run time. Generated code names the runtime only through `::kiln::__private`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{LayerDef, LayerKind, Model, Op};

fn rt() -> TokenStream {
    quote!(::kiln::__private)
}

pub struct Gen<'m> {
    pub m: &'m Model,
    pub rt: TokenStream,
    /// Where generated state lives: `self` for the model macros, `self.__kiln_call` for
    /// `#[kiln::model]` structs, whose fields the user declares.
    pub state: TokenStream,
}

impl Gen<'_> {
    pub fn layer(&self, node: usize) -> &LayerDef {
        self.m.layer_of(node).expect("an application")
    }

    /// The layer a node applies, as a place expression (`self.dense`, `self.blocks[2]`).
    fn field(&self, node: usize) -> TokenStream {
        let l = self.layer(node);
        match &l.place {
            Some(p) => p.clone(),
            None => {
                let (state, name) = (&self.state, &l.name);
                quote!(#state.#name)
            }
        }
    }

    pub fn buf(&self, node: usize) -> Ident {
        format_ident!("__kiln_buf_{}_{}", self.layer(node).name, self.m.app_index(node))
    }

    fn buf_place(&self, node: usize) -> TokenStream {
        let (state, b) = (&self.state, self.buf(node));
        quote!(#state.#b)
    }

    pub fn grad_buf(node: usize) -> Ident {
        format_ident!("__kiln_grad_{}", node)
    }

    fn grad_place(&self, node: usize) -> TokenStream {
        let (state, g) = (&self.state, Self::grad_buf(node));
        quote!(#state.#g)
    }

    fn ty(&self, l: &LayerDef) -> TokenStream {
        let rt = &self.rt;
        let ins = &self.m.nodes[l.apps[0]].input_shapes;
        match &l.kind {
            LayerKind::Dense { units, act, .. } => {
                let (inp, a) = (ins[0][0], format_ident!("{}", act.ty));
                quote!(#rt::Dense<#inp, #units, #rt::#a>)
            }
            LayerKind::Activation { act } => {
                let (a, width) = (format_ident!("{}", act.ty), *ins[0].last().unwrap_or(&1));
                quote!(#rt::Activation<#rt::#a, #width>)
            }
            LayerKind::Elementwise { class } => {
                let c = format_ident!("{}", class);
                quote!(#rt::#c)
            }
            LayerKind::Concatenate { .. } => quote!(#rt::Concatenate),
            LayerKind::Dot => quote!(#rt::Dot),
            LayerKind::Flatten | LayerKind::Reshape { .. } | LayerKind::Field { .. } => {
                unreachable!("views and user fields get no generated field")
            }
        }
    }

    fn constructor(&self, l: &LayerDef) -> TokenStream {
        let ty = self.ty(l);
        let ins = &self.m.nodes[l.apps[0]].input_shapes;
        match &l.kind {
            LayerKind::Dense { use_bias, .. } => quote!(<#ty>::new(#use_bias, &mut rng)),
            LayerKind::Concatenate { axis } => {
                let rank = ins[0].len() as i64;
                let a = (if *axis < 0 { rank + 1 + axis } else { *axis } - 1) as usize;
                let outer: usize = ins[0][..a].iter().product();
                let widths = ins.iter().map(|s| s[a..].iter().product::<usize>());
                quote!(<#ty>::new(#outer, &[#(#widths),*]))
            }
            LayerKind::Dot => {
                let w = ins[0][0];
                quote!(<#ty>::new(#w))
            }
            _ => quote!(<#ty>::new()),
        }
    }

    /// Where a node's values are after the forward pass.
    pub fn out_expr(&self, node: usize) -> TokenStream {
        let rt = &self.rt;
        let node = self.m.resolve(node);
        match self.m.nodes[node].op {
            Op::Input(i) => quote!(xs[#i]),
            Op::Apply(_) if self.layer(node).kind.is_merge() => {
                let f = self.field(node);
                quote!(#rt::Merge::output(&#f))
            }
            Op::Apply(_) if self.m.app_index(node) == 0 => {
                let f = self.field(node);
                quote!(#rt::Layer::output(&#f))
            }
            Op::Apply(_) => {
                let b = self.buf_place(node);
                quote!(&#b.out[..])
            }
        }
    }

    /// Every gradient flowing into value `u` (a non-view node): from the model outputs it is, and
    /// from each layer that reads it. The flag says whether it comes from output `k` alone.
    pub fn contributions(&self, u: usize) -> Vec<TokenStream> {
        let rt = &self.rt;
        let mut out = Vec::new();
        for (k, &o) in self.m.outputs.iter().enumerate() {
            if self.m.resolve(o) == u {
                out.push(quote!(dys[#k]));
            }
        }
        for (c, node) in self.m.nodes.iter().enumerate() {
            let Op::Apply(_) = node.op else { continue };
            if self.layer(c).kind.is_view() {
                continue;
            }
            for (s, &j) in node.inputs.iter().enumerate() {
                if self.m.resolve(j) != u {
                    continue;
                }
                let f = self.field(c);
                out.push(if self.layer(c).kind.is_merge() {
                    quote!(#rt::Merge::input_grad(&#f, #s))
                } else if self.m.app_index(c) == 0 {
                    quote!(#rt::Layer::input_grad(&#f))
                } else {
                    let b = self.buf_place(c);
                    quote!(&#b.dx[..])
                });
            }
        }
        out
    }

    /// The output `k` whose gradient may be fused into node `c`'s softmax, if any.
    pub fn fusable_output(&self, c: usize) -> Option<usize> {
        let k = self.m.outputs.iter().position(|&o| self.m.resolve(o) == c)?;
        let only = self.contributions(c).len() == 1;
        let width: usize = self.m.nodes[c].output_shape.iter().product();
        let softmax = match &self.layer(c).kind {
            // A user field's activation is a constant rustc knows; the model's OUTPUT_ACTIVATIONS
            // carries it, and the loss fuses only when it is softmax.
            LayerKind::Field { .. } => true,
            LayerKind::Dense { act, .. } => act.is_softmax(),
            LayerKind::Activation { act } => act.is_softmax() && self.m.nodes[c].output_shape.last() == Some(&width),
            _ => false,
        };
        (only && softmax).then_some(k)
    }

    /// The gradient of value `u`, emitting its accumulation first when several layers read it.
    fn grad(&self, u: usize, stmts: &mut Vec<TokenStream>) -> TokenStream {
        let rt = &self.rt;
        let parts = self.contributions(u);
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap_or_default();
        }
        let g = self.grad_place(u);
        stmts.push(quote!(#rt::accumulate(&mut #g, &[#(#parts),*]);));
        quote!(&#g[..])
    }

    /// Wraps a call on a shared layer's later application in the swap of its buffers.
    fn swapped(&self, node: usize, call: TokenStream) -> TokenStream {
        if self.m.app_index(node) == 0 || self.layer(node).kind.is_merge() {
            return call;
        }
        let (rt, f, b) = (&self.rt, self.field(node), self.buf_place(node));
        quote! {
            #rt::swap_buffers(&mut #f, &mut #b);
            #call
            #rt::swap_buffers(&mut #f, &mut #b);
        }
    }

    /// Buffers for the second and later uses of shared layers.
    pub fn extra_bufs(&self) -> Vec<Ident> {
        self.computing()
            .filter(|&i| self.m.app_index(i) > 0 && !self.layer(i).kind.is_merge())
            .map(|i| self.buf(i))
            .collect()
    }

    /// One accumulator per value whose gradient has several contributions.
    pub fn accumulators(&self) -> Vec<Ident> {
        (0..self.m.nodes.len())
            .filter(|&u| {
                let value =
                    matches!(self.m.nodes[u].op, Op::Input(_)) || self.m.layer_of(u).is_some_and(|l| !l.kind.is_view());
                value && self.contributions(u).len() > 1
            })
            .map(Self::grad_buf)
            .collect()
    }

    /// The arms of `__kiln_output`'s match: output `k` to where its values are.
    pub fn output_arms(&self) -> Vec<TokenStream> {
        self.m
            .outputs
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let e = self.out_expr(o);
                quote!(#k => #e,)
            })
            .collect()
    }

    /// What `predict` returns: an array for one output, a tuple for several.
    pub fn prediction(&self) -> TokenStream {
        let rt = &self.rt;
        let each = self.m.outputs.iter().map(|_| quote!(#rt::Array2<f32>));
        if self.m.outputs.len() == 1 { quote!(#rt::Array2<f32>) } else { quote!((#(#each,)*)) }
    }

    pub fn computing(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        (0..self.m.nodes.len()).filter(|&i| self.m.layer_of(i).is_some_and(|l| !l.kind.is_view()))
    }

    pub fn forward(&self) -> TokenStream {
        let rt = &self.rt;
        let steps = self.computing().map(|i| {
            let f = self.field(i);
            let ins: Vec<_> = self.m.nodes[i].inputs.iter().map(|&j| self.out_expr(j)).collect();
            if self.layer(i).kind.is_merge() {
                quote!(#rt::Merge::forward(&mut #f, &[#(#ins),*], n);)
            } else {
                let x = &ins[0];
                self.swapped(i, quote!(#rt::run_layer(&mut #f, #x, n, train);))
            }
        });
        quote!(#(#steps)*)
    }

    pub fn backward(&self) -> TokenStream {
        let rt = &self.rt;
        let mut stmts = Vec::new();
        let mut seen_layer = std::collections::HashSet::new();
        for c in self.computing().rev() {
            let dy = self.grad(c, &mut stmts);
            let f = self.field(c);
            let ins: Vec<_> = self.m.nodes[c].inputs.iter().map(|&j| self.out_expr(j)).collect();
            if self.layer(c).kind.is_merge() {
                stmts.push(quote!(#rt::Merge::backward(&mut #f, &[#(#ins),*], n, #dy);));
                continue;
            }
            let from_input = matches!(self.m.nodes[self.m.resolve(self.m.nodes[c].inputs[0])].op, Op::Input(_));
            let input_grad = if from_input { quote!(input_grad) } else { quote!(true) };
            // The last use (first seen here) overwrites the parameter gradients; earlier uses add.
            let acc = if seen_layer.insert(self.layer(c).name.to_string()) { quote!(accumulate) } else { quote!(true) };
            let fused = match self.fusable_output(c) {
                Some(k) => quote!(fused[#k]),
                None => quote!(false),
            };
            let x = &ins[0];
            stmts.push(self.swapped(
                c,
                quote!(#rt::Layer::backward(&mut #f, #x, n, #dy, #rt::BackwardOpts {
                    input_grad: #input_grad, accumulate: #acc, fused_output: #fused,
                });),
            ));
        }
        quote!(#(#stmts)*)
    }
}

pub fn expand(model: &Model) -> TokenStream {
    let g = Gen { m: model, rt: rt(), state: quote!(self) };
    let rt = &g.rt;
    let Model { attrs, vis, name, .. } = model;
    let computing: Vec<&LayerDef> = model.layers.iter().filter(|l| !l.kind.is_view()).collect();

    let fields = computing.iter().map(|l| {
        let (f, ty) = (&l.name, g.ty(l));
        quote!(pub #f: #ty,)
    });
    let inits = computing.iter().map(|l| {
        let (f, c) = (&l.name, g.constructor(l));
        quote!(#f: #c,)
    });
    let (extra_bufs, accumulators, outputs) = (g.extra_bufs(), g.accumulators(), g.output_arms());
    let forward = g.forward();
    let backward = g.backward();
    let with_params: Vec<&Ident> =
        computing.iter().filter(|l| matches!(l.kind, LayerKind::Dense { .. })).map(|l| &l.name).collect();
    let prefixes = with_params.iter().map(|f| f.to_string());

    let shape = |s: &[usize]| quote!(&[#(#s),*]);
    let in_ports: Vec<TokenStream> = model
        .inputs
        .iter()
        .map(|(n, node)| {
            let s = shape(&model.nodes[*node].output_shape);
            quote!(#rt::Port { name: #n, shape: #s })
        })
        .collect();
    let out_ports: Vec<TokenStream> = model
        .outputs
        .iter()
        .map(|&o| {
            let (n, s) = (model.output_name(o), shape(&model.nodes[o].output_shape));
            quote!(#rt::Port { name: #n, shape: #s })
        })
        .collect();
    let out_acts: Vec<TokenStream> = model
        .outputs
        .iter()
        .map(|&o| {
            let c = model.resolve(o);
            let a = if g.fusable_output(c).is_some() { quote!(Softmax) } else { quote!(Linear) };
            quote!(#rt::ActKind::#a)
        })
        .collect();
    let prediction = g.prediction();
    let infos = layer_infos(model);

    let act0 = out_acts.first().cloned().unwrap_or_default();
    let impls = impls(
        &g,
        &ImplParts {
            in_ports,
            out_ports,
            out_acts,
            prediction,
            layers: quote!(&[#(#infos)*]),
            prelude: quote!(),
            train_state: quote!(self.__kiln_state),
        },
    );
    // A model on vectors can be a field of a #[kiln::model] struct.
    let vector_io = model.inputs.len() == 1
        && model.outputs.len() == 1
        && model.nodes[model.inputs[0].1].output_shape.len() == 1
        && model.nodes[model.outputs[0]].output_shape.len() == 1;
    let as_field = vector_io.then(|| {
        let (win, wout) =
            (model.nodes[model.inputs[0].1].output_shape[0], model.nodes[model.outputs[0]].output_shape[0]);
        let act = &act0;
        let params: usize = model.layers.iter().map(|l| l.kind.params(&model.nodes[l.apps[0]].input_shapes[0])).sum();
        let shaped = shaped_impl(name, win, wout, act, &quote!(#params));
        quote! {
            #shaped
            impl #rt::Init for #name {
                fn init(rng: &mut #rt::StdRng) -> Self {
                    Self::with_seed(#rt::RngCore::next_u64(rng))
                }
            }
        }
    });

    quote! {
        #(#attrs)*
        #[derive(Clone, Debug)]
        #vis struct #name {
            #(#fields)*
            #(#extra_bufs: #rt::Buffers,)*
            #(#accumulators: ::std::vec::Vec<f32>,)*
            __kiln_state: #rt::TrainState,
        }

        impl #name {
            /// A new model, initialised as Keras does, from kiln's default seed.
            pub fn new() -> Self {
                Self::with_seed(#rt::DEFAULT_SEED)
            }

            /// A new model whose initial weights, shuffling order and other random choices all
            /// follow from `seed`.
            pub fn with_seed(seed: u64) -> Self {
                let mut rng = <#rt::StdRng as #rt::SeedableRng>::seed_from_u64(seed);
                let _ = &mut rng;
                Self {
                    #(#inits)*
                    #(#extra_bufs: ::core::default::Default::default(),)*
                    #(#accumulators: ::std::vec::Vec::new(),)*
                    __kiln_state: #rt::TrainState::new(seed),
                }
            }

            fn __kiln_run(&mut self, xs: &[&[f32]], n: usize, train: bool) {
                #forward
            }

            fn __kiln_output(&self, k: usize) -> &[f32] {
                match k {
                    #(#outputs)*
                    _ => &[],
                }
            }

            #[allow(unused_variables)]
            fn __kiln_backward(&mut self, xs: &[&[f32]], n: usize, dys: &[&[f32]], fused: &[bool], accumulate: bool, input_grad: bool) {
                #backward
            }

            fn __kiln_visit(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                #(#rt::Layer::visit_params(&self.#with_params, &mut |p, v| f(&::std::format!("{}.{}", #prefixes, p), v));)*
            }

            fn __kiln_visit_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                #(#rt::Layer::visit_params_mut(&mut self.#with_params, f);)*
            }
        }

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self::new()
            }
        }

        #impls
        #as_field
    }
}

/// What differs between the model styles in [`impls`].
pub struct ImplParts {
    /// `Port` values of the inputs and outputs.
    pub in_ports: Vec<TokenStream>,
    pub out_ports: Vec<TokenStream>,
    /// Per output, the `ActKind` its loss may fuse with.
    pub out_acts: Vec<TokenStream>,
    /// `Model::Prediction`.
    pub prediction: TokenStream,
    /// The `LAYERS` table expression.
    pub layers: TokenStream,
    /// Statements run first in `&self` methods (bindings of indexed fields).
    pub prelude: TokenStream,
    /// Where the `TrainState` lives.
    pub train_state: TokenStream,
}

/// The trait impls every generated model has: `Model`, and for one input and one output also
/// `Layer`, so it can be part of another model. They call the inherent `__kiln_*` functions.
pub fn impls(g: &Gen<'_>, p: &ImplParts) -> TokenStream {
    let ImplParts { in_ports, out_ports, out_acts, prediction, layers, prelude, train_state } = p;
    let (rt, model, state) = (&g.rt, g.m, &g.state);
    let name = &model.name;
    let name_str = name.to_string();
    // A single-input, single-output model is also a Layer, so it can be part of another model.
    let layer_impl = (model.inputs.len() == 1 && model.outputs.len() == 1).then(|| {
        let input_node = model.inputs[0].1;
        let parts = g.contributions(input_node);
        let input_grad = if parts.len() == 1 {
            parts[0].clone()
        } else {
            let b = Gen::grad_buf(input_node);
            quote!(&#state.#b[..])
        };
        let finish_input_grad = (parts.len() > 1).then(|| {
            let b = Gen::grad_buf(input_node);
            quote!(if input_grad { #rt::accumulate(&mut #state.#b, &[#(#parts),*]); })
        });
        quote! {
            impl #rt::Layer for #name {
                fn forward(&mut self, x: &[f32], n: usize) -> &[f32] {
                    self.__kiln_run(&[x], n, false);
                    self.__kiln_output(0)
                }
                fn forward_train(&mut self, x: &[f32], n: usize) -> &[f32] {
                    self.__kiln_run(&[x], n, true);
                    self.__kiln_output(0)
                }
                fn backward(&mut self, x: &[f32], n: usize, dy: &[f32], opts: #rt::BackwardOpts) {
                    self.__kiln_backward(&[x], n, &[dy], &[opts.fused_output], opts.accumulate, opts.input_grad);
                    let input_grad = opts.input_grad;
                    #finish_input_grad
                }
                fn output(&self) -> &[f32] {
                    self.__kiln_output(0)
                }
                #[allow(unused_variables)]
                fn input_grad(&self) -> &[f32] {
                    #prelude
                    #input_grad
                }
                fn visit_params(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                    self.__kiln_visit(f)
                }
                fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                    self.__kiln_visit_mut(f)
                }
            }
        }
    });

    quote! {
        impl #rt::Model for #name {
            const NAME: &'static str = #name_str;
            const INPUTS: &'static [#rt::Port] = &[#(#in_ports),*];
            const OUTPUTS: &'static [#rt::Port] = &[#(#out_ports),*];
            const OUTPUT_ACTIVATIONS: &'static [#rt::ActKind] = &[#(#out_acts),*];
            const LAYERS: &'static [#rt::LayerInfo] = #layers;
            type Prediction = #prediction;
            fn run(&mut self, xs: &[&[f32]], n: usize, train: bool) {
                self.__kiln_run(xs, n, train)
            }
            fn output(&self, k: usize) -> &[f32] {
                self.__kiln_output(k)
            }
            fn run_backward(&mut self, xs: &[&[f32]], n: usize, dys: &[&[f32]], fused: &[bool]) {
                self.__kiln_backward(xs, n, dys, fused, false, false)
            }
            fn visit_weights(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                self.__kiln_visit(f)
            }
            fn visit_weights_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                self.__kiln_visit_mut(f)
            }
            fn train_state(&self) -> &#rt::TrainState {
                &#train_state
            }
            fn train_state_mut(&mut self) -> &mut #rt::TrainState {
                &mut #train_state
            }
        }

        #layer_impl
    }
}

/// `Shaped` for a model on vectors, so it can be a field of a `#[kiln::model]` struct.
pub fn shaped_impl(name: &Ident, win: usize, wout: usize, act: &TokenStream, params: &TokenStream) -> TokenStream {
    let rt = rt();
    let name_str = name.to_string();
    quote! {
        impl #rt::Shaped for #name {
            const IN: usize = #win;
            const OUT: usize = #wout;
            const ACT: #rt::ActKind = #act;
            const KIND: &'static str = #name_str;
            const PARAMS: usize = #params;
            const LAYERS: &'static [#rt::LayerInfo] = <Self as #rt::Model>::LAYERS;
        }
    }
}

/// The summary's rows: input layers (functional models), then each layer once, with the output
/// shape of its first use, its parameter count, and the layers it reads (`dense[0][0]`).
fn layer_infos(model: &Model) -> Vec<TokenStream> {
    let rt = rt();
    let shape = |s: &[usize]| quote!(&[#(#s),*]);
    let mut rows = Vec::new();
    if model.functional {
        for (name, node) in &model.inputs {
            let s = shape(&model.nodes[*node].output_shape);
            rows.push(quote!(#rt::LayerInfo { name: #name, kind: "InputLayer", output_shape: #s, params: 0, connected: &[], activation: "", nested: &[] },));
        }
    }
    // Layers in the order their first use computes (Keras lists a model's layers topologically).
    let mut order: Vec<&crate::ir::LayerDef> = model.layers.iter().collect();
    order.sort_by_key(|l| l.apps[0]);
    for l in order {
        let first = &model.nodes[l.apps[0]];
        let (name, kind, s) = (l.name.to_string(), l.kind.class(), shape(&first.output_shape));
        let params = l.kind.params(&first.input_shapes[0]);
        let connected: Vec<String> = if model.functional {
            l.apps
                .iter()
                .flat_map(|&a| model.nodes[a].inputs.iter())
                .map(|&j| match model.layer_of(j) {
                    Some(src) => format!("{}[{}][0]", src.name, model.app_index(j)),
                    None => format!("{}[0][0]", model.output_name(j)),
                })
                .collect()
        } else {
            vec![]
        };
        let activation = match &l.kind {
            LayerKind::Dense { act, .. } | LayerKind::Activation { act } => {
                crate::ir::ACTIVATIONS.iter().find(|(_, t)| *t == act.ty).map_or("", |(n, _)| n)
            }
            _ => "",
        };
        rows.push(quote!(#rt::LayerInfo {
            name: #name, kind: #kind, output_shape: #s, params: #params, connected: &[#(#connected),*], activation: #activation, nested: &[]
        },));
    }
    rows
}

/// What is emitted beside the errors of a model that failed to check: the struct and its
/// constructors, so code using the model reports nothing more than the model's own mistakes.
pub fn fallback(name: &Ident, vis: &syn::Visibility) -> TokenStream {
    quote! {
        #vis struct #name;
        impl #name {
            pub fn new() -> Self { #name }
            pub fn with_seed(_seed: u64) -> Self { #name }
        }
    }
}
