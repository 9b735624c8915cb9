//! Finite-field Diffie-Hellman over the RFC 7919 groups: key pairs, public values and the
//! shared secret, both padded to the prime's length as the kernel and SPDK exchange them.
//!
//! Arithmetic is `crypto-bigint`'s boxed Montgomery form (constant-time exponentiation).
//! Private exponents are short, as RFC 7919 section 5.2 allows and the kernel does (about twice
//! the group's security strength), which keeps ffdhe8192 usable in debug builds.

use std::fmt;
use std::sync::OnceLock;

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};

use crate::ids::DhGroup;
use crate::primes;
use crate::rng::{RandomError, RandomSource};

/// Why a DH operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// The null group has no DH values.
    #[error("the null DH group has no key pair")]
    NullGroup,
    /// The peer's value is longer than the prime or outside 2..=p-2.
    #[error("peer DH value is out of range for {0}")]
    PeerValue(DhGroup),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

struct Group {
    bits: u32,
    params: BoxedMontyParams,
    p_minus_1: BoxedUint,
}

/// The group's precomputed Montgomery parameters (built once per process).
fn group(g: DhGroup) -> Option<&'static Group> {
    static CACHE: [OnceLock<Group>; 5] = [const { OnceLock::new() }; 5];
    let (idx, hex) = match g {
        DhGroup::Null => return None,
        DhGroup::Ffdhe2048 => (0, primes::FFDHE2048),
        DhGroup::Ffdhe3072 => (1, primes::FFDHE3072),
        DhGroup::Ffdhe4096 => (2, primes::FFDHE4096),
        DhGroup::Ffdhe6144 => (3, primes::FFDHE6144),
        DhGroup::Ffdhe8192 => (4, primes::FFDHE8192),
    };
    Some(CACHE[idx].get_or_init(|| {
        let bits = (g.value_len() * 8) as u32;
        let p = BoxedUint::from_be_hex(hex, bits).into_option().expect("built-in prime parses");
        let p_minus_1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
        let odd = Odd::new(p).into_option().expect("built-in prime is odd");
        Group { bits, params: BoxedMontyParams::new(odd), p_minus_1 }
    }))
}

/// Private exponent length in bytes per group (RFC 7919 asks for at least 225/275/325/375/400
/// bits).
pub(crate) fn exponent_len(g: DhGroup) -> usize {
    match g {
        DhGroup::Null => 0,
        DhGroup::Ffdhe2048 => 32,
        DhGroup::Ffdhe3072 => 40,
        DhGroup::Ffdhe4096 => 48,
        DhGroup::Ffdhe6144 => 56,
        DhGroup::Ffdhe8192 => 64,
    }
}

fn exp_bits(g: DhGroup) -> u32 {
    (exponent_len(g) * 8) as u32
}

/// An ephemeral DH key pair for one transaction.
pub struct DhKeyPair {
    group: DhGroup,
    exponent: BoxedUint,
    public: Vec<u8>,
}

impl DhKeyPair {
    /// A fresh key pair in `group` (not the null group).
    pub fn generate(group: DhGroup, rng: &mut impl RandomSource) -> Result<DhKeyPair, DhError> {
        if group == DhGroup::Null {
            return Err(DhError::NullGroup);
        }
        let mut x = vec![0u8; exponent_len(group)];
        rng.fill(&mut x)?;
        let pair = DhKeyPair::from_exponent(group, &x);
        x.fill(0);
        pair
    }

