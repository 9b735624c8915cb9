//! CDB decoding: operation codes, CDB lengths, the control byte, every
//! supported CDB's fields as a [`Command`], and [`transfer`], the data
//! direction and length a CDB implies for the transport.
//!
//! Owns the CDB layouts and the checks that need no logical unit (reserved
//! code values, protection fields, obsolete bits we cannot honour); checks
//! against capacity and limits are the executor's.

use crate::bytes::{be16, be32, be64, u8_at};
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// Operation codes this crate knows (SPC-4 / SBC-3).
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ (6).
    pub const READ_6: u8 = 0x08;
    /// WRITE (6).
    pub const WRITE_6: u8 = 0x0A;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SELECT (6) (not supported).
    pub const MODE_SELECT_6: u8 = 0x15;
    /// RESERVE (6) (SPC-2 reservation; needs [`crate::reservations`]).
    pub const RESERVE_6: u8 = 0x16;
    /// RELEASE (6).
    pub const RELEASE_6: u8 = 0x17;
    /// MODE SENSE (6).
    pub const MODE_SENSE_6: u8 = 0x1A;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1B;
    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    /// READ CAPACITY (10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ (10).
    pub const READ_10: u8 = 0x28;
    /// WRITE (10).
    pub const WRITE_10: u8 = 0x2A;
    /// WRITE AND VERIFY (10).
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    /// VERIFY (10).
    pub const VERIFY_10: u8 = 0x2F;
    /// PRE-FETCH (10).
    pub const PRE_FETCH_10: u8 = 0x34;
    /// SYNCHRONIZE CACHE (10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// READ DEFECT DATA (10).
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    /// WRITE SAME (10).
    pub const WRITE_SAME_10: u8 = 0x41;
    /// UNMAP.
    pub const UNMAP: u8 = 0x42;
    /// RESERVE (10) (SPC-2 reservation; needs [`crate::reservations`]).
    pub const RESERVE_10: u8 = 0x56;
    /// RELEASE (10).
    pub const RELEASE_10: u8 = 0x57;
    /// MODE SENSE (10).
    pub const MODE_SENSE_10: u8 = 0x5A;
    /// PERSISTENT RESERVE IN (needs [`crate::reservations`]).
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    /// PERSISTENT RESERVE OUT (needs [`crate::reservations`]).
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    /// Variable-length CDBs (32 bytes; not supported).
    pub const VARIABLE_LENGTH: u8 = 0x7F;
    /// READ (16).
    pub const READ_16: u8 = 0x88;
    /// COMPARE AND WRITE.
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    /// WRITE (16).
    pub const WRITE_16: u8 = 0x8A;
    /// WRITE AND VERIFY (16).
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    /// VERIFY (16).
    pub const VERIFY_16: u8 = 0x8F;
    /// PRE-FETCH (16).
    pub const PRE_FETCH_16: u8 = 0x90;
    /// SYNCHRONIZE CACHE (16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// WRITE SAME (16).
    pub const WRITE_SAME_16: u8 = 0x93;
    /// SERVICE ACTION IN (16); READ CAPACITY (16) is its action 10h, GET
    /// LBA STATUS its action 12h.
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xA0;
    /// MAINTENANCE IN; REPORT SUPPORTED OPERATION CODES is its action 0Ch.
    pub const MAINTENANCE_IN: u8 = 0xA3;
    /// READ (12).
    pub const READ_12: u8 = 0xA8;
    /// WRITE (12).
    pub const WRITE_12: u8 = 0xAA;
    /// WRITE AND VERIFY (12).
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    /// VERIFY (12).
    pub const VERIFY_12: u8 = 0xAF;
    /// READ DEFECT DATA (12).
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;
}

/// Service actions this crate knows.
pub mod service_action {
    /// SERVICE ACTION IN (16): READ CAPACITY (16).
    pub const READ_CAPACITY_16: u8 = 0x10;
    /// SERVICE ACTION IN (16): GET LBA STATUS.
    pub const GET_LBA_STATUS: u8 = 0x12;
    /// MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES.
    pub const REPORT_SUPPORTED_OPCODES: u8 = 0x0C;
}

