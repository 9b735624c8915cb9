//! MODE SENSE (6) and (10) data: the mode parameter header, the block
//! descriptor (short or long LBA) and the mode pages a block device reports:
//! Read-Write Error Recovery (01h), Caching (08h), Control (0Ah) and
//! Informational Exceptions Control (1Ch), alone or all (3Fh).
//!
//! Owns the page layouts and page-control semantics. Nothing is changeable
//! (MODE SELECT is not supported), so the changeable values are all zero,
//! the defaults equal the current values and saved values do not exist.

use crate::bytes::{put_be, put_u8};
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// Page code: Read-Write Error Recovery.
pub const PAGE_RW_ERROR_RECOVERY: u8 = 0x01;
/// Page code: Caching.
pub const PAGE_CACHING: u8 = 0x08;
/// Page code: Control.
pub const PAGE_CONTROL: u8 = 0x0A;
/// Page code: Informational Exceptions Control.
pub const PAGE_INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
/// Page code: return all pages.
pub const PAGE_ALL: u8 = 0x3F;
/// Subpage code: all subpages.
pub const SUBPAGE_ALL: u8 = 0xFF;

/// Device-specific parameter bit: the medium is write protected.
pub const DSP_WP: u8 = 0x80;
/// Device-specific parameter bit: DPO and FUA are supported.
pub const DSP_DPOFUA: u8 = 0x10;

/// Page control field values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageControl {
    /// Current values.
    Current,
    /// Which bits MODE SELECT may change.
    Changeable,
    /// Power-on defaults.
    Default,
    /// Saved values (not supported).
    Saved,
}

impl PageControl {
    /// From the 2-bit PC field.
    pub fn from_bits(pc: u8) -> PageControl {
        match pc & 3 {
            0 => PageControl::Current,
            1 => PageControl::Changeable,
            2 => PageControl::Default,
            _ => PageControl::Saved,
        }
    }
}

/// Pages in the order "all pages" returns them (ascending page code).
const PAGES: [u8; 4] = [PAGE_RW_ERROR_RECOVERY, PAGE_CACHING, PAGE_CONTROL, PAGE_INFORMATIONAL_EXCEPTIONS];

/// One mode page with the values for `pc` (not [`PageControl::Saved`]).
fn page(code: u8, lu: &LogicalUnit, pc: PageControl) -> Vec<u8> {
    let len: usize = if code == PAGE_CACHING { 0x12 } else { 0x0A };
    let mut p = vec![0u8; len + 2];
    put_u8(&mut p, 0, code); // PS 0: nothing can be saved
    put_u8(&mut p, 1, len as u8);
    if pc == PageControl::Changeable {
        return p;
    }
    match code {
        // WCE (bit 2); RCD stays 0: reads may be served from cache.
        PAGE_CACHING if lu.wce() => put_u8(&mut p, 2, 0x04),
        PAGE_CONTROL => {
            put_u8(&mut p, 2, 0x02); // GLTSD: no log parameters are saved
            put_u8(&mut p, 3, 0x10); // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
            // TAS 0 (byte 5): tasks aborted by another nexus end without
            // status; D_SENSE 0: fixed-format sense.
            put_be(&mut p, 8, 2, 0xFFFF); // BUSY TIMEOUT PERIOD: unlimited
        }
        PAGE_INFORMATIONAL_EXCEPTIONS => {
            put_u8(&mut p, 2, 0x08); // DEXCPT: no informational exceptions
        }
        _ => {}
    }
    p
}

/// What a MODE SENSE CDB asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSenseRequest {
    /// MODE SENSE (10) rather than (6).
    pub ten: bool,
    /// Disable block descriptors.
    pub dbd: bool,
    /// Long LBA block descriptor accepted (MODE SENSE (10) only).
    pub llbaa: bool,
    /// Page control bits.
    pub pc: u8,
    /// Page code.
    pub page: u8,
    /// Subpage code.
    pub subpage: u8,
}

