use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    dense: Dense<20, 4, Relu>,
}

#[kiln::call]
impl Net {
    fn call(&self, ids: Ids<20>) -> Output<4> {
        self.dense(ids)
    }
}

fn main() {}
