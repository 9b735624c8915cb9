//! A reactor: one thread that owns a socket group, the connections placed on it, their buffers and this
//! thread's block-device handles. Everything on the I/O path happens here without locks; other threads
//! reach a reactor only through its [`Inbox`] (management messages plus a waker).
//!
//! On an io_uring group, device handles that can ([`BlockDev::attach_uring`]: the file backend) submit
//! their reads, writes and flushes on the group's ring: each loop moves their prepared SQEs onto the
//! ring before the poll (so one io_uring_enter carries sends and file I/O together) and hands the
//! ring's results back to them after it.
//!
//! DH-HMAC-CHAP's Diffie-Hellman exponentiations do not run here: a session that parks an
//! Authentication Send for one hands its job to the process's `ff-auth-dh` workers
//! ([`dh_pool`]), whose result comes back through this reactor's inbox ([`Mgmt::DhDone`]) and
//! completes the command. A result for a connection that closed meanwhile is dropped.

mod dh_pool;

use crate::iscsi::IscsiSession;
use crate::session::{Env, IoCounts, Session};
use crate::shared::Shared;
use crate::token::{IoTag, RingToken};
use crate::txbuf::{PoolAlloc, TxBuf};
use ff_blockdev::{BlockDev, BufPool, DevStats, IoDone, IoReq, UringSqe};
use ff_nvme_tcp::target::{RecvTarget, TargetOutput};
use ff_sock::SockGroup as Group;
use ff_sock::{
    Event, ForeignCounts, GroupCounters, GroupOptions, Listener, Placement, SockCounters, SockError, SockGroup, SockId,
    TcpSock, Waker, WriteReq,
};
use serde::{Deserialize, Serialize};
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a reactor waits when idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Never block: lowest latency, one core spinning per reactor (SPDK-like).
    Busy,
    /// Block in the wait syscall until something happens: no idle CPU burn.
    Event,
}

impl std::str::FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "busy" => Ok(PollMode::Busy),
            "event" => Ok(PollMode::Event),
            o => Err(format!("unknown poll mode {o:?} (busy or event)")),
        }
    }
}

/// A management message to a reactor.
pub enum Mgmt {
    /// A new connection placed on this reactor.
    Connection {
        /// The socket.
        sock: TcpSock,
        /// Peer address (for logs).
        peer: SocketAddr,
        /// Index of the listener (port id) it arrived on.
        port: usize,
        /// Where the placer put it; handed back when the connection closes.
        placement: Placement,
        /// The secure channel its handshake set up (TLS listeners only).
        tls: Option<crate::tls::TlsConn>,
    },
    /// Accept on `listener` too, as port `port` (per-reactor accept mode; management added it).
    Listen {
        /// This reactor's SO_REUSEPORT listener.
        listener: Listener,
        /// Its port id.
        port: usize,
    },
    /// Stop accepting on port `port`; the connections it brought stay.
    Unlisten {
        /// The port id.
        port: usize,
    },
    /// A DH-HMAC-CHAP computation a connection's parked Authentication Send waits for is done.
    DhDone {
        /// The connection (a closed one's slot has a new generation: the result is dropped).
        conn: SockId,
        /// The result.
        done: ff_nvmf::auth::DhDone,
    },
    /// Finish: fail in-flight I/O, flush, close every connection, exit.
    Stop,
}

/// The sending side of a reactor's management channel.
#[derive(Clone)]
pub struct Inbox {
    tx: Sender<Mgmt>,
    waker: Waker,
}

impl Inbox {
    /// Sends `m` and wakes the reactor; fails when the reactor is gone (the message comes back).
    #[allow(clippy::result_large_err)] // the message comes back whole so nothing is lost; cold path
    pub fn send(&self, m: Mgmt) -> Result<(), Mgmt> {
        self.tx.send(m).map_err(|e| e.0)?;
        let _ = self.waker.wake();
        Ok(())
    }
}

/// A connection's protocol session.
#[allow(clippy::large_enum_variant)] // NVMe's stays inline: no pointer chase on its I/O path
enum Proto {
    /// NVMe/TCP.
    Nvme(Session),
    /// iSCSI.
    Iscsi(Box<IscsiSession>),
}

impl Proto {
    fn io(&self) -> &IoCounts {
        match self {
            Proto::Nvme(s) => &s.io,
            Proto::Iscsi(s) => &s.io,
        }
    }
}

