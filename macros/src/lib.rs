//! Procedural macros of kiln. Users reach them through the `kiln` crate.
//!
//! Every macro runs the same pipeline: parse (one front end per style) → graph IR → shape
//! inference and checks → code generation, and reports every mistake at the user's token.

mod codegen;
mod derive;
mod embed;
mod errors;
mod ir;
mod layers;
mod onnx;
mod parse;
mod shape;
mod ship;
mod sizes;
mod weights_file;

use proc_macro::TokenStream;

/// A number unique to a macro invocation: its model's name and where the invocation is. The same
/// invocation expanded again gets the same number.
fn invocation(name: &proc_macro2::Ident) -> u64 {
    use std::hash::{Hash, Hasher};
    let span = proc_macro::Span::call_site();
    let mut h = std::hash::DefaultHasher::new();
    (name.to_string(), span.file(), span.line(), span.column()).hash(&mut h);
    h.finish()
}

/// A `sequential!` / `functional!` front end: the syntax parsed (an error there is the only
/// error), then lowered to the IR, with the model's name and visibility for a fallback.
type Front = fn(proc_macro2::TokenStream) -> syn::Result<(syn::Result<ir::Model>, Header)>;
type Header = (proc_macro2::Ident, syn::Visibility);

/// A model macro: its size parameters taken off, then the front end and the pipeline, once, or
/// twice for a model with size parameters (see `sizes`).
fn model_macro(input: proc_macro2::TokenStream, front: Front) -> proc_macro2::TokenStream {
    let (rest, sizes) = match sizes::take(input) {
        Ok(taken) => taken,
        Err(e) => return e.to_compile_error(),
    };
    let Some(sizes) = sizes else {
        return match front(rest) {
            Ok((lowered, header)) => pipeline(lowered, header),
            Err(e) => e.to_compile_error(),
        };
    };
    let mut header = None;
    let mut run = |r: usize| -> syn::Result<ir::Model> {
        let (lowered, h) = front(sizes.stand_in(r, rest.clone()))?;
        header.get_or_insert(h);
        let mut model = lowered?;
        model.generics = sizes.generics.clone();
        model.invocation = Some(invocation(&model.name));
        let weights = weights_file::extract(&mut model.attrs)?.map(|_| proc_macro2::Span::call_site());
        let opts = ship::extract(&mut model.attrs)?;
        let only = opts.inference_only.as_ref().map(syn::spanned::Spanned::span);
        if let Some(span) = weights.or(only).or(opts.budget.as_ref().map(|b| syn::spanned::Spanned::span(&b.tokens))) {
            let msg = "a model with size parameters cannot embed weights or be inference-only: its sizes are known \
                       only where it is used; declare a type with literal sizes for that";
            return Err(syn::Error::new(span, msg));
        }
        shape::infer(&mut model)?;
        Ok(model)
    };
    let result = (|| {
        let (a, b) = (run(0)?, run(1)?);
        sizes.check_shapes(&a, &b)?;
        sizes.agree(codegen::expand(&a), codegen::expand(&b))
    })();
    result.unwrap_or_else(|e| {
        let mut out = sizes.restore(0, e.to_compile_error());
        if let Some((name, vis)) = header {
            out.extend(codegen::fallback_with(&name, &vis, &sizes.generics));
        }
        out
    })
}

/// The pipeline every model macro runs after its front end: weights attribute, shape inference
/// and checks, code generation; on error, the errors plus a fallback struct.
fn pipeline(lowered: Result<ir::Model, syn::Error>, header: Header) -> proc_macro2::TokenStream {
    pipeline_with(lowered, header, None)
}

