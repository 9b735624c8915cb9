//! `tls`: NVMe/TCP over TLS 1.3 with a PSK, our target side by side with SPDK's `nvmf_tgt` on its `ssl`
//! sock implementation, the same client (`spdk_nvme_perf -S ssl`) against both, every figure from the
//! same run.
//!
//! Each target is one process pinned to the target CPU on a 1 GiB null namespace of 4 KiB blocks, started
//! once and parked with SIGSTOP while another one is measured: ours (`ferrofabric target --tls-listen
//! ADDR --psk HOSTNQN=KEY`, plus `--no-ktls` when the kernel has no TLS ULP) and SPDK's (the `ssl` sock
//! held to TLS 1.3, the key in its file keyring, a secure-channel listener, the one host allowed). The
//! PSK is made fresh for the run. The same targets without TLS run as a reference (`plain`), so the
//! report also says what TLS costs each of them. The workloads are the issue's: 4K randread QD32 and
//! 128K read QD16. This machine is bimodal, so each round measures every cell once, back to back, the
//! order reversed every other round, and a comparison is the median of its per-round ratios; a quota
//! mode repeats the TLS cells with the target under a CPU cap (a cgroup) so the target sets the figure.

pub mod psk;

use crate::measure::{Measured, Probe};
use crate::procs::{CpuQuota, Daemon, ensure_hugepages, free_port, log_file};
use crate::report::{Report, Table};
use crate::sidebyside::{self, CellStats, Comparisons, Mode, SampleRef, by_round, measure_parked};
use crate::spdk::clients::{self, PerfTls, Run};
use crate::spdk::procs::{self as spdk_procs, OURS_NQN, SPDK_NQN, SpdkBuild, SpdkTls, TargetProc};
use crate::stats::{PairRatios, round_order};
use crate::target::Workload;
use anyhow::{Context, Result, bail, ensure};
use ff_perf::Pattern;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

/// The host NQN the bench's PSK belongs to (both targets allow only it).
pub const HOSTNQN: &str = "nqn.2026-11.io.ferrofabric:bench-host";

/// Whose target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Side {
    /// `ferrofabric target`.
    Ours,
    /// SPDK's `nvmf_tgt`.
    Spdk,
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Side, String> {
        match s.trim() {
            "ours" => Ok(Side::Ours),
            "spdk" => Ok(Side::Spdk),
            _ => Err(format!("unknown target {s:?} (ours, spdk)")),
        }
    }
}

/// A target process of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TargetKind {
    /// Ours with its TLS listener.
    OursTls,
    /// SPDK's with the `ssl` sock and a secure-channel listener.
    SpdkTls,
    /// Ours, plain TCP (the reference).
    OursPlain,
    /// SPDK's, posix sock, plain TCP (the reference).
    SpdkPlain,
}

impl TargetKind {
    /// Every kind, in table order.
    pub const ALL: [TargetKind; 4] =
        [TargetKind::OursTls, TargetKind::SpdkTls, TargetKind::OursPlain, TargetKind::SpdkPlain];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::OursTls => "ours tls",
            TargetKind::SpdkTls => "spdk tls",
            TargetKind::OursPlain => "ours plain",
            TargetKind::SpdkPlain => "spdk plain",
        }
    }

    /// Whose it is.
    pub fn side(self) -> Side {
        match self {
            TargetKind::OursTls | TargetKind::OursPlain => Side::Ours,
            TargetKind::SpdkTls | TargetKind::SpdkPlain => Side::Spdk,
        }
    }

    /// Whether it speaks TLS.
    pub fn tls(self) -> bool {
        matches!(self, TargetKind::OursTls | TargetKind::SpdkTls)
    }

    /// The subsystem it serves.
    pub fn nqn(self) -> &'static str {
        if self.side() == Side::Spdk { SPDK_NQN } else { OURS_NQN }
    }
}

