//! ff-perf: the ferrofabric load engine (the spdk_nvme_perf / fio class) on [`ff_initiator`], for NVMe/TCP
//! and iSCSI alike.
//!
//! [`run`] connects one controller (or, with [`PerfConfig::iscsi`], logs in one iSCSI session per queue) with `queues` I/O queues, spreads them over `cores` reactor threads
//! (each an [`ff_initiator::IoGroup`]), keeps every queue at its depth for the warm-up and the measured
//! window, and returns a [`PerfReport`]: IOPS, MiB/s, latency percentiles from hdrhistograms merged over
//! the threads, process CPU, errors, and per thread the sock syscalls per I/O.
//!
//! - [`config`]: [`PerfConfig`] and [`Pattern`];
//! - [`data`]: the seeded generator and the verify data (LBA + generation in every block);
//! - [`report`]: [`PerfReport`] and its JSON and text forms;
//! - [`affinity`]: CPU pinning and getrusage;
//! - `worker`: one reactor thread's loop.

pub mod affinity;
pub mod clock;
pub mod config;
pub mod data;
mod iscsi;
pub mod report;
mod worker;

pub use config::DEFAULT_NQN;
pub use config::{DEFAULT_INITIATOR, DEFAULT_ISCSI_TARGET, IscsiTarget, Pattern, PerfConfig};
pub use report::{Cpu, Latency, PerfReport, ThreadReport, VerifyCounts};

