// Math between values is checked as layers are: `a + b` of shapes [3] and [4] is one error at
// the operator, naming both shapes.
use kiln::prelude::*;

functional! {
    pub struct Net {
        x = Input([6]);
        a = Dense(3)(x);
        b = Dense(4)(x);
        s = a + exp(b);
        Model(x, s)
    }
}

fn main() {}
