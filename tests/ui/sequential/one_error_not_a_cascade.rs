use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;

sequential! {
    pub struct Broken: [64] {
        Dense(64, activation = relu),
        Dens(10),
    }
}

fn main() -> kiln::Result<()> {
    let (x, y) = (Array2::<f32>::zeros((4, 64)), Array1::<f32>::zeros(4));
    let mut model = Broken::new();
    model.summary();
    model.compile("sparse_categorical_crossentropy", "adam", &["accuracy"])?;
    model.fit(&x, &y, Fit::default())?;
    model.evaluate(&x, &y)?;
    let p = model.predict(&x)?;
    println!("{}", p.nrows());
    model.save_weights("broken.safetensors")?;
    Ok(())
}
