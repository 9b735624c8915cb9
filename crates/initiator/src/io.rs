//! I/O queues: [`IoQueue`] is one I/O queue connection (qid, sans-IO core, commands in flight with their
//! tags and deadlines); [`IoGroup`] is a reactor's socket group driving any number of them from one
//! thread. Submissions only queue PDUs in the core; [`IoGroup::poll`] sends them, receives (payload
//! straight into the caller's buffers), and reports completions. A command past the command timeout is
//! aborted through the admin queue; past it again, its queue is torn down and reconnected, failing what
//! was in flight with [`IoError::Timeout`].

use crate::admin::AdminHandle;
use crate::buf::Buf;
use crate::error::{Error, IoError};
use crate::link::{Small, SyncLink, TxChunk, check, connect_cmd, join, pull_in, push_out};
use crate::options::HostOptions;
use ff_nvme::nvme::{Sqe, opcode, status};
use ff_nvme_tcp::host::{HostCompletion, HostConfig, HostConn};
use ff_sock::{Event, GroupOptions, SockGroup, SockId, TcpSock};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Everything needed to (re)connect one I/O queue.
#[derive(Clone)]
pub struct QueueSpec {
    pub(crate) addr: SocketAddr,
    pub(crate) subnqn: String,
    pub(crate) opts: HostOptions,
    pub(crate) cntlid: u16,
    pub(crate) qid: u16,
    pub(crate) in_capsule: u32,
    pub(crate) admin: AdminHandle,
    /// The association's DH-HMAC-CHAP configuration, if the host has a secret.
    pub(crate) auth: Option<std::sync::Arc<ff_nvme_auth::HostConfig>>,
}

struct Inflight {
    tag: u64,
    /// Set by the first deadline scan after submission (at most [`CHECK_EVERY`] late), so submitting a
    /// command reads no clock.
    deadline: Option<Instant>,
    aborted: bool,
}

/// One I/O queue connection. Created by [`crate::Controller`]; movable to the thread that drives it, where
/// it joins an [`IoGroup`].
pub struct IoQueue {
    spec: QueueSpec,
    conn: HostConn<Buf>,
    /// The socket (and its user-space TLS records, if any) while the queue is in no group.
    sock: Option<(TcpSock, Option<Box<dyn ff_sock::tls::RecordLayer>>)>,
    id: Option<SockId>,
    inflight: Vec<Option<Inflight>>,
    down: Option<String>,
}

/// One finished I/O command.
#[derive(Debug)]
pub struct IoCompletion {
    /// The queue it ran on.
    pub queue: QueueId,
    /// The caller's tag.
    pub tag: u64,
    /// Outcome.
    pub result: Result<(), IoError>,
    /// The buffer given at submit (read data in it), when there was one and it could be handed back.
    pub buf: Option<Buf>,
    /// Command-specific dword 0 of the completion.
    pub dw0: u32,
}

/// Index of a queue in its [`IoGroup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueId(pub usize);

