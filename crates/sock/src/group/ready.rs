//! The readiness engine (poll(2) or epoll(7)): owns the poller, the receive pipes and their pool, and
//! each connection's receive and send state. Receives go through the pipe below the cut-over and
//! straight into the caller's buffer at or above it; a flush is one sendmsg per socket gathering its
//! queued requests (MSG_ZEROCOPY at or above the threshold, released by the error queue); listeners
//! are one more readiness source, accepted in `poll`.

use super::{Accepted, Conn, Core, Event, ListenerId, SockId};
use crate::counters::GroupCounters;
use crate::error::{SockError, SockResult};
use crate::options::GroupOptions;
use crate::pipe::{Pipe, PipePool};
use crate::poller::Poller;
use crate::socket::{Listener, TcpSock};
use crate::write::StableBuf;
use crate::zerocopy::{ErrqueueMsg, recv_errqueue};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// Most bytes a pipe fill takes right after a read at or above the cut-over: room for a PDU header (an
/// NVMe/TCP header with digest and padding is at most 132 bytes) and a little more.
pub const AFTER_LARGE_FILL: usize = 512;
/// How many fills after a large read are capped (the header, and the tail of a payload that arrived in
/// pieces).
const CAPPED_FILLS: u8 = 2;

const WAKE_TOKEN: u64 = u64::MAX;
/// Poller tokens of listeners: `LISTENER_TOKENS + index` (a socket token this high would need a slot
/// generation above 2^32 - 2, never reached in practice).
const LISTENER_TOKENS: u64 = u64::MAX - (1 << 32);
/// Connections accepted per listener per poll (the rest wait for the next poll).
const ACCEPTS_PER_POLL: usize = 64;

/// A connection's receive and send state on this engine.
struct RConn {
    pipe: Pipe,
    /// EPOLLOUT/POLLOUT registered.
    want_write: bool,
    /// Listed in `pipe_ready`.
    in_pipe_ready: bool,
    /// Pipe fills left that are capped at [`AFTER_LARGE_FILL`] (set by a read at or above the cut-over).
    capped_fills: u8,
    /// Bytes a large read asked for but did not get: a read of exactly this size continues it and goes
    /// direct too, even when it is below the cut-over.
    large_rest: usize,
    /// The last readv returned less than it offered, so the receive queue was empty: the next read is
    /// WouldBlock without a syscall until a wait reports the socket readable again (epoll and poll are
    /// level-triggered, so bytes that arrive later are reported by the next wait).
    drained: bool,
    /// The error a wait took from the socket (reading the error queue clears it in the kernel): reads
    /// return it once the pipe is empty.
    rx_error: Option<SockError>,
    /// Zero-copy-eligible sends still to copy after ENOBUFS (cleared early by a notification).
    zc_backoff: u32,
    /// The next backoff length; doubles on each ENOBUFS, resets after a zero-copy send succeeds.
    zc_backoff_next: u32,
}

impl RConn {
    fn new() -> RConn {
        RConn {
            pipe: Pipe::default(),
            want_write: false,
            in_pipe_ready: false,
            capped_fills: 0,
            large_rest: 0,
            drained: false,
            rx_error: None,
            zc_backoff: 0,
            zc_backoff_next: 1,
        }
    }

    /// Bytes left in the pipe are readable without a wait: list the socket (once) for the next poll.
    fn note_pipe_ready(&mut self, idx: u32, pipe_ready: &mut Vec<u32>) {
        if !self.pipe.is_empty() && !self.in_pipe_ready {
            self.in_pipe_ready = true;
            pipe_ready.push(idx);
        }
    }

    /// The most bytes the next pipe fill may take. Storage streams are homogeneous: after a large
    /// payload the next header is most likely followed by another one, and a full fill would pull that
    /// payload into the pipe and force a copy, so take only a header's worth and let the payload go
    /// direct. Two fills in a row without a large read mean small PDUs again: then fill fully.
    fn fill_cap(&mut self) -> usize {
        if self.capped_fills > 0 {
            self.capped_fills -= 1;
            AFTER_LARGE_FILL
        } else {
            usize::MAX
        }
    }

