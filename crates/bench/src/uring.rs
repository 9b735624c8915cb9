//! `uring`: io_uring vs epoll end to end through our target, on `bench target`'s point runner
//! (one busy-polling target core, ff-perf busy-polling on the other, null namespace, both ends on the
//! same sock options).
//!
//! - Part 1, the queue-depth sweep: 4K randread at QD 1..128, both ends on epoll vs both on io_uring
//!   (every uring feature at its default): IOPS, IOPS per busy core, syscalls per I/O on each side and
//!   io_uring_enter calls per I/O.
//! - Part 2, features in turn at 4K randread QD32 and 128K read QD16: epoll, then uring minimal (no
//!   bundles, no fixed files, no send_zc, a small buffer ring), then the default buffer ring, bundles,
//!   fixed files and send_zc added one at a time; the last step is the uring default. Each is a ratio to
//!   epoll measured in the same run.
//!
//! Points are interleaved within each repeat; tables show medians. The verdict on the goal
//! (< 0.1 io_uring_enter per 4K I/O at QD32, more IOPS per core than epoll) is stated in the notes.

use crate::report::{Cell, Plot, Report, Series, Table};
use crate::stats::{median, ratio};
use crate::target::{Pinning, Workload, run_e2e, uring_available};
use anyhow::{Result, ensure};
use ff_perf::Pattern;
use ff_perf::affinity::online_cpus;
use ff_sock::{Backend, GroupOptions, UringOptions};
use serde::Serialize;
use serde_json::json;

/// The goal: fewer io_uring_enter calls than this per 4K I/O at QD32.
pub const GOAL_ENTERS_PER_IO: f64 = 0.1;
/// The queue depth the goal is stated at.
pub const GOAL_QD: u16 = 32;

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Repeats per point (medians over them).
    pub repeats: usize,
    /// Measured seconds per point.
    pub seconds: f64,
    /// Warm-up seconds per point (excluded from perf's figures).
    pub warmup: f64,
    /// Queue depths of the 4K randread sweep.
    pub qds: Vec<u16>,
    /// Run part 2 (features in turn) too.
    pub features: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { repeats: 3, seconds: 1.5, warmup: 0.5, qds: vec![1, 4, 16, 32, 64, 128], features: true }
    }
}

impl Config {
    /// A smoke run: one short repeat, QD 1/32/128 only.
    pub fn quick() -> Config {
        Config { repeats: 1, seconds: 0.3, warmup: 0.1, qds: vec![1, GOAL_QD, 128], features: true }
    }
}

/// One sock configuration, applied to target and perf alike. The uring steps are cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Setup {
    /// epoll with every default.
    Epoll,
    /// io_uring with bundles, fixed files and send_zc off and a 64 x 4 KiB buffer ring. Multishot
    /// receive stays on: ff-sock has no switch for it.
    UringMinimal,
    /// + the default buffer ring (1024 x 16 KiB).
    BufRing,
    /// + multishot receive bundles (several buffers per completion).
    Bundles,
    /// + the fixed-file table.
    FixedFiles,
    /// + send_zc at the default 4 KiB threshold: the uring default.
    SendZc,
}

/// Part 2's steps, in order.
pub const STEPS: [Setup; 6] =
    [Setup::Epoll, Setup::UringMinimal, Setup::BufRing, Setup::Bundles, Setup::FixedFiles, Setup::SendZc];

impl Setup {
    /// Row label.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Epoll => "epoll",
            Setup::UringMinimal => "uring minimal",
            Setup::BufRing => "+ buffer ring",
            Setup::Bundles => "+ bundles",
            Setup::FixedFiles => "+ fixed files",
            Setup::SendZc => "+ send_zc (uring default)",
        }
    }

    /// The group options both ends get.
    pub fn group(self) -> GroupOptions {
        let d = GroupOptions::default();
        if self == Setup::Epoll {
            return d;
        }
        let mut g = GroupOptions {
            backend: Backend::Uring,
            zerocopy_threshold: None,
            uring: UringOptions { bundles: false, fixed_files: 0, bufs: 64, buf_size: 4096, ..d.uring.clone() },
            ..d.clone()
        };
        let step = STEPS.iter().position(|&s| s == self).unwrap_or(0);
        if step >= 2 {
            (g.uring.bufs, g.uring.buf_size) = (d.uring.bufs, d.uring.buf_size);
        }
        if step >= 3 {
            g.uring.bundles = d.uring.bundles;
        }
        if step >= 4 {
            g.uring.fixed_files = d.uring.fixed_files;
        }
        if step >= 5 {
            g.zerocopy_threshold = d.zerocopy_threshold;
        }
        g
    }
}