/// Benchmark options.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// SPDK build tree (`build/bin/nvmf_tgt`, `spdk_nvme_perf`); `None`: `$FF_SPDK_DIR`. Required: its
    /// perf is the client of both targets.
    pub spdk_dir: Option<PathBuf>,
    /// The `ferrofabric` binary that serves our targets.
    pub ff_bin: PathBuf,
    /// Whose targets to run.
    pub targets: Vec<Side>,
    /// Timed samples per cell (rounds).
    pub samples: usize,
    /// Measured seconds per sample (whole seconds: spdk_nvme_perf's unit).
    pub seconds: u32,
    /// Warm-up seconds before each sample's measurement.
    pub warmup: u32,
    /// Target-bound mode: the target's CPU quota in percent of one core (`None`: skip the mode).
    pub quota_percent: Option<u32>,
    /// Also measure the targets over plain TCP (unbounded mode only): what TLS costs each.
    pub plain: bool,
    /// CPU of the targets.
    pub target_cpu: usize,
    /// CPU of the client.
    pub client_cpu: usize,
    /// spdk_nvme_perf's shared-memory id; the targets take the next ids (apart from `bench spdk`'s).
    pub shm_id: u32,
}

impl Config {
    /// The full run: 12 samples of 2 s after 1 s of warm-up per cell, 50% quota mode, plain reference.
    pub fn new(ff_bin: PathBuf) -> Config {
        Config {
            spdk_dir: None,
            ff_bin,
            targets: vec![Side::Ours, Side::Spdk],
            samples: 12,
            seconds: 2,
            warmup: 1,
            quota_percent: Some(50),
            plain: true,
            target_cpu: 0,
            // One CPU only: both sides share it (the figures then say little, but the run works).
            client_cpu: usize::from(ff_perf::affinity::online_cpus() > 1),
            shm_id: 4600,
        }
    }

    /// A smoke run: two 1 s samples without warm-up, no quota mode, no plain reference.
    pub fn quick(ff_bin: PathBuf) -> Config {
        Config { samples: 2, seconds: 1, warmup: 0, quota_percent: None, plain: false, ..Config::new(ff_bin) }
    }
}

const RR4K_QD32: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 32 };
const R128K_QD16: Workload = Workload { io_size: 128 << 10, pattern: Pattern::Read, qd: 16 };

/// The issue's goal for ours over SPDK's, both over TLS, at `w`.
fn goal(w: Workload) -> Option<f64> {
    if w == RR4K_QD32 {
        Some(1.1)
    } else if w == R128K_QD16 {
        Some(1.3)
    } else {
        None
    }
}

/// One measured combination (the client is always spdk_nvme_perf).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CellKey {
    workload: Workload,
    mode: Mode,
    target: TargetKind,
}

/// The cells of a run, in the order of the first round.
fn plan(cfg: &Config) -> Vec<CellKey> {
    let mut cells = Vec::new();
    let mut modes = vec![Mode::Free];
    if cfg.quota_percent.is_some() {
        modes.push(Mode::Quota);
    }
    for mode in modes {
        for workload in [RR4K_QD32, R128K_QD16] {
            for target in TargetKind::ALL {
                let wanted =
                    cfg.targets.contains(&target.side()) && (target.tls() || (cfg.plain && mode == Mode::Free));
                if wanted {
                    cells.push(CellKey { workload, mode, target });
                }
            }
        }
    }
    cells
}

/// One sample of one cell.
struct Sample {
    round: usize,
    key: CellKey,
    m: Result<Measured, String>,
    target_cpu: f64,
}

/// Whether the kernel offers the `tls` TCP ULP (kernel TLS).
pub fn kernel_tls() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .is_ok_and(|s| s.split_whitespace().any(|u| u == "tls"))
}

