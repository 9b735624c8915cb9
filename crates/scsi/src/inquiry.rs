//! INQUIRY data: the standard page, the identity VPD pages (00h supported
//! pages, 80h unit serial number, 83h device identification, B1h block
//! device characteristics) and designator builders for the transport's
//! port identifiers. Block limits (B0h) and provisioning (B2h) live in
//! [`crate::capacity`].
//!
//! Owns layouts only; allocation-length truncation and the INQUIRY CDB
//! rules are the executor's.

use crate::bytes::{put_ascii, put_be, put_u8};
use crate::lu::{LogicalUnit, VENDOR};

/// Peripheral device type of a block device (SBC).
pub const PDT_DISK: u8 = 0x00;
/// Byte 0 for a LUN with no logical unit: qualifier 011b, type 1Fh.
pub const PDT_NO_LUN: u8 = 0x7F;
/// VERSION field: SPC-4.
pub const VERSION_SPC4: u8 = 0x06;
/// Length of the standard INQUIRY data built here.
pub const STANDARD_LEN: usize = 96;

/// Version descriptor: SAM-5 (no version claimed).
pub const VD_SAM5: u16 = 0x00A0;
/// Version descriptor: SPC-4 (no version claimed).
pub const VD_SPC4: u16 = 0x0460;
/// Version descriptor: SBC-3 (no version claimed).
pub const VD_SBC3: u16 = 0x04C0;

/// VPD page codes, ascending (the order page 00h lists them in).
pub mod vpd_page {
    /// Supported VPD pages.
    pub const SUPPORTED: u8 = 0x00;
    /// Unit serial number.
    pub const UNIT_SERIAL: u8 = 0x80;
    /// Device identification.
    pub const DEVICE_ID: u8 = 0x83;
    /// Block limits.
    pub const BLOCK_LIMITS: u8 = 0xB0;
    /// Block device characteristics.
    pub const BLOCK_CHARACTERISTICS: u8 = 0xB1;
    /// Logical block provisioning.
    pub const PROVISIONING: u8 = 0xB2;
    /// Every page this crate builds, ascending.
    pub const ALL: [u8; 6] = [SUPPORTED, UNIT_SERIAL, DEVICE_ID, BLOCK_LIMITS, BLOCK_CHARACTERISTICS, PROVISIONING];
}

/// Standard INQUIRY data for `lu` (96 bytes, additional length 91).
pub fn standard(lu: &LogicalUnit) -> Vec<u8> {
    let mut b = vec![0u8; STANDARD_LEN];
    put_u8(&mut b, 0, PDT_DISK);
    put_u8(&mut b, 1, 0x00); // RMB 0: the medium is not removable
    put_u8(&mut b, 2, VERSION_SPC4);
    // HISUP (hierarchical LUN addressing) and RESPONSE DATA FORMAT 2;
    // NORMACA stays 0: ACA is not supported.
    put_u8(&mut b, 3, 0x12);
    put_u8(&mut b, 4, (STANDARD_LEN - 5) as u8);
    // Byte 5: no SCCS, ACC, TPGS (ALUA is the transport's), 3PC or PROTECT.
    put_u8(&mut b, 7, 0x02); // CMDQUE: full task management model
    put_ascii(&mut b, 8, 8, VENDOR);
    put_ascii(&mut b, 16, 16, &lu.product);
    put_ascii(&mut b, 32, 4, &lu.revision);
    let mut vd = vec![VD_SAM5];
    if lu.transport_version != 0 {
        vd.push(lu.transport_version);
    }
    vd.extend([VD_SPC4, VD_SBC3]);
    for (i, v) in vd.iter().enumerate() {
        put_be(&mut b, 58 + 2 * i, 2, u64::from(*v));
    }
    b
}

/// Standard INQUIRY data for a LUN with no logical unit behind it (SPC-4
/// 6.6.2: qualifier 3, type 1Fh), 36 bytes.
pub fn standard_no_lun() -> Vec<u8> {
    let mut b = vec![0u8; 36];
    put_u8(&mut b, 0, PDT_NO_LUN);
    put_u8(&mut b, 2, VERSION_SPC4);
    put_u8(&mut b, 3, 0x12);
    put_u8(&mut b, 4, 31);
    put_ascii(&mut b, 8, 8, VENDOR);
    put_ascii(&mut b, 16, 20, "");
    b
}

/// A VPD page header (page length filled in by [`finish`]).
fn page(code: u8) -> Vec<u8> {
    vec![PDT_DISK, code, 0, 0]
}

/// Sets the 2-byte PAGE LENGTH of a VPD page.
fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let len = b.len().saturating_sub(4).min(usize::from(u16::MAX));
    put_be(&mut b, 2, 2, len as u64);
    b
}

