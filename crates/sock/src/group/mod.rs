//! A socket group: the set of connections one reactor thread owns, with their write queues, zero-copy
//! state and counters, waited on through one backend engine. Every data-path syscall of the sock layer
//! happens in the group or its engines.
//!
//! This module holds what every backend shares: the public API, the slab of connections and their ids,
//! the write queues, listeners, completed-write events and counters ([`Core`]). The backend's own work
//! lives in an engine, picked at creation and dispatched by [`Engine`]:
//!
//! - [`ready`]: poll(2) or epoll(7) readiness, the receive pipe with its cut-over to direct reads, one
//!   sendmsg per socket per flush, MSG_ZEROCOPY and its error queue, accept(2) in `poll`;
//! - [`uring`]: io_uring, with a multishot receive per socket into provided buffers, one sendmsg (or
//!   sendmsg_zc) SQE per socket per flush, one io_uring_enter per poll that submits and waits together,
//!   a multishot accept into the fixed-file table, and foreign requests (e.g. file I/O) on the same ring.
//!
//! `tls` (group/tls.rs) filters user-space TLS connections ([`SockGroup::add_tls`]) between the API and the engine:
//! it pulls ciphertext through the engine's own receive and queues sealed records as the engine's
//! writes, so every backend carries TLS unchanged.
//!
//! On io_uring received bytes wait in the provided buffers they landed in: headers are decoded there
//! ([`SockGroup::recv_in_place`]), everything else is copied exactly once into the caller's buffer by
//! [`SockGroup::recv`]; there is no direct receive, and the counters say so (`bytes_into_bufs`,
//! `bytes_copied`, `bytes_parsed_in_place`).

mod ready;
mod tls;
mod uring;

use crate::counters::{GroupCounters, SockCounters};
use crate::error::{SockError, SockResult};
use crate::options::{Backend, GroupOptions};
use crate::ring;
use crate::socket::{Listener, TcpSock};
use crate::write::{StableBuf, WriteQueue, WriteReq};
use crate::zerocopy::Tracker;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

pub use ready::AFTER_LARGE_FILL;
pub use uring::ForeignCounts;

/// Names one socket of a group; stale ids (of closed sockets) are refused, never confused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId {
    idx: u32,
    generation: u32,
}

impl SockId {
    fn token(self) -> u64 {
        ((self.generation as u64) << 32) | self.idx as u64
    }

    fn from_token(t: u64) -> SockId {
        SockId { idx: t as u32, generation: (t >> 32) as u32 }
    }

    /// Slot index (dense, reused after close).
    pub fn index(self) -> usize {
        self.idx as usize
    }

    /// Generation of the slot (bumped at each close).
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// The id as one integer (for tags that travel through other layers).
    pub fn to_u64(self) -> u64 {
        self.token()
    }

    /// The id from [`SockId::to_u64`].
    pub fn from_u64(v: u64) -> SockId {
        SockId::from_token(v)
    }
}

/// What a poll reports.
#[derive(Debug)]
pub enum Event<B> {
    /// Bytes, EOF or an error wait to be read with [`SockGroup::recv`]: read until it says WouldBlock.
    Readable(SockId),
    /// A write request finished, in submission order per socket; its buffers come back to the caller.
    WriteDone {
        /// The socket.
        sock: SockId,
        /// The request, with its tag and data buffers.
        req: WriteReq<B>,
        /// `Ok` once the kernel no longer needs the buffers; an error if the connection failed first.
        result: SockResult<()>,
    },
    /// The connection failed while writing; close it.
    Failed(SockId, SockError),
    /// A [`Waker`] was woken (management messages are waiting).
    Wake,
}

/// Names a listener of a group; stale ids (of closed listeners) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId {
    idx: u32,
    generation: u32,
}

/// A connection a group accepted on one of its listeners: the socket is already a member of the group
/// and is reported `Readable` like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The listener (possibly closed since: connections accepted while it closed still join).
    pub listener: ListenerId,
    /// The new member of the group.
    pub sock: SockId,
    /// The peer's address (None if getpeername failed: the peer already reset).
    pub peer: Option<SocketAddr>,
}

/// A listener the group owns.
struct ListenerSlot {
    listener: Listener,
    generation: u32,
}

