//! `zerocopy`: does MSG_ZEROCOPY pay for the sender, by message size, on loopback and on veth?
//!
//! A sender thread sends messages of one size (one message per sendmsg) to a plain receiver thread that
//! reads and discards. Three sender modes, interleaved within each repeat:
//! - `copy`: an ff-sock group with `zerocopy_threshold = None`;
//! - `zc`: an ff-sock group with `zerocopy_threshold = Some(0)` and SO_ZEROCOPY, which switches itself
//!   back to copying at the first notification saying the kernel copied (the automatic fallback);
//! - `zc-forced`: MSG_ZEROCOPY on every send with the fallback suppressed, to measure what the attempt
//!   costs. The sock layer has no switch to suppress its fallback, so this mode drives
//!   [`TcpSock::sendmsg`] and [`ff_sock::zerocopy::recv_errqueue`] itself.
//!
//! The veth half runs between two network namespaces (ff-netns) and needs root; without it that half is
//! skipped with a loud note. On loopback and veth the kernel copies anyway (every notification carries
//! the COPIED code), so the report shows the cost of the attempt and how much the fallback wins back.

use crate::report::{Plot, Report, Series, Table};
use crate::stats::{cpu_ms_per_gib, gib_per_s, human_size, median, per, ratio};
use crate::sys::{ThreadCpu, is_root};
use anyhow::{Context, Result, bail, ensure};
use ff_netns::{Side, VethPair};
use ff_sock::options::DEFAULT_ZEROCOPY_THRESHOLD;
use ff_sock::zerocopy::{ErrqueueMsg, recv_errqueue};
use ff_sock::{Event, GroupOptions, SockCounters, SockError, SockGroup, SockOptions, TcpSock, WriteReq};
use serde::Serialize;
use serde_json::json;
use std::io::{IoSlice, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A run that takes longer than this has stalled.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Message sizes in bytes (one sendmsg each).
    pub sizes: Vec<usize>,
    /// Repeats per (network, size, mode); medians are taken over them.
    pub repeats: usize,
    /// Bytes sent per run, bounded by `min_msgs..=max_msgs` messages.
    pub bytes_per_run: u64,
    /// Fewest messages per run (large sizes).
    pub min_msgs: u64,
    /// Most messages per run (small sizes, where each message costs a syscall).
    pub max_msgs: u64,
    /// Bytes the sender keeps queued or unconfirmed at once (at most 256 messages).
    pub inflight_bytes: usize,
    /// Also measure across a veth pair between two namespaces (needs root).
    pub veth: bool,
    /// Relative difference treated as noise.
    pub noise: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sizes: (10..=20).map(|s| 1usize << s).collect(),
            repeats: 5,
            bytes_per_run: 64 << 20,
            min_msgs: 64,
            max_msgs: 50_000,
            inflight_bytes: 4 << 20,
            veth: true,
            noise: 0.10,
        }
    }
}

impl Config {
    /// A CI smoke configuration: two sizes, one repeat, a few MiB per run.
    pub fn quick() -> Config {
        Config {
            sizes: vec![4 << 10, 256 << 10],
            repeats: 1,
            bytes_per_run: 4 << 20,
            min_msgs: 16,
            max_msgs: 2_000,
            ..Config::default()
        }
    }

    /// Messages sent in one run of `size`-byte messages.
    pub fn msgs_for(&self, size: usize) -> u64 {
        (self.bytes_per_run / size.max(1) as u64).clamp(self.min_msgs, self.max_msgs.max(self.min_msgs))
    }

    fn inflight_msgs(&self, size: usize) -> u64 {
        (self.inflight_bytes / size.max(1)).clamp(2, 256) as u64
    }
}

/// Where the bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// 127.0.0.1 in the current namespace.
    Loopback,
    /// A veth pair between two namespaces (sender in b, receiver in a).
    Veth,
}

