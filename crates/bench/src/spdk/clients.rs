//! The two clients of the side-by-side bench: SPDK's `spdk_nvme_perf` (a child process on the client
//! CPU, its text output parsed) and our load engine `ff-perf` (in process, its reactor pinned to the
//! client CPU). Each run reports the window it measured so the target's CPU time and syscalls can be
//! read over exactly that window.

use super::procs::SpdkBuild;
pub use crate::measure::{Measured, Probe};
use crate::measure::{Probes, per_io, tail, window};
use crate::procs::CpuSampler;
use crate::target::Workload;
use anyhow::{Context, Result, bail};
use ff_perf::PerfConfig;
use serde::Serialize;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which client drives a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ClientKind {
    /// SPDK's `spdk_nvme_perf` (keeps SQ flow control on, sends an empty host NQN).
    SpdkPerf,
    /// Our `ferrofabric perf` engine (asks for SQ flow control off).
    FfPerf,
}

impl ClientKind {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::SpdkPerf => "spdk_nvme_perf",
            ClientKind::FfPerf => "ff perf",
        }
    }
}

/// One client run against one target.
pub struct Run<'a> {
    /// What to run.
    pub workload: Workload,
    /// The target's listener.
    pub addr: SocketAddr,
    /// Its subsystem.
    pub nqn: &'a str,
    /// Measured seconds.
    pub seconds: u32,
    /// Warm-up seconds before them.
    pub warmup: u32,
    /// CPU the client runs on.
    pub cpu: usize,
    /// spdk_nvme_perf's shared-memory id.
    pub shm_id: u32,
    /// What to watch over the measured window besides the figures.
    pub probe: Probe,
    /// NVMe/TCP over TLS 1.3 with a PSK (`spdk_nvme_perf -S ssl`); `None`: plain TCP.
    pub tls: Option<PerfTls>,
}

/// What `spdk_nvme_perf` needs for TLS: the host NQN the PSK belongs to and the PSK's file.
#[derive(Clone, Debug)]
pub struct PerfTls {
    /// The host NQN (part of the TLS identity `NVMe0R01 <host> <subsystem>`).
    pub hostnqn: String,
    /// The interchange-format PSK file (absolute, mode 0600, no trailing newline).
    pub psk_file: std::path::PathBuf,
}

/// What `spdk_nvme_perf` needs for NVMe in-band authentication (DH-HMAC-CHAP): the host NQN the
/// secrets are bound to and the `DHHC-1:..:` key files (`--dhchap-key`, `--dhchap-ctrlr-key`), which it
/// reads through SPDK's file keyring (mode 0600, no trailing newline).
#[derive(Clone, Debug)]
pub struct PerfDhchap {
    /// The host NQN the secrets belong to.
    pub hostnqn: String,
    /// The host secret's file.
    pub key_file: std::path::PathBuf,
    /// The controller secret's file: the target must prove itself too (bidirectional).
    pub ctrlr_key_file: Option<std::path::PathBuf>,
}

/// `spdk_nvme_perf`'s transport ID (`-r`) for `run`: with TLS it names the host NQN, else the host NQN
/// stays empty as SPDK's perf leaves it.
pub fn spdk_trid(run: &Run<'_>) -> String {
    spdk_trid_with(run, None)
}

/// [`spdk_trid`], naming the host NQN also for DH-HMAC-CHAP (the one the secrets are bound to).
fn spdk_trid_with(run: &Run<'_>, dhchap: Option<&PerfDhchap>) -> String {
    let mut trid =
        format!("trtype:TCP adrfam:IPv4 traddr:{} trsvcid:{} subnqn:{} ns:1", run.addr.ip(), run.addr.port(), run.nqn);
    if let Some(h) = run.tls.as_ref().map(|t| &t.hostnqn).or(dhchap.map(|d| &d.hostnqn)) {
        trid.push_str(&format!(" hostnqn:{h}"));
    }
    trid
}

/// The one error SPDK's host prints at every detach, against SPDK's own target as against ours: its I/O
/// qpair is polled once more after it disconnected it (`CQ transport error -6`).
pub fn is_teardown_noise(line: &str) -> bool {
    line.contains("CQ transport error -6")
}

/// Runs `spdk_nvme_perf` on `run.cpu` against `run.addr`.
pub fn spdk_perf(build: &SpdkBuild, run: &Run<'_>) -> Result<Measured> {
    spdk_perf_with(build, run, None)
}

