//! `#[weights("file.safetensors")]` on a model: the file, read and checked against the model's
//! parameters when the model compiles (`weights_file`), is embedded in the binary's read-only
//! data with `include_bytes!` (so editing the file rebuilds the model). `Model::embedded()` then
//! copies each tensor from those bytes at offsets computed when the model compiled: nothing is
//! parsed at start-up.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ir::Model;
use crate::weights_file::{Checked, Weights};

/// Generates `embedded()`, from the file as checked against the model.
pub fn expand(model: &Model, checked: &Checked, w: &Weights) -> TokenStream {
    let shown = w.path.value();
    let abs = &checked.abs;
    let (starts, ends): (Vec<usize>, Vec<usize>) = checked.params.iter().map(|p| (p.2, p.3)).unzip();
    let name = &model.name;
    // Weights made when the model compiled are in the code; the file they came from is named
    // with `include_bytes!` only so that editing it rebuilds the model.
    let bytes = match &w.memory {
        Some(_) => {
            let data = proc_macro2::Literal::byte_string(&checked.bytes);
            let external = &w.external;
            quote! {
                const _: &[u8] = include_bytes!(#abs);
                #(const _: &[u8] = include_bytes!(#external);)*
                static BYTES: &[u8] = #data;
            }
        }
        None => quote!(
            static BYTES: &[u8] = include_bytes!(#abs);
        ),
    };
    // A string-reading model's preprocessing state, from the file's metadata entry of its kind.
    let text = match &model.text {
        None => quote!(),
        Some((_, _, class)) => {
            let key = match *class {
                "StringLookup" => "kiln.string_lookup",
                "Hashing" => "kiln.hashing",
                _ => "kiln.text_vectorization",
            };
            match metadata_entry(&checked.bytes, key) {
                Some(json) => quote!(::kiln::__private::set_strings_json(&mut model, #key, #json);),
                None => {
                    let msg = format!(
                        "embedded weights `{shown}`: the file holds no `{key}`, the state of {name}'s {class}: \
                         save the weights of that model, adapted"
                    );
                    let at = w.path.span();
                    quote::quote_spanned!(at=> ::core::compile_error!(#msg);)
                }
            }
        }
    };
    quote! {
        impl #name {
            /// The model with the weights embedded at compile time from
            #[doc = #shown]
            /// (checked against the model's parameters when it compiled), ready for `predict`.
            pub fn embedded() -> Self {
                #bytes
                let mut model = Self::new();
                ::kiln::__private::install_embedded(&mut model, BYTES, &[#((#starts, #ends)),*]);
                #text
                model
            }
        }
    }
}

/// A weights file's metadata entry `key`.
fn metadata_entry(bytes: &[u8], key: &str) -> Option<String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    meta.metadata().as_ref()?.get(key).cloned()
}

/// Stands in for `embedded()` beside an embedding error, so code calling it reports nothing more.
pub fn fallback(model: &Model) -> TokenStream {
    let name = &model.name;
    quote! {
        impl #name {
            pub fn embedded() -> Self {
                Self::new()
            }
        }
    }
}