impl Net {
    /// Name used in rows and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Net::Loopback => "loopback",
            Net::Veth => "veth",
        }
    }
}

/// How the sender sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain copying sendmsg through an ff-sock group.
    Copy,
    /// MSG_ZEROCOPY through an ff-sock group, with its automatic fallback to copying.
    Zc,
    /// MSG_ZEROCOPY on every send, fallback suppressed (raw sends, see the module docs).
    ZcForced,
}

/// The modes in their base interleaving order.
pub const MODES: [Mode; 3] = [Mode::Copy, Mode::Zc, Mode::ZcForced];

impl Mode {
    /// Name used in rows, tables and plots.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Zc => "zc",
            Mode::ZcForced => "zc-forced",
        }
    }

    /// The sender group's options (the forced mode uses only the socket options).
    pub fn options(&self) -> GroupOptions {
        // One message per sendmsg: the size under test is the size the kernel sees.
        let base = GroupOptions { max_iovs: 1, ..GroupOptions::default() };
        match self {
            Mode::Copy => GroupOptions { zerocopy_threshold: None, ..base },
            Mode::Zc | Mode::ZcForced => GroupOptions {
                zerocopy_threshold: Some(0),
                sock: SockOptions { zerocopy: true, ..base.sock.clone() },
                ..base
            },
        }
    }
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Network.
    pub net: Net,
    /// Message size.
    pub size: usize,
    /// Sender mode.
    pub mode: Mode,
    /// Repeat index.
    pub repeat: usize,
    /// Messages sent.
    pub msgs: u64,
    /// Bytes sent (and received: the receiver's count is checked).
    pub bytes: u64,
    /// Wall time from the first send until every write completed.
    pub wall: Duration,
    /// CPU time of the sending thread over the same interval.
    pub cpu: ThreadCpu,
    /// CPU time of the receiving thread (where loopback may move the deferred copy).
    pub rx_cpu: ThreadCpu,
    /// The sender's socket counters.
    pub counters: SockCounters,
    /// Zero copy still on at the end (false after the automatic fallback).
    pub zc_active_end: bool,
}

impl Sample {
    /// GiB/s sent.
    pub fn gib_s(&self) -> f64 {
        gib_per_s(self.bytes, self.wall)
    }
    /// Sender CPU milliseconds per GiB.
    pub fn cpu_ms_per_gib(&self) -> f64 {
        cpu_ms_per_gib(self.cpu.total(), self.bytes)
    }
    /// Sender plus receiver CPU milliseconds per GiB.
    pub fn both_cpu_ms_per_gib(&self) -> f64 {
        cpu_ms_per_gib(self.cpu.total() + self.rx_cpu.total(), self.bytes)
    }
}

/// The sender's measurements: wall, CPU, counters, zero copy still on.
type SendResult = (Duration, ThreadCpu, SockCounters, bool);

fn send_group(addr: SocketAddr, size: usize, msgs: u64, inflight: u64, mode: Mode) -> Result<SendResult> {
    let opts = mode.options();
    let sock = TcpSock::connect(addr, &opts.sock, Duration::from_secs(5))?;
    let mut g: SockGroup<Rc<[u8]>> = SockGroup::new(opts)?;
    let id = g.add(sock)?;
    // One buffer queued many times: requests share it by reference count, no copy in user space.
    let payload: Rc<[u8]> = Rc::from(vec![0x5au8; size]);
    let mut events = Vec::new();
    let (mut queued, mut done) = (0u64, 0u64);
    let deadline = Instant::now() + RUN_DEADLINE;
    let c0 = ThreadCpu::now();
    let t0 = Instant::now();
    while done < msgs {
        while queued < msgs && queued - done < inflight {
            let mut r = WriteReq::data_only(queued);
            r.push_data(payload.clone());
            g.write(id, r).map_err(|(e, _)| e).context("queueing a write")?;
            queued += 1;
        }
        events.clear();
        g.poll(Some(Duration::from_millis(100)), &mut events)?;
        for ev in events.drain(..) {
            match ev {
                Event::WriteDone { result, .. } => {
                    result?;
                    done += 1;
                }
                Event::Failed(_, e) => return Err(e.into()),
                _ => {}
            }
        }
        ensure!(Instant::now() < deadline, "sender stalled after {done} of {msgs} messages");
    }
    let wall = t0.elapsed();
    let cpu = ThreadCpu::now().since(c0);
    Ok((wall, cpu, g.sock_counters(id)?, g.zerocopy_active(id)))
}