/// Wakes a group's thread from another thread (cross-core management messages only).
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    fn new() -> io::Result<Waker> {
        let fd =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC)?;
        Ok(Waker { fd: Arc::new(fd) })
    }

    /// Makes the group's next (or current) poll return an [`Event::Wake`].
    pub fn wake(&self) -> io::Result<()> {
        let n = rustix::io::write(&self.fd, &1u64.to_ne_bytes())?;
        if n == 8 { Ok(()) } else { Err(io::Error::from(io::ErrorKind::WriteZero)) }
    }

    /// Clears the eventfd's count (the group's thread, once it saw the wake).
    fn drain(&self) {
        let mut v = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut v);
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What every backend keeps of one connection: the socket, its write queue, its zero-copy tracking and
/// counters. The backend's receive and send state lives in its engine, in a slab of the same indexes.
struct Conn<B> {
    sock: TcpSock,
    generation: u32,
    wq: WriteQueue<B>,
    counters: SockCounters,
    /// Zero copy still on for this socket (off after a notification says the kernel copied).
    zc_on: bool,
    zc_next_id: u32,
    zc: Tracker,
    /// Listed in `dirty`.
    dirty: bool,
    /// Poll round in which Readable was last reported (to report each socket once per poll).
    reported: u64,
    /// The connection failed; nothing more is sent.
    broken: bool,
    /// User-space TLS state (None, one pointer, for the plain connections that pay nothing else).
    tls: Option<Box<tls::TlsConn<B>>>,
}

impl<B> Conn<B> {
    /// TCP_QUICKACK after a receive when the group asks for it (the kernel clears it again by itself).
    fn quickack(&self, wanted: bool) {
        if wanted {
            let _ = self.sock.set_int(libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1);
        }
    }

    /// The zero-copy notification says the kernel copied anyway (loopback, veth): pinning pages only
    /// costs here, so zero copy goes off for this socket.
    fn zc_copied(&mut self) {
        self.counters.zc_copied += 1;
        if self.zc_on {
            self.zc_on = false;
            self.counters.zc_fallbacks += 1;
        }
    }
}

/// The state every backend shares; engines get it by reference.
struct Core<B> {
    opts: GroupOptions,
    slots: Vec<Option<Conn<B>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    live: usize,
    /// Sockets with unsent requests.
    dirty: Vec<u32>,
    /// Events produced outside a wait (completions, failures), handed out by the next poll.
    pending: Vec<Event<B>>,
    round: u64,
    counters: GroupCounters,
    /// Counters of closed sockets.
    closed: SockCounters,
    waker: Option<Waker>,
    listeners: Vec<Option<ListenerSlot>>,
    listener_gens: Vec<u32>,
    accepted: Vec<Accepted>,
    /// Indexes of the user-space TLS connections (the plain path never walks it).
    tls: Vec<u32>,
    /// A TLS connection was ever added: completions of its internal requests may still surface from
    /// an engine (a closed connection's zombie) and are filtered out at poll.
    tls_used: bool,
}

impl<B: StableBuf> Core<B> {
    /// The connection `id` names, while it is still the one in that slot.
    #[inline]
    fn live(&mut self, id: SockId) -> SockResult<&mut Conn<B>> {
        match self.slots.get_mut(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => Ok(c),
            _ => Err(SockError::Closed),
        }
    }

