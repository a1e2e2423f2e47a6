//! Back end: a checked [`Model`] to Rust, for every model style. Assumes shapes were inferred and
//! the graph checked.
//!
//! A generated model has one field per layer that computes (views have none), typed with the
//! layer's static shape (`Dense<64, 10, Softmax>`); buffers for the second and later uses of a
//! shared layer; and one gradient accumulator per value read by several layers. Forward and
//! backward are straight-line code in node order, with every dimension a constant: no graph is
//! interpreted at run time. Generated code names the runtime only through `::kiln::__private`.
//!
//! - [`Gen`] (this file): places, forward and backward statements;
//! - `model.rs`: the struct of `sequential!` / `functional!` and the trait impls every style has;
//! - `fallback.rs`: what is emitted beside an error, so that one mistake gives one error.

mod fallback;
mod model;
pub mod subclass;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{LayerDef, Model, Op};
use crate::layers::{Arity, Dim, lit, rt};

pub use fallback::{fallback, fallback_with, generic_fallback, model_impl};
pub use model::{ImplParts, expand, impls, shaped_impl, type_path};

pub struct Gen<'m> {
    pub m: &'m Model,
    /// Where generated state lives: `self` for the model macros, `self.kiln.call` for
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

    /// A node's output shape as dimensions in generated code.
    pub fn dims(&self, node: usize) -> Vec<Dim> {
        let n = &self.m.nodes[node];
        n.dims.clone().unwrap_or_else(|| lit(&n.output_shape))
    }

    /// The input shapes of a layer's first application.
    pub fn in_dims(&self, l: &LayerDef) -> Vec<Vec<Dim>> {
        self.m.nodes[l.apps[0]].inputs.iter().map(|&j| self.dims(j)).collect()
    }

    pub fn ty(&self, l: &LayerDef) -> TokenStream {
        l.kind.runtime_type(&self.in_dims(l))
    }

    pub fn constructor(&self, l: &LayerDef) -> TokenStream {
        l.kind.constructor(&self.in_dims(l), &self.m.nodes[l.apps[0]].input_shapes)
    }

    /// A later application of a shared layer, whose buffers are swapped in for its passes.
    fn is_later_use(&self, node: usize) -> bool {
        self.m.app_index(node) > 0
    }

    /// Where a node's values are after the forward pass.
    pub fn out_expr(&self, node: usize) -> TokenStream {
        let rt = rt();
        let node = self.m.resolve(node);
        match self.m.nodes[node].op {
            Op::Input(i) => quote!(xs[#i]),
            Op::Apply(_) if self.is_later_use(node) => {
                let b = self.buf_place(node);
                quote!(#rt::LayerBuffers::output(&#b))
            }
            Op::Apply(_) => {
                let f = self.field(node);
                quote!(#rt::Layer::output(&#f))
            }
        }
    }

    /// Every gradient flowing into value `u` (a non-view node): from the model outputs it is, and
    /// from each layer that reads it.
    pub fn contributions(&self, u: usize) -> Vec<TokenStream> {
        let rt = rt();
        let mut out = Vec::new();
        for (k, &o) in self.m.outputs.iter().enumerate() {
            if self.m.resolve(o) == u {
                out.push(quote!(dys[#k]));
            }
        }
        for c in self.computing() {
            for (s, &j) in self.m.nodes[c].inputs.iter().enumerate() {
                if self.m.resolve(j) != u {
                    continue;
                }
                out.push(if self.is_later_use(c) {
                    let b = self.buf_place(c);
                    quote!(#rt::LayerBuffers::input_grad(&#b, #s))
                } else {
                    let f = self.field(c);
                    quote!(#rt::Layer::input_grad(&#f, #s))
                });
            }
        }
        out
    }

    /// The output `k` whose loss gradient may arrive fused into node `c`'s softmax, if any: `c`
    /// is that output, nothing else reads it, and its layer ends in a softmax.
    pub fn fusable_output(&self, c: usize) -> Option<usize> {
        let k = self.m.outputs.iter().position(|&o| self.m.resolve(o) == c)?;
        let only = self.contributions(c).len() == 1;
        (only && self.layer(c).kind.softmax_output(&self.m.nodes[c].output_shape)).then_some(k)
    }

    /// The gradient of value `u`, emitting its accumulation first when several layers read it.
    fn grad(&self, u: usize, stmts: &mut Vec<TokenStream>) -> TokenStream {
        let rt = rt();
        let parts = self.contributions(u);
        match parts.len() {
            // Nothing reads it: a term added to the loss, whose layer seeds its own gradient.
            0 => return quote!(&[]),
            1 => return parts.into_iter().next().unwrap_or_default(),
            _ => {}
        }
        let g = self.grad_place(u);
        stmts.push(quote!(#rt::accumulate(&mut #g, &[#(#parts),*]);));
        quote!(&#g[..])
    }

    /// Wraps a call on a shared layer's later application in the swap of its buffers.
    fn swapped(&self, node: usize, call: TokenStream) -> TokenStream {
        if !self.is_later_use(node) {
            return call;
        }
        let (rt, f, b) = (rt(), self.field(node), self.buf_place(node));
        quote! {
            #rt::swap_buffers(&mut #f, &mut #b);
            #call
            #rt::swap_buffers(&mut #f, &mut #b);
        }
    }

    /// Buffers for the second and later uses of shared layers, with their types.
    pub fn extra_bufs(&self) -> Vec<(Ident, TokenStream)> {
        let rt = rt();
        self.computing()
            .filter(|&i| self.is_later_use(i))
            .map(|i| {
                let ty = self.ty(self.layer(i));
                (self.buf(i), quote!(<#ty as #rt::Shareable>::Buffers))
            })
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

    /// What `predict` returns: an array of the output's rank plus the batch axis for one output,
    /// a tuple of those for several.
    pub fn prediction(&self) -> TokenStream {
        let rt = rt();
        let each: Vec<TokenStream> = self
            .m
            .outputs
            .iter()
            .map(|&o| {
                let rank = self.m.nodes[o].dims.as_ref().map_or(self.m.nodes[o].output_shape.len(), Vec::len);
                match rank {
                    1 => quote!(#rt::Array2<f32>),
                    2 => quote!(#rt::Array3<f32>),
                    3 => quote!(#rt::Array4<f32>),
                    4 => quote!(#rt::Array5<f32>),
                    5 => quote!(#rt::Array6<f32>),
                    _ => quote!(#rt::ArrayD<f32>),
                }
            })
            .collect();
        if each.len() == 1 { each[0].clone() } else { quote!((#(#each,)*)) }
    }

    pub fn computing(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        (0..self.m.nodes.len()).filter(|&i| self.m.layer_of(i).is_some_and(|l| !l.kind.is_view()))
    }

    pub fn forward(&self) -> TokenStream {
        let rt = rt();
        let steps = self.computing().map(|i| {
            let f = self.field(i);
            let ins = self.m.nodes[i].inputs.iter().map(|&j| self.out_expr(j));
            let ctx = self.ctx(i);
            self.swapped(i, quote!(#rt::Layer::forward(&mut #f, &[#(#ins),*], #ctx);))
        });
        quote!(#(#steps)*)
    }

    /// The context a layer call gets: the model's, with its inputs' masks for a layer that reads
    /// them.
    fn ctx(&self, node: usize) -> TokenStream {
        let rt = rt();
        if !self.layer(node).kind.uses_mask() {
            return quote!(ctx);
        }
        let masks: Vec<TokenStream> = (0..3)
            .map(|s| match self.m.nodes[node].inputs.get(s).and_then(|&j| self.m.mask_source(j)) {
                Some(e) => {
                    let f = self.field(e);
                    quote!(Some(#rt::MaskSource::mask(&#f)))
                }
                None => quote!(None),
            })
            .collect();
        if masks.iter().all(|m| m.to_string() == "None") {
            return quote!(ctx);
        }
        quote!(&mut ctx.masked([#(#masks),*]))
    }

    /// The inherent functions every model style gets: `__kiln_run`, `__kiln_output` and
    /// `__kiln_backward`, each starting with `bind` (bindings of indexed fields, mutable or not).
    pub fn passes(&self, bind_mut: &TokenStream, bind_ref: &TokenStream) -> TokenStream {
        let rt = rt();
        let (forward, backward, outputs) = (self.forward(), self.backward(), self.output_arms());
        let (layer_names, layer_outputs): (Vec<String>, Vec<TokenStream>) =
            self.computing().map(|i| (self.layer(i).name.to_string(), self.out_expr(i))).unzip();
        quote! {
            // Each layer application's output after the forward pass, in the order they ran.
            #[allow(unused_variables)]
            fn __kiln_visit_outputs(&self, f: &mut dyn FnMut(&str, &[f32])) {
                #bind_ref
                #(f(#layer_names, #layer_outputs);)*
            }

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
    }

    pub fn backward(&self) -> TokenStream {
        let rt = rt();
        let mut stmts = Vec::new();
        let mut seen_layer = std::collections::HashSet::new();
        for c in self.computing().rev() {
            let dy = self.grad(c, &mut stmts);
            let f = self.field(c);
            let node = &self.m.nodes[c];
            let ins = node.inputs.iter().map(|&j| self.out_expr(j));
            // The model's own inputs need a gradient only when the model is a layer of another.
            let from_inputs = node.inputs.iter().all(|&j| matches!(self.m.nodes[self.m.resolve(j)].op, Op::Input(_)));
            let input_grad = if from_inputs { quote!(input_grad) } else { quote!(true) };
            // The last use (first seen here) overwrites the parameter gradients; earlier uses add.
            let kind = &self.layer(c).kind;
            let merge = kind.arity() != Arity::One && !kind.call_args();
            let acc = if merge || seen_layer.insert(self.layer(c).name.to_string()) {
                quote!(accumulate)
            } else {
                quote!(true)
            };
            let fused = match self.fusable_output(c) {
                Some(k) => quote!(fused[#k]),
                None => quote!(false),
            };
            let ctx = self.ctx(c);
            stmts.push(self.swapped(
                c,
                quote!(#rt::Layer::backward(&mut #f, &[#(#ins),*], #dy, #ctx, #rt::BackwardOpts {
                    input_grad: #input_grad, accumulate: #acc, fused_output: #fused,
                });),
            ));
        }
        quote!(#(#stmts)*)
    }
}
