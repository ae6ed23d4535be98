//! Present so that Cargo resolves the `[build-dependencies]` list (proc-macro
//! dependencies such as `syn` are built in the build-dependency context).
fn main() {}