    /// The key pair with private exponent `x` (big-endian, `exponent_len` bytes; the top bit is
    /// forced on). One modular exponentiation: the costly half of [`DhKeyPair::generate`].
    pub(crate) fn from_exponent(group: DhGroup, x: &[u8]) -> Result<DhKeyPair, DhError> {
        let grp = self::group(group).ok_or(DhError::NullGroup)?;
        let mut x = x.to_vec();
        // A fixed top bit makes every exponent exactly as long as intended (never 0 or 1).
        x[0] |= 0x80;
        let exponent = BoxedUint::from_be_slice(&x, grp.bits).expect("exponent fits the prime");
        x.fill(0);
        let two = BoxedUint::from_be_slice(&[2], grp.bits).expect("2 fits the prime");
        let y = BoxedMontyForm::new(two, &grp.params).pow_bounded_exp(&exponent, exp_bits(group));
        let public = padded(&y.retrieve(), group.value_len());
        Ok(DhKeyPair { group, exponent, public })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// g^x mod p, big-endian, padded to the prime length (the DHV field).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Checks the peer's value as [`DhKeyPair::shared_secret`] does, without the exponentiation
    /// (cheap: the caller can refuse a bad value before handing the work elsewhere).
    pub fn check_peer_value(&self, peer: &[u8]) -> Result<(), DhError> {
        self.peer_value(peer).map(|_| ())
    }

    fn peer_value(&self, peer: &[u8]) -> Result<(&'static Group, BoxedUint), DhError> {
        let grp = group(self.group).ok_or(DhError::NullGroup)?;
        let bad = DhError::PeerValue(self.group);
        if peer.is_empty() {
            return Err(bad);
        }
        let y = BoxedUint::from_be_slice(peer, grp.bits).map_err(|_| bad.clone())?;
        let one = BoxedUint::one_with_precision(grp.bits);
        // The peer value is public, so variable-time comparisons leak nothing secret.
        if y.cmp_vartime(&one).is_le() || y.cmp_vartime(&grp.p_minus_1).is_ge() {
            return Err(bad);
        }
        Ok((grp, y))
    }

    /// (peer)^x mod p, padded to the prime length. The peer value may be shorter than the
    /// prime (leading zeros dropped) but must lie in 2..=p-2: 0, 1 and p-1 would force a
    /// predictable secret.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<SharedSecret, DhError> {
        let (grp, y) = self.peer_value(peer)?;
        let z = BoxedMontyForm::new(y, &grp.params).pow_bounded_exp(&self.exponent, exp_bits(self.group));
        Ok(SharedSecret(padded(&z.retrieve(), self.group.value_len())))
    }
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhKeyPair").field("group", &self.group).finish_non_exhaustive()
    }
}

/// Big-endian bytes of `v`, left-padded (or trimmed of leading limb padding) to `len`.
fn padded(v: &BoxedUint, len: usize) -> Vec<u8> {
    let be = v.to_be_bytes();
    if be.len() >= len {
        be[be.len() - len..].to_vec()
    } else {
        let mut out = vec![0u8; len - be.len()];
        out.extend_from_slice(&be);
        out
    }
}

/// The DH shared secret g^xy mod p (secret material; zeroed on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    /// The secret bytes, padded to the prime length.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Known answer computed independently with Python's built-in `pow(2, x, p)` on the
    /// RFC 7919 prime: exponents 0x91 12 13 .. 30 (host) and 0xa1 22 23 .. 40 (controller),
    /// i.e. bytes (0x11 | 0x80), 0x12..=0x30 and (0x21 | 0x80), 0x22..=0x40. The values are
    /// compared through their SHA-256 to keep the test short.
    #[test]
    fn ffdhe2048_known_answer() {
        let xb: Vec<u8> = std::iter::once(0x11).chain(0x12..0x12 + 31).collect();
        let yb: Vec<u8> = std::iter::once(0x21).chain(0x22..0x22 + 31).collect();
        let host = DhKeyPair::from_exponent(DhGroup::Ffdhe2048, &xb).unwrap();
        let ctrl = DhKeyPair::from_exponent(DhGroup::Ffdhe2048, &yb).unwrap();
        assert_eq!(host.public_value().len(), 256);
        assert_eq!(
            hex(&Sha256::digest(host.public_value())),
            "215c3e36e762c76e0328a839b84bb64635ecf23835afff9a972084c691a68d98"
        );
        let z1 = host.shared_secret(ctrl.public_value()).unwrap();
        let z2 = ctrl.shared_secret(host.public_value()).unwrap();
        assert_eq!(z1, z2);
        assert_eq!(
            hex(&Sha256::digest(z1.as_bytes())),
            "75231f72be21662863194a02aef5efad3119ce6dde9b22058cef5f8595da7bb4"
        );
    }

    #[test]
    fn peer_values_out_of_range_are_refused() {
        let pair = DhKeyPair::from_exponent(DhGroup::Ffdhe2048, &[0x42; 32]).unwrap();
        let p_minus_1 = padded(&group(DhGroup::Ffdhe2048).unwrap().p_minus_1, 256);
        let mut p = p_minus_1.clone();
        p[255] += 1;
        for bad in [vec![], vec![0], vec![1], vec![0; 256], p_minus_1, p, vec![0xff; 257]] {
            assert!(pair.shared_secret(&bad).is_err(), "{bad:?}");
        }
        // Short (leading zeros dropped) but in range is fine.
        assert!(pair.shared_secret(&[2]).is_ok());
    }

    #[test]
    fn every_group_agrees() {
        let mut rng = crate::rng::SeededRandom::new(7);
        for g in DhGroup::ALL.into_iter().skip(1) {
            let a = DhKeyPair::generate(g, &mut rng).unwrap();
            let b = DhKeyPair::generate(g, &mut rng).unwrap();
            assert_eq!(a.public_value().len(), g.value_len());
            assert_eq!(a.shared_secret(b.public_value()).unwrap(), b.shared_secret(a.public_value()).unwrap());
        }
        assert_eq!(DhKeyPair::generate(DhGroup::Null, &mut rng).unwrap_err(), DhError::NullGroup);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
