//! `MultiHeadAttention(num_heads, key_dim, value_dim = key_dim, use_bias = true, output_shape =
//! query width, use_causal_mask = false)` applied as `mha(query, value)` or `mha(query, value,
//! key)` to sequences `[T, D]`: `[Tq, output_shape]`. kiln takes `use_causal_mask` when the
//! layer is defined (Keras takes it per call); its value is static either way. Keras'
//! `attention_mask = m` (`[Tq, Tv]` per sample, 0 where a query step may not attend to a key
//! step) is given in the call, `mha(q, v, attention_mask = m)`, and becomes the last input.

use std::rc::Rc;

use proc_macro2::TokenStream;
use quote::quote;

use super::call::Value;
use super::{Args, Arity, Dim, Kind, Spec, rt, show};
use crate::errors::Errors;

pub const KIND: Kind = Kind {
    class: "MultiHeadAttention",
    args: &["num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape", "use_causal_mask"],
    arity: Arity::AtLeastTwo,
    build,
};

struct Attention {
    heads: usize,
    key_dim: usize,
    value_dim: usize,
    use_bias: bool,
    output: Option<usize>,
    causal: bool,
    dropout: f32,
    /// Applied with an `attention_mask`, its last input.
    mask_input: bool,
}

fn build(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let example = "MultiHeadAttention(num_heads = 4, key_dim = 32)";
    let mut required = |key: &str| match args.positive(key, "MultiHeadAttention", example, errors) {
        Some(Some(v)) => Some(v),
        Some(None) => {
            errors.over(args.call, format!("MultiHeadAttention needs its {key}, e.g. {example}"));
            None
        }
        None => None,
    };
    let heads = required("num_heads");
    let key_dim = required("key_dim");
    let value_dim = args.positive("value_dim", "MultiHeadAttention", example, errors);
    let use_bias = args.boolean("use_bias", true, errors);
    let causal = args.boolean("use_causal_mask", false, errors);
    let output = match args.get("output_shape") {
        None => Some(None),
        Some(Value::Int(d, _)) if *d > 0 => Some(Some(*d as usize)),
        Some(Value::List(d, _)) if d.len() == 1 && d[0] > 0 => Some(Some(d[0] as usize)),
        Some(v) => {
            errors.at(
                v.span(),
                "output_shape is the width of each output step, a positive integer, e.g. output_shape = 64",
            );
            None
        }
    };
    let dropout = args.number("dropout", 0.0, (|v| (0.0..1.0).contains(&v), "in [0, 1)"), errors)? as f32;
    let key_dim = key_dim?;
    Some(Rc::new(Attention {
        heads: heads?,
        key_dim,
        value_dim: value_dim?.unwrap_or(key_dim),
        use_bias: use_bias?,
        output: output?,
        causal: causal?,
        dropout,
        mask_input: false,
    }))
}

impl Attention {
    fn out(&self, query: &[usize]) -> usize {
        self.output.unwrap_or(query[1])
    }

    /// The query, value and key inputs, without the attention mask.
    fn data<'a, T>(&self, ins: &'a [T]) -> &'a [T] {
        &ins[..ins.len() - usize::from(self.mask_input && !ins.is_empty())]
    }
}

impl Spec for Attention {
    fn keeps_mask(&self) -> bool {
        true
    }

    fn with_mask_input(&self) -> Option<Rc<dyn Spec>> {
        Some(Rc::new(Attention { mask_input: true, ..*self }))
    }

    fn has_mask_input(&self) -> bool {
        self.mask_input
    }

    fn infer(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let ins = self.data(ins);
        let (&[tq, fq], &[tv, fv]) = (&ins.first()?[..], &ins.get(1)?[..]) else { return None };
        let fk = ins.get(2).map_or(fv, |k| k[1]);
        let (h, kd, vd, out, causal) = (self.heads, self.key_dim, self.value_dim, self.out(&ins[0]), self.causal);
        let cfg = quote!(::kiln::infer::Attention {
            heads: #h,
            key_dim: #kd,
            value_dim: #vd,
            query_steps: #tq,
            value_steps: #tv,
            features: [#fq, #fv, #fk],
            out_dim: #out,
            causal: #causal,
        });
        let work = tq * h * kd + tv * h * (kd + vd) + tv + tq * h * vd;
        Some(crate::ir::Static::Attention {
            cfg,
            work,
            bias: self.use_bias,
            mask: self.mask_input,
            heads: h,
            key_dim: kd,
            value_dim: vd,
            out,
            causal,
        })
    }

    fn uses_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        "MultiHeadAttention"
    }

