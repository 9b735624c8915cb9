//! ferrofabric block backends: the storage behind an NVMe/TCP namespace, seen by the target's reactors
//! through one asynchronous-shaped trait (submit requests, poll completions).
//!
//! - [`buf`]: [`IoBuf`], the owned 4096-aligned I/O buffer moved into a request and handed back on
//!   completion, and [`BufPool`], a per-reactor recycler by size class;
//! - [`null`]: [`NullDev`], completes at once (reads zero-fill unless [`NullDev::no_fill`]);
//! - [`ram`]: [`RamDisk`], a lazily allocated RAM disk shared by every reactor;
//! - [`file`]: [`FileDev`], a regular file or block device with O_DIRECT and durable FUA/Flush;
//! - [`spec`]: [`BackendSpec`] (from `null`, `ram`, `file:PATH` strings or TOML) and [`open`];
//! - [`uring`]: the file backend's io_uring mode: requests become SQEs for a ring the caller owns (the
//!   reactor's socket group), completed from its CQE results ([`BlockDev::attach_uring`]).
//!
//! Each reactor thread owns its own [`BlockDev`] handle, made by [`BlockDevFactory::open_handle`] on a
//! factory shared through an `Arc`; handles share no locks and no contended atomics on the I/O path.
//! Null and RAM complete synchronously inside `submit`; the file backend does too unless it is attached
//! to an io_uring ring, in which case its reads, writes and flushes complete when the caller hands the
//! ring's results back. Callers must always `poll` for completions.

pub mod buf;
pub mod file;
pub mod null;
pub mod ram;
pub mod spec;
pub mod uring;

mod queue;

pub use buf::{Arena, BufPool, IO_ALIGN, IoBuf};
pub use file::{FileDev, FileHandle, FileOpts};
pub use null::{NullDev, NullHandle};
pub use ram::{RamDisk, RamHandle};
pub use spec::{BackendKind, BackendSpec, OpenedBackend, SpecError, open, parse_size};
pub use uring::{URING_TOKEN_BITS, UringSqe};

use std::path::PathBuf;

/// Submissions a synchronous handle accepts before `poll` must drain completions.
pub const DEFAULT_QUEUE_DEPTH: usize = 1024;
/// Default size of the null and RAM backends: 1 GiB.
pub const DEFAULT_SIZE: u64 = 1 << 30;
/// Optimal I/O size the backends advertise when the device reports none: 128 KiB.
pub const DEFAULT_OPTIMAL_IO: u32 = 128 * 1024;

/// What a namespace built on the device advertises to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevInfo {
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    /// Number of logical blocks.
    pub num_blocks: u64,
    /// A volatile write cache is present: the host must send Flush (or FUA) for durability.
    pub volatile_write_cache: bool,
    /// WriteZeroes is implemented without transferring data.
    pub write_zeroes: bool,
    /// Deallocate is implemented.
    pub deallocate: bool,
    /// Reads of deallocated blocks return zeroes.
    pub deallocate_reads_zeroes: bool,
    /// Optimal I/O size in blocks.
    pub optimal_io_blocks: u32,
}

impl DevInfo {
    /// Capacity in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.num_blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// A run of blocks, as in a Deallocate (Dataset Management) range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbaRange {
    /// First block.
    pub lba: u64,
    /// Number of blocks (0 is a no-op).
    pub blocks: u32,
}

/// The operation of one request.
#[derive(Debug)]
pub enum IoOp {
    /// Read `blocks` blocks at `lba` into `buf` (its length must be `blocks * block_size`).
    Read {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Destination, handed back in [`IoDone::buf`].
        buf: IoBuf,
    },
    /// Write `buf` to `blocks` blocks at `lba`; with `fua`, acknowledged only once durable.
    Write {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Source, handed back in [`IoDone::buf`].
        buf: IoBuf,
        /// Force Unit Access.
        fua: bool,
    },
    /// Make every completed write durable.
    Flush,
    /// Zero `blocks` blocks at `lba`; with `fua`, acknowledged only once durable.
    WriteZeroes {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force Unit Access.
        fua: bool,
    },
    /// Deallocate the ranges (later reads return zeroes where [`DevInfo::deallocate_reads_zeroes`]).
    Deallocate {
        /// The ranges; every one is range-checked before any is deallocated.
        ranges: Vec<LbaRange>,
    },
}

/// One request: the caller's tag (returned in [`IoDone`]) and the operation.
#[derive(Debug)]
pub struct IoReq {
    /// The caller's identifier (e.g. NVMe command id and queue), handed back on completion.
    pub tag: u64,
    /// What to do.
    pub op: IoOp,
}