/// VPD 00h: the supported pages, ascending.
pub fn supported_pages() -> Vec<u8> {
    let mut b = page(vpd_page::SUPPORTED);
    b.extend_from_slice(&vpd_page::ALL);
    finish(b)
}

/// VPD 00h for a LUN with no logical unit: only page 00h itself.
pub fn supported_pages_no_lun() -> Vec<u8> {
    vec![PDT_NO_LUN, vpd_page::SUPPORTED, 0, 1, vpd_page::SUPPORTED]
}

/// VPD 80h: the unit serial number.
pub fn unit_serial(lu: &LogicalUnit) -> Vec<u8> {
    let mut b = page(vpd_page::UNIT_SERIAL);
    b.extend_from_slice(lu.serial.as_bytes());
    finish(b)
}

/// Code set: binary.
const CODE_SET_BINARY: u8 = 1;
/// Code set: ASCII.
const CODE_SET_ASCII: u8 = 2;
/// Code set: UTF-8.
const CODE_SET_UTF8: u8 = 3;
/// Association: the logical unit.
const ASSOC_LU: u8 = 0;
/// Association: the target port the command came through.
const ASSOC_PORT: u8 = 1;
/// Association: the SCSI target device.
const ASSOC_TARGET: u8 = 2;

/// One designation descriptor (SPC-4 7.8.6.1). With a protocol identifier,
/// PIV is set so the identifier is read in that protocol's terms.
fn designator(protocol: Option<u8>, code_set: u8, assoc: u8, kind: u8, id: &[u8]) -> Vec<u8> {
    let b0 = (protocol.unwrap_or(0) << 4) | code_set;
    let piv = if protocol.is_some() { 0x80 } else { 0 };
    let mut d = vec![b0, piv | (assoc << 4) | kind, 0, id.len().min(255) as u8];
    d.extend_from_slice(id.get(..id.len().min(255)).unwrap_or(&[]));
    d
}

/// Designators the transport appends to VPD 83h, one function per kind.
/// `protocol` is the SPC-4 protocol identifier of the transport (iSCSI: 5).
pub mod designator {
    use super::*;

    /// Relative target port identifier (type 4) of the port the command
    /// arrived on.
    pub fn relative_target_port(protocol: u8, port: u16) -> Vec<u8> {
        let [hi, lo] = port.to_be_bytes();
        designator(Some(protocol), CODE_SET_BINARY, ASSOC_PORT, 0x4, &[0, 0, hi, lo])
    }

    /// Target port group (type 5) of that port, for ALUA.
    pub fn target_port_group(protocol: u8, group: u16) -> Vec<u8> {
        let [hi, lo] = group.to_be_bytes();
        designator(Some(protocol), CODE_SET_BINARY, ASSOC_PORT, 0x5, &[0, 0, hi, lo])
    }

    /// SCSI name string (type 8) of the target port (for iSCSI
    /// `<iqn>,t,0x<tpgt>`) or, with `port` false, of the target device
    /// (the bare iqn). The name is NUL terminated and padded to a multiple
    /// of four bytes, as SPC-4 requires.
    pub fn scsi_name(protocol: u8, name: &str, port: bool) -> Vec<u8> {
        let mut id = name.as_bytes().get(..name.len().min(251)).unwrap_or(&[]).to_vec();
        id.push(0);
        while id.len() % 4 != 0 {
            id.push(0);
        }
        let assoc = if port { ASSOC_PORT } else { ASSOC_TARGET };
        designator(Some(protocol), CODE_SET_UTF8, assoc, 0x8, &id)
    }
}

/// VPD 83h: an NAA (first nibble 6) or EUI-64 based 16-byte designator for
/// the LU, a T10 vendor id designator (vendor + serial), then `port`: the
/// transport's target port / relative port / port group designators, built
/// with [`designator`].
pub fn device_identification(lu: &LogicalUnit, port: &[u8]) -> Vec<u8> {
    let mut b = page(vpd_page::DEVICE_ID);
    let naa = lu.device_id.first().is_some_and(|&x| x >> 4 == 6);
    let kind = if naa { 0x3 } else { 0x2 };
    b.extend(designator(None, CODE_SET_BINARY, ASSOC_LU, kind, &lu.device_id));
    let mut t10 = VENDOR.as_bytes().to_vec();
    t10.extend_from_slice(lu.serial.as_bytes());
    b.extend(designator(None, CODE_SET_ASCII, ASSOC_LU, 0x1, &t10));
    b.extend_from_slice(port);
    finish(b)
}

