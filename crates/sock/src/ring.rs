//! The io_uring machinery of a socket group: one ring per group (so per reactor), its provided-buffer
//! ring, its sparse fixed-file table, the user-data encoding of every operation, and the one
//! `io_uring_enter` per poll that submits the batch and waits together.
//!
//! This module owns:
//! - the ring ([`Ring`]): created with SINGLE_ISSUER + DEFER_TASKRUN (+ TASKRUN_FLAG) where the kernel
//!   has them, COOP_TASKRUN where it has only that, plain otherwise; the ring starts disabled and is
//!   enabled by the first enter, so the thread that polls (not the one that built the group) becomes
//!   its single issuer;
//! - the provided buffers ([`BufRing`]): `count` buffers of `size` bytes in one anonymous mapping, and a
//!   registered buffer ring of `2 * count` entries. The doubled ring keeps our mirror of "which buffer
//!   sits at which ring position" valid until every completion that consumed a position has been reaped
//!   (see [`BufRing::bids_of`]), which is what bundles (one CQE, several buffers) need;
//! - the counters of the ring itself (enters, SQEs, CQEs, buffers recycled, re-arms);
//! - the fixed-file table's layout: `fixed_files` slots installed by `SockGroup::add`, then as many
//!   again that the kernel allocates for multishot accepts (IORING_REGISTER_FILE_ALLOC_RANGE);
//! - the user-data kind of foreign requests ([`Kind::Foreign`]): SQEs the group's owner prepares (the
//!   file backend's reads, writes and fsyncs) ride the same ring and the same enter.
//!
//! The group (`group.rs`) decides what to submit and what a completion means for a connection.

use crate::counters::GroupCounters;
use crate::mem::AnonMap;
use io_uring::types::{self, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Buffer group id of the group's provided-buffer ring.
pub const BGID: u16 = 0;

/// IORING_SEND_ZC_REPORT_USAGE: ask the notification to say whether the kernel copied.
pub const SEND_ZC_REPORT_USAGE: u16 = 8;
/// IORING_NOTIF_USAGE_ZC_COPIED: set in a notification's result when the kernel copied the data.
pub const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// What a completion belongs to: the top byte of its user data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Multishot receive of a socket (payload: socket token).
    Recv,
    /// sendmsg of a socket (payload: socket token).
    Send,
    /// sendmsg_zc of a socket (payload: index into the group's zero-copy op slab).
    SendZc,
    /// One-shot POLLOUT after a send found no room (payload: socket token).
    PollOut,
    /// Multishot poll of the waker's eventfd.
    Wake,
    /// Cancellations and other fire-and-forget requests.
    Ignore,
    /// A request the group carries for its owner (e.g. block-device file I/O; payload: the owner's
    /// token, see `SockGroup::push_foreign`).
    Foreign,
    /// Multishot accept of a listener straight into the fixed-file table (payload: listener token).
    AcceptDirect,
    /// Multishot accept of a listener returning regular descriptors (payload: listener token).
    AcceptFd,
    /// FIXED_FD_INSTALL of an accepted socket's slot (payload: listener index << 32 | slot).
    FdInstall,
}

impl Kind {
    fn code(self) -> u64 {
        match self {
            Kind::Recv => 1,
            Kind::Send => 2,
            Kind::SendZc => 3,
            Kind::PollOut => 4,
            Kind::Wake => 5,
            Kind::Ignore => 6,
            Kind::Foreign => 7,
            Kind::AcceptDirect => 8,
            Kind::AcceptFd => 9,
            Kind::FdInstall => 10,
        }
    }
}

/// Largest payload of a user data word (56 bits): the limit on foreign tokens.
pub const PAYLOAD_MAX: u64 = (1 << 56) - 1;

/// The user data of an SQE and of its completions: what the request belongs to ([`Kind`], top byte)
/// and a 56-bit payload whose meaning the kind gives (a socket token, an index, the owner's token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData(u64);

impl UserData {
    /// `kind` with a payload (its low 56 bits).
    pub fn new(kind: Kind, payload: u64) -> UserData {
        UserData(kind.code() << 56 | (payload & PAYLOAD_MAX))
    }