/// [`spdk_perf`], authenticating with DH-HMAC-CHAP when `dhchap` is given.
pub fn spdk_perf_with(build: &SpdkBuild, run: &Run<'_>, dhchap: Option<&PerfDhchap>) -> Result<Measured> {
    let w = run.workload;
    let trid = spdk_trid_with(run, dhchap);
    // stdbuf: the "Launching workers" line must arrive when printed, not when the pipe buffer flushes.
    let mut cmd = Command::new("stdbuf");
    cmd.arg("-oL").arg(build.perf());
    cmd.args(["-c", &format!("{:#x}", 1u64 << run.cpu), "-i", &run.shm_id.to_string()]);
    cmd.args(["-q", &w.qd.to_string(), "-o", &w.io_size.to_string(), "-w", &w.pattern.to_string()]);
    cmd.args(["-t", &run.seconds.to_string(), "-L", "-r", &trid]);
    if run.warmup > 0 {
        cmd.args(["-a", &run.warmup.to_string()]);
    }
    if let Some(t) = &run.tls {
        cmd.args(["-S", "ssl"]).arg("--psk-path").arg(&t.psk_file);
    }
    if let Some(d) = dhchap {
        cmd.arg("--dhchap-key").arg(&d.key_file);
        if let Some(c) = &d.ctrlr_key_file {
            cmd.arg("--dhchap-ctrlr-key").arg(c);
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", build.perf().display()))?;
    let spawned = Instant::now();
    let pid = child.id();
    // Its one busy-polling core is always busy; what it is worth per I/O is its CPU over the IOPS.
    let sampler = CpuSampler::start(pid);
    let stdout = child.stdout.take().context("perf stdout")?;
    let mut stderr = child.stderr.take().context("perf stderr")?;
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((line, Instant::now()));
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = Vec::new();
    let mut launched = None;
    let deadline = spawned + Duration::from_secs(30);
    while launched.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((l, t)) => {
                if l.contains("Launching workers") {
                    launched = Some(t);
                }
                lines.push(l);
            }
            Err(_) => break,
        }
    }
    // Without the line (perf failed early, or its output stayed buffered) assume 0.3 s of start-up.
    let win = window(launched.unwrap_or(spawned + Duration::from_millis(300)), run.warmup, run.seconds);
    let probes = if launched.is_some() { Probes::start(&run.probe, win, pid) } else { Probes::default() };
    lines.extend(rx.iter().map(|(l, _)| l));
    let status = child.wait()?;
    let client_cpu = sampler.finish(win.0, win.1);
    let _ = reader.join();
    let err_text = err_reader.join().unwrap_or_default();
    let (target_count, client_count, target_profile, client_profile) = probes.finish();
    let mut m = parse_spdk_perf(&lines.join("\n"), &err_text)
        .with_context(|| format!("spdk_nvme_perf against {} (exit {status})", run.addr))?;
    if !status.success() {
        bail!("spdk_nvme_perf against {} exited with {status}: {}", run.addr, tail(&err_text));
    }
    m.window = launched.map(|_| win);
    m.client_cpu = Some(client_cpu).filter(|c| c.is_finite() && launched.is_some());
    m.target_syscalls_per_io = per_io(target_count, m.iops, win);
    m.client_syscalls_per_io = per_io(client_count, m.iops, win);
    m.target_profile = target_profile;
    m.client_profile = client_profile;
    Ok(m)
}

/// Parses spdk_nvme_perf's output: the `Total` row (IOPS, MiB/s, average, min, max latency in µs) and
/// the latency summary `-L` prints (`50.00000% : 59.166us`). Error lines from either stream are kept.
pub fn parse_spdk_perf(stdout: &str, stderr: &str) -> Result<Measured> {
    let mut m = Measured { p50_us: f64::NAN, p99_us: f64::NAN, ..Measured::default() };
    let mut total = None;
    for line in stdout.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Total") {
            let nums: Vec<f64> =
                rest.trim_start().trim_start_matches(':').split_whitespace().filter_map(|v| v.parse().ok()).collect();
            if nums.len() >= 2 {
                total = Some((nums[0], nums[1]));
            }
        } else if let Some((pct, val)) = t.split_once(':') {
            let us = val.trim().strip_suffix("us").and_then(|v| v.trim().parse::<f64>().ok());
            // The first summary only (one namespace, one core): later ones would be per-core repeats.
            match (pct.trim(), us) {
                ("50.00000%", Some(us)) if m.p50_us.is_nan() => m.p50_us = us,
                ("99.00000%", Some(us)) if m.p99_us.is_nan() => m.p99_us = us,
                _ => {}
            }
        }
    }
    for line in stdout.lines().chain(stderr.lines()) {
        if (line.contains("*ERROR*") || line.contains("completed with error")) && !is_teardown_noise(line) {
            m.errors.push(line.trim().to_string());
        }
    }
    let Some((iops, mib)) = total else {
        bail!("no Total row in its output: {}", tail(&format!("{stdout}\n{stderr}")));
    };
    m.iops = iops;
    m.mib_s = mib;
    Ok(m)
}

