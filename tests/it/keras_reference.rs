//! Loss values and optimizer steps against figures computed by Keras 3.15 (TensorFlow 2.21) for
//! the same inputs, with Keras' default arguments. The script that printed them is in the comment
//! of each test's data; kiln's own formulas are tested by hand in the runtime's unit tests.

use kiln::{Adafactor, Adagrad, Adam, AdamW, Adamax, Lion, Loss, Nadam, Optimizer, RmsProp, Sgd};

const P: [f32; 6] = [0.2, 0.5, 0.3, 0.7, 0.1, 0.2];
const ONE_HOT: [f32; 6] = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
const REGRESSION: [f32; 6] = [0.1, 0.9, -0.4, 1.5, 0.0, 0.2];
const LOGITS: [f32; 6] = [1.0, -2.0, 0.5, 0.3, 2.2, -1.1];
const BINARY: [f32; 6] = [0.0, 1.0, 1.0, 1.0, 0.0, 1.0];

fn loss(l: Loss, p: &[f32], y: &[f32]) -> f32 {
    l.compute(p, y, 2, 3, None, false)
}

#[test]
fn losses_match_keras() {
    // keras.losses.<Class>()(y_true, y_pred), reduction sum_over_batch_size.
    let p3: Vec<f32> = P.iter().map(|v| v * 3.0).collect();
    let cases = [
        ("mse", loss(Loss::MeanSquaredError, &P, &REGRESSION), 0.218_333_36),
        ("mae", loss(Loss::MeanAbsoluteError, &P, &REGRESSION), 0.350_000_02),
        ("huber", loss(Loss::Huber, &p3, &REGRESSION), 0.235),
        ("bce", loss(Loss::BinaryCrossentropy, &P, &BINARY), 0.698_622_8),
        ("bce logits", loss(Loss::BinaryCrossentropy.with_from_logits(true), &LOGITS, &BINARY), 1.360_173_5),
        ("cce", loss(Loss::CategoricalCrossentropy, &P, &ONE_HOT), 0.524_911),
        ("cce logits", loss(Loss::CategoricalCrossentropy.with_from_logits(true), &LOGITS, &ONE_HOT), 2.787_782_2),
        ("scce", loss(Loss::SparseCategoricalCrossentropy, &P, &[1.0, 0.0]), 0.524_911),
        (
            "scce logits",
            loss(Loss::SparseCategoricalCrossentropy.with_from_logits(true), &LOGITS, &[1.0, 0.0]),
            2.787_782_2,
        ),
    ];
    for (name, got, keras) in cases {
        assert!((got - keras).abs() < 2e-6, "{name}: kiln {got}, Keras {keras}");
    }
}

#[test]
fn optimizer_steps_match_keras_defaults() {
    // Two apply_gradients calls of keras.optimizers.<Class>() with default arguments, from
    // w = [0.5, -1, 2], with gradients [0.1, -0.2, 0.3] then [0.05, 0.4, -0.1].
    let run = |mut o: Box<dyn Optimizer>| {
        let mut w = [0.5f32, -1.0, 2.0];
        for g in [[0.1f32, -0.2, 0.3], [0.05, 0.4, -0.1]] {
            o.begin_step();
            o.update(0, &mut w, &g);
        }
        w
    };
    let cases: [(&str, Box<dyn Optimizer>, [f32; 3]); 5] = [
        ("adam", Box::new(Adam::default()), [0.498_067_9, -0.999_366_1, 1.998_599_9]),
        ("rmsprop", Box::new(RmsProp::default()), [0.495_363_53, -0.999_694_9, 1.997_886_1]),
        ("adagrad", Box::new(Adagrad::default()), [0.499_549_42, -1.000_195_7, 1.999_535_4]),
        (
            "sgd momentum 0.9 nesterov",
            Box::new(Sgd::default().momentum(0.9).nesterov(true)),
            [0.496_34, -1.002_18, 1.993_77],
        ),
        ("adamw", Box::new(AdamW::default()), [0.498_063_9, -0.999_358_1, 1.998_583_9]),
    ];
    for (name, opt, keras) in cases {
        let got = run(opt);
        for (g, k) in got.iter().zip(keras) {
            assert!((g - k).abs() < 2e-6, "{name}: kiln {got:?}, Keras {keras:?}");
        }
    }
}

