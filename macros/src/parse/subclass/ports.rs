//! The signature of `call`: `Input<10>` / `Output<4, 16>` as the shape of one sample, an axis
//! also one of the model's size parameters (`Output<CLASSES>`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Pat, ReturnType, Type};

use super::Lower;
use crate::ir::{Node, Op};

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

impl Lower {
    /// The model's inputs, one per argument of `call` after `&self`.
    pub(super) fn inputs(&mut self, sig: &syn::Signature) {
        for arg in sig.inputs.iter() {
            let syn::FnArg::Typed(pt) = arg else { continue };
            let Pat::Ident(pi) = &*pt.pat else {
                self.errors.at(pt.pat.span(), "name each input: x: Input<10>");
                continue;
            };
            // An input whose type is wrong is still bound (as width 1), so its uses report nothing
            // more than the type's own error. `Ids<20>` holds token ids for a field that reads them.
            let ids = matches!(&*pt.ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Ids"));
            // An axis may be one of the model's size parameters (`Input<N>`).
            let params = self.params.clone();
            let (dims, known) = port_dims(&pt.ty, if ids { "Ids" } else { "Input" }, &params).unwrap_or_else(|e| {
                self.errors.push(e);
                (vec![quote!(1usize)], vec![Some(1)])
            });
            let shape: Vec<usize> = known.iter().map(|d| d.unwrap_or(1)).collect();
            let sized = known.iter().any(Option::is_none);
            self.model.int_inputs.push(ids);
            let id = self.model.nodes.len();
            self.model.nodes.push(Node {
                op: Op::Input(self.model.inputs.len()),
                inputs: vec![],
                tokens: pt.to_token_stream(),
                output_shape: shape,
                input_shapes: vec![],
                dims: sized.then(|| dims.clone()),
            });
            self.shapes.push(dims);
            self.model.inputs.push((pi.ident.to_string(), id));
            self.env.insert(pi.ident.to_string(), id);
        }
    }

    /// The output shapes `call`'s signature declares, as dimensions (a size parameter allowed).
    pub(super) fn out_shapes(&mut self, sig: &syn::Signature) -> Vec<Vec<TokenStream>> {
        let params = self.params.clone();
        let mut read = |t: &Type| port_dims(t, "Output", &params).map(|(d, _)| d).map_err(|e| self.errors.push(e)).ok();
        match &sig.output {
            ReturnType::Type(_, t) => match &**t {
                Type::Tuple(tt) => tt.elems.iter().filter_map(&mut read).collect(),
                t => read(t).into_iter().collect(),
            },
            ReturnType::Default => {
                self.errors.at(sig.span(), "call must return `Output<width>`");
                vec![]
            }
        }
    }

    pub(super) fn declared_outputs(&mut self, outs: &[usize], out_shapes: &[Vec<TokenStream>], span: Span) {
        for (&o, shape) in outs.iter().zip(out_shapes) {
            let what = "the declared output";
            if self.shapes[o].len() != shape.len() {
                self.errors.at(
                    span,
                    format!(
                        "call returns a tensor of rank {} where its signature declares rank {}",
                        self.shapes[o].len(),
                        shape.len()
                    ),
                );
            } else if shape.len() == 1 {
                let (w, got) = (shape[0].clone(), self.shapes[o][0].clone());
                self.check(span, "expect_width", what, quote!(#w), got);
            } else {
                let got = self.slice(o);
                self.check(span, "expect_dims", what, quote!(&[#(#shape),*]), got);
            }
            // The numbers where the signature writes them (a size parameter's are known to rustc).
            self.model.nodes[o].output_shape = shape
                .iter()
                .map(|d| syn::parse2::<syn::LitInt>(d.clone()).ok().and_then(|l| l.base10_parse().ok()).unwrap_or(0))
                .collect();
            self.model.nodes[o].dims = Some(shape.clone());
        }
    }
}