/// [`pipeline`] with the weights given by the front end (an ONNX file's initializers) instead of
/// a `#[weights("..")]` attribute.
fn pipeline_with(
    lowered: Result<ir::Model, syn::Error>,
    header: Header,
    given: Option<weights_file::Weights>,
) -> proc_macro2::TokenStream {
    let run = || -> syn::Result<proc_macro2::TokenStream> {
        let mut model = lowered?;
        model.invocation = Some(invocation(&model.name));
        let weights = match given {
            Some(w) => Some(w),
            None => weights_file::extract(&mut model.attrs)?,
        };
        let opts = ship::extract(&mut model.attrs)?;
        shape::infer(&mut model)?;
        let source = proc_macro::Span::call_site().local_file();
        if opts.inference_only.is_some() {
            return ship::inference_only(&model, &opts, weights.as_ref(), source);
        }
        let mut out = codegen::expand(&model);
        out.extend(onnx::export(&model));
        if let Err(e) = ship::budget(&model, &opts) {
            out.extend(e.to_compile_error());
        }
        if let Some(w) = weights {
            // A file that does not fit is reported alone: the model itself is fine, so it is
            // still generated, with `embedded()` standing in for the failed embedding.
            match weights_file::check(&model, &w, source) {
                Ok(checked) => {
                    out.extend(embed::expand(&model, &checked, &w));
                    // `infer` where every layer has a static kernel; a precision other than
                    // f32 asks for it, so there its absence is an error.
                    match ship::infer(&model, &w, &checked) {
                        Ok((code, _)) => out.extend(code),
                        Err(why) => {
                            if let Some(span) = w.dtype_span {
                                let msg = format!("dtype applies to the generated `infer`, unavailable here: {why}");
                                out.extend(syn::Error::new(span, msg).to_compile_error());
                            }
                        }
                    }
                }
                Err(e) => {
                    out.extend(e.to_compile_error());
                    out.extend(embed::fallback(&model));
                }
            }
        }
        Ok(out)
    };
    run().unwrap_or_else(|e| {
        let mut out = e.to_compile_error();
        out.extend(codegen::fallback(&header.0, &header.1));
        out
    })
}

/// Defines a Sequential model: a struct whose layers run one after the other, with every shape
/// checked at compile time and forward and backward code generated.
///
/// ```ignore
/// sequential! {
///     /// 8x8 digit images to 10 class probabilities.
///     pub struct Digits: [8, 8, 1] {
///         Flatten,
///         Dense(64, activation = relu),
///         Dense(10, activation = softmax),
///     }
/// }
/// ```
///
/// `#[weights("digits.safetensors")]` on the struct embeds trained weights, checked against the
/// model when it compiles; `Digits::embedded()` returns the model with them.
#[proc_macro]
pub fn sequential(input: TokenStream) -> TokenStream {
    model_macro(input.into(), |tokens| {
        let syntax: parse::sequential::Syntax = syn::parse2(tokens)?;
        let header = syntax.header();
        Ok((parse::sequential::lower(syntax), header))
    })
    .into()
}

/// Defines a Functional model: a graph of layers with any number of inputs and outputs, skip
/// connections and shared layers, every shape checked at compile time.
///
/// ```ignore
/// functional! {
///     pub struct Classifier {
///         inputs = Input([64]);
///         hidden = Dense(64, activation = relu)(inputs);
///         outputs = Dense(10, activation = softmax)(hidden);
///         Model(inputs, outputs)
///     }
/// }
/// ```
#[proc_macro]
pub fn functional(input: TokenStream) -> TokenStream {
    model_macro(input.into(), |tokens| {
        let syntax: parse::functional::Syntax = syn::parse2(tokens)?;
        let header = syntax.header();
        Ok((parse::functional::lower(syntax), header))
    })
    .into()
}

/// The subclassing style: a struct whose fields are layers. Put `#[kiln::call]` on the `impl`
/// that defines its `call` method.
///
/// ```ignore
/// #[kiln::model]
/// pub struct MyModel {
///     dense1: Dense<10, 64, Relu>,
///     dense2: Dense<64, 10, Softmax>,
/// }
///
/// #[kiln::call]
/// impl MyModel {
///     fn call(&self, x: Input<10>) -> Output<10> {
///         let x = self.dense1(x);
///         self.dense2(x)
///     }
/// }
/// ```
///
/// Fields may be layers, models, arrays of them (`[Block; 4]`) or `Vec`s with
/// `#[layer(len = 4)]`; `#[layer(trainable = false)]` freezes a field. kiln adds its own state
/// (optimizer, buffers) to the struct as a field `kiln`; `#[derive(Model)]` is the same with that
/// field declared by hand.
#[proc_macro_attribute]
pub fn model(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemStruct);
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[kiln::model] takes no arguments")
            .to_compile_error()
            .into();
    }
    let (name, vis) = (item.ident.clone(), item.vis.clone());
    if !only_const_params(&item.generics) {
        return codegen::generic_fallback(&item).into();
    }
    derive::model(item, false)
        .unwrap_or_else(|e| {
            let mut out = e.to_compile_error();
            out.extend(codegen::fallback(&name, &vis));
            out.extend(derive::fields_callback(&name, &[]));
            out
        })
        .into()
}

/// Whether a model's generic parameters are all `const N: usize` sizes, which the subclassing
/// style takes (types and lifetimes it does not).
fn only_const_params(g: &syn::Generics) -> bool {
    g.params.iter().all(|p| matches!(p, syn::GenericParam::Const(_)))
}

