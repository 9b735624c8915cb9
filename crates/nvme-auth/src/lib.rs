//! Sans-IO core of NVMe in-band authentication: DH-HMAC-CHAP as the NVMe Base specification
//! defines it (section "Authentication"), for both the target ([`ControllerAuth`]) and the
//! initiator ([`HostAuth`]). Bytes go in, bytes and decisions come out; no sockets, no threads,
//! one injectable [`RandomSource`].
//!
//! Big numbers: `crypto-bigint` (RustCrypto, constant-time Montgomery exponentiation, so the DH
//! private exponent does not leak through timing the way `num-bigint`'s `modpow` could).
//!
//! Modules:
//! - [`secret`]: `DHHC-1` secrets, generation, per-NQN transformation
//! - [`message`]: the message byte layouts
//! - [`crypto`]: responses and augmented challenges (HMAC/SHA-2 from RustCrypto)
//! - [`dh`]: FFDHE key pairs and shared secrets
//! - [`host`] / [`controller`]: the two state machines
//! - [`step`]: their results and failures
//! - [`fabrics`]: Authentication Send/Receive fields, AUTHREQ, status codes
//! - [`ids`]: wire identifiers; [`rng`]: randomness and sequence numbers
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod controller;
pub mod crypto;
pub mod dh;
pub mod fabrics;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod ids;
pub mod message;
mod primes;
pub mod rng;
pub mod secret;
pub mod step;

pub use controller::{ControllerAuth, ControllerConfig, HostCredentials};
pub use host::{HostAuth, HostConfig};
pub use ids::{DhGroup, FailureReason, HashId};
pub use message::{AuthMessage, DecodeError};
pub use rng::{OsRandom, RandomSource, SeededRandom, SeqnumCounter};
pub use secret::{Secret, SecretError, TransformedKey};
pub use step::{AuthError, AuthFailure, Step};