    /// Whether a read may ask the kernel: not after a wait took an error from the socket (the reader
    /// gets it) and not while the socket is known to be drained (WouldBlock, no syscall).
    fn may_read<B>(&mut self, c: &mut Conn<B>) -> SockResult<()> {
        if let Some(e) = &self.rx_error {
            return Err(e.duplicate());
        }
        if self.drained {
            c.counters.readv_skipped += 1;
            return Err(SockError::WouldBlock);
        }
        Ok(())
    }

    /// One readv gathering `rest` (the caller's buffers, possibly none) and then the pipe's free space:
    /// the caller's bytes land in place and the rest of a burst waits in the pipe. Returns the bytes that
    /// went to `rest`.
    fn fill<B>(&mut self, c: &mut Conn<B>, rest: &mut [IoSliceMut<'_>], pool: &mut PipePool) -> SockResult<usize> {
        let want: usize = rest.iter().map(|b| b.len()).sum();
        let cap = self.fill_cap();
        let [p0, p1] = self.pipe.free_slices(pool, cap);
        let offered = want + p0.len() + p1.len();
        // The common cases are no caller buffer or one: gather on the stack, no allocation per recv.
        let r = match rest {
            [] => c.sock.readv(&mut [p0, p1]),
            [one] => c.sock.readv(&mut [IoSliceMut::new(&mut one[..]), p0, p1]),
            _ => {
                let mut iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(rest.len() + 2);
                iov.extend(rest.iter_mut().map(|b| IoSliceMut::new(&mut b[..])));
                iov.push(p0);
                iov.push(p1);
                c.sock.readv(&mut iov)
            }
        };
        match r {
            Ok(n) => {
                c.counters.readv_pipe += 1;
                self.drained = n < offered;
                let direct = n.min(want);
                c.counters.bytes_direct += direct as u64;
                c.counters.bytes_into_pipe += (n - direct) as u64;
                self.pipe.commit(n - direct, pool);
                Ok(direct)
            }
            Err(e) => {
                self.pipe.commit(0, pool);
                if matches!(e, SockError::WouldBlock) {
                    c.counters.readv_wouldblock += 1;
                } else {
                    c.counters.readv_pipe += 1;
                }
                Err(e)
            }
        }
    }
}

/// The readiness engine; see the module docs.
pub(super) struct Readiness {
    poller: Poller,
    pool: PipePool,
    /// Per-connection state, by slot index (parallel to the group's slab).
    conns: Vec<RConn>,
    /// Sockets whose pipe still holds bytes.
    pipe_ready: Vec<u32>,
    ready: Vec<crate::poller::Ready>,
    /// The gather list of the sendmsg being built, kept empty between calls for its allocation.
    iovs: Vec<IoSlice<'static>>,
}

/// Moves an emptied gather list's allocation to slices of another lifetime: collecting a vector's
/// own (emptied) iterator reuses its buffer, so each flush allocates nothing and no unsafe is needed.
fn reuse<'a, 'b>(mut v: Vec<IoSlice<'a>>) -> Vec<IoSlice<'b>> {
    v.clear();
    v.into_iter().map(|_| IoSlice::new(&[])).collect()
}

/// The engine state of slot `idx` (grown on demand; slots only ever come from the group's slab).
fn rconn(conns: &mut Vec<RConn>, idx: u32) -> &mut RConn {
    let i = idx as usize;
    if conns.len() <= i {
        conns.resize_with(i + 1, RConn::new);
    }
    &mut conns[i]
}

impl Readiness {
    pub(super) fn new(opts: &GroupOptions) -> io::Result<Readiness> {
        Ok(Readiness {
            poller: Poller::new(opts.backend)?,
            pool: PipePool::new(opts.pipe_size, opts.pipe_pool_max),
            conns: Vec::new(),
            pipe_ready: Vec::new(),
            ready: Vec::new(),
            iovs: Vec::new(),
        })
    }

    fn count_ctl(&self, c: &mut GroupCounters) {
        if self.poller.ctl_is_syscall() {
            c.ctl_calls += 1;
        }
    }

    pub(super) fn idle_pipes(&self) -> usize {
        self.pool.idle()
    }

    pub(super) fn buffered(&self, idx: u32) -> usize {
        self.conns.get(idx as usize).map_or(0, |r| r.pipe.len())
    }

    pub(super) fn watch_waker(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.poller.add(fd, WAKE_TOKEN, false)
    }

    pub(super) fn add_listener(&mut self, l: &Listener, idx: u32, c: &mut GroupCounters) -> io::Result<()> {
        self.poller.add(l.as_fd(), LISTENER_TOKENS + idx as u64, false)?;
        self.count_ctl(c);
        Ok(())
    }

    pub(super) fn close_listener(&mut self, l: &Listener, c: &mut GroupCounters) {
        let _ = self.poller.remove(l.as_fd());
        self.count_ctl(c);
    }

    pub(super) fn add(&mut self, id: SockId, sock: &TcpSock, c: &mut GroupCounters) -> io::Result<()> {
        self.poller.add(sock.as_fd(), id.token(), false)?;
        self.count_ctl(c);
        *rconn(&mut self.conns, id.idx) = RConn::new();
        Ok(())
    }

    pub(super) fn close(&mut self, id: SockId, sock: &TcpSock, c: &mut GroupCounters) {
        let _ = self.poller.remove(sock.as_fd());
        self.count_ctl(c);
        let r = rconn(&mut self.conns, id.idx);
        r.pipe.clear(&mut self.pool);
        *r = RConn::new();
    }

    pub(super) fn recvv<B: StableBuf>(
        &mut self,
        core: &mut Core<B>,
        id: SockId,
        bufs: &mut [IoSliceMut<'_>],
    ) -> SockResult<usize> {
        let cutover = core.opts.cutover;
        let use_pipe = core.opts.pipe_size > 0;
        let quickack = core.opts.sock.quickack;
        let c = core.live(id)?;
        let r = rconn(&mut self.conns, id.idx);
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let mut got = 0;
        if !r.pipe.is_empty() {
            for b in bufs.iter_mut() {
                let n = r.pipe.copy_out(b, &mut self.pool);
                got += n;
                if n < b.len() {
                    break;
                }
            }
            c.counters.bytes_copied += got as u64;
            let continues_large = r.large_rest > 0 && total == r.large_rest;
            if got == total || (total < cutover && !continues_large) {
                r.large_rest = 0;
                return Ok(got);
            }
        }
        if let Err(e) = r.may_read(c) {
            return if got > 0 { Ok(got) } else { Err(e) };
        }
        let mut rest = bufs;
        IoSliceMut::advance_slices(&mut rest, got);
        let large = total >= cutover || (r.large_rest > 0 && total == r.large_rest);
        r.large_rest = 0;
        let res = if large || !use_pipe {
            if large {
                r.capped_fills = CAPPED_FILLS;
            }
            let res = c.sock.readv(rest);
            if let Ok(n) = res {
                r.drained = n < total - got;
                if large {
                    r.large_rest = total - got - n;
                }
            }
            match &res {
                Ok(n) => {
                    c.counters.readv_direct += 1;
                    c.counters.bytes_direct += *n as u64;
                }
                Err(SockError::WouldBlock) => c.counters.readv_wouldblock += 1,
                Err(_) => c.counters.readv_direct += 1,
            }
            res
        } else {
            let res = r.fill(c, rest, &mut self.pool);
            if res.is_ok() {
                r.note_pipe_ready(id.idx, &mut self.pipe_ready);
            }
            res
        };
        if res.is_ok() {
            c.quickack(quickack);
        }
        match res {
            Ok(n) => Ok(got + n),
            Err(_) if got > 0 => Ok(got),
            Err(e) => Err(e),
        }
    }

    pub(super) fn recv_in_place<B: StableBuf>(
        &mut self,
        core: &mut Core<B>,
        id: SockId,
        parse: impl FnOnce(&[u8]) -> usize,
    ) -> SockResult<usize> {
        let quickack = core.opts.sock.quickack;
        let c = core.live(id)?;
        let r = rconn(&mut self.conns, id.idx);
        if r.pipe.is_empty() {
            r.may_read(c)?;
            r.fill(c, &mut [], &mut self.pool)?;
            c.quickack(quickack);
        }
        let bytes = r.pipe.readable();
        let n = parse(bytes).min(bytes.len());
        r.pipe.consume(n, &mut self.pool);
        c.counters.bytes_parsed_in_place += n as u64;
        r.note_pipe_ready(id.idx, &mut self.pipe_ready);
        Ok(n)
    }

    pub(super) fn flush<B: StableBuf>(&mut self, core: &mut Core<B>) {
        let dirty = std::mem::take(&mut core.dirty);
        for &idx in &dirty {
            if let Some(Some(c)) = core.slots.get_mut(idx as usize) {
                c.dirty = false;
                self.flush_one(core, idx);
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if core.dirty.is_empty() {
            core.dirty = dirty; // keep the allocation
        }
    }

    /// One socket's queue out with as few sendmsg calls as the kernel takes.
    fn flush_one<B: StableBuf>(&mut self, core: &mut Core<B>, idx: u32) {
        let threshold = core.opts.zerocopy_threshold;
        let max_iovs = core.opts.max_iovs.clamp(1, libc::UIO_MAXIOV as usize);
        let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return };
        let r = rconn(&mut self.conns, idx);
        let id = SockId { idx, generation: c.generation };
        let mut blocked = false;
        let mut failed = None;
        while !c.broken && c.wq.has_unsent() {
            let mut iovs = reuse(std::mem::take(&mut self.iovs));
            let total = c.wq.gather(&mut iovs, max_iovs);
            if total == 0 {
                self.iovs = reuse(iovs);
                c.wq.advance(0, None);
                continue;
            }
            let mut use_zc = c.zc_on && threshold.is_some_and(|t| total >= t);
            if use_zc && r.zc_backoff > 0 {
                r.zc_backoff -= 1;
                use_zc = false;
            }
            let flags = if use_zc { libc::MSG_ZEROCOPY } else { 0 };
            c.counters.sendmsg += 1;
            if use_zc {
                c.counters.zc_sends += 1;
                c.counters.zc_bytes += total as u64;
            }
            let sent = c.sock.sendmsg(&iovs, flags);
            self.iovs = reuse(iovs);
            match sent {
                Ok(n) => {
                    c.counters.bytes_sent += n as u64;
                    let zc_id = if use_zc && n > 0 {
                        r.zc_backoff_next = 1;
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
                    r.zc_backoff = r.zc_backoff_next;
                    r.zc_backoff_next = (r.zc_backoff_next * 2).min(1024);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            c.broken = true;
            core.pending.push(Event::Failed(id, e));
        } else if r.want_write != blocked && !c.broken {
            r.want_write = blocked;
            if self.poller.modify(c.sock.as_fd(), id.token(), blocked).is_ok() && self.poller.ctl_is_syscall() {
                core.counters.ctl_calls += 1;
            }
        }
        core.collect_completions(idx, false);
    }

    /// Reads the error queue: zero-copy notifications release requests; a real error fails the socket.
    fn drain_errqueue<B: StableBuf>(&mut self, core: &mut Core<B>, idx: u32) -> Option<SockError> {
        let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return None };
        let r = rconn(&mut self.conns, idx);
        let mut err = None;
        loop {
            c.counters.errqueue_reads += 1;
            match recv_errqueue(c.sock.as_raw_fd()) {
                Ok(Some(ErrqueueMsg::Zerocopy(n))) => {
                    c.counters.zc_notifications += 1;
                    c.zc.release(n.lo, n.hi);
                    r.zc_backoff = 0;
                    if n.copied {
                        c.zc_copied();
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

    /// Accepts what listener `idx` has pending (bounded per poll; level-triggered, so the rest is
    /// reported again).
    fn accept_ready<B: StableBuf>(&mut self, core: &mut Core<B>, idx: u32) {
        for _ in 0..ACCEPTS_PER_POLL {
            let Some(Some(l)) = core.listeners.get(idx as usize) else { return };
            let lid = ListenerId { idx, generation: l.generation };
            match l.listener.accept(&core.opts.sock) {
                Ok(Some((sock, _))) => {
                    core.counters.accepts_plain += 1;
                    self.join(core, lid, sock);
                }
                Ok(None) => return,
                Err(e) => {
                    core.counters.accept_errors += 1;
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Adds an accepted socket and lists it for `take_accepted`.
    fn join<B: StableBuf>(&mut self, core: &mut Core<B>, listener: ListenerId, sock: TcpSock) {
        let peer = sock.peer_addr().ok();
        let id = core.reserve();
        match self.add(id, &sock, &mut core.counters) {
            Ok(()) => {
                core.fill_slot(id, sock);
                core.accepted.push(Accepted { listener, sock: id, peer });
            }
            Err(e) => {
                core.free.push(id.idx);
                core.counters.accept_errors += 1;
                tracing::warn!("accepted connection could not join the group: {e}");
            }
        }
    }

    pub(super) fn poll<B: StableBuf>(
        &mut self,
        core: &mut Core<B>,
        timeout: Option<Duration>,
        events: &mut Vec<Event<B>>,
    ) -> io::Result<()> {
        self.flush(core);
        let (slots, conns) = (&core.slots, &mut self.conns);
        self.pipe_ready.retain(|&i| match (slots.get(i as usize), conns.get_mut(i as usize)) {
            (Some(Some(_)), Some(r)) if !r.pipe.is_empty() => true,
            (Some(Some(_)), Some(r)) => {
                r.in_pipe_ready = false;
                false
            }
            _ => false,
        });
        let timeout =
            if self.pipe_ready.is_empty() && core.pending.is_empty() { timeout } else { Some(Duration::ZERO) };
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let n = self.poller.wait(timeout, core.opts.max_events, &mut ready)?;
        core.counters.waits += 1;
        core.counters.kernel_events += ready.len() as u64;
        if n == 0 {
            core.counters.empty_waits += 1;
        }
        for rd in &ready {
            if rd.token == WAKE_TOKEN {
                core.woken(events);
                continue;
            }
            if rd.token >= LISTENER_TOKENS {
                self.accept_ready(core, (rd.token - LISTENER_TOKENS) as u32);
                continue;
            }
            let id = SockId::from_token(rd.token);
            let idx = id.idx;
            if core.get(id).is_err() {
                continue;
            }
            let mut failed = None;
            if rd.error {
                failed = self.drain_errqueue(core, idx);
                core.collect_completions(idx, false);
            }
            if rd.writable {
                self.flush_one(core, idx);
            }
            // Any readiness may mean new bytes, an EOF or an error: the next read asks the kernel.
            rconn(&mut self.conns, idx).drained = false;
            let broken = core.get(id).is_ok_and(|c| c.broken);
            if let Some(e) = failed
                && !broken
            {
                rconn(&mut self.conns, idx).rx_error = Some(e.duplicate());
                core.fail(id, e);
                core.collect_completions(idx, false);
                // Still report readable so the reader sees the error too.
                core.report_readable(idx, events);
                continue;
            }
            if rd.readable || rd.hangup {
                core.report_readable(idx, events);
            }
            let r = rconn(&mut self.conns, idx);
            if broken && r.want_write {
                // Keep a failed socket from spinning the wait on EPOLLOUT/EPOLLHUP.
                r.want_write = false;
                if let Ok(c) = core.get(id) {
                    let _ = self.poller.modify(c.sock.as_fd(), id.token(), false);
                }
            }
        }
        self.ready = ready;
        // Sockets with bytes left in their pipe: ready without another syscall.
        for &idx in &self.pipe_ready {
            let has_bytes = self.conns.get(idx as usize).is_some_and(|r| !r.pipe.is_empty());
            if has_bytes && core.report_readable(idx, events) {
                core.counters.pipe_events += 1;
            }
        }
        Ok(())
    }
}
