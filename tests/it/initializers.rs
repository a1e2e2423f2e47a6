//! `kernel_initializer` / `bias_initializer`, `kernel_regularizer` / `bias_regularizer` and
//! `kernel_constraint` on Dense and convolution layers, in `sequential!` and `functional!`: Keras'
//! spreads, the penalty in the reported loss and its gradient in the step, and constraints held
//! after every update. Unknown names are compile errors (`tests/ui/sequential/unknown_initializer_*`).

use kiln::ndarray::{Array2, array};
use kiln::prelude::*;

sequential! {
    pub struct Wide: [256] {
        Dense(512, activation = relu, kernel_initializer = "he_normal", bias_initializer = constant(0.5)),
        Dense(4, kernel_initializer = lecun_uniform, bias_initializer = "ones"),
    }
}

sequential! {
    pub struct Convs: [12, 12, 16] {
        Conv2D(64, 3, kernel_initializer = "he_uniform", bias_initializer = "zeros"),
    }
}

sequential! {
    pub struct Steps: [10, 64] {
        Conv1D(8, 3, kernel_initializer = orthogonal(2.0)),
    }
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn initializers_by_name_give_kerass_spread() {
    let m = Wide::new();
    let k = m.get_weight("dense.kernel").unwrap();
    let std = std_of(k.as_slice().unwrap());
    assert!((std / (2.0f64 / 256.0).sqrt() - 1.0).abs() < 0.03, "he_normal std {std}");
    assert!(m.get_weight("dense.bias").unwrap().iter().all(|&b| b == 0.5));
    assert!(m.get_weight("dense_1.bias").unwrap().iter().all(|&b| b == 1.0));
    let k1 = m.get_weight("dense_1.kernel").unwrap();
    let limit = (3.0f32 / 512.0).sqrt();
    assert!(k1.iter().all(|v| v.abs() <= limit), "lecun_uniform stays within √(3 / fan_in)");

    let c = Convs::new();
    let k = c.get_weight("conv2d.kernel").unwrap();
    assert_eq!(k.shape(), &[3, 3, 16, 64]);
    let std = std_of(k.as_slice().unwrap());
    assert!((std / (2.0f64 / 144.0).sqrt() - 1.0).abs() < 0.05, "he_uniform on a conv kernel: std {std}");
    // orthogonal(2.0) on a [3, 64, 8] kernel seen as [192, 8]: columns of norm 2, orthogonal.
    let k = Steps::new().get_weight("conv1d.kernel").unwrap();
    let v = k.as_slice().unwrap();
    for a in 0..8 {
        for b in 0..8 {
            let dot: f64 = (0..192).map(|r| v[r * 8 + a] as f64 * v[r * 8 + b] as f64).sum();
            let want = if a == b { 4.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-4, "({a}, {b}): {dot}");
        }
    }
}

#[test]
fn the_default_initializer_named_changes_nothing() {
    sequential! {
        pub struct Plain: [3] { Dense(2) }
    }
    sequential! {
        pub struct Named: [3] { Dense(2, kernel_initializer = "glorot_uniform") }
    }
    // Named re-draws with the same distribution; both are glorot_uniform within its limit.
    let limit = (6.0f32 / 5.0).sqrt();
    assert!(Named::new().get_weight("dense.kernel").unwrap().iter().all(|v| v.abs() <= limit));
    assert!(Plain::new().get_weight("dense.kernel").unwrap().iter().all(|v| v.abs() <= limit));
}

sequential! {
    pub struct Plain: [2] { Dense(1) }
}

sequential! {
    pub struct Penalised: [2] { Dense(1, kernel_regularizer = l2(0.1), bias_regularizer = l1(0.05)) }
}

fn data() -> (Array2<f32>, Array2<f32>) {
    (array![[0.5f32, -1.0], [1.5, 0.2], [-0.3, 0.8], [2.0, 1.0]], array![[1.0f32], [0.0], [2.0], [-1.0]])
}

fn one_batch() -> Fit<'static> {
    Fit { epochs: 1, batch_size: 4, verbose: 0, shuffle: false, ..Fit::default() }
}

