//! Samples of rank 2: `Input([4, 16]) → Dense(8, relu) → Flatten → Dense(3, softmax)`, the model
//! Keras accepts, in `sequential!` and `functional!`, on the shipped digits (each 8×8 image read
//! as 4 steps of 16 pixels, classes 0–2): Keras' summary shapes, gradients checked, trained to a
//! held-out accuracy; and an output of rank 2 (one class per step) with its targets.

use kiln::ndarray::{Array1, Array2, Array3, Axis, s};
use kiln::prelude::*;
use kiln::testing::check_model;

sequential! {
    pub struct SeqSteps: [4, 16] {
        Dense(8, activation = relu),
        Flatten,
        Dense(3, activation = softmax),
    }
}

functional! {
    pub struct FuncSteps {
        steps = Input([4, 16]);
        h = Dense(8, activation = relu)(steps);
        out = Dense(3, activation = softmax)(Flatten()(h));
        Model(steps, out)
    }
}

/// The same model, subclassed: `Input<4, 16>` is a sample of 4 steps of 16 features.
#[kiln::model]
pub struct SubSteps {
    dense: Dense<16, 8, Relu>,
    head: Dense<32, 3, Softmax>,
}

#[kiln::call]
impl SubSteps {
    fn call(&self, x: Input<4, 16>) -> Output<3> {
        let h = self.dense(x);
        self.head(flatten(h))
    }
}

functional! {
    /// One prediction per step: an output of shape [4, 3].
    pub struct PerStep {
        steps = Input([4, 16]);
        h = Dense(8, activation = tanh)(steps);
        out = Dense(3, activation = softmax)(h);
        Model(steps, out)
    }
}

/// The digits 0, 1 and 2 as `[n, 4, 16]` in [0, 1], with their labels, shuffled.
fn digits() -> (Array3<f32>, Array1<f32>) {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (x, y) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 3)).unwrap();
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i] < 3.0).collect();
    let x: Array2<f32> = x.select(Axis(0), &keep) / 16.0;
    let y = y.select(Axis(0), &keep);
    (x.into_shape_with_order((keep.len(), 4, 16)).unwrap(), y)
}

fn trains_and_generalises<M: Model<Prediction = Array2<f32>>>(mut m: M) {
    let (x, y) = digits();
    let n_train = (x.shape()[0] as f64 * 0.8).floor() as usize;
    m.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 20, validation_split: 0.2, verbose: 0, ..Fit::default() }).unwrap();
    let held_out = m.evaluate(&x.slice(s![n_train.., .., ..]), &y.slice(s![n_train..])).unwrap();
    assert!(held_out["accuracy"] >= 0.95, "held-out accuracy {}", held_out["accuracy"]);
    let p = m.predict(&x.slice(s![..5, .., ..])).unwrap();
    assert_eq!(p.shape(), &[5, 3]);
}

#[test]
fn summary_shows_keras_shapes() {
    let expected = ["(None, 4, 8)", "(None, 32)", "(None, 3)"];
    let all = [SeqSteps::new().summary_string(), FuncSteps::new().summary_string(), SubSteps::new().summary_string()];
    for summary in all {
        for shape in expected {
            // The subclass summary lists its fields, not the flatten in `call`.
            if !(shape == "(None, 32)" && summary.contains("SubSteps")) {
                assert!(summary.contains(shape), "{shape} missing from\n{summary}");
            }
        }
        assert!(summary.contains("Total params: 235"), "{summary}");
    }
    assert!(FuncSteps::new().summary_string().contains("(None, 4, 16)"));
}

#[test]
fn gradients_through_dense_on_the_last_axis() {
    let (x, _) = digits();
    let x = x.slice(s![..3, .., ..]).to_owned();
    let mut m = SeqSteps::with_seed(5);
    // Biases off zero keep the relu units away from their kink.
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 2 == 0 { 0.3 } else { -0.2 });
        }
    });
    check_model(&mut m, &[x.as_slice().unwrap()], 3, 24, 3e-3).unwrap();
    let mut p = PerStep::with_seed(6);
    check_model(&mut p, &[x.as_slice().unwrap()], 3, 24, 3e-3).unwrap();
}

#[test]
fn sequential_trains_on_steps() {
    trains_and_generalises(SeqSteps::with_seed(1));
}

#[test]
fn functional_and_subclass_train_on_steps_and_agree_with_sequential() {
    trains_and_generalises(FuncSteps::with_seed(1));
    trains_and_generalises(SubSteps::with_seed(1));
    let (x, _) = digits();
    let (mut a, mut b, mut c) = (SeqSteps::with_seed(9), FuncSteps::with_seed(9), SubSteps::with_seed(9));
    let p = a.predict(&x).unwrap();
    assert_eq!(p, b.predict(&x).unwrap(), "same seed, same layers, same numbers");
    assert_eq!(p, c.predict(&x).unwrap(), "the subclassed model too");
    let mut s = SubSteps::with_seed(5);
    check_model(&mut s, &[x.slice(s![..3, .., ..]).to_owned().as_slice().unwrap()], 3, 24, 3e-3).unwrap();
}

#[test]
fn an_output_per_step_takes_a_label_per_step() {
    let (x, y) = digits();
    // Each step is labelled with the image's class: targets [n, 4].
    let y_steps = Array2::from_shape_fn((y.len(), 4), |(i, _)| y[i]);
    let mut m = PerStep::with_seed(2);
    m.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    let h = m.fit(&x, &y_steps, Fit { epochs: 20, verbose: 0, ..Fit::default() }).unwrap();
    // Two rows of pixels tell a digit apart less often than eight: the accuracy is per step.
    let acc = h.get("accuracy").unwrap();
    assert!(acc[acc.len() - 1] > 0.7 && acc[acc.len() - 1] > acc[0] + 0.2, "{acc:?}");
    let p: Array3<f32> = m.predict(&x.slice(s![..2, .., ..])).unwrap();
    assert_eq!(p.shape(), &[2, 4, 3]);
    // Each step's scores are a softmax over the 3 classes.
    for row in p.lanes(Axis(2)) {
        assert!((row.sum() - 1.0).abs() < 1e-5);
    }
    // A target of the wrong shape names both shapes.
    let err = m.evaluate(&x, &y).unwrap_err().to_string();
    assert!(err.contains("[n, 4]") && err.contains(&format!("[{}]", y.len())), "{err}");
}
