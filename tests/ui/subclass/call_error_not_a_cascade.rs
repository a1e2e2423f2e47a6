use kiln::ndarray::Array2;
use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    dense: Dense<10, 3, Softmax>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<10>) -> Output<3> {
        let h = self.dense(x);
        h.exp()
    }
}

fn main() -> kiln::Result<()> {
    let mut m = Net::new();
    m.compile("mse", "adam", &[])?;
    let p = m.predict(&Array2::<f32>::zeros((2, 10)))?;
    println!("{}", p.nrows());
    m.summary();
    Ok(())
}
