//! What a run measured: [`PerfReport`] (totals, latency percentiles from the merged histograms, process
//! CPU, errors, verify counts) with a [`ThreadReport`] per reactor thread (its I/O and its socket group's
//! syscalls per I/O), as JSON and as spdk_nvme_perf-style text.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Mean.
    pub avg_us: f64,
    /// Fastest.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            avg_us: h.mean() / 1000.0,
            min_us: us(h.min()),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Process CPU over the measured window (every thread of the process, from `getrusage(RUSAGE_SELF)`:
/// with an in-process target it includes the target).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cpu {
    /// User seconds.
    pub user_s: f64,
    /// System seconds.
    pub sys_s: f64,
    /// Wall seconds of the window.
    pub wall_s: f64,
    /// (user + sys) / wall: 1.0 is one core busy.
    pub cores_busy: f64,
}

/// Verify-mode counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyCounts {
    /// Writes that laid down verify data.
    pub writes: u64,
    /// Reads whose data was checked (all matched, or the run failed).
    pub checked_reads: u64,
    /// Reads of blocks this run had not written (nothing to check against).
    pub unchecked_reads: u64,
}

/// One reactor thread's share of the run (measured window only).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ThreadReport {
    /// Thread index.
    pub thread: usize,
    /// CPU it was pinned to.
    pub cpu: Option<usize>,
    /// Queue ids it drove.
    pub qids: Vec<u16>,
    /// Sock backend in use (after any io_uring fallback).
    pub sock_backend: String,
    /// I/Os completed successfully.
    pub ios: u64,
    /// Of which reads.
    pub reads: u64,
    /// Of which writes.
    pub writes: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// I/Os per second.
    pub iops: f64,
    /// I/Os that failed (whole run, warm-up included).
    pub errors: u64,
    /// Thread user CPU seconds.
    pub cpu_user_s: f64,
    /// Thread system CPU seconds.
    pub cpu_sys_s: f64,
    /// Syscalls of its socket group (waits, epoll_ctl, readv, sendmsg, error queue, io_uring_enter).
    pub syscalls: u64,
    /// Syscalls per I/O.
    pub syscalls_per_io: f64,
    /// Wait syscalls (poll/epoll_wait) or polls on io_uring.
    pub waits: u64,
    /// Receive syscalls (readv into the pipe or direct, and EAGAINs).
    pub recv_syscalls: u64,
    /// sendmsg calls.
    pub sendmsg: u64,
    /// Latency of its I/Os.
    pub latency: Latency,
}

/// The result of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PerfReport {
    /// `nvme-tcp` or `iscsi`.
    pub transport: String,
    /// Target address.
    pub addr: String,
    /// Subsystem NQN (iSCSI: the TargetName).
    pub nqn: String,
    /// Namespace (iSCSI: the LUN).
    pub nsid: u32,
    /// Its block size.
    pub block_size: u32,
    /// Bytes the offsets ranged over.
    pub range_bytes: u64,
    /// Pattern.
    pub pattern: String,
    /// Read percentage.
    pub read_pct: u8,
    /// Bytes per I/O.
    pub io_size: usize,
    /// Commands in flight per queue.
    pub queue_depth: u16,
    /// I/O queues connected.
    pub queues: u16,
    /// Reactor threads.
    pub cores: usize,
    /// Header digest.
    pub hdgst: bool,
    /// Data digest.
    pub ddgst: bool,
    /// Verify mode.
    pub verify: bool,
    /// Sock options, one line.
    pub sock: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Warm-up seconds (excluded).
    pub warmup_seconds: f64,
    /// I/Os completed in the window.
    pub ios: u64,
    /// Of which reads.
    pub reads: u64,
    /// Of which writes.
    pub writes: u64,
    /// I/Os per second.
    pub iops: f64,
    /// MiB per second.
    pub mib_s: f64,
    /// Latency over all threads (merged histograms).
    pub latency: Latency,
    /// Process CPU.
    pub cpu: Cpu,
    /// Failed I/Os (whole run).
    pub errors: u64,
    /// Verify counts (whole run).
    pub verify_counts: VerifyCounts,
    /// Perf-side sock syscalls per I/O over all threads.
    pub syscalls_per_io: f64,
    /// Per thread.
    pub threads: Vec<ThreadReport>,
}

impl PerfReport {
    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Text in the layout of spdk_nvme_perf: a line per thread, a total, then percentiles and counters.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Pattern {} ({}% reads), {} B I/Os, QD {} x {} queue(s) on {} core(s){}{}{}, {:.1} s after {:.1} s warm-up",
            self.pattern,
            self.read_pct,
            self.io_size,
            self.queue_depth,
            self.queues,
            self.cores,
            if self.hdgst { ", header digest" } else { "" },
            if self.ddgst { ", data digest" } else { "" },
            if self.verify { ", verify" } else { "" },
            self.seconds,
            self.warmup_seconds
        );
        let _ = writeln!(s, "sock: {}", self.sock);
        let _ = writeln!(s, "{}", "=".repeat(104));
        let _ = writeln!(s, "{:>104}", "Latency(us)");
        let _ = writeln!(
            s,
            "{:<48}: {:>10} {:>10} {:>10} {:>10} {:>10}",
            "Device Information", "IOPS", "MiB/s", "Average", "min", "max"
        );
        let dev = if self.transport == "iscsi" {
            format!("iSCSI (addr:{} target:{}) LUN {}", self.addr, self.nqn, self.nsid)
        } else {
            format!("TCP (addr:{} subnqn:{}) NSID {}", self.addr, self.nqn, self.nsid)
        };
        for t in &self.threads {
            let mib = t.bytes as f64 / (1 << 20) as f64 / self.seconds.max(f64::MIN_POSITIVE);
            let _ = writeln!(
                s,
                "{:<48}: {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                format!("{dev} from core {}", t.thread),
                t.iops,
                mib,
                t.latency.avg_us,
                t.latency.min_us,
                t.latency.max_us
            );
        }
        let _ = writeln!(s, "{}", "=".repeat(104));
        let _ = writeln!(
            s,
            "{:<48}: {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            "Total", self.iops, self.mib_s, self.latency.avg_us, self.latency.min_us, self.latency.max_us
        );
        let _ = writeln!(
            s,
            "Latency percentiles (us): p50 {:.2}  p99 {:.2}  p99.9 {:.2}",
            self.latency.p50_us, self.latency.p99_us, self.latency.p999_us
        );
        let _ = writeln!(
            s,
            "CPU: {:.2} cores busy (user {:.2} s, sys {:.2} s over {:.2} s, whole process)",
            self.cpu.cores_busy, self.cpu.user_s, self.cpu.sys_s, self.cpu.wall_s
        );
        for t in &self.threads {
            let _ = writeln!(
                s,
                "core {}{}: {} I/Os, {:.2} sock syscalls/I/O (waits {}, recv {}, sendmsg {}), {} backend, thread CPU {:.2} s",
                t.thread,
                t.cpu.map(|c| format!(" (cpu {c})")).unwrap_or_default(),
                t.ios,
                t.syscalls_per_io,
                t.waits,
                t.recv_syscalls,
                t.sendmsg,
                t.sock_backend,
                t.cpu_user_s + t.cpu_sys_s
            );
        }
        if self.verify {
            let v = &self.verify_counts;
            let _ = writeln!(
                s,
                "verify: {} writes, {} reads checked, {} reads of unwritten blocks not checked: no mismatch",
                v.writes, v.checked_reads, v.unchecked_reads
            );
        }
        let _ = writeln!(s, "errors: {}", self.errors);
        s
    }
}
