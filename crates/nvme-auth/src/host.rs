//! The host (initiator) side of one DH-HMAC-CHAP transaction on one queue.
//!
//! Flow: [`HostAuth::start`] gives AUTH_Negotiate (Authentication Send); each Authentication
//! Receive's data goes to [`HostAuth::on_message`]: a Challenge yields the Reply to send, a
//! Success1 yields either "authenticated" or (bidirectional) the Success2 to send after the
//! controller's response verified, an AUTH_Failure1 ends the transaction. Calling `start` again
//! re-authenticates (a new transaction, new T_ID).

use std::sync::Arc;

use crate::crypto::{self, ResponseInput, Role};
use crate::dh::{DhKeyPair, SharedSecret};
use crate::ids::{DhGroup, HashId, PROTOCOL_DHCHAP, SC_C_NONE};
use crate::message::{AuthMessage, Challenge, Negotiate, ProtocolDescriptor, Reply, Success1};
use crate::rng::{OsRandom, RandomSource, SeqnumCounter};
use crate::secret::{Secret, TransformedKey};
use crate::step::{AuthError, AuthFailure, Step};

/// What a host authenticates with, for one controller (share it across queues in an `Arc`).
#[derive(Debug)]
pub struct HostConfig {
    /// The host NQN (as in Connect).
    pub hostnqn: String,
    /// The subsystem NQN (as in Connect).
    pub subsysnqn: String,
    /// The host secret (`--dhchap-secret`).
    pub secret: Secret,
    /// The controller secret (`--dhchap-ctrl-secret`): when set, the host also asks the
    /// controller to prove itself (bidirectional authentication).
    pub controller_secret: Option<Secret>,
    /// Hashes offered in AUTH_Negotiate.
    pub hashes: Vec<HashId>,
    /// DH groups offered in AUTH_Negotiate.
    pub dh_groups: Vec<DhGroup>,
    /// Source of S2 for bidirectional transactions.
    pub seqnum: Arc<SeqnumCounter>,
}

impl HostConfig {
    /// A configuration offering every hash and group, with a randomly started S2 counter.
    pub fn new(hostnqn: impl Into<String>, subsysnqn: impl Into<String>, secret: Secret) -> HostConfig {
        let seqnum = SeqnumCounter::random(&mut OsRandom).unwrap_or_else(|_| SeqnumCounter::new(0));
        HostConfig {
            hostnqn: hostnqn.into(),
            subsysnqn: subsysnqn.into(),
            secret,
            controller_secret: None,
            hashes: HashId::ALL.to_vec(),
            dh_groups: DhGroup::ALL.to_vec(),
            seqnum: Arc::new(seqnum),
        }
    }
}

/// Where the transaction stands.
#[derive(Debug)]
enum State {
    Idle,
    AwaitChallenge,
    AwaitSuccess1 { hash: HashId, dh_group: DhGroup, bidi: Option<Pending> },
    Authenticated { hash: HashId, dh_group: DhGroup },
    Failed,
}

/// What verifying the controller's response needs.
#[derive(Debug)]
struct Pending {
    challenge: Vec<u8>,
    seqnum: u32,
    dh_secret: Option<SharedSecret>,
}

/// Host-side DH-HMAC-CHAP state machine for one queue.
#[derive(Debug)]
pub struct HostAuth<R: RandomSource = OsRandom> {
    cfg: Arc<HostConfig>,
    rng: R,
    host_key: TransformedKey,
    ctrl_key: Option<TransformedKey>,
    t_id: u16,
    state: State,
}

impl<R: RandomSource> HostAuth<R> {
    /// A state machine for one queue; nothing is sent until [`HostAuth::start`].
    pub fn new(cfg: Arc<HostConfig>, rng: R) -> HostAuth<R> {
        let host_key = cfg.secret.transform(&cfg.hostnqn);
        let ctrl_key = cfg.controller_secret.as_ref().map(|s| s.transform(&cfg.subsysnqn));
        HostAuth { cfg, rng, host_key, ctrl_key, t_id: 0, state: State::Idle }
    }

    /// Begins a transaction (or re-authentication) with transaction id `t_id`: the
    /// AUTH_Negotiate bytes to send with Authentication Send.
    pub fn start(&mut self, t_id: u16) -> Vec<u8> {
        self.t_id = t_id;
        self.state = State::AwaitChallenge;
        AuthMessage::Negotiate(Negotiate {
            t_id,
            sc_c: SC_C_NONE,
            protocols: vec![ProtocolDescriptor {
                auth_id: PROTOCOL_DHCHAP,
                hash_ids: self.cfg.hashes.iter().map(|h| h.id()).collect(),
                dh_group_ids: self.cfg.dh_groups.iter().map(|g| g.id()).collect(),
            }],
        })
        .encode()
    }

    /// Whether the last transaction succeeded.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    /// Whether this host asks the controller to authenticate itself.
    pub fn is_bidirectional(&self) -> bool {
        self.ctrl_key.is_some()
    }

    /// The hash and group the controller chose, once authenticated.
    pub fn negotiated(&self) -> Option<(HashId, DhGroup)> {
        match self.state {
            State::Authenticated { hash, dh_group } => Some((hash, dh_group)),
            _ => None,
        }
    }

