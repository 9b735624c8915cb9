//! The file backend: a regular file or a block device, shared by every reactor through one open file
//! description; each handle does positional I/O (pread/pwrite) on it synchronously, or, once attached
//! to its reactor's io_uring ring, submits reads, writes and flushes there (module [`crate::uring`]).
//!
//! - O_DIRECT by default. Where the filesystem refuses it (EINVAL at open, a STATX_DIOALIGN the block
//!   size cannot meet, or EINVAL on a probe read or a later I/O) the description falls back to buffered
//!   I/O with a warning; durability is unchanged since Flush and FUA still sync.
//! - Durability: `info()` reports a volatile write cache, so hosts send Flush. Flush is fdatasync; a FUA
//!   write is pwritev2(RWF_DSYNC) (or pwrite + fdatasync where the kernel refuses the flag), completed
//!   only once durable.
//! - WriteZeroes is fallocate(ZERO_RANGE) and Deallocate fallocate(PUNCH_HOLE); where refused, zeroes
//!   are written by hand, so deallocated blocks always read back as zeroes.

use crate::buf::IoBuf;
use crate::queue::DoneQueue;
use crate::{
    BlockDev, BlockDevFactory, DEFAULT_QUEUE_DEPTH, DevInfo, DevStats, IoDone, IoError, IoOp, IoReq, OpenError,
    SubmitError, blocks_of, check_block_size, check_data, check_range, optimal_blocks,
};
use rustix::fs::{AtFlags, FallocateFlags, OFlags, StatxFlags};
use rustix::io::ReadWriteFlags;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// How to open a [`FileDev`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileOpts {
    /// Size in bytes: creates or extends a regular file to it (never truncates; a larger file exposes
    /// only this much). A block device must be at least this large. `None`: the file's size.
    pub size: Option<u64>,
    /// Block size (512 or 4096). `None`: 512 for files, the logical block size for block devices.
    pub block_size: Option<u32>,
}

/// Shared between the factory and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) file: File,
    path: PathBuf,
    /// O_DIRECT currently set on the description. Written once at most (on fallback), read per I/O:
    /// an uncontended relaxed load.
    pub(crate) direct: AtomicBool,
    block_device: bool,
    info: DevInfo,
}

impl Shared {
    /// Clears O_DIRECT on the shared description (every handle sees it), warning once.
    pub(crate) fn drop_direct(&self, why: &str) {
        let file = &self.file;
        let ok =
            rustix::fs::fcntl_getfl(file).and_then(|fl| rustix::fs::fcntl_setfl(file, fl - OFlags::DIRECT)).is_ok();
        if ok && self.direct.swap(false, Relaxed) {
            tracing::warn!(path = %self.path.display(), "O_DIRECT refused ({why}): falling back to buffered I/O");
        }
    }
}

/// A file or block device shared by every reactor; cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct FileDev {
    shared: Arc<Shared>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { path: path.to_path_buf(), source }
}

fn open_file(path: &Path, create: bool, direct: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(create);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// BLKIOOPT on a block device: its optimal I/O size in bytes (0: none reported). Hand-written because
/// rustix has a safe helper for BLKSSZGET (`ioctl_blksszget`) but none for this one.
fn blk_ioopt(file: &File) -> std::io::Result<u32> {
    /// `_IO(0x12, 121)` in <linux/fs.h>.
    const BLKIOOPT: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 121);
    // SAFETY: BLKIOOPT is a getter that writes one unsigned int, the output type given here.
    Ok(unsafe { rustix::ioctl::ioctl(file, rustix::ioctl::Getter::<BLKIOOPT, libc::c_uint>::new()) }?)
}

