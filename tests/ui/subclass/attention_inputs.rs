use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    alone: kiln::CrossAttention<6, 8, 2, 3>,
    narrow: kiln::CrossAttention<6, 8, 2, 3>,
    own: kiln::SelfAttention<6, 2, 3>,
}

#[kiln::call]
impl Net {
    fn call(&self, q: Input<4, 6>, v: Input<5, 7>, mask: Input<4, 5>) -> Output<4, 18> {
        let a = self.alone(q);
        let b = self.narrow(q, v);
        let c = self.own(q, mask);
        concatenate([a, b, c])
    }
}

fn main() {}
