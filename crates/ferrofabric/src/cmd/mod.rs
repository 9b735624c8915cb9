//! Subcommand implementations, one module each: argument struct plus `run`.

pub mod bench;
pub mod target;