/// The optimizer under each case name of `examples/keras/optimizers_reference.py`.
fn optimizer(name: &str) -> Box<dyn Optimizer> {
    match name {
        "sgd" => Box::new(Sgd::default()),
        "sgd_momentum" => Box::new(Sgd::new(0.1).momentum(0.9)),
        "sgd_nesterov" => Box::new(Sgd::new(0.1).momentum(0.9).nesterov(true)),
        "adam" => Box::new(Adam::default()),
        "adam_amsgrad" => Box::new(Adam::new(0.01).amsgrad(true)),
        "adamw" => Box::new(AdamW::default()),
        "rmsprop" => Box::new(RmsProp::default()),
        "rmsprop_momentum_centered" => {
            let mut o = RmsProp::new(0.01);
            o.momentum = 0.5;
            o.centered = true;
            Box::new(o)
        }
        "adagrad" => Box::new(Adagrad::default()),
        "nadam" => Box::new(Nadam::default()),
        "adamax" => Box::new(Adamax::default()),
        "lion" => Box::new(Lion::default()),
        "lion_tuned" => Box::new(Lion::new(0.01).betas(0.5, 0.9)),
        "adafactor" => Box::new(Adafactor::default()),
        "adafactor_lr" => {
            let mut o = Adafactor::new(0.5);
            o.clip_threshold = 0.5;
            Box::new(o)
        }
        other => panic!("no optimizer for case {other}"),
    }
}

