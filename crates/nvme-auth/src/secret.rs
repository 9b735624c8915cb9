//! DH-HMAC-CHAP secrets: the `DHHC-1:<hh>:<base64(key || CRC-32)>:` representation (as
//! `nvme gen-dhchap-key` writes it and `--dhchap-secret` / the kernel / SPDK read it), the
//! generator, and the per-NQN key transformation.
//!
//! Key bytes never appear in `Debug` output and are overwritten with zeros on drop (a best
//! effort: no `zeroize` crate is in the dependency tree, so the compiler may in principle
//! elide or leave copies behind).

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::crypto;
use crate::ids::HashId;
use crate::rng::{RandomError, RandomSource};

/// Accepts the padded form nvme-cli writes and tolerates the unpadded one.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Key lengths the representation allows.
pub const KEY_LENGTHS: [usize; 3] = [32, 48, 64];

/// Appended to the NQN when transforming a key.
const TRANSFORM_SUFFIX: &[u8] = b"NVMe-over-Fabrics";

/// Why a secret string or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The string does not start with `DHHC-1:`.
    #[error("secret does not start with \"DHHC-1:\"")]
    Prefix,
    /// The `<hh>` field is not two hex digits followed by ':'.
    #[error("secret has a malformed hash field")]
    HashField,
    /// The `<hh>` field names no known transformation hash.
    #[error("secret names unknown hash {0:#04x} (expected 00..03)")]
    UnknownHash(u8),
    /// The key part is not valid base64.
    #[error("secret key part is not valid base64")]
    Base64,
    /// The decoded key is not 32, 48 or 64 bytes (plus the 4-byte CRC).
    #[error("secret key is {0} bytes; expected 32, 48 or 64")]
    KeyLength(usize),
    /// The CRC-32 after the key does not match it.
    #[error("secret CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc {
        /// The CRC the string carries.
        stored: u32,
        /// The CRC of the decoded key.
        computed: u32,
    },
    /// Something follows the terminating ':'.
    #[error("unexpected text after the secret's final ':'")]
    Trailing,
    /// The generator was asked for a key length that does not match the hash.
    #[error("key length {len} does not match {hash} (needs {})", hash.hash_len())]
    LengthForHash {
        /// The hash asked for.
        hash: HashId,
        /// The length asked for.
        len: usize,
    },
    /// The random source failed while generating.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A DH-HMAC-CHAP secret: the key and the hash (if any) used to transform it per NQN.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    hash: Option<HashId>,
    key: Vec<u8>,
}

impl Secret {
    /// A secret from raw key bytes; `hash` is the transformation hash (`None` = hh 00).
    pub fn from_key(hash: Option<HashId>, key: &[u8]) -> Result<Secret, SecretError> {
        if !KEY_LENGTHS.contains(&key.len()) {
            return Err(SecretError::KeyLength(key.len()));
        }
        Ok(Secret { hash, key: key.to_vec() })
    }

    /// Parses `DHHC-1:<hh>:<base64>:`, checking the key length and CRC.
    ///
    /// Like the kernel's parser, the hash and key length are not required to match (a 64-byte
    /// key with hh 01 is valid) and the final ':' may be omitted; surrounding whitespace (a
    /// trailing newline in a key file) is ignored.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        let rest = text.strip_prefix("DHHC-1:").ok_or(SecretError::Prefix)?;
        let hh = rest.get(..2).ok_or(SecretError::HashField)?;
        if !hh.bytes().all(|b| b.is_ascii_hexdigit()) || rest.as_bytes().get(2) != Some(&b':') {
            return Err(SecretError::HashField);
        }
        let hh = u8::from_str_radix(hh, 16).map_err(|_| SecretError::HashField)?;
        let hash = match hh {
            0 => None,
            id => Some(HashId::from_id(id).ok_or(SecretError::UnknownHash(id))?),
        };
        let body = &rest[3..];
        let b64 = match body.find(':') {
            Some(end) if end + 1 == body.len() => &body[..end],
            Some(_) => return Err(SecretError::Trailing),
            None => body,
        };
        let mut raw = B64.decode(b64).map_err(|_| SecretError::Base64)?;
        let key_len = raw.len().wrapping_sub(4);
        if raw.len() < 4 || !KEY_LENGTHS.contains(&key_len) {
            let len = raw.len().saturating_sub(4);
            raw.fill(0);
            return Err(SecretError::KeyLength(len));
        }
        let stored = u32::from_le_bytes([raw[key_len], raw[key_len + 1], raw[key_len + 2], raw[key_len + 3]]);
        let computed = crc32fast::hash(&raw[..key_len]);
        if stored != computed {
            raw.fill(0);
            return Err(SecretError::Crc { stored, computed });
        }
        let secret = Secret::from_key(hash, &raw[..key_len]);
        raw.fill(0);
        secret
    }

    /// Generates a random secret, as `nvme gen-dhchap-key --hmac=<hh> --key-length=<len>`.
    ///
    /// `len` defaults to the hash length (32 for no hash); with a hash it must equal the hash
    /// length, the rule nvme-cli applies.
    pub fn generate(
        hash: Option<HashId>,
        len: Option<usize>,
        rng: &mut impl RandomSource,
    ) -> Result<Secret, SecretError> {
        let len = len.unwrap_or(hash.map_or(32, HashId::hash_len));
        if !KEY_LENGTHS.contains(&len) {
            return Err(SecretError::KeyLength(len));
        }
        if let Some(h) = hash
            && h.hash_len() != len
        {
            return Err(SecretError::LengthForHash { hash: h, len });
        }
        let mut key = vec![0u8; len];
        rng.fill(&mut key)?;
        Ok(Secret { hash, key })
    }

    /// The `DHHC-1:<hh>:<base64>:` string (it contains the key: keep it out of logs).
    pub fn to_dhhc_string(&self) -> String {
        let mut raw = self.key.clone();
        raw.extend_from_slice(&crc32fast::hash(&self.key).to_le_bytes());
        let s = format!("DHHC-1:{:02x}:{}:", self.hash.map_or(0, HashId::id), B64.encode(&raw));
        raw.fill(0);
        s
    }

    /// The transformation hash (`None` for hh 00).
    pub fn hash(&self) -> Option<HashId> {
        self.hash
    }

    /// Length of the key in bytes.
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// The key bound to `nqn`: HMAC(hh-hash, key, nqn || "NVMe-over-Fabrics"), or the key
    /// itself for hh 00. The host key is transformed with the host NQN, the controller key with
    /// the subsystem NQN.
    pub fn transform(&self, nqn: &str) -> TransformedKey {
        match self.hash {
            None => TransformedKey(self.key.clone()),
            Some(h) => TransformedKey(crypto::hmac(h, &self.key, &[nqn.as_bytes(), TRANSFORM_SUFFIX])),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret").field("hash", &self.hash).field("key_len", &self.key.len()).finish_non_exhaustive()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.key.fill(0);
    }
}

/// A secret after transformation for one NQN: the HMAC key of responses.
#[derive(Clone, PartialEq, Eq)]
pub struct TransformedKey(Vec<u8>);

impl TransformedKey {
    /// The key bytes (secret material).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TransformedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransformedKey({} bytes)", self.0.len())
    }
}

impl Drop for TransformedKey {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}
