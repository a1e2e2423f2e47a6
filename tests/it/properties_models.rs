//! The property test extended (issue #28) to the model kinds added since `properties.rs` was
//! written — a CNN with BatchNormalization, an Embedding + LSTM reading integer ids, attention
//! with a padding mask — and to `set_weight`, `apply` and custom steps: random rows, poisoned
//! and huge values, bad ids, hostile learning rates (Adam at 1e6), gradients scaled to overflow
//! or NaN, weights set to NaN or negative. After every call: no panic; every weight, moving
//! statistic and optimizer state finite, every variance >= 0, every prediction finite; and a
//! call that fails (other than a stopped `fit`, which keeps the weights of the step before) has
//! changed nothing.
//!
//! The test runs a few cases; `examples/properties.rs` includes this file and runs as many as
//! asked (`cargo run --release --example properties -- 1000000`).

use kiln::ndarray::{ArrayD, IxDyn};
use kiln::prelude::*;
use proptest::prelude::*;

sequential! {
    pub struct PropCnn: [6, 6, 2] {
        Conv2D(4, 3, padding = same, activation = tanh),
        BatchNormalization,
        MaxPooling2D(2),
        Flatten,
        Dense(3, activation = softmax),
    }
}

sequential! {
    pub struct PropText: Input([5], dtype = i32) {
        Embedding(10, 4),
        LSTM(4),
        Dense(3, activation = softmax),
    }
}

functional! {
    pub struct PropAttend {
        ids = Input([6], dtype = i32);
        h = Embedding(10, 4, mask_zero = true)(ids);
        a = MultiHeadAttention(num_heads = 2, key_dim = 2)(h, h);
        p = GlobalAveragePooling1D()(Add()([h, a]));
        out = Dense(3, activation = softmax)(p);
        Model(ids, out)
    }
}

/// One random case: which model, its data and what is thrown at it.
#[derive(Clone, Debug)]
pub struct Case {
    kind: u8,
    rows: usize,
    label_rows: usize,
    /// A float input's scale, and a value put at some index (NaN, inf, huge).
    scale: f32,
    poison: Option<(usize, f32)>,
    /// An id input's bad id at some index.
    bad_id: Option<(usize, i64)>,
    seed: u64,
    lr: f32,
    batch: usize,
    /// Which weight `set_weight` replaces, and with what value.
    set: (usize, f32),
    /// What the custom step multiplies its gradients by.
    grad_scale: f32,
}

/// The strategy for [`Case`].
pub fn case() -> impl Strategy<Value = Case> {
    let poison = prop_oneof![
        4 => Just(None),
        1 => (0usize..1000).prop_map(|i| Some((i, f32::NAN))),
        1 => (0usize..1000).prop_map(|i| Some((i, f32::INFINITY))),
        1 => (0usize..1000).prop_map(|i| Some((i, 3e38))),
    ];
    let bad_id = prop_oneof![
        4 => Just(None),
        1 => (0usize..1000, prop_oneof![Just(-1i64), Just(10), Just(1 << 30), Just(16_777_217)]).prop_map(Some),
    ];
    let scale = prop_oneof![4 => Just(1.0f32), 1 => Just(1e20), 1 => Just(3e19), 1 => Just(1e30)];
    let lr = prop_oneof![
        3 => Just(1e-3f32), 1 => Just(0.1), 1 => Just(1e6), 1 => Just(1e30), 1 => Just(-0.01), 1 => Just(f32::NAN)
    ];
    let set = (0usize..16, prop_oneof![Just(0.5f32), Just(-1.0), Just(f32::NAN), Just(1e30), Just(f32::INFINITY)]);
    let grad_scale = prop_oneof![3 => Just(1.0f32), 1 => Just(1e30), 1 => Just(f32::NAN), 1 => Just(f32::INFINITY)];
    ((0u8..3, 0usize..20, 0usize..3, scale, poison, bad_id), (0u64..1000, lr, 0usize..12, set, grad_scale)).prop_map(
        |((kind, rows, label_skew, scale, poison, bad_id), (seed, lr, batch, set, grad_scale))| Case {
            kind,
            rows,
            // Usually as many labels as rows.
            label_rows: if label_skew == 0 { rows + 1 } else { rows },
            scale,
            poison,
            bad_id,
            seed,
            lr,
            batch,
            set,
            grad_scale,
        },
    )
}

/// A value of `seed` and `i` in [-1, 1].
fn noise(seed: u64, i: u64) -> f32 {
    let k = (seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 40;
    (k % 2001) as f32 / 1000.0 - 1.0
}

/// Calls made and how many returned `Ok`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub calls: usize,
    pub oks: usize,
}

/// Runs one case on its model.
pub fn run(c: &Case) -> Counts {
    let labels = ArrayD::from_shape_fn(IxDyn(&[c.label_rows]), |i| (i[0] % 3) as f32);
    match c.kind {
        0 => {
            let mut x = ArrayD::from_shape_fn(IxDyn(&[c.rows, 6, 6, 2]), |i| {
                c.scale * noise(c.seed, (i[0] * 72 + i[1] * 12 + i[2] * 2 + i[3]) as u64)
            });
            if let (Some((i, v)), Some(s)) = (c.poison, x.as_slice_mut())
                && !s.is_empty()
            {
                let len = s.len();
                s[i % len] = v;
            }
            exercise(PropCnn::with_seed(c.seed), &x, &labels, c)
        }
        kind => {
            let width = if kind == 1 { 5 } else { 6 };
            let mut ids = ArrayD::from_shape_fn(IxDyn(&[c.rows, width]), |i| {
                ((noise(c.seed, (i[0] * width + i[1]) as u64) + 1.0) * 4.99) as i64
            });
            if let (Some((i, v)), Some(s)) = (c.bad_id, ids.as_slice_mut())
                && !s.is_empty()
            {
                let len = s.len();
                s[i % len] = v;
            }
            if kind == 1 {
                exercise(PropText::with_seed(c.seed), &ids, &labels, c)
            } else {
                exercise(PropAttend::with_seed(c.seed), &ids, &labels, c)
            }
        }
    }
}

