//! The executor: a CDB and a logical unit in, an [`Outcome`] out. Commands
//! answered from the LU description (INQUIRY, MODE SENSE, READ CAPACITY,
//! REPORT LUNS, REQUEST SENSE, ...) come back as data; media commands as a
//! [`BlockOp`] for the runtime; every failure as sense data.
//!
//! Owns the dispatch and the per-command rules that are neither layout nor
//! block semantics (EVPD/page checks, allocation-length truncation, the
//! rules for a LUN with no logical unit).

use crate::block::{self, BlockCheck, BlockOp};
use crate::bytes::truncate;
use crate::capacity;
use crate::cdb::{Command, decode};
use crate::inquiry::{self, vpd_page};
use crate::lu::LogicalUnit;
use crate::luns;
use crate::mode::{self, ModeSenseRequest};
use crate::opcodes::{self, OpcodesRequest};
use crate::reservations::{ItNexus, Reservations};
use crate::sense::{Sense, Status};

/// What the transport knows about the I_T nexus and port a command came
/// through, for the commands whose answer depends on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nexus<'a> {
    /// LUNs this initiator sees, for REPORT LUNS.
    pub luns: &'a [u16],
    /// Designators appended to VPD 83h: target port, relative target port,
    /// target port group, SCSI name string (built with
    /// [`crate::inquiry::designator`]).
    pub port_designators: &'a [u8],
    /// Sense held for this nexus (a deferred error or unit attention the
    /// transport tracks); REQUEST SENSE returns it, else NO SENSE. The
    /// transport clears it once reported.
    pub pending_sense: Option<Sense>,
}

/// What to do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// GOOD status, no data.
    Good,
    /// GOOD status with this data-in, already cut to the allocation length.
    Data(Vec<u8>),
    /// Run this on the backend, then complete with GOOD or with the sense
    /// the failure maps to ([`Sense::unrecovered_read_error`],
    /// [`Sense::write_error`], [`Sense::miscompare`],
    /// [`Sense::internal_target_failure`]).
    Block(BlockOp),
    /// CHECK CONDITION with this sense ([`Sense::to_fixed`] for the wire:
    /// D_SENSE is 0 in the Control page).
    Check(Sense),
}

impl Outcome {
    /// The status this outcome completes with, once any block operation
    /// succeeds.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Check(_) => Status::CheckCondition,
            _ => Status::Good,
        }
    }
}

/// What a command comes to once reservations are taken into account
/// ([`execute_with_reservations`]): an [`Outcome`] as [`execute`] gives,
/// or RESERVATION CONFLICT. A separate type rather than a new [`Outcome`]
/// variant so that existing exhaustive matches on [`Outcome`] still
/// compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Complete as for this outcome.
    Outcome(Outcome),
    /// Complete with status RESERVATION CONFLICT (18h): no sense data, no
    /// data-in, nothing done; discard any data-out that came with it.
    ReservationConflict,
}

impl Reply {
    /// The status this reply completes with (once any block operation
    /// succeeds).
    pub fn status(&self) -> Status {
        match self {
            Reply::Outcome(o) => o.status(),
            Reply::ReservationConflict => Status::ReservationConflict,
        }
    }
}

impl From<Outcome> for Reply {
    fn from(o: Outcome) -> Reply {
        Reply::Outcome(o)
    }
}

/// Data-in after allocation-length truncation; no data is plain GOOD.
fn data(v: Vec<u8>, alloc: u32) -> Outcome {
    let v = truncate(v, alloc);
    if v.is_empty() { Outcome::Good } else { Outcome::Data(v) }
}

fn answer(r: Result<Vec<u8>, Sense>, alloc: u32) -> Outcome {
    match r {
        Ok(v) => data(v, alloc),
        Err(s) => Outcome::Check(s),
    }
}

/// Executes a CDB (6 to 16 bytes; extra bytes are ignored) on `lu`, which
/// must have passed [`LogicalUnit::validate`]. Never panics, whatever the
/// bytes.
pub fn execute(cdb: &[u8], lu: &LogicalUnit, nexus: &Nexus<'_>) -> Outcome {
    match decode(cdb) {
        Ok(cmd) => execute_command(&cmd, lu, nexus),
        Err(s) => Outcome::Check(s),
    }
}

