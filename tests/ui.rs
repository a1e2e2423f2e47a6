//! Compile-fail tests: each file under `tests/ui/` is a mistake a user can make, named for the
//! mistake; its `.stderr` is the message the user sees.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/sequential/*.rs");
    t.compile_fail("tests/ui/functional/*.rs");
    t.compile_fail("tests/ui/embed/*.rs");
    t.compile_fail("tests/ui/subclass/*.rs");
    t.compile_fail("tests/ui/ship/*.rs");
    t.compile_fail("tests/ui/loss/*.rs");
    t.compile_fail("tests/ui/onnx/*.rs");
}
