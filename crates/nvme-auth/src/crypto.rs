//! The DH-HMAC-CHAP computations on top of RustCrypto's `hmac` and `sha2`: the augmented
//! challenge and the host ("HostHost") and controller ("Controller") responses.
//!
//! Nothing here implements a primitive; it only fixes what is hashed, in which order.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::ids::HashId;

/// Which side a response proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The host's response R1 to the controller's challenge C1 ("HostHost").
    Host,
    /// The controller's response R2 to the host's challenge C2 ("Controller").
    Controller,
}

/// Everything a response is computed over, besides the key.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The negotiated hash.
    pub hash: HashId,
    /// The challenge as sent (C1 or C2), `hash.hash_len()` bytes.
    pub challenge: &'a [u8],
    /// The DH shared secret (g^xy mod p, padded to the prime length); `None` for the null group.
    pub dh_secret: Option<&'a [u8]>,
    /// The sequence number sent with the challenge (S1 or S2).
    pub seqnum: u32,
    /// The transaction identifier.
    pub t_id: u16,
    /// The secure channel concatenation byte of the negotiation (0 here).
    pub sc_c: u8,
    /// The host NQN.
    pub hostnqn: &'a str,
    /// The subsystem NQN.
    pub subsysnqn: &'a str,
}

/// HMAC(`hash`, `key`, concatenation of `parts`).
pub(crate) fn hmac(hash: HashId, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC takes keys of any length, so this cannot fail.
        let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else { unreachable!("HMAC accepts every key length") };
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }
    match hash {
        HashId::Sha256 => run::<Hmac<Sha256>>(key, parts),
        HashId::Sha384 => run::<Hmac<Sha384>>(key, parts),
        HashId::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
}

/// Constant-time check that HMAC(`hash`, `key`, `parts`) equals `tag`.
pub(crate) fn hmac_verify(hash: HashId, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else { unreachable!("HMAC accepts every key length") };
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
    match hash {
        HashId::Sha256 => run::<Hmac<Sha256>>(key, parts, tag),
        HashId::Sha384 => run::<Hmac<Sha384>>(key, parts, tag),
        HashId::Sha512 => run::<Hmac<Sha512>>(key, parts, tag),
    }
}

/// H(`data`).
pub(crate) fn digest(hash: HashId, data: &[u8]) -> Vec<u8> {
    match hash {
        HashId::Sha256 => Sha256::digest(data).to_vec(),
        HashId::Sha384 => Sha384::digest(data).to_vec(),
        HashId::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// The challenge a response is computed over: `C` itself for the null group, otherwise
/// Ca = HMAC(H(g^xy mod p), C).
pub fn augmented_challenge(hash: HashId, challenge: &[u8], dh_secret: Option<&[u8]>) -> Vec<u8> {
    match dh_secret {
        None => challenge.to_vec(),
        Some(s) => {
            let mut k = digest(hash, s);
            let ca = hmac(hash, &k, &[challenge]);
            k.fill(0);
            ca
        }
    }
}

/// Assembles the HMAC input after the (augmented) challenge: seqnum (LE32) || t_id (LE16) ||
/// sc_c || role string || own NQN || 0x00 || peer NQN.
fn with_parts<T>(role: Role, input: &ResponseInput<'_>, f: impl FnOnce(&[&[u8]]) -> T) -> T {
    let ca = augmented_challenge(input.hash, input.challenge, input.dh_secret);
    let seq = input.seqnum.to_le_bytes();
    let tid = input.t_id.to_le_bytes();
    let (label, first, second): (&[u8], &str, &str) = match role {
        Role::Host => (b"HostHost", input.hostnqn, input.subsysnqn),
        Role::Controller => (b"Controller", input.subsysnqn, input.hostnqn),
    };
    f(&[&ca, &seq, &tid, &[input.sc_c], label, first.as_bytes(), &[0], second.as_bytes()])
}

/// The response value: HMAC(Kh, Ca || seqnum || t_id || sc_c || label || NQN || 0 || NQN),
/// where Kh is the transformed key of the side that answers (`Role`).
pub fn response(role: Role, key: &[u8], input: &ResponseInput<'_>) -> Vec<u8> {
    with_parts(role, input, |parts| hmac(input.hash, key, parts))
}

/// Constant-time verification of a received response value.
pub fn verify_response(role: Role, key: &[u8], input: &ResponseInput<'_>, received: &[u8]) -> bool {
    with_parts(role, input, |parts| hmac_verify(input.hash, key, parts, received))
}
