// A file that is not an ONNX model (a text file).
#[kiln::onnx("../../fixtures/onnx/not_onnx.onnx")]
pub struct Net;

fn main() {
    // The struct still exists, so its uses report nothing more.
    let _ = Net::new();
}