/// Runs our load engine in process, its one reactor busy-polling on `run.cpu`.
pub fn ff_perf(run: &Run<'_>) -> Result<Measured> {
    let w = run.workload;
    let cfg = PerfConfig {
        addr: run.addr,
        nqn: run.nqn.to_string(),
        queue_depth: w.qd,
        io_size: w.io_size,
        pattern: w.pattern,
        seconds: f64::from(run.seconds),
        warmup_seconds: f64::from(run.warmup),
        cpus: vec![run.cpu],
        busy_poll: true,
        ..PerfConfig::default()
    };
    ff_perf_with(&cfg, &run.probe)
}

/// Runs our load engine in process with `cfg` (NVMe/TCP or iSCSI, as `cfg` says) and `probe` over its
/// measured window.
pub fn ff_perf_with(cfg: &PerfConfig, probe: &Probe) -> Result<Measured> {
    let (warmup, seconds) = (cfg.warmup_seconds.ceil() as u32, cfg.seconds.ceil() as u32);
    let t0 = Instant::now();
    // Connecting takes a few ms: the window starts after it as it does after spdk_nvme_perf's start-up.
    let win = window(t0 + Duration::from_millis(50), warmup, seconds);
    let (report, (target_count, _, target_profile, client_profile)) = std::thread::scope(|s| {
        let h = s.spawn(|| ff_perf::run(cfg));
        // The client is this process (its perf reactor and the bench's own idle threads).
        let probes = Probes::start(probe, win, std::process::id()).finish();
        (h.join().unwrap_or_else(|_| Err(ff_perf::PerfError::Io("perf thread panicked".into()))), probes)
    });
    let r = report.with_context(|| format!("ff perf against {}", cfg.addr))?;
    let mut errors = Vec::new();
    if r.errors > 0 {
        errors.push(format!("{} I/O errors", r.errors));
    }
    Ok(Measured {
        iops: r.iops,
        mib_s: r.mib_s,
        p50_us: r.latency.p50_us,
        p99_us: r.latency.p99_us,
        errors,
        window: Some(win),
        client_cpu: None,
        client_syscalls_per_io: if matches!(probe, Probe::Syscalls { .. }) { r.syscalls_per_io } else { f64::NAN },
        target_syscalls_per_io: per_io(target_count, r.iops, win),
        target_profile,
        client_profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Initializing NVMe Controllers
Attached to NVMeoF Controller at TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:cnode1)
Initialization complete. Launching workers.
========================================================
                                                                                   Latency(us)
Device Information                                         :       IOPS      MiB/s    Average        min        max
TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:cnode1) NSID 1 from core  1:  126849.17     495.50     252.34      55.56   16079.56
========================================================
Total                                                      :  126849.17     495.50     252.34      55.56   16079.56

Summary latency data for TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.s from core 1:
=================================================================================
  1.00000% :    66.660us
 50.00000% :    59.166us
 99.00000% :  8027.598us
 99.90000% : 20195.216us
";

    #[test]
    fn parses_the_total_row_and_the_latency_summary() {
        let err = "[2026] nvme_qpair.c: 956:spdk_nvme_qpair_process_completions: *ERROR*: [...] CQ transport error -6 (No such device or address)\n\
                   [2026] nvme_ctrlr.c:1193:nvme_ctrlr_shutdown_get_cc_done: *ERROR*: [...] Failed to read the CC register\n";
        let m = parse_spdk_perf(OUT, err).unwrap();
        assert_eq!((m.iops, m.mib_s), (126849.17, 495.50));
        assert_eq!((m.p50_us, m.p99_us), (59.166, 8027.598));
        assert_eq!(m.errors.len(), 1, "teardown noise is not an error, the CC read is: {:?}", m.errors);
        assert!(m.errors[0].contains("Failed to read the CC register"));
    }

    #[test]
    fn output_without_a_total_row_is_an_error() {
        let e = parse_spdk_perf("Initializing NVMe Controllers\n", "spdk_nvme_perf: connect failed\n").unwrap_err();
        assert!(e.to_string().contains("connect failed"), "{e}");
    }
}
