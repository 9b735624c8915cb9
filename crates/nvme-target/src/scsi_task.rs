//! SCSI block operations ([`ff_scsi::BlockOp`]) carried out on a reactor's device handle: each becomes
//! one or more block requests (a COMPARE AND WRITE reads, compares, then writes; a WRITE SAME of a
//! pattern writes it in bounded chunks), and ends with the data-in buffer or the sense to report. The
//! transport (iSCSI) owns the command; this module owns only its block work.

use ff_blockdev::{BlockDev, BufPool, IoBuf, IoDone, IoError, IoReq, LbaRange, SubmitError};
use ff_scsi::{BlockOp, LogicalUnit, Sense, WriteSamePlan, unmap};

/// Largest buffer a WRITE SAME pattern is written from; more blocks take more writes.
const PATTERN_CHUNK: usize = 1 << 20;
/// Most blocks one write-zeroes or deallocate request covers (the block layer counts in u32).
const MAX_BLOCKS_PER_REQ: u64 = 1 << 24;

/// How a finished operation ends.
#[derive(Debug)]
pub enum TaskEnd {
    /// GOOD, with the data-in when the operation reads.
    Good(Option<IoBuf>),
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

/// What is left to do after the request in flight completes.
#[derive(Debug)]
enum Step {
    /// The read of a READ: its buffer is the data-in.
    Read,
    /// A single request whose success is the command's GOOD.
    Single,
    /// The read of a VERIFY with BYTCHK=1: compare with the data-out.
    VerifyRead { expected: IoBuf },
    /// The read of a COMPARE AND WRITE: compare, then write `write` at `lba`.
    CawRead { expected: IoBuf, write: IoBuf, lba: u64, blocks: u32, fua: bool },
    /// A WRITE SAME pattern or zeroing in chunks: the next chunk starts at `next`.
    Same { plan: WriteSamePlan, pattern: Option<Vec<u8>>, next: u64, end: u64 },
}

/// One SCSI command's block work in flight.
#[derive(Debug)]
pub struct ScsiTask {
    op: BlockOp,
    step: Step,
}

impl ScsiTask {
    /// Starts `op` with its data-out on `dev`: the task to finish later, or how it already ended.
    pub fn start(
        op: BlockOp,
        data_out: Option<IoBuf>,
        lu: &LogicalUnit,
        dev: &mut dyn BlockDev,
        pool: &mut BufPool,
        tag: u64,
    ) -> Result<ScsiTask, TaskEnd> {
        let bs = lu.block_size as usize;
        let (req, step) = match op {
            BlockOp::Read { lba, blocks, .. } => {
                (IoReq::read(tag, lba, blocks, pool.get(blocks as usize * bs)), Step::Read)
            }
            BlockOp::Write { lba, blocks, fua, .. } => {
                let Some(buf) = data_out else { return Err(TaskEnd::Check(op.backend_error())) };
                (IoReq::write(tag, lba, blocks, buf, fua), Step::Single)
            }
            BlockOp::Verify { compare: false, .. } => return Err(TaskEnd::Good(None)),
            BlockOp::Verify { lba, blocks, compare: true } => {
                let Some(expected) = data_out else { return Err(TaskEnd::Check(op.backend_error())) };
                (IoReq::read(tag, lba, blocks, pool.get(blocks as usize * bs)), Step::VerifyRead { expected })
            }
            BlockOp::Flush { .. } => (IoReq::flush(tag), Step::Single),
            BlockOp::Unmap { .. } => {
                let params = data_out.as_deref().unwrap_or(&[]);
                let ranges = match unmap::parse(params, lu) {
                    Ok(r) => r,
                    Err(s) => return Err(TaskEnd::Check(s)),
                };
                if let Some(b) = data_out {
                    pool.put(b);
                }
                if ranges.is_empty() {
                    return Err(TaskEnd::Good(None));
                }
                let ranges = ranges.iter().map(|r| LbaRange { lba: r.lba, blocks: r.blocks }).collect();
                (IoReq::deallocate(tag, ranges), Step::Single)
            }
            BlockOp::CompareAndWrite { lba, blocks, fua } => {
                let Some(data) = data_out else { return Err(TaskEnd::Check(op.backend_error())) };
                let half = blocks as usize * bs;
                if data.len() != 2 * half {
                    pool.put(data);
                    return Err(TaskEnd::Check(Sense::parameter_list_length_error()));
                }
                let mut expected = pool.get(half);
                let mut write = pool.get(half);
                expected.copy_from_slice(&data[..half]);
                write.copy_from_slice(&data[half..]);
                pool.put(data);
                let step = Step::CawRead { expected, write, lba, blocks, fua };
                (IoReq::read(tag, lba, blocks, pool.get(half)), step)
            }
            BlockOp::WriteSame(ws) => {
                let block = data_out.as_deref().unwrap_or(&[]);
                let plan = ws.plan(block, lu);
                let pattern = (plan == WriteSamePlan::Pattern).then(|| block.to_vec());
                if let Some(b) = data_out {
                    pool.put(b);
                }
                let mut step = Step::Same { plan, pattern, next: ws.lba, end: ws.lba + ws.blocks };
                let Some(req) = next_same_chunk(&mut step, bs, pool, tag) else { return Err(TaskEnd::Good(None)) };
                (req, step)
            }
        };
        let mut task = ScsiTask { op, step };
        task.submit(dev, pool, req)?;
        Ok(task)
    }

