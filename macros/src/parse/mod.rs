//! Front ends: one parser per model style, all producing [`crate::ir::Model`], plus what they
//! share: model inputs and the names layers get. The layer-call grammar (`Dense(64, activation =
//! relu)`) is `layers::call`, beside the specs that read it.

pub mod functional;
pub mod loss;
pub mod sequential;
pub mod subclass;
pub mod text;

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use syn::Ident;
use syn::Token;
use syn::punctuated::Punctuated;

use crate::errors::Errors;
pub use crate::layers::call::{Arg, LayerCall, Understood, Value, understand};

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
