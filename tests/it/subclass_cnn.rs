//! Convolutions, pooling, batch normalisation and dropout in the subclassing style: typed fields
//! (`Conv2D<1, 16, 3, Relu, Same>`) whose windows the `call` macro checks and sizes from the
//! shapes it is given, agreement with `sequential!` on the same weights, gradient checks through
//! 2-D and 1-D stacks (shared fields included), and a CNN trained on the shipped digits.

use kiln::ndarray::{Array1, Array2, Array4, ArrayD, IxDyn, s};
use kiln::prelude::*;
use kiln::testing::{check_model, copy_weights};
use kiln::{AveragePooling1D, AveragePooling2D, BatchNormalization, Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, Same};
use rand::{Rng, SeedableRng};

const TOL: f64 = 3e-3;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Every kind of window field: a strided `same` convolution, batch normalisation, `same` max
/// pooling, a `valid` convolution and average pooling, then a flatten and a Dense head.
#[kiln::model]
pub struct Image {
    conv1: Conv2D<2, 4, 3, Tanh, Same, 2>,
    bn: BatchNormalization<4>,
    pool1: MaxPooling2D<2, Same>,
    conv2: Conv2D<4, 3, 2>,
    pool2: AveragePooling2D<2>,
    head: Dense<3, 2, Softmax>,
}

#[kiln::call]
impl Image {
    fn call(&self, x: Input<9, 9, 2>) -> Output<2> {
        let h = self.conv1(x);
        let h = self.pool1(self.bn(h));
        let h = self.pool2(self.conv2(h));
        self.head(flatten(h))
    }
}

sequential! {
    /// The same model in the sequential style.
    pub struct ImageSeq: [9, 9, 2] {
        Conv2D(4, 3, strides = 2, padding = same, activation = tanh),
        BatchNormalization,
        MaxPooling2D(2, padding = same),
        Conv2D(3, 2),
        AveragePooling2D(2),
        Flatten,
        Dense(2, activation = softmax),
    }
}

#[test]
fn window_fields_agree_with_the_sequential_style() {
    let mut sub = Image::with_seed(1);
    let mut seq = ImageSeq::with_seed(2);
    // The same weights, by name and shape, in the same order.
    let (ws, wq) = (sub.weights(), seq.weights());
    assert_eq!(ws.len(), wq.len());
    for ((_, a), (_, b)) in ws.iter().zip(&wq) {
        assert_eq!(a.shape(), b.shape());
    }
    assert_eq!(ws[0].0, "conv1.kernel");
    assert_eq!(ws[0].1.shape(), &[3, 3, 2, 4]);
    // Moving statistics away from their initial values, so inference is checked too.
    sub.visit_weights_mut(&mut |p| p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.05 * (i % 5) as f32));
    copy_weights(&sub, &mut seq);
    let x = ArrayD::from_shape_vec(IxDyn(&[6, 9, 9, 2]), random(6 * 162, 3)).unwrap();
    let p = sub.predict(&x).unwrap();
    assert_eq!(p, seq.predict(&x).unwrap());
    // One epoch of training (batch statistics, moving averages, Adam) takes the same steps.
    let y = Array1::from_shape_fn(6, |i| (i % 2) as f32);
    sub.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    seq.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let fit = Fit { epochs: 2, batch_size: 4, shuffle: false, verbose: 0, ..Fit::default() };
    sub.fit(&x, &y, fit.clone()).unwrap();
    seq.fit(&x, &y, fit).unwrap();
    let bits =
        |w: Vec<(String, kiln::Param)>| w.into_iter().flat_map(|(_, p)| p.value).map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(sub.weights()), bits(seq.weights()));
    assert_eq!(sub.predict(&x).unwrap(), seq.predict(&x).unwrap());
    // The summary shows each field's output shape and weights, as the sequential one does.
    let summary = sub.summary_string();
    for want in [
        "conv1 (Conv2D)",
        "(None, 5, 5, 4)",
        "bn (BatchNormalization)",
        "pool1 (MaxPooling2D)",
        "(None, 3, 3, 4)",
        "(None, 2, 2, 3)",
        "(None, 1, 1, 3)",
    ] {
        assert!(summary.contains(want), "{want} missing:\n{summary}");
    }
    assert_eq!(Image::LAYERS.iter().map(|l| l.params).sum::<usize>(), 3 * 3 * 2 * 4 + 4 + 16 + 2 * 2 * 4 * 3 + 3 + 8);
    assert!(summary.contains("Non-trainable params: 8"), "{summary}");
}

#[test]
fn a_2d_subclass_passes_the_gradient_check() {
    let mut m = Image::with_seed(4);
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    check_model(&mut m, &[&random(2 * 162, 5)], 2, 12, TOL).unwrap();
}

sequential! {
    /// The image layers that have no field type, nested: they change the spatial axes (the
    /// model states the shape it reads and the one it writes).
    pub struct Stem: [9, 9, 2] {
        Rescaling(0.5, offset = 0.1),
        GaussianNoise(0.1),
        ZeroPadding2D([1, 1]),                              // [11, 11, 2]
        DepthwiseConv2D(3, strides = 2, activation = tanh), // [5, 5, 2]
        UpSampling2D(2),                                    // [10, 10, 2]
        Cropping2D([1, 1, 1, 1]),                           // [8, 8, 2]
        SpatialDropout2D(0.2),
        Conv2DTranspose(3, 2),                              // [9, 9, 3]
        SeparableConv2D(4, 3, activation = relu),           // [7, 7, 4]
    }
}

#[kiln::model]
pub struct Nested {
    stem: Stem,
    pool: MaxPooling2D<2, Same>,
    head: Dense<64, 2, Softmax>,
}

