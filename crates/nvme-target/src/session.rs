//! One connection's NVMe session: the transport core ([`TargetConn`]) plus what its queue is bound to
//! after Connect (a controller's admin queue, or an I/O queue with its namespaces' devices). Maps each
//! command to the controller core or to a block-device request, and device completions back to NVMe
//! completions.
//!
//! An Authentication Send whose DH-HMAC-CHAP step needs a Diffie-Hellman exponentiation stays
//! parked: the session keeps the job ([`Session::take_dh_job`]) for the reactor to run elsewhere,
//! and completes the command when the result comes back ([`Session::dh_done`]) or when it could
//! not run ([`Session::dh_unavailable`]).

use crate::shared::{Shared, SubsysBackends};
use crate::token::IoTag;
use crate::txbuf::TxBuf;
use ff_blockdev::{BlockDev, BufPool, IoDone, IoError, IoOp, IoReq, LbaRange, SubmitError};
use ff_nvme::nvme::{Cqe, Sqe, Status, opcode, status};
use ff_nvme_tcp::target::{CidTable, Command, Completion, TargetConn};
use ff_nvmf::auth::{DhDone, DhJob};
use ff_nvmf::io::{IoFabricsOutcome, NSID_ALL};
use ff_nvmf::{
    AdminOutcome, CmdError, ConnectData, Connected, IoCmd, Response, TargetController, TargetIoQueue, parse_dsm_ranges,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Offset of SUBNQN in the Connect data (the IPO of a refused subsystem NQN).
const CONNECT_SUBNQN_OFFSET: u16 = 256;

/// How long a connection may stay without a successful Connect.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Media errors (status code type 2) for failed device I/O.
const WRITE_FAULT: Status = Status::new(status::SCT_MEDIA, 0x80);
const UNRECOVERED_READ_ERROR: Status = Status::new(status::SCT_MEDIA, 0x81);

/// What a reactor lends a session while it executes a command.
pub struct Env<'a> {
    /// This reactor's device handles, by namespace index (opened on first use).
    pub devs: &'a mut Vec<Option<Box<dyn BlockDev>>>,
    /// This reactor's I/O buffers.
    pub pool: &'a mut BufPool,
    /// Target-wide state.
    pub shared: &'a Arc<Shared>,
    /// This connection's block I/O tag (each request sets its command id).
    pub tag: IoTag,
    /// The reactor moves device requests onto its io_uring ring: handles opened late attach to it.
    pub on_ring: bool,
}

enum Queue {
    /// Before Connect.
    Unbound,
    /// Admin queue of a controller.
    Admin(Box<TargetController>),
    /// An I/O queue and its subsystem's devices.
    Io(TargetIoQueue, IoBackends),
}

/// An I/O queue's copy of its subsystem's namespace backends, refreshed when management changed them.
struct IoBackends {
    subnqn: String,
    table: Arc<SubsysBackends>,
    /// The shared table's generation this copy was taken at.
    generation: u64,
}

impl IoBackends {
    fn current(&mut self, shared: &Shared) -> &SubsysBackends {
        let g = shared.generation();
        if g != self.generation {
            self.table = shared.backends(&self.subnqn).unwrap_or_default();
            self.generation = g;
        }
        &self.table
    }
}

/// A device request in flight: what to do when it completes.
#[derive(Clone, Copy)]
enum InFlight {
    Read,
    Write,
    Other,
    /// A flush of every namespace: completions still expected, first error.
    FlushAll {
        left: u32,
        error: Option<Status>,
    },
}

/// I/O commands a connection submitted, by kind (management stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoCounts {
    /// Read commands.
    pub reads: u64,
    /// Write commands.
    pub writes: u64,
    /// Other I/O commands (flush, write zeroes, dataset management).
    pub other: u64,
    /// Bytes the reads asked for.
    pub read_bytes: u64,
    /// Bytes the writes carried.
    pub write_bytes: u64,
}

