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
//!
//! # Wiring
//!
//! Target (ff-nvmf / ff-target), per queue:
//! 1. Connect: if the host must authenticate (a secret is configured for its NQN, or policy
//!    demands it), complete Connect with [`fabrics::connect_response_dw0`]`(cntlid, true)`
//!    (ATR, DW0 bit 17) and create a [`ControllerAuth`] from the subsystem's shared
//!    [`ControllerConfig`] and the host's [`HostCredentials`]. Until it reports
//!    authenticated, fail every command except Connect, Disconnect and Authentication
//!    Send/Receive with SCT 1h / SC 91h ([`fabrics::SC_AUTH_REQUIRED`]).
//! 2. Authentication Send (Fabrics opcode 7Fh, FCTYPE 05h): check CDW10/CDW11 with
//!    [`fabrics::AuthCommand`] (SECP E9h, SPSP0/SPSP1 01h; otherwise Invalid Field), read TL
//!    bytes, pass them to `on_message`, complete the Send with success in every case and
//!    keep the returned bytes ([`Step`] or [`AuthFailure::send`]) for the next Receive.
//! 3. Authentication Receive (FCTYPE 06h, AL in CDW11): return the kept bytes (truncated to
//!    AL); with nothing kept, return [`ControllerAuth::abort`]. After delivering a failure,
//!    log [`AuthFailure`] and disconnect the queue (at once when it carries nothing to send:
//!    the host's AUTH_Failure2); after `SendThenAuthenticated` or `Authenticated`, enable it. A transaction that stalls past the timeout is aborted too.
//! 4. A later AUTH_Negotiate on an enabled queue is a re-authentication: keep the queue usable
//!    while it runs, disconnect if it fails.
//!
//! Initiator, per queue: after Connect, if [`fabrics::connect_requires_auth`] on DW0 (and a
//! secret is configured; without one, fail the connection), build a [`HostAuth`], send
//! [`HostAuth::start`]`(t_id)` with Authentication Send, then alternate Authentication
//! Receive (feed the data to `on_message`) and Send (of each [`Step::Send`] /
//! [`Step::SendThenAuthenticated`]) until authenticated; on [`AuthFailure`] send its
//! Failure2 if any, then fail the connection. Re-authenticate by calling `start` again.
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

pub use controller::{ControllerAuth, ControllerConfig, DhDone, DhJob, HostCredentials, Progress};
pub use host::{HostAuth, HostConfig};
pub use ids::{DhGroup, FailureReason, HashId};
pub use message::{AuthMessage, DecodeError};
pub use rng::{OsRandom, RandomSource, SeededRandom, SeqnumCounter};
pub use secret::{Secret, SecretError, TransformedKey};
pub use step::{AuthError, AuthFailure, Step};
