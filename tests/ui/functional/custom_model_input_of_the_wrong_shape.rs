use kiln::prelude::*;

#[kiln::model]
pub struct Gate {
    value: Dense<6, 8, Tanh>,
    gate: Dense<4, 8, Sigmoid>,
}

#[kiln::call]
impl Gate {
    fn call(&self, x: Input<6>, g: Input<4>) -> Output<8> {
        self.value(x) * self.gate(g)
    }
}

functional! {
    pub struct Gated {
        a = Input([6]);
        b = Input([6]);
        gate = Custom(Gate, output = 8, inputs = 2);
        out = Dense(1)(gate(a, b));
        Model([a, b], out)
    }
}

fn main() {}