/// Waits for the socket to become writable (`out`) or for an error-queue message, at most 100 ms.
fn wait_fd(sock: impl AsFd, out: bool) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    // POLLERR is always reported, so no interest at all still wakes on the error queue.
    let mut pfd = [PollFd::new(&sock, if out { PollFlags::OUT } else { PollFlags::empty() })];
    match rustix::event::poll(&mut pfd, Some(&Timespec { tv_sec: 0, tv_nsec: 100_000_000 })) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(std::io::Error::from(e).into()),
    }
}

/// Reads every waiting zero-copy notification; returns how many sends they released.
fn drain_notifications(fd: RawFd, c: &mut SockCounters) -> Result<u64> {
    let mut released = 0u64;
    loop {
        c.errqueue_reads += 1;
        match recv_errqueue(fd)? {
            Some(ErrqueueMsg::Zerocopy(n)) => {
                c.zc_notifications += 1;
                released += n.hi.wrapping_sub(n.lo) as u64 + 1;
                if n.copied {
                    c.zc_copied += 1;
                }
            }
            Some(ErrqueueMsg::Error(e)) => bail!("socket error {}", std::io::Error::from_raw_os_error(e)),
            Some(ErrqueueMsg::Other) => {}
            None => return Ok(released),
        }
    }
}

/// MSG_ZEROCOPY on every send, never falling back (what ff-sock does before its first COPIED notice).
fn send_forced(addr: SocketAddr, size: usize, msgs: u64, inflight: u64) -> Result<SendResult> {
    let sock = TcpSock::connect(addr, &Mode::ZcForced.options().sock, Duration::from_secs(5))?;
    ensure!(sock.zerocopy_enabled(), "the kernel refused SO_ZEROCOPY");
    let fd = sock.as_raw_fd();
    // The kernel may read this buffer after sendmsg returns; it is never written after this line, so
    // sending it again while earlier sends are unconfirmed is safe, and it outlives every notification.
    let payload = vec![0x5au8; size];
    let mut c = SockCounters::default();
    let (mut sent_msgs, mut off, mut outstanding) = (0u64, 0usize, 0u64);
    let deadline = Instant::now() + RUN_DEADLINE;
    let c0 = ThreadCpu::now();
    let t0 = Instant::now();
    while sent_msgs < msgs {
        if outstanding >= inflight {
            wait_fd(&sock, false)?;
            outstanding = outstanding.saturating_sub(drain_notifications(fd, &mut c)?);
            ensure!(Instant::now() < deadline, "no zero-copy notification for {outstanding} sends");
            continue;
        }
        c.sendmsg += 1;
        c.zc_sends += 1;
        c.zc_bytes += (size - off) as u64;
        match sock.sendmsg(&[IoSlice::new(&payload[off..])], libc::MSG_ZEROCOPY) {
            Ok(n) => {
                c.bytes_sent += n as u64;
                if n > 0 {
                    outstanding += 1;
                }
                off += n;
                if off == size {
                    (off, sent_msgs) = (0, sent_msgs + 1);
                } else {
                    c.sendmsg_partial += 1;
                }
            }
            Err(SockError::WouldBlock) => {
                c.sendmsg_partial += 1;
                wait_fd(&sock, true)?;
                outstanding = outstanding.saturating_sub(drain_notifications(fd, &mut c)?);
            }
            Err(SockError::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // Too many unconfirmed sends for optmem: wait for notifications, then retry.
                c.zc_enobufs += 1;
                wait_fd(&sock, false)?;
                outstanding = outstanding.saturating_sub(drain_notifications(fd, &mut c)?);
            }
            Err(e) => return Err(e.into()),
        }
        ensure!(Instant::now() < deadline, "sender stalled after {sent_msgs} of {msgs} messages");
    }
    while outstanding > 0 {
        wait_fd(&sock, false)?;
        outstanding = outstanding.saturating_sub(drain_notifications(fd, &mut c)?);
        ensure!(Instant::now() < deadline, "no zero-copy notification for {outstanding} sends");
    }
    let wall = t0.elapsed();
    let cpu = ThreadCpu::now().since(c0);
    c.writes_completed = msgs;
    Ok((wall, cpu, c, true))
}

