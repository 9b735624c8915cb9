//! The io_uring engine: owns the ring (module [`crate::ring`]) and each connection's receive and send
//! state on it. Every socket has a multishot receive armed into the group's provided buffers; queued
//! writes go out as one sendmsg (or sendmsg_zc) SQE per socket per flush; each poll makes at most one
//! io_uring_enter that submits the batch and waits together, then dispatches the completions.
//!
//! Listeners get a multishot accept into the fixed-file table (submodule [`accept`]). Foreign requests of the group's owner (e.g. file reads and writes) ride on the same ring.
//!
//! A closed socket whose requests the kernel still holds becomes a zombie: its write queue and the
//! memory its SQEs point at are kept until the last completion.

mod accept;
#[macro_use]
mod conn;

use super::{Core, Event, SockId, Waker};
use crate::counters::GroupCounters;
use crate::error::{SockError, SockResult};
use crate::options::GroupOptions;
use crate::ring::{self, Cqe, Kind, PlainSqe, Ring, RingConfig, Setup, Target, UserData};
use crate::socket::TcpSock;
use crate::write::{StableBuf, WriteQueue};
use accept::AcceptState;
use conn::{InFlight, RxBuf, UConn, Zombie};
use io_uring::{opcode, types};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A zero-copy send in flight: whose it is and which tracker id it carries.
#[derive(Clone, Copy)]
struct ZcOp {
    idx: u32,
    generation: u32,
    id: u32,
}

/// Counters of the foreign requests a uring group carried (see [`super::SockGroup::push_foreign`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForeignCounts {
    /// Foreign SQEs queued on the ring.
    pub sqes: u64,
    /// Foreign completions reaped.
    pub cqes: u64,
}

/// Where a completion for a socket token goes.
enum Owner {
    Live(u32),
    Zombie(usize),
    Gone,
}

/// The io_uring engine; see the module docs.
pub(super) struct Uring<B> {
    ring: Ring,
    /// Per-connection state, by slot index (parallel to the group's slab).
    conns: Vec<UConn>,
    /// Accept state, by listener index (parallel to the group's listeners).
    accepts: Vec<AcceptState>,
    zombies: Vec<Zombie<B>>,
    zc_ops: Vec<Option<ZcOp>>,
    zc_free: Vec<u32>,
    /// Sockets whose received bytes, EOF or error wait to be read.
    rx_ready: Vec<u32>,
    /// Sockets whose multishot receive ended with ENOBUFS.
    starved: Vec<u32>,
    rotate: usize,
    cqes: Vec<Cqe>,
    bids: Vec<u16>,
    wake_fd: Option<RawFd>,
    /// Completions of foreign requests (token, result) not yet taken by the owner.
    foreign_done: Vec<(u64, i32)>,
    /// Foreign requests pushed whose completion has not been reaped.
    foreign_inflight: usize,
    /// Foreign requests pushed / completed over the group's life.
    foreign_counts: ForeignCounts,
    /// Slots of the kernel-allocated accept range holding a socket (accepted, not yet closed).
    accept_in_use: u32,
    /// A direct accept hit ENFILE (range full): accept regular descriptors until a slot is freed.
    accept_full: bool,
    /// Accepted slots whose FIXED_FD_INSTALL failed transiently: (listener index, slot), retried.
    install_retry: Vec<(u32, u32)>,
    /// Owners of the memory registered as fixed buffers: dropped after the ring (field order), or
    /// leaked with it when teardown could not prove the kernel done.
    keep_alive: Vec<Box<dyn std::any::Any + Send>>,
}

/// The engine state of slot `idx` (grown on demand; slots only ever come from the group's slab).
fn uconn(conns: &mut Vec<UConn>, idx: u32) -> &mut UConn {
    let i = idx as usize;
    if conns.len() <= i {
        conns.resize_with(i + 1, || UConn::new(-1));
    }
    &mut conns[i]
}

