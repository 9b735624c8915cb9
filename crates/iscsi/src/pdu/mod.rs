//! The Basic Header Segment (BHS) of every iSCSI PDU: opcodes, typed headers for both directions,
//! decoding with the RFC's validation, and encoding.
//!
//! Owns the 48-byte layout (RFC 7143 section 11). The additional header segments are in [`ahs`]; the
//! framing around the BHS (AHS, digests, data segment, padding) is the business of
//! [`crate::decoder`] and [`crate::tx`]. As the RFC asks, reserved fields are ignored on receipt and
//! zero on send; reserved *values* in defined fields are errors.

pub mod ahs;
mod initiator;
mod target;

pub use initiator::{DataOut, LoginRequest, LogoutRequest, NopOut, ScsiCommand, Snack, TextRequest, TmfRequest};
pub use target::{
    AsyncMessage, DataIn, LoginResponse, LogoutResponse, NopIn, R2t, Reject, ScsiResponse, SeqNums, TextResponse,
    TmfResponse,
};

use crate::error::Error;

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// The largest data segment the 24-bit DataSegmentLength can describe.
pub const MAX_DATA_SEGMENT: u32 = (1 << 24) - 1;
/// The reserved Initiator Task Tag / Target Transfer Tag value.
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Immediate-delivery bit of byte 0 (initiator PDUs).
pub(crate) const I_BIT: u8 = 0x40;
/// Final bit of byte 1.
pub(crate) const F_BIT: u8 = 0x80;

/// A BHS, borrowed or owned.
pub type Bhs = [u8; BHS_LEN];

/// The opcodes of RFC 7143 section 11.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// NOP-Out (initiator).
    NopOut = 0x00,
    /// SCSI Command (initiator).
    ScsiCommand = 0x01,
    /// Task Management Function Request (initiator).
    TmfRequest = 0x02,
    /// Login Request (initiator).
    LoginRequest = 0x03,
    /// Text Request (initiator).
    TextRequest = 0x04,
    /// SCSI Data-Out (initiator).
    DataOut = 0x05,
    /// Logout Request (initiator).
    LogoutRequest = 0x06,
    /// SNACK Request (initiator).
    Snack = 0x10,
    /// NOP-In (target).
    NopIn = 0x20,
    /// SCSI Response (target).
    ScsiResponse = 0x21,
    /// Task Management Function Response (target).
    TmfResponse = 0x22,
    /// Login Response (target).
    LoginResponse = 0x23,
    /// Text Response (target).
    TextResponse = 0x24,
    /// SCSI Data-In (target).
    DataIn = 0x25,
    /// Logout Response (target).
    LogoutResponse = 0x26,
    /// Ready To Transfer (target).
    R2t = 0x31,
    /// Asynchronous Message (target).
    AsyncMessage = 0x32,
    /// Reject (target).
    Reject = 0x3f,
}

impl Opcode {
    /// Parses the low six bits of byte 0.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v & 0x3f {
            0x00 => Self::NopOut,
            0x01 => Self::ScsiCommand,
            0x02 => Self::TmfRequest,
            0x03 => Self::LoginRequest,
            0x04 => Self::TextRequest,
            0x05 => Self::DataOut,
            0x06 => Self::LogoutRequest,
            0x10 => Self::Snack,
            0x20 => Self::NopIn,
            0x21 => Self::ScsiResponse,
            0x22 => Self::TmfResponse,
            0x23 => Self::LoginResponse,
            0x24 => Self::TextResponse,
            0x25 => Self::DataIn,
            0x26 => Self::LogoutResponse,
            0x31 => Self::R2t,
            0x32 => Self::AsyncMessage,
            0x3f => Self::Reject,
            _ => return None,
        })
    }

    /// Whether initiators send this opcode.
    pub const fn is_initiator(self) -> bool {
        (self as u8) < 0x20
    }
}

/// The login stages carried in CSG/NSG (RFC 7143 section 11.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    /// Security negotiation.
    Security = 0,
    /// Login operational negotiation.
    Operational = 1,
    /// Full feature phase.
    FullFeature = 3,
}

