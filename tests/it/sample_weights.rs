//! `sample_weight`, `class_weight`, `validation_sample_weight`, `initial_epoch` and
//! `validation_freq` in `fit`: the weighted loss against Keras' formula by hand, the gradient it
//! gives, the effect of class weights on recall on an imbalanced task, and bad weights refused
//! before training starts.

use kiln::ndarray::{Array1, Array2, Axis, array};
use kiln::prelude::*;

sequential! {
    pub struct Line: [2] { Dense(1) }
}

sequential! {
    pub struct Classifier: [2] { Dense(3, activation = softmax) }
}

fn data() -> (Array2<f32>, Array2<f32>, Array1<f32>) {
    let x = array![[0.5f32, -1.0], [1.5, 0.2], [-0.3, 0.8], [2.0, 1.0], [0.1, 0.1], [-1.2, 0.4]];
    let y = array![[1.0f32], [0.0], [2.0], [-1.0], [0.5], [0.3]];
    let w = array![1.0f32, 0.0, 2.5, 1.0, 0.5, 3.0];
    (x, y, w)
}

/// Every weight's values, in order.
fn values(m: &impl Model) -> Vec<Vec<f32>> {
    m.weights().into_iter().map(|(_, p)| p.value).collect()
}

fn no_steps() -> Fit<'static> {
    Fit { epochs: 1, batch_size: 6, verbose: 0, shuffle: false, ..Fit::default() }
}

/// Keras: `Σ wᵢ lᵢ / n`, the weighted sum over the batch size.
#[test]
fn the_weighted_loss_is_keras_sum_over_batch_size() -> kiln::Result<()> {
    let (x, y, w) = data();
    let mut model = Line::new();
    model.compile("mse", Sgd::new(0.0), &[])?;
    let p = model.predict(&x)?;
    let by_hand: f64 = (0..6).map(|i| w[i] as f64 * ((p[[i, 0]] - y[[i, 0]]) as f64).powi(2)).sum::<f64>() / 6.0;
    let history = model.fit(&x, &y, Fit { sample_weight: Some(w.view()), ..no_steps() })?;
    let got = history.last("loss").unwrap();
    assert!((got - by_hand).abs() < 1e-6 * by_hand.max(1.0), "kiln {got}, by hand {by_hand}");
    // evaluate with the same weights, in batches of 4 (a running mean weighted by batch size).
    let evaluated = model.evaluate_weighted(&x, &y, w.view(), kiln::Evaluate { batch_size: 4, verbose: 0 })?["loss"];
    assert!((evaluated - by_hand).abs() < 1e-6 * by_hand.max(1.0), "evaluate {evaluated}, by hand {by_hand}");
    let short = Array1::from_elem(2, 1.0f32);
    let e = model.evaluate_weighted(&x, &y, short.view(), kiln::Evaluate::default()).unwrap_err().to_string();
    assert!(e.contains("one weight per row: 6, got 2"), "{e}");
    Ok(())
}

/// Weights of 2 everywhere double the gradient: one SGD step at learning rate 0.1 equals an
/// unweighted step at 0.2; and zero weights on every row leave the weights where they were.
#[test]
fn weights_scale_the_gradient() -> kiln::Result<()> {
    let (x, y, _) = data();
    let twos = Array1::from_elem(6, 2.0f32);
    let mut a = Line::with_seed(5);
    a.compile("mse", Sgd::new(0.1), &[])?;
    a.fit(&x, &y, Fit { sample_weight: Some(twos.view()), ..no_steps() })?;
    let mut b = Line::with_seed(5);
    b.compile("mse", Sgd::new(0.2), &[])?;
    b.fit(&x, &y, no_steps())?;
    for ((name, pa), (_, pb)) in a.weights().iter().zip(b.weights()) {
        for (u, v) in pa.value.iter().zip(&pb.value) {
            assert!((u - v).abs() < 1e-6, "{name}: {u} vs {v}");
        }
    }
    let zeros = Array1::zeros(6);
    let mut c = Line::with_seed(5);
    let before = values(&c);
    c.compile("mse", Sgd::new(0.1), &[])?;
    c.fit(&x, &y, Fit { sample_weight: Some(zeros.view()), ..no_steps() })?;
    assert_eq!(values(&c), before);
    Ok(())
}