impl<B: StableBuf> Uring<B> {
    pub(super) fn new(opts: &GroupOptions) -> io::Result<Uring<B>> {
        let u = &opts.uring;
        let cfg = RingConfig {
            buf_count: u.bufs,
            buf_size: u.buf_size.max(64),
            sqpoll: u.sqpoll,
            fixed_files: u.fixed_files,
            bundles: u.bundles,
            napi_busy_poll_us: u.napi_busy_poll_us,
        };
        let ring = Ring::new(cfg)?;
        tracing::debug!(setup = ?ring.setup, "io_uring sock backend");
        Ok(Uring {
            ring,
            conns: Vec::new(),
            accepts: Vec::new(),
            zombies: Vec::new(),
            zc_ops: Vec::new(),
            zc_free: Vec::new(),
            rx_ready: Vec::new(),
            starved: Vec::new(),
            rotate: 0,
            cqes: Vec::new(),
            bids: Vec::new(),
            wake_fd: None,
            foreign_done: Vec::new(),
            foreign_inflight: 0,
            foreign_counts: ForeignCounts::default(),
            accept_in_use: 0,
            accept_full: false,
            install_retry: Vec::new(),
            keep_alive: Vec::new(),
        })
    }

    pub(super) fn setup(&self) -> Setup {
        self.ring.setup
    }

