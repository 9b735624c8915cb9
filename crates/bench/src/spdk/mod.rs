//! `spdk`: our NVMe/TCP target side by side with SPDK's `nvmf_tgt`, every figure from the same run.
//!
//! Each target runs as its own process pinned to the target CPU (ours: `ferrofabric target`, busy poll,
//! with the default and with `--c2h-success always`, and in event mode; SPDK's: `nvmf_tgt` with its
//! TCP transport's defaults and with `c2h_success` off), all on a 1 GiB null namespace of 4 KiB blocks.
//! They are started once; the ones not under test are parked with SIGSTOP. Clients run on the other
//! CPU: SPDK's `spdk_nvme_perf` against every target and our `ff-perf` against ours and SPDK's default.
//!
//! This machine is bimodal (for minutes at a time every run is either fast or about half speed), so a
//! point is never one run: each round measures every cell once, the cells compared with each other back
//! to back, the order reversed every other round; a comparison is the median of its per-round ratios.
//! A target-bound mode repeats the key cells with the target under a CPU quota (a cgroup), so the target
//! and not the client sets the figure. A last round counts syscalls (`perf stat`) without being timed.

pub mod clients;
pub mod procs;

use crate::report::{Plot, Report, Series, Table};
use crate::sidebyside::{self, Comparisons};
use crate::stats::{PairRatios, median, round_order};
use crate::target::Workload;
use anyhow::{Context, Result, ensure};
use clients::{ClientKind, Measured, Probe, Run};
use ff_perf::Pattern;
use procs::{CpuQuota, SpdkBuild, TargetKind, TargetProc};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// SPDK build tree; `None`: `$FF_SPDK_DIR`, else the SPDK columns say "not built".
    pub spdk_dir: Option<PathBuf>,
    /// The `ferrofabric` binary that serves our targets.
    pub ff_bin: PathBuf,
    /// Timed samples per cell (rounds).
    pub samples: usize,
    /// Measured seconds per sample.
    pub seconds: u32,
    /// Warm-up seconds before each sample's measurement.
    pub warmup: u32,
    /// Target-bound mode: the target's CPU quota in percent of one core (`None`: skip the mode).
    pub quota_percent: Option<u32>,
    /// Count syscalls in one extra, untimed round.
    pub syscalls: bool,
    /// Profile targets and clients (perf record) in one more untimed round, 4K randread QD32 and QD1.
    pub profile: bool,
    /// Also drive the targets with ff-perf.
    pub ff_client: bool,
    /// Measure our event-mode target at QD1.
    pub event: bool,
    /// Only 4K randread QD32 and 128K read QD16.
    pub short_matrix: bool,
    /// CPU of the targets.
    pub target_cpu: usize,
    /// CPU of the clients.
    pub client_cpu: usize,
}

impl Config {
    /// The full run: 12 samples of 2 s after 1 s of warm-up per cell, 50% quota mode, syscall round.
    pub fn new(ff_bin: PathBuf) -> Config {
        Config {
            spdk_dir: None,
            ff_bin,
            samples: 12,
            seconds: 2,
            warmup: 1,
            quota_percent: Some(50),
            syscalls: true,
            profile: true,
            ff_client: true,
            event: true,
            short_matrix: false,
            target_cpu: 0,
            // One CPU only: both sides share it (the figures then say little, but the run works).
            client_cpu: usize::from(ff_perf::affinity::online_cpus() > 1),
        }
    }

    /// A smoke run: two 1 s samples of the short matrix, no quota, no syscall round, no event mode.
    pub fn quick(ff_bin: PathBuf) -> Config {
        Config {
            samples: 2,
            seconds: 1,
            warmup: 0,
            quota_percent: None,
            syscalls: false,
            profile: false,
            event: false,
            short_matrix: true,
            ..Config::new(ff_bin)
        }
    }
}

/// Whether the target runs free or under the CPU quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
enum Mode {
    Free,
    Quota,
}

