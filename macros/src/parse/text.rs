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
    let text = args.iter().any(|a| a.key.as_ref().is_some_and(|k| k == "dtype") && a.value.word() == "string");
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

/// `TextVectorization(max_tokens = .., output_sequence_length = .., standardize = ..,
/// split = ..)`: the runtime options (Keras' argument names and defaults) and the numeric input
/// it makes, `[output_sequence_length]` token ids.
pub struct Head {
    /// Keras' class name.
    pub class: &'static str,
    /// The runtime `StringInput` it builds.
    pub options: TokenStream,
    /// The width of the numbers it gives per string.
    pub length: usize,
    /// Whether those are ids (an `Embedding` may read them), else one-hot rows.
    pub ids: bool,
}

/// The first layer after a string input: `TextVectorization`, `StringLookup` or `Hashing`.
pub fn head(call: &LayerCall, errors: &mut Errors) -> Option<Head> {
    match call.ident.to_string().as_str() {
        "TextVectorization" => text_vectorization(call, errors),
        "StringLookup" => string_lookup(call, errors),
        "Hashing" => hashing(call, errors),
        _ => {
            errors.at(
                call.ident.span(),
                "a text input is read by a TextVectorization layer first, e.g. TextVectorization(max_tokens = 20000, output_sequence_length = 200), \
                 then the layers of numbers (or, for a category per sample, StringLookup(max_tokens = ..) or Hashing(num_bins = ..))",
            );
            None
        }
    }
}

/// An integer argument at least `min`, or the error naming it.
fn count(v: &Value, key: &str, min: i64, errors: &mut Errors) -> Option<usize> {
    match v {
        Value::Int(n, _) if *n >= min => Some(*n as usize),
        v => {
            errors.at(v.span(), format!("{key} is an integer of at least {min}"));
            None
        }
    }
}

