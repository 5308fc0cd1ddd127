//! Command-line parsing and output.

pub fn main() -> i32 { 0 }