    /// `kind` for the socket in slot `idx` (with the low 24 bits of its generation, so a completion
    /// for a closed socket is not taken for the slot's next one).
    pub fn sock(kind: Kind, idx: u32, generation: u32) -> UserData {
        UserData::new(kind, ((generation & 0xFF_FFFF) as u64) << 32 | idx as u64)
    }

    /// FIXED_FD_INSTALL of accept-range `slot`, accepted on listener `listener`.
    pub fn install(listener: u32, slot: u32) -> UserData {
        UserData::new(Kind::FdInstall, (listener as u64 & 0xFF_FFFF) << 32 | slot as u64)
    }

    /// As found in a completion.
    pub fn from_raw(v: u64) -> UserData {
        UserData(v)
    }

    /// The word the kernel carries.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// What the request belongs to (`None`: not one of ours).
    pub fn kind(self) -> Option<Kind> {
        match self.0 >> 56 {
            1 => Some(Kind::Recv),
            2 => Some(Kind::Send),
            3 => Some(Kind::SendZc),
            4 => Some(Kind::PollOut),
            5 => Some(Kind::Wake),
            6 => Some(Kind::Ignore),
            7 => Some(Kind::Foreign),
            8 => Some(Kind::AcceptDirect),
            9 => Some(Kind::AcceptFd),
            10 => Some(Kind::FdInstall),
            _ => None,
        }
    }

    /// The payload.
    pub fn payload(self) -> u64 {
        self.0 & PAYLOAD_MAX
    }

    /// The socket (or listener) token: slot index and the low 24 bits of its generation.
    pub fn sock_of(self) -> (u32, u32) {
        let p = self.payload();
        (p as u32, (p >> 32) as u32 & 0xFF_FFFF)
    }

    /// The listener index and slot of an install.
    pub fn install_of(self) -> (u32, u32) {
        let p = self.payload();
        ((p >> 32) as u32, p as u32)
    }
}

/// One reaped completion.
#[derive(Clone, Copy, Debug)]
pub struct Cqe {
    /// User data of the request.
    pub user_data: u64,
    /// Result (bytes, or a negated errno).
    pub res: i32,
    /// CQE flags (MORE, BUFFER, NOTIF, ...).
    pub flags: u32,
}

impl Cqe {
    /// More completions follow for the same request (multishot, or a zero-copy notification).
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
    /// This is a zero-copy notification.
    pub fn notif(&self) -> bool {
        cqueue::notif(self.flags)
    }
    /// First provided buffer id the completion consumed.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// How the ring was set up (for logs and the options line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// SINGLE_ISSUER + DEFER_TASKRUN: completions are posted only when we enter with GETEVENTS.
    pub defer_taskrun: bool,
    /// COOP_TASKRUN (without DEFER_TASKRUN).
    pub coop_taskrun: bool,
    /// TASKRUN_FLAG: the kernel flags pending task work, so a busy poll can skip empty enters.
    pub taskrun_flag: bool,
    /// SQPOLL thread (idle ms).
    pub sqpoll: Option<u32>,
    /// Multishot receive with bundles (several buffers per completion).
    pub bundles: bool,
    /// sendmsg_zc is available.
    pub send_zc: bool,
    /// Entries of the sparse fixed-file table that `SockGroup::add` installs into (0: no fixed files).
    pub fixed_files: u32,
    /// Entries after those reserved for multishot accept with IORING_FILE_INDEX_ALLOC (the kernel's
    /// allocation range), 0 when direct accept is unavailable (no FIXED_FD_INSTALL, table refused).
    pub accept_files: u32,
    /// NAPI busy polling registered (timeout in µs).
    pub napi_busy_poll_us: Option<u32>,
}

/// The provided-buffer ring; see the module docs.
pub struct BufRing {
    /// The entries the kernel reads (`2 * count` of them).
    ring_map: Option<AnonMap>,
    ring: *mut io_uring::types::BufRingEntry,
    /// The buffers the kernel writes.
    mem_map: Option<AnonMap>,
    mem: *mut u8,
    size: usize,
    count: u16,
    mask: u16,
    tail: u16,
    /// Buffer id at each ring position (mirror of what we published).
    pos_bid: Vec<u16>,
    /// Ring position (masked) where each buffer id was last published.
    bid_pos: Vec<u16>,
    /// Buffers currently published to the kernel (not consumed by a completion yet, as far as we know).
    published: usize,
}

