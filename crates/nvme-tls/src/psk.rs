//! NVMe/TCP pre-shared keys: the PSK interchange format (`NVMeTLSkey-1:xx:<base64>:`), the TLS PSK
//! identities (`NVMe0R01 <hostnqn> <subnqn>`), and the two derivations from a configured PSK to the key
//! TLS uses (configured -> retained PSK with the host NQN, retained -> TLS PSK with the identity), byte
//! for byte as SPDK and libnvme/nvme-cli (non-compat) compute them.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use crate::kdf;

/// Key bytes that are wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// The hash of a PSK: it names the cipher suite (01 -> TLS_AES_128_GCM_SHA256, 02 ->
/// TLS_AES_256_GCM_SHA384) and the HKDF hash of both derivations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PskHash {
    /// "01": SHA-256, 32-byte keys.
    Sha256,
    /// "02": SHA-384, 48-byte keys.
    Sha384,
}

impl PskHash {
    /// The two-digit id of the interchange format and identities ("01" / "02").
    pub fn id(self) -> &'static str {
        match self {
            PskHash::Sha256 => "01",
            PskHash::Sha384 => "02",
        }
    }

    /// The digest (and key) length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            PskHash::Sha256 => 32,
            PskHash::Sha384 => 48,
        }
    }

    /// The hash whose keys are `len` bytes long.
    pub fn for_key_len(len: usize) -> Option<PskHash> {
        match len {
            32 => Some(PskHash::Sha256),
            48 => Some(PskHash::Sha384),
            _ => None,
        }
    }

    /// The TLS 1.3 cipher suite this hash selects.
    pub fn cipher_suite(self) -> &'static str {
        match self {
            PskHash::Sha256 => "TLS_AES_128_GCM_SHA256",
            PskHash::Sha384 => "TLS_AES_256_GCM_SHA384",
        }
    }
}

/// Why a PSK, an identity or a derivation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PskError {
    /// The string does not start with `NVMeTLSkey-1:`.
    #[error("PSK does not start with \"NVMeTLSkey-1:\"")]
    BadPrefix,
    /// The hash field is not 00, 01 or 02.
    #[error("PSK hash id {0:?} is not 00, 01 or 02")]
    BadHash(String),
    /// No `:` after the base64 text.
    #[error("PSK base64 text is not followed by ':'")]
    MissingTerminator,
    /// Bytes after the final `:` (SPDK refuses them too; a key file must not end in a newline).
    #[error("PSK has {0} bytes after its final ':' (a trailing newline in the key file?)")]
    TrailingData(usize),
    /// The key text is not standard padded base64.
    #[error("PSK key text is not valid base64: {0}")]
    BadBase64(String),
    /// The decoded key has the wrong length for its hash id.
    #[error("PSK key is {len} bytes (with its CRC), hash id {hash} needs {expected}")]
    BadLength {
        /// The hash id of the string.
        hash: String,
        /// Decoded bytes, key and CRC.
        len: usize,
        /// What the hash id allows.
        expected: &'static str,
    },
    /// The CRC-32 after the key does not match the key.
    #[error("PSK CRC-32 mismatch: stored {stored:08x}, key has {computed:08x}")]
    BadCrc {
        /// The little-endian CRC in the string.
        stored: u32,
        /// The CRC of the decoded key.
        computed: u32,
    },
    /// A PSK identity that is not `NVMe<0|1>R<01|02> <hostnqn> <subnqn>[ <digest>]`.
    #[error("PSK identity refused: {0}")]
    BadIdentity(String),
    /// A derivation input that does not fit its one-byte length field.
    #[error("{what} is {len} bytes, at most 255 fit a TLS 1.3 HKDF label")]
    TooLong {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// Keys of different hashes were combined (e.g. a 48-byte retained PSK with an "01" identity).
    #[error("key of {len} bytes does not match hash {hash}")]
    HashMismatch {
        /// The hash id expected.
        hash: &'static str,
        /// The key length found.
        len: usize,
    },
}

const PREFIX: &str = "NVMeTLSkey-1:";

