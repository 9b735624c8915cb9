//! The controller association: the admin queue (run by a thread of its own, which also sends Keep Alive
//! every KATO/2 and the Aborts that I/O queues ask for), controller enable and shutdown, admin commands
//! (Identify, Get Log Page, Set Features), discovery, and the I/O queues connected at setup.

use crate::DISCOVERY_NQN;
use crate::auth::authenticate_queue;
use crate::buf::Buf;
use crate::error::Error;
use crate::identify::{self, DISC_ENTRY_LEN, DiscoveryEntry, IdentifyController, IdentifyNamespace};
use crate::io::{IoQueue, QueueSpec};
use crate::link::{SyncLink, check, connect_cmd};
use crate::options::HostOptions;
use ff_nvme::nvme::{Cqe, Sqe, fctype, opcode};
use ff_nvme_auth::HostConfig as AuthConfig;
use ff_nvme_tcp::host::{ADMIN_IN_CAPSULE, HostCompletion, HostConfig};
use ff_sock::Waker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Admin queue size (0's based SQSIZE 31: 32 entries).
const ADMIN_DEPTH: u16 = 32;
const PROP_CAP: u32 = 0x00;
const PROP_VS: u32 = 0x08;
const PROP_CC: u32 = 0x14;
const PROP_CSTS: u32 = 0x1C;
/// CC: EN, IOSQES = 6 (64 bytes), IOCQES = 4 (16 bytes).
const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
/// CC.SHN = 01b (normal shutdown).
const CC_SHN_NORMAL: u32 = 1 << 14;
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 1 << 1;
const CSTS_SHST_MASK: u32 = 0x3 << 2;
const CSTS_SHST_COMPLETE: u32 = 0x2 << 2;
const FID_NUM_QUEUES: u32 = 0x07;
const FID_ASYNC_EVENT_CONFIG: u32 = 0x0B;
/// Asynchronous Event Configuration: namespace attribute notices (bit 8) and discovery log change
/// notices (bit 31), the events our hosts act on.
const AEC_NOTICES: u32 = (1 << 8) | (1 << 31);

/// An asynchronous event the controller reported (Asynchronous Event Request completion dword 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Event type (bits 2:0): 0 error, 1 SMART/health, 2 notice, 6 I/O command set, 7 vendor.
    pub kind: u8,
    /// Event information (bits 15:8), e.g. notice 0x00 namespace attribute changed, 0xF0 discovery log
    /// changed.
    pub info: u8,
    /// Log page that holds the details and that was read to re-arm the event (bits 23:16).
    pub log_page: u8,
}

impl AsyncEvent {
    /// Decodes completion dword 0.
    pub fn from_dw0(dw0: u32) -> AsyncEvent {
        AsyncEvent { kind: (dw0 & 0x7) as u8, info: (dw0 >> 8) as u8, log_page: (dw0 >> 16) as u8 }
    }
}

/// A request to the admin thread.
pub(crate) enum AdminMsg {
    /// Run a command; the reply carries the completion with its buffers.
    Cmd {
        sqe: Sqe,
        data: Option<Buf>,
        read_len: usize,
        timeout: Duration,
        reply: Sender<Result<HostCompletion<Buf>, Error>>,
    },
    /// Abort command `cid` of queue `sqid` (fire and forget: the I/O queue's own timeout decides next).
    Abort { sqid: u16, cid: u16 },
    /// Keep `count` Asynchronous Event Requests outstanding from now on.
    ArmAer { count: u8 },
    /// Close the admin queue and exit.
    Stop,
}

/// A cloneable handle I/O queues use to reach the admin thread (for Abort).
#[derive(Clone)]
pub struct AdminHandle {
    tx: Sender<AdminMsg>,
    waker: Waker,
}

impl AdminHandle {
    pub(crate) fn send(&self, m: AdminMsg) -> Result<(), Error> {
        self.tx.send(m).map_err(|_| Error::ConnectionLost("admin queue is gone".into()))?;
        let _ = self.waker.wake();
        Ok(())
    }