/// Keras adds the penalty to the loss it reports, and its gradient to the step.
#[test]
fn regularization_is_in_the_loss_and_in_the_gradient() -> kiln::Result<()> {
    let (x, y) = data();
    let mut p = Penalised::with_seed(4);
    let mut q = Plain::with_seed(4);
    // Same starting weights (the regularizer draws nothing).
    for (name, _) in q.weights() {
        q.set_weight(&name, &p.get_weight(&name).unwrap())?;
    }
    let (w, b) = (p.get_weight("dense.kernel").unwrap(), p.get_weight("dense.bias").unwrap());
    let penalty =
        0.1 * w.iter().map(|v| (v * v) as f64).sum::<f64>() + 0.05 * b.iter().map(|v| v.abs() as f64).sum::<f64>();
    p.compile("mse", Sgd::new(0.1), &[])?;
    q.compile("mse", Sgd::new(0.1), &[])?;
    let (hp, hq) = (p.fit(&x, &y, one_batch())?, q.fit(&x, &y, one_batch())?);
    let (lp, lq) = (hp.last("loss").unwrap(), hq.last("loss").unwrap());
    assert!((lp - (lq + penalty)).abs() < 1e-6, "regularized {lp}, plain {lq} + penalty {penalty}");
    // The kernel step differs by lr · 2 · 0.1 · w; the bias by lr · 0.05 · sign(b) (b = 0: none).
    let (wp, wq) = (p.get_weight("dense.kernel").unwrap(), q.get_weight("dense.kernel").unwrap());
    for i in 0..2 {
        let want = wq[[i, 0]] - 0.1 * 2.0 * 0.1 * w[[i, 0]];
        assert!((wp[[i, 0]] - want).abs() < 1e-6, "kernel {i}: {} vs {want}", wp[[i, 0]]);
    }
    // evaluate reports the penalty too, as Keras does.
    let (w, b) = (p.get_weight("dense.kernel").unwrap(), p.get_weight("dense.bias").unwrap());
    let penalty =
        0.1 * w.iter().map(|v| (v * v) as f64).sum::<f64>() + 0.05 * b.iter().map(|v| v.abs() as f64).sum::<f64>();
    let pred = p.predict(&x)?;
    let mse = pred.iter().zip(&y).map(|(a, b)| ((a - b) * (a - b)) as f64).sum::<f64>() / 4.0;
    let logged = p.evaluate(&x, &y)?["loss"];
    assert!((logged - (mse + penalty)).abs() < 1e-5, "evaluate {logged}, mse {mse} + penalty {penalty}");
    Ok(())
}

sequential! {
    pub struct Constrained: [2] {
        Dense(8, activation = relu, kernel_constraint = max_norm(0.5)),
        Dense(1, kernel_constraint = "non_neg"),
    }
}

#[test]
fn constraints_hold_after_every_update() -> kiln::Result<()> {
    let (x, y) = data();
    let mut m = Constrained::new();
    m.compile("mse", Sgd::new(0.5), &[])?;
    for _ in 0..5 {
        m.fit(&x, &y, Fit { batch_size: 2, ..one_batch() })?;
        let k = m.get_weight("dense.kernel").unwrap();
        for u in 0..8 {
            let norm = (0..2).map(|i| (k[[i, u]] as f64).powi(2)).sum::<f64>().sqrt();
            assert!(norm <= 0.5 + 1e-6, "unit {u}: incoming norm {norm}");
        }
        assert!(m.get_weight("dense_1.kernel").unwrap().iter().all(|&v| v >= 0.0));
    }
    Ok(())
}

functional! {
    pub struct Branches {
        x = Input([4]);
        h = Dense(16, activation = relu, kernel_initializer = "he_normal", kernel_regularizer = "l2")(x);
        y = Dense(1, bias_initializer = constant(-0.25))(h);
        Model(x, y)
    }
}

#[test]
fn functional_models_take_the_same_arguments() -> kiln::Result<()> {
    let mut m = Branches::new();
    assert!(m.get_weight("dense_1.bias").unwrap().iter().all(|&b| b == -0.25));
    m.compile("mse", "sgd", &[])?;
    let x = Array2::from_shape_fn((8, 4), |(i, j)| (i + j) as f32 / 10.0);
    let y = Array2::<f32>::zeros((8, 1));
    let k = m.get_weight("dense.kernel").unwrap();
    let penalty = 0.01 * k.iter().map(|v| (v * v) as f64).sum::<f64>();
    let p = m.predict(&x)?;
    let mse = p.iter().map(|v| (v * v) as f64).sum::<f64>() / 8.0;
    let logs = m.evaluate(&x, &y)?;
    assert!((logs["loss"] - (mse + penalty)).abs() < 1e-5, "{} vs {}", logs["loss"], mse + penalty);
    Ok(())
}