impl IoReq {
    /// A read request.
    pub fn read(tag: u64, lba: u64, blocks: u32, buf: IoBuf) -> IoReq {
        IoReq { tag, op: IoOp::Read { lba, blocks, buf } }
    }
    /// A write request.
    pub fn write(tag: u64, lba: u64, blocks: u32, buf: IoBuf, fua: bool) -> IoReq {
        IoReq { tag, op: IoOp::Write { lba, blocks, buf, fua } }
    }
    /// A flush request.
    pub fn flush(tag: u64) -> IoReq {
        IoReq { tag, op: IoOp::Flush }
    }
    /// A write-zeroes request.
    pub fn write_zeroes(tag: u64, lba: u64, blocks: u32, fua: bool) -> IoReq {
        IoReq { tag, op: IoOp::WriteZeroes { lba, blocks, fua } }
    }
    /// A deallocate request.
    pub fn deallocate(tag: u64, ranges: Vec<LbaRange>) -> IoReq {
        IoReq { tag, op: IoOp::Deallocate { ranges } }
    }
    /// Takes the request's buffer, if it has one.
    fn take_buf(self) -> (u64, Option<IoBuf>) {
        match self.op {
            IoOp::Read { buf, .. } | IoOp::Write { buf, .. } => (self.tag, Some(buf)),
            _ => (self.tag, None),
        }
    }
}

/// A completed request.
#[derive(Debug)]
pub struct IoDone {
    /// The request's tag.
    pub tag: u64,
    /// Success, or why it failed (the target maps it to an NVMe status).
    pub result: Result<(), IoError>,
    /// The read or write buffer, handed back (filled, for a successful read).
    pub buf: Option<IoBuf>,
}

/// Why a request failed; each maps to an NVMe status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// The blocks run past the device's end (or `lba + blocks` overflows): LBA Out of Range.
    #[error("blocks {lba}..+{blocks} are beyond the device's end")]
    OutOfRange {
        /// First block asked for.
        lba: u64,
        /// Number of blocks asked for.
        blocks: u64,
    },
    /// The buffer's length is not `blocks * block_size`: Data SGL Length Invalid.
    #[error("buffer holds {actual} bytes, the request needs {expected}")]
    BufferLength {
        /// Bytes the request needs.
        expected: u64,
        /// Bytes the buffer holds.
        actual: usize,
    },
    /// The operation failed with this errno: Internal Error / Write Fault / Unrecovered Read Error.
    #[error("I/O error: {}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

