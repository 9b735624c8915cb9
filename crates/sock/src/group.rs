//! A socket group: the set of connections one reactor thread owns, with their receive pipes, write
//! queues, zero-copy state and counters, waited on through one backend. Every data-path syscall of the
//! sock layer happens here.

use crate::counters::{GroupCounters, SockCounters};
use crate::error::{SockError, SockResult};
use crate::options::GroupOptions;
use crate::pipe::{Pipe, PipePool};
use crate::poller::{Poller, Ready};
use crate::socket::TcpSock;
use crate::write::{StableBuf, WriteQueue, WriteReq};
use crate::zerocopy::{ErrqueueMsg, Tracker, recv_errqueue};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// Names one socket of a group; stale ids (of closed sockets) are refused, never confused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId {
    idx: u32,
    generation: u32,
}

impl SockId {
    fn token(self) -> u64 {
        (self.generation as u64) << 32 | self.idx as u64
    }
    fn from_token(t: u64) -> SockId {
        SockId { idx: t as u32, generation: (t >> 32) as u32 }
    }
    /// The slot index (stable while the socket lives; reused after close).
    pub fn index(self) -> usize {
        self.idx as usize
    }

    /// The slot's generation (changes each time the slot is reused).
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// Packs the id into a u64 (for tags that must name a socket, e.g. block I/O).
    pub fn to_u64(self) -> u64 {
        self.token()
    }

    /// Unpacks [`SockId::to_u64`]; a forged value names no live socket and is refused by the group.
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

const WAKE_TOKEN: u64 = u64::MAX;

/// Most bytes a pipe fill takes right after a read at or above the cut-over: room for a PDU header (an
/// NVMe/TCP header with digest and padding is at most 132 bytes) and a little more.
pub const AFTER_LARGE_FILL: usize = 512;
/// How many fills after a large read are capped (the header, and the tail of a payload that arrived in
/// pieces).
const CAPPED_FILLS: u8 = 2;

/// Wakes a group's thread from another thread (cross-core management messages only).
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// Makes the group's next (or current) poll return an [`Event::Wake`].
    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an eventfd.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
        if n == 8 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

struct Conn<B> {
    sock: TcpSock,
    generation: u32,
    pipe: Pipe,
    wq: WriteQueue<B>,
    counters: SockCounters,
    /// Zero copy still on for this socket (off after a COPIED notification).
    zc_on: bool,
    /// Zero-copy-eligible sends still to copy after ENOBUFS (cleared early by a notification).
    zc_backoff: u32,
    /// The next backoff length; doubles on each ENOBUFS, resets after a zero-copy send succeeds.
    zc_backoff_next: u32,
    zc_next_id: u32,
    zc: Tracker,
    /// EPOLLOUT/POLLOUT registered.
    want_write: bool,
    /// Listed in `dirty`.
    dirty: bool,
    /// Poll round in which Readable was last reported (to report each socket once per poll).
    reported: u64,
    /// The connection failed; nothing more is sent.
    broken: bool,
    /// Listed in `pipe_ready`.
    in_pipe_ready: bool,
    /// Pipe fills left that are capped at [`AFTER_LARGE_FILL`] (set by a read at or above the cut-over).
    capped_fills: u8,
    /// Bytes a large read asked for but did not get: a read of exactly this size continues it and goes
    /// direct too, even when it is below the cut-over.
    large_rest: usize,
}

/// One reactor's sockets; see the module docs. `B` is the type of the data buffers of write requests.
pub struct SockGroup<B: StableBuf = Vec<u8>> {
    opts: GroupOptions,
    poller: Poller,
    slots: Vec<Option<Conn<B>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    live: usize,
    pool: PipePool,
    dirty: Vec<u32>,
    pipe_ready: Vec<u32>,
    pending: Vec<Event<B>>,
    ready: Vec<Ready>,
    iovs: Vec<libc::iovec>,
    round: u64,
    counters: GroupCounters,
    closed: SockCounters,
    waker: Option<Waker>,
}

impl<B: StableBuf> SockGroup<B> {
    /// A new, empty group.
    pub fn new(opts: GroupOptions) -> io::Result<SockGroup<B>> {
        Ok(SockGroup {
            poller: Poller::new(opts.backend)?,
            pool: PipePool::new(opts.pipe_size, opts.pipe_pool_max),
            opts,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            pipe_ready: Vec::new(),
            pending: Vec::new(),
            ready: Vec::new(),
            iovs: Vec::new(),
            round: 0,
            counters: GroupCounters::default(),
            closed: SockCounters::default(),
            waker: None,
        })
    }