#[kiln::model]
pub struct Sub {
    #[layer(kernel_initializer = "he_normal", bias_initializer = constant(0.25), kernel_regularizer = l2(0.5))]
    hidden: Dense<256, 512, Relu>,
    #[layer(kernel_constraint = non_neg)]
    out: Dense<512, 1, Linear>,
}

#[kiln::call]
impl Sub {
    fn call(&self, x: Input<256>) -> Output<1> {
        self.out(self.hidden(x))
    }
}

/// `#[layer(..)]` on a `#[kiln::model]` field takes the same options.
#[test]
fn subclassed_fields_take_the_same_options() -> kiln::Result<()> {
    let mut m = Sub::new();
    let k = m.get_weight("hidden.kernel").unwrap();
    let std = std_of(k.as_slice().unwrap());
    assert!((std / (2.0f64 / 256.0).sqrt() - 1.0).abs() < 0.03, "he_normal std {std}");
    assert!(m.get_weight("hidden.bias").unwrap().iter().all(|&b| b == 0.25));
    assert!(m.get_weight("out.kernel").unwrap().iter().all(|&v| v >= 0.0), "non_neg holds from the start");
    m.compile("mse", Sgd::new(0.0), &[])?;
    let x = Array2::from_shape_fn((4, 256), |(i, j)| ((i + j) % 7) as f32 / 7.0);
    let y = Array2::<f32>::zeros((4, 1));
    let p = m.predict(&x)?;
    let mse = p.iter().map(|v| (v * v) as f64).sum::<f64>() / 4.0;
    let penalty = 0.5 * k.iter().map(|v| (v * v) as f64).sum::<f64>();
    let loss = m.evaluate(&x, &y)?["loss"];
    assert!((loss - (mse + penalty)).abs() < 1e-4 * loss, "{loss} vs {}", mse + penalty);
    Ok(())
}

sequential! {
    pub struct Active: [2] {
        Dense(3, activation = tanh, activity_regularizer = l2(0.3)),
        Dense(1, activity_regularizer = l1(0.2)),
    }
}

/// Keras 3's activity regularization: `penalty(output) / batch size` added to the loss, and its
/// gradient to the step — checked against central differences of the reported loss.
#[test]
fn activity_regularization_is_in_the_loss_and_the_step() -> kiln::Result<()> {
    let (x, y) = data();
    let mut m = Active::with_seed(6);
    m.compile("mse", Sgd::new(0.1), &[])?;
    let loss_at = |m: &mut Active| -> kiln::Result<f64> {
        Ok(m.evaluate_with(&x, &y, kiln::Evaluate { batch_size: 4, verbose: 0 })?["loss"])
    };
    // The reported loss by hand.
    let h = m.predict(&x)?;
    let mse = h.iter().zip(&y).map(|(p, t)| ((p - t) * (p - t)) as f64).sum::<f64>() / 4.0;
    let hidden = {
        let k = m.get_weight("dense.kernel").unwrap();
        let b = m.get_weight("dense.bias").unwrap();
        let mut s = 0.0f64;
        for r in 0..4 {
            for u in 0..3 {
                let z = x[[r, 0]] * k[[0, u]] + x[[r, 1]] * k[[1, u]] + b[u];
                s += (z.tanh() as f64).powi(2);
            }
        }
        s
    };
    let want = mse + 0.3 * hidden / 4.0 + 0.2 * h.iter().map(|v| v.abs() as f64).sum::<f64>() / 4.0;
    let got = loss_at(&mut m)?;
    assert!((got - want).abs() < 1e-5, "reported {got}, by hand {want}");

    // One SGD step moves each weight by lr × d(loss)/dw, the derivative taken numerically.
    let mut numeric = Vec::new();
    for (name, p) in m.weights() {
        let mut g = Vec::new();
        for i in 0..p.value.len() {
            let mut probe = m.clone();
            let h = 1e-2f32;
            let mut v = p.value.clone();
            v[i] += h;
            probe.set_weight(&name, &kiln::ndarray::ArrayD::from_shape_vec(p.shape().to_vec(), v.clone()).unwrap())?;
            let up = loss_at(&mut probe)?;
            v[i] -= 2.0 * h;
            probe.set_weight(&name, &kiln::ndarray::ArrayD::from_shape_vec(p.shape().to_vec(), v).unwrap())?;
            let down = loss_at(&mut probe)?;
            g.push((up - down) / (2.0 * h as f64));
        }
        numeric.push((name, p.value.clone(), g));
    }
    m.fit(&x, &y, one_batch())?;
    for (name, before, g) in numeric {
        let after = m.get_weight(&name).unwrap();
        for (i, (b, g)) in before.iter().zip(&g).enumerate() {
            let want = *b as f64 - 0.1 * g;
            let got = after.as_slice().unwrap()[i] as f64;
            assert!((got - want).abs() < 2e-4, "{name}[{i}]: {got} vs {want}");
        }
    }
    Ok(())
}

