//! Compile-fail tests: each file under `tests/ui/<style>/` is a mistake a user can make, named
//! for the mistake; its `.stderr` is the message the user sees.
//!
//! A package of its own (`kiln-ui-tests`) so that trybuild, which checks every dependency again
//! in a target directory of its own, checks only what these programs need: kiln with `std` alone
//! (no image, NumPy or plot dependencies, none of the facade's dev-dependencies). That also
//! shows kiln builds with those features off.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("sequential/*.rs");
    t.compile_fail("functional/*.rs");
    t.compile_fail("embed/*.rs");
    t.compile_fail("subclass/*.rs");
    t.compile_fail("ship/*.rs");
    t.compile_fail("loss/*.rs");
    t.compile_fail("onnx/*.rs");
}
