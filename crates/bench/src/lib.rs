//! ferrofabric benchmarks. Benchmarks report, they do not assert: each one measures configurations
//! interleaved over repeats and hands back a [`report::Report`] (rows, medians, ratios, verdicts, plots)
//! that the `ferrofabric bench` command writes and prints.
//!
//! - [`report`]: the on-disk and on-screen layout of every result (CSV, JSON, SVG, text table);
//! - [`recv_cutover`]: receive pipe vs direct receive by PDU size, and the measured cut-over;
//! - [`zerocopy`]: copy vs MSG_ZEROCOPY sends by message size, on loopback and veth;
//! - [`servers`]: the talk's servers (ff-talk) by connection count, as a report;
//! - [`core_path`]: the target's command path with no socket, nanoseconds per command;
//! - [`plain`]: the same bytes over loopback TCP with no protocol (the same-run yardstick of `target`);
//! - [`target`]: our NVMe/TCP target on one busy-polling core under ff-perf, and the end-to-end trick matrix;
//! - [`uring`]: io_uring vs epoll end to end through the target, by queue depth and feature by feature;
//! - [`spdk`]: our target and initiator side by side with SPDK's, interleaved, free and under a CPU quota;
//! - [`iscsi`]: our iSCSI target side by side with SPDK's `iscsi_tgt` and Linux's `tgtd`, interleaved;
//! - [`tls`]: NVMe/TCP over TLS 1.3 (PSK): our target side by side with SPDK's `ssl` sock, interleaved;
//! - [`sidebyside`]: one cell of a side-by-side bench measured on a parked target, and its medians;
//! - [`procs`], [`measure`]: target processes, their CPU and syscalls, a client run's window and probes
//!   (shared by the side-by-side benches);
//! - [`stats`]: medians and ratios; [`sys`]: thread CPU time, machine facts, UTC timestamps.

#![warn(missing_docs)]

pub mod core_path;
pub mod iscsi;
pub mod measure;
pub mod plain;
pub mod procs;
pub mod recv_cutover;
pub mod report;
pub mod servers;
pub mod sidebyside;
pub mod spdk;
pub mod stats;
pub mod sys;
pub mod target;
pub mod tls;
pub mod uring;
pub mod zerocopy;
