//! Size parameters of `sequential!` and `functional!` models: `pub struct Mlp<const H: usize>`.
//!
//! Those front ends infer shapes as numbers, so a model with size parameters is lowered twice,
//! each parameter written as a distinct large number in each run (its stand-in). A dimension
//! both runs agree on is a constant; one equal to a parameter's stand-in in both runs is that
//! parameter; anything else is a size computed from a parameter, which kiln refuses at the layer
//! (on stable Rust a type cannot hold a constant computed from a generic parameter, and a
//! layer's sizes are its type's). The first run's generated code, each stand-in replaced by its
//! parameter, is the model; the second run's must equal it token for token, so that no number
//! computed from a stand-in reaches the generated code unnoticed.

use proc_macro2::{Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::quote;

use crate::ir::Model;

/// The stand-ins of up to four parameters in each run: primes no model writes as a size.
const STAND_INS: [[u64; 4]; 2] =
    [[1_000_003, 1_000_033, 1_000_037, 1_000_039], [2_000_003, 2_000_029, 2_000_039, 2_000_081]];

/// The size parameters of a model, as written and by name.
pub struct Sizes {
    pub generics: syn::Generics,
    names: Vec<Ident>,
}

/// Takes `<const H: usize, ..>` off after `struct NAME`: the rest of the input, and the
/// parameters where there are any.
pub fn take(input: TokenStream) -> syn::Result<(TokenStream, Option<Sizes>)> {
    let trees: Vec<TokenTree> = input.clone().into_iter().collect();
    let is_ident =
        |t: Option<&TokenTree>, s: Option<&str>| matches!(t, Some(TokenTree::Ident(i)) if s.is_none_or(|s| i == s));
    let is_punct = |t: Option<&TokenTree>, c: char| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c);
    let Some(start) = (0..trees.len()).find(|&i| {
        is_ident(trees.get(i), Some("struct")) && is_ident(trees.get(i + 1), None) && is_punct(trees.get(i + 2), '<')
    }) else {
        return Ok((input, None));
    };
    let open = start + 2;
    let mut depth = 0;
    let mut close = None;
    for (i, t) in trees.iter().enumerate().skip(open) {
        if is_punct(Some(t), '<') {
            depth += 1;
        } else if is_punct(Some(t), '>') {
            depth -= 1;
            if depth == 0 {
                close = Some(i);
                break;
            }
        }
    }
    let Some(close) = close else {
        return Err(syn::Error::new(trees[open].span(), "this `<` has no closing `>`"));
    };
    let generics: syn::Generics = syn::parse2(trees[open..=close].iter().cloned().collect())?;
    let mut names = Vec::new();
    for p in &generics.params {
        match p {
            syn::GenericParam::Const(c) if is_usize(&c.ty) => names.push(c.ident.clone()),
            _ => {
                return Err(syn::Error::new_spanned(
                    p,
                    "a model's parameters are sizes, written `const NAME: usize` (e.g. `struct Mlp<const H: usize>`); \
                     types and lifetimes are not taken",
                ));
            }
        }
    }
    if names.len() > STAND_INS[0].len() {
        return Err(syn::Error::new_spanned(
            &generics.params[STAND_INS[0].len()],
            format!("a model takes at most {} size parameters", STAND_INS[0].len()),
        ));
    }
    let rest = trees[..open].iter().chain(&trees[close + 1..]).cloned().collect();
    Ok((rest, Some(Sizes { generics, names })))
}

fn is_usize(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("usize"))
}

impl Sizes {
    /// The input with each parameter written as its stand-in of `run`.
    pub fn stand_in(&self, run: usize, input: TokenStream) -> TokenStream {
        input
            .into_iter()
            .map(|t| match t {
                TokenTree::Ident(i) => match self.names.iter().position(|n| *n == i) {
                    Some(k) => {
                        let mut lit = Literal::u64_unsuffixed(STAND_INS[run][k]);
                        lit.set_span(i.span());
                        TokenTree::Literal(lit)
                    }
                    None => TokenTree::Ident(i),
                },
                TokenTree::Group(g) => regroup(&g, self.stand_in(run, g.stream())),
                t => t,
            })
            .collect()
    }

    /// The parameter whose stand-in in `run` is `n`.
    fn param(&self, run: usize, n: u64) -> Option<&Ident> {
        STAND_INS[run].iter().position(|&s| s == n).and_then(|k| self.names.get(k))
    }