/// What the receive loop needs of a protocol core: where the next bytes go, and taking them.
trait Wire {
    /// Small reads into any buffer (`Some(n)`), a command's buffer (`Err(dst)`), or closed (`None`).
    fn rx<'a>(&'a mut self, alloc: &mut PoolAlloc<'_>) -> Rx<'a>;
    /// Bytes read for a small need; returns how many were used.
    fn feed(&mut self, bytes: &[u8], alloc: &mut PoolAlloc<'_>) -> usize;
    /// `n` bytes read into the buffer [`Rx::Data`] gave.
    fn data_received(&mut self, n: usize, alloc: &mut PoolAlloc<'_>);
}

/// Where the next received bytes go.
enum Rx<'a> {
    Small(usize),
    Data(&'a mut [u8]),
    Closed,
}

impl Wire for Session {
    fn rx<'a>(&'a mut self, alloc: &mut PoolAlloc<'_>) -> Rx<'a> {
        match self.conn.recv_target(alloc) {
            RecvTarget::Small(n) => Rx::Small(n),
            RecvTarget::Data(d) => Rx::Data(d),
            RecvTarget::Closed => Rx::Closed,
        }
    }
    fn feed(&mut self, bytes: &[u8], alloc: &mut PoolAlloc<'_>) -> usize {
        self.conn.feed(bytes, alloc)
    }
    fn data_received(&mut self, n: usize, alloc: &mut PoolAlloc<'_>) {
        self.conn.data_received(n, alloc)
    }
}

impl Wire for IscsiSession {
    fn rx<'a>(&'a mut self, alloc: &mut PoolAlloc<'_>) -> Rx<'a> {
        match self.conn.recv_target(alloc) {
            ff_iscsi::RecvTarget::Small(n) => Rx::Small(n),
            ff_iscsi::RecvTarget::Data(d) => Rx::Data(d),
            ff_iscsi::RecvTarget::Closed => Rx::Closed,
        }
    }
    fn feed(&mut self, bytes: &[u8], alloc: &mut PoolAlloc<'_>) -> usize {
        self.conn.feed(bytes, alloc)
    }
    fn data_received(&mut self, n: usize, alloc: &mut PoolAlloc<'_>) {
        self.conn.data_received(n, alloc)
    }
}

/// One receive step of `w` on socket `id`: Ok(false) when the core accepts nothing more.
fn recv_step<W: Wire>(
    w: &mut W,
    group: &mut Group<TxBuf>,
    id: SockId,
    pool: &mut BufPool,
    small: &mut [u8],
    in_place: bool,
) -> Result<bool, SockError> {
    let mut alloc = PoolAlloc(pool);
    match w.rx(&mut alloc) {
        // Headers are decoded where the pipe fill put them: a batch of commands in one call.
        Rx::Small(_) if in_place => group.recv_in_place(id, |bytes| w.feed(bytes, &mut alloc)).map(|_| true),
        Rx::Small(n) => {
            let n = n.clamp(1, small.len());
            let k = group.recv(id, &mut small[..n])?;
            w.feed(&small[..k], &mut alloc);
            Ok(true)
        }
        Rx::Data(dst) => {
            let k = group.recv(id, dst)?;
            w.data_received(k, &mut alloc);
            Ok(true)
        }
        Rx::Closed => Ok(false),
    }
}

struct Conn {
    id: SockId,
    peer: SocketAddr,
    proto: Proto,
    placement: Placement,
    /// Close once queued writes are flushed.
    closing: bool,
    /// I/O commands when the current rate window opened.
    mark_ios: u64,
    /// Commands per second over the last window.
    iops: f64,
}

impl Conn {
    fn new(id: SockId, peer: SocketAddr, proto: Proto, placement: Placement) -> Conn {
        Conn { id, peer, proto, placement, closing: false, mark_ios: 0, iops: 0.0 }
    }
}

/// One connection as management sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ConnStats {
    /// The host's address.
    pub peer: SocketAddr,
    /// Controller ID, once connected.
    pub cntlid: Option<u16>,
    /// Queue ID (0: admin), once connected.
    pub qid: Option<u16>,
    /// Subsystem NQN once connected (NVMe/TCP), or iSCSI target name once logged in.
    pub subnqn: String,
    /// `nvme-tcp` or `iscsi`.
    pub protocol: &'static str,
    /// I/O commands so far.
    pub io: IoCounts,
    /// I/O commands per second over the last rate window (about a second).
    pub iops: f64,
    /// The socket's counters (syscalls, bytes parsed in place or copied, zero-copy sends).
    pub sock: SockCounters,
    /// Zero copy still on for this socket (it turns itself off when the kernel copies).
    pub zerocopy_active: bool,
}

/// A reactor's counters, published every tick and at shutdown (management path, behind a mutex).
#[derive(Clone, Debug, Default)]
pub struct ReactorStats {
    /// The sock backend in use.
    pub backend: Option<ff_sock::Backend>,
    /// The socket group's counters (`uring_enters`, `uring_sqes`, ... on io_uring).
    pub sock: GroupCounters,
    /// Device requests the group's ring carried for the device handles.
    pub foreign: ForeignCounts,
    /// Each device handle's counters, by namespace index (`None`: not opened on this reactor).
    pub devs: Vec<Option<DevStats>>,
    /// I/O commands of every connection this reactor served, closed ones included.
    pub io: IoCounts,
    /// I/O commands per second over the last rate window (about a second).
    pub iops: f64,
    /// The live connections.
    pub connections: Vec<ConnStats>,
}

/// How long a rate window lasts.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Most receive steps for one readable connection before the reactor moves on (fairness).
const RECV_BUDGET: usize = 512;
/// Size of each io_uring reactor's registered buffer arena (address space; pages are backed on use).
const ARENA_BYTES: usize = 64 << 20;
/// How often keep-alive timers are checked.
const TICK: Duration = Duration::from_millis(100);
/// Busy-mode loop turns between clock reads.
const CLOCK_EVERY: u32 = 256;

/// One reactor; see the module docs.
///
/// Drop order matters: device requests may sit on the group's io_uring, pointing at buffers and
/// descriptors of the device handles (`devs`) and at the pool's registered arena (`pool`). The
/// group's Drop waits for its ring's requests, so it must run first: `impl Drop for Reactor` drops
/// it explicitly, before any other field.
pub struct Reactor {
    index: usize,
    /// Dropped first, by hand, in `impl Drop for Reactor`; never used after that.
    group: ManuallyDrop<SockGroup<TxBuf>>,
    pool: BufPool,
    conns: Vec<Option<Conn>>,
    rx: Receiver<Mgmt>,
    released: Sender<Placement>,
    shared: Arc<Shared>,
    devs: Vec<Option<Box<dyn BlockDev>>>,
    mode: PollMode,
    small: [u8; 256],
    /// Some connection is closing: reap it once its queued writes are out.
    closing_any: bool,
    /// This reactor's own listeners (per-reactor accept mode) and the port index each serves.
    ports: Vec<(ff_sock::ListenerId, usize)>,
    /// Connections the group accepted, awaiting a session.
    accepted: Vec<ff_sock::Accepted>,
    /// Most connections this reactor takes in per-reactor accept mode.
    max_connections: usize,
    /// Device handles submit on the group's ring (the group runs on io_uring).
    on_ring: bool,
    /// How many retired namespace indexes this reactor has taken from `shared`.
    retired_seen: usize,
    /// Retired namespaces whose handle still has requests in flight.
    retiring: Vec<usize>,
    /// I/O counts of closed connections.
    closed_io: IoCounts,
    /// When the current rate window opened, and the reactor's I/O commands then.
    rate_mark: (Instant, u64),
    /// Commands per second over the last window.
    iops: f64,
    ring_sqes: Vec<(UringSqe, u64)>,
    ring_done: Vec<(u64, i32)>,
    stats: Arc<Mutex<ReactorStats>>,
    /// Where DH jobs go and how their results come back here.
    dh: DhRoute,
}

/// How a reactor's sessions get their DH computations run: the workers (started by the first
/// job, so a target without DH-HMAC-CHAP never has them) and this reactor's inbox.
struct DhRoute {
    inbox: Inbox,
}

impl DhRoute {
    /// Hands the DH job `session` (connection `id`) parked a command for to a worker; when none
    /// can take it the session fails that authentication at once. Never blocks.
    fn dispatch(&self, id: SockId, session: &mut Session) {
        let Some(job) = session.take_dh_job() else { return };
        let Some(pool) = dh_pool::DhPool::global() else {
            session.dh_unavailable();
            return;
        };
        let inbox = self.inbox.clone();
        let sent = pool.submit(job, move |done| {
            // The reactor is gone (target stopped): nobody waits for the result.
            let _ = inbox.send(Mgmt::DhDone { conn: id, done });
        });
        if sent.is_err() {
            session.dh_unavailable();
        }
    }
}

impl Reactor {
    /// A reactor with its inbox.
    pub fn new(
        index: usize,
        opts: GroupOptions,
        mode: PollMode,
        shared: Arc<Shared>,
        released: Sender<Placement>,
        listeners: Vec<(ff_sock::Listener, usize)>,
        max_connections: usize,
    ) -> std::io::Result<(Reactor, Inbox)> {
        let mut group = SockGroup::new(opts)?;
        // Per-reactor accept mode: this group accepts on its own listeners (multishot on io_uring).
        let mut ports = Vec::new();
        for (l, port) in listeners {
            ports.push((group.add_listener(l)?, port));
        }
        if let Some(why) = group.backend_fallback() {
            tracing::warn!(reactor = index, "sock backend {} in use: {why}", group.backend());
        }
        let waker = group.waker()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let on_ring = group.backend() == ff_sock::Backend::Uring;
        let mut devs: Vec<Option<Box<dyn BlockDev>>> = Vec::new();
        let mut any_attached = false;
        if on_ring {
            // Open every namespace's handle now, attached to the ring before its first request.
            devs.resize_with(shared.index_bound(), || None);
            for ns in shared.all_namespaces() {
                match ns.factory.open_handle() {
                    Ok(mut h) => {
                        let attached = h.attach_uring();
                        any_attached |= attached;
                        tracing::debug!(reactor = index, ns = ns.index, attached, "device handle");
                        if let Some(slot) = devs.get_mut(ns.index) {
                            *slot = Some(h);
                        }
                    }
                    // The session retries lazily and fails the command if it still cannot.
                    Err(e) => tracing::warn!(reactor = index, "cannot open device handle: {e}"),
                }
            }
        }
        // File namespaces on the ring read and write into registered buffers (READ_FIXED/WRITE_FIXED): the
        // reactor's pool carves its I/O buffers from one arena registered with the ring, so the kernel
        // skips pinning pages per request. The mapping is lazily backed; buffers beyond it come from the
        // heap and use plain READ/WRITE.
        let mut pool = BufPool::new();
        if any_attached {
            match ff_blockdev::Arena::new(ARENA_BYTES).and_then(|a| a.register(&mut group).map(|()| a)) {
                Ok(arena) => {
                    for d in devs.iter_mut().flatten() {
                        let fixed = d.use_fixed_buffers(&arena);
                        tracing::debug!(reactor = index, fixed, "registered buffers for a device handle");
                    }
                    pool = BufPool::with_arena(arena);
                }
                Err(e) => tracing::warn!(reactor = index, "no registered buffers (plain READ/WRITE): {e}"),
            }
        }
        let stats = Arc::new(Mutex::new(ReactorStats { backend: Some(group.backend()), ..Default::default() }));
        let inbox = Inbox { tx, waker };
        let dh = DhRoute { inbox: inbox.clone() };
        let r = Reactor {
            index,
            group: ManuallyDrop::new(group),
            pool,
            conns: Vec::new(),
            rx,
            released,
            shared,
            devs,
            mode,
            small: [0; 256],
            closing_any: false,
            on_ring,
            retired_seen: 0,
            retiring: Vec::new(),
            closed_io: IoCounts::default(),
            rate_mark: (Instant::now(), 0),
            iops: 0.0,
            ring_sqes: Vec::new(),
            ring_done: Vec::new(),
            stats,
            ports,
            accepted: Vec::new(),
            max_connections,
            dh,
        };
        Ok((r, inbox))
    }

