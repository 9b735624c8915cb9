//! TLS on a socket of the group, after a handshake done elsewhere (the handshake and the record
//! cipher belong to the protocol's TLS crate; this module only moves protected bytes):
//!
//! - kernel TLS: [`ktls_install`] hands the record keys of both directions to the kernel (`TCP_ULP
//!   "tls"`), after which the socket carries plaintext for the group like any other, so batching, the
//!   receive pipe, io_uring and zero copy keep working;
//! - user-space records where kTLS is missing: [`crate::SockGroup::add_tls`] joins a socket with a
//!   [`RecordLayer`] that opens received records and seals queued writes (no zero copy then).

use std::fmt;

/// TLS 1.3 record protection of one connection, in user space (the sock layer owns the bytes, the
/// implementation owns the cipher, its keys and record sequence numbers).
pub trait RecordLayer: Send {
    /// Opens every whole record at the front of `input`, appending the plaintext of application-data
    /// records to `out`. Returns how many bytes of `input` it consumed (whole records only; a partial
    /// record at the end stays for the next call).
    fn open(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordError>;

    /// Seals the concatenation of `plain` into application-data records appended to `out`.
    fn seal(&mut self, plain: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RecordError>;
}

/// Why a record stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The peer sent close_notify: an orderly end of stream.
    Closed,
    /// Anything else (bad record, failed authentication tag, fatal alert, unsupported message).
    Fatal(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Closed => f.write_str("TLS close_notify"),
            RecordError::Fatal(why) => write!(f, "TLS record error: {why}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// The TLS 1.3 AEAD of a connection, as the kernel names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsCipher {
    /// TLS_AES_128_GCM_SHA256: 16-byte key.
    Aes128Gcm,
    /// TLS_AES_256_GCM_SHA384: 32-byte key.
    Aes256Gcm,
}

/// One direction's record keys: the AEAD key, the 12-byte static IV and the next record's sequence
/// number.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    /// The write key (16 or 32 bytes, as the cipher says).
    pub key: Vec<u8>,
    /// The TLS 1.3 static IV (12 bytes).
    pub iv: [u8; 12],
    /// Sequence number of the next record.
    pub seq: u64,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionKeys").field("key", &"<secret>").field("seq", &self.seq).finish()
    }
}

/// The record keys of both directions of an established TLS 1.3 connection, for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtlsKeys {
    /// The AEAD.
    pub cipher: KtlsCipher,
    /// What this end sends with.
    pub tx: DirectionKeys,
    /// What this end receives with.
    pub rx: DirectionKeys,
}
