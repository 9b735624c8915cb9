//! The controller (target) side of DH-HMAC-CHAP on one queue.
//!
//! Flow: each Authentication Send payload goes to [`ControllerAuth::on_message`]. AUTH_Negotiate
//! yields the Challenge, a valid Reply yields Success1 (with the controller's response when the
//! host asked for it), Success2 ends a bidirectional transaction. The bytes a step carries are
//! the data of the host's next Authentication Receive. Errors carry the AUTH_Failure1 to return
//! on that Receive instead; after it the target tears the queue down. A new AUTH_Negotiate on an
//! authenticated queue is a re-authentication.

use std::sync::Arc;

use crate::crypto::{self, ResponseInput, Role};
use crate::dh::{DhKeyPair, SharedSecret};
use crate::ids::{DhGroup, FailureReason, HashId, PROTOCOL_DHCHAP, SC_C_NONE};
use crate::message::{AuthMessage, Challenge, Failure, Negotiate, Reply, Success1};
use crate::rng::{OsRandom, RandomSource, SeqnumCounter};
use crate::secret::{Secret, SecretError, TransformedKey};
use crate::step::{AuthError, AuthFailure, Step};

/// What the controller allows, for one subsystem (share it across queues in an `Arc`).
#[derive(Debug)]
pub struct ControllerConfig {
    /// The subsystem NQN.
    pub subsysnqn: String,
    /// Allowed hashes, most preferred first; the first one the host offers is chosen.
    pub hashes: Vec<HashId>,
    /// Allowed DH groups, most preferred first.
    pub dh_groups: Vec<DhGroup>,
    /// Source of S1.
    pub seqnum: Arc<SeqnumCounter>,
}

impl ControllerConfig {
    /// Strongest first (as SPDK orders them): SHA-512 down to SHA-256, ffdhe8192 down to null.
    pub fn new(subsysnqn: impl Into<String>) -> ControllerConfig {
        let seqnum = SeqnumCounter::random(&mut OsRandom).unwrap_or_else(|_| SeqnumCounter::new(0));
        ControllerConfig {
            subsysnqn: subsysnqn.into(),
            hashes: HashId::ALL.into_iter().rev().collect(),
            dh_groups: DhGroup::ALL.into_iter().rev().collect(),
            seqnum: Arc::new(seqnum),
        }
    }
}

/// One host's credentials as the controller knows them (from the config file or CLI).
#[derive(Debug, Clone)]
pub struct HostCredentials {
    /// The host NQN from Connect.
    pub hostnqn: String,
    /// The host's secret; `None` means the host cannot authenticate (every Reply fails).
    pub secret: Option<Secret>,
    /// The controller secret used to answer this host's bidirectional requests.
    pub controller_secret: Option<Secret>,
}

impl HostCredentials {
    /// Credentials from the strings a config file or the CLI carries (`DHHC-1:...` secrets).
    pub fn from_config(
        hostnqn: impl Into<String>,
        secret: Option<&str>,
        controller_secret: Option<&str>,
    ) -> Result<HostCredentials, SecretError> {
        Ok(HostCredentials {
            hostnqn: hostnqn.into(),
            secret: secret.map(Secret::parse).transpose()?,
            controller_secret: controller_secret.map(Secret::parse).transpose()?,
        })
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for AUTH_Negotiate.
    AwaitNegotiate,
    AwaitReply {
        hash: HashId,
        dh_group: DhGroup,
        seqnum: u32,
        challenge: Vec<u8>,
        dh: Option<DhKeyPair>,
    },
    AwaitSuccess2 {
        hash: HashId,
        dh_group: DhGroup,
    },
    Authenticated {
        hash: HashId,
        dh_group: DhGroup,
    },
    Failed(FailureReason),
}

/// Controller-side DH-HMAC-CHAP state machine for one queue.
#[derive(Debug)]
pub struct ControllerAuth<R: RandomSource = OsRandom> {
    cfg: Arc<ControllerConfig>,
    host: HostCredentials,
    rng: R,
    host_key: Option<TransformedKey>,
    ctrl_key: Option<TransformedKey>,
    t_id: u16,
    reauth: bool,
    state: State,
}

impl<R: RandomSource> ControllerAuth<R> {
    /// A state machine for a queue of `host`, waiting for AUTH_Negotiate.
    pub fn new(cfg: Arc<ControllerConfig>, host: HostCredentials, rng: R) -> ControllerAuth<R> {
        let host_key = host.secret.as_ref().map(|s| s.transform(&host.hostnqn));
        let ctrl_key = host.controller_secret.as_ref().map(|s| s.transform(&cfg.subsysnqn));
        ControllerAuth { cfg, host, rng, host_key, ctrl_key, t_id: 0, reauth: false, state: State::AwaitNegotiate }
    }

