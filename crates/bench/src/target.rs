//! `target`: our NVMe/TCP target on one busy-polling core (null namespace, in-process) driven by ff-perf
//! on the other core, as SPDK measures its own target: 4K random read and write at QD 1/32/128, 128K
//! sequential read and write at QD16. Then the end-to-end trick matrix: 4K randread QD32 and 128K read
//! QD16 with one sock option toggled on both sides at a time (pipe off, cut-over 4K, zero copy off,
//! round-robin instead of NAPI-id placement, poll or io_uring instead of epoll), each as a ratio to the
//! default measured in the same run. Every point starts a fresh target; points are interleaved within
//! each repeat and the table shows medians. SPDK side by side, measured in the same run, is
//! [`crate::spdk`]'s business.
//!
//! It also owns the end-to-end point runner (`run_e2e`: fresh target, pinning, ff-perf, the target's
//! final counters) that [`crate::uring`] shares.

use crate::report::{Plot, Report, Series, Table};
use crate::stats::{median, ratio};
use anyhow::{Context, Result, ensure};
use ff_perf::affinity::{online_cpus, pin_thread, threads_named};
use ff_perf::report::{Cpu, Latency};
use ff_perf::{Pattern, PerfConfig, PerfReport};
use ff_sock::{Backend, GroupOptions, PlacementMode};
use ff_target::config::DEFAULT_NQN;
use ff_target::{PollMode, ReactorStats, TargetOptions};
use serde::Serialize;
use serde_json::json;

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Repeats per point (medians over them).
    pub repeats: usize,
    /// Measured seconds per point.
    pub seconds: f64,
    /// Warm-up seconds per point (excluded).
    pub warmup: f64,
    /// Run the trick matrix too.
    pub tricks: bool,
    /// Try io_uring in the trick matrix when the kernel offers it.
    pub uring: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { repeats: 3, seconds: 2.0, warmup: 0.5, tricks: true, uring: true }
    }
}

impl Config {
    /// A smoke run: one repeat of half a second per point.
    pub fn quick() -> Config {
        Config { repeats: 1, seconds: 0.5, warmup: 0.2, ..Config::default() }
    }
}

/// One workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Workload {
    /// Bytes per I/O.
    pub io_size: usize,
    /// Pattern.
    pub pattern: Pattern,
    /// Queue depth.
    pub qd: u16,
}

impl Workload {
    /// `4K randread QD32`.
    pub(crate) fn name(&self) -> String {
        let size = crate::stats::human_size(self.io_size);
        format!("{size} {} QD{}", self.pattern, self.qd)
    }
}

/// One sock-option variation of the trick matrix (applied to target and host alike), or, as `Plain`, the
/// plain-socket baseline that replaces our stack for a yardstick row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Trick {
    /// Every default.
    Default,
    /// No receive pipe: every read goes straight to its destination.
    PipeOff,
    /// Cut-over at 4 KiB (the talk's NIC figure) instead of the measured 64 KiB.
    Cutover4K,
    /// No MSG_ZEROCOPY.
    ZeroCopyOff,
    /// Round-robin placement instead of NAPI id.
    RoundRobin,
    /// poll(2) instead of epoll.
    Poll,
    /// io_uring instead of epoll.
    Uring,
    /// Not our stack: the plain-socket baseline ([`crate::plain`]), the same bytes with no protocol.
    Plain,
}

impl Trick {
    fn name(self) -> &'static str {
        match self {
            Trick::Default => "default",
            Trick::PipeOff => "pipe off",
            Trick::Cutover4K => "cutover 4K",
            Trick::ZeroCopyOff => "zerocopy off",
            Trick::RoundRobin => "placement rr",
            Trick::Poll => "sock poll",
            Trick::Uring => "sock uring",
            Trick::Plain => "plain sockets",
        }
    }

    fn group(self) -> GroupOptions {
        let mut g = GroupOptions::default();
        match self {
            Trick::PipeOff => g.pipe_size = 0,
            Trick::Cutover4K => g.cutover = 4096,
            Trick::ZeroCopyOff => {
                g.zerocopy_threshold = None;
                g.sock.zerocopy = false;
            }
            Trick::Poll => g.backend = Backend::Poll,
            Trick::Uring => g.backend = Backend::Uring,
            Trick::Default | Trick::RoundRobin | Trick::Plain => {}
        }
        g
    }
}

/// The base matrix.
fn base_workloads() -> Vec<Workload> {
    let mut v = Vec::new();
    for pattern in [Pattern::RandRead, Pattern::RandWrite] {
        for qd in [1, 32, 128] {
            v.push(Workload { io_size: 4096, pattern, qd });
        }
    }
    v.push(Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 });
    v.push(Workload { io_size: 128 << 10, pattern: Pattern::Write, qd: 16 });
    v
}

