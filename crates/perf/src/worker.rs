//! One reactor thread of a run: it owns an [`IoGroup`] with its share of the queues, keeps every queue
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
use ff_initiator::{Buf, IoCompletion, IoGroup, IoQueue, QueueId};
use ff_sock::GroupCounters;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
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
    pub queues: Vec<IoQueue>,
    pub cfg: Arc<PerfConfig>,
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
    pool: BufPool,
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
    fn submit(&mut self, g: &mut IoGroup, i: usize) {
        let qd = usize::from(self.cfg.queue_depth);
        let io_size = self.cfg.io_size;
        while self.inflight.get(i).copied().unwrap_or(usize::MAX) < qd {
            let Some(q) = g.queue(QueueId(i)) else { return };
            if q.free_slots() == 0 || q.down_reason().is_some() {
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
            let mut buf = self.pool.get(io_size);
            if write && self.cfg.verify {
                data::fill(&mut buf, lba, self.block_size, generation, self.cfg.seed);
            }
            let tag = self.free_tags.pop().unwrap_or_else(|| {
                self.ops.push(None);
                self.ops.len() - 1
            });
            let r = if write {
                q.submit_write(self.nsid, lba, self.nlb, Buf::from(buf), false, tag as u64)
            } else {
                q.submit_read(self.nsid, lba, self.nlb, Buf::from(buf), tag as u64)
            };
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
                        self.pool.put(b.into_inner());
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
    fn complete(&mut self, c: IoCompletion, now: Tick) -> Result<(), PerfError> {
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
            self.pool.put(b.into_inner());
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
pub(crate) fn run(spec: WorkerSpec, shared: &Shared) -> Result<WorkerResult, PerfError> {
    if let Some(cpu) = spec.cpu
        && let Err(e) = pin_current(cpu)
    {
        tracing::warn!("pinning perf thread {} to CPU {cpu}: {e}", spec.index);
    }
    let qids: Vec<u16> = spec.queues.iter().map(IoQueue::qid).collect();
    let nq = spec.queues.len();
    let setup = (|| -> Result<IoGroup, PerfError> {
        let mut g = IoGroup::new(spec.cfg.group.clone())?;
        for q in spec.queues {
            g.add(q)?;
        }
        Ok(g)
    })();
    // Every thread reaches the start line, even one whose setup failed, so nobody waits forever.
    shared.barrier.wait();
    let mut g = setup?;
    let cfg = spec.cfg;
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
        pool: BufPool::new(),
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
    let snap = |g: &IoGroup| Snapshot { cpu: CpuTime::thread(), sock: g.sock_group().counters() };
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
        if let Err(e) = g.poll(Some(poll_wait), &mut out) {
            break Err(PerfError::from(e));
        }
        let now = clock.now();
        shared.completions.fetch_add(out.len() as u64, Ordering::Relaxed);
        let mut failed = None;
        for c in out.drain(..) {
            if failed.is_none()
                && let Err(e) = w.complete(c, now)
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
            let down = g.queue(QueueId(i)).is_some_and(|q| q.down_reason().is_some());
            if !down {
                *since = None;
                continue;
            }
            let first = *since.get_or_insert(now);
            if now > clock.after(first, drain_limit) {
                let why = g.queue(QueueId(i)).and_then(|q| q.down_reason().map(str::to_string)).unwrap_or_default();
                shared.stop.store(true, Ordering::Relaxed);
                return Err(PerfError::Io(format!("queue {} stayed down: {why}", qids.get(i).copied().unwrap_or(0))));
            }
            if now > clock.after(last_reconnect, Duration::from_millis(500)) {
                last_reconnect = now;
                // Whatever was in flight on it already completed with an error.
                if let Some(n) = w.inflight.get_mut(i) {
                    *n = 0;
                }
                if let Err(e) = g.reconnect(QueueId(i), &mut out) {
                    tracing::warn!("reconnecting queue {}: {e}", qids.get(i).copied().unwrap_or(0));
                }
                for c in out.drain(..) {
                    w.complete(c, now)?;
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
        sock_backend: g.sock_group().backend().to_string(),
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