    fn submit(&mut self, dev: &mut dyn BlockDev, pool: &mut BufPool, req: IoReq) -> Result<(), TaskEnd> {
        match dev.submit(req) {
            Ok(()) => Ok(()),
            Err(SubmitError::QueueFull(req)) => {
                if let ff_blockdev::IoOp::Read { buf, .. } | ff_blockdev::IoOp::Write { buf, .. } = req.op {
                    pool.put(buf);
                }
                self.release(pool);
                // The device queue is sized to the transport's command window: full means overload.
                Err(TaskEnd::Check(Sense::internal_target_failure()))
            }
        }
    }

    /// Returns the buffers the task still holds to the pool.
    pub fn release(&mut self, pool: &mut BufPool) {
        match std::mem::replace(&mut self.step, Step::Single) {
            Step::VerifyRead { expected } => pool.put(expected),
            Step::CawRead { expected, write, .. } => {
                pool.put(expected);
                pool.put(write);
            }
            _ => {}
        }
    }

    /// A request of the task completed: the task is done (`Some`) or has submitted its next request.
    pub fn on_done(&mut self, done: IoDone, dev: &mut dyn BlockDev, pool: &mut BufPool, tag: u64) -> Option<TaskEnd> {
        if let Err(e) = done.result {
            if let Some(b) = done.buf {
                pool.put(b);
            }
            self.release(pool);
            return Some(TaskEnd::Check(match e {
                IoError::OutOfRange { lba, .. } => Sense::lba_out_of_range().with_information(lba),
                _ => self.op.backend_error(),
            }));
        }
        let step = std::mem::replace(&mut self.step, Step::Single);
        match step {
            Step::Read => Some(TaskEnd::Good(done.buf)),
            Step::Single => {
                if let Some(b) = done.buf {
                    pool.put(b);
                }
                Some(TaskEnd::Good(None))
            }
            Step::VerifyRead { expected } => {
                let r = done.buf.as_deref().map(|m| ff_scsi::compare(&expected, m)).unwrap_or(Ok(()));
                pool.put(expected);
                if let Some(b) = done.buf {
                    pool.put(b);
                }
                Some(match r {
                    Ok(()) => TaskEnd::Good(None),
                    Err(s) => TaskEnd::Check(s),
                })
            }
            Step::CawRead { expected, write, lba, blocks, fua } => {
                let r = done.buf.as_deref().map(|m| ff_scsi::compare(&expected, m)).unwrap_or(Ok(()));
                pool.put(expected);
                if let Some(b) = done.buf {
                    pool.put(b);
                }
                if let Err(s) = r {
                    pool.put(write);
                    return Some(TaskEnd::Check(s));
                }
                self.submit(dev, pool, IoReq::write(tag, lba, blocks, write, fua)).err()
            }
            mut same @ Step::Same { .. } => {
                if let Some(b) = done.buf {
                    pool.put(b);
                }
                let bs = dev.info().block_size as usize;
                match next_same_chunk(&mut same, bs, pool, tag) {
                    None => Some(TaskEnd::Good(None)),
                    Some(req) => {
                        self.step = same;
                        self.submit(dev, pool, req).err()
                    }
                }
            }
        }
    }
}

/// The next request of a WRITE SAME (None when the range is done).
fn next_same_chunk(step: &mut Step, bs: usize, pool: &mut BufPool, tag: u64) -> Option<IoReq> {
    let Step::Same { plan, pattern, next, end } = step else { return None };
    if *next >= *end {
        return None;
    }
    let lba = *next;
    let req = match plan {
        WriteSamePlan::Pattern => {
            let per = (PATTERN_CHUNK / bs.max(1)).max(1) as u64;
            let blocks = (*end - lba).min(per);
            let mut buf = pool.get(blocks as usize * bs);
            let pat = pattern.as_deref().unwrap_or(&[]);
            if pat.len() == bs {
                for b in buf.chunks_mut(bs) {
                    b.copy_from_slice(pat);
                }
            }
            *next += blocks;
            IoReq::write(tag, lba, blocks as u32, buf, false)
        }
        WriteSamePlan::Zero => {
            let blocks = (*end - lba).min(MAX_BLOCKS_PER_REQ);
            *next += blocks;
            IoReq::write_zeroes(tag, lba, blocks as u32, false)
        }
        WriteSamePlan::Deallocate => {
            let mut ranges = Vec::new();
            while *next < *end {
                let blocks = (*end - *next).min(MAX_BLOCKS_PER_REQ);
                ranges.push(LbaRange { lba: *next, blocks: blocks as u32 });
                *next += blocks;
            }
            IoReq::deallocate(tag, ranges)
        }
    };
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff_blockdev::{BackendKind, BackendSpec, BlockDevFactory};

    fn disk() -> (Box<dyn BlockDev>, LogicalUnit) {
        let spec = BackendSpec { size: Some(4 << 20), block_size: Some(512), ..BackendSpec::new(BackendKind::Ram) };
        let dev = ff_blockdev::open(&spec).expect("ram").open_handle().expect("handle");
        let info = dev.info();
        let mut lu = LogicalUnit::new(info.block_size, info.num_blocks, "S1", [0x60; 16]);
        lu.thin = true;
        (dev, lu)
    }

    /// Runs `op` to its end on `dev`.
    fn run(
        op: BlockOp,
        out: Option<&[u8]>,
        dev: &mut Box<dyn BlockDev>,
        lu: &LogicalUnit,
        pool: &mut BufPool,
    ) -> TaskEnd {
        let data = out.map(|o| {
            let mut b = pool.get(o.len());
            b.copy_from_slice(o);
            b
        });
        let mut task = match ScsiTask::start(op, data, lu, dev.as_mut(), pool, 7) {
            Ok(t) => t,
            Err(end) => return end,
        };
        let mut done = Vec::new();
        loop {
            done.clear();
            dev.poll(&mut done);
            for d in done.drain(..) {
                if let Some(end) = task.on_done(d, dev.as_mut(), pool, 7) {
                    return end;
                }
            }
        }
    }

    fn read(dev: &mut Box<dyn BlockDev>, lu: &LogicalUnit, pool: &mut BufPool, lba: u64, blocks: u32) -> Vec<u8> {
        match run(BlockOp::Read { lba, blocks, fua: false, dpo: false }, None, dev, lu, pool) {
            TaskEnd::Good(Some(b)) => b.to_vec(),
            other => panic!("read: {other:?}"),
        }
    }

    #[test]
    fn writes_read_back_and_compare_and_write_checks_first() {
        let (mut dev, lu) = disk();
        let mut pool = BufPool::new();
        let data = vec![0xA5u8; 1024];
        assert!(matches!(
            run(BlockOp::Write { lba: 10, blocks: 2, fua: true, dpo: false }, Some(&data), &mut dev, &lu, &mut pool),
            TaskEnd::Good(None)
        ));
        assert_eq!(read(&mut dev, &lu, &mut pool, 10, 2), data);
        // Compare matches: the write half lands.
        let mut caw = vec![0xA5u8; 512];
        caw.extend(vec![0x3C; 512]);
        assert!(matches!(
            run(BlockOp::CompareAndWrite { lba: 10, blocks: 1, fua: false }, Some(&caw), &mut dev, &lu, &mut pool),
            TaskEnd::Good(None)
        ));
        assert_eq!(read(&mut dev, &lu, &mut pool, 10, 1), vec![0x3C; 512]);
        // Compare differs at byte 3: MISCOMPARE, nothing written.
        let mut bad = vec![0x3C; 512];
        bad[3] = 0;
        bad.extend(vec![0xFF; 512]);
        match run(BlockOp::CompareAndWrite { lba: 10, blocks: 1, fua: false }, Some(&bad), &mut dev, &lu, &mut pool) {
            TaskEnd::Check(s) => assert_eq!((s.asc, s.information), (0x1D, Some(3))),
            other => panic!("{other:?}"),
        }
        assert_eq!(read(&mut dev, &lu, &mut pool, 10, 1), vec![0x3C; 512]);
    }

    #[test]
    fn write_same_patterns_in_chunks_and_unmap_zeroes() {
        let (mut dev, lu) = disk();
        let mut pool = BufPool::new();
        let blocks = 3000u64; // more than one 1 MiB chunk of 512-byte blocks
        let ws = ff_scsi::WriteSame { lba: 100, blocks, unmap: false, ndob: false };
        assert!(matches!(
            run(BlockOp::WriteSame(ws), Some(&[9u8; 512]), &mut dev, &lu, &mut pool),
            TaskEnd::Good(None)
        ));
        assert!(read(&mut dev, &lu, &mut pool, 100, blocks as u32).iter().all(|&b| b == 9));
        assert_eq!(read(&mut dev, &lu, &mut pool, 100 + blocks, 1), vec![0; 512], "one past the range is untouched");
        // UNMAP of part of it reads back zeroes (LBPRZ).
        let mut params = vec![0u8; 8 + 16];
        params[1] = 22;
        params[3] = 16;
        params[8..16].copy_from_slice(&200u64.to_be_bytes());
        params[16..20].copy_from_slice(&10u32.to_be_bytes());
        assert!(matches!(
            run(BlockOp::Unmap { param_len: 24 }, Some(&params), &mut dev, &lu, &mut pool),
            TaskEnd::Good(None)
        ));
        assert_eq!(read(&mut dev, &lu, &mut pool, 200, 10), vec![0; 5120]);
        assert_eq!(read(&mut dev, &lu, &mut pool, 210, 1), vec![9; 512]);
    }

    #[test]
    fn verify_with_bytchk_compares_and_a_device_error_becomes_sense() {
        let (mut dev, lu) = disk();
        let mut pool = BufPool::new();
        assert!(matches!(
            run(BlockOp::Verify { lba: 0, blocks: 1, compare: true }, Some(&[0u8; 512]), &mut dev, &lu, &mut pool),
            TaskEnd::Good(None)
        ));
        match run(BlockOp::Verify { lba: 0, blocks: 1, compare: true }, Some(&[1u8; 512]), &mut dev, &lu, &mut pool) {
            TaskEnd::Check(s) => assert_eq!((s.asc, s.information), (0x1D, Some(0))),
            other => panic!("{other:?}"),
        }
        // Past the end (the SCSI layer checks first; the backend's own check is the last word).
        match run(
            BlockOp::Read { lba: lu.num_blocks, blocks: 1, fua: false, dpo: false },
            None,
            &mut dev,
            &lu,
            &mut pool,
        ) {
            TaskEnd::Check(s) => assert_eq!(s.asc, 0x21),
            other => panic!("{other:?}"),
        }
    }
}