/// The length of a CDB from its operation code's group (SPC-4 4.2.5.1);
/// `None` for the reserved and vendor-specific groups and for
/// variable-length CDBs.
pub fn cdb_len(op: u8) -> Option<usize> {
    match op >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 if op != opcode::VARIABLE_LENGTH => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A decoded CDB. Lengths are in logical blocks unless named otherwise;
/// READ (6) / WRITE (6) length 0 has already become 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE.
    RequestSense {
        /// Descriptor format asked for.
        desc: bool,
        /// Allocation length.
        alloc: u32,
    },
    /// INQUIRY.
    Inquiry {
        /// A VPD page is asked for.
        evpd: bool,
        /// The VPD page code.
        page: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// MODE SENSE (6) or (10).
    ModeSense {
        /// MODE SENSE (10) header and lengths.
        ten: bool,
        /// Disable block descriptors.
        dbd: bool,
        /// Long LBA block descriptor accepted (10 only).
        llbaa: bool,
        /// Page control: 0 current, 1 changeable, 2 default, 3 saved.
        pc: u8,
        /// Page code (3Fh: all).
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// READ CAPACITY (10).
    ReadCapacity10,
    /// READ CAPACITY (16).
    ReadCapacity16 {
        /// Allocation length.
        alloc: u32,
    },
    /// GET LBA STATUS.
    GetLbaStatus {
        /// Starting LBA.
        lba: u64,
        /// Allocation length.
        alloc: u32,
    },
    /// READ DEFECT DATA (10) or (12).
    ReadDefectData {
        /// The (12) form: 8-byte header with a 4-byte list length.
        twelve: bool,
        /// REQ_PLIST: the primary defect list is asked for.
        plist: bool,
        /// REQ_GLIST: the grown defect list is asked for.
        glist: bool,
        /// DEFECT LIST FORMAT (0..=6).
        format: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// REPORT LUNS.
    ReportLuns {
        /// SELECT REPORT.
        select: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// REPORT SUPPORTED OPERATION CODES.
    ReportOpcodes {
        /// Return command timeouts descriptors.
        rctd: bool,
        /// Reporting options (0..=3).
        options: u8,
        /// Requested operation code.
        opcode: u8,
        /// Requested service action.
        sa: u16,
        /// Allocation length.
        alloc: u32,
    },
    /// PERSISTENT RESERVE IN (answered by [`crate::reservations`]).
    PersistentReserveIn {
        /// Service action (0..=3; others fail to decode).
        action: u8,
        /// Allocation length.
        alloc: u16,
    },
    /// PERSISTENT RESERVE OUT (answered by [`crate::reservations`]); the
    /// parameter list follows as data-out.
    PersistentReserveOut {
        /// Service action (0..=6; REGISTER AND MOVE and later fail to decode).
        action: u8,
        /// SCOPE (byte 2 bits 7:4).
        scope: u8,
        /// TYPE (byte 2 bits 3:0).
        pr_type: u8,
        /// Parameter list length in bytes.
        param_len: u32,
    },
    /// RESERVE (6) or (10): an SPC-2 reservation of the whole LU.
    Reserve,
    /// RELEASE (6) or (10).
    Release,
    /// START STOP UNIT (accepted, nothing to do for a fixed disk).
    StartStopUnit,
    /// PREVENT ALLOW MEDIUM REMOVAL (accepted, the medium is not removable).
    PreventAllow,
    /// READ (6/10/12/16).
    Read {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Disable page out.
        dpo: bool,
        /// Force unit access.
        fua: bool,
        /// CDB byte of the transfer length (for sense pointers).
        len_at: u16,
    },
    /// WRITE (6/10/12/16) or WRITE AND VERIFY.
    Write {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Disable page out.
        dpo: bool,
        /// Force unit access.
        fua: bool,
        /// WRITE AND VERIFY: the data must be on the medium before GOOD.
        verify: bool,
        /// CDB byte of the transfer length.
        len_at: u16,
    },
    /// VERIFY (10/12/16).
    Verify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// BYTCHK 01b: compare with data-out; 00b: medium check only.
        compare: bool,
        /// CDB byte of the verification length.
        len_at: u16,
    },
    /// WRITE SAME (10/16).
    WriteSame {
        /// First block.
        lba: u64,
        /// Number of blocks (0 stays 0: WSNZ makes it an error).
        blocks: u64,
        /// Blocks may be unmapped instead of written.
        unmap: bool,
        /// No data-out: the block is all zeros (16 only).
        ndob: bool,
        /// CDB byte of the number of blocks.
        len_at: u16,
    },
    /// UNMAP; the parameter list follows as data-out.
    Unmap {
        /// Parameter list length in bytes.
        param_len: u16,
    },
    /// SYNCHRONIZE CACHE (10/16).
    SyncCache {
        /// First block.
        lba: u64,
        /// Number of blocks (0: to the end of the medium).
        blocks: u32,
        /// Complete once the command is validated, before the flush.
        immed: bool,
    },
    /// PRE-FETCH (10/16).
    PreFetch {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// COMPARE AND WRITE.
    CompareAndWrite {
        /// First block.
        lba: u64,
        /// Number of blocks (each compared then written).
        blocks: u8,
        /// Disable page out.
        dpo: bool,
        /// Force unit access for the write.
        fua: bool,
    },
}

/// The protection field (RDPROTECT/WRPROTECT/VRPROTECT, byte 1 bits 7:5):
/// this target has no protection information, so any non-zero value is an
/// invalid field.
fn no_protect(cdb: &[u8]) -> Result<(), Sense> {
    if u8_at(cdb, 1) & 0xE0 != 0 { Err(Sense::invalid_field_in_cdb(1, Some(7))) } else { Ok(()) }
}

/// Fields shared by READ/WRITE (10/12/16): DPO bit 4 and FUA bit 3 (FUA_NV,
/// bit 1, is accepted and ignored: there is no non-volatile cache).
fn dpo_fua(cdb: &[u8]) -> (bool, bool) {
    let b = u8_at(cdb, 1);
    (b & 0x10 != 0, b & 0x08 != 0)
}

/// LBA, length and the length's offset by CDB size for the 10/12/16 forms.
fn lba_len(cdb: &[u8], size: usize) -> (u64, u32, u16) {
    match size {
        10 => (u64::from(be32(cdb, 2)), u32::from(be16(cdb, 7)), 7),
        12 => (u64::from(be32(cdb, 2)), be32(cdb, 6), 6),
        _ => (be64(cdb, 2), be32(cdb, 10), 10),
    }
}

/// Decodes a CDB. `cdb` may be longer than the command (iSCSI carries 16
/// bytes); a shorter one, an unknown operation code or a 32-byte CDB is an
/// invalid operation code.
pub fn decode(cdb: &[u8]) -> Result<Command, Sense> {
    let op = u8_at(cdb, 0);
    let size = cdb_len(op).ok_or(Sense::invalid_opcode())?;
    if cdb.is_empty() || cdb.len() < size {
        return Err(Sense::invalid_opcode());
    }
    let cmd = decode_fields(op, cdb, size)?;
    // NACA (bit 2) needs ACA support and LINK (bit 0) linked commands; we
    // have neither (standard INQUIRY reports NORMACA 0).
    let control = u8_at(cdb, size - 1);
    if control & 0x04 != 0 {
        return Err(Sense::invalid_field_in_cdb(size as u16 - 1, Some(2)));
    }
    if control & 0x01 != 0 {
        return Err(Sense::invalid_field_in_cdb(size as u16 - 1, Some(0)));
    }
    Ok(cmd)
}

fn decode_fields(op: u8, cdb: &[u8], size: usize) -> Result<Command, Sense> {
    use opcode::*;
    let b1 = u8_at(cdb, 1);
    Ok(match op {
        TEST_UNIT_READY => Command::TestUnitReady,
        REQUEST_SENSE => Command::RequestSense { desc: b1 & 0x01 != 0, alloc: u32::from(u8_at(cdb, 4)) },
        INQUIRY => {
            // CMDDT is obsolete; a target that does not implement it rejects it.
            if b1 & 0x02 != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(1)));
            }
            Command::Inquiry { evpd: b1 & 0x01 != 0, page: u8_at(cdb, 2), alloc: u32::from(be16(cdb, 3)) }
        }
        MODE_SENSE_6 | MODE_SENSE_10 => {
            let ten = op == MODE_SENSE_10;
            Command::ModeSense {
                ten,
                dbd: b1 & 0x08 != 0,
                llbaa: ten && b1 & 0x10 != 0,
                pc: u8_at(cdb, 2) >> 6,
                page: u8_at(cdb, 2) & 0x3F,
                subpage: u8_at(cdb, 3),
                alloc: if ten { u32::from(be16(cdb, 7)) } else { u32::from(u8_at(cdb, 4)) },
            }
        }
        READ_CAPACITY_10 => {
            // PMI 0 with a non-zero LBA is an invalid field (SBC-3 5.15).
            if u8_at(cdb, 8) & 0x01 == 0 && be32(cdb, 2) != 0 {
                return Err(Sense::invalid_field_in_cdb(2, None));
            }
            Command::ReadCapacity10
        }
        SERVICE_ACTION_IN_16 => match b1 & 0x1F {
            service_action::READ_CAPACITY_16 => Command::ReadCapacity16 { alloc: be32(cdb, 10) },
            service_action::GET_LBA_STATUS => Command::GetLbaStatus { lba: be64(cdb, 2), alloc: be32(cdb, 10) },
            // Pointer at byte 1: initiators read that as "not implemented".
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        },
        MAINTENANCE_IN => match b1 & 0x1F {
            service_action::REPORT_SUPPORTED_OPCODES => Command::ReportOpcodes {
                rctd: u8_at(cdb, 2) & 0x80 != 0,
                options: u8_at(cdb, 2) & 0x07,
                opcode: u8_at(cdb, 3),
                sa: be16(cdb, 4),
                alloc: be32(cdb, 6),
            },
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        },
        READ_DEFECT_DATA_10 | READ_DEFECT_DATA_12 => {
            let twelve = op == READ_DEFECT_DATA_12;
            let flags = if twelve { b1 } else { u8_at(cdb, 2) };
            // 111b is the one reserved format (SBC-4 6.2.2 table).
            if flags & 0x07 == 0x07 {
                return Err(Sense::invalid_field_in_cdb(if twelve { 1 } else { 2 }, Some(2)));
            }
            Command::ReadDefectData {
                twelve,
                plist: flags & 0x10 != 0,
                glist: flags & 0x08 != 0,
                format: flags & 0x07,
                alloc: if twelve { be32(cdb, 6) } else { u32::from(be16(cdb, 7)) },
            }
        }
        PERSISTENT_RESERVE_IN => match b1 & 0x1F {
            action @ 0..=3 => Command::PersistentReserveIn { action, alloc: be16(cdb, 7) },
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        },
        PERSISTENT_RESERVE_OUT => match b1 & 0x1F {
            // REGISTER AND MOVE (7) and REPLACE LOST RESERVATION (8) are not
            // supported (REPORT CAPABILITIES says so).
            action @ 0..=6 => Command::PersistentReserveOut {
                action,
                scope: u8_at(cdb, 2) >> 4,
                pr_type: u8_at(cdb, 2) & 0x0F,
                param_len: be32(cdb, 5),
            },
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        },
        RESERVE_6 | RELEASE_6 | RESERVE_10 | RELEASE_10 => {
            // Third-party (3RDPTY, bit 4), extent (EXTENT, bit 0 of the (6)
            // forms) and LONGID (bit 1 of the (10) forms) reservations are
            // obsolete and not done: only whole-LU reservations.
            let bad = if size == 6 { 0x11 } else { 0x12 };
            if b1 & bad != 0 {
                let bit = if b1 & 0x10 != 0 {
                    4
                } else if size == 6 {
                    0
                } else {
                    1
                };
                return Err(Sense::invalid_field_in_cdb(1, Some(bit)));
            }
            if op == RESERVE_6 || op == RESERVE_10 { Command::Reserve } else { Command::Release }
        }
        REPORT_LUNS => Command::ReportLuns { select: u8_at(cdb, 2), alloc: be32(cdb, 6) },
        START_STOP_UNIT => Command::StartStopUnit,
        PREVENT_ALLOW_MEDIUM_REMOVAL => Command::PreventAllow,
        READ_6 | WRITE_6 => {
            let lba = crate::bytes::be(cdb, 1, 3) & 0x1F_FFFF;
            let blocks = match u8_at(cdb, 4) {
                0 => 256,
                n => u32::from(n),
            };
            if op == READ_6 {
                Command::Read { lba, blocks, dpo: false, fua: false, len_at: 4 }
            } else {
                Command::Write { lba, blocks, dpo: false, fua: false, verify: false, len_at: 4 }
            }
        }
        READ_10 | READ_12 | READ_16 => {
            no_protect(cdb)?;
            let (lba, blocks, len_at) = lba_len(cdb, size);
            let (dpo, fua) = dpo_fua(cdb);
            Command::Read { lba, blocks, dpo, fua, len_at }
        }
        WRITE_10 | WRITE_12 | WRITE_16 => {
            no_protect(cdb)?;
            let (lba, blocks, len_at) = lba_len(cdb, size);
            let (dpo, fua) = dpo_fua(cdb);
            Command::Write { lba, blocks, dpo, fua, verify: false, len_at }
        }
        WRITE_AND_VERIFY_10 | WRITE_AND_VERIFY_12 | WRITE_AND_VERIFY_16 => {
            no_protect(cdb)?;
            // BYTCHK 00b (medium verify) and 01b (compare with what was just
            // written: equal by construction) are accepted, others reserved.
            if b1 & 0x04 != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(2)));
            }
            let (lba, blocks, len_at) = lba_len(cdb, size);
            Command::Write { lba, blocks, dpo: b1 & 0x10 != 0, fua: true, verify: true, len_at }
        }
        VERIFY_10 | VERIFY_12 | VERIFY_16 => {
            no_protect(cdb)?;
            let compare = match (b1 >> 1) & 0x03 {
                0 => false,
                1 => true,
                // 10b is reserved; 11b (one block against each) is not done.
                _ => return Err(Sense::invalid_field_in_cdb(1, Some(2))),
            };
            let (lba, blocks, len_at) = lba_len(cdb, size);
            Command::Verify { lba, blocks, compare, len_at }
        }
        WRITE_SAME_10 | WRITE_SAME_16 => {
            no_protect(cdb)?;
            // ANCHOR needs ANC_SUP (reported 0); PBDATA/LBDATA (10 only) ask
            // for address-stamped blocks, which this target does not make.
            if b1 & 0x10 != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(4)));
            }
            let ten = op == WRITE_SAME_10;
            if ten && b1 & 0x06 != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(2)));
            }
            let (lba, blocks, len_at) = lba_len(cdb, size);
            Command::WriteSame {
                lba,
                blocks: u64::from(blocks),
                unmap: b1 & 0x08 != 0,
                ndob: !ten && b1 & 0x01 != 0,
                len_at,
            }
        }
        UNMAP => {
            if b1 & 0x01 != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(0)));
            }
            Command::Unmap { param_len: be16(cdb, 7) }
        }
        SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => {
            let (lba, blocks, _) = lba_len(cdb, size);
            Command::SyncCache { lba, blocks, immed: b1 & 0x02 != 0 }
        }
        PRE_FETCH_10 | PRE_FETCH_16 => {
            let (lba, blocks, _) = lba_len(cdb, size);
            Command::PreFetch { lba, blocks }
        }
        COMPARE_AND_WRITE => {
            no_protect(cdb)?;
            let (dpo, fua) = dpo_fua(cdb);
            Command::CompareAndWrite { lba: be64(cdb, 2), blocks: u8_at(cdb, 13), dpo, fua }
        }
        _ => return Err(Sense::invalid_opcode()),
    })
}

