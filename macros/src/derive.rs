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
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Fields, Ident, ItemStruct, Type};

use crate::errors::Errors;
use crate::ir::subclass::{field_alias, konst};
use crate::layers::rt;

enum Container {
    One,
    Array,
    Vec(TokenStream),
}

/// A field as the weights file sees it: its name, its element type, and for arrays and Vecs the
/// element count (`None` when it is not a literal).
type Layout = (String, Type, Option<Option<usize>>);

/// `#[kiln::model]`: adds kiln's state to the struct and generates construction, parameter
/// traversal and the per-field constants the call macro checks shapes with.
///
/// With `derived`, the struct is `#[derive(Model)]`'s: it is left as written and must declare the
/// state field itself, `kiln: ModelState<Self>`.
pub fn model(mut item: ItemStruct, derived: bool) -> syn::Result<TokenStream> {
    let rt = rt();
    let name = item.ident.clone();
    let generics = item.generics.clone();
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
        Some(mut attrs) => crate::weights_file::extract(&mut attrs),
        None => crate::weights_file::extract(&mut item.attrs),
    }
    .unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let (impl_g, _, _) = generics.split_for_impl();
    let mut code = FieldCode { params_decl: quote!(#impl_g), ..FieldCode::default() };
    let mut layout: Vec<Layout> = Vec::new();
    for field in fields.named.iter_mut() {
        let f = field.ident.clone().expect("named fields");
        let key = f.to_string();
        if key == "kiln" {
            continue;
        }
        let opts = layer_options(field, &mut errors);
        let ty = &field.ty;
        let (container, elem) = container(ty, opts.len.clone(), &mut errors);
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
        code.add(&name, field, &container, &elem, &opts, &mut errors);
    }
    if weights.is_some() && !generics.params.is_empty() {
        errors.at(
            generics.span(),
            "#[weights(..)] embeds one file into one model: give the sizes as numbers, not parameters",
        );
    }
    let weights = weights.filter(|_| generics.params.is_empty());
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
    let impls = code.emit(&name, &generics);
    let fields: Vec<(String, Type)> = layout.iter().map(|(key, elem, _)| (key.clone(), elem.clone())).collect();
    let callback = fields_callback(&name, &fields);
    Ok(quote! {
        #errors
        #item
        #impls
        #embedded
        #callback
    })
}

/// The name of the macro through which `#[kiln::call]` on model `name` reads its fields.
pub fn fields_macro(name: &Ident) -> Ident {
    quote::format_ident!("__kiln_fields_{}", name)
}

/// `__kiln_fields_<Model>!`: hands the struct's fields and their (element) types on to the call
/// macro (`kiln::__call!`) with the `call` impl it is given, so that the checks on fields of
/// kiln's types run while the macro expands (`parse/subclass/known.rs`). Also named by path
/// (`pub(crate) use`), for an impl in another module or above the struct.
pub fn fields_callback(name: &Ident, fields: &[(String, Type)]) -> TokenStream {
    let mac = fields_macro(name);
    let list = fields.iter().map(|(key, ty)| {
        let key = quote::format_ident!("{}", key);
        quote!(#key (#ty),)
    });
    quote! {
        #[doc(hidden)]
        #[allow(unused_macros)]
        macro_rules! #mac {
            ($($item:tt)*) => { ::kiln::__call! { [#(#list)*] $($item)* } };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use #mac;
    }
}

/// What `#[layer(..)]` says of a field.
struct LayerOptions {
    trainable: bool,
    /// A Vec field's length.
    len: Option<TokenStream>,
    /// Weight options (`kernel_initializer = ..`), as on a layer in the other styles.
    weight_args: Vec<(String, crate::parse::Value)>,
}

/// Takes `#[layer(..)]` off a field (its other attributes stay) and reads it.
fn layer_options(field: &mut syn::Field, errors: &mut Errors) -> LayerOptions {
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
    LayerOptions { trainable, len, weight_args }
}

/// Whether a field holds one layer, an array or a Vec of them, and the layer (element) type.
fn container(ty: &Type, len: Option<TokenStream>, errors: &mut Errors) -> (Container, Type) {
    match ty {
        Type::Array(a) => (Container::Array, (*a.elem).clone()),
        Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Vec") => {
            let elem = match &p.path.segments.last().map(|s| &s.arguments) {
                Some(syn::PathArguments::AngleBracketed(a)) => match a.args.first() {
                    Some(syn::GenericArgument::Type(t)) => t.clone(),
                    _ => ty.clone(),
                },
                _ => ty.clone(),
            };
            match len {
                Some(l) => (Container::Vec(l), elem),
                None => {
                    errors.at(ty.span(), "a Vec of layers needs its length: #[layer(len = 4)]");
                    // Generated as empty, so the rest of the model reports nothing more.
                    (Container::Vec(quote!(0)), elem)
                }
            }
        }
        _ => (Container::One, ty.clone()),
    }
}

/// What the fields add to the generated impls, field by field.
#[derive(Default)]
struct FieldCode {
    /// The model's generic parameters as declared (`<const H: usize>`), for the field aliases.
    params_decl: TokenStream,
    inits: Vec<TokenStream>,
    consts: Vec<TokenStream>,
    visits: Vec<TokenStream>,
    visits_mut: Vec<TokenStream>,
    infos: Vec<TokenStream>,
    freeze: Vec<TokenStream>,
    params: Vec<TokenStream>,
    penalties: Vec<TokenStream>,
    aliases: Vec<TokenStream>,
}

impl FieldCode {
    /// A field of model `name` (holding `elem`s): its type alias, constants, summary row,
    /// initialisation, traversal and freezing.
    fn add(
        &mut self,
        name: &Ident,
        field: &syn::Field,
        container: &Container,
        elem: &Type,
        opts: &LayerOptions,
        errors: &mut Errors,
    ) {
        let rt = rt();
        let (f, ty) = (field.ident.as_ref().expect("named fields"), &field.ty);
        let key = f.to_string();
        let LayerOptions { trainable, weight_args, .. } = opts;
        let alias = field_alias(name, &key);
        // With the model's size parameters, whether the field's type uses them or not.
        let params = &self.params_decl;
        self.aliases.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            type #alias #params = #elem;
        });
        // The field's shape rule is read through its alias (`field_rule`); its activation,
        // which the model's output activations name, here.
        let kact = konst("ACT", &key);
        self.consts.push(quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #kact: #rt::ActKind = <#ty as #rt::Shaped>::ACT;
        });
        // A Vec's length is known here, not to its type.
        let field_params = match container {
            Container::Vec(l) => quote!(<#elem as #rt::Shaped>::PARAMS * #l),
            _ => quote!(<#ty as #rt::Shaped>::PARAMS),
        };
        self.params.push(field_params.clone());
        self.infos.push(quote!(#rt::LayerInfo {
            name: #key,
            kind: <#ty as #rt::Shaped>::KIND,
            output_shape: #rt::field_shape(Self::__KILN_SHAPES, #key, &[<#ty as #rt::Shaped>::OUT]),
            outputs: &[],
            params: #field_params,
            connected: &[],
            activation: <#ty as #rt::Shaped>::ACT.name(),
            nested: <#ty as #rt::Shaped>::LAYERS,
        },));
        match container {
            Container::One => {
                self.inits.push(quote!(#f: <#ty as #rt::Init>::init(&mut rng),));
                if !weight_args.is_empty() {
                    let call = f.to_token_stream();
                    let args = crate::layers::Args {
                        class: "field",
                        named: weight_args.iter().map(|(k, v)| (k.clone(), v)).collect(),
                        call: &call,
                    };
                    if let Some(opts) = crate::layers::weight_opts(&args, errors) {
                        self.freeze.push(opts.apply_to(&quote!(model.#f), ty, &key));
                    }
                }
                self.visits.push(
                    quote!(#rt::Layer::visit_params(&self.#f, &mut |p, v| f(&::std::format!("{}.{}", #key, p), v));),
                );
                self.visits_mut.push(quote!(#rt::Layer::visit_params_mut(&mut self.#f, f);));
                self.penalties.push(quote!(#rt::Layer::penalty(&self.#f)));
                if !trainable {
                    self.freeze.push(quote!(#rt::Layer::set_trainable(&mut model.#f, false);));
                }
            }
            Container::Array | Container::Vec(_) => {
                if !weight_args.is_empty() {
                    errors
                        .at(ty.span(), "weight options in #[layer(..)] go on a single layer, not on an array or a Vec");
                }
                self.inits.push(match container {
                    Container::Vec(l) => quote!(#f: #rt::init_vec::<#elem>(#l, &mut rng),),
                    _ => quote!(#f: <#ty as #rt::Init>::init(&mut rng),),
                });
                self.visits.push(quote! {
                    for (i, layer) in self.#f.iter().enumerate() {
                        #rt::Layer::visit_params(layer, &mut |p, v| f(&::std::format!("{}.{}.{}", #key, i, p), v));
                    }
                });
                self.visits_mut.push(quote! {
                    for layer in self.#f.iter_mut() {
                        #rt::Layer::visit_params_mut(layer, f);
                    }
                });
                self.penalties.push(quote!(self.#f.iter().map(#rt::Layer::penalty).sum::<f64>()));
                if !trainable {
                    self.freeze.push(quote!(#rt::set_trainable_all(&mut model.#f, false);));
                }
            }
        }
    }

    /// The type aliases, the inherent impl (construction, constants, traversal) and the
    /// `Default` and `Init` impls of model `name`.
    fn emit(&self, name: &Ident, generics: &syn::Generics) -> TokenStream {
        let rt = rt();
        let FieldCode { inits, consts, visits, visits_mut, infos, freeze, params, penalties, aliases, .. } = self;
        let (impl_g, ty_g, where_g) = generics.split_for_impl();
        quote! {
            #(#aliases)*

            impl #impl_g #name #ty_g #where_g {
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

            impl #impl_g ::core::default::Default for #name #ty_g #where_g {
                fn default() -> Self {
                    Self::new()
                }
            }

            impl #impl_g #rt::Init for #name #ty_g #where_g {
                fn init(rng: &mut #rt::StdRng) -> Self {
                    Self::with_seed(#rt::RngCore::next_u64(rng))
                }
            }
        }
    }
}

/// A tensor's name below its field (and element), and its shape.
type Tensor = (String, Vec<usize>);

/// `#[weights(..)]` on a subclassed model: the file is read here and each field's tensors (each
/// element's, for arrays and Vecs) are checked against the field type's `PARAM_SHAPES` by
/// constants rustc evaluates, since only rustc knows the types; `embedded()` copies them by name.
fn embedded(
    name: &Ident,
    layout: &[(String, Type, Option<Option<usize>>)],
    w: &crate::weights_file::Weights,
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
            checks.push(crate::layers::const_check(
                span,
                quote::quote_spanned! {span=>
                    ::kiln::__private::expect_params(#what, <#elem as ::kiln::__private::Shaped>::PARAM_SHAPES, &[#(#entries),*])
                },
            ));
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
