//! The syntax of a layer call as every model style writes it (`Dense(64, activation = relu)`),
//! and its understanding as a layer kind: what the layer specs read their arguments from. It
//! lives beside the specs, so the front ends (`parse/`) depend on the layers and not the reverse;
//! a wrapper (`Bidirectional(LSTM(8))`) understands the layer it is given here too.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Ident;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{LitBool, LitInt, LitStr, Token, bracketed, parenthesized};

use std::rc::Rc;

use super::{Args, Spec, kind, unknown_layer};
use crate::errors::Errors;

/// An argument value in a layer call.
#[derive(Clone)]
pub enum Value {
    Int(i64, Span),
    /// A number written with a point or an exponent (`0.3`, `1e-3`).
    Float(f64, Span),
    Str(String, Span),
    Ident(Ident),
    Bool(bool, Span),
    List(Vec<i64>, Span),
    /// A list with a number written with a point (`[0.5, 1.5]`, Discretization's boundaries).
    Numbers(Vec<f64>, Span),
    /// A Rust type (`Scale<16>`, `my::Layer`), for `Custom(..)`.
    Type(syn::Type),
    /// A name with numbers, as Keras writes `l2(0.01)` or `max_norm(3)`.
    Call(Ident, Vec<f64>, Span),
    /// A layer given to a wrapper, as in `Bidirectional(LSTM(32))`.
    Layer(Box<LayerCall>),
}

impl Value {
    /// An argument written as a name or a string (`relu`, `"relu"`); empty for other values.
    pub fn word(&self) -> String {
        match self {
            Value::Ident(i) => i.to_string(),
            Value::Str(s, _) => s.clone(),
            _ => String::new(),
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Value::Int(_, s)
            | Value::Float(_, s)
            | Value::Str(_, s)
            | Value::Bool(_, s)
            | Value::List(_, s)
            | Value::Numbers(_, s) => *s,
            Value::Ident(i) => i.span(),
            Value::Type(t) => syn::spanned::Spanned::span(t),
            Value::Call(_, _, s) => *s,
            Value::Layer(call) => call.ident.span(),
        }
    }
}

fn parse_int(input: ParseStream) -> syn::Result<(i64, Span)> {
    let neg: Option<Token![-]> = input.parse()?;
    let lit: LitInt = input.parse()?;
    let v: i64 = lit.base10_parse()?;
    let span = neg.map(|n| n.span.join(lit.span()).unwrap_or(lit.span())).unwrap_or(lit.span());
    Ok((if neg.is_some() { -v } else { v }, span))
}

impl Parse for Value {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(syn::LitFloat) || (input.peek(Token![-]) && input.peek2(syn::LitFloat)) {
            let neg: Option<Token![-]> = input.parse()?;
            let lit: syn::LitFloat = input.parse()?;
            let v: f64 = lit.base10_parse()?;
            let span = neg.map(|n| n.span.join(lit.span()).unwrap_or(lit.span())).unwrap_or(lit.span());
            Ok(Value::Float(if neg.is_some() { -v } else { v }, span))
        } else if input.peek(LitInt) || input.peek(Token![-]) {
            let (v, s) = parse_int(input)?;
            Ok(Value::Int(v, s))
        } else if input.peek(LitStr) {
            let l: LitStr = input.parse()?;
            Ok(Value::Str(l.value(), l.span()))
        } else if input.peek(LitBool) {
            let l: LitBool = input.parse()?;
            Ok(Value::Bool(l.value, l.span))
        } else if input.peek(syn::token::Bracket) {
            let content;
            let b = bracketed!(content in input);
            let (mut dims, mut numbers) = (Vec::new(), Vec::new());
            while !content.is_empty() {
                match content.parse::<Value>()? {
                    Value::Int(v, _) => {
                        dims.push(v);
                        numbers.push(v as f64);
                    }
                    Value::Float(v, _) => numbers.push(v),
                    other => return Err(syn::Error::new(other.span(), "expected a number")),
                }
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
            if dims.len() == numbers.len() {
                Ok(Value::List(dims, b.span.join()))
            } else {
                Ok(Value::Numbers(numbers, b.span.join()))
            }
        } else if input.peek(Ident)
            && input.peek2(syn::token::Paren)
            && input.fork().parse::<Ident>().is_ok_and(|i| kind(&i.to_string()).is_some())
        {
            Ok(Value::Layer(Box::new(input.parse()?)))
        } else if input.peek(Ident) && input.peek2(syn::token::Paren) {
            let name: Ident = input.parse()?;
            let content;
            let p = syn::parenthesized!(content in input);
            let mut nums = Vec::new();
            while !content.is_empty() {
                nums.push(match content.parse::<Value>()? {
                    Value::Int(v, _) => v as f64,
                    Value::Float(v, _) => v,
                    other => return Err(syn::Error::new(other.span(), "expected a number")),
                });
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
            let span = name.span().join(p.span.join()).unwrap_or(name.span());
            Ok(Value::Call(name, nums, span))
        } else if input.peek(Ident) && (input.peek2(Token![<]) || input.peek2(Token![::])) {
            Ok(Value::Type(input.parse()?))
        } else if input.peek(Ident) {
            Ok(Value::Ident(input.parse()?))
        } else {
            Err(input.error("expected a layer argument: a number, a name, a string, true/false or a shape `[..]`"))
        }
    }
}

/// `key = value` or a positional `value`.
#[derive(Clone)]
pub struct Arg {
    pub key: Option<Ident>,
    pub value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = if input.peek(Ident) && input.peek2(Token![=]) {
            let k: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            Some(k)
        } else {
            None
        };
        Ok(Arg { key, value: input.parse()? })
    }
}

