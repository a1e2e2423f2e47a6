//! Front ends: one parser per model style, all producing [`crate::ir::Model`], plus the layer-call
//! grammar they share (`Dense(64, activation = relu)`).

pub mod functional;
pub mod loss;
pub mod sequential;
pub mod subclass;

use std::collections::HashMap;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Ident;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{LitBool, LitInt, LitStr, Token, bracketed, parenthesized};

use std::rc::Rc;

use crate::errors::Errors;
use crate::layers::{Args, Spec, kind, unknown_layer};

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
    /// A Rust type (`Scale<16>`, `my::Layer`), for `Custom(..)`.
    Type(syn::Type),
    /// A name with numbers, as Keras writes `l2(0.01)` or `max_norm(3)`.
    Call(Ident, Vec<f64>, Span),
    /// A layer given to a wrapper, as in `Bidirectional(LSTM(32))`.
    Layer(Box<LayerCall>),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Int(_, s) | Value::Float(_, s) | Value::Str(_, s) | Value::Bool(_, s) | Value::List(_, s) => *s,
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
            let mut dims = Vec::new();
            while !content.is_empty() {
                dims.push(parse_int(&content)?.0);
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
            Ok(Value::List(dims, b.span.join()))
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

/// A model input's declaration, `[8, 8, 1]` or `[100], dtype = i32` (what `Input(..)` holds):
/// the shape of one sample and whether it holds integer token ids. `None` when reported.
pub fn input_args(stream: TokenStream, whole: &TokenStream, errors: &mut Errors) -> Option<(Vec<usize>, bool)> {
    let example =
        "Input takes the shape of one sample and optionally its dtype, e.g. Input([32]) or Input([100], dtype = i32)";
    let args = match syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, stream) {
        Ok(a) => a,
        Err(e) => {
            errors.at(e.span(), example);
            return None;
        }
    };
    let (mut shape, mut int, mut ok) = (None, false, true);
    for (i, arg) in args.iter().enumerate() {
        match (arg.key.as_ref().map(|k| k.to_string()).as_deref(), &arg.value) {
            (None | Some("shape"), Value::List(d, span)) if i == 0 => {
                shape = crate::parse::sequential::check_dims(d, *span, errors);
                ok &= shape.is_some();
            }
            (Some("dtype"), v) => {
                let name = match v {
                    Value::Ident(id) => id.to_string(),
                    Value::Str(s, _) => s.clone(),
                    _ => String::new(),
                };
                match name.as_str() {
                    "i32" | "int32" => int = true,
                    "f32" | "float32" => int = false,
                    _ => {
                        errors.at(v.span(), "dtype is `f32` (the default) or `i32` (token ids for an Embedding)");
                        ok = false;
                    }
                }
            }
            (Some(k), v) if k != "shape" => {
                errors.at(v.span(), format!("Input takes `shape` and `dtype`, not `{k}`"));
                ok = false;
            }
            (_, v) => {
                errors.at(v.span(), example);
                ok = false;
            }
        }
    }
    if shape.is_none() && ok {
        errors.over(whole, example);
    }
    Some((shape?, int)).filter(|_| ok)
}

/// Gives layers Keras' automatic names (`dense`, `dense_1`, ...) unless named, and keeps names
/// unique.
#[derive(Default)]
pub struct Namer {
    counts: HashMap<String, usize>,
    taken: HashMap<String, ()>,
}

impl Namer {
    /// Whether no layer is named `name` yet.
    pub fn free(&self, name: &str) -> bool {
        !self.taken.contains_key(name)
    }

    /// The layer's name, or an error at the `name = ".."` that is invalid or taken.
    pub fn name(&mut self, base: &str, given: Option<(String, Span)>, at: Span, errors: &mut Errors) -> Option<Ident> {
        let (name, span) = match given {
            Some((n, span)) => {
                if syn::parse_str::<Ident>(&n).is_err() || n.starts_with("__") {
                    errors.at(span, format!("layer name \"{n}\" must be a Rust identifier, e.g. \"hidden_1\""));
                    return None;
                }
                (n, span)
            }
            None => loop {
                let c = self.counts.entry(base.to_string()).or_insert(0);
                let n = if *c == 0 { base.to_string() } else { format!("{base}_{c}") };
                *c += 1;
                if !self.taken.contains_key(&n) {
                    break (n, at);
                }
            },
        };
        if self.taken.insert(name.clone(), ()).is_some() {
            errors.at(span, format!("two layers are named `{name}`: layer names must be unique"));
            return None;
        }
        Some(Ident::new(&name, at))
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
