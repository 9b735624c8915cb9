//! One reactor thread of a run: it owns a [`Driver`] with its share of the queues (NVMe/TCP I/O queues on
//! an [`IoGroup`], or iSCSI sessions on an [`IscsiGroup`]), keeps every queue
//! at its depth, picks offsets in its own slice of the namespace (so verify never races another
//! thread), times each command from submit to completion, and in verify mode tracks a write generation
//! per slot, reads every write back and checks every read of a slot it wrote.

use crate::PerfError;
use crate::affinity::{CpuTime, pin_current};
use crate::clock::{Clock, Tick};
use crate::config::PerfConfig;
use crate::data::{self, Rng};
use crate::report::{Latency, ThreadReport, VerifyCounts};
use ff_blockdev::BufPool;
use ff_initiator::iscsi::{self, ConnId, IscsiGroup, IscsiOptions};
use ff_initiator::{Buf, IoGroup, IoQueue, QueueId};
use ff_sock::GroupCounters;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// What the threads of a run share: the start line, the stop flag and a completion count for progress.
pub(crate) struct Shared {
    pub barrier: Barrier,
    pub stop: AtomicBool,
    pub completions: AtomicU64,
}

/// One thread's assignment.
pub(crate) struct WorkerSpec {
    pub index: usize,
    pub queues: QueueSet,
    pub cfg: Arc<PerfConfig>,
    /// NVMe namespace, or iSCSI LUN.
    pub nsid: u32,
    pub block_size: usize,
    /// First slot (in `io_size` units from LBA 0) of this thread's slice, and how many.
    pub slot_base: u64,
    pub slot_count: u64,
    pub cpu: Option<usize>,
    /// The run's latency clock.
    pub clock: Clock,
}

/// What a thread hands back.
pub(crate) struct WorkerResult {
    pub report: ThreadReport,
    pub hist: Histogram<u64>,
    pub verify: VerifyCounts,
}

/// Latency histogram in nanoseconds: 1 ns to 100 s, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant bounds are valid")
}

/// A thread's queues before its driver exists: NVMe/TCP queues connected by the main thread, or the
/// iSCSI sessions this thread logs in itself.
pub(crate) enum QueueSet {
    Nvme(Vec<IoQueue>),
    Iscsi {
        addr: SocketAddr,
        /// One session per queue (each with its own ISID), numbered from `first_qid`.
        sessions: Vec<IscsiOptions>,
        first_qid: u16,
    },
}

/// One finished I/O as the worker books it.
pub(crate) struct Done<B> {
    pub tag: u64,
    pub result: Result<(), String>,
    pub buf: Option<B>,
}

/// What the worker needs of a transport: queues to submit reads and writes on, a poll, and the sock
/// counters of its group.
pub(crate) trait Driver {
    /// The I/O buffer type.
    type B: DerefMut<Target = [u8]>;
    fn qids(&self) -> Vec<u16>;
    fn get_buf(&mut self, len: usize) -> Self::B;
    fn put_buf(&mut self, b: Self::B);
    /// Whether queue `q` takes a command now.
    fn ready(&mut self, q: usize) -> bool;
    #[allow(clippy::too_many_arguments, reason = "one I/O's fields")]
    fn submit(
        &mut self,
        q: usize,
        write: bool,
        unit: u32,
        lba: u64,
        nlb: u32,
        buf: Self::B,
        tag: u64,
    ) -> Result<(), (String, Option<Self::B>)>;
    fn poll(&mut self, wait: Duration, out: &mut Vec<Done<Self::B>>) -> Result<(), PerfError>;
    fn down_reason(&mut self, q: usize) -> Option<String>;
    fn reconnect(&mut self, q: usize, out: &mut Vec<Done<Self::B>>) -> Result<(), String>;
    fn counters(&self) -> GroupCounters;
    fn backend(&self) -> String;
}

/// NVMe/TCP: I/O queues on one [`IoGroup`].
struct NvmeDriver {
    g: IoGroup,
    qids: Vec<u16>,
    pool: BufPool,
    out: Vec<ff_initiator::IoCompletion>,
}

