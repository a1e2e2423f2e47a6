//! Custom training steps over several outputs and several models: `loss_and_grads` with a loss
//! and weight per output, `batches` over tuples, `forward_train` / `backward_train`, and
//! `add_loss` terms in every path.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::{Losses, testing::check_model};

functional! {
    /// Two heads of the same width: only their names tell them apart.
    struct TwoHeads {
        x = Input([6]);
        h = Dense(8, activation = tanh)(x);
        a = Dense(3, activation = softmax, name = "a")(h);
        b = Dense(3, name = "b")(h);
        Model(x, [a, b])
    }
}

fn data(n: usize) -> (Array2<f32>, Array1<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((n, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.4);
    let labels = Array1::from_shape_fn(n, |i| (i % 3) as f32);
    let scores = Array2::from_shape_fn((n, 3), |(i, j)| x[[i, j]] - x[[i, j + 3]]);
    (x, labels, scores)
}

#[test]
fn a_custom_loop_over_two_equally_wide_heads_matches_fit_bit_for_bit() {
    let (x, labels, scores) = data(80);
    let compile = || {
        Compile::new(Adam::new(0.01))
            .output_loss("a", "sparse_categorical_crossentropy")
            .output_loss("b", "mse")
            .loss_weight("b", 0.5)
    };
    let mut by_fit = TwoHeads::with_seed(5);
    by_fit.compile_with(compile()).unwrap();
    by_fit
        .fit(&x, (&labels, &scores), Fit { epochs: 2, batch_size: 16, shuffle: false, verbose: 0, ..Fit::default() })
        .unwrap();

    let mut by_hand = TwoHeads::with_seed(5);
    let losses =
        Losses::new().output_loss("a", "sparse_categorical_crossentropy").output_loss("b", "mse").loss_weight("b", 0.5);
    let mut opt = Adam::new(0.01);
    for _ in 0..2 {
        for (xb, (lb, sb)) in batches(&x, (&labels, &scores), 16).unwrap() {
            let (loss, grads) = by_hand.loss_and_grads(&xb, (&lb, &sb), &losses).unwrap();
            assert!(loss.is_finite());
            opt.apply(&mut by_hand, &grads).unwrap();
        }
    }
    for ((name, a), (_, b)) in by_fit.weights().iter().zip(by_hand.weights()) {
        assert_eq!(a.value, b.value, "{name} differs between fit and the custom loop");
    }
    // The compiled losses give the same numbers as the ones named by hand.
    let mut compiled = TwoHeads::with_seed(5);
    compiled.compile_with(compile()).unwrap();
    let (l1, g1) = compiled.loss_and_grads(&x, (&labels, &scores), &Losses::compiled()).unwrap();
    let (l2, g2) = TwoHeads::with_seed(5).loss_and_grads(&x, (&labels, &scores), &losses).unwrap();
    assert_eq!((l1, g1), (l2, g2));
}

#[test]
fn per_output_losses_and_tuple_batches_refuse_what_does_not_fit() {
    let (x, labels, scores) = data(10);
    let mut m = TwoHeads::with_seed(1);
    let e = m.loss_and_grads(&x, (&labels, &scores), &Losses::new().output_loss("a", "mse")).unwrap_err();
    assert!(e.to_string().contains("output `b` has no loss"), "{e}");
    let e = m.loss_and_grads(&x, (&labels, &scores), &Losses::new().output_loss("c", "mse")).unwrap_err();
    assert!(e.to_string().contains("no output named `c`") && e.to_string().contains("a, b"), "{e}");
    let e = m.loss_and_grads(&x, (&labels, &scores), &Losses::new().loss("msee")).unwrap_err();
    assert!(e.to_string().contains("mse"), "{e}");
    let e = m.loss_and_grads(&x, (&labels, &scores), &Losses::compiled()).unwrap_err();
    assert!(e.to_string().contains("compile"), "{e}");
    let short = Array1::<f32>::zeros(9);
    let e = batches(&x, (&short, &scores), 4).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("9 rows") && e.to_string().contains("10"), "{e}");
}

sequential! {
    /// The first half of a two-model chain.
    struct Front: [4] {
        Dense(5, activation = tanh),
        Dropout(0.3),
        Dense(3),
    }
}

sequential! {
    /// The second half.
    struct Back: [3] {
        Dense(4, activation = relu),
        Dense(2, activation = softmax),
    }
}

sequential! {
    /// Both halves as one model, for comparison.
    struct Whole: [4] {
        Dense(5, activation = tanh),
        Dropout(0.3),
        Dense(3),
        Dense(4, activation = relu),
        Dense(2, activation = softmax),
    }
}

