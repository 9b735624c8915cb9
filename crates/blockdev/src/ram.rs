//! The RAM backend: one anonymous mapping shared (through an `Arc`) by every reactor's handle.
//!
//! The mapping is MAP_NORESERVE and zero-filled on first touch, so untouched blocks cost nothing and
//! read as zeroes; Deallocate gives whole pages back to the kernel. RAM is not durable: the contents
//! vanish with the process, and `info()` reports no volatile write cache since Flush has nothing to do.
//!
//! Why `[AtomicU64]`: reactors on different threads may touch the same blocks at once (a host may well
//! issue overlapping writes on two queues). With plain `&mut [u8]` copies that would be a data race,
//! undefined behaviour in Rust. Viewing the memory as `AtomicU64` words copied with Relaxed loads and
//! stores makes every access atomic, hence defined, at no cost: on x86-64 and aarch64 a relaxed 8-byte
//! load/store is an ordinary move. Concurrent overlapping writes may then interleave at 8-byte
//! granularity, which is what unsynchronised hosts get from real devices too; no lock is taken.

use crate::queue::DoneQueue;
use crate::{
    BlockDev, BlockDevFactory, DEFAULT_QUEUE_DEPTH, DevInfo, DevStats, IoDone, IoError, IoOp, IoReq, OpenError,
    SubmitError, blocks_of, check_block_size, check_data, check_range, optimal_blocks,
};
use ff_sock::mem::AnonMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Address space a RAM disk reserves so it can grow in place (pages are backed only when written).
pub const RAM_RESERVE: u64 = 64 << 30;

/// The mapping itself; unmapped when the last handle and factory are gone.
#[derive(Debug)]
struct RamMap {
    map: AnonMap,
    words: usize,
    page: usize,
}

impl RamMap {
    /// Maps `bytes`, reserving address space for [`RAM_RESERVE`] when that is more (untouched
    /// MAP_NORESERVE pages cost nothing), so the disk can grow in place; exactly `bytes` where the
    /// kernel refuses the reservation.
    fn new(bytes: u64) -> Result<RamMap, OpenError> {
        let err = |source| OpenError::Map { size: bytes, source };
        let len = usize::try_from(bytes).map_err(|_| err(std::io::Error::from_raw_os_error(libc::ENOMEM)))?;
        let map = match usize::try_from(RAM_RESERVE) {
            Ok(reserve) if reserve > len => AnonMap::new(reserve, true).or_else(|_| AnonMap::new(len, true)),
            _ => AnonMap::new(len, true),
        }
        .map_err(err)?;
        let page = rustix::param::page_size().max(8);
        Ok(RamMap { words: map.len() / 8, page, map })
    }

    /// Bytes the disk may grow to in place.
    fn capacity(&self) -> u64 {
        self.words as u64 * 8
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-aligned), `words * 8` bytes long, readable and
        // writable, zero-filled (a valid AtomicU64), and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), self.words) }
    }

    /// Zeroes bytes `off..off+len` (both multiples of 8), returning whole pages to the kernel.
    fn discard(&self, off: usize, len: usize) {
        let end = off + len;
        let first = off.next_multiple_of(self.page);
        let last = end - end % self.page;
        let words = self.words();
        if first < last {
            // SAFETY: the page-aligned range lies inside our private anonymous mapping; after
            // MADV_DONTNEED it reads as zeroes. Other threads only access it atomically, so they
            // observe either old words or zeroes, which is what a concurrent write would give.
            let rc = unsafe {
                rustix::mm::madvise(
                    self.map.as_ptr().add(first).cast(),
                    last - first,
                    rustix::mm::Advice::LinuxDontNeed,
                )
            };
            if rc.is_ok() {
                words[off / 8..first / 8].iter().for_each(|w| w.store(0, Relaxed));
                words[last / 8..end / 8].iter().for_each(|w| w.store(0, Relaxed));
                return;
            }
        }
        words[off / 8..end / 8].iter().for_each(|w| w.store(0, Relaxed));
    }
}

// The mapping unmaps itself with the RamMap, when no reference into it can remain.

/// A RAM disk shared by every reactor; cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct RamDisk {
    map: Arc<RamMap>,
    info: DevInfo,
}

impl RamDisk {
    /// A RAM disk of `size` bytes (rounded down to blocks) of `block_size` (512 or 4096) blocks.
    /// Memory is reserved lazily, page by page, as blocks are written.
    pub fn new(size: u64, block_size: u32) -> Result<RamDisk, OpenError> {
        let bs = check_block_size(block_size)?;
        let num_blocks = blocks_of(size, bs)?;
        let map = Arc::new(RamMap::new(num_blocks * u64::from(bs))?);
        let info = DevInfo {
            block_size: bs,
            num_blocks,
            volatile_write_cache: false,
            write_zeroes: true,
            deallocate: true,
            deallocate_reads_zeroes: true,
            optimal_io_blocks: optimal_blocks(0, bs),
        };
        Ok(RamDisk { map, info })
    }