/// Turns a `#[kiln::model]` struct's `call` method into its forward and backward code (see
/// [`macro@model`]).
///
/// The struct's macro defined `__kiln_fields_<Model>!`, which hands the struct's field types on
/// to [`macro@__call`] with this impl: the impl expands through it.
#[proc_macro_attribute]
pub fn call(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    if !only_const_params(&item.generics) {
        // `#[kiln::model]` reported the generic parameters at the struct and made it a model.
        return proc_macro::TokenStream::new();
    }
    let syn::Type::Path(self_ty) = &*item.self_ty else {
        return expand_call(item, &[]).into();
    };
    let mut path = self_ty.path.clone();
    let Some(last) = path.segments.last_mut() else { return expand_call(item, &[]).into() };
    last.ident = derive::fields_macro(&last.ident);
    last.arguments = syn::PathArguments::None;
    quote::quote!(#path! { #item }).into()
}

/// `#[kiln::call]`'s second step, through the struct macro's `__kiln_fields_<Model>!`: the
/// struct's fields and their types in brackets (`[dense1 (Dense<10, 64, Relu>), ..]`), then the
/// `call` impl. Not for users.
#[doc(hidden)]
#[proc_macro]
pub fn __call(input: TokenStream) -> TokenStream {
    let parsed = syn::parse::Parser::parse(
        |stream: syn::parse::ParseStream<'_>| {
            let list;
            syn::bracketed!(list in stream);
            let mut fields = Vec::new();
            while !list.is_empty() {
                let key: syn::Ident = list.parse()?;
                let ty;
                syn::parenthesized!(ty in list);
                fields.push((key, ty.parse::<syn::Type>()?));
                let _: Option<syn::Token![,]> = list.parse()?;
            }
            Ok((fields, stream.parse::<syn::ItemImpl>()?))
        },
        input,
    );
    match parsed {
        Ok((fields, item)) => expand_call(item, &fields).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_call(item: syn::ItemImpl, fields: &[(syn::Ident, syn::Type)]) -> proc_macro2::TokenStream {
    let (self_ty, generics) = (item.self_ty.clone(), item.generics.clone());
    let (impl_g, _, where_g) = item.generics.split_for_impl();
    let (impl_g, where_g) = (quote::ToTokens::to_token_stream(&impl_g), quote::ToTokens::to_token_stream(&where_g));
    parse::subclass::lower(item, fields)
        .map(|(lowered, outs)| codegen::subclass::expand(&lowered, &outs))
        .unwrap_or_else(|e| {
            // The struct's state field names this impl's buffers: keep it well-formed so that only
            // the body's own errors are reported.
            let mut out = e.to_compile_error();
            out.extend(quote::quote! {
                impl #impl_g ::kiln::__private::HasCallState for #self_ty #where_g { type CallState = (); }
                impl #impl_g #self_ty #where_g {
                    #[doc(hidden)]
                    pub const __KILN_SHAPES: &'static [(&'static str, &'static [usize])] = &[];
                    #[doc(hidden)]
                    pub fn __kiln_bind(&mut self) {}
                }
            });
            let ty = quote::ToTokens::to_token_stream(&self_ty);
            out.extend(codegen::model_impl(&impl_g, &ty, &quote::quote!(self.kiln.train)));
            if let (syn::Type::Path(p), true) = (&*self_ty, generics.params.is_empty())
                && let Some(last) = p.path.segments.last()
            {
                out.extend(onnx::export_or(Err("its call body does not compile"), &last.ident, &ty, &generics));
            }
            out
        })
}

/// `#[derive(Model)]`: the subclassing style as a derive. The struct declares kiln's state
/// itself, as a field `kiln: kiln::ModelState<Self>` (a derive cannot add fields; this is the
/// place Keras fills with `super().__init__()`), derives `Clone` and `Debug`, and gets its
/// forward and backward code from `#[kiln::call]` as with [`macro@model`].
///
/// ```ignore
/// #[derive(Clone, Debug, Model)]
/// pub struct MyModel {
///     dense1: Dense<10, 64, Relu>,
///     dense2: Dense<64, 10, Softmax>,
///     kiln: ModelState<Self>,
/// }
/// ```
/// A loss written as math, Keras' `def loss(y_true, y_pred)`: the body is a `call` body (the same
/// ops and checks) and kiln generates its exact gradient. The function's name becomes a value
/// for `Loss::custom`.
///
/// ```ignore
/// #[kiln::loss]
/// fn contrastive(y_true: Input<1>, y_pred: Input<1>) -> Output<1> {
///     y_true * square(y_pred) + (1.0 - y_true) * square(relu(1.0 - y_pred))
/// }
/// model.compile(Loss::custom(&contrastive), "adam", &[])?;
/// ```
#[proc_macro_attribute]
pub fn loss(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[kiln::loss] takes no arguments")
            .to_compile_error()
            .into();
    }
    let item = syn::parse_macro_input!(item as syn::ItemFn);
    let (vis, name) = (item.vis.clone(), item.sig.ident.clone());
    parse::loss::expand(item)
        .unwrap_or_else(|e| {
            // The loss's value still exists, so its uses report nothing more.
            let mut out = e.to_compile_error();
            out.extend(quote::quote! {
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy, Debug)]
                #vis struct #name;
                impl ::kiln::CustomLoss for #name {
                    fn name(&self) -> &'static str { "" }
                    fn value(&self, _: &[f32], _: &[f32]) -> f32 { f32::NAN }
                }
            });
            out
        })
        .into()
}

