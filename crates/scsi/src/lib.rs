//! ferrofabric SCSI block device emulation, sans-IO: the SPC-4 / SBC-3
//! command set an iSCSI target puts in front of its block backends, with no
//! transport types, sockets, files or threads. CDB bytes and a logical unit
//! description in; response data, a block operation for the runtime, or
//! sense data out.
//!
//! - [`lu`]: [`LogicalUnit`], the description of one LU, and its checks;
//! - [`cdb`]: operation codes, [`decode`] into a [`Command`], and
//!   [`transfer`], the data direction and length a CDB implies;
//! - [`exec`]: [`execute`] / [`execute_no_lun`] into an [`Outcome`], and
//!   [`execute_with_reservations`] into a [`Reply`];
//! - [`reservations`]: per-LU persistent (PERSISTENT RESERVE IN/OUT) and
//!   SPC-2 (RESERVE/RELEASE) reservation state, [`Reservations`], and the
//!   conflict rules;
//! - [`inquiry`]: standard INQUIRY and the identity VPD pages, plus the
//!   designators a transport appends to page 83h;
//! - [`capacity`]: READ CAPACITY, block limits and provisioning VPD pages,
//!   GET LBA STATUS and READ DEFECT DATA;
//! - [`mode`]: MODE SENSE (6)/(10) pages;
//! - [`block`]: [`BlockOp`], compare and WRITE SAME helpers;
//! - [`unmap`]: the UNMAP parameter list, parsed once data-out arrived;
//! - [`luns`]: LUN encoding and REPORT LUNS;
//! - [`opcodes`]: REPORT SUPPORTED OPERATION CODES;
//! - [`sense`]: [`Status`], [`Sense`] and its fixed/descriptor encodings.
//!
//! # Flow for one command
//!
//! 1. The transport decodes the LUN ([`luns::decode_lun`]); an unknown one
//!    goes to [`execute_no_lun`].
//! 2. [`transfer`] gives direction and length to check against the
//!    initiator's expected transfer length (residuals, see [`Transfer`]).
//! 3. [`execute`] answers; a runtime that keeps a [`Reservations`] per LU
//!    calls [`execute_with_reservations`] instead (with the data-out of a
//!    PERSISTENT RESERVE OUT), whose [`Reply::ReservationConflict`]
//!    completes with status 18h and no sense; it also reports the unit
//!    attentions reservation changes raise for other nexuses. [`Outcome::Block`] operations run on the
//!    backend; UNMAP first receives its parameter list and calls
//!    [`unmap::parse`]; VERIFY with BYTCHK and COMPARE AND WRITE read the
//!    medium and call [`block::compare`].
//!
//! # Not supported (INVALID COMMAND OPERATION CODE, or INVALID FIELD IN CDB
//! at byte 1 for an unknown service action, which initiators read the same)
//!
//! MODE SELECT (nothing is changeable), RESERVE/RELEASE and PERSISTENT
//! RESERVE IN/OUT through [`execute`] (they need [`Reservations`]: use
//! [`execute_with_reservations`]), REPORT TARGET PORT GROUPS (ALUA belongs with the ports), ORWRITE, WRITE
//! ATOMIC, EXTENDED COPY, SANITIZE, LOG SENSE, protection information
//! (non-zero RDPROTECT/WRPROTECT/VRPROTECT is an invalid field), 32-byte
//! CDBs, NACA and linked commands.
//!
//! # Task management
//!
//! ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LUN RESET and I_T NEXUS
//! RESET need nothing from this crate: it holds no per-command state. The
//! transport drops the aborted commands' outstanding [`BlockOp`]s (waiting
//! for backend I/O already submitted before it answers the TMF, so no write
//! lands after the reset response) and sends no status for them (TAS is 0
//! in the Control page). A LUN reset (and a target reset) also calls
//! [`Reservations::reset`], which drops an SPC-2 reservation; persistent
//! reservations survive resets. When an I_T nexus ends (logout, lost
//! connection, session reinstatement, I_T NEXUS RESET) the transport calls
//! [`Reservations::nexus_lost`]. After a PREEMPT AND ABORT it aborts the
//! commands of the nexuses [`Reservations::take_aborted`] returns. There
//! are no mode page changes and no ACA state. Unit attentions
//! after a reset, if the transport raises them, reach REQUEST SENSE through
//! [`Nexus::pending_sense`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
mod bytes;
pub mod capacity;
pub mod cdb;
pub mod exec;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod inquiry;
pub mod lu;
pub mod luns;
pub mod mode;
pub mod opcodes;
pub mod reservations;
pub mod sense;
pub mod unmap;

pub use block::{BlockOp, WriteSame, WriteSamePlan, compare, split_compare_and_write};
pub use cdb::{Command, DataDir, Transfer, decode, transfer};
pub use exec::{Nexus, Outcome, Reply, execute, execute_command, execute_no_lun, execute_with_reservations};
pub use lu::{LogicalUnit, LuError};
pub use reservations::{ItNexus, Reservations};
pub use sense::{Sense, SenseKey, Status};
pub use unmap::UnmapRange;