impl NvmeDriver {
    fn drain(&mut self, out: &mut Vec<Done<Buf>>) {
        out.extend(self.out.drain(..).map(|c| Done {
            tag: c.tag,
            result: c.result.map_err(|e| e.to_string()),
            buf: c.buf,
        }));
    }
}

impl Driver for NvmeDriver {
    type B = Buf;
    fn qids(&self) -> Vec<u16> {
        self.qids.clone()
    }
    fn get_buf(&mut self, len: usize) -> Buf {
        Buf::from(self.pool.get(len))
    }
    fn put_buf(&mut self, b: Buf) {
        self.pool.put(b.into_inner());
    }
    fn ready(&mut self, q: usize) -> bool {
        self.g.queue(QueueId(q)).is_some_and(|q| q.free_slots() > 0 && q.down_reason().is_none())
    }
    fn submit(
        &mut self,
        q: usize,
        write: bool,
        unit: u32,
        lba: u64,
        nlb: u32,
        buf: Buf,
        tag: u64,
    ) -> Result<(), (String, Option<Buf>)> {
        let Some(q) = self.g.queue(QueueId(q)) else { return Err(("no such queue".into(), Some(buf))) };
        let r = if write {
            q.submit_write(unit, lba, nlb, buf, false, tag)
        } else {
            q.submit_read(unit, lba, nlb, buf, tag)
        };
        r.map_err(|(e, b)| (e.to_string(), b))
    }
    fn poll(&mut self, wait: Duration, out: &mut Vec<Done<Buf>>) -> Result<(), PerfError> {
        self.g.poll(Some(wait), &mut self.out)?;
        self.drain(out);
        Ok(())
    }
    fn down_reason(&mut self, q: usize) -> Option<String> {
        self.g.queue(QueueId(q)).and_then(|q| q.down_reason().map(str::to_string))
    }
    fn reconnect(&mut self, q: usize, out: &mut Vec<Done<Buf>>) -> Result<(), String> {
        let r = self.g.reconnect(QueueId(q), &mut self.out).map_err(|e| e.to_string());
        self.drain(out);
        r
    }
    fn counters(&self) -> GroupCounters {
        self.g.sock_group().counters()
    }
    fn backend(&self) -> String {
        self.g.sock_group().backend().to_string()
    }
}

/// iSCSI: one session per queue on one [`IscsiGroup`]; a failed session is not reconnected (the run
/// reports it).
struct IscsiDriver {
    g: IscsiGroup,
    conns: Vec<ConnId>,
    first_qid: u16,
    pool: Vec<Vec<u8>>,
    out: Vec<(ConnId, iscsi::Completion)>,
}

