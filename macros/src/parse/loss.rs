//! `#[kiln::loss]`: a loss written as math, Keras' `def loss(y_true, y_pred)`.
//!
//! ```text
//! #[kiln::loss]
//! fn contrastive(y_true: Input<1>, y_pred: Input<1>) -> Output<1> {
//!     y_true * square(y_pred) + (1.0 - y_true) * square(relu(1.0 - y_pred))
//! }
//! ```
//!
//! The body is a `call` body (the same ops, the same checks) of a hidden model with the two
//! inputs and no layers; its generated backward gives the loss's exact gradient. The function's
//! name becomes a value for `Loss::custom(&contrastive)`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType};

use super::subclass::port_shape;

/// The loss's hidden model and its `CustomLoss` implementation; an error at the signature when
/// it is not `(y_true: Input<..>, y_pred: Input<..>) -> Output<1>`.
pub fn expand(f: ItemFn) -> syn::Result<TokenStream> {
    let sig = &f.sig;
    let usage = "a loss is `fn name(y_true: Input<width>, y_pred: Input<width>) -> Output<1>`";
    let args: Vec<(&syn::Ident, &syn::Type)> = sig
        .inputs
        .iter()
        .map(|a| match a {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => Ok((&pi.ident, &*pt.ty)),
                other => Err(syn::Error::new(other.span(), usage)),
            },
            FnArg::Receiver(r) => Err(syn::Error::new(r.span(), usage)),
        })
        .collect::<syn::Result<_>>()?;
    let [(_, ty_true), (_, ty_pred)] = args[..] else {
        return Err(syn::Error::new(sig.inputs.span(), usage));
    };
    let (w_true, w_pred) = (port_shape(ty_true, "Input")?, port_shape(ty_pred, "Input")?);
    if w_true != w_pred {
        return Err(syn::Error::new(
            ty_pred.span(),
            format!("a loss reads targets and predictions of one shape, got {w_true:?} and {w_pred:?}"),
        ));
    }
    let ReturnType::Type(_, out) = &sig.output else {
        return Err(syn::Error::new(sig.span(), usage));
    };
    let o = port_shape(out, "Output")?;
    if o != [1] {
        return Err(syn::Error::new(
            out.span(),
            format!("a loss gives one value per sample: `-> Output<1>`, got `Output<{o:?}>`").replace(['[', ']'], ""),
        ));
    }
    let (vis, name, attrs, body, inputs) = (&f.vis, &sig.ident, &f.attrs, &f.block, &sig.inputs);
    // CamelCase, as the names the model macros derive from it must be.
    let camel: String = name
        .to_string()
        .split('_')
        .map(|w| w.chars().next().map(|c| c.to_ascii_uppercase().to_string() + &w[c.len_utf8()..]).unwrap_or_default())
        .collect();
    let hidden = format_ident!("KilnLoss{}", camel);
    let key = name.to_string();
    let width: usize = w_pred.iter().product();
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[::kiln::model]
        #vis struct #hidden {}

        #[::kiln::call]
        impl #hidden {
            fn call(&self, #inputs) -> #out #body
        }

        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #name;

        impl #name {
            /// Runs `f` on this thread's instance of the loss's model (built at the first call).
            fn with_model<R>(f: impl FnOnce(&mut #hidden) -> R) -> R {
                ::std::thread_local! {
                    static MODEL: ::std::cell::RefCell<::std::option::Option<#hidden>> =
                        const { ::std::cell::RefCell::new(::std::option::Option::None) };
                }
                MODEL.with(|m| f(m.borrow_mut().get_or_insert_with(<#hidden>::new)))
            }
        }

        impl ::kiln::CustomLoss for #name {
            fn name(&self) -> &'static str {
                #key
            }
            fn width(&self) -> ::std::option::Option<usize> {
                ::std::option::Option::Some(#width)
            }
            fn value(&self, p: &[f32], y: &[f32]) -> f32 {
                Self::with_model(|m| {
                    let mut stream = ::kiln::Stream::new(0);
                    ::kiln::Model::run(m, &[y, p], &mut ::kiln::Ctx::new(1, false, &mut stream));
                    ::kiln::Model::output(m, 0)[0]
                })
            }
            fn gradient(&self, p: &[f32], y: &[f32], g: &mut [f32]) -> bool {
                Self::with_model(|m| {
                    let mut stream = ::kiln::Stream::new(0);
                    let xs: [&[f32]; 2] = [y, p];
                    ::kiln::Model::run(m, &xs, &mut ::kiln::Ctx::new(1, false, &mut stream));
                    let one: [&[f32]; 1] = [&[1.0]];
                    ::kiln::Model::backward_to_inputs(m, &xs, &one, &[false], &mut ::kiln::Ctx::new(1, false, &mut stream));
                    g.copy_from_slice(::kiln::Model::input_grad_of(m, 1, &one));
                });
                true
            }
        }
    })
}
