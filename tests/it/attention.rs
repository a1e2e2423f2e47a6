//! MultiHeadAttention: finite-difference checks of every weight and input gradient (cross
//! attention with a key, self attention, a causal mask, no biases, an output width of its own),
//! Keras 3 parity on committed values (`examples/keras/attention_reference.py`), and a
//! transformer block in `functional!`; cross-attention and attention masks as subclass fields;
//! Keras' dot-product `Attention` layer.

use kiln::{AttentionConfig, Layer, Model, MultiHeadAttention};
use rand::SeedableRng;

fn cfg(causal: bool, use_bias: bool) -> AttentionConfig {
    AttentionConfig {
        tq: 3,
        dq: 4,
        tv: 5,
        dv: 6,
        dk: 2,
        heads: 2,
        key_dim: 3,
        value_dim: 2,
        out: 5,
        use_bias,
        causal,
        attention_mask: false,
        dropout: 0.0,
    }
}

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| (((i + seed) * 7 % 17) as f32 - 8.0) / 6.0).collect()
}

#[test]
fn attention_gradients_match_finite_differences() {
    let n = 2;
    for (causal, bias, with_key) in [(false, true, true), (false, true, false), (true, false, false)] {
        let c =
            AttentionConfig { tv: if causal { 3 } else { 5 }, dk: if with_key { 2 } else { 6 }, ..cfg(causal, bias) };
        let mut l = MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(3));
        l.visit_params_mut(&mut |p| p.value.iter_mut().enumerate().for_each(|(i, v)| *v += (i % 5) as f32 * 0.05));
        let (q, v, k) = (data(n * c.tq * c.dq, 1), data(n * c.tv * c.dv, 2), data(n * c.tv * c.dk, 3));
        let xs: Vec<&[f32]> = if with_key { vec![&q, &v, &k] } else { vec![&q, &v] };
        kiln::testing::check_layer(&mut l, &xs, n, 16, 3e-3)
            .unwrap_or_else(|e| panic!("causal={causal} bias={bias} key={with_key}:\n{e}"));
    }
}

/// A batch of 9 runs its heads as two chunks of samples (6 and 3): the split changes nothing.
#[test]
fn attention_gradients_match_finite_differences_on_split_batches() {
    let n = 9;
    let c = cfg(false, true);
    let mut l = MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(4));
    let (q, v, k) = (data(n * c.tq * c.dq, 4), data(n * c.tv * c.dv, 5), data(n * c.tv * c.dk, 6));
    kiln::testing::check_layer(&mut l, &[&q, &v, &k], n, 12, 3e-3).unwrap();
}

#[test]
fn a_causal_mask_hides_later_steps() {
    let c = AttentionConfig { tq: 4, tv: 4, dq: 3, dv: 3, dk: 3, out: 3, ..cfg(true, true) };
    let mut l = MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(1));
    let x = data(4 * 3, 0);
    let mut stream = kiln::Stream::new(0);
    l.forward(&[&x, &x], &mut kiln::Ctx::new(1, false, &mut stream));
    let before = l.output()[..3].to_vec();
    // Changing the last step changes nothing at the first.
    let mut y = x.clone();
    y[9..].iter_mut().for_each(|v| *v += 1.0);
    l.forward(&[&y, &y], &mut kiln::Ctx::new(1, false, &mut stream));
    assert_eq!(&l.output()[..3], &before[..]);
    assert_ne!(&l.output()[9..], &before[..]);
}

fn fixture(key: &str) -> Option<Vec<f32>> {
    kiln::testing::reference(include_str!("../fixtures/keras/attention.txt"), key)
}

use kiln::testing::assert_close as close;

