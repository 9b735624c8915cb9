//! `iscsi`: our iSCSI target side by side with SPDK's `iscsi_tgt` and Linux's `tgtd`, every figure from
//! the same run, laid out as the NVMe side-by-side ([`crate::spdk`]).
//!
//! Each target is one process pinned to the target CPU on a null LUN of 4 KiB blocks ([`targets`]),
//! started once and parked with SIGSTOP while another one is measured. The same client drives them
//! all from the other CPU ([`clients`]: libiscsi's `iscsi-perf`); our `ff perf` also drives our target's
//! NVMe/TCP listener on the same namespace. Each round measures every cell once, back to back, the
//! order reversed every other round; a comparison is the median of its per-round ratios. A quota mode
//! repeats both workloads with the target under a CPU cap (a cgroup), and a last, untimed round
//! counts syscalls (`perf stat`) of target and client over the measured window.

pub mod clients;
pub mod targets;

use crate::measure::{Measured, Probe};
use crate::procs::{CpuQuota, ensure_hugepages, syscall_counting_works};
use crate::report::{Plot, Report, Series, Table};
use crate::sidebyside::{self, Comparisons};
use crate::stats::{PairRatios, median, round_order};
use crate::target::Workload;
use anyhow::{Context, Result, ensure};
use clients::{ClientKind, Endpoint};
use ff_perf::Pattern;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use targets::{IscsiTarget, TargetKind};

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// SPDK build tree (holds `build/bin/iscsi_tgt`); `None`: `$FF_SPDK_DIR`, else SPDK's cells say
    /// "not built".
    pub spdk_dir: Option<PathBuf>,
    /// The `ferrofabric` binary that serves our target.
    pub ff_bin: PathBuf,
    /// The targets to run.
    pub targets: Vec<TargetKind>,
    /// Timed samples per cell (rounds).
    pub samples: usize,
    /// Measured seconds per sample (whole seconds: iscsi-perf reports per second).
    pub seconds: u32,
    /// Warm-up seconds before each sample's measurement.
    pub warmup: u32,
    /// Target-bound mode: the target's CPU quota in percent of one core (`None`: skip the mode).
    pub quota_percent: Option<u32>,
    /// Count syscalls in one extra, untimed round.
    pub syscalls: bool,
    /// Also drive every target with ff perf over iSCSI.
    pub ff_client: bool,
    /// Also drive our target's NVMe/TCP listener with ff perf (the same namespace).
    pub nvme_client: bool,
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
            targets: TargetKind::ALL.to_vec(),
            samples: 12,
            seconds: 2,
            warmup: 1,
            quota_percent: Some(50),
            syscalls: true,
            ff_client: true,
            nvme_client: true,
            target_cpu: 0,
            // One CPU only: both sides share it (the figures then say little, but the run works).
            client_cpu: usize::from(ff_perf::affinity::online_cpus() > 1),
        }
    }

    /// A smoke run: two 1 s samples without warm-up, no quota mode, no syscall round.
    pub fn quick(ff_bin: PathBuf) -> Config {
        Config { samples: 2, seconds: 1, warmup: 0, quota_percent: None, syscalls: false, ..Config::new(ff_bin) }
    }
}

/// Whether the target runs free or under the CPU quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
enum Mode {
    Free,
    Quota,
}

const RR4K_QD32: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 32 };
const R128K_QD16: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 };

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
    let mut clients = vec![ClientKind::IscsiPerf];
    if cfg.ff_client {
        clients.push(ClientKind::FfPerfIscsi);
    }
    let iscsi: Vec<(TargetKind, ClientKind)> = clients
        .iter()
        .flat_map(|&c| TargetKind::ALL.iter().filter(|t| cfg.targets.contains(t)).map(move |&t| (t, c)))
        .collect();
    let mut free = iscsi.clone();
    if cfg.nvme_client && cfg.targets.contains(&TargetKind::Ours) {
        free.push((TargetKind::Ours, ClientKind::FfPerfNvme));
    }
    let mut groups: Vec<Group> =
        [RR4K_QD32, R128K_QD16].map(|workload| Group { workload, mode: Mode::Free, cells: free.clone() }).into();
    if cfg.quota_percent.is_some() {
        for workload in [RR4K_QD32, R128K_QD16] {
            groups.push(Group { workload, mode: Mode::Quota, cells: iscsi.clone() });
        }
    }
    groups
}

