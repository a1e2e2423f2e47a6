//! Keras 3's losses beyond the regression and cross-entropy basics (KL divergence, cosine
//! similarity, Poisson, log-cosh, the hinges, binary focal cross-entropy): values and gradients
//! against Keras 3 (`tests/fixtures/keras/losses_extra.txt` from
//! `examples/keras/losses_extra_reference.py`), gradient checks, the weighted path, and every
//! name in `compile`.

use kiln::ndarray::Array2;
use kiln::prelude::*;
use kiln::testing::{assert_close, check_loss};

const FIXTURE: &str = include_str!("../fixtures/keras/losses_extra.txt");
const ROWS: usize = 4;
const WIDTH: usize = 5;

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("no reference line `{key}`"))
}

/// Each case of the fixture and the loss kiln computes it with (Keras' defaults but where the
/// case name says otherwise).
fn cases() -> [(&'static str, Loss); 12] {
    [
        ("kl_divergence", Loss::KLDivergence),
        ("cosine_similarity", Loss::CosineSimilarity),
        ("poisson", Loss::Poisson),
        ("log_cosh", Loss::LogCosh),
        ("hinge", Loss::Hinge),
        ("hinge_signed", Loss::Hinge),
        ("squared_hinge", Loss::SquaredHinge),
        ("squared_hinge_signed", Loss::SquaredHinge),
        ("categorical_hinge", Loss::CategoricalHinge),
        ("binary_focal_crossentropy", Loss::BinaryFocalCrossentropy),
        ("binary_focal_crossentropy_gamma3", Loss::binary_focal_crossentropy(3.0)),
        ("binary_focal_crossentropy_logits", Loss::BinaryFocalCrossentropy.with_from_logits(true)),
    ]
}

/// The new losses' Keras function and class names.
const NAMES: [&str; 17] = [
    "kl_divergence",
    "kld",
    "KLDivergence",
    "cosine_similarity",
    "CosineSimilarity",
    "poisson",
    "Poisson",
    "log_cosh",
    "LogCosh",
    "hinge",
    "Hinge",
    "squared_hinge",
    "SquaredHinge",
    "categorical_hinge",
    "CategoricalHinge",
    "binary_focal_crossentropy",
    "BinaryFocalCrossentropy",
];

#[test]
fn values_and_gradients_match_keras() {
    for (case, loss) in cases() {
        let (y, p) = (reference(&format!("{case}.y_true")), reference(&format!("{case}.y_pred")));
        let mut grad = vec![0.0; p.len()];
        let value = loss.compute(&p, &y, ROWS, WIDTH, Some(&mut grad), false);
        assert_close(&format!("{case}.loss"), &[value], &reference(&format!("{case}.loss")), 1e-5);
        assert_close(&format!("{case}.grad"), &grad, &reference(&format!("{case}.grad")), 1e-5);
        // Without a gradient, the same value.
        assert_eq!(loss.compute(&p, &y, ROWS, WIDTH, None, false), value, "{case}");
    }
}

#[test]
fn gradients_pass_the_finite_difference_check() {
    for (case, loss) in cases() {
        let (y, p) = (reference(&format!("{case}.y_true")), reference(&format!("{case}.y_pred")));
        check_loss(&loss, &p, &y, ROWS, WIDTH, false, 2e-3).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

#[test]
fn unit_sample_weights_give_the_plain_loss() {
    for (case, loss) in cases() {
        let (y, p) = (reference(&format!("{case}.y_true")), reference(&format!("{case}.y_pred")));
        let (mut plain, mut weighted) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        let a = loss.compute(&p, &y, ROWS, WIDTH, Some(&mut plain), false);
        let b = loss.compute_weighted(&p, &y, ROWS, WIDTH, &[1.0; ROWS], Some(&mut weighted), false);
        assert_close(&format!("{case} weighted loss"), &[b], &[a], 1e-6);
        assert_close(&format!("{case} weighted grad"), &weighted, &plain, 1e-6);
    }
}

#[test]
fn names_resolve_to_the_losses() {
    // The cases with Keras' defaults are named after their loss.
    for (case, loss) in
        cases().into_iter().filter(|(c, _)| !c.ends_with("_signed") && !c.contains("_focal_crossentropy_"))
    {
        assert_eq!(Loss::from_name(case).unwrap(), loss, "{case}");
        assert_eq!(loss.name(), case);
    }
    assert_eq!(Loss::from_name("kld").unwrap(), Loss::KLDivergence);
    assert_eq!(Loss::from_name("BinaryFocalCrossentropy").unwrap().gamma(), 2.0);
}

sequential! {
    /// Probabilities out: a valid prediction for every one of these losses.
    struct Tiny: [3] {
        Dense(4, activation = softmax),
    }
}

fn data() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((16, 3), |(i, j)| ((i * 5 + j * 3) % 7) as f32 / 7.0 - 0.4);
    let y = Array2::from_shape_fn((16, 4), |(i, j)| (i % 4 == j) as u8 as f32);
    (x, y)
}

#[test]
fn every_name_compiles_and_fits() {
    let (x, y) = data();
    for name in NAMES {
        let mut m = Tiny::new();
        m.compile(name, "adam", &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h =
            m.fit(&x, &y, Fit { epochs: 1, verbose: 0, ..Fit::default() }).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(h.last("loss").unwrap().is_finite(), "{name}");
    }
    for loss in [Loss::binary_focal_crossentropy(3.0), Loss::BinaryFocalCrossentropy.with_from_logits(true)] {
        let mut m = Tiny::new();
        m.compile(loss, "adam", &[]).unwrap();
        let h = m.fit(&x, &y, Fit { epochs: 1, verbose: 0, ..Fit::default() }).unwrap();
        assert!(h.last("loss").unwrap().is_finite(), "{loss:?}");
    }
}

#[test]
fn an_unknown_name_lists_every_loss() {
    let e = Tiny::new().compile("kl_divergance", "adam", &[]).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "unknown loss `kl_divergance` (did you mean `kl_divergence`?); valid names are: mean_squared_error, mse"
        ),
        "{e}"
    );
    for name in NAMES.iter().chain(&["huber", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"]) {
        assert!(e.contains(&format!(" {name},")) || e.ends_with(&format!(" {name}")), "{name} missing: {e}");
    }
}