    fn get(&self, id: SockId) -> SockResult<&Conn<B>> {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => Ok(c),
            _ => Err(SockError::Closed),
        }
    }

    /// A free slot and its id (the slot stays empty until [`Core::fill_slot`]).
    fn reserve(&mut self) -> SockId {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        SockId { idx, generation: self.generations[idx as usize] }
    }

    fn fill_slot(&mut self, id: SockId, sock: TcpSock) {
        let zc_on = self.opts.sock.zerocopy && self.opts.zerocopy_threshold.is_some() && sock.zerocopy_enabled();
        self.slots[id.idx as usize] = Some(Conn {
            sock,
            generation: id.generation,
            wq: WriteQueue::new(self.opts.write_queue_depth),
            counters: SockCounters::default(),
            zc_on,
            zc_next_id: 0,
            zc: Tracker::default(),
            dirty: false,
            reported: 0,
            broken: false,
            tls: None,
        });
        self.live += 1;
    }

    /// Lists socket `idx` for the next flush.
    fn mark_dirty(&mut self, idx: u32) {
        if let Some(Some(c)) = self.slots.get_mut(idx as usize)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    /// Hands out the requests of `idx` that are sent and released by the kernel; a broken socket's
    /// remaining requests too, once the kernel holds none of them (`kernel_holds_sends`).
    fn collect_completions(&mut self, idx: u32, kernel_holds_sends: bool) {
        let Some(Some(c)) = self.slots.get_mut(idx as usize) else { return };
        let id = SockId { idx, generation: c.generation };
        while let Some(req) = c.wq.pop_completed(&c.zc) {
            // The group's own TLS ciphertext: its plaintext requests completed when sealed.
            if req.is_internal() {
                continue;
            }
            c.counters.writes_completed += 1;
            self.pending.push(Event::WriteDone { sock: id, req, result: Ok(()) });
        }
        if c.broken && !kernel_holds_sends {
            for req in c.wq.drain_all() {
                if !req.is_internal() {
                    self.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Reset) });
                }
            }
        }
    }

    /// Marks `id` failed and reports it.
    fn fail(&mut self, id: SockId, e: SockError) {
        if let Some(Some(c)) = self.slots.get_mut(id.idx as usize)
            && !c.broken
        {
            c.broken = true;
            self.pending.push(Event::Failed(id, e));
        }
    }

    /// The id a listener token names, live or stale (for the report of a connection it accepted).
    fn listener_id(&self, idx: u32, gen24: u32) -> (ListenerId, Option<usize>) {
        match self.listeners.get(idx as usize) {
            Some(Some(l)) if l.generation & 0xFF_FFFF == gen24 => {
                (ListenerId { idx, generation: l.generation }, Some(idx as usize))
            }
            _ => (ListenerId { idx, generation: gen24 }, None),
        }
    }

    /// Reports a socket readable once per poll round.
    fn report_readable(&mut self, idx: u32, events: &mut Vec<Event<B>>) -> bool {
        let round = self.round;
        match self.slots.get_mut(idx as usize) {
            Some(Some(c)) if c.reported != round => {
                c.reported = round;
                events.push(Event::Readable(SockId { idx, generation: c.generation }));
                true
            }
            _ => false,
        }
    }

    /// The waker fired: clear it and report.
    fn woken(&mut self, events: &mut Vec<Event<B>>) {
        if let Some(w) = &self.waker {
            w.drain();
        }
        events.push(Event::Wake);
    }
}

/// The backend engine of a group.
enum Engine<B> {
    /// poll(2) or epoll(7) readiness.
    Ready(ready::Readiness),
    /// io_uring (boxed: its state is large and a group has one engine).
    Uring(Box<uring::Uring<B>>),
}

/// One reactor's sockets; see the module docs. `B` is the type of the data buffers of write requests.
pub struct SockGroup<B: StableBuf = Vec<u8>> {
    core: Core<B>,
    engine: Engine<B>,
    fallback: Option<String>,
}

impl<B: StableBuf> SockGroup<B> {
    /// A new, empty group. With [`Backend::Uring`] where io_uring is unavailable (sysctl
    /// `kernel.io_uring_disabled`, seccomp, an old kernel), the group warns and runs on epoll instead:
    /// [`SockGroup::backend`] and [`SockGroup::backend_fallback`] tell.
    pub fn new(mut opts: GroupOptions) -> io::Result<SockGroup<B>> {
        let mut fallback = None;
        let mut engine = None;
        if opts.backend == Backend::Uring {
            match uring::Uring::new(&opts) {
                Ok(u) => engine = Some(Engine::Uring(Box::new(u))),
                Err(e) => {
                    let why = ring::unavailable_reason(&e);
                    tracing::warn!("sock backend uring unavailable: {why}; using epoll");
                    fallback = Some(why);
                    opts.backend = Backend::Epoll;
                }
            }
        }
        let engine = match engine {
            Some(e) => e,
            None => Engine::Ready(ready::Readiness::new(&opts)?),
        };
        let core = Core {
            opts,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            pending: Vec::new(),
            round: 0,
            counters: GroupCounters::default(),
            closed: SockCounters::default(),
            waker: None,
            listeners: Vec::new(),
            listener_gens: Vec::new(),
            accepted: Vec::new(),
            tls: Vec::new(),
            tls_used: false,
        };
        Ok(SockGroup { core, engine, fallback })
    }

