//! Code for a `#[kiln::call]` body: the same generator as the other styles ([`Gen`], [`impls`]),
//! with its state (merge and activation layers, buffers of shared fields, gradient sums) in a
//! struct of its own that the model's `kiln` field holds, and the layers themselves in the
//! user's fields.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use super::{Gen, ImplParts, impls, shaped_impl};
use crate::ir::Model;
use crate::ir::subclass::{CallBody, konst};
use crate::layers::rt;

fn call_state(name: &Ident) -> Ident {
    format_ident!("__KilnCall{}", name)
}

/// The code of a `#[kiln::call]` body: its call state, shape checks, constants, passes and the
/// model traits.
pub fn expand(lw: &CallBody, out_shapes: &[Vec<TokenStream>]) -> TokenStream {
    let rt = rt();
    let model = &lw.model;
    let name = &model.name;
    let state = call_state(name);
    let (ig, tg, wg) = lw.generics.split_for_impl();
    let model_ty = quote!(#name #tg);
    let g = Gen { m: model, state: quote!(self.kiln.call) };

    let state_struct = state_struct(&g, &state, &lw.generics);
    let (in_ports, id_checks) = in_ports(&g);
    let out_ports = out_ports(model, out_shapes);
    let out_acts = out_acts(&g, &model_ty);
    let prediction = g.prediction();
    let (bind_mut, bind_ref) = (bind_indexed(lw, true), bind_indexed(lw, false));
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
            added_losses: lw.added_losses.iter().map(|(n, l)| (n.clone(), quote!(self.kiln.call.#l))).collect(),
            generics: lw.generics.clone(),
        },
    );
    let field_shapes = field_shapes(&g);
    let binds = bind_inputs(&g);
    let consts = &lw.consts;
    // A model with size parameters is checked per size, when a size is used: its checks become
    // one constant of the model that building it evaluates; without, they are checked at once.
    let (checks, checked) = if lw.generics.params.is_empty() {
        (lw.checks.iter().chain(&id_checks).cloned().collect::<Vec<_>>(), TokenStream::new())
    } else {
        let each = lw.checks.iter().chain(&id_checks).map(|c| match syn::parse2::<syn::ItemConst>(c.clone()) {
            Ok(item) => {
                let e = item.expr;
                quote!(let () = #e;)
            }
            Err(_) => c.clone(),
        });
        (
            Vec::new(),
            quote! {
                #[doc(hidden)]
                const __KILN_CHECKS: () = { #(#each)* };
            },
        )
    };
    let force = if lw.generics.params.is_empty() { TokenStream::new() } else { quote!(let () = Self::__KILN_CHECKS;) };
    let passes = g.passes(&bind_mut, &bind_ref);
    let shaped = shaped_impl(model, &act0, &quote!(<#model_ty>::__KILN_PARAMS), &lw.generics);
    let save_onnx = crate::onnx::export_or(lw.export.as_ref().map_err(String::as_str), name, &model_ty, &lw.generics);
    quote! {
        #state_struct
        #save_onnx

        #(#checks)*

        impl #ig #name #tg #wg {
            #[doc(hidden)]
            pub const __KILN_SHAPES: &'static [(&'static str, &'static [usize])] = &[#(#field_shapes),*];
            #(#consts)*
            #checked

            #[doc(hidden)]
            #[allow(unused_variables)]
            pub fn __kiln_bind(&mut self) {
                #force
                #bind_mut
                #(#binds)*
            }

            #passes
        }

        impl #ig #rt::HasCallState for #name #tg #wg {
            type CallState = #state #tg;
        }

        #trait_impls
        #shaped
    }
}

/// The call state: generated layers (merges, activations), extra buffers of shared fields,
/// gradient accumulators.
fn state_struct(g: &Gen<'_>, state: &Ident, generics: &syn::Generics) -> TokenStream {
    let (ig, tg, wg) = generics.split_for_impl();
    let (mut fields, mut inits) = (vec![], vec![]);
    for l in g.m.layers.iter().filter(|l| l.kind.class() != "Field" && !l.kind.is_view()) {
        let (f, ty, init) = (&l.name, g.ty(l), g.constructor(l));
        fields.push(quote!(#f: #ty,));
        inits.push(quote!(#f: #init,));
    }
    let (bufs, buf_tys): (Vec<Ident>, Vec<TokenStream>) = g.extra_bufs().into_iter().unzip();
    let accs = g.accumulators();
    quote! {
        #[doc(hidden)]
        #[derive(Clone, Debug)]
        pub struct #state #ig #wg {
            #(#fields)*
            #(#bufs: #buf_tys,)*
            #(#accs: ::std::vec::Vec<f32>,)*
        }

        impl #ig ::core::default::Default for #state #tg #wg {
            fn default() -> Self {
                Self {
                    #(#inits)*
                    #(#bufs: ::core::default::Default::default(),)*
                    #(#accs: ::std::vec::Vec::new(),)*
                }
            }
        }
    }
}

/// The inputs' `Port`s, and the checks that the fields reading an input of token ids read ids:
/// such an input takes its bound from those fields.
fn in_ports(g: &Gen<'_>) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let (rt, model) = (rt(), g.m);
    let mut id_checks = Vec::new();
    let in_ports: Vec<TokenStream> = model
        .inputs
        .iter()
        .enumerate()
        .map(|(k, (n, node))| {
            let s = g.dims(*node);
            if !model.int_inputs.get(k).copied().unwrap_or(false) {
                return quote!(#rt::Port { name: #n, shape: &[#(#s),*], dtype: #rt::DType::F32 });
            }
            let readers: Vec<TokenStream> = model
                .nodes
                .iter()
                .filter(|c| c.inputs.contains(node))
                .filter_map(|c| model.layer_of_node(c).map(|l| (l, c)))
                .map(|(l, c)| {
                    // An op that reads ids (one_hot) states its bound itself.
                    if let (None, Some(b)) = (l.kind.field_key(), l.kind.id_bound_dims()) {
                        return b;
                    }
                    let ty = g.ty(l);
                    let msg = format!(
                        "field `{}` reads floats, but `{n}` holds token ids (Ids<..>): give the ids to a model whose \
                         input is `dtype = i32`",
                        l.kind.field_key().unwrap_or_default()
                    );
                    let span = c.tokens.clone().into_iter().next().map_or_else(proc_macro2::Span::call_site, |t| t.span());
                    id_checks.push(quote::quote_spanned!(span=> const _: () = assert!(<#ty as ::kiln::__private::Shaped>::IDS.is_some(), #msg);));
                    quote!(#rt::ids_below(<#ty as #rt::Shaped>::IDS))
                })
                .collect();
            let below = readers.into_iter().reduce(|a, b| quote!(#rt::min_usize(#a, #b))).unwrap_or(quote!(0));
            quote!(#rt::Port { name: #n, shape: &[#(#s),*], dtype: #rt::DType::I32 { below: #below } })
        })
        .collect();
    (in_ports, id_checks)
}

/// The outputs' `Port`s, named after the fields that compute them (`output_<k>` otherwise).
fn out_ports(model: &Model, out_shapes: &[Vec<TokenStream>]) -> Vec<TokenStream> {
    let rt = rt();
    model
        .outputs
        .iter()
        .zip(out_shapes)
        .enumerate()
        .map(|(k, (&o, s))| {
            let n = match model.layer_of(o).and_then(|l| l.kind.field_key()) {
                Some(key) => key.to_string(),
                None => format!("output_{k}"),
            };
            quote!(#rt::Port { name: #n, shape: &[#(#s),*], dtype: #rt::DType::F32 })
        })
        .collect()
}

/// Per output, the activation its loss may fuse with: the computing field's own, read through
/// its constant, where the output may fuse; `Linear` otherwise.
fn out_acts(g: &Gen<'_>, model_ty: &TokenStream) -> Vec<TokenStream> {
    let (rt, model) = (rt(), g.m);
    model
        .outputs
        .iter()
        .map(|&o| {
            let c = model.resolve(o);
            match (model.layer_of(c).and_then(|l| l.kind.field_key()), g.fusable_output(c)) {
                (Some(key), Some(_)) => {
                    let k = konst("ACT", key);
                    quote!(<#model_ty>::#k)
                }
                _ => quote!(#rt::ActKind::Linear),
            }
        })
        .collect()
}

/// Binds the elements of array and Vec fields that `call` indexes to locals (`__kiln_blocks_2`),
/// borrowed mutably or not, so two elements can be borrowed at once.
fn bind_indexed(lw: &CallBody, mutable: bool) -> TokenStream {
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
}

/// Each used field's output shape, for the summary rows the struct macro wrote.
fn field_shapes(g: &Gen<'_>) -> Vec<TokenStream> {
    let mut seen = std::collections::HashSet::new();
    g.m.layers
        .iter()
        .filter_map(|l| {
            let key = l.kind.field_key()?;
            seen.insert(key.to_string()).then(|| {
                let dims = g.dims(l.apps[0]);
                quote!((#key, &[#(#dims),*]))
            })
        })
        .collect()
}

/// Each field told the shape of its first call's input when the model is built.
fn bind_inputs(g: &Gen<'_>) -> Vec<TokenStream> {
    let (rt, model) = (rt(), g.m);
    let mut bound = std::collections::HashSet::new();
    model
        .layers
        .iter()
        .filter(|l| l.kind.field_key().is_some())
        .filter_map(|l| {
            let place = l.place.clone()?;
            bound.insert(place.to_string()).then(|| {
                let dims = g.dims(model.nodes[l.apps[0]].inputs[0]);
                quote!(#rt::Layer::bind_input(&mut #place, &[#(#dims),*]);)
            })
        })
        .collect()
}