    /// The group's options.
    pub fn options(&self) -> &GroupOptions {
        &self.opts
    }

    /// Sockets in the group.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when the group holds no socket.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// A waker for this group, created (one eventfd) on first call.
    pub fn waker(&mut self) -> io::Result<Waker> {
        if let Some(w) = &self.waker {
            return Ok(w.clone());
        }
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor owned by nobody else.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        self.poller.add(fd.as_raw_fd(), WAKE_TOKEN, false)?;
        let w = Waker { fd };
        self.waker = Some(w.clone());
        Ok(w)
    }

    /// Adds a connected socket. Its TCP options should already be applied (accept/connect do it).
    pub fn add(&mut self, sock: TcpSock) -> io::Result<SockId> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.generations[idx as usize];
        let id = SockId { idx, generation };
        if let Err(e) = self.poller.add(sock.as_raw_fd(), id.token(), false) {
            self.free.push(idx);
            return Err(e);
        }
        self.count_ctl();
        let zc_on = self.opts.sock.zerocopy && self.opts.zerocopy_threshold.is_some() && sock.zerocopy_enabled();
        self.slots[idx as usize] = Some(Conn {
            sock,
            generation,
            pipe: Pipe::default(),
            wq: WriteQueue::new(self.opts.write_queue_depth),
            counters: SockCounters::default(),
            zc_on,
            zc_backoff: 0,
            zc_backoff_next: 1,
            zc_next_id: 0,
            zc: Tracker::default(),
            want_write: false,
            dirty: false,
            reported: 0,
            broken: false,
            in_pipe_ready: false,
            capped_fills: 0,
            large_rest: 0,
        });
        self.live += 1;
        Ok(id)
    }

    fn count_ctl(&mut self) {
        if self.poller.ctl_is_syscall() {
            self.counters.ctl_calls += 1;
        }
    }

    fn conn(&mut self, id: SockId) -> SockResult<&mut Conn<B>> {
        match self.slots.get_mut(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => Ok(c),
            _ => Err(SockError::Closed),
        }
    }