#[test]
fn gradients_through_a_second_model_are_those_of_the_two_as_one() {
    let x = Array2::from_shape_fn((6, 4), |(i, j)| ((i * 5 + j) % 7) as f32 / 7.0 - 0.5);
    let y = Array2::from_shape_fn((6, 2), |(i, j)| ((i + j) % 2) as f32);
    let (mut front, mut back, mut whole) = (Front::with_seed(2), Back::with_seed(3), Whole::with_seed(9));
    // The whole model starts from the halves' weights (and the front's random stream).
    let halves: Vec<_> = front.weights().into_iter().chain(back.weights()).collect();
    for ((name, _), (_, p)) in whole.weights().into_iter().zip(&halves) {
        let value = kiln::ndarray::ArrayD::from_shape_vec(p.shape().to_vec(), p.value.clone()).unwrap();
        whole.set_weight(&name, &value).unwrap();
    }
    *whole.train_state_mut() = front.train_state().clone();
    let loss = Loss::CategoricalCrossentropy;
    let h = front.forward_train(&x).unwrap();
    let p = back.forward_train(&h).unwrap();
    let (value, dy) = loss.value_and_grad(&p, &y).unwrap();
    let through = back.backward_train(&dy).unwrap();
    assert_eq!(through.input_grads[0].shape(), &[6, 3]);
    let first = front.backward_train(&through.input_grads[0]).unwrap();
    let (whole_value, whole_grads) = whole.loss_and_grads(&x, &y, &loss).unwrap();
    assert!((value - whole_value).abs() < 1e-6, "{value} against {whole_value}");
    let chained: Vec<&[f32]> = first.grads.iter().chain(through.grads.iter()).map(|(_, g)| g).collect();
    for ((name, w), c) in whole_grads.iter().zip(chained) {
        let worst = w.iter().zip(c).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{name}: the chained gradient differs by {worst}");
    }
}

#[test]
fn backward_train_needs_its_forward_pass_and_gradients_shaped_as_the_outputs() {
    let mut m = Back::new();
    let e = m.backward_train(&Array2::<f32>::zeros((2, 2))).unwrap_err();
    assert!(e.to_string().contains("forward_train first"), "{e}");
    m.forward_train(&Array2::<f32>::zeros((2, 3))).unwrap();
    let e = m.backward_train(&Array2::<f32>::zeros((3, 2))).unwrap_err();
    assert!(e.to_string().contains("[2, 2]") && e.to_string().contains("[3, 2]"), "{e}");
    let e = m.backward_train(&Array2::from_elem((2, 2), f32::NAN)).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    let e = Loss::SparseCategoricalCrossentropy
        .value_and_grad(&Array2::<f32>::zeros((2, 2)), &Array1::from(vec![0.0f32, 2.0]));
    assert!(e.unwrap_err().to_string().contains("label 2"));
}

#[kiln::model]
pub struct Penalised {
    enc: Dense<4, 3, Tanh>,
    head: Dense<3, 2>,
}

#[kiln::call]
impl Penalised {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h = self.enc(x);
        self.add_loss("activity", 0.1 * sum(square(h), axis = 1, keepdims = true));
        self.add_loss(mean(abs(h), axis = -1));
        self.head(h)
    }
}

#[test]
fn terms_added_in_call_join_the_loss_its_gradient_and_the_logs() {
    let x = Array2::from_shape_fn((5, 4), |(i, j)| ((i * 3 + j) % 5) as f32 / 5.0 - 0.3);
    let y = Array2::from_shape_fn((5, 2), |(i, j)| (i + j) as f32 / 7.0);
    let mut m = Penalised::with_seed(4);
    check_model(&mut m, &[x.as_slice().unwrap()], 5, 12, 1e-2).unwrap();
    // The loss is the output's plus both terms' batch means, with the terms logged by name.
    let h = m.forward_train(&x).unwrap();
    let plain = Loss::MeanSquaredError.value_and_grad(&h, &y).unwrap().0;
    let (total, _) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
    let added = m.added_loss(0) + m.added_loss(1);
    assert!(m.added_loss(0) > 0.0 && m.added_loss(1) > 0.0);
    assert!((total as f64 - plain as f64 - added).abs() < 1e-5, "{total} = {plain} + {added}?");
    assert_eq!(Penalised::ADDED_LOSSES, &["activity", "add_loss_1"]);
    m.compile("mse", "sgd", &[]).unwrap();
    let history = m.fit(&x, &y, Fit { epochs: 2, verbose: 0, validation_split: 0.4, ..Fit::default() }).unwrap();
    for key in ["loss", "activity", "add_loss_1", "val_loss", "val_activity", "val_add_loss_1"] {
        assert!(history.get(key).is_some_and(|v| v.iter().all(|v| v.is_finite() && *v > 0.0)), "{key}");
    }
    let logs = m.evaluate(&x, &y).unwrap();
    assert!(logs["activity"] > 0.0 && logs["loss"] > logs["activity"] + logs["add_loss_1"]);
}