/// Accepts one connection on `listener` and reads it to EOF; returns the bytes read and the CPU spent.
fn drain_receiver(listener: TcpListener) -> Result<(u64, ThreadCpu)> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(Instant::now() < deadline, "receiver: no connection");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(RUN_DEADLINE))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let c0 = ThreadCpu::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok((total, ThreadCpu::now().since(c0))),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The network a run uses: threads are spawned in the right namespace for each side.
enum Bed {
    Loopback,
    Veth(VethPair),
}

impl Bed {
    fn spawn<T: Send + 'static>(&self, side: Side, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        match self {
            Bed::Loopback => std::thread::spawn(f),
            Bed::Veth(p) => p.spawn_in(side, f),
        }
    }

    fn receiver_ip(&self) -> IpAddr {
        match self {
            Bed::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Bed::Veth(p) => p.addr_a(),
        }
    }

    fn net(&self) -> Net {
        match self {
            Bed::Loopback => Net::Loopback,
            Bed::Veth(_) => Net::Veth,
        }
    }
}

fn run_one(cfg: &Config, bed: &Bed, size: usize, mode: Mode, repeat: usize) -> Result<Sample> {
    let ip = bed.receiver_ip();
    let (port_tx, port_rx) = mpsc::channel();
    let receiver = bed.spawn(Side::A, move || -> Result<(u64, ThreadCpu)> {
        let l = TcpListener::bind((ip, 0))?;
        let _ = port_tx.send(l.local_addr()?.port());
        drain_receiver(l)
    });
    let port = match port_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(p) => p,
        Err(_) => {
            let r = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
            bail!("receiver did not start: {:?}", r.err());
        }
    };
    let addr = SocketAddr::new(ip, port);
    let msgs = cfg.msgs_for(size);
    let inflight = cfg.inflight_msgs(size);
    let sender = bed.spawn(Side::B, move || match mode {
        Mode::ZcForced => send_forced(addr, size, msgs, inflight),
        _ => send_group(addr, size, msgs, inflight, mode),
    });
    let sent = sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))?;
    let received = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let (wall, cpu, counters, zc_active_end) = sent?;
    let bytes = msgs * size as u64;
    let (received, rx_cpu) = received?;
    ensure!(received == bytes, "receiver got {received} of {bytes} bytes sent");
    Ok(Sample { net: bed.net(), size, mode, repeat, msgs, bytes, wall, cpu, rx_cpu, counters, zc_active_end })
}

