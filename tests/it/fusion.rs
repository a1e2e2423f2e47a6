//! Element-wise chains fused into one layer: `exp(0.5 * x) + 1.0` is one pass over memory and
//! one buffer, with the values and gradients of one layer per function, to the bit.

use kiln::ndarray::Array2;
use kiln::prelude::*;
use kiln::testing::check_model;

/// Every function of a chain written as one expression: fused.
#[kiln::model]
pub struct Chained {
    d: Dense<3, 4>,
}

#[kiln::call]
impl Chained {
    fn call(&self, x: Input<3>) -> Output<4> {
        let h = self.d(x);
        sqrt(square(clip(exp(0.5 * h) + 1.0, 0.0, 3.0)) + 0.25) * h
    }
}

/// The same functions, each bound to a name: a layer each.
#[kiln::model]
pub struct OneByOne {
    d: Dense<3, 4>,
}

#[kiln::call]
impl OneByOne {
    fn call(&self, x: Input<3>) -> Output<4> {
        let h = self.d(x);
        let a = 0.5 * h;
        let b = exp(a);
        let c = b + 1.0;
        let e = clip(c, 0.0, 3.0);
        let f = square(e);
        let g = f + 0.25;
        let r = sqrt(g);
        r * h
    }
}

functional! {
    /// A chain between layers in `functional!`: one layer, named after its statement.
    pub struct ChainedGraph {
        x = Input([3]);
        h = Dense(4)(x);
        z = exp(0.5 * h) - 1.0;
        out = Dense(2)(z);
        Model(x, out)
    }
}

fn layer_outputs<M: Model>(m: &M) -> usize {
    let mut n = 0;
    m.visit_layer_outputs(&mut |_, _| n += 1);
    n
}

fn data() -> Array2<f32> {
    Array2::from_shape_fn((6, 3), |(i, j)| ((i * 5 + j * 3) % 7) as f32 / 3.0 - 1.0)
}

#[test]
fn a_fused_chain_gives_the_bits_of_one_layer_per_function() {
    let x = data();
    let (mut fused, mut apart) = (Chained::with_seed(1), OneByOne::with_seed(1));
    assert_eq!(fused.predict(&x).unwrap(), apart.predict(&x).unwrap());
    // The same gradients to the bit.
    let y = Array2::from_shape_fn((6, 4), |(i, j)| (i + j) as f32 / 10.0);
    let (lf, gf) = fused.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
    let (la, ga) = apart.loss_and_grads(&x, &y, &Loss::MeanSquaredError).unwrap();
    assert_eq!(lf, la);
    for name in ["d.kernel", "d.bias"] {
        assert_eq!(gf.get(name).unwrap(), ga.get(name).unwrap(), "{name}");
    }
    // Fewer layers and buffers: the seven functions are one.
    let (nf, na) = (layer_outputs(&fused), layer_outputs(&apart));
    assert_eq!(nf + 6, na, "{nf} layer outputs fused, {na} apart");
    check_model(&mut fused, &[x.as_slice().unwrap()], 6, 12, 1e-2).unwrap();
}

#[test]
fn a_chain_in_functional_is_one_layer_named_after_its_statement() {
    let x = data();
    let names: Vec<&str> = ChainedGraph::LAYERS.iter().map(|l| l.name).collect();
    assert_eq!(names, ["x", "dense", "z", "dense_1"]);
    check_model(&mut ChainedGraph::with_seed(2), &[x.as_slice().unwrap()], 6, 12, 1e-2).unwrap();
}
