use kiln::prelude::*;

// Two widths that differ for some sizes: the sum is refused with the parameter's name.
functional! {
    pub struct Pair<const H: usize> {
        x = Input([4]);
        a = Dense(H)(x);
        b = Dense(8)(x);
        s = a + b;
        Model(x, s)
    }
}

fn main() {
    let _ = Pair::<8>::new();
}
