//! `recv-cutover`: where should the receive pipe hand over to direct receive?
//!
//! A sender thread streams PDUs (a 64-byte NVMe/TCP-like header + N bytes of data) over loopback TCP with
//! plain blocking writes of big batches. The receiver parses them through an ff-sock group in one of
//! three ways: `direct` (no pipe: one recv for the header, one for the data straight into the
//! destination), `pipe` (everything through a 64 KiB pipe and copied out) and `hybrid` (the default pipe
//! and cut-over). Per configuration it measures throughput, the receiving thread's CPU per GiB, recv
//! syscalls per PDU and bytes copied per PDU, interleaving the modes within each N and reporting medians.
//! From the medians it derives the measured cut-over and whether hybrid tracks the better of the two.

use crate::report::{Plot, Report, Series, Table};
use crate::stats::{cpu_ms_per_gib, gib_per_s, human_size, median, per, ratio};
use crate::sys::ThreadCpu;
use anyhow::{Context, Result, bail, ensure};
use ff_sock::options::{DEFAULT_CUTOVER, DEFAULT_PIPE_SIZE};
use ff_sock::{GroupCounters, GroupOptions, SockError, SockGroup, TcpSock};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes of the command header that precedes each PDU's data.
pub const HEADER: usize = 64;
/// PDU type byte of the header (NVMe/TCP C2HData).
const PDU_TYPE: u8 = 0x07;
/// A run that takes longer than this has stalled (the sender died or the parser lost sync).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Data bytes per PDU (N), each measured in every mode.
    pub sizes: Vec<usize>,
    /// Repeats per (N, mode); medians are taken over them.
    pub repeats: usize,
    /// Wire bytes per run (headers + data), bounded by `min_pdus..=max_pdus` PDUs.
    pub bytes_per_run: u64,
    /// Fewest PDUs per run (large N).
    pub min_pdus: u64,
    /// Most PDUs per run (small N, where each PDU costs syscalls, not bytes).
    pub max_pdus: u64,
    /// Pipe size of the `pipe` mode.
    pub pipe_size: usize,
    /// Extra hybrid modes with these cut-overs (a sweep), besides the default one.
    pub cutovers: Vec<usize>,
    /// Relative difference treated as noise when comparing hybrid with the better mode.
    pub noise: f64,
    /// Destination area the payloads rotate through, so copies do not stay in a hot cache line set.
    pub dest_bytes: usize,
    /// Bytes per blocking write of the sender.
    pub batch_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sizes: vec![0, 512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10],
            repeats: 5,
            bytes_per_run: 512 << 20,
            min_pdus: 256,
            max_pdus: 200_000,
            pipe_size: DEFAULT_PIPE_SIZE,
            cutovers: Vec::new(),
            noise: 0.10,
            dest_bytes: 8 << 20,
            batch_bytes: 1 << 20,
        }
    }
}

impl Config {
    /// A CI smoke configuration: a few sizes, one repeat, a few MiB per run.
    pub fn quick() -> Config {
        Config {
            sizes: vec![0, 512, 8 << 10, 64 << 10],
            repeats: 1,
            bytes_per_run: 4 << 20,
            min_pdus: 16,
            max_pdus: 4_000,
            ..Config::default()
        }
    }

    /// PDUs sent in one run with `n` data bytes each.
    pub fn pdus_for(&self, n: usize) -> u64 {
        (self.bytes_per_run / (HEADER + n) as u64).clamp(self.min_pdus, self.max_pdus.max(self.min_pdus))
    }

    /// The modes measured, in their base interleaving order.
    pub fn modes(&self) -> Vec<Mode> {
        let mut m = vec![Mode::Direct, Mode::Pipe, Mode::Hybrid];
        m.extend(self.cutovers.iter().map(|&c| Mode::HybridAt(c)));
        m
    }
}

/// How the receiver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No pipe: every recv is a readv into the caller's buffer.
    Direct,
    /// Everything through the pipe (cut-over never reached) and copied out.
    Pipe,
    /// The default pipe and cut-over.
    Hybrid,
    /// The default pipe with this cut-over (sweep).
    HybridAt(usize),
}

impl Mode {
    /// Name used in rows, tables and plots.
    pub fn name(&self) -> String {
        match self {
            Mode::Direct => "direct".into(),
            Mode::Pipe => "pipe".into(),
            Mode::Hybrid => "hybrid".into(),
            Mode::HybridAt(c) => format!("hybrid@{}", human_size(*c)),
        }
    }