    /// Asks the controller to abort command `cid` of I/O queue `sqid`.
    pub fn abort(&self, sqid: u16, cid: u16) {
        let _ = self.send(AdminMsg::Abort { sqid, cid });
    }
}

/// An association with one controller: its admin queue and the facts learnt at setup.
pub struct Controller {
    admin: AdminHandle,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
    subnqn: String,
    opts: HostOptions,
    /// DH-HMAC-CHAP configuration shared by all queues of this association (none without a secret).
    auth: Option<Arc<AuthConfig>>,
    cntlid: u16,
    cap: u64,
    vs: u32,
    ident: IdentifyController,
    io_queues: Vec<IoQueue>,
    shut_down: bool,
    /// Asynchronous events received since the last [`Controller::take_async_events`].
    events: Arc<Mutex<Vec<AsyncEvent>>>,
}

impl Controller {
    /// Connects to subsystem `subnqn` at `addr`: admin queue (ICReq, Connect with the dynamic controller
    /// ID), CAP/VS, CC.EN with the queue entry sizes, CSTS.RDY within CAP.TO, Identify Controller, Set
    /// Features Number of Queues, then `opts.io_queues` I/O queue connections (take them with
    /// [`Controller::take_io_queues`]). Discovery controllers get no I/O queues.
    pub fn connect(addr: SocketAddr, subnqn: &str, opts: &HostOptions) -> Result<Controller, Error> {
        let deadline = Instant::now() + opts.connect_timeout;
        let (init_tx, init_rx) = channel();
        let (tx, rx) = channel();
        let auth = opts.dhchap.as_ref().map(|d| d.host_config(&opts.hostnqn, subnqn));
        let (a, o, n, au) = (addr, opts.clone(), subnqn.to_string(), auth.clone());
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let thread = std::thread::Builder::new()
            .name("ff-init-admin".into())
            .spawn(move || admin_thread(a, &n, &o, au.as_ref(), deadline, init_tx, rx, ev))?;
        let (cntlid, waker) = match init_rx.recv() {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(Error::ConnectionLost("admin thread died".into())),
        };
        let mut c = Controller {
            admin: AdminHandle { tx, waker },
            thread: Some(thread),
            addr,
            subnqn: subnqn.to_string(),
            opts: opts.clone(),
            auth,
            cntlid,
            cap: 0,
            vs: 0,
            ident: IdentifyController::default(),
            io_queues: Vec::new(),
            shut_down: false,
            events,
        };
        c.enable()?;
        c.ident = c.identify_controller()?;
        c.arm_async_events();
        let discovery = subnqn == DISCOVERY_NQN || c.ident.cntrltype == 2;
        if !discovery && opts.io_queues > 0 {
            let want = u32::from(opts.io_queues - 1);
            let sqe = Sqe {
                opcode: opcode::ADMIN_SET_FEATURES,
                cdw10: FID_NUM_QUEUES,
                cdw11: want | (want << 16),
                ..Sqe::default()
            };
            let (cqe, _) = c.admin_cmd("Set Features (Number of Queues)", sqe, None, 0)?;
            let granted = (cqe.dw0 & 0xFFFF).min(cqe.dw0 >> 16) + 1;
            let n = u32::from(opts.io_queues).min(granted) as u16;
            for qid in 1..=n {
                let q = IoQueue::connect(c.queue_spec(qid))?;
                c.io_queues.push(q);
            }
        }
        Ok(c)
    }

    /// Enables the notices we act on and posts Asynchronous Event Requests (at most AERL+1, here one is
    /// enough: it is re-armed after each event). A controller that refuses the configuration still gets
    /// the request, for the events it reports by default.
    fn arm_async_events(&mut self) {
        let sqe = Sqe {
            opcode: opcode::ADMIN_SET_FEATURES,
            cdw10: FID_ASYNC_EVENT_CONFIG,
            cdw11: AEC_NOTICES,
            ..Sqe::default()
        };
        if let Err(e) = self.admin_cmd("Set Features (Asynchronous Event Configuration)", sqe, None, 0) {
            tracing::debug!("controller refused the event configuration: {e}");
        }
        let _ = self.admin.tx.send(AdminMsg::ArmAer { count: 1 });
        let _ = self.admin.waker.wake();
    }

