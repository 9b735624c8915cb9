//! TLS 1.3 HKDF-Expand-Label (RFC 8446 7.1) over the RustCrypto `hkdf` crate: the one label layout the
//! NVMe PSK derivations and the traffic key derivation share.

use hkdf::Hkdf;
use sha2::{Sha256, Sha384};
use zeroize::Zeroizing;

use crate::psk::{PskError, PskHash, Secret};

/// The HkdfLabel bytes: u16 length, the label with its "tls13 " prefix and the context, each with a
/// one-byte length.
pub(crate) fn hkdf_label(len: usize, label: &str, context: &[u8]) -> Result<Vec<u8>, PskError> {
    let full = 6 + label.len();
    if full > 255 {
        return Err(PskError::TooLong { what: "HKDF label", len: full });
    }
    if context.len() > 255 {
        return Err(PskError::TooLong { what: "HKDF context", len: context.len() });
    }
    let len = u16::try_from(len).map_err(|_| PskError::TooLong { what: "HKDF output", len })?;
    let mut info = Vec::with_capacity(4 + full + context.len());
    info.extend_from_slice(&len.to_be_bytes());
    info.push(full as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    Ok(info)
}

/// HKDF-Expand-Label(prk, label, context, len) with `prk` already a pseudo-random key (a traffic secret).
pub(crate) fn expand_label(
    hash: PskHash,
    prk: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Result<Secret, PskError> {
    let info = hkdf_label(len, label, context)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    let bad = || PskError::HashMismatch { hash: hash.id(), len: prk.len() };
    match hash {
        PskHash::Sha256 => Hkdf::<Sha256>::from_prk(prk).map_err(|_| bad())?.expand(&info, &mut out),
        PskHash::Sha384 => Hkdf::<Sha384>::from_prk(prk).map_err(|_| bad())?.expand(&info, &mut out),
    }
    .map_err(|_| PskError::TooLong { what: "HKDF output", len })?;
    Ok(out)
}

/// HKDF-Extract(zero salt, ikm) then HKDF-Expand-Label: the NVMe PSK derivation step.
pub(crate) fn extract_expand_label(
    hash: PskHash,
    ikm: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Result<Secret, PskError> {
    let info = hkdf_label(len, label, context)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    match hash {
        PskHash::Sha256 => Hkdf::<Sha256>::new(None, ikm).expand(&info, &mut out),
        PskHash::Sha384 => Hkdf::<Sha384>::new(None, ikm).expand(&info, &mut out),
    }
    .map_err(|_| PskError::TooLong { what: "HKDF output", len })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc8448_server_handshake_traffic_key() {
        // RFC 8448 section 3 (simple 1-RTT): server_handshake_traffic_secret -> write key and iv.
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let key = expand_label(PskHash::Sha256, &secret, "key", b"", 16).unwrap();
        let iv = expand_label(PskHash::Sha256, &secret, "iv", b"", 12).unwrap();
        assert_eq!(*key, unhex("3fce516009c21727d0f2e4e86ee403bc"));
        assert_eq!(*iv, unhex("5d313eb2671276ee13000b30"));
    }

    #[test]
    fn traffic_keys_sha384_python_vector() {
        // Secret = bytes 0..48; computed independently with Python's hmac/hashlib.
        let secret: Vec<u8> = (0u8..48).collect();
        let key = expand_label(PskHash::Sha384, &secret, "key", b"", 32).unwrap();
        let iv = expand_label(PskHash::Sha384, &secret, "iv", b"", 12).unwrap();
        assert_eq!(*key, unhex("6877d022f1c61d24ebb7487c16752d9a4798e40431c75b39320e537c90e23225"));
        assert_eq!(*iv, unhex("42822531a0fe88648fc09e9f"));
    }

    #[test]
    fn label_limits() {
        assert!(hkdf_label(32, "x", &[0; 256]).is_err());
        assert!(hkdf_label(32, &"y".repeat(250), b"").is_err());
        assert_eq!(hkdf_label(16, "key", b"").unwrap(), b"\x00\x10\x09tls13 key\x00");
    }
}
