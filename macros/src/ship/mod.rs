//! Shipping a model: the inference code generated for a `sequential!` / `functional!` model with
//! embedded weights (`infer` on fixed-size arrays, no heap, no standard library), the memory it
//! needs as constants, and `#[budget(..)]`.
//!
//! Every buffer is planned when the model compiles (`plan`); the weights are laid out in one
//! byte string in the precision asked for (`blob`); each layer's `Static` kernel becomes one call
//! (`call`); the memory constants and the budget check are in `budget`.

mod blob;
mod budget;
mod call;
mod plan;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

pub use budget::{Options, budget, constant_items, extract, memory};

use blob::{Blob, largest_weights};
use budget::check_budget;
use call::Caller;
use plan::{Loc, Plan, passes_on, plan};

use crate::ir::Model;
use crate::weights_file::{Checked, Precision, Weights};

/// Why `infer` cannot be generated for a model, if it cannot: the first layer without a static
/// kernel, or an integer input.
fn unsupported(model: &Model) -> Option<String> {
    model.nodes.iter().find_map(|n| {
        let l = model.layer_of_node(n)?;
        (!l.kind.is_view() && l.kind.infer(&n.input_shapes, &n.output_shape).is_none()).then(|| {
            let what = if l.kind.has_initial_state() {
                "starts from an initial_state, which kiln's kernels without the standard library do not take yet"
            } else if l.kind.class() == "Bidirectional" && l.kind.outputs().is_some() {
                "returns its final states, which kiln's kernels without the standard library do not give yet"
            } else {
                "has no kernel kiln can run without the standard library yet"
            };
            format!("layer `{}` ({}) {what}", l.name, l.kind.class())
        })
    })
}

/// The layers `infer` supports, for error messages.
const SUPPORTED: &str = "every layer kiln has except users' own layers, recurrent layers given an \
initial_state, a Bidirectional layer returning its states, Attention and AdditiveAttention; of user \
math, everything but random draws";

