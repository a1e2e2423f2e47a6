//! Learning-rate schedules: every Keras schedule's rate at steps 0..=40 against Keras 3 (from
//! `examples/keras/schedules_reference.py`), a schedule driving an optimizer in `fit`, a
//! checkpoint that resumes it exactly, and NaN parameters refused at `compile`.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::{
    CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay, LearningRateSchedule, PiecewiseConstantDecay,
    PolynomialDecay, Scheduled,
};
use rand::{Rng, SeedableRng};

fn keras(name: &str) -> Vec<f32> {
    let line = include_str!("../fixtures/keras/schedules.txt")
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing from the fixture"));
    line.split(' ').skip(1).map(|v| v.parse::<f64>().unwrap() as f32).collect()
}

#[test]
fn schedules_match_keras_step_by_step() {
    let cases: Vec<(&str, Box<dyn LearningRateSchedule>)> = vec![
        ("exponential", Box::new(ExponentialDecay::new(0.1, 10, 0.5))),
        ("exponential_staircase", Box::new(ExponentialDecay::new(0.1, 10, 0.5).staircase(true))),
        ("piecewise", Box::new(PiecewiseConstantDecay::new(&[5, 15, 30], &[0.1, 0.05, 0.01, 0.001]))),
        ("polynomial", Box::new(PolynomialDecay::new(0.1, 20).end_learning_rate(0.001).power(2.0))),
        ("polynomial_cycle", Box::new(PolynomialDecay::new(0.1, 15).end_learning_rate(0.01).cycle(true))),
        ("inverse_time", Box::new(InverseTimeDecay::new(0.1, 5, 0.5))),
        ("inverse_time_staircase", Box::new(InverseTimeDecay::new(0.1, 5, 0.5).staircase(true))),
        ("cosine", Box::new(CosineDecay::new(0.1, 30).alpha(0.1))),
        ("cosine_warmup", Box::new(CosineDecay::new(0.0, 25).warmup(0.1, 10))),
        ("cosine_restarts", Box::new(CosineDecayRestarts::new(0.1, 6).t_mul(2.0).m_mul(0.8).alpha(0.05))),
        ("cosine_restarts_t1", Box::new(CosineDecayRestarts::new(0.1, 7).t_mul(1.0).m_mul(0.5))),
    ];
    for (name, schedule) in cases {
        schedule.check().unwrap();
        for (step, want) in keras(name).into_iter().enumerate() {
            let got = schedule.at(step as u64);
            // Keras computes in float32: agreement to its rounding.
            assert!((got - want).abs() <= 1e-5 * want.abs() + 1e-8, "{name} at step {step}: kiln {got}, Keras {want}");
        }
    }
}

sequential! {
    pub struct Net: [4] {
        Dense(8, activation = tanh),
        Dense(2, activation = softmax),
    }
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x = Array2::from_shape_fn((64, 4), |_| rng.random_range(-1.0..1.0));
    let y = Array1::from_shape_fn(64, |i| (x[[i, 0]] > 0.0) as u8 as f32);
    (x, y)
}

fn scheduled() -> Scheduled<Adam> {
    Scheduled::new(Adam::default(), CosineDecay::new(0.01, 20).warmup(0.05, 4))
}

#[test]
fn a_schedule_drives_fit_and_resumes_from_a_checkpoint() {
    let (x, y) = data();
    let opts = |epochs| Fit { epochs, batch_size: 16, verbose: 0, ..Fit::default() };
    let mut straight = Net::with_seed(1);
    straight.compile("sparse_categorical_crossentropy", scheduled(), &[]).unwrap();
    straight.fit(&x, &y, opts(4)).unwrap();
    // 16 steps taken: the rate of the last one is the schedule's at step 15.
    let opt = straight.train_state().optimizer().unwrap();
    assert_eq!(opt.iterations(), 16);
    assert_eq!(opt.learning_rate(), CosineDecay::new(0.01, 20).warmup(0.05, 4).at(15));

    let path = std::env::temp_dir().join(format!("kiln-schedule-{}.safetensors", std::process::id()));
    let mut first = Net::with_seed(1);
    first.compile("sparse_categorical_crossentropy", scheduled(), &[]).unwrap();
    first.fit(&x, &y, opts(2)).unwrap();
    first.save_checkpoint(&path).unwrap();
    let mut resumed = Net::with_seed(1);
    resumed.compile("sparse_categorical_crossentropy", scheduled(), &[]).unwrap();
    resumed.load_checkpoint(&path).unwrap();
    resumed.fit(&x, &y, opts(2)).unwrap();
    let w = |m: &Net| m.weights().into_iter().map(|(_, p)| p.value).collect::<Vec<_>>();
    assert_eq!(w(&resumed), w(&straight), "the schedule resumes where it was");
}

#[test]
fn schedules_with_impossible_parameters_are_refused_at_compile() {
    let mut m = Net::new();
    let e = m.compile("mse", Scheduled::new(Sgd::default(), ExponentialDecay::new(f64::NAN, 10, 0.5)), &[]);
    assert!(e.unwrap_err().to_string().contains("initial_learning_rate must be finite"));
    let e = m.compile(
        "mse",
        Scheduled::new(Sgd::default(), PiecewiseConstantDecay::new(&[10, 5], &[0.1, 0.01, 0.001])),
        &[],
    );
    assert!(e.unwrap_err().to_string().contains("increasing boundaries"));
    let e = m.compile("mse", Scheduled::new(Sgd::default(), CosineDecay::new(0.1, 0)), &[]);
    assert!(e.unwrap_err().to_string().contains("decay_steps must be finite and > 0"));
}
