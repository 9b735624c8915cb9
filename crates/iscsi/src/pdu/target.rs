//! Headers the target sends (RFC 7143 sections 11.3 to 11.17 and 11.9).

use super::{Bhs, F_BIT, RESERVED_TAG, Residual, Stage, be16, be32, be64, put16, put32, put64};
use crate::error::Error;

/// The sequence numbers every target PDU carries: StatSN (where meaningful) and the command window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqNums {
    /// Status sequence number (reserved in some PDUs, see each type).
    pub stat_sn: u32,
    /// Next CmdSN the target expects.
    pub exp_cmd_sn: u32,
    /// Highest CmdSN the target accepts.
    pub max_cmd_sn: u32,
}

impl SeqNums {
    fn decode(b: &Bhs) -> Self {
        SeqNums { stat_sn: be32(b, 24), exp_cmd_sn: be32(b, 28), max_cmd_sn: be32(b, 32) }
    }

    fn encode(&self, b: &mut Bhs) {
        put32(b, 24, self.stat_sn);
        put32(b, 28, self.exp_cmd_sn);
        put32(b, 32, self.max_cmd_sn);
    }
}

/// NOP-In: the answer to a NOP-Out ping, or a target ping (ITT reserved, TTT set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NopIn {
    /// Logical unit.
    pub lun: u64,
    /// ITT of the NOP-Out answered, or reserved for a target ping.
    pub itt: u32,
    /// TTT the initiator must echo (target ping), else reserved.
    pub ttt: u32,
    /// Sequence numbers (StatSN not advanced by a target ping).
    pub sn: SeqNums,
}

impl NopIn {
    pub(crate) fn decode(b: &Bhs) -> Self {
        NopIn { lun: be64(b, 8), itt: be32(b, 16), ttt: be32(b, 20), sn: SeqNums::decode(b) }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        self.sn.encode(b);
    }
}

/// SCSI Response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScsiResponse {
    /// iSCSI service response: 0 command completed at target, 1 target failure.
    pub response: u8,
    /// SCSI status (valid when `response` is 0).
    pub status: u8,
    /// Initiator Task Tag.
    pub itt: u32,
    /// SNACK Tag (0 without R-Data SNACKs).
    pub snack_tag: u32,
    /// Sequence numbers.
    pub sn: SeqNums,
    /// Number of R2T and Data-In PDUs sent for the command.
    pub exp_data_sn: u32,
    /// Residual of the read part of a bidirectional command.
    pub bidi_residual: Residual,
    /// Residual against the Expected Data Transfer Length.
    pub residual: Residual,
}

impl ScsiResponse {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        Ok(ScsiResponse {
            response: b[2],
            status: b[3],
            itt: be32(b, 16),
            snack_tag: be32(b, 20),
            sn: SeqNums::decode(b),
            exp_data_sn: be32(b, 36),
            bidi_residual: Residual::decode(b[1], 0x10, 0x08, be32(b, 40), 1)?,
            residual: Residual::decode(b[1], 0x04, 0x02, be32(b, 44), 1)?,
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT | self.bidi_residual.flags(0x10, 0x08) | self.residual.flags(0x04, 0x02);
        b[2] = self.response;
        b[3] = self.status;
        put32(b, 16, self.itt);
        put32(b, 20, self.snack_tag);
        self.sn.encode(b);
        put32(b, 36, self.exp_data_sn);
        put32(b, 40, self.bidi_residual.count());
        put32(b, 44, self.residual.count());
    }
}

/// Task Management Function Response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TmfResponse {
    /// Response code (0 function complete, 255 rejected).
    pub response: u8,
    /// ITT of the request.
    pub itt: u32,
    /// Sequence numbers.
    pub sn: SeqNums,
}

impl TmfResponse {
    pub(crate) fn decode(b: &Bhs) -> Self {
        TmfResponse { response: b[2], itt: be32(b, 16), sn: SeqNums::decode(b) }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        b[2] = self.response;
        put32(b, 16, self.itt);
        self.sn.encode(b);
    }
}

