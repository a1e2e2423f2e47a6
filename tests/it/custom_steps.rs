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