/// The direct-I/O alignment the file needs (offset, memory), when the kernel reports it.
fn dio_align(file: &File) -> Option<(u32, u32)> {
    // An empty path with AT_EMPTY_PATH stats the descriptor itself.
    let st = rustix::fs::statx(file, c"", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
    (st.stx_mask & StatxFlags::DIOALIGN.bits() != 0).then_some((st.stx_dio_offset_align, st.stx_dio_mem_align))
}

impl FileDev {
    /// The same file at `size` bytes: a regular file is extended when it is smaller (a shrink only
    /// lowers the capacity served, the bytes stay in the file); a block device cannot grow.
    pub fn resized(&self, size: u64) -> Result<FileDev, OpenError> {
        let bs = self.shared.info.block_size;
        FileDev::open(&self.shared.path, FileOpts { size: Some(size), block_size: Some(bs) })
    }

    /// Opens (or, for a regular file with `opts.size`, creates) `path`.
    pub fn open(path: impl AsRef<Path>, opts: FileOpts) -> Result<FileDev, OpenError> {
        let path = path.as_ref();
        let create = opts.size.is_some();
        let (file, mut direct) = match open_file(path, create, true) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(path = %path.display(), "O_DIRECT refused at open: falling back to buffered I/O");
                (open_file(path, create, false).map_err(io_err(path))?, false)
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let mut f = &file;
        let meta = file.metadata().map_err(io_err(path))?;
        let block_device = meta.file_type().is_block_device();
        let (bs, bytes, opt) = if block_device {
            let lbs = rustix::fs::ioctl_blksszget(&file).map_err(|e| io_err(path)(e.into()))?;
            let bs = check_block_size(opts.block_size.unwrap_or(lbs))?;
            if lbs == 0 || !bs.is_multiple_of(lbs) {
                return Err(OpenError::BlockSize(bs));
            }
            // The end of a block device is its size (what BLKGETSIZE64 reports).
            let actual = f.seek(SeekFrom::End(0)).map_err(io_err(path))?;
            let bytes = match opts.size {
                Some(asked) if asked > actual => {
                    return Err(OpenError::TooLarge { path: path.to_path_buf(), actual, asked });
                }
                Some(asked) => asked,
                None => actual,
            };
            (bs, bytes, blk_ioopt(&file).unwrap_or(0))
        } else {
            let bs = check_block_size(opts.block_size.unwrap_or(512))?;
            let len = meta.len();
            if let Some(asked) = opts.size
                && asked > len
            {
                file.set_len(asked).map_err(io_err(path))?;
            }
            (bs, opts.size.unwrap_or(len), 0)
        };
        let num_blocks = blocks_of(bytes, bs)?;
        let info = DevInfo {
            block_size: bs,
            num_blocks,
            volatile_write_cache: true,
            write_zeroes: true,
            deallocate: true,
            deallocate_reads_zeroes: true,
            optimal_io_blocks: optimal_blocks(opt, bs),
        };
        let shared = Shared { file, path: path.to_path_buf(), direct: AtomicBool::new(direct), block_device, info };
        if direct {
            match dio_align(&shared.file) {
                Some((0, _)) => shared.drop_direct("no direct I/O support reported"),
                Some((off, mem)) if off > bs || mem as usize > crate::IO_ALIGN => {
                    shared.drop_direct("alignment larger than the block size")
                }
                _ => {}
            }
            direct = shared.direct.load(Relaxed);
        }
        if direct {
            // Some filesystems accept O_DIRECT at open and refuse it at the first I/O.
            let mut probe = IoBuf::new(bs as usize);
            if let Err(e) = pread_full(&shared.file, &mut probe, 0)
                && e == libc::EINVAL
            {
                shared.drop_direct("EINVAL on a probe read");
            }
        }
        Ok(FileDev { shared: Arc::new(shared) })
    }

    /// True while I/O bypasses the page cache (O_DIRECT).
    pub fn direct(&self) -> bool {
        self.shared.direct.load(Relaxed)
    }

    /// True when the path is a block device.
    pub fn is_block_device(&self) -> bool {
        self.shared.block_device
    }

    /// A handle for the calling reactor.
    pub fn handle(&self) -> FileHandle {
        FileHandle {
            shared: Arc::clone(&self.shared),
            info: self.shared.info,
            done: DoneQueue::new(DEFAULT_QUEUE_DEPTH),
            stats: DevStats::default(),
            rwf_dsync: true,
            zero_range: true,
            punch_hole: true,
            zeroes: None,
            ring: None,
        }
    }
}

impl BlockDevFactory for FileDev {
    fn info(&self) -> DevInfo {
        self.shared.info
    }
    fn open_handle(&self) -> Result<Box<dyn BlockDev>, OpenError> {
        Ok(Box::new(self.handle()))
    }
}

/// Retries `f` while it fails with EINTR; returns its result or the errno (EIO when it has none).
fn retry<T, E>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, i32>
where
    std::io::Error: From<E>,
{
    loop {
        match f().map_err(std::io::Error::from) {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

/// Reads all of `buf` at `off`; a short file (truncated behind our back) is EIO.
fn pread_full(file: &File, buf: &mut [u8], off: u64) -> Result<(), i32> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let n = retry(|| file.read_at(rest, off + done as u64))?;
        if n == 0 {
            return Err(libc::EIO);
        }
        done += n;
    }
    Ok(())
}

/// Writes all of `buf` at `off`, each call with `flags` (DSYNC or none) through pwritev2.
fn pwrite_full(file: &File, buf: &[u8], off: u64, flags: ReadWriteFlags) -> Result<(), i32> {
    let mut done = 0;
    while done < buf.len() {
        let iov = [IoSlice::new(&buf[done..])];
        let n = retry(|| rustix::io::pwritev2(file, &iov, off + done as u64, flags))?;
        if n == 0 {
            return Err(libc::EIO);
        }
        done += n;
    }
    Ok(())
}

/// Zero chunk written by hand where fallocate cannot zero.
const ZERO_CHUNK: usize = 256 * 1024;

/// One reactor's handle on a [`FileDev`].
#[derive(Debug)]
pub struct FileHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) info: DevInfo,
    pub(crate) done: DoneQueue,
    pub(crate) stats: DevStats,
    /// pwritev2(RWF_DSYNC) accepted so far (learned per handle: no shared state).
    rwf_dsync: bool,
    /// fallocate(ZERO_RANGE) accepted so far.
    zero_range: bool,
    /// fallocate(PUNCH_HOLE) accepted so far.
    punch_hole: bool,
    /// Zeroed buffer for hand-written zeroes, allocated on first need.
    zeroes: Option<IoBuf>,
    /// Requests on the caller's io_uring ring, once attached.
    pub(crate) ring: Option<crate::uring::RingState>,
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        if let Some(ring) = self.ring.as_mut()
            && ring.live() > 0
        {
            // The kernel may still read or write these buffers, through this descriptor: leak both.
            tracing::warn!(requests = ring.live(), "file handle dropped with I/O on the ring; leaking its buffers");
            ring.leak_live();
            std::mem::forget(Arc::clone(&self.shared));
        }
    }
}