sequential! {
    pub struct ActiveConv: [6, 2] {
        Conv1D(3, 2, activation = tanh, activity_regularizer = l2(0.2)),
        Flatten,
        Dense(1),
    }
}

/// The same on a convolution: one SGD step equals lr × the numerical derivative of the loss (l2:
/// l1 has a kink at 0 that a finite difference straddles).
#[test]
fn activity_regularization_on_a_convolution() -> kiln::Result<()> {
    let x = kiln::ndarray::Array3::from_shape_fn((3, 6, 2), |(i, j, k)| ((i * 5 + j * 3 + k) % 7) as f32 / 7.0 - 0.4);
    let y = Array2::from_shape_fn((3, 1), |(i, _)| i as f32 - 1.0);
    let mut m = ActiveConv::with_seed(2);
    m.compile("mse", Sgd::new(0.1), &[])?;
    let loss_at = |m: &mut ActiveConv| -> kiln::Result<f64> {
        Ok(m.evaluate_with(&x, &y, kiln::Evaluate { batch_size: 3, verbose: 0 })?["loss"])
    };
    let p = m.predict(&x)?;
    let mse = p.iter().zip(&y).map(|(p, t)| ((p - t) * (p - t)) as f64).sum::<f64>() / 3.0;
    assert!(loss_at(&mut m)? > mse + 1e-4, "the penalty is in the loss");
    let mut numeric = Vec::new();
    for (name, p) in m.weights() {
        let mut g = Vec::new();
        for i in 0..p.value.len() {
            let mut probe = m.clone();
            let mut v = p.value.clone();
            v[i] += 1e-2;
            probe.set_weight(&name, &kiln::ndarray::ArrayD::from_shape_vec(p.shape().to_vec(), v.clone()).unwrap())?;
            let up = loss_at(&mut probe)?;
            v[i] -= 2e-2;
            probe.set_weight(&name, &kiln::ndarray::ArrayD::from_shape_vec(p.shape().to_vec(), v).unwrap())?;
            g.push((up - loss_at(&mut probe)?) / 2e-2);
        }
        numeric.push((name, p.value.clone(), g));
    }
    m.fit(&x, &y, Fit { epochs: 1, batch_size: 3, verbose: 0, shuffle: false, ..Fit::default() })?;
    for (name, before, g) in numeric {
        let after = m.get_weight(&name).unwrap();
        for (i, (b, g)) in before.iter().zip(&g).enumerate() {
            let (got, want) = (after.as_slice().unwrap()[i] as f64, *b as f64 - 0.1 * g);
            assert!((got - want).abs() < 3e-4, "{name}[{i}]: {got} vs {want}");
        }
    }
    Ok(())
}

sequential! {
    pub struct Upsampler: [4, 4, 2] {
        Conv2DTranspose(3, 2, strides = 2, kernel_initializer = "ones", bias_initializer = constant(0.5), kernel_constraint = non_neg),
    }
}

#[test]
fn transposed_convolutions_take_the_weight_options() {
    let m = Upsampler::new();
    assert!(m.get_weight("conv2d_transpose.kernel").unwrap().iter().all(|&v| v == 1.0));
    assert!(m.get_weight("conv2d_transpose.bias").unwrap().iter().all(|&v| v == 0.5));
}
