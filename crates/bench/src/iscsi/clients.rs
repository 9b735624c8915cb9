//! The clients of the iSCSI side-by-side bench. A client is one [`ClientKind`]: libiscsi's `iscsi-perf`
//! (a child process on the client CPU, its progress lines parsed) drives every iSCSI target; our
//! `ff perf` drives our target's NVMe/TCP listener on the same namespace. A client that speaks iSCSI
//! and NVMe/TCP alike is one more variant here and one more arm in [`run`].

use super::targets::{BLOCK_SIZE, OURS_NQN};
use crate::measure::{Measured, Probe, Probes, per_io, tail, window};
use crate::procs::CpuSampler;
use crate::target::Workload;
use anyhow::{Context, Result, bail, ensure};
use ff_perf::{IscsiTarget, Pattern, PerfConfig};
use serde::Serialize;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The initiator name iscsi-perf logs in with.
pub const INITIATOR_IQN: &str = "iqn.2026-11.io.ferrofabric:bench";

/// Which client drives a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ClientKind {
    /// libiscsi's `iscsi-perf`: READ(16) only, one connection, `poll()` loop, no latency figures.
    IscsiPerf,
    /// Our `ff perf` engine over iSCSI (one session, one busy-polling reactor).
    FfPerfIscsi,
    /// Our `ff perf` engine over NVMe/TCP (our target's NVMe listener on the same namespace).
    FfPerfNvme,
}

impl ClientKind {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::IscsiPerf => "iscsi-perf",
            ClientKind::FfPerfIscsi => "ff perf iscsi",
            ClientKind::FfPerfNvme => "ff perf nvme/tcp",
        }
    }
}

/// Where a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// An iSCSI portal, target name and LUN.
    Iscsi {
        /// The portal.
        addr: SocketAddr,
        /// The target name.
        iqn: String,
        /// The LUN.
        lun: u32,
    },
    /// An NVMe/TCP listener and subsystem (namespace 1).
    Nvme {
        /// The listener.
        addr: SocketAddr,
        /// The subsystem.
        nqn: String,
    },
}

/// One client run against one target.
pub struct Run {
    /// What to run.
    pub workload: Workload,
    /// Where.
    pub endpoint: Endpoint,
    /// Measured seconds.
    pub seconds: u32,
    /// Warm-up seconds before them.
    pub warmup: u32,
    /// CPU the client runs on.
    pub cpu: usize,
    /// What to watch over the measured window besides the figures.
    pub probe: Probe,
}

/// Runs `client` for `run`.
pub fn run(client: ClientKind, run: &Run) -> Result<Measured> {
    match (client, &run.endpoint) {
        (ClientKind::IscsiPerf, Endpoint::Iscsi { addr, iqn, lun }) => iscsi_perf(run, *addr, iqn, *lun),
        (ClientKind::FfPerfNvme, Endpoint::Nvme { addr, nqn }) => {
            let nvme = crate::spdk::clients::Run {
                workload: run.workload,
                addr: *addr,
                nqn,
                seconds: run.seconds,
                warmup: run.warmup,
                cpu: run.cpu,
                shm_id: 0,
                probe: run.probe.clone(),
                tls: None,
            };
            crate::spdk::clients::ff_perf(&nvme)
        }
        (ClientKind::FfPerfIscsi, Endpoint::Iscsi { addr, iqn, lun }) => {
            let w = run.workload;
            let cfg = PerfConfig {
                addr: *addr,
                queue_depth: w.qd,
                io_size: w.io_size,
                pattern: w.pattern,
                seconds: f64::from(run.seconds),
                warmup_seconds: f64::from(run.warmup),
                cpus: vec![run.cpu],
                busy_poll: true,
                iscsi: Some(IscsiTarget {
                    target: iqn.clone(),
                    lun: u16::try_from(*lun).context("LUN over 65535")?,
                    initiator: INITIATOR_IQN.into(),
                    chap: None,
                }),
                ..PerfConfig::default()
            };
            crate::spdk::clients::ff_perf_with(&cfg, &run.probe)
        }
        (c, e) => bail!("{} cannot drive {e:?}", c.name()),
    }
}