/// `Name` or `Name(args)` as written by the user, before it is understood.
#[derive(Clone)]
pub struct LayerCall {
    pub ident: Ident,
    pub args: Vec<Arg>,
    /// The whole call, so errors underline all of `Dense(64, activation = relu)`.
    pub tokens: TokenStream,
}

impl Parse for LayerCall {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let ident: Ident = input.parse()?;
        let mut tokens = ident.to_token_stream();
        let mut args = Vec::new();
        if input.peek(syn::token::Paren) {
            let group: Group = input.fork().parse()?;
            tokens.extend(std::iter::once(TokenTree::Group(group)));
            let content;
            parenthesized!(content in input);
            args = Punctuated::<Arg, Token![,]>::parse_terminated(&content)?.into_iter().collect();
        }
        Ok(LayerCall { ident, args, tokens })
    }
}

/// A layer call understood: its kind and the name given with `name = "..."`, if any.
#[derive(Clone)]
pub struct Understood {
    pub kind: Rc<dyn Spec>,
    pub name: Option<(String, Span)>,
}

/// Turns a layer call into a layer kind, reporting every problem with its arguments. Merge layers
/// are accepted only where `merges` (functional!).
pub fn understand(call: &LayerCall, merges: bool, errors: &mut Errors) -> Option<Understood> {
    let class = call.ident.to_string();
    let k = match kind(&class) {
        Some(k) if merges || k.arity == crate::layers::Arity::One => k,
        _ => {
            errors.at(call.ident.span(), unknown_layer(&class, merges));
            return None;
        }
    };
    let allowed: Vec<&str> = k.args.iter().copied().chain(["name"]).collect();
    // Positional arguments take the first keys in order, as in Keras.
    let mut named: Vec<(String, &Value)> = Vec::new();
    let mut positional = 0;
    // Misspelled names with the argument each is closest to, read as that argument once the
    // others are in, so the layer is still built: one error, not a second for a "missing" one.
    let mut misspelled: Vec<(String, &Value)> = Vec::new();
    for arg in &call.args {
        let (key, span) = match &arg.key {
            Some(key) => (key.to_string(), key.span()),
            None => {
                positional += 1;
                match k.args.get(positional - 1) {
                    Some(key) => (key.to_string(), arg.value.span()),
                    None => {
                        errors.at(
                            arg.value.span(),
                            format!("{class} takes at most {} positional argument(s)", k.args.len()),
                        );
                        continue;
                    }
                }
            }
        };
        if !allowed.contains(&key.as_str()) {
            let hint = crate::errors::suggestion(&key, &allowed);
            errors.at(span, format!("{class} has no argument `{key}`{hint}; it takes: {}", allowed.join(", ")));
            if let Some(close) = crate::errors::closest(&key, &allowed) {
                misspelled.push((close.to_string(), &arg.value));
            }
        } else if named.iter().any(|(n, _)| *n == key) {
            errors.at(span, format!("argument `{key}` given twice"));
        } else {
            named.push((key, &arg.value));
        }
    }
    for (key, value) in misspelled {
        if !named.iter().any(|(n, _)| *n == key) {
            named.push((key, value));
        }
    }
    let args = Args { class: &class, named, call: &call.tokens };
    let name = match args.get("name") {
        Some(Value::Str(s, sp)) => Some((s.clone(), *sp)),
        Some(v) => {
            errors.at(v.span(), "`name` must be a string, e.g. name = \"hidden\"");
            None
        }
        None => None,
    };
    let kind = (k.build)(&args, errors)?;
    Some(Understood { kind, name })
}