    /// Feeds the data of one Authentication Receive.
    ///
    /// On error the transaction is over; `AuthFailure::send`, if any, is the AUTH_Failure2 to
    /// send with Authentication Send before giving up on the queue.
    pub fn on_message(&mut self, bytes: &[u8]) -> Result<Step, AuthFailure> {
        let result = self.handle(bytes);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn fail(&self, error: AuthError) -> AuthFailure {
        AuthFailure::tell(error, self.t_id, AuthMessage::Failure2)
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<Step, AuthFailure> {
        if matches!(self.state, State::Failed) {
            return Err(AuthFailure::silent(AuthError::Finished("failed")));
        }
        let (msg, _) = AuthMessage::decode_prefix(bytes).map_err(|e| self.fail(e.into()))?;
        if let AuthMessage::Failure1(f) = msg {
            return Err(AuthFailure::silent(AuthError::PeerFailure(f.reason)));
        }
        let expected = match self.state {
            State::Idle => "idle (no transaction started)",
            State::AwaitChallenge => "awaiting Challenge",
            State::AwaitSuccess1 { .. } => "awaiting Success1",
            State::Authenticated { .. } => "authenticated",
            State::Failed => "failed",
        };
        match (msg, &self.state) {
            (AuthMessage::Challenge(c), State::AwaitChallenge) => self.on_challenge(c),
            (AuthMessage::Success1(s), State::AwaitSuccess1 { .. }) => self.on_success1(s),
            (other, _) => Err(self.fail(AuthError::Unexpected { expected, got: other.kind() })),
        }
    }

    fn on_challenge(&mut self, c: Challenge) -> Result<Step, AuthFailure> {
        if c.t_id != self.t_id {
            return Err(self.fail(AuthError::TransactionId { expected: self.t_id, got: c.t_id }));
        }
        if c.seqnum == 0 {
            return Err(self.fail(AuthError::SeqnumZero));
        }
        if !self.cfg.hashes.contains(&c.hash) {
            return Err(self.fail(AuthError::HashNotAllowed(c.hash)));
        }
        if !self.cfg.dh_groups.contains(&c.dh_group) {
            return Err(self.fail(AuthError::DhGroupNotAllowed(c.dh_group)));
        }
        let hl = c.hash.hash_len();
        let (dh_public, dh_secret) = if c.dh_group == DhGroup::Null {
            (Vec::new(), None)
        } else {
            let pair = DhKeyPair::generate(c.dh_group, &mut self.rng).map_err(|e| self.fail(e.into()))?;
            let secret = pair.shared_secret(&c.dh_value).map_err(|e| self.fail(e.into()))?;
            (pair.public_value().to_vec(), Some(secret))
        };
        let cfg = Arc::clone(&self.cfg);
        let response = crypto::response(
            Role::Host,
            self.host_key.as_bytes(),
            &ResponseInput {
                hash: c.hash,
                challenge: &c.challenge,
                dh_secret: dh_secret.as_ref().map(SharedSecret::as_bytes),
                seqnum: c.seqnum,
                t_id: self.t_id,
                sc_c: SC_C_NONE,
                hostnqn: &cfg.hostnqn,
                subsysnqn: &cfg.subsysnqn,
            },
        );
        let bidi = if self.ctrl_key.is_some() {
            let mut challenge = vec![0u8; hl];
            self.rng.fill(&mut challenge).map_err(|e| self.fail(e.into()))?;
            Some(Pending { challenge, seqnum: cfg.seqnum.next(), dh_secret })
        } else {
            None
        };
        let reply = AuthMessage::Reply(Reply {
            t_id: self.t_id,
            response,
            controller_challenge: bidi.as_ref().map(|p| p.challenge.clone()),
            seqnum: bidi.as_ref().map_or(0, |p| p.seqnum),
            dh_value: dh_public,
        });
        self.state = State::AwaitSuccess1 { hash: c.hash, dh_group: c.dh_group, bidi };
        Ok(Step::Send(reply.encode()))
    }

    fn on_success1(&mut self, s: Success1) -> Result<Step, AuthFailure> {
        let State::AwaitSuccess1 { hash, dh_group, bidi } = std::mem::replace(&mut self.state, State::Failed) else {
            unreachable!("checked by handle")
        };
        if s.t_id != self.t_id {
            return Err(self.fail(AuthError::TransactionId { expected: self.t_id, got: s.t_id }));
        }
        let Some(p) = bidi else {
            // Unidirectional: a response the host did not ask for is ignored, as the kernel does.
            self.state = State::Authenticated { hash, dh_group };
            return Ok(Step::Authenticated);
        };
        let Some(r) = s.response else {
            return Err(self.fail(AuthError::MissingControllerResponse));
        };
        if r.len() != hash.hash_len() {
            return Err(self.fail(AuthError::HashLength { expected: hash.hash_len(), got: r.len() }));
        }
        let Some(key) = &self.ctrl_key else { unreachable!("bidi implies a controller key") };
        let ok = crypto::verify_response(
            Role::Controller,
            key.as_bytes(),
            &ResponseInput {
                hash,
                challenge: &p.challenge,
                dh_secret: p.dh_secret.as_ref().map(SharedSecret::as_bytes),
                seqnum: p.seqnum,
                t_id: self.t_id,
                sc_c: SC_C_NONE,
                hostnqn: &self.cfg.hostnqn,
                subsysnqn: &self.cfg.subsysnqn,
            },
            &r,
        );
        if !ok {
            return Err(self.fail(AuthError::ControllerResponseMismatch));
        }
        self.state = State::Authenticated { hash, dh_group };
        Ok(Step::SendThenAuthenticated(AuthMessage::Success2 { t_id: self.t_id }.encode()))
    }
}
