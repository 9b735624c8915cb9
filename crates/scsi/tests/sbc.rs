//! Block commands through the executor: READ/WRITE in every size, VERIFY,
//! WRITE AND VERIFY, WRITE SAME, UNMAP (both phases), SYNCHRONIZE CACHE,
//! PRE-FETCH, COMPARE AND WRITE, and the data phase each implies. The
//! boundary cases follow libiscsi's iscsi-test-cu.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ff_scsi::{BlockOp, DataDir, Outcome, Transfer, WriteSame, transfer, unmap};

fn op(o: Outcome) -> BlockOp {
    match o {
        Outcome::Block(op) => op,
        other => panic!("expected a block operation, got {other:?}"),
    }
}

const READS: [u8; 3] = [0x28, 0xA8, 0x88];
const WRITES: [u8; 3] = [0x2A, 0xAA, 0x8A];

/// A 10/12/16-byte CDB of the same family.
fn rw(opcode: u8, b1: u8, lba: u64, len: u32) -> Vec<u8> {
    match opcode {
        0x28 | 0x2A | 0x2E | 0x2F | 0x34 | 0x35 | 0x41 => cdb10(opcode, b1, lba as u32, len as u16).to_vec(),
        0xA8 | 0xAA | 0xAE | 0xAF => cdb12(opcode, b1, lba as u32, len).to_vec(),
        _ => cdb16(opcode, b1, lba, len).to_vec(),
    }
}

#[test]
fn reads_and_writes_map_to_operations() {
    for (r, w) in READS.into_iter().zip(WRITES) {
        assert_eq!(op(run(&rw(r, 0, 7, 3), &lu())), BlockOp::Read { lba: 7, blocks: 3, fua: false, dpo: false });
        assert_eq!(op(run(&rw(w, 0x18, 9, 2), &lu())), BlockOp::Write { lba: 9, blocks: 2, fua: true, dpo: true });
        // FUA_NV is obsolete but accepted (libiscsi's Write*Flags).
        assert!(matches!(op(run(&rw(w, 0x02, 0, 1), &lu())), BlockOp::Write { fua: false, .. }));
        // Reading or writing the very last blocks is fine.
        assert!(matches!(run(&rw(r, 0, BLOCKS - 256, 256), &lu()), Outcome::Block(_)));
    }
}

#[test]
fn zero_length_transfers_are_good_but_still_range_checked() {
    for opcode in READS.into_iter().chain(WRITES) {
        assert_eq!(run(&rw(opcode, 0, 0, 0), &lu()), Outcome::Good);
        assert_eq!(run(&rw(opcode, 0, BLOCKS, 0), &lu()), Outcome::Good);
        assert_eq!(code(run(&rw(opcode, 0, BLOCKS + 1, 0), &lu())), LBA_OOB);
        assert_eq!(code(run(&rw(opcode, 0, 0x8000_0000, 0), &lu())), LBA_OOB);
        let top = if (0x88..=0x8F).contains(&opcode) { u64::MAX } else { u64::from(u32::MAX) };
        assert_eq!(code(run(&rw(opcode, 0, top, 0), &lu())), LBA_OOB);
    }
}

#[test]
fn beyond_end_of_medium() {
    for opcode in READS.into_iter().chain(WRITES) {
        for i in [1u32, 2, 256] {
            assert_eq!(code(run(&rw(opcode, 0, BLOCKS + 1 - u64::from(i), i), &lu())), LBA_OOB, "{opcode:02x} {i}");
            assert_eq!(code(run(&rw(opcode, 0, BLOCKS - 1, i + 1), &lu())), LBA_OOB);
        }
    }
    // 64-bit LBA + length overflow.
    assert_eq!(code(run(&cdb16(0x88, 0, u64::MAX, 2), &lu())), LBA_OOB);
    assert_eq!(code(run(&cdb16(0x8A, 0, u64::MAX - 1, 1), &lu())), LBA_OOB);
}