const RR4K_QD1: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 1 };
const RR4K_QD32: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 32 };
const RR4K_QD128: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 128 };
const RW4K_QD32: Workload = Workload { io_size: 4096, pattern: Pattern::RandWrite, qd: 32 };
const R128K_QD16: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 };
const W128K_QD16: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Write, qd: 16 };

/// One measured combination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CellKey {
    workload: Workload,
    mode: Mode,
    target: TargetKind,
    client: ClientKind,
}

/// Cells run back to back in every round: one workload in one mode.
struct Group {
    workload: Workload,
    mode: Mode,
    cells: Vec<(TargetKind, ClientKind)>,
}

fn plan(cfg: &Config) -> Vec<Group> {
    use ClientKind::{FfPerf, SpdkPerf};
    use TargetKind::{Ours, OursAlways, OursEvent, Spdk, SpdkC2hOff};
    let pair = |clients: &[ClientKind]| -> Vec<(TargetKind, ClientKind)> {
        clients.iter().flat_map(|&c| [(Ours, c), (Spdk, c)]).collect()
    };
    let clients: Vec<ClientKind> = if cfg.ff_client { vec![SpdkPerf, FfPerf] } else { vec![SpdkPerf] };
    let mut qd32 = vec![(Ours, SpdkPerf), (OursAlways, SpdkPerf), (Spdk, SpdkPerf), (SpdkC2hOff, SpdkPerf)];
    if cfg.ff_client {
        qd32.extend([(Ours, FfPerf), (Spdk, FfPerf)]);
    }
    let mut groups = vec![Group { workload: RR4K_QD32, mode: Mode::Free, cells: qd32.clone() }];
    groups.push(Group { workload: R128K_QD16, mode: Mode::Free, cells: pair(&clients) });
    if !cfg.short_matrix {
        let mut qd1 = pair(&clients);
        if cfg.event {
            qd1.push((OursEvent, SpdkPerf));
        }
        groups.insert(0, Group { workload: RR4K_QD1, mode: Mode::Free, cells: qd1 });
        for w in [RR4K_QD128, RW4K_QD32, W128K_QD16] {
            groups.push(Group { workload: w, mode: Mode::Free, cells: pair(&clients) });
        }
    }
    if cfg.quota_percent.is_some() {
        let four = vec![(Ours, SpdkPerf), (OursAlways, SpdkPerf), (Spdk, SpdkPerf), (SpdkC2hOff, SpdkPerf)];
        groups.push(Group { workload: RR4K_QD32, mode: Mode::Quota, cells: four });
        if !cfg.short_matrix {
            for w in [RW4K_QD32, R128K_QD16] {
                groups.push(Group { workload: w, mode: Mode::Quota, cells: vec![(Ours, SpdkPerf), (Spdk, SpdkPerf)] });
            }
        }
    }
    groups
}

/// How a comparison reads its two cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    /// IOPS of a over IOPS of b.
    Iops,
    /// p50 latency of b over p50 of a (above 1: a is faster).
    P50,
}

/// A ratio the issue sets a goal for (or that the reader needs next to them).
struct Comparison {
    name: &'static str,
    workload: Workload,
    mode: Mode,
    a: (TargetKind, ClientKind),
    b: (TargetKind, ClientKind),
    metric: Metric,
    goal: Option<f64>,
}