const FEAT_4K: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: GOAL_QD };
const FEAT_128K: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 };

/// One measured point: a workload under a setup (the QD sweep's uring is [`Setup::SendZc`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Point {
    workload: Workload,
    setup: Setup,
}

/// The distinct points in run order: the sweep (epoll and uring alternating by QD), then part 2 minus
/// the points the sweep already measures.
fn points(cfg: &Config) -> Vec<Point> {
    let mut v = Vec::new();
    for &qd in &cfg.qds {
        for setup in [Setup::Epoll, Setup::SendZc] {
            v.push(Point { workload: Workload { io_size: 4096, pattern: Pattern::RandRead, qd }, setup });
        }
    }
    if cfg.features {
        for w in [FEAT_4K, FEAT_128K] {
            for setup in STEPS {
                let p = Point { workload: w, setup };
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
    }
    v
}

/// The raw rows' columns.
const COLUMNS: [&str; 24] = [
    "rep",
    "workload",
    "setup",
    "io_size",
    "qd",
    "iops",
    "mib_s",
    "p50_us",
    "p99_us",
    "process_cores_busy",
    "iops_per_core",
    "perf_ios",
    "perf_syscalls",
    "perf_recv_syscalls",
    "perf_syscalls_per_io",
    "perf_enters_per_io",
    "perf_sock_backend",
    "target_sock_backend",
    "target_ios",
    "target_uring_enters",
    "target_enters_per_io",
    "target_syscalls_per_io",
    "target_uring_enobufs",
    "failure",
];

fn measure(cfg: &Config, rep: usize, p: &Point, pin: &Pinning) -> (Vec<Cell>, Option<String>) {
    let w = p.workload;
    let name = w.name();
    let head: Vec<Cell> =
        vec![rep.into(), name.clone().into(), p.setup.name().into(), w.io_size.into(), u64::from(w.qd).into()];
    let r = run_e2e(w, p.setup.group(), None, cfg.seconds, cfg.warmup, pin);
    let mut row = head;
    match r {
        Ok(e) => {
            let r = &e.perf;
            tracing::info!(rep, workload = %name, setup = p.setup.name(), iops = r.iops as u64, "point");
            let th = r.threads.first();
            let (sys, recv) = (th.map_or(0, |t| t.syscalls), th.map_or(0, |t| t.recv_syscalls));
            let backend = th.map(|t| t.sock_backend.clone()).unwrap_or_default();
            // ff-perf reports the group's syscall total, not uring_enters. On io_uring that total is the
            // enters plus synchronous socket calls (receives, non-SQE sends, error queue, file-table
            // registration); receives are reported apart and the others do not occur in the window here,
            // so syscalls minus receives is the enter count (an upper bound if they ever did).
            let enters = if backend == "uring" { sys.saturating_sub(recv) } else { 0 };
            let per_io = |x: u64| if r.ios == 0 { f64::NAN } else { x as f64 / r.ios as f64 };
            let mut tc = ff_sock::GroupCounters::default();
            let (mut t_ios, mut t_backend) = (0u64, String::new());
            for s in &e.target {
                let c = s.sock;
                tc.uring_enters += c.uring_enters;
                tc.uring_enobufs += c.uring_enobufs;
                tc.waits += c.waits;
                tc.ctl_calls += c.ctl_calls;
                tc.sock += c.sock;
                t_ios += s.devs.iter().flatten().map(|d| d.reads + d.writes).sum::<u64>();
                t_backend = s.backend.map(|b| b.to_string()).unwrap_or_default();
            }
            let t_per_io = |x: u64| if t_ios == 0 { f64::NAN } else { x as f64 / t_ios as f64 };
            row.extend([
                r.iops.into(),
                r.mib_s.into(),
                r.latency.p50_us.into(),
                r.latency.p99_us.into(),
                r.cpu.cores_busy.into(),
                ratio(r.iops, r.cpu.cores_busy).into(),
                r.ios.into(),
                sys.into(),
                recv.into(),
                per_io(sys).into(),
                per_io(enters).into(),
                backend.into(),
                t_backend.into(),
                t_ios.into(),
                tc.uring_enters.into(),
                t_per_io(tc.uring_enters).into(),
                t_per_io(tc.syscalls()).into(),
                tc.uring_enobufs.into(),
                String::new().into(),
            ]);
            (row, None)
        }
        Err(e) => {
            tracing::warn!(rep, workload = %name, setup = p.setup.name(), "point failed: {e:#}");
            let n = f64::NAN;
            row.extend([n, n, n, n, n, n].map(Cell::from));
            row.extend([Cell::Int(0), Cell::Int(0), Cell::Int(0), n.into(), n.into(), "".into(), "".into()]);
            row.extend([Cell::Int(0), Cell::Int(0), n.into(), n.into(), Cell::Int(0), format!("{e:#}").into()]);
            (row, Some(format!("{name} / {}: {e:#}", p.setup.name())))
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.repeats >= 1, "at least one repeat");
    ensure!(!cfg.qds.is_empty(), "at least one queue depth");
    ensure!(uring_available(), "io_uring is not available here: nothing to compare");
    let cpus = online_cpus();
    let pin = Pinning::for_cpus(cpus);
    let pts = points(cfg);
    let load_before = loadavg();
    let mut rows = Table::new(&COLUMNS);
    let mut failures = Vec::new();
    for rep in 0..cfg.repeats {
        for p in &pts {
            let (row, failed) = measure(cfg, rep, p, &pin);
            rows.push(row);
            failures.extend(failed);
        }
    }
    let mut rep = Report::new(
        "uring",
        json!({
            "config": cfg,
            "target": "ff-target in-process, null namespace without read fill (1 GiB), 1 reactor, busy poll",
            "perf": "ff-perf, 1 queue on 1 reactor thread, busy poll",
            "target_cpu": pin.target_cpu,
            "perf_cpu": pin.perf_cpu,
            "online_cpus": cpus,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "setups": STEPS.iter().map(|s| json!({"setup": s.name(), "group": s.group().to_string()})).collect::<Vec<_>>(),
        }),
    );
    rep.rows = rows;
    summarise(&mut rep, cfg, &pts, failures);
    Ok(rep)
}

/// Medians of one point.
#[derive(Clone, Debug, Default, Serialize)]
struct Med {
    workload: String,
    setup: &'static str,
    qd: u16,
    iops: f64,
    mib_s: f64,
    p50_us: f64,
    iops_per_core: f64,
    perf_syscalls_per_io: f64,
    perf_enters_per_io: f64,
    target_enters_per_io: f64,
    target_syscalls_per_io: f64,
}

fn summarise(rep: &mut Report, cfg: &Config, pts: &[Point], failures: Vec<String>) {
    let rows = &rep.rows;
    let col = |n: &str| rows.col(n).unwrap_or(0);
    let (cw, cs) = (col("workload"), col("setup"));
    let med_of = |p: &Point| -> Med {
        let (w, s) = (p.workload.name(), p.setup.name());
        let m = |c: &str| {
            let c = col(c);
            let v: Vec<f64> = rows
                .rows
                .iter()
                .filter(|r| matches!(&r[cw], Cell::Text(x) if *x == w) && matches!(&r[cs], Cell::Text(x) if x == s))
                .map(|r| r[c].as_f64())
                .collect();
            median(&v)
        };
        Med {
            workload: w.clone(),
            setup: s,
            qd: p.workload.qd,
            iops: m("iops"),
            mib_s: m("mib_s"),
            p50_us: m("p50_us"),
            iops_per_core: m("iops_per_core"),
            perf_syscalls_per_io: m("perf_syscalls_per_io"),
            perf_enters_per_io: m("perf_enters_per_io"),
            target_enters_per_io: m("target_enters_per_io"),
            target_syscalls_per_io: m("target_syscalls_per_io"),
        }
    };
    let meds: Vec<(Point, Med)> = pts.iter().map(|p| (*p, med_of(p))).collect();
    let find = |w: Workload, s: Setup| meds.iter().find(|(p, _)| p.workload == w && p.setup == s).map(|(_, m)| m);
    let mut t = Table::new(&[
        "part",
        "workload",
        "setup",
        "iops",
        "mib_s",
        "p50_us",
        "iops_per_core",
        "vs_epoll",
        "per_core_vs_epoll",
        "perf_syscalls_per_io",
        "perf_enters_per_io",
        "target_enters_per_io",
        "target_syscalls_per_io",
    ]);
    let mut push = |part: &str, w: Workload, s: Setup| {
        let (Some(m), e) = (find(w, s), find(w, Setup::Epoll)) else { return };
        let vs = e.map_or(f64::NAN, |e| ratio(m.iops, e.iops));
        let vs_core = e.map_or(f64::NAN, |e| ratio(m.iops_per_core, e.iops_per_core));
        let setup = if part == "qd" && s == Setup::SendZc { "uring" } else { m.setup };
        t.push(vec![
            part.into(),
            m.workload.clone().into(),
            setup.into(),
            m.iops.into(),
            m.mib_s.into(),
            m.p50_us.into(),
            m.iops_per_core.into(),
            vs.into(),
            vs_core.into(),
            m.perf_syscalls_per_io.into(),
            m.perf_enters_per_io.into(),
            m.target_enters_per_io.into(),
            m.target_syscalls_per_io.into(),
        ]);
    };
    let sweep = |qd| Workload { io_size: 4096, pattern: Pattern::RandRead, qd };
    for &qd in &cfg.qds {
        push("qd", sweep(qd), Setup::Epoll);
        push("qd", sweep(qd), Setup::SendZc);
    }
    if cfg.features {
        for w in [FEAT_4K, FEAT_128K] {
            for s in STEPS {
                push("features", w, s);
            }
        }
    }
    rep.medians = t;

    // The verdict, at 4K randread QD32.
    let goal = find(FEAT_4K, Setup::SendZc).zip(find(FEAT_4K, Setup::Epoll));
    let verdict = goal.map(|(u, e)| {
        let enters_ok = u.perf_enters_per_io < GOAL_ENTERS_PER_IO && u.target_enters_per_io < GOAL_ENTERS_PER_IO;
        let core_ok = u.iops_per_core > e.iops_per_core;
        json!({
            "perf_enters_per_io": u.perf_enters_per_io,
            "target_enters_per_io": u.target_enters_per_io,
            "enters_goal_met": enters_ok,
            "uring_iops_per_core": u.iops_per_core,
            "epoll_iops_per_core": e.iops_per_core,
            "uring_over_epoll_per_core": ratio(u.iops_per_core, e.iops_per_core),
            "per_core_goal_met": core_ok,
            "goal_met": enters_ok && core_ok,
        })
    });
    let notes = &mut rep.notes;
    match &verdict {
        Some(v) => {
            let yes = |b: &serde_json::Value| if b.as_bool() == Some(true) { "MET" } else { "NOT MET" };
            notes.push(format!(
                "VERDICT (io_uring goal, 4K randread QD32): io_uring_enter per I/O {:.3} perf side, {:.3} target side \
                 (goal < {GOAL_ENTERS_PER_IO} on both): {}; IOPS per busy core uring {:.0} vs epoll {:.0} ({:.2}x): {}. \
                 Goal {}.",
                v["perf_enters_per_io"].as_f64().unwrap_or(f64::NAN),
                v["target_enters_per_io"].as_f64().unwrap_or(f64::NAN),
                yes(&v["enters_goal_met"]),
                v["uring_iops_per_core"].as_f64().unwrap_or(f64::NAN),
                v["epoll_iops_per_core"].as_f64().unwrap_or(f64::NAN),
                v["uring_over_epoll_per_core"].as_f64().unwrap_or(f64::NAN),
                yes(&v["per_core_goal_met"]),
                yes(&v["goal_met"]),
            ));
        }
        None => notes.push(format!("VERDICT: not measured (QD{GOAL_QD} is not in --qd)")),
    }
    notes.push(
        "iops_per_core: IOPS over the process's busy cores (getrusage over the window: target reactor + perf \
         thread, both busy polling, so about 2 cores whatever the backend). vs_epoll, per_core_vs_epoll: over \
         the epoll row of the same workload, medians of this run."
            .into(),
    );
    notes.push(
        "perf_*: the perf thread's socket group over the measured window. perf_enters_per_io is its syscalls \
         minus its receive syscalls (ff-perf reports the group's syscall total, not uring_enters itself; on \
         io_uring the remainder is the enters). target_*: the target reactor's counters over the whole run \
         (setup, warm-up, window, drain) per namespace I/O, exact uring_enters."
            .into(),
    );
    notes.push(
        "Part 2 steps are cumulative; '+ send_zc (uring default)' is GroupOptions::default() on io_uring, the \
         QD sweep's 'uring'. Multishot receive cannot be turned off in ff-sock (GroupOptions has no switch), so \
         'uring minimal' already receives multishot into a 64 x 4 KiB buffer ring; '+ bundles' is multishot \
         with bundles. send_zc on loopback: the kernel copies anyway."
            .into(),
    );
    for f in &failures {
        notes.push(format!("FAILED point: {f}"));
    }
    let line = |s: Setup, label: &str, y: fn(&Med) -> f64| Series {
        name: label.to_string(),
        points: meds
            .iter()
            .filter(|(p, _)| p.setup == s && p.workload.io_size == 4096 && p.workload.pattern == Pattern::RandRead)
            .filter(|(p, _)| cfg.qds.contains(&p.workload.qd))
            .map(|(p, m)| (f64::from(p.workload.qd), y(m)))
            .collect(),
    };
    rep.plots.push(Plot {
        file: "iops_by_qd.svg".into(),
        title: "uring vs epoll: 4K randread IOPS by queue depth (target and perf on one core each)".into(),
        x_label: "queue depth (log scale)".into(),
        y_label: "IOPS".into(),
        log_x: true,
        log_y: false,
        x_bytes: false,
        series: vec![line(Setup::Epoll, "epoll", |m| m.iops), line(Setup::SendZc, "uring (default)", |m| m.iops)],
    });
    rep.plots.push(Plot {
        file: "syscalls_by_qd.svg".into(),
        title: "uring vs epoll: syscalls per 4K randread I/O by queue depth".into(),
        x_label: "queue depth (log scale)".into(),
        y_label: "syscalls per I/O (log scale)".into(),
        log_x: true,
        log_y: true,
        x_bytes: false,
        series: vec![
            line(Setup::Epoll, "epoll: perf syscalls", |m| m.perf_syscalls_per_io),
            line(Setup::Epoll, "epoll: target syscalls", |m| m.target_syscalls_per_io),
            line(Setup::SendZc, "uring: perf io_uring_enter", |m| m.perf_enters_per_io),
            line(Setup::SendZc, "uring: target io_uring_enter", |m| m.target_enters_per_io),
        ],
    });
    rep.summary = json!({
        "medians": meds.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "verdict": verdict,
        "failures": failures,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_cumulative_and_end_at_the_default() {
        assert_eq!(Setup::Epoll.group(), GroupOptions::default());
        let full = GroupOptions { backend: Backend::Uring, ..GroupOptions::default() };
        assert_eq!(Setup::SendZc.group(), full);
        let m = Setup::UringMinimal.group();
        assert!(!m.uring.bundles && m.uring.fixed_files == 0 && m.zerocopy_threshold.is_none());
        assert!(m.uring.bufs < full.uring.bufs);
        assert!(Setup::Bundles.group().uring.bundles && Setup::Bundles.group().uring.fixed_files == 0);
        // The sweep and part 2 share their QD32 points.
        let pts = points(&Config::default());
        assert_eq!(pts.len(), 6 * 2 + 2 * STEPS.len() - 2);
    }
}
