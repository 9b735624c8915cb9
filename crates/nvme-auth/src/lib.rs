//! Sans-IO core of NVMe in-band authentication: DH-HMAC-CHAP as the NVMe Base specification
//! defines it (section "Authentication").
//!
//! Big numbers: `crypto-bigint` (RustCrypto, constant-time Montgomery exponentiation, so the DH
//! private exponent does not leak through timing the way `num-bigint`'s `modpow` could).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
pub mod dh;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ids;
pub mod message;
mod primes;
pub mod rng;
pub mod secret;

pub use ids::{DhGroup, FailureReason, HashId};
pub use message::{AuthMessage, DecodeError};
pub use rng::{OsRandom, RandomSource, SeededRandom, SeqnumCounter};
pub use secret::{Secret, SecretError, TransformedKey};
