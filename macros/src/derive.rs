//! The subclassing style's struct half: `#[kiln::model]` (and `#[derive(Model)]`) on a struct
//! whose fields are layers. It sees the fields' types, which the `call` half does not: it emits
//! construction, weight traversal, the summary rows, and per-field constants and type aliases
//! (`__KILN_ACT_<field>`, `__KilnField<Model>_<field>`) through which `#[kiln::call]`
//! (`parse/subclass.rs`, `codegen/subclass.rs`) checks and generates the body.
//!
//! ```text
//! #[kiln::model]
//! struct NAME { FIELD: LAYER_TYPE, #[layer(trainable = false)] FIELD: [LAYER_TYPE; N],
//!               #[layer(len = N)] FIELD: Vec<LAYER_TYPE>, ... }
//! ```

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{Fields, Ident, ItemStruct, Type};

use crate::layers::rt;
use crate::parse::Errors;

/// The type alias the struct macro emits for a field's (element) type, so the call macro can
/// name it (for a shared field's buffers).
pub fn field_alias(model: &Ident, field: &str) -> Ident {
    format_ident!("__KilnField{}_{}", model, field)
}

/// The constant `__KILN_<kind>_<field>` (`ACT`: its activation) of a field.
pub fn konst(kind: &str, field: &str) -> Ident {
    format_ident!("__KILN_{}_{}", kind, field)
}

