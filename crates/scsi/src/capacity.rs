//! Capacity and provisioning: READ CAPACITY (10) and (16), the block limits
//! VPD page (B0h), the logical block provisioning VPD page (B2h), GET LBA
//! STATUS and READ DEFECT DATA (an emulated disk has no defects).
//!
//! Owns how the LU's size, block geometry, transfer limits and thin
//! provisioning are reported; the executor enforces the same limits.

use crate::bytes::{put_be, put_u8};
use crate::inquiry::{PDT_DISK, vpd_page};
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// Length of READ CAPACITY (16) parameter data.
pub const READ_CAPACITY_16_LEN: usize = 32;

/// READ CAPACITY (10) data: the last LBA (FFFFFFFFh when it does not fit,
/// telling the host to use READ CAPACITY (16)) and the block length.
pub fn read_capacity_10(lu: &LogicalUnit) -> Vec<u8> {
    let last = lu.num_blocks.saturating_sub(1);
    let mut b = vec![0u8; 8];
    put_be(&mut b, 0, 4, u64::from(u32::try_from(last).unwrap_or(u32::MAX)));
    put_be(&mut b, 4, 4, u64::from(lu.block_size));
    b
}

/// READ CAPACITY (16) data (32 bytes, before allocation-length truncation):
/// last LBA, block length, no protection, LBPPBE, and LBPME/LBPRZ when thin.
pub fn read_capacity_16(lu: &LogicalUnit) -> Vec<u8> {
    let mut b = vec![0u8; READ_CAPACITY_16_LEN];
    put_be(&mut b, 0, 8, lu.num_blocks.saturating_sub(1));
    put_be(&mut b, 8, 4, u64::from(lu.block_size));
    put_u8(&mut b, 13, lu.lbppbe & 0x0F);
    // LOWEST ALIGNED LBA stays 0.
    if lu.thin {
        put_u8(&mut b, 14, 0xC0);
    }
    b
}

/// Logical blocks per physical block: the unmap granularity reported.
fn physical_blocks(lu: &LogicalUnit) -> u64 {
    1u64 << (lu.lbppbe & 0x0F)
}

/// VPD B0h, block limits (SBC-3 page length 3Ch). WSNZ is set: a WRITE SAME
/// of 0 blocks (meaning "to the end of the medium") is refused rather than
/// risk rewriting a whole LU by mistake.
pub fn block_limits(lu: &LogicalUnit) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    put_u8(&mut b, 0, PDT_DISK);
    put_u8(&mut b, 1, vpd_page::BLOCK_LIMITS);
    put_be(&mut b, 2, 2, 0x3C);
    put_u8(&mut b, 4, 0x01); // WSNZ
    put_u8(&mut b, 5, lu.max_compare_write_blocks);
    put_be(&mut b, 6, 2, physical_blocks(lu).min(0xFFFF)); // OPTIMAL TRANSFER LENGTH GRANULARITY
    put_be(&mut b, 8, 4, u64::from(lu.max_transfer_blocks));
    put_be(&mut b, 12, 4, u64::from(lu.optimal_transfer_blocks));
    if lu.thin {
        put_be(&mut b, 20, 4, u64::from(lu.max_unmap_blocks));
        put_be(&mut b, 24, 4, u64::from(lu.max_unmap_descriptors));
        put_be(&mut b, 28, 4, physical_blocks(lu)); // OPTIMAL UNMAP GRANULARITY
    }
    put_be(&mut b, 36, 8, lu.max_write_same_blocks);
    b
}

/// VPD B2h, logical block provisioning: for a thin LU, UNMAP (LBPU), WRITE
/// SAME (16) and (10) with UNMAP (LBPWS, LBPWS10), zeros from unmapped
/// blocks (LBPRZ) and provisioning type thin; all clear for a thick LU.
pub fn provisioning(lu: &LogicalUnit) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    put_u8(&mut b, 0, PDT_DISK);
    put_u8(&mut b, 1, vpd_page::PROVISIONING);
    put_be(&mut b, 2, 2, 4);
    if lu.thin {
        put_u8(&mut b, 5, 0x80 | 0x40 | 0x20 | 0x04);
        put_u8(&mut b, 6, 0x02);
    }
    b
}

/// GET LBA STATUS parameter data (SBC-4 5.7) from `lba`: one descriptor
/// covering `lba` to the end of the medium (at most FFFFFFFFh blocks) with
/// PROVISIONING STATUS 0h, "mapped or unknown". The backend's allocation
/// map is not known here, so a deallocated extent is reported as unknown
/// rather than guessed; SBC-4 allows that answer. An LBA past the last
/// block is LOGICAL BLOCK ADDRESS OUT OF RANGE.
pub fn get_lba_status(lu: &LogicalUnit, lba: u64) -> Result<Vec<u8>, Sense> {
    if lba >= lu.num_blocks {
        return Err(Sense::lba_out_of_range());
    }
    let mut b = vec![0u8; 24];
    // PARAMETER DATA LENGTH: the bytes after this field (4 reserved + 16).
    put_be(&mut b, 0, 4, 20);
    put_be(&mut b, 8, 8, lba);
    put_be(&mut b, 16, 4, (lu.num_blocks - lba).min(u64::from(u32::MAX)));
    // Byte 20, PROVISIONING STATUS 0h; the rest reserved.
    Ok(b)
}