/// [`execute`] for an already decoded command. Reservation commands
/// (RESERVE, RELEASE, PERSISTENT RESERVE IN/OUT) need the LU's
/// [`Reservations`]: here they are an invalid operation code, as they were
/// before this crate had them; use [`execute_with_reservations`].
pub fn execute_command(cmd: &Command, lu: &LogicalUnit, nexus: &Nexus<'_>) -> Outcome {
    execute_inner(cmd, lu, nexus, false)
}

/// Executes a CDB with the LU's reservation state: decodes it, reports a
/// unit attention the reservation state holds for `it` (CHECK CONDITION
/// for any command but INQUIRY, REPORT LUNS and REQUEST SENSE, which
/// returns it as its data unless `nexus.pending_sense` already has
/// something; reporting clears it), answers RESERVATION CONFLICT when a
/// reservation held through another I_T nexus forbids the command
/// ([`Reservations::check`]), runs RESERVE, RELEASE and
/// PERSISTENT RESERVE IN/OUT on `reservations`, and everything else as
/// [`execute`] does (REPORT SUPPORTED OPERATION CODES then lists the
/// reservation commands too).
///
/// `it` is the I_T nexus the command came through; `data_out` is the
/// command's data-out, used only by PERSISTENT RESERVE OUT (whose
/// parameter list [`crate::transfer`] announces as an exact data-out):
/// collect it before calling, or pass an empty slice for other commands.
/// A block operation in the reply runs after the call, outside the
/// runtime's lock on `reservations`: a reservation taken meanwhile does
/// not stop a command already past its check, as in any target.
pub fn execute_with_reservations(
    cdb: &[u8],
    lu: &LogicalUnit,
    nexus: &Nexus<'_>,
    data_out: &[u8],
    reservations: &mut Reservations,
    it: &ItNexus,
) -> Reply {
    let cmd = match decode(cdb) {
        Ok(c) => c,
        Err(s) => return Reply::Outcome(Outcome::Check(s)),
    };
    match cmd {
        Command::Inquiry { .. } | Command::ReportLuns { .. } => {}
        Command::RequestSense { .. } if nexus.pending_sense.is_none() => {
            if let Some(ua) = reservations.take_unit_attention(it) {
                let with_ua = Nexus { pending_sense: Some(ua), ..*nexus };
                return Reply::Outcome(execute_inner(&cmd, lu, &with_ua, true));
            }
        }
        Command::RequestSense { .. } => {}
        _ => {
            if let Some(ua) = reservations.take_unit_attention(it) {
                return Reply::Outcome(Outcome::Check(ua));
            }
        }
    }
    if let Err(conflict) = reservations.check(cdb, &cmd, it) {
        return conflict;
    }
    match cmd {
        Command::PersistentReserveIn { action, alloc } => reservations.persistent_reserve_in(action, alloc),
        Command::PersistentReserveOut { action, scope, pr_type, param_len } => {
            // The CDB's length rules; data-out beyond it is ignored, and
            // data-out short of it leaves fields missing (a length error).
            let n = usize::try_from(param_len).unwrap_or(usize::MAX).min(data_out.len());
            let params = data_out.get(..n).unwrap_or(data_out);
            reservations.prout(action, scope, pr_type, u64::from(param_len), params, it)
        }
        Command::Reserve => reservations.reserve(it),
        Command::Release => reservations.release(it),
        _ => Reply::Outcome(execute_inner(&cmd, lu, nexus, true)),
    }
}

