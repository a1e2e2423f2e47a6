//! Sizes as parameters: a `#[kiln::model]` with `const` size parameters, each instantiation
//! checked and generated as its own model (Keras' `MyModel(num_classes)`).

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use kiln::testing::check_model;

/// An MLP whose hidden width is a parameter.
#[kiln::model]
pub struct Mlp<const H: usize> {
    hidden: Dense<4, H, Relu>,
    out: Dense<H, 3, Softmax>,
}

#[kiln::call]
impl<const H: usize> Mlp<H> {
    fn call(&self, x: Input<4>) -> Output<3> {
        let h = self.hidden(x);
        self.out(tanh(h) + 0.5 * h)
    }
}

/// A classifier whose number of classes is a parameter (`MyModel(num_classes)`), with a
/// hidden width derived from it.
#[kiln::model]
pub struct Classes<const C: usize, const H: usize> {
    hidden: Dense<4, H, Tanh>,
    out: Dense<H, C, Softmax>,
}

#[kiln::call]
impl<const C: usize, const H: usize> Classes<C, H> {
    fn call(&self, x: Input<4>) -> Output<C> {
        self.out(self.hidden(x))
    }
}

fn data() -> (Array2<f32>, Array1<f32>) {
    let x = Array2::from_shape_fn((90, 4), |(i, j)| ((i * 7 + j * 5) % 11) as f32 / 11.0 - 0.5 + (i % 3) as f32 * 0.4);
    let y = Array1::from_shape_fn(90, |i| (i % 3) as f32);
    (x, y)
}

fn train<M: Model>(mut m: M) -> (usize, f64, f64) {
    let (x, y) = data();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.02), &[]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 15, verbose: 0, ..Fit::default() }).unwrap();
    let loss = h.get("loss").unwrap();
    (m.count_params(), loss[0], loss[loss.len() - 1])
}

#[test]
fn one_model_trains_at_three_widths() {
    let widths = [train(Mlp::<4>::with_seed(1)), train(Mlp::<16>::with_seed(1)), train(Mlp::<64>::with_seed(1))];
    for (h, (params, first, last)) in [4, 16, 64].iter().zip(widths) {
        assert_eq!(params, 4 * h + h + h * 3 + 3, "width {h}");
        assert!(last < first, "width {h}: loss {first} -> {last}");
    }
    // The summary shows the instantiated sizes.
    let s = Mlp::<16>::new().summary_string();
    assert!(s.contains("(None, 16)") && s.contains("Total params: 131"), "{s}");
    // A few rows away from ReLU's kink, as finite differences need.
    let x: Vec<f32> = data().0.as_slice().unwrap()[..24].to_vec();
    check_model(&mut Mlp::<8>::with_seed(3), &[&x], 6, 12, 1e-2).unwrap();
}

#[test]
fn sizes_may_name_the_classes() {
    let (params, first, last) = train(Classes::<3, 12>::with_seed(2));
    assert_eq!(params, 4 * 12 + 12 + 12 * 3 + 3);
    assert!(last < first);
    let x = data().0;
    check_model(&mut Classes::<3, 5>::with_seed(4), &[x.as_slice().unwrap()], 90, 12, 1e-2).unwrap();
    // The output port is as wide as the classes: 5 here.
    assert_eq!(Classes::<5, 8>::OUTPUTS[0].shape, &[5]);
    assert_eq!(Classes::<5, 8>::new().predict(&x).unwrap().shape(), &[90, 5]);
}

/// The derive form, a weight whose size is the parameter, an added loss, and the model as a
/// field of another.
#[derive(Clone, Debug, Model)]
pub struct Scaled<const H: usize> {
    d: Dense<4, H>,
    gamma: kiln::Weight<H, kiln::Ones>,
    kiln: ModelState<Self>,
}

#[kiln::call]
impl<const H: usize> Scaled<H> {
    fn call(&self, x: Input<4>) -> Output<H> {
        let h = self.d(x) * self.gamma;
        self.add_loss("size", 0.01 * mean(square(h), axis = -1));
        h
    }
}

#[kiln::model]
pub struct Outer {
    inner: Scaled<6>,
    head: Dense<6, 2>,
}