#[test]
fn six_byte_forms() {
    // Length 0 means 256 blocks.
    let mut l = lu();
    l.num_blocks = 0x20_0000;
    assert_eq!(op(run(&cdb6(0x08, 0, 0), &l)), BlockOp::Read { lba: 0, blocks: 256, fua: false, dpo: false });
    assert_eq!(op(run(&cdb6(0x0A, 5, 1), &l)), BlockOp::Write { lba: 5, blocks: 1, fua: false, dpo: false });
    assert_eq!(code(run(&cdb6(0x08, 0x1F_FFFF, 1), &lu())), LBA_OOB);
    assert_eq!(code(run(&cdb6(0x08, (BLOCKS - 1) as u32, 2), &lu())), LBA_OOB);
    assert_eq!(code(run(&cdb6(0x08, (BLOCKS - 1) as u32, 0), &lu())), LBA_OOB);
    let t = transfer(&cdb6(0x08, 0, 0), &lu());
    assert_eq!(t, Transfer { dir: DataDir::ToInitiator, len: 256 * 512, exact: false });
}

#[test]
fn protection_fields_are_invalid() {
    for opcode in [0x28u8, 0xA8, 0x88, 0x2A, 0xAA, 0x8A, 0x2E, 0x2F, 0x8F, 0x41, 0x93] {
        for p in 1..8u8 {
            let s = sense(run(&rw(opcode, p << 5, 0, 1), &lu()));
            assert_eq!((s.asc, s.field.map(|f| (f.byte, f.bit))), (0x24, Some((1, Some(7)))), "{opcode:02x}");
        }
    }
    assert_eq!(code(run(&caw(0x20, 0, 1), &lu())), INVALID_CDB);
}

#[test]
fn maximum_transfer_length() {
    let s = sense(run(&cdb10(0x28, 0, 0, 1025), &lu()));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(7)));
    assert_eq!(sense(run(&cdb16(0x8A, 0, 0, 1025), &lu())).field.map(|f| f.byte), Some(10));
    assert_eq!(sense(run(&cdb12(0xAF, 0x02, 0, 1025), &lu())).field.map(|f| f.byte), Some(6));
    // VERIFY without BYTCHK moves no data: no transfer limit.
    assert!(matches!(run(&cdb10(0x2F, 0, 0, 2000), &lu()), Outcome::Block(_)));
}

#[test]
fn write_protection() {
    let mut ro = lu();
    ro.read_only = true;
    ro.thin = true;
    for cdb in [
        rw(0x2A, 0, 0, 1),
        rw(0xAA, 0, 0, 1),
        rw(0x8A, 0, 0, 1),
        rw(0x2E, 0x02, 0, 1),
        rw(0xAE, 0x02, 0, 1),
        rw(0x8E, 0x02, 0, 1),
        rw(0x41, 0, 0, 1),
        rw(0x41, 0x08, 0, 1),
        rw(0x93, 0x08, 0, 1),
        caw(0, 0, 1).to_vec(),
        unmap_cdb(false, 24).to_vec(),
        cdb6(0x0A, 0, 1).to_vec(),
    ] {
        assert_eq!(code(run(&cdb, &ro)), WRITE_PROTECTED, "{cdb:02x?}");
    }
    // Reads, verifies and flushes still work.
    assert!(matches!(run(&rw(0x28, 0, 0, 1), &ro), Outcome::Block(_)));
    assert!(matches!(run(&rw(0x35, 0, 0, 0), &ro), Outcome::Block(_)));
}

#[test]
fn verify_forms() {
    for opcode in [0x2Fu8, 0xAF, 0x8F] {
        assert_eq!(op(run(&rw(opcode, 0x02, 4, 2), &lu())), BlockOp::Verify { lba: 4, blocks: 2, compare: true });
        assert_eq!(op(run(&rw(opcode, 0x10, 4, 2), &lu())), BlockOp::Verify { lba: 4, blocks: 2, compare: false });
        assert_eq!(run(&rw(opcode, 0x02, 4, 0), &lu()), Outcome::Good);
        assert_eq!(code(run(&rw(opcode, 0x02, BLOCKS + 1, 0), &lu())), LBA_OOB);
        assert_eq!(code(run(&rw(opcode, 0x02, BLOCKS - 1, 2), &lu())), LBA_OOB);
        // BYTCHK 10b reserved, 11b not supported.
        assert_eq!(code(run(&rw(opcode, 0x04, 0, 1), &lu())), INVALID_CDB);
        assert_eq!(code(run(&rw(opcode, 0x06, 0, 1), &lu())), INVALID_CDB);
    }
    assert_eq!(
        transfer(&cdb10(0x2F, 0x02, 0, 3), &lu()),
        Transfer { dir: DataDir::FromInitiator, len: 1536, exact: false }
    );
    assert_eq!(transfer(&cdb10(0x2F, 0, 0, 3), &lu()), Transfer::NONE);
}

