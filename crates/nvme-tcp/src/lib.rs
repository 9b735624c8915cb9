//! Sans-IO NVMe/TCP PDU codec (NVMe/TCP transport binding 1.0).
//!
//! - [`pdu`]: common header, typed PDU-specific headers, layout, validation, encoding.
//! - [`digest`]: CRC32C header and data digests.
//! - [`cid`]: tables keyed by command id (direct slots, a hash map for collisions).
//! - [`decoder`]: incremental receive state machine that never copies payload.
//! - [`error`]: typed errors carrying the TermReq FES/FEI for fatal ones.
//! - [`target`]: the target side of a connection: commands in, PDUs out.
//! - [`tx`]: one encoded PDU ready to send, shared by both connection cores.
//!
//! The NVMe entries the capsules carry (SQE, CQE, SGL descriptors, status codes) are spec types of
//! [`ff_nvme`], shared with the controller core.
//!
//! Nothing here performs I/O, allocates, or panics on peer input.

pub mod cid;
pub mod decoder;
pub mod digest;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod pdu;
pub mod target;
pub mod tx;

pub use decoder::{Decoder, DecoderConfig, Need, Negotiated, Role};
pub use error::{Error, FatalError, Fes};
pub use pdu::{
    C2HData, CapsuleCmd, CapsuleResp, CommonHeader, Digests, Flags, Framing, H2CData, HeaderCheck, IcReq, IcResp,
    Layout, Pdu, PduType, R2T, TermReq,
};
