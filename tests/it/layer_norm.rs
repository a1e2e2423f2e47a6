//! LayerNormalization: Keras 3 parity on committed values (output and the gradients with respect
//! to the input, gamma and beta, for two epsilons and a nearly constant row where epsilon
//! matters; `examples/keras/layer_norm_reference.py`) within 1e-5 relative — Keras takes the
//! statistics in float32, kiln in float64, which shows on the nearly constant row at epsilon 1e-5 —
//! finite differences, and a model using it.

use kiln::ndarray::Array3;
use kiln::prelude::*;
use kiln::{BackwardOpts, Ctx, Layer, LayerNorm};

fn fixture(key: &str) -> Vec<f32> {
    kiln::testing::reference(include_str!("../fixtures/keras/layer_norm.txt"), key)
        .unwrap_or_else(|| panic!("{key} missing from the fixture"))
}

use kiln::testing::assert_close as close;

#[test]
fn layer_normalization_matches_keras() {
    let (x, dy) = (fixture("x"), fixture("dy"));
    for eps in ["0.001", "1e-05"] {
        let mut l = LayerNorm::new(6, eps.parse().unwrap(), true, true);
        l.gamma.as_mut().unwrap().value.copy_from_slice(&fixture("gamma"));
        l.beta.as_mut().unwrap().value.copy_from_slice(&fixture("beta"));
        let mut stream = kiln::Stream::new(0);
        let mut ctx = Ctx::new(2, true, &mut stream);
        l.forward(&[&x], &mut ctx);
        close(&format!("out {eps}"), l.output(), &fixture(&format!("out_{eps}")), 1e-5);
        l.backward(&[&x], &dy, &mut ctx, BackwardOpts { input_grad: true, accumulate: false, fused_output: false });
        close(&format!("dx {eps}"), l.input_grad(0), &fixture(&format!("dx_{eps}")), 1e-5);
        close(&format!("dgamma {eps}"), &l.gamma.as_ref().unwrap().grad, &fixture(&format!("dgamma_{eps}")), 1e-5);
        close(&format!("dbeta {eps}"), &l.beta.as_ref().unwrap().grad, &fixture(&format!("dbeta_{eps}")), 1e-5);
    }
}

#[test]
fn layer_normalization_gradients_match_finite_differences() {
    let x: Vec<f32> = (0..2 * 3 * 5).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    for (center, scale) in [(true, true), (false, true), (true, false)] {
        let mut l = LayerNorm::new(5, 1e-3, center, scale);
        if let Some(g) = &mut l.gamma {
            g.value.iter_mut().enumerate().for_each(|(i, v)| *v = 0.5 + i as f32 * 0.3);
        }
        kiln::testing::check_layer(&mut l, &[&x], 2, 5, 2e-2).unwrap();
    }
}

sequential! {
    pub struct Normed: [4, 6] {
        Dense(8, activation = relu),
        LayerNormalization(epsilon = 1e-5),
        Flatten,
        Dense(1),
    }
}

#[test]
fn a_model_with_layer_normalization_trains() -> kiln::Result<()> {
    let mut m = Normed::new();
    assert!(m.summary_string().contains("LayerNormalization"));
    assert_eq!(m.get_weight("layer_normalization.gamma").unwrap().len(), 8);
    m.compile("mse", Adam::new(0.01), &[])?;
    let x = Array3::from_shape_fn((32, 4, 6), |(i, j, k)| ((i * 3 + j * 5 + k) % 9) as f32 / 9.0);
    let y = kiln::ndarray::Array2::from_shape_fn((32, 1), |(i, _)| (i % 4) as f32 / 4.0);
    let h = m.fit(&x, &y, Fit { epochs: 20, batch_size: 8, verbose: 0, ..Fit::default() })?;
    assert!(h.last("loss").unwrap() < 0.5 * h.get("loss").unwrap()[0], "{:?}", h.get("loss"));
    Ok(())
}