fn handshake(spec: &QueueSpec) -> Result<crate::link::Detached, Error> {
    let o = &spec.opts;
    let deadline = Instant::now() + o.connect_timeout;
    let mut g = o.group.clone();
    g.sock = o.queue_sock(spec.qid);
    let depth = o.queue_depth.max(2);
    let cfg = HostConfig { digests: o.digests, depth, max_in_capsule: 8192, ..HostConfig::default() };
    let kato = u32::try_from(o.kato.as_millis()).unwrap_or(u32::MAX);
    let cattr = if o.disable_sq_flow_control { crate::link::CATTR_DISABLE_SQ_FLOW } else { 0 };
    let mut last = Error::Timeout("I/O queue connect");
    // The controller may not have released the qid of a connection that just went away: retry.
    while Instant::now() < deadline {
        let tls = o.tls.as_ref().map(|t| crate::link::QueueTls { opts: t, hostnqn: &o.hostnqn, subnqn: &spec.subnqn });
        let mut link = SyncLink::connect(spec.addr, cfg, &g, deadline, tls)?;
        let (sqe, data) =
            connect_cmd(spec.qid, depth - 1, cattr, kato, &o.hostid, spec.cntlid, &spec.subnqn, &o.hostnqn);
        let c = link.exec(sqe, Some(data), None, deadline)?;
        match check("Connect (I/O queue)", &c) {
            Ok(cqe) => {
                link.conn.set_qid(spec.qid);
                // A failed authentication is final: retrying with the same secret fails the same way.
                crate::auth::authenticate_queue(&mut link, spec.auth.as_ref(), spec.qid, cqe.dw0, deadline)?;
                link.conn.set_max_in_capsule(spec.in_capsule);
                let mut d = link.detach()?;
                if let (Some(r), Some(t)) = (d.records.take(), o.tls.as_ref()) {
                    d.records = crate::tls::to_kernel(&d.sock, r, t)?;
                }
                return Ok(d);
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last)
}

impl IoQueue {
    /// Connects I/O queue `spec.qid` (blocking, bounded by the connect timeout).
    pub(crate) fn connect(spec: QueueSpec) -> Result<IoQueue, Error> {
        let d = handshake(&spec)?;
        let depth = usize::from(spec.opts.queue_depth.max(2));
        Ok(IoQueue {
            spec,
            conn: d.conn,
            sock: Some((d.sock, d.records)),
            id: None,
            inflight: (0..depth).map(|_| None).collect(),
            down: None,
        })
    }

    /// Queue id.
    pub fn qid(&self) -> u16 {
        self.spec.qid
    }

    /// Commands in flight.
    pub fn outstanding(&self) -> usize {
        self.conn.outstanding()
    }

    /// Room for more commands.
    pub fn free_slots(&self) -> usize {
        self.inflight.len().saturating_sub(self.conn.outstanding())
    }

    /// Why the queue is down, if it is ([`IoGroup::reconnect`] brings it back).
    pub fn down_reason(&self) -> Option<&str> {
        self.down.as_deref()
    }

    fn submit(
        &mut self,
        sqe: Sqe,
        data: Option<Buf>,
        read: Option<Buf>,
        tag: u64,
    ) -> Result<(), (IoError, Option<Buf>)> {
        if self.down.is_some() {
            return Err((IoError::Unavailable("queue is down"), data.or(read)));
        }
        match self.conn.submit(sqe, data, read) {
            Ok(cid) => {
                if let Some(s) = self.inflight.get_mut(usize::from(cid)) {
                    *s = Some(Inflight { tag, deadline: None, aborted: false });
                }
                Ok(())
            }
            Err(e) => Err((
                IoError::Unavailable(if e.kind == ff_nvme_tcp::host::SubmitErrorKind::QueueFull {
                    "queue full"
                } else {
                    "connection not usable"
                }),
                e.data.or(e.read_buf),
            )),
        }
    }

    /// Read `nlb` blocks at `slba` of `nsid` into `buf` (its length is the transfer length).
    #[allow(clippy::result_large_err)]
    pub fn submit_read(
        &mut self,
        nsid: u32,
        slba: u64,
        nlb: u32,
        buf: Buf,
        tag: u64,
    ) -> Result<(), (IoError, Option<Buf>)> {
        let sqe = rw(opcode::IO_READ, nsid, slba, nlb, false);
        self.submit(sqe, None, Some(buf), tag)
    }

    /// Write `buf` as `nlb` blocks at `slba`; `fua` forces it to media first.
    #[allow(clippy::result_large_err)]
    pub fn submit_write(
        &mut self,
        nsid: u32,
        slba: u64,
        nlb: u32,
        buf: Buf,
        fua: bool,
        tag: u64,
    ) -> Result<(), (IoError, Option<Buf>)> {
        let sqe = rw(opcode::IO_WRITE, nsid, slba, nlb, fua);
        self.submit(sqe, Some(buf), None, tag)
    }

    /// Flush the namespace's volatile write cache.
    #[allow(clippy::result_large_err)]
    pub fn submit_flush(&mut self, nsid: u32, tag: u64) -> Result<(), (IoError, Option<Buf>)> {
        self.submit(Sqe { opcode: opcode::IO_FLUSH, nsid, ..Sqe::default() }, None, None, tag)
    }

    /// Write Zeroes over `nlb` blocks at `slba`.
    #[allow(clippy::result_large_err)]
    pub fn submit_write_zeroes(
        &mut self,
        nsid: u32,
        slba: u64,
        nlb: u32,
        tag: u64,
    ) -> Result<(), (IoError, Option<Buf>)> {
        self.submit(rw(opcode::IO_WRITE_ZEROES, nsid, slba, nlb, false), None, None, tag)
    }

    /// Dataset Management, deallocate the `(slba, nlb)` ranges (at most 256).
    #[allow(clippy::result_large_err)]
    pub fn submit_dsm_deallocate(
        &mut self,
        nsid: u32,
        ranges: &[(u64, u32)],
        tag: u64,
    ) -> Result<(), (IoError, Option<Buf>)> {
        if ranges.is_empty() || ranges.len() > 256 {
            return Err((IoError::Unavailable("1 to 256 ranges"), None));
        }
        let mut b = Buf::new(16 * ranges.len());
        for (chunk, &(slba, nlb)) in b.chunks_exact_mut(16).zip(ranges) {
            chunk[4..8].copy_from_slice(&nlb.to_le_bytes());
            chunk[8..16].copy_from_slice(&slba.to_le_bytes());
        }
        let sqe = Sqe { opcode: opcode::IO_DSM, nsid, cdw10: ranges.len() as u32 - 1, cdw11: 1 << 2, ..Sqe::default() };
        self.submit(sqe, Some(b), None, tag)
    }

    fn completion_of(&mut self, q: QueueId, c: HostCompletion<Buf>, failure: Option<&IoError>) -> Option<IoCompletion> {
        let inf = self.inflight.get_mut(usize::from(c.cid)).and_then(|s| s.take())?;
        let result = if let Some(e) = failure {
            Err(e.clone())
        } else if c.digest_error {
            Err(IoError::DataDigest)
        } else if c.cqe.status().is_success() {
            Ok(())
        } else {
            Err(IoError::Status { status: c.cqe.status(), dnr: c.cqe.dnr() })
        };
        Some(IoCompletion { queue: q, tag: inf.tag, result, buf: c.data.or(c.read_buf), dw0: c.cqe.dw0 })
    }
}

fn rw(op: u8, nsid: u32, slba: u64, nlb: u32, fua: bool) -> Sqe {
    Sqe {
        opcode: op,
        nsid,
        cdw10: slba as u32,
        cdw11: (slba >> 32) as u32,
        cdw12: (nlb.saturating_sub(1) & 0xFFFF) | if fua { 1 << 30 } else { 0 },
        ..Sqe::default()
    }
}

/// A reactor's socket group and the I/O queues it drives (one thread; build it on that thread).
pub struct IoGroup {
    group: SockGroup<TxChunk>,
    queues: Vec<IoQueue>,
    events: Vec<Event<TxChunk>>,
    done: Vec<HostCompletion<Buf>>,
    small: Box<Small>,
    next_check: Instant,
}

/// How often deadlines are scanned.
const CHECK_EVERY: Duration = Duration::from_millis(50);

impl IoGroup {
    /// An empty group; `opts.sock` is not used (queues keep the options they connected with).
    pub fn new(mut opts: GroupOptions) -> Result<IoGroup, Error> {
        // Each command may have a capsule and a few H2CData PDUs queued at once.
        opts.write_queue_depth = opts.write_queue_depth.max(4096);
        Ok(IoGroup {
            group: SockGroup::new(opts)?,
            queues: Vec::new(),
            events: Vec::new(),
            done: Vec::new(),
            small: Box::new([0; 256]),
            next_check: Instant::now() + CHECK_EVERY,
        })
    }

    /// Adds a connected queue.
    pub fn add(&mut self, mut q: IoQueue) -> Result<QueueId, Error> {
        let (sock, records) = q.sock.take().ok_or(Error::Invalid("queue has no socket"))?;
        q.id = Some(join(&mut self.group, sock, records)?);
        self.queues.push(q);
        Ok(QueueId(self.queues.len() - 1))
    }

    /// The queue `q` (to submit commands).
    pub fn queue(&mut self, q: QueueId) -> Option<&mut IoQueue> {
        self.queues.get_mut(q.0)
    }

    /// Number of queues.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// True without queues.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// The socket of queue `q` in the group (options, counters); `None` while it is down.
    pub fn sock_id(&self, q: QueueId) -> Option<ff_sock::SockId> {
        self.queues.get(q.0).and_then(|x| x.id)
    }

    /// The socket group (counters).
    pub fn sock_group(&self) -> &SockGroup<TxChunk> {
        &self.group
    }

    /// Sends what was submitted, waits at most `timeout` (`None`: until something happens, but never past
    /// the next deadline check) and appends finished commands to `out`. Returns how many were appended.
    pub fn poll(&mut self, timeout: Option<Duration>, out: &mut Vec<IoCompletion>) -> Result<usize, Error> {
        let before = out.len();
        for i in 0..self.queues.len() {
            self.pump(i, out);
        }
        let now = Instant::now();
        let busy = self.queues.iter().any(|q| q.outstanding() > 0);
        let cap = if busy { self.next_check.saturating_duration_since(now) } else { Duration::MAX };
        let wait = timeout.unwrap_or(Duration::MAX).min(cap);
        let wait = if wait == Duration::MAX { None } else { Some(wait) };
        let wait = if out.len() > before { Some(Duration::ZERO) } else { wait };
        self.group.poll(wait, &mut self.events)?;
        let mut events = std::mem::take(&mut self.events);
        for ev in events.drain(..) {
            match ev {
                Event::Readable(id) => {
                    if let Some(i) = self.queues.iter().position(|q| q.id == Some(id)) {
                        let r = match self.queues.get_mut(i) {
                            Some(q) => pull_in(&mut self.group, id, &mut q.conn, &mut self.small),
                            None => Ok(()),
                        };
                        match r {
                            Ok(()) => self.pump(i, out),
                            Err(e) => {
                                self.pump(i, out);
                                self.fail(i, IoError::ConnectionLost(e.to_string()), out);
                            }
                        }
                    }
                }
                Event::Failed(id, e) => {
                    if let Some(i) = self.queues.iter().position(|q| q.id == Some(id)) {
                        self.fail(i, IoError::ConnectionLost(e.to_string()), out);
                    }
                }
                // Dropping a finished write's chunks lets its command complete (see pump below).
                Event::WriteDone { .. } | Event::Wake => {}
            }
        }
        self.events = events;
        for i in 0..self.queues.len() {
            self.pump(i, out);
        }
        self.group.flush();
        // The clock read before the wait is recent enough for a scan every CHECK_EVERY.
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            self.check_timeouts(now, out);
        }
        Ok(out.len() - before)
    }

    /// Moves queue `i`'s PDUs to its socket and its completions to `out`.
    fn pump(&mut self, i: usize, out: &mut Vec<IoCompletion>) {
        let Some(q) = self.queues.get_mut(i) else { return };
        let Some(id) = q.id else { return };
        let r = push_out(&mut self.group, id, &mut q.conn, &mut self.done);
        for c in self.done.drain(..) {
            out.extend(q.completion_of(QueueId(i), c, None));
        }
        if let Err(e) = r {
            self.fail(i, IoError::ConnectionLost(e.to_string()), out);
        }
    }

    /// Tears queue `i` down: closes its socket and fails what was in flight with `err`.
    fn fail(&mut self, i: usize, err: IoError, out: &mut Vec<IoCompletion>) {
        let Some(q) = self.queues.get_mut(i) else { return };
        if let Some(id) = q.id.take() {
            self.group.flush();
            let _ = self.group.close(id);
        }
        tracing::warn!(qid = q.spec.qid, "I/O queue down: {err}");
        q.down = Some(err.to_string());
        q.conn.fail_all(status::ABORTED_SQ_DELETION);
        let mut done = Vec::new();
        while let Some(o) = q.conn.poll_output() {
            if let ff_nvme_tcp::host::HostOutput::Completion(c) = o {
                done.push(c);
            }
        }
        for c in done {
            out.extend(q.completion_of(QueueId(i), c, Some(&err)));
        }
        // Commands whose completion never reaches the core still have a tag: report them too.
        for s in q.inflight.iter_mut() {
            if let Some(inf) = s.take() {
                out.push(IoCompletion { queue: QueueId(i), tag: inf.tag, result: Err(err.clone()), buf: None, dw0: 0 });
            }
        }
    }

    fn check_timeouts(&mut self, now: Instant, out: &mut Vec<IoCompletion>) {
        let mut expired = Vec::new();
        for (i, q) in self.queues.iter_mut().enumerate() {
            if q.id.is_none() {
                continue;
            }
            let mut give_up = false;
            for (cid, s) in q.inflight.iter_mut().enumerate() {
                let Some(inf) = s else { continue };
                let deadline = *inf.deadline.get_or_insert(now + q.spec.opts.command_timeout);
                if now < deadline {
                    continue;
                }
                if inf.aborted {
                    give_up = true;
                } else {
                    inf.aborted = true;
                    inf.deadline = Some(now + q.spec.opts.command_timeout);
                    q.spec.admin.abort(q.spec.qid, cid as u16);
                }
            }
            if give_up {
                expired.push(i);
            }
        }
        for i in expired {
            self.fail(i, IoError::Timeout, out);
            if let Err(e) = self.reconnect(QueueId(i), out) {
                tracing::warn!("reconnect after timeout failed: {e}");
            }
        }
    }

    /// Tears queue `q` down (failing what is in flight) and connects it again with the same qid.
    pub fn reconnect(&mut self, q: QueueId, out: &mut Vec<IoCompletion>) -> Result<(), Error> {
        if self.queues.get(q.0).is_some_and(|x| x.id.is_some()) {
            self.fail(q.0, IoError::ConnectionLost("reconnect requested".into()), out);
        }
        let Some(queue) = self.queues.get_mut(q.0) else { return Err(Error::Invalid("no such queue")) };
        let d = handshake(&queue.spec)?;
        queue.conn = d.conn;
        queue.id = Some(join(&mut self.group, d.sock, d.records)?);
        queue.down = None;
        Ok(())
    }
}