/// `infer` for a model whose weights are embedded, and the bytes of its embedded weights; the
/// reason when a layer has no static kernel.
pub fn infer(model: &Model, w: &Weights, checked: &Checked) -> Result<(TokenStream, usize), String> {
    if let Some(why) = unsupported(model) {
        return Err(format!("{why}; `infer` supports {SUPPORTED}"));
    }
    let plan = plan(model);
    let mut blob = Blob::new(w.precision);
    let steps: Vec<TokenStream> =
        (0..model.nodes.len()).filter_map(|i| step(model, &plan, &mut blob, checked, i)).collect();

    let name = &model.name;
    let len = plan.len;
    let weight_bytes = blob.bytes.len();
    let data = Literal::byte_string(&blob.bytes);
    let abs = &checked.abs;
    let Signature { args, arg_names, ret, value } = signature(model, &plan);
    let shown = w.path.value();
    let dtype = match w.precision {
        Precision::F32 => "f32",
        Precision::Bf16 => "bf16 kernels",
        Precision::F16 => "f16 kernels",
        Precision::Int8 => "int8 kernels (one scale per output channel)",
    };
    let doc_w = format!("The weights `infer` reads ({dtype}), in place in the binary's static data, from `{shown}`.");
    Ok((
        quote! {
            impl #name {
                /// f32 values of scratch space `infer_with` takes.
                pub const SCRATCH_LEN: usize = #len;

                #[doc = #doc_w]
                pub fn weight_data() -> &'static [u8] {
                    // Rebuilds the model when the file changes; the bytes below are what it needs.
                    const _: &[u8] = include_bytes!(#abs);
                    static DATA: ::kiln::infer::Align64<[u8; #weight_bytes]> = ::kiln::infer::Align64(*#data);
                    &DATA.0
                }

                /// Runs the model on one sample with its scratch space on the stack
                /// ([`SCRATCH_LEN`](Self::SCRATCH_LEN) f32 values): no heap, no standard library.
                #[inline]
                pub fn infer(#(#args),*) -> #ret {
                    let mut scratch = [0f32; #len];
                    Self::infer_with(#(#arg_names,)* &mut scratch)
                }

                /// Runs the model on one sample with the caller's scratch space (a `static` buffer
                /// on a device with little stack).
                #[allow(clippy::identity_op, clippy::erasing_op)]
                pub fn infer_with(#(#args,)* scratch: &mut [f32; #len]) -> #ret {
                    let __w = Self::weight_data();
                    let __s: &mut [f32] = &mut scratch[..];
                    #(#steps)*
                    #value
                }
            }
        },
        weight_bytes,
    ))
}

/// The statements of `infer_with` computing node `i` into its range of the scratch array, its
/// weights laid out in the blob; `None` for a node with no call of its own (an input, a view, a
/// layer inactive at inference).
fn step(model: &Model, plan: &Plan, blob: &mut Blob, checked: &Checked, i: usize) -> Option<TokenStream> {
    let node = &model.nodes[i];
    let l = model.layer_of_node(node)?;
    if passes_on(model, i) {
        return None;
    }
    let st = l.kind.infer(&node.input_shapes, &node.output_shape)?;
    let Loc::Scratch(start) = plan.loc[i] else { return None };
    let out_len = node.output_shape.iter().product::<usize>();
    let end = start + out_len + st.extra();
    let ins: Vec<TokenStream> = node
        .inputs
        .iter()
        .map(|&j| {
            let len: usize = model.nodes[j].output_shape.iter().product();
            match plan.loc[j] {
                Loc::Input(k) => {
                    let x = format_ident!("x{k}");
                    quote!(&#x[..])
                }
                Loc::Scratch(a) if a + len <= start => quote!(&__lo[#a..#a + #len]),
                Loc::Scratch(a) => {
                    let a = a - end;
                    quote!(&__hi[#a..#a + #len])
                }
            }
        })
        .collect();
    // The model input of the token ids the layer reads (its first input where it reads none).
    let reads = |p: usize| l.kind.reads_ids(p);
    let at = (0..node.inputs.len()).find(|&p| reads(p)).unwrap_or(0);
    let input = node.inputs.get(at).and_then(|&j| match plan.loc[j] {
        Loc::Input(k) => Some(k),
        Loc::Scratch(_) => None,
    });
    let masks = masks(model, plan, i, start, end);
    let mut caller = Caller { blob, checked, layer: l.name.to_string() };
    let call = caller.call(&st, &ins, &node.input_shapes[0], &node.output_shape, input, &masks)?;
    Some(quote! {
        {
            let (__lo, __out, __hi) = ::kiln::infer::split(__s, #start, #end);
            let _ = (&__lo, &__hi);
            #call;
        }
    })
}

/// The masks of node `i`'s inputs (Keras' masking), where its layer reads them: each after the
/// output of the Embedding or Masking that made it, read below (`__lo`) or above (`__hi`) the
/// node's own range `start..end`.
fn masks(model: &Model, plan: &Plan, i: usize, start: usize, end: usize) -> [TokenStream; 3] {
    let node = &model.nodes[i];
    let uses_mask = model.layer_of(i).is_some_and(|l| l.kind.uses_mask());
    std::array::from_fn(|s| {
        let src = node.inputs.get(s).and_then(|&j| model.mask_source(j)).filter(|_| uses_mask);
        let at = src.and_then(|e| match plan.loc[e] {
            Loc::Scratch(a) => {
                let n = &model.nodes[e];
                let out: usize = n.output_shape.iter().product();
                let len = model.layer_of(e)?.kind.infer(&n.input_shapes, &n.output_shape)?.extra();
                Some((a + out, len))
            }
            Loc::Input(_) => None,
        });
        match at {
            None => quote!(::core::option::Option::None),
            Some((a, len)) if a + len <= start => quote!(::core::option::Option::Some(&__lo[#a..#a + #len])),
            Some((a, len)) => {
                let a = a - end;
                quote!(::core::option::Option::Some(&__hi[#a..#a + #len]))
            }
        }
    })
}

/// The parameters and result of `infer` / `infer_with`: one fixed-size array per input, and the
/// outputs copied out of the scratch array (in a `Result` for a model reading token ids).
struct Signature {
    args: Vec<TokenStream>,
    arg_names: Vec<TokenStream>,
    ret: TokenStream,
    value: TokenStream,
}

/// `infer`'s signature for the model's inputs and outputs, the outputs read where `plan` put them.
fn signature(model: &Model, plan: &Plan) -> Signature {
    let args: Vec<TokenStream> = model
        .inputs
        .iter()
        .enumerate()
        .map(|(k, (_, node))| {
            let (x, n) = (format_ident!("x{k}"), model.nodes[*node].output_shape.iter().product::<usize>());
            match model.int_inputs.get(k).copied().unwrap_or(false) {
                true => quote!(#x: &[i32; #n]),
                false => quote!(#x: &[f32; #n]),
            }
        })
        .collect();
    let arg_names: Vec<TokenStream> = (0..model.inputs.len())
        .map(|k| {
            let x = format_ident!("x{k}");
            quote!(#x)
        })
        .collect();
    let outs: Vec<(TokenStream, TokenStream)> = model
        .outputs
        .iter()
        .map(|&o| {
            let n: usize = model.nodes[o].output_shape.iter().product();
            let read = match plan.loc[o] {
                Loc::Input(k) => {
                    let x = format_ident!("x{k}");
                    quote!(&#x[..])
                }
                Loc::Scratch(a) => quote!(&__s[#a..#a + #n]),
            };
            (quote!([f32; #n]), quote!({ let mut y = [0f32; #n]; y.copy_from_slice(#read); y }))
        })
        .collect();
    let (out_tys, out_vals): (Vec<_>, Vec<_>) = outs.into_iter().unzip();
    let (mut ret, mut value) = match out_tys.len() {
        1 => (out_tys[0].clone(), out_vals[0].clone()),
        _ => (quote!((#(#out_tys),*)), quote!((#(#out_vals),*))),
    };
    // A model reading token ids answers a bad id with the error, not a wrong read.
    if model.int_inputs.iter().any(|&b| b) {
        ret = quote!(::core::result::Result<#ret, ::kiln::infer::BadId>);
        value = quote!(::core::result::Result::Ok(#value));
    }
    Signature { args, arg_names, ret, value }
}

/// An `#[inference_only]` model: a unit struct with `infer`, its memory constants and its budget
/// check, and nothing that needs the standard library.
pub fn inference_only(
    model: &Model,
    opts: &Options,
    w: Option<&Weights>,
    source_file: Option<std::path::PathBuf>,
) -> syn::Result<TokenStream> {
    let at = opts.inference_only.clone().unwrap_or_default();
    let fail = |msg: String| syn::Error::new_spanned(&at, format!("#[inference_only]: {msg}"));
    if let Some(why) = unsupported(model) {
        return Err(fail(format!("{why}; `infer` supports {SUPPORTED}")));
    }
    let Some(w) = w else {
        return Err(fail("the model needs its trained weights: add #[weights(\"model.safetensors\")]".into()));
    };
    let checked = crate::weights_file::check(model, w, source_file)?;
    let (code, weights) = infer(model, w, &checked).map_err(fail)?;
    let scratch = 4 * plan(model).len;
    check_budget(model, opts, weights, scratch, &|| largest_weights(model, w.precision))?;
    let Model { attrs, vis, name, .. } = model;
    Ok(quote! {
        #(#attrs)*
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        impl #name {
            /// Bytes of the weights as embedded for `infer` (per-tensor alignment included).
            pub const WEIGHT_BYTES: usize = #weights;
            /// Bytes of scratch space `infer` needs for one sample.
            pub const SCRATCH_BYTES: usize = #scratch;
        }

        #code
    })
}
