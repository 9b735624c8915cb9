//! Subcommand implementations, one module each: argument struct plus `run`.

pub mod bench;
pub mod demo;
pub mod discover;
pub mod gen_tls_key;
pub mod identify;
pub mod perf;
pub mod rpc;
pub mod target;