impl BufRing {
    /// Maps `count` buffers of `size` bytes and a ring of `2 * count` entries (count: power of two).
    fn new(count: u16, size: usize) -> io::Result<BufRing> {
        let count = count.clamp(1, 1 << 14).next_power_of_two();
        let entries = count as usize * 2;
        let ring_len = (entries * size_of::<io_uring::types::BufRingEntry>()).next_multiple_of(4096);
        let ring_map = AnonMap::new(ring_len, false)?;
        let mem_map = AnonMap::new(count as usize * size, false)?;
        Ok(BufRing {
            ring: ring_map.as_ptr().cast(),
            ring_map: Some(ring_map),
            mem: mem_map.as_ptr(),
            mem_map: Some(mem_map),
            size,
            count,
            mask: (entries - 1) as u16,
            tail: 0,
            pos_bid: vec![0; entries],
            bid_pos: vec![0; count as usize],
            published: 0,
        })
    }

    /// Ring entries (twice the buffer count).
    pub fn entries(&self) -> u16 {
        self.mask.wrapping_add(1)
    }

    /// Buffer size in bytes.
    pub fn buf_size(&self) -> usize {
        self.size
    }

    /// Number of buffers.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Buffers published to the kernel and not (yet) seen consumed.
    pub fn available(&self) -> usize {
        self.published
    }

    /// Publishes buffer `bid` at the tail. Call [`BufRing::commit`] to make new entries visible.
    pub fn push(&mut self, bid: u16) {
        debug_assert!(bid < self.count);
        let pos = self.tail & self.mask;
        // SAFETY: `pos` < ring entries, so the entry lies inside the ring mapping. The kernel reads
        // entries only between its head and our published tail; this position is beyond the tail
        // published so far (a consumed position, see the module docs), so the kernel does not read it now.
        unsafe {
            let e = &mut *self.ring.add(pos as usize);
            e.set_addr(self.mem.add(bid as usize * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.pos_bid[pos as usize] = bid;
        self.bid_pos[bid as usize] = pos;
        self.tail = self.tail.wrapping_add(1);
        self.published += 1;
    }

    /// Makes the entries pushed so far visible to the kernel (release store of the tail).
    pub fn commit(&mut self) {
        // SAFETY: the tail field overlays the `resv` field of entry 0, a u16 inside the ring mapping,
        // suitably aligned (the mapping is page aligned, the field at offset 14). The kernel reads it
        // concurrently, hence the atomic release store, which orders the entry writes before it.
        unsafe {
            let t = io_uring::types::BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*t).store(self.tail, Ordering::Release);
        }
    }

    /// The buffer ids a completion consumed: the buffer `first` and, for a bundle of `len` bytes, the
    /// buffers published right after it.
    ///
    /// Correct because the ring has twice as many entries as there are buffers: a position is rewritten
    /// only `2 * count` pushes after it was written, while at most `count` positions can be consumed
    /// and not yet reaped, so the positions of a completion being reaped still hold what we published.
    pub fn bids_of(&mut self, first: u16, len: usize) -> impl Iterator<Item = u16> + '_ {
        let n = len.div_ceil(self.size).max(1);
        let start = self.bid_pos.get(first as usize).copied().unwrap_or(0);
        self.published = self.published.saturating_sub(n);
        let mask = self.mask;
        (0..n).map(move |k| self.pos_bid[(start.wrapping_add(k as u16) & mask) as usize])
    }

    /// The bytes of buffer `bid`.
    pub fn buf(&self, bid: u16) -> &[u8] {
        assert!(bid < self.count, "buffer id out of range");
        // SAFETY: bid < count, so the slice lies inside the buffer mapping. The caller only reads a
        // buffer that a completion handed to us and that it has not recycled, so the kernel does not
        // write it meanwhile (it writes only buffers published in the ring).
        unsafe { std::slice::from_raw_parts(self.mem.add(bid as usize * self.size), self.size) }
    }

    /// Never unmap this memory (teardown could not prove the kernel is done with it).
    pub fn leak(&mut self) {
        for m in [self.ring_map.take(), self.mem_map.take()].into_iter().flatten() {
            m.leak();
        }
    }

    /// Address of the ring (for registration).
    fn ring_addr(&self) -> u64 {
        self.ring as u64
    }
}

// The mappings unmap themselves when the BufRing drops. The owner drops it only after the buffer ring
// was unregistered and every request that could select a buffer has completed, or leaks it first
// (`BufRing::leak`) when it could not make sure, so the kernel no longer touches them.

/// What an SQE acts on: a registered fixed-file slot or a plain descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A descriptor.
    Fd(RawFd),
    /// A slot of the ring's fixed-file table.
    Fixed(u32),
}

