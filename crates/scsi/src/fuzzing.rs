//! The shared fuzz body: for a cargo-fuzz target `scsi_command` and the
//! stable `fuzz_body` test over pseudo-random inputs.
//!
//! It panics only when an invariant breaks (that is the fuzz oracle):
//! responses longer than the allocation length or than [`crate::transfer`]
//! announced, block operations outside the LU, parsed UNMAP ranges outside
//! the LU, or sense data with a missing field pointer for a CDB field error.

#![allow(clippy::panic, reason = "panicking on a broken invariant is the fuzz oracle")]

use crate::block::BlockOp;
use crate::cdb::DataDir;
use crate::lu::LogicalUnit;
use crate::{Nexus, Outcome, execute, execute_no_lun, transfer, unmap};

/// Feeds `data` as knobs (LU shape), a CDB and an UNMAP parameter list.
/// Byte 0 picks block size, thin, read-only and cache; the next 16 bytes
/// are the CDB; the rest is parameter data.
pub fn execute_cdb(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let mut lu = LogicalUnit::new(if knobs & 1 != 0 { 4096 } else { 512 }, 1, "FUZZ", [0x60; 16]);
    lu.thin = knobs & 0x02 != 0;
    lu.read_only = knobs & 0x04 != 0;
    lu.write_cache = knobs & 0x08 != 0;
    lu.lbppbe = (knobs >> 4) & 0x03;
    lu.num_blocks = match knobs >> 6 {
        0 => 1,
        1 => 2048,
        2 => u64::from(u32::MAX) + 7,
        _ => 1 << 40,
    };
    lu.max_unmap_descriptors = 4;
    lu.max_unmap_blocks = 4096;
    assert!(lu.validate().is_ok(), "fuzz LU invalid");
    let (cdb, params) = rest.split_at(rest.len().min(16));
    let luns = [0u16, 1, 300];
    let nexus = Nexus { luns: &luns, port_designators: &[0x51, 0x94, 0, 4, 0, 0, 0, 1], pending_sense: None };
    let t = transfer(cdb, &lu);
    let out = execute(cdb, &lu, &nexus);
    match &out {
        Outcome::Data(d) => {
            assert_eq!(t.dir, DataDir::ToInitiator, "data for a CDB without data-in: {cdb:02x?}");
            assert!(d.len() as u64 <= t.len, "{} bytes over the {} announced", d.len(), t.len);
        }
        Outcome::Block(op) => check_op(op, &lu, t.len, params),
        Outcome::Good | Outcome::Check(_) => {}
    }
    if let Outcome::Check(s) = &out
        && s.asc == 0x24
    {
        assert!(s.field.is_some_and(|f| f.in_cdb), "INVALID FIELD IN CDB without a pointer");
    }
    if let Outcome::Data(d) = execute_no_lun(cdb, &nexus) {
        assert!(d.len() as u64 <= t.len.max(8), "no-LUN reply over the allocation length");
    }
    // Whatever the command, the parameter list parser must hold up too.
    if let Ok(ranges) = unmap::parse(params, &lu) {
        for r in ranges {
            assert!(r.blocks > 0 && r.lba + u64::from(r.blocks) <= lu.num_blocks, "range outside the LU");
        }
    }
}

fn check_op(op: &BlockOp, lu: &LogicalUnit, announced: u64, params: &[u8]) {
    let inside = |lba: u64, n: u64| n > 0 && lba.checked_add(n).is_some_and(|e| e <= lu.num_blocks);
    let bs = lu.block_size;
    let moved = op.data_in_len(bs) + op.data_out_len(bs);
    assert_eq!(moved, announced, "transfer() disagrees with the operation {op:?}");
    match *op {
        BlockOp::Read { lba, blocks, .. }
        | BlockOp::Write { lba, blocks, .. }
        | BlockOp::Verify { lba, blocks, .. }
        | BlockOp::CompareAndWrite { lba, blocks, .. } => {
            assert!(inside(lba, u64::from(blocks)), "{op:?} outside the LU");
        }
        BlockOp::WriteSame(ws) => {
            assert!(inside(ws.lba, ws.blocks), "{op:?} outside the LU");
            let _ = ws.plan(params, lu);
        }
        BlockOp::Flush { lba, blocks, .. } => {
            assert!(lba.checked_add(blocks).is_some_and(|e| e <= lu.num_blocks), "flush outside");
        }
        BlockOp::Unmap { param_len } => assert!(param_len >= 8 && lu.thin && !lu.read_only),
    }
}
