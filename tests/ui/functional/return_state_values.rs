use kiln::prelude::*;

// An LSTM with return_state gives three values: bound to one name, to too few, or read as one.
functional! {
    pub struct OneName {
        x = Input([5, 3]);
        all = LSTM(4, return_state = true)(x);
        out = Dense(1)(all);
        Model(x, out)
    }
}

functional! {
    pub struct TooFew {
        x = Input([5, 3]);
        (out, h) = LSTM(4, return_state = true)(x);
        Model(x, [out, h])
    }
}

functional! {
    pub struct Nested {
        x = Input([5, 3]);
        out = Dense(1)(GRU(4, return_state = true)(x));
        Model(x, out)
    }
}

functional! {
    pub struct Unused {
        x = Input([5, 3]);
        (out, h) = GRU(4, return_state = true)(x);
        Model(x, out)
    }
}

functional! {
    pub struct NotSeveral {
        x = Input([5, 3]);
        (out, h) = GRU(4)(x);
        Model(x, out)
    }
}

functional! {
    pub struct BothWays {
        x = Input([5, 3]);
        out = Bidirectional(LSTM(4, return_state = true))(x);
        Model(x, out)
    }
}

sequential! {
    pub struct InSequence: [5, 3] {
        LSTM(4, return_state = true),
        Dense(1),
    }
}

fn main() {}
