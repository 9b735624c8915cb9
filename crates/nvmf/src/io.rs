//! I/O command validation: an [`Sqe`] on an I/O queue becomes an
//! [`IoCmd`] the caller maps onto its block backend, or the NVMe status to
//! complete it with. Also the Dataset Management range parser and
//! [`TargetIoQueue`], the per-connection handle an I/O queue holds after Connect.
//!
//! Nothing here allocates on the Read/Write path; the namespace table is a
//! shared snapshot refreshed only when its generation changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ff_nvme::nvme::{Cqe, FUSE_MASK, PSDT_SGL_MPTR_CONTIG, Sqe, fctype, opcode, sgl, status};

use crate::auth::{AuthReply, DhDone, DhJob, QueueAuth};
use crate::config::{Limits, Namespace};
use crate::registry::{CtrlShared, SubsysShared, Target};
use crate::response::Response;
use crate::response::{CmdError, failure, success};

/// Namespaces of a subsystem by NSID.
pub type NamespaceTable = BTreeMap<u32, Namespace>;

/// NSID meaning "all namespaces" (Flush broadcast).
pub const NSID_ALL: u32 = 0xFFFF_FFFF;
/// Most DSM ranges in one command.
pub const DSM_MAX_RANGES: u16 = 256;
/// Size of one DSM range.
pub const DSM_RANGE_LEN: usize = 16;

/// Where the host's data for a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLocation {
    /// In the command capsule after the SQE (ICDOFF 0).
    InCapsule,
    /// To be moved with R2T/H2CData (writes) or C2HData (reads).
    Transport,
}

/// A validated NVM command for the block backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoCmd {
    /// Read `nlb` blocks at `slba`.
    Read {
        /// Namespace.
        nsid: u32,
        /// Starting LBA.
        slba: u64,
        /// Number of blocks (1-based).
        nlb: u32,
        /// Force Unit Access.
        fua: bool,
        /// Block size of the namespace.
        block_size: u32,
        /// Bytes to return to the host.
        len: u32,
    },
    /// Write `nlb` blocks at `slba`.
    Write {
        /// Namespace.
        nsid: u32,
        /// Starting LBA.
        slba: u64,
        /// Number of blocks (1-based).
        nlb: u32,
        /// Force Unit Access: durable before completion.
        fua: bool,
        /// Block size of the namespace.
        block_size: u32,
        /// Bytes of host data.
        len: u32,
        /// Where the data is.
        data: DataLocation,
    },
    /// Flush the volatile write cache; `nsid` may be [`NSID_ALL`].
    Flush {
        /// Namespace or all.
        nsid: u32,
    },
    /// Write zeroes to `nlb` blocks at `slba` (no data transfer).
    WriteZeroes {
        /// Namespace.
        nsid: u32,
        /// Starting LBA.
        slba: u64,
        /// Number of blocks (1-based).
        nlb: u32,
        /// Host allows deallocating instead (DEAC) and the namespace can.
        deallocate: bool,
        /// Force Unit Access.
        fua: bool,
        /// Block size of the namespace.
        block_size: u32,
    },
    /// Dataset Management: `ranges` 16-byte ranges follow as data; parse
    /// them with [`parse_dsm_ranges`] once received.
    Dsm {
        /// Namespace.
        nsid: u32,
        /// Number of ranges (1-based).
        ranges: u16,
        /// Attribute Deallocate (AD); without it the command is a hint.
        deallocate: bool,
        /// Bytes of range data.
        len: u32,
        /// Where the data is.
        data: DataLocation,
    },
}

impl IoCmd {
    /// Namespace the command targets.
    pub const fn nsid(&self) -> u32 {
        match *self {
            Self::Read { nsid, .. }
            | Self::Write { nsid, .. }
            | Self::Flush { nsid }
            | Self::WriteZeroes { nsid, .. }
            | Self::Dsm { nsid, .. } => nsid,
        }
    }
}

/// Transfer limits for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoLimits {
    /// MDTS in bytes; `None` = unlimited.
    pub mdts_bytes: Option<u64>,
    /// In-capsule data bytes per capsule.
    pub icd_bytes: u32,
}

impl From<&Limits> for IoLimits {
    fn from(l: &Limits) -> Self {
        Self { mdts_bytes: l.mdts_bytes(), icd_bytes: l.in_capsule_data_size }
    }
}

/// A range from Dataset Management data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsmRange {
    /// Context attributes.
    pub cattr: u32,
    /// Starting LBA.
    pub slba: u64,
    /// Length in blocks (may be 0: nothing to do).
    pub nlb: u32,
}

