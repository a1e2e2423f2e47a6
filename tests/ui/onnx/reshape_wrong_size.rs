// A Reshape of 8 values to [3, 3]: the shapes do not fit, found when the model compiles.
#[kiln::onnx("../../fixtures/onnx/bad_reshape.onnx")]
pub struct Net;

fn main() {}
