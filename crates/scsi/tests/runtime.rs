//! The runtime contract end to end: a RAM disk driven only through the
//! public API (transfer, execute, unmap::parse, compare, WriteSame::plan),
//! replaying what libiscsi's data tests do and checking what reads return.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ff_scsi::{BlockOp, DataDir, LogicalUnit, Outcome, Sense, WriteSamePlan, execute, transfer, unmap};

/// A RAM disk plus the transport's data-phase rule for exact transfers.
struct Disk {
    lu: LogicalUnit,
    data: Vec<u8>,
    flushes: usize,
}

impl Disk {
    fn new(lu: LogicalUnit) -> Disk {
        let n = lu.size_bytes() as usize;
        Disk { lu, data: vec![0; n], flushes: 0 }
    }

    fn range(&mut self, lba: u64, blocks: u64) -> &mut [u8] {
        let bs = self.lu.block_size as usize;
        &mut self.data[lba as usize * bs..(lba + blocks) as usize * bs]
    }

    /// One command with `out` as data-out; data-in or the failure sense.
    fn cmd(&mut self, cdb: &[u8], out: &[u8]) -> Result<Vec<u8>, Sense> {
        let t = transfer(cdb, &self.lu);
        if t.exact && t.dir == DataDir::FromInitiator && out.len() as u64 != t.len {
            return Err(Sense::invalid_field_in_cdb(0, None));
        }
        match execute(cdb, &self.lu, &nexus()) {
            Outcome::Good => Ok(Vec::new()),
            Outcome::Data(d) => Ok(d),
            Outcome::Check(s) => Err(s),
            Outcome::Block(op) => self.run(op, out),
        }
    }

    fn run(&mut self, op: BlockOp, out: &[u8]) -> Result<Vec<u8>, Sense> {
        let bs = self.lu.block_size as usize;
        match op {
            BlockOp::Read { lba, blocks, .. } => Ok(self.range(lba, u64::from(blocks)).to_vec()),
            BlockOp::Write { lba, blocks, .. } => {
                self.range(lba, u64::from(blocks)).copy_from_slice(out);
                Ok(Vec::new())
            }
            BlockOp::Verify { lba, blocks, compare } => {
                let medium = self.range(lba, u64::from(blocks)).to_vec();
                if compare { ff_scsi::compare(out, &medium).map(|()| Vec::new()) } else { Ok(Vec::new()) }
            }
            BlockOp::WriteSame(ws) => {
                let lu = self.lu.clone();
                let plan = ws.plan(out, &lu);
                let r = self.range(ws.lba, ws.blocks);
                match plan {
                    WriteSamePlan::Deallocate | WriteSamePlan::Zero => r.fill(0),
                    WriteSamePlan::Pattern => r.chunks_mut(bs).for_each(|b| b.copy_from_slice(out)),
                }
                Ok(Vec::new())
            }
            BlockOp::Unmap { .. } => {
                for r in unmap::parse(out, &self.lu)? {
                    self.range(r.lba, u64::from(r.blocks)).fill(0);
                }
                Ok(Vec::new())
            }
            BlockOp::Flush { .. } => {
                self.flushes += 1;
                Ok(Vec::new())
            }
            BlockOp::CompareAndWrite { lba, blocks, .. } => {
                let (verify, write) = ff_scsi::split_compare_and_write(out, blocks, self.lu.block_size).unwrap();
                let medium = self.range(lba, u64::from(blocks));
                ff_scsi::compare(verify, medium)?;
                medium.copy_from_slice(write);
                Ok(Vec::new())
            }
        }
    }
}

fn unmap_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    let bd = (ranges.len() * 16) as u16;
    let mut b = [(bd + 6).to_be_bytes(), bd.to_be_bytes()].concat();
    b.extend_from_slice(&[0; 4]);
    for &(lba, n) in ranges {
        b.extend_from_slice(&lba.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
    }
    b
}

#[test]
fn write_then_read_back_in_every_size() {
    let mut d = Disk::new(lu());
    let pattern: Vec<u8> = (0..512 * 3).map(|i| (i % 251) as u8).collect();
    d.cmd(&cdb16(0x8A, 0, 100, 3), &pattern).unwrap();
    assert_eq!(d.cmd(&cdb10(0x28, 0, 100, 3), &[]).unwrap(), pattern);
    assert_eq!(d.cmd(&cdb12(0xA8, 0, 101, 1), &[]).unwrap(), pattern[512..1024]);
    assert_eq!(d.cmd(&cdb6(0x08, 102, 1), &[]).unwrap(), pattern[1024..]);
    assert_eq!(d.cmd(&cdb10(0x28, 0, 100, 0), &[]).unwrap(), Vec::<u8>::new());
}