/// An SQE that points at no memory of ours, so queueing it is safe: built only by the constructors
/// here, one per operation the group issues this way. (Sends point at queued requests and foreign
/// requests at their owners' buffers: those go through the unsafe [`Ring::push`].)
pub struct PlainSqe(squeue::Entry);

macro_rules! on_target {
    ($t:expr, |$f:ident| $e:expr) => {
        match $t {
            Target::Fixed(slot) => {
                let $f = types::Fixed(slot);
                $e
            }
            Target::Fd(fd) => {
                let $f = types::Fd(fd);
                $e
            }
        }
    };
}

impl PlainSqe {
    /// Cancels every request whose user data is `target`.
    pub fn cancel(target: UserData) -> PlainSqe {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target.raw()).all()).build();
        PlainSqe(e.user_data(UserData::new(Kind::Ignore, 0).raw()))
    }

    /// A poll for `events` on `t`, multishot when `multi`.
    pub fn poll(t: Target, events: u32, multi: bool, ud: UserData) -> PlainSqe {
        PlainSqe(on_target!(t, |f| opcode::PollAdd::new(f, events).multi(multi).build()).user_data(ud.raw()))
    }

    /// A multishot receive into the ring's provided buffers (group [`BGID`]), bundled when `bundles`.
    pub fn recv_multi(t: Target, bundles: bool, ud: UserData) -> PlainSqe {
        let e = on_target!(t, |f| if bundles {
            opcode::RecvMultiBundle::new(f, BGID).build()
        } else {
            opcode::RecvMulti::new(f, BGID).build()
        });
        PlainSqe(e.user_data(ud.raw()))
    }

    /// An accept on listener `fd` with no address wanted (null pointers): multishot when `multi`,
    /// straight into the ring's fixed-file table when `direct`.
    pub fn accept(fd: RawFd, direct: bool, multi: bool, ud: UserData) -> PlainSqe {
        let fd = types::Fd(fd);
        let e = match (direct, multi) {
            // SOCK_CLOEXEC is refused with a direct slot; FIXED_FD_INSTALL sets O_CLOEXEC itself.
            (true, _) => opcode::AcceptMulti::new(fd).allocate_file_index(true).flags(libc::SOCK_NONBLOCK).build(),
            (false, true) => opcode::AcceptMulti::new(fd).flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC).build(),
            (false, false) => opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build(),
        };
        PlainSqe(e.user_data(ud.raw()))
    }

    /// FIXED_FD_INSTALL of fixed slot `slot` (the descriptor gets O_CLOEXEC).
    pub fn fd_install(slot: u32, ud: UserData) -> PlainSqe {
        PlainSqe(opcode::FixedFdInstall::new(types::Fixed(slot), 0).build().user_data(ud.raw()))
    }

    /// Closes fixed slot `slot`.
    pub fn close_fixed(slot: u32) -> PlainSqe {
        PlainSqe(opcode::Close::new(types::Fixed(slot)).build().user_data(UserData::new(Kind::Ignore, 0).raw()))
    }
}