    /// The receiver group's options in this mode.
    pub fn options(&self, cfg: &Config) -> GroupOptions {
        let d = GroupOptions::default();
        match *self {
            Mode::Direct => GroupOptions { pipe_size: 0, ..d },
            Mode::Pipe => GroupOptions { pipe_size: cfg.pipe_size, cutover: usize::MAX, ..d },
            Mode::Hybrid => d,
            Mode::HybridAt(c) => GroupOptions { cutover: c, ..d },
        }
    }
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Data bytes per PDU.
    pub n: usize,
    /// Receive mode.
    pub mode: Mode,
    /// Repeat index.
    pub repeat: usize,
    /// PDUs received.
    pub pdus: u64,
    /// Wire bytes received (headers + data).
    pub bytes: u64,
    /// Wall time from the sender's start signal to the last byte parsed.
    pub wall: Duration,
    /// CPU time of the receiving thread over the same interval.
    pub cpu: ThreadCpu,
    /// The receiver group's counters.
    pub counters: GroupCounters,
}

impl Sample {
    /// GiB/s of wire bytes.
    pub fn gib_s(&self) -> f64 {
        gib_per_s(self.bytes, self.wall)
    }
    /// Receiver CPU milliseconds per GiB received.
    pub fn cpu_ms_per_gib(&self) -> f64 {
        cpu_ms_per_gib(self.cpu.total(), self.bytes)
    }
    /// recv-side syscalls (readv, including would-block) per PDU.
    pub fn recv_per_pdu(&self) -> f64 {
        per(self.counters.sock.recv_syscalls(), self.pdus)
    }
    /// Bytes copied out of the pipe per PDU.
    pub fn copied_per_pdu(&self) -> f64 {
        per(self.counters.sock.bytes_copied, self.pdus)
    }
}

fn header(n: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = PDU_TYPE;
    h[2] = HEADER as u8; // hlen
    h[3] = HEADER as u8; // pdo: data follows the header
    h[4..8].copy_from_slice(&((HEADER + n) as u32).to_le_bytes()); // plen
    h
}

fn send_pdus(addr: SocketAddr, n: usize, pdus: u64, batch_bytes: usize, go: mpsc::Receiver<()>) -> Result<()> {
    let mut s = TcpStream::connect(addr).context("sender connect")?;
    let pdu = HEADER + n;
    let per_batch = (batch_bytes / pdu).max(1);
    let mut batch = Vec::with_capacity(per_batch * pdu);
    for i in 0..per_batch {
        batch.extend_from_slice(&header(n));
        batch.extend((0..n).map(|j| (i + j) as u8));
    }
    // Start only when the receiver's clocks run, so the socket buffers do not fill untimed.
    go.recv().context("receiver gone before start")?;
    let mut left = pdus;
    while left > 0 {
        let k = left.min(per_batch as u64);
        s.write_all(&batch[..k as usize * pdu]).context("sender write")?;
        left -= k;
    }
    Ok(())
}

/// Parses `pdus` PDUs of `n` data bytes from `id`: header, then data into a rotating destination.
fn receive(group: &mut SockGroup, id: ff_sock::SockId, n: usize, pdus: u64, dest: &mut [u8]) -> Result<()> {
    let mut hdr = [0u8; HEADER];
    let (mut hdr_got, mut data_got, mut in_data) = (0usize, 0usize, false);
    let (mut done, mut off) = (0u64, 0usize);
    let mut events = Vec::new();
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        loop {
            let r = if in_data {
                group.recv(id, &mut dest[off + data_got..off + n])
            } else {
                group.recv(id, &mut hdr[hdr_got..])
            };
            let got = match r {
                Ok(k) => k,
                Err(SockError::WouldBlock) => break,
                Err(e) => bail!("receiver: {e} after {done} of {pdus} PDUs"),
            };
            if in_data {
                data_got += got;
                if data_got == n {
                    (in_data, data_got) = (false, 0);
                    off = if off + 2 * n <= dest.len() { off + n } else { 0 };
                    done += 1;
                }
            } else {
                hdr_got += got;
                if hdr_got == HEADER {
                    hdr_got = 0;
                    let plen = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
                    ensure!(hdr[0] == PDU_TYPE && plen == HEADER + n, "lost PDU framing at PDU {done}");
                    if n == 0 {
                        done += 1;
                    } else {
                        in_data = true;
                    }
                }
            }
            if done == pdus {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "receiver stalled after {done} of {pdus} PDUs");
        events.clear();
        group.poll(Some(Duration::from_millis(200)), &mut events)?;
    }
}

