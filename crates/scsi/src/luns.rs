//! LUN numbers and REPORT LUNS: the 8-byte single-level LUN encoding
//! (SAM-5 4.7: peripheral device addressing below 256, flat space addressing
//! up to 16383), its decoding for the transport, and the REPORT LUNS list.
//!
//! Owns the LUN wire format; which LUNs exist is the transport's, which
//! passes them in.

use crate::bytes::put_be;
use crate::sense::Sense;

/// Highest LUN the single-level flat space addressing method can carry.
pub const MAX_LUN: u16 = 0x3FFF;

/// Encodes `lun` as an 8-byte single-level LUN: peripheral device
/// addressing (bus 0) below 256, flat space addressing above (Linux and
/// Windows accept both); `None` past [`MAX_LUN`].
pub fn encode_lun(lun: u16) -> Option<[u8; 8]> {
    let [hi, lo] = lun.to_be_bytes();
    match lun {
        0..=0xFF => Some([0, lo, 0, 0, 0, 0, 0, 0]),
        0x100..=MAX_LUN => Some([0x40 | hi, lo, 0, 0, 0, 0, 0, 0]),
        _ => None,
    }
}

/// Decodes an 8-byte LUN field from a command: peripheral (bus 0) or flat
/// space single-level LUNs; anything else (other buses, hierarchical levels,
/// extended or logical unit addressing) is `None`, a LUN that does not exist.
pub fn decode_lun(field: [u8; 8]) -> Option<u16> {
    let [b0, b1, rest @ ..] = field;
    if rest.iter().any(|&b| b != 0) {
        return None;
    }
    match b0 >> 6 {
        0 if b0 == 0 => Some(u16::from(b1)),
        1 => Some((u16::from(b0 & 0x3F) << 8) | u16::from(b1)),
        _ => None,
    }
}

/// SELECT REPORT: all logical units except well-known ones.
pub const SELECT_ALL: u8 = 0x00;
/// SELECT REPORT: well-known logical units only (we have none).
pub const SELECT_WELL_KNOWN: u8 = 0x01;
/// SELECT REPORT: all logical units.
pub const SELECT_ALL_WITH_WELL_KNOWN: u8 = 0x02;

/// REPORT LUNS parameter data for `luns` (sorted, duplicates and
/// unencodable numbers dropped) before allocation-length truncation. An
/// allocation length under 16 or a SELECT REPORT other than 0, 1 or 2 is
/// an invalid field (the SPC-3 rule, which tgt enforces too).
pub fn report_luns(select: u8, alloc: u32, luns: &[u16]) -> Result<Vec<u8>, Sense> {
    if alloc < 16 {
        return Err(Sense::invalid_field_in_cdb(6, None));
    }
    let mut list: Vec<u16> = match select {
        SELECT_ALL | SELECT_ALL_WITH_WELL_KNOWN => luns.iter().copied().filter(|&l| l <= MAX_LUN).collect(),
        SELECT_WELL_KNOWN => Vec::new(),
        _ => return Err(Sense::invalid_field_in_cdb(2, None)),
    };
    list.sort_unstable();
    list.dedup();
    let mut b = vec![0u8; 8];
    put_be(&mut b, 0, 4, (list.len() * 8) as u64);
    for lun in list {
        b.extend(encode_lun(lun).unwrap_or_default());
    }
    Ok(b)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        for lun in [0u16, 1, 255, 256, 0x1234, MAX_LUN] {
            let e = encode_lun(lun);
            assert_eq!(e.and_then(decode_lun), Some(lun), "{lun}");
        }
        assert_eq!(encode_lun(5), Some([0, 5, 0, 0, 0, 0, 0, 0]));
        assert_eq!(encode_lun(0x123), Some([0x41, 0x23, 0, 0, 0, 0, 0, 0]));
        assert_eq!(encode_lun(MAX_LUN + 1), None);
    }

    #[test]
    fn foreign_addressing_is_no_lun() {
        assert_eq!(decode_lun([0x01, 0, 0, 0, 0, 0, 0, 0]), None); // bus 1
        assert_eq!(decode_lun([0, 1, 0, 2, 0, 0, 0, 0]), None); // second level
        assert_eq!(decode_lun([0x80, 1, 0, 0, 0, 0, 0, 0]), None); // LU addressing
        assert_eq!(decode_lun([0xC1, 1, 0, 0, 0, 0, 0, 0]), None); // extended
    }

    #[test]
    fn report_sorted_deduplicated() {
        let b = report_luns(0, 512, &[3, 0, 300, 3]).unwrap_or_default();
        assert_eq!(&b[..8], &[0, 0, 0, 24, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[16..24], &[0, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[24..32], &[0x41, 0x2C, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.len(), 32);
        assert_eq!(report_luns(2, 16, &[1]).map(|b| b.len()), Ok(16));
        assert_eq!(report_luns(1, 16, &[1]), Ok(vec![0; 8]));
    }

    #[test]
    fn report_errors() {
        let e = report_luns(0, 15, &[0]).err();
        assert_eq!(e.and_then(|s| s.field).map(|f| f.byte), Some(6));
        let e = report_luns(3, 64, &[0]).err();
        assert_eq!(e.map(|s| (s.asc, s.field.map(|f| f.byte))), Some((0x24, Some(2))));
    }
}
