//! Subclassed models (`#[kiln::model]` + `#[kiln::call]`): gradients through a residual body,
//! nesting, arrays of layers, freezing, agreement with the other two styles, and custom training.

use kiln::Layer;
use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::testing::{check_model, copy_weights};
use rand::{Rng, SeedableRng};

#[kiln::model]
pub struct Residual {
    inp: Dense<6, 8, Tanh>,
    block: Dense<8, 8, Sigmoid>,
    out: Dense<16, 3, Softmax>,
}

#[kiln::call]
impl Residual {
    fn call(&self, x: Input<6>) -> Output<3> {
        let h = self.inp(x);
        let r = h + self.block(h);
        let s = swish(r) * h - r;
        let m = average([s, maximum([h, r]), minimum([h, s])]);
        self.out(concatenate([m, gelu(r)]))
    }
}

#[kiln::model]
pub struct Block {
    dense: Dense<8, 8, Elu>,
}

#[kiln::call]
impl Block {
    fn call(&self, x: Input<8>) -> Output<8> {
        let h = self.dense(x);
        return h + x;
    }
}

sequential! {
    /// A Sequential model used as a layer of a subclassed one.
    pub struct Encoder: [4] {
        Dense(8, activation = tanh),
    }
}

#[kiln::model]
pub struct Deep {
    enc: Encoder,
    blocks: [Block; 3],
    #[layer(len = 2)]
    extra: Vec<Dense<8, 8, Relu>>,
    head: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl Deep {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h = self.enc(x);
        let h = self.blocks[0](h);
        let h = self.blocks[1](h) + self.extra[0](h);
        let h = self.blocks[2](self.extra[1](h));
        self.head(h)
    }
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

fn quiet() -> Fit<'static> {
    Fit { verbose: 0, ..Fit::default() }
}

#[test]
fn gradient_check_through_a_residual_call() {
    let mut m = Residual::with_seed(2);
    let x = random(3, 6, 1);
    check_model(&mut m, &[x.as_slice().unwrap()], 3, 24, 3e-3).unwrap();
}

#[test]
fn nested_models_arrays_and_vecs() {
    let mut m = Deep::with_seed(4);
    let names: Vec<String> = m.weights().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "enc.dense.kernel",
            "enc.dense.bias",
            "blocks.0.dense.kernel",
            "blocks.0.dense.bias",
            "blocks.1.dense.kernel",
            "blocks.1.dense.bias",
            "blocks.2.dense.kernel",
            "blocks.2.dense.bias",
            "extra.0.kernel",
            "extra.0.bias",
            "extra.1.kernel",
            "extra.1.bias",
            "head.kernel",
            "head.bias"
        ]
    );
    assert_eq!(m.count_params(), 40 + 3 * 72 + 2 * 72 + 18);
    let x = random(3, 4, 2);
    // Biases off zero keep the relu units away from their kink.
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 2 == 0 { 0.3 } else { -0.2 });
        }
    });
    check_model(&mut m, &[x.as_slice().unwrap()], 3, 16, 3e-3).unwrap();
    // And it trains end to end.
    let y = Array1::from_shape_fn(64, |i| (i % 2) as f32);
    let x = random(64, 4, 3);
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 3, ..quiet() }).unwrap();
    assert!(h.last("loss").unwrap() < h.get("loss").unwrap()[0]);
    assert!(m.summary_string().contains("blocks (Block)"));
}