/// Whether `ff_bin target` has a TLS listener (`--tls-listen`); the error says why not.
fn ours_has_tls(ff_bin: &Path) -> Result<()> {
    let out =
        Command::new(ff_bin).args(["target", "--help"]).output().with_context(|| format!("{}", ff_bin.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    ensure!(
        help.contains("--tls-listen"),
        "{} target has no --tls-listen (TLS is not in this build yet)",
        ff_bin.display()
    );
    Ok(())
}

/// The command that starts our TLS target: [`spdk_procs::ours_command`] with a plain listener on
/// `plain_port` plus `--tls-listen 127.0.0.1:TLS_PORT --psk HOSTNQN=KEY`, `--no-ktls` unless `ktls`.
pub fn ours_tls_command(ff_bin: &Path, cpu: usize, plain_port: u16, tls_port: u16, psk: &str, ktls: bool) -> Command {
    let mut cmd = spdk_procs::ours_command(ff_bin, cpu, plain_port);
    cmd.args([
        "--poll",
        "busy",
        "--tls-listen",
        &format!("127.0.0.1:{tls_port}"),
        "--psk",
        &format!("{HOSTNQN}={psk}"),
    ]);
    if !ktls {
        cmd.arg("--no-ktls");
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// The PSK of the run: its interchange string and its key file.
struct Key {
    psk: String,
    file: PathBuf,
}

/// The running targets and why a kind could not run.
struct Targets {
    procs: HashMap<TargetKind, Daemon>,
    missing: HashMap<TargetKind, String>,
}

fn start_target(cfg: &Config, spdk: &SpdkBuild, key: &Key, kind: TargetKind, i: u32, logs: &Path) -> Result<Daemon> {
    let shm = cfg.shm_id + 1 + i;
    match kind {
        TargetKind::OursTls => {
            ours_has_tls(&cfg.ff_bin)?;
            let (plain, tls) = (free_port()?, free_port()?);
            let cmd = ours_tls_command(&cfg.ff_bin, cfg.target_cpu, plain, tls, &key.psk, kernel_tls());
            let log = log_file(logs, "target-ours-tls.log")?;
            Daemon::start(kind.name(), cmd, SocketAddr::from(([127, 0, 0, 1], tls)), log, Duration::from_secs(20))
        }
        TargetKind::SpdkTls => {
            let port = free_port()?;
            let tls = SpdkTls { key_file: key.file.clone(), hostnqn: HOSTNQN.into() };
            let config = spdk_procs::nvmf_tgt_config(port, true, Some(&tls));
            spdk_procs::start_nvmf_tgt(spdk, kind.name(), &config, port, cfg.target_cpu, shm, logs)
        }
        TargetKind::OursPlain => {
            TargetProc::start_ours(&cfg.ff_bin, spdk_procs::TargetKind::Ours, cfg.target_cpu, logs).map(|t| t.daemon)
        }
        TargetKind::SpdkPlain => {
            TargetProc::start_spdk(spdk, spdk_procs::TargetKind::Spdk, cfg.target_cpu, shm, logs).map(|t| t.daemon)
        }
    }
}

impl Targets {
    fn start(cfg: &Config, spdk: &SpdkBuild, key: &Key, kinds: &[TargetKind], logs: &Path) -> Targets {
        let mut t = Targets { procs: HashMap::new(), missing: HashMap::new() };
        for (i, &k) in kinds.iter().enumerate() {
            match start_target(cfg, spdk, key, k, i as u32, logs).and_then(|d| d.pause().map(|()| d)) {
                Ok(d) => {
                    tracing::info!(target = k.name(), addr = %d.addr, pid = d.pid(), "target started");
                    t.procs.insert(k, d);
                }
                Err(e) => {
                    tracing::warn!(target = k.name(), "not run: {e:#}");
                    t.missing.insert(k, format!("{e:#}"));
                }
            }
        }
        t
    }

    fn measure(
        &mut self,
        cfg: &Config,
        spdk: &SpdkBuild,
        key: &Key,
        quota: Option<&CpuQuota>,
        cell: CellKey,
    ) -> (Result<Measured, String>, f64) {
        if let Some(why) = self.missing.get(&cell.target) {
            return (Err(why.clone()), f64::NAN);
        }
        let Some(d) = self.procs.get_mut(&cell.target) else { return (Err("not started".into()), f64::NAN) };
        if !d.alive() {
            let why = format!("{} exited; see {}", cell.target.name(), d.log.display());
            self.missing.insert(cell.target, why.clone());
            return (Err(why), f64::NAN);
        }
        let run = run_of(cfg, cell, d.addr, key);
        let quota = if cell.mode == Mode::Quota { quota } else { None };
        if cell.mode == Mode::Quota && quota.is_none() {
            return (Err("no quota cgroup".into()), f64::NAN);
        }
        measure_parked(d, quota, || clients::spdk_perf(spdk, &run))
    }
}

fn run_of<'a>(cfg: &Config, cell: CellKey, addr: SocketAddr, key: &Key) -> Run<'a> {
    Run {
        workload: cell.workload,
        addr,
        nqn: cell.target.nqn(),
        seconds: cfg.seconds,
        warmup: cfg.warmup,
        cpu: cfg.client_cpu,
        shm_id: cfg.shm_id,
        probe: Probe::None,
        tls: cell.target.tls().then(|| PerfTls { hostnqn: HOSTNQN.into(), psk_file: key.file.clone() }),
    }
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.samples >= 1 && cfg.seconds >= 1, "at least one sample of at least one second");
    ensure!(!cfg.targets.is_empty(), "no targets to run");
    let Some(spdk) = SpdkBuild::find(cfg.spdk_dir.as_deref())? else {
        bail!("the TLS bench needs an SPDK build (its spdk_nvme_perf is the client): give --spdk-dir or FF_SPDK_DIR");
    };
    ensure_hugepages(2048).context("SPDK needs hugepages")?;
    let logs = std::env::temp_dir().join(format!("ff-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let key = Key { psk: psk::interchange(&psk::random_key()?), file: logs.join("psk.key") };
    psk::write_key_file(&key.file, &key.psk)?;
    let cells = plan(cfg);
    let mut kinds: Vec<TargetKind> = Vec::new();
    for c in &cells {
        if !kinds.contains(&c.target) {
            kinds.push(c.target);
        }
    }
    let quota = match cfg.quota_percent {
        Some(p) => Some(CpuQuota::new(p).context("target-bound mode")?),
        None => None,
    };
    let mut targets = Targets::start(cfg, &spdk, &key, &kinds, &logs);
    let mut samples = Vec::new();
    for round in 0..cfg.samples {
        // Every other round runs the cells backwards, so no cell always follows the same one.
        for cell in round_order(cells.len(), round).into_iter().map(|i| cells[i]) {
            let (m, cpu) = targets.measure(cfg, &spdk, &key, quota.as_ref(), cell);
            match &m {
                Ok(m) => tracing::info!(
                    round,
                    workload = %cell.workload.name(),
                    mode = %cell.mode.name(cfg.quota_percent),
                    target = cell.target.name(),
                    iops = m.iops as u64,
                    "sample"
                ),
                Err(e) if round == 0 || !targets.missing.contains_key(&cell.target) => {
                    tracing::warn!(round, target = cell.target.name(), "sample failed: {e}")
                }
                Err(_) => {}
            }
            samples.push(Sample { round, key: cell, m, target_cpu: cpu });
        }
    }
    let missing = targets.missing.clone();
    drop(targets);
    drop(quota);
    let mut rep = build_report(cfg, &cells, &samples, &missing, &logs);
    rep.notes.push(format!(
        "client command per TLS sample (plain: without -S, --psk-path and hostnqn): `stdbuf -oL {} -c {:#x} -i {} -q QD -o SIZE -w PATTERN -t {} -a {} \
         -L -S ssl --psk-path {} -r \"{}\"`",
        spdk.perf().display(),
        1u64 << cfg.client_cpu,
        cfg.shm_id,
        cfg.seconds,
        cfg.warmup,
        key.file.display(),
        clients::spdk_trid(&run_of(
            cfg,
            CellKey { workload: RR4K_QD32, mode: Mode::Free, target: TargetKind::SpdkTls },
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &key
        ))
        .replace("trsvcid:0", "trsvcid:PORT"),
    ));
    Ok(rep)
}

/// The report of `samples`; `missing` names the targets that could not run and why.
fn build_report(
    cfg: &Config,
    cells: &[CellKey],
    samples: &[Sample],
    missing: &HashMap<TargetKind, String>,
    logs: &Path,
) -> Report {
    let mode = |m: Mode| m.name(cfg.quota_percent);
    let mut rep = Report::new(
        "tls",
        json!({
            "config": cfg,
            "targets": "each its own process pinned to the target CPU, 1 GiB null namespace of 4 KiB blocks, parked with SIGSTOP while others run",
            "client": "spdk_nvme_perf (-S ssl --psk-path for the TLS cells) on the client CPU",
            "hostnqn": HOSTNQN,
            "kernel_tls": kernel_tls(),
            "logs": logs.display().to_string(),
        }),
    );
    let mut rows = Table::new(&[
        "round",
        "workload",
        "mode",
        "target",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "target_cpu",
        "client_cpu",
        "errors",
        "failure",
    ]);
    let mut error_lines: Vec<String> = Vec::new();
    for s in samples {
        let nan = f64::NAN;
        let (iops, mib, p50, p99, ccpu, errs, fail) = match &s.m {
            Ok(m) => {
                for e in &m.errors {
                    if !error_lines.contains(e) && error_lines.len() < 10 {
                        error_lines.push(e.clone());
                    }
                }
                (m.iops, m.mib_s, m.p50_us, m.p99_us, m.client_cpu.unwrap_or(nan), m.errors.len(), String::new())
            }
            Err(e) => (nan, nan, nan, nan, nan, 0, e.clone()),
        };
        rows.push(vec![
            s.round.into(),
            s.key.workload.name().into(),
            mode(s.key.mode).into(),
            s.key.target.name().into(),
            iops.into(),
            mib.into(),
            p50.into(),
            p99.into(),
            s.target_cpu.into(),
            ccpu.into(),
            errs.into(),
            fail.into(),
        ]);
    }
    let of = |k: &CellKey| -> Vec<SampleRef<'_>> {
        samples
            .iter()
            .filter(|s| s.key == *k)
            .map(|s| SampleRef { round: s.round, m: &s.m, target_cpu: s.target_cpu })
            .collect()
    };
    let mut medians = Table::new(&[
        "workload",
        "mode",
        "target",
        "iops",
        "mib_s",
        "p50_us",
        "p99_us",
        "target_cpu",
        "target_us_per_io",
        "client_us_per_io",
        "samples",
        "note",
    ]);
    let mut med_json = Vec::new();
    for k in cells {
        let st = CellStats::of(&of(k));
        med_json.push(json!({
            "workload": k.workload.name(), "mode": mode(k.mode), "target": k.target.name(), "stats": st,
        }));
        medians.push(vec![
            k.workload.name().into(),
            mode(k.mode).into(),
            k.target.name().into(),
            st.iops.into(),
            st.mib_s.into(),
            st.p50_us.into(),
            st.p99_us.into(),
            st.target_cpu.into(),
            st.target_us_per_io.into(),
            st.client_us_per_io.into(),
            st.ok.into(),
            st.note.into(),
        ]);
    }
    rep.medians = medians;

    // Comparisons: the median of per-round ratios of IOPS (cells measured back to back in each round).
    let mut cmp = Comparisons::new();
    for c in comparisons(cells) {
        let ka = CellKey { workload: c.workload, mode: c.mode, target: c.a };
        let kb = CellKey { workload: c.workload, mode: c.mode, target: c.b };
        let (sa, sb) = (of(&ka), of(&kb));
        let p = PairRatios::of(&by_round(&sa, |m| m.iops), &by_round(&sb, |m| m.iops));
        cmp.push(sidebyside::Comparison {
            name: c.name,
            workload: &c.workload.name(),
            mode: &mode(c.mode),
            a: c.a.name(),
            b: c.b.name(),
            metric: Some("iops"),
            a_median: CellStats::of(&sa).iops,
            b_median: CellStats::of(&sb).iops,
            ratios: &p,
            goal: c.goal,
            missing: [c.a, c.b].iter().find_map(|t| missing.get(t).map(|w| format!("not run ({}: {w})", t.name()))),
        });
    }
    let (cmp, cmp_json) = cmp.finish();
    rep.tables.push(("comparisons (IOPS, a over b: median of per-round ratios)".into(), cmp));

    let ktls = kernel_tls();
    rep.notes.push(format!(
        "targets pinned to CPU {}, client (spdk_nvme_perf, the same for every target) to CPU {}; {} samples per cell \
         of {} s after {} s of warm-up, every cell once per round, order reversed every other round",
        cfg.target_cpu, cfg.client_cpu, cfg.samples, cfg.seconds, cfg.warmup
    ));
    rep.notes.push(if ktls {
        "kernel TLS: this kernel offers the tls ULP; ours runs with kTLS (its default), SPDK's ssl sock with \
         enable_ktls false (user-space OpenSSL records)"
            .into()
    } else {
        "kernel TLS: this kernel has no tls ULP (/proc/sys/net/ipv4/tcp_available_ulp), so BOTH targets run \
         user-space TLS records: SPDK's ssl sock through OpenSSL (enable_ktls false), ours started with --no-ktls; \
         the 1.3x-at-128K goal assumes kTLS on our side"
            .into()
    });
    rep.notes.push(format!(
        "TLS: TLS 1.3, PSK made fresh for the run (NVMeTLSkey-1:01, SHA-256, 32 bytes), host {HOSTNQN}, identity \
         NVMe0R01 <host> <subsystem>; SPDK: keyring_file_add_key, sock_impl_set_options ssl tls_version 13, \
         listener secure_channel true, subsystem not open to any host, nvmf_subsystem_add_host psk key0 (JSON \
         config in {}); ours: ferrofabric target --tls-listen ADDR --psk HOSTNQN=KEY{}",
        logs.display(),
        if ktls { "" } else { " --no-ktls" }
    ));
    rep.notes.push(
        "target_cpu: CPUs the target process kept busy over the measured window (/proc/PID/task/*/schedstat); \
         target_us_per_io and client_us_per_io: CPU µs per I/O (median of the samples' own ratios). Both busy-poll, \
         so an unbounded target's CPU per I/O counts its idle spin too: read it in quota mode."
            .into(),
    );
    if let Some(q) = cfg.quota_percent {
        rep.notes.push(format!(
            "quota mode: the target process in a cgroup capped at {q}% of one CPU (100 ms period), TLS cells only"
        ));
    }
    for (t, why) in missing {
        rep.notes.push(format!("{} not run: {why}", t.name()));
    }
    for e in &error_lines {
        rep.notes.push(format!("client error: {e}"));
    }
    rep.summary = json!({ "medians": med_json, "comparisons": cmp_json });
    rep.rows = rows;
    rep
}

/// A ratio of two cells' IOPS.
struct Comparison {
    name: &'static str,
    workload: Workload,
    mode: Mode,
    a: TargetKind,
    b: TargetKind,
    goal: Option<f64>,
}

fn comparisons(cells: &[CellKey]) -> Vec<Comparison> {
    use TargetKind::{OursPlain, OursTls, SpdkPlain, SpdkTls};
    let has = |w, m, t| cells.contains(&CellKey { workload: w, mode: m, target: t });
    let mut out = Vec::new();
    for mode in [Mode::Free, Mode::Quota] {
        for w in [RR4K_QD32, R128K_QD16] {
            let mut add = |name, a, b, goal| {
                if has(w, mode, a) && has(w, mode, b) {
                    out.push(Comparison { name, workload: w, mode, a, b, goal });
                }
            };
            add("tls: ours vs spdk", OursTls, SpdkTls, goal(w));
            add("plain: ours vs spdk", OursPlain, SpdkPlain, None);
            add("ours: tls vs plain", OursTls, OursPlain, None);
            add("spdk: tls vs plain", SpdkTls, SpdkPlain, None);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_the_goals_of_the_issue_in_both_modes() {
        let cfg = Config::new(PathBuf::from("ferrofabric"));
        let cells = plan(&cfg);
        let cmps = comparisons(&cells);
        for mode in [Mode::Free, Mode::Quota] {
            for (w, g) in [(RR4K_QD32, 1.1), (R128K_QD16, 1.3)] {
                assert!(
                    cmps.iter().any(|c| c.name == "tls: ours vs spdk"
                        && c.workload == w
                        && c.mode == mode
                        && c.goal == Some(g)),
                    "{} {mode:?}",
                    w.name()
                );
            }
        }
        // Plain cells only unbounded; no cell twice.
        assert!(cells.iter().filter(|c| !c.target.tls()).all(|c| c.mode == Mode::Free));
        let mut dedup = cells.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), cells.len());
        assert_eq!(cells.len(), 4 * 2 + 2 * 2);
        let spdk_only = Config { targets: vec![Side::Spdk], ..Config::quick(PathBuf::from("ferrofabric")) };
        let cells = plan(&spdk_only);
        assert_eq!(cells.iter().map(|c| c.target).collect::<Vec<_>>(), vec![TargetKind::SpdkTls; 2]);
        assert!(comparisons(&cells).is_empty());
    }

    #[test]
    fn targets_parse_and_ours_starts_with_the_agreed_flags() {
        assert_eq!("ours".parse::<Side>(), Ok(Side::Ours));
        assert_eq!(" spdk".parse::<Side>(), Ok(Side::Spdk));
        assert!("tgt".parse::<Side>().is_err());
        let cmd = ours_tls_command(Path::new("ff"), 0, 4420, 4421, "NVMeTLSkey-1:01:x:", false);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let line = args.join(" ");
        assert!(line.contains("--tls-listen 127.0.0.1:4421"), "{line}");
        assert!(line.contains(&format!("--psk {HOSTNQN}=NVMeTLSkey-1:01:x:")), "{line}");
        assert!(line.ends_with("--no-ktls"), "{line}");
        let with = ours_tls_command(Path::new("ff"), 0, 4420, 4421, "k", true);
        assert!(!with.get_args().any(|a| a == "--no-ktls"));
    }

    #[test]
    fn spdk_tls_config_is_the_secure_channel_sequence() {
        let tls = SpdkTls { key_file: PathBuf::from("/tmp/k"), hostnqn: HOSTNQN.into() };
        let c = spdk_procs::nvmf_tgt_config(4420, true, Some(&tls)).to_string();
        for needle in [
            r#""method":"keyring_file_add_key","params":{"name":"key0","path":"/tmp/k"}"#,
            r#""impl_name":"ssl""#,
            r#""tls_version":13"#,
            r#""enable_ktls":false"#,
            r#""allow_any_host":false"#,
            r#""secure_channel":true"#,
            r#""psk":"key0""#,
        ] {
            assert!(c.contains(needle), "{needle} in {c}");
        }
        let plain = spdk_procs::nvmf_tgt_config(4420, true, None).to_string();
        assert!(plain.contains(r#""allow_any_host":true"#) && !plain.contains("ssl") && !plain.contains("keyring"));
    }
}