/// The NVMe endpoint of our target's namespace.
pub fn ours_nvme(addr: SocketAddr) -> Endpoint {
    Endpoint::Nvme { addr, nqn: OURS_NQN.into() }
}

/// Splits a stream on `\r` and `\n` (iscsi-perf rewrites its progress line with `\r`) and sends each
/// non-empty line with the instant it arrived.
fn read_lines(mut r: impl Read, tx: mpsc::Sender<(String, Instant)>) {
    let mut buf = [0u8; 4096];
    let mut line = Vec::new();
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let now = Instant::now();
        for &b in &buf[..n] {
            if b == b'\r' || b == b'\n' {
                if !line.is_empty() {
                    let _ = tx.send((String::from_utf8_lossy(&line).into_owned(), now));
                    line.clear();
                }
            } else {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send((String::from_utf8_lossy(&line).into_owned(), Instant::now()));
    }
}

/// Runs `iscsi-perf` on `run.cpu` for the warm-up, the measured seconds and one more (iscsi-perf prints
/// no per-second figure for its last second: the extra one is thrown away, teardown with it).
fn iscsi_perf(run: &Run, addr: SocketAddr, iqn: &str, lun: u32) -> Result<Measured> {
    let w = run.workload;
    let random = match w.pattern {
        Pattern::RandRead => true,
        Pattern::Read => false,
        p => bail!("iscsi-perf only reads, not {p}"),
    };
    ensure!(
        w.io_size >= BLOCK_SIZE as usize && w.io_size.is_multiple_of(BLOCK_SIZE as usize),
        "I/O size {} is not whole {BLOCK_SIZE} B blocks",
        w.io_size
    );
    let total = run.warmup + run.seconds + 1;
    let url = format!("iscsi://{}:{}/{iqn}/{lun}", addr.ip(), addr.port());
    // stdbuf: the "will run for" line must arrive when printed (it marks the start of the load).
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &run.cpu.to_string(), "stdbuf", "-oL", "iscsi-perf", "-i", INITIATOR_IQN]);
    cmd.args(["-m", &w.qd.to_string(), "-b", &(w.io_size / BLOCK_SIZE as usize).to_string()]);
    cmd.args(["-t", &total.to_string()]);
    if random {
        cmd.arg("-r");
    }
    cmd.arg(&url);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting iscsi-perf")?;
    let spawned = Instant::now();
    let pid = child.id();
    // A single-threaded client may be what limits the figure: its CPU says whether it was saturated.
    let sampler = CpuSampler::start(pid);
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let out = child.stdout.take().context("iscsi-perf stdout")?;
    let err = child.stderr.take().context("iscsi-perf stderr")?;
    let tx2 = tx.clone();
    let readers = [std::thread::spawn(move || read_lines(out, tx)), std::thread::spawn(move || read_lines(err, tx2))];
    let mut lines = Vec::new();
    let mut started = None;
    let login_deadline = spawned + Duration::from_secs(20);
    while started.is_none() {
        match rx.recv_timeout(login_deadline.saturating_duration_since(Instant::now())) {
            Ok((l, t)) => {
                if l.starts_with("will run for") {
                    started = Some(t);
                }
                lines.push(l);
            }
            Err(_) => break,
        }
    }
    let win = window(started.unwrap_or(spawned), run.warmup, run.seconds);
    let probes = if started.is_some() { Probes::start(&run.probe, win, pid) } else { Probes::default() };
    // iscsi-perf stops only when a progress tick lands exactly on its last second: a stall that skips
    // it would let it run on, so it is killed well after its time.
    let deadline = started.unwrap_or(spawned) + Duration::from_secs(u64::from(total) + 15);
    let mut killed = false;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))) {
            Ok((l, _)) => lines.push(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                killed = true;
                lines.extend(rx.iter().map(|(l, _)| l));
                break;
            }
        }
    }
    let client_cpu = sampler.finish(win.0, win.1);
    let status = child.wait()?;
    for r in readers {
        let _ = r.join();
    }
    let (target_count, client_count, _, _) = probes.finish();
    let text = lines.join("\n");
    let mut m = parse_iscsi_perf(&text, w, run.warmup, run.seconds)
        .with_context(|| format!("iscsi-perf against {url} (exit {status})"))?;
    if killed {
        m.errors.push(format!("iscsi-perf ran past its {total} s and was killed"));
    } else if !status.success() {
        bail!("iscsi-perf against {url} exited with {status}: {}", tail(&text));
    }
    m.window = started.map(|_| win);
    m.client_cpu = Some(client_cpu).filter(|c| c.is_finite());
    m.target_syscalls_per_io = per_io(target_count, m.iops, win);
    m.client_syscalls_per_io = per_io(client_count, m.iops, win);
    Ok(m)
}

