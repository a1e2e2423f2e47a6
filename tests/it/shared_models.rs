//! Models and user layers written as math, applied several times inside another model (Keras'
//! shared layers: a Siamese tower): one set of weights whose gradient sums both uses, checked
//! by finite differences in every style, and shown once in the summary.

use kiln::prelude::*;
use kiln::testing::check_model;

/// LayerNormalization over 8 features written as math: a user layer with two weights.
#[kiln::model]
pub struct Norm8 {
    gamma: Weight<8, kiln::Ones>,
    beta: Weight<8>,
}

#[kiln::call]
impl Norm8 {
    fn call(&self, h: Input<8>) -> Output<8> {
        let c = h - mean(h, axis = -1, keepdims = true);
        let var = mean(square(c), axis = -1, keepdims = true);
        c / sqrt(var + 0.001) * self.gamma + self.beta
    }
}

functional! {
    /// A tower: its own functional model.
    pub struct Tower {
        x = Input([6]);
        h = Dense(8, activation = relu)(x);
        out = Dense(4, activation = tanh)(h);
        Model(x, out)
    }
}

functional! {
    /// The tower and the math layer, each applied to both inputs.
    pub struct Pair {
        a = Input([6]);
        b = Input([6]);
        tower = Custom(Tower, output = 4);
        proj = Dense(8);
        norm = Custom(Norm8);
        ta = tower(a);
        tb = tower(b);
        na = norm(proj(ta));
        nb = norm(proj(tb));
        out = Dense(1)(Subtract()([na, nb]));
        Model([a, b], out)
    }
}

sequential! {
    pub struct Normed: [6] {
        Dense(8, activation = tanh),
        Custom(Norm8),
        Dense(3, activation = softmax),
    }
}

#[kiln::model]
pub struct Twins {
    tower: Tower,
    head: Dense<4, 1>,
}

#[kiln::call]
impl Twins {
    fn call(&self, a: Input<6>, b: Input<6>) -> Output<1> {
        let d = self.tower(a) - self.tower(b);
        self.head(d * d)
    }
}

fn inputs(n: usize, k: usize) -> Vec<f32> {
    (0..n * 6).map(|i| (((i + k) * 37) % 23) as f32 / 11.0 - 1.0).collect()
}

#[test]
fn a_functional_model_and_a_math_layer_shared_on_two_inputs_pass_the_gradient_check() {
    let (a, b) = (inputs(3, 0), inputs(3, 5));
    let mut m = Pair::with_seed(2);
    check_model(&mut m, &[&a, &b], 3, 12, 2e-2).unwrap();
    let s = m.summary_string();
    // The tower's 92 weights, the projection's 40 and the norm's 16 count once however often
    // they are used; the head has 9.
    assert!(s.contains("tower (Tower)") && s.contains("norm8 (Norm8)"), "{s}");
    assert!(s.contains("Total params: 157"), "{s}");
}

#[test]
fn a_math_layer_in_sequential_and_a_nested_model_used_twice_in_call_pass_the_gradient_check() {
    check_model(&mut Normed::with_seed(1), &[&inputs(3, 1)], 3, 12, 2e-2).unwrap();
    let (a, b) = (inputs(2, 2), inputs(2, 7));
    check_model(&mut Twins::with_seed(3), &[&a, &b], 2, 12, 2e-2).unwrap();
}

#[test]
fn a_shared_model_trains_and_predicts_the_same_for_swapped_inputs_reversed() {
    // |tower(a) - tower(b)|² is symmetric: the twin model must give the same output for (a, b)
    // and (b, a), which holds only if both uses read the same weights.
    let n = 32;
    let a = kiln::ndarray::Array2::from_shape_vec((n, 6), inputs(n, 3)).unwrap();
    let b = kiln::ndarray::Array2::from_shape_vec((n, 6), inputs(n, 9)).unwrap();
    let y = kiln::ndarray::Array2::from_shape_fn((n, 1), |(i, _)| (i % 2) as f32);
    let mut m = Twins::with_seed(4);
    m.compile("mse", "adam", &[]).unwrap();
    m.fit((&a, &b), &y, Fit { epochs: 3, verbose: 0, ..Fit::default() }).unwrap();
    let (ab, ba) = (m.predict((&a, &b)).unwrap(), m.predict((&b, &a)).unwrap());
    kiln::testing::assert_close("symmetry", ab.as_slice().unwrap(), ba.as_slice().unwrap(), 1e-6);
}

/// A user layer of two inputs made of built-in layers (Keras' layer whose `call` takes two
/// tensors).
#[kiln::model]
pub struct Gate {
    value: Dense<6, 8, Tanh>,
    gate: Dense<6, 8, Sigmoid>,
}

#[kiln::call]
impl Gate {
    fn call(&self, x: Input<6>, g: Input<6>) -> Output<8> {
        self.value(x) * self.gate(g)
    }
}

functional! {
    /// The two-input layer applied twice, on the inputs both ways round.
    pub struct Gated {
        a = Input([6]);
        b = Input([6]);
        gate = Custom(Gate, output = 8, inputs = 2);
        out = Dense(2, activation = softmax)(Concatenate()([gate(a, b), gate(b, a)]));
        Model([a, b], out)
    }
}

#[test]
fn a_user_layer_of_two_inputs_made_of_built_in_layers_passes_the_gradient_check() {
    let (a, b) = (inputs(3, 4), inputs(3, 8));
    let mut m = Gated::with_seed(6);
    check_model(&mut m, &[&a, &b], 3, 12, 2e-2).unwrap();
    let s = m.summary_string();
    assert!(s.contains("gate (Gate)") && s.contains("Total params: 146"), "{s}");
}