    /// The sock backend actually in use (io_uring falls back to epoll where unavailable).
    pub fn backend(&self) -> ff_sock::Backend {
        self.group.backend()
    }

    /// Where this reactor publishes its counters (every tick and at shutdown).
    pub fn stats_sink(&self) -> Arc<Mutex<ReactorStats>> {
        self.stats.clone()
    }

    /// I/O counts of every connection, closed ones included.
    fn io_counts(&self) -> IoCounts {
        let mut t = self.closed_io;
        for c in self.conns.iter().flatten() {
            t.add(c.proto.io());
        }
        t
    }

    /// Closes the rate window once it is [`RATE_WINDOW`] old: the rates of the reactor and of each
    /// connection become what they did in it.
    fn update_rates(&mut self, now: Instant) {
        let secs = now.duration_since(self.rate_mark.0).as_secs_f64();
        if secs < RATE_WINDOW.as_secs_f64() {
            return;
        }
        let total = self.io_counts().total();
        self.iops = total.saturating_sub(self.rate_mark.1) as f64 / secs;
        self.rate_mark = (now, total);
        for c in self.conns.iter_mut().flatten() {
            let n = c.proto.io().total();
            c.iops = n.saturating_sub(c.mark_ios) as f64 / secs;
            c.mark_ios = n;
        }
    }

