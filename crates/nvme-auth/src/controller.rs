//! The controller (target) side of DH-HMAC-CHAP on one queue.
//!
//! Flow: each Authentication Send payload goes to [`ControllerAuth::on_message`]. AUTH_Negotiate
//! yields the Challenge, a valid Reply yields Success1 (with the controller's response when the
//! host asked for it), Success2 ends a bidirectional transaction. The bytes a step carries are
//! the data of the host's next Authentication Receive. Errors carry the AUTH_Failure1 to return
//! on that Receive instead; after it the target tears the queue down. A new AUTH_Negotiate on an
//! authenticated queue is a re-authentication.
//!
//! Diffie-Hellman off the caller's thread: with a group other than null, a Negotiate needs one
//! modular exponentiation (our public value) and a Reply another (the shared secret), each up to
//! tens of milliseconds for ffdhe8192. [`ControllerAuth::on_message`] computes them inline.
//! [`ControllerAuth::begin_message`] instead returns [`Progress::Compute`] with a [`DhJob`]: run
//! [`DhJob::compute`] anywhere (it is `Send` and owns its inputs), then feed the [`DhDone`] to
//! [`ControllerAuth::finish_dh`], which returns the step the message would have produced. The
//! null group, parsing and hashing stay inline (cheap). While a job is away the machine refuses
//! other messages (the transaction fails), and a result it no longer waits for (the transaction
//! failed or was aborted meanwhile) is refused by `finish_dh` and can be dropped.

use std::sync::Arc;

use crate::crypto::{self, ResponseInput, Role};
use crate::dh::{self, DhError, DhKeyPair, SharedSecret};
use crate::ids::{DhGroup, FailureReason, HashId, PROTOCOL_DHCHAP, SC_C_NONE};
use crate::message::{AuthMessage, Challenge, Failure, Negotiate, Reply, Success1};
use crate::rng::{OsRandom, RandomSource, SeqnumCounter};
use crate::secret::{Secret, SecretError, TransformedKey};
use crate::step::{AuthError, AuthFailure, Step};
use std::fmt;

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
    /// A [`DhJob`] is away; its result continues the message that needed it.
    AwaitDh {
        ticket: u64,
        then: AfterDh,
    },
    Authenticated {
        hash: HashId,
        dh_group: DhGroup,
    },
    Failed(FailureReason),
}

/// What a message that needed a DH computation goes on with once the result is in.
#[derive(Debug)]
enum AfterDh {
    /// Negotiate: the Challenge, with our new public value.
    Challenge { hash: HashId, dh_group: DhGroup, seqnum: u32, challenge: Vec<u8> },
    /// Reply (its DH value moved into the job): verify, then Success1.
    Reply { hash: HashId, dh_group: DhGroup, seqnum: u32, challenge: Vec<u8>, reply: Reply },
}

/// The outcome of [`ControllerAuth::begin_message`]: a step now, or a DH computation first.
#[derive(Debug)]
pub enum Progress {
    /// The message is handled; deliver the step as [`ControllerAuth::on_message`] would.
    Step(Step),
    /// Run this job (on any thread), then give its result to [`ControllerAuth::finish_dh`].
    Compute(DhJob),
}

/// A private exponent on its way to the key pair it makes (zeroed on drop).
struct Exponent(Vec<u8>);

impl Drop for Exponent {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

enum DhWork {
    /// g^x mod p: our key pair for the Challenge (`x` drawn from the machine's random source).
    KeyPair { group: DhGroup, x: Exponent },
    /// peer^x mod p: the shared secret of a Reply (the peer value is already range-checked).
    Shared { pair: DhKeyPair, peer: Vec<u8> },
}

/// One modular exponentiation a [`ControllerAuth`] waits for. Owns its inputs (secret ones
/// included: `Debug` shows none), so it may run on another thread.
pub struct DhJob {
    ticket: u64,
    work: DhWork,
}

impl DhJob {
    /// The group the computation is in.
    pub fn group(&self) -> DhGroup {
        match &self.work {
            DhWork::KeyPair { group, .. } => *group,
            DhWork::Shared { pair, .. } => pair.group(),
        }
    }

    /// Whether this is the shared secret of a Reply (else the key pair of a Challenge).
    pub fn is_shared_secret(&self) -> bool {
        matches!(self.work, DhWork::Shared { .. })
    }

