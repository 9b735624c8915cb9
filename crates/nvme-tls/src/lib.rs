//! NVMe/TCP secure channel: TLS 1.3 with pre-shared keys, for both the target and the host.
//!
//! - [`psk`]: the PSK interchange format, PSK identities and the NVMe derivations (configured ->
//!   retained -> TLS PSK), matching SPDK and libnvme;
//! - [`engine`]: the sans-IO handshake run by OpenSSL over memory, which ends with the kTLS keys;
//! - [`record`]: user-space TLS 1.3 records with those keys, where kernel TLS is missing;
//! - [`accept`] / [`connect`]: the handshake driven over a non-blocking [`ff_sock::TcpSock`], reading
//!   record by record so that no byte after the handshake leaves the socket: the connection continues
//!   in kernel TLS or in the user-space record layer from the exact record boundary.
//!
//! Why OpenSSL: rustls has no TLS 1.3 external PSKs (rustls issue #174 is open, PR #2424 unmerged),
//! BoringSSL (`boring`) refuses TLS 1.3 external PSKs by design, while OpenSSL 3 supports them with
//! both cipher suites through its PSK find/use session callbacks and is what SPDK uses, so both ends
//! of an SPDK interop run the same handshake code.
//!
//! Key exchange: PSK with (EC)DHE (`psk_dhe_ke`), because SPDK's OpenSSL contexts and the Linux tlshd do
//! that and an OpenSSL peer refuses plain `psk_ke` unless told otherwise. The target sends no session
//! tickets; the host's record layer skips tickets from targets that do (SPDK's).

#![warn(missing_docs)]

pub mod engine;
mod ffi;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod kdf;
pub mod psk;
pub mod record;
mod sock;

use std::sync::Arc;

pub use engine::{Handshake, Progress};
pub use sock::{accept, connect};

/// Finds the configured PSK for a client's identity (target side); `None` refuses the identity.
pub type PskLookup = Arc<dyn Fn(&psk::PskIdentity) -> Option<psk::ConfiguredPsk> + Send + Sync>;

/// What a host needs to open a secure channel to one subsystem.
#[derive(Debug, Clone)]
pub struct ClientPsk {
    /// The host NQN (in the identity and the retained PSK derivation).
    pub hostnqn: String,
    /// The subsystem NQN (in the identity).
    pub subnqn: String,
    /// The configured PSK shared with the target.
    pub psk: psk::ConfiguredPsk,
}

/// An established secure channel: who the peer is and the record keys to continue with.
///
/// For kernel TLS (`TLS_1_3_VERSION`, `TLS_CIPHER_AES_GCM_128/256`) each direction's 12-byte `iv` splits
/// into the kernel's `salt` (bytes 0..4) and `iv` (bytes 4..12), and `rec_seq` is `seq` big-endian.
/// A host must expect post-handshake NewSessionTicket records (SPDK's target sends them) on its
/// receive side; [`Established::record_layer`] skips them.
#[derive(Debug, Clone)]
pub struct Established {
    /// The PSK identity the handshake used.
    pub identity: psk::PskIdentity,
    /// Both directions' record keys and next sequence numbers, for kernel TLS or [`Self::record_layer`].
    pub keys: ff_sock::tls::KtlsKeys,
}

impl Established {
    /// User-space records continuing from the same keys and sequence numbers.
    pub fn record_layer(&self) -> Box<dyn ff_sock::tls::RecordLayer> {
        match record::GcmRecords::new(&self.keys) {
            Ok(r) => Box::new(r),
            Err(e) => Box::new(record::Broken(format!("AES-GCM setup failed: {e}"))),
        }
    }

    /// The negotiated cipher suite's name.
    pub fn cipher_suite(&self) -> &'static str {
        match self.keys.cipher {
            ff_sock::tls::KtlsCipher::Aes128Gcm => "TLS_AES_128_GCM_SHA256",
            ff_sock::tls::KtlsCipher::Aes256Gcm => "TLS_AES_256_GCM_SHA384",
        }
    }
}

/// Why a secure channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The peer's first bytes are not TLS (e.g. a plaintext ICReq on a TLS listener).
    #[error("peer did not start TLS: {0}")]
    NotTls(String),
    /// The target has no PSK for the client's identity (or refused the identity).
    #[error("unknown or refused PSK identity: {0}")]
    UnknownIdentity(String),
    /// The TLS handshake failed (wrong PSK, no common suite, protocol error).
    #[error("TLS handshake: {0}")]
    Handshake(String),
    /// The deadline passed before the handshake finished.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The peer closed or reset the connection during the handshake.
    #[error("connection closed during the TLS handshake")]
    Closed,
    /// A socket error.
    #[error("socket error during the TLS handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// True when `first` (the first bytes a connection sent; pass at least 3, ideally 6) look like a TLS
/// ClientHello record: content type 0x16, version 0x03 0x01..=0x04, handshake type 1. Lets a plain
/// listener log a clear reason instead of a PDU error.
pub fn looks_like_tls(first: &[u8]) -> bool {
    match first {
        [] => false,
        [t, rest @ ..] => {
            *t == 0x16
                && rest.first().is_none_or(|&v| v == 0x03)
                && rest.get(1).is_none_or(|&v| (1..=4).contains(&v))
                && rest.get(4).is_none_or(|&h| h == 1)
        }
    }
}

#[cfg(test)]
mod tests;