use affinity::CpuTime;
use clock::Clock;
use ff_initiator::{Controller, HostOptions};
use ff_nvme_tcp::Digests;
use ff_sock::Backend;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use worker::{QueueSet, Shared, WorkerSpec, new_histogram};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    /// The configuration cannot work (before or after learning the namespace).
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// Connecting, an admin command or a socket group failed.
    #[error("initiator: {0}")]
    Initiator(#[from] ff_initiator::Error),
    /// An iSCSI login or setup command failed.
    #[error("iSCSI: {0}")]
    Iscsi(#[from] ff_initiator::iscsi::IscsiError),
    /// A read did not return what this run wrote.
    #[error("VERIFY FAILED: namespace {nsid} LBA {lba}: {detail}")]
    Verify {
        /// Namespace.
        nsid: u32,
        /// The first mismatching block.
        lba: u64,
        /// What was expected and found.
        detail: String,
    },
    /// The I/O path broke beyond recovery (a queue stayed down).
    #[error("I/O: {0}")]
    Io(String),
}

/// Runs the configured load and reports. Failed commands are counted in [`PerfReport::errors`] (the run
/// goes on, reconnecting queues that went down); a verify mismatch ends it with [`PerfError::Verify`].
pub fn run(cfg: &PerfConfig) -> Result<PerfReport, PerfError> {
    cfg.validate().map_err(PerfError::Invalid)?;
    match &cfg.iscsi {
        Some(t) => iscsi::run(cfg, t),
        None => run_nvme(cfg),
    }
}

/// What the threads drive, for the report and their slices.
pub(crate) struct Unit {
    pub transport: &'static str,
    pub name: String,
    /// NVMe namespace or iSCSI LUN.
    pub id: u32,
    pub block_size: usize,
    /// `io_size` slots in the range.
    pub slots: u64,
    /// Queues (connections) over all threads.
    pub queues: usize,
}

fn run_nvme(cfg: &PerfConfig) -> Result<PerfReport, PerfError> {
    // Setup links never use io_uring: their sockets move to the reactors' groups afterwards.
    let mut setup_group = cfg.group.clone();
    if setup_group.backend == Backend::Uring {
        setup_group.backend = Backend::Epoll;
    }
    let defaults = HostOptions::default();
    let host = HostOptions {
        hostnqn: cfg.hostnqn.clone().unwrap_or(defaults.hostnqn.clone()),
        dhchap: cfg.dhchap.clone(),
        tls: cfg.tls.clone(),
        digests: Digests { header: cfg.hdgst, data: cfg.ddgst },
        io_queues: cfg.queues,
        queue_depth: cfg.queue_depth.max(2),
        sock: cfg.group.sock.clone(),
        group: setup_group,
        command_timeout: cfg.command_timeout,
        ..defaults
    };
    let mut ctrl = Controller::connect(cfg.addr, &cfg.nqn, &host)?;
    let nsid = match cfg.nsid {
        Some(n) => n,
        None => *ctrl
            .active_namespaces()?
            .first()
            .ok_or_else(|| PerfError::Invalid(format!("{} has no active namespace", cfg.nqn)))?,
    };
    let ns = ctrl.identify_namespace(nsid)?;
    let bs = ns.block_size as usize;
    if bs == 0 || ns.nsze == 0 {
        return Err(PerfError::Invalid(format!("namespace {nsid} is not active or has no blocks")));
    }
    if !cfg.io_size.is_multiple_of(bs) || cfg.io_size / bs > 65536 {
        return Err(PerfError::Invalid(format!(
            "I/O size {} is not 1 to 65536 blocks of namespace {nsid}'s {bs} B",
            cfg.io_size
        )));
    }
    let mdts = ctrl.identity().mdts;
    // MDTS is in units of the minimum memory page size (CAP.MPSMIN, 4 KiB on every target we know).
    let mps = 4096usize << ((ctrl.cap() >> 48) & 0xF);
    if mdts > 0 && mdts < 32 && cfg.io_size > mps << mdts {
        return Err(PerfError::Invalid(format!(
            "I/O size {} exceeds the controller's maximum transfer of {} bytes",
            cfg.io_size,
            mps << mdts
        )));
    }
    let ns_bytes = ns.nsze.saturating_mul(bs as u64);
    let range = cfg.size.map_or(ns_bytes, |s| s.min(ns_bytes));
    let slots = range / cfg.io_size as u64;
    let queues = ctrl.take_io_queues();
    if queues.is_empty() {
        return Err(PerfError::Invalid("the controller granted no I/O queue".into()));
    }
    let nq = queues.len();
    let cores = cfg.cores.min(nq);
    if slots < cores as u64 {
        return Err(PerfError::Invalid(format!(
            "{range} bytes hold {slots} I/Os of {} B: fewer than the {cores} threads",
            cfg.io_size
        )));
    }
    let mut per_thread: Vec<Vec<ff_initiator::IoQueue>> = (0..cores).map(|_| Vec::new()).collect();
    for (i, q) in queues.into_iter().enumerate() {
        if let Some(v) = per_thread.get_mut(i % cores) {
            v.push(q);
        }
    }
    let unit = Unit { transport: "nvme-tcp", name: cfg.nqn.clone(), id: nsid, block_size: bs, slots, queues: nq };
    let r = launch(cfg, &unit, per_thread.into_iter().map(QueueSet::Nvme).collect());
    if let Err(e) = ctrl.shutdown() {
        tracing::warn!("controller shutdown: {e}");
    }
    r
}

/// Runs one thread per queue set, each on its slice of the range, and merges what they report.
pub(crate) fn launch(cfg: &PerfConfig, unit: &Unit, sets: Vec<QueueSet>) -> Result<PerfReport, PerfError> {
    let cores = sets.len();
    let (slots, bs, nsid, nq) = (unit.slots, unit.block_size, unit.id, unit.queues);
    let shared = Arc::new(Shared {
        barrier: Barrier::new(cores + 1),
        stop: AtomicBool::new(false),
        completions: AtomicU64::new(0),
    });
    let cfg_arc = Arc::new(cfg.clone());
    let clock = Clock::new();
    let mut handles = Vec::new();
    for (t, qs) in sets.into_iter().enumerate() {
        let (lo, hi) = (slots * t as u64 / cores as u64, slots * (t as u64 + 1) / cores as u64);
        let spec = WorkerSpec {
            index: t,
            queues: qs,
            cfg: cfg_arc.clone(),
            nsid,
            block_size: bs,
            slot_base: lo,
            slot_count: hi - lo,
            cpu: (!cfg.cpus.is_empty()).then(|| cfg.cpus.get(t % cfg.cpus.len()).copied()).flatten(),
            clock,
        };
        let sh = shared.clone();
        let spawned = std::thread::Builder::new().name(format!("ff-perf-{t}")).spawn(move || worker::run(spec, &sh));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The barrier counts on every thread: without this one nobody would start.
                shared.stop.store(true, Ordering::Relaxed);
                return Err(PerfError::Io(format!("spawning a reactor thread: {e}")));
            }
        }
    }
    shared.barrier.wait();
    let t0 = Instant::now();
    let cpu = watch(cfg, t0, &shared, &handles);
    let mut results = Vec::new();
    let mut failure: Option<PerfError> = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => {
                // A verify mismatch is the error worth reporting over the others it caused.
                if failure.as_ref().is_none_or(|f| !matches!(f, PerfError::Verify { .. })) {
                    failure = Some(e);
                }
            }
            Err(_) => failure = failure.or(Some(PerfError::Io("a reactor thread panicked".into()))),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut hist = new_histogram();
    let mut threads = Vec::new();
    let mut verify = VerifyCounts::default();
    let (mut ios, mut reads, mut writes, mut bytes, mut errors, mut syscalls) = (0, 0, 0, 0, 0, 0);
    for r in results {
        let _ = hist.add(&r.hist);
        ios += r.report.ios;
        reads += r.report.reads;
        writes += r.report.writes;
        bytes += r.report.bytes;
        errors += r.report.errors;
        syscalls += r.report.syscalls;
        verify.writes += r.verify.writes;
        verify.checked_reads += r.verify.checked_reads;
        verify.unchecked_reads += r.verify.unchecked_reads;
        threads.push(r.report);
    }
    Ok(PerfReport {
        transport: unit.transport.to_string(),
        addr: cfg.addr.to_string(),
        nqn: unit.name.clone(),
        nsid,
        block_size: bs as u32,
        range_bytes: slots * cfg.io_size as u64,
        pattern: cfg.pattern.to_string(),
        read_pct: cfg.pattern.read_pct(cfg.rwmixread),
        io_size: cfg.io_size,
        queue_depth: cfg.queue_depth,
        queues: nq as u16,
        cores,
        hdgst: cfg.hdgst,
        ddgst: cfg.ddgst,
        verify: cfg.verify,
        sock: cfg.group.to_string(),
        seconds: cfg.seconds,
        warmup_seconds: cfg.warmup_seconds,
        ios,
        reads,
        writes,
        iops: ios as f64 / cfg.seconds,
        mib_s: bytes as f64 / (1u64 << 20) as f64 / cfg.seconds,
        latency: Latency::of(&hist),
        cpu,
        errors,
        verify_counts: verify,
        syscalls_per_io: if ios == 0 { 0.0 } else { syscalls as f64 / ios as f64 },
        threads,
    })
}