/// Login Response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginResponse {
    /// T: the target moves to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next Login Response.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful with `transit`).
    pub nsg: Stage,
    /// Highest version supported.
    pub version_max: u8,
    /// Version in use.
    pub version_active: u8,
    /// ISID of the request.
    pub isid: [u8; 6],
    /// Session handle (set on the final response of a leading login).
    pub tsih: u16,
    /// ITT of the request.
    pub itt: u32,
    /// Sequence numbers.
    pub sn: SeqNums,
    /// Status class (0 success, 1 redirection, 2 initiator error, 3 target error).
    pub status_class: u8,
    /// Status detail within the class.
    pub status_detail: u8,
}

impl LoginResponse {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let transit = b[1] & 0x80 != 0;
        let cont = b[1] & 0x40 != 0;
        if transit && cont {
            return Err(Error::InvalidField { offset: 1, what: "T and C both set" });
        }
        let csg = Stage::from_u8(b[1] >> 2).ok_or(Error::InvalidField { offset: 1, what: "reserved CSG" })?;
        let nsg = match Stage::from_u8(b[1]) {
            Some(s) => s,
            None if !transit => csg,
            None => return Err(Error::InvalidField { offset: 1, what: "reserved NSG" }),
        };
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginResponse {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[2],
            version_active: b[3],
            isid,
            tsih: be16(b, 14),
            itt: be32(b, 16),
            sn: SeqNums::decode(b),
            status_class: b[36],
            status_detail: b[37],
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = (if self.transit { 0x80 } else { 0 })
            | (if self.cont { 0x40 } else { 0 })
            | ((self.csg as u8) << 2)
            | (self.nsg as u8);
        b[2] = self.version_max;
        b[3] = self.version_active;
        b[8..14].copy_from_slice(&self.isid);
        put16(b, 14, self.tsih);
        put32(b, 16, self.itt);
        self.sn.encode(b);
        b[36] = self.status_class;
        b[37] = self.status_detail;
    }
}

/// Text Response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TextResponse {
    /// F: the target's last response of the exchange.
    pub final_bit: bool,
    /// C: the text continues in the next response.
    pub cont: bool,
    /// Logical unit.
    pub lun: u64,
    /// ITT of the request.
    pub itt: u32,
    /// TTT the initiator echoes to continue, reserved on the final response.
    pub ttt: u32,
    /// Sequence numbers.
    pub sn: SeqNums,
}

impl TextResponse {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let final_bit = b[1] & F_BIT != 0;
        let cont = b[1] & 0x40 != 0;
        if final_bit && cont {
            return Err(Error::InvalidField { offset: 1, what: "F and C both set" });
        }
        Ok(TextResponse {
            final_bit,
            cont,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: SeqNums::decode(b),
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = (if self.final_bit { F_BIT } else { 0 }) | (if self.cont { 0x40 } else { 0 });
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        self.sn.encode(b);
    }
}

/// SCSI Data-In.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DataIn {
    /// F: last PDU of a read burst (or of the command).
    pub final_bit: bool,
    /// A: DataACK requested (ErrorRecoveryLevel above 0 only).
    pub ack: bool,
    /// S: the SCSI status travels in this PDU (requires F).
    pub status: Option<u8>,
    /// Residual (with the status only).
    pub residual: Residual,
    /// Logical unit (required with A).
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag (reserved without A).
    pub ttt: u32,
    /// Sequence numbers; StatSN only with the status.
    pub sn: SeqNums,
    /// Data sequence number, from 0 per command.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub offset: u32,
}