impl Driver for IscsiDriver {
    type B = Vec<u8>;
    fn qids(&self) -> Vec<u16> {
        (0..self.conns.len() as u16).map(|i| self.first_qid + i).collect()
    }
    fn get_buf(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.resize(len, 0);
        b
    }
    fn put_buf(&mut self, b: Vec<u8>) {
        self.pool.push(b);
    }
    fn ready(&mut self, q: usize) -> bool {
        self.conns.get(q).and_then(|c| self.g.session(*c)).is_some_and(iscsi::Session::is_logged_in)
    }
    fn submit(
        &mut self,
        q: usize,
        write: bool,
        unit: u32,
        lba: u64,
        nlb: u32,
        buf: Vec<u8>,
        tag: u64,
    ) -> Result<(), (String, Option<Vec<u8>>)> {
        let Some(&c) = self.conns.get(q) else { return Err(("no such session".into(), Some(buf))) };
        let (cdb, data) = if write {
            (iscsi::scsi::write16(lba, nlb), iscsi::DataDir::Write(buf))
        } else {
            (iscsi::scsi::read16(lba, nlb), iscsi::DataDir::Read(buf))
        };
        let cmd = iscsi::Command { lun: iscsi::scsi::lun_to_wire(unit as u16), cdb, data, tag };
        self.g.submit(c, cmd).map(|_| ()).map_err(|(e, cmd)| {
            let b = match cmd.data {
                iscsi::DataDir::Read(b) | iscsi::DataDir::Write(b) => Some(b),
                iscsi::DataDir::None => None,
            };
            (e.to_string(), b)
        })
    }
    fn poll(&mut self, wait: Duration, out: &mut Vec<Done<Vec<u8>>>) -> Result<(), PerfError> {
        self.g.poll(Some(wait), &mut self.out).map_err(|e| PerfError::Io(e.to_string()))?;
        out.extend(self.out.drain(..).map(|(_, c)| Done {
            tag: c.tag,
            result: c.result.map_err(|e| e.to_string()),
            buf: c.buf,
        }));
        Ok(())
    }
    fn down_reason(&mut self, q: usize) -> Option<String> {
        let s = self.g.session(*self.conns.get(q)?)?;
        s.error().map(|e| e.to_string()).or_else(|| s.is_closed().then(|| "logged out".to_string()))
    }
    fn reconnect(&mut self, _q: usize, _out: &mut Vec<Done<Vec<u8>>>) -> Result<(), String> {
        Err("iSCSI sessions are not reconnected".into())
    }
    fn counters(&self) -> GroupCounters {
        self.g.sock_group().counters()
    }
    fn backend(&self) -> String {
        self.g.sock_group().backend().to_string()
    }
}

struct Op {
    queue: usize,
    slot: u64,
    write: bool,
    /// Generation written (writes) or expected (reads; 0: unknown, not checked).
    generation: u32,
    start: Tick,
}

struct Worker {
    cfg: Arc<PerfConfig>,
    nsid: u32,
    block_size: usize,
    nlb: u32,
    slot_base: u64,
    slot_count: u64,
    read_pct: u64,
    rng: Rng,
    cursor: u64,
    /// Verify: slots with a command in flight, and each slot's last written generation.
    busy: Vec<bool>,
    generations: Vec<u32>,
    readbacks: VecDeque<(u64, u32)>,
    ops: Vec<Option<Op>>,
    free_tags: Vec<usize>,
    inflight: Vec<usize>,
    // Measured window.
    measuring: bool,
    clock: Clock,
    end_at: Tick,
    hist: Histogram<u64>,
    ios: u64,
    reads: u64,
    writes: u64,
    bytes: u64,
    errors: u64,
    verify: VerifyCounts,
}

impl Worker {
    /// The next slot to touch, or `None` when every slot of the slice is busy (verify only).
    fn pick(&mut self) -> Option<u64> {
        let n = self.slot_count;
        for _ in 0..n.min(64) {
            let s = if self.cfg.pattern.is_random() {
                self.rng.below(n)
            } else {
                let s = self.cursor;
                self.cursor = (self.cursor + 1) % n;
                s
            };
            if !self.busy.get(s as usize).copied().unwrap_or(false) {
                return Some(s);
            }
        }
        None
    }

    fn lba(&self, slot: u64) -> u64 {
        (self.slot_base + slot) * u64::from(self.nlb)
    }

