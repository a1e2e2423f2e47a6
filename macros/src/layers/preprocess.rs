//! Keras' preprocessing layers inside a model: `CategoryEncoding(num_tokens, output_mode)`,
//! integer ids to one-hot, multi-hot or count rows; `Discretization(bin_boundaries | num_bins,
//! output_mode)`, numbers to their buckets (ids or rows), the boundaries given or learned by
//! `Model::adapt` and kept as non-trainable state.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;
use crate::parse::Value;

pub const CATEGORY_ENCODING: Kind =
    Kind { class: "CategoryEncoding", args: &["num_tokens", "output_mode"], arity: Arity::One, build: category };

pub const DISCRETIZATION: Kind = Kind {
    class: "Discretization",
    args: &["bin_boundaries", "num_bins", "output_mode"],
    arity: Arity::One,
    build: discretization,
};

pub const INTEGER_LOOKUP: Kind = Kind {
    class: "IntegerLookup",
    args: &["max_tokens", "num_oov_indices", "output_mode"],
    arity: Arity::One,
    build: integer_lookup,
};

/// Ids travel as `f32`, exact up to 2²⁴.
const MAX_TOKENS: usize = 1 << 24;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Int,
    OneHot,
    MultiHot,
    Count,
}

/// `output_mode`, one of `allowed` (its first the default).
fn mode(args: &Args<'_>, class: &str, allowed: &[(&str, Mode)], errors: &mut Errors) -> Option<Mode> {
    let Some(v) = args.get("output_mode") else { return Some(allowed[0].1) };
    let name = v.word();
    let found = allowed.iter().find(|(n, _)| *n == name).map(|(_, m)| *m);
    if found.is_none() {
        let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        errors.at(v.span(), format!("{class}'s output_mode is one of {} (the first is the default)", names.join(", ")));
    }
    found
}

/// The shape of rows over `width` values for the ids `[k]` of a sample, or why it does not fit.
fn rows(class: &str, mode: Mode, width: usize, input: &[usize]) -> Result<Vec<usize>, String> {
    match (input, mode) {
        ([k], Mode::Int) => Ok(vec![*k]),
        ([1], _) | ([_], Mode::MultiHot | Mode::Count) => Ok(vec![width]),
        ([_], _) => Err(format!(
            "{class}(output_mode = one_hot) encodes one value per sample, [1], got {}: multi_hot or count encode several",
            show(input)
        )),
        _ => Err(format!("{class} reads a vector per sample, [values], got {}", show(input))),
    }
}

struct Discretization {
    bins: usize,
    boundaries: Option<Vec<f32>>,
    mode: Mode,
}

fn discretization(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let example =
        "Discretization(bin_boundaries = [0.0, 1.0, 2.0]) or Discretization(num_bins = 4), then model.adapt(..)";
    let boundaries: Option<Vec<f32>> = match args.get("bin_boundaries") {
        None => None,
        Some(Value::List(v, _)) => Some(v.iter().map(|&x| x as f32).collect()),
        Some(Value::Numbers(v, _)) => Some(v.iter().map(|&x| x as f32).collect()),
        Some(v) => {
            errors.at(v.span(), "bin_boundaries is a list of increasing numbers, e.g. [0.0, 1.5, 10.0]");
            return None;
        }
    };
    let bins = match (&boundaries, args.positive("num_bins", "Discretization", example, errors)?) {
        (Some(b), None) if !b.is_empty() && b.windows(2).all(|w| w[0] < w[1]) => b.len() + 1,
        (Some(_), None) => {
            errors.over(args.call, "bin_boundaries must increase");
            return None;
        }
        (None, Some(n)) if n >= 2 => n,
        _ => {
            errors.over(
                args.call,
                format!("Discretization takes bin_boundaries or num_bins (at least 2), one of them: {example}"),
            );
            return None;
        }
    };
    let allowed =
        [("int", Mode::Int), ("one_hot", Mode::OneHot), ("multi_hot", Mode::MultiHot), ("count", Mode::Count)];
    let mode = mode(args, "Discretization", &allowed, errors)?;
    Some(Rc::new(Discretization { bins, boundaries, mode }))
}