#[test]
fn multi_head_attention_matches_keras() {
    let cases = [
        (
            "cross",
            AttentionConfig {
                tq: 3,
                dq: 4,
                tv: 5,
                dv: 6,
                dk: 2,
                heads: 2,
                key_dim: 3,
                value_dim: 2,
                out: 5,
                use_bias: true,
                causal: false,
                attention_mask: false,
                dropout: 0.0,
            },
        ),
        (
            "self_causal",
            AttentionConfig {
                tq: 4,
                dq: 6,
                tv: 4,
                dv: 6,
                dk: 6,
                heads: 2,
                key_dim: 3,
                value_dim: 3,
                out: 6,
                use_bias: true,
                causal: true,
                attention_mask: false,
                dropout: 0.0,
            },
        ),
        (
            "no_bias",
            AttentionConfig {
                tq: 4,
                dq: 5,
                tv: 3,
                dv: 5,
                dk: 5,
                heads: 3,
                key_dim: 2,
                value_dim: 2,
                out: 5,
                use_bias: false,
                causal: false,
                attention_mask: false,
                dropout: 0.0,
            },
        ),
    ];
    let c0 = cases[0].1;
    let c1 = cases[1].1;
    let masked = [
        ("masked_cross", AttentionConfig { attention_mask: true, ..c0 }),
        ("masked_self_causal", AttentionConfig { attention_mask: true, ..c1 }),
    ];
    for (case, c) in cases.into_iter().chain(masked) {
        let f = |k: &str| fixture(&format!("{case}.{k}")).unwrap_or_else(|| panic!("{case}.{k} missing"));
        let mut l = MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(0));
        let mut names = Vec::new();
        l.visit_params(&mut |n, _| names.push(n.to_string()));
        let mut k = 0;
        l.visit_params_mut(&mut |p| {
            p.value.copy_from_slice(&f(&names[k]));
            k += 1;
        });
        let q = f("q");
        let v = fixture(&format!("{case}.v")).unwrap_or_else(|| q.clone());
        let key = fixture(&format!("{case}.k"));
        let mut xs: Vec<&[f32]> = vec![&q, &v];
        if let Some(key) = &key {
            xs.push(key);
        }
        // Keras' attention_mask, the last input: its gradient is zero.
        let mask = fixture(&format!("{case}.mask"));
        if let Some(mask) = &mask {
            xs.push(mask);
        }
        let mut stream = kiln::Stream::new(0);
        let mut ctx = kiln::Ctx::new(2, true, &mut stream);
        l.forward(&xs, &mut ctx);
        close(&format!("{case}.out"), l.output(), &f("out"), 1e-5);
        let opts = kiln::BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
        l.backward(&xs, &f("dy"), &mut ctx, opts);
        close(&format!("{case}.dq"), l.input_grad(0), &f("dq"), 1e-5);
        close(&format!("{case}.dv"), l.input_grad(1), &f("dv"), 1e-5);
        if key.is_some() {
            close(&format!("{case}.dk"), l.input_grad(2), &f("dk"), 1e-5);
        }
        if let Some(mask) = &mask {
            assert_eq!(l.input_grad(xs.len() - 1), &vec![0.0; mask.len()][..]);
        }
        let mut adam = kiln::Adam::new(0.01);
        kiln::Optimizer::begin_step(&mut adam);
        let mut k = 0;
        l.visit_params_mut(&mut |p| {
            let name = &names[k];
            close(&format!("{case}.d{name}"), &p.grad, &f(&format!("d{name}")), 1e-5);
            let grad = p.grad.clone();
            kiln::Optimizer::update(&mut adam, k, &mut p.value, &grad);
            // The key bias shifts every score of a row alike, which the softmax ignores: its
            // gradient is zero up to rounding (~1e-8 in both), and Adam's normalised step on
            // rounding noise is not comparable. Everything else must agree after the step.
            if name != "key_bias" {
                close(&format!("{case}.adam.{name}"), &p.value, &f(&format!("adam.{name}")), 1e-5);
            }
            k += 1;
        });
    }
}

kiln::functional! {
    /// A transformer block after a projection, so the projection's gradient checks that both
    /// of the attention's uses of `h` (query and value) reach it.
    pub struct Block {
        x = Input([5, 4]);
        h = Dense(6)(x);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(h, h);
        s = Add()([h, a]);
        n = LayerNormalization()(s);
        f = Flatten()(n);
        out = Dense(2)(f);
        Model(x, out)
    }
}

