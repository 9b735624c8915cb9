//! Block operations: what a validated READ, WRITE, VERIFY, WRITE SAME,
//! UNMAP, SYNCHRONIZE CACHE or COMPARE AND WRITE asks the runtime to do on
//! its backend ([`BlockOp`]), the checks that get a command there (write
//! protection, transfer limits, capacity), and the helpers the runtime
//! needs to finish the job: data comparison with the MISCOMPARE sense,
//! COMPARE AND WRITE's data split, and how to carry out a WRITE SAME.
//!
//! Owns SBC-3 command semantics; byte layouts of the CDBs are in
//! [`crate::cdb`], the UNMAP parameter list in [`crate::unmap`].

use crate::cdb::Command;
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// An operation for the runtime's block backend. Lengths are in logical
/// blocks of the LU; only a flush may have none (other zero-length
/// commands complete at once).
///
/// Mapping onto `ff_blockdev::IoOp`: `Read` → Read; `Write` → Write with
/// `fua`; `Flush` → Flush; `WriteSame` → WriteZeroes, Deallocate or Writes
/// per [`WriteSame::plan`]; `Unmap` → Deallocate of the ranges
/// [`crate::unmap::parse`] returns; `Verify` and `CompareAndWrite` → a Read,
/// [`compare`], then (CAW) a Write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `blocks` blocks at `lba` and return them as data-in.
    Read {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force unit access: read from the medium, not a volatile cache.
        fua: bool,
        /// Disable page out: a hint that the data will not be reused soon.
        dpo: bool,
    },
    /// Write the `blocks` blocks of data-out at `lba`.
    Write {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force unit access: the data must be durable before GOOD (also
        /// set for WRITE AND VERIFY, whose verification is the durable write).
        fua: bool,
        /// Disable page out hint.
        dpo: bool,
    },
    /// VERIFY: read the blocks; with `compare`, the data-out (`blocks`
    /// blocks) must equal them ([`compare`] gives the MISCOMPARE sense);
    /// without, only unreadable blocks are an error.
    Verify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// BYTCHK 1: compare with data-out.
        compare: bool,
    },
    /// WRITE SAME: one block of data-out (none with NDOB) for every block
    /// of the range; see [`WriteSame::plan`].
    WriteSame(WriteSame),
    /// UNMAP: receive `param_len` bytes of parameter list, then parse it
    /// with [`crate::unmap::parse`] and deallocate the ranges.
    Unmap {
        /// Parameter list length (at least 8).
        param_len: u16,
    },
    /// SYNCHRONIZE CACHE: make the range durable (backends flush it all).
    Flush {
        /// First block.
        lba: u64,
        /// Number of blocks to the end of the range (0 when the range is
        /// empty: a zero-length flush at the end of the medium).
        blocks: u64,
        /// IMMED: GOOD may be sent before the flush completes.
        immed: bool,
    },
    /// COMPARE AND WRITE: data-out holds `blocks` blocks to compare then
    /// `blocks` blocks to write ([`split_compare_and_write`]); read the
    /// range, [`compare`] it with the first half and, only when equal,
    /// write the second half, all atomically against other writes to the
    /// range (VMware uses it as a lock).
    CompareAndWrite {
        /// First block.
        lba: u64,
        /// Number of blocks compared and written.
        blocks: u32,
        /// Force unit access for the write.
        fua: bool,
    },
}

impl BlockOp {
    /// Data-out bytes the operation consumes on `block_size`-byte blocks.
    pub fn data_out_len(&self, block_size: u32) -> u64 {
        let bs = u64::from(block_size);
        match *self {
            BlockOp::Write { blocks, .. } | BlockOp::Verify { blocks, compare: true, .. } => u64::from(blocks) * bs,
            BlockOp::WriteSame(ws) if !ws.ndob => bs,
            BlockOp::Unmap { param_len } => u64::from(param_len),
            BlockOp::CompareAndWrite { blocks, .. } => 2 * u64::from(blocks) * bs,
            _ => 0,
        }
    }