/// Runs the benchmark on loopback, then (as root, if enabled) on veth; returns the report.
pub fn run(cfg: &Config) -> Result<Report> {
    ensure!(cfg.repeats > 0 && !cfg.sizes.is_empty(), "need at least one size and one repeat");
    let mut beds = vec![Bed::Loopback];
    let mut skipped = None;
    if cfg.veth {
        if !is_root() {
            skipped = Some("SKIPPED the veth half: network namespaces need root".to_string());
        } else {
            match VethPair::new("ffbench", 1) {
                Ok(p) => beds.push(Bed::Veth(p)),
                Err(e) => skipped = Some(format!("SKIPPED the veth half: could not build the veth pair: {e:#}")),
            }
        }
    }
    if let Some(s) = &skipped {
        eprintln!("!!! zerocopy: {s}");
    }
    let mut samples = Vec::new();
    for bed in &beds {
        for &size in &cfg.sizes {
            for r in 0..cfg.repeats {
                for k in 0..MODES.len() {
                    let mode = MODES[(k + r) % MODES.len()];
                    let s = run_one(cfg, bed, size, mode, r)
                        .with_context(|| format!("{} size={size} mode={}", bed.net().name(), mode.name()))?;
                    tracing::debug!(net = bed.net().name(), size, mode = mode.name(), gib_s = s.gib_s(), "run");
                    samples.push(s);
                }
            }
        }
    }
    let nets: Vec<Net> = beds.iter().map(Bed::net).collect();
    Ok(build_report(cfg, &nets, &samples, skipped))
}

#[derive(Clone, Copy, Debug)]
struct Med {
    gib_s: f64,
    cpu: f64,
    both: f64,
    zc_sends: f64,
    notifications: u64,
    copied: u64,
    fallbacks: u64,
}

fn med_of(samples: &[Sample], net: Net, size: usize, mode: Mode) -> Med {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.net == net && s.size == size && s.mode == mode).collect();
    let m = |f: &dyn Fn(&Sample) -> f64| median(&s.iter().map(|x| f(x)).collect::<Vec<_>>());
    Med {
        gib_s: m(&|x| x.gib_s()),
        cpu: m(&|x| x.cpu_ms_per_gib()),
        both: m(&|x| x.both_cpu_ms_per_gib()),
        zc_sends: m(&|x| x.counters.zc_sends as f64),
        notifications: s.iter().map(|x| x.counters.zc_notifications).sum(),
        copied: s.iter().map(|x| x.counters.zc_copied).sum(),
        fallbacks: s.iter().map(|x| x.counters.zc_fallbacks).sum(),
    }
}

