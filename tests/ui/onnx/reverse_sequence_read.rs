// A reverse-direction LSTM whose sequence Y is read (kiln's go_backwards returns its outputs in
// the order it computed them, ONNX's in the input's): refused, naming the node.
#[kiln::onnx("../../fixtures/onnx/kiln_export_backwards.onnx")]
pub struct Net;

fn main() {
    let _ = Net::new();
}
