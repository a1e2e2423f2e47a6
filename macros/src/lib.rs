//! Procedural macros of kiln. Users reach them through the `kiln` crate.
//!
//! Every macro runs the same pipeline: parse (one front end per style) → graph IR → shape
//! inference and checks → code generation, and reports every mistake at the user's token.

mod codegen;
mod ir;
mod parse;
mod shape;

use proc_macro::TokenStream;

/// Defines a Sequential model: a struct whose layers run one after the other, with every shape
/// checked at compile time and forward and backward code generated.
///
/// ```ignore
/// sequential! {
///     /// 8x8 digit images to 10 class probabilities.
///     pub struct Digits: [8, 8, 1] {
///         Flatten,
///         Dense(64, activation = relu),
///         Dense(10, activation = softmax),
///     }
/// }
/// ```
#[proc_macro]
pub fn sequential(input: TokenStream) -> TokenStream {
    let syntax = syn::parse_macro_input!(input as parse::sequential::Syntax);
    let (name, vis) = syntax.header();
    parse::sequential::lower(syntax)
        .and_then(|mut model| shape::infer(&mut model).map(|()| model))
        .map(|model| codegen::expand(&model))
        .unwrap_or_else(|e| {
            let mut out = e.to_compile_error();
            out.extend(codegen::fallback(&name, &vis));
            out
        })
        .into()
}