/// A ratio of two cells' IOPS the issue sets a goal for, or that the reader needs next to them.
struct Comparison {
    name: &'static str,
    workload: Workload,
    mode: Mode,
    a: (TargetKind, ClientKind),
    b: (TargetKind, ClientKind),
    goal: Option<f64>,
}

fn comparisons(groups: &[Group]) -> Vec<Comparison> {
    use ClientKind::{FfPerfIscsi, FfPerfNvme, IscsiPerf};
    use TargetKind::{Ours, Spdk, Tgt};
    let mut out = Vec::new();
    for g in groups {
        let mut add = |name, a, b, goal| {
            if g.cells.contains(&a) && g.cells.contains(&b) {
                out.push(Comparison { name, workload: g.workload, mode: g.mode, a, b, goal });
            }
        };
        for c in [IscsiPerf, FfPerfIscsi] {
            add("ours vs spdk iscsi_tgt", (Ours, c), (Spdk, c), Some(1.15));
            add("ours vs tgt", (Ours, c), (Tgt, c), None);
            add("spdk iscsi_tgt vs tgt", (Spdk, c), (Tgt, c), None);
        }
        // The same client, the same namespace, the same target process: only the protocol differs.
        add("ours: iscsi vs nvme/tcp (ff perf both)", (Ours, FfPerfIscsi), (Ours, FfPerfNvme), Some(0.9));
        add("client: ff perf vs iscsi-perf on spdk iscsi_tgt", (Spdk, FfPerfIscsi), (Spdk, IscsiPerf), None);
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
}

/// One sample of one cell.
struct Sample {
    round: usize,
    kind: RoundKind,
    key: CellKey,
    m: Result<Measured, String>,
    target_cpu: f64,
}

/// The running targets, by kind, and why a kind could not run.
struct Targets {
    procs: HashMap<TargetKind, IscsiTarget>,
    missing: HashMap<TargetKind, String>,
}

impl Targets {
    fn start(cfg: &Config, spdk_dir: Result<&Path, &str>, logs: &Path) -> Targets {
        let mut t = Targets { procs: HashMap::new(), missing: HashMap::new() };
        for &k in &cfg.targets {
            let started = match k {
                TargetKind::Ours => IscsiTarget::start_ours(&cfg.ff_bin, cfg.target_cpu, logs),
                TargetKind::Spdk => match spdk_dir {
                    Ok(dir) => IscsiTarget::start_spdk(dir, cfg.target_cpu, 4300, logs),
                    Err(why) => Err(anyhow::anyhow!("{why}")),
                },
                TargetKind::Tgt => IscsiTarget::start_tgt(cfg.target_cpu, logs),
            };
            match started.and_then(|p| p.daemon.pause().map(|()| p)) {
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

    /// Measures one cell once: resumes its target (under the quota in quota mode), runs the client,
    /// parks the target again. Returns the figures and the target's CPUs busy over the window.
    fn measure(
        &mut self,
        cfg: &Config,
        quota: Option<&CpuQuota>,
        key: CellKey,
        kind: RoundKind,
    ) -> (Result<Measured, String>, f64) {
        if let Some(why) = self.missing.get(&key.target) {
            return (Err(why.clone()), f64::NAN);
        }
        let Some(t) = self.procs.get_mut(&key.target) else { return (Err("not started".into()), f64::NAN) };
        if !t.daemon.alive() {
            let why = format!("{} exited; see {}", key.target.name(), t.daemon.log.display());
            self.missing.insert(key.target, why.clone());
            return (Err(why), f64::NAN);
        }
        let pid = t.pid();
        let endpoint = match key.client {
            ClientKind::IscsiPerf | ClientKind::FfPerfIscsi => {
                Endpoint::Iscsi { addr: t.daemon.addr, iqn: key.target.iqn().into(), lun: key.target.lun() }
            }
            ClientKind::FfPerfNvme => match t.nvme {
                Some(a) => clients::ours_nvme(a),
                None => return (Err(format!("{} has no NVMe/TCP listener", key.target.name())), f64::NAN),
            },
        };
        let run = clients::Run {
            workload: key.workload,
            endpoint,
            seconds: cfg.seconds,
            warmup: cfg.warmup,
            cpu: cfg.client_cpu,
            probe: if kind == RoundKind::Syscalls { Probe::Syscalls { target: pid } } else { Probe::None },
        };
        let quota = if key.mode == Mode::Quota { quota } else { None };
        if key.mode == Mode::Quota && quota.is_none() {
            return (Err("no quota cgroup".into()), f64::NAN);
        }
        crate::sidebyside::measure_parked(&t.daemon, quota, || clients::run(key.client, &run))
    }
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.samples >= 1 && cfg.seconds >= 1, "at least one sample of at least one second");
    ensure!(which("iscsi-perf"), "iscsi-perf is not installed (Debian: libiscsi-bin)");
    let logs = std::env::temp_dir().join(format!("ff-bench-iscsi-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let spdk_dir =
        cfg.spdk_dir.clone().or_else(|| std::env::var_os("FF_SPDK_DIR").filter(|d| !d.is_empty()).map(PathBuf::from));
    let spdk: Result<PathBuf, String> = match spdk_dir {
        None => Err("not built (give --spdk-dir or FF_SPDK_DIR)".into()),
        Some(d) => match ensure_hugepages(1024) {
            Ok(()) => Ok(d),
            Err(e) => Err(format!("not run: {e:#}")),
        },
    };
    let groups = plan(cfg);
    let quota = match cfg.quota_percent {
        Some(p) => Some(CpuQuota::new(p).context("target-bound mode")?),
        None => None,
    };
    let counting = cfg.syscalls && syscall_counting_works();
    let mut targets = Targets::start(cfg, spdk.as_deref().map_err(String::as_str), &logs);
    let mut rounds = vec![RoundKind::Timed; cfg.samples];
    if counting {
        rounds.push(RoundKind::Syscalls);
    }
    let all: Vec<(usize, usize)> =
        groups.iter().enumerate().flat_map(|(gi, g)| (0..g.cells.len()).map(move |ci| (gi, ci))).collect();
    let mut samples = Vec::new();
    for (round, &kind) in rounds.iter().enumerate() {
        for (gi, ci) in round_order(all.len(), round).into_iter().map(|i| all[i]) {
            let g = &groups[gi];
            let (target, client) = g.cells[ci];
            let key = CellKey { workload: g.workload, mode: g.mode, target, client };
            let (m, cpu) = targets.measure(cfg, quota.as_ref(), key, kind);
            match &m {
                Ok(m) => tracing::info!(
                    round,
                    workload = %g.workload.name(),
                    target = target.name(),
                    client = client.name(),
                    iops = m.iops as u64,
                    "sample"
                ),
                Err(e) if round == 0 || !targets.missing.contains_key(&target) => {
                    tracing::warn!(round, target = target.name(), client = client.name(), "sample failed: {e}")
                }
                Err(_) => {}
            }
            samples.push(Sample { round, kind, key, m, target_cpu: cpu });
        }
    }
    let missing = targets.missing.clone();
    let threads: Vec<String> =
        targets.procs.values().map(|t| format!("{}: {} threads", t.kind.name(), thread_count(t.pid()))).collect();
    drop(targets);
    drop(quota);
    let mut rep = build_report(cfg, &groups, &samples, &missing, counting, &logs);
    rep.notes.push(format!("threads of each target process at the end of the run: {}", threads.join(", ")));
    if let Err(why) = &spdk {
        rep.notes.push(format!("SPDK: {why}; its cells are empty"));
    }
    Ok(rep)
}

/// Whether `prog` is on `$PATH`.
pub fn which(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

fn mode_name(m: Mode, cfg: &Config) -> String {
    match m {
        Mode::Free => "unbounded".into(),
        Mode::Quota => format!("quota {}%", cfg.quota_percent.unwrap_or(0)),
    }
}

/// Mean latency by Little's law (the client keeps `qd` I/Os in flight), in µs.
fn little_us(qd: u16, iops: f64) -> f64 {
    if iops > 0.0 { f64::from(qd) / iops * 1e6 } else { f64::NAN }
}

/// The report of `samples`; `missing` names the targets that could not run and why.
fn build_report(
    cfg: &Config,
    groups: &[Group],
    samples: &[Sample],
    missing: &HashMap<TargetKind, String>,
    counting: bool,
    logs: &Path,
) -> Report {
    let mut rep = Report::new(
        "iscsi",
        json!({
            "config": cfg,
            "targets": "each its own process pinned to the target CPU, null LUN of 4 KiB blocks, parked with SIGSTOP while others run",
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
        "client_cpu",
        "target_syscalls_per_io",
        "client_syscalls_per_io",
        "errors",
        "failure",
    ]);
    let mut error_lines: Vec<String> = Vec::new();
    for s in samples {
        let k = &s.key;
        let nan = f64::NAN;
        let ccpu = s.m.as_ref().ok().and_then(|m| m.client_cpu).unwrap_or(nan);
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
                    (nan, nan)
                };
                (m.iops, m.mib_s, m.p50_us, m.p99_us, ts, cs, m.errors.len(), String::new())
            }
            Err(e) => (nan, nan, nan, nan, nan, nan, 0, e.clone()),
        };
        rows.push(vec![
            s.round.into(),
            (if s.kind == RoundKind::Timed { "timed" } else { "syscalls" }).into(),
            k.workload.name().into(),
            mode_name(k.mode, cfg).into(),
            k.target.name().into(),
            k.client.name().into(),
            iops.into(),
            mib.into(),
            p50.into(),
            p99.into(),
            s.target_cpu.into(),
            ccpu.into(),
            tsys.into(),
            csys.into(),
            errs.into(),
            fail.into(),
        ]);
    }
    // The probed round is left out of every figure but the syscall counts (perf slows what it watches).
    let of_kind = |k: &CellKey, kind: RoundKind| -> Vec<&Sample> {
        samples.iter().filter(|s| s.key == *k && s.kind == kind).collect()
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
        "mean_lat_us",
        "p99_us",
        "target_cpu",
        "client_cpu",
        "target_syscalls_per_io",
        "client_syscalls_per_io",
        "samples",
        "note",
    ]);
    let mut med_json = Vec::new();
    for g in groups {
        for &(target, client) in &g.cells {
            let key = CellKey { workload: g.workload, mode: g.mode, target, client };
            let v = of_kind(&key, RoundKind::Timed);
            let counted = of_kind(&key, RoundKind::Syscalls);
            let good = v.iter().filter(|s| s.m.is_ok()).count();
            let iops = median(&ok(&v, &|m| m.iops));
            let mib = median(&ok(&v, &|m| m.mib_s));
            let p99 = median(&ok(&v, &|m| m.p99_us));
            let cpu = median(&v.iter().filter(|s| s.m.is_ok()).map(|s| s.target_cpu).collect::<Vec<_>>());
            let ccpu = median(&ok(&v, &|m| m.client_cpu.unwrap_or(f64::NAN)));
            let tsys = median(&ok(&counted, &|m| m.target_syscalls_per_io));
            let csys = median(&ok(&counted, &|m| m.client_syscalls_per_io));
            let lat = little_us(g.workload.qd, iops);
            let note = if good == 0 {
                v.iter().find_map(|s| s.m.as_ref().err().cloned()).unwrap_or_default()
            } else if good < v.len() {
                format!("{} of {} samples failed", v.len() - good, v.len())
            } else {
                String::new()
            };
            med_json.push(json!({
                "workload": g.workload.name(), "mode": mode_name(g.mode, cfg), "target": target.name(),
                "client": client.name(), "iops": iops, "mib_s": mib, "mean_lat_us": lat, "p99_us": p99,
                "target_cpu": cpu, "client_cpu": ccpu, "target_syscalls_per_io": tsys, "client_syscalls_per_io": csys, "samples": good,
            }));
            medians.push(vec![
                g.workload.name().into(),
                mode_name(g.mode, cfg).into(),
                target.name().into(),
                client.name().into(),
                iops.into(),
                mib.into(),
                lat.into(),
                p99.into(),
                cpu.into(),
                ccpu.into(),
                tsys.into(),
                csys.into(),
                good.into(),
                note.into(),
            ]);
        }
    }
    rep.medians = medians;

    let mut cmp = Comparisons::new();
    let mut ratio_series = Vec::new();
    for c in comparisons(groups) {
        let by_round = |(target, client): (TargetKind, ClientKind)| -> HashMap<usize, f64> {
            let k = CellKey { workload: c.workload, mode: c.mode, target, client };
            of_kind(&k, RoundKind::Timed).iter().filter_map(|s| s.m.as_ref().ok().map(|m| (s.round, m.iops))).collect()
        };
        let (ra, rb) = (by_round(c.a), by_round(c.b));
        let p = PairRatios::of(&ra, &rb);
        let am = median(&ra.values().copied().collect::<Vec<_>>());
        let bm = median(&rb.values().copied().collect::<Vec<_>>());
        let absent = [c.a.0, c.b.0].into_iter().find_map(|t| missing.get(&t).map(|why| format!("{}: {why}", t.name())));
        let side = |x: (TargetKind, ClientKind)| format!("{} / {}", x.0.name(), x.1.name());
        if c.goal.is_some() {
            ratio_series.push(Series {
                name: format!("{} ({}, {})", c.name, c.workload.name(), mode_name(c.mode, cfg)),
                points: p.pairs.iter().map(|&(r, x)| (r as f64, x)).collect(),
            });
        }
        cmp.push(sidebyside::Comparison {
            name: c.name,
            workload: &c.workload.name(),
            mode: &mode_name(c.mode, cfg),
            a: &side(c.a),
            b: &side(c.b),
            metric: None,
            a_median: am,
            b_median: bm,
            ratios: &p,
            goal: c.goal,
            missing: absent,
        });
    }
    let (cmp, cmp_json) = cmp.finish();
    rep.tables.push(("comparisons (IOPS, a over b: median of per-round ratios)".into(), cmp));

    let per_round = |t: TargetKind| Series {
        name: format!("{} / iscsi-perf", t.name()),
        points: samples
            .iter()
            .filter(|s| {
                s.kind == RoundKind::Timed
                    && s.key.workload == RR4K_QD32
                    && s.key.mode == Mode::Free
                    && s.key.target == t
                    && s.key.client == ClientKind::IscsiPerf
            })
            .filter_map(|s| s.m.as_ref().ok().map(|m| (s.round as f64, m.iops)))
            .collect(),
    };
    rep.plots.push(Plot {
        file: "iops_by_round.svg".into(),
        title: "4K randread QD32, iscsi-perf client: IOPS of each target, round by round".into(),
        x_label: "round".into(),
        y_label: "IOPS".into(),
        log_x: false,
        log_y: false,
        x_bytes: false,
        series: TargetKind::ALL.into_iter().map(per_round).filter(|s| !s.points.is_empty()).collect(),
    });
    if !ratio_series.is_empty() {
        rep.plots.push(Plot {
            file: "ratio_by_round.svg".into(),
            title: "comparisons with a goal, per round (ours over SPDK's iscsi_tgt: 1.15; iSCSI over NVMe/TCP: 0.9)"
                .into(),
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
        "LUNs: null, 4 KiB blocks, reads leave the buffer untouched. ours: ferrofabric target, 1 busy-polling \
         reactor, null-nofill 1 GiB, iSCSI and NVMe/TCP listeners on the one namespace; spdk: iscsi_tgt -m <target \
         cpu>, posix sock, 1 GiB null bdev, config by the rpc.py methods in a --json file; tgt: tgtd -f under \
         taskset (every thread on the target CPU), bstype null (its fixed 1 TiB size)."
            .into(),
    );
    rep.notes.push(
        "iscsi-perf: libiscsi's, READ(16) only, one session, one poll() loop; it prints IOPS once a second and no \
         latency: iops is the mean of the per-second figures after the warm-up, mean_lat_us is QD/IOPS (Little's \
         law). ff perf: our initiator in this process, one busy-polling reactor on the client CPU, one iSCSI \
         session (or one NVMe/TCP queue pair to our target's NVMe listener on the same namespace); its p99 is \
         measured."
            .into(),
    );
    rep.notes.push(
        "target_cpu, client_cpu: CPU seconds per second of the whole process inside the measured window (a \
         client near 1.0 is saturated: the figure is then the client's, and the quota rows are the targets'). syscalls per \
         I/O: perf stat -e raw_syscalls:sys_enter on target and client over the window of one extra untimed round \
         (ff perf: its own sock counters). A busy-polling target's count includes its idle spin."
            .into(),
    );
    if let Some(q) = cfg.quota_percent {
        rep.notes.push(format!(
            "quota mode: the target process (all its threads) in a cgroup capped at {q}% of one CPU (100 ms \
             period), so the target and not the client sets the figure"
        ));
    }
    if cfg.syscalls && !counting {
        rep.notes.push("syscalls: perf stat cannot count raw_syscalls here (needs linux-perf and root)".into());
    }
    for e in &error_lines {
        rep.notes.push(format!("client error: {e}"));
    }
    rep.summary = json!({ "medians": med_json, "comparisons": cmp_json });
    rep.rows = rows;
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_holds_every_goal_of_the_issue() {
        let groups = plan(&Config::new(PathBuf::from("ferrofabric")));
        let cmps = comparisons(&groups);
        for (w, mode) in
            [(RR4K_QD32, Mode::Free), (R128K_QD16, Mode::Free), (RR4K_QD32, Mode::Quota), (R128K_QD16, Mode::Quota)]
        {
            assert!(
                cmps.iter().any(|c| c.name == "ours vs spdk iscsi_tgt"
                    && c.workload == w
                    && c.mode == mode
                    && c.goal == Some(1.15)),
                "{w:?} {mode:?}"
            );
        }
        // Ours over iSCSI within 10% of ours over NVMe/TCP, the same client on both.
        assert!(cmps.iter().any(|c| c.a == (TargetKind::Ours, ClientKind::FfPerfIscsi)
            && c.b == (TargetKind::Ours, ClientKind::FfPerfNvme)
            && c.goal == Some(0.9)));
        for g in &groups {
            let mut c = g.cells.clone();
            c.dedup();
            assert_eq!(c.len(), g.cells.len(), "no cell twice in a group");
            // The NVMe client only runs free, against ours.
            assert!(
                g.cells
                    .iter()
                    .all(|&(t, c)| c != ClientKind::FfPerfNvme || (t == TargetKind::Ours && g.mode == Mode::Free))
            );
        }
        let quick = plan(&Config::quick(PathBuf::from("ferrofabric")));
        assert!(quick.iter().all(|g| g.mode == Mode::Free));
        assert_eq!(quick.len(), 2);
    }

    #[test]
    fn targets_left_out_leave_their_cells_and_comparisons_out() {
        let cfg = Config {
            targets: vec![TargetKind::Spdk, TargetKind::Tgt],
            ff_client: false,
            ..Config::quick(PathBuf::from("x"))
        };
        let groups = plan(&cfg);
        assert!(
            groups.iter().all(|g| g.cells
                == vec![(TargetKind::Spdk, ClientKind::IscsiPerf), (TargetKind::Tgt, ClientKind::IscsiPerf)])
        );
        let names: Vec<&str> = comparisons(&groups).iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["spdk iscsi_tgt vs tgt"; 2]);
    }

    #[test]
    fn little_latency() {
        assert_eq!(little_us(32, 160_000.0), 200.0);
        assert!(little_us(32, 0.0).is_nan());
    }

    #[test]
    fn comparisons_pair_rounds_and_judge_the_goal() {
        let cfg = Config { quota_percent: None, ..Config::quick(PathBuf::from("x")) };
        let groups = plan(&cfg);
        let ok = |iops: f64| Ok(Measured { iops, ..Measured::default() });
        let key = |target| CellKey { workload: RR4K_QD32, mode: Mode::Free, target, client: ClientKind::IscsiPerf };
        let s = |round, target, m| Sample { round, kind: RoundKind::Timed, key: key(target), m, target_cpu: 1.0 };
        let samples = vec![
            s(0, TargetKind::Ours, ok(240.0)),
            s(0, TargetKind::Spdk, ok(200.0)),
            s(1, TargetKind::Ours, ok(100.0)),
            s(1, TargetKind::Spdk, ok(100.0)),
            s(2, TargetKind::Ours, ok(130.0)),
            s(2, TargetKind::Spdk, ok(100.0)),
            // A failed sample drops its round's pair.
            s(3, TargetKind::Ours, ok(500.0)),
            s(3, TargetKind::Spdk, Err("down".into())),
        ];
        let rep = build_report(&cfg, &groups, &samples, &HashMap::new(), false, Path::new("/tmp"));
        let c = rep.summary["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["comparison"] == "ours vs spdk iscsi_tgt" && c["workload"] == "4K randread QD32")
            .unwrap()
            .clone();
        assert_eq!(c["pair_ratios"], json!([1.2, 1.0, 1.3]));
        assert_eq!(c["pair_median"], json!(1.2));
        assert_eq!(c["verdict"], "met");
        let m = rep.summary["medians"].as_array().unwrap();
        let spdk = m.iter().find(|r| r["target"] == "spdk iscsi_tgt" && r["workload"] == "4K randread QD32").unwrap();
        assert_eq!(spdk["iops"], json!(100.0));
        assert_eq!(spdk["samples"], json!(3));
    }
}