impl IoCounts {
    /// All commands.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.other
    }

    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &IoCounts) {
        self.reads += o.reads;
        self.writes += o.writes;
        self.other += o.other;
        self.read_bytes += o.read_bytes;
        self.write_bytes += o.write_bytes;
    }

    fn count(&mut self, io: &IoCmd) {
        match io {
            IoCmd::Read { len, .. } => self.record(IoKind::Read, u64::from(*len)),
            IoCmd::Write { len, .. } => self.record(IoKind::Write, u64::from(*len)),
            _ => self.record(IoKind::Other, 0),
        }
    }

    /// Counts one command of `kind` moving `bytes` (whatever protocol carried it).
    pub(crate) fn record(&mut self, kind: IoKind, bytes: u64) {
        match kind {
            IoKind::Read => {
                self.reads += 1;
                self.read_bytes += bytes;
            }
            IoKind::Write => {
                self.writes += 1;
                self.write_bytes += bytes;
            }
            IoKind::Other => self.other += 1,
        }
    }
}

/// What an I/O command does, for [`IoCounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IoKind {
    /// Moves data to the host.
    Read,
    /// Moves data from the host.
    Write,
    /// Anything else (flush, unmap, write zeroes, ...).
    Other,
}

/// Which queue a connection carries, once connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueIds {
    /// Controller ID.
    pub cntlid: Option<u16>,
    /// Queue ID (0: admin).
    pub qid: Option<u16>,
    /// Subsystem NQN.
    pub subnqn: String,
}

/// This reactor's handle of namespace `ns` in `devs`, opened on first use (attached to the ring when
/// the reactor runs one); `None` when it cannot be opened.
pub(crate) fn open_dev<'d>(
    devs: &'d mut Vec<Option<Box<dyn BlockDev>>>,
    on_ring: bool,
    ns: &crate::shared::NsBackend,
) -> Option<&'d mut Box<dyn BlockDev>> {
    if devs.len() <= ns.index {
        devs.resize_with(ns.index + 1, || None);
    }
    let slot = devs.get_mut(ns.index)?;
    if slot.is_none() {
        match ns.factory.open_handle() {
            Ok(mut h) => {
                // A namespace added while serving: its handle joins the ring like the first ones.
                if on_ring {
                    h.attach_uring();
                }
                *slot = Some(h)
            }
            Err(e) => {
                tracing::error!("cannot open device handle: {e}");
                return None;
            }
        }
    }
    slot.as_mut()
}

/// One connection's session; see the module docs.
pub struct Session {
    /// The transport core.
    pub conn: TargetConn<TxBuf>,
    queue: Queue,
    created: Instant,
    peer: SocketAddr,
    inflight: CidTable<InFlight>,
    /// Close after the pending response (Disconnect, or the controller went away).
    pub wants_close: bool,
    /// I/O commands so far.
    pub io: IoCounts,
    /// The TLS identity the connection's handshake proved: its Connect must name the same NQNs.
    tls_identity: Option<ff_nvme_tls::psk::PskIdentity>,
    /// A DH computation a parked Authentication Send waits for, until the reactor takes it.
    dh_job: Option<DhJob>,
}

fn completion(cqe: &Cqe, data: Option<Vec<u8>>) -> Completion<TxBuf> {
    Completion { status: cqe.status(), dnr: cqe.dnr(), dw0: cqe.dw0, dw1: cqe.dw1, data: data.map(TxBuf::Vec) }
}

fn cmd_error(e: CmdError) -> Completion<TxBuf> {
    Completion { status: e.status, dnr: e.dnr, dw0: e.dw0, dw1: 0, data: None }
}

fn response(r: Response) -> Completion<TxBuf> {
    completion(&r.cqe, r.data)
}

