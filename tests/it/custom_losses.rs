//! Losses users write (`CustomLoss`): with their own gradient, or with one kiln derives; in
//! `compile`/`fit`, in a custom loop's `loss_and_grads`, and as a metric.

use kiln::ndarray::Array2;
use kiln::prelude::*;
use kiln::{CustomLoss, Metric};

/// Mean squared error written by hand, with its gradient.
#[derive(Debug)]
struct MySquares;

impl CustomLoss for MySquares {
    fn name(&self) -> &'static str {
        "my_squares"
    }
    fn value(&self, p: &[f32], y: &[f32]) -> f32 {
        p.iter().zip(y).map(|(p, y)| (p - y) * (p - y)).sum::<f32>() / p.len() as f32
    }
    fn gradient(&self, p: &[f32], y: &[f32], g: &mut [f32]) -> bool {
        let width = p.len() as f32;
        for ((g, p), y) in g.iter_mut().zip(p).zip(y) {
            *g = 2.0 * (p - y) / width;
        }
        true
    }
}

/// Squared error that counts under-prediction 4 times; no gradient given, the derived one
/// opted into.
#[derive(Debug)]
struct Asymmetric;

impl CustomLoss for Asymmetric {
    fn name(&self) -> &'static str {
        "asymmetric"
    }
    fn approximate_gradient(&self) -> bool {
        true
    }
    fn value(&self, p: &[f32], y: &[f32]) -> f32 {
        p.iter().zip(y).map(|(p, y)| if p < y { 4.0 * (y - p).powi(2) } else { (y - p).powi(2) }).sum::<f32>()
            / p.len() as f32
    }
}

static MY_SQUARES: MySquares = MySquares;
static ASYMMETRIC: Asymmetric = Asymmetric;

sequential! {
    pub struct Net: [3] {
        Dense(8, activation = tanh),
        Dense(2),
    }
}

fn data() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((24, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
    let y = Array2::from_shape_fn((24, 2), |(i, j)| ((i + 2 * j) % 5) as f32 / 5.0);
    (x, y)
}

fn trained(loss: Loss) -> kiln::Result<(f64, Vec<Vec<f32>>)> {
    let (x, y) = data();
    let mut m = Net::with_seed(3);
    m.compile(loss, Sgd::new(0.1), &[])?;
    let h = m.fit(&x, &y, Fit { epochs: 3, batch_size: 8, verbose: 0, ..Fit::default() })?;
    Ok((h.last("loss").unwrap(), m.weights().into_iter().map(|(_, p)| p.value).collect()))
}

#[test]
fn a_custom_loss_with_its_gradient_trains_as_the_built_in_one() -> kiln::Result<()> {
    let (custom, wc) = trained(Loss::custom(&MY_SQUARES))?;
    let (builtin, wb) = trained(Loss::MeanSquaredError)?;
    assert!((custom - builtin).abs() < 1e-6, "{custom} vs {builtin}");
    for (a, b) in wc.iter().flatten().zip(wb.iter().flatten()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    Ok(())
}

/// Without a gradient, kiln's central differences agree with the analytic gradient.
#[test]
fn the_derived_gradient_matches_the_analytic_one() -> kiln::Result<()> {
    let (x, y) = data();
    let mut m = Net::with_seed(3);
    let (_, analytic) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError)?;
    /// MySquares without its gradient.
    #[derive(Debug)]
    struct ValueOnly;
    impl CustomLoss for ValueOnly {
        fn name(&self) -> &'static str {
            "value_only"
        }
        fn value(&self, p: &[f32], y: &[f32]) -> f32 {
            MY_SQUARES.value(p, y)
        }
        fn approximate_gradient(&self) -> bool {
            true
        }
    }
    static VALUE_ONLY: ValueOnly = ValueOnly;
    let (l, derived) = m.loss_and_grads(&x, &y, &Loss::custom(&VALUE_ONLY))?;
    assert!(l > 0.0);
    for ((name, a), (_, d)) in analytic.iter().zip(derived.iter()) {
        for (a, d) in a.iter().zip(d) {
            assert!((a - d).abs() < 1e-3 * a.abs().max(1e-2), "{name}: analytic {a}, derived {d}");
        }
    }
    Ok(())
}

/// The asymmetric loss pushes predictions up: after training, fewer targets are under-predicted
/// than with mean squared error. Logged as a metric under its name.
#[test]
fn an_asymmetric_loss_changes_what_is_learned() -> kiln::Result<()> {
    let x = Array2::from_shape_fn((64, 3), |(i, j)| ((i * 5 + j) % 13) as f32 / 13.0);
    // Noisy targets: no model fits them exactly, so the loss's asymmetry decides the bias.
    let y = Array2::from_shape_fn((64, 2), |(i, j)| ((i * 37 + j * 11) % 17) as f32 / 17.0);
    let under = |loss: Loss| -> kiln::Result<(usize, f64)> {
        let mut m = Net::with_seed(8);
        m.compile_with(Compile::new(Adam::new(0.01)).loss(loss).metric(Metric::custom(&ASYMMETRIC)))?;
        let h = m.fit(&x, &y, Fit { epochs: 60, batch_size: 16, verbose: 0, ..Fit::default() })?;
        let p = m.predict(&x)?;
        Ok((p.iter().zip(&y).filter(|(p, y)| p < y).count(), h.last("asymmetric").unwrap()))
    };
    let (with_asym, logged) = under(Loss::custom(&ASYMMETRIC))?;
    let (with_mse, _) = under(Loss::MeanSquaredError)?;
    assert!(with_asym < with_mse, "under-predictions: asymmetric {with_asym}, mse {with_mse}");
    assert!(logged > 0.0);
    Ok(())
}

