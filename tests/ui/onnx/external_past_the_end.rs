// An external tensor whose bytes run past the end of its data file.
#[kiln::onnx("../../fixtures/onnx/external_past_the_end.onnx")]
pub struct Net;

fn main() {
    let _ = Net::new();
}
