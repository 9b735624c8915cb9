//! The protocol's numbering: hash function, DH group, message and failure-reason identifiers.
//!
//! Owns every one-byte code that appears on the wire, so the message codec and the state
//! machines never compare against bare numbers.

use std::fmt;

/// Authentication type (`AUTH_Type`) of messages common to all protocols (Negotiate, Failure).
pub const AUTH_TYPE_COMMON: u8 = 0x00;
/// Authentication type (`AUTH_Type`) of DH-HMAC-CHAP messages.
pub const AUTH_TYPE_DHCHAP: u8 = 0x01;

/// `AUTH_Id` of AUTH_Negotiate (common type).
pub const ID_NEGOTIATE: u8 = 0x00;
/// `AUTH_Id` of DH-HMAC-CHAP_Challenge.
pub const ID_CHALLENGE: u8 = 0x01;
/// `AUTH_Id` of DH-HMAC-CHAP_Reply.
pub const ID_REPLY: u8 = 0x02;
/// `AUTH_Id` of DH-HMAC-CHAP_Success1.
pub const ID_SUCCESS1: u8 = 0x03;
/// `AUTH_Id` of DH-HMAC-CHAP_Success2.
pub const ID_SUCCESS2: u8 = 0x04;
/// `AUTH_Id` of AUTH_Failure2 (host to controller, common type).
pub const ID_FAILURE2: u8 = 0xF0;
/// `AUTH_Id` of AUTH_Failure1 (controller to host, common type).
pub const ID_FAILURE1: u8 = 0xF1;

/// Protocol identifier of DH-HMAC-CHAP inside an AUTH_Negotiate protocol descriptor.
pub const PROTOCOL_DHCHAP: u8 = 0x01;

/// Secure channel concatenation (`SC_C`) value meaning "none"; the only one this crate supports.
pub const SC_C_NONE: u8 = 0x00;

/// The single defined AUTH_Failure reason code: "authentication failure".
pub const REASON_CODE_FAILURE: u8 = 0x01;

/// Hash functions of DH-HMAC-CHAP (the `HashID` values; 00h in a secret means "untransformed").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum HashId {
    /// SHA-256, 32-byte values.
    Sha256 = 0x01,
    /// SHA-384, 48-byte values.
    Sha384 = 0x02,
    /// SHA-512, 64-byte values.
    Sha512 = 0x03,
}

impl HashId {
    /// Every hash, weakest first.
    pub const ALL: [HashId; 3] = [HashId::Sha256, HashId::Sha384, HashId::Sha512];

    /// The hash with this wire identifier, if known.
    pub fn from_id(id: u8) -> Option<HashId> {
        match id {
            0x01 => Some(HashId::Sha256),
            0x02 => Some(HashId::Sha384),
            0x03 => Some(HashId::Sha512),
            _ => None,
        }
    }

    /// The wire identifier.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Digest length in bytes: the `HL` of messages and the length of challenges and responses.
    pub fn hash_len(self) -> usize {
        match self {
            HashId::Sha256 => 32,
            HashId::Sha384 => 48,
            HashId::Sha512 => 64,
        }
    }

    /// The name used by nvme-cli, the kernel and SPDK ("sha256", ...).
    pub fn name(self) -> &'static str {
        match self {
            HashId::Sha256 => "sha256",
            HashId::Sha384 => "sha384",
            HashId::Sha512 => "sha512",
        }
    }

    /// Parses `name()` (also accepting "hmac(sha256)" as the kernel writes it).
    pub fn from_name(name: &str) -> Option<HashId> {
        let name = name.strip_prefix("hmac(").and_then(|n| n.strip_suffix(')')).unwrap_or(name);
        HashId::ALL.into_iter().find(|h| h.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for HashId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Diffie-Hellman groups of DH-HMAC-CHAP (the `DHgID` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DhGroup {
    /// No DH exchange: plain HMAC-CHAP.
    Null = 0x00,
    /// RFC 7919 ffdhe2048.
    Ffdhe2048 = 0x01,
    /// RFC 7919 ffdhe3072.
    Ffdhe3072 = 0x02,
    /// RFC 7919 ffdhe4096.
    Ffdhe4096 = 0x03,
    /// RFC 7919 ffdhe6144.
    Ffdhe6144 = 0x04,
    /// RFC 7919 ffdhe8192.
    Ffdhe8192 = 0x05,
}

impl DhGroup {
    /// Every group, null first then by size.
    pub const ALL: [DhGroup; 6] = [
        DhGroup::Null,
        DhGroup::Ffdhe2048,
        DhGroup::Ffdhe3072,
        DhGroup::Ffdhe4096,
        DhGroup::Ffdhe6144,
        DhGroup::Ffdhe8192,
    ];

    /// The group with this wire identifier, if known.
    pub fn from_id(id: u8) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.id() == id)
    }

    /// The wire identifier.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Length in bytes of the prime, hence of DH values and the shared secret (0 for null).
    pub fn value_len(self) -> usize {
        match self {
            DhGroup::Null => 0,
            DhGroup::Ffdhe2048 => 256,
            DhGroup::Ffdhe3072 => 384,
            DhGroup::Ffdhe4096 => 512,
            DhGroup::Ffdhe6144 => 768,
            DhGroup::Ffdhe8192 => 1024,
        }
    }

    /// The name used by nvme-cli, the kernel and SPDK ("null", "ffdhe2048", ...).
    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Null => "null",
            DhGroup::Ffdhe2048 => "ffdhe2048",
            DhGroup::Ffdhe3072 => "ffdhe3072",
            DhGroup::Ffdhe4096 => "ffdhe4096",
            DhGroup::Ffdhe6144 => "ffdhe6144",
            DhGroup::Ffdhe8192 => "ffdhe8192",
        }
    }

    /// Parses `name()`.
    pub fn from_name(name: &str) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// AUTH_Failure reason code explanations (the `RCE` byte under reason code 01h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FailureReason {
    /// The response did not verify, or a secret is missing.
    Failed = 0x01,
    /// No protocol in AUTH_Negotiate is usable.
    ProtocolUnusable = 0x02,
    /// The secure channel concatenation request cannot be honoured.
    SccMismatch = 0x03,
    /// No offered hash function is usable.
    HashUnusable = 0x04,
    /// No offered DH group is usable.
    DhGroupUnusable = 0x05,
    /// A message field is invalid.
    IncorrectPayload = 0x06,
    /// A message arrived that the protocol does not allow at this point.
    IncorrectProtocolMessage = 0x07,
}

impl FailureReason {
    /// The explanation with this code, if defined.
    pub fn from_code(code: u8) -> Option<FailureReason> {
        use FailureReason::*;
        [
            Failed,
            ProtocolUnusable,
            SccMismatch,
            HashUnusable,
            DhGroupUnusable,
            IncorrectPayload,
            IncorrectProtocolMessage,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureReason::Failed => "authentication failed",
            FailureReason::ProtocolUnusable => "authentication protocol not usable",
            FailureReason::SccMismatch => "secure channel concatenation mismatch",
            FailureReason::HashUnusable => "hash function not usable",
            FailureReason::DhGroupUnusable => "DH group not usable",
            FailureReason::IncorrectPayload => "incorrect payload",
            FailureReason::IncorrectProtocolMessage => "incorrect protocol message",
        })
    }
}
