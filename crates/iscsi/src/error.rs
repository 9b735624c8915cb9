//! The codec's error type.
//!
//! Splits errors by what the connection must do: *fatal* ones lose the PDU framing (a header digest
//! mismatch: the lengths cannot be trusted, and at ErrorRecoveryLevel 0 the connection is dropped);
//! *PDU* ones leave the stream in sync (the header was framed but is invalid, or the data digest failed)
//! and are answered with a Reject carrying [`Error::reject_reason`].

use crate::pdu::RejectReason;

/// Every error the codec returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The header digest did not match: the framing is lost.
    #[error("header digest mismatch (received {received:#010x}, computed {computed:#010x})")]
    HeaderDigest {
        /// Digest on the wire.
        received: u32,
        /// Digest over the bytes received.
        computed: u32,
    },
    /// The data digest did not match; the stream is still in sync.
    #[error("data digest mismatch (received {received:#010x}, computed {computed:#010x})")]
    DataDigest {
        /// Digest on the wire.
        received: u32,
        /// Digest over the bytes received.
        computed: u32,
    },
    /// Fewer bytes than the structure needs.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// An opcode the RFC does not define.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// An opcode defined for the other direction.
    #[error("opcode {0:#04x} is not sent in this direction")]
    WrongDirection(u8),
    /// A field holds a value the RFC forbids (byte offset within the BHS, or AHS/data where noted).
    #[error("invalid field at byte {offset}: {what}")]
    InvalidField {
        /// Offset of the field in the BHS.
        offset: u8,
        /// What is wrong.
        what: &'static str,
    },
    /// A data segment longer than what we declared we receive.
    #[error("data segment of {len} bytes exceeds the {max}-byte limit")]
    DataTooLong {
        /// DataSegmentLength received.
        len: u32,
        /// Our limit.
        max: u32,
    },
    /// An encoding request that cannot be met (a caller bug, not peer input).
    #[error("cannot encode: {0}")]
    Encode(&'static str),
    /// The caller used the API out of order.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// No more input is accepted.
    #[error("closed")]
    Closed,
}

impl Error {
    /// Whether the byte stream can no longer be framed (the connection must close).
    pub const fn is_fatal(&self) -> bool {
        matches!(self, Error::HeaderDigest { .. } | Error::Closed)
    }

    /// The Reject reason that reports a PDU-level error, if the error is one.
    pub const fn reject_reason(&self) -> Option<RejectReason> {
        Some(match self {
            Error::DataDigest { .. } => RejectReason::DataDigest,
            Error::UnknownOpcode(_) => RejectReason::CommandNotSupported,
            Error::WrongDirection(_) | Error::DataTooLong { .. } => RejectReason::ProtocolError,
            Error::InvalidField { .. } | Error::Truncated(_) => RejectReason::InvalidPduField,
            _ => return None,
        })
    }
}
