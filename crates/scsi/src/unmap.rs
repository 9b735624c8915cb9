//! The UNMAP parameter list (SBC-3 5.28.2), second phase of UNMAP: once the
//! data-out the CDB announced has arrived, [`parse`] checks the header, the
//! descriptor count and every range against the LU, all before any block is
//! unmapped, and returns the ranges to deallocate.
//!
//! Owns the parameter list layout and its error rules; the CDB phase is in
//! [`crate::block`].

use crate::bytes::{be16, be32, be64};
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// Bytes of the parameter list header.
pub const HEADER_LEN: usize = 8;
/// Bytes of one UNMAP block descriptor.
pub const DESCRIPTOR_LEN: usize = 16;

/// A range to deallocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnmapRange {
    /// First block.
    pub lba: u64,
    /// Number of blocks (never 0: empty descriptors are dropped).
    pub blocks: u32,
}

/// Parses an UNMAP parameter list received for `lu`.
///
/// - no data at all (PARAMETER LIST LENGTH 0): nothing to do;
/// - 1..7 bytes, or a BLOCK DESCRIPTOR DATA LENGTH reaching past the data:
///   PARAMETER LIST LENGTH ERROR;
/// - a trailing partial descriptor is ignored (SBC-3); the UNMAP DATA
///   LENGTH field is not checked: the descriptor length alone says where
///   the descriptors end;
/// - more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT, or more
///   blocks in total than MAXIMUM UNMAP LBA COUNT: INVALID FIELD IN
///   PARAMETER LIST, pointing at the offending field;
/// - a range past the last block (or overflowing): LBA OUT OF RANGE.
pub fn parse(data: &[u8], lu: &LogicalUnit) -> Result<Vec<UnmapRange>, Sense> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.len() < HEADER_LEN {
        return Err(Sense::parameter_list_length_error());
    }
    let bd_len = usize::from(be16(data, 2));
    let descs = data.get(HEADER_LEN..HEADER_LEN + bd_len).ok_or(Sense::parameter_list_length_error())?;
    let count = descs.len() / DESCRIPTOR_LEN;
    if count as u64 > u64::from(lu.max_unmap_descriptors) {
        return Err(Sense::invalid_field_in_parameter_list(2, None));
    }
    let mut total = 0u64;
    let mut out = Vec::with_capacity(count);
    for (i, d) in descs.chunks_exact(DESCRIPTOR_LEN).enumerate() {
        let lba = be64(d, 0);
        let blocks = be32(d, 8);
        total += u64::from(blocks);
        if total > u64::from(lu.max_unmap_blocks) {
            let at = HEADER_LEN + i * DESCRIPTOR_LEN + 8;
            return Err(Sense::invalid_field_in_parameter_list(at as u16, None));
        }
        if !lu.in_range(lba, u64::from(blocks)) {
            return Err(Sense::lba_out_of_range());
        }
        if blocks > 0 {
            out.push(UnmapRange { lba, blocks });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sense::asc;

    fn lu() -> LogicalUnit {
        let mut l = LogicalUnit::new(512, 1000, "S", [0x60; 16]);
        l.thin = true;
        l.max_unmap_blocks = 100;
        l.max_unmap_descriptors = 3;
        l
    }

    fn list(ranges: &[(u64, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        let bd = (ranges.len() * 16) as u16;
        b[0..2].copy_from_slice(&(bd + 6).to_be_bytes());
        b[2..4].copy_from_slice(&bd.to_be_bytes());
        for &(lba, n) in ranges {
            b.extend_from_slice(&lba.to_be_bytes());
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
        }
        b
    }

    fn code(r: Result<Vec<UnmapRange>, Sense>) -> Option<(u8, u8)> {
        r.err().map(|s| (s.asc, s.ascq))
    }

    #[test]
    fn valid_lists() {
        assert_eq!(parse(&[], &lu()), Ok(vec![]));
        assert_eq!(parse(&list(&[]), &lu()), Ok(vec![]));
        let r = parse(&list(&[(0, 10), (5, 0), (990, 10)]), &lu());
        assert_eq!(r, Ok(vec![UnmapRange { lba: 0, blocks: 10 }, UnmapRange { lba: 990, blocks: 10 }]));
        // A zero-length range right after the last block is fine.
        assert_eq!(parse(&list(&[(1000, 0)]), &lu()), Ok(vec![]));
        // A partial trailing descriptor is ignored.
        let mut b = list(&[(1, 1)]);
        b[3] = 20;
        b.extend_from_slice(&[0xFF; 4]);
        assert_eq!(parse(&b, &lu()), Ok(vec![UnmapRange { lba: 1, blocks: 1 }]));
    }

    #[test]
    fn length_errors() {
        assert_eq!(code(parse(&[0; 7], &lu())), Some(asc::PARAMETER_LIST_LENGTH_ERROR));
        let mut b = list(&[(0, 1)]);
        b.truncate(20);
        assert_eq!(code(parse(&b, &lu())), Some(asc::PARAMETER_LIST_LENGTH_ERROR));
    }

    #[test]
    fn limit_errors() {
        let r = parse(&list(&[(0, 1), (1, 1), (2, 1), (3, 1)]), &lu());
        assert_eq!(r.clone().err().and_then(|s| s.field).map(|f| (f.in_cdb, f.byte)), Some((false, 2)));
        assert_eq!(code(r), Some(asc::INVALID_FIELD_IN_PARAMETER_LIST));
        let r = parse(&list(&[(0, 60), (100, 41)]), &lu());
        assert_eq!(r.clone().err().and_then(|s| s.field).map(|f| f.byte), Some(8 + 16 + 8));
        assert_eq!(code(r), Some(asc::INVALID_FIELD_IN_PARAMETER_LIST));
    }

    #[test]
    fn range_errors() {
        assert_eq!(code(parse(&list(&[(999, 2)]), &lu())), Some(asc::LBA_OUT_OF_RANGE));
        assert_eq!(code(parse(&list(&[(1001, 0)]), &lu())), Some(asc::LBA_OUT_OF_RANGE));
        assert_eq!(code(parse(&list(&[(u64::MAX, 2)]), &lu())), Some(asc::LBA_OUT_OF_RANGE));
    }
}