impl Stage {
    /// Parses a two-bit stage value; 2 is reserved.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v & 3 {
            0 => Some(Self::Security),
            1 => Some(Self::Operational),
            3 => Some(Self::FullFeature),
            _ => None,
        }
    }
}

/// Reject reasons (RFC 7143 section 11.17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectReason {
    /// Data (payload) digest error.
    DataDigest = 0x02,
    /// SNACK reject.
    SnackReject = 0x03,
    /// Protocol error (for example a SNACK at ErrorRecoveryLevel 0).
    ProtocolError = 0x04,
    /// Command not supported.
    CommandNotSupported = 0x05,
    /// Too many immediate commands.
    ImmediateCommandReject = 0x06,
    /// Task in progress.
    TaskInProgress = 0x07,
    /// Invalid data ack.
    InvalidDataAck = 0x08,
    /// Invalid PDU field.
    InvalidPduField = 0x09,
    /// Long operation reject: out of resources to generate a TTT.
    LongOpReject = 0x0a,
    /// Waiting for logout.
    WaitingForLogout = 0x0c,
}

impl RejectReason {
    /// Parses a wire value; unassigned values give `None`.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x02 => Self::DataDigest,
            0x03 => Self::SnackReject,
            0x04 => Self::ProtocolError,
            0x05 => Self::CommandNotSupported,
            0x06 => Self::ImmediateCommandReject,
            0x07 => Self::TaskInProgress,
            0x08 => Self::InvalidDataAck,
            0x09 => Self::InvalidPduField,
            0x0a => Self::LongOpReject,
            0x0c => Self::WaitingForLogout,
            _ => return None,
        })
    }
}

/// A residual count with the flag that gives it meaning (SCSI Response and Data-In).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Residual {
    /// All expected data moved.
    #[default]
    None,
    /// The command wanted to move this many bytes more than the expected length.
    Overflow(u32),
    /// This many expected bytes were not moved.
    Underflow(u32),
}

impl Residual {
    /// The residual of moving `actual` bytes against an expected length of `expected`.
    pub fn of(expected: u32, actual: u32) -> Self {
        match actual.cmp(&expected) {
            core::cmp::Ordering::Equal => Residual::None,
            core::cmp::Ordering::Less => Residual::Underflow(expected - actual),
            core::cmp::Ordering::Greater => Residual::Overflow(actual - expected),
        }
    }

    /// The count field (0 when there is none).
    pub const fn count(self) -> u32 {
        match self {
            Residual::None => 0,
            Residual::Overflow(n) | Residual::Underflow(n) => n,
        }
    }

    /// Flags (overflow, underflow) as bits in the given positions.
    pub(crate) const fn flags(self, over: u8, under: u8) -> u8 {
        match self {
            Residual::None => 0,
            Residual::Overflow(_) => over,
            Residual::Underflow(_) => under,
        }
    }

    /// Decodes a flag pair and count; both flags at once is invalid.
    pub(crate) fn decode(flags: u8, over: u8, under: u8, count: u32, offset: u8) -> Result<Self, Error> {
        match (flags & over != 0, flags & under != 0) {
            (false, false) => Ok(Residual::None),
            (true, false) => Ok(Residual::Overflow(count)),
            (false, true) => Ok(Residual::Underflow(count)),
            (true, true) => Err(Error::InvalidField { offset, what: "overflow and underflow both set" }),
        }
    }
}

/// The length fields of byte 4 to 7.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Lengths {
    /// TotalAHSLength, in 4-byte words.
    pub ahs_words: u8,
    /// DataSegmentLength, without padding.
    pub data_len: u32,
}

impl Lengths {
    /// Reads them from a BHS.
    pub fn of(b: &Bhs) -> Self {
        Lengths { ahs_words: b[4], data_len: u32::from_be_bytes([0, b[5], b[6], b[7]]) }
    }

