// External data must lie in the model's folder: a location that leaves it is refused.
#[kiln::onnx("../../fixtures/onnx/external_outside.onnx")]
pub struct Net;

fn main() {
    let _ = Net::new();
}
