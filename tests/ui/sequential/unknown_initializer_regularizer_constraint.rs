use kiln::prelude::*;

sequential! {
    pub struct Model: [4] {
        Dense(8, kernel_initializer = "he_normall", kernel_regularizer = l3(0.01)),
        Dense(4, kernel_constraint = max_norm(-1), use_bias = false, bias_initializer = "ones"),
    }
}

fn main() {}
