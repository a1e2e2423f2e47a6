//! `examples/distillation.rs` (keras.io's knowledge distillation, the step written with
//! `forward_train`, `value_and_grad` and `backward_train`): its loss against Keras 3's
//! `Distiller.compute_loss` on committed logits (`tests/fixtures/keras/distillation.txt` from
//! `examples/keras/distillation_reference.py`), the exact gradient of its `#[kiln::loss]`, and the
//! distilled student agreeing with the teacher more often than the same student trained alone.

#[allow(dead_code)]
#[path = "../../examples/distillation.rs"]
mod example;

use kiln::CustomLoss;
use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::testing::{assert_close, check_loss};

const FIXTURE: &str = include_str!("../fixtures/keras/distillation.txt");
const CASES: [&str; 3] = ["typical", "confident_teacher", "confident_student"];

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("no reference line `{key}`"))
}

fn logits(key: &str) -> Array2<f32> {
    let v = reference(key);
    Array2::from_shape_vec((v.len() / 10, 10), v).unwrap()
}

#[test]
fn the_fixture_was_made_with_the_examples_alpha_and_temperature() {
    let header = FIXTURE.lines().next().unwrap();
    assert!(header.contains(&format!("alpha {}", example::ALPHA)), "{header}");
    assert!(header.contains(&format!("temperature {}", example::TEMPERATURE)), "{header}");
}

/// The loss, its two parts and its gradient with respect to the student's logits, as Keras'
/// `Distiller.compute_loss` and `tf.GradientTape` give them.
#[test]
fn the_distillation_loss_is_keras() -> kiln::Result<()> {
    for case in CASES {
        let (t, s) = (logits(&format!("{case}.teacher")), logits(&format!("{case}.student")));
        let labels = Array1::from(reference(&format!("{case}.labels")));
        let (loss, grad) = example::distillation_loss(t.view(), &s, labels.view(), example::ALPHA)?;
        let want = reference(&format!("{case}.loss"))[0];
        assert!((loss - want).abs() <= 1e-5 * want.abs(), "{case}: kiln {loss}, Keras {want}");

        let (hard, _) = example::distillation_loss(t.view(), &s, labels.view(), 1.0)?;
        let (soft, _) = Loss::custom(&example::softened_kl).value_and_grad(&s, &t)?;
        assert_close(&format!("{case}.student_loss"), &[hard], &reference(&format!("{case}.student_loss")), 1e-5);
        let want_soft = reference(&format!("{case}.distillation_loss"));
        assert!((soft - want_soft[0]).abs() <= 1e-5 * want_soft[0], "{case}: KL·T² kiln {soft}, Keras {want_soft:?}");
        assert_close(&format!("{case}.grad"), grad.as_slice().unwrap(), &reference(&format!("{case}.grad")), 1e-5);
    }
    Ok(())
}

/// The softened KL's generated gradient (through both clips and softmaxes) against central
/// differences, on logits where nothing is clipped.
#[test]
fn the_softened_kl_has_its_exact_gradient() {
    let (t, s) = (logits("typical.teacher"), logits("typical.student"));
    let rows = t.nrows();
    let loss = Loss::custom(&example::softened_kl);
    let (t, s) = (t.as_slice().unwrap(), s.as_slice().unwrap());
    check_loss(&loss, s, t, rows, 10, false, 2e-3).unwrap();
    // And one row by hand: d/ds KL(t_T || s_T)·T² = T·(softmax(s/T) − softmax(t/T)).
    let soft = |z: &[f32]| {
        let e: Vec<f64> = z.iter().map(|v| (*v as f64 / 10.0).exp()).collect();
        let total: f64 = e.iter().sum();
        e.into_iter().map(move |v| v / total)
    };
    let mut g = [0.0f32; 10];
    assert!(example::softened_kl.gradient(&s[..10], &t[..10], &mut g));
    let want: Vec<f32> = soft(&s[..10]).zip(soft(&t[..10])).map(|(p, q)| (10.0 * (p - q)) as f32).collect();
    assert_close("d softened_kl / d s", &g, &want, 1e-5);
}

/// Over 5 seeds, the distilled student picks the teacher's class on more held-out digits than
/// the same student trained on the labels alone (acceptance of issue #26).
#[test]
fn the_distilled_student_agrees_with_the_teacher_more_often() -> kiln::Result<()> {
    let (mut alone, mut distilled) = (0.0, 0.0);
    let mut lines = Vec::new();
    for seed in 1..=5 {
        let o = example::run(seed, example::TEACHER_EPOCHS, example::STUDENT_EPOCHS)?;
        alone += o.alone_agreement / 5.0;
        distilled += o.distilled_agreement / 5.0;
        lines.push(format!("{o:?}"));
    }
    assert!(distilled > alone, "agreement: distilled {distilled:.4}, alone {alone:.4}\n{}", lines.join("\n"));
    Ok(())
}
