//! The Fabrics-command side of in-band authentication that the target and the initiator wire
//! up: the Authentication Send / Receive command fields, AUTHREQ in the Connect response, and
//! the "authentication required" status.
//!
//! Owns only numbers and field packing; moving the bytes is the transports' job.

/// Fabrics command opcode (all Fabrics commands).
pub const OPC_FABRICS: u8 = 0x7F;
/// FCTYPE of Authentication Send (host to controller: the message is the command's data).
pub const FCTYPE_AUTH_SEND: u8 = 0x05;
/// FCTYPE of Authentication Receive (controller to host: the message is the returned data).
pub const FCTYPE_AUTH_RECV: u8 = 0x06;
/// Security Protocol (SECP) assigned to NVMe in-band authentication.
pub const SECP_NVME: u8 = 0xE9;
/// SP Specific 0 for DH-HMAC-CHAP transactions.
pub const SPSP0_DHCHAP: u8 = 0x01;
/// SP Specific 1 for DH-HMAC-CHAP transactions.
pub const SPSP1_DHCHAP: u8 = 0x01;

/// Connect response DW0 bit: Authentication Transaction Required (ATR).
pub const CONNECT_AUTHREQ_ATR: u32 = 1 << 17;
/// Connect response DW0 bit: Authentication Secure Channel Required (ASCR; unsupported here).
pub const CONNECT_AUTHREQ_ASCR: u32 = 1 << 18;

/// Status Code Type of "Authentication Required" (command specific).
pub const SCT_AUTH_REQUIRED: u8 = 0x1;
/// Status Code "Authentication Required": any command other than Connect, Authentication
/// Send/Receive (and Disconnect) on a queue that has not authenticated yet.
pub const SC_AUTH_REQUIRED: u8 = 0x91;

/// Connect response DW0: the controller ID in bits 15:0 and ATR when the host must
/// authenticate before using the queue.
pub fn connect_response_dw0(cntlid: u16, auth_required: bool) -> u32 {
    u32::from(cntlid) | if auth_required { CONNECT_AUTHREQ_ATR } else { 0 }
}

/// Whether a Connect response DW0 asks the host to authenticate (ATR or ASCR).
pub fn connect_requires_auth(dw0: u32) -> bool {
    dw0 & (CONNECT_AUTHREQ_ATR | CONNECT_AUTHREQ_ASCR) != 0
}

/// Why an Authentication Send/Receive command cannot carry DH-HMAC-CHAP (the target completes
/// it with Invalid Field in Command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthCommandError {
    /// SECP is not E9h.
    #[error("SECP {0:#04x} is not NVMe in-band authentication (E9h)")]
    Secp(u8),
    /// SPSP0/SPSP1 are not 01h/01h.
    #[error("SPSP {0:#04x}/{1:#04x} is not DH-HMAC-CHAP (01h/01h)")]
    Spsp(u8, u8),
    /// TL/AL is zero.
    #[error("transfer length is zero")]
    ZeroLength,
}

/// The command-specific fields of Authentication Send / Receive: CDW10 holds SECP (31:24),
/// SPSP1 (23:16) and SPSP0 (15:8); CDW11 holds TL (Send) or AL (Receive), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCommand {
    /// Security Protocol.
    pub secp: u8,
    /// SP Specific 0.
    pub spsp0: u8,
    /// SP Specific 1.
    pub spsp1: u8,
    /// Transfer length (Send) or allocation length (Receive).
    pub length: u32,
}

impl AuthCommand {
    /// The fields a host puts in a DH-HMAC-CHAP Send of `length` bytes or Receive with
    /// room for `length` bytes.
    pub fn dhchap(length: u32) -> AuthCommand {
        AuthCommand { secp: SECP_NVME, spsp0: SPSP0_DHCHAP, spsp1: SPSP1_DHCHAP, length }
    }

    /// Unpacks CDW10 and CDW11.
    pub fn from_dwords(cdw10: u32, cdw11: u32) -> AuthCommand {
        AuthCommand { secp: (cdw10 >> 24) as u8, spsp1: (cdw10 >> 16) as u8, spsp0: (cdw10 >> 8) as u8, length: cdw11 }
    }

    /// Packs into (CDW10, CDW11).
    pub fn to_dwords(self) -> (u32, u32) {
        ((u32::from(self.secp) << 24) | (u32::from(self.spsp1) << 16) | (u32::from(self.spsp0) << 8), self.length)
    }

    /// Checks that the command carries DH-HMAC-CHAP.
    pub fn validate(self) -> Result<(), AuthCommandError> {
        if self.secp != SECP_NVME {
            return Err(AuthCommandError::Secp(self.secp));
        }
        if (self.spsp0, self.spsp1) != (SPSP0_DHCHAP, SPSP1_DHCHAP) {
            return Err(AuthCommandError::Spsp(self.spsp0, self.spsp1));
        }
        if self.length == 0 {
            return Err(AuthCommandError::ZeroLength);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_dw0_carries_atr_in_bit_17() {
        assert_eq!(connect_response_dw0(0x1234, true), 0x0002_1234);
        assert_eq!(connect_response_dw0(0x1234, false), 0x0000_1234);
        assert!(connect_requires_auth(0x0002_0001));
        assert!(connect_requires_auth(0x0004_0001));
        assert!(!connect_requires_auth(0x0001_FFFF));
    }

    #[test]
    fn command_fields_pack_like_the_kernel_and_spdk() {
        // Byte 40 reserved, 41 SPSP0, 42 SPSP1, 43 SECP: CDW10 = E9 01 01 00 (MSB first).
        let cmd = AuthCommand::dhchap(72);
        assert_eq!(cmd.to_dwords(), (0xE901_0100, 72));
        assert_eq!(AuthCommand::from_dwords(0xE901_0100, 72), cmd);
        assert_eq!(cmd.validate(), Ok(()));
        assert_eq!(AuthCommand::from_dwords(0xEA01_0100, 1).validate(), Err(AuthCommandError::Secp(0xEA)));
        assert_eq!(AuthCommand::from_dwords(0xE901_0200, 1).validate(), Err(AuthCommandError::Spsp(2, 1)));
        assert_eq!(AuthCommand::dhchap(0).validate(), Err(AuthCommandError::ZeroLength));
    }
}