#[test]
fn write_and_verify_is_a_durable_write() {
    for opcode in [0x2Eu8, 0xAE, 0x8E] {
        assert_eq!(op(run(&rw(opcode, 0x12, 1, 1), &lu())), BlockOp::Write { lba: 1, blocks: 1, fua: true, dpo: true });
        assert_eq!(op(run(&rw(opcode, 0, 1, 1), &lu())), BlockOp::Write { lba: 1, blocks: 1, fua: true, dpo: false });
        assert_eq!(run(&rw(opcode, 0, 1, 0), &lu()), Outcome::Good);
        assert_eq!(code(run(&rw(opcode, 0, BLOCKS, 1), &lu())), LBA_OOB);
        assert_eq!(code(run(&rw(opcode, 0x04, 0, 1), &lu())), INVALID_CDB);
    }
}

#[test]
fn write_same_rules() {
    for opcode in [0x41u8, 0x93] {
        let ws = |b1, lba, n| op(run(&rw(opcode, b1, lba, n), &thin()));
        assert_eq!(ws(0, 3, 256), BlockOp::WriteSame(WriteSame { lba: 3, blocks: 256, unmap: false, ndob: false }));
        assert_eq!(ws(0x08, 3, 1), BlockOp::WriteSame(WriteSame { lba: 3, blocks: 1, unmap: true, ndob: false }));
        // WSNZ: zero blocks is an invalid field, thick or thin, with or without UNMAP.
        assert_eq!(code(run(&rw(opcode, 0, 0, 0), &lu())), INVALID_CDB);
        assert_eq!(code(run(&rw(opcode, 0x08, 0, 0), &thin())), INVALID_CDB);
        // ANCHOR, with or without UNMAP (ANC_SUP is 0).
        assert_eq!(code(run(&rw(opcode, 0x10, 0, 1), &thin())), INVALID_CDB);
        assert_eq!(code(run(&rw(opcode, 0x18, 0, 1), &thin())), INVALID_CDB);
        // UNMAP on a thick LU.
        let s = sense(run(&rw(opcode, 0x08, 0, 1), &lu()));
        assert_eq!((s.asc, s.field.map(|f| (f.byte, f.bit))), (0x24, Some((1, Some(3)))));
        for i in [1u32, 2, 256] {
            assert_eq!(code(run(&rw(opcode, 0, BLOCKS + 1 - u64::from(i), i), &lu())), LBA_OOB);
        }
        assert_eq!(code(run(&rw(opcode, 0, 0x8000_0000, 1), &lu())), LBA_OOB);
        assert_eq!(
            transfer(&rw(opcode, 0, 0, 77), &lu()),
            Transfer { dir: DataDir::FromInitiator, len: 512, exact: true }
        );
    }
    // PBDATA / LBDATA (10 only).
    assert_eq!(code(run(&cdb10(0x41, 0x02, 0, 1), &lu())), INVALID_CDB);
    assert_eq!(code(run(&cdb10(0x41, 0x04, 0, 1), &lu())), INVALID_CDB);
    // NDOB (16 only): no data-out.
    let c = cdb16(0x93, 0x09, 0, 8);
    assert_eq!(op(run(&c, &thin())), BlockOp::WriteSame(WriteSame { lba: 0, blocks: 8, unmap: true, ndob: true }));
    assert_eq!(transfer(&c, &thin()), Transfer::NONE);
    // MAXIMUM WRITE SAME LENGTH.
    let mut l = lu();
    l.max_write_same_blocks = 16;
    assert!(matches!(run(&cdb16(0x93, 0, 0, 16), &l), Outcome::Block(_)));
    assert_eq!(sense(run(&cdb16(0x93, 0, 0, 17), &l)).field.map(|f| f.byte), Some(10));
}

