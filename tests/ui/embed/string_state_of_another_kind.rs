use kiln::prelude::*;

// The file holds a TextVectorization's vocabulary; this model reads its strings with a
// StringLookup.
sequential! {
    #[weights("../../../examples/models/rust_docs.safetensors")]
    pub struct Categories: Input([], dtype = string) {
        StringLookup(max_tokens = 2000),
        Embedding(2000, 16),
        GlobalAveragePooling1D,
        Dense(3, activation = softmax),
    }
}

fn main() {
    let _ = Categories::embedded();
}