impl DataIn {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let s = b[1] & 0x01 != 0;
        let final_bit = b[1] & F_BIT != 0;
        if s && !final_bit {
            return Err(Error::InvalidField { offset: 1, what: "S without F" });
        }
        let residual = if s { Residual::decode(b[1], 0x04, 0x02, be32(b, 44), 1)? } else { Residual::None };
        Ok(DataIn {
            final_bit,
            ack: b[1] & 0x40 != 0,
            status: s.then_some(b[3]),
            residual,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: SeqNums::decode(b),
            data_sn: be32(b, 36),
            offset: be32(b, 40),
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        let s = self.status.is_some();
        b[1] = (if self.final_bit || s { F_BIT } else { 0 })
            | (if self.ack { 0x40 } else { 0 })
            | (if s { 0x01 | self.residual.flags(0x04, 0x02) } else { 0 });
        b[3] = self.status.unwrap_or(0);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        self.sn.encode(b);
        put32(b, 36, self.data_sn);
        put32(b, 40, self.offset);
        put32(b, 44, if s { self.residual.count() } else { 0 });
    }
}

/// Logout Response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LogoutResponse {
    /// 0 closed, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    /// ITT of the request.
    pub itt: u32,
    /// Sequence numbers.
    pub sn: SeqNums,
    /// Seconds to wait before reconnecting.
    pub time2wait: u16,
    /// Seconds the connection state is kept after Time2Wait.
    pub time2retain: u16,
}

impl LogoutResponse {
    pub(crate) fn decode(b: &Bhs) -> Self {
        LogoutResponse {
            response: b[2],
            itt: be32(b, 16),
            sn: SeqNums::decode(b),
            time2wait: be16(b, 40),
            time2retain: be16(b, 42),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        b[2] = self.response;
        put32(b, 16, self.itt);
        self.sn.encode(b);
        put16(b, 40, self.time2wait);
        put16(b, 42, self.time2retain);
    }
}

/// Ready To Transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct R2t {
    /// Logical unit.
    pub lun: u64,
    /// ITT of the command.
    pub itt: u32,
    /// Target Transfer Tag the Data-Out PDUs carry back.
    pub ttt: u32,
    /// Sequence numbers (StatSN not advanced).
    pub sn: SeqNums,
    /// R2T sequence number, from 0 per command.
    pub r2t_sn: u32,
    /// Offset of the requested data.
    pub offset: u32,
    /// Bytes requested.
    pub desired_len: u32,
}

impl R2t {
    pub(crate) fn decode(b: &Bhs) -> Self {
        R2t {
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            sn: SeqNums::decode(b),
            r2t_sn: be32(b, 36),
            offset: be32(b, 40),
            desired_len: be32(b, 44),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        self.sn.encode(b);
        put32(b, 36, self.r2t_sn);
        put32(b, 40, self.offset);
        put32(b, 44, self.desired_len);
    }
}

/// Asynchronous Message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AsyncMessage {
    /// Logical unit (SCSI asynchronous events).
    pub lun: u64,
    /// Sequence numbers.
    pub sn: SeqNums,
    /// AsyncEvent: 0 SCSI event, 1 logout requested, 2 connection drop, 3 session drop, 4 renegotiate.
    pub event: u8,
    /// Vendor code (event 255).
    pub vcode: u8,
    /// Parameter1 (event specific).
    pub param1: u16,
    /// Parameter2.
    pub param2: u16,
    /// Parameter3.
    pub param3: u16,
}

impl AsyncMessage {
    pub(crate) fn decode(b: &Bhs) -> Self {
        AsyncMessage {
            lun: be64(b, 8),
            sn: SeqNums::decode(b),
            event: b[36],
            vcode: b[37],
            param1: be16(b, 38),
            param2: be16(b, 40),
            param3: be16(b, 42),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        put64(b, 8, self.lun);
        put32(b, 16, RESERVED_TAG);
        self.sn.encode(b);
        b[36] = self.event;
        b[37] = self.vcode;
        put16(b, 38, self.param1);
        put16(b, 40, self.param2);
        put16(b, 42, self.param3);
    }
}

/// Reject: the data segment carries the header of the rejected PDU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reject {
    /// Reason code (see [`super::RejectReason`]).
    pub reason: u8,
    /// Sequence numbers.
    pub sn: SeqNums,
    /// DataSN/R2TSN (data SNACK rejects only).
    pub data_sn: u32,
}

impl Reject {
    pub(crate) fn decode(b: &Bhs) -> Self {
        Reject { reason: b[2], sn: SeqNums::decode(b), data_sn: be32(b, 36) }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT;
        b[2] = self.reason;
        put32(b, 16, RESERVED_TAG);
        self.sn.encode(b);
        put32(b, 36, self.data_sn);
    }
}
