//! kiln's static shape rules, in one place for the two that apply them: the model macros, which
//! run them while they expand when they know a model's numbers, and the runtime, whose generated
//! constants let rustc run them when only rustc knows the numbers (the widths of a
//! `#[kiln::model]` struct's fields and of users' layer types). Each check returns, on failure,
//! the sentence a user reads, so a shape mistake reads the same whichever of the two finds it.
//!
//! Everything is a `const fn` without allocation: `#![no_std]`, no dependencies.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checks;
mod msg;
mod rules;

pub use checks::*;
pub use msg::Msg;
pub use rules::*;
