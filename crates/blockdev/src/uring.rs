//! The file backend's io_uring mode, sans-IO: a [`FileHandle`] attached to a ring
//! ([`BlockDev::attach_uring`](crate::BlockDev::attach_uring)) turns each read, write and flush into
//! an SQE kept in its own queue, which the ring's owner (the reactor's socket group) drains with
//! `take_sqes` and submits with its own single io_uring_enter per loop; the owner hands each CQE
//! result back with `complete`, and finished requests come out of `poll` as before.
//!
//! This module owns the requests in flight on the ring: their buffers (kept, untouched, until the
//! kernel is done with them), their progress and their durability steps.
//!
//! - Read / Write: IORING_OP_READ / IORING_OP_WRITE at the request's offset. Short transfers are
//!   resubmitted for the remainder (counted in `short_ios`); a transfer of 0 bytes (the file shrank
//!   behind our back) fails with EIO, like the synchronous path.
//! - FUA: the write carries RWF_DSYNC, so its completion means the data is stable; where the kernel
//!   refuses the flag, the write is followed by an FSYNC(DATASYNC) before completing.
//! - Flush: FSYNC with IORING_FSYNC_DATASYNC.
//! - EINVAL under O_DIRECT drops O_DIRECT on the shared description and retries once (as the
//!   synchronous path does); EINTR and EAGAIN are retried; other errors map to [`IoError::Io`].
//! - WriteZeroes and Deallocate stay synchronous (fallocate), as do range and length errors, which
//!   complete inside `submit`.
//!
//! - Fixed buffers: once told the ring's registered [`Arena`] ([`FileHandle::use_fixed_buffers`]),
//!   a buffer carved from that arena goes out as READ_FIXED / WRITE_FIXED with the arena's buffer
//!   index (no page pinning per I/O); any other buffer (heap, another arena) as plain READ / WRITE.

use crate::buf::{Arena, IoBuf};
use crate::file::FileHandle;
use crate::{IoError, check_data};
use io_uring::{opcode, types};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;

/// An SQE prepared by a block handle for the caller's ring.
pub type UringSqe = io_uring::squeue::Entry;

/// Bits of a block handle's SQE token; the caller may use the bits above (e.g. for a namespace index).
pub const URING_TOKEN_BITS: u32 = 40;

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write { fua: bool },
    Flush,
}

/// The SQE a request has in flight (one at a time: each step starts when the previous completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Read,
    Write { dsync: bool },
    Fsync,
}

/// One request on the ring.
#[derive(Debug)]
struct Op {
    tag: u64,
    kind: Kind,
    /// The data buffer; its heap bytes never move, and nothing touches them while an SQE is in flight.
    buf: Option<IoBuf>,
    off: u64,
    /// Bytes transferred so far.
    done: usize,
    step: Step,
    /// O_DIRECT was dropped once for this request already.
    direct_retried: bool,
}

/// The requests of a handle attached to a ring.
#[derive(Debug, Default)]
pub(crate) struct RingState {
    ops: Vec<Option<Op>>,
    /// Generation of each slot (low 8 bits go into the token), so a stale token is recognised.
    gens: Vec<u8>,
    free: Vec<u32>,
    live: usize,
    /// Prepared SQEs not yet taken by the ring's owner.
    sqes: Vec<(UringSqe, u64)>,
    /// RWF_DSYNC accepted on writes so far (learned per handle).
    no_rwf_dsync: bool,
    /// Id of the arena registered with the ring: its buffers use READ_FIXED / WRITE_FIXED.
    fixed_arena: Option<u64>,
}

impl RingState {
    /// Requests on the ring (prepared or in flight).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    fn alloc(&mut self, op: Op) -> u32 {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.ops[i as usize] = Some(op);
                i
            }
            None => {
                self.ops.push(Some(op));
                self.gens.push(0);
                (self.ops.len() - 1) as u32
            }
        }
    }

    fn token(&self, idx: u32) -> u64 {
        u64::from(self.gens[idx as usize]) << 32 | u64::from(idx)
    }

    fn slot(&self, token: u64) -> Option<u32> {
        let idx = token as u32;
        let g = (token >> 32) as u8;
        (token < 1 << URING_TOKEN_BITS
            && self.gens.get(idx as usize) == Some(&g)
            && matches!(self.ops.get(idx as usize), Some(Some(_))))
        .then_some(idx)
    }

    fn release(&mut self, idx: u32) -> Op {
        let op = self.ops[idx as usize].take().expect("live slot");
        self.gens[idx as usize] = self.gens[idx as usize].wrapping_add(1);
        self.free.push(idx);
        self.live -= 1;
        op
    }

    /// Buffers of requests the kernel may still use: leaked when the handle is dropped early.
    pub(crate) fn leak_live(&mut self) {
        for op in self.ops.iter_mut().flatten() {
            if let Some(b) = op.buf.take() {
                std::mem::forget(b);
            }
        }
    }
}