const TRICK_4K: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 32 };
const TRICK_128K: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 };

/// Whether this kernel gives a socket group io_uring (else it would silently measure epoll twice).
pub fn uring_available() -> bool {
    let g = GroupOptions { backend: Backend::Uring, ..GroupOptions::default() };
    ff_initiator::IoGroup::new(g).is_ok_and(|g| g.sock_group().backend() == Backend::Uring)
}

/// One measured point.
struct Point {
    workload: Workload,
    trick: Trick,
}

/// Where the two sides run.
pub(crate) struct Pinning {
    pub(crate) target_cpu: Option<usize>,
    pub(crate) perf_cpu: Option<usize>,
}

impl Pinning {
    /// Target on CPU 0 and perf on CPU 1 when there are two CPUs; else nothing pinned.
    pub(crate) fn for_cpus(cpus: usize) -> Pinning {
        if cpus >= 2 {
            Pinning { target_cpu: Some(0), perf_cpu: Some(1) }
        } else {
            Pinning { target_cpu: None, perf_cpu: None }
        }
    }
}

/// One end-to-end run: what ff-perf measured and the target reactors' final counters.
pub(crate) struct E2e {
    pub(crate) perf: PerfReport,
    /// Each reactor's counters after the shutdown flush (whole run: setup, warm-up, window, drain).
    pub(crate) target: Vec<ReactorStats>,
}

/// Runs `w` against a fresh in-process target (1 busy-polling reactor, null namespace) with `group` on
/// both sides: the point runner `bench target` and `bench uring` share.
pub(crate) fn run_e2e(
    w: Workload,
    group: GroupOptions,
    placement: Option<PlacementMode>,
    seconds: f64,
    warmup: f64,
    pin: &Pinning,
) -> Result<E2e> {
    // Like SPDK's null bdev, reads leave the buffer untouched: the bench measures the stack, not memset.
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, "null-nofill".parse()?);
    o.listen = vec!["127.0.0.1:0".parse()?];
    o.discovery_listen.clear();
    o.cores = 1;
    o.poll = PollMode::Busy;
    o.sock = group.clone();
    if let Some(p) = placement {
        o.placement = p;
    }
    let t = ff_target::start(&o).context("starting the target")?;
    if let Some(cpu) = pin.target_cpu {
        // ff-target does not expose reactor affinity: find its thread by name and pin it from here.
        for tid in threads_named("ff-reactor") {
            if let Err(e) = pin_thread(tid, cpu) {
                tracing::warn!("pinning target reactor {tid} to CPU {cpu}: {e}");
            }
        }
    }
    let perf = PerfConfig {
        addr: *t.io_addrs.first().context("no listener")?,
        nqn: DEFAULT_NQN.into(),
        queue_depth: w.qd,
        io_size: w.io_size,
        pattern: w.pattern,
        seconds,
        warmup_seconds: warmup,
        group,
        cpus: pin.perf_cpu.into_iter().collect(),
        // Both sides poll without sleeping, as SPDK's target and perf tool do.
        busy_poll: true,
        ..PerfConfig::default()
    };
    let r = ff_perf::run(&perf);
    let target = t.stop_and_report();
    Ok(E2e { perf: r?, target })
}

fn run_point(cfg: &Config, p: &Point, pin: &Pinning) -> Result<PerfReport> {
    let placement = (p.trick == Trick::RoundRobin).then_some(PlacementMode::RoundRobin);
    Ok(run_e2e(p.workload, p.trick.group(), placement, cfg.seconds, cfg.warmup, pin)?.perf)
}

