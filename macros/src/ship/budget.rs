//! The memory a `sequential!` / `functional!` model needs, as its `WEIGHT_BYTES` and
//! `SCRATCH_BYTES` constants, and the attributes that ask about it: `#[budget(..)]`, checked
//! here, and `#[inference_only]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Attribute;

use super::blob::largest_weights;
use super::plan::plan;
use crate::ir::Model;
use crate::weights_file::Precision;

/// `#[inference_only]` and `#[budget(..)]`, taken from a model's attributes.
#[derive(Default)]
pub struct Options {
    /// `#[inference_only]` as written, if it is.
    pub inference_only: Option<TokenStream>,
    pub budget: Option<Budget>,
}

/// `#[budget(ram = "64K", flash = "256K")]`: limits on scratch and weight bytes.
pub struct Budget {
    pub ram: Option<(usize, String)>,
    pub flash: Option<(usize, String)>,
    /// The attribute as written, where a budget error points.
    pub tokens: TokenStream,
}

/// A size as written in a budget: `65536`, `"64K"`, `"64KB"`, `"1M"` (K = 1024 bytes).
fn size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").or_else(|| t.strip_suffix('B')).unwrap_or(&t);
    let (digits, unit) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1024),
        'M' => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(unit)
}

/// Takes `#[inference_only]` and `#[budget(..)]` out of the attributes.
pub fn extract(attrs: &mut Vec<Attribute>) -> syn::Result<Options> {
    let mut opts = Options::default();
    if let Some(i) = attrs.iter().position(|a| a.path().is_ident("inference_only")) {
        let attr = attrs.remove(i);
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(&attr, "write #[inference_only] without arguments"));
        }
        opts.inference_only = Some(quote!(#attr));
    }
    if let Some(i) = attrs.iter().position(|a| a.path().is_ident("budget")) {
        let attr = attrs.remove(i);
        let usage = "write the budget as #[budget(ram = \"64K\", flash = \"256K\")] (bytes; K = 1024, M = 1024 K)";
        let mut b = Budget { ram: None, flash: None, tokens: quote!(#attr) };
        attr.parse_nested_meta(|meta| {
            let key = if meta.path.is_ident("ram") {
                &mut b.ram
            } else if meta.path.is_ident("flash") {
                &mut b.flash
            } else {
                let p = &meta.path;
                return Err(meta.error(format!("unknown budget `{}`: {usage}", quote!(#p))));
            };
            let text = match meta.value()?.parse::<syn::Lit>()? {
                syn::Lit::Str(s) => s.value(),
                syn::Lit::Int(i) => i.base10_digits().to_string(),
                _ => return Err(meta.error(usage)),
            };
            let n = size(&text).ok_or_else(|| meta.error(format!("`{text}` is not a size: {usage}")))?;
            *key = Some((n, text));
            Ok(())
        })?;
        opts.budget = Some(b);
    }
    Ok(opts)
}
/// The weight and scratch bytes of a `sequential!` / `functional!` model (f32 weights): what its
/// `WEIGHT_BYTES` and `SCRATCH_BYTES` say, or `None` when a layer's parameters only rustc knows.
pub fn memory(model: &Model) -> Option<(usize, usize)> {
    // A `#[kiln::model]` struct's shapes are constant expressions only rustc evaluates, and a
    // model's size parameters are known only where it is used.
    if !model.generics.params.is_empty()
        || model.nodes.iter().any(|n| n.dims.is_some() || n.input_shapes.len() < n.inputs.len())
    {
        return None;
    }
    let mut weights = 0;
    for l in model.layers.iter().filter(|l| !l.kind.is_view()) {
        let params = l.kind.params(&model.nodes[l.apps[0]].input_shapes)?;
        weights += 4 * params.iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>();
    }
    Some((weights, 4 * plan(model).len))
}

/// The inherent constants every `sequential!` / `functional!` model has (inside its `impl`).
pub fn constant_items(model: &Model) -> TokenStream {
    let Some((weights, scratch)) = memory(model) else { return TokenStream::new() };
    quote! {
        /// Bytes of the model's parameters as f32 (trainable and not).
        pub const WEIGHT_BYTES: usize = #weights;
        /// Bytes of scratch space inference needs for one sample: the largest set of layer
        /// outputs alive at once, as planned when the model compiled.
        pub const SCRATCH_BYTES: usize = #scratch;
    }
}

/// A `sequential!` / `functional!` model's `#[budget(..)]` check (f32 weights).
pub fn budget(model: &Model, opts: &Options) -> syn::Result<()> {
    let Some((weights, scratch)) = memory(model) else { return Ok(()) };
    check_budget(model, opts, weights, scratch, &|| largest_weights(model, Precision::F32))
}

/// Checks the scratch and weight bytes against the model's `#[budget(..)]`, every limit passed
/// in one error; `heaviest` names the layer with the most weight bytes for it.
pub fn check_budget(
    model: &Model,
    opts: &Options,
    weights: usize,
    scratch: usize,
    heaviest: &dyn Fn() -> Option<(String, usize)>,
) -> syn::Result<()> {
    let Some(b) = &opts.budget else { return Ok(()) };
    let mut errors = Vec::new();
    if let Some((limit, text)) = &b.ram
        && scratch > *limit
    {
        let p = plan(model);
        let at = p.largest.map_or_else(String::new, |node| {
            let size: usize = model.nodes[node].output_shape.iter().product();
            format!(
                "; the largest buffer is the output of layer `{}`, {} bytes ({})",
                model.output_name(node),
                4 * size,
                crate::layers::show(&model.nodes[node].output_shape)
            )
        });
        errors.push(format!(
            "{} needs {scratch} bytes of scratch space for inference, over its ram budget of {text} ({limit} bytes){at}",
            model.name
        ));
    }
    if let Some((limit, text)) = &b.flash
        && weights > *limit
    {
        let at = heaviest().map_or_else(String::new, |(l, n)| format!("; the largest is layer `{l}`, {n} bytes"));
        errors.push(format!(
            "{} has {weights} bytes of weights, over its flash budget of {text} ({limit} bytes){at}",
            model.name
        ));
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(syn::Error::new_spanned(&b.tokens, errors.join("\n"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_written() {
        assert_eq!(size("64K"), Some(65536));
        assert_eq!(size("64KB"), Some(65536));
        assert_eq!(size("64KiB"), Some(65536));
        assert_eq!(size("1M"), Some(1 << 20));
        assert_eq!(size("1000"), Some(1000));
        assert_eq!(size("lots"), None);
    }
}
