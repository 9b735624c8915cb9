//! Errors: [`Error`] for connection setup and admin commands, [`IoError`] for one I/O command. Both are
//! plain values (cloneable) so one failure can be reported to every command it affects.

use ff_nvme::nvme::Status;
use ff_nvme_auth::{AuthError, FailureReason, SecretError};
use ff_nvme_tcp::host::HostError;

/// Why a setup step or admin command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("socket: {0}")]
    Sock(String),
    /// The controller broke the protocol, or terminated the connection.
    #[error(transparent)]
    Transport(#[from] HostError),
    /// The connection went away.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Nothing arrived in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The controller completed a command with an error status.
    #[error("{what} failed with status {:#x}/{:#x}", status.sct(), status.sc())]
    Status {
        /// The command.
        what: &'static str,
        /// Its status.
        status: Status,
    },
    /// The controller's answer makes no sense (e.g. a malformed Identify page).
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The TLS handshake failed or kernel TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The request is invalid (e.g. no such queue, or the controller is shut down).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// A DH-HMAC-CHAP secret string does not parse.
    #[error("invalid DH-HMAC-CHAP {which}: {cause}")]
    BadSecret {
        /// "host secret" or "controller secret".
        which: &'static str,
        /// Why (never the key itself).
        cause: SecretError,
    },
    /// DH-HMAC-CHAP authentication of a queue failed (the queue is given up).
    #[error("DH-HMAC-CHAP authentication of queue {qid} failed: {cause}")]
    Auth {
        /// The queue (0: admin).
        qid: u16,
        /// Why.
        cause: AuthCause,
    },
}

/// Why DH-HMAC-CHAP authentication of a queue failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthCause {
    /// The controller requires authentication (Connect ATR) and no host secret is configured.
    #[error("the controller requires authentication but no host secret (--dhchap-secret) is configured")]
    NoSecret,
    /// The controller refused us with AUTH_Failure1 (e.g. a wrong host secret for this host NQN).
    #[error("the controller refused us: {reason}{hint}", reason = .0, hint = secret_hint(*.0))]
    Rejected(FailureReason),
    /// Bidirectional: the controller's response does not match our controller secret.
    #[error(
        "the controller failed our check: its response does not match the controller secret (--dhchap-ctrl-secret)"
    )]
    ControllerNotVerified,
    /// Our side of the protocol refused a message (malformed, unexpected, a hash or group we do not offer).
    #[error("{0}")]
    Protocol(AuthError),
    /// Authentication Send or Receive completed with an error status.
    #[error("{what} failed with status {:#x}/{:#x}", status.sct(), status.sc())]
    Command {
        /// The command.
        what: &'static str,
        /// Its status.
        status: Status,
    },
}

impl From<ff_sock::SockError> for Error {
    fn from(e: ff_sock::SockError) -> Error {
        match e {
            ff_sock::SockError::Eof | ff_sock::SockError::Reset | ff_sock::SockError::Closed => {
                Error::ConnectionLost(e.to_string())
            }
            ff_sock::SockError::Timeout => Error::Timeout("connect"),
            e => Error::Sock(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Sock(e.to_string())
    }
}

/// The likely cause behind a plain "authentication failed" from the controller.
fn secret_hint(r: FailureReason) -> &'static str {
    if r == FailureReason::Failed { " (wrong host secret for this host NQN?)" } else { "" }
}

/// Why one I/O command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// The controller completed it with an error status.
    #[error("status {:#x}/{:#x}{}", status.sct(), status.sc(), if *dnr { " (do not retry)" } else { "" })]
    Status {
        /// The status.
        status: Status,
        /// Do Not Retry.
        dnr: bool,
    },
    /// Read data arrived with a wrong data digest: the buffer content is not trustworthy.
    #[error("data digest mismatch")]
    DataDigest,
    /// The queue's connection failed (closed, reset, protocol violation, TermReq) while it was in flight.
    #[error("connection failed: {0}")]
    ConnectionLost(String),
    /// Not completed within the command timeout (nor after an Abort); the queue was reconnected.
    #[error("command timed out")]
    Timeout,
    /// The queue cannot take commands (down, or full).
    #[error("queue unavailable: {0}")]
    Unavailable(&'static str),
}
