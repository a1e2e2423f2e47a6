#[kiln::loss]
fn mismatched(y_true: Input<2>, y_pred: Input<3>) -> Output<1> {
    sum(y_pred, axis = -1, keepdims = true)
}

fn main() {
    // Its uses compile: the error above is the only one.
    let _ = kiln::Loss::custom(&mismatched);
}
