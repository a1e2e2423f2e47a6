use kiln::prelude::*;

functional! {
    pub struct Reviews {
        text = Input([], dtype = string);
        stars = Input([1]);
        y = Dense(2, activation = softmax)(stars);
        Model([text, stars], y)
    }
}

fn main() {}