#[test]
fn unmap_two_phases() {
    assert_eq!(code(run(&unmap_cdb(false, 24), &lu())), INVALID_OPCODE);
    assert_eq!(code(run(&unmap_cdb(true, 24), &thin())), INVALID_CDB);
    assert_eq!(run(&unmap_cdb(false, 0), &thin()), Outcome::Good);
    assert_eq!(code(run(&unmap_cdb(false, 7), &thin())), PARAM_LEN);
    let o = op(run(&unmap_cdb(false, 24), &thin()));
    assert_eq!(o, BlockOp::Unmap { param_len: 24 });
    assert_eq!(
        transfer(&unmap_cdb(false, 24), &thin()),
        Transfer { dir: DataDir::FromInitiator, len: 24, exact: true }
    );
    let mut list = vec![0, 22, 0, 16];
    list.extend_from_slice(&[0; 4]);
    list.extend_from_slice(&5u64.to_be_bytes());
    list.extend_from_slice(&7u32.to_be_bytes());
    list.extend_from_slice(&[0; 4]);
    let r = unmap::parse(&list, &thin()).unwrap();
    assert_eq!(r, vec![ff_scsi::UnmapRange { lba: 5, blocks: 7 }]);
}

#[test]
fn synchronize_cache() {
    assert_eq!(op(run(&cdb10(0x35, 0x02, 10, 0), &lu())), BlockOp::Flush { lba: 10, blocks: BLOCKS - 10, immed: true });
    assert_eq!(op(run(&cdb16(0x91, 0, 0, 5), &lu())), BlockOp::Flush { lba: 0, blocks: 5, immed: false });
    assert_eq!(code(run(&cdb10(0x35, 0, (BLOCKS - 1) as u32, 2), &lu())), LBA_OOB);
    assert_eq!(code(run(&cdb16(0x91, 0, BLOCKS + 1, 0), &lu())), LBA_OOB);
    let mut wt = lu();
    wt.write_cache = false;
    assert_eq!(run(&cdb10(0x35, 0, 0, 0), &wt), Outcome::Good);
    assert_eq!(transfer(&cdb10(0x35, 0, 0, 0), &lu()), Transfer::NONE);
}

#[test]
fn pre_fetch() {
    for opcode in [0x34u8, 0x90] {
        assert_eq!(run(&rw(opcode, 0x02, 0, 1), &lu()), Outcome::Good);
        assert_eq!(run(&rw(opcode, 0, 0, 0), &lu()), Outcome::Good);
        assert_eq!(run(&rw(opcode, 0, BLOCKS - 256, 256), &lu()), Outcome::Good);
        assert_eq!(code(run(&rw(opcode, 0, BLOCKS + 1, 0), &lu())), LBA_OOB);
        assert_eq!(code(run(&rw(opcode, 0, BLOCKS - 1, 2), &lu())), LBA_OOB);
    }
}

#[test]
fn compare_and_write() {
    let mut l = lu();
    l.max_compare_write_blocks = 4;
    assert_eq!(op(run(&caw(0x18, 2, 4), &l)), BlockOp::CompareAndWrite { lba: 2, blocks: 4, fua: true });
    assert_eq!(run(&caw(0, 2, 0), &l), Outcome::Good);
    let s = sense(run(&caw(0, 0, 5), &l));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(13)));
    assert_eq!(code(run(&caw(0, BLOCKS - 3, 4), &l)), LBA_OOB);
    assert_eq!(transfer(&caw(0, 0, 3), &l), Transfer { dir: DataDir::FromInitiator, len: 3072, exact: true });
    l.max_compare_write_blocks = 0;
    assert_eq!(code(run(&caw(0, 0, 1), &l)), INVALID_OPCODE);
    // The runtime's half: split, compare, miscompare offset.
    let mut data = vec![b'A'; 1024];
    data[512..].fill(b'B');
    let (verify, write) = ff_scsi::split_compare_and_write(&data, 1, 512).unwrap();
    assert_eq!(write, &[b'B'; 512][..]);
    let mut medium = vec![b'A'; 512];
    assert_eq!(ff_scsi::compare(verify, &medium), Ok(()));
    medium[485] = b'C';
    let s = ff_scsi::compare(verify, &medium).unwrap_err();
    let fixed = s.to_fixed();
    assert_eq!((fixed[0], fixed[2], fixed[12], fixed[13]), (0xF0, 0x0E, 0x1D, 0x00));
    assert_eq!(&fixed[3..7], &485u32.to_be_bytes());
}

