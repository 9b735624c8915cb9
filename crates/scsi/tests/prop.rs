//! Property tests: no CDB or parameter list makes the crate panic, and what
//! comes back keeps its promises (data within the allocation length and the
//! announced transfer, operations inside the LU, parsed ranges inside it).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use ff_scsi::{BlockOp, DataDir, LogicalUnit, Nexus, Outcome, execute, execute_no_lun, transfer, unmap};
use proptest::prelude::*;

const KNOWN: [u8; 41] = [
    0x00, 0x03, 0x08, 0x0A, 0x12, 0x1A, 0x1B, 0x1E, 0x25, 0x28, 0x2A, 0x2E, 0x2F, 0x34, 0x35, 0x37, 0x41, 0x42, 0x5A,
    0x16, 0x17, 0x56, 0x57, 0x5E, 0x5F, 0x88, 0x89, 0x8A, 0x8E, 0x8F, 0x90, 0x91, 0x93, 0x9E, 0xA0, 0xA3, 0xA8, 0xAA,
    0xAE, 0xAF, 0xB7,
];

fn lu_strategy() -> impl Strategy<Value = LogicalUnit> {
    (any::<bool>(), 1u64..=(1 << 34), any::<bool>(), any::<bool>(), any::<bool>(), 0u8..=3, 1u32..=4096, 1u32..=16)
        .prop_map(|(big, blocks, thin, ro, cache, lbppbe, max_unmap, descs)| {
            let mut l = LogicalUnit::new(if big { 4096 } else { 512 }, blocks, "PROP", [0x60; 16]);
            l.thin = thin;
            l.read_only = ro;
            l.write_cache = cache;
            l.lbppbe = lbppbe;
            l.max_unmap_blocks = max_unmap;
            l.max_unmap_descriptors = descs;
            l.max_compare_write_blocks = 8;
            l
        })
}

/// CDBs of 0..=20 bytes; mostly with a known opcode so decoding goes deep.
fn cdb_strategy() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..=20), any::<u8>(), any::<bool>()).prop_map(|(mut c, pick, known)| {
        if known && let Some(first) = c.first_mut() {
            *first = KNOWN[usize::from(pick) % KNOWN.len()];
            // Clear the control byte now and then so NACA/LINK do not hide the rest.
            if pick & 1 == 0 {
                let n = ff_scsi::cdb::cdb_len(*first).unwrap_or(0);
                if let Some(b) = c.get_mut(n.wrapping_sub(1)) {
                    *b = 0;
                }
            }
        }
        c
    })
}

fn check(cdb: &[u8], lu: &LogicalUnit) {
    let luns = [0u16, 2, 700];
    let nexus = Nexus { luns: &luns, port_designators: &[1, 2, 3, 4], pending_sense: None };
    let t = transfer(cdb, lu);
    match execute(cdb, lu, &nexus) {
        Outcome::Data(d) => {
            assert_eq!(t.dir, DataDir::ToInitiator);
            assert!(!d.is_empty() && d.len() as u64 <= t.len);
        }
        Outcome::Block(op) => {
            let bs = lu.block_size;
            assert_eq!(op.data_in_len(bs) + op.data_out_len(bs), t.len);
            let (lba, n) = match op {
                BlockOp::Read { lba, blocks, .. }
                | BlockOp::Write { lba, blocks, .. }
                | BlockOp::Verify { lba, blocks, .. }
                | BlockOp::CompareAndWrite { lba, blocks, .. } => (lba, u64::from(blocks)),
                BlockOp::WriteSame(ws) => (ws.lba, ws.blocks),
                BlockOp::Flush { lba, blocks, .. } => (lba, blocks),
                BlockOp::Unmap { param_len } => {
                    assert!(param_len >= 8);
                    (0, 0)
                }
            };
            assert!(lba.checked_add(n).is_some_and(|e| e <= lu.num_blocks));
            if let BlockOp::Write { .. } | BlockOp::WriteSame(_) | BlockOp::CompareAndWrite { .. } = op {
                assert!(!lu.read_only);
            }
        }
        Outcome::Good | Outcome::Check(_) => {}
    }
    let _ = execute_no_lun(cdb, &nexus);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn any_cdb_is_answered_within_bounds(cdb in cdb_strategy(), lu in lu_strategy()) {
        check(&cdb, &lu);
    }

    #[test]
    fn any_unmap_list_parses_inside_the_lu(
        ranges in prop::collection::vec((any::<u64>(), any::<u32>()), 0..12),
        bd_len in any::<u16>(),
        use_bd_len in any::<bool>(),
        junk in prop::collection::vec(any::<u8>(), 0..40),
        lu in lu_strategy(),
    ) {
        let mut list = vec![0u8; 8];
        let real = (ranges.len() * 16) as u16;
        list[2..4].copy_from_slice(&(if use_bd_len { bd_len } else { real }).to_be_bytes());
        for (lba, n) in &ranges {
            // Half the ranges land near the LU so some lists are valid.
            let lba = if n % 2 == 0 { lba % (lu.num_blocks + 2) } else { *lba };
            list.extend_from_slice(&lba.to_be_bytes());
            list.extend_from_slice(&(n % 64).to_be_bytes());
            list.extend_from_slice(&[0; 4]);
        }
        list.extend_from_slice(&junk);
        for cut in [list.len(), list.len() / 2, 7, 0] {
            if let Ok(rs) = unmap::parse(&list[..cut.min(list.len())], &lu) {
                prop_assert!(rs.len() as u64 <= u64::from(lu.max_unmap_descriptors));
                let total: u64 = rs.iter().map(|r| u64::from(r.blocks)).sum();
                prop_assert!(total <= u64::from(lu.max_unmap_blocks));
                for r in rs {
                    prop_assert!(r.blocks > 0 && r.lba + u64::from(r.blocks) <= lu.num_blocks);
                }
            }
        }
    }

    #[test]
    fn compare_finds_the_first_difference(a in prop::collection::vec(any::<u8>(), 0..64), flip in any::<usize>()) {
        let mut b = a.clone();
        prop_assert!(ff_scsi::compare(&a, &b).is_ok());
        if !b.is_empty() {
            let i = flip % b.len();
            b[i] ^= 0x5A;
            prop_assert_eq!(ff_scsi::compare(&a, &b).unwrap_err().information, Some(i as u64));
        }
    }
}