/// Measures one run of `n`-byte PDUs in `mode`.
pub fn run_one(cfg: &Config, n: usize, mode: Mode, repeat: usize) -> Result<Sample> {
    let opts = mode.options(cfg);
    let pdus = cfg.pdus_for(n);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let (go_tx, go_rx) = mpsc::channel();
    let batch = cfg.batch_bytes;
    let sender = std::thread::Builder::new()
        .name("cutover-send".into())
        .spawn(move || send_pdus(addr, n, pdus, batch, go_rx))?;
    let (stream, _) = listener.accept()?;
    let mut group: SockGroup = SockGroup::new(opts.clone())?;
    let id = group.add(TcpSock::from_std(stream, &opts.sock)?)?;
    let mut dest = vec![0u8; cfg.dest_bytes.max(n)];
    let c0 = ThreadCpu::now();
    let t0 = Instant::now();
    let _ = go_tx.send(());
    let res = receive(&mut group, id, n, pdus, &mut dest);
    let wall = t0.elapsed();
    let cpu = ThreadCpu::now().since(c0);
    let counters = group.counters();
    drop(group);
    let sent = sender.join().map_err(|_| anyhow::anyhow!("sender thread panicked"))?;
    res?;
    sent?;
    std::hint::black_box(&dest);
    Ok(Sample { n, mode, repeat, pdus, bytes: pdus * (HEADER + n) as u64, wall, cpu, counters })
}

/// Medians of one (N, mode).
#[derive(Clone, Copy, Debug)]
struct Med {
    gib_s: f64,
    cpu: f64,
    recv: f64,
    waits: f64,
    copied: f64,
}

fn med_of(samples: &[Sample], n: usize, mode: Mode) -> Med {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.n == n && s.mode == mode).collect();
    let m = |f: &dyn Fn(&Sample) -> f64| median(&s.iter().map(|x| f(x)).collect::<Vec<_>>());
    Med {
        gib_s: m(&|x| x.gib_s()),
        cpu: m(&|x| x.cpu_ms_per_gib()),
        recv: m(&|x| x.recv_per_pdu()),
        waits: m(&|x| per(x.counters.waits, x.pdus)),
        copied: m(&|x| x.copied_per_pdu()),
    }
}

/// Runs the benchmark: every N, every mode interleaved within each repeat; returns the report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.repeats > 0 && !cfg.sizes.is_empty(), "need at least one size and one repeat");
    let modes = cfg.modes();
    let mut samples = Vec::new();
    for &n in &cfg.sizes {
        for r in 0..cfg.repeats {
            // Rotate the order per repeat so no mode always runs first (cold) or last.
            for k in 0..modes.len() {
                let mode = modes[(k + r) % modes.len()];
                let s = run_one(cfg, n, mode, r).with_context(|| format!("N={n} mode={}", mode.name()))?;
                tracing::debug!(n, mode = %mode.name(), gib_s = s.gib_s(), cpu = s.cpu_ms_per_gib(), "run");
                samples.push(s);
            }
        }
    }
    Ok(build_report(cfg, &samples))
}

/// `a <= b`, false when either is NaN (a missing measurement is never "within noise").
fn at_most(a: f64, b: f64) -> bool {
    a <= b
}