sequential! {
    /// The first half of the pair below (no dropout: a sub-model's draws come from its own
    /// stream, which a checkpoint of the pair does not hold).
    pub struct Plain: [4] {
        Dense(5, activation = tanh),
        Dense(3),
    }
}

/// A pair trained by a step of its own: the front by one optimizer, the back by another.
#[kiln::model]
pub struct Pair {
    front: Plain,
    back: Back,
}

#[kiln::call]
impl Pair {
    fn call(&self, x: Input<4>) -> Output<2> {
        self.back(self.front(x))
    }
}

struct TwoOptimizers {
    front: Adam,
    back: Sgd,
}

impl kiln::CustomStep<Pair> for TwoOptimizers {
    fn train_step(&mut self, pair: &mut Pair, batch: kiln::StepBatch<'_>) -> kiln::Result<kiln::Logs> {
        let (x, y) = (batch.input(0), batch.target(0));
        let p = pair.back.forward_train(&pair.front.forward_train(&x)?)?;
        let (loss, dy) = Loss::CategoricalCrossentropy.value_and_grad(&p, &y)?;
        let back = pair.back.backward_train(&dy)?;
        let front = pair.front.backward_train(&back.input_grads[0])?;
        self.back.apply(&mut pair.back, &back.grads)?;
        self.front.apply(&mut pair.front, &front.grads)?;
        Ok(kiln::Logs::from([("loss".to_string(), loss as f64), ("rows".to_string(), batch.rows() as f64)]))
    }

    fn test_step(&mut self, pair: &mut Pair, batch: kiln::StepBatch<'_>) -> kiln::Result<kiln::Logs> {
        let p = pair.predict(&batch.input(0))?;
        let (loss, _) = Loss::CategoricalCrossentropy.value_and_grad(&p, &batch.target(0))?;
        Ok(kiln::Logs::from([("loss".to_string(), loss as f64)]))
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn kiln::Optimizer)> {
        vec![("front", &mut self.front), ("back", &mut self.back)]
    }
}

fn pair_data() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((40, 4), |(i, j)| ((i * 5 + j * 3) % 9) as f32 / 9.0 - 0.4);
    let y = Array2::from_shape_fn((40, 2), |(i, j)| ((i % 2) == j) as u8 as f32);
    (x, y)
}

/// Stops a run with an error after epoch `at`, as a crash would.
struct CrashAfter(usize);

impl kiln::Callback for CrashAfter {
    fn on_epoch_end(&mut self, epoch: usize, _: &kiln::Logs, _: &mut dyn kiln::Trainee) -> kiln::Result<()> {
        match epoch + 1 == self.0 {
            true => Err(kiln::Error::InvalidData { what: "run".into(), reason: "crashed".into() }),
            false => Ok(()),
        }
    }
}

