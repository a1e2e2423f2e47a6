use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

#[kiln::model]
pub struct Frozen {
    #[layer(frozen = true)]
    base: Dense<10, 16, Relu>,
    head: Dense<16, 3, Softmax>,
}

#[kiln::call]
impl Frozen {
    fn call(&self, x: Input<10>) -> Output<3> {
        self.head(self.base(x))
    }
}

fn main() -> kiln::Result<()> {
    let mut m = Frozen::new();
    m.compile("sparse_categorical_crossentropy", "adam", &[])?;
    m.fit(&Array2::<f32>::zeros((4, 10)), &Array1::<f32>::zeros(4), Fit::default())?;
    Ok(())
}
