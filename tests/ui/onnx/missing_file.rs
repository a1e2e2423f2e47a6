// A path that names no file.
#[kiln::onnx("no_such_model.onnx")]
pub struct Net;

fn main() {}
