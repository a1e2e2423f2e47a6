//! Hardening, second round (issue #28): no step, `apply`, `set_weight` or state update leaves a
//! value in weights, moving statistics or optimizer state that they may not hold; everything a
//! load trusts is checksummed; callbacks are checked before the first step. Each test is named
//! for the mistake it makes.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

sequential! {
    /// A small regression, as in the Adam lr 1e6 report.
    pub struct Reg: [3] {
        Dense(4),
        Dense(1),
    }
}

sequential! {
    pub struct Normed: [4] {
        BatchNormalization,
        Dense(2, activation = softmax),
    }
}

fn regression(n: usize) -> (Array2<f32>, Array2<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let x = Array2::from_shape_fn((n, 3), |_| rng.random_range(-1.0..1.0));
    let y = Array2::from_shape_fn((n, 1), |(i, _)| x[[i, 0]] - 2.0 * x[[i, 1]] + 0.5);
    (x, y)
}

fn quiet(epochs: usize) -> Fit<'static> {
    Fit { epochs, verbose: 0, ..Fit::default() }
}

fn values<M: Model>(m: &M) -> Vec<Vec<f32>> {
    m.weights().into_iter().map(|(_, p)| p.value).collect()
}

fn all_finite(state: &kiln::OptimizerState) -> bool {
    state.arrays.iter().flatten().all(|v| v.is_finite())
}

/// Calls `train_on_batch` until it refuses a step; returns the weights and optimizer state just
/// before the refused call, the number of steps applied and the error.
fn train_until_refused(
    m: &mut Reg,
    x: &Array2<f32>,
    y: &Array2<f32>,
) -> (Vec<Vec<f32>>, kiln::OptimizerState, usize, String) {
    for applied in 0..50 {
        let before = (values(m), m.train_state().optimizer().unwrap().state());
        if let Err(e) = m.train_on_batch(x, y) {
            return (before.0, before.1, applied, e.to_string());
        }
        assert!(values(m).iter().flatten().all(|v| v.is_finite()), "step {applied} left a non-finite weight");
        assert!(all_finite(&m.train_state().optimizer().unwrap().state()), "step {applied} left non-finite state");
    }
    panic!("Adam with lr 1e6 was never refused");
}

#[test]
fn an_adam_update_that_overflows_its_second_moment_is_refused_naming_the_tensor() {
    let (x, y) = regression(16);
    let mut m = Reg::with_seed(1);
    m.compile("mse", Adam::new(1e6), &[]).unwrap();
    let (before, state, applied, e) = train_until_refused(&mut m, &x, &y);
    assert!(e.contains("after adam's update became") || e.contains("adam's state for"), "{e}");
    assert!(e.contains("dense"), "names the tensor: {e}");
    assert_eq!(values(&m), before, "the refused step changed no weight");
    let opt = m.train_state().optimizer().unwrap();
    assert_eq!(opt.state(), state, "nor the optimizer's state");
    assert_eq!(opt.iterations(), applied as u64);
    assert_eq!(opt.learning_rate(), 1e6);
}

#[test]
fn fit_stopped_by_a_refused_update_holds_the_weights_of_the_step_before() {
    let (x, y) = regression(16);
    let mut by_batch = Reg::with_seed(1);
    by_batch.compile("mse", Adam::new(1e6), &[]).unwrap();
    let (before, _, applied, _) = train_until_refused(&mut by_batch, &x, &y);
    let mut m = Reg::with_seed(1);
    m.compile("mse", Adam::new(1e6), &[]).unwrap();
    let err = m.fit(&x, &y, Fit { batch_size: 16, shuffle: false, ..quiet(50) }).unwrap_err();
    let kiln::Error::NonFiniteLoss { epoch, history, .. } = &err else { panic!("{err}") };
    assert_eq!(*epoch, applied + 1, "{err}");
    assert_eq!(history.epoch.len(), applied);
    assert!(err.to_string().contains("the weights are those of the step before"), "{err}");
    assert_eq!(values(&m), before, "as the error says: {err}");
}

