use kiln::prelude::*;

#[kiln::model]
pub struct Mlp<const H: usize> {
    hidden: Dense<8, H, Relu>,
    out: Dense<H, 3, Softmax>,
}

#[kiln::call]
impl<const H: usize> Mlp<H> {
    fn call(&self, x: Input<8>) -> Output<3> {
        self.out(self.hidden(x))
    }
}

fn main() -> kiln::Result<()> {
    // Code using the model reports nothing more.
    let mut m = Mlp::<16>::new();
    m.compile("categorical_crossentropy", "adam", &[])?;
    m.summary();
    Ok(())
}
