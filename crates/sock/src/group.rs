//! A socket group: the set of connections one reactor thread owns, with their receive pipes, write
//! queues, zero-copy state and counters, waited on through one backend. Every data-path syscall of the
//! sock layer happens here.
//!
//! On the io_uring backend ([`Backend::Uring`]) the group owns a ring (module [`crate::uring`]) instead of
//! a readiness poller: every socket has a multishot receive armed into the group's provided buffers,
//! queued writes go out as one sendmsg (or sendmsg_zc) SQE per socket per flush, and each poll makes at
//! most one io_uring_enter that submits the batch and waits together. Received bytes wait in the
//! provided buffers they landed in: headers are decoded there ([`SockGroup::recv_in_place`]), everything
//! else is copied exactly once, into the caller's buffer, by [`SockGroup::recv`]; the buffer goes back to
//! the ring as soon as it is empty. So with io_uring there is no direct (zero-copy-to-destination)
//! receive: reads at or above the cut-over are copied once too, and the counters say so
//! (`bytes_into_bufs`, `bytes_copied`, `bytes_parsed_in_place`).
//!
//! The ring also carries foreign requests for the group's owner ([`SockGroup::push_foreign`]), e.g. the
//! file backend's reads and writes: they go out with the same enter and their completions come back
//! through [`SockGroup::take_foreign_completions`]; the group never interprets them.
//!
//! A group may also own listeners ([`SockGroup::add_listener`]): accepted connections join the group
//! and are listed by [`SockGroup::take_accepted`]. On io_uring a multishot accept installs each
//! connection straight into the kernel-allocated part of the fixed-file table (no register syscall),
//! then a FIXED_FD_INSTALL SQE (same enter, no syscall) gives it the regular descriptor that
//! [`SockGroup::sock`], socket options and the NAPI-id/peer-address getters need. On poll/epoll the
//! listener is one more readiness source and accept(2) runs in `poll`.

use crate::counters::{GroupCounters, SockCounters};
use crate::error::{SockError, SockResult};
use crate::options::{Backend, GroupOptions};
use crate::pipe::{Pipe, PipePool};
use crate::poller::{Poller, Ready};
use crate::socket::{Listener, TcpSock};
use crate::uring::{self, Cqe, Kind, Ring, RingConfig};
use crate::write::{StableBuf, WriteQueue, WriteReq};
use crate::zerocopy::{ErrqueueMsg, Tracker, recv_errqueue};
use io_uring::{opcode, types};
use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
/// Poller tokens of listeners: `LISTENER_TOKENS + index` (a socket token this high would need a slot
/// generation above 2^32 - 2, never reached in practice).
const LISTENER_TOKENS: u64 = u64::MAX - (1 << 32);
/// Connections accepted per listener per poll on poll/epoll (the rest wait for the next poll).
const ACCEPTS_PER_POLL: usize = 64;

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
    /// io_uring: the armed accept request, if any (true: direct into the fixed-file table).
    armed: Option<bool>,
    /// io_uring: a cancellation of the armed request was sent (mode switch).
    cancelling: bool,
    /// io_uring: the accept failed with a permanent error and is not armed again.
    failed: bool,
}

fn transient_accept_error(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNABORTED
            | libc::EPROTO
            | libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EAGAIN
            | libc::EINTR
            | libc::EPERM
            | libc::ECANCELED
            | libc::ETIMEDOUT
    )
}

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
    /// The last readv returned less than it offered, so the receive queue was empty: the next read is
    /// WouldBlock without a syscall until a wait reports the socket readable again (epoll and poll are
    /// level-triggered, so bytes that arrive later are reported by the next wait).
    drained: bool,
    /// The error a wait took from the socket (reading the error queue clears it in the kernel): reads
    /// return it once the pipe is empty.
    rx_error: Option<SockError>,
    /// io_uring state (unused on poll/epoll).
    u: UConn,
}

/// The connection `id` names, while it is still the one in that slot.
fn live<B>(slots: &mut [Option<Conn<B>>], id: SockId) -> SockResult<&mut Conn<B>> {
    match slots.get_mut(id.idx as usize) {
        Some(Some(c)) if c.generation == id.generation => Ok(c),
        _ => Err(SockError::Closed),
    }
}

impl<B> Conn<B> {
    /// Bytes left in the pipe are readable without a wait: list the socket (once) for the next poll.
    fn note_pipe_ready(&mut self, idx: u32, pipe_ready: &mut Vec<u32>) {
        if !self.pipe.is_empty() && !self.in_pipe_ready {
            self.in_pipe_ready = true;
            pipe_ready.push(idx);
        }
    }