/// The ring, its buffers and its file table.
pub struct Ring {
    ring: IoUring,
    /// Buffers; dropped after the ring (field order), and leaked when teardown could not be verified.
    pub bufs: BufRing,
    /// How the ring was set up.
    pub setup: Setup,
    enabled: bool,
    /// Requests submitted whose last completion has not been reaped.
    pub inflight: usize,
    /// Buffers released by the reader, to republish before the next enter.
    recycle: Vec<u16>,
    accept_multi: bool,
}

/// IORING_REGISTER_FILE_ALLOC_RANGE (not wrapped by the io-uring crate): confines the kernel's slot
/// allocation (IORING_FILE_INDEX_ALLOC) to `[off, off + len)`, so it never picks a slot `add` owns.
fn register_file_alloc_range(ring: &IoUring, off: u32, len: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const IORING_REGISTER_FILE_ALLOC_RANGE: libc::c_uint = 25;
    #[repr(C)]
    struct Range {
        off: u32,
        len: u32,
        resv: u64,
    }
    let r = Range { off, len, resv: 0 };
    // SAFETY: the kernel reads one io_uring_file_index_range (16 bytes, layout above) from a valid
    // pointer during the call; nothing is retained afterwards.
    let rc = unsafe {
        libc::syscall(libc::SYS_io_uring_register, ring.as_raw_fd(), IORING_REGISTER_FILE_ALLOC_RANGE, &raw const r, 0)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// What the ring needs to know from the group options.
#[derive(Clone, Copy, Debug)]
pub struct RingConfig {
    /// Provided buffers.
    pub buf_count: u16,
    /// Provided buffer size.
    pub buf_size: usize,
    /// SQPOLL idle time in ms, if wanted.
    pub sqpoll: Option<u32>,
    /// Fixed-file table entries wanted.
    pub fixed_files: u32,
    /// Use receive bundles where the kernel has them.
    pub bundles: bool,
    /// Register NAPI busy polling with this timeout (µs).
    pub napi_busy_poll_us: Option<u32>,
}

fn build(entries: u32, f: impl Fn(&mut io_uring::Builder)) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(entries * 16).setup_submit_all();
    f(&mut b);
    b.build(entries)
}

/// Explains why io_uring is unavailable, for the fallback warning.
pub fn unavailable_reason(e: &io::Error) -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    match (e.raw_os_error(), sysctl.as_deref().map(str::trim)) {
        (Some(libc::EPERM), Some(v)) if v != "0" => format!("io_uring is disabled (kernel.io_uring_disabled = {v})"),
        (Some(libc::ENOSYS), _) => "io_uring is not supported by this kernel or is blocked by seccomp (ENOSYS)".into(),
        (Some(libc::EPERM), _) => "io_uring is not permitted here (EPERM: seccomp or a security module)".into(),
        _ => format!("io_uring setup failed: {e}"),
    }
}