fn comparisons(groups: &[Group]) -> Vec<Comparison> {
    use ClientKind::{FfPerf, SpdkPerf};
    use TargetKind::{Ours, OursAlways, OursEvent, Spdk, SpdkC2hOff};
    let has = |w: Workload, m: Mode, c: (TargetKind, ClientKind)| {
        groups.iter().any(|g| g.workload == w && g.mode == m && g.cells.contains(&c))
    };
    let mut out = Vec::new();
    let mut add = |name, workload, mode, a, b, metric, goal| {
        if has(workload, mode, a) && has(workload, mode, b) {
            out.push(Comparison { name, workload, mode, a, b, metric, goal });
        }
    };
    for mode in [Mode::Free, Mode::Quota] {
        add("c2h=always vs spdk", RR4K_QD32, mode, (OursAlways, SpdkPerf), (Spdk, SpdkPerf), Metric::Iops, Some(1.15));
        add(
            "default vs spdk c2h off",
            RR4K_QD32,
            mode,
            (Ours, SpdkPerf),
            (SpdkC2hOff, SpdkPerf),
            Metric::Iops,
            Some(1.15),
        );
        add("default vs spdk default", RR4K_QD32, mode, (Ours, SpdkPerf), (Spdk, SpdkPerf), Metric::Iops, None);
        for w in [RW4K_QD32, R128K_QD16] {
            add("vs spdk", w, mode, (Ours, SpdkPerf), (Spdk, SpdkPerf), Metric::Iops, Some(1.1));
        }
    }
    for w in [RR4K_QD1, RR4K_QD128, W128K_QD16] {
        add("vs spdk", w, Mode::Free, (Ours, SpdkPerf), (Spdk, SpdkPerf), Metric::Iops, None);
    }
    add("QD1 p50 (spdk's over ours)", RR4K_QD1, Mode::Free, (Ours, SpdkPerf), (Spdk, SpdkPerf), Metric::P50, Some(1.0));
    add("event vs spdk busy", RR4K_QD1, Mode::Free, (OursEvent, SpdkPerf), (Spdk, SpdkPerf), Metric::Iops, Some(0.8));
    for w in [RR4K_QD1, RR4K_QD32, RR4K_QD128, RW4K_QD32, R128K_QD16, W128K_QD16] {
        add(
            "initiator: ff perf vs spdk_nvme_perf on spdk",
            w,
            Mode::Free,
            (Spdk, FfPerf),
            (Spdk, SpdkPerf),
            Metric::Iops,
            Some(1.0),
        );
    }
    for w in [RR4K_QD1, RR4K_QD32, RR4K_QD128, RW4K_QD32, R128K_QD16, W128K_QD16] {
        add("ff perf client: ours vs spdk", w, Mode::Free, (Ours, FfPerf), (Spdk, FfPerf), Metric::Iops, None);
    }
    out
}

/// What a round is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoundKind {
    /// Figures.
    Timed,
    /// Syscall counts (perf stat slows every syscall: no figure of it is used).
    Syscalls,
    /// perf record of target and client (likewise).
    Profile,
}

impl RoundKind {
    fn name(self) -> &'static str {
        match self {
            RoundKind::Timed => "timed",
            RoundKind::Syscalls => "syscalls",
            RoundKind::Profile => "profile",
        }
    }
}

/// One sample of one cell.
#[derive(Clone, Debug)]
struct Sample {
    round: usize,
    kind: RoundKind,
    key: CellKey,
    m: Result<Measured, String>,
    target_cpu: f64,
}

/// The running targets, by kind, and why a kind could not run.
struct Targets {
    procs: HashMap<TargetKind, TargetProc>,
    missing: HashMap<TargetKind, String>,
}

impl Targets {
    fn start(
        cfg: &Config,
        spdk: Option<&SpdkBuild>,
        spdk_missing: &str,
        kinds: &[TargetKind],
        logs: &std::path::Path,
    ) -> Targets {
        let mut t = Targets { procs: HashMap::new(), missing: HashMap::new() };
        for (i, &k) in kinds.iter().enumerate() {
            let started = if k.is_spdk() {
                match spdk {
                    Some(b) => TargetProc::start_spdk(b, k, cfg.target_cpu, 4100 + i as u32, logs),
                    None => Err(anyhow::anyhow!("{spdk_missing}")),
                }
            } else {
                TargetProc::start_ours(&cfg.ff_bin, k, cfg.target_cpu, logs)
            };
            match started.and_then(|p| p.pause().map(|()| p)) {
                Ok(p) => {
                    tracing::info!(target = k.name(), addr = %p.daemon.addr, pid = p.pid(), "target started");
                    t.procs.insert(k, p);
                }
                Err(e) => {
                    tracing::warn!(target = k.name(), "not run: {e:#}");
                    t.missing.insert(k, format!("{e:#}"));
                }
            }
        }
        t
    }
}