#[test]
fn write_same_check_pattern_and_unmap() {
    let mut d = Disk::new(thin());
    // libiscsi WriteSame10.Check: block filled with i, read back.
    for i in [1u8, 7, 200] {
        d.cmd(&cdb10(0x41, 0, 0, u16::from(i)), &[i; 512]).unwrap();
        assert!(d.cmd(&cdb10(0x28, 0, 0, u16::from(i)), &[]).unwrap().iter().all(|&b| b == i));
    }
    // WriteSame10.Unmap: written 0xff, unmapped with a zero block, reads zero.
    d.cmd(&cdb10(0x2A, 0, 0, 16), &[0xFF; 512 * 16]).unwrap();
    d.cmd(&cdb10(0x41, 0x08, 0, 16), &[0; 512]).unwrap();
    assert!(d.cmd(&cdb10(0x28, 0, 0, 16), &[]).unwrap().iter().all(|&b| b == 0));
    // UNMAP with a non-zero block still writes it (UnmapUnaligned).
    d.cmd(&cdb16(0x93, 0x08, 1, 2), &[0xA6; 512]).unwrap();
    assert!(d.cmd(&cdb10(0x28, 0, 1, 2), &[]).unwrap().iter().all(|&b| b == 0xA6));
    // InvalidDataOutSize: half a block or two blocks of data-out.
    assert!(d.cmd(&cdb10(0x41, 0x08, 0, 1), &[0; 256]).is_err());
    assert!(d.cmd(&cdb10(0x41, 0x08, 0, 1), &[0; 1024]).is_err());
}

#[test]
fn unmap_then_read_zeros() {
    let mut d = Disk::new(thin());
    d.cmd(&cdb10(0x2A, 0, 0, 256), &[b'a'; 512 * 256]).unwrap();
    let list = unmap_list(&[(0, 10), (20, 1)]);
    d.cmd(&unmap_cdb(false, list.len() as u16), &list).unwrap();
    let r = d.cmd(&cdb10(0x28, 0, 0, 21), &[]).unwrap();
    assert!(r[..5120].iter().all(|&b| b == 0));
    assert!(r[5120..10240].iter().all(|&b| b == b'a'));
    assert!(r[10240..].iter().all(|&b| b == 0));
    // Zero descriptors, and a zero-length one at the end of the medium.
    let empty = unmap_list(&[]);
    d.cmd(&unmap_cdb(false, 8), &empty).unwrap();
    let end = unmap_list(&[(BLOCKS, 0)]);
    d.cmd(&unmap_cdb(false, 24), &end).unwrap();
    // One past the end, or too many descriptors, touches nothing.
    let bad = unmap_list(&[(30, 1), (BLOCKS, 1)]);
    assert_eq!(d.cmd(&unmap_cdb(false, 40), &bad).unwrap_err().asc, 0x21);
    let many: Vec<(u64, u32)> = (0..9).map(|i| (100 + i, 1)).collect();
    let many = unmap_list(&many);
    assert_eq!(d.cmd(&unmap_cdb(false, many.len() as u16), &many).unwrap_err().asc, 0x26);
    assert!(d.cmd(&cdb10(0x28, 0, 30, 1), &[]).unwrap().iter().all(|&b| b == b'a'));
}

#[test]
fn verify_match_and_mismatch() {
    let mut d = Disk::new(lu());
    d.cmd(&cdb10(0x2A, 0, 0, 4), &[0x5A; 2048]).unwrap();
    let mut copy = d.cmd(&cdb10(0x28, 0, 0, 4), &[]).unwrap();
    d.cmd(&cdb10(0x2F, 0x02, 0, 4), &copy).unwrap();
    copy[1500] ^= b'X';
    let s = d.cmd(&cdb16(0x8F, 0x02, 0, 4), &copy).unwrap_err();
    assert_eq!((s.key as u8, s.asc, s.information), (0x0E, 0x1D, Some(1500)));
    // BYTCHK 0 ignores the data (MismatchNoCmp sends none).
    d.cmd(&cdb10(0x2F, 0, 0, 4), &[]).unwrap();
}

#[test]
fn compare_and_write_semantics() {
    let mut l = lu();
    l.max_compare_write_blocks = 2;
    let mut d = Disk::new(l);
    d.cmd(&cdb16(0x8A, 0, 50, 2), &[b'A'; 1024]).unwrap();
    let mut out = vec![b'A'; 1024];
    out.extend_from_slice(&[b'B'; 1024]);
    d.cmd(&caw(0, 50, 2), &out).unwrap();
    assert!(d.cmd(&cdb16(0x88, 0, 50, 2), &[]).unwrap().iter().all(|&b| b == b'B'));
    // Miscompare: nothing written, offset of the first difference.
    let mut out = vec![b'B'; 1024];
    out[1024 - 27] = b'C';
    out.extend_from_slice(&[b'Z'; 1024]);
    let s = d.cmd(&caw(0, 50, 2), &out).unwrap_err();
    assert_eq!((s.key as u8, s.information), (0x0E, Some(997)));
    assert!(d.cmd(&cdb16(0x88, 0, 50, 2), &[]).unwrap().iter().all(|&b| b == b'B'));
    // Data-out of the wrong size never reaches the medium.
    assert!(d.cmd(&caw(0, 50, 1), &[b'B'; 2048]).is_err());
    assert!(d.cmd(&caw(0, 50, 3), &[b'B'; 3072]).is_err());
}

#[test]
fn flush_only_with_a_write_cache() {
    let mut d = Disk::new(lu());
    d.cmd(&cdb10(0x35, 0, 0, 0), &[]).unwrap();
    d.cmd(&cdb16(0x91, 0x02, 0, 8), &[]).unwrap();
    assert_eq!(d.flushes, 2);
    let mut wt = lu();
    wt.write_cache = false;
    let mut d = Disk::new(wt);
    d.cmd(&cdb10(0x35, 0, 0, 0), &[]).unwrap();
    assert_eq!(d.flushes, 0);
}