/// Validates an NVM I/O command against the namespaces and limits.
pub fn validate(sqe: &Sqe, namespaces: &NamespaceTable, lim: &IoLimits) -> Result<IoCmd, CmdError> {
    if sqe.flags & FUSE_MASK != 0 {
        return Err(CmdError::INVALID_FIELD);
    }
    match sqe.opcode {
        opcode::IO_READ | opcode::IO_WRITE => {
            let ns = lookup(namespaces, sqe.nsid)?;
            let (slba, nlb) = lba_range(sqe, ns)?;
            let len = u64::from(nlb) << ns.lba_shift;
            if lim.mdts_bytes.is_some_and(|m| len > m) {
                return Err(CmdError::INVALID_FIELD);
            }
            let len = u32::try_from(len).map_err(|_| CmdError::INVALID_FIELD)?;
            let write = sqe.opcode == opcode::IO_WRITE;
            let data = check_sgl(sqe, len, write, lim)?;
            let fua = sqe.cdw12 & (1 << 30) != 0;
            Ok(if write {
                IoCmd::Write { nsid: ns.nsid, slba, nlb, fua, block_size: ns.block_size, len, data }
            } else {
                IoCmd::Read { nsid: ns.nsid, slba, nlb, fua, block_size: ns.block_size, len }
            })
        }
        opcode::IO_FLUSH => {
            if sqe.nsid == NSID_ALL {
                return Ok(IoCmd::Flush { nsid: NSID_ALL });
            }
            let ns = lookup(namespaces, sqe.nsid)?;
            Ok(IoCmd::Flush { nsid: ns.nsid })
        }
        opcode::IO_WRITE_ZEROES => {
            let ns = lookup(namespaces, sqe.nsid)?;
            if !ns.write_zeroes {
                return Err(CmdError::INVALID_OPCODE);
            }
            let (slba, nlb) = lba_range(sqe, ns)?;
            Ok(IoCmd::WriteZeroes {
                nsid: ns.nsid,
                slba,
                nlb,
                deallocate: sqe.cdw12 & (1 << 25) != 0 && ns.deallocate,
                fua: sqe.cdw12 & (1 << 30) != 0,
                block_size: ns.block_size,
            })
        }
        opcode::IO_DSM => {
            let ns = lookup(namespaces, sqe.nsid)?;
            if !ns.deallocate {
                return Err(CmdError::INVALID_OPCODE);
            }
            let ranges = (sqe.cdw10 & 0xFF) as u16 + 1;
            let need = u32::from(ranges) * DSM_RANGE_LEN as u32;
            // The host sends exactly the ranges; a shorter buffer cannot
            // hold them and a longer one is only tolerated up to a page.
            let len = sqe.dptr.length;
            if len < need || len > u32::from(DSM_MAX_RANGES) * DSM_RANGE_LEN as u32 {
                return Err(CmdError::SGL_LENGTH);
            }
            let data = check_sgl(sqe, len, true, lim)?;
            Ok(IoCmd::Dsm { nsid: ns.nsid, ranges, deallocate: sqe.cdw11 & (1 << 2) != 0, len, data })
        }
        _ => Err(CmdError::INVALID_OPCODE),
    }
}

fn lookup(namespaces: &NamespaceTable, nsid: u32) -> Result<&Namespace, CmdError> {
    let ns = namespaces.get(&nsid).ok_or(CmdError::INVALID_NAMESPACE)?;
    if !ns.ready {
        return Err(CmdError::retry(status::NAMESPACE_NOT_READY));
    }
    Ok(ns)
}

/// SLBA (cdw10-11) and 1-based NLB (cdw12 15:0), checked against capacity
/// without overflowing.
fn lba_range(sqe: &Sqe, ns: &Namespace) -> Result<(u64, u32), CmdError> {
    let slba = (u64::from(sqe.cdw11) << 32) | u64::from(sqe.cdw10);
    let nlb = (sqe.cdw12 & 0xFFFF) + 1;
    match slba.checked_add(u64::from(nlb)) {
        Some(end) if end <= ns.blocks => Ok((slba, nlb)),
        _ => Err(CmdError::dnr(status::LBA_OUT_OF_RANGE)),
    }
}

