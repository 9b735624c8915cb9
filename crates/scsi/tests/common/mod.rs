//! CDB builders and LU fixtures shared by the integration tests.
#![allow(dead_code, clippy::indexing_slicing)]

use ff_scsi::{LogicalUnit, Nexus, Outcome, Sense};

pub const BLOCKS: u64 = 10_000;

/// A thick 512-byte LU with a write cache.
pub fn lu() -> LogicalUnit {
    let mut l =
        LogicalUnit::new(512, BLOCKS, "SERIAL-1", [0x60, 0x01, 0x40, 0x5F, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    l.max_transfer_blocks = 1024;
    l.transport_version = 0x0960;
    l
}

/// The same LU, thin provisioned with small UNMAP limits.
pub fn thin() -> LogicalUnit {
    let mut l = lu();
    l.thin = true;
    l.max_unmap_blocks = 2048;
    l.max_unmap_descriptors = 8;
    l
}

pub fn nexus() -> Nexus<'static> {
    Nexus { luns: &[0, 1, 5], port_designators: &[], pending_sense: None }
}

pub fn run(cdb: &[u8], lu: &LogicalUnit) -> Outcome {
    ff_scsi::execute(cdb, lu, &nexus())
}

/// The sense of a CHECK CONDITION, or a panic naming what came back.
pub fn sense(o: Outcome) -> Sense {
    match o {
        Outcome::Check(s) => s,
        other => panic!("expected CHECK CONDITION, got {other:?}"),
    }
}

pub fn data(o: Outcome) -> Vec<u8> {
    match o {
        Outcome::Data(d) => d,
        other => panic!("expected data, got {other:?}"),
    }
}

/// (key, asc, ascq) of a CHECK CONDITION.
pub fn code(o: Outcome) -> (u8, u8, u8) {
    let s = sense(o);
    (s.key as u8, s.asc, s.ascq)
}

pub const LBA_OOB: (u8, u8, u8) = (0x05, 0x21, 0x00);
pub const INVALID_CDB: (u8, u8, u8) = (0x05, 0x24, 0x00);
pub const INVALID_OPCODE: (u8, u8, u8) = (0x05, 0x20, 0x00);
pub const WRITE_PROTECTED: (u8, u8, u8) = (0x07, 0x27, 0x00);
pub const PARAM_LEN: (u8, u8, u8) = (0x05, 0x1A, 0x00);
pub const LUN_NOT_SUPPORTED: (u8, u8, u8) = (0x05, 0x25, 0x00);

pub fn cdb10(op: u8, b1: u8, lba: u32, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

pub fn cdb12(op: u8, b1: u8, lba: u32, len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&len.to_be_bytes());
    c
}

pub fn cdb16(op: u8, b1: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

pub fn cdb6(op: u8, lba: u32, len: u8) -> [u8; 6] {
    let l = lba.to_be_bytes();
    [op, l[1] & 0x1F, l[2], l[3], len, 0]
}

pub fn inquiry(evpd: bool, page: u8, alloc: u16) -> [u8; 6] {
    let a = alloc.to_be_bytes();
    [0x12, u8::from(evpd), page, a[0], a[1], 0]
}

pub fn mode_sense6(dbd: bool, pc: u8, page: u8, subpage: u8, alloc: u8) -> [u8; 6] {
    [0x1A, if dbd { 0x08 } else { 0 }, (pc << 6) | page, subpage, alloc, 0]
}

pub fn mode_sense10(llbaa: bool, dbd: bool, pc: u8, page: u8, alloc: u16) -> [u8; 10] {
    let a = alloc.to_be_bytes();
    let b1 = if llbaa { 0x10 } else { 0 } | if dbd { 0x08 } else { 0 };
    [0x5A, b1, (pc << 6) | page, 0, 0, 0, 0, a[0], a[1], 0]
}

pub fn rc16(alloc: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x10;
    c[10..14].copy_from_slice(&alloc.to_be_bytes());
    c
}

pub fn report_luns(select: u8, alloc: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA0;
    c[2] = select;
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

pub fn rsoc(rctd: bool, options: u8, op: u8, sa: u16, alloc: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA3;
    c[1] = 0x0C;
    c[2] = options | if rctd { 0x80 } else { 0 };
    c[3] = op;
    c[4..6].copy_from_slice(&sa.to_be_bytes());
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

pub fn caw(b1: u8, lba: u64, blocks: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

pub fn unmap_cdb(anchor: bool, param_len: u16) -> [u8; 10] {
    let p = param_len.to_be_bytes();
    [0x42, u8::from(anchor), 0, 0, 0, 0, 0, p[0], p[1], 0]
}