    /// Runs the exponentiation (the costly part; no state of the machine is touched).
    pub fn compute(self) -> DhDone {
        let out = match self.work {
            DhWork::KeyPair { group, x } => DhOut::KeyPair(DhKeyPair::from_exponent(group, &x.0)),
            DhWork::Shared { pair, peer } => DhOut::Shared(pair.shared_secret(&peer)),
        };
        DhDone { ticket: self.ticket, out }
    }
}

impl fmt::Debug for DhJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhJob")
            .field("ticket", &self.ticket)
            .field("group", &self.group())
            .field("shared_secret", &self.is_shared_secret())
            .finish_non_exhaustive()
    }
}

enum DhOut {
    KeyPair(Result<DhKeyPair, DhError>),
    Shared(Result<SharedSecret, DhError>),
}

/// The result of a [`DhJob`], for [`ControllerAuth::finish_dh`] (secret: `Debug` shows none).
pub struct DhDone {
    ticket: u64,
    out: DhOut,
}

impl fmt::Debug for DhDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhDone").field("ticket", &self.ticket).finish_non_exhaustive()
    }
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
    /// The last [`DhJob`] ticket handed out.
    tickets: u64,
}

impl<R: RandomSource> ControllerAuth<R> {
    /// A state machine for a queue of `host`, waiting for AUTH_Negotiate.
    pub fn new(cfg: Arc<ControllerConfig>, host: HostCredentials, rng: R) -> ControllerAuth<R> {
        let host_key = host.secret.as_ref().map(|s| s.transform(&host.hostnqn));
        let ctrl_key = host.controller_secret.as_ref().map(|s| s.transform(&cfg.subsysnqn));
        ControllerAuth {
            cfg,
            host,
            rng,
            host_key,
            ctrl_key,
            t_id: 0,
            reauth: false,
            state: State::AwaitNegotiate,
            tickets: 0,
        }
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

    /// Whether a [`DhJob`] is away (the machine waits for [`ControllerAuth::finish_dh`]).
    pub fn awaits_dh(&self) -> bool {
        matches!(self.state, State::AwaitDh { .. })
    }

    /// Feeds one Authentication Send payload (exactly the command's transfer length); any DH
    /// computation runs inline, on the caller's thread.
    pub fn on_message(&mut self, bytes: &[u8]) -> Result<Step, AuthFailure> {
        match self.begin_message(bytes)? {
            Progress::Step(step) => Ok(step),
            Progress::Compute(job) => {
                self.finish_dh(job.compute()).expect("the machine waits for the job it just made")
            }
        }
    }

    /// Feeds one Authentication Send payload like [`ControllerAuth::on_message`], but hands a
    /// DH computation back to the caller instead of running it: see the module docs.
    pub fn begin_message(&mut self, bytes: &[u8]) -> Result<Progress, AuthFailure> {
        let result = self.handle(bytes);
        if let Err(f) = &result {
            self.state = State::Failed(f.reason);
        }
        result
    }

    /// Continues the message that asked for `done`'s job: the step it produces. `None` when the
    /// machine does not wait for this result (the transaction failed or was aborted meanwhile,
    /// or the result is of an older job): drop it, nothing changed.
    pub fn finish_dh(&mut self, done: DhDone) -> Option<Result<Step, AuthFailure>> {
        if !matches!(self.state, State::AwaitDh { ticket, .. } if ticket == done.ticket) {
            return None;
        }
        let State::AwaitDh { then, .. } = std::mem::replace(&mut self.state, State::Failed(FailureReason::Failed))
        else {
            unreachable!("checked above")
        };
        let result = match (then, done.out) {
            (AfterDh::Challenge { hash, dh_group, seqnum, challenge }, DhOut::KeyPair(pair)) => pair
                .map_err(|e| self.fail(e.into()))
                .map(|pair| self.challenge(hash, dh_group, seqnum, challenge, Some(pair))),
            (AfterDh::Reply { hash, dh_group, seqnum, challenge, reply }, DhOut::Shared(z)) => match z {
                Ok(z) => self.finish_reply(hash, dh_group, seqnum, &challenge, reply, Some(&z)),
                Err(e) => Err(self.fail(e.into())),
            },
            // A ticket names one job, and each job has one kind of result.
            _ => Err(self.fail(AuthError::Finished("waiting for another DH result"))),
        };
        if let Err(f) = &result {
            self.state = State::Failed(f.reason);
        }
        Some(result)
    }

    fn compute(&mut self, work: DhWork, then: AfterDh) -> Progress {
        self.tickets += 1;
        self.state = State::AwaitDh { ticket: self.tickets, then };
        Progress::Compute(DhJob { ticket: self.tickets, work })
    }

    fn fail(&self, error: AuthError) -> AuthFailure {
        AuthFailure::tell(error, self.t_id, AuthMessage::Failure1)
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<Progress, AuthFailure> {
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
            State::AwaitDh { .. } => "computing (DH), before the next message",
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
                Ok(Progress::Step(Step::Authenticated))
            }
            (other, _) => Err(self.fail(AuthError::Unexpected { expected, got: other.kind() })),
        }
    }