#[kiln::model]
pub struct Frozen {
    #[layer(trainable = false)]
    base: Dense<10, 64, Relu>,
    head: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl Frozen {
    fn call(&self, x: Input<10>) -> Output<10> {
        self.head(self.base(x))
    }
}

#[test]
fn frozen_fields_are_bit_identical_after_fit() {
    let mut m = Frozen::new();
    let before = m.base.kernel.value.clone();
    let head_before = m.head.kernel.value.clone();
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.fit(&random(32, 10, 1), &Array1::from_shape_fn(32, |i| (i % 10) as f32), Fit { epochs: 2, ..quiet() }).unwrap();
    assert_eq!(m.base.kernel.value, before);
    assert_ne!(m.head.kernel.value, head_before);
    assert!(m.summary_string().contains("Non-trainable params: 704 (2.75 KB)"), "{}", m.summary_string());
    // Unfreezing at run time lets it train.
    m.base.set_trainable(true);
    m.fit(&random(32, 10, 1), &Array1::from_shape_fn(32, |i| (i % 10) as f32), quiet()).unwrap();
    assert_ne!(m.base.kernel.value, before);
}

#[kiln::model]
pub struct MyModel {
    dense1: Dense<10, 64, Relu>,
    dense2: Dense<64, 10, Softmax>,
}

#[kiln::call]
impl MyModel {
    fn call(&self, x: Input<10>) -> Output<10> {
        let x = self.dense1(x);
        self.dense2(x)
    }
}

sequential! {
    pub struct SeqModel: [10] {
        Dense(64, activation = relu),
        Dense(10, activation = softmax),
    }
}

functional! {
    pub struct FunModel {
        x = Input([10]);
        h = Dense(64, activation = relu)(x);
        y = Dense(10, activation = softmax)(h);
        Model(x, y)
    }
}

#[test]
fn three_styles_give_identical_outputs_and_gradients() {
    let d = MyModel::with_seed(1);
    let (mut s, mut f) = (SeqModel::with_seed(2), FunModel::with_seed(3));
    copy_weights(&d, &mut s);
    copy_weights(&d, &mut f);
    let mut d = d;
    let x = random(7, 10, 5);
    let p = d.predict(&x).unwrap();
    assert_eq!(p, s.predict(&x).unwrap());
    assert_eq!(p, f.predict(&x).unwrap());
    let y = Array1::from_shape_fn(7, |i| (i % 10) as f32);
    let loss = Loss::SparseCategoricalCrossentropy;
    let (ld, gd) = d.loss_and_grads(&x, &y, &loss).unwrap();
    let (ls, gs) = s.loss_and_grads(&x, &y, &loss).unwrap();
    let (lf, gf) = f.loss_and_grads(&x, &y, &loss).unwrap();
    assert_eq!((ld, ld), (ls, lf));
    let values = |g: &Gradients| g.iter().map(|(_, v)| v.to_vec()).collect::<Vec<_>>();
    assert_eq!(values(&gd), values(&gs));
    assert_eq!(values(&gd), values(&gf));
}

#[test]
fn custom_loop_equals_fit_and_clips() {
    let x = random(64, 10, 7);
    let y = Array1::from_shape_fn(64, |i| (i % 10) as f32);
    // A custom loop without clipping takes the same steps as fit without shuffling.
    let mut a = MyModel::with_seed(9);
    let mut opt = Adam::default();
    for (xb, yb) in batches(&x, &y, 16).unwrap() {
        let (_, grads) = a.loss_and_grads(&xb, &yb, &Loss::SparseCategoricalCrossentropy).unwrap();
        opt.apply(&mut a, &grads).unwrap();
    }
    let mut b = MyModel::with_seed(9);
    b.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    b.fit(&x, &y, Fit { batch_size: 16, shuffle: false, ..quiet() }).unwrap();
    let bits = |m: &MyModel| m.weights().into_iter().flat_map(|(_, p)| p.value).map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));

    let (_, mut g) = a.loss_and_grads(&x, &y, &Loss::SparseCategoricalCrossentropy).unwrap();
    let norm = g.global_norm();
    g.clip_by_global_norm(norm / 2.0).unwrap();
    assert!((g.global_norm() - norm / 2.0).abs() < 1e-4 * norm);
    g.clip_by_value(-1e-3, 1e-3).unwrap();
    assert!(g.iter().all(|(_, v)| v.iter().all(|x| x.abs() <= 1e-3)));
    g.clip_by_norm(1e-3).unwrap();
    assert!(g.iter().all(|(_, v)| v.iter().map(|x| x * x).sum::<f32>().sqrt() <= 1e-3 * 1.0001));
    let mut twice = g.clone();
    twice.add(&g).unwrap();
    assert_eq!(twice.get("dense1.kernel").unwrap()[0], 2.0 * g.get("dense1.kernel").unwrap()[0]);
    // Gradients of another model are refused.
    let (_, other) = Residual::new()
        .loss_and_grads(&random(2, 6, 1), &Array1::from_vec(vec![0.0, 1.0]), &Loss::SparseCategoricalCrossentropy)
        .unwrap();
    assert!(opt.apply(&mut a, &other).unwrap_err().to_string().contains("not those of MyModel's parameters"));
}

#[test]
fn fit_with_a_custom_train_step_keeps_history() {
    let x = random(128, 10, 3);
    let y = Array1::from_iter(x.rows().into_iter().map(|r| if r[0] > r[1] { 1.0 } else { 0.0 }));
    let mut m = MyModel::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let mut steps = 0;
    let h = m
        .fit_with(&x, &y, Fit { epochs: 5, validation_split: 0.25, ..quiet() }, |model, opt, batch| {
            steps += 1;
            let labels = batch.y[0].column(0);
            let (_, mut grads) = model.loss_and_grads(&batch.x[0], &labels, &Loss::SparseCategoricalCrossentropy)?;
            grads.clip_by_global_norm(1.0)?;
            opt.apply(model, &grads)
        })
        .unwrap();
    assert_eq!(steps, 5 * 3);
    assert_eq!(h.keys().collect::<Vec<_>>(), ["accuracy", "loss", "val_accuracy", "val_loss"]);
    assert!(h.last("loss").unwrap() < h.get("loss").unwrap()[0]);

    // The same step with callbacks: one that stops training after the second epoch.
    let mut stop = kiln::LambdaCallback::on_epoch_end(|epoch, _: &kiln::Logs, model: &mut dyn kiln::Trainee| {
        if epoch == 1 {
            model.stop_training();
        }
        Ok(())
    });
    let h = m
        .fit_with_step_and_callbacks(
            &x,
            &y,
            Fit { epochs: 5, ..quiet() },
            |model, opt, batch| {
                let labels = batch.y[0].column(0);
                let (_, grads) = model.loss_and_grads(&batch.x[0], &labels, &Loss::SparseCategoricalCrossentropy)?;
                opt.apply(model, &grads)
            },
            &mut [&mut stop],
        )
        .unwrap();
    assert_eq!(h.epoch, [0, 1]);
}

