//! A layer's own matrix (Keras' `self.add_weight(shape = (input_dim, units))`), multiplied in
//! `call` as `matmul(x, self.w)`: Keras' custom-layer tutorial, `Linear`, written as math.

use kiln::ndarray::{Array2, Array3};
use kiln::prelude::*;
use kiln::testing::check_model;
use kiln::{Matrix, Zeros};

/// `y = x · w + b`, with `w` `glorot_uniform` and `b` zeros as Keras' tutorial starts them.
#[kiln::model]
pub struct Linear<const U: usize> {
    w: Matrix<4, U>,
    b: Weight<U, Zeros>,
}

#[kiln::call]
impl<const U: usize> Linear<U> {
    fn call(&self, x: Input<4>) -> Output<U> {
        matmul(x, self.w) + self.b
    }
}

sequential! {
    pub struct Reference: [4] { Dense(3) }
}

/// The user layer inside other models: as a field, and in `sequential!`.
#[kiln::model]
pub struct TwoLayers {
    first: Linear<8>,
    out: Dense<8, 3, Softmax>,
}

#[kiln::call]
impl TwoLayers {
    fn call(&self, x: Input<4>) -> Output<3> {
        self.out(relu(self.first(x)))
    }
}

sequential! {
    pub struct Stacked: [4] {
        Custom(Linear<6>, output = 6),
        Activation(tanh),
        Dense(3, activation = softmax),
    }
}

/// A matrix over a sequence: every step's features multiplied at once.
#[kiln::model]
pub struct Steps {
    w: Matrix<4, 2>,
}

#[kiln::call]
impl Steps {
    fn call(&self, x: Input<5, 4>) -> Output<5, 2> {
        tanh(matmul(x, self.w))
    }
}

fn data() -> Array2<f32> {
    Array2::from_shape_fn((12, 4), |(i, j)| ((i * 5 + j * 3) % 7) as f32 / 7.0 - 0.4)
}

#[test]
fn a_linear_layer_written_as_math_is_dense() {
    let x = data();
    let mut lin = Linear::<3>::with_seed(1);
    assert_eq!(lin.get_weight("w.value").unwrap().shape(), &[4, 3]);
    assert_eq!(lin.count_params(), 4 * 3 + 3);
    let mut dense = Reference::new();
    dense.set_weight("dense.kernel", &lin.get_weight("w.value").unwrap()).unwrap();
    lin.set_weight("b.value", &kiln::ndarray::arr1(&[0.1f32, -0.2, 0.3]).into_dyn()).unwrap();
    dense.set_weight("dense.bias", &lin.get_weight("b.value").unwrap()).unwrap();
    assert_eq!(lin.predict(&x).unwrap(), dense.predict(&x).unwrap());
    check_model(&mut lin, &[x.as_slice().unwrap()], 12, 12, 1e-2).unwrap();
    // glorot_uniform: within sqrt(6 / (4 + 3)), and not all one value.
    let w = Linear::<3>::with_seed(2).get_weight("w.value").unwrap();
    assert!(w.iter().all(|v| v.abs() <= (6.0f32 / 7.0).sqrt()) && w.iter().any(|v| *v != w[[0, 0]]));
    assert!(lin.summary_string().contains("Matrix"), "{}", lin.summary_string());
}

#[test]
fn the_math_layer_trains_inside_other_models() {
    let x = data();
    let y = kiln::ndarray::Array1::from_shape_fn(12, |i| (i % 3) as f32);
    for loss in [train(TwoLayers::with_seed(3), &x, &y), train(Stacked::with_seed(3), &x, &y)] {
        assert!(loss.1 < loss.0, "{loss:?}");
    }
    check_model(&mut TwoLayers::with_seed(4), &[x.as_slice().unwrap()], 12, 12, 1e-2).unwrap();
    check_model(&mut Stacked::with_seed(4), &[x.as_slice().unwrap()], 12, 12, 1e-2).unwrap();
    let s = Stacked::new().summary_string();
    assert!(s.contains("Total params: 51"), "{s}");
    let seq = Array3::from_shape_fn((3, 5, 4), |(i, t, j)| ((i + t * 3 + j) % 5) as f32 / 5.0 - 0.5);
    let mut steps = Steps::with_seed(5);
    assert_eq!(steps.predict(&seq).unwrap().shape(), &[3, 5, 2]);
    check_model(&mut steps, &[seq.as_slice().unwrap()], 3, 12, 1e-2).unwrap();
}

fn train<M: Model>(mut m: M, x: &Array2<f32>, y: &kiln::ndarray::Array1<f32>) -> (f64, f64) {
    m.compile("sparse_categorical_crossentropy", Adam::new(0.05), &[]).unwrap();
    let h = m.fit(x, y, Fit { epochs: 20, verbose: 0, ..Fit::default() }).unwrap();
    let l = h.get("loss").unwrap();
    (l[0], l[l.len() - 1])
}

/// Writes `tests/fixtures/embed/linear.safetensors`, the weights `EmbeddedLinear` compiles in:
/// `Linear::<3>::with_seed(21)`'s, its bias set to [0.1, -0.2, 0.3].
#[test]
#[ignore]
fn write_the_linear_fixture() {
    let mut m = Linear::<3>::with_seed(21);
    m.set_weight("b.value", &kiln::ndarray::arr1(&[0.1f32, -0.2, 0.3]).into_dyn()).unwrap();
    m.save_weights(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/embed/linear.safetensors")).unwrap();
}

/// The math layer with its trained weights compiled into the binary.
#[kiln::model]
#[weights("../fixtures/embed/linear.safetensors")]
pub struct EmbeddedLinear {
    w: Matrix<4, 3>,
    b: Weight<3, Zeros>,
}

#[kiln::call]
impl EmbeddedLinear {
    fn call(&self, x: Input<4>) -> Output<3> {
        matmul(x, self.w) + self.b
    }
}

#[test]
fn a_math_layer_is_saved_loaded_and_embedded() {
    let x = data();
    let mut saved = Linear::<3>::with_seed(21);
    saved.set_weight("b.value", &kiln::ndarray::arr1(&[0.1f32, -0.2, 0.3]).into_dyn()).unwrap();
    let mut embedded = EmbeddedLinear::embedded();
    assert_eq!(embedded.predict(&x).unwrap(), saved.predict(&x).unwrap());
    // Saved and loaded through a file like any model.
    let dir = std::env::temp_dir().join(format!("kiln-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("linear.safetensors");
    saved.save_weights(&path).unwrap();
    let mut loaded = Linear::<3>::with_seed(5);
    loaded.load_weights(&path).unwrap();
    assert_eq!(loaded.predict(&x).unwrap(), saved.predict(&x).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
