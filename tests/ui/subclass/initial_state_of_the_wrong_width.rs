use kiln::prelude::*;

#[kiln::model]
pub struct Net {
    enc: kiln::GruSeq<3, 8>,
    dec: kiln::GruSeq<2, 4>,
    lstm: kiln::LstmSeq<2, 8>,
}

#[kiln::call]
impl Net {
    fn call(&self, x: Input<5, 3>, steps: Input<3, 2>) -> Output<3, 12> {
        let h = last_step(self.enc(x));
        let a = self.dec(steps, h);
        let b = self.lstm(steps, h);
        concatenate([a, b])
    }
}

fn main() {}