/// PSDT must select SGLs; the descriptor must be a transport data block,
/// or (for data to the controller) in-capsule data at offset 0 that fits.
fn check_sgl(sqe: &Sqe, len: u32, to_controller: bool, lim: &IoLimits) -> Result<DataLocation, CmdError> {
    if sqe.psdt() != PSDT_SGL_MPTR_CONTIG {
        return Err(CmdError::INVALID_FIELD);
    }
    let d = &sqe.dptr;
    let loc = match (d.desc_type(), d.subtype()) {
        (sgl::TYPE_TRANSPORT_DATA_BLOCK, sgl::SUBTYPE_TRANSPORT) => DataLocation::Transport,
        (sgl::TYPE_DATA_BLOCK, sgl::SUBTYPE_OFFSET) if to_controller => {
            if d.address != 0 {
                return Err(CmdError::dnr(status::SGL_OFFSET_INVALID));
            }
            if d.length > lim.icd_bytes {
                return Err(CmdError::SGL_LENGTH);
            }
            DataLocation::InCapsule
        }
        // In-capsule data only flows host to controller.
        (sgl::TYPE_DATA_BLOCK, sgl::SUBTYPE_OFFSET) => {
            return Err(CmdError::dnr(status::SGL_DESCRIPTOR_TYPE_INVALID));
        }
        (sgl::TYPE_TRANSPORT_DATA_BLOCK | sgl::TYPE_DATA_BLOCK, _) => {
            return Err(CmdError::dnr(status::SGL_SUBTYPE_INVALID));
        }
        _ => return Err(CmdError::dnr(status::SGL_DESCRIPTOR_TYPE_INVALID)),
    };
    if d.length != len {
        return Err(CmdError::SGL_LENGTH);
    }
    Ok(loc)
}

/// Iterates the 16-byte ranges of DSM data (trailing partial bytes ignored).
pub fn dsm_ranges(data: &[u8]) -> impl Iterator<Item = DsmRange> + '_ {
    data.chunks_exact(DSM_RANGE_LEN).map(|r| DsmRange {
        cattr: crate::bytes::u32_at(r, 0),
        nlb: crate::bytes::u32_at(r, 4),
        slba: crate::bytes::u64_at(r, 8),
    })
}

/// Parses and checks `count` DSM ranges against a namespace of `blocks`
/// blocks: short data → Data SGL Length Invalid, a range past the end →
/// LBA Out of Range.
pub fn parse_dsm_ranges(data: &[u8], count: u16, blocks: u64) -> Result<Vec<DsmRange>, CmdError> {
    let need = usize::from(count) * DSM_RANGE_LEN;
    let data = data.get(..need).ok_or(CmdError::SGL_LENGTH)?;
    let ranges: Vec<DsmRange> = dsm_ranges(data).collect();
    for r in &ranges {
        if r.slba.checked_add(u64::from(r.nlb)).is_none_or(|end| end > blocks) {
            return Err(CmdError::dnr(status::LBA_OUT_OF_RANGE));
        }
    }
    Ok(ranges)
}

/// What a fabrics command on an I/O queue asks of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoFabricsOutcome {
    /// Send this completion.
    Complete(Cqe),
    /// Send this completion, then close the queue (Disconnect).
    Disconnect(Cqe),
    /// Send this data and completion (Authentication Send/Receive).
    Respond(Response),
    /// Send this data and completion, then close the queue: authentication failed.
    RespondThenClose(Response),
    /// Authentication Send waiting for a DH computation: take it with
    /// [`TargetIoQueue::take_dh_job`]; [`TargetIoQueue::dh_done`] (or
    /// [`TargetIoQueue::dh_unavailable`]) gives the command's completion.
    Computing,
}

/// The target side of an I/O queue after a successful Connect. Dropping it (or
/// [`TargetIoQueue::disconnect`]) frees the QID on the controller.
#[derive(Debug)]
pub struct TargetIoQueue {
    pub(crate) target: Arc<Target>,
    pub(crate) ctrl: Arc<CtrlShared>,
    pub(crate) subsys: Arc<SubsysShared>,
    pub(crate) qid: u16,
    pub(crate) cache: Arc<NamespaceTable>,
    pub(crate) cache_gen: u64,
    pub(crate) limits: IoLimits,
    pub(crate) released: bool,
    /// DH-HMAC-CHAP state when the host must authenticate.
    pub(crate) auth: Option<Box<QueueAuth>>,
}

impl TargetIoQueue {
    /// Queue ID.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Controller ID.
    pub fn cntlid(&self) -> u16 {
        self.ctrl.cntlid
    }

    /// Whether the controller is still enabled and its admin queue
    /// connected; when false the transport should close this queue.
    pub fn controller_live(&self) -> bool {
        self.ctrl.alive.load(Ordering::Acquire) && self.ctrl.ready.load(Ordering::Acquire)
    }

    fn refresh(&mut self) {
        let g = self.subsys.generation.load(Ordering::Acquire);
        if g != self.cache_gen {
            self.cache = self.subsys.snapshot();
            self.cache_gen = g;
        }
    }

    /// Namespace details (block size, capacity) for mapping an [`IoCmd`].
    pub fn namespace(&mut self, nsid: u32) -> Option<&Namespace> {
        self.refresh();
        self.cache.get(&nsid)
    }

