//! What is emitted beside the errors of a model that failed to check: a struct that implements
//! the model trait, so that code using the model (`compile`, `fit`, `predict`, `summary`,
//! `plot_model`) type-checks and the user reads the model's own mistakes and nothing more.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use crate::layers::rt;

pub fn fallback(name: &Ident, vis: &syn::Visibility) -> TokenStream {
    fallback_with(name, vis, &syn::Generics::default())
}

/// [`fallback`] for a model with size parameters, which the struct keeps.
pub fn fallback_with(name: &Ident, vis: &syn::Visibility, generics: &syn::Generics) -> TokenStream {
    let rt = rt();
    let (ig, tg, wg) = generics.split_for_impl();
    let model = model_impl(&quote!(#ig), &quote!(#name #tg), &quote!(self.__kiln_state));
    quote! {
        #[derive(Clone, Debug)]
        #vis struct #name #generics {
            __kiln_state: #rt::TrainState,
        }
        impl #ig #name #tg #wg {
            pub fn new() -> Self {
                Self::with_seed(0)
            }
            pub fn with_seed(seed: u64) -> Self {
                Self { __kiln_state: #rt::TrainState::new(seed) }
            }
            pub fn embedded() -> Self {
                Self::new()
            }
        }
        impl #ig ::core::default::Default for #name #tg #wg {
            fn default() -> Self {
                Self::new()
            }
        }
        #model
    }
}

/// A `Model` impl (with the impl's generic parameters `generics`, if any) with no inputs,
/// outputs or layers, whose training state is at `train_state`.
pub fn model_impl(generics: &TokenStream, ty: &TokenStream, train_state: &TokenStream) -> TokenStream {
    let rt = rt();
    let name_str = ty.to_string();
    quote! {
        impl #generics #rt::Model for #ty {
            const NAME: &'static str = #name_str;
            const INPUTS: &'static [#rt::Port] = &[];
            const OUTPUTS: &'static [#rt::Port] = &[];
            const OUTPUT_ACTIVATIONS: &'static [#rt::ActKind] = &[];
            const LAYERS: &'static [#rt::LayerInfo] = &[];
            type Prediction = #rt::Array2<f32>;
            fn run(&mut self, _: &[&[f32]], _: &mut #rt::Ctx<'_>) {}
            fn output(&self, _: usize) -> &[f32] {
                &[]
            }
            fn run_backward(&mut self, _: &[&[f32]], _: &[&[f32]], _: &[bool], _: &mut #rt::Ctx<'_>) {}
            fn visit_weights(&self, _: &mut dyn FnMut(&str, &#rt::Param)) {}
            fn visit_weights_mut(&mut self, _: &mut dyn FnMut(&mut #rt::Param)) {}
            fn train_state(&self) -> &#rt::TrainState {
                &#train_state
            }
            fn train_state_mut(&mut self) -> &mut #rt::TrainState {
                &mut #train_state
            }
        }
    }
}

/// A `#[kiln::model]` struct with type or lifetime parameters (`Net<L>`): one error at the
/// parameters, and the struct as written with a `Model` impl and `new`, so that its `call` impl
/// and the code using `Mlp::<16>::new()` report nothing more.
pub fn generic_fallback(item: &syn::ItemStruct) -> TokenStream {
    let rt = rt();
    let name = &item.ident;
    // Type parameters get the bounds a model's fields have, so that only the error is reported.
    let mut generics = item.generics.clone();
    for tp in generics.type_params_mut() {
        tp.bounds.push(syn::parse_quote!(::core::clone::Clone));
        tp.bounds.push(syn::parse_quote!(::core::fmt::Debug));
        tp.bounds.push(syn::parse_quote!(::core::marker::Send));
        tp.bounds.push(syn::parse_quote!(::core::marker::Sync));
        tp.bounds.push(syn::parse_quote!('static));
        tp.bounds.push(syn::parse_quote!(#rt::Init));
    }
    let generics = &generics;
    let (impl_g, ty_g, where_g) = generics.split_for_impl();
    let error = syn::Error::new_spanned(
        &item.generics,
        "a #[kiln::model] struct takes sizes as parameters (`const H: usize`, used as `Dense<8, H, Relu>`), \
         not types or lifetimes: kiln checks every shape of each size it is used with",
    )
    .to_compile_error();
    let mut plain = item.clone();
    plain.generics = generics.clone();
    plain.attrs.retain(|a| !a.path().is_ident("layer"));
    let syn::Fields::Named(fields) = &mut plain.fields else {
        return error;
    };
    fields.named.iter_mut().for_each(|f| f.attrs.retain(|a| !a.path().is_ident("layer")));
    let inits: Vec<TokenStream> = fields
        .named
        .iter()
        .map(|f| {
            let (id, ty) = (&f.ident, &f.ty);
            quote!(#id: <#ty as #rt::Init>::init(&mut rng))
        })
        .collect();
    fields.named.push(syn::parse_quote!(#[doc(hidden)] pub __kiln_state: #rt::TrainState));
    let ty = quote!(#name #ty_g);
    let model = model_impl(&quote!(#impl_g), &ty, &quote!(self.__kiln_state));
    quote! {
        #error
        #[derive(Clone, Debug)]
        #plain
        impl #impl_g #name #ty_g #where_g {
            pub fn new() -> Self {
                Self::with_seed(0)
            }
            pub fn with_seed(seed: u64) -> Self {
                let mut rng = <#rt::StdRng as #rt::SeedableRng>::seed_from_u64(seed);
                Self { #(#inits,)* __kiln_state: #rt::TrainState::new(seed) }
            }
        }
        #model
    }
}
