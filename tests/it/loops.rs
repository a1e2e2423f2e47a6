//! `for` over a list written in the code in a `call` body, unrolled when the model compiles
//! (Keras' `for size in [..]:` blocks), and names rebound with `h = ...;`.

use kiln::prelude::*;
use kiln::testing::{assert_close, check_model, copy_weights};

#[kiln::model]
pub struct Looped {
    inp: Dense<4, 8>,
    blocks: [Dense<8, 8, Tanh>; 3],
    out: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl Looped {
    fn call(&self, x: Input<4>) -> Output<2> {
        let mut h = self.inp(x);
        for i in [0, 1, 2] {
            h = self.blocks[i](h) + h * 0.5;
        }
        self.out(h)
    }
}

#[kiln::model]
pub struct Unrolled {
    inp: Dense<4, 8>,
    blocks: [Dense<8, 8, Tanh>; 3],
    out: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl Unrolled {
    fn call(&self, x: Input<4>) -> Output<2> {
        let h0 = self.inp(x);
        let h1 = self.blocks[0](h0) + h0 * 0.5;
        let h2 = self.blocks[1](h1) + h1 * 0.5;
        let h3 = self.blocks[2](h2) + h2 * 0.5;
        self.out(h3)
    }
}

#[kiln::model]
pub struct Ranged {
    inp: Dense<4, 8>,
    blocks: [Dense<8, 8, Tanh>; 3],
    out: Dense<8, 2, Softmax>,
}

#[kiln::call]
impl Ranged {
    fn call(&self, x: Input<4>) -> Output<2> {
        let mut h = self.inp(x);
        for i in 0..3 {
            h = self.blocks[i](h) + h * 0.5;
        }
        self.out(h)
    }
}

#[test]
fn a_loop_over_a_range_is_the_loop_over_its_list() {
    let looped = Looped::with_seed(3);
    let mut ranged = Ranged::with_seed(5);
    copy_weights(&looped, &mut ranged);
    let mut looped = looped;
    let x = kiln::ndarray::Array2::from_shape_fn((3, 4), |(i, j)| ((i + j) % 5) as f32 / 2.0 - 1.0);
    let (a, b) = (looped.predict(&x).unwrap(), ranged.predict(&x).unwrap());
    assert_close("range against list", a.as_slice().unwrap(), b.as_slice().unwrap(), 0.0);
}

#[test]
fn a_loop_is_its_body_written_out_for_each_element() {
    let mut looped = Looped::with_seed(3);
    let mut unrolled = Unrolled::with_seed(11);
    copy_weights(&looped, &mut unrolled);
    let x = kiln::ndarray::Array2::from_shape_fn((5, 4), |(i, j)| ((i * 3 + j) % 7) as f32 / 3.0 - 1.0);
    let (a, b) = (looped.predict(&x).unwrap(), unrolled.predict(&x).unwrap());
    assert_close("looped against unrolled", a.as_slice().unwrap(), b.as_slice().unwrap(), 0.0);
    let flat: Vec<f32> = x.iter().copied().collect();
    check_model(&mut looped, &[&flat], 5, 12, 2e-2).unwrap();
    assert!(looped.summary_string().contains("Total params: 274"), "{}", looped.summary_string());
}
