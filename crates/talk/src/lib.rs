//! The progression of the SPDK talk "TCP Networking for Storage Software Developers", runnable: the same
//! tiny storage-like protocol served four ways, a verifying load generator, and the `servers` benchmark.
//!
//! - [`proto`]: the 64-byte command/response protocol and the verifiable data pattern;
//! - [`servers`]: blocking thread-per-connection → `poll(2)` → `epoll(7)` → the ff-sock layer;
//! - [`loadgen`]: many connections from one thread on ff-sock, every response checked;
//! - [`bench`]: [`servers_bench`], interleaved runs of every server at each connection count.

#![warn(missing_docs)]

pub mod bench;
pub mod loadgen;
pub mod proto;
pub mod servers;

pub use bench::{ServersBenchConfig, ServersRow, ServersSummary, servers_bench, servers_bench_with, summarize};
pub use loadgen::{LoadConfig, LoadReport};
pub use servers::{ServerHandle, ServerKind, ServerStats};