    fn publish_stats(&self) {
        let connections = self
            .conns
            .iter()
            .flatten()
            .map(|c| {
                let (ids, protocol) = match &c.proto {
                    Proto::Nvme(s) => (s.ids(), "nvme-tcp"),
                    Proto::Iscsi(s) => {
                        let ids =
                            crate::session::QueueIds { subnqn: s.target_name().to_string(), ..Default::default() };
                        (ids, "iscsi")
                    }
                };
                ConnStats {
                    peer: c.peer,
                    cntlid: ids.cntlid,
                    qid: ids.qid,
                    subnqn: ids.subnqn,
                    protocol,
                    io: *c.proto.io(),
                    iops: c.iops,
                    sock: self.group.sock_counters(c.id).unwrap_or_default(),
                    zerocopy_active: self.group.zerocopy_active(c.id),
                }
            })
            .collect();
        let s = ReactorStats {
            backend: Some(self.group.backend()),
            sock: self.group.counters(),
            foreign: self.group.foreign_counts(),
            devs: self.devs.iter().map(|d| d.as_ref().map(|d| d.stats())).collect(),
            io: self.io_counts(),
            iops: self.iops,
            connections,
        };
        if let Ok(mut g) = self.stats.lock() {
            *g = s;
        }
    }

    /// Moves the SQEs the device handles prepared onto the group's ring (submitted by the next poll's
    /// enter), each under a [`RingToken`] naming its namespace.
    fn feed_ring(&mut self) {
        if !self.on_ring {
            return;
        }
        let Reactor { group, devs, ring_sqes, .. } = self;
        for (ns, d) in devs.iter_mut().enumerate() {
            let Some(d) = d else { continue };
            if d.take_sqes(ring_sqes) == 0 {
                continue;
            }
            for (e, tok) in ring_sqes.drain(..) {
                let token = RingToken { ns, dev: tok }.to_u64();
                // SAFETY: the entry points at a buffer and a descriptor the handle owns and keeps, untouched,
                // until `complete(tok)` (which `reap_ring` calls only after the group handed out the CQE);
                // a handle dropped before that leaks them (BlockDev::take_sqes). Reactor's Drop drops the
                // group before the handles, and the group waits for its ring's requests.
                if let Err(err) = unsafe { group.push_foreign(e, token) } {
                    d.complete(tok, -err.raw_os_error().unwrap_or(libc::EIO));
                }
            }
        }
    }