/// A configured PSK as an administrator writes it in the interchange format. The key stays private,
/// is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredPsk {
    transform: Option<PskHash>,
    key: Secret,
}

impl fmt::Debug for ConfiguredPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfiguredPsk")
            .field("hash", &self.transform)
            .field("key_len", &self.key.len())
            .field("key", &"<secret>")
            .finish()
    }
}

impl ConfiguredPsk {
    /// Parses `NVMeTLSkey-1:xx:<base64(key || crc32_le(key))>:` (xx 00, 01 or 02; the string must end at
    /// the final `:`, as SPDK requires).
    pub fn parse(s: &str) -> Result<Self, PskError> {
        let rest = s.strip_prefix(PREFIX).ok_or(PskError::BadPrefix)?;
        // The id is two characters then ':'; `get` keeps non-ASCII input from panicking.
        let (id, rest) = match (rest.get(..2), rest.get(2..3), rest.get(3..)) {
            (Some(id), Some(":"), Some(rest)) => (id, rest),
            _ => return Err(PskError::BadHash(rest.chars().take(3).collect())),
        };
        let transform = match id {
            "00" => None,
            "01" => Some(PskHash::Sha256),
            "02" => Some(PskHash::Sha384),
            _ => return Err(PskError::BadHash(id.to_string())),
        };
        let end = rest.find(':').ok_or(PskError::MissingTerminator)?;
        let trailing = rest.len() - end - 1;
        if trailing != 0 {
            return Err(PskError::TrailingData(trailing));
        }
        let raw = Zeroizing::new(B64.decode(&rest[..end]).map_err(|e| PskError::BadBase64(e.to_string()))?);
        let (ok, expected) = match transform {
            Some(PskHash::Sha256) => (raw.len() == 36, "36 (32 + 4)"),
            Some(PskHash::Sha384) => (raw.len() == 52, "52 (48 + 4)"),
            None => (raw.len() == 36 || raw.len() == 52, "36 or 52"),
        };
        if !ok {
            return Err(PskError::BadLength { hash: id.to_string(), len: raw.len(), expected });
        }
        let (key, crc) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(key);
        if stored != computed {
            return Err(PskError::BadCrc { stored, computed });
        }
        Ok(ConfiguredPsk { transform, key: Zeroizing::new(key.to_vec()) })
    }

    /// A PSK from raw key bytes (32 or 48) and its interchange hash id (`None` for "00": the key is
    /// used as the retained PSK as is).
    pub fn from_key(transform: Option<PskHash>, key: &[u8]) -> Result<Self, PskError> {
        let hash = PskHash::for_key_len(key.len()).ok_or(PskError::BadLength {
            hash: id_of(transform).into(),
            len: key.len(),
            expected: "32 or 48",
        })?;
        if transform.is_some_and(|t| t != hash) {
            return Err(PskError::HashMismatch { hash: id_of(transform), len: key.len() });
        }
        Ok(ConfiguredPsk { transform, key: Zeroizing::new(key.to_vec()) })
    }

    /// A fresh random PSK of `hash`'s length (from the operating system's generator).
    pub fn generate(hash: PskHash) -> Self {
        let mut key = Zeroizing::new(vec![0u8; hash.key_len()]);
        // Without an OS random source nothing secure can be made; this is a configuration-time call.
        getrandom::fill(&mut key).expect("operating system random source");
        ConfiguredPsk { transform: Some(hash), key }
    }

    /// The interchange string, `NVMeTLSkey-1:xx:<base64>:`.
    pub fn encode(&self) -> String {
        let mut raw = Zeroizing::new(Vec::with_capacity(self.key.len() + 4));
        raw.extend_from_slice(&self.key);
        raw.extend_from_slice(&crc32fast::hash(&self.key).to_le_bytes());
        format!("{PREFIX}{}:{}:", id_of(self.transform), B64.encode(&*raw))
    }

    /// The interchange hash that turns this key into the retained PSK; `None` for "00" (no transform).
    pub fn hash(&self) -> Option<PskHash> {
        self.transform
    }

