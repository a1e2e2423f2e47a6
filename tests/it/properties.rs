//! Property tests: random shapes, sizes, NaN/inf placements, label values, batch sizes, split
//! fractions and hyper-parameters thrown at every public training and inference entry point and
//! at both loaders. Whatever the input: no panic, and either `Ok` with finite results or an `Err`;
//! after an `Err` the weights and the optimizer's state are unchanged (a run stopped by a
//! non-finite loss keeps the finished epochs' weights, which are finite). The number of cases run
//! is printed (`--nocapture`).

use std::sync::atomic::{AtomicUsize, Ordering};

use kiln::ndarray::{ArrayD, IxDyn};
use kiln::prelude::*;
use proptest::prelude::*;

sequential! {
    pub struct Net: [6] {
        Dense(5, activation = tanh),
        Dense(3, activation = softmax),
    }
}

functional! {
    pub struct Two {
        a = Input([4]);
        b = Input([2, 3]);
        h = Concatenate()([Dense(3, activation = relu)(a), Flatten()(b)]);
        class = Dense(3, activation = softmax, name = "class")(h);
        score = Dense(1, name = "score")(h);
        Model([a, b], [class, score])
    }
}

static CASES: AtomicUsize = AtomicUsize::new(0);
static OKS: AtomicUsize = AtomicUsize::new(0);

/// A float array of the given shape, with an optional NaN / inf / huge value at some index.
fn array(shape: Vec<usize>, poison: Option<(usize, f32)>, seed: u64) -> ArrayD<f32> {
    let len: usize = shape.iter().product();
    let values = (0..len as u64).map(|i| {
        let k = (seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 40;
        (k % 2001) as f32 / 1000.0 - 1.0
    });
    let mut a = ArrayD::from_shape_vec(IxDyn(&shape), values.collect()).unwrap();
    if let (Some((i, v)), Some(s)) = (poison, a.as_slice_mut())
        && !s.is_empty()
    {
        let len = s.len();
        s[i % len] = v;
    }
    a
}

/// Mostly `[n, 6]` with the labels' `n`; sometimes another width, row count or rank.
fn shape(n: usize) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        6 => Just(vec![n, 6]),
        1 => (0usize..10, 0usize..9).prop_map(|(n, w)| vec![n, w]),
        1 => prop::collection::vec(0usize..7, 0..4),
    ]
}

fn poison() -> impl Strategy<Value = Option<(usize, f32)>> {
    prop_oneof![
        6 => Just(None),
        1 => (0usize..1000).prop_map(|i| Some((i, f32::NAN))),
        1 => (0usize..1000).prop_map(|i| Some((i, f32::INFINITY))),
        1 => (0usize..1000).prop_map(|i| Some((i, 3e38))),
    ]
}

fn labels(n: usize) -> impl Strategy<Value = (Vec<usize>, Vec<f32>)> {
    let bad = prop_oneof![Just(-1.0f32), Just(1.5), Just(3.0), Just(f32::NAN), Just(0.0)];
    prop_oneof![
        4 => (Just(vec![n]), prop::collection::vec((0u8..3).prop_map(f32::from), n)),
        1 => (Just(vec![n]), prop::collection::vec(bad, n)),
        1 => (Just(vec![n, 3]), prop::collection::vec(0.0f32..1.0, n * 3)),
        1 => (0usize..40).prop_flat_map(|m| (Just(vec![m]), prop::collection::vec((0u8..3).prop_map(f32::from), m))),
    ]
}

/// Rows, then an input shape and labels that usually agree on them.
fn data() -> impl Strategy<Value = (Vec<usize>, (Vec<usize>, Vec<f32>))> {
    (0usize..40).prop_flat_map(|n| (shape(n), labels(n)))
}

fn learning_rate() -> impl Strategy<Value = f32> {
    prop_oneof![Just(1e-3f32), Just(0.1), Just(0.0), Just(-0.01), Just(1e30), Just(f32::NAN), Just(f32::INFINITY)]
}

fn bits<M: Model>(m: &M) -> Vec<u32> {
    let mut w = Vec::new();
    m.visit_weights(&mut |_, p| w.extend(p.value.iter().map(|v| v.to_bits())));
    w
}

/// The optimizer's step count and state arrays, if compiled.
type OptState = Option<(u64, Vec<Vec<f32>>)>;

/// What a call must leave as it was when it fails: weight bits and optimizer state.
type Snapshot = (Vec<u32>, OptState);

fn optimizer_state<M: Model>(m: &M) -> OptState {
    m.train_state().optimizer().map(|o| {
        let s = o.state();
        (s.iterations, s.arrays)
    })
}

fn finite(h: &History) -> bool {
    h.history.values().flatten().all(|v| v.is_finite())
}