    /// The sense to fail the command with when the backend reports an I/O
    /// error: UNRECOVERED READ ERROR for reads and verifies, WRITE ERROR for
    /// writes, WRITE SAME, flushes and COMPARE AND WRITE (whose read phase
    /// should use [`Sense::unrecovered_read_error`] instead), INTERNAL
    /// TARGET FAILURE for a failed deallocation, which loses no data. The
    /// INFORMATION field holds the first block of the request: backends
    /// do not say which block failed.
    pub fn backend_error(&self) -> Sense {
        match *self {
            BlockOp::Read { lba, .. } | BlockOp::Verify { lba, .. } => Sense::unrecovered_read_error(lba),
            BlockOp::Write { lba, .. } | BlockOp::Flush { lba, .. } | BlockOp::CompareAndWrite { lba, .. } => {
                Sense::write_error(lba)
            }
            BlockOp::WriteSame(ws) => Sense::write_error(ws.lba),
            BlockOp::Unmap { .. } => Sense::internal_target_failure(),
        }
    }

    /// Data-in bytes the operation returns on `block_size`-byte blocks.
    pub fn data_in_len(&self, block_size: u32) -> u64 {
        match *self {
            BlockOp::Read { blocks, .. } => u64::from(blocks) * u64::from(block_size),
            _ => 0,
        }
    }
}

/// A validated WRITE SAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSame {
    /// First block.
    pub lba: u64,
    /// Number of blocks (at least 1, at most the LU's limit).
    pub blocks: u64,
    /// The initiator allows unmapping instead of writing.
    pub unmap: bool,
    /// No data-out: the block is all zeros.
    pub ndob: bool,
}

/// How to carry out a WRITE SAME on the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteSamePlan {
    /// Deallocate the range: UNMAP was allowed, the LU is thin and the
    /// block is zeros, which is what unmapped blocks read back (LBPRZ).
    Deallocate,
    /// Zero the range (WriteZeroes).
    Zero,
    /// Write the data-out block to every block of the range.
    Pattern,
}

impl WriteSame {
    /// The plan for this WRITE SAME with its data-out `block` (ignored with
    /// NDOB). Unmapping is only a permission: a non-zero block is written,
    /// because reads must return what was written.
    pub fn plan(&self, block: &[u8], lu: &LogicalUnit) -> WriteSamePlan {
        let zeros = self.ndob || block.iter().all(|&b| b == 0);
        match (zeros, self.unmap && lu.thin) {
            (true, true) => WriteSamePlan::Deallocate,
            (true, false) => WriteSamePlan::Zero,
            (false, _) => WriteSamePlan::Pattern,
        }
    }
}

/// Compares data-out with what the medium holds: the MISCOMPARE sense with
/// the offset of the first differing byte (from the start of the data-out)
/// in the INFORMATION field, as SBC-3 asks for VERIFY and COMPARE AND WRITE.
/// A length difference counts as a miscompare at the shorter length.
pub fn compare(data_out: &[u8], medium: &[u8]) -> Result<(), Sense> {
    match data_out.iter().zip(medium).position(|(a, b)| a != b) {
        Some(i) => Err(Sense::miscompare(i as u64)),
        None if data_out.len() != medium.len() => Err(Sense::miscompare(data_out.len().min(medium.len()) as u64)),
        None => Ok(()),
    }
}

/// Splits COMPARE AND WRITE data-out into the verify and write halves of
/// `blocks` blocks each; `None` when the data is not exactly that long.
pub fn split_compare_and_write(data: &[u8], blocks: u32, block_size: u32) -> Option<(&[u8], &[u8])> {
    let half = usize::try_from(u64::from(blocks) * u64::from(block_size)).ok()?;
    if data.len() != half.checked_mul(2)? {
        return None;
    }
    Some(data.split_at(half))
}

/// Outcome of checking a block command against the LU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockCheck {
    /// Nothing to do: GOOD.
    Done,
    /// Run this on the backend.
    Op(BlockOp),
}

fn protect(lu: &LogicalUnit) -> Result<(), Sense> {
    if lu.read_only { Err(Sense::write_protected()) } else { Ok(()) }
}