#[test]
fn summary_expands_nested_models() {
    let m = Deep::new();
    let flat = m.summary_string();
    let expanded = m.summary_expanded();
    assert!(!flat.contains("└ dense (Dense)"));
    assert!(expanded.contains("│ blocks (Block)"), "{expanded}");
    assert!(expanded.contains("│ └ dense (Dense)"), "{expanded}");
    assert!(expanded.contains("│ └ dense (Dense)                 │ (None, 8)"), "{expanded}");
    // The totals are the model's, whatever is listed.
    assert_eq!(flat.lines().last(), expanded.lines().last());
    // A Vec field's row counts all its layers.
    assert!(flat.contains("│ extra (Dense)                   │ (None, 8)              │           144 │"), "{flat}");
    let rows: usize = Deep::LAYERS.iter().map(|l| l.params).sum();
    assert_eq!(rows, m.count_params());
}

#[test]
fn plot_model_expands_nested_models() {
    let opts = kiln::PlotOptions { show_layer_names: true, ..kiln::PlotOptions::default() };
    let flat = kiln::plot::to_dot(&Deep::new(), &opts);
    let expanded = kiln::plot::to_dot(&Deep::new(), &kiln::PlotOptions { expand_nested: true, ..opts });
    assert!(flat.contains("enc (Encoder)") && !flat.contains("enc/dense"), "{flat}");
    assert!(expanded.contains("enc/dense (Dense)") && expanded.contains("blocks/dense (Dense)"), "{expanded}");
    // The chain stays connected through the expanded boxes.
    assert_eq!(expanded.matches("->").count(), 3, "{expanded}");
}

/// The same network with `#[derive(Model)]` and the state field declared by hand.
#[derive(Clone, Debug, Model)]
pub struct Derived {
    dense1: Dense<10, 64, Relu>,
    dense2: Dense<64, 10, Softmax>,
    kiln: ModelState<Self>,
}

#[kiln::call]
impl Derived {
    fn call(&self, x: Input<10>) -> Output<10> {
        self.dense2(self.dense1(x))
    }
}

#[test]
fn derive_model_equals_the_attribute_form() {
    let mut a = MyModel::with_seed(4);
    let mut b = Derived::with_seed(4);
    let x = random(5, 10, 2);
    assert_eq!(a.predict(&x).unwrap(), b.predict(&x).unwrap());
    let y = Array1::from_shape_fn(5, |i| (i % 10) as f32);
    b.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    a.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let (ha, hb) = (a.fit(&x, &y, quiet()).unwrap(), b.fit(&x, &y, quiet()).unwrap());
    assert_eq!(ha, hb);
    assert_eq!(a.summary_string().replace("MyModel", "Derived"), b.summary_string());
}

#[test]
fn batches_refuses_what_fit_refuses() {
    let (x, y) = (random(10, 4, 1), Array1::<f32>::zeros(10));
    let err = batches(&x, &y, 0).err().expect("size 0 is an error").to_string();
    assert!(err.contains("batch_size") && err.contains("at least 1"), "{err}");
    let err = batches(&x, &Array1::<f32>::zeros(9), 4).err().expect("row counts differ").to_string();
    assert!(err.contains("9 rows") && err.contains("10"), "{err}");
    assert_eq!(batches(&x, &y, 4).unwrap().count(), 3);
}

// `#[kiln::call]` reads the struct's field types through the macro `#[kiln::model]` defines
// beside it, which is also an item of the module: an impl above its struct works as one below.
#[kiln::call]
impl CallAbove {
    fn call(&self, x: Input<4>) -> Output<2> {
        self.head(self.body(x))
    }
}

#[kiln::model]
pub struct CallAbove {
    body: Dense<4, 8, Tanh>,
    head: Dense<8, 2, Softmax>,
}

#[test]
fn a_call_impl_above_its_struct_builds_the_model() {
    let x = Array2::from_shape_fn((5, 4), |(i, j)| (i as f32 - j as f32) * 0.3);
    let mut model = CallAbove::new();
    let y = model.predict(&x).expect("predicts");
    let weight = |name: &str| model.get_weight(name).expect("a weight");
    let matrix = |name: &str| weight(name).into_dimensionality::<kiln::ndarray::Ix2>().expect("a matrix");
    let vector = |name: &str| weight(name).into_dimensionality::<kiln::ndarray::Ix1>().expect("a vector");
    let h = (x.dot(&matrix("body.kernel")) + &vector("body.bias")).mapv(f32::tanh);
    let z = h.dot(&matrix("head.kernel")) + &vector("head.bias");
    for (row, zr) in y.rows().into_iter().zip(z.rows()) {
        let e: Vec<f32> = zr.iter().map(|v| v.exp()).collect();
        let total: f32 = e.iter().sum();
        assert!(row.iter().zip(&e).all(|(p, e)| (p - e / total).abs() < 1e-5), "{row} vs {zr}");
    }
}
