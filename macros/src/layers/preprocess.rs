//! Keras' preprocessing layers that work on a model's integer input inside the model:
//! `CategoryEncoding(num_tokens, output_mode)`, integer ids to one-hot, multi-hot or count rows.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;
use crate::parse::Value;

pub const CATEGORY_ENCODING: Kind =
    Kind { class: "CategoryEncoding", args: &["num_tokens", "output_mode"], arity: Arity::One, build: category };

/// Ids travel as `f32`, exact up to 2²⁴.
const MAX_TOKENS: usize = 1 << 24;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OneHot,
    MultiHot,
    Count,
}

struct CategoryEncoding {
    num_tokens: usize,
    mode: Mode,
}

fn category(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let example = "CategoryEncoding(num_tokens = 10, output_mode = one_hot)";
    let num_tokens = match args.positive("num_tokens", "CategoryEncoding", example, errors)? {
        Some(n) if n <= MAX_TOKENS => n,
        Some(n) => {
            errors.over(args.call, format!("CategoryEncoding takes at most {MAX_TOKENS} tokens, got {n}"));
            return None;
        }
        None => {
            errors.over(args.call, format!("CategoryEncoding needs its num_tokens, e.g. {example}"));
            return None;
        }
    };
    let mode = match args.get("output_mode") {
        None => Mode::MultiHot,
        Some(v) => {
            let name = match v {
                Value::Ident(i) => i.to_string(),
                Value::Str(s, _) => s.clone(),
                _ => String::new(),
            };
            match name.as_str() {
                "one_hot" => Mode::OneHot,
                "multi_hot" => Mode::MultiHot,
                "count" => Mode::Count,
                _ => {
                    errors.at(v.span(), "CategoryEncoding's output_mode is one_hot, multi_hot (the default) or count");
                    return None;
                }
            }
        }
    };
    Some(Rc::new(CategoryEncoding { num_tokens, mode }))
}

impl Spec for CategoryEncoding {
    fn class(&self) -> &'static str {
        "CategoryEncoding"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        match (&ins[0][..], self.mode) {
            ([1], _) | ([_], Mode::MultiHot | Mode::Count) => Ok(vec![self.num_tokens]),
            ([_], Mode::OneHot) => Err(format!(
                "CategoryEncoding(output_mode = one_hot) encodes one id per sample, [1], got {}: multi_hot or count encode several",
                show(&ins[0])
            )),
            _ => Err(format!("CategoryEncoding reads a vector of ids per sample, [ids], got {}", show(&ins[0]))),
        }
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::CategoryEncode)
    }

    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, n, count) = (rt(), self.num_tokens, self.mode == Mode::Count);
        quote!(#rt::CategoryEncode::new(#n, #count))
    }

    fn params(&self, _ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![])
    }

    fn id_bound(&self) -> Option<usize> {
        Some(self.num_tokens)
    }
}