kiln::functional! {
    /// Cross attention with a key of its own and a causal mask, its attention layer shared.
    pub struct Cross {
        q = Input([3, 4]);
        v = Input([3, 2]);
        k = Input([3, 5]);
        mha = MultiHeadAttention(num_heads = 2, key_dim = 2, output_shape = 3, use_causal_mask = true);
        a = mha(q, v, k);
        b = mha(q, v, k);
        m = Concatenate()([a, b]);
        f = Flatten()(m);
        out = Dense(1)(f);
        Model([q, v, k], out)
    }
}

#[test]
fn attention_models_have_correct_gradients() {
    use kiln::Model;
    let x = data(2 * 5 * 4, 4);
    let mut m = Block::new();
    kiln::testing::check_model(&mut m, &[&x], 2, 16, 3e-3).unwrap();
    let (q, v, k) = (data(2 * 12, 1), data(2 * 6, 2), data(2 * 15, 3));
    let mut c = Cross::new();
    kiln::testing::check_model(&mut c, &[&q, &v, &k], 2, 16, 3e-3).unwrap();
    assert_eq!(Cross::LAYERS.iter().filter(|l| l.kind == "MultiHeadAttention").count(), 1);
}

/// Dropout on the attention weights: gradients through the dropped weights on a split batch,
/// and nothing dropped in inference.
#[test]
fn attention_dropout() {
    let n = 9;
    let c = AttentionConfig { dropout: 0.3, ..cfg(true, true) };
    let c = AttentionConfig { tv: 3, ..c };
    let (q, v, k) = (data(n * c.tq * c.dq, 7), data(n * c.tv * c.dv, 8), data(n * c.tv * c.dk, 9));
    let mut l = MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(5));
    kiln::testing::check_layer(&mut l, &[&q, &v, &k], n, 12, 3e-3).unwrap();
    let fresh = || MultiHeadAttention::new(c, &mut rand::rngs::StdRng::seed_from_u64(5));
    let plain_cfg = AttentionConfig { dropout: 0.0, ..c };
    let (mut l, mut plain) = (fresh(), MultiHeadAttention::new(plain_cfg, &mut rand::rngs::StdRng::seed_from_u64(5)));
    let mut stream = kiln::Stream::new(0);
    l.forward(&[&q, &v, &k], &mut kiln::Ctx::new(n, false, &mut stream));
    plain.forward(&[&q, &v, &k], &mut kiln::Ctx::new(n, false, &mut stream));
    assert_eq!(l.output(), plain.output(), "inference drops nothing");
    l.forward(&[&q, &v, &k], &mut kiln::Ctx::new(n, true, &mut stream));
    assert_ne!(l.output(), plain.output(), "training drops attention weights");
}

kiln::functional! {
    /// Keras' `attention_mask` given in the call: which key steps each query step may see.
    pub struct MaskedBlock {
        x = Input([5, 4]);
        m = Input([5, 5]);
        h = Dense(6)(x);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(h, h, attention_mask = m);
        s = Add()([h, a]);
        f = Flatten()(s);
        out = Dense(2)(f);
        Model([x, m], out)
    }
}

kiln::functional! {
    /// The same block with no mask.
    pub struct PlainBlock {
        x = Input([5, 4]);
        h = Dense(6)(x);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(h, h);
        s = Add()([h, a]);
        f = Flatten()(s);
        out = Dense(2)(f);
        Model(x, out)
    }
}