    /// Generated code of `run` with each stand-in back as its parameter: an integer as the
    /// parameter (`H`, or `(H as u64)` for another integer type), a float as `(H as f32)`, and
    /// in string literals (messages, names) the parameter's name.
    pub fn restore(&self, run: usize, code: TokenStream) -> TokenStream {
        code.into_iter()
            .flat_map(|t| match t {
                TokenTree::Group(g) => vec![regroup(&g, self.restore(run, g.stream()))],
                TokenTree::Literal(lit) => self.restore_literal(run, lit),
                t => vec![t],
            })
            .collect()
    }

    fn restore_literal(&self, run: usize, lit: Literal) -> Vec<TokenTree> {
        let text = lit.to_string();
        if text.starts_with('"') {
            let Ok(s) = syn::parse_str::<syn::LitStr>(&text) else { return vec![lit.into()] };
            let mut value = s.value();
            for (k, name) in self.names.iter().enumerate() {
                value = value.replace(&STAND_INS[run][k].to_string(), &name.to_string());
            }
            let mut new = Literal::string(&value);
            new.set_span(lit.span());
            return vec![new.into()];
        }
        let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let value = number.replace('_', "");
        let n = match value.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => value.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && *f > 0.0).map(|f| f as u64),
        };
        let Some(name) = n.and_then(|n| self.param(run, n)) else { return vec![lit.into()] };
        let mut name = name.clone();
        name.set_span(lit.span());
        let is_float = value.contains('.') || value.contains('e') || suffix.starts_with('f');
        match (is_float, suffix) {
            (false, "" | "usize") => vec![name.into()],
            _ => {
                let ty = match suffix {
                    "" => Ident::new("f32", lit.span()),
                    s => Ident::new(s, lit.span()),
                };
                vec![Group::new(proc_macro2::Delimiter::Parenthesis, quote!(#name as #ty)).into()]
            }
        }
    }

    /// Every node's shape in the two runs: each dimension a constant or one parameter. A size
    /// computed from a parameter is an error at the layer that computes it.
    pub fn check_shapes(&self, a: &Model, b: &Model) -> syn::Result<()> {
        for (na, nb) in a.nodes.iter().zip(&b.nodes) {
            let (sa, sb) = (&na.output_shape, &nb.output_shape);
            let fits = |x: usize, y: usize| {
                x == y || self.param(0, x as u64).is_some_and(|p| self.param(1, y as u64) == Some(p))
            };
            if sa.len() == sb.len() && sa.iter().zip(sb).all(|(&x, &y)| fits(x, y)) {
                continue;
            }
            let dims: Vec<String> = sa
                .iter()
                .zip(sb)
                .map(|(&x, &y)| match (x == y, self.param(0, x as u64)) {
                    (true, _) => x.to_string(),
                    (false, Some(p)) => p.to_string(),
                    (false, None) => "?".to_string(),
                })
                .collect();
            let what = a.layer_of_node(na).map_or_else(|| "this value".to_string(), |l| format!("`{}`", l.name));
            let span = na.tokens.clone().into_iter().next().map_or_else(Span::call_site, |t| t.span());
            let names: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
            return Err(syn::Error::new(
                span,
                format!(
                    "{what} gives a shape [{}] with a size computed from the size parameter {}: a model takes a size \
                     parameter as a size itself (a layer's width, an input's dimension), not a size computed from it \
                     (a type cannot hold a constant computed from a generic parameter)",
                    dims.join(", "),
                    names.join(" or "),
                ),
            ));
        }
        Ok(())
    }

    /// The two runs' generated code, restored, must be the same: the first is the model.
    pub fn agree(&self, a: TokenStream, b: TokenStream) -> syn::Result<TokenStream> {
        let (a, b) = (self.restore(0, a), self.restore(1, b));
        if a.to_string() == b.to_string() {
            return Ok(a);
        }
        Err(syn::Error::new(
            self.names[0].span(),
            "kiln computes a size from this size parameter in a place it cannot take one; write the model with \
             literal sizes, or use the parameter only as a layer's width or an input's dimension",
        ))
    }
}

fn regroup(g: &Group, stream: TokenStream) -> TokenTree {
    let mut new = Group::new(g.delimiter(), stream);
    new.set_span(g.span());
    TokenTree::Group(new)
}