/// Medians of one point over the repeats.
#[derive(Clone, Debug, Serialize)]
struct Med {
    workload: String,
    trick: &'static str,
    iops: f64,
    mib_s: f64,
    gb_s: f64,
    p50_us: f64,
    p99_us: f64,
    syscalls_per_io: f64,
    perf_cpu_s: f64,
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.repeats >= 1, "at least one repeat");
    let cpus = online_cpus();
    let pin = Pinning::for_cpus(cpus);
    let mut points: Vec<Point> =
        base_workloads().into_iter().map(|w| Point { workload: w, trick: Trick::Default }).collect();
    let uring = cfg.tricks && cfg.uring && uring_available();
    if cfg.tricks {
        let mut tricks = vec![Trick::PipeOff, Trick::Cutover4K, Trick::ZeroCopyOff, Trick::RoundRobin, Trick::Poll];
        if uring {
            tricks.push(Trick::Uring);
        }
        for w in [TRICK_4K, TRICK_128K] {
            for &t in &tricks {
                points.push(Point { workload: w, trick: t });
            }
        }
    }
    // The same-run yardstick for the trick matrix's two workloads.
    for w in [TRICK_4K, TRICK_128K] {
        points.push(Point { workload: w, trick: Trick::Plain });
    }
    let mut rows = Table::new(&[
        "rep",
        "workload",
        "trick",
        "io_size",
        "pattern",
        "qd",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "p999_us",
        "syscalls_per_io",
        "perf_cpu_s",
        "process_cores_busy",
        "perf_sock_backend",
        "errors",
        "failure",
    ]);
    let mut failures = Vec::new();
    for rep in 0..cfg.repeats {
        for p in &points {
            let name = p.workload.name();
            let w = p.workload;
            let r = if p.trick == Trick::Plain {
                // The baseline has IOPS only: every other column stays empty.
                crate::plain::run(w.io_size, w.qd, cfg.seconds, cfg.warmup, pin.target_cpu, pin.perf_cpu).map(|f| {
                    let nan = f64::NAN;
                    PerfReport {
                        iops: f.ops_per_s,
                        mib_s: f.ops_per_s * w.io_size as f64 / f64::from(1u32 << 20),
                        latency: Latency { p50_us: nan, p99_us: nan, p999_us: nan, ..Latency::default() },
                        syscalls_per_io: nan,
                        cpu: Cpu { cores_busy: nan, ..Cpu::default() },
                        ..PerfReport::default()
                    }
                })
            } else {
                run_point(cfg, p, &pin)
            };
            match &r {
                Ok(r) => tracing::info!(rep, workload = %name, trick = p.trick.name(), iops = r.iops as u64, "point"),
                Err(e) => tracing::warn!(rep, workload = %name, trick = p.trick.name(), "point failed: {e:#}"),
            }
            let (iops, mib, p50, p99, p999, sys, cpu, busy, backend, errors, failure) = match r {
                Ok(r) => {
                    let th = r.threads.first();
                    (
                        r.iops,
                        r.mib_s,
                        r.latency.p50_us,
                        r.latency.p99_us,
                        r.latency.p999_us,
                        r.syscalls_per_io,
                        th.map_or(f64::NAN, |t| t.cpu_user_s + t.cpu_sys_s),
                        r.cpu.cores_busy,
                        th.map(|t| t.sock_backend.clone()).unwrap_or_default(),
                        r.errors,
                        String::new(),
                    )
                }
                Err(e) => {
                    failures.push(format!("{name} / {}: {e:#}", p.trick.name()));
                    let n = f64::NAN;
                    (n, n, n, n, n, n, n, n, String::new(), 0, format!("{e:#}"))
                }
            };
            rows.push(vec![
                rep.into(),
                name.into(),
                p.trick.name().into(),
                w.io_size.into(),
                w.pattern.to_string().into(),
                u64::from(w.qd).into(),
                iops.into(),
                mib.into(),
                p50.into(),
                p99.into(),
                p999.into(),
                sys.into(),
                cpu.into(),
                busy.into(),
                backend.into(),
                errors.into(),
                failure.into(),
            ]);
        }
    }
    Ok(build_report(cfg, &points, rows, &pin, uring, cpus, failures))
}