enum Container {
    One,
    Array,
    Vec(TokenStream),
}

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
    // `#[weights(..)]`: taken off a `#[kiln::model]` struct; a derive's helper attribute stays.
    let weights =
        if derived { item.attrs.iter().find(|a| a.path().is_ident("weights")).cloned().map(|a| vec![a]) } else { None };
    let weights = match weights {
        Some(mut attrs) => crate::embed::extract(&mut attrs),
        None => crate::embed::extract(&mut item.attrs),
    }
    .unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let (mut inits, mut consts, mut visits, mut visits_mut, mut infos, mut freeze, mut params) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut penalties = Vec::new();
    let mut aliases = Vec::new();
    // Per field: name, element type, and element count for arrays and Vecs (when a literal).
    let mut layout: Vec<(String, Type, Option<Option<usize>>)> = Vec::new();
    for field in fields.named.iter_mut() {
        let f = field.ident.clone().expect("named fields");
        let key = f.to_string();
        if key == "kiln" {
            continue;
        }
        let (mut trainable, mut len) = (true, None);
        let mut weight_args: Vec<(String, crate::parse::Value)> = Vec::new();
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
                } else if let Some(key) = meta
                    .path
                    .get_ident()
                    .map(|i| i.to_string())
                    .filter(|k| crate::layers::WEIGHT_ARGS.contains(&k.as_str()))
                {
                    weight_args.push((key, meta.value()?.parse()?));
                } else {
                    return Err(meta.error(
                        "#[layer(..)] takes `trainable = false`, on a Vec field `len = N`, and on a single layer \
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, \
                         kernel_constraint, bias_constraint, activity_regularizer",
                    ));
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
        let count = |e: &TokenStream| syn::parse2::<syn::LitInt>(e.clone()).ok().and_then(|l| l.base10_parse().ok());
        layout.push((
            key.clone(),
            elem.clone(),
            match (&container, ty) {
                (Container::One, _) => None,
                (Container::Vec(l), _) => Some(count(l)),
                (Container::Array, Type::Array(a)) => Some(count(&a.len.to_token_stream())),
                (Container::Array, _) => Some(None),
            },
        ));
        let alias = field_alias(&name, &key);
        aliases.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            type #alias = #elem;
        });
        // The field's shape rule is read through its alias (`FieldRule::of`); its activation,
        // which the model's output activations name, here.
        let kact = konst("ACT", &key);
        consts.push(quote! {
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
            output_shape: #rt::field_shape(Self::__KILN_SHAPES, #key, &[<#ty as #rt::Shaped>::OUT]),
            outputs: &[],
            params: #field_params,
            connected: &[],
            activation: <#ty as #rt::Shaped>::ACT.name(),
            nested: <#ty as #rt::Shaped>::LAYERS,
        },));
        match &container {
            Container::One => {
                let _ = &elem;
                inits.push(quote!(#f: <#ty as #rt::Init>::init(&mut rng),));
                if !weight_args.is_empty() {
                    let call = field.ident.to_token_stream();
                    let args = crate::layers::Args {
                        class: "field",
                        named: weight_args.iter().map(|(k, v)| (k.clone(), v)).collect(),
                        call: &call,
                    };
                    if let Some(opts) = crate::layers::weight_opts(&args, &mut errors) {
                        freeze.push(opts.apply_to(&quote!(model.#f), ty, &key));
                    }
                }
                visits.push(
                    quote!(#rt::Layer::visit_params(&self.#f, &mut |p, v| f(&::std::format!("{}.{}", #key, p), v));),
                );
                visits_mut.push(quote!(#rt::Layer::visit_params_mut(&mut self.#f, f);));
                penalties.push(quote!(#rt::Layer::penalty(&self.#f)));
                if !trainable {
                    freeze.push(quote!(#rt::Layer::set_trainable(&mut model.#f, false);));
                }
            }
            Container::Array | Container::Vec(_) => {
                if !weight_args.is_empty() {
                    errors
                        .at(ty.span(), "weight options in #[layer(..)] go on a single layer, not on an array or a Vec");
                }
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
                penalties.push(quote!(self.#f.iter().map(#rt::Layer::penalty).sum::<f64>()));
                if !trainable {
                    freeze.push(quote!(#rt::set_trainable_all(&mut model.#f, false);));
                }
            }
        }
    }
    let embedded = weights.map(|w| match embedded(&name, &layout, &w) {
        Ok(code) => code,
        Err(e) => {
            errors.push(e);
            quote!(impl #name { pub fn embedded() -> Self { Self::new() } })
        }
    });
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
                model.__kiln_bind();
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

            fn __kiln_penalty(&self) -> f64 {
                0.0 #(+ #penalties)*
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

        #embedded
    })
}

/// A tensor's name below its field (and element), and its shape.
type Tensor = (String, Vec<usize>);

/// `#[weights(..)]` on a subclassed model: the file is read here and each field's tensors (each
/// element's, for arrays and Vecs) are checked against the field type's `PARAM_SHAPES` by
/// constants rustc evaluates, since only rustc knows the types; `embedded()` copies them by name.
fn embedded(
    name: &Ident,
    layout: &[(String, Type, Option<Option<usize>>)],
    w: &crate::embed::Weights,
) -> syn::Result<TokenStream> {
    let rt = rt();
    let file = w.read(proc_macro::Span::call_site().local_file())?;
    // Tensors by (field, element), with the rest of their name.
    let mut groups: std::collections::BTreeMap<(String, Option<usize>), Vec<Tensor>> = Default::default();
    for (tensor, shape, _, _) in &file.tensors {
        let mut parts = tensor.splitn(3, '.');
        let key = parts.next().unwrap_or_default();
        let Some((_, _, count)) = layout.iter().find(|(k, _, _)| k == key) else {
            return Err(w.error(format!("tensor `{tensor}` is not a weight of {name}: it has no field `{key}`")));
        };
        let (index, rest) = match count {
            None => (None, tensor[key.len() + 1..].to_string()),
            Some(n) => {
                let index = parts.next().and_then(|i| i.parse::<usize>().ok());
                match (index, parts.next()) {
                    (Some(i), Some(rest)) if n.is_none_or(|n| i < n) => (Some(i), rest.to_string()),
                    _ => {
                        return Err(w.error(format!(
                            "tensor `{tensor}` is not a weight of {name}: `{key}` holds {} layers, named `{key}.0.…`",
                            n.map_or_else(|| "several".to_string(), |n| n.to_string())
                        )));
                    }
                }
            }
        };
        groups.entry((key.to_string(), index)).or_default().push((rest, shape.clone()));
    }
    let span = w.path.span();
    let mut checks = Vec::new();
    for (key, elem, count) in layout {
        let indices: Vec<Option<usize>> = match count {
            None => vec![None],
            Some(Some(n)) => (0..*n).map(Some).collect(),
            Some(None) => {
                return Err(w.error(format!("the length of field `{key}` must be a literal to embed weights")));
            }
        };
        for index in indices {
            let what = match index {
                Some(i) => format!("{key}.{i}"),
                None => key.clone(),
            };
            let tensors = groups.get(&(key.clone(), index)).cloned().unwrap_or_default();
            let entries = tensors.iter().map(|(n, s)| quote!((#n, &[#(#s),*])));
            checks.push(quote::quote_spanned! {span=>
                const _: () = ::kiln::__private::expect_params(
                    #what, <#elem as ::kiln::__private::Shaped>::PARAM_SHAPES, &[#(#entries),*]);
            });
        }
    }
    let abs = &file.abs;
    let table = file.tensors.iter().map(|(n, _, s, e)| quote!((#n, #s, #e)));
    let shown = w.path.value();
    Ok(quote! {
        #(#checks)*
        impl #name {
            /// The model with the weights embedded at compile time from
            #[doc = #shown]
            /// (checked against the model's fields when it compiled), ready for `predict`.
            pub fn embedded() -> Self {
                static BYTES: &[u8] = include_bytes!(#abs);
                let mut model = Self::new();
                #rt::install_embedded_named(&mut model, BYTES, &[#(#table),*]);
                model
            }
        }
    })
}