/// Five steps of every optimizer (and its main variants) against Keras 3's `apply_gradients`,
/// from `tests/fixtures/keras/optimizers.txt`; half-way, the state is saved and restored into a
/// fresh optimizer, so resuming from a checkpoint is exact too.
#[test]
fn every_optimizer_matches_keras_step_by_step() {
    const GRADS: [[f32; 3]; 5] =
        [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2], [0.2, -0.05, -0.4], [0.0, 0.3, 0.1]];
    let mut cases = 0;
    for line in include_str!("../fixtures/keras/optimizers.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("matrix"))
    {
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap();
        let keras: Vec<f32> = fields.map(|v| v.parse().unwrap()).collect();
        assert_eq!(keras.len(), 15, "{name}");
        let mut o = optimizer(name);
        let mut w = [0.5f32, -1.0, 2.0];
        for (step, g) in GRADS.iter().enumerate() {
            if step == 2 {
                let mut resumed = optimizer(name);
                resumed.load_state(o.state());
                o = resumed;
            }
            o.begin_step();
            o.update(0, &mut w, g);
            for (i, (got, want)) in w.iter().zip(&keras[step * 3..step * 3 + 3]).enumerate() {
                assert!((got - want).abs() < 1e-6, "{name} step {} weight {i}: kiln {got}, Keras {want}", step + 1);
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 15);
}

/// Adafactor on a [2, 3] weight, whose second moments it factors into row and column means.
#[test]
fn adafactor_factors_a_matrix_as_keras_does() {
    const GRADS: [[f32; 6]; 5] = [
        [0.1, -0.2, 0.3, 0.05, 0.4, -0.1],
        [-0.3, 0.1, 0.2, 0.2, -0.05, -0.4],
        [0.0, 0.3, 0.1, -0.1, 0.2, 0.05],
        [0.25, -0.15, 0.05, 0.3, -0.2, 0.1],
        [-0.05, 0.1, -0.3, 0.15, 0.0, 0.2],
    ];
    let mut cases = 0;
    for line in include_str!("../fixtures/keras/optimizers.txt").lines().filter(|l| l.starts_with("matrix")) {
        let mut fields = line.split_whitespace().skip(1);
        let name = fields.next().unwrap();
        let keras: Vec<f32> = fields.map(|v| v.parse().unwrap()).collect();
        let mut o = optimizer(name);
        let mut w = [0.5f32, -1.0, 2.0, 0.3, 0.7, -0.4];
        for (step, g) in GRADS.iter().enumerate() {
            o.begin_step();
            o.update_shaped(0, &mut w, g, &[2, 3]);
            for (i, (got, want)) in w.iter().zip(&keras[step * 6..step * 6 + 6]).enumerate() {
                assert!((got - want).abs() < 1e-6, "{name} step {} weight {i}: kiln {got}, Keras {want}", step + 1);
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 2);
}

/// Every activation's value and derivative at fixed points (including 0, where several change
/// branch) against Keras 3 in float32: `examples/keras/activations.py` wrote the CSV.
#[test]
fn activations_and_their_derivatives_match_keras() {
    use kiln::kernels::ActKind;
    let csv = include_str!("../fixtures/keras/activations.csv");
    let mut checked = 0;
    for line in csv.lines().filter(|l| !l.starts_with('#') && !l.starts_with("name")) {
        let f: Vec<&str> = line.split(',').collect();
        let (name, x, y, dy) =
            (f[0], f[1].parse::<f32>().unwrap(), f[2].parse::<f32>().unwrap(), f[3].parse::<f32>().unwrap());
        let (got, dgot) = if name == "leaky_relu_layer" {
            let mut layer = kiln::LeakyReLU::new(0.3);
            let mut s = kiln::Stream::new(0);
            let opts = kiln::BackwardOpts { input_grad: true, ..Default::default() };
            kiln::Layer::forward(&mut layer, &[&[x]], &mut kiln::Ctx::new(1, true, &mut s));
            let y = kiln::Layer::output(&layer)[0];
            kiln::Layer::backward(&mut layer, &[&[x]], &[1.0], &mut kiln::Ctx::new(1, true, &mut s), opts);
            (y, kiln::Layer::input_grad(&layer, 0)[0])
        } else {
            let act = ActKind::ALL[ActKind::NAMES.iter().position(|n| *n == name).expect(name)];
            let y = act.f(x);
            (y, act.df(x, y))
        };
        let close = |a: f32, b: f32| (a - b).abs() <= 2e-6 * (1.0 + b.abs());
        assert!(close(got, y), "{name}({x}): kiln {got}, Keras {y}");
        assert!(close(dgot, dy), "{name}'({x}): kiln {dgot}, Keras {dy}");
        checked += 1;
    }
    assert_eq!(checked, 108, "12 activations at 9 points");
}

/// The optimizers whose constants Keras 3 forms from Python floats (Adam's and Adamax' `1 - β`,
/// RMSprop's `1 - ρ`, in f64 from the decimal, then f32) or in f32 (the bias corrections): with
/// the constants formed the same way, their five steps agree with Keras' to the last bit
/// (kiln once used `1 - 0.999f32`, 0.00099998713: Adam was 1 unit apart after 5 steps, AMSGrad 6,
/// and a whole training run drifted 40 times further from Keras than summation order explains).
#[test]
fn optimizer_constants_are_formed_as_keras_forms_them() {
    const GRADS: [[f32; 3]; 5] =
        [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2], [0.2, -0.05, -0.4], [0.0, 0.3, 0.1]];
    let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
    for line in include_str!("../fixtures/keras/optimizers.txt").lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap();
        if name == "matrix" {
            continue;
        }
        let keras: Vec<f32> = fields.map(|v| v.parse().unwrap()).collect();
        let mut o = optimizer(name);
        let mut w = [0.5f32, -1.0, 2.0];
        let mut worst = 0;
        for (step, g) in GRADS.iter().enumerate() {
            o.begin_step();
            o.update(0, &mut w, g);
            worst = worst.max(w.iter().zip(&keras[step * 3..step * 3 + 3]).map(|(a, b)| ulps(*a, *b)).max().unwrap());
        }
        // (Adafactor with a learning rate of its own was 12 units apart while its root mean
        // squares were summed in f64 and its update scaled after `alpha`: Keras does both in f32,
        // the update divided first.)
        assert_eq!(worst, 0, "{name}: {worst} units in the last place from Keras");
    }
}
