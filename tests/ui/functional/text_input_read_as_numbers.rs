use kiln::prelude::*;

functional! {
    pub struct Reviews {
        text = Input([], dtype = string);
        y = Dense(2, activation = softmax)(text);
        Model(text, y)
    }
}

fn main() {}