/// How a completed step moves its request on.
enum Next {
    Again,
    Step(Step),
    Done(Result<(), IoError>),
}

impl FileHandle {
    /// Switches this handle to ring mode (see the module docs). Idempotent.
    pub fn attach(&mut self) {
        if self.ring.is_none() {
            self.ring = Some(RingState::default());
        }
    }

    /// Uses READ_FIXED / WRITE_FIXED for buffers of `arena`, which must be registered with the ring
    /// this handle's SQEs go to ([`Arena::register`]). False, changing nothing, when the handle is not
    /// attached or the arena is not registered.
    pub fn use_fixed_buffers(&mut self, arena: &Arena) -> bool {
        match (self.ring.as_mut(), arena.index()) {
            (Some(r), Some(_)) => {
                r.fixed_arena = Some(arena.id());
                true
            }
            _ => false,
        }
    }

    /// True once attached to a ring.
    pub fn attached(&self) -> bool {
        self.ring.is_some()
    }

    /// Queues a read, write or flush on the ring; range and length errors complete at once.
    pub(crate) fn ring_submit(&mut self, tag: u64, op: crate::IoOp) {
        let info = self.info;
        let (kind, buf, off) = match op {
            crate::IoOp::Read { lba, blocks, buf } => match check_data(&info, lba, blocks, &buf) {
                Ok(off) => (Kind::Read, Some(buf), off),
                Err(e) => return self.finish_now(tag, Err(e), Some(buf)),
            },
            crate::IoOp::Write { lba, blocks, buf, fua } => match check_data(&info, lba, blocks, &buf) {
                Ok(off) => (Kind::Write { fua }, Some(buf), off),
                Err(e) => return self.finish_now(tag, Err(e), Some(buf)),
            },
            crate::IoOp::Flush => (Kind::Flush, None, 0),
            _ => unreachable!("only reads, writes and flushes go to the ring"),
        };
        if buf.as_ref().is_some_and(|b| b.is_empty()) {
            return self.finish_now(tag, Ok(()), buf);
        }
        let ring = self.ring.as_mut().expect("attached");
        let step = match kind {
            Kind::Read => Step::Read,
            Kind::Write { fua } => Step::Write { dsync: fua && !ring.no_rwf_dsync },
            Kind::Flush => Step::Fsync,
        };
        let idx = ring.alloc(Op { tag, kind, buf, off, done: 0, step, direct_retried: false });
        self.prepare(idx);
    }

    fn finish_now(&mut self, tag: u64, result: Result<(), IoError>, buf: Option<IoBuf>) {
        if result.is_err() {
            self.stats.errors += 1;
        }
        self.done.push(tag, result, buf);
    }

    /// Builds the SQE of request `idx`'s current step and queues it for the ring's owner.
    fn prepare(&mut self, idx: u32) {
        let fd = types::Fd(self.shared.file.as_raw_fd());
        let ring = self.ring.as_mut().expect("attached");
        let token = ring.token(idx);
        let fixed_arena = ring.fixed_arena;
        let op = ring.ops[idx as usize].as_mut().expect("live slot");
        let pos = op.off + op.done as u64;
        // The buffer index when the buffer lies in the arena registered with this ring.
        let fixed = op.buf.as_ref().and_then(IoBuf::fixed).and_then(|(a, i)| (Some(a) == fixed_arena).then_some(i));
        if fixed.is_some() {
            self.stats.uring_fixed_sqes += 1;
        }
        // The pointers below stay valid until the completion: the Op owns the IoBuf (whose bytes never
        // move) and releases it only in `ring_complete`, or leaks it if dropped earlier; for a fixed op
        // the bytes also lie inside the registered arena, which the ring's group keeps mapped.
        let e = match op.step {
            Step::Read => {
                let b = op.buf.as_mut().expect("read buffer");
                let rest = &mut b[op.done..];
                match fixed {
                    Some(i) => opcode::ReadFixed::new(fd, rest.as_mut_ptr(), rest.len() as u32, i).offset(pos).build(),
                    None => opcode::Read::new(fd, rest.as_mut_ptr(), rest.len() as u32).offset(pos).build(),
                }
            }
            Step::Write { dsync } => {
                let b = op.buf.as_ref().expect("write buffer");
                let rest = &b[op.done..];
                let flags = if dsync { libc::RWF_DSYNC } else { 0 };
                match fixed {
                    Some(i) => opcode::WriteFixed::new(fd, rest.as_ptr(), rest.len() as u32, i)
                        .offset(pos)
                        .rw_flags(flags)
                        .build(),
                    None => {
                        opcode::Write::new(fd, rest.as_ptr(), rest.len() as u32).offset(pos).rw_flags(flags).build()
                    }
                }
            }
            Step::Fsync => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build(),
        };
        self.stats.uring_sqes += 1;
        if op.step == Step::Fsync {
            self.stats.fsyncs += 1;
        }
        ring.sqes.push((e, token));
    }

