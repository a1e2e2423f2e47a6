// A file whose input has a symbolic axis besides the batch (a sequence of any length).
#[kiln::onnx("../../fixtures/onnx/symbolic_axis.onnx")]
pub struct Net;

fn main() {}