    fn arity(&self) -> Arity {
        Arity::AtLeastTwo
    }

    fn call_args(&self) -> bool {
        true
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let (all, ins) = (ins, self.data(ins));
        if ins.len() < 2 {
            return Err("MultiHeadAttention takes (query, value) or (query, value, key)".into());
        }
        if ins.len() > 3 {
            return Err(format!(
                "MultiHeadAttention takes (query, value) or (query, value, key), got {} inputs",
                ins.len()
            ));
        }
        for (name, s) in ["query", "value", "key"].iter().zip(ins) {
            if s.len() != 2 {
                return Err(format!(
                    "MultiHeadAttention attends over steps: its {name} must be [steps, features] per sample, got {}",
                    show(s)
                ));
            }
        }
        if let Some(k) = ins.get(2)
            && k[0] != ins[1][0]
        {
            return Err(format!(
                "MultiHeadAttention's key and value must have the same number of steps, got key {} and value {}",
                show(k),
                show(&ins[1])
            ));
        }
        if self.causal && ins[0][0] > ins[1][0] {
            return Err(format!(
                "a causal MultiHeadAttention needs at least as many value steps as query steps, got query {} and value {}",
                show(&ins[0]),
                show(&ins[1])
            ));
        }
        if self.mask_input {
            let (m, want) = (&all[all.len() - 1], [ins[0][0], ins[1][0]]);
            if m[..] != want {
                return Err(format!(
                    "MultiHeadAttention's attention_mask is [query steps, value steps] = {} per sample, got {}",
                    show(&want),
                    show(m)
                ));
            }
        }
        Ok(vec![ins[0][0], self.out(&ins[0])])
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::MultiHeadAttention)
    }

    fn constructor(&self, ins: &[Vec<Dim>], _shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let ins = self.data(ins);
        let (tq, dq, tv, dv) = (&ins[0][0], &ins[0][1], &ins[1][0], &ins[1][1]);
        let dk = ins.get(2).map_or(dv, |k| &k[1]);
        let (h, kd, vd, bias, causal, drop, mask) =
            (self.heads, self.key_dim, self.value_dim, self.use_bias, self.causal, self.dropout, self.mask_input);
        let out = self.output.map_or_else(|| quote!(#dq), |o| quote!(#o));
        quote!(#rt::MultiHeadAttention::new(
            #rt::AttentionConfig {
                tq: #tq, dq: #dq, tv: #tv, dv: #dv, dk: #dk, heads: #h, key_dim: #kd, value_dim: #vd,
                out: #out, use_bias: #bias, causal: #causal, attention_mask: #mask, dropout: #drop,
            },
            &mut rng,
        ))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let ins = self.data(ins);
        let (dq, dv) = (ins.first()?.get(1).copied()?, ins.get(1)?.get(1).copied()?);
        let dk = ins.get(2).and_then(|k| k.get(1).copied()).unwrap_or(dv);
        let (h, kd, vd, out) = (self.heads, self.key_dim, self.value_dim, self.out(&ins[0]));
        let mut p = Vec::new();
        for (k, b, shape, bias) in [
            ("query_kernel", "query_bias", vec![dq, h, kd], vec![h, kd]),
            ("key_kernel", "key_bias", vec![dk, h, kd], vec![h, kd]),
            ("value_kernel", "value_bias", vec![dv, h, vd], vec![h, vd]),
            ("attention_output_kernel", "attention_output_bias", vec![h, vd, out], vec![out]),
        ] {
            p.push((k, shape));
            if self.use_bias {
                p.push((b, bias));
            }
        }
        Some(p)
    }
}

/// Keras' `Attention(use_scale = False, score_mode = "dot", use_causal_mask = False)` applied to
/// `[query, value]` or `[query, value, key]`: Luong's dot-product attention, no projections.
/// `use_causal_mask` is a call argument in Keras and a layer argument here, as for
/// MultiHeadAttention.
pub const DOT_ATTENTION: Kind = Kind {
    class: "Attention",
    args: &["use_scale", "score_mode", "use_causal_mask", "dropout"],
    arity: Arity::AtLeastTwo,
    build: dot_attention,
};