#[test]
fn transfer_directions_for_responses() {
    let t = transfer(&inquiry(false, 0, 255), &lu());
    assert_eq!(t, Transfer { dir: DataDir::ToInitiator, len: 255, exact: false });
    assert_eq!(transfer(&inquiry(false, 0, 0), &lu()), Transfer::NONE);
    assert_eq!(transfer(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lu()).len, 8);
    assert_eq!(transfer(&cdb16(0x88, 0, 0, 8), &ff_scsi::LogicalUnit { block_size: 4096, ..lu() }).len, 32768);
    assert_eq!(transfer(&[0; 6], &lu()), Transfer::NONE);
    assert_eq!(transfer(&[0xC5; 16], &lu()), Transfer::NONE);
    assert_eq!(transfer(&cdb10(0x2A, 0, 0, 4), &lu()).dir, DataDir::FromInitiator);
    assert_eq!(transfer(&mode_sense10(false, false, 0, 0x3F, 300), &lu()).len, 300);
}

fn get_lba_status(lba: u64, alloc: u32) -> [u8; 16] {
    let mut c = cdb16(0x9E, 0x12, lba, alloc);
    c[1] = 0x12;
    c
}

#[test]
fn get_lba_status_as_libiscsi_asks() {
    // GetLBAStatus.Simple: the first and last 256 blocks, 24 bytes each.
    for i in 1..=256u64 {
        for lba in [i, BLOCKS - i] {
            let d = data(run(&get_lba_status(lba, 24), &thin()));
            assert_eq!(d.len(), 24);
            assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 20);
            assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), lba);
            assert_eq!(u64::from(u32::from_be_bytes(d[16..20].try_into().unwrap())), BLOCKS - lba);
            assert_eq!(d[20] & 0x0F, 0);
        }
    }
    // GetLBAStatus.BeyondEol.
    for lba in [BLOCKS, BLOCKS + 1, 1 << 63, u64::MAX] {
        assert_eq!(code(run(&get_lba_status(lba, 24), &lu())), LBA_OOB);
    }
    assert_eq!(data(run(&get_lba_status(0, 8), &lu())).len(), 8);
    assert_eq!(run(&get_lba_status(0, 0), &lu()), Outcome::Good);
    assert_eq!(transfer(&get_lba_status(0, 24), &lu()), Transfer { dir: DataDir::ToInitiator, len: 24, exact: false });
}

#[test]
fn read_defect_data_is_an_empty_list() {
    // ReadDefectData10/12.Simple: no list asked for, format 0, 32 bytes.
    assert_eq!(data(run(&[0x37, 0, 0, 0, 0, 0, 0, 0, 32, 0], &lu())), vec![0, 0, 0, 0]);
    assert_eq!(data(run(&[0xB7, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], &lu())), vec![0; 8]);
    // Both lists, long block format: valid and empty.
    assert_eq!(data(run(&[0x37, 0, 0x1B, 0, 0, 0, 0, 0, 32, 0], &lu())), vec![0, 0x1B, 0, 0]);
    assert_eq!(data(run(&[0xB7, 0x15, 0, 0, 0, 9, 0, 0, 0, 32, 0, 0], &lu()))[1], 0x15);
    assert_eq!(data(run(&[0x37, 0, 0x18, 0, 0, 0, 0, 0, 2, 0], &lu())), vec![0, 0x18]);
    // Format 111b is reserved.
    let s = sense(run(&[0x37, 0, 0x07, 0, 0, 0, 0, 0, 32, 0], &lu()));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(2)));
    let s = sense(run(&[0xB7, 0x07, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], &lu()));
    assert_eq!((s.asc, s.field.map(|f| f.byte)), (0x24, Some(1)));
}
