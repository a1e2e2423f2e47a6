//! A model that reads raw text, as Keras writes one: `Input([], dtype = string)` followed by a
//! `TextVectorization(..)` layer. The vectorization is not a layer of the graph (it has no
//! gradient and works on strings): the model's numeric input is its output (token ids,
//! `[output_sequence_length]`), and the model keeps the `TextVectorization` in its state, where
//! `adapt` teaches it the vocabulary and the weights files carry it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Token;
use syn::punctuated::Punctuated;

use super::{Arg, LayerCall, Value};
use crate::errors::Errors;

/// Whether an `Input(..)` declaration reads strings (`dtype = string`); its shape must then be
/// `[]` (or `[1]`): one text per sample.
pub fn is_text_input(decl: &TokenStream, errors: &mut Errors) -> bool {
    let Ok(args) = syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, decl.clone()) else {
        return false;
    };
    let text = args.iter().any(|a| a.key.as_ref().is_some_and(|k| k == "dtype") && word(&a.value) == "string");
    if text {
        for a in &args {
            if let Value::List(d, span) = &a.value
                && !(d.is_empty() || d[..] == [1])
            {
                errors.at(*span, "a text input holds one string per sample: Input([], dtype = string)");
            }
        }
    }
    text
}

/// An argument written as a name or a string (`int`, `"int"`); empty for other values.
fn word(v: &Value) -> String {
    match v {
        Value::Ident(i) => i.to_string(),
        Value::Str(s, _) => s.clone(),
        _ => String::new(),
    }
}

/// `TextVectorization(max_tokens = .., output_sequence_length = .., standardize = ..,
/// split = ..)`: the runtime options (Keras' argument names and defaults) and the numeric input
/// it makes, `[output_sequence_length]` token ids.
pub struct Head {
    pub options: TokenStream,
    pub length: usize,
}