    /// Fills queue `i` up to the queue depth.
    fn submit<D: Driver>(&mut self, g: &mut D, i: usize) {
        let qd = usize::from(self.cfg.queue_depth);
        let io_size = self.cfg.io_size;
        while self.inflight.get(i).copied().unwrap_or(usize::MAX) < qd {
            if !g.ready(i) {
                return;
            }
            let (slot, write, generation, readback) = if let Some((s, gen_)) = self.readbacks.pop_front() {
                (s, false, gen_, true)
            } else {
                let Some(s) = self.pick() else { return };
                let write = self.read_pct < 100 && self.rng.below(100) >= self.read_pct;
                let generation = match (self.cfg.verify, write) {
                    (false, _) => 0,
                    (true, true) => self.generations.get(s as usize).copied().unwrap_or(0).wrapping_add(1).max(1),
                    (true, false) => self.generations.get(s as usize).copied().unwrap_or(0),
                };
                (s, write, generation, false)
            };
            let lba = self.lba(slot);
            let mut buf = g.get_buf(io_size);
            if write && self.cfg.verify {
                data::fill(&mut buf, lba, self.block_size, generation, self.cfg.seed);
            }
            let tag = self.free_tags.pop().unwrap_or_else(|| {
                self.ops.push(None);
                self.ops.len() - 1
            });
            let r = g.submit(i, write, self.nsid, lba, self.nlb, buf, tag as u64);
            match r {
                Ok(()) => {
                    if let Some(o) = self.ops.get_mut(tag) {
                        *o = Some(Op { queue: i, slot, write, generation, start: self.clock.now() });
                    }
                    if let Some(n) = self.inflight.get_mut(i) {
                        *n += 1;
                    }
                    if let Some(b) = self.busy.get_mut(slot as usize) {
                        *b = true;
                    }
                }
                Err((e, b)) => {
                    tracing::debug!(queue = i, "submit refused: {e}");
                    if let Some(b) = b {
                        g.put_buf(b);
                    }
                    self.free_tags.push(tag);
                    if readback {
                        self.readbacks.push_front((slot, generation));
                    }
                    return;
                }
            }
        }
    }

