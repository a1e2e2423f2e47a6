use kiln::prelude::*;

// gather's ids are token ids: an input declared `Ids<..>`, not floats.
#[kiln::model]
pub struct Pick {
    d: Dense<3, 4>,
}

#[kiln::call]
impl Pick {
    fn call(&self, x: Input<5, 3>, rows: Input<2>) -> Output<2, 4> {
        gather(self.d(x), rows)
    }
}

fn main() {
    let _ = Pick::new();
}