/// Waits for the threads while sampling process CPU at the window's edges and drawing the progress line.
fn watch<T>(cfg: &PerfConfig, t0: Instant, shared: &Shared, handles: &[std::thread::JoinHandle<T>]) -> Cpu {
    let measure_at = t0 + Duration::from_secs_f64(cfg.warmup_seconds);
    let end_at = measure_at + Duration::from_secs_f64(cfg.seconds);
    let bar = (cfg.progress && std::io::stderr().is_terminal()).then(|| {
        let total = (cfg.warmup_seconds + cfg.seconds) * 10.0;
        let b = indicatif::ProgressBar::new(total.ceil() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>7} [{bar:30}] {elapsed:>3} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let (mut start, mut end) = (None, None);
    let (mut last_n, mut last_t) = (0u64, t0);
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if start.is_none() && now >= measure_at {
            start = Some((now, CpuTime::process()));
        }
        if end.is_none() && now >= end_at {
            end = Some((now, CpuTime::process()));
        }
        if let Some(b) = &bar
            && now.duration_since(last_t) >= Duration::from_millis(250)
        {
            let n = shared.completions.load(Ordering::Relaxed);
            let rate = (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64();
            (last_n, last_t) = (n, now);
            b.set_prefix(if now < measure_at {
                "warm-up"
            } else if now < end_at {
                "run"
            } else {
                "drain"
            });
            b.set_position((now.duration_since(t0).as_secs_f64() * 10.0) as u64);
            b.set_message(format!("{rate:>10.0} IOPS"));
        }
        // Sleep to the next edge or tick, whichever comes first.
        let next = [measure_at, end_at].into_iter().filter(|&e| e > now).min().unwrap_or(now);
        let nap = next.saturating_duration_since(now).clamp(Duration::from_millis(1), Duration::from_millis(50));
        std::thread::sleep(nap);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let now = Instant::now();
    let (ts, cs) = start.unwrap_or((now, CpuTime::process()));
    let (te, ce) = end.unwrap_or((now, CpuTime::process()));
    let d = ce.since(cs);
    let wall = te.saturating_duration_since(ts).as_secs_f64();
    let (user_s, sys_s) = (d.user.as_secs_f64(), d.sys.as_secs_f64());
    Cpu { user_s, sys_s, wall_s: wall, cores_busy: if wall > 0.0 { (user_s + sys_s) / wall } else { 0.0 } }
}