    /// Books one completion; a verify mismatch is fatal.
    fn complete<D: Driver>(&mut self, g: &mut D, c: Done<D::B>, now: Tick) -> Result<(), PerfError> {
        let Some(op) = self.ops.get_mut(c.tag as usize).and_then(Option::take) else { return Ok(()) };
        self.free_tags.push(c.tag as usize);
        if let Some(n) = self.inflight.get_mut(op.queue) {
            *n = n.saturating_sub(1);
        }
        let slot = op.slot as usize;
        let mut keep_busy = false;
        let outcome = match c.result {
            Ok(()) => {
                if self.measuring && now < self.end_at {
                    let ns = self.clock.ns_between(op.start, now);
                    let _ = self.hist.record(ns.clamp(1, self.hist.high()));
                    self.ios += 1;
                    self.bytes += self.cfg.io_size as u64;
                    if op.write {
                        self.writes += 1;
                    } else {
                        self.reads += 1;
                    }
                }
                if self.cfg.verify {
                    if op.write {
                        self.verify.writes += 1;
                        if let Some(g) = self.generations.get_mut(slot) {
                            *g = op.generation;
                        }
                        // Read every write back; the slot stays busy until that read completes.
                        if now < self.end_at {
                            self.readbacks.push_back((op.slot, op.generation));
                            keep_busy = true;
                        }
                    } else if op.generation == 0 {
                        self.verify.unchecked_reads += 1;
                    } else {
                        let lba = self.lba(op.slot);
                        let buf = c.buf.as_deref().unwrap_or(&[]);
                        if buf.len() != self.cfg.io_size {
                            return Err(PerfError::Verify {
                                nsid: self.nsid,
                                lba,
                                detail: format!("read returned {} bytes, expected {}", buf.len(), self.cfg.io_size),
                            });
                        }
                        if let Err(m) = data::check(buf, lba, self.block_size, op.generation, self.cfg.seed) {
                            return Err(PerfError::Verify {
                                nsid: self.nsid,
                                lba: m.lba,
                                detail: format!(
                                    "expected verify data of generation {} (written by this run), found {} \
                                     (first difference at byte {} of the block)",
                                    op.generation, m.found, m.offset
                                ),
                            });
                        }
                        self.verify.checked_reads += 1;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.errors += 1;
                if op.write
                    && let Some(g) = self.generations.get_mut(slot)
                {
                    // What the failed write left is unknown: stop checking this slot.
                    *g = 0;
                }
                Err(e)
            }
        };
        if !keep_busy && let Some(b) = self.busy.get_mut(slot) {
            *b = false;
        }
        if let Some(b) = c.buf {
            g.put_buf(b);
        }
        if let Err(e) = outcome {
            tracing::warn!(queue = op.queue, write = op.write, "I/O failed: {e}");
        }
        Ok(())
    }

    fn outstanding(&self) -> usize {
        self.inflight.iter().sum()
    }
}

struct Snapshot {
    cpu: CpuTime,
    sock: GroupCounters,
}

/// Runs one thread's share of the run.
pub(crate) fn run(mut spec: WorkerSpec, shared: &Shared) -> Result<WorkerResult, PerfError> {
    if let Some(cpu) = spec.cpu
        && let Err(e) = pin_current(cpu)
    {
        tracing::warn!("pinning perf thread {} to CPU {cpu}: {e}", spec.index);
    }
    let cfg = spec.cfg.clone();
    // Every thread reaches the start line, even one whose setup failed, so nobody waits forever.
    match std::mem::replace(&mut spec.queues, QueueSet::Nvme(Vec::new())) {
        QueueSet::Nvme(queues) => {
            let qids: Vec<u16> = queues.iter().map(IoQueue::qid).collect();
            let setup = (|| -> Result<IoGroup, PerfError> {
                let mut g = IoGroup::new(cfg.group.clone())?;
                for q in queues {
                    g.add(q)?;
                }
                Ok(g)
            })();
            shared.barrier.wait();
            drive(NvmeDriver { g: setup?, qids, pool: BufPool::new(), out: Vec::new() }, spec, shared)
        }
        QueueSet::Iscsi { addr, sessions, first_qid } => {
            let setup = (|| -> Result<IscsiDriver, PerfError> {
                let mut g = IscsiGroup::new(cfg.group.clone())?;
                let deadline = std::time::Instant::now() + cfg.command_timeout;
                let mut conns = Vec::new();
                for o in sessions {
                    let c = g.connect(addr, &cfg.group.sock, o, deadline)?;
                    // Each new session sees a UNIT ATTENTION once: take it here, not as an I/O error.
                    g.wait_ready(c, spec.nsid as u16, deadline)?;
                    conns.push(c);
                }
                Ok(IscsiDriver { g, conns, first_qid, pool: Vec::new(), out: Vec::new() })
            })();
            shared.barrier.wait();
            drive(setup?, spec, shared)
        }
    }
}

/// The thread's load loop on its driver.
fn drive<D: Driver>(mut g: D, spec: WorkerSpec, shared: &Shared) -> Result<WorkerResult, PerfError> {
    let qids = g.qids();
    let nq = qids.len();
    let cfg = spec.cfg.clone();
    let clock = spec.clock;
    let t0 = clock.now();
    let measure_at = clock.after(t0, Duration::from_secs_f64(cfg.warmup_seconds));
    let end_at = clock.after(measure_at, Duration::from_secs_f64(cfg.seconds));
    let verify_slots = if cfg.verify { spec.slot_count as usize } else { 0 };
    let nlb = (cfg.io_size / spec.block_size) as u32;
    let mut w = Worker {
        read_pct: u64::from(cfg.pattern.read_pct(cfg.rwmixread)),
        rng: Rng::new(cfg.seed ^ (spec.index as u64).wrapping_mul(0xA076_1D64_78BD_642F)),
        nsid: spec.nsid,
        block_size: spec.block_size,
        nlb,
        slot_base: spec.slot_base,
        slot_count: spec.slot_count,
        cursor: 0,
        busy: vec![false; verify_slots],
        generations: vec![0; verify_slots],
        readbacks: VecDeque::new(),
        ops: Vec::new(),
        free_tags: Vec::new(),
        inflight: vec![0; nq],
        measuring: false,
        clock,
        end_at,
        hist: new_histogram(),
        ios: 0,
        reads: 0,
        writes: 0,
        bytes: 0,
        errors: 0,
        verify: VerifyCounts::default(),
        cfg: cfg.clone(),
    };
    let mut start: Option<Snapshot> = None;
    let mut end: Option<Snapshot> = None;
    let snap = |g: &D| Snapshot { cpu: CpuTime::thread(), sock: g.counters() };
    let poll_wait = if cfg.busy_poll { Duration::ZERO } else { Duration::from_millis(5) };
    let drain_limit = cfg.command_timeout * 2 + Duration::from_secs(1);
    let mut out = Vec::new();
    let drain_end = clock.after(end_at, drain_limit);
    let mut down_since: Vec<Option<Tick>> = vec![None; nq];
    let mut last_reconnect = t0;
    let result = loop {
        let now = clock.now();
        if !w.measuring && now >= measure_at {
            w.measuring = true;
            start = Some(snap(&g));
        }
        let stopping = now >= end_at || shared.stop.load(Ordering::Relaxed);
        if stopping && end.is_none() {
            end = Some(snap(&g));
        }
        if !stopping {
            for i in 0..nq {
                w.submit(&mut g, i);
            }
        } else {
            w.readbacks.clear();
            if w.outstanding() == 0 {
                break Ok(());
            }
            if now > drain_end {
                tracing::warn!("{} commands still in flight after the drain limit: giving up on them", w.outstanding());
                break Ok(());
            }
        }
        if let Err(e) = g.poll(poll_wait, &mut out) {
            break Err(e);
        }
        let now = clock.now();
        shared.completions.fetch_add(out.len() as u64, Ordering::Relaxed);
        let mut failed = None;
        for c in out.drain(..) {
            if failed.is_none()
                && let Err(e) = w.complete(&mut g, c, now)
            {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        // A queue that went down (connection lost, command timeout) is reconnected; one that stays down
        // ends the run.
        for (i, since) in down_since.iter_mut().enumerate() {
            let down = g.down_reason(i).is_some();
            if !down {
                *since = None;
                continue;
            }
            let first = *since.get_or_insert(now);
            if now > clock.after(first, drain_limit) {
                let why = g.down_reason(i).unwrap_or_default();
                shared.stop.store(true, Ordering::Relaxed);
                return Err(PerfError::Io(format!("queue {} stayed down: {why}", qids.get(i).copied().unwrap_or(0))));
            }
            if now > clock.after(last_reconnect, Duration::from_millis(500)) {
                last_reconnect = now;
                // Whatever was in flight on it already completed with an error.
                if let Some(n) = w.inflight.get_mut(i) {
                    *n = 0;
                }
                if let Err(e) = g.reconnect(i, &mut out) {
                    tracing::warn!("reconnecting queue {}: {e}", qids.get(i).copied().unwrap_or(0));
                }
                for c in out.drain(..) {
                    w.complete(&mut g, c, now)?;
                }
            }
        }
    };
    if let Err(e) = result {
        shared.stop.store(true, Ordering::Relaxed);
        return Err(e);
    }
    let start = start.unwrap_or_else(|| snap(&g));
    let end = end.unwrap_or_else(|| snap(&g));
    let cpu = end.cpu.since(start.cpu);
    let sys = end.sock.syscalls().saturating_sub(start.sock.syscalls());
    let per_io = if w.ios == 0 { 0.0 } else { sys as f64 / w.ios as f64 };
    let report = ThreadReport {
        thread: spec.index,
        cpu: spec.cpu,
        qids,
        sock_backend: g.backend(),
        ios: w.ios,
        reads: w.reads,
        writes: w.writes,
        bytes: w.bytes,
        iops: w.ios as f64 / cfg.seconds,
        errors: w.errors,
        cpu_user_s: cpu.user.as_secs_f64(),
        cpu_sys_s: cpu.sys.as_secs_f64(),
        syscalls: sys,
        syscalls_per_io: per_io,
        waits: end.sock.waits.saturating_sub(start.sock.waits),
        recv_syscalls: end.sock.sock.recv_syscalls().saturating_sub(start.sock.sock.recv_syscalls()),
        sendmsg: end.sock.sock.sendmsg.saturating_sub(start.sock.sock.sendmsg),
        latency: Latency::of(&w.hist),
    };
    Ok(WorkerResult { report, hist: w.hist, verify: w.verify })
}