    /// Asynchronous events received so far (namespace changes, discovery log changes, ...), oldest first.
    pub fn take_async_events(&self) -> Vec<AsyncEvent> {
        self.events.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    fn enable(&mut self) -> Result<(), Error> {
        self.cap = self.prop_get(PROP_CAP, true)?;
        self.vs = self.prop_get(PROP_VS, false)? as u32;
        self.prop_set(PROP_CC, CC_ENABLE)?;
        // CAP.TO is in 500 ms units; wait at least one unit.
        let to = Duration::from_millis(500 * ((self.cap >> 24) & 0xFF).max(1));
        let deadline = Instant::now() + to;
        loop {
            let csts = self.prop_get(PROP_CSTS, false)? as u32;
            if csts & CSTS_CFS != 0 {
                return Err(Error::Protocol("controller fatal status after enable".into()));
            }
            if csts & CSTS_RDY != 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout("CSTS.RDY"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The spec of I/O queue `qid` (used to connect and reconnect it).
    fn queue_spec(&self, qid: u16) -> QueueSpec {
        QueueSpec {
            addr: self.addr,
            subnqn: self.subnqn.clone(),
            opts: self.opts.clone(),
            cntlid: self.cntlid,
            qid,
            in_capsule: self.ident.in_capsule_bytes(),
            admin: self.admin.clone(),
            auth: self.auth.clone(),
        }
    }

    /// The I/O queues connected at setup; move each to the reactor thread that will drive it.
    pub fn take_io_queues(&mut self) -> Vec<IoQueue> {
        std::mem::take(&mut self.io_queues)
    }

    /// Connects one more I/O queue with id `qid` (e.g. after [`Controller::take_io_queues`] to replace one).
    pub fn connect_io_queue(&self, qid: u16) -> Result<IoQueue, Error> {
        IoQueue::connect(self.queue_spec(qid))
    }

    /// Controller ID assigned at Connect.
    pub fn cntlid(&self) -> u16 {
        self.cntlid
    }

    /// CAP property.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// VS property.
    pub fn version(&self) -> u32 {
        self.vs
    }

    /// Identify Controller as read at setup.
    pub fn identity(&self) -> &IdentifyController {
        &self.ident
    }

    /// Runs an admin command; `read_len` bytes of controller data are returned.
    pub fn admin_cmd(
        &self,
        what: &'static str,
        sqe: Sqe,
        data: Option<Buf>,
        read_len: usize,
    ) -> Result<(Cqe, Vec<u8>), Error> {
        let (reply, rx) = channel();
        let timeout = self.opts.command_timeout;
        self.admin.send(AdminMsg::Cmd { sqe, data, read_len, timeout, reply })?;
        let c = rx.recv_timeout(timeout + Duration::from_secs(1)).map_err(|_| Error::Timeout(what))??;
        let cqe = check(what, &c)?;
        let len = (c.read_len as usize).min(read_len);
        Ok((cqe, c.read_buf.map(|b| b.get(..len).unwrap_or(&[]).to_vec()).unwrap_or_default()))
    }

    fn prop_get(&self, offset: u32, eight: bool) -> Result<u64, Error> {
        let sqe = Sqe {
            opcode: opcode::FABRICS,
            nsid: u32::from(fctype::PROPERTY_GET),
            cdw10: u32::from(eight),
            cdw11: offset,
            ..Sqe::default()
        };
        let (cqe, _) = self.admin_cmd("Property Get", sqe, None, 0)?;
        Ok(u64::from(cqe.dw0) | (u64::from(cqe.dw1) << 32))
    }

    fn prop_set(&self, offset: u32, value: u32) -> Result<(), Error> {
        let sqe = Sqe {
            opcode: opcode::FABRICS,
            nsid: u32::from(fctype::PROPERTY_SET),
            cdw11: offset,
            cdw12: value,
            ..Sqe::default()
        };
        self.admin_cmd("Property Set", sqe, None, 0).map(|_| ())
    }

    fn identify(&self, cns: u32, nsid: u32) -> Result<Vec<u8>, Error> {
        let sqe = Sqe { opcode: opcode::ADMIN_IDENTIFY, nsid, cdw10: cns, ..Sqe::default() };
        let (_, d) = self.admin_cmd("Identify", sqe, None, 4096)?;
        Ok(d)
    }

    /// Identify Controller (CNS 01h).
    pub fn identify_controller(&self) -> Result<IdentifyController, Error> {
        Ok(IdentifyController::parse(&self.identify(1, 0)?))
    }

    /// Identify Namespace (CNS 00h).
    pub fn identify_namespace(&self, nsid: u32) -> Result<IdentifyNamespace, Error> {
        Ok(IdentifyNamespace::parse(&self.identify(0, nsid)?))
    }

    /// Active namespace IDs (CNS 02h), ascending.
    pub fn active_namespaces(&self) -> Result<Vec<u32>, Error> {
        Ok(identify::parse_ns_list(&self.identify(2, 0)?))
    }

    /// Get Log Page `lid`, `len` bytes from offset 0 (`len` a multiple of 4).
    pub fn get_log_page(&self, lid: u8, len: usize) -> Result<Vec<u8>, Error> {
        self.get_log_page_at(lid, 0, len)
    }

    /// Get Log Page `lid`, `len` bytes from byte `offset`.
    pub fn get_log_page_at(&self, lid: u8, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        if len == 0 || !len.is_multiple_of(4) {
            return Err(Error::Invalid("log page length must be a non-zero multiple of 4"));
        }
        let numd = (len / 4 - 1) as u32;
        let sqe = Sqe {
            opcode: opcode::ADMIN_GET_LOG_PAGE,
            nsid: 0xFFFF_FFFF,
            cdw10: u32::from(lid) | ((numd & 0xFFFF) << 16),
            cdw11: numd >> 16,
            cdw12: offset as u32,
            cdw13: (offset >> 32) as u32,
            ..Sqe::default()
        };
        Ok(self.admin_cmd("Get Log Page", sqe, None, len)?.1)
    }

    /// The discovery log (page 70h) of this (discovery) controller: reads the header, then all records,
    /// and retries when the generation counter moved in between.
    pub fn discovery_log(&self) -> Result<Vec<DiscoveryEntry>, Error> {
        for _ in 0..4 {
            let (genctr, numrec) = identify::parse_disc_header(&self.get_log_page(0x70, DISC_ENTRY_LEN)?);
            let numrec = usize::try_from(numrec).unwrap_or(usize::MAX).min(4096);
            let log = self.get_log_page(0x70, DISC_ENTRY_LEN * (numrec + 1))?;
            let (genctr2, _) = identify::parse_disc_header(&log);
            if genctr2 != genctr {
                continue;
            }
            return Ok(log.chunks_exact(DISC_ENTRY_LEN).skip(1).take(numrec).map(DiscoveryEntry::parse).collect());
        }
        Err(Error::Protocol("discovery log kept changing".into()))
    }

    /// Orderly shutdown: CC.SHN = normal, wait for CSTS.SHST = complete, then close the admin queue
    /// (I/O queues close when their groups drop them).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shut_down = true;
        let r = self.shutdown_inner();
        self.stop();
        r
    }

    fn shutdown_inner(&self) -> Result<(), Error> {
        self.prop_set(PROP_CC, CC_ENABLE | CC_SHN_NORMAL)?;
        let deadline = Instant::now() + Duration::from_millis(500 * ((self.cap >> 24) & 0xFF).max(1));
        loop {
            let csts = self.prop_get(PROP_CSTS, false)? as u32;
            if csts & CSTS_SHST_MASK == CSTS_SHST_COMPLETE {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout("CSTS.SHST"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        let _ = self.admin.send(AdminMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to the discovery controller at `addr` and returns the discovery log entries.
pub fn discover(addr: SocketAddr, opts: &HostOptions) -> Result<Vec<DiscoveryEntry>, Error> {
    let o = HostOptions { io_queues: 0, ..opts.clone() };
    let c = Controller::connect(addr, DISCOVERY_NQN, &o)?;
    let entries = c.discovery_log()?;
    c.shutdown()?;
    Ok(entries)
}

struct Pending {
    reply: Option<Sender<Result<HostCompletion<Buf>, Error>>>,
    deadline: Instant,
    /// An Asynchronous Event Request: no deadline, re-armed when it completes.
    aer: bool,
}

type InitReply = Result<(u16, Waker), Error>;

/// Posts one Asynchronous Event Request (it stays outstanding until the controller has news).
fn submit_aer(link: &mut SyncLink, pending: &mut HashMap<u16, Pending>) {
    let sqe = Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, ..Sqe::default() };
    if let Ok(cid) = link.conn.submit(sqe, None, None) {
        pending.insert(cid, Pending { reply: None, deadline: Instant::now(), aer: true });
    }
}

/// Records an event, reads its log page (which re-enables that event type on the controller), and
/// re-arms the request. A failed AER (aborted at shutdown, limit exceeded) is not re-armed.
fn on_aer(
    link: &mut SyncLink,
    c: &HostCompletion<Buf>,
    events: &Mutex<Vec<AsyncEvent>>,
    pending: &mut HashMap<u16, Pending>,
    opts: &HostOptions,
) {
    if c.cqe.status() != ff_nvme::nvme::status::SUCCESS {
        tracing::debug!(status = ?c.cqe.status(), "asynchronous event request ended");
        return;
    }
    let ev = AsyncEvent::from_dw0(c.cqe.dw0);
    tracing::info!(?ev, "asynchronous event");
    if let Ok(mut v) = events.lock() {
        v.push(ev);
    }
    if ev.log_page != 0 {
        let len = 4096u32;
        let numd = len / 4 - 1;
        let sqe = Sqe {
            opcode: opcode::ADMIN_GET_LOG_PAGE,
            cdw10: u32::from(ev.log_page) | ((numd & 0xFFFF) << 16),
            cdw11: numd >> 16,
            ..Sqe::default()
        };
        if let Ok(cid) = link.conn.submit(sqe, None, Some(Buf::new(len as usize))) {
            pending.insert(cid, Pending { reply: None, deadline: Instant::now() + opts.command_timeout, aer: false });
        }
    }
    submit_aer(link, pending);
}

/// The admin queue's thread: setup (Connect, then DH-HMAC-CHAP if the controller asks), then commands
/// from the channel, keep-alives and aborts.
#[allow(clippy::too_many_arguments)] // one thread's whole context, passed once
fn admin_thread(
    addr: SocketAddr,
    subnqn: &str,
    opts: &HostOptions,
    auth: Option<&Arc<AuthConfig>>,
    deadline: Instant,
    init: Sender<InitReply>,
    rx: Receiver<AdminMsg>,
    events: Arc<Mutex<Vec<AsyncEvent>>>,
) {
    let setup = || -> Result<(SyncLink, u16, Waker), Error> {
        let mut g = opts.group.clone();
        g.sock = opts.sock.clone();
        let cfg = HostConfig {
            digests: opts.digests,
            depth: ADMIN_DEPTH,
            max_in_capsule: ADMIN_IN_CAPSULE,
            ..HostConfig::default()
        };
        let tls = opts.tls.as_ref().map(|t| crate::link::QueueTls { opts: t, hostnqn: &opts.hostnqn, subnqn });
        let mut link = SyncLink::connect(addr, cfg, &g, deadline, tls)?;
        let kato = u32::try_from(opts.kato.as_millis()).unwrap_or(u32::MAX);
        let (sqe, data) = connect_cmd(0, ADMIN_DEPTH - 1, 0, kato, &opts.hostid, 0xFFFF, subnqn, &opts.hostnqn);
        let c = link.exec(sqe, Some(data), None, deadline)?;
        let cqe = check("Connect", &c)?;
        authenticate_queue(&mut link, auth, 0, cqe.dw0, deadline)?;
        let waker = link.waker()?;
        Ok((link, (cqe.dw0 & 0xFFFF) as u16, waker))
    };
    let mut link = match setup() {
        Ok((link, cntlid, waker)) => {
            if init.send(Ok((cntlid, waker))).is_err() {
                return;
            }
            link
        }
        Err(e) => {
            let _ = init.send(Err(e));
            return;
        }
    };
    let ka_every = opts.kato / 2;
    let mut next_ka = Instant::now() + ka_every;
    let mut pending: HashMap<u16, Pending> = HashMap::new();
    let mut done = Vec::new();
    let mut dead: Option<Error> = None;
    loop {
        let now = Instant::now();
        let wait = if ka_every.is_zero() { Duration::from_millis(100) } else { next_ka.saturating_duration_since(now) };
        if dead.is_none()
            && let Err(e) = link.turn(wait.min(Duration::from_millis(100)), &mut done)
        {
            tracing::warn!("admin queue failed: {e}");
            for (_, p) in pending.drain() {
                if let Some(r) = p.reply {
                    let _ = r.send(Err(e.clone()));
                }
            }
            dead = Some(e);
        }
        if dead.is_some() {
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in done.drain(..) {
            let Some(p) = pending.remove(&c.cid) else { continue };
            if p.aer {
                on_aer(&mut link, &c, &events, &mut pending, opts);
                continue;
            }
            if let Some(r) = p.reply {
                let _ = r.send(Ok(c));
            }
        }
        loop {
            let m = match rx.try_recv() {
                Ok(m) => m,
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            };
            let (sqe, data, read_len, timeout, reply) = match m {
                AdminMsg::Stop => return,
                AdminMsg::ArmAer { count } => {
                    if dead.is_none() {
                        for _ in 0..count {
                            submit_aer(&mut link, &mut pending);
                        }
                    }
                    continue;
                }
                AdminMsg::Cmd { sqe, data, read_len, timeout, reply } => (sqe, data, read_len, timeout, Some(reply)),
                AdminMsg::Abort { sqid, cid } => {
                    let sqe = Sqe {
                        opcode: opcode::ADMIN_ABORT,
                        cdw10: u32::from(sqid) | (u32::from(cid) << 16),
                        ..Sqe::default()
                    };
                    (sqe, None, 0, opts.command_timeout, None)
                }
            };
            if let Some(e) = &dead {
                if let Some(r) = reply {
                    let _ = r.send(Err(e.clone()));
                }
                continue;
            }
            let read_buf = (read_len > 0).then(|| Buf::new(read_len));
            match link.conn.submit(sqe, data, read_buf) {
                Ok(cid) => {
                    pending.insert(cid, Pending { reply, deadline: Instant::now() + timeout, aer: false });
                }
                Err(e) => {
                    if let Some(r) = reply {
                        let _ = r.send(Err(Error::ConnectionLost(format!("admin submit: {}", e.kind))));
                    }
                }
            }
        }
        let now = Instant::now();
        pending.retain(|_, p| {
            if p.aer || now < p.deadline {
                return true;
            }
            if let Some(r) = p.reply.take() {
                let _ = r.send(Err(Error::Timeout("admin command")));
            }
            // Keep the slot so its eventual answer is not mistaken for another command's.
            p.deadline = now + Duration::from_secs(3600);
            true
        });
        if dead.is_none() && !ka_every.is_zero() && now >= next_ka {
            next_ka = now + ka_every;
            if let Ok(cid) = link.conn.submit(Sqe { opcode: opcode::ADMIN_KEEP_ALIVE, ..Sqe::default() }, None, None) {
                pending.insert(cid, Pending { reply: None, deadline: now + opts.command_timeout, aer: false });
            }
        }
    }
}