/// Which way data moves for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No data phase.
    None,
    /// Data-in: target to initiator (iSCSI R bit).
    ToInitiator,
    /// Data-out: initiator to target (iSCSI W bit).
    FromInitiator,
}

/// What a CDB implies for the data phase, for the transport to compare with
/// the initiator's Expected Data Transfer Length (EDTL) and compute the
/// residual.
///
/// Data-in: send at most `min(len, EDTL)` bytes (the executor already cut
/// responses to the allocation length, and may return fewer than `len`);
/// what EDTL has beyond that is underflow, what `len` has beyond EDTL is
/// overflow. Data-out: when EDTL differs from `len` and `exact` is set the
/// command cannot run: fail it with ILLEGAL REQUEST before touching the
/// medium ([`Sense::invalid_field_in_cdb`]; libiscsi's InvalidDataOutSize
/// tests for WRITE SAME and COMPARE AND WRITE accept any ILLEGAL REQUEST
/// code). For a plain WRITE the
/// transport either writes the whole blocks both lengths cover and reports
/// the residual, or fails with [`Sense::invalid_field_in_information_unit`]
/// (FCP-4/SAM-5 allow both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Direction.
    pub dir: DataDir,
    /// Bytes the CDB asks for (allocation length for data-in replies).
    pub len: u64,
    /// Data-out that is meaningless unless exactly `len` bytes arrive.
    pub exact: bool,
}