    /// The backend actually in use (epoll when io_uring was asked for but is unavailable).
    pub fn backend(&self) -> Backend {
        self.core.opts.backend
    }

    /// Why io_uring was asked for and not used, if it was.
    pub fn backend_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// How the io_uring ring was set up (`None` on poll/epoll).
    pub fn uring_setup(&self) -> Option<ring::Setup> {
        match &self.engine {
            Engine::Uring(u) => Some(u.setup()),
            Engine::Ready(_) => None,
        }
    }

    fn uring_only(&mut self) -> io::Result<(&mut uring::Uring<B>, &mut Core<B>)> {
        match &mut self.engine {
            Engine::Uring(u) => Ok((u, &mut self.core)),
            Engine::Ready(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "the group does not run on io_uring")),
        }
    }

    /// Queues a foreign request (one the group's owner prepared, e.g. a file read, write or fsync) on
    /// the group's ring, so it is submitted by the same io_uring_enter as the group's own sends (the
    /// next poll or flush). Its completion comes back, as `(token, result)`, through
    /// [`SockGroup::take_foreign_completions`]. The entry's user data is overwritten.
    ///
    /// Fails with `Unsupported` when the group does not run on io_uring (epoll, poll, or a uring
    /// group that fell back), and with `InvalidInput` when `token` exceeds 56 bits.
    ///
    /// # Safety
    /// Every buffer the entry points at, and the descriptor it names, must stay valid (buffers
    /// untouched by the caller for a read) until the owner has taken the request's completion. If
    /// the group is dropped first, its Drop waits (bounded) for every request of the ring; a caller
    /// that drops its memory earlier than that must leak it instead.
    pub unsafe fn push_foreign(&mut self, entry: io_uring::squeue::Entry, token: u64) -> io::Result<()> {
        let (u, core) = self.uring_only()?;
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { u.push_foreign(entry, token, &mut core.counters) }
    }

    /// Registers `iovs` as the ring's fixed buffers, for foreign READ_FIXED / WRITE_FIXED requests
    /// (buffer index = position in `iovs`); `keep_alive` owns the memory and is dropped only after the
    /// ring. One registration per group (the kernel refuses a second: EBUSY). `Unsupported` off io_uring.
    ///
    /// # Safety
    /// The memory `iovs` describe must stay mapped while `keep_alive` lives.
    pub unsafe fn register_buffers(
        &mut self,
        iovs: &[libc::iovec],
        keep_alive: Box<dyn std::any::Any + Send>,
    ) -> io::Result<()> {
        let (u, core) = self.uring_only()?;
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { u.register_buffers(iovs, keep_alive, &mut core.counters) }
    }

    /// Moves the completions of foreign requests reaped so far into `out` as `(token, result)`
    /// (result: bytes, or a negated errno). Nothing on poll/epoll.
    pub fn take_foreign_completions(&mut self, out: &mut Vec<(u64, i32)>) -> usize {
        match &mut self.engine {
            Engine::Uring(u) => u.take_foreign_completions(out),
            Engine::Ready(_) => 0,
        }
    }

    /// Foreign requests on the ring whose completion has not been reaped yet.
    pub fn foreign_in_flight(&self) -> usize {
        match &self.engine {
            Engine::Uring(u) => u.foreign_in_flight(),
            Engine::Ready(_) => 0,
        }
    }

    /// How many foreign requests the group carried (zero on poll/epoll).
    pub fn foreign_counts(&self) -> ForeignCounts {
        match &self.engine {
            Engine::Uring(u) => u.foreign_counts(),
            Engine::Ready(_) => ForeignCounts::default(),
        }
    }

    /// Makes the group own `listener`: its connections are accepted by the group (with the group's
    /// socket options applied), join it, and are listed by [`SockGroup::take_accepted`]. On io_uring a
    /// multishot accept puts them straight into the fixed-file table; on poll/epoll `poll` accepts them
    /// when the listener is readable.
    pub fn add_listener(&mut self, listener: Listener) -> io::Result<ListenerId> {
        let core = &mut self.core;
        let idx = match core.listeners.iter().position(Option::is_none) {
            Some(i) => i as u32,
            None => {
                core.listeners.push(None);
                core.listener_gens.push(0);
                (core.listeners.len() - 1) as u32
            }
        };
        let generation = core.listener_gens[idx as usize];
        let id = ListenerId { idx, generation };
        match &mut self.engine {
            Engine::Ready(r) => r.add_listener(&listener, idx, &mut core.counters)?,
            Engine::Uring(u) => u.add_listener(&listener, id, &mut core.counters)?,
        }
        core.listeners[idx as usize] = Some(ListenerSlot { listener, generation });
        Ok(id)
    }

    /// The listener behind `id` (e.g. for its local address).
    pub fn listener(&self, id: ListenerId) -> Option<&Listener> {
        match self.core.listeners.get(id.idx as usize) {
            Some(Some(l)) if l.generation == id.generation => Some(&l.listener),
            _ => None,
        }
    }

    /// Stops accepting on `id` and hands the listener back. On io_uring the accept request is cancelled
    /// (submitted now); connections it accepted before the cancellation took effect still join the group
    /// and are listed by `take_accepted` with this (now stale) id.
    pub fn close_listener(&mut self, id: ListenerId) -> io::Result<Listener> {
        let core = &mut self.core;
        let Some(slot) = core.listeners.get_mut(id.idx as usize) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such listener"));
        };
        let Some(l) = slot.take_if(|l| l.generation == id.generation) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such listener"));
        };
        core.listener_gens[id.idx as usize] = id.generation.wrapping_add(1);
        match &mut self.engine {
            Engine::Ready(r) => r.close_listener(&l.listener, &mut core.counters),
            Engine::Uring(u) => u.close_listener(id, &mut core.counters)?,
        }
        Ok(l.listener)
    }

    /// Moves the connections accepted since the last call into `out`; returns how many.
    pub fn take_accepted(&mut self, out: &mut Vec<Accepted>) -> usize {
        let n = self.core.accepted.len();
        out.append(&mut self.core.accepted);
        n
    }

    /// The group's options.
    pub fn options(&self) -> &GroupOptions {
        &self.core.opts
    }

    /// Sockets in the group.
    pub fn len(&self) -> usize {
        self.core.live
    }

    /// True when the group holds no socket.
    pub fn is_empty(&self) -> bool {
        self.core.live == 0
    }

    /// A waker for this group, created (one eventfd) on first call.
    pub fn waker(&mut self) -> io::Result<Waker> {
        if let Some(w) = &self.core.waker {
            return Ok(w.clone());
        }
        let w = Waker::new()?;
        match &mut self.engine {
            Engine::Ready(r) => r.watch_waker(w.fd())?,
            Engine::Uring(u) => u.watch_waker(&w, &mut self.core.counters),
        }
        self.core.waker = Some(w.clone());
        Ok(w)
    }

    /// Adds a connected socket. Its TCP options should already be applied (accept/connect do it).
    pub fn add(&mut self, sock: TcpSock) -> io::Result<SockId> {
        let id = self.core.reserve();
        let r = match &mut self.engine {
            Engine::Ready(r) => r.add(id, &sock, &mut self.core.counters),
            Engine::Uring(u) => u.add(id, &sock, None, &mut self.core.counters),
        };
        if let Err(e) = r {
            self.core.free.push(id.idx);
            return Err(e);
        }
        self.core.fill_slot(id, sock);
        Ok(id)
    }

    /// The socket behind `id` (for options and addresses).
    pub fn sock(&self, id: SockId) -> SockResult<&TcpSock> {
        self.core.get(id).map(|c| &c.sock)
    }

    /// The counters of one socket.
    pub fn sock_counters(&self, id: SockId) -> SockResult<SockCounters> {
        self.core.get(id).map(|c| c.counters)
    }

    /// Whether zero copy is still on for `id` (it turns itself off when the kernel copies).
    pub fn zerocopy_active(&self, id: SockId) -> bool {
        self.core.get(id).is_ok_and(|c| c.zc_on)
    }

    /// Group counters: waits plus the sum over live and closed sockets.
    pub fn counters(&self) -> GroupCounters {
        let mut g = self.core.counters;
        g.sock = self.core.closed;
        for c in self.core.slots.iter().flatten() {
            g.sock += c.counters;
        }
        g
    }

    /// Idle pipe buffers held by the group's pool (none on io_uring, which has no pipes).
    pub fn idle_pipes(&self) -> usize {
        match &self.engine {
            Engine::Ready(r) => r.idle_pipes(),
            Engine::Uring(_) => 0,
        }
    }

    /// Bytes buffered in `id`'s pipe (with io_uring: in its received provided buffers).
    pub fn pipe_len(&self, id: SockId) -> usize {
        if self.core.get(id).is_err() {
            return 0;
        }
        match &self.engine {
            Engine::Ready(r) => r.buffered(id.idx),
            Engine::Uring(u) => u.buffered(id.idx),
        }
    }

    /// Closes `id`: unsent and unconfirmed writes complete with [`SockError::Closed`] at the next poll.
    /// Returns the socket so the caller may inspect or abort it; dropping it closes the descriptor.
    pub fn close(&mut self, id: SockId) -> SockResult<TcpSock> {
        let core = &mut self.core;
        core.live(id)?;
        let Some(mut c) = core.slots[id.idx as usize].take() else { return Err(SockError::Closed) };
        match &mut self.engine {
            Engine::Ready(r) => r.close(id, &c.sock, &mut core.counters),
            // Requests the kernel still holds move to a zombie, with their queue, until it lets go.
            Engine::Uring(u) => u.close(id, &mut c.wq, &mut core.counters),
        }
        for req in c.wq.drain_all() {
            if !req.is_internal() {
                core.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Closed) });
            }
        }
        if let Some(t) = c.tls.take() {
            core.tls.retain(|&i| i != id.idx);
            for req in t.into_pending() {
                core.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Closed) });
            }
        }
        core.closed += c.counters;
        core.generations[id.idx as usize] = core.generations[id.idx as usize].wrapping_add(1);
        core.free.push(id.idx);
        core.live -= 1;
        Ok(c.sock)
    }

    /// Receives into `buf`. See [`SockGroup::recvv`].
    pub fn recv(&mut self, id: SockId, buf: &mut [u8]) -> SockResult<usize> {
        self.recvv(id, &mut [IoSliceMut::new(buf)])
    }

    /// Receives into `bufs`, returning bytes received (> 0) or WouldBlock / Eof / Reset.
    ///
    /// On poll/epoll, small reads (below the cut-over) are served from the pipe; when it is empty one
    /// readv gathers the caller's buffers and the pipe's free space, so the caller's bytes land directly
    /// and the rest of a burst waits in the pipe. Reads at or above the cut-over take what the pipe holds
    /// and readv the remainder straight into the caller's buffers. The first fill after such a read takes
    /// at most [`AFTER_LARGE_FILL`] bytes, so the header read of a large PDU does not pull its payload
    /// into the pipe: at most that many payload bytes are ever copied. On io_uring the bytes are copied
    /// out of the provided buffers they arrived in.
    ///
    /// On a user-space TLS connection ([`SockGroup::add_tls`]) the bytes are the opened plaintext.
    pub fn recvv(&mut self, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        if !self.core.tls.is_empty() && self.is_tls(id) {
            return self.tls_recvv(id, bufs);
        }
        self.engine_recvv(id, bufs)
    }

    /// The engine's own receive (for TLS connections: of ciphertext).
    fn engine_recvv(&mut self, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        match &mut self.engine {
            Engine::Ready(r) => r.recvv(&mut self.core, id, bufs),
            Engine::Uring(u) => u.recvv(&mut self.core, id, bufs),
        }
    }

    /// True when [`SockGroup::recv_in_place`] works here: a receive pipe on the poll or epoll backend,
    /// or the provided buffers on io_uring.
    pub fn parses_in_place(&self) -> bool {
        match &self.engine {
            Engine::Ready(_) => self.core.opts.pipe_size > 0,
            Engine::Uring(_) => true,
        }
    }

    /// Hands the bytes waiting in the receive pipe to `parse` without copying them out (one pipe fill
    /// first when it is empty); `parse` returns how many it used, and only those leave the pipe. A whole
    /// batch of headers is decoded where the fill put it, instead of one small copy per header.
    ///
    /// On io_uring, `parse` gets the oldest provided buffer's unread bytes instead (a header cut by a
    /// buffer's end comes back whole only if the parser keeps its first part, as the decoder does).
    ///
    /// On a user-space TLS connection `parse` gets the opened plaintext, on every backend (also
    /// where the group has no pipe).
    ///
    /// Returns the bytes used, or WouldBlock / Eof / Reset from the fill. Refused (`Io(Unsupported)`)
    /// where [`SockGroup::parses_in_place`] is false (and the connection is not TLS).
    pub fn recv_in_place(&mut self, id: SockId, parse: impl FnOnce(&[u8]) -> usize) -> SockResult<usize> {
        if !self.core.tls.is_empty() && self.is_tls(id) {
            return self.tls_recv_in_place(id, parse);
        }
        if !self.parses_in_place() {
            return Err(SockError::Io(io::Error::from(io::ErrorKind::Unsupported)));
        }
        match &mut self.engine {
            Engine::Ready(r) => r.recv_in_place(&mut self.core, id, parse),
            Engine::Uring(u) => u.recv_in_place(&mut self.core, id, parse),
        }
    }

    /// Queues a write; it goes out at the next [`SockGroup::flush`] or poll. On error the request is
    /// handed back (queue full, socket closed or failed).
    // The refused request goes back whole so the caller keeps its buffers; the error path is cold.
    #[allow(clippy::result_large_err)]
    pub fn write(&mut self, id: SockId, req: WriteReq<B>) -> Result<(), (SockError, WriteReq<B>)> {
        let core = &mut self.core;
        let depth = core.opts.write_queue_depth;
        let c = match core.live(id) {
            Ok(c) => c,
            Err(e) => return Err((e, req)),
        };
        if c.broken {
            return Err((SockError::Reset, req));
        }
        if let Some(t) = &mut c.tls {
            // Kept as plaintext until the next flush seals every pending request together.
            return t.push(req, depth).map_err(|r| (SockError::QueueFull, r));
        }
        c.wq.push(req).map_err(|r| (SockError::QueueFull, r))?;
        if !c.dirty {
            c.dirty = true;
            core.dirty.push(id.idx);
        }
        Ok(())
    }

    /// Requests queued on `id` and not yet completed (on a TLS connection: not yet sealed).
    pub fn queued(&self, id: SockId) -> usize {
        self.core.get(id).map_or(0, |c| match &c.tls {
            Some(t) => t.pending_len(),
            None => c.wq.len(),
        })
    }

    /// Sends what every socket has queued: one sendmsg per socket gathering many requests (a TLS
    /// connection's pending requests are sealed first, all into one buffer of records). With
    /// io_uring the SQEs are queued and submitted with one io_uring_enter (poll does it as part of its
    /// wait instead).
    pub fn flush(&mut self) {
        if !self.core.tls.is_empty() {
            self.tls_seal_all();
        }
        match &mut self.engine {
            Engine::Ready(r) => r.flush(&mut self.core),
            Engine::Uring(u) => u.flush(&mut self.core),
        }
    }

    /// Flushes queued writes, waits up to `timeout` (`None`: until something happens; zero: busy poll)
    /// and appends what happened to `events`. Returns the number of events appended.
    ///
    /// Sockets whose received bytes still wait (in the pipe, in provided buffers, or as opened TLS
    /// plaintext) are reported readable without asking the kernel, and the wait does not block while such sockets or
    /// completions are pending.
    pub fn poll(&mut self, timeout: Option<Duration>, events: &mut Vec<Event<B>>) -> io::Result<usize> {
        let before = events.len();
        self.core.round += 1;
        let mut timeout = timeout;
        if !self.core.tls.is_empty() {
            self.tls_seal_all();
            if self.tls_input_pending() {
                timeout = Some(Duration::ZERO);
            }
        }
        match &mut self.engine {
            Engine::Ready(r) => r.poll(&mut self.core, timeout, events)?,
            Engine::Uring(u) => u.poll(&mut self.core, timeout, events)?,
        }
        if !self.core.tls.is_empty() {
            self.tls_report_readable(events);
        }
        if self.core.tls_used {
            // A closed TLS connection's zombie (io_uring) hands back its queue, ciphertext included.
            self.core.pending.retain(|e| !matches!(e, Event::WriteDone { req, .. } if req.is_internal()));
        }
        events.append(&mut self.core.pending);
        Ok(events.len() - before)
    }
}

impl<B: StableBuf> Drop for SockGroup<B> {
    fn drop(&mut self) {
        if let Engine::Uring(u) = &mut self.engine
            && !u.teardown(&mut self.core.counters)
        {
            // The kernel may still read queued requests: leak them rather than free them.
            std::mem::forget(std::mem::take(&mut self.core.slots));
        }
    }
}