/// `class_weight` is `sample_weight` with each row's weight taken from its class (sparse labels).
#[test]
fn class_weight_equals_the_matching_sample_weight() -> kiln::Result<()> {
    let (x, _, _) = data();
    let labels = array![0.0f32, 2.0, 1.0, 2.0, 0.0, 1.0];
    let classes = [(0usize, 0.5f32), (2, 4.0)];
    let per_row: Array1<f32> = labels.mapv(|l| match l as usize {
        0 => 0.5,
        2 => 4.0,
        _ => 1.0,
    });
    let run = |opts: Fit<'_>| -> kiln::Result<(f64, Vec<Vec<f32>>)> {
        let mut m = Classifier::with_seed(9);
        m.compile("sparse_categorical_crossentropy", Sgd::new(0.1), &[])?;
        let h = m.fit(&x, &labels, opts)?;
        Ok((h.last("loss").unwrap(), values(&m)))
    };
    let (la, wa) = run(Fit { class_weight: Some(&classes), epochs: 3, ..no_steps() })?;
    let (lb, wb) = run(Fit { sample_weight: Some(per_row.view()), epochs: 3, ..no_steps() })?;
    assert_eq!(la, lb);
    assert_eq!(wa, wb);
    Ok(())
}

#[test]
fn validation_rows_keep_their_weights() -> kiln::Result<()> {
    let (x, y, w) = data();
    let mut model = Line::new();
    model.compile("mse", Sgd::new(0.0), &[])?;
    let p = model.predict(&x)?;
    let sq = |i: usize| ((p[[i, 0]] - y[[i, 0]]) as f64).powi(2);
    // validation_split 0.5 holds out rows 3, 4, 5 with their weights.
    let h = model.fit(&x, &y, Fit { sample_weight: Some(w.view()), validation_split: 0.5, ..no_steps() })?;
    let want = (3..6).map(|i| w[i] as f64 * sq(i)).sum::<f64>() / 3.0;
    assert!((h.last("val_loss").unwrap() - want).abs() < 1e-6, "{:?} vs {want}", h.last("val_loss"));
    // validation_data with its own weights.
    let vw = array![0.0f32, 1.0, 0.0, 0.0, 0.0, 0.0];
    let h = model.fit(
        &x,
        &y,
        Fit { validation_data: validation_data(&x, &y), validation_sample_weight: Some(vw.view()), ..no_steps() },
    )?;
    assert!((h.last("val_loss").unwrap() - sq(1) / 6.0).abs() < 1e-6);
    Ok(())
}

#[test]
fn initial_epoch_and_validation_freq() -> kiln::Result<()> {
    let (x, y, _) = data();
    let mut model = Line::new();
    model.compile("mse", "sgd", &[])?;
    let h = model.fit(
        &x,
        &y,
        Fit { epochs: 7, initial_epoch: 2, validation_split: 0.5, validation_freq: 2, ..no_steps() },
    )?;
    assert_eq!(h.epoch, [2, 3, 4, 5, 6]);
    assert_eq!(h.get("loss").unwrap().len(), 5);
    // Keras validates when the 1-based epoch number is a multiple of validation_freq: here after
    // epochs 3 and 5 (the 4th and the 6th).
    assert_eq!(h.get("val_loss").unwrap().len(), 2);
    assert_eq!(model.train_state().epochs(), 5);
    Ok(())
}

#[test]
fn bad_weights_are_refused_before_training() {
    let (x, y, _) = data();
    let mut model = Line::new();
    model.compile("mse", "sgd", &[]).unwrap();
    let before = values(&model);
    let mut fit = |opts: Fit<'_>| model.fit(&x, &y, opts).unwrap_err().to_string();
    let short = Array1::from_elem(5, 1.0f32);
    assert!(fit(Fit { sample_weight: Some(short.view()), ..no_steps() }).contains("one weight per row: 6, got 5"));
    let negative = array![1.0f32, 1.0, -0.5, 1.0, 1.0, 1.0];
    let e = fit(Fit { sample_weight: Some(negative.view()), ..no_steps() });
    assert!(e.contains("finite and >= 0; row 2 has -0.5"), "{e}");
    let nan = array![1.0f32, f32::NAN, 1.0, 1.0, 1.0, 1.0];
    assert!(fit(Fit { sample_weight: Some(nan.view()), ..no_steps() }).contains("row 1 has NaN"));
    let e = fit(Fit { class_weight: Some(&[(1, 2.0), (5, 1.0)]), ..no_steps() });
    assert!(e.contains("names class 5, but output") && e.contains("has 2 classes"), "{e}");
    let e = fit(Fit { class_weight: Some(&[(1, -2.0)]), ..no_steps() });
    assert!(e.contains("class 1's weight must be finite and >= 0, got -2"), "{e}");
    let ones = Array1::from_elem(6, 1.0f32);
    let e = fit(Fit { class_weight: Some(&[(1, 2.0)]), sample_weight: Some(ones.view()), ..no_steps() });
    assert!(e.contains("not both"), "{e}");
    let e = fit(Fit { validation_freq: 0, ..no_steps() });
    assert!(e.contains("validation_freq"), "{e}");
    let e = fit(Fit { validation_sample_weight: Some(ones.view()), ..no_steps() });
    assert!(e.contains("validation_data, which was not given"), "{e}");
    assert_eq!(values(&model), before, "nothing trained");
}