/// Imports an ONNX file as a model: the file is read when the code compiles, its graph lowered to
/// kiln's layers (every shape checked), its initializers embedded as the model's weights.
///
/// ```ignore
/// #[kiln::onnx("models/mnist1d_cnn.onnx")]   // relative to this source file (or Cargo.toml)
/// pub struct Net;
///
/// let mut net = Net::embedded();              // the file's weights; Net::new() initialises afresh
/// let y = net.predict(&x)?;                   // x and y in the file's own layout
/// ```
///
/// `#[kiln::onnx("m.onnx", dtype = int8)]` embeds `infer`'s kernels in int8 (or bf16, f16).
/// An operator kiln does not import is a compile error naming it, its node and what is supported.
#[proc_macro_attribute]
pub fn onnx(attr: TokenStream, item: TokenStream) -> TokenStream {
    onnx::expand(attr.into(), item.into()).into()
}

#[proc_macro_derive(Model, attributes(layer, weights))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(input as syn::ItemStruct);
    let name = item.ident.clone();
    derive::model(item, true)
        .unwrap_or_else(|e| {
            let mut out = e.to_compile_error();
            out.extend(derive::fields_callback(&name, &[]));
            out
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(src: &str) -> proc_macro2::TokenStream {
        let syntax: parse::sequential::Syntax = syn::parse_str(src).expect("parses");
        let mut model = parse::sequential::lower(syntax).expect("lowers");
        shape::infer(&mut model).expect("checks");
        codegen::expand(&model)
    }

    /// A 20-convolution model expands quickly into code of a size linear in its layers (the time
    /// and size are printed with `--nocapture`; its release rebuild takes about 0.4 s here).
    #[test]
    fn twenty_convolutions_expand_quickly() {
        let convs = (0..20).map(|_| "Conv2D(16, 3, padding = same, activation = relu)").collect::<Vec<_>>().join(", ");
        let src = format!(
            "pub struct Deep: [32, 32, 3] {{ {convs}, GlobalAveragePooling2D, Dense(10, activation = softmax) }}"
        );
        let start = std::time::Instant::now();
        let text = expand_str(&src).to_string();
        let took = start.elapsed();
        println!("20-convolution expansion: {took:?}, {} bytes of code", text.len());
        assert!(text.len() < 80_000, "20-convolution expansion is {} bytes", text.len());
    }

    /// A 10-layer model expands to straight-line code whose size grows linearly with the layers,
    /// and the expansion is fast (the time is printed with `--nocapture`, not asserted).
    #[test]
    fn ten_layer_expansion_stays_small() {
        let layers = |k: usize| (0..k).map(|_| "Dense(32, activation = relu)").collect::<Vec<_>>().join(", ");
        let src = |k: usize| format!("pub struct Deep: [8, 8, 1] {{ Flatten, {} }}", layers(k));
        let start = std::time::Instant::now();
        let ten = expand_str(&src(10));
        let took = start.elapsed();
        let text = ten.to_string();
        let one = expand_str(&src(1)).to_string().len();
        println!("10-layer expansion: {took:?}, {} bytes of code (1 layer: {one})", text.len());
        assert!(text.len() < one * 10, "expansion grows faster than the layer count: {one} -> {}", text.len());
        assert!(text.contains("Dense < 64usize , 32usize"), "dimensions are constants in the expansion");
        assert!(text.len() < 40_000, "10-layer expansion is {} bytes", text.len());
    }
}