/// VPD B1h: block device characteristics, a non-rotating medium.
pub fn block_characteristics() -> Vec<u8> {
    let mut b = page(vpd_page::BLOCK_CHARACTERISTICS);
    b.resize(64, 0);
    put_be(&mut b, 4, 2, 1); // MEDIUM ROTATION RATE 0001h: non-rotating
    finish(b)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn lu() -> LogicalUnit {
        let mut l = LogicalUnit::new(512, 2048, "SN0001", [0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        l.product = "disk".into();
        l.revision = "1.0".into();
        l.transport_version = 0x0960;
        l
    }

    #[test]
    fn standard_fields() {
        let b = standard(&lu());
        assert_eq!(b.len(), 96);
        assert_eq!(b[0], 0x00);
        assert_eq!(b[1], 0x00);
        assert_eq!(b[2], 6);
        assert_eq!(b[3], 0x12);
        assert_eq!(b[4] as usize, b.len() - 5);
        assert_eq!(b[7], 0x02);
        assert_eq!(&b[8..16], b"FERROFAB");
        assert_eq!(&b[16..32], b"disk            ");
        assert_eq!(&b[32..36], b"1.0 ");
        assert_eq!(&b[58..66], &[0x00, 0xA0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xC0]);
        assert!(b[66..].iter().all(|&x| x == 0));
    }

    #[test]
    fn standard_without_transport_descriptor() {
        let mut l = lu();
        l.transport_version = 0;
        let b = standard(&l);
        assert_eq!(&b[58..66], &[0x00, 0xA0, 0x04, 0x60, 0x04, 0xC0, 0, 0]);
    }

    #[test]
    fn no_lun_standard() {
        let b = standard_no_lun();
        assert_eq!(b.len(), 36);
        assert_eq!((b[0], b[2], b[4]), (0x7F, 6, 31));
        assert_eq!(supported_pages_no_lun(), vec![0x7F, 0, 0, 1, 0]);
    }

    #[test]
    fn supported_pages_sorted() {
        let b = supported_pages();
        assert_eq!(&b[..4], &[0, 0, 0, 6]);
        assert_eq!(&b[4..], &[0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]);
    }

    #[test]
    fn serial_page() {
        let b = unit_serial(&lu());
        assert_eq!(&b[..4], &[0, 0x80, 0, 6]);
        assert_eq!(&b[4..], b"SN0001");
    }

    #[test]
    fn device_identification_naa_and_t10() {
        let l = lu();
        let b = device_identification(&l, &[]);
        assert_eq!(&b[..2], &[0, 0x83]);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]) as usize, b.len() - 4);
        // NAA: binary, LU association, type 3, 16 bytes.
        assert_eq!(&b[4..8], &[0x01, 0x03, 0x00, 16]);
        assert_eq!(&b[8..24], &l.device_id);
        // T10 vendor id: ASCII, type 1, "FERROFAB" + serial.
        assert_eq!(&b[24..28], &[0x02, 0x01, 0x00, 14]);
        assert_eq!(&b[28..42], b"FERROFABSN0001");
        assert_eq!(b.len(), 42);
    }

    #[test]
    fn device_identification_eui_and_port_hook() {
        let mut l = lu();
        l.device_id[0] = 0x00;
        let mut port = designator::relative_target_port(5, 1);
        port.extend(designator::target_port_group(5, 0x0102));
        let b = device_identification(&l, &port);
        assert_eq!(&b[4..8], &[0x01, 0x02, 0x00, 16]);
        let tail = &b[42..58];
        assert_eq!(&tail[..8], &[0x51, 0x94, 0x00, 4, 0, 0, 0, 1]);
        assert_eq!(&tail[8..], &[0x51, 0x95, 0x00, 4, 0, 0, 1, 2]);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]) as usize, b.len() - 4);
    }

    #[test]
    fn scsi_name_is_padded() {
        let d = designator::scsi_name(5, "iqn.x,t,0x1", true);
        // 11 chars + NUL = 12, already a multiple of 4.
        assert_eq!(&d[..4], &[0x53, 0x98, 0x00, 12]);
        assert_eq!(&d[4..15], b"iqn.x,t,0x1");
        assert_eq!(d[15], 0);
        let d = designator::scsi_name(5, "iqn.ab", false);
        assert_eq!(&d[..4], &[0x53, 0xA8, 0x00, 8]);
        assert_eq!(d.len(), 12);
    }

    #[test]
    fn characteristics_non_rotating() {
        let b = block_characteristics();
        assert_eq!(b.len(), 64);
        assert_eq!(&b[..6], &[0, 0xB1, 0, 0x3C, 0, 1]);
    }
}