/// `StringLookup(max_tokens, num_oov_indices = 1, mask_token = None, output_mode = int)`: one
/// category per sample to its id, `[1]`; `max_tokens` bounds the ids (an `Embedding(max_tokens,
/// ..)` reads them).
fn string_lookup(call: &LayerCall, errors: &mut Errors) -> Option<Head> {
    let example = "StringLookup(max_tokens = 100)";
    let (mut max, mut oov, mut mask, mut ok) = (None, quote!(1), quote!(), true);
    for a in &call.args {
        match (a.key.as_ref().map(|k| k.to_string()).as_deref(), &a.value) {
            (Some("max_tokens") | None, v) => max = count(v, "max_tokens", 2, errors),
            (Some("num_oov_indices"), v) => match count(v, "num_oov_indices", 0, errors) {
                Some(n) => oov = quote!(#n),
                None => ok = false,
            },
            (Some("mask_token"), Value::Str(s, _)) => mask = quote!(.with_mask_token(::std::string::String::from(#s))),
            (Some("output_mode"), v) if v.word() == "int" => {}
            (Some(k), v) => {
                errors.at(v.span(), format!("StringLookup inside a model takes max_tokens, num_oov_indices, mask_token (a string) and output_mode = int; `{k}` is not one of them, or its value does not fit"));
                ok = false;
            }
        }
    }
    let Some(max) = max else {
        errors.over(
            &call.tokens,
            format!("a StringLookup inside a model bounds its ids: give max_tokens, e.g. {example}"),
        );
        return None;
    };
    ok.then(|| Head {
        options: quote!(::kiln::data::StringInput::Lookup(
            ::kiln::data::StringLookup::new(Some(#max), ::kiln::data::Encoding::Int).with_num_oov_indices(#oov)#mask
        )),
        length: 1,
        ids: true,
        class: "StringLookup",
    })
}

/// `Hashing(num_bins, mask_value = None, salt = None, output_mode = int | one_hot)`: one category
/// per sample to its bin, `[1]`, or a one-hot row `[num_bins]`.
fn hashing(call: &LayerCall, errors: &mut Errors) -> Option<Head> {
    let (mut bins, mut mask, mut salt, mut one_hot, mut ok) = (None, quote!(None), quote!(None), false, true);
    for a in &call.args {
        match (a.key.as_ref().map(|k| k.to_string()).as_deref(), &a.value) {
            (Some("num_bins") | None, v) => bins = count(v, "num_bins", 1, errors),
            (Some("mask_value"), Value::Str(s, _)) => mask = quote!(Some(#s)),
            (Some("salt"), Value::Int(k, _)) if *k >= 0 => {
                let k = *k as u64;
                salt = quote!(Some([#k, #k]));
            }
            (Some("salt"), Value::List(k, _)) if k.len() == 2 && k.iter().all(|v| *v >= 0) => {
                let (a, b) = (k[0] as u64, k[1] as u64);
                salt = quote!(Some([#a, #b]));
            }
            (Some("output_mode"), v) if v.word() == "int" || v.word() == "one_hot" => one_hot = v.word() == "one_hot",
            (Some(k), v) => {
                errors.at(v.span(), format!("Hashing inside a model takes num_bins, mask_value (a string), salt (an integer or two) and output_mode = int or one_hot; `{k}` is not one of them, or its value does not fit"));
                ok = false;
            }
        }
    }
    let Some(bins) = bins else {
        errors.over(&call.tokens, "Hashing needs its num_bins, e.g. Hashing(num_bins = 64)");
        return None;
    };
    if bins < 2 && mask.to_string() != "None" {
        errors.over(&call.tokens, "Hashing with a mask_value needs at least 2 bins (bin 0 is the mask's)");
        return None;
    }
    ok.then(|| Head {
        options: quote!(::kiln::__private::hashing_input(#bins, #mask, #salt, #one_hot)),
        length: if one_hot { bins } else { 1 },
        ids: !one_hot,
        class: "Hashing",
    })
}

/// `TextVectorization(max_tokens = .., output_sequence_length = .., standardize = .., split =
/// .., output_mode = ..)`: texts to `[output_sequence_length]` token ids, or to rows of
/// `max_tokens` (multi-hot, counts or TF-IDF, padded to `max_tokens` as Keras'
/// `pad_to_max_tokens = True` pads them).
fn text_vectorization(call: &LayerCall, errors: &mut Errors) -> Option<Head> {
    let example = "TextVectorization(max_tokens = 20000, output_sequence_length = 200)";
    let (mut max_tokens, mut length, mut max) = (quote!(None), None, None);
    let mut mode = quote!(Int);
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
                max = Some(n);
            }
            (Some("output_sequence_length"), Value::Int(n, _)) if *n > 0 => length = Some(*n as usize),
            (Some("output_mode"), v) => {
                mode = match v.word().as_str() {
                    "int" => quote!(Int),
                    "multi_hot" => quote!(MultiHot),
                    "count" => quote!(Count),
                    "tf_idf" => quote!(TfIdf),
                    _ => {
                        bad(v.span(), "output_mode is int, multi_hot, count or tf_idf".into());
                        continue;
                    }
                };
            }
            (Some("standardize"), v) => {
                standardize = match v.word().as_str() {
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
                split = match v.word().as_str() {
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
    let ids = mode.to_string() == "Int";
    let (width, sequence) = match (ids, length, max) {
        (true, Some(l), _) => (l, quote!(Some(#l))),
        (true, None, _) => {
            errors.over(&call.tokens, format!("a TextVectorization inside a model pads or cuts every text to a length of its own: give output_sequence_length, e.g. {example}"));
            return None;
        }
        (false, None, Some(m)) => (m, quote!(None)),
        (false, Some(_), _) => {
            errors.over(&call.tokens, "output_sequence_length is for token ids (output_mode = int); rows of multi_hot, count or tf_idf are max_tokens wide");
            return None;
        }
        (false, None, None) => {
            errors.over(&call.tokens, "rows of multi_hot, count or tf_idf inside a model are max_tokens wide: give max_tokens, e.g. TextVectorization(max_tokens = 5000, output_mode = multi_hot)");
            return None;
        }
    };
    ok.then(|| Head {
        options: quote!(::kiln::data::StringInput::Text(::kiln::data::TextVectorization::new(::kiln::data::TextOptions {
            max_tokens: #max_tokens,
            standardize: ::kiln::data::Standardize::#standardize,
            split: ::kiln::data::SplitOn::#split,
            output_mode: ::kiln::data::OutputMode::#mode,
            output_sequence_length: #sequence,
        }))),
        length: width,
        ids,
        class: "TextVectorization",
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
                ::kiln::__private::strings_of_mut(self)?.adapt(texts)
            }

            /// The token ids the model reads for `texts`: `[texts, output_sequence_length]`.
            pub fn vectorize<S: AsRef<str>>(&self, texts: &[S]) -> ::kiln::Result<::kiln::ndarray::Array2<f32>> {
                ::kiln::__private::strings_of(self)?.transform(texts)
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