fn build_report(cfg: &Config, samples: &[Sample]) -> Report {
    let modes = cfg.modes();
    let mut rep = Report::new(
        "recv-cutover",
        json!({
            "config": cfg,
            "modes": modes.iter().map(|m| json!({"mode": m.name(), "group": m.options(cfg).to_string()})).collect::<Vec<_>>(),
            "header_bytes": HEADER,
            "network": "loopback",
        }),
    );
    let mut rows = Table::new(&[
        "n",
        "mode",
        "repeat",
        "pdus",
        "bytes",
        "wall_s",
        "gib_s",
        "cpu_s",
        "usr_s",
        "sys_s",
        "cpu_ms_per_gib",
        "recv_syscalls",
        "recv_per_pdu",
        "readv_pipe",
        "readv_direct",
        "readv_wouldblock",
        "waits",
        "bytes_into_pipe",
        "bytes_direct",
        "bytes_copied",
        "copied_per_pdu",
    ]);
    for s in samples {
        let c = &s.counters.sock;
        rows.push(vec![
            s.n.into(),
            s.mode.name().into(),
            s.repeat.into(),
            s.pdus.into(),
            s.bytes.into(),
            s.wall.as_secs_f64().into(),
            s.gib_s().into(),
            s.cpu.total().as_secs_f64().into(),
            s.cpu.user.as_secs_f64().into(),
            s.cpu.sys.as_secs_f64().into(),
            s.cpu_ms_per_gib().into(),
            c.recv_syscalls().into(),
            s.recv_per_pdu().into(),
            c.readv_pipe.into(),
            c.readv_direct.into(),
            c.readv_wouldblock.into(),
            s.counters.waits.into(),
            c.bytes_into_pipe.into(),
            c.bytes_direct.into(),
            c.bytes_copied.into(),
            s.copied_per_pdu().into(),
        ]);
    }
    rep.rows = rows;

    let mut med = Table::new(&[
        "n",
        "mode",
        "gib_s",
        "cpu_ms_per_gib",
        "cpu_vs_best",
        "recv_per_pdu",
        "waits_per_pdu",
        "copied_b_per_pdu",
    ]);
    let mut per_n = Vec::new();
    let mut cutover: Option<usize> = None;
    let mut direct_ahead_after = true;
    let mut hybrid_off_cpu = Vec::new();
    let mut hybrid_off_tput = Vec::new();
    let mut hybrid_copied_big = Vec::new();
    for &n in &cfg.sizes {
        let d = med_of(samples, n, Mode::Direct);
        let p = med_of(samples, n, Mode::Pipe);
        let h = med_of(samples, n, Mode::Hybrid);
        let best_cpu = d.cpu.min(p.cpu);
        let best_tput = d.gib_s.max(p.gib_s);
        for &m in &modes {
            let x = med_of(samples, n, m);
            med.push(vec![
                n.into(),
                m.name().into(),
                x.gib_s.into(),
                x.cpu.into(),
                ratio(x.cpu, best_cpu).into(),
                x.recv.into(),
                x.waits.into(),
                x.copied.into(),
            ]);
        }
        let direct_wins = d.cpu < p.cpu;
        match cutover {
            None if direct_wins => cutover = Some(n),
            Some(_) if !direct_wins => direct_ahead_after = false,
            _ => {}
        }
        let h_cpu = ratio(h.cpu, best_cpu);
        let h_tput = ratio(h.gib_s, best_tput);
        if !at_most(h_cpu, 1.0 + cfg.noise) {
            hybrid_off_cpu.push(n);
        }
        if !at_most(1.0 - cfg.noise, h_tput) {
            hybrid_off_tput.push(n);
        }
        if n >= DEFAULT_CUTOVER && h.copied > 0.5 * n as f64 {
            hybrid_copied_big.push(n);
        }
        per_n.push(json!({
            "n": n,
            "direct_cpu_ms_per_gib": d.cpu, "pipe_cpu_ms_per_gib": p.cpu, "hybrid_cpu_ms_per_gib": h.cpu,
            "direct_gib_s": d.gib_s, "pipe_gib_s": p.gib_s, "hybrid_gib_s": h.gib_s,
            "direct_over_pipe_cpu": ratio(d.cpu, p.cpu),
            "hybrid_over_best_cpu": h_cpu,
            "hybrid_over_best_gib_s": h_tput,
            "better": if direct_wins { "direct" } else { "pipe" },
        }));
    }
    rep.medians = med;

    let sizes = |v: &[usize]| v.iter().map(|&n| human_size(n)).collect::<Vec<_>>().join(", ");
    rep.notes.push(match cutover {
        Some(c) if direct_ahead_after => format!(
            "measured cut-over: direct beats pipe in receiver CPU/GiB from N = {} ({c} B) on, at every larger N \
             (sock default cut-over: {})",
            human_size(c),
            human_size(DEFAULT_CUTOVER)
        ),
        Some(c) => format!(
            "measured cut-over: direct first beats pipe in receiver CPU/GiB at N = {} ({c} B), but not at every \
             larger N (noise?); sock default cut-over: {}",
            human_size(c),
            human_size(DEFAULT_CUTOVER)
        ),
        None => format!(
            "measured cut-over: none: direct never beats pipe in receiver CPU/GiB up to N = {}",
            human_size(cfg.sizes.iter().copied().max().unwrap_or(0))
        ),
    });
    rep.notes.push(if hybrid_off_cpu.is_empty() {
        format!(
            "hybrid (pipe {} + cut-over {}) is within {:.0}% of the better of direct/pipe in CPU/GiB at every N",
            human_size(DEFAULT_PIPE_SIZE),
            human_size(DEFAULT_CUTOVER),
            cfg.noise * 100.0
        )
    } else {
        format!(
            "hybrid is NOT within {:.0}% of the better of direct/pipe in CPU/GiB at N = {}",
            cfg.noise * 100.0,
            sizes(&hybrid_off_cpu)
        )
    });
    rep.notes.push(if hybrid_off_tput.is_empty() {
        format!("hybrid throughput is within {:.0}% of the better mode at every N", cfg.noise * 100.0)
    } else {
        format!(
            "hybrid throughput is more than {:.0}% below the better mode at N = {}",
            cfg.noise * 100.0,
            sizes(&hybrid_off_tput)
        )
    });
    if !hybrid_copied_big.is_empty() {
        rep.notes.push(format!(
            "hybrid still copied most payload bytes at N = {} although N >= its cut-over: the small header read \
             gathered the pipe's free space too, pulling the following payload into the pipe before the payload \
             read could take the direct path",
            sizes(&hybrid_copied_big)
        ));
    }
    for &m in modes.iter().filter(|m| matches!(m, Mode::HybridAt(_))) {
        let off: Vec<usize> = cfg
            .sizes
            .iter()
            .copied()
            .filter(|&n| {
                let (d, p, x) =
                    (med_of(samples, n, Mode::Direct), med_of(samples, n, Mode::Pipe), med_of(samples, n, m));
                !at_most(ratio(x.cpu, d.cpu.min(p.cpu)), 1.0 + cfg.noise)
            })
            .collect();
        rep.notes.push(format!(
            "sweep {}: within {:.0}% of the better mode in CPU/GiB at {} of {} sizes{}",
            m.name(),
            cfg.noise * 100.0,
            cfg.sizes.len() - off.len(),
            cfg.sizes.len(),
            if off.is_empty() { String::new() } else { format!(" (not at {})", sizes(&off)) }
        ));
    }
    rep.notes.push(
        "CPU is the receiving thread's user+sys time (getrusage RUSAGE_THREAD) per GiB of wire bytes; on loopback \
         the TCP receive processing mostly runs in the sender's softirq, so this is the recv/copy cost"
            .into(),
    );
    rep.summary = json!({
        "measured_cutover_bytes": cutover,
        "direct_ahead_at_every_larger_n": cutover.is_some() && direct_ahead_after,
        "sock_default_cutover_bytes": DEFAULT_CUTOVER,
        "noise": cfg.noise,
        "hybrid_within_noise_cpu_every_n": hybrid_off_cpu.is_empty(),
        "hybrid_outside_noise_cpu_at": hybrid_off_cpu,
        "hybrid_within_noise_gib_s_every_n": hybrid_off_tput.is_empty(),
        "hybrid_outside_noise_gib_s_at": hybrid_off_tput,
        "hybrid_copied_most_payload_above_cutover_at": hybrid_copied_big,
        "per_n": per_n,
    });

    let series = |f: fn(&Med) -> f64| -> Vec<Series> {
        modes
            .iter()
            .map(|&m| Series {
                name: m.name(),
                points: cfg.sizes.iter().map(|&n| ((HEADER + n) as f64, f(&med_of(samples, n, m)))).collect(),
            })
            .collect()
    };
    let x_label = "PDU size: 64 B header + N B data (log scale)".to_string();
    rep.plots.push(Plot {
        file: "cpu_per_gib.svg".into(),
        title: "recv-cutover: receiver CPU per GiB (median, lower is better)".into(),
        x_label: x_label.clone(),
        y_label: "receiver CPU ms / GiB".into(),
        log_x: true,
        log_y: true,
        x_bytes: true,
        series: series(|m| m.cpu),
    });
    rep.plots.push(Plot {
        file: "throughput.svg".into(),
        title: "recv-cutover: throughput (median)".into(),
        x_label,
        y_label: "GiB/s".into(),
        log_x: true,
        log_y: false,
        x_bytes: true,
        series: series(|m| m.gib_s),
    });
    rep
}
