//! Error types of the codec.
//!
//! Owns the split between *fatal* transport errors (the connection must be
//! torn down after sending a C2HTermReq/H2CTermReq carrying [`Fes`] and the
//! Fatal Error Information) and recoverable ones (a data digest mismatch,
//! which only fails the affected command, or caller misuse).

use crate::pdu::TermReq;

/// Fatal Error Status: why a connection is being terminated (TermReq FES field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Fes {
    /// A PDU header field is invalid; FEI is the byte offset of the field.
    InvalidHeaderField = 0x01,
    /// A PDU arrived that is not allowed in the current state of the connection.
    PduSequenceError = 0x02,
    /// The header digest did not match.
    HeaderDigestError = 0x03,
    /// A data PDU referred to data outside the command's transfer.
    DataTransferOutOfRange = 0x04,
    /// More data (or more outstanding R2Ts) than negotiated.
    DataTransferLimitExceeded = 0x05,
    /// A parameter value is not supported; FEI is the byte offset of the field.
    UnsupportedParameter = 0x06,
}

impl Fes {
    /// Wire value of the status.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Parses a wire value; reserved values give `None`.
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            0x01 => Self::InvalidHeaderField,
            0x02 => Self::PduSequenceError,
            0x03 => Self::HeaderDigestError,
            0x04 => Self::DataTransferOutOfRange,
            0x05 => Self::DataTransferLimitExceeded,
            0x06 => Self::UnsupportedParameter,
            _ => return None,
        })
    }
}

/// A fatal transport error: what to put in the TermReq we send before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FatalError {
    /// Fatal Error Status.
    pub fes: Fes,
    /// Fatal Error Information: for header field errors the byte offset of the
    /// offending field within the PDU header; 0 where the spec reserves it.
    pub fei: u32,
    /// Short human-readable reason, for logs only.
    pub reason: &'static str,
}

impl FatalError {
    /// Builds a fatal error.
    pub const fn new(fes: Fes, fei: u32, reason: &'static str) -> Self {
        Self { fes, fei, reason }
    }

    /// The TermReq header (H2C or C2H is chosen when encoding) that reports
    /// this error to the peer.
    pub const fn term_req(&self) -> TermReq {
        TermReq { fes: self.fes.code(), fei: self.fei }
    }
}

impl core::fmt::Display for FatalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (FES {:#04x}, FEI {})", self.reason, self.fes.code(), self.fei)
    }
}

/// Every error the codec returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Protocol violation by the peer: terminate the connection with a TermReq.
    #[error("fatal NVMe/TCP transport error: {0}")]
    Fatal(FatalError),
    /// The data digest of a PDU did not match. Not fatal: the stream is still
    /// in sync and only the command `cid` (if known) fails, with
    /// [`ff_nvme::nvme::status::TRANSIENT_TRANSPORT_ERROR`].
    #[error("data digest mismatch (received {received:#010x}, computed {computed:#010x})")]
    DataDigest {
        /// Digest carried by the PDU.
        received: u32,
        /// Digest computed over the received data.
        computed: u32,
        /// Command the data belongs to, when the PDU names one.
        cid: Option<u16>,
    },
    /// The peer terminated the connection; no more PDUs are accepted.
    #[error("connection was terminated by a TermReq")]
    Terminated,
    /// A buffer handed to the codec is shorter than needed.
    #[error("buffer too short: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A value cannot be encoded (e.g. data too long for the PDU).
    #[error("cannot encode: {0}")]
    Encode(&'static str),
    /// The caller used the decoder out of order (a local bug, not the peer's).
    #[error("decoder misuse: {0}")]
    Usage(&'static str),
}

impl From<ff_nvme::Truncated> for Error {
    fn from(t: ff_nvme::Truncated) -> Self {
        Self::Truncated { need: t.need, have: t.have }
    }
}

impl Error {
    /// Shorthand for a fatal error.
    pub(crate) const fn fatal(fes: Fes, fei: u32, reason: &'static str) -> Self {
        Self::Fatal(FatalError::new(fes, fei, reason))
    }

    /// Whether the connection must be terminated.
    pub const fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }

    /// The fatal error details, if this is a fatal error.
    pub const fn fatal_error(&self) -> Option<&FatalError> {
        match self {
            Self::Fatal(f) => Some(f),
            _ => None,
        }
    }

    /// Fatal Error Status, if this is a fatal error.
    pub const fn fes(&self) -> Option<Fes> {
        match self {
            Self::Fatal(f) => Some(f.fes),
            _ => None,
        }
    }

    /// Fatal Error Information, if this is a fatal error.
    pub const fn fei(&self) -> Option<u32> {
        match self {
            Self::Fatal(f) => Some(f.fei),
            _ => None,
        }
    }
}
