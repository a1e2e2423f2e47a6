//! The raw syntax of `functional!`, before names and layers are understood: the statements,
//! their right-hand sides, and the arguments of a layer's call.

use std::collections::HashMap;

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Token, Visibility, braced};

/// A right-hand side or an argument, before it is understood.
pub enum Expr {
    Name(Ident),
    List(Vec<Expr>, TokenStream),
    Call {
        callee: Ident,
        groups: Vec<Group>,
        tokens: TokenStream,
    },
    /// Math on values (`z_mean + exp(0.5 * z_log_var) * eps`, `sum(x, axis = -1)`), lowered
    /// with the ops of `call` bodies.
    Math(syn::Expr),
}

impl Expr {
    pub fn tokens(&self) -> TokenStream {
        match self {
            Expr::Name(i) => i.to_token_stream(),
            Expr::List(_, t) | Expr::Call { tokens: t, .. } => t.clone(),
            Expr::Math(e) => e.to_token_stream(),
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
            // Every name in it (keywords such as `axis` included: they name no statement).
            Expr::Math(e) => idents(e.to_token_stream(), out),
        }
    }
}

fn idents(tokens: TokenStream, out: &mut Vec<Ident>) {
    for t in tokens {
        match t {
            TokenTree::Ident(i) => out.push(i),
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

/// The functions of math in a `functional!` statement (and `call` bodies): element-wise,
/// reductions, softmax along an axis.
const MATH: &[&str] = &[
    "exp",
    "log",
    "sqrt",
    "square",
    "abs",
    "negative",
    "pow",
    "power",
    "clip",
    "maximum",
    "minimum",
    "stop_gradient",
    "sum",
    "mean",
    "max",
    "min",
    "logsumexp",
    "softmax",
    "log_softmax",
    "random_normal",
    "random_uniform",
    "relu",
    "sigmoid",
    "tanh",
    "gelu",
    "elu",
    "selu",
    "softplus",
    "swish",
    "silu",
    "slice",
    "matmul",
    "reshape",
    "transpose",
    "expand_dims",
    "squeeze",
    "concatenate",
    "stack",
    "tile",
    "repeat",
    "one_hot",
    "gather",
];

/// A statement's right-hand side: the layer grammar (`Dense(4)(x)`, `shared(a)`, `[a, b]`), or
/// math on values when it is an operator, a number or one of [`MATH`]'s functions.
fn parse_rhs(input: ParseStream) -> syn::Result<Expr> {
    let tokens = rhs_tokens(input)?;
    let math = match syn::parse2::<syn::Expr>(tokens.clone()) {
        Ok(e @ (syn::Expr::Binary(_) | syn::Expr::Unary(_) | syn::Expr::Paren(_) | syn::Expr::Lit(_))) => Some(e),
        Ok(syn::Expr::Call(c)) if matches!(&*c.func, syn::Expr::Path(p) if p.path.get_ident().is_some_and(|i| MATH.contains(&i.to_string().as_str()))) => {
            Some(syn::Expr::Call(c))
        }
        _ => None,
    };
    match math {
        Some(e) => Ok(Expr::Math(e)),
        None => parse_expr.parse2(tokens),
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

/// A statement as written, its right-hand side not yet read: `var = rhs;` or `(a, _) = rhs;`.
struct Raw {
    var: Ident,
    parts: Option<Vec<Option<Ident>>>,
    rhs: TokenStream,
}

/// The most statements loops may unroll to in one model.
const MAX_UNROLLED: usize = 4096;

/// Statements, with `for v in [..] { .. }` loops unrolled (the body once per element, `v`
/// replaced by it), and the final `Model(..)`.
fn raw_statements(input: ParseStream, out: &mut Vec<Raw>, model: &mut Option<(Ident, Group)>) -> syn::Result<()> {
    while !input.is_empty() {
        if input.peek(Token![for]) {
            input.parse::<Token![for]>()?;
            let var: Ident = input.parse()?;
            input.parse::<Token![in]>()?;
            let list: syn::ExprArray = input.parse().map_err(|e| {
                syn::Error::new(e.span(), "a loop runs over a list written in the code: `for size in [64, 32] { .. }`")
            })?;
            let body;
            braced!(body in input);
            let body: TokenStream = body.parse()?;
            for item in &list.elems {
                let syn::Expr::Lit(lit) = item else {
                    return Err(syn::Error::new(
                        item.span(),
                        "a loop's list holds numbers or strings written in the code",
                    ));
                };
                let tokens = crate::parse::subclass::replace(body.clone(), &var, &lit.lit);
                let mut inner = None;
                (|s: ParseStream| raw_statements(s, out, &mut inner)).parse2(tokens)?;
                if let Some((kw, _)) = inner {
                    return Err(syn::Error::new(kw.span(), "Model(..) ends the model, after its loops"));
                }
                if out.len() > MAX_UNROLLED {
                    return Err(syn::Error::new(
                        list.span(),
                        format!("loops unroll to more than {MAX_UNROLLED} statements"),
                    ));
                }
            }
        } else if input.peek(Ident) && input.peek2(Token![=]) {
            let var: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let rhs = rhs_tokens(input)?;
            input.parse::<Token![;]>()?;
            out.push(Raw { var, parts: None, rhs });
        } else if input.peek(syn::token::Paren) && input.peek2(Token![=]) {
            let TokenTree::Group(g) = input.parse::<TokenTree>()? else { unreachable!("peeked a paren") };
            let parts = parse_parts.parse2(g.stream())?;
            input.parse::<Token![=]>()?;
            let rhs = rhs_tokens(input)?;
            input.parse::<Token![;]>()?;
            let var = Ident::new(&format!("__kiln_outputs_{}", out.len()), g.span());
            out.push(Raw { var, parts: Some(parts), rhs });
        } else {
            let kw: Ident = input.parse()?;
            if kw != "Model" || !input.peek(syn::token::Paren) || model.is_some() {
                return Err(syn::Error::new(
                    kw.span(),
                    "expected `name = ...;`, a `for size in [..] { .. }` loop, or the final `Model(inputs, outputs)`",
                ));
            }
            let TokenTree::Group(g) = input.parse::<TokenTree>()? else { unreachable!("peeked a paren") };
            let _: Option<Token![;]> = input.parse()?;
            *model = Some((kw, g));
        }
    }
    Ok(())
}

/// The tokens of a right-hand side, up to its `;`.
fn rhs_tokens(input: ParseStream) -> syn::Result<TokenStream> {
    let mut tokens = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![;]) {
        tokens.extend(std::iter::once(input.parse::<TokenTree>()?));
    }
    Ok(tokens)
}

/// Names read by `tokens` renamed to their latest binding (`h = Dense(8)(h);` reads the `h` bound
/// before); a name followed by `=` is a keyword (`axis = 1`) and stays.
fn rename(tokens: TokenStream, current: &HashMap<String, Ident>) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    for (k, t) in trees.iter().enumerate() {
        let keyword = matches!(trees.get(k + 1), Some(TokenTree::Punct(p)) if p.as_char() == '=')
            && !matches!(trees.get(k + 2), Some(TokenTree::Punct(p)) if p.as_char() == '=');
        let t = match t {
            TokenTree::Ident(i) if !keyword => match current.get(&i.to_string()) {
                Some(to) => TokenTree::Ident(Ident::new(&to.to_string(), i.span())),
                None => t.clone(),
            },
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), rename(g.stream(), current));
                ng.set_span(g.span());
                TokenTree::Group(ng)
            }
            other => other.clone(),
        };
        out.extend(std::iter::once(t));
    }
    out
}

