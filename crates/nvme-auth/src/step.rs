//! What the state machines hand back: the next [`Step`] on success, an [`AuthFailure`] (the
//! spec's reason, the detailed cause to log, and the failure message to deliver) otherwise.

use std::fmt;

use crate::dh::DhError;
use crate::ids::{DhGroup, FailureReason, HashId};
use crate::message::{AuthMessage, DecodeError, Failure, MessageKind};
use crate::rng::RandomError;

/// The outcome of feeding one message to a state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Deliver these bytes and expect more: the host sends them with Authentication Send; the
    /// controller returns them as the data of the next Authentication Receive.
    Send(Vec<u8>),
    /// Deliver these bytes; once delivered the queue is authenticated and nothing more follows
    /// (host: Success2; controller: Success1 without a controller response).
    SendThenAuthenticated(Vec<u8>),
    /// Authenticated, nothing to deliver (host: unidirectional Success1; controller: Success2).
    Authenticated,
}

/// The detailed cause of a failed transaction (for logs; the wire carries only the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A valid message that the protocol does not allow now.
    #[error("unexpected {got:?} while {expected}")]
    Unexpected {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// What arrived.
        got: MessageKind,
    },
    /// The message belongs to another transaction.
    #[error("transaction id {got} does not match {expected}")]
    TransactionId {
        /// The transaction in progress.
        expected: u16,
        /// The T_ID received.
        got: u16,
    },
    /// A challenge was sent with sequence number 0.
    #[error("sequence number 0 with a challenge")]
    SeqnumZero,
    /// Secure channel concatenation was requested; not supported.
    #[error("secure channel concatenation {0:#04x} requested; not supported")]
    SccUnsupported(u8),
    /// No DH-HMAC-CHAP descriptor in AUTH_Negotiate.
    #[error("no usable authentication protocol offered")]
    NoProtocol,
    /// No offered hash is allowed here.
    #[error("no offered hash function is allowed")]
    NoCommonHash,
    /// No offered DH group is allowed here.
    #[error("no offered DH group is allowed")]
    NoCommonDhGroup,
    /// The controller chose a hash the host does not allow.
    #[error("hash {0} not allowed by configuration")]
    HashNotAllowed(HashId),
    /// The controller chose a group the host does not allow.
    #[error("DH group {0} not allowed by configuration")]
    DhGroupNotAllowed(DhGroup),
    /// HL of a message does not match the negotiated hash.
    #[error("hash length {got} does not match the negotiated {expected}")]
    HashLength {
        /// The negotiated length.
        expected: usize,
        /// The HL received.
        got: usize,
    },
    /// The DH value is missing, of the wrong length, or out of range.
    #[error("bad DH value: {0}")]
    DhValue(String),
    /// The host's response does not verify (wrong secret).
    #[error("host response does not match the host secret")]
    HostResponseMismatch,
    /// The controller's response does not verify (wrong controller secret).
    #[error("controller response does not match the controller secret")]
    ControllerResponseMismatch,
    /// No host secret is configured for this host.
    #[error("no DH-HMAC-CHAP secret configured for host {0}")]
    MissingHostSecret(String),
    /// The host asked the controller to authenticate, but no controller secret is configured.
    #[error("bidirectional authentication requested but no controller secret is configured")]
    MissingControllerSecret,
    /// The host expected the controller's response in Success1 but none came.
    #[error("Success1 carries no controller response")]
    MissingControllerResponse,
    /// The peer sent AUTH_Failure1/AUTH_Failure2.
    #[error("peer reported failure: {0}")]
    PeerFailure(FailureReason),
    /// The state machine is finished (failed); start a new transaction.
    #[error("authentication transaction already {0}")]
    Finished(&'static str),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl From<DhError> for AuthError {
    fn from(e: DhError) -> AuthError {
        match e {
            DhError::Random(r) => AuthError::Random(r),
            other => AuthError::DhValue(other.to_string()),
        }
    }
}

impl AuthError {
    /// The reason code explanation the spec gives for this cause.
    pub fn reason(&self) -> FailureReason {
        match self {
            AuthError::Decode(_)
            | AuthError::TransactionId { .. }
            | AuthError::SeqnumZero
            | AuthError::HashLength { .. }
            | AuthError::DhValue(_)
            | AuthError::MissingControllerResponse => FailureReason::IncorrectPayload,
            AuthError::Unexpected { .. } | AuthError::Finished(_) => FailureReason::IncorrectProtocolMessage,
            AuthError::SccUnsupported(_) => FailureReason::SccMismatch,
            AuthError::NoProtocol => FailureReason::ProtocolUnusable,
            AuthError::NoCommonHash | AuthError::HashNotAllowed(_) => FailureReason::HashUnusable,
            AuthError::NoCommonDhGroup | AuthError::DhGroupNotAllowed(_) => FailureReason::DhGroupUnusable,
            AuthError::HostResponseMismatch
            | AuthError::ControllerResponseMismatch
            | AuthError::MissingHostSecret(_)
            | AuthError::MissingControllerSecret
            | AuthError::Random(_) => FailureReason::Failed,
            AuthError::PeerFailure(r) => *r,
        }
    }
}

/// A failed transaction: the reason the spec gives, the detailed cause for the log, and the
/// failure message to deliver (controller: AUTH_Failure1 as the next Authentication Receive's
/// data; host: AUTH_Failure2 by Authentication Send), if the peer is still to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// Reason code explanation (on the wire under reason code 01h).
    pub reason: FailureReason,
    /// What went wrong, in detail.
    pub error: AuthError,
    /// The failure message to deliver, if any (none after the peer's own failure message).
    pub send: Option<Vec<u8>>,
}

impl AuthFailure {
    /// A failure that tells the peer with `msg(Failure { t_id, reason })`.
    pub(crate) fn tell(error: AuthError, t_id: u16, msg: fn(Failure) -> AuthMessage) -> AuthFailure {
        let reason = error.reason();
        AuthFailure { reason, error, send: Some(msg(Failure { t_id, reason }).encode()) }
    }

    /// A failure the peer already knows about (it reported it).
    pub(crate) fn silent(error: AuthError) -> AuthFailure {
        AuthFailure { reason: error.reason(), error, send: None }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authentication failed ({}): {}", self.reason, self.error)
    }
}

impl std::error::Error for AuthFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