sequential! {
    pub struct Detector: [64] {
        Dense(16, activation = relu),
        Dense(1, activation = sigmoid),
    }
}

/// The shipped digits as "is it a 7?" (about 1 in 10): weighting the rare class 9× raises its
/// recall on held-out rows.
#[test]
fn class_weight_raises_recall_on_an_imbalanced_task() -> kiln::Result<()> {
    let table = kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false)?;
    let (x, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 11))?;
    let x = x / 16.0;
    let y = labels.mapv(|l| (l == 7.0) as u8 as f32).insert_axis(Axis(1));
    let recall = |class_weight: Option<&[(usize, f32)]>| -> kiln::Result<f64> {
        let mut m = Detector::with_seed(2);
        m.compile("binary_crossentropy", Sgd::new(0.05), &["recall"])?;
        let h = m.fit(
            &x,
            &y,
            Fit { epochs: 3, batch_size: 32, validation_split: 0.3, verbose: 0, class_weight, ..Fit::default() },
        )?;
        Ok(h.last("val_recall").unwrap())
    };
    let (plain, weighted) = (recall(None)?, recall(Some(&[(1, 9.0)]))?);
    assert!(weighted > plain + 0.2, "recall without weights {plain}, with class 1 weighted 9x {weighted}");
    Ok(())
}

/// Counts the batches of each epoch.
#[derive(Default)]
struct Batches(Vec<usize>);

impl kiln::Callback for Batches {
    fn on_epoch_begin(&mut self, _: usize, _: &mut dyn kiln::Trainee) -> kiln::Result<()> {
        self.0.push(0);
        Ok(())
    }
    fn on_train_batch_end(&mut self, _: usize, _: &kiln::Logs, _: &mut dyn kiln::Trainee) -> kiln::Result<()> {
        *self.0.last_mut().unwrap() += 1;
        Ok(())
    }
}

/// Keras 3 with arrays: 64 rows in batches of 16 (4 per pass) and steps_per_epoch 3 give epochs
/// of 3, 1 (the pass runs out) and 3 batches; two epochs of 2 are exactly one pass.
#[test]
fn steps_per_epoch_continues_through_the_data() -> kiln::Result<()> {
    let x = Array2::from_shape_fn((64, 2), |(i, j)| ((i * 3 + j) % 7) as f32 / 7.0);
    let y = Array2::from_shape_fn((64, 1), |(i, _)| (i % 5) as f32 / 5.0);
    let mut m = Line::new();
    m.compile("mse", Sgd::new(0.1), &[])?;
    let mut count = Batches::default();
    let opts = Fit { epochs: 3, batch_size: 16, steps_per_epoch: Some(3), verbose: 0, ..Fit::default() };
    m.fit_with_callbacks(&x, &y, opts, &mut [&mut count])?;
    assert_eq!(count.0, [3, 1, 3]);

    let run = |steps: Option<usize>, epochs: usize| -> kiln::Result<Vec<Vec<f32>>> {
        let mut m = Line::with_seed(1);
        m.compile("mse", Sgd::new(0.1), &[])?;
        let opts = Fit { epochs, batch_size: 16, steps_per_epoch: steps, shuffle: false, verbose: 0, ..Fit::default() };
        m.fit(&x, &y, opts)?;
        Ok(values(&m))
    };
    assert_eq!(run(Some(2), 2)?, run(None, 1)?);
    let e = m.fit(&x, &y, Fit { steps_per_epoch: Some(0), ..no_steps() }).unwrap_err().to_string();
    assert!(e.contains("steps_per_epoch") && e.contains("at least 1"), "{e}");
    Ok(())
}