/// fallocate's "this filesystem/device cannot" answers.
fn unsupported(e: i32) -> bool {
    e == libc::EOPNOTSUPP || e == libc::ENOSYS || e == libc::EINVAL
}

impl FileHandle {
    /// Sets how many completions may wait for `poll` before `submit` refuses.
    pub fn set_queue_depth(&mut self, depth: usize) {
        self.done.set_depth(depth);
    }

    /// Runs `f`; on EINVAL under O_DIRECT, drops O_DIRECT and runs it once more.
    fn direct_retry(&self, mut f: impl FnMut() -> Result<(), i32>) -> Result<(), i32> {
        match f() {
            Err(libc::EINVAL) if self.shared.direct.load(Relaxed) => {
                self.shared.drop_direct("EINVAL on I/O");
                f()
            }
            r => r,
        }
    }

    fn fdatasync(&mut self) -> Result<(), i32> {
        self.stats.fsyncs += 1;
        retry(|| self.shared.file.sync_data())
    }

    fn write(&mut self, buf: &[u8], off: u64, fua: bool) -> Result<(), i32> {
        let file = &self.shared.file;
        if fua && self.rwf_dsync {
            match self.direct_retry(|| pwrite_full(file, buf, off, ReadWriteFlags::DSYNC)) {
                Err(e) if e == libc::EOPNOTSUPP || e == libc::ENOSYS => self.rwf_dsync = false,
                r => {
                    self.stats.dsync_writes += 1;
                    return r;
                }
            }
        }
        self.direct_retry(|| pwrite_full(file, buf, off, ReadWriteFlags::empty()))?;
        if fua { self.fdatasync() } else { Ok(()) }
    }

    fn fallocate(&self, mode: FallocateFlags, off: u64, len: u64) -> Result<(), i32> {
        retry(|| rustix::fs::fallocate(&self.shared.file, mode, off, len))
    }