    /// Hands the ring's results for device requests back to their handles.
    fn reap_ring(&mut self) {
        if !self.on_ring {
            return;
        }
        self.group.take_foreign_completions(&mut self.ring_done);
        for (token, res) in self.ring_done.drain(..) {
            let RingToken { ns, dev } = RingToken::from_u64(token);
            if let Some(Some(d)) = self.devs.get_mut(ns) {
                d.complete(dev, res);
            }
        }
    }

    /// Runs until [`Mgmt::Stop`].
    pub fn run(mut self) {
        let mut events = Vec::new();
        let mut done = Vec::new();
        let mut next_tick = Instant::now() + TICK;
        let mut turns: u32 = 0;
        loop {
            self.feed_ring();
            // Requests waiting only on the ring let the poll block: their completion ends the wait.
            let pending_io = self.devs.iter().flatten().any(|d| d.pending() > d.in_ring());
            let timeout = match self.mode {
                PollMode::Busy => Some(Duration::ZERO),
                PollMode::Event if pending_io => Some(Duration::ZERO),
                PollMode::Event => Some(next_tick.saturating_duration_since(Instant::now())),
            };
            if let Err(e) = self.group.poll(timeout, &mut events) {
                tracing::error!(reactor = self.index, "poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.reap_ring();
            if !self.ports.is_empty() {
                self.adopt_accepted();
            }
            let mut stop = false;
            for ev in events.drain(..) {
                match ev {
                    Event::Readable(id) => self.on_readable(id),
                    Event::WriteDone { req, .. } => {
                        for b in req.into_data() {
                            b.recycle(&mut self.pool);
                        }
                    }
                    Event::Failed(id, e) => self.close(id, &format!("send failed: {e}")),
                    Event::Wake => stop |= self.drain_inbox(),
                }
            }
            self.poll_devs(&mut done);
            // A busy loop turns thousands of times per millisecond: read the clock only every
            // CLOCK_EVERY turns there (a clock read per turn shows in profiles; docs/PERFORMANCE.md).
            turns = turns.wrapping_add(1);
            if self.mode == PollMode::Event || turns.is_multiple_of(CLOCK_EVERY) {
                let now = Instant::now();
                if now >= next_tick {
                    next_tick = now + TICK;
                    self.tick(now);
                    self.update_rates(now);
                    self.publish_stats();
                }
            }
            if self.closing_any {
                self.reap_closing();
            }
            if stop {
                self.shutdown();
                return;
            }
        }
    }

    fn drain_inbox(&mut self) -> bool {
        let mut stop = false;
        while let Ok(m) = self.rx.try_recv() {
            match m {
                Mgmt::Connection { sock, peer, port, placement, tls } => {
                    let local = sock.local_addr().ok();
                    let (identity, records) = match tls {
                        Some(t) => (Some(t.identity), t.records),
                        None => (None, None),
                    };
                    let added = match records {
                        Some(r) => self.group.add_tls(sock, r),
                        None => self.group.add(sock),
                    };
                    match added {
                        Ok(id) => {
                            let mut proto = self.new_session(port, peer, local);
                            if let (Proto::Nvme(s), Some(identity)) = (&mut proto, identity) {
                                s.set_tls_identity(identity);
                            }
                            let idx = id.index();
                            if self.conns.len() <= idx {
                                self.conns.resize_with(idx + 1, || None);
                            }
                            tracing::info!(reactor = self.index, %peer, port, "connection");
                            self.conns[idx] = Some(Conn::new(id, peer, proto, placement));
                        }
                        Err(e) => {
                            tracing::warn!(%peer, "could not add connection: {e}");
                            let _ = self.released.send(placement);
                        }
                    }
                }
                Mgmt::Listen { listener, port } => match self.group.add_listener(listener) {
                    Ok(id) => self.ports.push((id, port)),
                    Err(e) => tracing::error!(reactor = self.index, port, "cannot accept on a new listener: {e}"),
                },
                Mgmt::Unlisten { port } => {
                    let (gone, keep) = self.ports.drain(..).partition(|(_, p)| *p == port);
                    self.ports = keep;
                    for (id, _) in gone {
                        let _ = self.group.close_listener(id);
                    }
                }
                Mgmt::DhDone { conn, done } => self.on_dh_done(conn, done),
                Mgmt::Stop => stop = true,
            }
        }
        stop
    }

    /// The session of a connection that arrived on port `port` (an iSCSI portal or an NVMe listener).
    fn new_session(&self, port: usize, peer: SocketAddr, local: Option<SocketAddr>) -> Proto {
        match &self.shared.iscsi {
            Some(i) if port >= crate::iscsi::PORT_BASE => {
                Proto::Iscsi(Box::new(IscsiSession::new(i.clone(), peer, local)))
            }
            _ => Proto::Nvme(Session::new(self.shared.clone(), peer)),
        }
    }

    /// Gives each connection the group accepted on its own listeners a session (per-reactor accept).
    fn adopt_accepted(&mut self) {
        self.group.take_accepted(&mut self.accepted);
        let accepted = std::mem::take(&mut self.accepted);
        for a in &accepted {
            let peer = a.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            if self.conns.iter().flatten().count() >= self.max_connections {
                tracing::warn!(reactor = self.index, %peer, "refusing connection: limit reached");
                let _ = self.group.close(a.sock);
                continue;
            }
            let port = self.ports.iter().find(|(l, _)| *l == a.listener).map(|(_, p)| *p).unwrap_or(0);
            let idx = a.sock.index();
            if self.conns.len() <= idx {
                self.conns.resize_with(idx + 1, || None);
            }
            tracing::info!(reactor = self.index, %peer, port, "connection");
            let proto = self.new_session(port, peer, None);
            let placement = Placement { group: self.index, key: None };
            self.conns[idx] = Some(Conn::new(a.sock, peer, proto, placement));
        }
        self.accepted = accepted;
        self.accepted.clear();
    }

    fn conn_mut(conns: &mut [Option<Conn>], id: SockId) -> Option<&mut Conn> {
        conns.get_mut(id.index()).and_then(|c| c.as_mut()).filter(|c| c.id == id)
    }

    fn on_readable(&mut self, id: SockId) {
        let Reactor { group, pool, conns, small, devs, shared, closing_any, on_ring, dh, .. } = self;
        let Some(conn) = Self::conn_mut(conns, id) else { return };
        let mut failure: Option<String> = None;
        let in_place = group.parses_in_place();
        for _ in 0..RECV_BUDGET {
            if conn.closing {
                break;
            }
            let r = match &mut conn.proto {
                Proto::Nvme(s) => recv_step(s, group, id, pool, small, in_place),
                Proto::Iscsi(s) => recv_step(s.as_mut(), group, id, pool, small, in_place),
            };
            let r = match r {
                Ok(true) => Ok(()),
                Ok(false) => {
                    conn.closing = true;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            let mut env = Env { devs, pool, shared, tag: IoTag::conn(id), on_ring: *on_ring };
            match pump(group, id, conn, &mut env, dh) {
                Ok(closing) => *closing_any |= closing,
                Err(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
            match r {
                Ok(()) => {}
                Err(SockError::WouldBlock) => break,
                Err(SockError::Eof) => {
                    failure = Some("host closed the connection".into());
                    break;
                }
                Err(e) => {
                    failure = Some(format!("receive failed: {e}"));
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            self.close(id, &reason);
        }
    }

    /// A worker's DH result: completes the parked Authentication Send of connection `id`, whose
    /// completion (and whatever else is ready) goes out now. Dropped when the connection is gone.
    fn on_dh_done(&mut self, id: SockId, done: ff_nvmf::auth::DhDone) {
        let Reactor { group, pool, conns, devs, shared, closing_any, on_ring, dh, .. } = self;
        let Some(conn) = Self::conn_mut(conns, id) else {
            tracing::debug!(reactor = self.index, "DH result for a closed connection dropped");
            return;
        };
        let Proto::Nvme(s) = &mut conn.proto else { return };
        if !s.dh_done(done) {
            tracing::debug!(reactor = self.index, peer = %conn.peer, "DH result no command waits for dropped");
            return;
        }
        let mut env = Env { devs, pool, shared, tag: IoTag::conn(id), on_ring: *on_ring };
        match pump(group, id, conn, &mut env, dh) {
            Ok(closing) => *closing_any |= closing,
            Err(reason) => self.close(id, &reason),
        }
    }

    fn poll_devs(&mut self, done: &mut Vec<IoDone>) {
        for d in self.devs.iter_mut().flatten() {
            if d.pending() > 0 {
                d.poll(done);
            }
        }
        for io in done.drain(..) {
            let tag = IoTag::from_u64(io.tag);
            let cid = tag.cid;
            let Reactor { group, pool, conns, devs, shared, closing_any, on_ring, dh, .. } = self;
            let conn = conns.get_mut(tag.slot as usize).and_then(|c| c.as_mut()).filter(|c| tag.names(c.id));
            let Some(conn) = conn else {
                if let Some(b) = io.buf {
                    pool.put(b);
                }
                continue;
            };
            let id = conn.id;
            let mut env = Env { devs, pool, shared, tag: IoTag::conn(id), on_ring: *on_ring };
            match &mut conn.proto {
                Proto::Nvme(s) => {
                    if let Some(c) = s.io_done(cid, io, env.pool) {
                        s.conn.complete(cid, c);
                    }
                }
                Proto::Iscsi(s) => s.io_done(cid, io, &mut env),
            }
            match pump(group, id, conn, &mut env, dh) {
                Ok(closing) => *closing_any |= closing,
                Err(reason) => self.close(id, &reason),
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.close_retired_devs();
        let mut expired = Vec::new();
        let Reactor { group, pool, conns, devs, shared, closing_any, on_ring, dh, .. } = self;
        for conn in conns.iter_mut().flatten() {
            let expired_now = match &mut conn.proto {
                Proto::Nvme(s) => s.tick(now),
                Proto::Iscsi(s) => s.tick(now),
            };
            if expired_now {
                expired.push((conn.id, "keep-alive timeout or controller gone".to_string()));
                continue;
            }
            // Asynchronous completions (AERs) produced by the tick go out now.
            let mut env = Env { devs, pool, shared, tag: IoTag::conn(conn.id), on_ring: *on_ring };
            match pump(group, conn.id, conn, &mut env, dh) {
                Ok(closing) => *closing_any |= closing,
                Err(reason) => expired.push((conn.id, reason)),
            }
        }
        for (id, reason) in expired {
            self.close(id, &reason);
        }
    }

    /// Closes the handles of namespaces management removed, each once no request of it is in flight
    /// (completions of the ones that are still arrive and are answered).
    fn close_retired_devs(&mut self) {
        let (new, cursor) = self.shared.retired_since(self.retired_seen);
        self.retired_seen = cursor;
        self.retiring.extend(new);
        let devs = &mut self.devs;
        self.retiring.retain(|&i| match devs.get_mut(i) {
            Some(slot @ Some(_)) => {
                let busy = slot.as_ref().is_some_and(|d| d.pending() > 0);
                if !busy {
                    *slot = None;
                }
                busy
            }
            _ => false,
        });
    }

    /// Closes terminating connections whose last PDUs (a TermReq, a Disconnect response) are flushed.
    fn reap_closing(&mut self) {
        let closing: Vec<SockId> = self.conns.iter().flatten().filter(|c| c.closing).map(|c| c.id).collect();
        self.closing_any = false;
        for id in closing {
            if self.group.queued(id) == 0 {
                self.close(id, "connection terminated");
            } else {
                self.closing_any = true;
            }
        }
    }

    fn close(&mut self, id: SockId, reason: &str) {
        let Some(slot) = self.conns.get_mut(id.index()) else { return };
        let Some(mut conn) = slot.take_if(|c| c.id == id) else { return };
        tracing::info!(reactor = self.index, peer = %conn.peer, "closing: {reason}");
        self.closed_io.add(conn.proto.io());
        match &mut conn.proto {
            Proto::Nvme(s) => s.on_close(),
            Proto::Iscsi(s) => s.on_close(&mut self.pool),
        }
        let _ = self.group.close(id);
        let _ = self.released.send(conn.placement);
    }

    /// Drives device I/O (the ring too) until no handle holds a request, for at most `limit`.
    fn drain_devs(&mut self, limit: Duration) {
        let mut done = Vec::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + limit;
        loop {
            self.feed_ring();
            if self.on_ring && self.devs.iter().flatten().any(|d| d.in_ring() > 0) {
                let _ = self.group.poll(Some(Duration::from_millis(1)), &mut events);
                for ev in events.drain(..) {
                    if let Event::WriteDone { req, .. } = ev {
                        for b in req.into_data() {
                            b.recycle(&mut self.pool);
                        }
                    }
                }
                self.reap_ring();
            }
            self.poll_devs(&mut done);
            if !self.devs.iter().flatten().any(|d| d.pending() > 0) || Instant::now() >= deadline {
                return;
            }
            if !self.on_ring {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn shutdown(&mut self) {
        // Let the backends finish what they hold, then flush and close everything.
        self.drain_devs(Duration::from_secs(2));
        self.group.flush();
        let ids: Vec<SockId> = self.conns.iter().flatten().map(|c| c.id).collect();
        for id in ids {
            self.close(id, "target shutting down");
        }
        // Make everything written durable before exit (a no-op for RAM and null). The flush's
        // completion finds no connection (IoTag::NONE) and is dropped.
        for d in self.devs.iter_mut().flatten() {
            if d.submit(IoReq::flush(IoTag::NONE.to_u64())).is_err() {
                tracing::warn!(reactor = self.index, "final flush refused: device queue full");
            }
        }
        self.drain_devs(Duration::from_secs(5));
        self.publish_stats();
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // The group first: its Drop waits (bounded) for the device requests on its ring, whose memory
        // the handles in `devs` and the arena in `pool` own; those drop after this, in field order.
        // SAFETY: `group` is dropped exactly once, here, and no code runs on it afterwards: this is the
        // reactor's destructor and the remaining fields' destructors do not reach the group.
        unsafe { ManuallyDrop::drop(&mut self.group) };
    }
}

/// Moves a connection's outputs to the socket and its commands to the session.
/// Returns whether the connection is now closing (so the reactor knows to reap it).
fn pump(
    group: &mut SockGroup<TxBuf>,
    id: SockId,
    conn: &mut Conn,
    env: &mut Env<'_>,
    dh: &DhRoute,
) -> Result<bool, String> {
    let close = match &mut conn.proto {
        Proto::Nvme(s) => pump_nvme(group, id, conn.peer, s, env, dh)?,
        Proto::Iscsi(s) => pump_iscsi(group, id, conn.peer, s, env)?,
    };
    conn.closing |= close;
    Ok(conn.closing)
}

/// Queues one PDU (head, data buffers, trailer) on socket `id`.
fn send_pdu(
    group: &mut SockGroup<TxBuf>,
    id: SockId,
    head: &[u8],
    data: impl IntoIterator<Item = TxBuf>,
    tail: &[u8],
    pool: &mut BufPool,
) -> Result<(), String> {
    let Some(mut req) = WriteReq::new(head, 0) else {
        return Err("PDU header too large".into());
    };
    for d in data {
        req.push_data(d);
    }
    if !tail.is_empty() && !req.set_tail(tail) {
        return Err("PDU trailer too large".into());
    }
    if let Err((e, req)) = group.write(id, req) {
        for b in req.into_data() {
            b.recycle(pool);
        }
        return Err(format!("cannot queue a PDU: {e}"));
    }
    Ok(())
}

fn pump_nvme(
    group: &mut SockGroup<TxBuf>,
    id: SockId,
    peer: SocketAddr,
    session: &mut Session,
    env: &mut Env<'_>,
    dh: &DhRoute,
) -> Result<bool, String> {
    let mut close = false;
    while let Some(out) = session.conn.poll_output() {
        match out {
            TargetOutput::Send(mut tx) => {
                let data = tx.data.take();
                let tail = tx.ddgst;
                send_pdu(group, id, tx.head(), data, tail.as_ref().map_or(&[][..], |g| &g[..]), env.pool)?;
            }
            TargetOutput::Command(cmd) => {
                let cid = cmd.sqe.cid;
                if let Some(c) = session.execute(cmd, env) {
                    session.conn.complete(cid, c);
                }
                // An Authentication Send that needs a DH exponentiation: off to a worker.
                dh.dispatch(id, session);
            }
            TargetOutput::Close(reason) => {
                tracing::warn!(%peer, ?reason, "terminating connection");
                close = true;
            }
        }
    }
    Ok(close || session.wants_close)
}

fn pump_iscsi(
    group: &mut SockGroup<TxBuf>,
    id: SockId,
    peer: SocketAddr,
    session: &mut IscsiSession,
    env: &mut Env<'_>,
) -> Result<bool, String> {
    use ff_iscsi::{TargetOutput as Out, TxData};
    let mut close = false;
    while let Some(out) = session.conn.poll_output() {
        match out {
            Out::Send(mut tx) => {
                // The PDU's own bytes (sense, text) move into the write: no copy.
                let data = match std::mem::replace(&mut tx.data, TxData::None) {
                    TxData::Owned(v) => Some(TxBuf::Vec(v)),
                    _ => None,
                };
                send_pdu(group, id, tx.head(), data, tx.trailer(), env.pool)?;
            }
            Out::SendBuf { buf, pdus } => {
                // One PDU covering the whole buffer sends it as is; several share it.
                let whole = |r: &std::ops::Range<usize>| r.start == 0 && r.end == buf.as_ref().len();
                if let [tx] = pdus.as_slice()
                    && matches!(&tx.data, TxData::Range(r) if whole(r))
                {
                    send_pdu(group, id, tx.head(), Some(buf), tx.trailer(), env.pool)?;
                    continue;
                }
                let shared = std::rc::Rc::new(buf);
                for mut tx in pdus {
                    let data = match std::mem::replace(&mut tx.data, TxData::None) {
                        TxData::Range(r) => Some(TxBuf::Part(shared.clone(), r)),
                        TxData::Owned(v) => Some(TxBuf::Vec(v)),
                        TxData::None => None,
                    };
                    send_pdu(group, id, tx.head(), data, tx.trailer(), env.pool)?;
                }
                if let Ok(b) = std::rc::Rc::try_unwrap(shared) {
                    b.recycle(env.pool);
                }
            }
            Out::SessionRequest(req) => session.session_request(req),
            Out::Command(cmd) => session.execute(cmd, env),
            Out::TaskMgmt(t) => session.task_mgmt(t),
            Out::PingReply(_) | Out::Logout(_) => {}
            Out::Close(reason) => {
                if !matches!(reason, ff_iscsi::CloseReason::Logout) {
                    tracing::warn!(%peer, ?reason, "closing iSCSI connection");
                }
                close = true;
            }
        }
    }
    Ok(close)
}