    /// See [`super::SockGroup::push_foreign`].
    ///
    /// # Safety
    /// As there: the entry's memory and descriptor stay valid until its completion is taken.
    pub(super) unsafe fn push_foreign(
        &mut self,
        entry: io_uring::squeue::Entry,
        token: u64,
        c: &mut GroupCounters,
    ) -> io::Result<()> {
        if token > ring::PAYLOAD_MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "foreign token wider than 56 bits"));
        }
        let e = entry.user_data(UserData::new(Kind::Foreign, token).raw());
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { self.ring.push(&e, c)? };
        self.foreign_inflight += 1;
        self.foreign_counts.sqes += 1;
        Ok(())
    }

    /// See [`super::SockGroup::register_buffers`].
    ///
    /// # Safety
    /// As there: the memory stays mapped while `keep_alive` lives.
    pub(super) unsafe fn register_buffers(
        &mut self,
        iovs: &[libc::iovec],
        keep_alive: Box<dyn std::any::Any + Send>,
        c: &mut GroupCounters,
    ) -> io::Result<()> {
        // SAFETY: the memory lives as long as `keep_alive` (caller's contract), which the engine drops
        // after the ring or never.
        unsafe { self.ring.register_buffers(iovs)? };
        c.ctl_calls += 1;
        self.keep_alive.push(keep_alive);
        Ok(())
    }

    pub(super) fn take_foreign_completions(&mut self, out: &mut Vec<(u64, i32)>) -> usize {
        let n = self.foreign_done.len();
        out.append(&mut self.foreign_done);
        n
    }

    pub(super) fn foreign_in_flight(&self) -> usize {
        self.foreign_inflight
    }

    pub(super) fn foreign_counts(&self) -> ForeignCounts {
        self.foreign_counts
    }

    pub(super) fn buffered(&self, idx: u32) -> usize {
        self.conns.get(idx as usize).map_or(0, |u| u.rx_len)
    }

    /// Arms the multishot receive of socket `idx`.
    fn arm_recv(&mut self, idx: u32, generation: u32, c: &mut GroupCounters) -> io::Result<()> {
        let bundles = self.ring.setup.bundles;
        let u = uconn(&mut self.conns, idx);
        let e = PlainSqe::recv_multi(u.target(), bundles, UserData::sock(Kind::Recv, idx, generation));
        self.ring.push_plain(e, c)?;
        u.recv_armed = true;
        u.starved = false;
        Ok(())
    }

    fn cancel(&mut self, target: UserData, c: &mut GroupCounters) {
        let _ = self.ring.push_plain(PlainSqe::cancel(target), c);
    }

    pub(super) fn watch_waker(&mut self, w: &Waker, c: &mut GroupCounters) {
        self.wake_fd = Some(w.fd().as_raw_fd());
        self.arm_wake(c);
    }

    fn arm_wake(&mut self, c: &mut GroupCounters) {
        if let Some(fd) = self.wake_fd {
            // The eventfd outlives the group's use of it (the group holds its waker).
            let e = PlainSqe::poll(Target::Fd(fd), libc::POLLIN as u32, true, UserData::new(Kind::Wake, 0));
            let _ = self.ring.push_plain(e, c);
        }
    }

    /// Adds socket `id`, already in fixed slot `preinstalled` after a direct accept, else installed in
    /// the fixed-file table when the slot index fits.
    pub(super) fn add(
        &mut self,
        id: SockId,
        sock: &TcpSock,
        preinstalled: Option<u32>,
        c: &mut GroupCounters,
    ) -> io::Result<()> {
        let fixed_files = self.ring.setup.fixed_files;
        let mut u = UConn::new(sock.as_raw_fd());
        if let Some(slot) = preinstalled {
            u.fixed = Some(slot);
        } else if id.idx < fixed_files {
            match self.ring.install(id.idx, sock.as_raw_fd()) {
                Ok(()) => {
                    u.fixed = Some(id.idx);
                    c.uring_fixed_files += 1;
                }
                Err(e) => tracing::debug!("fixed-file install failed, using the descriptor: {e}"),
            }
            c.ctl_calls += 1;
        }
        *uconn(&mut self.conns, id.idx) = u;
        if let Err(e) = self.arm_recv(id.idx, id.generation, c) {
            match self.conns[id.idx as usize].fixed {
                Some(slot) if slot >= fixed_files => self.close_accept_slot(slot, c),
                Some(slot) => self.ring.uninstall(slot),
                None => {}
            }
            self.conns[id.idx as usize] = UConn::new(-1);
            return Err(e);
        }
        Ok(())
    }

    /// Stops socket `id`: its buffers go back to the ring, its requests are cancelled, its fixed slot
    /// released; requests the kernel still holds take `wq` into a zombie until they complete.
    pub(super) fn close(&mut self, id: SockId, wq: &mut WriteQueue<B>, c: &mut GroupCounters) {
        let mut u = std::mem::replace(uconn(&mut self.conns, id.idx), UConn::new(-1));
        for b in u.rxq.drain(..) {
            self.ring.recycle(b.bid);
        }
        u.rx_len = 0;
        if u.recv_armed {
            self.cancel(UserData::sock(Kind::Recv, id.idx, id.generation), c);
        }
        if u.pollout {
            self.cancel(UserData::sock(Kind::PollOut, id.idx, id.generation), c);
        }
        if let Some(f) = u.send {
            let target = match f.zc_id {
                Some(_) => self
                    .zc_ops
                    .iter()
                    .position(|o| matches!(o, Some(o) if o.idx == id.idx && o.generation == id.generation && Some(o.id) == f.zc_id))
                    .map(|s| UserData::new(Kind::SendZc, s as u64)),
                None => Some(UserData::sock(Kind::Send, id.idx, id.generation)),
            };
            if let Some(t) = target {
                self.cancel(t, c);
            }
        }
        match u.fixed {
            // Requests already issued hold their own reference to the file.
            Some(slot) if slot >= self.ring.setup.fixed_files => self.close_accept_slot(slot, c),
            Some(slot) => {
                self.ring.uninstall(slot);
                c.ctl_calls += 1;
            }
            None => {}
        }
        if u.busy() {
            let wq = std::mem::replace(wq, WriteQueue::new(1));
            self.zombies.push(Zombie { idx: id.idx, generation: id.generation, wq, u });
        }
    }

    /// `recvv`: copies out of the socket's received provided buffers (the one copy) and gives each
    /// emptied buffer back to the ring.
    pub(super) fn recvv(&mut self, core: &mut Core<B>, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        let quickack = core.opts.sock.quickack;
        let c = core.live(id)?;
        let u = uconn(&mut self.conns, id.idx);
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let mut got = 0;
        'out: for b in bufs.iter_mut() {
            let mut off = 0;
            while off < b.len() {
                let Some(front) = u.rxq.front() else { break 'out };
                let src = &self.ring.bufs.buf(front.bid)[front.off..front.off + front.len];
                let n = src.len().min(b.len() - off);
                b[off..off + n].copy_from_slice(&src[..n]);
                off += n;
                got += n;
                if let Some(bid) = u.consume_front(n) {
                    self.ring.recycle(bid);
                }
            }
        }
        c.counters.bytes_copied += got as u64;
        if got > 0 {
            c.quickack(quickack);
            return Ok(got);
        }
        Err(u.nothing_buffered())
    }

    /// `recv_in_place`: the oldest provided buffer's unread bytes go to `parse`, and a buffer used up
    /// returns to the ring.
    pub(super) fn recv_in_place(
        &mut self,
        core: &mut Core<B>,
        id: SockId,
        parse: impl FnOnce(&[u8]) -> usize,
    ) -> SockResult<usize> {
        let quickack = core.opts.sock.quickack;
        let c = core.live(id)?;
        let u = uconn(&mut self.conns, id.idx);
        let Some(front) = u.rxq.front() else { return Err(u.nothing_buffered()) };
        let bytes = &self.ring.bufs.buf(front.bid)[front.off..front.off + front.len];
        let n = parse(bytes).min(bytes.len());
        if let Some(bid) = u.consume_front(n) {
            self.ring.recycle(bid);
        }
        c.counters.bytes_parsed_in_place += n as u64;
        if n > 0 {
            c.quickack(quickack);
        }
        Ok(n)
    }

    /// Queues the sends of every dirty socket and submits them with one io_uring_enter.
    pub(super) fn flush(&mut self, core: &mut Core<B>) {
        self.queue_sends(core);
        if let Err(e) = self.ring.enter(None, &mut core.counters) {
            tracing::warn!("io_uring_enter failed: {e}");
        }
    }

    fn queue_sends(&mut self, core: &mut Core<B>) {
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

    /// Queues one sendmsg (or sendmsg_zc) SQE gathering the socket's unsent requests, unless one is in
    /// flight already (one per socket keeps the stream in order).
    fn flush_one(&mut self, core: &mut Core<B>, idx: u32) {
        let threshold = core.opts.zerocopy_threshold;
        let max_iovs = core.opts.max_iovs.clamp(1, libc::UIO_MAXIOV as usize);
        let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return };
        let u = uconn(&mut self.conns, idx);
        if c.broken || u.send.is_some() || u.pollout {
            return;
        }
        let id = SockId { idx, generation: c.generation };
        let mut failed = None;
        while c.wq.has_unsent() {
            let total = c.wq.gather_iovecs(&mut u.iovs, max_iovs);
            if total == 0 {
                c.wq.advance(0, None);
                continue;
            }
            let use_zc = self.ring.setup.send_zc && c.zc_on && threshold.is_some_and(|t| total >= t);
            u.msg.msg_iov = u.iovs.as_mut_ptr();
            u.msg.msg_iovlen = u.iovs.len() as _;
            let msg: *const libc::msghdr = &*u.msg;
            let flags = libc::MSG_NOSIGNAL as u32;
            let (e, zc_id) = if use_zc {
                let zid = c.zc_next_id;
                c.zc_next_id = zid.wrapping_add(1);
                let op = ZcOp { idx, generation: c.generation, id: zid };
                let slot = match self.zc_free.pop() {
                    Some(i) => {
                        self.zc_ops[i as usize] = Some(op);
                        i
                    }
                    None => {
                        self.zc_ops.push(Some(op));
                        (self.zc_ops.len() - 1) as u32
                    }
                };
                let e = on_fd!(u, |f| opcode::SendMsgZc::new(f, msg)
                    .ioprio(ring::SEND_ZC_REPORT_USAGE)
                    .flags(flags)
                    .build())
                .user_data(UserData::new(Kind::SendZc, slot as u64).raw());
                c.counters.zc_sends += 1;
                c.counters.zc_bytes += total as u64;
                (e, Some(zid))
            } else {
                let e = on_fd!(u, |f| opcode::SendMsg::new(f, msg).flags(flags).build())
                    .user_data(UserData::sock(Kind::Send, idx, c.generation).raw());
                (e, None)
            };
            c.counters.sendmsg += 1;
            c.counters.uring_sends += 1;
            // SAFETY: the SQE points at `u.msg` and `u.iovs` (heap memory owned by this connection's
            // state, not touched while `u.send` is set) and through them at the queued requests, whose
            // memory never moves (WriteQueue never reallocates; StableBuf data is pinned). The request
            // completes (and, for zero copy, is notified) before any of it is released: completions
            // pop requests only after the CQE, close keeps them in a zombie until then, and teardown
            // waits for the ring to go idle or leaks them.
            match unsafe { self.ring.push(&e, &mut core.counters) } {
                Ok(()) => u.send = Some(InFlight { total, zc_id }),
                Err(err) => failed = Some(SockError::from_io(err)),
            }
            break;
        }
        if let Some(e) = failed {
            core.fail(id, e);
        }
        let busy = self.conns[idx as usize].busy_sending();
        core.collect_completions(idx, busy);
    }

    /// Queue sends and re-arms, one enter (submit + wait), handle completions, report readable sockets
    /// (at most `max_events`, rotating).
    pub(super) fn poll(
        &mut self,
        core: &mut Core<B>,
        timeout: Option<Duration>,
        events: &mut Vec<Event<B>>,
    ) -> io::Result<()> {
        self.queue_sends(core);
        self.rearm_starved(core);
        for (lidx, slot) in std::mem::take(&mut self.install_retry) {
            self.install_fd(lidx, slot, &mut core.counters);
        }
        let (slots, conns) = (&core.slots, &mut self.conns);
        self.rx_ready.retain(|&i| match (slots.get(i as usize), conns.get_mut(i as usize)) {
            (Some(Some(_)), Some(u)) if u.has_input() => true,
            (Some(Some(_)), Some(u)) => {
                u.in_rx_ready = false;
                false
            }
            _ => false,
        });
        // Foreign completions not yet taken must not wait behind a blocking enter either.
        let busy = !self.rx_ready.is_empty() || !core.pending.is_empty() || !self.foreign_done.is_empty();
        let wait = match timeout {
            _ if busy => None,
            Some(d) if d.is_zero() => None,
            t => Some(t),
        };
        self.ring.enter(wait, &mut core.counters)?;
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        self.ring.reap(&mut cqes, &mut core.counters);
        core.counters.waits += 1;
        core.counters.kernel_events += cqes.len() as u64;
        if cqes.is_empty() {
            core.counters.empty_waits += 1;
        }
        for cqe in &cqes {
            self.on_cqe(core, *cqe, events);
        }
        self.cqes = cqes;
        // Readable sockets, rotating so a bounded event count still serves every one.
        let n = self.rx_ready.len();
        let max = core.opts.max_events.max(1);
        let mut reported = 0;
        let start = if n > 0 { self.rotate % n } else { 0 };
        let mut last = start;
        for k in 0..n {
            if reported == max {
                break;
            }
            let i = (start + k) % n;
            let idx = self.rx_ready[i];
            let Some(u) = self.conns.get(idx as usize) else { continue };
            if u.has_input() && core.report_readable(idx, events) {
                if u.cqe_round != core.round {
                    core.counters.pipe_events += 1;
                }
                reported += 1;
                last = i;
            }
        }
        if n > 0 {
            self.rotate = last + 1;
        }
        Ok(())
    }

    fn rearm_starved(&mut self, core: &mut Core<B>) {
        if self.starved.is_empty() {
            return;
        }
        let threshold = (self.ring.bufs.count() as usize / 8).max(1);
        let mut starved = std::mem::take(&mut self.starved);
        starved.retain(|&idx| {
            let Some(Some(c)) = core.slots.get(idx as usize) else { return false };
            let generation = c.generation;
            let u = uconn(&mut self.conns, idx);
            if !u.starved || u.recv_armed {
                u.starved = false;
                return false;
            }
            if self.ring.bufs.available() < threshold {
                return true;
            }
            match self.arm_recv(idx, generation, &mut core.counters) {
                Ok(()) => {
                    core.counters.uring_rearms += 1;
                    false
                }
                Err(_) => true,
            }
        });
        self.starved = starved;
    }

    fn mark_rx_ready(&mut self, idx: u32) {
        let u = uconn(&mut self.conns, idx);
        if !u.in_rx_ready {
            u.in_rx_ready = true;
            self.rx_ready.push(idx);
        }
    }

    fn owner(&self, core: &Core<B>, idx: u32, gen24: u32) -> Owner {
        if let Some(Some(c)) = core.slots.get(idx as usize)
            && c.generation & 0xFF_FFFF == gen24
        {
            return Owner::Live(idx);
        }
        match self.zombies.iter().position(|z| z.idx == idx && z.generation & 0xFF_FFFF == gen24) {
            Some(i) => Owner::Zombie(i),
            None => Owner::Gone,
        }
    }

    fn on_cqe(&mut self, core: &mut Core<B>, cqe: Cqe, events: &mut Vec<Event<B>>) {
        let ud = UserData::from_raw(cqe.user_data);
        let (kind, payload) = (ud.kind(), ud.payload());
        match kind {
            Some(Kind::Recv) => {
                let (idx, g) = ud.sock_of();
                let owner = self.owner(core, idx, g);
                self.on_recv(core, owner, cqe);
            }
            Some(Kind::Send) => {
                let (idx, g) = ud.sock_of();
                let owner = self.owner(core, idx, g);
                self.on_send(core, owner, cqe, None);
            }
            Some(Kind::SendZc) => {
                let Some(Some(op)) = self.zc_ops.get(payload as usize).copied() else { return };
                if !cqe.more() {
                    self.zc_ops[payload as usize] = None;
                    self.zc_free.push(payload as u32);
                }
                let owner = self.owner(core, op.idx, op.generation & 0xFF_FFFF);
                if cqe.notif() {
                    self.on_zc_notif(core, owner, cqe, op.id);
                } else {
                    self.on_send(core, owner, cqe, Some(op.id));
                }
            }
            Some(Kind::PollOut) => {
                let (idx, g) = ud.sock_of();
                match self.owner(core, idx, g) {
                    Owner::Live(i) => {
                        uconn(&mut self.conns, i).pollout = false;
                        self.flush_one(core, i);
                    }
                    Owner::Zombie(z) => {
                        self.zombies[z].u.pollout = false;
                        self.reap_zombie(core, z);
                    }
                    Owner::Gone => {}
                }
            }
            Some(Kind::Wake) => {
                core.woken(events);
                if !cqe.more() {
                    self.arm_wake(&mut core.counters);
                }
            }
            Some(Kind::Foreign) => {
                self.foreign_inflight = self.foreign_inflight.saturating_sub(1);
                self.foreign_counts.cqes += 1;
                self.foreign_done.push((payload, cqe.res));
            }
            Some(Kind::AcceptDirect) => self.on_accept(core, true, ud, cqe),
            Some(Kind::AcceptFd) => self.on_accept(core, false, ud, cqe),
            Some(Kind::FdInstall) => self.on_fd_install(core, ud, cqe),
            Some(Kind::Ignore) | None => {}
        }
    }

    fn on_recv(&mut self, core: &mut Core<B>, owner: Owner, cqe: Cqe) {
        let res = cqe.res;
        let mut bids = std::mem::take(&mut self.bids);
        bids.clear();
        if let Some(first) = cqe.buffer() {
            bids.extend(self.ring.bufs.bids_of(first, res.max(0) as usize));
        }
        let size = self.ring.bufs.buf_size();
        match owner {
            Owner::Live(idx) => {
                let generation = core.slots[idx as usize].as_ref().map_or(0, |c| c.generation);
                let u = uconn(&mut self.conns, idx);
                let mut left = res.max(0) as usize;
                for &bid in &bids {
                    let len = left.min(size);
                    left -= len;
                    if len == 0 {
                        self.ring.recycle(bid);
                    } else {
                        u.rxq.push_back(RxBuf { bid, off: 0, len });
                    }
                }
                u.cqe_round = core.round;
                let mut starved = false;
                let ready = if res > 0 {
                    u.rx_len += res as usize;
                    if let Some(Some(c)) = core.slots.get_mut(idx as usize) {
                        c.counters.uring_recv_cqes += 1;
                        c.counters.bytes_into_bufs += res as u64;
                    }
                    true
                } else if res == 0 {
                    u.eof = true;
                    true
                } else if res == -libc::ENOBUFS {
                    core.counters.uring_enobufs += 1;
                    starved = !cqe.more();
                    false
                } else if res != -libc::ECANCELED {
                    u.rx_err = Some(-res);
                    true
                } else {
                    false
                };
                if !cqe.more() {
                    u.recv_armed = false;
                    if res > 0 && !u.eof && u.rx_err.is_none() {
                        if self.ring.bufs.available() < (self.ring.bufs.count() as usize / 8).max(1) {
                            // The kernel stops a multishot receive that emptied the ring: wait for
                            // buffers to come back, as after ENOBUFS.
                            core.counters.uring_enobufs += 1;
                            starved = true;
                        } else if self.arm_recv(idx, generation, &mut core.counters).is_ok() {
                            // Ended for a reason of its own (e.g. completion-queue overflow): arm again.
                            core.counters.uring_rearms += 1;
                        }
                    }
                }
                if starved {
                    self.conns[idx as usize].starved = true;
                    self.starved.push(idx);
                }
                if ready {
                    self.mark_rx_ready(idx);
                }
            }
            Owner::Zombie(z) => {
                for &bid in &bids {
                    self.ring.recycle(bid);
                }
                if !cqe.more() {
                    self.zombies[z].u.recv_armed = false;
                }
                self.bids = bids;
                self.reap_zombie(core, z);
                return;
            }
            Owner::Gone => {
                for &bid in &bids {
                    self.ring.recycle(bid);
                }
            }
        }
        self.bids = bids;
    }

    fn on_send(&mut self, core: &mut Core<B>, owner: Owner, cqe: Cqe, zc_id: Option<u32>) {
        match owner {
            Owner::Live(idx) => {
                let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return };
                let u = uconn(&mut self.conns, idx);
                let id = SockId { idx, generation: c.generation };
                let flight = u.send.take();
                if let Some(zid) = zc_id {
                    if cqe.more() {
                        u.zc_pending += 1;
                    } else {
                        c.zc.release(zid, zid);
                    }
                }
                let res = cqe.res;
                let mut failed = None;
                if res >= 0 {
                    let n = res as usize;
                    c.counters.bytes_sent += n as u64;
                    c.wq.advance(n, if n > 0 { zc_id } else { None });
                    if flight.is_some_and(|f| n < f.total) {
                        c.counters.sendmsg_partial += 1;
                    }
                } else if res == -libc::EAGAIN {
                    c.counters.sendmsg_partial += 1;
                    let ud = UserData::sock(Kind::PollOut, idx, c.generation);
                    let e = PlainSqe::poll(u.target(), libc::POLLOUT as u32, false, ud);
                    if self.ring.push_plain(e, &mut core.counters).is_ok() {
                        u.pollout = true;
                    }
                } else if res != -libc::ECANCELED {
                    failed = Some(SockError::from_io(io::Error::from_raw_os_error(-res)));
                }
                let resend = c.wq.has_unsent() && !u.pollout && !c.broken;
                if let Some(e) = failed {
                    core.fail(id, e);
                } else if resend {
                    core.mark_dirty(idx);
                }
                let busy = self.conns[idx as usize].busy_sending();
                core.collect_completions(idx, busy);
            }
            Owner::Zombie(z) => {
                let zb = &mut self.zombies[z];
                zb.u.send = None;
                if cqe.more() && zc_id.is_some() {
                    zb.u.zc_pending += 1;
                }
                self.reap_zombie(core, z);
            }
            Owner::Gone => {}
        }
    }

    fn on_zc_notif(&mut self, core: &mut Core<B>, owner: Owner, cqe: Cqe, zid: u32) {
        match owner {
            Owner::Live(idx) => {
                let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return };
                let u = uconn(&mut self.conns, idx);
                c.counters.zc_notifications += 1;
                u.zc_pending = u.zc_pending.saturating_sub(1);
                c.zc.release(zid, zid);
                if cqe.res as u32 & ring::NOTIF_USAGE_ZC_COPIED != 0 {
                    c.zc_copied();
                }
                let busy = u.busy_sending();
                core.collect_completions(idx, busy);
            }
            Owner::Zombie(z) => {
                let zb = &mut self.zombies[z];
                zb.u.zc_pending = zb.u.zc_pending.saturating_sub(1);
                self.reap_zombie(core, z);
            }
            Owner::Gone => {}
        }
    }

    /// Hands a closed socket's requests back once the kernel holds none of them.
    fn reap_zombie(&mut self, core: &mut Core<B>, z: usize) {
        if self.zombies[z].u.busy() {
            return;
        }
        let mut zb = self.zombies.swap_remove(z);
        let id = SockId { idx: zb.idx, generation: zb.generation };
        for req in zb.wq.drain_all() {
            core.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Closed) });
        }
    }

    /// Cancels everything and waits (bounded) for the kernel to let go. False when it may still hold
    /// requests: the memory they point at is leaked then (the provided buffers, the fixed buffers'
    /// owners and the zombies here; the caller leaks its queues).
    pub(super) fn teardown(&mut self, c: &mut GroupCounters) -> bool {
        let mut sink = Vec::new();
        if self.ring.cancel_all(&mut sink, c) && self.ring.unregister_bufs().is_ok() {
            return true;
        }
        tracing::error!("io_uring requests still in flight at teardown; leaking their memory");
        self.ring.bufs.leak();
        std::mem::forget(std::mem::take(&mut self.keep_alive));
        std::mem::forget(std::mem::take(&mut self.zombies));
        std::mem::forget(std::mem::take(&mut self.conns));
        false
    }
}