/// READ DEFECT DATA (10) or (12) parameter data: the header alone, with an
/// empty list in the requested format; PLISTV and GLISTV are set for the
/// lists asked for, which are valid and empty.
pub fn read_defect_data(twelve: bool, plist: bool, glist: bool, format: u8) -> Vec<u8> {
    let mut b = vec![0u8; if twelve { 8 } else { 4 }];
    let valid = if plist { 0x10 } else { 0 } | if glist { 0x08 } else { 0 };
    put_u8(&mut b, 1, valid | (format & 0x07));
    // DEFECT LIST LENGTH (and, for (12), the generation code) stay 0.
    b
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn lu(blocks: u64) -> LogicalUnit {
        LogicalUnit::new(4096, blocks, "S", [0x60; 16])
    }

    #[test]
    fn rc10_small_and_large() {
        assert_eq!(read_capacity_10(&lu(1000)), vec![0, 0, 0x03, 0xE7, 0, 0, 0x10, 0]);
        assert_eq!(read_capacity_10(&lu(1 << 32)), vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]);
        // Exactly 2^32 - 1 blocks: the last LBA FFFFFFFEh still fits.
        assert_eq!(&read_capacity_10(&lu(u64::from(u32::MAX)))[..4], &[0xFF, 0xFF, 0xFF, 0xFE]);
    }

    #[test]
    fn rc16_thick_and_thin() {
        let mut l = lu((1 << 32) + 5);
        l.lbppbe = 3;
        let b = read_capacity_16(&l);
        assert_eq!(b.len(), 32);
        assert_eq!(&b[..8], &[0, 0, 0, 1, 0, 0, 0, 4]);
        assert_eq!(&b[8..12], &[0, 0, 0x10, 0]);
        assert_eq!((b[12], b[13], b[14], b[15]), (0, 3, 0, 0));
        l.thin = true;
        assert_eq!(read_capacity_16(&l)[14], 0xC0);
    }

    #[test]
    fn block_limits_fields() {
        let mut l = lu(100);
        l.max_transfer_blocks = 0x800;
        l.optimal_transfer_blocks = 32;
        l.max_compare_write_blocks = 1;
        let b = block_limits(&l);
        assert_eq!(b.len(), 64);
        assert_eq!(&b[..4], &[0, 0xB0, 0, 0x3C]);
        assert_eq!(b[4], 1);
        assert_eq!(b[5], 1);
        assert_eq!(&b[6..8], &[0, 1]);
        assert_eq!(&b[8..12], &[0, 0, 0x08, 0]);
        assert_eq!(&b[12..16], &[0, 0, 0, 32]);
        // Thick: no UNMAP limits.
        assert_eq!(&b[20..32], &[0; 12]);
        assert_eq!(&b[36..44], &(1u64 << 22).to_be_bytes());
        l.thin = true;
        l.lbppbe = 3;
        l.max_unmap_blocks = 0x1000;
        l.max_unmap_descriptors = 16;
        let b = block_limits(&l);
        assert_eq!(&b[6..8], &[0, 8]);
        assert_eq!(&b[20..24], &[0, 0, 0x10, 0]);
        assert_eq!(&b[24..28], &[0, 0, 0, 16]);
        assert_eq!(&b[28..32], &[0, 0, 0, 8]);
    }

    #[test]
    fn provisioning_page() {
        let mut l = lu(100);
        assert_eq!(provisioning(&l), vec![0, 0xB2, 0, 4, 0, 0, 0, 0]);
        l.thin = true;
        assert_eq!(provisioning(&l), vec![0, 0xB2, 0, 4, 0, 0xE4, 0x02, 0]);
    }

    #[test]
    fn lba_status_one_descriptor_to_the_end() {
        let l = lu(1000);
        let b = get_lba_status(&l, 10).unwrap_or_default();
        assert_eq!(b.len(), 24);
        assert_eq!(&b[..8], &[0, 0, 0, 20, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &10u64.to_be_bytes());
        assert_eq!(&b[16..20], &990u32.to_be_bytes());
        assert_eq!(&b[20..24], &[0; 4]);
        assert_eq!(get_lba_status(&l, 999).map(|b| b[19]), Ok(1));
        assert_eq!(get_lba_status(&l, 1000), Err(Sense::lba_out_of_range()));
        assert_eq!(get_lba_status(&l, u64::MAX), Err(Sense::lba_out_of_range()));
        let big = lu(1 << 40);
        assert_eq!(get_lba_status(&big, 0).map(|b| b[16..20].to_vec()), Ok(vec![0xFF; 4]));
    }

    #[test]
    fn defect_data_headers() {
        assert_eq!(read_defect_data(false, false, false, 0), vec![0, 0, 0, 0]);
        assert_eq!(read_defect_data(false, true, true, 3), vec![0, 0x1B, 0, 0]);
        assert_eq!(read_defect_data(true, false, true, 5), vec![0, 0x0D, 0, 0, 0, 0, 0, 0]);
    }
}