    /// Whether the queue is authenticated (after the last transaction).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    /// Whether the transaction in progress (or last finished) is a re-authentication of an
    /// already authenticated queue: while it runs the queue stays usable.
    pub fn is_reauthentication(&self) -> bool {
        self.reauth
    }

    /// The hash and group chosen, once authenticated.
    pub fn negotiated(&self) -> Option<(HashId, DhGroup)> {
        match self.state {
            State::Authenticated { hash, dh_group } => Some((hash, dh_group)),
            _ => None,
        }
    }

    /// Ends the transaction (timeout, an Authentication Receive with nothing to return): the
    /// AUTH_Failure1 to return as that Receive's data.
    pub fn abort(&mut self, reason: FailureReason) -> Vec<u8> {
        self.state = State::Failed(reason);
        AuthMessage::Failure1(Failure { t_id: self.t_id, reason }).encode()
    }

    /// Feeds one Authentication Send payload (exactly the command's transfer length).
    pub fn on_message(&mut self, bytes: &[u8]) -> Result<Step, AuthFailure> {
        let result = self.handle(bytes);
        if let Err(f) = &result {
            self.state = State::Failed(f.reason);
        }
        result
    }

    fn fail(&self, error: AuthError) -> AuthFailure {
        AuthFailure::tell(error, self.t_id, AuthMessage::Failure1)
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<Step, AuthFailure> {
        if let State::Failed(reason) = self.state {
            // Keep answering with the original failure, as the queue is on its way down.
            let mut f = self.fail(AuthError::Finished("failed"));
            f.reason = reason;
            f.send = Some(AuthMessage::Failure1(Failure { t_id: self.t_id, reason }).encode());
            return Err(f);
        }
        let msg = match AuthMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                // Address the failure to the transaction the bytes claim, before any exists.
                if matches!(self.state, State::AwaitNegotiate | State::Authenticated { .. })
                    && let Some(t) = AuthMessage::peek_t_id(bytes)
                {
                    self.t_id = t;
                }
                return Err(self.fail(e.into()));
            }
        };
        if let AuthMessage::Failure2(f) = msg {
            return Err(AuthFailure::silent(AuthError::PeerFailure(f.reason)));
        }
        let expected = match self.state {
            State::AwaitNegotiate => "awaiting Negotiate",
            State::AwaitReply { .. } => "awaiting Reply",
            State::AwaitSuccess2 { .. } => "awaiting Success2",
            State::Authenticated { .. } => "authenticated",
            State::Failed(_) => "failed",
        };
        match (msg, &self.state) {
            (AuthMessage::Negotiate(n), State::AwaitNegotiate | State::Authenticated { .. }) => {
                self.reauth = matches!(self.state, State::Authenticated { .. });
                self.on_negotiate(n)
            }
            (AuthMessage::Reply(r), State::AwaitReply { .. }) => self.on_reply(r),
            (AuthMessage::Success2 { t_id }, State::AwaitSuccess2 { hash, dh_group }) => {
                if t_id != self.t_id {
                    return Err(self.fail(AuthError::TransactionId { expected: self.t_id, got: t_id }));
                }
                self.state = State::Authenticated { hash: *hash, dh_group: *dh_group };
                Ok(Step::Authenticated)
            }
            (other, _) => Err(self.fail(AuthError::Unexpected { expected, got: other.kind() })),
        }
    }

