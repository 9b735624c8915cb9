//! Log page contents for an NVM controller (supported logs, error
//! information, SMART / health, firmware slot, changed namespace list,
//! commands supported and effects) and the Get Log Page dword decoding
//! shared with the discovery log. Offsets (LPOL/LPOU) and lengths
//! (NUMDL/NUMDU) are applied by [`window`].

use ff_nvme::nvme::{Sqe, opcode};

use crate::bytes::{put, put_str, put_u8, put_u16, put_u32};
use crate::response::CmdError;

/// LID: Supported Log Pages.
pub const LID_SUPPORTED: u8 = 0x00;
/// LID: Error Information.
pub const LID_ERROR: u8 = 0x01;
/// LID: SMART / Health Information.
pub const LID_SMART: u8 = 0x02;
/// LID: Firmware Slot Information.
pub const LID_FW_SLOT: u8 = 0x03;
/// LID: Changed Namespace List.
pub const LID_CHANGED_NS: u8 = 0x04;
/// LID: Commands Supported and Effects.
pub const LID_CMD_EFFECTS: u8 = 0x05;
/// LID: Discovery.
pub const LID_DISCOVERY: u8 = 0x70;

/// LIDs an NVM controller serves.
pub const NVM_LIDS: [u8; 6] = [LID_SUPPORTED, LID_ERROR, LID_SMART, LID_FW_SLOT, LID_CHANGED_NS, LID_CMD_EFFECTS];

/// Composite temperature reported in SMART (Kelvin): a plausible idle 30 °C.
pub const SMART_TEMP_K: u16 = 303;

/// A decoded Get Log Page command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    /// Log page identifier.
    pub lid: u8,
    /// Log specific field.
    pub lsp: u8,
    /// Retain Asynchronous Event.
    pub rae: bool,
    /// Bytes requested.
    pub len: u64,
    /// Byte offset into the log.
    pub offset: u64,
    /// Command set identifier (cdw14 bits 31:24).
    pub csi: u8,
}

impl LogRequest {
    /// Decodes cdw10..cdw14. Offsets must be dword aligned and index
    /// offsets (OT) are not supported.
    pub fn decode(sqe: &Sqe) -> Result<Self, CmdError> {
        let numdl = u64::from(sqe.cdw10 >> 16);
        let numdu = u64::from(sqe.cdw11 & 0xFFFF);
        let numd = ((numdu << 16) | numdl) + 1;
        let offset = (u64::from(sqe.cdw13) << 32) | u64::from(sqe.cdw12);
        if offset & 3 != 0 || sqe.cdw14 & (1 << 23) != 0 {
            return Err(CmdError::INVALID_FIELD);
        }
        Ok(Self {
            lid: (sqe.cdw10 & 0xFF) as u8,
            lsp: ((sqe.cdw10 >> 8) & 0x7F) as u8,
            rae: sqe.cdw10 & (1 << 15) != 0,
            len: numd * 4,
            offset,
            csi: (sqe.cdw14 >> 24) as u8,
        })
    }
}

/// Cuts `[offset, offset + len)` out of `full`, zero-filling past its end.
/// An offset beyond the log is an Invalid Field.
pub fn window(full: &[u8], offset: u64, len: usize) -> Result<Vec<u8>, CmdError> {
    let start = usize::try_from(offset).map_err(|_| CmdError::INVALID_FIELD)?;
    if start > full.len() {
        return Err(CmdError::INVALID_FIELD);
    }
    let mut out = vec![0u8; len];
    let avail = full.get(start..).unwrap_or_default();
    let n = avail.len().min(len);
    put(&mut out, 0, avail.get(..n).unwrap_or_default());
    Ok(out)
}

/// Supported Log Pages (LID 00h): 256 LIDs × 4 bytes, LSUPP bit 0.
pub fn supported(lids: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    for &lid in lids {
        put_u32(&mut b, usize::from(lid) * 4, 1);
    }
    b
}

/// Error Information (LID 01h): one empty 64-byte entry (ELPE = 0).
pub fn error_info() -> Vec<u8> {
    vec![0u8; 64]
}

/// SMART / Health (LID 02h): healthy device, full spare, no wear.
pub fn smart() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    put_u8(&mut b, 0, 0); // critical warning: none
    put_u16(&mut b, 1, SMART_TEMP_K);
    put_u8(&mut b, 3, 100); // available spare %
    put_u8(&mut b, 4, 10); // available spare threshold %
    put_u8(&mut b, 5, 0); // percentage used
    b
}