    /// TCP_QUICKACK after a receive when the group asks for it (the kernel clears it again by itself).
    fn quickack(&self, wanted: bool) {
        if wanted {
            let _ = self.sock.set_int(libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1);
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
    fn may_read(&mut self) -> SockResult<()> {
        if let Some(e) = &self.rx_error {
            return Err(e.duplicate());
        }
        if self.drained {
            self.counters.readv_skipped += 1;
            return Err(SockError::WouldBlock);
        }
        Ok(())
    }

    /// One readv gathering `rest` (the caller's buffers, possibly none) and then the pipe's free space:
    /// the caller's bytes land in place and the rest of a burst waits in the pipe. Returns the bytes that
    /// went to `rest`.
    fn fill(&mut self, rest: &mut [IoSliceMut<'_>], pool: &mut PipePool) -> SockResult<usize> {
        let want: usize = rest.iter().map(|b| b.len()).sum();
        let cap = self.fill_cap();
        let [p0, p1] = self.pipe.free_slices(pool, cap);
        let offered = want + p0.len() + p1.len();
        // The common cases are no caller buffer or one: gather on the stack, no allocation per recv.
        let r = match rest {
            [] => self.sock.readv(&mut [p0, p1]),
            [one] => self.sock.readv(&mut [IoSliceMut::new(&mut one[..]), p0, p1]),
            _ => {
                let mut iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(rest.len() + 2);
                iov.extend(rest.iter_mut().map(|b| IoSliceMut::new(&mut b[..])));
                iov.push(p0);
                iov.push(p1);
                self.sock.readv(&mut iov)
            }
        };
        match r {
            Ok(n) => {
                self.counters.readv_pipe += 1;
                self.drained = n < offered;
                let direct = n.min(want);
                self.counters.bytes_direct += direct as u64;
                self.counters.bytes_into_pipe += (n - direct) as u64;
                self.pipe.commit(n - direct, pool);
                Ok(direct)
            }
            Err(e) => {
                self.pipe.commit(0, pool);
                if matches!(e, SockError::WouldBlock) {
                    self.counters.readv_wouldblock += 1;
                } else {
                    self.counters.readv_pipe += 1;
                }
                Err(e)
            }
        }
    }
}

/// Bytes of one provided buffer not yet read.
#[derive(Debug, Clone, Copy)]
struct RxBuf {
    bid: u16,
    off: usize,
    len: usize,
}

/// A send SQE in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    total: usize,
    zc_id: Option<u32>,
}

/// A connection's io_uring state: its received buffers and its requests in flight. The msghdr and the
/// iovec array a sendmsg SQE points at live here, on the heap, untouched while `send` is set.
struct UConn {
    fd: RawFd,
    fixed: Option<u32>,
    rxq: VecDeque<RxBuf>,
    rx_len: usize,
    eof: bool,
    rx_err: Option<i32>,
    recv_armed: bool,
    starved: bool,
    in_rx_ready: bool,
    /// Poll round of the last receive completion (a readable report without one is a "pipe event").
    cqe_round: u64,
    send: Option<InFlight>,
    pollout: bool,
    zc_pending: u32,
    msg: Box<libc::msghdr>,
    iovs: Vec<libc::iovec>,
}

impl UConn {
    fn new(fd: RawFd) -> UConn {
        UConn {
            fd,
            fixed: None,
            rxq: VecDeque::new(),
            rx_len: 0,
            eof: false,
            rx_err: None,
            recv_armed: false,
            starved: false,
            in_rx_ready: false,
            cqe_round: 0,
            send: None,
            pollout: false,
            zc_pending: 0,
            // SAFETY: msghdr is plain old data; zero is a valid empty header.
            msg: Box::new(unsafe { std::mem::zeroed() }),
            iovs: Vec::new(),
        }
    }

    /// Requests of this connection the kernel still holds.
    fn busy_sending(&self) -> bool {
        self.send.is_some() || self.pollout || self.zc_pending > 0
    }

    fn busy(&self) -> bool {
        self.recv_armed || self.send.is_some() || self.pollout || self.zc_pending > 0
    }

    fn has_input(&self) -> bool {
        self.rx_len > 0 || self.eof || self.rx_err.is_some()
    }

    /// Marks `n` bytes of the oldest received buffer read; returns its id once it is used up, for the
    /// caller to give back to the ring.
    fn consume_front(&mut self, n: usize) -> Option<u16> {
        let front = self.rxq.front_mut()?;
        front.off += n;
        front.len -= n;
        self.rx_len -= n;
        if front.len > 0 {
            return None;
        }
        self.rxq.pop_front().map(|b| b.bid)
    }

    /// What a read gets with nothing buffered: the receive error, the end of stream, or WouldBlock.
    fn nothing_buffered(&self) -> SockError {
        match self.rx_err {
            Some(e) => SockError::from_io(io::Error::from_raw_os_error(e)),
            None if self.eof => SockError::Eof,
            None => SockError::WouldBlock,
        }
    }
}

/// Builds an SQE on the socket's fixed-file slot when it has one, else on its descriptor.
macro_rules! on_fd {
    ($u:expr, |$f:ident| $e:expr) => {
        match $u.fixed {
            Some(slot) => {
                let $f = types::Fixed(slot);
                $e
            }
            None => {
                let $f = types::Fd($u.fd);
                $e
            }
        }
    };
}

/// A closed socket whose requests are still in the kernel: its write requests (and the memory its
/// SQEs point at) are kept until the last completion, then handed back with [`SockError::Closed`].
struct Zombie<B> {
    idx: u32,
    generation: u32,
    wq: WriteQueue<B>,
    u: UConn,
}

/// A zero-copy send in flight: whose it is and which tracker id it carries.
#[derive(Clone, Copy)]
struct ZcOp {
    idx: u32,
    generation: u32,
    id: u32,
}

/// The io_uring side of a group.
struct UringGroup {
    ring: Ring,
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

/// Counters of the foreign requests a uring group carried (see [`SockGroup::push_foreign`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForeignCounts {
    /// Foreign SQEs queued on the ring.
    pub sqes: u64,
    /// Foreign completions reaped.
    pub cqes: u64,
}

impl UringGroup {
    fn alloc_zc(&mut self, op: ZcOp) -> u32 {
        match self.zc_free.pop() {
            Some(i) => {
                self.zc_ops[i as usize] = Some(op);
                i
            }
            None => {
                self.zc_ops.push(Some(op));
                (self.zc_ops.len() - 1) as u32
            }
        }
    }

    /// Arms the multishot receive of socket `idx`.
    fn arm_recv(&mut self, u: &mut UConn, idx: u32, generation: u32, c: &mut GroupCounters) -> io::Result<()> {
        let bundles = self.ring.setup.bundles;
        let e = on_fd!(u, |f| if bundles {
            opcode::RecvMultiBundle::new(f, uring::BGID).build()
        } else {
            opcode::RecvMulti::new(f, uring::BGID).build()
        })
        .user_data(uring::user_data(Kind::Recv, uring::sock_token(idx, generation)));
        // SAFETY: the receive writes only into provided buffers, which the ring owns and keeps mapped
        // until every request has completed (see `Ring::cancel_all` in the group's Drop).
        unsafe { self.ring.push(&e, c)? };
        u.recv_armed = true;
        u.starved = false;
        Ok(())
    }

    fn cancel(&mut self, target: u64, c: &mut GroupCounters) {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target).all())
            .build()
            .user_data(uring::user_data(Kind::Ignore, 0));
        // SAFETY: a cancellation points at no memory of ours.
        let _ = unsafe { self.ring.push(&e, c) };
    }

    /// Whether accepts should go straight into the fixed-file table: the range exists and more than a
    /// quarter of it is free. The margin matters: when a direct accept finds the range full the kernel
    /// closes the connection it just accepted, so the group switches to regular descriptors well before.
    fn want_direct(&self) -> bool {
        let a = self.ring.setup.accept_files;
        a > 0 && !self.accept_full && a - self.accept_in_use.min(a) > a / 4
    }

    /// Arms the accept of listener `idx` (multishot where the kernel has it, else one-shot, which the
    /// completion handler re-arms the same way).
    fn arm_accept(&mut self, l: &mut ListenerSlot, idx: u32, c: &mut GroupCounters) -> io::Result<()> {
        let direct = self.want_direct() && self.ring.accept_multi();
        let tok = uring::sock_token(idx, l.generation);
        let fd = types::Fd(l.listener.as_raw_fd());
        let e = if direct {
            opcode::AcceptMulti::new(fd)
                .allocate_file_index(true)
                // SOCK_CLOEXEC is refused with a direct slot; FIXED_FD_INSTALL sets O_CLOEXEC itself.
                .flags(libc::SOCK_NONBLOCK)
                .build()
                .user_data(uring::user_data(Kind::AcceptDirect, tok))
        } else if self.ring.accept_multi() {
            opcode::AcceptMulti::new(fd)
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
                .user_data(uring::user_data(Kind::AcceptFd, tok))
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
                .user_data(uring::user_data(Kind::AcceptFd, tok))
        };
        // SAFETY: null address pointers: the accept writes no memory of ours. The request holds its own
        // reference to the listener's file, so the listener may be closed while it is in flight.
        unsafe { self.ring.push(&e, c)? };
        l.armed = Some(direct);
        l.cancelling = false;
        Ok(())
    }