impl Transfer {
    /// No data phase.
    pub const NONE: Transfer = Transfer { dir: DataDir::None, len: 0, exact: false };

    fn to_initiator(len: u64) -> Transfer {
        if len == 0 { Transfer::NONE } else { Transfer { dir: DataDir::ToInitiator, len, exact: false } }
    }

    fn from_initiator(len: u64, exact: bool) -> Transfer {
        if len == 0 { Transfer::NONE } else { Transfer { dir: DataDir::FromInitiator, len, exact } }
    }
}

/// The data phase a CDB implies on `lu`. A CDB that does not decode has
/// none: it ends in CHECK CONDITION before any data moves.
pub fn transfer(cdb: &[u8], lu: &LogicalUnit) -> Transfer {
    let bs = u64::from(lu.block_size);
    match decode(cdb) {
        Ok(cmd) => command_transfer(&cmd, bs),
        Err(_) => Transfer::NONE,
    }
}

/// [`transfer`] for an already decoded command on `block_size`-byte blocks.
pub fn command_transfer(cmd: &Command, block_size: u64) -> Transfer {
    match *cmd {
        Command::RequestSense { alloc, .. }
        | Command::Inquiry { alloc, .. }
        | Command::ModeSense { alloc, .. }
        | Command::ReadCapacity16 { alloc }
        | Command::ReportLuns { alloc, .. }
        | Command::ReportOpcodes { alloc, .. }
        | Command::GetLbaStatus { alloc, .. }
        | Command::ReadDefectData { alloc, .. } => Transfer::to_initiator(u64::from(alloc)),
        Command::PersistentReserveIn { alloc, .. } => Transfer::to_initiator(u64::from(alloc)),
        // Any length but 24 is an error, found once the data arrived.
        Command::PersistentReserveOut { param_len, .. } => Transfer::from_initiator(u64::from(param_len), true),
        Command::ReadCapacity10 => Transfer::to_initiator(8),
        Command::Read { blocks, .. } => Transfer::to_initiator(u64::from(blocks) * block_size),
        Command::Write { blocks, .. } => Transfer::from_initiator(u64::from(blocks) * block_size, false),
        Command::Verify { blocks, compare: true, .. } => {
            Transfer::from_initiator(u64::from(blocks) * block_size, false)
        }
        // One block of data-out whatever the number of blocks, unless NDOB
        // or WSNZ rejects the command.
        Command::WriteSame { ndob: false, blocks, .. } if blocks > 0 => Transfer::from_initiator(block_size, true),
        Command::Unmap { param_len } => Transfer::from_initiator(u64::from(param_len), true),
        Command::CompareAndWrite { blocks, .. } => Transfer::from_initiator(2 * u64::from(blocks) * block_size, true),
        Command::TestUnitReady
        | Command::Reserve
        | Command::Release
        | Command::StartStopUnit
        | Command::PreventAllow
        | Command::Verify { .. }
        | Command::WriteSame { .. }
        | Command::SyncCache { .. }
        | Command::PreFetch { .. } => Transfer::NONE,
    }
}
