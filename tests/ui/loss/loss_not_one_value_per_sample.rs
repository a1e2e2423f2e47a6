#[kiln::loss]
fn squared(y_true: Input<3>, y_pred: Input<3>) -> Output<3> {
    square(y_pred - y_true)
}

fn main() {
    // Its uses compile: the error above is the only one.
    let _ = kiln::Loss::custom(&squared);
}