pub fn head(call: &LayerCall, errors: &mut Errors) -> Option<Head> {
    let example = "TextVectorization(max_tokens = 20000, output_sequence_length = 200)";
    if call.ident != "TextVectorization" {
        errors.at(
            call.ident.span(),
            format!(
                "a text input is read by a TextVectorization layer first, e.g. {example}, then the layers of numbers"
            ),
        );
        return None;
    }
    let (mut max_tokens, mut length) = (quote!(None), None);
    let (mut standardize, mut split) = (quote!(LowerAndStripPunctuation), quote!(Whitespace));
    let mut ok = true;
    for a in &call.args {
        let key = a.key.as_ref().map(|k| k.to_string());
        let mut bad = |span: Span, msg: String| {
            errors.at(span, msg);
            ok = false;
        };
        match (key.as_deref(), &a.value) {
            // Keras' first positional argument.
            (Some("max_tokens") | None, Value::Int(n, _)) if *n >= 3 => {
                let n = *n as usize;
                max_tokens = quote!(Some(#n));
            }
            (Some("output_sequence_length"), Value::Int(n, _)) if *n > 0 => length = Some(*n as usize),
            (Some("output_mode"), v) => {
                if word(v) != "int" {
                    bad(v.span(), "a TextVectorization inside a model gives token ids (output_mode = int) here; multi_hot, count and tf_idf rows work on the data, before the model (kiln::data::TextVectorization)".into());
                }
            }
            (Some("standardize"), v) => {
                standardize = match word(v).as_str() {
                    "lower_and_strip_punctuation" => quote!(LowerAndStripPunctuation),
                    "lower" => quote!(Lower),
                    "strip_punctuation" => quote!(StripPunctuation),
                    "none" | "None" => quote!(None),
                    _ => {
                        bad(
                            v.span(),
                            "standardize is lower_and_strip_punctuation, lower, strip_punctuation or none".into(),
                        );
                        continue;
                    }
                };
            }
            (Some("split"), v) => {
                split = match word(v).as_str() {
                    "whitespace" => quote!(Whitespace),
                    "character" => quote!(Character),
                    "none" | "None" => quote!(None),
                    _ => {
                        bad(v.span(), "split is whitespace, character or none".into());
                        continue;
                    }
                };
            }
            (Some(k), v) => bad(
                v.span(),
                format!(
                    "TextVectorization takes max_tokens (at least 3), output_sequence_length, output_mode, standardize and split; `{k}` is not one of them, or its value does not fit"
                ),
            ),
            (None, v) => bad(v.span(), format!("TextVectorization's arguments are named, e.g. {example}")),
        }
    }
    let Some(length) = length else {
        errors.over(&call.tokens, format!("a TextVectorization inside a model pads or cuts every text to a length of its own: give output_sequence_length, e.g. {example}"));
        return None;
    };
    ok.then(|| Head {
        options: quote!(::kiln::data::TextOptions {
            max_tokens: #max_tokens,
            standardize: ::kiln::data::Standardize::#standardize,
            split: ::kiln::data::SplitOn::#split,
            output_mode: ::kiln::data::OutputMode::Int,
            output_sequence_length: Some(#length),
        }),
        length,
    })
}

/// The inherent methods of a text model: `adapt`, `vectorize`, and `fit`, `evaluate`,
/// `predict` on texts (inherent methods come before the `Model` trait's, which take arrays).
/// With several inputs (`inputs`, the text one at `text`), `x` is a tuple: the texts in the
/// text input's place, arrays in the others'.
pub fn methods(name: &syn::Ident, inputs: usize, text: usize) -> TokenStream {
    let xs: Vec<syn::Ident> = (0..inputs).map(|k| quote::format_ident!("x{k}")).collect();
    let arrays: Vec<syn::Ident> = (0..inputs).filter(|&k| k != text).map(|k| quote::format_ident!("X{k}")).collect();
    let (x_ty, unpack, gather) = if inputs == 1 {
        (quote!(&[S]), quote!(let x0 = x;), quote!(&ids))
    } else {
        let tys = (0..inputs).map(|k| {
            if k == text {
                quote!(&[S])
            } else {
                let t = quote::format_ident!("X{k}");
                quote!(#t)
            }
        });
        let parts = (0..inputs).map(|k| {
            let x = &xs[k];
            if k == text {
                quote!(all.push(::kiln::InputArray::from(ids.view().into_dyn()));)
            } else {
                quote!(all.extend(::kiln::Inputs::arrays(#x));)
            }
        });
        (
            quote!((#(#tys),*)),
            quote!(let (#(#xs),*) = x;),
            quote!({
                let mut all: ::std::vec::Vec<::kiln::InputArray<'_>> = ::std::vec::Vec::new();
                #(#parts)*
                all
            }),
        )
    };
    let t = &xs[text];
    quote! {
        impl #name {
            /// Learns the vocabulary of the model's TextVectorization from `texts` (Keras'
            /// `adapt`), before training.
            pub fn adapt<S: AsRef<str>>(&mut self, texts: &[S]) -> ::kiln::Result<()> {
                ::kiln::__private::text_of_mut(self)?.adapt(texts)
            }

            /// The token ids the model reads for `texts`: `[texts, output_sequence_length]`.
            pub fn vectorize<S: AsRef<str>>(&self, texts: &[S]) -> ::kiln::Result<::kiln::ndarray::Array2<f32>> {
                ::kiln::__private::text_of(self)?.transform(texts)
            }

            /// Keras' `fit` on raw texts: vectorized, then trained on as token ids.
            pub fn fit<'a, S: AsRef<str>, #(#arrays: ::kiln::Inputs<'a>),*>(
                &mut self,
                x: #x_ty,
                y: impl ::kiln::Inputs<'a>,
                opts: ::kiln::Fit<'_>,
            ) -> ::kiln::Result<::kiln::History> {
                #unpack
                let ids = self.vectorize(#t)?;
                let y = ::kiln::Inputs::arrays(y);
                <Self as ::kiln::Model>::fit(self, #gather, y, opts)
            }

            /// Keras' `evaluate` on raw texts.
            pub fn evaluate<'a, S: AsRef<str>, #(#arrays: ::kiln::Inputs<'a>),*>(
                &mut self,
                x: #x_ty,
                y: impl ::kiln::Inputs<'a>,
            ) -> ::kiln::Result<::kiln::Logs> {
                #unpack
                let ids = self.vectorize(#t)?;
                let y = ::kiln::Inputs::arrays(y);
                <Self as ::kiln::Model>::evaluate(self, #gather, y)
            }

            /// Keras' `predict` on raw texts: one row of outputs per text.
            pub fn predict<'a, S: AsRef<str>, #(#arrays: ::kiln::Inputs<'a>),*>(
                &mut self,
                x: #x_ty,
            ) -> ::kiln::Result<<Self as ::kiln::Model>::Prediction> {
                #unpack
                let ids = self.vectorize(#t)?;
                <Self as ::kiln::Model>::predict(self, #gather)
            }
        }
    }
}
