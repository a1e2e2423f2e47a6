use kiln::prelude::*;

// A model's parameters are sizes; a type parameter is one error at it.
functional! {
    pub struct Net<T> {
        x = Input([4]);
        out = Dense(2)(x);
        Model(x, out)
    }
}

fn main() {
    let _ = Net::<f32>::new();
}