/// Weight bits and optimizer state: what a failed call must leave as it was.
type Snapshot = (Vec<u32>, Option<(u64, Vec<Vec<u32>>)>);

fn snapshot<M: Model>(m: &M) -> Snapshot {
    let mut w = Vec::new();
    m.visit_weights(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
    let opt = m.train_state().optimizer().map(|o| {
        let s = o.state();
        (s.iterations, s.arrays.iter().map(|a| a.iter().map(|v| v.to_bits()).collect()).collect())
    });
    (w, opt)
}

/// No weight, moving statistic or optimizer state holds a value it may not.
fn sound<M: Model>(m: &M, what: &str) {
    m.visit_weights(&mut |name, p| {
        assert!(p.refuse(&p.value).is_none(), "after {what}: {name} {}", p.refuse(&p.value).unwrap_or_default());
    });
    if let Some(o) = m.train_state().optimizer() {
        assert!(o.state().arrays.iter().flatten().all(|v| v.is_finite()), "after {what}: non-finite optimizer state");
    }
}

fn exercise<'a, M: Model, X: kiln::Element, Y: kiln::Element>(
    mut m: M,
    x: &'a ArrayD<X>,
    y: &'a ArrayD<Y>,
    c: &Case,
) -> Counts {
    let mut counts = Counts::default();
    // A custom step's error ends `fit_with` as it is (the steps before it stay applied): for it
    // only soundness is checked.
    let mut check = |r: Result<(), kiln::Error>, m: &M, before: &Snapshot, what: &str| {
        counts.calls += 1;
        match r {
            Ok(()) => counts.oks += 1,
            Err(kiln::Error::NonFiniteLoss { .. }) => {}
            Err(_) if what == "fit_with" => {}
            Err(e) => {
                assert_eq!(&snapshot(m), before, "{what} failed ({e}) but changed the model");
            }
        }
        sound(m, what);
    };

    let before = snapshot(&m);
    let r = m.predict(x).map(|_| ());
    if r.is_ok() {
        assert!(m.output(0).iter().all(|v| v.is_finite()), "predict returned a non-finite value");
    }
    check(r, &m, &before, "predict");

    let names: Vec<String> = m.weights().into_iter().map(|(n, _)| n).collect();
    let name = &names[c.set.0 % names.len()];
    let shape = m.get_weight(name).unwrap().shape().to_vec();
    let r = m.set_weight(name, &ArrayD::from_elem(IxDyn(&shape), c.set.1));
    check(r, &m, &before, "set_weight");

    let before = snapshot(&m);
    let r = m.compile("sparse_categorical_crossentropy", Adam::new(c.lr), &[]);
    check(r, &m, &before, "compile");

    let before = snapshot(&m);
    let r = m.fit(x, y, Fit { epochs: 2, batch_size: c.batch, verbose: 0, ..Fit::default() }).map(|_| ());
    check(r, &m, &before, "fit");

    let before = snapshot(&m);
    let r = m.train_on_batch(x, y).map(|_| ());
    check(r, &m, &before, "train_on_batch");

    // A custom step: gradients scaled (to overflow, to NaN), applied by an optimizer of its own.
    let before = snapshot(&m);
    let (r, grads) = match m.loss_and_grads(x, y, &Loss::SparseCategoricalCrossentropy) {
        Ok((_, g)) => (Ok(()), Some(g)),
        Err(e) => (Err(e), None),
    };
    check(r, &m, &before, "loss_and_grads");
    if let Some(mut g) = grads {
        g.scale(c.grad_scale);
        let before = snapshot(&m);
        let mut opt = Adam::new(c.lr);
        let r = opt.apply(&mut m, &g);
        check(r, &m, &before, "apply");
        assert!(opt.state().arrays.iter().flatten().all(|v| v.is_finite()), "apply left non-finite optimizer state");
    }

    let before = snapshot(&m);
    let scale = c.grad_scale;
    let r = m
        .fit_with(x, y, Fit { epochs: 1, batch_size: c.batch, verbose: 0, ..Fit::default() }, |m, opt, b| {
            let (_, mut g) = m.loss_and_grads(&b.x[0], &b.y[0], &Loss::SparseCategoricalCrossentropy)?;
            g.scale(scale);
            opt.apply(m, &g)
        })
        .map(|_| ());
    check(r, &m, &before, "fit_with");

    let before = snapshot(&m);
    let r = m.evaluate(x, y).map(|logs| assert!(logs.values().all(|v| v.is_finite()), "evaluate: {logs:?}"));
    check(r, &m, &before, "evaluate");
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn new_model_kinds_and_custom_steps_never_keep_a_value_they_may_not(c in case()) {
            run(&c);
        }
    }
}