impl Spec for Discretization {
    fn class(&self) -> &'static str {
        "Discretization"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        rows("Discretization", self.mode, self.bins, &ins[0])
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::Discretize)
    }

    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, n) = (rt(), self.bins);
        let given = match &self.boundaries {
            Some(b) => quote!(Some(&[#(#b),*])),
            None => quote!(None),
        };
        let rows = match self.mode {
            Mode::Int => quote!(None),
            Mode::Count => quote!(Some(true)),
            _ => quote!(Some(false)),
        };
        quote!(#rt::Discretize::new(#n, #given, #rows))
    }

    fn params(&self, _ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![("bin_boundaries", vec![self.bins - 1])])
    }

    fn onnx(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let rows = match self.mode {
            Mode::Int => None,
            m => Some(m == Mode::Count),
        };
        Some(crate::ir::Static::Buckets { bins: self.bins, rows })
    }
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
    let allowed = [("multi_hot", Mode::MultiHot), ("one_hot", Mode::OneHot), ("count", Mode::Count)];
    let mode = mode(args, "CategoryEncoding", &allowed, errors)?;
    Some(Rc::new(CategoryEncoding { num_tokens, mode }))
}

impl Spec for CategoryEncoding {
    fn class(&self) -> &'static str {
        "CategoryEncoding"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        rows("CategoryEncoding", self.mode, self.num_tokens, &ins[0])
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

    fn onnx(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::CategoryRows { depth: self.num_tokens, count: self.mode == Mode::Count })
    }
}

/// `IntegerLookup(max_tokens, num_oov_indices = 1, output_mode = multi_hot | one_hot | count)`:
/// integers (written as numbers, exact below 2²⁴) to rows of `max_tokens` over a vocabulary
/// learned by `Model::adapt`.
struct IntegerLookup {
    max_tokens: usize,
    num_oov: usize,
    mode: Mode,
}

fn integer_lookup(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let example = "IntegerLookup(max_tokens = 100, output_mode = multi_hot)";
    let max_tokens = match args.positive("max_tokens", "IntegerLookup", example, errors)? {
        Some(n) if n <= MAX_TOKENS => n,
        _ => {
            errors.over(
                args.call,
                format!(
                    "an IntegerLookup inside a model gives rows of max_tokens values: give max_tokens, e.g. {example}"
                ),
            );
            return None;
        }
    };
    let num_oov = args.positive("num_oov_indices", "IntegerLookup", example, errors)?.unwrap_or(1);
    if num_oov >= max_tokens {
        errors.over(
            args.call,
            format!(
                "max_tokens ({max_tokens}) must leave room for a learned value beside {num_oov} out-of-vocabulary id(s)"
            ),
        );
        return None;
    }
    if let Some(v) = args.get("output_mode").filter(|v| v.word() == "int") {
        errors.at(v.span(), "an IntegerLookup inside a model gives rows (output_mode = multi_hot, one_hot or count); its ids work on the data, before the model (kiln::data::IntegerLookup)");
        return None;
    }
    let allowed = [("multi_hot", Mode::MultiHot), ("one_hot", Mode::OneHot), ("count", Mode::Count)];
    let mode = mode(args, "IntegerLookup", &allowed, errors)?;
    Some(Rc::new(IntegerLookup { max_tokens, num_oov, mode }))
}

impl Spec for IntegerLookup {
    fn class(&self) -> &'static str {
        "IntegerLookup"
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        rows("IntegerLookup", self.mode, self.max_tokens, &ins[0])
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::IntLookup)
    }

    fn constructor(&self, _ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let (rt, m, n, count) = (rt(), self.max_tokens, self.num_oov, self.mode == Mode::Count);
        quote!(#rt::IntLookup::new(#m, #n, #count))
    }

    fn params(&self, _ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        Some(vec![("vocabulary", vec![self.max_tokens - self.num_oov])])
    }

    fn onnx(&self, _: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        Some(crate::ir::Static::Lookup { oov: self.num_oov, count: self.mode == Mode::Count })
    }
}