    fn on_negotiate(&mut self, n: Negotiate) -> Result<Step, AuthFailure> {
        self.t_id = n.t_id;
        if n.sc_c != SC_C_NONE {
            return Err(self.fail(AuthError::SccUnsupported(n.sc_c)));
        }
        let Some(desc) = n.protocols.iter().find(|d| d.auth_id == PROTOCOL_DHCHAP) else {
            return Err(self.fail(AuthError::NoProtocol));
        };
        let Some(hash) = self.cfg.hashes.iter().copied().find(|h| desc.hash_ids.contains(&h.id())) else {
            return Err(self.fail(AuthError::NoCommonHash));
        };
        let Some(dh_group) = self.cfg.dh_groups.iter().copied().find(|g| desc.dh_group_ids.contains(&g.id())) else {
            return Err(self.fail(AuthError::NoCommonDhGroup));
        };
        let mut challenge = vec![0u8; hash.hash_len()];
        self.rng.fill(&mut challenge).map_err(|e| self.fail(e.into()))?;
        let dh = if dh_group == DhGroup::Null {
            None
        } else {
            Some(DhKeyPair::generate(dh_group, &mut self.rng).map_err(|e| self.fail(e.into()))?)
        };
        let seqnum = self.cfg.seqnum.next();
        let msg = AuthMessage::Challenge(Challenge {
            t_id: self.t_id,
            hash,
            dh_group,
            seqnum,
            challenge: challenge.clone(),
            dh_value: dh.as_ref().map_or_else(Vec::new, |d| d.public_value().to_vec()),
        });
        self.state = State::AwaitReply { hash, dh_group, seqnum, challenge, dh };
        Ok(Step::Send(msg.encode()))
    }

    fn on_reply(&mut self, r: Reply) -> Result<Step, AuthFailure> {
        let State::AwaitReply { hash, dh_group, seqnum, challenge, dh } =
            std::mem::replace(&mut self.state, State::Failed(FailureReason::Failed))
        else {
            unreachable!("checked by handle")
        };
        if r.t_id != self.t_id {
            return Err(self.fail(AuthError::TransactionId { expected: self.t_id, got: r.t_id }));
        }
        if r.response.len() != hash.hash_len() {
            return Err(self.fail(AuthError::HashLength { expected: hash.hash_len(), got: r.response.len() }));
        }
        if r.controller_challenge.is_some() && r.seqnum == 0 {
            return Err(self.fail(AuthError::SeqnumZero));
        }
        let dh_secret = match &dh {
            None if r.dh_value.is_empty() => None,
            None => {
                return Err(self.fail(AuthError::DhValue(format!("{} bytes with the null group", r.dh_value.len()))));
            }
            Some(pair) => {
                if r.dh_value.len() > dh_group.value_len() {
                    return Err(self.fail(AuthError::DhValue(format!("{} bytes for {dh_group}", r.dh_value.len()))));
                }
                Some(pair.shared_secret(&r.dh_value).map_err(|e| self.fail(e.into()))?)
            }
        };
        let dh_bytes = dh_secret.as_ref().map(SharedSecret::as_bytes);
        let Some(host_key) = &self.host_key else {
            return Err(self.fail(AuthError::MissingHostSecret(self.host.hostnqn.clone())));
        };
        let ok = crypto::verify_response(
            Role::Host,
            host_key.as_bytes(),
            &ResponseInput {
                hash,
                challenge: &challenge,
                dh_secret: dh_bytes,
                seqnum,
                t_id: self.t_id,
                sc_c: SC_C_NONE,
                hostnqn: &self.host.hostnqn,
                subsysnqn: &self.cfg.subsysnqn,
            },
            &r.response,
        );
        if !ok {
            return Err(self.fail(AuthError::HostResponseMismatch));
        }
        let hl = hash.hash_len() as u8;
        let Some(c2) = r.controller_challenge else {
            self.state = State::Authenticated { hash, dh_group };
            return Ok(Step::SendThenAuthenticated(
                AuthMessage::Success1(Success1 { t_id: self.t_id, hash_len: hl, response: None }).encode(),
            ));
        };
        let Some(ctrl_key) = &self.ctrl_key else {
            return Err(self.fail(AuthError::MissingControllerSecret));
        };
        let response = crypto::response(
            Role::Controller,
            ctrl_key.as_bytes(),
            &ResponseInput {
                hash,
                challenge: &c2,
                dh_secret: dh_bytes,
                seqnum: r.seqnum,
                t_id: self.t_id,
                sc_c: SC_C_NONE,
                hostnqn: &self.host.hostnqn,
                subsysnqn: &self.cfg.subsysnqn,
            },
        );
        self.state = State::AwaitSuccess2 { hash, dh_group };
        Ok(Step::Send(
            AuthMessage::Success1(Success1 { t_id: self.t_id, hash_len: hl, response: Some(response) }).encode(),
        ))
    }
}