    /// The hash (and so the cipher suite) of this key's identities: chosen by key length, as SPDK does,
    /// which agrees with the interchange id except for "00".
    pub fn cipher_hash(&self) -> PskHash {
        // `parse`, `from_key` and `generate` only make 32- or 48-byte keys.
        PskHash::for_key_len(self.key.len()).unwrap_or(PskHash::Sha256)
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for ConfiguredPsk {
    type Err = PskError;
    fn from_str(s: &str) -> Result<Self, PskError> {
        ConfiguredPsk::parse(s)
    }
}

fn id_of(transform: Option<PskHash>) -> &'static str {
    transform.map_or("00", PskHash::id)
}

/// A TLS PSK identity: `NVMe0R<hh> <hostnqn> <subnqn>` (version 0, what SPDK sends and accepts) or
/// `NVMe1R<hh> <hostnqn> <subnqn> <digest>` (version 1, the PSK digest in the identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PskIdentity {
    /// 0 or 1.
    pub version: u8,
    /// The hash (cipher suite) of the PSK.
    pub hash: PskHash,
    /// The host NQN.
    pub hostnqn: String,
    /// The subsystem NQN.
    pub subnqn: String,
    /// The base64 PSK digest, present in version 1 only.
    pub digest: Option<String>,
}

impl PskIdentity {
    /// The version 0 identity SPDK uses for `hostnqn` and `subnqn` with a PSK of `hash`.
    pub fn v0(hash: PskHash, hostnqn: &str, subnqn: &str) -> Self {
        PskIdentity { version: 0, hash, hostnqn: hostnqn.into(), subnqn: subnqn.into(), digest: None }
    }

    /// Parses the identity bytes of a ClientHello.
    pub fn parse(bytes: &[u8]) -> Result<Self, PskError> {
        let bad = |why: &str| PskError::BadIdentity(why.to_string());
        let s = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let head = s.get(..8).ok_or_else(|| bad("shorter than its 8-character prefix"))?;
        let rest = s.get(8..).unwrap_or("");
        let hb = head.as_bytes();
        if &hb[..4] != b"NVMe" {
            return Err(bad("does not start with \"NVMe\""));
        }
        let version = match hb[4] {
            b'0' => 0,
            b'1' => 1,
            _ => return Err(bad("version is not 0 or 1")),
        };
        match hb[5] {
            b'R' => {}
            b'G' => return Err(bad("generated PSKs (\"G\", secure concatenation) are not supported")),
            _ => return Err(bad("PSK type is not R")),
        }
        let hash = match &head[6..] {
            "01" => PskHash::Sha256,
            "02" => PskHash::Sha384,
            _ => return Err(bad("hash id is not 01 or 02")),
        };
        let rest = rest.strip_prefix(' ').ok_or_else(|| bad("no space after the prefix"))?;
        let fields: Vec<&str> = rest.split(' ').collect();
        let want = if version == 0 { 2 } else { 3 };
        if fields.len() != want || fields.iter().any(|f| f.is_empty()) {
            return Err(PskError::BadIdentity(format!(
                "version {version} needs {want} space-separated fields after the prefix, found {}",
                fields.len()
            )));
        }
        Ok(PskIdentity {
            version,
            hash,
            hostnqn: fields[0].to_string(),
            subnqn: fields[1].to_string(),
            digest: fields.get(2).map(|d| d.to_string()),
        })
    }
}

impl fmt::Display for PskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NVMe{}R{} {} {}", self.version, self.hash.id(), self.hostnqn, self.subnqn)?;
        if let Some(d) = &self.digest {
            write!(f, " {d}")?;
        }
        Ok(())
    }
}

/// The retained PSK of `psk` for `hostnqn`: for "01"/"02", HKDF-Extract(zero salt, key) then
/// HKDF-Expand-Label(.., "HostNQN", hostnqn, key length) with the interchange hash; for "00" the
/// configured key itself.
pub fn retained_psk(psk: &ConfiguredPsk, hostnqn: &str) -> Result<Secret, PskError> {
    match psk.transform {
        None => Ok(psk.key.clone()),
        Some(hash) => kdf::extract_expand_label(hash, &psk.key, "HostNQN", hostnqn.as_bytes(), psk.key.len()),
    }
}