fn execute_inner(cmd: &Command, lu: &LogicalUnit, nexus: &Nexus<'_>, with_reservations: bool) -> Outcome {
    match *cmd {
        Command::TestUnitReady | Command::StartStopUnit | Command::PreventAllow => Outcome::Good,
        Command::RequestSense { desc, alloc } => request_sense(nexus.pending_sense, desc, alloc),
        Command::Inquiry { evpd, page, alloc } => answer(inquiry_data(lu, nexus, evpd, page), alloc),
        Command::ModeSense { ten, dbd, llbaa, pc, page, subpage, alloc } => {
            let req = ModeSenseRequest { ten, dbd, llbaa, pc, page, subpage };
            answer(mode::mode_sense(lu, &req), alloc)
        }
        Command::ReadCapacity10 => Outcome::Data(capacity::read_capacity_10(lu)),
        Command::ReadCapacity16 { alloc } => data(capacity::read_capacity_16(lu), alloc),
        Command::ReportLuns { select, alloc } => answer(luns::report_luns(select, alloc, nexus.luns), alloc),
        Command::GetLbaStatus { lba, alloc } => answer(capacity::get_lba_status(lu, lba), alloc),
        Command::ReadDefectData { twelve, plist, glist, format, alloc } => {
            data(capacity::read_defect_data(twelve, plist, glist, format), alloc)
        }
        Command::ReportOpcodes { rctd, options, opcode, sa, alloc } => {
            let req = OpcodesRequest { rctd, options, opcode, service_action: sa };
            answer(opcodes::report_with(lu, &req, with_reservations), alloc)
        }
        Command::PersistentReserveIn { .. }
        | Command::PersistentReserveOut { .. }
        | Command::Reserve
        | Command::Release => Outcome::Check(Sense::invalid_opcode()),
        _ => match block::check(cmd, lu) {
            Ok(BlockCheck::Done) => Outcome::Good,
            Ok(BlockCheck::Op(op)) => Outcome::Block(op),
            Err(s) => Outcome::Check(s),
        },
    }
}

fn request_sense(pending: Option<Sense>, desc: bool, alloc: u32) -> Outcome {
    let s = pending.unwrap_or(Sense::no_sense());
    let v = if desc { s.to_descriptor() } else { s.to_fixed().to_vec() };
    data(v, alloc)
}

fn inquiry_data(lu: &LogicalUnit, nexus: &Nexus<'_>, evpd: bool, page: u8) -> Result<Vec<u8>, Sense> {
    if !evpd {
        // A page code without EVPD is an invalid field (SPC-4 6.6.1).
        return if page == 0 { Ok(inquiry::standard(lu)) } else { Err(Sense::invalid_field_in_cdb(2, None)) };
    }
    Ok(match page {
        vpd_page::SUPPORTED => inquiry::supported_pages(),
        vpd_page::UNIT_SERIAL => inquiry::unit_serial(lu),
        vpd_page::DEVICE_ID => inquiry::device_identification(lu, nexus.port_designators),
        vpd_page::BLOCK_LIMITS => capacity::block_limits(lu),
        vpd_page::BLOCK_CHARACTERISTICS => inquiry::block_characteristics(),
        vpd_page::PROVISIONING => capacity::provisioning(lu),
        _ => return Err(Sense::invalid_field_in_cdb(2, None)),
    })
}

/// Executes a CDB addressed to a LUN with no logical unit behind it (SPC-4
/// 4.6.5 / SAM-5): INQUIRY answers with peripheral qualifier 3 and type
/// 1Fh, REPORT LUNS lists `nexus.luns` as usual, REQUEST SENSE returns
/// LOGICAL UNIT NOT SUPPORTED as data with GOOD status, and every other
/// command ends in CHECK CONDITION with that sense.
pub fn execute_no_lun(cdb: &[u8], nexus: &Nexus<'_>) -> Outcome {
    match decode(cdb) {
        Ok(Command::Inquiry { evpd: false, page: 0, alloc }) => data(inquiry::standard_no_lun(), alloc),
        Ok(Command::Inquiry { evpd: true, page: vpd_page::SUPPORTED, alloc }) => {
            data(inquiry::supported_pages_no_lun(), alloc)
        }
        Ok(Command::Inquiry { .. }) => Outcome::Check(Sense::invalid_field_in_cdb(2, None)),
        Ok(Command::ReportLuns { select, alloc }) => answer(luns::report_luns(select, alloc, nexus.luns), alloc),
        Ok(Command::RequestSense { desc, alloc }) => request_sense(Some(Sense::lun_not_supported()), desc, alloc),
        // The decode error of a malformed INQUIRY or REPORT LUNS still wins.
        Err(s) if matches!(cdb.first(), Some(&(crate::cdb::opcode::INQUIRY | crate::cdb::opcode::REPORT_LUNS))) => {
            Outcome::Check(s)
        }
        _ => Outcome::Check(Sense::lun_not_supported()),
    }
}