/// Keras' `AdditiveAttention(use_scale = True)` (Bahdanau's): scores `Σ_d scale_d · tanh(q_d +
/// k_d)`, the rest as `Attention`.
pub const ADDITIVE_ATTENTION: Kind = Kind {
    class: "AdditiveAttention",
    args: &["use_scale", "use_causal_mask", "dropout"],
    arity: Arity::AtLeastTwo,
    build: additive_attention,
};

struct DotAttention {
    use_scale: bool,
    causal: bool,
    additive: bool,
}

fn additive_attention(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    let zero: fn(f64) -> bool = |v| v == 0.0;
    args.number("dropout", 0.0, (zero, "0 (kiln's AdditiveAttention has no dropout yet)"), errors)?;
    let use_scale = args.boolean("use_scale", true, errors)?;
    let causal = args.boolean("use_causal_mask", false, errors)?;
    Some(Rc::new(DotAttention { use_scale, causal, additive: true }))
}

fn dot_attention(args: &Args<'_>, errors: &mut Errors) -> Option<Rc<dyn Spec>> {
    match args.get("score_mode") {
        None => {}
        Some(Value::Str(s, _)) if s == "dot" => {}
        Some(Value::Ident(i)) if i == "dot" => {}
        Some(v) => {
            errors.at(
                v.span(),
                "kiln's Attention scores by dot product: score_mode = \"dot\" (\"concat\" is not there yet)",
            );
            return None;
        }
    }
    let zero: fn(f64) -> bool = |v| v == 0.0;
    args.number("dropout", 0.0, (zero, "0 (kiln's Attention has no dropout yet)"), errors)?;
    let use_scale = args.boolean("use_scale", false, errors)?;
    let causal = args.boolean("use_causal_mask", false, errors)?;
    Some(Rc::new(DotAttention { use_scale, causal, additive: false }))
}

impl Spec for DotAttention {
    fn arity(&self) -> Arity {
        Arity::AtLeastTwo
    }

    fn uses_mask(&self) -> bool {
        true
    }

    fn class(&self) -> &'static str {
        if self.additive { "AdditiveAttention" } else { "Attention" }
    }

    fn output_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let class = self.class();
        if !(2..=3).contains(&ins.len()) {
            return Err(format!("{class} takes [query, value] or [query, value, key], got {} inputs", ins.len()));
        }
        let (q, v) = (&ins[0], &ins[1]);
        let k = ins.get(2).unwrap_or(v);
        if q.len() != 2 || v.len() != 2 || k.len() != 2 {
            return Err(format!(
                "{class} takes sequences [steps, features]: query {}, value {}{}",
                show(q),
                show(v),
                ins.get(2).map(|k| format!(", key {}", show(k))).unwrap_or_default()
            ));
        }
        if k[0] != v[0] {
            return Err(format!("{class}'s key {} and value {} need the same steps", show(k), show(v)));
        }
        if q[1] != k[1] {
            let which = if ins.len() == 3 { "key" } else { "value (the key, when none is given)" };
            return Err(format!("{class}: the query {} and the {which} {} need the same width", show(q), show(k)));
        }
        Ok(vec![q[0], v[1]])
    }

    fn runtime_type(&self, _: &[Vec<Dim>]) -> TokenStream {
        let rt = rt();
        quote!(#rt::DotAttention)
    }

    fn constructor(&self, _: &[Vec<Dim>], shapes: &[Vec<usize>]) -> TokenStream {
        let rt = rt();
        let (tq, d, tv, dv) = (shapes[0][0], shapes[0][1], shapes[1][0], shapes[1][1]);
        let (use_scale, causal, additive) = (self.use_scale, self.causal, self.additive);
        quote!(#rt::DotAttention::new(#rt::DotAttentionConfig {
            tq: #tq, tv: #tv, d: #d, dv: #dv, use_scale: #use_scale, causal: #causal, additive: #additive
        }, &mut rng))
    }

    fn params(&self, ins: &[Vec<usize>]) -> Option<Vec<(&'static str, Vec<usize>)>> {
        let d = *ins[0].last()?;
        Some(match (self.use_scale, self.additive) {
            (false, _) => vec![],
            (true, false) => vec![("scale", vec![])],
            (true, true) => vec![("scale", vec![d])],
        })
    }

    fn onnx(&self, ins: &[Vec<usize>], _: &[usize]) -> Option<crate::ir::Static> {
        let (tq, tv) = (*ins.first()?.first()?, *ins.get(1)?.first()?);
        Some(crate::ir::Static::DotAttention {
            use_scale: self.use_scale,
            causal: self.causal,
            additive: self.additive,
            tq,
            tv,
        })
    }
}