impl IoError {
    /// The errno, for [`IoError::Io`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            IoError::Io(e) => Some(*e),
            _ => None,
        }
    }
    /// From an `std::io::Error` (EIO when it has no errno).
    pub fn from_io(e: &std::io::Error) -> IoError {
        IoError::Io(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Why a request was not accepted; the request is handed back untouched.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The handle has as many requests in flight as it can hold: poll, then resubmit.
    #[error("submission queue full")]
    QueueFull(IoReq),
}

impl SubmitError {
    /// The request that was refused.
    pub fn into_req(self) -> IoReq {
        match self {
            SubmitError::QueueFull(r) => r,
        }
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A system call on the path failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or device.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Block size not supported (512 or 4096), or not a multiple of a block device's logical block size.
    #[error("block size {0} not supported here")]
    BlockSize(u32),
    /// The device would hold no block.
    #[error("device holds no block of the chosen size")]
    Empty,
    /// A block device was asked to be larger than it is.
    #[error("{path} holds {actual} bytes, {asked} asked for")]
    TooLarge {
        /// The device.
        path: PathBuf,
        /// Its size.
        actual: u64,
        /// Size asked for.
        asked: u64,
    },
    /// The RAM disk's mapping failed.
    #[error("RAM disk mapping of {size} bytes failed: {source}")]
    Map {
        /// Bytes asked for.
        size: u64,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Per-handle counters (plain integers: a handle lives on one thread).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DevStats {
    /// Read requests completed successfully.
    pub reads: u64,
    /// Write requests completed successfully.
    pub writes: u64,
    /// Flush requests completed successfully.
    pub flushes: u64,
    /// fdatasync calls (Flush, and FUA where RWF_DSYNC is not available or after zeroing).
    pub fsyncs: u64,
    /// Writes issued with RWF_DSYNC (FUA).
    pub dsync_writes: u64,
    /// WriteZeroes requests completed successfully.
    pub write_zeroes: u64,
    /// Bytes of zeroes written by hand where the filesystem refused a zeroing fallocate.
    pub zero_fill_bytes: u64,
    /// Deallocate requests completed successfully.
    pub deallocates: u64,
    /// Requests completed with an error.
    pub errors: u64,
    /// Requests completed through an io_uring ring (reads, writes, flushes of an attached file handle).
    pub uring_ios: u64,
    /// SQEs prepared for the ring (a request takes more than one when it is resubmitted or synced).
    pub uring_sqes: u64,
    /// Short reads and writes resubmitted for the remainder.
    pub short_ios: u64,
    /// Of `uring_sqes`, READ_FIXED / WRITE_FIXED on the ring's registered arena.
    pub uring_fixed_sqes: u64,
}

/// One reactor's handle on a block device: submit requests, poll completions.
///
/// A handle is owned by one thread. Every request completes exactly once through `poll` (errors
/// included, range errors too); `submit` refuses only when the queue is full, handing the request back.
pub trait BlockDev {
    /// What the device advertises.
    fn info(&self) -> DevInfo;
    /// Queues a request (synchronous backends do the work here).
    fn submit(&mut self, io: IoReq) -> Result<(), SubmitError>;
    /// Appends the completions available now to `out`; returns how many were appended.
    fn poll(&mut self, out: &mut Vec<IoDone>) -> usize;
    /// Requests submitted and not yet returned by `poll`.
    fn pending(&self) -> usize;
    /// This handle's counters.
    fn stats(&self) -> DevStats;

    /// Switches the handle to an io_uring ring the caller owns (a reactor's socket group on
    /// `Backend::Uring`): from now on `submit` turns reads, writes and flushes into SQEs that the
    /// caller moves onto the ring with [`BlockDev::take_sqes`] and whose results it hands back with
    /// [`BlockDev::complete`]; completions still come out of `poll`. Returns false, changing nothing,
    /// for backends that stay synchronous (the default).
    fn attach_uring(&mut self) -> bool {
        false
    }

    /// Moves the SQEs prepared since the last call into `out`, each with its token (below
    /// 2^[`URING_TOKEN_BITS`]; the caller may use the bits above). Every entry must be submitted once
    /// and its result handed to [`BlockDev::complete`] (a negated errno if it could not be submitted).
    /// The memory the entries point at belongs to the handle and stays valid until then; a handle
    /// dropped earlier leaks it rather than free it under the kernel.
    fn take_sqes(&mut self, _out: &mut Vec<(UringSqe, u64)>) -> usize {
        0
    }

    /// Uses READ_FIXED / WRITE_FIXED for buffers of `arena`, registered with the ring this handle's
    /// SQEs go to. False, changing nothing, for handles that do not submit on a ring (the default).
    fn use_fixed_buffers(&mut self, _arena: &Arena) -> bool {
        false
    }

    /// Hands back the result (bytes, or a negated errno) of the SQE that carried `token`.
    fn complete(&mut self, _token: u64, _res: i32) {}

    /// Requests whose progress waits on the ring (SQEs prepared or in flight): the caller may block in
    /// its ring wait for these, while [`BlockDev::pending`] minus this count is ready to `poll` now.
    fn in_ring(&self) -> usize {
        0
    }
}

/// A device shared by all reactors; each reactor opens its own handle, on its own thread.
pub trait BlockDevFactory: Send + Sync {
    /// What the device advertises.
    fn info(&self) -> DevInfo;
    /// A new handle for the calling reactor.
    fn open_handle(&self) -> Result<Box<dyn BlockDev>, OpenError>;
}

/// Checks a block size is one the backends support.
pub(crate) fn check_block_size(bs: u32) -> Result<u32, OpenError> {
    if bs == 512 || bs == 4096 { Ok(bs) } else { Err(OpenError::BlockSize(bs)) }
}

/// Range-checks `lba + blocks` against the device and returns the byte offset and length.
pub(crate) fn check_range(info: &DevInfo, lba: u64, blocks: u64) -> Result<(u64, u64), IoError> {
    let oob = IoError::OutOfRange { lba, blocks };
    let end = lba.checked_add(blocks).ok_or(oob)?;
    if end > info.num_blocks {
        return Err(oob);
    }
    let bs = u64::from(info.block_size);
    // Cannot overflow: end <= num_blocks and num_blocks * block_size fits (checked at open).
    Ok((lba * bs, blocks * bs))
}

/// Range-checks a data transfer and its buffer's length; returns the byte offset.
pub(crate) fn check_data(info: &DevInfo, lba: u64, blocks: u32, buf: &IoBuf) -> Result<u64, IoError> {
    let (off, len) = check_range(info, lba, u64::from(blocks))?;
    if buf.len() as u64 != len {
        return Err(IoError::BufferLength { expected: len, actual: buf.len() });
    }
    Ok(off)
}

/// `num_blocks` for `bytes` of `bs`-byte blocks, refusing an empty device.
pub(crate) fn blocks_of(bytes: u64, bs: u32) -> Result<u64, OpenError> {
    match bytes / u64::from(bs) {
        0 => Err(OpenError::Empty),
        n => Ok(n),
    }
}

/// Optimal I/O size in blocks from bytes (0 means unknown: the default).
pub(crate) fn optimal_blocks(bytes: u32, bs: u32) -> u32 {
    let bytes = if bytes == 0 { DEFAULT_OPTIMAL_IO } else { bytes };
    (bytes / bs).max(1)
}