#[test]
fn an_attention_mask_in_the_call_masks_and_has_correct_gradients() {
    use kiln::ndarray::Array3;
    use kiln::prelude::*;
    let x = data(3 * 5 * 4, 5);
    // Each query step sees itself and the steps two apart; sample 2 a banded pattern.
    let mask: Vec<f32> = (0..3 * 25).map(|c| ((c % 25 / 5 + c % 5 + c / 25) % 2 == 0) as u8 as f32).collect();
    let mut m = MaskedBlock::new();
    kiln::testing::check_model(&mut m, &[&x, &mask], 3, 16, 3e-3).unwrap();
    // With every step allowed, the mask changes nothing.
    let mut plain = PlainBlock::new();
    let mut values = Vec::new();
    kiln::Model::visit_weights(&m, &mut |_, p| values.push(p.value.clone()));
    let mut next = values.into_iter();
    kiln::Model::visit_weights_mut(&mut plain, &mut |p| p.value = next.next().unwrap());
    let xs = Array3::from_shape_vec((3, 5, 4), x.clone()).unwrap();
    let ones = Array3::from_elem((3, 5, 5), 1.0f32);
    let (a, b) = (m.predict((&xs, &ones)).unwrap(), plain.predict(&xs).unwrap());
    assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-6), "{a} vs {b}");
    // A key step no query may see does not move the output.
    let mut hide = Array3::from_elem((3, 5, 5), 1.0f32);
    hide.slice_mut(kiln::ndarray::s![.., .., 4]).fill(0.0);
    let before = m.predict((&xs, &hide)).unwrap();
    let mut moved = xs.clone();
    moved.slice_mut(kiln::ndarray::s![.., 4, ..]).mapv_inplace(|v| v * 3.0 - 1.0);
    let after = m.predict((&moved, &hide)).unwrap();
    assert!(before.iter().zip(&after).any(|(a, b)| a != b), "the step still feeds its own row and the residual");
    let bad = Array3::from_elem((3, 5, 4), 1.0f32);
    assert!(m.predict((&xs, &bad)).is_err(), "a mask of the wrong shape is an error");
}

/// A decoder block in the subclass style: masked self-attention over the decoder's steps, then
/// cross-attention from them over an encoder's output with an attention mask.
#[kiln::model]
pub struct DecoderBlock {
    own: kiln::SelfAttention<6, 2, 3>,
    cross: kiln::CrossAttention<6, 8, 2, 3>,
    head: kiln::Dense<24, 2, kiln::Softmax>,
}

#[kiln::call]
impl DecoderBlock {
    fn call(&self, q: Input<4, 6>, v: Input<5, 8>, own_mask: Input<4, 4>, mask: Input<4, 5>) -> Output<2> {
        let h = q + self.own(q, own_mask);
        let c = self.cross(h, v, mask);
        self.head(flatten(c))
    }
}

kiln::functional! {
    /// The same block in the functional style.
    pub struct DecoderBlockFun {
        q = Input([4, 6]);
        v = Input([5, 8]);
        own_mask = Input([4, 4]);
        mask = Input([4, 5]);
        a = MultiHeadAttention(num_heads = 2, key_dim = 3)(q, q, attention_mask = own_mask);
        h = Add()([q, a]);
        c = MultiHeadAttention(num_heads = 2, key_dim = 3)(h, v, attention_mask = mask);
        flat = Flatten()(c);
        y = Dense(2, activation = softmax)(flat);
        Model([q, v, own_mask, mask], y)
    }
}

#[test]
fn cross_attention_and_masks_as_subclass_fields() {
    let n = 3;
    let wave = |len: usize, k: usize| -> Vec<f32> { (0..len).map(|i| ((i * k % 17) as f32 - 8.0) / 6.0).collect() };
    let (q, v) = (wave(n * 24, 5), wave(n * 40, 7));
    // Each query step may see itself and the steps before; and, over the encoder, all but one step.
    let own: Vec<f32> = (0..n * 16).map(|i| ((i % 4) <= (i / 4) % 4) as u8 as f32).collect();
    let mask: Vec<f32> = (0..n * 20).map(|i| (i % 5 != (i / 5) % 5) as u8 as f32).collect();
    let mut sub = DecoderBlock::with_seed(1);
    kiln::testing::check_model(&mut sub, &[&q, &v, &own, &mask], n, 8, 3e-3).unwrap();
    // The same weights give the same bits as the functional block.
    let mut fun = DecoderBlockFun::with_seed(2);
    kiln::testing::copy_weights(&sub, &mut fun);
    let arr = |v: &[f32], s: (usize, usize, usize)| kiln::ndarray::Array3::from_shape_vec(s, v.to_vec()).unwrap();
    let inputs = (arr(&q, (n, 4, 6)), arr(&v, (n, 5, 8)), arr(&own, (n, 4, 4)), arr(&mask, (n, 4, 5)));
    let a = sub.predict((&inputs.0, &inputs.1, &inputs.2, &inputs.3)).unwrap();
    let b = fun.predict((&inputs.0, &inputs.1, &inputs.2, &inputs.3)).unwrap();
    assert_eq!(a, b);
    // Keras' count for MultiHeadAttention(2, 3) from width 6 over width 8.
    let counts: Vec<usize> = DecoderBlock::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(counts[1], (6 * 6 + 6) + 2 * (8 * 6 + 6) + 6 * 6 + 6);
}