    /// The socket behind `id` (for options and addresses).
    pub fn sock(&self, id: SockId) -> SockResult<&TcpSock> {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => Ok(&c.sock),
            _ => Err(SockError::Closed),
        }
    }

    /// The counters of one socket.
    pub fn sock_counters(&self, id: SockId) -> SockResult<SockCounters> {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => Ok(c.counters),
            _ => Err(SockError::Closed),
        }
    }

    /// Whether zero copy is still on for `id` (it turns itself off when the kernel copies).
    pub fn zerocopy_active(&self, id: SockId) -> bool {
        matches!(self.slots.get(id.idx as usize), Some(Some(c)) if c.generation == id.generation && c.zc_on)
    }

    /// Group counters: waits plus the sum over live and closed sockets.
    pub fn counters(&self) -> GroupCounters {
        let mut g = self.counters;
        g.sock = self.closed;
        for c in self.slots.iter().flatten() {
            g.sock += c.counters;
        }
        g
    }

    /// Idle pipe buffers held by the group's pool.
    pub fn idle_pipes(&self) -> usize {
        self.pool.idle()
    }

    /// Bytes buffered in `id`'s pipe.
    pub fn pipe_len(&self, id: SockId) -> usize {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => c.pipe.len(),
            _ => 0,
        }
    }

    /// Closes `id`: unsent and unconfirmed writes complete with [`SockError::Closed`] at the next poll.
    /// Returns the socket so the caller may inspect or abort it; dropping it closes the descriptor.
    pub fn close(&mut self, id: SockId) -> SockResult<TcpSock> {
        self.conn(id)?;
        let mut c = self.slots[id.idx as usize].take().expect("checked above");
        let _ = self.poller.remove(c.sock.as_raw_fd());
        self.count_ctl();
        c.pipe.clear(&mut self.pool);
        for req in c.wq.drain_all() {
            self.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Closed) });
        }
        self.closed += c.counters;
        self.generations[id.idx as usize] = self.generations[id.idx as usize].wrapping_add(1);
        self.free.push(id.idx);
        self.live -= 1;
        Ok(c.sock)
    }

    /// Receives into `buf`. See [`SockGroup::recvv`].
    pub fn recv(&mut self, id: SockId, buf: &mut [u8]) -> SockResult<usize> {
        self.recvv(id, &mut [IoSliceMut::new(buf)])
    }

    /// Receives into `bufs`, returning bytes received (> 0) or WouldBlock / Eof / Reset.
    ///
    /// Small reads (below the cut-over) are served from the pipe; when it is empty one readv gathers the
    /// caller's buffers and the pipe's free space, so the caller's bytes land directly and the rest of a
    /// burst waits in the pipe. Reads at or above the cut-over take what the pipe holds and readv the
    /// remainder straight into the caller's buffers. The first fill after such a read takes at most
    /// [`AFTER_LARGE_FILL`] bytes, so the header read of a large PDU does not pull its payload into the
    /// pipe: at most that many payload bytes are ever copied.
    pub fn recvv(&mut self, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        let cutover = self.opts.cutover;
        let use_pipe = self.opts.pipe_size > 0;
        let quickack = self.opts.sock.quickack;
        let c = match self.slots.get_mut(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => c,
            _ => return Err(SockError::Closed),
        };
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let mut got = 0;
        if !c.pipe.is_empty() {
            for b in bufs.iter_mut() {
                let n = c.pipe.copy_out(b, &mut self.pool);
                got += n;
                if n < b.len() {
                    break;
                }
            }
            c.counters.bytes_copied += got as u64;
            let continues_large = c.large_rest > 0 && total == c.large_rest;
            if got == total || (total < cutover && !continues_large) {
                c.large_rest = 0;
                return Ok(got);
            }
        }
        let mut rest = bufs;
        IoSliceMut::advance_slices(&mut rest, got);
        let large = total >= cutover || (c.large_rest > 0 && total == c.large_rest);
        c.large_rest = 0;
        let r = if large || !use_pipe {
            if large {
                c.capped_fills = CAPPED_FILLS;
            }
            let r = c.sock.readv(rest);
            if large && let Ok(n) = r {
                c.large_rest = total - got - n;
            }
            match &r {
                Ok(n) => {
                    c.counters.readv_direct += 1;
                    c.counters.bytes_direct += *n as u64;
                }
                Err(SockError::WouldBlock) => c.counters.readv_wouldblock += 1,
                Err(_) => c.counters.readv_direct += 1,
            }
            r
        } else {
            // Gather: the caller's buffers first, the pipe's free space after them.
            let want = total - got;
            // Storage streams are homogeneous: after a large payload, the next header is most likely
            // followed by another one. A full fill now would pull that payload into the pipe and force a
            // copy, so take only a header's worth and let the payload go direct.
            // Two fills in a row without a large read mean small PDUs again: then fill fully.
            let cap = if c.capped_fills > 0 {
                c.capped_fills -= 1;
                AFTER_LARGE_FILL
            } else {
                usize::MAX
            };
            let [p0, p1] = c.pipe.free_slices(&mut self.pool, cap);
            let mut iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(rest.len() + 2);
            iov.extend(rest.iter_mut().map(|b| IoSliceMut::new(&mut b[..])));
            iov.push(p0);
            iov.push(p1);
            let r = c.sock.readv(&mut iov);
            drop(iov);
            match r {
                Ok(n) => {
                    c.counters.readv_pipe += 1;
                    let direct = n.min(want);
                    c.counters.bytes_direct += direct as u64;
                    c.counters.bytes_into_pipe += (n - direct) as u64;
                    c.pipe.commit(n - direct, &mut self.pool);
                    if !c.pipe.is_empty() && !c.in_pipe_ready {
                        c.in_pipe_ready = true;
                        self.pipe_ready.push(id.idx);
                    }
                    Ok(direct)
                }
                Err(e) => {
                    c.pipe.commit(0, &mut self.pool);
                    if matches!(e, SockError::WouldBlock) {
                        c.counters.readv_wouldblock += 1;
                    } else {
                        c.counters.readv_pipe += 1;
                    }
                    Err(e)
                }
            }
        };
        if quickack && r.is_ok() {
            let _ = c.sock.set_int(libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1);
        }
        match r {
            Ok(n) => Ok(got + n),
            Err(_) if got > 0 => Ok(got),
            Err(e) => Err(e),
        }
    }

    /// Queues a write; it goes out at the next [`SockGroup::flush`] or poll. On error the request is
    /// handed back (queue full, socket closed or failed).
    // The refused request goes back whole so the caller keeps its buffers; the error path is cold.
    #[allow(clippy::result_large_err)]
    pub fn write(&mut self, id: SockId, req: WriteReq<B>) -> Result<(), (SockError, WriteReq<B>)> {
        let c = match self.slots.get_mut(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => c,
            _ => return Err((SockError::Closed, req)),
        };
        if c.broken {
            return Err((SockError::Reset, req));
        }
        c.wq.push(req).map_err(|r| (SockError::QueueFull, r))?;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id.idx);
        }
        Ok(())
    }

    /// Requests queued on `id` and not yet completed.
    pub fn queued(&self, id: SockId) -> usize {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => c.wq.len(),
            _ => 0,
        }
    }

    /// Sends what every socket has queued: one sendmsg per socket gathering many requests.
    pub fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &idx in &dirty {
            if let Some(Some(c)) = self.slots.get_mut(idx as usize) {
                c.dirty = false;
                self.flush_one(idx);
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
    }

    fn flush_one(&mut self, idx: u32) {
        let threshold = self.opts.zerocopy_threshold;
        let max_iovs = self.opts.max_iovs.clamp(1, libc::UIO_MAXIOV as usize);
        let Some(Some(c)) = self.slots.get_mut(idx as usize) else { return };
        let id = SockId { idx, generation: c.generation };
        let mut blocked = false;
        while !c.broken && c.wq.has_unsent() {
            let total = c.wq.gather(&mut self.iovs, max_iovs);
            if total == 0 {
                c.wq.advance(0, None);
                continue;
            }
            let mut use_zc = c.zc_on && threshold.is_some_and(|t| total >= t);
            if use_zc && c.zc_backoff > 0 {
                c.zc_backoff -= 1;
                use_zc = false;
            }
            let flags = if use_zc { libc::MSG_ZEROCOPY } else { 0 };
            c.counters.sendmsg += 1;
            if use_zc {
                c.counters.zc_sends += 1;
                c.counters.zc_bytes += total as u64;
            }
            match c.sock.sendmsg_iov(&self.iovs, flags) {
                Ok(n) => {
                    c.counters.bytes_sent += n as u64;
                    let zc_id = if use_zc && n > 0 {
                        c.zc_backoff_next = 1;
                        let i = c.zc_next_id;
                        c.zc_next_id = i.wrapping_add(1);
                        Some(i)
                    } else {
                        None
                    };
                    c.wq.advance(n, zc_id);
                    if n < total {
                        c.counters.sendmsg_partial += 1;
                        blocked = true;
                        break;
                    }
                }
                Err(SockError::WouldBlock) => {
                    c.counters.sendmsg_partial += 1;
                    blocked = true;
                    break;
                }
                Err(SockError::Io(e)) if use_zc && e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // No option memory for another notification: copy the next few sends (exponential
                    // backoff, cut short by a notification) instead of failing every attempt.
                    c.counters.zc_enobufs += 1;
                    c.zc_backoff = c.zc_backoff_next;
                    c.zc_backoff_next = (c.zc_backoff_next * 2).min(1024);
                }
                Err(e) => {
                    c.broken = true;
                    self.pending.push(Event::Failed(id, e));
                    break;
                }
            }
        }
        if c.want_write != blocked && !c.broken {
            c.want_write = blocked;
            if self.poller.modify(c.sock.as_raw_fd(), id.token(), blocked).is_ok() && self.poller.ctl_is_syscall() {
                self.counters.ctl_calls += 1;
            }
        }
        self.collect_completions(idx);
    }

    fn collect_completions(&mut self, idx: u32) {
        let Some(Some(c)) = self.slots.get_mut(idx as usize) else { return };
        let id = SockId { idx, generation: c.generation };
        while let Some(req) = c.wq.pop_completed(&c.zc) {
            c.counters.writes_completed += 1;
            self.pending.push(Event::WriteDone { sock: id, req, result: Ok(()) });
        }
        if c.broken {
            for req in c.wq.drain_all() {
                self.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Reset) });
            }
        }
    }

    /// Reads the error queue: zero-copy notifications release requests; a real error fails the socket.
    fn drain_errqueue(&mut self, idx: u32) -> Option<SockError> {
        let Some(Some(c)) = self.slots.get_mut(idx as usize) else { return None };
        let mut err = None;
        loop {
            c.counters.errqueue_reads += 1;
            match recv_errqueue(c.sock.as_raw_fd()) {
                Ok(Some(ErrqueueMsg::Zerocopy(n))) => {
                    c.counters.zc_notifications += 1;
                    c.zc.release(n.lo, n.hi);
                    c.zc_backoff = 0;
                    if n.copied {
                        c.counters.zc_copied += 1;
                        if c.zc_on {
                            // The kernel copied anyway (loopback, veth): pinning pages only costs here.
                            c.zc_on = false;
                            c.counters.zc_fallbacks += 1;
                        }
                    }
                }
                Ok(Some(ErrqueueMsg::Error(e))) => err = Some(SockError::from_io(io::Error::from_raw_os_error(e))),
                Ok(Some(ErrqueueMsg::Other)) => {}
                Ok(None) => break,
                Err(e) => {
                    err = Some(e.into());
                    break;
                }
            }
        }
        if err.is_none()
            && let Ok(Some(e)) = c.sock.take_error()
        {
            err = Some(SockError::from_io(e));
        }
        err
    }

    /// Flushes queued writes, waits up to `timeout` (`None`: until something happens; zero: busy poll)
    /// and appends what happened to `events`. Returns the number of events appended.
    ///
    /// Sockets whose pipe still holds bytes are reported readable without asking the kernel, and the
    /// wait does not block while such sockets or completions are pending.
    pub fn poll(&mut self, timeout: Option<Duration>, events: &mut Vec<Event<B>>) -> io::Result<usize> {
        let before = events.len();
        self.flush();
        self.round += 1;
        let round = self.round;
        let slots = &mut self.slots;
        self.pipe_ready.retain(|&i| match slots.get_mut(i as usize) {
            Some(Some(c)) if !c.pipe.is_empty() => true,
            Some(Some(c)) => {
                c.in_pipe_ready = false;
                false
            }
            _ => false,
        });
        let timeout =
            if self.pipe_ready.is_empty() && self.pending.is_empty() { timeout } else { Some(Duration::ZERO) };
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let n = self.poller.wait(timeout, self.opts.max_events, &mut ready)?;
        self.counters.waits += 1;
        self.counters.kernel_events += ready.len() as u64;
        if n == 0 {
            self.counters.empty_waits += 1;
        }
        for r in &ready {
            if r.token == WAKE_TOKEN {
                if let Some(w) = &self.waker {
                    let mut v: u64 = 0;
                    // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
                    unsafe { libc::read(w.fd.as_raw_fd(), (&raw mut v).cast(), 8) };
                }
                events.push(Event::Wake);
                continue;
            }
            let id = SockId::from_token(r.token);
            let idx = id.idx;
            let live = matches!(self.slots.get(idx as usize), Some(Some(c)) if c.generation == id.generation);
            if !live {
                continue;
            }
            let mut failed = None;
            if r.error {
                failed = self.drain_errqueue(idx);
                self.collect_completions(idx);
            }
            if r.writable {
                self.flush_one(idx);
            }
            let c = self.slots[idx as usize].as_mut().expect("live");
            if let Some(e) = failed
                && !c.broken
            {
                c.broken = true;
                self.pending.push(Event::Failed(id, e));
                self.collect_completions(idx);
                let c = self.slots[idx as usize].as_mut().expect("live");
                // Still report readable so the reader sees the error too.
                c.reported = round;
                events.push(Event::Readable(id));
                continue;
            }
            if (r.readable || r.hangup) && c.reported != round {
                c.reported = round;
                events.push(Event::Readable(id));
            }
            if c.broken && c.want_write {
                // Keep a failed socket from spinning the wait on EPOLLOUT/EPOLLHUP.
                c.want_write = false;
                let _ = self.poller.modify(c.sock.as_raw_fd(), id.token(), false);
            }
        }
        self.ready = ready;
        // Sockets with bytes left in their pipe: ready without another syscall.
        for &idx in &self.pipe_ready {
            if let Some(Some(c)) = self.slots.get_mut(idx as usize)
                && c.reported != round
                && !c.pipe.is_empty()
            {
                c.reported = round;
                self.counters.pipe_events += 1;
                events.push(Event::Readable(SockId { idx, generation: c.generation }));
            }
        }
        events.append(&mut self.pending);
        Ok(events.len() - before)
    }
}
