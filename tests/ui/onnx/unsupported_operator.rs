// A file with an operator kiln does not import (Hardmax): one error naming it, its node and
// what is supported.
#[kiln::onnx("../../fixtures/onnx/unsupported_op.onnx")]
pub struct Net;

fn main() {}
