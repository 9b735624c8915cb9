//! Sans-IO iSCSI protocol core (RFC 7143), target side.
//!
//! - [`pdu`]: the 48-byte BHS of every opcode, typed, with the AHS ([`pdu::ahs`]).
//! - [`digest`]: CRC32C header and data digests.
//! - [`decoder`]: incremental receive framing that decodes headers in place and never stores payload.
//! - [`tx`]: one encoded PDU ready to send.
//! - [`text`]: `key=value` lists, their limits, and multi-PDU text.
//!
//! Nothing here performs I/O or spawns threads. Nothing panics on peer input.
#![forbid(unsafe_code)]

pub mod decoder;
pub mod digest;
pub mod error;
pub mod pdu;
pub mod text;
pub mod tx;

pub use decoder::{Decoder, DecoderConfig, Frame, Header, Need};
pub use error::Error;
pub use pdu::{Opcode, Pdu, RejectReason, Residual, Stage};
pub use tx::{Digests, TxData, TxPdu};
