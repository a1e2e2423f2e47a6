//! `examples/siamese.rs` (a shared tower, the distance and the contrastive loss written as math)
//! and `#[kiln::loss]`: exact gradients, and a loss refused by an output of another width.

#[allow(dead_code)]
#[path = "../../examples/siamese.rs"]
mod example;

use kiln::CustomLoss;
use kiln::prelude::*;

#[test]
fn the_siamese_network_tells_pairs_of_digits_apart() {
    let accuracy = example::held_out_pair_accuracy(8).unwrap();
    assert!(accuracy >= 0.9, "held-out pair accuracy {accuracy}");
}

/// Keras' `log_cosh`, written as math over rows of three values.
#[kiln::loss]
fn log_cosh_rows(y_true: Input<3>, y_pred: Input<3>) -> Output<1> {
    let d = y_pred - y_true;
    mean(d + log(0.5 + 0.5 * exp(-2.0 * d)), axis = -1, keepdims = true)
}

#[test]
fn a_loss_written_as_math_has_its_exact_gradient() {
    let (p, y) = ([0.3f32, -1.2, 2.0], [0.5f32, 0.1, -0.4]);
    let want =
        |p: &[f32]| -> f32 { p.iter().zip(&y).map(|(p, y)| ((p - y) as f64).cosh().ln() as f32).sum::<f32>() / 3.0 };
    let loss = log_cosh_rows;
    assert!((loss.value(&p, &y) - want(&p)).abs() < 1e-6, "{} against {}", loss.value(&p, &y), want(&p));
    let mut g = [0.0f32; 3];
    assert!(loss.gradient(&p, &y, &mut g));
    for (i, g) in g.iter().enumerate() {
        let want = ((p[i] - y[i]) as f64).tanh() as f32 / 3.0;
        assert!((g - want).abs() < 1e-6, "d/dp[{i}]: {g} against {want}");
    }
    assert_eq!(loss.name(), "log_cosh_rows");
}

sequential! {
    pub struct Wide: [4] {
        Dense(2),
    }
}

#[test]
fn a_loss_for_rows_of_another_width_is_an_error_at_compile() {
    let mut m = Wide::new();
    let e = m.compile(Loss::custom(&log_cosh_rows), "adam", &[]).unwrap_err().to_string();
    assert!(e.contains("reads rows of 3 value(s), but output") && e.contains("gives rows of 2"), "{e}");
}