#[test]
fn custom_losses_compare_by_identity() {
    assert_eq!(Loss::custom(&MY_SQUARES), Loss::custom(&MY_SQUARES));
    assert_ne!(Loss::custom(&MY_SQUARES), Loss::custom(&ASYMMETRIC));
    assert_eq!(Loss::custom(&ASYMMETRIC).name(), "asymmetric");
}

/// Gradients with respect to the inputs (saliency) against central differences of the loss, and
/// with a custom loss; the weights' gradients are left as they were.
#[test]
fn input_gradients_match_finite_differences() -> kiln::Result<()> {
    let (x, y) = data();
    let (x, y) = (x.slice(kiln::ndarray::s![..4, ..]).to_owned(), y.slice(kiln::ndarray::s![..4, ..]).to_owned());
    let mut m = Net::with_seed(5);
    m.compile("mse", "sgd", &[])?;
    let before: Vec<Vec<f32>> = m.weights().into_iter().map(|(_, p)| p.grad).collect();
    for loss in [Loss::MeanSquaredError, Loss::custom(&ASYMMETRIC)] {
        let g = m.input_gradients(&x, &y, &loss)?;
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].shape(), &[4, 3]);
        let eval = |x: &Array2<f32>| -> kiln::Result<f64> {
            let mut probe = Net::with_seed(5);
            probe.compile(loss, "sgd", &[])?;
            Ok(probe.evaluate_with(x, &y, kiln::Evaluate { batch_size: 4, verbose: 0 })?["loss"])
        };
        for i in 0..4 {
            for j in 0..3 {
                let h = 1e-2f32;
                let (mut up, mut down) = (x.clone(), x.clone());
                up[[i, j]] += h;
                down[[i, j]] -= h;
                let fd = (eval(&up)? - eval(&down)?) / (2.0 * h as f64);
                let got = g[0][[i, j]] as f64;
                assert!((got - fd).abs() < 2e-3 * fd.abs().max(0.05), "{} [{i}, {j}]: {got} vs {fd}", loss.name());
            }
        }
    }
    let after: Vec<Vec<f32>> = m.weights().into_iter().map(|(_, p)| p.grad).collect();
    assert_eq!(before, after);
    Ok(())
}

/// Gradients built from zero and combined: the mean of two half-batch gradients is the
/// full-batch gradient (gradient accumulation), and it applies like one.
#[test]
fn gradients_are_built_and_combined() -> kiln::Result<()> {
    let (x, y) = data();
    let mut m = Net::with_seed(2);
    let mut acc = kiln::Gradients::zeros_like(&m);
    assert_eq!(acc.global_norm(), 0.0);
    for half in [0..12, 12..24] {
        let (xs, ys) = (x.slice(kiln::ndarray::s![half.clone(), ..]), y.slice(kiln::ndarray::s![half, ..]));
        let (_, g) = m.loss_and_grads(&xs, &ys, &Loss::MeanSquaredError)?;
        acc.add(&g)?;
    }
    acc.scale(0.5);
    let (_, full) = m.loss_and_grads(&x, &y, &Loss::MeanSquaredError)?;
    for ((name, a), (_, f)) in acc.iter().zip(full.iter()) {
        for (a, f) in a.iter().zip(f) {
            assert!((a - f).abs() < 1e-6, "{name}: {a} vs {f}");
        }
    }
    let mut opt = Sgd::new(0.1);
    opt.apply(&mut m, &acc)?;
    Ok(())
}

/// A loss with a value and no gradient, not opted into the approximate one.
#[derive(Debug)]
struct NoGradient;

impl CustomLoss for NoGradient {
    fn name(&self) -> &'static str {
        "no_gradient"
    }
    fn value(&self, p: &[f32], y: &[f32]) -> f32 {
        MY_SQUARES.value(p, y)
    }
}

static NO_GRADIENT: NoGradient = NoGradient;

#[test]
fn a_loss_without_a_gradient_is_an_error_naming_the_ways_to_give_one() {
    let (x, y) = data();
    let mut m = Net::with_seed(3);
    let e = m.compile(Loss::custom(&NO_GRADIENT), "adam", &[]).unwrap_err().to_string();
    assert!(e.contains("no_gradient") && e.contains("#[kiln::loss]") && e.contains("approximate_gradient"), "{e}");
    let e = m.loss_and_grads(&x, &y, &Loss::custom(&NO_GRADIENT)).unwrap_err().to_string();
    assert!(e.contains("gives no gradient"), "{e}");
}
