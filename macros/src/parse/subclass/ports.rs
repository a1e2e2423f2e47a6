//! The signature of `call`: `Input<10>` / `Output<4, 16>` as the shape of one sample, an axis
//! also one of the model's size parameters (`Output<CLASSES>`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Type};

/// The most dimensions a sample may have, as in the other styles.
const MAX_RANK: usize = 6;

/// The shape of one sample, from `Input<10>` / `Output<4, 16>`: one positive literal per axis.
pub(crate) fn port_shape(ty: &Type, wrapper: &str) -> syn::Result<Vec<usize>> {
    let err = |span: Span| {
        syn::Error::new(
            span,
            format!(
                "expected `{wrapper}<dims>`, the shape of one sample as positive integers: `{wrapper}<10>` for a \
                 vector, `{wrapper}<4, 16>` for 4 steps of 16 features (at most {MAX_RANK} axes)"
            ),
        )
    };
    let Type::Path(p) = ty else { return Err(err(ty.span())) };
    let seg = p.path.segments.last().ok_or_else(|| err(ty.span()))?;
    if seg.ident != wrapper {
        return Err(err(ty.span()));
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else { return Err(err(ty.span())) };
    if args.args.is_empty() || args.args.len() > MAX_RANK {
        return Err(err(args.span()));
    }
    args.args
        .iter()
        .map(|a| match a {
            syn::GenericArgument::Const(Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. })) => {
                i.base10_parse::<usize>().ok().filter(|d| *d > 0).ok_or_else(|| err(i.span()))
            }
            other => Err(err(other.span())),
        })
        .collect()
}

/// The shape of one sample as dimensions in generated code, where an axis may also be one of the
/// model's size parameters (`Output<C>`, with `params` its `const` parameters); `None` in the
/// second place for an axis that is a parameter.
pub(crate) fn port_dims(
    ty: &Type,
    wrapper: &str,
    params: &[Ident],
) -> syn::Result<(Vec<TokenStream>, Vec<Option<usize>>)> {
    let Type::Path(p) = ty else {
        return port_shape(ty, wrapper).map(|s| (lits(&s), s.into_iter().map(Some).collect()));
    };
    let seg = p.path.segments.last();
    let args = match seg.map(|s| &s.arguments) {
        Some(syn::PathArguments::AngleBracketed(a)) => a,
        _ => return port_shape(ty, wrapper).map(|s| (lits(&s), s.into_iter().map(Some).collect())),
    };
    // A size parameter is parsed as a type argument (`Output<C>`): read it as the dimension.
    let named = |a: &syn::GenericArgument| match a {
        syn::GenericArgument::Type(Type::Path(tp)) => tp.path.get_ident().filter(|i| params.contains(i)).cloned(),
        syn::GenericArgument::Const(Expr::Path(ep)) => ep.path.get_ident().filter(|i| params.contains(i)).cloned(),
        _ => None,
    };
    if !args.args.iter().any(|a| named(a).is_some()) || seg.is_none_or(|s| s.ident != wrapper) {
        return port_shape(ty, wrapper).map(|s| (lits(&s), s.into_iter().map(Some).collect()));
    }
    let (mut dims, mut known) = (Vec::new(), Vec::new());
    for a in &args.args {
        match named(a) {
            Some(i) => {
                dims.push(quote!(#i));
                known.push(None);
            }
            None => {
                let d = match a {
                    syn::GenericArgument::Const(Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. })) => {
                        i.base10_parse::<usize>().ok().filter(|d| *d > 0)
                    }
                    _ => None,
                };
                // Not a number: the literal-only reading reports it.
                let Some(d) = d else {
                    return port_shape(ty, wrapper).map(|s| (lits(&s), s.into_iter().map(Some).collect()));
                };
                dims.push(quote!(#d));
                known.push(Some(d));
            }
        }
    }
    Ok((dims, known))
}

fn lits(s: &[usize]) -> Vec<TokenStream> {
    s.iter().map(|d| quote!(#d)).collect()
}