    fn on_negotiate(&mut self, n: Negotiate) -> Result<Progress, AuthFailure> {
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
        if dh_group == DhGroup::Null {
            let seqnum = self.cfg.seqnum.next();
            return Ok(Progress::Step(self.challenge(hash, dh_group, seqnum, challenge, None)));
        }
        // The exponent is drawn here, from this machine's source, so a seeded run stays
        // reproducible wherever the job runs.
        let mut x = Exponent(vec![0u8; dh::exponent_len(dh_group)]);
        self.rng.fill(&mut x.0).map_err(|e| self.fail(e.into()))?;
        let seqnum = self.cfg.seqnum.next();
        Ok(self
            .compute(DhWork::KeyPair { group: dh_group, x }, AfterDh::Challenge { hash, dh_group, seqnum, challenge }))
    }

    /// Sends the Challenge and waits for the Reply.
    fn challenge(
        &mut self,
        hash: HashId,
        dh_group: DhGroup,
        seqnum: u32,
        challenge: Vec<u8>,
        dh: Option<DhKeyPair>,
    ) -> Step {
        let msg = AuthMessage::Challenge(Challenge {
            t_id: self.t_id,
            hash,
            dh_group,
            seqnum,
            challenge: challenge.clone(),
            dh_value: dh.as_ref().map_or_else(Vec::new, |d| d.public_value().to_vec()),
        });
        self.state = State::AwaitReply { hash, dh_group, seqnum, challenge, dh };
        Step::Send(msg.encode())
    }

    fn on_reply(&mut self, mut r: Reply) -> Result<Progress, AuthFailure> {
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
        match dh {
            None if r.dh_value.is_empty() => {
                self.finish_reply(hash, dh_group, seqnum, &challenge, r, None).map(Progress::Step)
            }
            None => Err(self.fail(AuthError::DhValue(format!("{} bytes with the null group", r.dh_value.len())))),
            Some(pair) => {
                if r.dh_value.len() > dh_group.value_len() {
                    return Err(self.fail(AuthError::DhValue(format!("{} bytes for {dh_group}", r.dh_value.len()))));
                }
                // Everything that can fail cheaply fails before the exponentiation.
                pair.check_peer_value(&r.dh_value).map_err(|e| self.fail(e.into()))?;
                if self.host_key.is_none() {
                    return Err(self.fail(AuthError::MissingHostSecret(self.host.hostnqn.clone())));
                }
                let peer = std::mem::take(&mut r.dh_value);
                Ok(self.compute(
                    DhWork::Shared { pair, peer },
                    AfterDh::Reply { hash, dh_group, seqnum, challenge, reply: r },
                ))
            }
        }
    }

    /// The rest of a Reply once the DH secret (if any) is known: verify, answer with Success1.
    fn finish_reply(
        &mut self,
        hash: HashId,
        dh_group: DhGroup,
        seqnum: u32,
        challenge: &[u8],
        r: Reply,
        dh_secret: Option<&SharedSecret>,
    ) -> Result<Step, AuthFailure> {
        let dh_bytes = dh_secret.map(SharedSecret::as_bytes);
        let Some(host_key) = &self.host_key else {
            return Err(self.fail(AuthError::MissingHostSecret(self.host.hostnqn.clone())));
        };
        let ok = crypto::verify_response(
            Role::Host,
            host_key.as_bytes(),
            &ResponseInput {
                hash,
                challenge,
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