#[kiln::call]
impl Outer {
    fn call(&self, x: Input<4>) -> Output<2> {
        self.head(relu(self.inner(x)))
    }
}

#[test]
fn the_derive_form_weights_added_losses_and_nesting_take_sizes_too() {
    let x = data().0;
    let mut s = Scaled::<5>::with_seed(1);
    assert_eq!(s.get_weight("gamma.value").unwrap().shape(), &[5]);
    assert_eq!(Scaled::<5>::ADDED_LOSSES, &["size"]);
    check_model(&mut s, &[x.as_slice().unwrap()], 90, 12, 1e-2).unwrap();
    let mut o = Outer::with_seed(2);
    assert_eq!(o.predict(&x).unwrap().shape(), &[90, 2]);
    assert!(o.summary_string().contains("inner"));
}

sequential! {
    /// The same MLP in the Sequential style: its hidden width and its classes are parameters.
    pub struct SeqMlp<const H: usize, const C: usize>: [4] {
        Dense(H, activation = relu),
        Dropout(0.1),
        Dense(H),
        Lambda(|x| tanh(x) + 0.5 * x),
        Dense(C, activation = softmax),
    }
}

functional! {
    /// A Functional model whose input width and hidden width are parameters, with a skip
    /// connection and math between the layers.
    pub struct Skip<const N: usize, const H: usize> {
        x = Input([N]);
        h = Dense(H, activation = tanh)(x);
        g = Dense(H)(h);
        s = h + g / 2.0;
        for k in [1, 2] {
            s = Dense(H, activation = relu)(s);
        }
        out = Dense(3, activation = softmax)(s);
        Model(x, out)
    }
}

#[test]
fn sequential_and_functional_models_take_sizes_too() {
    let x = data().0;
    for h in [4, 16, 64] {
        let (params, first, last) = match h {
            4 => train(SeqMlp::<4, 3>::with_seed(1)),
            16 => train(SeqMlp::<16, 3>::with_seed(1)),
            _ => train(SeqMlp::<64, 3>::with_seed(1)),
        };
        assert_eq!(params, 4 * h + h + h * h + h + h * 3 + 3, "width {h}");
        assert!(last < first, "width {h}: loss {first} -> {last}");
    }
    let s = SeqMlp::<16, 5>::new().summary_string();
    assert!(s.contains("(None, 16)") && s.contains("(None, 5)"), "{s}");
    assert_eq!(SeqMlp::<16, 5>::new().predict(&x).unwrap().shape(), &[90, 5]);
    check_model(&mut SeqMlp::<6, 3>::with_seed(3), &[x.as_slice().unwrap()], 6, 12, 1e-2).unwrap();

    let (params, first, last) = train(Skip::<4, 8>::with_seed(2));
    assert_eq!(params, (4 * 8 + 8) + 3 * (8 * 8 + 8) + 8 * 3 + 3);
    assert!(last < first);
    assert_eq!(Skip::<4, 8>::INPUTS[0].shape, &[4]);
    let s = Skip::<4, 24>::new().summary_string();
    assert!(s.contains("(None, 24)"), "{s}");
    check_model(&mut Skip::<4, 5>::with_seed(4), &[x.as_slice().unwrap()], 90, 12, 1e-2).unwrap();
}

/// A subclassed model whose input width is a parameter.
#[kiln::model]
pub struct Wide<const N: usize> {
    d: Dense<N, 3, Softmax>,
}

#[kiln::call]
impl<const N: usize> Wide<N> {
    fn call(&self, x: Input<N>) -> Output<3> {
        self.d(x * 2.0)
    }
}

#[test]
fn a_subclassed_model_takes_its_input_width_as_a_parameter() {
    let x = data().0;
    assert_eq!(Wide::<4>::INPUTS[0].shape, &[4]);
    let (params, first, last) = train(Wide::<4>::with_seed(5));
    assert_eq!(params, 4 * 3 + 3);
    assert!(last < first);
    check_model(&mut Wide::<4>::with_seed(3), &[x.as_slice().unwrap()], 90, 12, 1e-2).unwrap();
}