/// Checks the outcome of a call that may change the model: on `Err`, nothing changed (or, for a
/// stopped run, the weights are finite).
fn outcome<T, M: Model>(r: &kiln::Result<T>, m: &M, before: &Snapshot) {
    CASES.fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(_) => {
            OKS.fetch_add(1, Ordering::Relaxed);
        }
        Err(kiln::Error::NonFiniteLoss { .. }) => {
            assert!(m.weights().iter().all(|(_, p)| p.value.iter().all(|v| v.is_finite())), "NaN weights after a stop");
        }
        Err(_) => {
            assert_eq!(&bits(m), &before.0, "an Err changed the weights");
            assert_eq!(&optimizer_state(m), &before.1, "an Err changed the optimizer");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn training_and_inference_never_panic(
        (xs, (ys, yv)) in data(), poison in poison(), seed in 0u64..1000,
        batch in 0usize..50, epochs in 0usize..3, split in prop_oneof![Just(0.0f32), Just(0.2), Just(0.99), Just(1.0), Just(-0.5), Just(f32::NAN)],
        lr in learning_rate(), loss in prop_oneof![Just("sparse_categorical_crossentropy"), Just("categorical_crossentropy"), Just("mse"), Just("hinge")],
        shuffle in any::<bool>(),
    ) {
        let x = array(xs, poison, seed);
        let y = ArrayD::from_shape_vec(IxDyn(&ys), yv).unwrap();
        let mut m = Net::with_seed(seed);

        let before = (bits(&m), optimizer_state(&m));
        let r = m.predict(&x);
        if let Ok(p) = &r {
            prop_assert!(p.iter().all(|v| v.is_finite()));
        }
        outcome(&r, &m, &before);
        if let Some(row) = x.as_slice() {
            let r = m.predict_one(&row[..row.len().min(6)]).map(|p| p.to_vec());
            if let Ok(p) = &r {
                prop_assert!(p.iter().all(|v| v.is_finite()));
            }
            outcome(&r, &m, &before);
        }
        let r = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy);
        outcome(&r, &m, &before);

        let compiled = m.compile(loss, Sgd::new(lr), &["accuracy"]);
        outcome(&compiled, &m, &before);
        let before = (bits(&m), optimizer_state(&m));
        let r = m.fit(&x, &y, Fit { epochs, batch_size: batch, validation_split: split, shuffle, verbose: 0, ..Fit::default() });
        if let Ok(h) = &r {
            prop_assert!(finite(h), "{h:?}");
        }
        outcome(&r, &m, &before);
        let before = (bits(&m), optimizer_state(&m));
        let r = m.evaluate(&x, &y);
        if let Ok(logs) = &r {
            prop_assert!(logs.values().all(|v| v.is_finite()), "{logs:?}");
        }
        outcome(&r, &m, &before);
        let r = m.train_on_batch(&x, &y);
        if let Ok(l) = &r {
            prop_assert!(l["loss"].is_finite());
        }
        outcome(&r, &m, &before);
    }

    #[test]
    fn two_inputs_two_outputs_never_panic(
        na in 0usize..12, nb in 0usize..12, wide in any::<bool>(), poison in poison(), seed in 0u64..1000,
        nc in 0usize..12, ns in 0usize..12, batch in 1usize..8, lr in learning_rate(),
    ) {
        let a = array(vec![na, if wide { 5 } else { 4 }], poison, seed);
        let b = array(vec![nb, 2, 3], None, seed + 1);
        let class = ArrayD::from_shape_fn(IxDyn(&[nc]), |i| (i[0] % 3) as f32);
        let score = array(vec![ns, 1], None, seed + 2);
        let mut m = Two::with_seed(seed);
        let before = (bits(&m), optimizer_state(&m));
        let r = m.predict((&a, &b));
        outcome(&r, &m, &before);
        let r = m.compile_with(
            Compile::new(Adam::new(lr)).output_loss("class", "sparse_categorical_crossentropy").output_loss("score", "mse"),
        );
        outcome(&r, &m, &before);
        let before = (bits(&m), optimizer_state(&m));
        let r = m.fit((&a, &b), (&class, &score), Fit { epochs: 2, batch_size: batch, verbose: 0, ..Fit::default() });
        if let Ok(h) = &r {
            prop_assert!(finite(h));
        }
        outcome(&r, &m, &before);
    }

    #[test]
    fn loaders_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), header in 0u64..600) {
        let dir = std::env::temp_dir().join(format!("kiln-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{header}-{}.safetensors", bytes.len()));
        let mut file = header.to_le_bytes().to_vec();
        file.extend(&bytes);
        std::fs::write(&path, &file).unwrap();
        let mut m = Net::new();
        m.compile("mse", "adam", &[]).unwrap();
        let before = (bits(&m), optimizer_state(&m));
        let r = m.load_weights(&path);
        outcome(&r, &m, &before);
        let r = m.load_checkpoint(&path);
        outcome(&r, &m, &before);
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn zz_report_the_cases_run() {
    // Runs after the property tests in the default (alphabetical, single-binary) order when the
    // harness uses one thread; with several it may run first and report fewer.
    let (all, ok) = (CASES.load(Ordering::Relaxed), OKS.load(Ordering::Relaxed));
    println!("property tests checked {all} calls so far: {ok} Ok, {} Err", all - ok);
}