#[kiln::call]
impl Nested {
    fn call(&self, x: Input<9, 9, 2>) -> Output<2> {
        let h = self.pool(self.stem(x));
        self.head(flatten(h))
    }
}

#[test]
fn a_nested_model_that_changes_the_spatial_axes_is_a_field() {
    assert_eq!(<Stem as kiln::Shaped>::MAP, Some((&[9usize, 9, 2][..], &[7usize, 7, 4][..])));
    let mut m = Nested::with_seed(8);
    let s = m.summary_string();
    for want in ["stem (Stem)", "(None, 7, 7, 4)", "(None, 4, 4, 4)"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    check_model(&mut m, &[&random(2 * 162, 9)], 2, 12, TOL).unwrap();
}

/// A 1-D stack with a shared `same` convolution applied twice (one set of weights, two uses),
/// both poolings and global pooling.
#[kiln::model]
pub struct Steps {
    conv: Conv1D<3, 4, 3, Relu, Same, 2>,
    mixer: Conv1D<4, 4, 3, Tanh, Same>,
    pool: MaxPooling1D<2>,
    avg: AveragePooling1D<2, Same>,
    head: Dense<8, 1, Sigmoid>,
}

#[kiln::call]
impl Steps {
    fn call(&self, x: Input<12, 3>) -> Output<1> {
        let h = self.conv(x);
        let h = h + self.mixer(h);
        let h = self.mixer(h);
        let a = global_average_pooling(self.avg(h));
        let m = global_max_pooling(self.pool(h));
        self.head(concatenate([a, m]))
    }
}

#[test]
fn a_1d_subclass_with_a_shared_convolution_passes_the_gradient_check() {
    let mut m = Steps::with_seed(6);
    let s = m.summary_string();
    for want in ["conv (Conv1D)", "(None, 6, 4)", "mixer (Conv1D)", "pool (MaxPooling1D)", "(None, 3, 4)"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    m.visit_weights_mut(&mut |p| {
        if p.shape().len() == 1 {
            p.value.iter_mut().enumerate().for_each(|(i, v)| *v += 0.1 * (i % 3) as f32);
        }
    });
    check_model(&mut m, &[&random(3 * 36, 7)], 3, 12, TOL).unwrap();
}

/// Window fields in an array and a `Vec`, each element sized for its own input.
#[kiln::model]
pub struct Stack {
    convs: [Conv2D<2, 2, 3, Tanh, Same>; 2],
    #[layer(len = 2)]
    pools: Vec<AveragePooling2D<2>>,
    head: Dense<2, 1, Sigmoid>,
}

#[kiln::call]
impl Stack {
    fn call(&self, x: Input<8, 8, 2>) -> Output<1> {
        let h = self.pools[0](self.convs[0](x));
        let h = self.pools[1](self.convs[1](h));
        self.head(global_max_pooling(h))
    }
}

#[test]
fn window_fields_in_arrays_and_vecs() {
    let mut m = Stack::with_seed(3);
    let s = m.summary_string();
    assert!(s.contains("convs (Conv2D)") && s.contains("(None, 4, 4, 2)"), "{s}");
    check_model(&mut m, &[&random(2 * 128, 4)], 2, 12, TOL).unwrap();
}

/// Keras' subclassing tutorial CNN, on the shipped 8×8 digits.
#[kiln::model]
pub struct DigitsNet {
    conv1: Conv2D<1, 16, 3, Relu, Same>,
    bn1: BatchNormalization<16>,
    pool1: MaxPooling2D<2>,
    conv2: Conv2D<16, 32, 3, Relu, Same>,
    pool2: MaxPooling2D<2>,
    head: Dense<128, 10, Softmax>,
}

#[kiln::call]
impl DigitsNet {
    fn call(&self, x: Input<8, 8, 1>) -> Output<10> {
        let h = self.pool1(self.bn1(self.conv1(x)));
        let h = self.pool2(self.conv2(h));
        self.head(dropout(flatten(h), 0.25))
    }
}

#[test]
fn a_subclassed_cnn_learns_the_digits() {
    let table =
        kiln::data::read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz"), false).unwrap();
    let (pixels, labels) = kiln::data::split_label(&kiln::data::shuffle_rows(&table, 7)).unwrap();
    let n = pixels.nrows();
    let x: Array4<f32> = (pixels / 16.0).into_shape_with_order((n, 8, 8, 1)).unwrap();
    let mut m = DigitsNet::new();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.003), &["accuracy"]).unwrap();
    m.fit(&x, &labels, Fit { epochs: 15, validation_split: 0.2, verbose: 0, ..Fit::default() }).unwrap();
    let from = n - kiln::validation_rows(n, 0.2);
    let held_out = m.evaluate(&x.slice(s![from.., .., .., ..]), &labels.slice(s![from..])).unwrap();
    assert!(held_out["accuracy"] >= 0.97, "held-out accuracy {}", held_out["accuracy"]);
    // The weights, moving statistics included, round-trip through a file into a fresh model.
    let path = std::env::temp_dir().join(format!("kiln-subclass-cnn-{}.safetensors", std::process::id()));
    m.save_weights(&path).unwrap();
    let mut again = DigitsNet::with_seed(99);
    again.load_weights(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let some = x.slice(s![..64, .., .., ..]);
    assert_eq!(m.predict(&some).unwrap(), again.predict(&some).unwrap());
    // Dropout is off in inference: predictions repeat.
    let some = x.slice(s![..16, .., .., ..]);
    assert_eq!(m.predict(&some).unwrap(), m.predict(&some).unwrap());
    // A wrong image size is refused with both shapes named.
    let e = m.predict(&Array2::<f32>::zeros((2, 64))).unwrap_err().to_string();
    assert!(e.contains("8, 8, 1"), "{e}");
}