#[test]
fn a_moving_variance_that_would_overflow_stops_fit_naming_it() {
    // Finite values around ±3e19: the batch variance (9e38) overflows f32.
    let x = Array2::from_shape_fn((8, 4), |(i, j)| if (i + j) % 2 == 0 { 3e19 } else { -3e19 });
    let y = Array1::from_shape_fn(8, |i| (i % 2) as f32);
    let mut m = Normed::with_seed(1);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let before = values(&m);
    let e = m.fit(&x, &y, quiet(1)).unwrap_err().to_string();
    assert!(e.contains("batch_normalization.moving_variance became inf at epoch 1, batch 0"), "{e}");
    assert_eq!(values(&m), before, "moving statistics and weights as they were");
    assert_eq!(m.train_state().optimizer().unwrap().iterations(), 0);
    // And a save afterwards is loadable: nothing non-finite was kept.
    let path = std::env::temp_dir().join(format!("kiln-h2-bn-{}.safetensors", std::process::id()));
    m.save_weights(&path).unwrap();
    Normed::new().load_weights(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn loss_and_grads_refuses_to_move_a_moving_variance_to_inf() {
    let x = Array2::from_shape_fn((8, 4), |(i, j)| if (i + j) % 2 == 0 { 1e20 } else { -1e20 });
    let y = Array1::from_shape_fn(8, |i| (i % 2) as f32);
    let mut m = Normed::with_seed(1);
    let before = values(&m);
    let e = m.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap_err().to_string();
    assert!(e.contains("batch_normalization.moving_variance would become inf") && e.contains("refused"), "{e}");
    assert_eq!(values(&m), before);
}

#[test]
fn a_custom_step_applying_nan_gradients_is_refused_and_changes_nothing() {
    let (x, y) = regression(16);
    let mut m = Reg::with_seed(2);
    let (_, mut g) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
    g.scale(f32::NAN);
    let before = values(&m);
    let mut opt = Adam::default();
    let e = opt.apply(&mut m, &g).unwrap_err().to_string();
    assert!(e.contains("the gradient of dense.kernel holds NaN at index 0") && e.contains("nothing changed"), "{e}");
    assert_eq!(values(&m), before);
    assert_eq!(opt.iterations(), 0);
    assert!(opt.state().arrays.is_empty());
    // In fit_with, the same refusal ends the run with the weights as they were.
    let mut m2 = Reg::with_seed(2);
    m2.compile("mse", "adam", &[]).unwrap();
    let e = m2
        .fit_with(&x, &y, quiet(1), |m, opt, b| {
            let (_, mut g) = m.loss_and_grads(&b.x[0], &b.y[0], &Loss::MeanSquaredError)?;
            g.scale(f32::NAN);
            opt.apply(m, &g)
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds NaN"), "{e}");
    assert_eq!(values(&m2), before);
}

#[test]
fn apply_refuses_an_update_that_would_overflow_and_restores_everything() {
    let (x, y) = regression(16);
    let mut m = Reg::with_seed(2);
    let (_, mut g) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
    let mut opt = Adam::default();
    opt.apply(&mut m, &g).unwrap();
    let (before, state) = (values(&m), opt.state());
    // Finite gradients whose squares overflow the second moment.
    g.scale(1e30);
    let e = opt.apply(&mut m, &g).unwrap_err().to_string();
    assert!(e.contains("adam's state for dense.kernel would become inf"), "{e}");
    assert_eq!((values(&m), opt.state()), (before, state));
    assert_eq!(opt.iterations(), 1);
}

#[test]
fn set_weight_refuses_a_negative_moving_variance() {
    let mut m = Normed::new();
    let before = m.get_weight("batch_normalization.moving_variance").unwrap();
    let e = m
        .set_weight("batch_normalization.moving_variance", &Array1::from(vec![1.0f32, -0.5, 1.0, 1.0]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds -0.5 at index 1, but it is a variance: every value must be >= 0"), "{e}");
    assert_eq!(m.get_weight("batch_normalization.moving_variance").unwrap(), before);
    // A mean may be negative.
    m.set_weight("batch_normalization.moving_mean", &Array1::from(vec![-1.0f32; 4])).unwrap();
    let e = m.set_weight("batch_normalization.gamma", &Array1::from(vec![f32::INFINITY; 4])).unwrap_err();
    assert!(e.to_string().contains("holds inf at index 0"), "{e}");
}

fn scratch(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-h2-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn find(bytes: &[u8], what: &str) -> usize {
    bytes.windows(what.len()).position(|w| w == what.as_bytes()).unwrap_or_else(|| panic!("no `{what}`"))
}

fn bits<M: Model>(m: &M) -> Vec<u32> {
    values(m).into_iter().flatten().map(f32::to_bits).collect()
}

#[test]
fn a_renamed_checksum_key_does_not_let_a_corrupted_tensor_load_unchecked() {
    let path = scratch("renamed").join("w.safetensors");
    Reg::with_seed(3).save_weights(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let data_start = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let key = find(&good, "kiln.checksum.dense.kernel");
    // One byte of the key (`kiln` → `kiLn`), then also one byte of dense.kernel's data.
    let mut renamed = good.clone();
    renamed[key + 2] ^= 0x20;
    let mut both = renamed.clone();
    both[data_start + 20] ^= 0x01;
    for (bytes, want) in [(&renamed, "has no checksum"), (&both, "")] {
        std::fs::write(&path, bytes).unwrap();
        let mut m = Reg::with_seed(9);
        let before = bits(&m);
        let e = m.load_weights(&path).unwrap_err().to_string();
        assert!(e.contains("the file is corrupted") && e.contains(want), "{e}");
        assert_eq!(bits(&m), before);
    }
}

/// A checkpoint after 2 epochs of 2 steps, from seed 5: `kiln.epochs` 2, iterations 4, seed 5.
fn checkpoint(path: &std::path::Path) -> Vec<u8> {
    let (x, y) = regression(16);
    let mut m = Reg::with_seed(5);
    m.compile("mse", "adam", &[]).unwrap();
    m.fit(&x, &y, Fit { batch_size: 8, ..quiet(2) }).unwrap();
    m.save_checkpoint(path).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn a_flipped_bit_in_checkpoint_metadata_is_refused() {
    let path = scratch("meta").join("c.safetensors");
    let good = checkpoint(&path);
    // The flips (2 → 3, 4 → 5, 5 → 4), then every bit of every value of kiln's metadata.
    let mut cases = vec![
        (find(&good, "\"kiln.epochs\":\"2\"") + 15, 0x01),
        (find(&good, "\"kiln.optimizer.iterations\":\"4\"") + 29, 0x01),
        (find(&good, "\"kiln.seed\":\"5\"") + 13, 0x01),
    ];
    for key in ["kiln.epochs", "kiln.optimizer.iterations", "kiln.seed", "kiln.rng", "kiln.optimizer\"", "kiln.model"] {
        let at = find(&good, key) + key.trim_end_matches('"').len() + 3;
        let end = at + good[at..].iter().position(|b| *b == b'"').unwrap();
        cases.extend((at..end).flat_map(|i| (0..8).map(move |b| (i, 1u8 << b))));
    }
    let mut resumed = Reg::with_seed(1);
    resumed.compile("mse", "adam", &[]).unwrap();
    let before = (bits(&resumed), resumed.train_state().epochs(), resumed.train_state().seed());
    for (i, bit) in cases {
        let mut b = good.clone();
        b[i] ^= bit;
        std::fs::write(&path, &b).unwrap();
        let e = resumed.load_checkpoint(&path).unwrap_err().to_string();
        assert!(e.contains("corrupted") || e.contains("not a valid safetensors file"), "byte {i}: {e}");
        let after = (bits(&resumed), resumed.train_state().epochs(), resumed.train_state().seed());
        assert_eq!(after, before);
    }
    std::fs::write(&path, &good).unwrap();
    resumed.load_checkpoint(&path).unwrap();
    assert_eq!((resumed.train_state().epochs(), resumed.train_state().seed()), (2, 5));
}

fn temporaries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_temporary_file_left_by_a_killed_save_is_removed_by_the_next_save() {
    let d = scratch("stale");
    let path = d.join("w.safetensors");
    // What a process killed inside a save leaves: a partial temporary file nobody holds.
    std::fs::write(d.join(".w.safetensors.a1B2c3.tmp"), b"partial").unwrap();
    // A save in progress (its file locked) and another file's temporary are left alone.
    let busy = d.join(".w.safetensors.zZ9yY8.tmp");
    let held = std::fs::File::create(&busy).unwrap();
    held.lock().unwrap();
    std::fs::write(d.join(".other.safetensors.q1.tmp"), b"x").unwrap();
    Reg::with_seed(1).save_weights(&path).unwrap();
    assert_eq!(temporaries(&d), [".other.safetensors.q1.tmp", ".w.safetensors.zZ9yY8.tmp"]);
    drop(held);
    Reg::with_seed(1).save_checkpoint(&path).unwrap_err(); // not compiled: nothing written
    Reg::with_seed(1).save_weights(&path).unwrap();
    assert_eq!(temporaries(&d), [".other.safetensors.q1.tmp"]);
    Reg::new().load_weights(&path).unwrap();
}

#[test]
fn a_resumed_run_removes_the_temporary_file_of_the_killed_one() {
    let d = scratch("resume-stale");
    let (x, y) = regression(16);
    let mut first = Reg::with_seed(1);
    first.compile("mse", "adam", &[]).unwrap();
    let mut backup = kiln::BackupAndRestore::new(&d).delete_checkpoint(false);
    first.fit_with_callbacks(&x, &y, quiet(1), &mut [&mut backup]).unwrap();
    std::fs::write(d.join(".backup.safetensors.k1ll3d.tmp"), b"partial").unwrap();
    let mut probe = Probe(&d, None);
    let mut resumed = Reg::with_seed(1);
    resumed.compile("mse", "adam", &[]).unwrap();
    let mut backup = kiln::BackupAndRestore::new(&d);
    resumed.fit_with_callbacks(&x, &y, quiet(2), &mut [&mut backup, &mut probe]).unwrap();
    assert_eq!(probe.1, Some(vec![]), "removed before the first step of the resumed run");
}

/// Lists the temporary files in a folder when training begins.
struct Probe<'a>(&'a std::path::Path, Option<Vec<String>>);

impl kiln::Callback for Probe<'_> {
    fn on_train_begin(&mut self, _: &mut dyn kiln::Trainee) -> kiln::Result<()> {
        self.1 = Some(temporaries(self.0));
        Ok(())
    }
}

/// `fit` with `callbacks` on a fresh compiled model: its error, after checking that nothing
/// changed (the weights, the optimizer's step count, the epoch count).
fn refused_before_training(callbacks: &mut [&mut dyn kiln::Callback]) -> String {
    let (x, y) = regression(20);
    let mut m = Reg::with_seed(4);
    m.compile("mse", "adam", &["mae"]).unwrap();
    let before = values(&m);
    let opts = Fit { validation_split: 0.2, ..quiet(2) };
    let e = m.fit_with_callbacks(&x, &y, opts, callbacks).unwrap_err().to_string();
    assert_eq!(values(&m), before, "{e}");
    assert_eq!((m.train_state().optimizer().unwrap().iterations(), m.train_state().epochs()), (0, 0), "{e}");
    e
}

#[test]
fn a_checkpoint_path_naming_a_log_key_no_metric_produces_fails_before_the_first_step() {
    let d = scratch("template");
    let mut ckpt = kiln::ModelCheckpoint::new(d.join("w-{epoch:02}-{val_auc:.3}.safetensors"));
    let e = refused_before_training(&mut [&mut ckpt]);
    assert!(e.contains("names `{val_auc}`, which the logs do not have") && e.contains("val_mae"), "{e}");
    let mut unclosed = kiln::ModelCheckpoint::new(d.join("w-{epoch.safetensors"));
    assert!(refused_before_training(&mut [&mut unclosed]).contains("unclosed `{`"));
    assert!(temporaries(&d).is_empty() && std::fs::read_dir(&d).unwrap().next().is_none(), "nothing written");
}

#[test]
fn callback_folders_that_cannot_be_written_fail_before_the_first_step() {
    let d = scratch("folders");
    let file = d.join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let mut csv = kiln::CsvLogger::new(d.join("missing/log.csv"), false);
    let e = refused_before_training(&mut [&mut csv]);
    assert!(
        e.contains("CsvLogger writes into") && e.contains("missing`, which does not exist (create it first)"),
        "{e}"
    );
    let mut backup = kiln::BackupAndRestore::new(&file);
    let e = refused_before_training(&mut [&mut backup]);
    assert!(e.contains("BackupAndRestore writes into") && e.contains("is a file, not a folder"), "{e}");
    let mut ckpt = kiln::ModelCheckpoint::new(file.join("{epoch}.safetensors"));
    let e = refused_before_training(&mut [&mut ckpt]);
    assert!(e.contains("ModelCheckpoint writes into") && e.contains("is a file, not a folder"), "{e}");
}

#[test]
fn a_checkpoint_in_a_missing_folder_creates_it_as_keras_does() {
    let d = scratch("mkdir");
    let (x, y) = regression(20);
    let mut m = Reg::with_seed(4);
    m.compile("mse", "adam", &[]).unwrap();
    let mut ckpt = kiln::ModelCheckpoint::new(d.join("runs/a").join("{epoch}/w.safetensors")).save_weights_only(true);
    m.fit_with_callbacks(&x, &y, quiet(2), &mut [&mut ckpt]).unwrap();
    assert_eq!(ckpt.saved(), [d.join("runs/a/1/w.safetensors"), d.join("runs/a/2/w.safetensors")]);
    Reg::new().load_weights(&ckpt.saved()[1]).unwrap();
}

sequential! {
    pub struct Deep: [8] {
        Dense(16, activation = relu),
        Dense(4),
        Dense(2, activation = softmax),
    }
}

functional! {
    pub struct Forked {
        a = Input([3]);
        shared = Dense(3, name = "shared");
        h = shared(a);
        g = Dense(3, name = "between")(h);
        k = shared(g);
        out = Dense(1, name = "score")(k);
        Model([a], [out])
    }
}

#[kiln::model]
pub struct Sub {
    first: Dense<8, 16, Relu>,
    second: Dense<16, 2, Softmax>,
}

#[kiln::call]
impl Sub {
    fn call(&self, x: Input<8>) -> Output<2> {
        let h = self.first(x);
        self.second(h * 2.0)
    }
}

#[test]
fn a_finite_input_that_predicts_a_non_finite_output_is_an_error_naming_the_layer() {
    let mut m = Deep::with_seed(1);
    // Positive weights in the first layer: a row of 3e38 sums past f32's range in any order.
    m.set_weight("dense.kernel", &Array2::from_elem((8, 16), 0.5f32)).unwrap();
    let x = Array2::from_shape_fn((5, 8), |(i, _)| if i == 3 { 3e38 } else { 0.5 });
    let e = m.predict(&x).unwrap_err();
    let kiln::Error::NonFiniteOutput { layer, row, value, .. } = &e else { panic!("{e}") };
    assert_eq!((&layer[..], *row, *value), ("dense", 3, f32::INFINITY), "{e}");
    let text = e.to_string();
    assert!(text.starts_with("layer `dense` of Deep computed inf from finite input (row 3 of x)"), "{text}");
    let e = m.predict_one(&[3e38; 8]).unwrap_err().to_string();
    assert!(e.starts_with("layer `dense` of Deep computed inf from finite input (row 0 of x)"), "{e}");
    // Rows that stay finite predict as before.
    assert!(m.predict(&x.slice(kiln::ndarray::s![..3, ..])).unwrap().iter().all(|v| v.is_finite()));

    // A layer applied twice: the application that overflows is found (here the second: 3e20,
    // then 9e20 through `between`, then 2.7e41).
    let mut f = Forked::with_seed(2);
    f.set_weight("shared.kernel", &Array2::from_elem((2, 3), 1e30f32)).unwrap_err(); // shape [3, 3]
    f.set_weight("shared.kernel", &Array2::from_elem((3, 3), 1e20f32)).unwrap();
    f.set_weight("between.kernel", &Array2::from_elem((3, 3), 1.0f32)).unwrap();
    let e = f.predict(&Array2::from_elem((2, 3), 1.0f32)).unwrap_err().to_string();
    assert!(e.starts_with("layer `shared` of Forked computed inf") && e.contains("row 0 of x"), "{e}");

    // A subclassed model: its fields and the math of its call, in the order they ran.
    let mut s = Sub::with_seed(3);
    s.set_weight("first.kernel", &Array2::from_elem((8, 16), 0.5f32)).unwrap();
    let e = s.predict_one(&[1e38; 8]).unwrap_err().to_string();
    assert!(e.starts_with("layer `first` of Sub computed inf"), "{e}");
    s.set_weight("first.kernel", &Array2::from_elem((8, 16), 0.3f32)).unwrap();
    let e = s.predict_one(&[1e38; 8]).unwrap_err().to_string();
    assert!(e.contains("of Sub computed inf") && !e.contains("`first`"), "the doubling overflows: {e}");
}

functional! {
    pub struct Tokens {
        ids = Input([3], dtype = i32);
        e = Embedding(1000, 4)(ids);
        flat = Flatten()(e);
        out = Dense(2, activation = softmax)(flat);
        Model(ids, out)
    }
}

#[test]
fn an_integer_id_beyond_f32s_exact_range_is_not_quoted_as_if_passed() {
    let mut m = Tokens::new();
    for (id, read) in [(16_777_217i64, "read as 16777216"), (i32::MAX as i64, "read as 2147483648")] {
        let x = kiln::ndarray::Array2::from_shape_fn((2, 3), |(i, j)| if (i, j) == (1, 2) { id } else { 5 });
        let e = m.predict(&x).unwrap_err().to_string();
        assert!(
            e.contains("row 1, position [2] holds a value of magnitude 2^24 = 16777216 or more") && e.contains(read),
            "{e}"
        );
        assert!(!e.contains("2147483600") && !e.contains("holds 16777216,"), "{e}");
    }
    let small = kiln::ndarray::Array2::from_shape_fn((1, 3), |(_, j)| 1000 + j as i64);
    assert!(m.predict(&small).unwrap_err().to_string().contains("holds 1000, not a token id in 0..1000"));
    // Labels too.
    let (x, _) = regression(2);
    let mut c = Normed::new();
    c.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let x4 = Array2::from_shape_fn((2, 4), |(i, j)| x[[i, j % 3]]);
    let e = c.fit(&x4, &Array1::from(vec![0i64, 16_777_217]), quiet(1)).unwrap_err().to_string();
    assert!(e.contains("row 1 has label a value of magnitude 2^24") && e.contains("read as 16777216"), "{e}");
}

#[test]
fn a_loss_in_the_optimizers_place_says_kilns_order() {
    for (loss, opt) in [("sgd", "mse"), ("adam", "sparse_categorical_crossentropy")] {
        let e = Reg::new().compile(loss, opt, &[]).unwrap_err().to_string();
        assert!(e.contains("is a loss, not an optimizer") || e.contains("is an optimizer, not a loss"), "{e}");
        assert!(e.contains("kiln's compile takes the loss first") && e.contains("Keras' positional order"), "{e}");
    }
    let e = Reg::new().compile("mse", "adamm", &[]).unwrap_err().to_string();
    assert!(e.contains("did you mean `adam`"), "a plain misspelling keeps its suggestion: {e}");
}

#[test]
fn an_empty_path_says_so() {
    let e = Reg::new().load_weights("").unwrap_err().to_string();
    assert!(e.contains("`path`: is empty: give the path of a safetensors file to load"), "{e}");
    let e = Reg::new().save_weights("").unwrap_err().to_string();
    assert!(e.contains("`path`: is empty"), "{e}");
}

sequential! {
    pub struct Bn1: [1] {
        BatchNormalization,
    }
}

sequential! {
    pub struct Pointwise: [64, 64, 1] {
        Conv2D(1, 1),
    }
}

/// Relative distance of a gradient from its float64 value.
fn rel(got: f32, want: f64) -> f64 {
    (got as f64 - want).abs() / want.abs().max(1e-30)
}

/// 65,536 rows: BatchNormalization's batch statistics and a convolution's kernel gradient are sums
/// over every row. Summed one row after the other in f32 they lose up to one rounding per row
/// (kiln's were sequential within parts of 2,048 rows, its convolution's within each chunk of
/// samples); summed pairwise they stay within a few roundings of float64, whatever the threads.
#[test]
fn long_batch_sums_stay_close_to_float64() {
    let n = 65_536;
    let x: Vec<f32> = (0..n).map(|i| 1.0 + 0.25 * ((i as f32) * 0.37).sin()).collect();
    let y = vec![0.5f32; n];
    // BatchNormalization: d gamma = Σ dy · x̂ and d beta = Σ dy, with dy = 2 (x̂ - y) / n.
    let mut bn = Bn1::new();
    let (xa, ya) =
        (Array2::from_shape_vec((n, 1), x.clone()).unwrap(), Array2::from_shape_vec((n, 1), y.clone()).unwrap());
    let (_, g) = bn.loss_and_grads(&xa, &ya, &Loss::MeanSquaredError).unwrap();
    let mean = x.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    let xhat: Vec<f64> = x.iter().map(|v| (*v as f64 - mean) / (var + 1e-3).sqrt()).collect();
    let dy: Vec<f64> = xhat.iter().zip(&y).map(|(h, y)| 2.0 * (h - *y as f64) / n as f64).collect();
    let dgamma: f64 = dy.iter().zip(&xhat).map(|(d, h)| d * h).sum();
    let dbeta: f64 = dy.iter().sum();
    let (eg, ebeta) = (
        rel(g.get("batch_normalization.gamma").unwrap()[0], dgamma),
        rel(g.get("batch_normalization.beta").unwrap()[0], dbeta),
    );
    assert!(eg < 4e-7 && ebeta < 4e-7, "BatchNormalization's gradients from float64: gamma {eg:e}, beta {ebeta:e}");

    // A 1×1 convolution over 16 samples of 64×64: d kernel = Σ x · dz, d bias = Σ dz.
    let mut conv = Pointwise::with_seed(1);
    let (k, b) = (conv.get_weight("conv2d.kernel").unwrap()[[0, 0, 0, 0]] as f64, 0.0f64);
    let xc = kiln::ndarray::Array4::from_shape_vec((16, 64, 64, 1), x.clone()).unwrap();
    let yc = kiln::ndarray::Array4::from_shape_vec((16, 64, 64, 1), y.clone()).unwrap();
    let (_, g) = conv.loss_and_grads(&xc, &yc, &Loss::MeanSquaredError).unwrap();
    let dz: Vec<f64> = x.iter().zip(&y).map(|(x, y)| 2.0 * (k * *x as f64 + b - *y as f64) / n as f64).collect();
    let dk: f64 = dz.iter().zip(&x).map(|(d, x)| d * *x as f64).sum();
    let db: f64 = dz.iter().sum();
    let (ek, eb) = (rel(g.get("conv2d.kernel").unwrap()[0], dk), rel(g.get("conv2d.bias").unwrap()[0], db));
    assert!(ek < 4e-7 && eb < 4e-7, "Conv2D's gradients from float64: kernel {ek:e}, bias {eb:e}");
    println!(
        "from float64: BatchNormalization gamma {eg:.1e}, beta {ebeta:.1e}; Conv2D kernel {ek:.1e}, bias {eb:.1e}"
    );
}

/// Every optimizer, with gradients and a learning rate whose products overflow: either the
/// update is applied and everything is finite, or it is refused and nothing changed (weights,
/// state, step count). Those whose updates or state overflow here must refuse. Adam and AdamW
/// update out of place (the new values become current only when all are finite), the others
/// are copied first and put back.
#[test]
fn every_optimizer_refuses_an_update_that_would_overflow_and_changes_nothing() {
    let (x, y) = regression(16);
    let mut must_refuse = 0;
    let optimizers: Vec<(Box<dyn Optimizer>, bool)> = vec![
        (Box::new(Sgd::new(1e30)), true),
        (Box::new(Sgd::new(1e30).momentum(0.9)), true),
        (Box::new(Adam::new(1e30)), true),
        (Box::new(Adam::new(1e30).amsgrad(true)), true),
        (Box::new(AdamW::new(1e30, 0.004)), true),
        (Box::new(RmsProp::new(1e30)), true),
        (Box::new(Adagrad::new(1e30)), true),
        (Box::new(Nadam::new(1e30)), true),
        (Box::new(Adamax::new(1e30)), false),
        (Box::new(Lion::new(1e30)), false),
        (Box::new(kiln::Adafactor::new(1e30)), false),
    ];
    for (mut opt, refuses) in optimizers {
        let name = opt.name();
        let mut m = Reg::with_seed(5);
        let (_, mut g) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
        // A first ordinary step, so that there is state to keep.
        let mut small = g.clone();
        small.scale(1e-30);
        opt.apply(&mut m, &small).unwrap();
        let (before, state) = (values(&m), opt.state());
        g.scale(1e30);
        match opt.apply(&mut m, &g) {
            Ok(()) => {
                assert!(!refuses, "{name} applied an update that overflows");
                assert!(values(&m).iter().flatten().all(|v| v.is_finite()), "{name}: non-finite weights");
                assert!(all_finite(&opt.state()), "{name}: non-finite state");
            }
            Err(e) => {
                must_refuse += refuses as usize;
                assert!(e.to_string().contains("would become"), "{name}: {e}");
                assert_eq!(values(&m), before, "{name}: weights changed");
                assert_eq!(opt.state(), state, "{name}: state changed");
            }
        }
    }
    assert_eq!(must_refuse, 8);
}
