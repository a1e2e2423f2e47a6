//! The raw syntax of `functional!`, before names and layers are understood: the statements,
//! their right-hand sides, and the arguments of a layer's call.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Visibility, braced};

/// A right-hand side or an argument, before it is understood.
pub enum Expr {
    Name(Ident),
    List(Vec<Expr>, TokenStream),
    Call { callee: Ident, groups: Vec<Group>, tokens: TokenStream },
}

impl Expr {
    pub fn tokens(&self) -> TokenStream {
        match self {
            Expr::Name(i) => i.to_token_stream(),
            Expr::List(_, t) | Expr::Call { tokens: t, .. } => t.clone(),
        }
    }

    /// Names this expression reads: values, and layers applied by name.
    pub fn names(&self, out: &mut Vec<Ident>) {
        match self {
            Expr::Name(i) => out.push(i.clone()),
            Expr::List(items, _) => items.iter().for_each(|e| e.names(out)),
            Expr::Call { callee, groups, .. } => {
                out.push(callee.clone());
                for g in groups {
                    if let Ok(e) = parse_expr.parse2(g.stream()) {
                        e.names(out);
                    }
                }
            }
        }
    }
}

pub fn parse_expr(input: ParseStream) -> syn::Result<Expr> {
    if input.peek(syn::token::Bracket) {
        let tt: TokenTree = input.parse()?;
        let TokenTree::Group(g) = &tt else { unreachable!("peeked a bracket") };
        let items = (|s: ParseStream| Punctuated::<Expr, Token![,]>::parse_terminated_with(s, parse_expr))
            .parse2(g.stream())?;
        return Ok(Expr::List(items.into_iter().collect(), tt.to_token_stream()));
    }
    let callee: Ident = input.parse()?;
    let mut tokens = callee.to_token_stream();
    let mut groups = Vec::new();
    while input.peek(syn::token::Paren) {
        let tt: TokenTree = input.parse()?;
        tokens.extend(std::iter::once(tt.clone()));
        if let TokenTree::Group(g) = tt {
            groups.push(g);
        }
    }
    Ok(if groups.is_empty() { Expr::Name(callee) } else { Expr::Call { callee, groups, tokens } })
}

/// An argument of a layer's call: an input, or `key = value` (Keras' `attention_mask = m`).
pub enum CallArg {
    Positional(Expr),
    /// The value is `None` where it is not a value expression (`return_attention_scores = true`),
    /// so that the error names the keyword.
    Keyword(Ident, Option<Expr>),
}

pub fn parse_call_arg(input: ParseStream) -> syn::Result<CallArg> {
    if input.peek(Ident) && input.peek2(Token![=]) {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        if parse_expr(&input.fork()).is_ok() {
            return Ok(CallArg::Keyword(key, Some(parse_expr(input)?)));
        }
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<TokenTree>()?;
        }
        return Ok(CallArg::Keyword(key, None));
    }
    parse_expr(input).map(CallArg::Positional)
}

impl Parse for Expr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        parse_expr(input)
    }
}

pub struct Stmt {
    /// The bound name; for a tuple, a name no user writes.
    pub var: Ident,
    /// `(out, h, _) = ..`: the names a layer's several outputs are bound to, `None` for `_`.
    pub parts: Option<Vec<Option<Ident>>>,
    pub rhs: Expr,
}

/// `(a, b, _)`: names or `_`.
fn parse_parts(input: ParseStream) -> syn::Result<Vec<Option<Ident>>> {
    let names = Punctuated::<TokenTree, Token![,]>::parse_terminated(input)?;
    names
        .into_iter()
        .map(|t| match t {
            TokenTree::Ident(i) if i == "_" => Ok(None),
            TokenTree::Ident(i) => Ok(Some(i)),
            other => Err(syn::Error::new(other.span(), "expected a name or `_`")),
        })
        .collect()
}

/// The raw syntax, before names and layers are understood.
pub struct Syntax {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    /// The final `Model(..)`: the keyword and its arguments.
    pub model: Option<(Ident, Group)>,
}

impl Parse for Syntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let content;
        braced!(content in input);
        let mut stmts = Vec::new();
        let mut model = None;
        while !content.is_empty() {
            if content.peek(Ident) && content.peek2(Token![=]) {
                let var: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                let rhs = parse_expr(&content)?;
                content.parse::<Token![;]>()?;
                stmts.push(Stmt { var, parts: None, rhs });
            } else if content.peek(syn::token::Paren) && content.peek2(Token![=]) {
                let TokenTree::Group(g) = content.parse::<TokenTree>()? else { unreachable!("peeked a paren") };
                let parts = parse_parts.parse2(g.stream())?;
                content.parse::<Token![=]>()?;
                let rhs = parse_expr(&content)?;
                content.parse::<Token![;]>()?;
                let var = Ident::new(&format!("__kiln_outputs_{}", stmts.len()), g.span());
                stmts.push(Stmt { var, parts: Some(parts), rhs });
            } else {
                let kw: Ident = content.parse()?;
                if kw != "Model" || !content.peek(syn::token::Paren) || model.is_some() {
                    return Err(syn::Error::new(
                        kw.span(),
                        "expected `name = ...;`, or the final `Model(inputs, outputs)`",
                    ));
                }
                let TokenTree::Group(g) = content.parse::<TokenTree>()? else { unreachable!("peeked a paren") };
                let _: Option<Token![;]> = content.parse()?;
                model = Some((kw, g));
            }
        }
        Ok(Syntax { attrs, vis, name, stmts, model })
    }
}

impl Syntax {
    /// The model's name and visibility, for the fallback emitted beside errors.
    pub fn header(&self) -> (Ident, Visibility) {
        (self.name.clone(), self.vis.clone())
    }
}
