//! Sans-IO iSCSI protocol core (RFC 7143), target side.
//!
//! - [`pdu`]: the 48-byte BHS of every opcode, typed, with the AHS ([`pdu::ahs`]).
//! - [`digest`]: CRC32C header and data digests.
//! - [`decoder`]: incremental receive framing that decodes headers in place and never stores payload.
//! - [`tx`]: one encoded PDU ready to send.
//! - [`text`]: `key=value` lists, their limits, and multi-PDU text.
//! - [`keys`]: the operational keys and their negotiation rules.
//! - [`chap`]: CHAP arithmetic and encodings.
//! - [`login`]: the target's login state machine.
//! - [`config`]: what the runtime tells us about its targets.
//! - [`conn`]: the target connection core: login, then commands, data, task management, logout.
//!
//! Nothing here performs I/O or spawns threads; the only outside call is the OS random source for CHAP
//! challenges. Nothing panics on peer input.
#![forbid(unsafe_code)]

pub mod chap;
pub mod config;
pub mod conn;
pub mod decoder;
pub mod digest;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod login;
pub mod pdu;
pub mod text;
pub mod tx;

pub use config::{Auth, ChapAuth, ChapSecret, DigestPolicy, Limits, PortalConfig, TargetDesc};
pub use conn::{
    BufAlloc, CloseReason, Command, Completion, ConnConfig, Phase, RecvTarget, TargetConn, TargetOutput, TaskMgmt,
    TmfFunction, TmfResponseCode,
};
pub use decoder::{Decoder, DecoderConfig, Frame, Header, Need};
pub use error::Error;
pub use keys::{Params, SessionType};
pub use login::{LoginStatus, SessionRequest};
pub use pdu::{Opcode, Pdu, RejectReason, Residual, Stage};
pub use tx::{Digests, TxData, TxPdu};