impl Ring {
    /// Creates a ring with the best setup flags the kernel accepts, registers the buffer ring and the
    /// sparse file table, and checks the opcodes the group relies on.
    pub fn new(cfg: RingConfig) -> io::Result<Ring> {
        let entries = 256;
        let mut setup = Setup {
            defer_taskrun: false,
            coop_taskrun: false,
            taskrun_flag: false,
            sqpoll: None,
            bundles: false,
            send_zc: false,
            fixed_files: 0,
            accept_files: 0,
            napi_busy_poll_us: None,
        };
        let ring = if let Some(idle) = cfg.sqpoll {
            setup.sqpoll = Some(idle);
            build(entries, |b| {
                b.setup_sqpoll(idle).setup_single_issuer().setup_r_disabled();
            })?
        } else {
            match build(entries, |b| {
                b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag().setup_r_disabled();
            }) {
                Ok(r) => {
                    setup.defer_taskrun = true;
                    setup.taskrun_flag = true;
                    r
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match build(entries, |b| {
                    b.setup_coop_taskrun().setup_taskrun_flag().setup_r_disabled();
                }) {
                    Ok(r) => {
                        setup.coop_taskrun = true;
                        setup.taskrun_flag = true;
                        r
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(entries, |b| {
                        b.setup_r_disabled();
                    })?,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        };
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (op, name) in [
            (opcode::RecvMulti::CODE, "recv"),
            (opcode::SendMsg::CODE, "sendmsg"),
            (opcode::PollAdd::CODE, "poll_add"),
            (opcode::AsyncCancel::CODE, "async_cancel"),
        ] {
            if !probe.is_supported(op) {
                return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks {name}")));
            }
        }
        setup.send_zc = probe.is_supported(opcode::SendMsgZc::CODE);
        setup.bundles = cfg.bundles && ring.params().is_feature_recvsend_bundle();
        let mut bufs = BufRing::new(cfg.buf_count, cfg.buf_size)?;
        // SAFETY: the ring mapping holds `entries()` entries, stays mapped until the BufRing is dropped,
        // which happens after the IoUring is dropped (field order of Ring) or never (leak).
        unsafe { ring.submitter().register_buf_ring_with_flags(bufs.ring_addr(), bufs.entries(), BGID, 0) }
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring buffer ring registration failed: {e}")))?;
        for bid in 0..bufs.count() {
            bufs.push(bid);
        }
        bufs.commit();
        // The table: [0, fixed_files) for `add` (slot = socket index, one register call each), then as
        // many entries again for direct accepts, which the kernel allocates itself (no syscall per socket).
        // Direct accept needs FIXED_FD_INSTALL too: the group also wants a regular descriptor per socket.
        let direct_ok =
            probe.is_supported(opcode::AcceptMulti::CODE) && probe.is_supported(opcode::FixedFdInstall::CODE);
        if cfg.fixed_files > 0 {
            let n = cfg.fixed_files;
            if direct_ok && ring.submitter().register_files_sparse(n.saturating_mul(2)).is_ok() {
                setup.fixed_files = n;
                if register_file_alloc_range(&ring, n, n).is_ok() {
                    setup.accept_files = n;
                }
            } else if ring.submitter().register_files_sparse(n).is_ok() {
                setup.fixed_files = n;
            }
        }
        if let Some(us) = cfg.napi_busy_poll_us {
            let mut napi = io_uring::types::Napi::new().set_busy_poll_timeout(us).set_prefer_busy_poll(true);
            match ring.submitter().register_napi(&mut napi) {
                Ok(()) => setup.napi_busy_poll_us = Some(us),
                Err(e) => tracing::warn!("io_uring NAPI busy-poll registration refused: {e}"),
            }
        }
        let accept_multi = probe.is_supported(opcode::AcceptMulti::CODE);
        Ok(Ring { ring, bufs, setup, enabled: false, inflight: 0, recycle: Vec::new(), accept_multi })
    }

    /// Whether the kernel has multishot accept (the group falls back to accept(2) on readiness if not).
    pub fn accept_multi(&self) -> bool {
        self.accept_multi
    }

    /// Installs `fd` at `slot` of the fixed-file table (one register syscall, management path).
    pub fn install(&mut self, slot: u32, fd: i32) -> io::Result<()> {
        self.ring.submitter().register_files_update(slot, &[fd]).map(drop)
    }

    /// Registers `iovs` as the ring's fixed buffers (IORING_REGISTER_BUFFERS; index = position).
    ///
    /// # Safety
    /// The memory must stay mapped until the ring is dropped (READ_FIXED/WRITE_FIXED reach it by index).
    pub unsafe fn register_buffers(&mut self, iovs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: forwarded to the caller (see the function's contract).
        unsafe { self.ring.submitter().register_buffers(iovs) }
    }

    /// Empties `slot` of the fixed-file table. Requests already issued keep their own file reference.
    pub fn uninstall(&mut self, slot: u32) {
        let _ = self.ring.submitter().register_files_update(slot, &[-1]);
    }

    /// Queues one SQE; when the submission queue is full, submits what it holds first (an extra enter).
    ///
    /// # Safety
    /// Every buffer, iovec and msghdr the entry points at must stay valid (and, for receive buffers,
    /// untouched by us) until the request's last completion has been reaped.
    pub unsafe fn push(&mut self, e: &squeue::Entry, c: &mut GroupCounters) -> io::Result<()> {
        loop {
            // SAFETY: forwarded to the caller (see the function's contract).
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                self.inflight += 1;
                c.uring_sqes += 1;
                return Ok(());
            }
            self.enter(None, c)?;
        }
    }

    /// Queues an SQE that points at no memory of ours (see [`PlainSqe`]).
    pub fn push_plain(&mut self, e: PlainSqe, c: &mut GroupCounters) -> io::Result<()> {
        // SAFETY: a PlainSqe is built only by its constructors, none of which points the request at
        // memory the caller owns (at most at the ring's own provided buffers, which the ring keeps
        // mapped until every request has completed).
        unsafe { self.push(&e.0, c) }
    }

    /// Queues buffer `bid` to be republished (at the next enter; the tail store is batched).
    pub fn recycle(&mut self, bid: u16) {
        self.recycle.push(bid);
    }

    /// Republishes recycled buffers now.
    pub fn flush_recycled(&mut self, c: &mut GroupCounters) {
        if self.recycle.is_empty() {
            return;
        }
        for i in 0..self.recycle.len() {
            let bid = self.recycle[i];
            self.bufs.push(bid);
        }
        c.uring_bufs_recycled += self.recycle.len() as u64;
        self.recycle.clear();
        self.bufs.commit();
    }

    /// Whether an enter is needed to make progress without waiting: SQEs to submit, task work to run,
    /// or completions the kernel holds back (overflow). Without TASKRUN_FLAG we cannot tell: always.
    fn enter_needed(&mut self) -> bool {
        let sq = self.ring.submission();
        !sq.is_empty() || !self.setup.taskrun_flag || sq.taskrun() || sq.cq_overflow()
    }

    /// One io_uring_enter: submits what is queued and, with `wait`, waits for at least one completion
    /// (`Some(None)` forever, `Some(Some(d))` at most `d`). Without `wait` the call is skipped when
    /// there is nothing to submit and no task work pending (a busy poll costs no syscall).
    pub fn enter(&mut self, wait: Option<Option<Duration>>, c: &mut GroupCounters) -> io::Result<()> {
        self.flush_recycled(c);
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        if wait.is_none() && !self.enter_needed() {
            return Ok(());
        }
        if wait.is_some() && !self.ring.completion().is_empty() {
            return self.enter(None, c);
        }
        let sqes = self.ring.submission().len();
        c.uring_enters += 1;
        let r = match wait {
            None if self.setup.sqpoll.is_some() => self.ring.submitter().submit(),
            None => {
                // SAFETY: GETEVENTS with no wait and no argument; the ring's SQEs were pushed through
                // `push`, whose contract keeps their memory valid.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        sqes as u32,
                        0,
                        io_uring::EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            }
            Some(None) => self.ring.submitter().submit_and_wait(1),
            Some(Some(d)) => {
                let ts = Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every available completion into `out`.
    pub fn reap(&mut self, out: &mut Vec<Cqe>, c: &mut GroupCounters) {
        let before = out.len();
        for e in self.ring.completion() {
            if !cqueue::more(e.flags()) {
                self.inflight = self.inflight.saturating_sub(1);
            }
            out.push(Cqe { user_data: e.user_data(), res: e.result(), flags: e.flags() });
        }
        c.uring_cqes += (out.len() - before) as u64;
    }

    /// Cancels every request of the ring and waits (bounded) for their completions; false when some
    /// are still in flight afterwards (the caller must then leak what they point at).
    pub fn cancel_all(&mut self, out: &mut Vec<Cqe>, c: &mut GroupCounters) -> bool {
        if !self.enabled {
            // Nothing was ever submitted: the kernel holds no request.
            return true;
        }
        let _ = self
            .ring
            .submitter()
            .register_sync_cancel(Some(Timespec::new().sec(1)), io_uring::types::CancelBuilder::any());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while self.inflight > 0 && std::time::Instant::now() < deadline {
            let _ = self.enter(Some(Some(Duration::from_millis(10))), c);
            self.reap(out, c);
        }
        self.inflight == 0
    }

    /// Unregisters the buffer ring (teardown, after [`Ring::cancel_all`] succeeded).
    pub fn unregister_bufs(&mut self) -> io::Result<()> {
        self.ring.submitter().unregister_buf_ring(BGID)
    }
}