fn build_report(
    cfg: &Config,
    points: &[Point],
    rows: Table,
    pin: &Pinning,
    uring: bool,
    cpus: usize,
    failures: Vec<String>,
) -> Report {
    let mut rep = Report::new(
        "target",
        json!({
            "config": cfg,
            "target": "ff-target in-process, null namespace without read fill (1 GiB), 1 reactor, busy poll; perf busy polls too",
            "perf": "ff-perf, 1 queue on 1 reactor thread, busy poll",
            "target_cpu": pin.target_cpu,
            "perf_cpu": pin.perf_cpu,
            "online_cpus": cpus,
            "uring_in_matrix": uring,
        }),
    );
    let col = |name: &str| rows.col(name).unwrap_or(0);
    let (cw, ct) = (col("workload"), col("trick"));
    let values = |w: &str, t: &str, c: &str| -> Vec<f64> {
        let c = col(c);
        rows.rows
            .iter()
            .filter(|r| matches!(&r[cw], crate::report::Cell::Text(x) if x == w))
            .filter(|r| matches!(&r[ct], crate::report::Cell::Text(x) if x == t))
            .map(|r| r[c].as_f64())
            .collect()
    };
    let mut meds = Vec::new();
    for p in points {
        let (w, t) = (p.workload.name(), p.trick.name());
        let m = |c: &str| median(&values(&w, t, c));
        let mib = m("mib_s");
        meds.push((
            p,
            Med {
                workload: w.clone(),
                trick: t,
                iops: m("iops"),
                mib_s: mib,
                gb_s: mib * (1u64 << 20) as f64 / 1e9,
                p50_us: m("p50_us"),
                p99_us: m("p99_us"),
                syscalls_per_io: m("syscalls_per_io"),
                perf_cpu_s: m("perf_cpu_s"),
            },
        ));
    }
    let default_of =
        |w: &Workload| meds.iter().find(|(p, _)| p.workload == *w && p.trick == Trick::Default).map(|(_, m)| m.clone());
    let mut t = Table::new(&[
        "workload",
        "trick",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "syscalls_per_io",
        "vs_default",
        "vs_plain",
    ]);
    let plain_of =
        |w: &Workload| meds.iter().find(|(p, _)| p.workload == *w && p.trick == Trick::Plain).map(|(_, m)| m.iops);
    let mut tricks_summary = Vec::new();
    let mut plains = Vec::new();
    for (p, m) in &meds {
        let in_matrix = cfg.tricks && p.trick != Trick::Plain && (p.workload == TRICK_4K || p.workload == TRICK_128K);
        let vs = if in_matrix {
            let d = default_of(&p.workload);
            let metric = |x: &Med| if p.workload == TRICK_4K { x.iops } else { x.mib_s };
            d.map_or(f64::NAN, |d| ratio(metric(m), metric(&d)))
        } else {
            f64::NAN
        };
        if in_matrix && p.trick != Trick::Default {
            tricks_summary.push(json!({"workload": m.workload, "trick": m.trick, "vs_default": vs}));
        }
        // Both sides of a ratio to the baseline move the same bytes per I/O, so IOPS compare for 4K and 128K.
        let vs_plain = match plain_of(&p.workload) {
            Some(f) if p.trick == Trick::Default => {
                let r = ratio(m.iops, f);
                plains
                    .push(json!({"workload": m.workload, "plain_iops": f, "ours_iops": m.iops, "ours_over_plain": r}));
                r
            }
            _ => f64::NAN,
        };
        t.push(vec![
            m.workload.clone().into(),
            m.trick.into(),
            m.iops.into(),
            m.mib_s.into(),
            m.p50_us.into(),
            m.p99_us.into(),
            m.syscalls_per_io.into(),
            vs.into(),
            vs_plain.into(),
        ]);
    }
    rep.medians = t;
    rep.notes.push(
        "plain sockets: the same bytes per I/O (72-byte command, 24-byte header + data back) over loopback TCP \
         with no protocol, both ends spinning on plain recv/send on the same CPUs, measured in this run between \
         our points. vs_plain: our IOPS over it. It is what the kernel costs with nothing of ours on top, a \
         yardstick that holds on a fast or a slow day; not a \
         strict bound: at 128K our direct reads into the I/O buffers can beat its plain recv loop."
            .into(),
    );
    rep.notes.push(match (pin.target_cpu, pin.perf_cpu) {
        (Some(tc), Some(pc)) => format!(
            "target: 1 busy-polling reactor pinned to CPU {tc}; perf: 1 queue on 1 busy-polling reactor pinned to \
             CPU {pc} (other engineers' work shares these cores)"
        ),
        _ => format!("{cpus} CPU(s): nothing pinned, target and perf share the core"),
    });
    rep.notes.push(
        "syscalls_per_io: perf-side sock syscalls (waits, readv, sendmsg, error queue) per I/O; the target's \
         counters are not exposed by ff-target. vs_default: IOPS (4K) or MiB/s (128K) over the default row of the \
         same workload, medians of this run; both sides get the toggled option."
            .into(),
    );
    if cfg.tricks && !uring {
        rep.notes.push("sock uring: not in the matrix (io_uring unavailable here, or --no-uring)".into());
    }
    for f in &failures {
        rep.notes.push(format!("FAILED point: {f}"));
    }
    let series = |pattern: Pattern| Series {
        name: format!("4K {pattern}"),
        points: meds
            .iter()
            .filter(|(p, _)| p.trick == Trick::Default && p.workload.io_size == 4096 && p.workload.pattern == pattern)
            .map(|(p, m)| (f64::from(p.workload.qd), m.iops))
            .collect(),
    };
    rep.plots.push(Plot {
        file: "iops_by_qd.svg".into(),
        title: "target: 4K IOPS by queue depth (1 busy-polling target core, null namespace)".into(),
        x_label: "queue depth (log scale)".into(),
        y_label: "IOPS".into(),
        log_x: true,
        log_y: false,
        x_bytes: false,
        series: vec![series(Pattern::RandRead), series(Pattern::RandWrite)],
    });
    rep.summary = json!({
        "medians": meds.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "tricks": tricks_summary,
        "plain_sockets": plains,
        "failures": failures,
    });
    rep.rows = rows;
    rep
}