    /// Moves the prepared SQEs out (see [`crate::BlockDev::take_sqes`]).
    pub(crate) fn ring_take(&mut self, out: &mut Vec<(UringSqe, u64)>) -> usize {
        let Some(ring) = self.ring.as_mut() else { return 0 };
        let n = ring.sqes.len();
        out.append(&mut ring.sqes);
        n
    }

    /// Applies the result of the SQE that carried `token`.
    pub(crate) fn ring_complete(&mut self, token: u64, res: i32) {
        let direct = self.shared.direct.load(Relaxed);
        let Some(ring) = self.ring.as_mut() else { return };
        let Some(idx) = ring.slot(token) else {
            tracing::warn!(token, res, "completion for no request of this handle; ignored");
            return;
        };
        let no_dsync = &mut ring.no_rwf_dsync;
        let op = ring.ops[idx as usize].as_mut().expect("live slot");
        let len = op.buf.as_ref().map_or(0, |b| b.len());
        let mut drop_direct = false;
        let next = match (op.step, res) {
            (_, r) if r == -libc::EINTR || r == -libc::EAGAIN => Next::Again,
            (Step::Write { dsync: true }, r) if r == -libc::EOPNOTSUPP || r == -libc::ENOSYS => {
                // The kernel refuses RWF_DSYNC here: write plainly, then sync.
                *no_dsync = true;
                Next::Step(Step::Write { dsync: false })
            }
            (Step::Read | Step::Write { .. }, r) if r == -libc::EINVAL && direct && !op.direct_retried => {
                op.direct_retried = true;
                drop_direct = true;
                Next::Again
            }
            (_, r) if r < 0 => Next::Done(Err(IoError::Io(-r))),
            (Step::Fsync, _) => Next::Done(Ok(())),
            (Step::Read | Step::Write { .. }, 0) => Next::Done(Err(IoError::Io(libc::EIO))),
            (step, r) => {
                op.done += r as usize;
                if op.done < len {
                    self.stats.short_ios += 1;
                    Next::Again
                } else {
                    match (op.kind, step) {
                        (Kind::Write { fua: true }, Step::Write { dsync: false }) => Next::Step(Step::Fsync),
                        _ => Next::Done(Ok(())),
                    }
                }
            }
        };
        if drop_direct {
            self.shared.drop_direct("EINVAL on I/O");
        }
        match next {
            Next::Again => self.prepare(idx),
            Next::Step(s) => {
                let op = self.ring.as_mut().expect("attached").ops[idx as usize].as_mut().expect("live slot");
                op.step = s;
                self.prepare(idx);
            }
            Next::Done(result) => {
                let op = self.ring.as_mut().expect("attached").release(idx);
                self.stats.uring_ios += 1;
                match (&result, op.kind, op.step) {
                    (Err(_), ..) => self.stats.errors += 1,
                    (Ok(()), Kind::Read, _) => self.stats.reads += 1,
                    (Ok(()), Kind::Write { .. }, step) => {
                        self.stats.writes += 1;
                        if step == (Step::Write { dsync: true }) {
                            self.stats.dsync_writes += 1;
                        }
                    }
                    (Ok(()), Kind::Flush, _) => self.stats.flushes += 1,
                }
                self.done.push(op.tag, result, op.buf);
            }
        }
    }
}
