//! One layer's call in the generated `infer_with`: the `Static` kernel a layer's spec names,
//! turned into a call of the runtime's `infer` module with its weights laid out in the blob.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::blob::{Blob, matrix};
use crate::ir::Static;
use crate::weights_file::Checked;

/// Generates one layer's call in `infer_with`, laying its weights out in the blob.
pub struct Caller<'a> {
    pub blob: &'a mut Blob,
    pub checked: &'a Checked,
    pub layer: String,
}

impl Caller<'_> {
    fn key(&self, p: &str) -> String {
        format!("{}.{p}", self.layer)
    }

    fn param(&self, p: &str) -> Vec<f32> {
        self.checked.values(&self.key(p)).map(|(_, v)| v).unwrap_or_default()
    }

    fn f32s(&mut self, p: &str) -> TokenStream {
        let vals = self.param(p);
        self.blob.named(self.key(p), |b| b.f32s(&vals))
    }

    fn kernel(&mut self, p: &str, cols: usize, block: Option<usize>) -> TokenStream {
        let vals = self.param(p);
        self.blob.named(self.key(p), |b| b.kernel(&vals, cols, block))
    }

    /// An optional parameter (a bias, a normalisation's gamma and beta) the file may not have.
    fn opt(&mut self, p: &str, present: bool) -> TokenStream {
        match present && self.checked.values(&self.key(p)).is_some() {
            false => quote!(::core::option::Option::None),
            true => {
                let v = self.f32s(p);
                quote!(::core::option::Option::Some(#v))
            }
        }
    }

    /// A recurrent layer's weights (`prefix` names a Bidirectional direction), as a
    /// `RecurrentWeights` expression.
    fn recurrent_weights(&mut self, prefix: &str, features: usize, units: usize, gu: usize) -> TokenStream {
        let k = self.kernel(&format!("{prefix}kernel"), gu, Some(features));
        let rk = self.kernel(&format!("{prefix}recurrent_kernel"), gu, Some(units));
        let b = self.opt(&format!("{prefix}bias"), true);
        quote!(::kiln::infer::RecurrentWeights { kernel: #k, recurrent_kernel: #rk, bias: #b })
    }

    /// The call computing `st` from `ins` into `__out` (with its workspace after the output);
    /// `None` for a layer that passes its input on. `input` is the model input the first input
    /// reads, if it is one (for the error naming a bad token id).
    // Long because it is one match arm per `Static` kernel, each a few lines of its own.
    pub fn call(
        &mut self,
        st: &Static,
        ins: &[TokenStream],
        in_shape: &[usize],
        out_shape: &[usize],
        input: Option<usize>,
        masks: &[TokenStream; 3],
    ) -> Option<TokenStream> {
        let [m0, _, _] = masks;
        let act = |a: &str| {
            let a = format_ident!("{a}");
            quote!(::kiln::infer::ActKind::#a)
        };
        let x = &ins[0];
        let out_len: usize = out_shape.iter().product();
        let out_last = out_shape.last().copied().unwrap_or(1);
        let in_last = in_shape.last().copied().unwrap_or(1);
        // The output, then the workspace behind it.
        let split = quote!(let (__out, __work) = __out.split_at_mut(#out_len););
        Some(match st {
            Static::Identity => return None,
            // Described by `Spec::onnx` for export alone: `infer` never gives them.
            Static::CategoryRows { .. }
            | Static::Buckets { .. }
            | Static::Lookup { .. }
            | Static::DotAttention { .. }
            | Static::WeightRead => {
                unreachable!("an export-only description reached the no_std kernels")
            }
            Static::Take { start, len } => quote!(__out.copy_from_slice(&(#x)[#start..#start + #len])),
            Static::Dense { units, act: a } => {
                let k = self.kernel("kernel", *units, Some(in_last));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::dense(#x, #k, #b, #a, #in_last, #units, __out))
            }
            Static::Conv { win, filters, groups, act: a } => {
                let k = self.kernel("kernel", *filters, Some(in_last / groups));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::conv(#x, #k, #b, #a, &#win, #filters, #groups, __out))
            }
            Static::Depthwise { win, multiplier, act: a } => {
                let k = self.kernel("kernel", out_last, None);
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::depthwise(#x, #k, #b, #a, &#win, #multiplier, __out))
            }
            Static::Pool { win, max } => quote!(::kiln::infer::pool(#x, &#win, #max, __out)),
            Static::Global { max } => match m0.to_string().contains("None") {
                true => quote!(::kiln::infer::global_pool(#x, #out_last, #max, __out)),
                false => quote!(
                    ::kiln::infer::global_average_masked(#x, #out_last, #m0.unwrap_or(&[]), __out)
                ),
            },
            Static::BatchNorm { epsilon, center, scale } => {
                let (g, b) = (self.opt("gamma", *scale), self.opt("beta", *center));
                let (mean, var) = (self.f32s("moving_mean"), self.f32s("moving_variance"));
                quote!(::kiln::infer::batch_norm(#x, #g, #b, #mean, #var, #epsilon, __out))
            }
            Static::PRelu { shape, shared } => {
                let alpha = self.f32s("alpha");
                quote!({
                    const PLAN: ([usize; 3], [usize; 3]) = ::kiln::infer::prelu_plan(&[#(#shape),*], &[#(#shared),*]);
                    ::kiln::infer::prelu(#x, #alpha, PLAN.0, PLAN.1, __out)
                })
            }
            Static::Permute { shape, order } => quote!({
                const PLAN: ([usize; 3], [usize; 3]) = ::kiln::infer::permute_plan(&[#(#shape),*], &[#(#order),*]);
                ::kiln::infer::permute(#x, PLAN.0, PLAN.1, __out)
            }),
            Static::Normalization => {
                let (mean, var) = (self.f32s("mean"), self.f32s("variance"));
                quote!(::kiln::infer::normalize(#x, #mean, #var, __out))
            }
            Static::Activation { act: a } => {
                let a = act(a);
                quote!(::kiln::infer::activation(#x, #a, #out_last, __out))
            }
            Static::LeakyRelu { slope } => quote!(::kiln::infer::leaky_relu(#x, #slope, __out)),
            Static::Rescaling { scale, offset } => quote!(::kiln::infer::rescale(#x, #scale, #offset, __out)),
            Static::Merge { op } => {
                let op = format_ident!("{op}");
                quote!(::kiln::infer::merge(&[#(#ins),*], ::kiln::infer::Merge::#op, __out))
            }
            Static::Concat { outer, widths } => {
                quote!(::kiln::infer::concatenate(&[#(#ins),*], &[#(#widths),*], #outer, __out))
            }
            Static::LayerNorm { epsilon, center, scale } => {
                let (g, b) = (self.opt("gamma", *scale), self.opt("beta", *center));
                quote!(::kiln::infer::layer_norm(#x, #g, #b, #epsilon, #out_last, __out))
            }
            Static::Resample { op, .. } => {
                let (h, w, c) = crate::layers::as_image(in_shape);
                let (oh, ow, _) = crate::layers::as_image(out_shape);
                quote!(::kiln::infer::resample(#x, (#h, #w, #c), (#oh, #ow), #op, __out))
            }
            Static::Unary { ops } => quote!(::kiln::infer::unary(#x, &[#(::kiln::infer::UnaryOp::#ops),*], __out)),
            Static::Broadcast { op, a, b } => {
                let (y, op) = (&ins[1], format_ident!("{op}"));
                quote!({
                    const PLAN: ([usize; 6], [usize; 6], [usize; 6]) = ::kiln::infer::broadcast_plan(&[#(#a),*], &[#(#b),*]);
                    ::kiln::infer::broadcast(#x, #y, ::kiln::infer::BinaryOp::#op, PLAN, __out)
                })
            }
            Static::Reduce { op, len, inner } => {
                let op = format_ident!("{op}");
                quote!(::kiln::infer::reduce(#x, ::kiln::infer::ReduceOp::#op, #len, #inner, __out))
            }
            Static::SoftmaxAxis { log, len, inner } => {
                quote!(::kiln::infer::softmax_axis(#x, #log, #len, #inner, __out))
            }
            Static::MatMul { a, b, ta, tb } => {
                let y = &ins[1];
                quote!({
                    const PLAN: ::kiln::infer::MatMulPlan = ::kiln::infer::matmul_plan(&[#(#a),*], &[#(#b),*], #ta, #tb);
                    ::kiln::infer::matmul(#x, #y, &PLAN, __out)
                })
            }
            Static::OneHot { classes } => {
                let k = input.unwrap_or(0);
                quote!(::kiln::infer::one_hot(#x, (#classes, #k), __out)?)
            }
            Static::Gather { rows } => {
                let (ids, k) = (&ins[1], input.unwrap_or(0));
                quote!(::kiln::infer::gather(#x, #ids, (#rows, #k), __out)?)
            }
            Static::Resize { rows, cols, w, c } => {
                let tap = |t: &(usize, usize, f32)| {
                    let (a, b, f) = *t;
                    quote!((#a, #b, #f))
                };
                let (rows, cols) = (rows.iter().map(tap), cols.iter().map(tap));
                quote!(::kiln::infer::resize(#x, &[#(#rows),*], &[#(#cols),*], (#w, #c), __out))
            }
            Static::Slice { len, inner, start, end } => {
                quote!(::kiln::infer::slice(#x, #len, #inner, (#start, #end), __out))
            }
            Static::Dot => {
                let y = &ins[1];
                quote!(::kiln::infer::dot(#x, #y, __out))
            }
            Static::ConvTranspose { win, act: a } => {
                let k = self.f32s("kernel");
                let (b, a) = (self.opt("bias", true), act(a));
                quote!(::kiln::infer::conv_transpose(#x, #k, #b, #a, &#win, #in_last, __out))
            }
            Static::Separable { win, multiplier, filters, act: a, work } => {
                let cm = in_last * multiplier;
                let dk = self.kernel("depthwise_kernel", cm, None);
                let pk = self.kernel("pointwise_kernel", *filters, Some(cm));
                let (b, a) = (self.opt("bias", true), act(a));
                quote!({
                    #split
                    ::kiln::infer::separable(#x, (#dk, #pk), #b, #a, &#win, (#multiplier, #filters), &mut __work[..#work], __out)
                })
            }
            Static::Embedding { dim, mask } => {
                let table = self.f32s("embeddings");
                let k = input.unwrap_or(0);
                match mask {
                    None => quote!(::kiln::infer::embedding(#x, #table, (#dim, #k), __out, None)?),
                    Some(_) => quote!({
                        #split
                        ::kiln::infer::embedding(#x, #table, (#dim, #k), __out, Some(__work))?
                    }),
                }
            }
            Static::Masking { value, features, .. } => quote!({
                #split
                ::kiln::infer::masking(#x, #value, #features, __out, __work)
            }),
            Static::Recurrent { cfg, features, units, gates, .. } => {
                let w = self.recurrent_weights("", *features, *units, gates * units);
                quote!({
                    #split
                    ::kiln::infer::recurrent(#x, #w, &#cfg, #m0, __work, __out)
                })
            }
            Static::Bidirectional { cfg, mode, features, units, gates, .. } => {
                let f = self.recurrent_weights("forward_", *features, *units, gates * units);
                let b = self.recurrent_weights("backward_", *features, *units, gates * units);
                let mode = format_ident!("{mode}");
                quote!({
                    #split
                    ::kiln::infer::bidirectional(#x, (#f, #b), &#cfg, ::kiln::infer::MergeMode::#mode, #m0, __work, __out)
                })
            }
            Static::Attention { cfg, bias, mask, .. } => {
                let call = self.attention(cfg, *bias, *mask, ins, masks);
                quote!({
                    #split
                    #call
                })
            }
            Static::TimeDistributed { inner, steps } => {
                let (inner_in, inner_out) = (&in_shape[1..], &out_shape[1..]);
                let (il, ol): (usize, usize) = (inner_in.iter().product(), inner_out.iter().product());
                let none = quote!(::core::option::Option::None);
                let call =
                    self.call(inner, &[quote!(__x)], inner_in, inner_out, None, &[none.clone(), none.clone(), none])?;
                quote!({
                    let __all = __out;
                    for __t in 0..#steps {
                        let __x = &(#x)[__t * #il..][..#il];
                        let __out = &mut __all[__t * #ol..][..#ol];
                        #call;
                    }
                })
            }
        })
    }

    /// Attention's call (after the output's split from the workspace): its four projections,
    /// each kernel read as its matrix, and the step masks of query, value and key with Keras'
    /// `attention_mask` (`mask`: the last input).
    fn attention(
        &mut self,
        cfg: &TokenStream,
        bias: bool,
        mask: bool,
        ins: &[TokenStream],
        masks: &[TokenStream; 3],
    ) -> TokenStream {
        let [m0, m1, m2] = masks;
        let x = &ins[0];
        let names = ["query", "key", "value", "attention_output"];
        let kernels = names.map(|n| {
            let name = format!("{n}_kernel");
            let shape = self.checked.values(&self.key(&name)).map(|(s, _)| s.to_vec()).unwrap_or_default();
            let (rows, cols) = if shape.len() == 3 { matrix(&name, &shape, true) } else { (1, 1) };
            self.kernel(&name, cols, Some(rows))
        });
        let biases = names.map(|n| self.opt(&format!("{n}_bias"), bias));
        let data = &ins[..ins.len() - usize::from(mask)];
        let (value, key) = (&data[1], data.get(2).unwrap_or(&data[1]));
        let none = quote!(::core::option::Option::None);
        let explicit = match (mask, ins.last()) {
            (true, Some(m)) => quote!(::core::option::Option::Some(#m)),
            _ => none.clone(),
        };
        // The third step mask is the key's; without a key the third input is the mask.
        let m2 = if data.len() == 3 { m2.clone() } else { none };
        quote! {
            let __w = ::kiln::infer::AttentionWeights { kernels: [#(#kernels),*], biases: [#(#biases),*] };
            ::kiln::infer::attention((#x, #value, #key), &__w, &#cfg, [#m0, #m1, #m2, #explicit], __work, __out)
        }
    }
}