    /// Validates an NVM command (opcode other than Fabrics). A controller
    /// that was reset or shut down fails commands with Command Sequence
    /// Error so the host stops using the queue.
    pub fn validate(&mut self, sqe: &Sqe) -> Result<IoCmd, CmdError> {
        if let Some(a) = &mut self.auth {
            a.gate(sqe)?;
        }
        if !self.ctrl.ready.load(Ordering::Acquire) {
            return Err(CmdError::SEQUENCE);
        }
        self.refresh();
        validate(sqe, &self.cache, &self.limits)
    }

    /// Completion for `sqe` on this queue: success, or the error.
    pub fn completion(&self, cid: u16, result: Result<(), CmdError>) -> Cqe {
        match result {
            Ok(()) => success(cid, self.qid, 0),
            Err(e) => failure(cid, self.qid, e),
        }
    }

    /// Whether this queue must still (or again) pass DH-HMAC-CHAP before
    /// I/O runs.
    pub fn auth_pending(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| !a.is_usable())
    }

    /// Whether an authentication transaction stalled past its deadline: the
    /// transport closes the queue.
    pub fn auth_expired(&self, now: Instant) -> bool {
        self.auth.as_ref().is_some_and(|a| a.expired(now))
    }

    /// Handles a Fabrics command that carries no host data; see
    /// [`Self::handle_fabrics_data`].
    pub fn handle_fabrics(&mut self, sqe: &Sqe) -> IoFabricsOutcome {
        self.handle_fabrics_data(sqe, &[], Instant::now())
    }

    /// Handles a Fabrics command (opcode 7Fh) on this I/O queue with its
    /// host data: Disconnect is honoured, Authentication Send/Receive run
    /// DH-HMAC-CHAP when the host must authenticate, anything else (a second
    /// Connect, Property Get/Set) is an Invalid Opcode / Command Sequence Error.
    pub fn handle_fabrics_data(&mut self, sqe: &Sqe, data: &[u8], now: Instant) -> IoFabricsOutcome {
        if let Some(a) = &mut self.auth {
            if let Err(e) = a.gate(sqe) {
                return IoFabricsOutcome::Complete(failure(sqe.cid, self.qid, e));
            }
            if matches!(sqe.fctype(), fctype::AUTH_SEND | fctype::AUTH_RECV) {
                return auth_outcome(a.handle(sqe, data, now));
            }
        }
        match sqe.fctype() {
            fctype::DISCONNECT if sqe.cdw10 & 0xFFFF == 0 => {
                IoFabricsOutcome::Disconnect(success(sqe.cid, self.qid, 0))
            }
            fctype::DISCONNECT => IoFabricsOutcome::Complete(failure(
                sqe.cid,
                self.qid,
                CmdError::dnr(status::CONNECT_INCOMPATIBLE_FORMAT),
            )),
            fctype::CONNECT => IoFabricsOutcome::Complete(failure(sqe.cid, self.qid, CmdError::SEQUENCE)),
            _ => IoFabricsOutcome::Complete(failure(sqe.cid, self.qid, CmdError::INVALID_OPCODE)),
        }
    }

    /// The DH computation an Authentication Send waits for ([`IoFabricsOutcome::Computing`]).
    pub fn take_dh_job(&mut self) -> Option<DhJob> {
        self.auth.as_mut().and_then(|a| a.take_dh_job())
    }

    /// The result of [`Self::take_dh_job`]'s job: the waiting Send's completion, or `None` when
    /// nothing waits for it any more (it is dropped).
    pub fn dh_done(&mut self, done: DhDone, now: Instant) -> Option<IoFabricsOutcome> {
        self.auth.as_mut()?.dh_done(done, now).map(auth_outcome)
    }

    /// The job could not run (no worker free): the authentication fails; the waiting Send's
    /// completion.
    pub fn dh_unavailable(&mut self) -> Option<IoFabricsOutcome> {
        self.auth.as_mut()?.dh_unavailable().map(auth_outcome)
    }

    /// Releases the QID now (also done on drop).
    pub fn disconnect(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.target.release_io_queue(&self.ctrl, self.qid);
        }
    }
}

fn auth_outcome(reply: AuthReply) -> IoFabricsOutcome {
    match reply {
        AuthReply::Complete(r) => IoFabricsOutcome::Respond(r),
        AuthReply::CompleteThenClose(r) => IoFabricsOutcome::RespondThenClose(r),
        AuthReply::Computing => IoFabricsOutcome::Computing,
    }
}

impl Drop for TargetIoQueue {
    fn drop(&mut self) {
        self.release();
    }
}