impl Session {
    /// A fresh connection from `peer`.
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        Session {
            conn: TargetConn::new(shared.conn),
            queue: Queue::Unbound,
            created: Instant::now(),
            peer,
            inflight: CidTable::default(),
            wants_close: false,
            io: IoCounts::default(),
            tls_identity: None,
            dh_job: None,
        }
    }

    /// The connection came through a TLS handshake with this identity.
    pub fn set_tls_identity(&mut self, identity: ff_nvme_tls::psk::PskIdentity) {
        self.tls_identity = Some(identity);
    }

    /// A Connect on a TLS connection must come from the host, to the subsystem, its PSK identity names:
    /// a key proves one host to one subsystem, not any host to any.
    fn tls_mismatch(&self, data: &[u8]) -> Option<Completion<TxBuf>> {
        let id = self.tls_identity.as_ref()?;
        let d = ConnectData::parse(data).ok()?;
        if d.hostnqn != id.hostnqn {
            tracing::warn!(peer = %self.peer, tls_host = %id.hostnqn, connect_host = %d.hostnqn, "connect refused: host NQN is not the TLS identity's");
            return Some(Completion::status(status::CONNECT_INVALID_HOST));
        }
        if d.subnqn != id.subnqn {
            tracing::warn!(peer = %self.peer, tls_subsystem = %id.subnqn, connect_subsystem = %d.subnqn, "connect refused: subsystem NQN is not the TLS identity's");
            return Some(cmd_error(ff_nvmf::registry::invalid_param(true, CONNECT_SUBNQN_OFFSET)));
        }
        None
    }

    /// Executes `cmd`: returns its completion now, or `None` when it completes later (device I/O, a
    /// parked AER).
    pub fn execute(&mut self, cmd: Command<TxBuf>, env: &mut Env<'_>) -> Option<Completion<TxBuf>> {
        let sqe = cmd.sqe;
        match &mut self.queue {
            Queue::Unbound => Some(self.connect(&sqe, cmd.data, env)),
            Queue::Admin(ctrl) => {
                let bytes = cmd.data.as_ref().map(|d| d.as_ref()).unwrap_or(&[]);
                let out = ctrl.handle_admin_data(&sqe, bytes, Instant::now());
                if let Some(b) = cmd.data {
                    b.recycle(env.pool);
                }
                let c = match out {
                    AdminOutcome::Complete(r) => Some(response(r)),
                    AdminOutcome::CompleteThenClose(r) => {
                        self.wants_close = true;
                        Some(response(r))
                    }
                    AdminOutcome::Parked => None,
                    AdminOutcome::Computing => {
                        self.dh_job = ctrl.take_dh_job();
                        None
                    }
                    // Commands live on their own connection (maybe another reactor): too late to abort.
                    AdminOutcome::Abort(req) => Some(response(ctrl.finish_abort(req, false))),
                };
                if sqe.opcode == opcode::FABRICS && sqe.fctype() == ff_nvme::nvme::fctype::DISCONNECT {
                    self.wants_close = true;
                }
                self.drain_async();
                c
            }
            Queue::Io(q, backends) => {
                let backends = backends.current(env.shared);
                if sqe.opcode == opcode::FABRICS {
                    let bytes = cmd.data.as_ref().map(|d| d.as_ref()).unwrap_or(&[]);
                    let out = q.handle_fabrics_data(&sqe, bytes, Instant::now());
                    if let Some(b) = cmd.data {
                        b.recycle(env.pool);
                    }
                    if out == IoFabricsOutcome::Computing {
                        self.dh_job = q.take_dh_job();
                        return None;
                    }
                    return Some(self.io_fabrics_completion(out));
                }
                match q.validate(&sqe) {
                    Err(e) => {
                        if let Some(b) = cmd.data {
                            b.recycle(env.pool);
                        }
                        Some(cmd_error(e))
                    }
                    // Borrowed, not cloned: the Arc is shared by every reactor, and a refcount
                    // bump per I/O would bounce its cache line between cores.
                    Ok(io) => {
                        self.io.count(&io);
                        Self::submit_io(&mut self.inflight, &sqe, io, cmd.data, backends, env)
                    }
                }
            }
        }
    }

    fn io_fabrics_completion(&mut self, out: IoFabricsOutcome) -> Completion<TxBuf> {
        match out {
            IoFabricsOutcome::Complete(cqe) => completion(&cqe, None),
            IoFabricsOutcome::Respond(r) => response(r),
            IoFabricsOutcome::Disconnect(cqe) => {
                self.wants_close = true;
                completion(&cqe, None)
            }
            IoFabricsOutcome::RespondThenClose(r) => {
                self.wants_close = true;
                response(r)
            }
            // Only an Authentication Send parks, and the result completes it once.
            IoFabricsOutcome::Computing => Completion::status(status::INTERNAL_ERROR),
        }
    }

    /// The DH computation a parked Authentication Send waits for: the reactor runs it off its
    /// thread and brings the result to [`Self::dh_done`].
    pub fn take_dh_job(&mut self) -> Option<DhJob> {
        self.dh_job.take()
    }

    /// The result of [`Self::take_dh_job`]'s job: completes the parked Send (its completion goes
    /// out with the connection's next outputs). False when nothing waits for it any more (the
    /// transaction ended, the queue is closing): the result is dropped.
    pub fn dh_done(&mut self, done: DhDone) -> bool {
        let now = Instant::now();
        match &mut self.queue {
            Queue::Admin(ctrl) => match ctrl.dh_done(done, now) {
                Some(out) => self.admin_auth_completion(out),
                None => false,
            },
            Queue::Io(q, _) => match q.dh_done(done, now) {
                Some(out) => self.io_auth_completion(out),
                None => false,
            },
            Queue::Unbound => false,
        }
    }

    /// The job could not be handed to a worker (their queue is full): the authentication fails
    /// (AUTH_Failure1 on the next Receive, then the queue closes); completes the parked Send.
    pub fn dh_unavailable(&mut self) {
        let _ = match &mut self.queue {
            Queue::Admin(ctrl) => ctrl.dh_unavailable().is_some_and(|out| self.admin_auth_completion(out)),
            Queue::Io(q, _) => q.dh_unavailable().is_some_and(|out| self.io_auth_completion(out)),
            Queue::Unbound => false,
        };
    }

    fn admin_auth_completion(&mut self, out: AdminOutcome) -> bool {
        let r = match out {
            AdminOutcome::Complete(r) => r,
            AdminOutcome::CompleteThenClose(r) => {
                self.wants_close = true;
                r
            }
            _ => return false,
        };
        self.conn.complete(r.cqe.cid, response(r));
        true
    }

    fn io_auth_completion(&mut self, out: IoFabricsOutcome) -> bool {
        let cid = match &out {
            IoFabricsOutcome::Respond(r) | IoFabricsOutcome::RespondThenClose(r) => r.cqe.cid,
            _ => return false,
        };
        let c = self.io_fabrics_completion(out);
        self.conn.complete(cid, c);
        true
    }

    fn connect(&mut self, sqe: &Sqe, data: Option<TxBuf>, env: &mut Env<'_>) -> Completion<TxBuf> {
        if sqe.opcode != opcode::FABRICS || sqe.fctype() != ff_nvme::nvme::fctype::CONNECT {
            if let Some(b) = data {
                b.recycle(env.pool);
            }
            return Completion::status(status::COMMAND_SEQUENCE_ERROR);
        }
        let bytes = data.as_ref().map(|d| d.as_ref()).unwrap_or(&[]);
        if let Some(refused) = self.tls_mismatch(bytes) {
            if let Some(b) = data {
                b.recycle(env.pool);
            }
            return refused;
        }
        let subnqn = ConnectData::parse(bytes).map(|d| d.subnqn).ok();
        let result = env.shared.target.connect(sqe, bytes, Instant::now());
        if let Some(b) = data {
            b.recycle(env.pool);
        }
        let c = completion(result.cqe(), None);
        match result {
            Connected::Admin { controller, info, .. } => {
                tracing::info!(peer = %self.peer, cntlid = info.cntlid, subnqn = controller.subnqn(), "admin queue connected");
                self.conn.set_queue(info.qid, (info.depth.saturating_sub(1)) as u16, info.sq_flow_control_disabled);
                self.queue = Queue::Admin(controller);
            }
            Connected::Io { queue, info, .. } => {
                let subnqn = subnqn.unwrap_or_default();
                let generation = env.shared.generation();
                let table = env.shared.backends(&subnqn).unwrap_or_default();
                let backends = IoBackends { subnqn, table, generation };
                tracing::debug!(peer = %self.peer, cntlid = info.cntlid, qid = info.qid, "I/O queue connected");
                self.conn.set_queue(info.qid, (info.depth.saturating_sub(1)) as u16, info.sq_flow_control_disabled);
                self.inflight.set_depth(info.depth as usize);
                self.conn.set_max_in_capsule(env.shared.target.limits().in_capsule_data_size);
                self.queue = Queue::Io(queue, backends);
            }
            Connected::Rejected { .. } => {
                tracing::warn!(peer = %self.peer, status = ?c.status, "connect rejected");
            }
        }
        c
    }

    fn dev<'e>(env: &'e mut Env<'_>, ns: &crate::shared::NsBackend) -> Result<&'e mut Box<dyn BlockDev>, Status> {
        open_dev(env.devs, env.on_ring, ns).ok_or(status::INTERNAL_ERROR)
    }

    fn submit_io(
        inflight: &mut CidTable<InFlight>,
        sqe: &Sqe,
        io: IoCmd,
        data: Option<TxBuf>,
        backends: &SubsysBackends,
        env: &mut Env<'_>,
    ) -> Option<Completion<TxBuf>> {
        let cid = sqe.cid;
        let tag = env.tag.with_cid(cid).to_u64();
        if let IoCmd::Flush { nsid: NSID_ALL } = io {
            let all: Vec<_> = backends.by_nsid.values().cloned().collect();
            let mut left = 0u32;
            for ns in all {
                let dev = match Self::dev(env, &ns) {
                    Ok(d) => d,
                    Err(st) => return Some(Completion::status(st)),
                };
                if dev.submit(IoReq::flush(tag)).is_ok() {
                    left += 1;
                }
            }
            if left == 0 {
                return Some(Completion::status(status::SUCCESS));
            }
            inflight.insert(cid, InFlight::FlushAll { left, error: None });
            return None;
        }
        let Some(ns) = backends.by_nsid.get(&io.nsid()) else {
            if let Some(b) = data {
                b.recycle(env.pool);
            }
            return Some(Completion::status(status::INVALID_NAMESPACE));
        };
        let (req, kind) = match io {
            IoCmd::Read { slba, nlb, len, .. } => {
                (IoReq::read(tag, slba, nlb, env.pool.get(len as usize)), InFlight::Read)
            }
            IoCmd::Write { slba, nlb, fua, len, .. } => {
                let buf = match data {
                    Some(TxBuf::Io(b)) if b.len() == len as usize => b,
                    Some(other) => {
                        // Host data that did not arrive in a pool buffer: one copy into an aligned one.
                        let mut b = env.pool.get(len as usize);
                        let src = other.as_ref();
                        let n = src.len().min(b.len());
                        b[..n].copy_from_slice(&src[..n]);
                        other.recycle(env.pool);
                        b
                    }
                    None => return Some(Completion::status(status::DATA_TRANSFER_ERROR)),
                };
                (IoReq::write(tag, slba, nlb, buf, fua), InFlight::Write)
            }
            IoCmd::Flush { .. } => (IoReq::flush(tag), InFlight::Other),
            IoCmd::WriteZeroes { slba, nlb, fua, .. } => (IoReq::write_zeroes(tag, slba, nlb, fua), InFlight::Other),
            IoCmd::Dsm { ranges, deallocate, .. } => {
                let bytes = data.as_ref().map(|d| d.as_ref()).unwrap_or(&[]);
                let parsed = parse_dsm_ranges(bytes, ranges, ns.info.num_blocks);
                if let Some(b) = data {
                    b.recycle(env.pool);
                }
                let parsed = match parsed {
                    Ok(p) => p,
                    Err(e) => return Some(cmd_error(e)),
                };
                if !deallocate {
                    return Some(Completion::status(status::SUCCESS)); // hints only
                }
                let ranges = parsed.iter().map(|r| LbaRange { lba: r.slba, blocks: r.nlb }).collect();
                (IoReq::deallocate(tag, ranges), InFlight::Other)
            }
        };
        let dev = match Self::dev(env, ns) {
            Ok(d) => d,
            Err(st) => return Some(Completion::status(st)),
        };
        match dev.submit(req) {
            Ok(()) => {
                inflight.insert(cid, kind);
                None
            }
            Err(SubmitError::QueueFull(req)) => {
                if let IoOp::Read { buf, .. } | IoOp::Write { buf, .. } = req.op {
                    env.pool.put(buf);
                }
                // The host retries: namespace-not-ready style backpressure without DNR.
                Some(Completion { status: status::NAMESPACE_NOT_READY, dnr: false, dw0: 0, dw1: 0, data: None })
            }
        }
    }

    /// Turns a device completion of command `cid` into its NVMe completion (`None` while a multi-device
    /// flush still waits).
    pub fn io_done(&mut self, cid: u16, done: IoDone, pool: &mut BufPool) -> Option<Completion<TxBuf>> {
        let kind = self.inflight.remove(cid)?;
        let err_status = |e: &IoError, read: bool| match e {
            IoError::OutOfRange { .. } => status::LBA_OUT_OF_RANGE,
            IoError::BufferLength { .. } => status::DATA_TRANSFER_ERROR,
            IoError::Io(_) if read => UNRECOVERED_READ_ERROR,
            IoError::Io(_) => WRITE_FAULT,
        };
        match kind {
            InFlight::FlushAll { left, error } => {
                let error = error.or(done.result.as_ref().err().map(|e| err_status(e, false)));
                if left > 1 {
                    self.inflight.insert(cid, InFlight::FlushAll { left: left - 1, error });
                    return None;
                }
                Some(Completion::status(error.unwrap_or(status::SUCCESS)))
            }
            InFlight::Read => match (done.result, done.buf) {
                (Ok(()), Some(buf)) => {
                    Some(Completion { data: Some(TxBuf::Io(buf)), ..Completion::status(status::SUCCESS) })
                }
                (r, buf) => {
                    if let Some(b) = buf {
                        pool.put(b);
                    }
                    let st = r.err().map(|e| err_status(&e, true)).unwrap_or(status::INTERNAL_ERROR);
                    Some(Completion::status(st))
                }
            },
            InFlight::Write | InFlight::Other => {
                if let Some(b) = done.buf {
                    pool.put(b);
                }
                Some(match done.result {
                    Ok(()) => Completion::status(status::SUCCESS),
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, cid, "device error: {e}");
                        Completion::status(err_status(&e, false))
                    }
                })
            }
        }
    }

    /// Completions the controller produced on its own (AERs): handed to the transport.
    fn drain_async(&mut self) {
        if let Queue::Admin(ctrl) = &mut self.queue {
            while let Some(r) = ctrl.poll_async() {
                let cid = r.cqe.cid;
                self.conn.complete(cid, response(r));
            }
        }
    }

    /// The controller and queue this connection carries (empty before Connect).
    pub fn ids(&self) -> QueueIds {
        match &self.queue {
            Queue::Unbound => QueueIds::default(),
            Queue::Admin(c) => QueueIds { cntlid: Some(c.cntlid()), qid: Some(0), subnqn: c.subnqn().to_string() },
            Queue::Io(q, b) => QueueIds { cntlid: Some(q.cntlid()), qid: Some(q.qid()), subnqn: b.subnqn.clone() },
        }
    }

    /// Periodic work; true when the connection must close (keep-alive expired, controller gone, or no
    /// Connect in time).
    pub fn tick(&mut self, now: Instant) -> bool {
        self.drain_async();
        match &self.queue {
            Queue::Unbound => now.duration_since(self.created) > CONNECT_DEADLINE,
            Queue::Admin(c) => c.keep_alive_expired(now) || !c.is_alive() || c.auth_expired(now),
            // A queue still authenticating belongs to a live controller only once it is through.
            Queue::Io(q, _) => !q.controller_live() || q.auth_expired(now),
        }
    }

    /// Called once when the connection closes: in-flight device I/O completes into nothing.
    pub fn on_close(&mut self) {
        self.inflight.clear();
        // Dropping the queue disconnects it from the controller core.
        self.queue = Queue::Unbound;
    }
}
