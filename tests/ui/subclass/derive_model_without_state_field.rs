use kiln::Model;

#[derive(Model)]
pub struct MyModel {
    dense1: kiln::Dense<10, 10, kiln::Relu>,
}

fn main() {}
