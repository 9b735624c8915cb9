//! Completions: the local status codes `ff-nvme` does not define, the
//! [`CmdError`] every handler returns on failure (status + DNR + dw0), and
//! [`Response`], a CQE plus the data an admin command returns to the host.
//!
//! SQHD is left 0 in every CQE built here: the transport owns the
//! submission queue head and patches it in (or leaves it when the host
//! disabled SQ flow control).

use ff_nvme::nvme::{Cqe, Status, status};

/// Status codes missing from `ff_nvme::nvme::status`.
pub mod sc {
    use ff_nvme::nvme::Status;
    use ff_nvme::nvme::status::SCT_COMMAND_SPECIFIC;

    /// Abort: Abort Command Limit Exceeded.
    pub const ABORT_LIMIT_EXCEEDED: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x03);
    /// Asynchronous Event Request Limit Exceeded.
    pub const AER_LIMIT_EXCEEDED: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x05);
    /// Get Log Page: Invalid Log Page.
    pub const INVALID_LOG_PAGE: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x09);
    /// Set Features: Feature Identifier Not Saveable.
    pub const FEATURE_NOT_SAVEABLE: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x0D);
}

/// A failed command: status, Do Not Retry, and command-specific dword 0
/// (Connect puts IATTR/IPO there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdError {
    /// Status code type and code.
    pub status: Status,
    /// Do Not Retry: the same command will fail again.
    pub dnr: bool,
    /// Completion dword 0.
    pub dw0: u32,
}

impl CmdError {
    /// A permanent failure (DNR set).
    pub const fn dnr(status: Status) -> Self {
        Self { status, dnr: true, dw0: 0 }
    }

    /// A failure the host may retry (DNR clear).
    pub const fn retry(status: Status) -> Self {
        Self { status, dnr: false, dw0: 0 }
    }

    /// Invalid Field in Command, DNR.
    pub const INVALID_FIELD: Self = Self::dnr(status::INVALID_FIELD);
    /// Invalid Command Opcode, DNR.
    pub const INVALID_OPCODE: Self = Self::dnr(status::INVALID_OPCODE);
    /// Invalid Namespace or Format, DNR.
    pub const INVALID_NAMESPACE: Self = Self::dnr(status::INVALID_NAMESPACE);
    /// Command Sequence Error, DNR.
    pub const SEQUENCE: Self = Self::dnr(status::COMMAND_SEQUENCE_ERROR);
    /// Data SGL Length Invalid, DNR.
    pub const SGL_LENGTH: Self = Self::dnr(status::SGL_DATA_LENGTH_INVALID);
}

/// Builds a CQE. `status` excludes DNR; phase is left clear (not used by
/// fabrics).
pub fn cqe(cid: u16, sqid: u16, sqhd: u16, st: Status, dnr: bool, dw0: u32) -> Cqe {
    Cqe { dw0, dw1: 0, sqhd, sqid, cid, status: Cqe::status_field(st, dnr, false) }
}

/// Successful CQE with dword 0.
pub fn success(cid: u16, sqid: u16, dw0: u32) -> Cqe {
    cqe(cid, sqid, 0, status::SUCCESS, false, dw0)
}

/// CQE for a failed command.
pub fn failure(cid: u16, sqid: u16, err: CmdError) -> Cqe {
    cqe(cid, sqid, 0, err.status, err.dnr, err.dw0)
}

/// A completion and, for commands that return data (Identify, Get Log
/// Page, some Get Features), the bytes to send to the host first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The completion queue entry (SQHD still 0).
    pub cqe: Cqe,
    /// Data to transfer to the host before the completion.
    pub data: Option<Vec<u8>>,
}

impl Response {
    /// Success without data.
    pub fn ok(cid: u16, sqid: u16, dw0: u32) -> Self {
        Self { cqe: success(cid, sqid, dw0), data: None }
    }

    /// Success with data for the host.
    pub fn with_data(cid: u16, sqid: u16, data: Vec<u8>) -> Self {
        Self { cqe: success(cid, sqid, 0), data: Some(data) }
    }

    /// Failure.
    pub fn err(cid: u16, sqid: u16, e: CmdError) -> Self {
        Self { cqe: failure(cid, sqid, e), data: None }
    }

    /// From a handler result.
    pub fn from_result(cid: u16, sqid: u16, r: Result<Self, CmdError>) -> Self {
        r.unwrap_or_else(|e| Self::err(cid, sqid, e))
    }
}
