//! Headers the initiator sends (RFC 7143 sections 11.2 to 11.16, 11.18, 11.19).

use super::{Bhs, F_BIT, Stage, be16, be32, be64, imm, put16, put32, put64, set_imm};
use crate::error::Error;

/// NOP-Out: a ping, or the answer to a target's NOP-In ping (ITT reserved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NopOut {
    /// Immediate delivery.
    pub immediate: bool,
    /// Logical unit (echoed from a NOP-In being answered).
    pub lun: u64,
    /// Initiator Task Tag; [`super::RESERVED_TAG`] when answering a NOP-In.
    pub itt: u32,
    /// Target Transfer Tag of the NOP-In being answered, else reserved.
    pub ttt: u32,
    /// Command sequence number.
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
}

impl NopOut {
    pub(crate) fn decode(b: &Bhs) -> Self {
        NopOut {
            immediate: imm(b),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        set_imm(b, self.immediate);
        b[1] = F_BIT;
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

/// SCSI Command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScsiCommand {
    /// Immediate delivery.
    pub immediate: bool,
    /// F: no unsolicited Data-Out follows.
    pub final_bit: bool,
    /// R: data flows to the initiator.
    pub read: bool,
    /// W: data flows to the target.
    pub write: bool,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
    /// Logical unit number (the 8-byte SAM LUN structure).
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Expected Data Transfer Length (for bidirectional commands, the write length).
    pub edtl: u32,
    /// Command sequence number.
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
    /// The first 16 bytes of the CDB (the rest, if any, is in an extended-CDB AHS).
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let attr = b[1] & 0x07;
        if attr > 4 {
            return Err(Error::InvalidField { offset: 1, what: "reserved task attribute" });
        }
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&b[32..48]);
        Ok(ScsiCommand {
            immediate: imm(b),
            final_bit: b[1] & F_BIT != 0,
            read: b[1] & 0x40 != 0,
            write: b[1] & 0x20 != 0,
            attr,
            lun: be64(b, 8),
            itt: be32(b, 16),
            edtl: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            cdb,
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        set_imm(b, self.immediate);
        b[1] = (if self.final_bit { F_BIT } else { 0 })
            | (if self.read { 0x40 } else { 0 })
            | (if self.write { 0x20 } else { 0 })
            | (self.attr & 7);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.edtl);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
        b[32..48].copy_from_slice(&self.cdb);
    }
}

/// Task Management Function Request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TmfRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Function code (1 ABORT TASK to 8 TASK REASSIGN).
    pub function: u8,
    /// Logical unit.
    pub lun: u64,
    /// Initiator Task Tag of this request.
    pub itt: u32,
    /// ITT of the task to act on (ABORT TASK), else reserved.
    pub ref_itt: u32,
    /// Command sequence number.
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
    /// CmdSN of the referenced task (ABORT TASK).
    pub ref_cmd_sn: u32,
    /// Expected DataSN (task reassignment only).
    pub exp_data_sn: u32,
}

impl TmfRequest {
    pub(crate) fn decode(b: &Bhs) -> Self {
        TmfRequest {
            immediate: imm(b),
            function: b[1] & 0x7f,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ref_itt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            ref_cmd_sn: be32(b, 32),
            exp_data_sn: be32(b, 36),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        set_imm(b, self.immediate);
        b[1] = F_BIT | (self.function & 0x7f);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ref_itt);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
        put32(b, 32, self.ref_cmd_sn);
        put32(b, 36, self.exp_data_sn);
    }
}

/// Login Request (always immediate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginRequest {
    /// T: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next Login Request.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful with `transit`).
    pub nsg: Stage,
    /// Highest version supported.
    pub version_max: u8,
    /// Lowest version supported.
    pub version_min: u8,
    /// Initiator part of the session id.
    pub isid: [u8; 6],
    /// Target-assigned session handle: 0 for a new session.
    pub tsih: u16,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection id.
    pub cid: u16,
    /// Command sequence number (the session's first, on a leading login).
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
}