    /// Zeroes a byte range: fallocate(ZERO_RANGE), else zeroes written by hand.
    fn zero(&mut self, off: u64, len: u64) -> Result<(), i32> {
        if len == 0 {
            return Ok(());
        }
        if self.zero_range {
            match self.fallocate(FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE, off, len) {
                Err(e) if unsupported(e) => self.zero_range = false,
                r => return r,
            }
        }
        let zeroes = self.zeroes.take().unwrap_or_else(|| IoBuf::new(ZERO_CHUNK));
        let mut done = 0u64;
        let mut r = Ok(());
        while done < len {
            let n = (len - done).min(ZERO_CHUNK as u64) as usize;
            r = self.direct_retry(|| pwrite_full(&self.shared.file, &zeroes[..n], off + done, ReadWriteFlags::empty()));
            if r.is_err() {
                break;
            }
            self.stats.zero_fill_bytes += n as u64;
            done += n as u64;
        }
        self.zeroes = Some(zeroes);
        r
    }

    /// Deallocates a byte range: fallocate(PUNCH_HOLE), else zeroing.
    fn punch(&mut self, off: u64, len: u64) -> Result<(), i32> {
        if len == 0 {
            return Ok(());
        }
        if self.punch_hole {
            match self.fallocate(FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, off, len) {
                Err(e) if unsupported(e) => self.punch_hole = false,
                r => return r,
            }
        }
        self.zero(off, len)
    }

    fn exec(&mut self, op: &mut IoOp) -> Result<(), IoError> {
        let info = self.info;
        match op {
            IoOp::Read { lba, blocks, buf } => {
                let off = check_data(&info, *lba, *blocks, buf)?;
                let file = &self.shared.file;
                self.direct_retry(|| pread_full(file, buf, off)).map_err(IoError::Io)?;
                self.stats.reads += 1;
            }
            IoOp::Write { lba, blocks, buf, fua } => {
                let off = check_data(&info, *lba, *blocks, buf)?;
                self.write(buf, off, *fua).map_err(IoError::Io)?;
                self.stats.writes += 1;
            }
            IoOp::Flush => {
                self.fdatasync().map_err(IoError::Io)?;
                self.stats.flushes += 1;
            }
            IoOp::WriteZeroes { lba, blocks, fua } => {
                let (off, len) = check_range(&info, *lba, u64::from(*blocks))?;
                self.zero(off, len).map_err(IoError::Io)?;
                if *fua {
                    self.fdatasync().map_err(IoError::Io)?;
                }
                self.stats.write_zeroes += 1;
            }
            IoOp::Deallocate { ranges } => {
                for r in ranges.iter() {
                    check_range(&info, r.lba, u64::from(r.blocks))?;
                }
                for r in ranges.iter() {
                    let (off, len) = check_range(&info, r.lba, u64::from(r.blocks))?;
                    self.punch(off, len).map_err(IoError::Io)?;
                }
                self.stats.deallocates += 1;
            }
        }
        Ok(())
    }
}

impl BlockDev for FileHandle {
    fn info(&self) -> DevInfo {
        self.info
    }

    fn submit(&mut self, io: IoReq) -> Result<(), SubmitError> {
        if let Some(ring) = &self.ring {
            if self.done.len() + ring.live() >= self.done.depth() {
                return Err(SubmitError::QueueFull(io));
            }
            if matches!(io.op, IoOp::Read { .. } | IoOp::Write { .. } | IoOp::Flush) {
                self.ring_submit(io.tag, io.op);
                return Ok(());
            }
        }
        let mut io = self.done.admit(io)?;
        let result = self.exec(&mut io.op);
        if result.is_err() {
            self.stats.errors += 1;
        }
        let (tag, buf) = io.take_buf();
        self.done.push(tag, result, buf);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<IoDone>) -> usize {
        self.done.drain(out)
    }

    fn pending(&self) -> usize {
        self.done.len() + self.ring.as_ref().map_or(0, |r| r.live())
    }

    fn stats(&self) -> DevStats {
        self.stats
    }

    fn attach_uring(&mut self) -> bool {
        self.attach();
        true
    }

    fn take_sqes(&mut self, out: &mut Vec<(crate::UringSqe, u64)>) -> usize {
        self.ring_take(out)
    }

    fn complete(&mut self, token: u64, res: i32) {
        self.ring_complete(token, res);
    }

    fn use_fixed_buffers(&mut self, arena: &crate::Arena) -> bool {
        FileHandle::use_fixed_buffers(self, arena)
    }

    fn in_ring(&self) -> usize {
        self.ring.as_ref().map_or(0, |r| r.live())
    }
}