impl Parse for Syntax {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let content;
        braced!(content in input);
        let (mut raw, mut model) = (Vec::new(), None);
        raw_statements(&content, &mut raw, &mut model)?;
        // A name bound again (Keras' `x = Dense(..)(x)`, a loop's body) becomes a new value:
        // later statements read the latest, as Python does.
        let mut current: HashMap<String, Ident> = HashMap::new();
        let mut bound: HashMap<String, usize> = HashMap::new();
        let mut stmts = Vec::with_capacity(raw.len());
        for r in raw {
            let rhs = parse_rhs.parse2(rename(r.rhs, &current))?;
            let mut fresh = |v: &Ident| -> Ident {
                let n = bound.entry(v.to_string()).or_insert(0);
                *n += 1;
                let id = if *n == 1 { v.clone() } else { Ident::new(&format!("__kiln_{v}_{n}"), v.span()) };
                current.insert(v.to_string(), id.clone());
                id
            };
            let parts = r.parts.map(|ps| ps.into_iter().map(|p| p.map(|p| fresh(&p))).collect());
            let var = if parts.is_some() { r.var } else { fresh(&r.var) };
            stmts.push(Stmt { var, parts, rhs });
        }
        let model = model.map(|(kw, g)| {
            let mut renamed = Group::new(g.delimiter(), rename(g.stream(), &current));
            renamed.set_span(g.span());
            (kw, renamed)
        });
        Ok(Syntax { attrs, vis, name, stmts, model })
    }
}

impl Syntax {
    /// The model's name and visibility, for the fallback emitted beside errors.
    pub fn header(&self) -> (Ident, Visibility) {
        (self.name.clone(), self.vis.clone())
    }
}