    /// Queues FIXED_FD_INSTALL for an accepted slot: a regular descriptor for the same socket.
    fn install_fd(&mut self, lidx: u32, slot: u32, c: &mut GroupCounters) {
        // The default flags give the descriptor O_CLOEXEC.
        let e = opcode::FixedFdInstall::new(types::Fixed(slot), 0)
            .build()
            .user_data(uring::user_data(Kind::FdInstall, (lidx as u64 & 0xFF_FFFF) << 32 | slot as u64));
        // SAFETY: the request names a fixed slot the group holds and points at no memory of ours.
        if unsafe { self.ring.push(&e, c) }.is_err() {
            self.install_retry.push((lidx, slot));
        }
    }

    /// Releases a slot of the accept range with an IORING_OP_CLOSE SQE (no syscall). Safe to do
    /// asynchronously because only the kernel allocates in this range, and not before the close ran.
    fn close_accept_slot(&mut self, slot: u32, c: &mut GroupCounters) {
        let e = opcode::Close::new(types::Fixed(slot)).build().user_data(uring::user_data(Kind::Ignore, 0));
        // SAFETY: a close of a fixed slot points at no memory of ours.
        if unsafe { self.ring.push(&e, c) }.is_err() {
            self.ring.uninstall(slot);
            c.ctl_calls += 1;
        }
        self.accept_in_use = self.accept_in_use.saturating_sub(1);
        self.accept_full = false;
    }

    fn arm_wake(&mut self, c: &mut GroupCounters) {
        if let Some(fd) = self.wake_fd {
            let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(uring::user_data(Kind::Wake, 0));
            // SAFETY: a poll request points at no memory of ours; the eventfd outlives the group's use.
            let _ = unsafe { self.ring.push(&e, c) };
        }
    }
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
    uring: Option<UringGroup>,
    zombies: Vec<Zombie<B>>,
    fallback: Option<String>,
    listeners: Vec<Option<ListenerSlot>>,
    listener_gens: Vec<u32>,
    accepted: Vec<Accepted>,
}