fn range(lu: &LogicalUnit, lba: u64, blocks: u64) -> Result<(), Sense> {
    if lu.in_range(lba, blocks) { Ok(()) } else { Err(Sense::lba_out_of_range()) }
}

fn limit(lu: &LogicalUnit, blocks: u32, len_at: u16) -> Result<(), Sense> {
    if blocks > lu.max_transfer_blocks { Err(Sense::invalid_field_in_cdb(len_at, None)) } else { Ok(()) }
}

/// Checks a block command (the caller passes only block commands) and
/// turns it into an operation. Order: write protection, field limits, then
/// capacity; a zero-length command that passes is done.
pub(crate) fn check(cmd: &Command, lu: &LogicalUnit) -> Result<BlockCheck, Sense> {
    let op = match *cmd {
        Command::Read { lba, blocks, dpo, fua, len_at } => {
            limit(lu, blocks, len_at)?;
            range(lu, lba, u64::from(blocks))?;
            (blocks > 0).then_some(BlockOp::Read { lba, blocks, fua, dpo })
        }
        Command::Write { lba, blocks, dpo, fua, verify, len_at } => {
            protect(lu)?;
            limit(lu, blocks, len_at)?;
            range(lu, lba, u64::from(blocks))?;
            (blocks > 0).then_some(BlockOp::Write { lba, blocks, fua: fua || verify, dpo })
        }
        Command::Verify { lba, blocks, compare, len_at } => {
            if compare {
                limit(lu, blocks, len_at)?;
            }
            range(lu, lba, u64::from(blocks))?;
            (blocks > 0).then_some(BlockOp::Verify { lba, blocks, compare })
        }
        Command::WriteSame { lba, blocks, unmap, ndob, len_at } => {
            protect(lu)?;
            if unmap && !lu.thin {
                return Err(Sense::invalid_field_in_cdb(1, Some(3)));
            }
            // WSNZ is reported: 0 blocks is not "to the end of the medium".
            if blocks == 0 || blocks > lu.max_write_same_blocks {
                return Err(Sense::invalid_field_in_cdb(len_at, None));
            }
            range(lu, lba, blocks)?;
            Some(BlockOp::WriteSame(WriteSame { lba, blocks, unmap, ndob }))
        }
        Command::Unmap { param_len } => {
            // UNMAP exists only on thin LUs (LBPU), as in tgt.
            if !lu.thin {
                return Err(Sense::invalid_opcode());
            }
            protect(lu)?;
            match param_len {
                0 => None,
                1..=7 => return Err(Sense::parameter_list_length_error()),
                _ => Some(BlockOp::Unmap { param_len }),
            }
        }
        Command::SyncCache { lba, blocks, immed } => {
            range(lu, lba, u64::from(blocks))?;
            let blocks = if blocks == 0 { lu.num_blocks.saturating_sub(lba) } else { u64::from(blocks) };
            // Without a volatile cache every completed write is durable.
            lu.write_cache.then_some(BlockOp::Flush { lba, blocks, immed })
        }
        Command::PreFetch { lba, blocks } => {
            // Nothing to stage: GOOD (not CONDITION MET, which claims the
            // blocks now sit in a cache).
            range(lu, lba, u64::from(blocks))?;
            None
        }
        Command::CompareAndWrite { lba, blocks, dpo: _, fua } => {
            if lu.max_compare_write_blocks == 0 {
                return Err(Sense::invalid_opcode());
            }
            protect(lu)?;
            if blocks > lu.max_compare_write_blocks {
                return Err(Sense::invalid_field_in_cdb(13, None));
            }
            range(lu, lba, u64::from(blocks))?;
            (blocks > 0).then_some(BlockOp::CompareAndWrite { lba, blocks: u32::from(blocks), fua })
        }
        _ => None,
    };
    Ok(op.map_or(BlockCheck::Done, BlockCheck::Op))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sense::SenseKey;

    fn lu() -> LogicalUnit {
        LogicalUnit::new(512, 1000, "S", [0x60; 16])
    }

    #[test]
    fn compare_reports_first_difference() {
        assert_eq!(compare(b"abcd", b"abcd"), Ok(()));
        let e = compare(b"abXd", b"abcd").err();
        assert_eq!(e.map(|s| (s.key, s.information)), Some((SenseKey::Miscompare, Some(2))));
        assert_eq!(compare(b"ab", b"abc").err().and_then(|s| s.information), Some(2));
        assert_eq!(compare(b"", b"").err(), None);
    }

    #[test]
    fn caw_split() {
        let data = [1u8; 1024];
        let (v, w) = split_compare_and_write(&data, 1, 512).unwrap_or_default();
        assert_eq!((v.len(), w.len()), (512, 512));
        assert_eq!(split_compare_and_write(&data, 2, 512), None);
        assert_eq!(split_compare_and_write(&data[..1000], 1, 512), None);
    }

    #[test]
    fn write_same_plans() {
        let mut l = lu();
        let ws = WriteSame { lba: 0, blocks: 8, unmap: true, ndob: false };
        assert_eq!(ws.plan(&[0; 512], &l), WriteSamePlan::Zero);
        l.thin = true;
        assert_eq!(ws.plan(&[0; 512], &l), WriteSamePlan::Deallocate);
        assert_eq!(ws.plan(&[1; 512], &l), WriteSamePlan::Pattern);
        let nd = WriteSame { ndob: true, unmap: false, ..ws };
        assert_eq!(nd.plan(&[], &l), WriteSamePlan::Zero);
        assert_eq!(WriteSame { unmap: false, ..ws }.plan(&[0; 512], &l), WriteSamePlan::Zero);
    }

    #[test]
    fn op_data_lengths() {
        let bs = 512;
        assert_eq!(BlockOp::Read { lba: 0, blocks: 3, fua: false, dpo: false }.data_in_len(bs), 1536);
        assert_eq!(BlockOp::Write { lba: 0, blocks: 3, fua: false, dpo: false }.data_out_len(bs), 1536);
        assert_eq!(BlockOp::Verify { lba: 0, blocks: 3, compare: false }.data_out_len(bs), 0);
        assert_eq!(BlockOp::Verify { lba: 0, blocks: 3, compare: true }.data_out_len(bs), 1536);
        let ws = WriteSame { lba: 0, blocks: 9, unmap: false, ndob: false };
        assert_eq!(BlockOp::WriteSame(ws).data_out_len(bs), 512);
        assert_eq!(BlockOp::WriteSame(WriteSame { ndob: true, ..ws }).data_out_len(bs), 0);
        assert_eq!(BlockOp::Unmap { param_len: 24 }.data_out_len(bs), 24);
        assert_eq!(BlockOp::CompareAndWrite { lba: 0, blocks: 2, fua: false }.data_out_len(bs), 2048);
        assert_eq!(BlockOp::Flush { lba: 0, blocks: 1, immed: false }.data_in_len(bs), 0);
    }

    #[test]
    fn backend_errors() {
        let key = |op: BlockOp| {
            let s = op.backend_error();
            (s.key, s.asc, s.information)
        };
        let r = BlockOp::Read { lba: 7, blocks: 1, fua: false, dpo: false };
        assert_eq!(key(r), (SenseKey::MediumError, 0x11, Some(7)));
        assert_eq!(key(BlockOp::Verify { lba: 8, blocks: 1, compare: true }), (SenseKey::MediumError, 0x11, Some(8)));
        let w = BlockOp::Write { lba: 9, blocks: 1, fua: true, dpo: false };
        assert_eq!(key(w), (SenseKey::MediumError, 0x0C, Some(9)));
        let ws = WriteSame { lba: 3, blocks: 2, unmap: false, ndob: true };
        assert_eq!(key(BlockOp::WriteSame(ws)), (SenseKey::MediumError, 0x0C, Some(3)));
        assert_eq!(key(BlockOp::Unmap { param_len: 24 }), (SenseKey::HardwareError, 0x44, None));
    }
}