impl LoginRequest {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let transit = b[1] & 0x80 != 0;
        let cont = b[1] & 0x40 != 0;
        if transit && cont {
            return Err(Error::InvalidField { offset: 1, what: "T and C both set" });
        }
        let csg = match Stage::from_u8(b[1] >> 2) {
            Some(s @ (Stage::Security | Stage::Operational)) => s,
            _ => return Err(Error::InvalidField { offset: 1, what: "invalid CSG" }),
        };
        let nsg = match Stage::from_u8(b[1]) {
            Some(s) => s,
            None if !transit => csg,
            None => return Err(Error::InvalidField { offset: 1, what: "reserved NSG" }),
        };
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b[8..14]);
        Ok(LoginRequest {
            transit,
            cont,
            csg,
            nsg,
            version_max: b[2],
            version_min: b[3],
            isid,
            tsih: be16(b, 14),
            itt: be32(b, 16),
            cid: be16(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[0] = super::I_BIT;
        b[1] = (if self.transit { 0x80 } else { 0 })
            | (if self.cont { 0x40 } else { 0 })
            | ((self.csg as u8) << 2)
            | (self.nsg as u8);
        b[2] = self.version_max;
        b[3] = self.version_min;
        b[8..14].copy_from_slice(&self.isid);
        put16(b, 14, self.tsih);
        put32(b, 16, self.itt);
        put16(b, 20, self.cid);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

/// Text Request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TextRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// F: last request of the exchange.
    pub final_bit: bool,
    /// C: the text continues in the next request.
    pub cont: bool,
    /// Logical unit (usually reserved).
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// TTT of the Text Response being continued, else reserved.
    pub ttt: u32,
    /// Command sequence number.
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
}

impl TextRequest {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let final_bit = b[1] & F_BIT != 0;
        let cont = b[1] & 0x40 != 0;
        if final_bit && cont {
            return Err(Error::InvalidField { offset: 1, what: "F and C both set" });
        }
        Ok(TextRequest {
            immediate: imm(b),
            final_bit,
            cont,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        set_imm(b, self.immediate);
        b[1] = (if self.final_bit { F_BIT } else { 0 }) | (if self.cont { 0x40 } else { 0 });
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

/// SCSI Data-Out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DataOut {
    /// F: last PDU of this sequence (unsolicited burst or R2T).
    pub final_bit: bool,
    /// Logical unit (copied from the R2T).
    pub lun: u64,
    /// Initiator Task Tag of the command.
    pub itt: u32,
    /// TTT of the R2T answered; reserved for unsolicited data.
    pub ttt: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
    /// Data sequence number within the sequence, from 0.
    pub data_sn: u32,
    /// Offset of this data within the command's buffer.
    pub offset: u32,
}

impl DataOut {
    pub(crate) fn decode(b: &Bhs) -> Self {
        DataOut {
            final_bit: b[1] & F_BIT != 0,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            exp_stat_sn: be32(b, 28),
            data_sn: be32(b, 36),
            offset: be32(b, 40),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = if self.final_bit { F_BIT } else { 0 };
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 28, self.exp_stat_sn);
        put32(b, 36, self.data_sn);
        put32(b, 40, self.offset);
    }
}

/// Logout Request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LogoutRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// 0: close the session; 1: close the connection; 2: remove the connection for recovery.
    pub reason: u8,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection to close (reasons 1 and 2).
    pub cid: u16,
    /// Command sequence number.
    pub cmd_sn: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    pub(crate) fn decode(b: &Bhs) -> Result<Self, Error> {
        let reason = b[1] & 0x7f;
        if reason > 2 {
            return Err(Error::InvalidField { offset: 1, what: "reserved logout reason" });
        }
        Ok(LogoutRequest {
            immediate: imm(b),
            reason,
            itt: be32(b, 16),
            cid: be16(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        })
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        set_imm(b, self.immediate);
        b[1] = F_BIT | (self.reason & 0x7f);
        put32(b, 16, self.itt);
        put16(b, 20, self.cid);
        put32(b, 24, self.cmd_sn);
        put32(b, 28, self.exp_stat_sn);
    }
}

/// SNACK Request (error recovery levels above 0 only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Snack {
    /// SNACK type (0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data).
    pub kind: u8,
    /// Logical unit.
    pub lun: u64,
    /// Initiator Task Tag, or reserved.
    pub itt: u32,
    /// TTT or SNACK Tag.
    pub ttt: u32,
    /// Next StatSN the initiator expects.
    pub exp_stat_sn: u32,
    /// First missing DataSN, R2TSN or StatSN.
    pub beg_run: u32,
    /// How many are missing (0: all from `beg_run`).
    pub run_length: u32,
}

impl Snack {
    pub(crate) fn decode(b: &Bhs) -> Self {
        Snack {
            kind: b[1] & 0x0f,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            exp_stat_sn: be32(b, 28),
            beg_run: be32(b, 40),
            run_length: be32(b, 44),
        }
    }

    pub(crate) fn encode(&self, b: &mut Bhs) {
        b[1] = F_BIT | (self.kind & 0x0f);
        put64(b, 8, self.lun);
        put32(b, 16, self.itt);
        put32(b, 20, self.ttt);
        put32(b, 28, self.exp_stat_sn);
        put32(b, 40, self.beg_run);
        put32(b, 44, self.run_length);
    }
}