/// The number after `key` in `line` (`iops current 153237 (598 MB/s)` → 153237 for `iops current`).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Parses iscsi-perf's output (its `\r` progress lines already split into lines): the per-second
/// `iops current` figures after the first `warmup` ones, `seconds` of them, averaged; the LUN's
/// block size from its `capacity is N blocks or B byte` line, which must be [`BLOCK_SIZE`] (the
/// request size is given in blocks). With too few per-second figures (a run cut short) the final
/// `iops average`, which includes the warm-up, stands in and an error line says so. Lines that report
/// failed commands or logins are kept as errors. MiB/s follows from the IOPS and the I/O size;
/// iscsi-perf measures no latency (p50 and p99 are NaN).
pub fn parse_iscsi_perf(out: &str, w: Workload, warmup: u32, seconds: u32) -> Result<Measured> {
    let mut m = Measured { p50_us: f64::NAN, p99_us: f64::NAN, ..Measured::default() };
    let mut per_second = Vec::new();
    let mut average = None;
    let mut block = None;
    for line in out.lines().map(str::trim) {
        if let Some(v) = number_after(line, "iops current") {
            per_second.push(v);
        } else if line.starts_with("iops average") {
            average = number_after(line, "iops average");
        } else if line.starts_with("capacity is") {
            let blocks = number_after(line, "capacity is");
            let bytes = number_after(line, "blocks or");
            if let (Some(n), Some(b)) = (blocks, bytes)
                && n > 0.0
            {
                block = Some(b / n);
            }
        }
        let l = line.to_ascii_lowercase();
        if l.contains("failed") || l.contains("error") {
            m.errors.push(line.to_string());
        }
    }
    if let Some(b) = block {
        ensure!(
            b == f64::from(BLOCK_SIZE),
            "the LUN has {b} B blocks, the bench sizes requests in {BLOCK_SIZE} B blocks"
        );
    }
    let (from, to) = (warmup as usize, (warmup + seconds) as usize);
    m.iops = if per_second.len() >= to && to > from {
        per_second[from..to].iter().sum::<f64>() / (to - from) as f64
    } else if let Some(avg) = average {
        m.errors.push(format!(
            "{} per-second figures, {to} wanted: the whole run's average (warm-up included) stands in",
            per_second.len()
        ));
        avg
    } else {
        bail!("no IOPS in its output: {}", tail(out));
    };
    m.mib_s = m.iops * w.io_size as f64 / f64::from(1u32 << 20);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RR4K_QD32: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 32 };

    /// A real run (`-m 32 -b 1 -r -t 3` against SPDK's iscsi_tgt) as it comes out of the pipe, `\r`s and all.
    const RUN: &str = "iscsi-perf version 0.1 - (c) 2014-2015 by Peter Lieven <pl@\u{138}amp.de>\n\n\
connected to iscsi://127.0.0.1:4399/iqn.2016-06.io.spdk:disk1/0\n\
capacity is 262144 blocks or 1073741824 byte (1024 MB)\n\
performing RANDOM READ with 32 parallel requests\n\
FIXED transfer size of 1 blocks (4096 byte)\n\
will run for 3 seconds.\n\n\
\r00:00:02 - lba 123882, iops current 153237 (598 MB/s), iops average 153237 (598 MB/s), in_flight 32, busy 0        \
\r00:00:01 - lba 45058, iops current 135544 (529 MB/s), iops average 144391 (564 MB/s), in_flight 32, busy 0        \
\riops average 134351 (524 MB/s)                                                        \n\nfinished.\n";

    /// The same text split as the runner splits it.
    fn split(s: &str) -> String {
        let (tx, rx) = mpsc::channel();
        read_lines(s.as_bytes(), tx);
        rx.iter().map(|(l, _)| l).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn progress_lines_split_on_carriage_returns() {
        let lines = split(RUN);
        assert_eq!(lines.lines().filter(|l| l.contains("iops current")).count(), 2);
        assert!(lines.lines().any(|l| l.starts_with("will run for")));
        assert!(lines.lines().any(|l| l.trim() == "iops average 134351 (524 MB/s)"));
    }

    #[test]
    fn averages_the_seconds_after_the_warm_up() {
        // 1 s warm-up, 1 s measured: the second per-second figure.
        let m = parse_iscsi_perf(&split(RUN), RR4K_QD32, 1, 1).unwrap();
        assert_eq!(m.iops, 135544.0);
        assert!((m.mib_s - 135544.0 * 4096.0 / 1048576.0).abs() < 1e-9);
        assert!(m.p50_us.is_nan() && m.p99_us.is_nan());
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        // No warm-up, 2 s measured: both.
        let m = parse_iscsi_perf(&split(RUN), RR4K_QD32, 0, 2).unwrap();
        assert_eq!(m.iops, (153237.0 + 135544.0) / 2.0);
    }

    #[test]
    fn a_short_run_falls_back_to_the_average_and_says_so() {
        let m = parse_iscsi_perf(&split(RUN), RR4K_QD32, 1, 2).unwrap();
        assert_eq!(m.iops, 134351.0);
        assert_eq!(m.errors.len(), 1);
        assert!(m.errors[0].contains("2 per-second figures, 3 wanted"), "{:?}", m.errors);
    }

    #[test]
    fn a_failed_login_is_an_error_with_its_message() {
        // A real run against a closed port (exit status 10).
        let out = "Login Failed. iscsi_service failed with : iscsi_service_reconnect_if_loggedin. Can not reconnect right now.\n\n\
iscsi-perf version 0.1 - (c) 2014-2015 by Peter Lieven <pl@\u{138}amp.de>\n\n";
        let e = parse_iscsi_perf(&split(out), RR4K_QD32, 1, 1).unwrap_err();
        assert!(format!("{e:#}").contains("Login Failed"), "{e:#}");
    }

    #[test]
    fn a_lun_of_another_block_size_is_refused() {
        let out = RUN.replace("262144 blocks or 1073741824 byte", "2097152 blocks or 1073741824 byte");
        let e = parse_iscsi_perf(&split(&out), RR4K_QD32, 1, 1).unwrap_err();
        assert!(e.to_string().contains("512 B blocks"), "{e}");
    }

    #[test]
    fn failed_reads_are_kept_as_errors() {
        let out = RUN.replace(
            "will run for 3 seconds.\n",
            "will run for 3 seconds.\nRead10/16 failed with sense key:5 ascq:2100\n",
        );
        let m = parse_iscsi_perf(&split(&out), RR4K_QD32, 1, 1).unwrap();
        assert_eq!(m.errors, vec!["Read10/16 failed with sense key:5 ascq:2100".to_string()]);
    }
}