/// MODE SENSE parameter data before allocation-length truncation, or the
/// sense for an unsupported page, subpage or page control.
pub fn mode_sense(lu: &LogicalUnit, req: &ModeSenseRequest) -> Result<Vec<u8>, Sense> {
    let pc = PageControl::from_bits(req.pc);
    if pc == PageControl::Saved {
        return Err(Sense::saving_parameters_not_supported());
    }
    let codes: &[u8] = match req.page {
        PAGE_ALL => &PAGES,
        code => match PAGES.iter().position(|&p| p == code) {
            Some(i) => PAGES.get(i..=i).unwrap_or(&[]),
            None => return Err(Sense::invalid_field_in_cdb(2, Some(5))),
        },
    };
    // None of our pages has subpages: subpage 0, or "all subpages" (which
    // is the page itself), is all there is.
    if req.subpage != 0 && req.subpage != SUBPAGE_ALL {
        return Err(Sense::invalid_field_in_cdb(3, None));
    }
    let header_len = if req.ten { 8 } else { 4 };
    let long = req.ten && req.llbaa;
    let desc_len = match (req.dbd, long) {
        (true, _) => 0,
        (false, true) => 16,
        (false, false) => 8,
    };
    let mut b = vec![0u8; header_len + desc_len];
    let mut dsp = DSP_DPOFUA;
    if lu.read_only {
        dsp |= DSP_WP;
    }
    if req.ten {
        put_u8(&mut b, 3, dsp);
        put_u8(&mut b, 4, u8::from(long && desc_len > 0)); // LONGLBA
        put_be(&mut b, 6, 2, desc_len as u64);
    } else {
        put_u8(&mut b, 2, dsp);
        put_u8(&mut b, 3, desc_len as u8);
    }
    match desc_len {
        8 => {
            // Short descriptor: block count saturates at FFFFFFFFh.
            let n = u32::try_from(lu.num_blocks).unwrap_or(u32::MAX);
            put_be(&mut b, header_len, 4, u64::from(n));
            put_be(&mut b, header_len + 5, 3, u64::from(lu.block_size));
        }
        16 => {
            put_be(&mut b, header_len, 8, lu.num_blocks);
            put_be(&mut b, header_len + 12, 4, u64::from(lu.block_size));
        }
        _ => {}
    }
    for &code in codes {
        b.extend(page(code, lu, pc));
    }
    // MODE DATA LENGTH excludes itself.
    if req.ten {
        let n = b.len() - 2;
        put_be(&mut b, 0, 2, n as u64);
    } else {
        let n = b.len() - 1;
        put_u8(&mut b, 0, n as u8);
    }
    Ok(b)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sense::SenseKey;

    fn lu() -> LogicalUnit {
        LogicalUnit::new(512, 5000, "S", [0x60; 16])
    }

    fn req(ten: bool, page: u8) -> ModeSenseRequest {
        ModeSenseRequest { ten, dbd: false, llbaa: false, pc: 0, page, subpage: 0 }
    }

    #[test]
    fn six_all_pages_with_descriptor() {
        let b = mode_sense(&lu(), &req(false, PAGE_ALL)).unwrap_or_default();
        // 4 header + 8 descriptor + 12 + 20 + 12 + 12.
        assert_eq!(b.len(), 68);
        assert_eq!(b[0] as usize, b.len() - 1);
        assert_eq!((b[1], b[2], b[3]), (0, 0x10, 8));
        assert_eq!(&b[4..12], &[0, 0, 0x13, 0x88, 0, 0, 0x02, 0x00]);
        assert_eq!(&b[12..14], &[0x01, 0x0A]);
        assert_eq!(&b[24..27], &[0x08, 0x12, 0x04]);
        assert_eq!(&b[44..48], &[0x0A, 0x0A, 0x02, 0x10]);
        assert_eq!(&b[52..54], &[0xFF, 0xFF]);
        assert_eq!(&b[56..59], &[0x1C, 0x0A, 0x08]);
    }

    #[test]
    fn write_protect_and_cache_off() {
        let mut l = lu();
        l.read_only = true;
        l.write_cache_enabled = false;
        let b = mode_sense(&l, &req(false, PAGE_CACHING)).unwrap_or_default();
        assert_eq!(b[2], 0x90);
        assert_eq!(&b[12..15], &[0x08, 0x12, 0x00]);
    }

    #[test]
    fn ten_with_long_lba_and_dbd() {
        let mut l = lu();
        l.num_blocks = 1 << 33;
        let mut r = req(true, PAGE_CONTROL);
        r.llbaa = true;
        let b = mode_sense(&l, &r).unwrap_or_default();
        assert_eq!(b.len(), 8 + 16 + 12);
        assert_eq!(u16::from_be_bytes([b[0], b[1]]) as usize, b.len() - 2);
        assert_eq!((b[3], b[4], b[7]), (0x10, 1, 16));
        assert_eq!(&b[8..16], &(1u64 << 33).to_be_bytes());
        assert_eq!(&b[20..24], &[0, 0, 2, 0]);
        assert_eq!(b[24], 0x0A);
        // Without LLBAA the short descriptor saturates.
        let b = mode_sense(&l, &req(true, PAGE_CONTROL)).unwrap_or_default();
        assert_eq!((b[4], b[7]), (0, 8));
        assert_eq!(&b[8..12], &[0xFF; 4]);
        r.dbd = true;
        let b = mode_sense(&l, &r).unwrap_or_default();
        assert_eq!(b.len(), 8 + 12);
        assert_eq!((b[4], b[6], b[7], b[8]), (0, 0, 0, 0x0A));
    }

    #[test]
    fn changeable_is_all_zero_and_default_is_current() {
        let mut r = req(false, PAGE_ALL);
        r.dbd = true;
        r.pc = 1;
        let b = mode_sense(&lu(), &r).unwrap_or_default();
        assert_eq!(&b[4..6], &[0x01, 0x0A]);
        assert!(b[6..16].iter().all(|&x| x == 0));
        assert_eq!(&b[16..18], &[0x08, 0x12]);
        assert!(b[18..36].iter().all(|&x| x == 0));
        r.pc = 2;
        let d = mode_sense(&lu(), &r);
        r.pc = 0;
        assert_eq!(d, mode_sense(&lu(), &r));
    }

    #[test]
    fn errors() {
        let mut r = req(false, PAGE_CACHING);
        r.pc = 3;
        let e = mode_sense(&lu(), &r).err();
        assert_eq!(e.map(|s| (s.key, s.asc)), Some((SenseKey::IllegalRequest, 0x39)));
        let e = mode_sense(&lu(), &req(false, 0x19)).err();
        assert_eq!(e.map(|s| (s.asc, s.field.map(|f| f.byte))), Some((0x24, Some(2))));
        let mut r = req(false, PAGE_ALL);
        r.subpage = 1;
        let e = mode_sense(&lu(), &r).err();
        assert_eq!(e.map(|s| (s.asc, s.field.map(|f| f.byte))), Some((0x24, Some(3))));
        r.subpage = SUBPAGE_ALL;
        assert!(mode_sense(&lu(), &r).is_ok());
    }
}
