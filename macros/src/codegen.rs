//! Back end: a checked [`Model`] to Rust. Assumes shapes were inferred and checked.
//!
//! The generated struct has one field per computing layer (views have none), typed with the
//! layer's static shape (`Dense<64, 10, Softmax>`), and straight-line forward and backward code
//! in node order: no graph is interpreted at run time. Everything it names goes through
//! `::kiln::__private`, so the user's imports never matter.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::ir::{LayerKind, Model, Node};

fn rt() -> TokenStream {
    quote!(::kiln::__private)
}

fn layer_type(node: &Node) -> TokenStream {
    let rt = rt();
    match &node.kind {
        LayerKind::Dense { units, act, .. } => {
            let inp = node.input_shape[0];
            let a = format_ident!("{}", act.ty);
            quote!(#rt::Dense<#inp, #units, #rt::#a>)
        }
        LayerKind::Activation { act } => {
            let a = format_ident!("{}", act.ty);
            let width = *node.input_shape.last().unwrap_or(&1);
            quote!(#rt::Activation<#rt::#a, #width>)
        }
        LayerKind::Flatten | LayerKind::Reshape { .. } => unreachable!("views have no field"),
    }
}

fn constructor(node: &Node) -> TokenStream {
    let ty = layer_type(node);
    match &node.kind {
        LayerKind::Dense { use_bias, .. } => quote!(<#ty>::new(#use_bias, &mut rng)),
        _ => quote!(<#ty>::new()),
    }
}

/// The nearest computing node at or above `i`, or `None` for the model input.
fn source(model: &Model, mut i: usize) -> Option<usize> {
    loop {
        if !model.nodes[i].kind.is_view() {
            return Some(i);
        }
        i = *model.nodes[i].inputs.first()?;
    }
}

fn input_source(model: &Model, node: &Node) -> Option<usize> {
    node.inputs.first().and_then(|&j| source(model, j))
}

pub fn expand(model: &Model) -> TokenStream {
    let rt = rt();
    let Model { attrs, vis, name, .. } = model;
    let name_str = name.to_string();
    let compute: Vec<usize> = (0..model.nodes.len()).filter(|&i| !model.nodes[i].kind.is_view()).collect();
    let field = |i: usize| &model.nodes[i].name;

    let fields = compute.iter().map(|&i| {
        let (f, ty) = (field(i), layer_type(&model.nodes[i]));
        quote_spanned!(model.nodes[i].name.span()=> pub #f: #ty,)
    });
    let inits = compute.iter().map(|&i| {
        let (f, c) = (field(i), constructor(&model.nodes[i]));
        quote!(#f: #c,)
    });

    // Forward: one binding per node; views rebind their input.
    let forward = |method: TokenStream| {
        let steps = model.nodes.iter().enumerate().map(|(i, node)| {
            let v = format_ident!("v{}", i);
            let inp = match node.inputs.first() {
                Some(j) => {
                    let vj = format_ident!("v{}", j);
                    quote!(#vj)
                }
                None => quote!(x),
            };
            if node.kind.is_view() {
                quote!(let #v = #inp;)
            } else {
                let f = &node.name;
                quote!(let #v = #rt::Layer::#method(&mut self.#f, #inp, n);)
            }
        });
        let last = format_ident!("v{}", model.nodes.len() - 1);
        quote!(#(#steps)* #last)
    };
    let fwd = forward(quote!(forward));
    let fwd_train = forward(quote!(forward_train));

    // Backward: computing layers in reverse; each reads its input from the layer before it (or x)
    // and its output gradient from the layer after it (or dy).
    let back = compute.iter().enumerate().rev().map(|(k, &i)| {
        let f = field(i);
        let input = match input_source(model, &model.nodes[i]) {
            Some(j) => {
                let fj = field(j);
                quote!(#rt::Layer::output(&self.#fj))
            }
            None => quote!(x),
        };
        let is_last = k + 1 == compute.len();
        let dy = if is_last {
            quote!(dy)
        } else {
            let next = field(compute[k + 1]);
            quote!(#rt::Layer::input_grad(&self.#next))
        };
        let input_grad = if k == 0 { quote!(opts.input_grad) } else { quote!(true) };
        let fused = if is_last { quote!(opts.fused_output) } else { quote!(false) };
        quote! {
            #rt::Layer::backward(&mut self.#f, #input, n, #dy, #rt::BackwardOpts {
                input_grad: #input_grad, accumulate: opts.accumulate, fused_output: #fused,
            });
        }
    });
    let first = field(compute[0]);
    let last = field(*compute.last().expect("checked: at least one computing layer"));

    let visit = compute.iter().map(|&i| {
        let f = field(i);
        let prefix = f.to_string();
        quote!(#rt::Layer::visit_params(&self.#f, &mut |p, v| f(&format!("{}.{}", #prefix, p), v));)
    });
    let visit_mut = compute.iter().map(|&i| {
        let f = field(i);
        quote!(#rt::Layer::visit_params_mut(&mut self.#f, f);)
    });

    let shape = |s: &[usize]| quote!(&[#(#s),*]);
    let in_shape = shape(&model.input_shape);
    let out_node = model.output().expect("checked: at least one layer");
    let out_shape = shape(&out_node.output_shape);
    let out_size: usize = out_node.output_shape.iter().product();
    let out_act = {
        let n = &model.nodes[*compute.last().unwrap_or(&0)];
        let act = match &n.kind {
            LayerKind::Dense { act, .. } => Some(act),
            LayerKind::Activation { act } if !act.is_softmax() || n.input_shape.last() == Some(&out_size) => Some(act),
            _ => None,
        };
        let a = format_ident!("{}", act.map_or("Linear", |a| a.ty));
        quote!(<#rt::#a as #rt::ActivationFn>::KIND)
    };
    let infos = model.nodes.iter().map(|n| {
        let (ln, kind) = (n.name.to_string(), n.kind.class());
        let os = shape(&n.output_shape);
        let params = match &n.kind {
            LayerKind::Dense { units, use_bias, .. } => n.input_shape[0] * units + if *use_bias { *units } else { 0 },
            _ => 0,
        };
        quote!(#rt::LayerInfo { name: #ln, kind: #kind, output_shape: #os, params: #params },)
    });

    quote! {
        #(#attrs)*
        #[derive(Clone, Debug)]
        #vis struct #name {
            #(#fields)*
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
                Self { #(#inits)* __kiln_state: #rt::TrainState::new(seed) }
            }
        }

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl #rt::Layer for #name {
            fn forward(&mut self, x: &[f32], n: usize) -> &[f32] {
                #fwd
            }
            fn forward_train(&mut self, x: &[f32], n: usize) -> &[f32] {
                #fwd_train
            }
            fn backward(&mut self, x: &[f32], n: usize, dy: &[f32], opts: #rt::BackwardOpts) {
                #(#back)*
            }
            fn output(&self) -> &[f32] {
                #rt::Layer::output(&self.#last)
            }
            fn input_grad(&self) -> &[f32] {
                #rt::Layer::input_grad(&self.#first)
            }
            fn visit_params(&self, f: &mut dyn FnMut(&str, &#rt::Param)) {
                #(#visit)*
            }
            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut #rt::Param)) {
                #(#visit_mut)*
            }
        }

        impl #rt::Model for #name {
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: &'static [usize] = #in_shape;
            const OUTPUT_SHAPE: &'static [usize] = #out_shape;
            const OUTPUT_ACTIVATION: #rt::ActKind = #out_act;
            const LAYERS: &'static [#rt::LayerInfo] = &[#(#infos)*];
            fn train_state(&self) -> &#rt::TrainState {
                &self.__kiln_state
            }
            fn train_state_mut(&mut self) -> &mut #rt::TrainState {
                &mut self.__kiln_state
            }
        }
    }
}

/// What is emitted beside the errors of a model that failed to check: the struct and its
/// constructors, so code using the model reports nothing more than the model's own mistakes.
pub fn fallback(name: &proc_macro2::Ident, vis: &syn::Visibility) -> TokenStream {
    quote! {
        #vis struct #name;
        impl #name {
            pub fn new() -> Self { #name }
            pub fn with_seed(_seed: u64) -> Self { #name }
        }
    }
}
