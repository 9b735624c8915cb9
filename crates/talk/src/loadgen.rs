//! The load generator: C connections (1 to 1,024) from one thread on an ff-sock epoll group, Q requests
//! outstanding on each, for a duration or a request count. Every response is checked (tag order,
//! status, READ data against the pattern); any mismatch ends the run with an error. Reports requests/s
//! and latency percentiles from an HDR histogram.

use crate::proto::{self, CMD_LEN, Command, Opcode, RESP_LEN, Response, Status};
use anyhow::{Context, anyhow, bail};
use ff_sock::{Backend, Event, GroupOptions, SockError, SockGroup, SockId, TcpSock, WriteReq};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most connections one load generator opens.
pub const MAX_CONNECTIONS: usize = 1024;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Connections (1 to [`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Requests outstanding per connection.
    pub queue_depth: usize,
    /// Bytes each READ asks for (multiple of 4 KiB, may be 0).
    pub read_len: u32,
    /// Bytes each WRITE carries (multiple of 4 KiB, may be 0).
    pub write_len: u32,
    /// Percentage of requests that are WRITEs (0 to 100).
    pub write_pct: u8,
    /// Stop issuing after this long (measured from the first request).
    pub duration: Option<Duration>,
    /// Stop issuing after this many requests in total.
    pub requests: Option<u64>,
    /// The client group's backend.
    pub backend: Backend,
    /// Fail when no response arrives for this long (a hung server ends the run, not the caller).
    pub stall_timeout: Duration,
}

impl LoadConfig {
    /// One connection, depth 1, 4 KiB READs, for one second.
    pub fn new(addr: SocketAddr) -> LoadConfig {
        LoadConfig {
            addr,
            connections: 1,
            queue_depth: 1,
            read_len: 4096,
            write_len: 4096,
            write_pct: 0,
            duration: Some(Duration::from_secs(1)),
            requests: None,
            backend: Backend::Epoll,
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Connections used.
    pub connections: usize,
    /// Requests completed and verified.
    pub requests: u64,
    /// Of which READs.
    pub reads: u64,
    /// Of which WRITEs.
    pub writes: u64,
    /// Seconds from the first request to the last response.
    pub seconds: f64,
    /// Completed requests per second.
    pub requests_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
}

struct Pending {
    tag: u64,
    op: Opcode,
    len: u32,
    sent: Instant,
}

struct Conn {
    id: SockId,
    inflight: VecDeque<Pending>,
    head: [u8; RESP_LEN],
    head_got: usize,
    /// READ data being received for the front request.
    data: Vec<u8>,
    data_got: usize,
    in_data: bool,
    seq: u64,
}

/// The run's state on its one thread.
struct Gen<'a> {
    cfg: &'a LoadConfig,
    group: SockGroup<Arc<[u8]>>,
    conns: Vec<Conn>,
    /// SockId slot index -> connection index.
    by_slot: Vec<usize>,
    write_data: Arc<[u8]>,
    write_crc: u32,
    rng: u64,
    issued: u64,
    deadline: Option<Instant>,
    hist: Histogram<u64>,
    report: LoadReport,
}

/// Runs the load; `Err` on a connection failure, a stall or any response that does not verify.
pub fn run(cfg: &LoadConfig) -> anyhow::Result<LoadReport> {
    if cfg.connections == 0 || cfg.connections > MAX_CONNECTIONS {
        bail!("connections must be 1..={MAX_CONNECTIONS}, not {}", cfg.connections);
    }
    if cfg.duration.is_none() && cfg.requests.is_none() {
        bail!("give a duration or a request count");
    }
    for len in [cfg.read_len, cfg.write_len] {
        if !len.is_multiple_of(proto::BLOCK) || len > proto::MAX_DATA {
            bail!("data length {len} is not a multiple of {} up to {}", proto::BLOCK, proto::MAX_DATA);
        }
    }
    let opts = GroupOptions { backend: cfg.backend, ..GroupOptions::default() };
    let mut group = SockGroup::new(opts.clone()).context("client group")?;
    let mut conns = Vec::with_capacity(cfg.connections);
    let mut by_slot = Vec::new();
    for i in 0..cfg.connections {
        let s = TcpSock::connect(cfg.addr, &opts.sock, Duration::from_secs(5))
            .with_context(|| format!("connect {} (connection {i})", cfg.addr))?;
        let id = group.add(s)?;
        if by_slot.len() <= id.index() {
            by_slot.resize(id.index() + 1, usize::MAX);
        }
        by_slot[id.index()] = i;
        conns.push(Conn {
            id,
            inflight: VecDeque::new(),
            head: [0; RESP_LEN],
            head_got: 0,
            data: Vec::new(),
            data_got: 0,
            in_data: false,
            seq: 0,
        });
    }
    let mut wd = vec![0u8; cfg.write_len as usize];
    proto::fill_pattern(0x0057_5249_5445, 0, &mut wd); // any bytes do: the server checks their CRC
    let write_crc = crc32c::crc32c(&wd);
    let mut g = Gen {
        cfg,
        group,
        conns,
        by_slot,
        write_data: wd.into(),
        write_crc,
        rng: 0x9e37_79b9_7f4a_7c15,
        issued: 0,
        deadline: None,
        hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds"),
        report: LoadReport { connections: cfg.connections, ..Default::default() },
    };
    g.drive()
}

impl Gen<'_> {
    fn may_issue(&self) -> bool {
        self.cfg.requests.is_none_or(|n| self.issued < n) && self.deadline.is_none_or(|d| Instant::now() < d)
    }

    fn issue(&mut self, ci: usize) -> anyhow::Result<()> {
        let c = &mut self.conns[ci];
        // Tags: connection in the high bits, sequence below, so a response on the wrong connection shows.
        let tag = (ci as u64) << 40 | c.seq;
        c.seq += 1;
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let write = (self.rng % 100) < self.cfg.write_pct as u64;
        let (cmd, op, len) = if write {
            let cmd = Command { opcode: Opcode::Write, tag, len: self.cfg.write_len, data_crc: self.write_crc };
            (cmd, Opcode::Write, self.cfg.write_len)
        } else {
            (Command::read(tag, self.cfg.read_len), Opcode::Read, self.cfg.read_len)
        };
        let mut req = WriteReq::new(&cmd.encode(), tag).expect("64-byte header fits");
        if write && len > 0 {
            req.push_data(self.write_data.clone());
        }
        c.inflight.push_back(Pending { tag, op, len, sent: Instant::now() });
        self.issued += 1;
        self.group.write(c.id, req).map_err(|(e, _)| anyhow!("queue request on connection {ci}: {e}"))
    }

    fn drive(&mut self) -> anyhow::Result<LoadReport> {
        let start = Instant::now();
        self.deadline = self.cfg.duration.map(|d| start + d);
        'fill: for _ in 0..self.cfg.queue_depth.max(1) {
            for ci in 0..self.conns.len() {
                if !self.may_issue() {
                    break 'fill;
                }
                self.issue(ci)?;
            }
        }
        let mut events = Vec::new();
        let mut last_progress = Instant::now();
        let mut last_done = start;
        while self.conns.iter().any(|c| !c.inflight.is_empty()) {
            events.clear();
            self.group.poll(Some(Duration::from_millis(100)), &mut events)?;
            let before = self.report.requests;
            for ev in events.drain(..) {
                match ev {
                    Event::Readable(id) => self.on_readable(id)?,
                    Event::WriteDone { result: Err(e), sock, .. } => bail!("request write failed on {sock:?}: {e}"),
                    Event::Failed(id, e) => bail!("connection {:?} failed: {e}", id),
                    _ => {}
                }
            }
            if self.report.requests != before {
                last_progress = Instant::now();
                last_done = last_progress;
            } else if last_progress.elapsed() > self.cfg.stall_timeout {
                bail!("no response for {:?} ({} requests outstanding)", self.cfg.stall_timeout, self.outstanding());
            }
        }
        let r = &mut self.report;
        r.seconds = last_done.duration_since(start).as_secs_f64();
        r.requests_per_sec = if r.seconds > 0.0 { r.requests as f64 / r.seconds } else { 0.0 };
        r.p50_us = self.hist.value_at_quantile(0.50) as f64 / 1e3;
        r.p99_us = self.hist.value_at_quantile(0.99) as f64 / 1e3;
        r.max_us = self.hist.max() as f64 / 1e3;
        Ok(r.clone())
    }

    fn outstanding(&self) -> usize {
        self.conns.iter().map(|c| c.inflight.len()).sum()
    }

    fn on_readable(&mut self, id: SockId) -> anyhow::Result<()> {
        let ci = *self.by_slot.get(id.index()).ok_or_else(|| anyhow!("event for unknown socket"))?;
        loop {
            let c = &mut self.conns[ci];
            let r = if c.in_data {
                self.group.recv(id, &mut c.data[c.data_got..])
            } else {
                self.group.recv(id, &mut c.head[c.head_got..])
            };
            let n = match r {
                Ok(n) => n,
                Err(SockError::WouldBlock) => return Ok(()),
                Err(e) => bail!("connection {ci}: server closed it with {} outstanding: {e}", c.inflight.len()),
            };
            if c.in_data {
                c.data_got += n;
                if c.data_got < c.data.len() {
                    continue;
                }
                c.in_data = false;
                let p = c.inflight.front().expect("data belongs to the front request");
                if !proto::check_pattern(p.tag, 0, &c.data) {
                    bail!("connection {ci}: READ data of tag {:#x} does not match the pattern", p.tag);
                }
            } else {
                c.head_got += n;
                if c.head_got < CMD_LEN {
                    continue;
                }
                c.head_got = 0;
                let resp = Response::decode(&c.head).map_err(|e| anyhow!("connection {ci}: bad response: {e}"))?;
                let p = c.inflight.front().ok_or_else(|| anyhow!("connection {ci}: response with none outstanding"))?;
                if resp.tag != p.tag || resp.status != Status::Ok {
                    bail!("connection {ci}: response {resp:?} to request tag {:#x}", p.tag);
                }
                let want = if p.op == Opcode::Read { p.len } else { 0 };
                if resp.len != want {
                    bail!("connection {ci}: response carries {} bytes, expected {want}", resp.len);
                }
                if want > 0 {
                    c.in_data = true;
                    c.data.resize(want as usize, 0);
                    c.data_got = 0;
                    continue;
                }
            }
            let p = c.inflight.pop_front().expect("checked above");
            let _ = self.hist.record(p.sent.elapsed().as_nanos().max(1) as u64);
            self.report.requests += 1;
            match p.op {
                Opcode::Read => self.report.reads += 1,
                Opcode::Write => self.report.writes += 1,
            }
            if self.may_issue() {
                self.issue(ci)?;
            }
        }
    }
}