#[test]
fn fit_runs_a_step_of_its_own_with_two_optimizers_logs_validation_and_resumes_bit_for_bit() {
    let (x, y) = pair_data();
    let opts = || Fit { epochs: 4, batch_size: 8, validation_split: 0.25, verbose: 0, ..Fit::default() };
    let step = || TwoOptimizers { front: Adam::new(0.01), back: Sgd::new(0.1) };
    let mut whole = Pair::with_seed(8);
    let history = whole.fit_steps(&x, &y, opts(), &mut step(), &mut []).unwrap();
    let (loss, val) = (history.get("loss").unwrap(), history.get("val_loss").unwrap());
    assert!(loss[3] < loss[0] && val.len() == 4, "{loss:?} {val:?}");
    // The logs are averaged over the rows: 30 training rows in batches of 8, 8, 8 and 6.
    assert!((history.get("rows").unwrap()[0] - (3.0 * 64.0 + 36.0) / 30.0).abs() < 1e-9);

    // A run that crashes after epoch 2 and is started again resumes from its backup, both
    // optimizers' states included, and ends in the same weights.
    let dir = std::env::temp_dir().join(format!("kiln-own-step-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut first = Pair::with_seed(8);
    let mut backup = kiln::BackupAndRestore::new(&dir);
    let crashed = first.fit_steps(&x, &y, opts(), &mut step(), &mut [&mut backup, &mut CrashAfter(2)]);
    assert!(crashed.unwrap_err().to_string().contains("crashed"));
    let mut again = Pair::with_seed(99);
    let mut backup = kiln::BackupAndRestore::new(&dir);
    let resumed = again.fit_steps(&x, &y, opts(), &mut step(), &mut [&mut backup]).unwrap();
    assert_eq!(resumed.get("loss").unwrap().len(), 2, "epochs 3 and 4 only");
    for ((name, a), (_, b)) in whole.weights().iter().zip(again.weights()) {
        assert_eq!(a.value, b.value, "{name} differs after the resumed run");
    }
    // A backup of other optimizers is refused, naming both sets.
    let mut other = Pair::with_seed(8);
    let mut backup = kiln::BackupAndRestore::new(&dir);
    let _ = other.fit_steps(&x, &y, opts(), &mut step(), &mut [&mut backup, &mut CrashAfter(1)]);
    struct OneOptimizer(Adam);
    impl kiln::CustomStep<Pair> for OneOptimizer {
        fn train_step(&mut self, _: &mut Pair, _: kiln::StepBatch<'_>) -> kiln::Result<kiln::Logs> {
            Ok(kiln::Logs::new())
        }
        fn optimizers(&mut self) -> Vec<(&'static str, &mut dyn kiln::Optimizer)> {
            vec![("only", &mut self.0)]
        }
    }
    let mut backup = kiln::BackupAndRestore::new(&dir);
    let e = Pair::new().fit_steps(&x, &y, opts(), &mut OneOptimizer(Adam::default()), &mut [&mut backup]).unwrap_err();
    assert!(e.to_string().contains("[back, front]") || e.to_string().contains("[front, back]"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_step_of_its_own_takes_any_shapes_no_targets_and_stops_on_a_nan_log() {
    struct Counting(usize);
    impl kiln::CustomStep<Back> for Counting {
        fn train_step(&mut self, _: &mut Back, batch: kiln::StepBatch<'_>) -> kiln::Result<kiln::Logs> {
            assert_eq!(batch.input(0).shape()[1..], [2, 3]);
            self.0 += 1;
            let v = if self.0 == 3 { f64::NAN } else { 1.0 };
            Ok(kiln::Logs::from([("value".to_string(), v)]))
        }
    }
    let images = kiln::ndarray::Array3::<f32>::zeros((10, 2, 3));
    let e = Back::new().fit_steps(
        &images,
        (),
        Fit { epochs: 3, batch_size: 4, verbose: 0, ..Fit::default() },
        &mut Counting(0),
        &mut [],
    );
    let e = e.unwrap_err().to_string();
    assert!(e.contains("value") && e.contains("NaN"), "{e}");
    let e = Back::new().fit_steps(&images, &Array1::<f32>::zeros(9), Fit::default(), &mut Counting(0), &mut []);
    assert!(e.unwrap_err().to_string().contains("10 rows"));
}

/// A step of its own on datasets: the same batches as arrays in order give the same bits, and a
/// validation dataset goes to its `test_step`.
#[test]
fn a_step_of_its_own_trains_on_datasets_as_on_arrays() {
    use kiln::data::from_arrays;
    let (x, y) = pair_data();
    let (xt, yt) = (x.slice(kiln::ndarray::s![..32, ..]).to_owned(), y.slice(kiln::ndarray::s![..32, ..]).to_owned());
    let (xv, yv) = (x.slice(kiln::ndarray::s![32.., ..]).to_owned(), y.slice(kiln::ndarray::s![32.., ..]).to_owned());
    let step = || TwoOptimizers { front: Adam::new(0.01), back: Sgd::new(0.1) };
    let opts = Fit { epochs: 3, batch_size: 8, shuffle: false, verbose: 0, ..Fit::default() };
    let mut arrays = Pair::with_seed(8);
    let validation = kiln::validation_data(&xv, &yv);
    let want =
        arrays.fit_steps(&xt, &yt, Fit { validation_data: validation, ..opts.clone() }, &mut step(), &mut []).unwrap();
    let mut streamed = Pair::with_seed(8);
    let mut train = from_arrays(vec![xt.into_dyn()], vec![yt.into_dyn()], 8).unwrap();
    let mut val = from_arrays(vec![xv.into_dyn()], vec![yv.into_dyn()], 8).unwrap();
    let got = streamed.fit_steps_dataset(&mut train, Some(&mut val), opts, &mut step(), &mut []).unwrap();
    assert_eq!(got.history, want.history);
    assert!(got.get("val_loss").is_some_and(|v| v.len() == 3));
    for ((name, a), (_, b)) in arrays.weights().iter().zip(streamed.weights()) {
        assert_eq!(a.value, b.value, "{name}");
    }
}