    /// The same disk at `size` bytes: the data below the smaller of the two sizes is kept, bytes
    /// beyond a shrink are zeroed (a later grow reads zeroes there). Grows in place up to the address
    /// space reserved at creation ([`RAM_RESERVE`]).
    pub fn resized(&self, size: u64) -> Result<RamDisk, OpenError> {
        let bs = self.info.block_size;
        let num_blocks = blocks_of(size, bs)?;
        let bytes = num_blocks * u64::from(bs);
        if bytes > self.map.capacity() {
            return Err(OpenError::Map {
                size,
                source: std::io::Error::other(format!(
                    "beyond the {} bytes this RAM disk reserved at creation",
                    self.map.capacity()
                )),
            });
        }
        let old = self.info.num_blocks * u64::from(bs);
        if bytes < old {
            self.map.discard(bytes as usize, (old - bytes) as usize);
        }
        Ok(RamDisk { map: Arc::clone(&self.map), info: DevInfo { num_blocks, ..self.info } })
    }

    /// A handle for the calling reactor.
    pub fn handle(&self) -> RamHandle {
        RamHandle {
            map: Arc::clone(&self.map),
            info: self.info,
            done: DoneQueue::new(DEFAULT_QUEUE_DEPTH),
            stats: DevStats::default(),
        }
    }
}

impl BlockDevFactory for RamDisk {
    fn info(&self) -> DevInfo {
        self.info
    }
    fn open_handle(&self) -> Result<Box<dyn BlockDev>, OpenError> {
        Ok(Box::new(self.handle()))
    }
}

/// One reactor's handle on a [`RamDisk`].
#[derive(Debug)]
pub struct RamHandle {
    map: Arc<RamMap>,
    info: DevInfo,
    done: DoneQueue,
    stats: DevStats,
}

/// Byte offset/length to word indices (both are multiples of the block size, hence of 8, and fit in
/// the mapping, checked by the caller).
fn word_range(off: u64, len: usize) -> std::ops::Range<usize> {
    let start = (off / 8) as usize;
    start..start + len / 8
}

impl RamHandle {
    /// Sets how many completions may wait for `poll` before `submit` refuses.
    pub fn set_queue_depth(&mut self, depth: usize) {
        self.done.set_depth(depth);
    }

    fn exec(&mut self, op: &mut IoOp) -> Result<(), IoError> {
        let info = self.info;
        match op {
            IoOp::Read { lba, blocks, buf } => {
                let off = check_data(&info, *lba, *blocks, buf)?;
                let words = &self.map.words()[word_range(off, buf.len())];
                let (chunks, _) = buf.as_chunks_mut::<8>();
                for (c, w) in chunks.iter_mut().zip(words) {
                    *c = w.load(Relaxed).to_ne_bytes();
                }
                self.stats.reads += 1;
            }
            IoOp::Write { lba, blocks, buf, .. } => {
                let off = check_data(&info, *lba, *blocks, buf)?;
                let words = &self.map.words()[word_range(off, buf.len())];
                let (chunks, _) = buf.as_chunks::<8>();
                for (c, w) in chunks.iter().zip(words) {
                    w.store(u64::from_ne_bytes(*c), Relaxed);
                }
                self.stats.writes += 1;
            }
            IoOp::Flush => self.stats.flushes += 1,
            IoOp::WriteZeroes { lba, blocks, .. } => {
                let (off, len) = check_range(&info, *lba, u64::from(*blocks))?;
                self.map.words()[word_range(off, len as usize)].iter().for_each(|w| w.store(0, Relaxed));
                self.stats.write_zeroes += 1;
            }
            IoOp::Deallocate { ranges } => {
                let checked: Vec<(u64, u64)> =
                    ranges.iter().map(|r| check_range(&info, r.lba, u64::from(r.blocks))).collect::<Result<_, _>>()?;
                for (off, len) in checked {
                    self.map.discard(off as usize, len as usize);
                }
                self.stats.deallocates += 1;
            }
        }
        Ok(())
    }
}

impl BlockDev for RamHandle {
    fn info(&self) -> DevInfo {
        self.info
    }

    fn submit(&mut self, io: IoReq) -> Result<(), SubmitError> {
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
        self.done.len()
    }

    fn stats(&self) -> DevStats {
        self.stats
    }
}