/// Measures one cell once.
fn measure(
    cfg: &Config,
    spdk: Option<&SpdkBuild>,
    targets: &mut Targets,
    quota: Option<&CpuQuota>,
    key: CellKey,
    kind: RoundKind,
    logs: &std::path::Path,
) -> (Result<Measured, String>, f64) {
    if let Some(why) = targets.missing.get(&key.target) {
        return (Err(why.clone()), f64::NAN);
    }
    let Some(t) = targets.procs.get_mut(&key.target) else { return (Err("not started".into()), f64::NAN) };
    if !t.alive() {
        let why = format!("{} exited; see {}", key.target.name(), t.daemon.log.display());
        targets.missing.insert(key.target, why.clone());
        return (Err(why), f64::NAN);
    }
    let pid = t.pid();
    let run = Run {
        workload: key.workload,
        addr: t.daemon.addr,
        nqn: key.target.nqn(),
        seconds: cfg.seconds,
        warmup: cfg.warmup,
        cpu: cfg.client_cpu,
        shm_id: 4200,
        probe: match kind {
            RoundKind::Timed => Probe::None,
            RoundKind::Syscalls => Probe::Syscalls { target: pid },
            RoundKind::Profile => Probe::Profile { target: pid, dir: logs.to_path_buf() },
        },
        tls: None,
    };
    let quota = if key.mode == Mode::Quota { quota } else { None };
    if key.mode == Mode::Quota && quota.is_none() {
        return (Err("no quota cgroup".into()), f64::NAN);
    }
    crate::sidebyside::measure_parked(&t.daemon, quota, || match key.client {
        ClientKind::SpdkPerf => clients::spdk_perf(spdk.context("spdk_nvme_perf needs the SPDK build")?, &run),
        ClientKind::FfPerf => clients::ff_perf(&run),
    })
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.samples >= 1 && cfg.seconds >= 1, "at least one sample of at least one second");
    let spdk = SpdkBuild::find(cfg.spdk_dir.as_deref())?;
    let logs = std::env::temp_dir().join(format!("ff-bench-spdk-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let mut spdk_missing = "not built (give --spdk-dir or FF_SPDK_DIR)".to_string();
    if spdk.is_some()
        && let Err(e) = procs::ensure_hugepages(2048)
    {
        spdk_missing = format!("not run: {e:#}");
    }
    let spdk_usable = spdk.is_some() && spdk_missing.starts_with("not built");
    let spdk = if spdk_usable { spdk } else { None };
    let groups = plan(cfg);
    let mut kinds: Vec<TargetKind> = Vec::new();
    for g in &groups {
        for (t, _) in &g.cells {
            if !kinds.contains(t) {
                kinds.push(*t);
            }
        }
    }
    let quota = match cfg.quota_percent {
        Some(p) => Some(CpuQuota::new(p).context("target-bound mode")?),
        None => None,
    };
    let counting = cfg.syscalls && procs::syscall_counting_works();
    let profiling = cfg.profile && procs::profiling_works(&logs);
    let mut targets = Targets::start(cfg, spdk.as_ref(), &spdk_missing, &kinds, &logs);
    let mut samples = Vec::new();
    let mut kinds_of_rounds = vec![RoundKind::Timed; cfg.samples];
    if counting {
        kinds_of_rounds.push(RoundKind::Syscalls);
    }
    if profiling {
        kinds_of_rounds.push(RoundKind::Profile);
    }
    for (round, &kind) in kinds_of_rounds.iter().enumerate() {
        // Every other round runs the cells backwards, so no cell always follows the same one.
        let all: Vec<(usize, usize)> =
            groups.iter().enumerate().flat_map(|(gi, g)| (0..g.cells.len()).map(move |ci| (gi, ci))).collect();
        for (gi, ci) in round_order(all.len(), round).into_iter().map(|i| all[i]) {
            let g = &groups[gi];
            // The profile round looks at the 4K randread cells only: the ones the goals are about.
            if kind == RoundKind::Profile && (g.mode != Mode::Free || ![RR4K_QD1, RR4K_QD32].contains(&g.workload)) {
                continue;
            }
            let (target, client) = g.cells[ci];
            let key = CellKey { workload: g.workload, mode: g.mode, target, client };
            let (m, cpu) = measure(cfg, spdk.as_ref(), &mut targets, quota.as_ref(), key, kind, &logs);
            match &m {
                Ok(m) => tracing::info!(
                    round,
                    workload = %g.workload.name(),
                    target = target.name(),
                    client = client.name(),
                    iops = m.iops as u64,
                    "sample"
                ),
                Err(e) if !targets.missing.contains_key(&target) || round == 0 => {
                    tracing::warn!(round, target = target.name(), client = client.name(), "sample failed: {e}")
                }
                Err(_) => {}
            }
            samples.push(Sample { round, kind, key, m, target_cpu: cpu });
        }
    }
    drop(targets);
    drop(quota);
    Ok(build_report(cfg, spdk.as_ref(), &spdk_missing, &groups, &samples, (counting, profiling), &logs))
}

fn mode_name(m: Mode, cfg: &Config) -> String {
    match m {
        Mode::Free => "unbounded".into(),
        Mode::Quota => format!("quota {}%", cfg.quota_percent.unwrap_or(0)),
    }
}

fn build_report(
    cfg: &Config,
    spdk: Option<&SpdkBuild>,
    spdk_missing: &str,
    groups: &[Group],
    samples: &[Sample],
    (counting, profiling): (bool, bool),
    logs: &std::path::Path,
) -> Report {
    let mut rep = Report::new(
        "spdk",
        json!({
            "config": cfg,
            "spdk": spdk.map(|b| b.dir.display().to_string()),
            "targets": "each its own process pinned to the target CPU, 1 GiB null namespace of 4 KiB blocks, parked with SIGSTOP while others run",
            "logs": logs.display().to_string(),
        }),
    );
    let mut rows = Table::new(&[
        "round",
        "round_kind",
        "workload",
        "mode",
        "target",
        "client",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "target_cpu",
        "target_syscalls_per_io",
        "client_syscalls_per_io",
        "errors",
        "failure",
    ]);
    let mut error_lines: Vec<String> = Vec::new();
    for s in samples {
        let k = &s.key;
        let (iops, mib, p50, p99, tsys, csys, errs, fail) = match &s.m {
            Ok(m) => {
                for e in &m.errors {
                    if !error_lines.contains(e) && error_lines.len() < 10 {
                        error_lines.push(e.clone());
                    }
                }
                let (ts, cs) = if s.kind == RoundKind::Syscalls {
                    (m.target_syscalls_per_io, m.client_syscalls_per_io)
                } else {
                    (f64::NAN, f64::NAN)
                };
                (m.iops, m.mib_s, m.p50_us, m.p99_us, ts, cs, m.errors.len(), String::new())
            }
            Err(e) => {
                let n = f64::NAN;
                (n, n, n, n, n, n, 0, e.clone())
            }
        };
        rows.push(vec![
            s.round.into(),
            s.kind.name().into(),
            k.workload.name().into(),
            mode_name(k.mode, cfg).into(),
            k.target.name().into(),
            k.client.name().into(),
            iops.into(),
            mib.into(),
            p50.into(),
            p99.into(),
            s.target_cpu.into(),
            tsys.into(),
            csys.into(),
            errs.into(),
            fail.into(),
        ]);
    }
    // Timed samples of one cell; the probed rounds are excluded (perf slows the processes it watches).
    let timed = |k: &CellKey| -> Vec<&Sample> {
        samples.iter().filter(|s| s.key == *k && s.kind == RoundKind::Timed).collect()
    };
    let ok = |v: &[&Sample], f: &dyn Fn(&Measured) -> f64| -> Vec<f64> {
        v.iter().filter_map(|s| s.m.as_ref().ok().map(f)).collect()
    };
    let mut medians = Table::new(&[
        "workload",
        "mode",
        "target",
        "client",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "target_cpu",
        "target_syscalls_per_io",
        "client_syscalls_per_io",
        "samples",
        "note",
    ]);
    let mut med_json = Vec::new();
    let mut cell_iops: HashMap<CellKey, f64> = HashMap::new();
    for g in groups {
        for &(target, client) in &g.cells {
            let key = CellKey { workload: g.workload, mode: g.mode, target, client };
            let v = timed(&key);
            let good = v.iter().filter(|s| s.m.is_ok()).count();
            let counted: Vec<&Sample> =
                samples.iter().filter(|s| s.key == key && s.kind == RoundKind::Syscalls).collect();
            let iops = median(&ok(&v, &|m| m.iops));
            cell_iops.insert(key, iops);
            let cpu = median(&v.iter().filter(|s| s.m.is_ok()).map(|s| s.target_cpu).collect::<Vec<_>>());
            let tsys = median(&ok(&counted, &|m| m.target_syscalls_per_io));
            let csys = median(&ok(&counted, &|m| m.client_syscalls_per_io));
            let note = if good == 0 {
                v.iter().find_map(|s| s.m.as_ref().err().cloned()).unwrap_or_default()
            } else if good < v.len() {
                format!("{} of {} samples failed", v.len() - good, v.len())
            } else {
                String::new()
            };
            let (p50, p99, mib) =
                (median(&ok(&v, &|m| m.p50_us)), median(&ok(&v, &|m| m.p99_us)), median(&ok(&v, &|m| m.mib_s)));
            med_json.push(json!({
                "workload": g.workload.name(), "mode": mode_name(g.mode, cfg), "target": target.name(),
                "client": client.name(), "iops": iops, "mib_s": mib, "p50_us": p50, "p99_us": p99,
                "target_cpu": cpu, "target_syscalls_per_io": tsys, "client_syscalls_per_io": csys, "samples": good,
            }));
            medians.push(vec![
                g.workload.name().into(),
                mode_name(g.mode, cfg).into(),
                target.name().into(),
                client.name().into(),
                iops.into(),
                mib.into(),
                p50.into(),
                p99.into(),
                cpu.into(),
                tsys.into(),
                csys.into(),
                good.into(),
                note.into(),
            ]);
        }
    }
    rep.medians = medians;

    // Comparisons: the median of per-round ratios (pairs measured back to back in the same round).
    let mut cmp = Comparisons::new();
    let mut ratio_series: Vec<Series> = Vec::new();
    for c in comparisons(groups) {
        let ka = CellKey { workload: c.workload, mode: c.mode, target: c.a.0, client: c.a.1 };
        let kb = CellKey { workload: c.workload, mode: c.mode, target: c.b.0, client: c.b.1 };
        let value = |m: &Measured| if c.metric == Metric::Iops { m.iops } else { m.p50_us };
        let by_round = |k: &CellKey| -> HashMap<usize, f64> {
            timed(k).iter().filter_map(|s| s.m.as_ref().ok().map(|m| (s.round, value(m)))).collect()
        };
        let (ra, rb) = (by_round(&ka), by_round(&kb));
        let p = if c.metric == Metric::Iops { PairRatios::of(&ra, &rb) } else { PairRatios::of(&rb, &ra) };
        let pairs = &p.pairs;
        let am = median(&ra.values().copied().collect::<Vec<_>>());
        let bm = median(&rb.values().copied().collect::<Vec<_>>());
        let missing = [c.a.0, c.b.0].iter().find(|t| t.is_spdk() && spdk.is_none()).map(|_| spdk_missing);
        let side = |x: (TargetKind, ClientKind)| format!("{} / {}", x.0.name(), x.1.name());
        if c.metric == Metric::Iops && c.workload == RR4K_QD32 && c.goal.is_some() {
            ratio_series.push(Series {
                name: format!("{} ({})", c.name, mode_name(c.mode, cfg)),
                points: pairs.iter().map(|&(r, x)| (r as f64, x)).collect(),
            });
        }
        cmp.push(sidebyside::Comparison {
            name: c.name,
            workload: &c.workload.name(),
            mode: &mode_name(c.mode, cfg),
            a: &side(c.a),
            b: &side(c.b),
            metric: Some(if c.metric == Metric::Iops { "iops" } else { "p50 (b over a)" }),
            a_median: am,
            b_median: bm,
            ratios: &p,
            goal: c.goal,
            missing: missing.map(|m| format!("SPDK {m}")),
        });
    }
    let (cmp, cmp_json) = cmp.finish();
    rep.tables.push(("comparisons (a over b: median of per-round ratios)".into(), cmp));

    // Where the time goes, on both sides, in this run.
    let mut prof = Table::new(&[
        "workload",
        "target",
        "client",
        "side",
        "iops",
        "kernel_pct",
        "binary_pct",
        "libc_pct",
        "top_symbols",
    ]);
    let mut prof_json = Vec::new();
    for s in samples.iter().filter(|s| s.kind == RoundKind::Profile) {
        let Ok(m) = &s.m else { continue };
        for (side, p) in [("target", &m.target_profile), ("client", &m.client_profile)] {
            let Some(p) = p else { continue };
            let top = p.top.iter().map(|(sym, pct)| format!("{sym} {pct:.1}%")).collect::<Vec<_>>().join("; ");
            prof_json.push(json!({
                "workload": s.key.workload.name(), "target": s.key.target.name(), "client": s.key.client.name(),
                "side": side, "iops": m.iops, "profile": p,
            }));
            prof.push(vec![
                s.key.workload.name().into(),
                s.key.target.name().into(),
                s.key.client.name().into(),
                side.into(),
                m.iops.into(),
                p.kernel_pct.into(),
                p.binary_pct.into(),
                p.libc_pct.into(),
                top.into(),
            ]);
        }
    }
    if !prof.rows.is_empty() {
        rep.tables
            .push(("where the time goes (perf record, untimed round; shares of each process's samples)".into(), prof));
    }

    // How each target's 4K randread QD32 IOPS moved round by round: the machine's modes at a glance.
    let per_round = |t: TargetKind| Series {
        name: format!("{} / spdk_nvme_perf", t.name()),
        points: samples
            .iter()
            .filter(|s| {
                s.kind == RoundKind::Timed
                    && s.key.workload == RR4K_QD32
                    && s.key.mode == Mode::Free
                    && s.key.target == t
                    && s.key.client == ClientKind::SpdkPerf
            })
            .filter_map(|s| s.m.as_ref().ok().map(|m| (s.round as f64, m.iops)))
            .collect(),
    };
    rep.plots.push(Plot {
        file: "iops_by_round.svg".into(),
        title: "4K randread QD32, spdk_nvme_perf client: IOPS of each target, round by round".into(),
        x_label: "round".into(),
        y_label: "IOPS".into(),
        log_x: false,
        log_y: false,
        x_bytes: false,
        series: [TargetKind::Ours, TargetKind::OursAlways, TargetKind::Spdk, TargetKind::SpdkC2hOff]
            .into_iter()
            .map(per_round)
            .filter(|s| !s.points.is_empty())
            .collect(),
    });
    if !ratio_series.is_empty() {
        rep.plots.push(Plot {
            file: "ratio_by_round.svg".into(),
            title: "4K randread QD32: ours over SPDK, per round (goal 1.15)".into(),
            x_label: "round".into(),
            y_label: "IOPS ratio".into(),
            log_x: false,
            log_y: false,
            x_bytes: false,
            series: ratio_series,
        });
    }
    rep.notes.push(format!(
        "targets pinned to CPU {}, clients to CPU {}; {} timed samples per cell of {} s after {} s of warm-up, \
         cells compared with each other measured back to back, order reversed every other round",
        cfg.target_cpu, cfg.client_cpu, cfg.samples, cfg.seconds, cfg.warmup
    ));
    rep.notes.push(
        "ours: ferrofabric target, 1 busy-polling reactor (event: blocks when idle), null-nofill; spdk: nvmf_tgt -m \
         <target cpu>, posix sock, TCP transport defaults (c2h_success on) or c2h_success off, null bdev. \
         spdk_nvme_perf keeps SQ flow control on; ff perf turns it off, so every target sends C2HData SUCCESS to it."
            .into(),
    );
    rep.notes.push(
        "target_cpu: CPU seconds per second of the whole target process inside the measured window \
         (/proc/PID/task/*/schedstat). syscalls per I/O: perf stat -e raw_syscalls:sys_enter on the process over \
         the window of one extra untimed round (ff perf: its own sock counters). A busy-polling process waits in \
         non-blocking calls (epoll_wait with no timeout), so its syscalls per I/O count the idle spin too: \
         compare them where the process is the bottleneck, and read the profile table for where the time goes."
            .into(),
    );
    if cfg.quota_percent.is_some() {
        rep.notes.push(format!(
            "quota mode: the target process in a cgroup capped at {}% of one CPU (100 ms period), so the target and \
             not the client sets the figure",
            cfg.quota_percent.unwrap_or(0)
        ));
    }
    if spdk.is_none() {
        rep.notes.push(format!("SPDK: {spdk_missing}; its cells and comparisons are empty"));
    }
    if cfg.syscalls && !counting {
        rep.notes.push("syscalls: perf stat cannot count raw_syscalls here (needs linux-perf and root)".into());
    }
    rep.notes.push(
        "spdk_nvme_perf prints `CQ transport error -6` for its I/O qpair at every detach, against SPDK's target as \
         against ours; it is not counted as an error."
            .into(),
    );
    for e in &error_lines {
        rep.notes.push(format!("client error: {e}"));
    }
    if cfg.profile && !profiling {
        rep.notes.push("profiles: perf record does not work here (needs linux-perf and root)".into());
    }
    rep.summary = json!({ "medians": med_json, "comparisons": cmp_json, "profiles": prof_json });
    rep.rows = rows;
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_goal_of_the_issue_has_both_cells_in_the_full_plan() {
        let cfg = Config::new(PathBuf::from("ferrofabric"));
        let groups = plan(&cfg);
        let cmps = comparisons(&groups);
        let goals: Vec<(&str, String, Mode)> =
            cmps.iter().filter(|c| c.goal.is_some()).map(|c| (c.name, c.workload.name(), c.mode)).collect();
        for (name, w, mode) in [
            ("c2h=always vs spdk", "4K randread QD32", Mode::Free),
            ("c2h=always vs spdk", "4K randread QD32", Mode::Quota),
            ("default vs spdk c2h off", "4K randread QD32", Mode::Free),
            ("default vs spdk c2h off", "4K randread QD32", Mode::Quota),
            ("vs spdk", "4K randwrite QD32", Mode::Free),
            ("vs spdk", "128K read QD16", Mode::Free),
            ("QD1 p50 (spdk's over ours)", "4K randread QD1", Mode::Free),
            ("event vs spdk busy", "4K randread QD1", Mode::Free),
            ("initiator: ff perf vs spdk_nvme_perf on spdk", "4K randread QD32", Mode::Free),
        ] {
            assert!(goals.iter().any(|g| g.0 == name && g.1 == w && g.2 == mode), "{name} {w} {mode:?} in the plan");
        }
        // No cell appears twice in a group, and the quick plan is a subset without quota cells.
        for g in &groups {
            let mut c = g.cells.clone();
            c.dedup();
            assert_eq!(c.len(), g.cells.len());
        }
        let quick = plan(&Config::quick(PathBuf::from("ferrofabric")));
        assert!(quick.iter().all(|g| g.mode == Mode::Free));
        assert_eq!(quick.len(), 2);
    }
}