/// Keras' `Attention` (dot product) and `AdditiveAttention` on the committed cases of
/// `examples/keras/dot_attention_reference.py`: output, every input's gradient, the scale's.
#[test]
fn dot_product_and_additive_attention_match_keras() {
    use kiln::{BackwardOpts, Ctx, DotAttention, DotAttentionConfig, Stream};
    let get = |case: &str, k: &str| {
        kiln::testing::reference(include_str!("../fixtures/keras/dot_attention.txt"), &format!("{case}.{k}"))
    };
    let cases = [
        ("plain", 3, 5, 4, 4, false, false, false),
        ("keyed_scaled_causal", 4, 4, 3, 5, true, true, false),
        ("masked", 3, 5, 4, 4, false, false, false),
        ("additive", 3, 5, 4, 4, true, false, true),
        ("additive_keyed_masked", 3, 4, 3, 5, false, false, true),
    ];
    for (case, tq, tv, d, dv, use_scale, causal, additive) in cases {
        let cfg = DotAttentionConfig { tq, tv, d, dv, use_scale, causal, additive };
        let mut layer = DotAttention::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(0));
        if let Some(s) = get(case, "scale") {
            layer.visit_params_mut(&mut |p| p.value.copy_from_slice(&s));
        }
        let (q, v, k) = (get(case, "q").unwrap(), get(case, "v").unwrap(), get(case, "k"));
        let mut xs: Vec<&[f32]> = vec![&q, &v];
        if let Some(k) = &k {
            xs.push(k);
        }
        let (qmask, vmask) = (get(case, "qmask"), get(case, "vmask"));
        let mut stream = Stream::new(0);
        let mut ctx = Ctx::new(2, true, &mut stream);
        ctx.masks = [qmask.as_deref(), vmask.as_deref(), None];
        layer.forward(&xs, &mut ctx);
        let close = |name: &str, got: &[f32]| {
            kiln::testing::assert_close(&format!("{case}.{name}"), got, &get(case, name).unwrap(), 1e-5)
        };
        close("out", layer.output());
        let opts = BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
        layer.backward(&xs, &get(case, "dy").unwrap(), &mut ctx, opts);
        close("dq", layer.input_grad(0));
        close("dv", layer.input_grad(1));
        if k.is_some() {
            close("dk", layer.input_grad(2));
        }
        if use_scale {
            let mut g = Vec::new();
            layer.visit_params(&mut |_, p| g.extend_from_slice(&p.grad));
            close("dscale", &g);
        }
    }
}

kiln::functional! {
    /// Luong attention over an encoder, as the Keras tutorials build it.
    pub struct Luong {
        ids = Input([6], dtype = i32);
        e = Embedding(12, 4, mask_zero = true)(ids);
        enc = LSTM(4, return_sequences = true)(e);
        dec = GRU(4, return_sequences = true)(e);
        ctx = Attention(use_scale = true)([dec, enc]);
        bahdanau = AdditiveAttention()([dec, enc, e]);
        both = Concatenate()([ctx, bahdanau, dec]);
        flat = Flatten()(both);
        out = Dense(2, activation = softmax)(flat);
        Model(ids, out)
    }
}

#[test]
fn an_attention_model_passes_the_gradient_check() {
    let mut m = Luong::with_seed(3);
    let s = m.summary_string();
    assert!(s.contains("attention (Attention)"), "{s}");
    assert!(s.contains("additive_attention (AdditiveAttention)"), "{s}");
    // Ids with padding at the end of the second sample.
    let ids: Vec<f32> = vec![3.0, 5.0, 1.0, 7.0, 2.0, 9.0, 4.0, 11.0, 6.0, 2.0, 0.0, 0.0];
    m.visit_weights_mut(&mut |p| {
        if p.shape().is_empty() {
            p.value[0] = 0.8;
        }
    });
    kiln::testing::check_model(&mut m, &[&ids], 2, 8, 3e-3).unwrap();
}
