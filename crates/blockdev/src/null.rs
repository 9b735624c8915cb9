//! The null backend: no storage at all. Every request completes at once; reads zero-fill their buffer
//! (or, with [`NullDev::no_fill`] for benchmarks, leave it untouched); writes are discarded.

use crate::queue::DoneQueue;
use crate::{
    BlockDev, BlockDevFactory, DEFAULT_QUEUE_DEPTH, DevInfo, DevStats, IoError, IoOp, IoReq, OpenError, SubmitError,
    blocks_of, check_block_size, check_data, check_range, optimal_blocks,
};

/// A null device's description; cheap to clone, shared by every reactor.
#[derive(Debug, Clone)]
pub struct NullDev {
    info: DevInfo,
    fill: bool,
}

impl NullDev {
    /// A null device of `size` bytes (rounded down to blocks) with `block_size` (512 or 4096) blocks.
    pub fn new(size: u64, block_size: u32) -> Result<NullDev, OpenError> {
        let bs = check_block_size(block_size)?;
        let info = DevInfo {
            block_size: bs,
            num_blocks: blocks_of(size, bs)?,
            volatile_write_cache: false,
            write_zeroes: true,
            deallocate: true,
            deallocate_reads_zeroes: true,
            optimal_io_blocks: optimal_blocks(0, bs),
        };
        Ok(NullDev { info, fill: true })
    }

    /// Reads leave their buffer untouched (unspecified data): measures the target, not memset.
    pub fn no_fill(mut self) -> NullDev {
        self.fill = false;
        self.info.deallocate_reads_zeroes = false;
        self
    }

    /// The same device at `size` bytes.
    pub fn resized(&self, size: u64) -> Result<NullDev, OpenError> {
        let num_blocks = blocks_of(size, self.info.block_size)?;
        Ok(NullDev { info: DevInfo { num_blocks, ..self.info }, fill: self.fill })
    }

    /// A handle for the calling reactor.
    pub fn handle(&self) -> NullHandle {
        NullHandle {
            info: self.info,
            fill: self.fill,
            done: DoneQueue::new(DEFAULT_QUEUE_DEPTH),
            stats: DevStats::default(),
        }
    }
}

impl BlockDevFactory for NullDev {
    fn info(&self) -> DevInfo {
        self.info
    }
    fn open_handle(&self) -> Result<Box<dyn BlockDev>, OpenError> {
        Ok(Box::new(self.handle()))
    }
}

/// One reactor's handle on a [`NullDev`].
#[derive(Debug)]
pub struct NullHandle {
    info: DevInfo,
    fill: bool,
    done: DoneQueue,
    stats: DevStats,
}

impl NullHandle {
    /// Sets how many completions may wait for `poll` before `submit` refuses.
    pub fn set_queue_depth(&mut self, depth: usize) {
        self.done.set_depth(depth);
    }
}

impl BlockDev for NullHandle {
    fn info(&self) -> DevInfo {
        self.info
    }

    fn submit(&mut self, io: IoReq) -> Result<(), SubmitError> {
        let io = self.done.admit(io)?;
        let tag = io.tag;
        let info = self.info;
        let (result, buf) = match io.op {
            IoOp::Read { lba, blocks, mut buf } => {
                let r = check_data(&info, lba, blocks, &buf).map(|_| {
                    if self.fill {
                        buf.zero();
                    }
                    self.stats.reads += 1;
                });
                (r, Some(buf))
            }
            IoOp::Write { lba, blocks, buf, .. } => {
                (check_data(&info, lba, blocks, &buf).map(|_| self.stats.writes += 1), Some(buf))
            }
            IoOp::Flush => {
                self.stats.flushes += 1;
                (Ok(()), None)
            }
            IoOp::WriteZeroes { lba, blocks, .. } => {
                (check_range(&info, lba, u64::from(blocks)).map(|_| self.stats.write_zeroes += 1), None)
            }
            IoOp::Deallocate { ranges } => {
                let r: Result<(), IoError> =
                    ranges.iter().try_for_each(|r| check_range(&info, r.lba, u64::from(r.blocks)).map(drop));
                (r.map(|_| self.stats.deallocates += 1), None)
            }
        };
        if result.is_err() {
            self.stats.errors += 1;
        }
        self.done.push(tag, result, buf);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<crate::IoDone>) -> usize {
        self.done.drain(out)
    }

    fn pending(&self) -> usize {
        self.done.len()
    }

    fn stats(&self) -> DevStats {
        self.stats
    }
}