impl<B: StableBuf> SockGroup<B> {
    /// A new, empty group. With [`Backend::Uring`] where io_uring is unavailable (sysctl
    /// `kernel.io_uring_disabled`, seccomp, an old kernel), the group warns and runs on epoll instead:
    /// [`SockGroup::backend`] and [`SockGroup::backend_fallback`] tell.
    pub fn new(mut opts: GroupOptions) -> io::Result<SockGroup<B>> {
        let mut uring = None;
        let mut fallback = None;
        if opts.backend == Backend::Uring {
            let cfg = RingConfig {
                buf_count: opts.uring_bufs,
                buf_size: opts.uring_buf_size.max(64),
                sqpoll: opts.uring_sqpoll,
                fixed_files: opts.uring_fixed_files,
                bundles: opts.uring_bundles,
                napi_busy_poll_us: opts.uring_napi_busy_poll_us,
            };
            match Ring::new(cfg) {
                Ok(ring) => {
                    tracing::debug!(setup = ?ring.setup, "io_uring sock backend");
                    uring = Some(UringGroup {
                        ring,
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
                    });
                }
                Err(e) => {
                    let why = uring::unavailable_reason(&e);
                    tracing::warn!("sock backend uring unavailable: {why}; using epoll");
                    fallback = Some(why);
                    opts.backend = Backend::Epoll;
                }
            }
        }
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
            uring,
            zombies: Vec::new(),
            fallback,
            listeners: Vec::new(),
            listener_gens: Vec::new(),
            accepted: Vec::new(),
        })
    }

    /// The backend actually in use (epoll when io_uring was asked for but is unavailable).
    pub fn backend(&self) -> Backend {
        self.opts.backend
    }

    /// Why io_uring was asked for and not used, if it was.
    pub fn backend_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// How the io_uring ring was set up (`None` on poll/epoll).
    pub fn uring_setup(&self) -> Option<uring::Setup> {
        self.uring.as_ref().map(|u| u.ring.setup)
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
        let Some(ug) = self.uring.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "the group does not run on io_uring"));
        };
        if token > uring::PAYLOAD_MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "foreign token wider than 56 bits"));
        }
        let e = entry.user_data(uring::user_data(Kind::Foreign, token));
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { ug.ring.push(&e, &mut self.counters)? };
        ug.foreign_inflight += 1;
        ug.foreign_counts.sqes += 1;
        Ok(())
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
        let Some(ug) = self.uring.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "the group does not run on io_uring"));
        };
        // SAFETY: the memory lives as long as `keep_alive` (caller's contract), which the group drops
        // after the ring or never.
        unsafe { ug.ring.register_buffers(iovs)? };
        self.counters.ctl_calls += 1;
        ug.keep_alive.push(keep_alive);
        Ok(())
    }

    /// Moves the completions of foreign requests reaped so far into `out` as `(token, result)`
    /// (result: bytes, or a negated errno). Nothing on poll/epoll.
    pub fn take_foreign_completions(&mut self, out: &mut Vec<(u64, i32)>) -> usize {
        let Some(ug) = self.uring.as_mut() else { return 0 };
        let n = ug.foreign_done.len();
        out.append(&mut ug.foreign_done);
        n
    }

    /// Foreign requests on the ring whose completion has not been reaped yet.
    pub fn foreign_in_flight(&self) -> usize {
        self.uring.as_ref().map_or(0, |u| u.foreign_inflight)
    }

    /// How many foreign requests the group carried (zero on poll/epoll).
    pub fn foreign_counts(&self) -> ForeignCounts {
        self.uring.as_ref().map_or_else(ForeignCounts::default, |u| u.foreign_counts)
    }

    /// Makes the group own `listener`: its connections are accepted by the group (with the group's
    /// socket options applied), join it, and are listed by [`SockGroup::take_accepted`]. On io_uring a
    /// multishot accept puts them straight into the fixed-file table; on poll/epoll `poll` accepts them
    /// when the listener is readable.
    pub fn add_listener(&mut self, listener: Listener) -> io::Result<ListenerId> {
        let idx = match self.listeners.iter().position(Option::is_none) {
            Some(i) => i as u32,
            None => {
                self.listeners.push(None);
                self.listener_gens.push(0);
                (self.listeners.len() - 1) as u32
            }
        };
        let generation = self.listener_gens[idx as usize];
        let mut l = ListenerSlot { listener, generation, armed: None, cancelling: false, failed: false };
        if let Some(ug) = &mut self.uring {
            ug.arm_accept(&mut l, idx, &mut self.counters)?;
        } else {
            self.poller.add(l.listener.as_raw_fd(), LISTENER_TOKENS + idx as u64, false)?;
            self.count_ctl();
        }
        self.listeners[idx as usize] = Some(l);
        Ok(ListenerId { idx, generation })
    }

    /// The listener behind `id` (e.g. for its local address).
    pub fn listener(&self, id: ListenerId) -> Option<&Listener> {
        match self.listeners.get(id.idx as usize) {
            Some(Some(l)) if l.generation == id.generation => Some(&l.listener),
            _ => None,
        }
    }

    /// Stops accepting on `id` and hands the listener back. On io_uring the accept request is cancelled
    /// (submitted now); connections it accepted before the cancellation took effect still join the group
    /// and are listed by `take_accepted` with this (now stale) id.
    pub fn close_listener(&mut self, id: ListenerId) -> io::Result<Listener> {
        let l = match self.listeners.get_mut(id.idx as usize) {
            Some(slot @ Some(_)) if slot.as_ref().is_some_and(|l| l.generation == id.generation) => {
                slot.take().expect("checked")
            }
            _ => return Err(io::Error::new(io::ErrorKind::NotFound, "no such listener")),
        };
        self.listener_gens[id.idx as usize] = id.generation.wrapping_add(1);
        if let Some(ug) = &mut self.uring {
            if let Some(direct) = l.armed {
                let kind = if direct { Kind::AcceptDirect } else { Kind::AcceptFd };
                ug.cancel(uring::user_data(kind, uring::sock_token(id.idx, id.generation)), &mut self.counters);
                ug.ring.enter(None, &mut self.counters)?;
            }
        } else {
            let _ = self.poller.remove(l.listener.as_raw_fd());
            self.count_ctl();
        }
        Ok(l.listener)
    }

    /// Moves the connections accepted since the last call into `out`; returns how many.
    pub fn take_accepted(&mut self, out: &mut Vec<Accepted>) -> usize {
        let n = self.accepted.len();
        out.append(&mut self.accepted);
        n
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

    /// Adds an accepted socket and lists it for `take_accepted`.
    fn join_accepted(&mut self, listener: ListenerId, sock: TcpSock, preinstalled: Option<u32>) {
        let peer = sock.peer_addr().ok();
        match self.add_inner(sock, preinstalled) {
            Ok(id) => self.accepted.push(Accepted { listener, sock: id, peer }),
            Err(e) => {
                self.counters.accept_errors += 1;
                tracing::warn!("accepted connection could not join the group: {e}");
            }
        }
    }

    /// poll/epoll: accepts what listener `idx` has pending (bounded per poll; level-triggered, so the
    /// rest is reported again).
    fn accept_ready(&mut self, idx: u32) {
        for _ in 0..ACCEPTS_PER_POLL {
            let Some(Some(l)) = self.listeners.get(idx as usize) else { return };
            let lid = ListenerId { idx, generation: l.generation };
            match l.listener.accept(&self.opts.sock) {
                Ok(Some((sock, _))) => {
                    self.counters.accepts_plain += 1;
                    self.join_accepted(lid, sock, None);
                }
                Ok(None) => return,
                Err(e) => {
                    self.counters.accept_errors += 1;
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
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
        if let Some(u) = &mut self.uring {
            u.wake_fd = Some(fd.as_raw_fd());
            u.arm_wake(&mut self.counters);
        } else {
            self.poller.add(fd.as_raw_fd(), WAKE_TOKEN, false)?;
        }
        let w = Waker { fd };
        self.waker = Some(w.clone());
        Ok(w)
    }

    /// Adds a connected socket. Its TCP options should already be applied (accept/connect do it).
    pub fn add(&mut self, sock: TcpSock) -> io::Result<SockId> {
        self.add_inner(sock, None)
    }

    /// `add`, with the socket already in fixed slot `preinstalled` (a direct accept) on io_uring.
    fn add_inner(&mut self, sock: TcpSock, preinstalled: Option<u32>) -> io::Result<SockId> {
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
        let mut u = UConn::new(sock.as_raw_fd());
        if let Some(ug) = &mut self.uring {
            if let Some(slot) = preinstalled {
                u.fixed = Some(slot);
            } else if idx < ug.ring.setup.fixed_files {
                match ug.ring.install(idx, sock.as_raw_fd()) {
                    Ok(()) => {
                        u.fixed = Some(idx);
                        self.counters.uring_fixed_files += 1;
                    }
                    Err(e) => tracing::debug!("fixed-file install failed, using the descriptor: {e}"),
                }
                self.counters.ctl_calls += 1;
            }
            if let Err(e) = ug.arm_recv(&mut u, idx, generation, &mut self.counters) {
                match u.fixed {
                    Some(slot) if slot >= ug.ring.setup.fixed_files => ug.close_accept_slot(slot, &mut self.counters),
                    Some(slot) => ug.ring.uninstall(slot),
                    None => {}
                }
                self.free.push(idx);
                return Err(e);
            }
        } else {
            if let Err(e) = self.poller.add(sock.as_raw_fd(), id.token(), false) {
                self.free.push(idx);
                return Err(e);
            }
            self.count_ctl();
        }
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
            drained: false,
            rx_error: None,
            large_rest: 0,
            u,
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
        live(&mut self.slots, id)
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

    /// Bytes buffered in `id`'s pipe (with io_uring: in its received provided buffers).
    pub fn pipe_len(&self, id: SockId) -> usize {
        match self.slots.get(id.idx as usize) {
            Some(Some(c)) if c.generation == id.generation => c.pipe.len() + c.u.rx_len,
            _ => 0,
        }
    }

    /// Closes `id`: unsent and unconfirmed writes complete with [`SockError::Closed`] at the next poll.
    /// Returns the socket so the caller may inspect or abort it; dropping it closes the descriptor.
    pub fn close(&mut self, id: SockId) -> SockResult<TcpSock> {
        self.conn(id)?;
        let mut c = self.slots[id.idx as usize].take().expect("checked above");
        if let Some(ug) = &mut self.uring {
            for b in c.u.rxq.drain(..) {
                ug.ring.recycle(b.bid);
            }
            c.u.rx_len = 0;
            let tok = uring::sock_token(id.idx, c.generation);
            if c.u.recv_armed {
                ug.cancel(uring::user_data(Kind::Recv, tok), &mut self.counters);
            }
            if c.u.pollout {
                ug.cancel(uring::user_data(Kind::PollOut, tok), &mut self.counters);
            }
            if let Some(f) = c.u.send {
                let target = match f.zc_id {
                    Some(_) => ug
                        .zc_ops
                        .iter()
                        .position(|o| matches!(o, Some(o) if o.idx == id.idx && o.generation == c.generation && Some(o.id) == f.zc_id))
                        .map(|s| uring::user_data(Kind::SendZc, s as u64)),
                    None => Some(uring::user_data(Kind::Send, tok)),
                };
                if let Some(t) = target {
                    ug.cancel(t, &mut self.counters);
                }
            }
            match c.u.fixed {
                // Requests already issued hold their own reference to the file.
                Some(slot) if slot >= ug.ring.setup.fixed_files => ug.close_accept_slot(slot, &mut self.counters),
                Some(slot) => {
                    ug.ring.uninstall(slot);
                    self.counters.ctl_calls += 1;
                }
                None => {}
            }
            if c.u.busy() {
                let wq = std::mem::replace(&mut c.wq, WriteQueue::new(1));
                let u = std::mem::replace(&mut c.u, UConn::new(-1));
                self.zombies.push(Zombie { idx: id.idx, generation: c.generation, wq, u });
            }
        } else {
            let _ = self.poller.remove(c.sock.as_raw_fd());
            self.count_ctl();
        }
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
        if self.uring.is_some() {
            return self.recvv_uring(id, bufs);
        }
        let cutover = self.opts.cutover;
        let use_pipe = self.opts.pipe_size > 0;
        let quickack = self.opts.sock.quickack;
        let c = live(&mut self.slots, id)?;
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
        if let Err(e) = c.may_read() {
            return if got > 0 { Ok(got) } else { Err(e) };
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
            if let Ok(n) = r {
                c.drained = n < total - got;
                if large {
                    c.large_rest = total - got - n;
                }
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
            let r = c.fill(rest, &mut self.pool);
            if r.is_ok() {
                c.note_pipe_ready(id.idx, &mut self.pipe_ready);
            }
            r
        };
        if r.is_ok() {
            c.quickack(quickack);
        }
        match r {
            Ok(n) => Ok(got + n),
            Err(_) if got > 0 => Ok(got),
            Err(e) => Err(e),
        }
    }

    /// True when [`SockGroup::recv_in_place`] works here: a receive pipe on the poll or epoll backend,
    /// or the provided buffers on io_uring.
    pub fn parses_in_place(&self) -> bool {
        self.uring.is_some() || self.opts.pipe_size > 0
    }

    /// Hands the bytes waiting in the receive pipe to `parse` without copying them out (one pipe fill
    /// first when it is empty); `parse` returns how many it used, and only those leave the pipe. A whole
    /// batch of headers is decoded where the fill put it, instead of one small copy per header.
    ///
    /// On io_uring, `parse` gets the oldest provided buffer's unread bytes instead (a header cut by a
    /// buffer's end comes back whole only if the parser keeps its first part, as the decoder does).
    ///
    /// Returns the bytes used, or WouldBlock / Eof / Reset from the fill. Refused (`Io(Unsupported)`)
    /// where [`SockGroup::parses_in_place`] is false.
    pub fn recv_in_place(&mut self, id: SockId, parse: impl FnOnce(&[u8]) -> usize) -> SockResult<usize> {
        if self.uring.is_some() {
            return self.recv_in_place_uring(id, parse);
        }
        if !self.parses_in_place() {
            return Err(SockError::Io(io::Error::from(io::ErrorKind::Unsupported)));
        }
        let quickack = self.opts.sock.quickack;
        let c = live(&mut self.slots, id)?;
        if c.pipe.is_empty() {
            c.may_read()?;
            c.fill(&mut [], &mut self.pool)?;
            c.quickack(quickack);
        }
        let bytes = c.pipe.readable();
        let n = parse(bytes).min(bytes.len());
        c.pipe.consume(n, &mut self.pool);
        c.counters.bytes_parsed_in_place += n as u64;
        c.note_pipe_ready(id.idx, &mut self.pipe_ready);
        Ok(n)
    }

    /// Queues a write; it goes out at the next [`SockGroup::flush`] or poll. On error the request is
    /// handed back (queue full, socket closed or failed).
    // The refused request goes back whole so the caller keeps its buffers; the error path is cold.
    #[allow(clippy::result_large_err)]
    pub fn write(&mut self, id: SockId, req: WriteReq<B>) -> Result<(), (SockError, WriteReq<B>)> {
        let c = match live(&mut self.slots, id) {
            Ok(c) => c,
            Err(e) => return Err((e, req)),
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

    /// Sends what every socket has queued: one sendmsg per socket gathering many requests. With
    /// io_uring the SQEs are queued and submitted with one io_uring_enter (poll does it as part of its
    /// wait instead).
    pub fn flush(&mut self) {
        self.flush_queue();
        if let Some(ug) = &mut self.uring
            && let Err(e) = ug.ring.enter(None, &mut self.counters)
        {
            tracing::warn!("io_uring_enter failed: {e}");
        }
    }

    fn flush_queue(&mut self) {
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
        if self.uring.is_some() {
            return self.flush_one_uring(idx);
        }
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
        if c.broken && !c.u.busy_sending() {
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
        if self.uring.is_some() {
            return self.poll_uring(timeout, events);
        }
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
            if r.token >= LISTENER_TOKENS {
                self.accept_ready((r.token - LISTENER_TOKENS) as u32);
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
            // Any readiness may mean new bytes, an EOF or an error: the next read asks the kernel.
            c.drained = false;
            if let Some(e) = failed
                && !c.broken
            {
                c.broken = true;
                c.rx_error = Some(e.duplicate());
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

/// Where a completion for a socket token goes.
enum Owner {
    Live(u32),
    Zombie(usize),
    Gone,
}

impl<B: StableBuf> SockGroup<B> {
    fn owner(&self, idx: u32, gen24: u32) -> Owner {
        if let Some(Some(c)) = self.slots.get(idx as usize)
            && c.generation & 0xFF_FFFF == gen24
        {
            return Owner::Live(idx);
        }
        match self.zombies.iter().position(|z| z.idx == idx && z.generation & 0xFF_FFFF == gen24) {
            Some(i) => Owner::Zombie(i),
            None => Owner::Gone,
        }
    }

    /// `recvv` on io_uring: copies out of the socket's received provided buffers (the one copy) and
    /// gives each emptied buffer back to the ring.
    fn recvv_uring(&mut self, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        let quickack = self.opts.sock.quickack;
        let Some(ug) = self.uring.as_mut() else { return Err(SockError::Closed) };
        let c = live(&mut self.slots, id)?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let mut got = 0;
        'out: for b in bufs.iter_mut() {
            let mut off = 0;
            while off < b.len() {
                let Some(front) = c.u.rxq.front() else { break 'out };
                let src = &ug.ring.bufs.buf(front.bid)[front.off..front.off + front.len];
                let n = src.len().min(b.len() - off);
                b[off..off + n].copy_from_slice(&src[..n]);
                off += n;
                got += n;
                if let Some(bid) = c.u.consume_front(n) {
                    ug.ring.recycle(bid);
                }
            }
        }
        c.counters.bytes_copied += got as u64;
        if got > 0 {
            c.quickack(quickack);
            return Ok(got);
        }
        Err(c.u.nothing_buffered())
    }

    /// [`SockGroup::recv_in_place`] on io_uring: the oldest provided buffer's unread bytes go to `parse`,
    /// and a buffer used up returns to the ring.
    fn recv_in_place_uring(&mut self, id: SockId, parse: impl FnOnce(&[u8]) -> usize) -> SockResult<usize> {
        let quickack = self.opts.sock.quickack;
        let SockGroup { uring, slots, .. } = self;
        let Some(ug) = uring.as_mut() else { return Err(SockError::Closed) };
        let c = live(slots, id)?;
        let Some(front) = c.u.rxq.front() else { return Err(c.u.nothing_buffered()) };
        let bytes = &ug.ring.bufs.buf(front.bid)[front.off..front.off + front.len];
        let n = parse(bytes).min(bytes.len());
        if let Some(bid) = c.u.consume_front(n) {
            ug.ring.recycle(bid);
        }
        c.counters.bytes_parsed_in_place += n as u64;
        if n > 0 {
            c.quickack(quickack);
        }
        Ok(n)
    }

    /// Queues one sendmsg (or sendmsg_zc) SQE gathering the socket's unsent requests, unless one is in
    /// flight already (one per socket keeps the stream in order).
    fn flush_one_uring(&mut self, idx: u32) {
        let threshold = self.opts.zerocopy_threshold;
        let max_iovs = self.opts.max_iovs.clamp(1, libc::UIO_MAXIOV as usize);
        let SockGroup { uring, slots, counters, pending, .. } = self;
        let Some(ug) = uring.as_mut() else { return };
        let Some(Some(c)) = slots.get_mut(idx as usize) else { return };
        if c.broken || c.u.send.is_some() || c.u.pollout {
            return;
        }
        let id = SockId { idx, generation: c.generation };
        while c.wq.has_unsent() {
            let total = c.wq.gather(&mut c.u.iovs, max_iovs);
            if total == 0 {
                c.wq.advance(0, None);
                continue;
            }
            let use_zc = ug.ring.setup.send_zc && c.zc_on && threshold.is_some_and(|t| total >= t);
            c.u.msg.msg_iov = c.u.iovs.as_mut_ptr();
            c.u.msg.msg_iovlen = c.u.iovs.len() as _;
            let msg: *const libc::msghdr = &*c.u.msg;
            let flags = libc::MSG_NOSIGNAL as u32;
            let (e, zc_id) = if use_zc {
                let zid = c.zc_next_id;
                c.zc_next_id = zid.wrapping_add(1);
                let slot = ug.alloc_zc(ZcOp { idx, generation: c.generation, id: zid });
                let e = on_fd!(c.u, |f| opcode::SendMsgZc::new(f, msg)
                    .ioprio(uring::SEND_ZC_REPORT_USAGE)
                    .flags(flags)
                    .build())
                .user_data(uring::user_data(Kind::SendZc, slot as u64));
                c.counters.zc_sends += 1;
                c.counters.zc_bytes += total as u64;
                (e, Some(zid))
            } else {
                let e = on_fd!(c.u, |f| opcode::SendMsg::new(f, msg).flags(flags).build())
                    .user_data(uring::user_data(Kind::Send, uring::sock_token(idx, c.generation)));
                (e, None)
            };
            c.counters.sendmsg += 1;
            c.counters.uring_sends += 1;
            // SAFETY: the SQE points at `c.u.msg` and `c.u.iovs` (heap memory owned by this connection,
            // not touched while `c.u.send` is set) and through them at the queued requests, whose
            // memory never moves (WriteQueue never reallocates; StableBuf data is pinned). The request
            // completes (and, for zero copy, is notified) before any of it is released: completions
            // pop requests only after the CQE, close keeps them in a zombie until then, and Drop waits
            // for the ring to go idle or leaks them.
            match unsafe { ug.ring.push(&e, counters) } {
                Ok(()) => c.u.send = Some(InFlight { total, zc_id }),
                Err(err) => {
                    c.broken = true;
                    pending.push(Event::Failed(id, SockError::from_io(err)));
                }
            }
            break;
        }
        self.collect_completions(idx);
    }

    /// `poll` on io_uring: queue sends and re-arms, one enter (submit + wait), handle completions,
    /// report readable sockets (at most `max_events`, rotating) and completed writes.
    fn poll_uring(&mut self, timeout: Option<Duration>, events: &mut Vec<Event<B>>) -> io::Result<usize> {
        let before = events.len();
        self.flush_queue();
        self.round += 1;
        let round = self.round;
        self.rearm_starved();
        let SockGroup { uring, slots, counters, pending, zombies, .. } = self;
        let ug = uring.as_mut().expect("uring group");
        for (lidx, slot) in std::mem::take(&mut ug.install_retry) {
            ug.install_fd(lidx, slot, counters);
        }
        ug.rx_ready.retain(|&i| match slots.get_mut(i as usize) {
            Some(Some(c)) if c.u.has_input() => true,
            Some(Some(c)) => {
                c.u.in_rx_ready = false;
                false
            }
            _ => false,
        });
        // Foreign completions not yet taken must not wait behind a blocking enter either.
        let busy = !ug.rx_ready.is_empty() || !pending.is_empty() || !ug.foreign_done.is_empty();
        let wait = match timeout {
            _ if busy => None,
            Some(d) if d.is_zero() => None,
            t => Some(t),
        };
        let _ = zombies;
        ug.ring.enter(wait, counters)?;
        let mut cqes = std::mem::take(&mut ug.cqes);
        cqes.clear();
        ug.ring.reap(&mut cqes, counters);
        counters.waits += 1;
        counters.kernel_events += cqes.len() as u64;
        if cqes.is_empty() {
            counters.empty_waits += 1;
        }
        for cqe in &cqes {
            self.on_cqe(*cqe, round, events);
        }
        let ug = self.uring.as_mut().expect("uring group");
        ug.cqes = cqes;
        // Readable sockets, rotating so a bounded event count still serves every one.
        let n = ug.rx_ready.len();
        let max = self.opts.max_events.max(1);
        let mut reported = 0;
        let start = if n > 0 { ug.rotate % n } else { 0 };
        let mut last = start;
        for k in 0..n {
            if reported == max {
                break;
            }
            let i = (start + k) % n;
            let idx = ug.rx_ready[i];
            if let Some(Some(c)) = self.slots.get_mut(idx as usize)
                && c.u.has_input()
                && c.reported != round
            {
                c.reported = round;
                if c.u.cqe_round != round {
                    self.counters.pipe_events += 1;
                }
                events.push(Event::Readable(SockId { idx, generation: c.generation }));
                reported += 1;
                last = i;
            }
        }
        if n > 0 {
            ug.rotate = last + 1;
        }
        events.append(&mut self.pending);
        Ok(events.len() - before)
    }

    fn rearm_starved(&mut self) {
        let Some(ug) = self.uring.as_mut() else { return };
        if ug.starved.is_empty() {
            return;
        }
        let threshold = (ug.ring.bufs.count() as usize / 8).max(1);
        let mut starved = std::mem::take(&mut ug.starved);
        starved.retain(|&idx| {
            let Some(Some(c)) = self.slots.get_mut(idx as usize) else { return false };
            if !c.u.starved || c.u.recv_armed {
                c.u.starved = false;
                return false;
            }
            if ug.ring.bufs.available() < threshold {
                return true;
            }
            match ug.arm_recv(&mut c.u, idx, c.generation, &mut self.counters) {
                Ok(()) => {
                    self.counters.uring_rearms += 1;
                    false
                }
                Err(_) => true,
            }
        });
        ug.starved = starved;
    }

    fn mark_rx_ready(ug: &mut UringGroup, c: &mut Conn<B>, idx: u32) {
        if !c.u.in_rx_ready {
            c.u.in_rx_ready = true;
            ug.rx_ready.push(idx);
        }
    }

    fn on_cqe(&mut self, cqe: Cqe, round: u64, events: &mut Vec<Event<B>>) {
        let (kind, payload) = uring::split_user_data(cqe.user_data);
        match kind {
            Some(Kind::Recv) => {
                let (idx, g) = uring::split_sock_token(payload);
                let owner = self.owner(idx, g);
                self.on_recv(owner, cqe, round);
            }
            Some(Kind::Send) => {
                let (idx, g) = uring::split_sock_token(payload);
                let owner = self.owner(idx, g);
                self.on_send(owner, cqe, None);
            }
            Some(Kind::SendZc) => {
                let Some(ug) = self.uring.as_mut() else { return };
                let Some(Some(op)) = ug.zc_ops.get(payload as usize).copied() else { return };
                if !cqe.more() {
                    ug.zc_ops[payload as usize] = None;
                    ug.zc_free.push(payload as u32);
                }
                let owner = self.owner(op.idx, op.generation & 0xFF_FFFF);
                if cqe.notif() {
                    self.on_zc_notif(owner, cqe, op.id);
                } else {
                    self.on_send(owner, cqe, Some(op.id));
                }
            }
            Some(Kind::PollOut) => {
                let (idx, g) = uring::split_sock_token(payload);
                match self.owner(idx, g) {
                    Owner::Live(i) => {
                        if let Some(Some(c)) = self.slots.get_mut(i as usize) {
                            c.u.pollout = false;
                        }
                        self.flush_one_uring(i);
                    }
                    Owner::Zombie(z) => {
                        self.zombies[z].u.pollout = false;
                        self.reap_zombie(z);
                    }
                    Owner::Gone => {}
                }
            }
            Some(Kind::Wake) => {
                if let Some(w) = &self.waker {
                    let mut v: u64 = 0;
                    // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
                    unsafe { libc::read(w.fd.as_raw_fd(), (&raw mut v).cast(), 8) };
                }
                events.push(Event::Wake);
                if !cqe.more()
                    && let Some(ug) = self.uring.as_mut()
                {
                    ug.arm_wake(&mut self.counters);
                }
            }
            Some(Kind::Foreign) => {
                if let Some(ug) = self.uring.as_mut() {
                    ug.foreign_inflight = ug.foreign_inflight.saturating_sub(1);
                    ug.foreign_counts.cqes += 1;
                    ug.foreign_done.push((payload, cqe.res));
                }
            }
            Some(Kind::AcceptDirect) => self.on_accept(true, payload, cqe),
            Some(Kind::AcceptFd) => self.on_accept(false, payload, cqe),
            Some(Kind::FdInstall) => self.on_fd_install(payload, cqe),
            Some(Kind::Ignore) | None => {}
        }
    }

    /// An accept completion: a slot (direct) or a descriptor, or an error; re-arms when it was the last.
    fn on_accept(&mut self, direct: bool, payload: u64, cqe: Cqe) {
        let (idx, g) = uring::split_sock_token(payload);
        let (lid, live) = self.listener_id(idx, g);
        if cqe.res >= 0 {
            if direct {
                self.counters.accepts_multishot += 1;
                let ug = self.uring.as_mut().expect("uring group");
                ug.accept_in_use += 1;
                ug.install_fd(idx, cqe.res as u32, &mut self.counters);
            } else {
                self.counters.accepts_plain += 1;
                // SAFETY: the accept returned a fresh descriptor that nobody else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(cqe.res) };
                let sock = TcpSock::from_accepted(fd, &self.opts.sock);
                self.join_accepted(lid, sock, None);
            }
        } else {
            let errno = -cqe.res;
            if errno != libc::ECANCELED {
                self.counters.accept_errors += 1;
            }
            if errno == libc::ENFILE && direct {
                // The range is full (the kernel closed the connection it could not place, see
                // `want_direct`): regular descriptors until a slot is freed.
                self.uring.as_mut().expect("uring group").accept_full = true;
            }
            if !transient_accept_error(errno)
                && let Some(i) = live
                && let Some(l) = self.listeners[i].as_mut()
            {
                tracing::warn!("accept on listener {i} failed for good: {}", io::Error::from_raw_os_error(errno));
                l.failed = true;
            }
        }
        let Some(i) = live else { return };
        let SockGroup { uring, listeners, counters, .. } = self;
        let ug = uring.as_mut().expect("uring group");
        let l = listeners[i].as_mut().expect("live");
        if l.armed != Some(direct) {
            return;
        }
        if !cqe.more() {
            // Multishot ended (error, cancellation for a mode switch, one-shot accept): arm again, so
            // pending connections keep waiting in the backlog rather than being lost.
            l.armed = None;
            if !l.failed {
                match ug.arm_accept(l, idx, counters) {
                    Ok(()) => counters.accept_rearms += 1,
                    Err(e) => tracing::warn!("accept could not be re-armed: {e}"),
                }
            }
        } else if !l.cancelling && ug.ring.accept_multi() && ug.want_direct() != direct {
            // Switch modes (range nearly full, or free again): cancel, re-arm at the last completion.
            l.cancelling = true;
            let kind = if direct { Kind::AcceptDirect } else { Kind::AcceptFd };
            ug.cancel(uring::user_data(kind, payload), counters);
        }
    }

    /// FIXED_FD_INSTALL done: the accepted socket gets its regular descriptor and joins the group.
    fn on_fd_install(&mut self, payload: u64, cqe: Cqe) {
        let (lidx, slot) = ((payload >> 32) as u32, payload as u32);
        let ug = self.uring.as_mut().expect("uring group");
        if cqe.res < 0 {
            self.counters.accept_errors += 1;
            if matches!(-cqe.res, libc::EMFILE | libc::ENFILE | libc::ENOMEM) {
                ug.install_retry.push((lidx, slot));
            } else {
                tracing::warn!("fd install of accepted slot {slot} failed: {}", io::Error::from_raw_os_error(-cqe.res));
                ug.close_accept_slot(slot, &mut self.counters);
            }
            return;
        }
        let (lid, _) = match self.listeners.get(lidx as usize) {
            Some(Some(l)) => self.listener_id(lidx, l.generation & 0xFF_FFFF),
            _ => self.listener_id(lidx, 0),
        };
        // SAFETY: FIXED_FD_INSTALL returned a fresh descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(cqe.res) };
        let sock = TcpSock::from_accepted(fd, &self.opts.sock);
        self.join_accepted(lid, sock, Some(slot));
    }

    fn on_recv(&mut self, owner: Owner, cqe: Cqe, round: u64) {
        let SockGroup { uring, slots, zombies, counters, .. } = self;
        let Some(ug) = uring.as_mut() else { return };
        let res = cqe.res;
        let mut bids = std::mem::take(&mut ug.bids);
        bids.clear();
        if let Some(first) = cqe.buffer() {
            bids.extend(ug.ring.bufs.bids_of(first, res.max(0) as usize));
        }
        let size = ug.ring.bufs.buf_size();
        match owner {
            Owner::Live(idx) => {
                let c = slots[idx as usize].as_mut().expect("live");
                let mut left = res.max(0) as usize;
                for &bid in &bids {
                    let len = left.min(size);
                    left -= len;
                    if len == 0 {
                        ug.ring.recycle(bid);
                    } else {
                        c.u.rxq.push_back(RxBuf { bid, off: 0, len });
                    }
                }
                c.u.cqe_round = round;
                if res > 0 {
                    c.u.rx_len += res as usize;
                    c.counters.uring_recv_cqes += 1;
                    c.counters.bytes_into_bufs += res as u64;
                    Self::mark_rx_ready(ug, c, idx);
                } else if res == 0 {
                    c.u.eof = true;
                    Self::mark_rx_ready(ug, c, idx);
                } else if res == -libc::ENOBUFS {
                    counters.uring_enobufs += 1;
                    if !cqe.more() {
                        c.u.starved = true;
                        ug.starved.push(idx);
                    }
                } else if res != -libc::ECANCELED {
                    c.u.rx_err = Some(-res);
                    Self::mark_rx_ready(ug, c, idx);
                }
                if !cqe.more() {
                    c.u.recv_armed = false;
                    if res > 0 && !c.u.eof && c.u.rx_err.is_none() {
                        if ug.ring.bufs.available() < (ug.ring.bufs.count() as usize / 8).max(1) {
                            // The kernel stops a multishot receive that emptied the ring: wait for
                            // buffers to come back, as after ENOBUFS.
                            counters.uring_enobufs += 1;
                            c.u.starved = true;
                            ug.starved.push(idx);
                        } else if ug.arm_recv(&mut c.u, idx, c.generation, counters).is_ok() {
                            // Ended for a reason of its own (e.g. completion-queue overflow): arm again.
                            counters.uring_rearms += 1;
                        }
                    }
                }
            }
            Owner::Zombie(z) => {
                for &bid in &bids {
                    ug.ring.recycle(bid);
                }
                if !cqe.more() {
                    zombies[z].u.recv_armed = false;
                }
                ug.bids = bids;
                self.reap_zombie(z);
                return;
            }
            Owner::Gone => {
                for &bid in &bids {
                    ug.ring.recycle(bid);
                }
            }
        }
        ug.bids = bids;
    }

    fn on_send(&mut self, owner: Owner, cqe: Cqe, zc_id: Option<u32>) {
        match owner {
            Owner::Live(idx) => {
                let SockGroup { uring, slots, counters, pending, dirty, .. } = self;
                let ug = uring.as_mut().expect("uring group");
                let c = slots[idx as usize].as_mut().expect("live");
                let id = SockId { idx, generation: c.generation };
                let flight = c.u.send.take();
                if let Some(zid) = zc_id {
                    if cqe.more() {
                        c.u.zc_pending += 1;
                    } else {
                        c.zc.release(zid, zid);
                    }
                }
                let res = cqe.res;
                if res >= 0 {
                    let n = res as usize;
                    c.counters.bytes_sent += n as u64;
                    c.wq.advance(n, if n > 0 { zc_id } else { None });
                    if flight.is_some_and(|f| n < f.total) {
                        c.counters.sendmsg_partial += 1;
                    }
                } else if res == -libc::EAGAIN {
                    c.counters.sendmsg_partial += 1;
                    let e = on_fd!(c.u, |f| opcode::PollAdd::new(f, libc::POLLOUT as u32).build())
                        .user_data(uring::user_data(Kind::PollOut, uring::sock_token(idx, c.generation)));
                    // SAFETY: a poll request points at no memory of ours.
                    if unsafe { ug.ring.push(&e, counters) }.is_ok() {
                        c.u.pollout = true;
                    }
                } else if res != -libc::ECANCELED && !c.broken {
                    c.broken = true;
                    pending.push(Event::Failed(id, SockError::from_io(io::Error::from_raw_os_error(-res))));
                }
                if c.wq.has_unsent() && !c.dirty && !c.broken && !c.u.pollout {
                    c.dirty = true;
                    dirty.push(idx);
                }
                self.collect_completions(idx);
            }
            Owner::Zombie(z) => {
                let zb = &mut self.zombies[z];
                zb.u.send = None;
                if cqe.more() && zc_id.is_some() {
                    zb.u.zc_pending += 1;
                }
                self.reap_zombie(z);
            }
            Owner::Gone => {}
        }
    }

    fn on_zc_notif(&mut self, owner: Owner, cqe: Cqe, zid: u32) {
        match owner {
            Owner::Live(idx) => {
                let c = self.slots[idx as usize].as_mut().expect("live");
                c.counters.zc_notifications += 1;
                c.u.zc_pending = c.u.zc_pending.saturating_sub(1);
                c.zc.release(zid, zid);
                if cqe.res as u32 & uring::NOTIF_USAGE_ZC_COPIED != 0 {
                    c.counters.zc_copied += 1;
                    if c.zc_on {
                        // The kernel copied anyway (loopback, veth): pinning pages only costs here.
                        c.zc_on = false;
                        c.counters.zc_fallbacks += 1;
                    }
                }
                self.collect_completions(idx);
            }
            Owner::Zombie(z) => {
                let zb = &mut self.zombies[z];
                zb.u.zc_pending = zb.u.zc_pending.saturating_sub(1);
                self.reap_zombie(z);
            }
            Owner::Gone => {}
        }
    }

    /// Hands a closed socket's requests back once the kernel holds none of them.
    fn reap_zombie(&mut self, z: usize) {
        if self.zombies[z].u.busy() {
            return;
        }
        let mut zb = self.zombies.swap_remove(z);
        let id = SockId { idx: zb.idx, generation: zb.generation };
        for req in zb.wq.drain_all() {
            self.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Closed) });
        }
    }
}

impl<B: StableBuf> Drop for SockGroup<B> {
    fn drop(&mut self) {
        let Some(ug) = self.uring.as_mut() else { return };
        let mut sink = Vec::new();
        if ug.ring.cancel_all(&mut sink, &mut self.counters) && ug.ring.unregister_bufs().is_ok() {
            return;
        }
        // The kernel may still read requests or write buffers: leak them rather than free them.
        tracing::error!("io_uring requests still in flight at teardown; leaking their memory");
        ug.ring.bufs.leak();
        std::mem::forget(std::mem::take(&mut ug.keep_alive));
        std::mem::forget(std::mem::take(&mut self.slots));
        std::mem::forget(std::mem::take(&mut self.zombies));
    }
}