    /// AHS length in bytes.
    pub const fn ahs_len(&self) -> usize {
        self.ahs_words as usize * 4
    }

    /// Data segment plus padding to a 4-byte boundary.
    pub const fn padded_data_len(&self) -> usize {
        pad4(self.data_len as usize)
    }
}

/// Rounds up to a multiple of 4 (data segments and AHS are padded so).
pub const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// A typed BHS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, reason = "each variant is the header named by its type")]
pub enum Pdu {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TmfRequest(TmfRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TmfResponse(TmfResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

impl Pdu {
    /// The opcode of this header.
    pub const fn opcode(&self) -> Opcode {
        match self {
            Pdu::NopOut(_) => Opcode::NopOut,
            Pdu::ScsiCommand(_) => Opcode::ScsiCommand,
            Pdu::TmfRequest(_) => Opcode::TmfRequest,
            Pdu::LoginRequest(_) => Opcode::LoginRequest,
            Pdu::TextRequest(_) => Opcode::TextRequest,
            Pdu::DataOut(_) => Opcode::DataOut,
            Pdu::LogoutRequest(_) => Opcode::LogoutRequest,
            Pdu::Snack(_) => Opcode::Snack,
            Pdu::NopIn(_) => Opcode::NopIn,
            Pdu::ScsiResponse(_) => Opcode::ScsiResponse,
            Pdu::TmfResponse(_) => Opcode::TmfResponse,
            Pdu::LoginResponse(_) => Opcode::LoginResponse,
            Pdu::TextResponse(_) => Opcode::TextResponse,
            Pdu::DataIn(_) => Opcode::DataIn,
            Pdu::LogoutResponse(_) => Opcode::LogoutResponse,
            Pdu::R2t(_) => Opcode::R2t,
            Pdu::AsyncMessage(_) => Opcode::AsyncMessage,
            Pdu::Reject(_) => Opcode::Reject,
        }
    }

    /// Decodes a BHS of either direction. The length fields are left to [`Lengths::of`]; those
    /// opcodes that carry no AHS or no data have that checked here.
    pub fn decode(b: &Bhs) -> Result<Pdu, Error> {
        let op = Opcode::from_u8(b[0]).ok_or(Error::UnknownOpcode(b[0] & 0x3f))?;
        let len = Lengths::of(b);
        if len.ahs_words != 0 && op != Opcode::ScsiCommand {
            return Err(Error::InvalidField { offset: 4, what: "AHS on a PDU that carries none" });
        }
        let no_data = matches!(
            op,
            Opcode::TmfRequest
                | Opcode::LogoutRequest
                | Opcode::Snack
                | Opcode::TmfResponse
                | Opcode::LogoutResponse
                | Opcode::R2t
        );
        if no_data && len.data_len != 0 {
            return Err(Error::InvalidField { offset: 5, what: "data segment on a PDU that carries none" });
        }
        Ok(match op {
            Opcode::NopOut => Pdu::NopOut(NopOut::decode(b)),
            Opcode::ScsiCommand => Pdu::ScsiCommand(ScsiCommand::decode(b)?),
            Opcode::TmfRequest => Pdu::TmfRequest(TmfRequest::decode(b)),
            Opcode::LoginRequest => Pdu::LoginRequest(LoginRequest::decode(b)?),
            Opcode::TextRequest => Pdu::TextRequest(TextRequest::decode(b)?),
            Opcode::DataOut => Pdu::DataOut(DataOut::decode(b)),
            Opcode::LogoutRequest => Pdu::LogoutRequest(LogoutRequest::decode(b)?),
            Opcode::Snack => Pdu::Snack(Snack::decode(b)),
            Opcode::NopIn => Pdu::NopIn(NopIn::decode(b)),
            Opcode::ScsiResponse => Pdu::ScsiResponse(ScsiResponse::decode(b)?),
            Opcode::TmfResponse => Pdu::TmfResponse(TmfResponse::decode(b)),
            Opcode::LoginResponse => Pdu::LoginResponse(LoginResponse::decode(b)?),
            Opcode::TextResponse => Pdu::TextResponse(TextResponse::decode(b)?),
            Opcode::DataIn => Pdu::DataIn(DataIn::decode(b)?),
            Opcode::LogoutResponse => Pdu::LogoutResponse(LogoutResponse::decode(b)),
            Opcode::R2t => Pdu::R2t(R2t::decode(b)),
            Opcode::AsyncMessage => Pdu::AsyncMessage(AsyncMessage::decode(b)),
            Opcode::Reject => Pdu::Reject(Reject::decode(b)),
        })
    }

    /// Encodes this header with the given AHS length (bytes, a multiple of 4) and data length.
    pub fn encode(&self, ahs_len: usize, data_len: u32) -> Result<Bhs, Error> {
        if !ahs_len.is_multiple_of(4) || ahs_len > 255 * 4 {
            return Err(Error::Encode("AHS length not a multiple of 4 or too long"));
        }
        if data_len > MAX_DATA_SEGMENT {
            return Err(Error::Encode("data segment longer than 2^24 - 1"));
        }
        let mut b = [0u8; BHS_LEN];
        match self {
            Pdu::NopOut(p) => p.encode(&mut b),
            Pdu::ScsiCommand(p) => p.encode(&mut b),
            Pdu::TmfRequest(p) => p.encode(&mut b),
            Pdu::LoginRequest(p) => p.encode(&mut b),
            Pdu::TextRequest(p) => p.encode(&mut b),
            Pdu::DataOut(p) => p.encode(&mut b),
            Pdu::LogoutRequest(p) => p.encode(&mut b),
            Pdu::Snack(p) => p.encode(&mut b),
            Pdu::NopIn(p) => p.encode(&mut b),
            Pdu::ScsiResponse(p) => p.encode(&mut b),
            Pdu::TmfResponse(p) => p.encode(&mut b),
            Pdu::LoginResponse(p) => p.encode(&mut b),
            Pdu::TextResponse(p) => p.encode(&mut b),
            Pdu::DataIn(p) => p.encode(&mut b),
            Pdu::LogoutResponse(p) => p.encode(&mut b),
            Pdu::R2t(p) => p.encode(&mut b),
            Pdu::AsyncMessage(p) => p.encode(&mut b),
            Pdu::Reject(p) => p.encode(&mut b),
        }
        b[0] |= self.opcode() as u8;
        b[4] = (ahs_len / 4) as u8;
        let [_, d0, d1, d2] = data_len.to_be_bytes();
        b[5] = d0;
        b[6] = d1;
        b[7] = d2;
        Ok(b)
    }

    /// The Initiator Task Tag (every BHS has one at byte 16).
    pub fn itt_of(b: &Bhs) -> u32 {
        be32(b, 16)
    }
}

pub(crate) fn be16(b: &Bhs, o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

pub(crate) fn be32(b: &Bhs, o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn be64(b: &Bhs, o: usize) -> u64 {
    (u64::from(be32(b, o)) << 32) | u64::from(be32(b, o + 4))
}

pub(crate) fn put16(b: &mut Bhs, o: usize, v: u16) {
    let [x, y] = v.to_be_bytes();
    b[o] = x;
    b[o + 1] = y;
}

pub(crate) fn put32(b: &mut Bhs, o: usize, v: u32) {
    let [w, x, y, z] = v.to_be_bytes();
    b[o] = w;
    b[o + 1] = x;
    b[o + 2] = y;
    b[o + 3] = z;
}

pub(crate) fn put64(b: &mut Bhs, o: usize, v: u64) {
    put32(b, o, (v >> 32) as u32);
    put32(b, o + 4, v as u32);
}

/// Immediate bit of byte 0.
pub(crate) fn imm(b: &Bhs) -> bool {
    b[0] & I_BIT != 0
}

/// Sets the immediate bit.
pub(crate) fn set_imm(b: &mut Bhs, on: bool) {
    if on {
        b[0] |= I_BIT;
    }
}