fn build_report(cfg: &Config, nets: &[Net], samples: &[Sample], skipped: Option<String>) -> Report {
    let mut rep = Report::new(
        "zerocopy",
        json!({
            "config": cfg,
            "modes": MODES.iter().map(|m| json!({"mode": m.name(), "group": m.options().to_string()})).collect::<Vec<_>>(),
            "networks": nets.iter().map(Net::name).collect::<Vec<_>>(),
            "veth_skipped": skipped,
        }),
    );
    let mut rows = Table::new(&[
        "net",
        "size",
        "mode",
        "repeat",
        "msgs",
        "bytes",
        "wall_s",
        "gib_s",
        "cpu_s",
        "usr_s",
        "sys_s",
        "cpu_ms_per_gib",
        "rx_cpu_s",
        "both_cpu_ms_per_gib",
        "sendmsg",
        "sendmsg_per_msg",
        "zc_sends",
        "zc_bytes",
        "zc_notifications",
        "zc_copied",
        "zc_fallbacks",
        "zc_enobufs",
        "zc_active_end",
    ]);
    for s in samples {
        let c = &s.counters;
        rows.push(vec![
            s.net.name().into(),
            s.size.into(),
            s.mode.name().into(),
            s.repeat.into(),
            s.msgs.into(),
            s.bytes.into(),
            s.wall.as_secs_f64().into(),
            s.gib_s().into(),
            s.cpu.total().as_secs_f64().into(),
            s.cpu.user.as_secs_f64().into(),
            s.cpu.sys.as_secs_f64().into(),
            s.cpu_ms_per_gib().into(),
            s.rx_cpu.total().as_secs_f64().into(),
            s.both_cpu_ms_per_gib().into(),
            c.sendmsg.into(),
            per(c.sendmsg, s.msgs).into(),
            c.zc_sends.into(),
            c.zc_bytes.into(),
            c.zc_notifications.into(),
            c.zc_copied.into(),
            c.zc_fallbacks.into(),
            c.zc_enobufs.into(),
            u64::from(s.zc_active_end).into(),
        ]);
    }
    rep.rows = rows;

    let mut med = Table::new(&[
        "net",
        "size",
        "copy_gib_s",
        "zc_gib_s",
        "forced_gib_s",
        "copy_cpu_ms_gib",
        "zc_cpu_ms_gib",
        "forced_cpu_ms_gib",
        "zc_vs_copy_cpu",
        "forced_vs_copy_cpu",
        "forced_vs_copy_both_cpu",
        "zc_sends_before_fallback",
        "forced_copied_notif",
    ]);
    let mut summary_nets = serde_json::Map::new();
    let mut plot_gib: Vec<Series> = Vec::new();
    let mut plot_cpu: Vec<Series> = Vec::new();
    for &net in nets {
        let mut per_size = Vec::new();
        let (mut forced_ratios, mut zc_ratios, mut forced_both) = (Vec::new(), Vec::new(), Vec::new());
        let (mut notif, mut copied) = (0u64, 0u64);
        let mut threshold: Option<usize> = None;
        let mut any_uncopied = false;
        for &size in &cfg.sizes {
            let c = med_of(samples, net, size, Mode::Copy);
            let z = med_of(samples, net, size, Mode::Zc);
            let f = med_of(samples, net, size, Mode::ZcForced);
            let (zr, fr) = (ratio(z.cpu, c.cpu), ratio(f.cpu, c.cpu));
            zc_ratios.push(zr);
            forced_ratios.push(fr);
            forced_both.push(ratio(f.both, c.both));
            notif += z.notifications + f.notifications;
            copied += z.copied + f.copied;
            let uncopied = f.notifications > 0 && f.copied == 0;
            any_uncopied |= uncopied;
            if threshold.is_none() && uncopied && f.cpu < c.cpu {
                threshold = Some(size);
            }
            med.push(vec![
                net.name().into(),
                size.into(),
                c.gib_s.into(),
                z.gib_s.into(),
                f.gib_s.into(),
                c.cpu.into(),
                z.cpu.into(),
                f.cpu.into(),
                zr.into(),
                fr.into(),
                ratio(f.both, c.both).into(),
                z.zc_sends.into(),
                format!("{}/{}", f.copied, f.notifications).into(),
            ]);
            per_size.push(json!({
                "size": size,
                "copy_gib_s": c.gib_s, "zc_gib_s": z.gib_s, "forced_gib_s": f.gib_s,
                "copy_cpu_ms_per_gib": c.cpu, "zc_cpu_ms_per_gib": z.cpu, "forced_cpu_ms_per_gib": f.cpu,
                "zc_over_copy_cpu": zr, "forced_over_copy_cpu": fr,
                "forced_over_copy_both_cpu": ratio(f.both, c.both), "zc_over_copy_both_cpu": ratio(z.both, c.both),
                "zc_over_copy_gib_s": ratio(z.gib_s, c.gib_s), "forced_over_copy_gib_s": ratio(f.gib_s, c.gib_s),
                "zc_notifications": z.notifications, "zc_copied": z.copied, "zc_fallbacks": z.fallbacks,
                "forced_notifications": f.notifications, "forced_copied": f.copied,
            }));
        }
        let all_copied = notif > 0 && copied == notif;
        let fm = median(&forced_ratios);
        let zm = median(&zc_ratios);
        let n = net.name();
        rep.notes.push(if all_copied {
            format!(
                "{n}: the kernel copies anyway: all {notif} zero-copy notifications said COPIED (zc_copied == \
                 zc_notifications); MSG_ZEROCOPY cannot avoid the copy here"
            )
        } else {
            format!("{n}: {copied} of {notif} zero-copy notifications said COPIED")
        });
        rep.notes.push(format!(
            "{n}: cost of the attempt: zc-forced uses {fm:.2}x copy's sender CPU/GiB (median over sizes; range \
             {:.2}..{:.2}) and {:.2}x counting sender + receiver",
            forced_ratios.iter().copied().filter(|x| x.is_finite()).fold(f64::INFINITY, f64::min),
            forced_ratios.iter().copied().filter(|x| x.is_finite()).fold(f64::NEG_INFINITY, f64::max),
            median(&forced_both),
        ));
        rep.notes.push(format!(
            "{n}: with the automatic fallback, zc uses {zm:.2}x copy's sender CPU/GiB (median over sizes): {}",
            if zm <= 1.0 + cfg.noise {
                format!("the fallback wins the attempt back (within {:.0}% of copy)", cfg.noise * 100.0)
            } else {
                "the fallback does NOT fully win the attempt back".to_string()
            }
        ));
        rep.notes.push(match threshold {
            Some(t) => format!(
                "{n}: threshold it would choose: {} (smallest size where zc-forced beats copy with no COPIED \
                 notification); the default stays {}",
                human_size(t),
                human_size(DEFAULT_ZEROCOPY_THRESHOLD)
            ),
            None if !any_uncopied => format!(
                "{n}: threshold it would choose: none: every notification said COPIED; the default stays {}",
                human_size(DEFAULT_ZEROCOPY_THRESHOLD)
            ),
            None => format!(
                "{n}: threshold it would choose: none: where the kernel did not copy, zc never beat copy; the \
                 default stays {}",
                human_size(DEFAULT_ZEROCOPY_THRESHOLD)
            ),
        });
        summary_nets.insert(
            n.to_string(),
            json!({
                "zc_notifications": notif,
                "zc_copied": copied,
                "kernel_copied_every_notification": all_copied,
                "forced_over_copy_cpu_median": fm,
                "forced_over_copy_both_cpu_median": median(&forced_both),
                "zc_over_copy_cpu_median": zm,
                "fallback_wins_it_back": zm <= 1.0 + cfg.noise,
                "chosen_threshold": threshold,
                "per_size": per_size,
            }),
        );
        for mode in MODES {
            let name = format!("{n} {}", mode.name());
            let pts = |f: fn(&Med) -> f64| -> Vec<(f64, f64)> {
                cfg.sizes.iter().map(|&s| (s as f64, f(&med_of(samples, net, s, mode)))).collect()
            };
            plot_gib.push(Series { name: name.clone(), points: pts(|m| m.gib_s) });
            plot_cpu.push(Series { name, points: pts(|m| m.cpu) });
        }
    }
    if let Some(s) = &skipped {
        rep.notes.insert(0, format!("!!! {s}"));
    }
    rep.notes.push(
        "CPU is the sending thread's user+sys time (getrusage RUSAGE_THREAD) per GiB; 'both' adds the receiving \
         thread, since on loopback a deferred copy can land there; zc_sends_before_fallback is the median number of MSG_ZEROCOPY sends the auto mode made before a COPIED notification switched it off"
            .into(),
    );
    rep.medians = med;
    rep.summary = json!({
        "default_threshold_bytes": DEFAULT_ZEROCOPY_THRESHOLD,
        "noise": cfg.noise,
        "veth_skipped": skipped,
        "networks": summary_nets,
    });
    rep.plots.push(Plot {
        file: "throughput.svg".into(),
        title: "zerocopy: send throughput by message size (median)".into(),
        x_label: "message size (log scale)".into(),
        y_label: "GiB/s".into(),
        log_x: true,
        log_y: false,
        x_bytes: true,
        series: plot_gib,
    });
    rep.plots.push(Plot {
        file: "cpu_per_gib.svg".into(),
        title: "zerocopy: sender CPU per GiB (median, lower is better)".into(),
        x_label: "message size (log scale)".into(),
        y_label: "sender CPU ms / GiB".into(),
        log_x: true,
        log_y: true,
        x_bytes: true,
        series: plot_cpu,
    });
    rep
}