/// The TLS PSK (the external PSK given to TLS) of `retained` for `identity`: HKDF-Extract(zero salt,
/// retained) then HKDF-Expand-Label(.., "nvme-tls-psk", context, hash length), with the identity's
/// hash; the context is the whole identity string for version 0 and `"<hh> <digest>"` for version 1.
pub fn tls_psk(retained: &[u8], identity: &PskIdentity) -> Result<Secret, PskError> {
    let hash = identity.hash;
    if retained.len() != hash.key_len() {
        return Err(PskError::HashMismatch { hash: hash.id(), len: retained.len() });
    }
    let context = match (&identity.digest, identity.version) {
        (Some(d), 1) => format!("{} {d}", hash.id()),
        _ => identity.to_string(),
    };
    kdf::extract_expand_label(hash, retained, "nvme-tls-psk", context.as_bytes(), hash.key_len())
}

/// The PSK digest of version 1 identities: base64(HMAC-hash(retained, hostnqn " " subnqn " "
/// "NVMe-over-Fabrics")).
pub fn psk_digest(hash: PskHash, retained: &[u8], hostnqn: &str, subnqn: &str) -> String {
    let msg = format!("{hostnqn} {subnqn} NVMe-over-Fabrics");
    let tag = match hash {
        PskHash::Sha256 => {
            let mut m =
                <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(retained).expect("HMAC takes any key length");
            m.update(msg.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        PskHash::Sha384 => {
            let mut m =
                <hmac::Hmac<sha2::Sha384> as KeyInit>::new_from_slice(retained).expect("HMAC takes any key length");
            m.update(msg.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    B64.encode(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // The key of SPDK's test/nvmf/target/tls.sh, as ASCII bytes.
    const KEY: &[u8] = b"00112233445566778899aabbccddeeff";
    const KEY_STR: &str = "NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:";
    const HOST: &str = "nqn.2016-06.io.spdk:host1";
    const SUB: &str = "nqn.2016-06.io.spdk:cnode1";

    #[test]
    fn interchange_known_string() {
        let psk = ConfiguredPsk::parse(KEY_STR).unwrap();
        assert_eq!(psk.key(), KEY);
        assert_eq!(psk.hash(), Some(PskHash::Sha256));
        assert_eq!(psk.encode(), KEY_STR);
        assert_eq!(KEY_STR.parse::<ConfiguredPsk>().unwrap(), psk);
    }

    #[test]
    fn generated_round_trip_both_hashes_and_00() {
        for h in [PskHash::Sha256, PskHash::Sha384] {
            let p = ConfiguredPsk::generate(h);
            assert_eq!(p.key().len(), h.key_len());
            assert_eq!(ConfiguredPsk::parse(&p.encode()).unwrap(), p);
            let raw = ConfiguredPsk::from_key(None, p.key()).unwrap();
            let s = raw.encode();
            assert!(s.starts_with("NVMeTLSkey-1:00:"));
            let back = ConfiguredPsk::parse(&s).unwrap();
            assert_eq!(back.hash(), None);
            assert_eq!(back.cipher_hash(), h);
        }
    }

    #[test]
    fn debug_prints_no_key() {
        let s = format!("{:?}", ConfiguredPsk::parse(KEY_STR).unwrap());
        // The key is ASCII "0011...", i.e. bytes 48, 48, 49, 49 ...
        assert!(!s.contains("48, 48") && !s.contains("0011") && !s.contains("MDAx"), "{s}");
        assert!(s.contains("<secret>"), "{s}");
    }

    #[test]
    fn bad_inputs_each_say_why() {
        use PskError::*;
        let body = "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ";
        assert_eq!(ConfiguredPsk::parse(&format!("NVMeTLSkey-2:01:{body}:")), Err(BadPrefix));
        assert_eq!(ConfiguredPsk::parse(&format!("DHHC-1:01:{body}:")), Err(BadPrefix));
        assert_eq!(ConfiguredPsk::parse(&format!("NVMeTLSkey-1:03:{body}:")), Err(BadHash("03".into())));
        assert_eq!(ConfiguredPsk::parse(&format!("NVMeTLSkey-1:1:{body}:")), Err(BadHash("1:M".into())));
        assert_eq!(ConfiguredPsk::parse("NVMeTLSkey-1:0é"), Err(BadHash("0é".into())));
        assert_eq!(ConfiguredPsk::parse(&format!("NVMeTLSkey-1:01:{body}")), Err(MissingTerminator));
        assert_eq!(ConfiguredPsk::parse(&format!("{KEY_STR}\n")), Err(TrailingData(1)));
        assert!(matches!(ConfiguredPsk::parse("NVMeTLSkey-1:01:MDAx*TIy:"), Err(BadBase64(_))));
        // Unpadded base64 is refused: the format is standard padded base64.
        assert!(matches!(ConfiguredPsk::parse("NVMeTLSkey-1:01:MDAxM:"), Err(BadBase64(_))));
        // A valid 36-byte key under the SHA-384 id, and a 52-byte one under SHA-256.
        assert!(matches!(ConfiguredPsk::parse(&format!("NVMeTLSkey-1:02:{body}:")), Err(BadLength { len: 36, .. })));
        let p384 = ConfiguredPsk::generate(PskHash::Sha384).encode().replacen(":02:", ":01:", 1);
        assert!(matches!(ConfiguredPsk::parse(&p384), Err(BadLength { len: 52, .. })));
        let short = B64.encode([0u8; 20]);
        assert!(matches!(ConfiguredPsk::parse(&format!("NVMeTLSkey-1:00:{short}:")), Err(BadLength { len: 20, .. })));
        // Flip one key bit: the CRC no longer matches.
        let mut raw = B64.decode(body).unwrap();
        raw[0] ^= 1;
        let flipped = format!("NVMeTLSkey-1:01:{}:", B64.encode(&raw));
        assert!(matches!(ConfiguredPsk::parse(&flipped), Err(BadCrc { .. })));
        // Every error displays a distinct message.
        let msgs: std::collections::HashSet<String> = [
            BadPrefix,
            BadHash("x".into()),
            MissingTerminator,
            TrailingData(1),
            BadBase64("x".into()),
            BadLength { hash: "01".into(), len: 1, expected: "36" },
            BadCrc { stored: 1, computed: 2 },
            BadIdentity("x".into()),
            TooLong { what: "x", len: 300 },
            HashMismatch { hash: "01", len: 48 },
        ]
        .iter()
        .map(|e| e.to_string().split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
        assert_eq!(msgs.len(), 10, "{msgs:?}");
    }

    #[test]
    fn from_key_checks_length_and_hash() {
        assert!(ConfiguredPsk::from_key(Some(PskHash::Sha256), &[1; 48]).is_err());
        assert!(ConfiguredPsk::from_key(None, &[1; 40]).is_err());
        assert!(ConfiguredPsk::from_key(Some(PskHash::Sha384), &[1; 48]).is_ok());
    }

    // Known answers computed independently with Python's hmac/hashlib (RFC 5869 HKDF written out, the
    // labels as SPDK's nvme_tcp.h builds them); the retained step was cross-checked with `openssl kdf`.
    #[test]
    fn retained_and_tls_psk_known_answers_sha256() {
        let psk = ConfiguredPsk::parse(KEY_STR).unwrap();
        let retained = retained_psk(&psk, HOST).unwrap();
        assert_eq!(hex(&retained), "1fec2d4b69d3cb88e56214d464f00b168d2a635024b7a893aa6fad2840f49f2a");
        let id = PskIdentity::v0(PskHash::Sha256, HOST, SUB);
        assert_eq!(id.to_string(), "NVMe0R01 nqn.2016-06.io.spdk:host1 nqn.2016-06.io.spdk:cnode1");
        let tls = tls_psk(&retained, &id).unwrap();
        assert_eq!(hex(&tls), "45956d30221db43e664e8d6e78a79c31a81824cbd12acfdaca0e6032b335bbd9");
    }

    #[test]
    fn retained_of_00_is_the_key() {
        let psk = ConfiguredPsk::from_key(None, KEY).unwrap();
        assert_eq!(&*retained_psk(&psk, HOST).unwrap(), KEY);
    }

    #[test]
    fn tls_psk_refuses_mismatched_hash() {
        let id = PskIdentity::v0(PskHash::Sha384, HOST, SUB);
        assert!(matches!(tls_psk(&[0; 32], &id), Err(PskError::HashMismatch { .. })));
    }

    #[test]
    fn identity_parse_format() {
        let s = "NVMe0R02 nqn.h nqn.s";
        let id = PskIdentity::parse(s.as_bytes()).unwrap();
        assert_eq!(id, PskIdentity::v0(PskHash::Sha384, "nqn.h", "nqn.s"));
        assert_eq!(id.to_string(), s);
        let s1 = "NVMe1R01 nqn.h nqn.s abc+/=";
        let id1 = PskIdentity::parse(s1.as_bytes()).unwrap();
        assert_eq!((id1.version, id1.digest.as_deref()), (1, Some("abc+/=")));
        assert_eq!(id1.to_string(), s1);
        for bad in [
            &b"NVMe0R01"[..],
            b"NVMe0R03 a b",
            b"NVMe2R01 a b",
            b"NVMe1G01 a b d",
            b"NVMe0R01 a b c",
            b"NVMe1R01 a b",
            b"NVMe0R01 a  b",
            b"NVMe0R01a b",
            b"NVMx0R01 a b",
            b"\xff\xfeMe0R01 a b",
            b"NVM",
        ] {
            assert!(matches!(PskIdentity::parse(bad), Err(PskError::BadIdentity(_))), "{bad:?}");
        }
    }

    #[test]
    fn v1_digest_and_tls_psk_known_answers() {
        // Independently computed with Python: base64(hmac.new(retained, b"<host> <sub> NVMe-over-Fabrics",
        // sha256)), then the TLS PSK with context "01 <digest>" (libnvme's version 1 scheme).
        let psk = ConfiguredPsk::parse(KEY_STR).unwrap();
        let retained = retained_psk(&psk, HOST).unwrap();
        let d = psk_digest(PskHash::Sha256, &retained, HOST, SUB);
        assert_eq!(d, "JJKW5+E1EXmLneITezArMYi9DfiDT+6WgubKFa7JTxc=");
        let id = PskIdentity {
            version: 1,
            hash: PskHash::Sha256,
            hostnqn: HOST.into(),
            subnqn: SUB.into(),
            digest: Some(d),
        };
        let v1 = tls_psk(&retained, &id).unwrap();
        assert_eq!(hex(&v1), "01f45b2e62464e9d8abc4648e1b0ffeb332b7a62f588add26123bcc9b29c0306");
    }

    #[test]
    fn sha384_known_answers() {
        // Key bytes 0..48; interchange string, retained and TLS PSK computed independently with Python
        // (base64, zlib.crc32, RFC 5869 HKDF over hashlib.sha384).
        let s = "NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:";
        let psk = ConfiguredPsk::parse(s).unwrap();
        assert_eq!(psk.key(), (0u8..48).collect::<Vec<_>>());
        assert_eq!(psk.encode(), s);
        let retained = retained_psk(&psk, HOST).unwrap();
        assert_eq!(
            hex(&retained),
            "f5ea5a564fe603263adfa29f56413f0ccfef77253f5f9453f3b1cbd713647df6c12a219bf584377651a9281aa441b7b3"
        );
        let tls = tls_psk(&retained, &PskIdentity::v0(PskHash::Sha384, HOST, SUB)).unwrap();
        assert_eq!(
            hex(&tls),
            "20efe643239f00f8e8bcc2b6899c2799127f10c8c9cb11ecf0996b5a56e5b38786e2899a275ea73968ef20008662bae6"
        );
    }
}