/// Firmware Slot Information (LID 03h): slot 1 active with `fr`.
pub fn firmware_slot(fr: &str) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    put_u8(&mut b, 0, 0x01); // AFI: slot 1 active
    put_str(&mut b, 8, 8, fr, b' ');
    b
}

/// Changed Namespace List (LID 04h): up to 1024 NSIDs; more than that is
/// reported as the single entry FFFFFFFFh.
pub fn changed_namespaces(nsids: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    if nsids.len() > 1024 {
        put_u32(&mut b, 0, 0xFFFF_FFFF);
    } else {
        for (i, n) in nsids.iter().enumerate() {
            put_u32(&mut b, i * 4, *n);
        }
    }
    b
}

/// Commands Supported and Effects (LID 05h) for the NVM command set:
/// CSUPP (bit 0) and, for media-changing commands, LBCC (bit 1).
pub fn command_effects() -> Vec<u8> {
    const CSUPP: u32 = 1 << 0;
    const LBCC: u32 = 1 << 1;
    let mut b = vec![0u8; 4096];
    for op in [
        opcode::ADMIN_GET_LOG_PAGE,
        opcode::ADMIN_IDENTIFY,
        opcode::ADMIN_ABORT,
        opcode::ADMIN_SET_FEATURES,
        opcode::ADMIN_GET_FEATURES,
        opcode::ADMIN_ASYNC_EVENT,
        opcode::ADMIN_KEEP_ALIVE,
    ] {
        put_u32(&mut b, usize::from(op) * 4, CSUPP);
    }
    put_u32(&mut b, 1024 + usize::from(opcode::IO_FLUSH) * 4, CSUPP | LBCC);
    put_u32(&mut b, 1024 + usize::from(opcode::IO_WRITE) * 4, CSUPP | LBCC);
    put_u32(&mut b, 1024 + usize::from(opcode::IO_READ) * 4, CSUPP);
    put_u32(&mut b, 1024 + usize::from(opcode::IO_WRITE_ZEROES) * 4, CSUPP | LBCC);
    put_u32(&mut b, 1024 + usize::from(opcode::IO_DSM) * 4, CSUPP | LBCC);
    b
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::{u16_at, u32_at};

    #[test]
    fn decode_fields() {
        let sqe = Sqe {
            opcode: opcode::ADMIN_GET_LOG_PAGE,
            cdw10: 0x70 | (1 << 15) | (0x00FF << 16),
            cdw11: 0x0001,
            cdw12: 0x400,
            cdw13: 0,
            ..Sqe::default()
        };
        let r = LogRequest::decode(&sqe).unwrap();
        assert_eq!(r.lid, 0x70);
        assert!(r.rae);
        assert_eq!(r.len, ((1u64 << 16) | 0xFF) * 4 + 4);
        assert_eq!(r.offset, 0x400);
        let bad = Sqe { cdw12: 2, ..sqe };
        assert_eq!(LogRequest::decode(&bad), Err(CmdError::INVALID_FIELD));
    }

    #[test]
    fn window_cuts_and_pads() {
        let full: Vec<u8> = (0..16u8).collect();
        assert_eq!(window(&full, 4, 4).unwrap(), vec![4, 5, 6, 7]);
        assert_eq!(window(&full, 12, 8).unwrap(), vec![12, 13, 14, 15, 0, 0, 0, 0]);
        assert_eq!(window(&full, 16, 4).unwrap(), vec![0; 4]);
        assert!(window(&full, 20, 4).is_err());
    }

    #[test]
    fn contents() {
        let s = supported(&NVM_LIDS);
        assert_eq!(u32_at(&s, 5 * 4), 1);
        assert_eq!(u32_at(&s, 0x70 * 4), 0);
        let m = smart();
        assert_eq!(u16_at(&m, 1), 303);
        assert_eq!(m[3], 100);
        let f = firmware_slot("1.0");
        assert_eq!(f[0], 1);
        assert_eq!(&f[8..16], b"1.0     ");
        let c = changed_namespaces(&[3, 4]);
        assert_eq!(u32_at(&c, 0), 3);
        assert_eq!(u32_at(&c, 4), 4);
        let many: Vec<u32> = (1..=1100).collect();
        assert_eq!(u32_at(&changed_namespaces(&many), 0), 0xFFFF_FFFF);
        let e = command_effects();
        assert_eq!(u32_at(&e, 0x06 * 4), 1);
        assert_eq!(u32_at(&e, 1024 + 4), 3);
        assert_eq!(u32_at(&e, 1024 + 0x02 * 4), 1);
    }
}
