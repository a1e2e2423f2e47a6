// The file gives the layers: the struct declares none.
#[kiln::onnx("../../fixtures/onnx/torch_mlp.onnx")]
pub struct Net {
    hidden: usize,
}

fn main() {}
