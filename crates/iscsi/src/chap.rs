//! CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994): algorithms, response computation,
//! binary value encodings, and challenge generation.
//!
//! Owns the arithmetic only; which message comes when is [`crate::login`]'s business.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// CHAP_A algorithms we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChapAlg {
    /// CHAP_A=5, MD5 (the RFC's mandatory one).
    Md5,
    /// CHAP_A=7, SHA-256.
    Sha256,
}

impl ChapAlg {
    /// The CHAP_A number.
    pub const fn code(self) -> u8 {
        match self {
            ChapAlg::Md5 => 5,
            ChapAlg::Sha256 => 7,
        }
    }

    /// Parses a CHAP_A number; unknown ones give `None`.
    pub fn from_code(s: &str) -> Option<Self> {
        match s {
            "5" => Some(ChapAlg::Md5),
            "7" => Some(ChapAlg::Sha256),
            _ => None,
        }
    }

    /// Digest length, which is also the challenge length we send.
    pub const fn digest_len(self) -> usize {
        match self {
            ChapAlg::Md5 => 16,
            ChapAlg::Sha256 => 32,
        }
    }

    /// The CHAP response: H(identifier || secret || challenge).
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        match self {
            ChapAlg::Md5 => {
                let mut h = Md5::new();
                h.update([id]);
                h.update(secret);
                h.update(challenge);
                h.finalize().to_vec()
            }
            ChapAlg::Sha256 => {
                let mut h = Sha256::new();
                h.update([id]);
                h.update(secret);
                h.update(challenge);
                h.finalize().to_vec()
            }
        }
    }
}

/// Encodes binary as the RFC's hex form, `0x…`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Decodes a binary value: `0x`/`0X` hex (an odd digit count gets a leading zero) or `0b`/`0B`
/// base64. Anything else, or an empty value, is `None`.
pub fn decode_binary(s: &str) -> Option<Vec<u8>> {
    let (prefix, body) = (s.get(..2)?, s.get(2..)?);
    if body.is_empty() {
        return None;
    }
    match prefix {
        "0x" | "0X" => {
            let digits: Vec<u8> = body.bytes().map(hex_digit).collect::<Option<_>>()?;
            let lead = digits.len() % 2;
            let mut out = Vec::with_capacity(digits.len() / 2 + 1);
            if lead == 1 {
                out.push(*digits.first()?);
            }
            for pair in digits.get(lead..)?.chunks_exact(2) {
                if let [hi, lo] = pair {
                    out.push(hi << 4 | lo);
                }
            }
            Some(out)
        }
        "0b" | "0B" => base64_decode(body),
        _ => None,
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding zeros, and a lone 6-bit symbol encodes nothing.
    (acc == 0 && bits < 6).then_some(out)
}

/// Constant-time equality, so response checks do not leak how many leading bytes matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fresh random bytes from the operating system (the only source of our challenges).
pub fn random_bytes(n: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).ok()?;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1994_style_md5() {
        // MD5 of id 0x01, "secret", challenge 00..0f, computed independently of this module.
        let ch: Vec<u8> = (0..16).collect();
        let r = ChapAlg::Md5.response(1, b"secret", &ch);
        let mut input = vec![1u8];
        input.extend_from_slice(b"secret");
        input.extend_from_slice(&ch);
        assert_eq!(r, Md5::digest(&input).to_vec());
        assert_eq!(r.len(), 16);
        assert_eq!(ChapAlg::Sha256.response(1, b"secret", &ch).len(), 32);
    }

    #[test]
    fn md5_known_vector() {
        // RFC 1321 test suite: MD5("abc").
        assert_eq!(to_hex(&Md5::digest(b"abc")), "0x900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn binary_values() {
        assert_eq!(decode_binary("0x0a0B"), Some(vec![0x0a, 0x0b]));
        assert_eq!(decode_binary("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bAQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_binary("0bAQI="), Some(vec![1, 2]));
        assert_eq!(decode_binary("0bAQ=="), Some(vec![1]));
        assert_eq!(decode_binary("0x"), None);
        assert_eq!(decode_binary("0xzz"), None);
        assert_eq!(decode_binary("abcd"), None);
        assert_eq!(decode_binary("0bA"), None);
        assert_eq!(decode_binary("0b!!!!"), None);
        assert_eq!(to_hex(&[0, 255]), "0x00ff");
        assert!(ct_eq(b"ab", b"ab") && !ct_eq(b"ab", b"ac") && !ct_eq(b"a", b"ab"));
        assert_eq!(random_bytes(16).map(|v| v.len()), Some(16));
    }
}
