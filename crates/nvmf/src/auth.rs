//! NVMe in-band authentication (DH-HMAC-CHAP) of one queue, target side: the gate that refuses
//! commands on a queue that has not authenticated, the Authentication Send / Receive commands,
//! and the transaction timeout. Owns the per-queue state around `ff_nvme_auth::ControllerAuth`
//! (which owns the messages and the crypto) and the per-subsystem secrets ([`SubsysAuth`]).
//!
//! Lifecycle: Connect of a host with a configured secret completes with ATR set and attaches a
//! [`QueueAuth`]; until it reports authenticated only Connect, Disconnect and Authentication
//! Send/Receive pass. A failed transaction delivers AUTH_Failure1 on the next Receive and the
//! transport then closes the queue. A new AUTH_Negotiate on an authenticated queue
//! re-authenticates while I/O continues.
//!
//! Diffie-Hellman off the transport's thread: an Authentication Send whose message needs a DH
//! exponentiation (any group but null) returns [`AuthReply::Computing`] and stays parked: the
//! transport takes the job with [`QueueAuth::take_dh_job`], runs it where it likes
//! ([`DhJob::compute`]) and hands the result to [`QueueAuth::dh_done`], which completes the
//! parked Send. If it cannot run the job (its workers are saturated), [`QueueAuth::dh_unavailable`]
//! fails the transaction the protocol's way: the Send completes, the next Receive returns
//! AUTH_Failure1 (authentication failed) and the queue closes. Another Authentication Send or
//! Receive while the job is away breaks the protocol's order: the transaction fails at once and
//! the queue closes. A result that comes back for a transaction already over is dropped. The
//! transaction timeout runs while the job is away.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_nvme::nvme::{Sqe, Status, fctype, opcode};
use ff_nvme_auth::fabrics::{self, AuthCommand};
use ff_nvme_auth::{
    AuthFailure, ControllerAuth, ControllerConfig, DhGroup, FailureReason, HashId, HostCredentials, OsRandom, Progress,
    Step,
};
pub use ff_nvme_auth::{DhDone, DhJob};
use tracing::{debug, info, warn};

use crate::config::{ConfigError, SubsystemConfig};
use crate::response::{CmdError, Response};

/// Authentication Required (SCT 1h, SC 91h): a command other than Connect, Disconnect or
/// Authentication Send/Receive on a queue that has not authenticated.
pub const AUTH_REQUIRED: CmdError = CmdError::dnr(Status::new(fabrics::SCT_AUTH_REQUIRED, fabrics::SC_AUTH_REQUIRED));

/// Largest Authentication Send payload taken: the biggest message (a Reply with ffdhe8192 and
/// SHA-512) is under 1.2 KiB, so anything far beyond is not DH-HMAC-CHAP.
pub const MAX_AUTH_PAYLOAD: u32 = 8192;

/// The DH-HMAC-CHAP settings of one subsystem: what it allows and each host's secrets.
#[derive(Debug)]
pub struct SubsysAuth {
    cfg: Arc<ControllerConfig>,
    hosts: BTreeMap<String, HostCredentials>,
}

/// Parses a list of hash names (`sha256`, `hmac(sha384)`, ...); empty means all, strongest first.
pub fn parse_hashes(names: &[String]) -> Result<Vec<HashId>, ConfigError> {
    if names.is_empty() {
        return Ok(HashId::ALL.into_iter().rev().collect());
    }
    names
        .iter()
        .map(|n| HashId::from_name(n).ok_or_else(|| ConfigError::BadAuth(format!("unknown hash {n:?}"))))
        .collect()
}

/// Parses a list of DH group names (`null`, `ffdhe2048`, ...); empty means all, strongest first.
pub fn parse_dh_groups(names: &[String]) -> Result<Vec<DhGroup>, ConfigError> {
    if names.is_empty() {
        return Ok(DhGroup::ALL.into_iter().rev().collect());
    }
    names
        .iter()
        .map(|n| DhGroup::from_name(n).ok_or_else(|| ConfigError::BadAuth(format!("unknown DH group {n:?}"))))
        .collect()
}

impl SubsysAuth {
    /// The settings of subsystem `c` (its secrets parsed and checked).
    pub fn from_config(c: &SubsystemConfig) -> Result<SubsysAuth, ConfigError> {
        let mut cfg = ControllerConfig::new(c.nqn.clone());
        cfg.hashes = parse_hashes(&c.dhchap_hashes)?;
        cfg.dh_groups = parse_dh_groups(&c.dhchap_dhgroups)?;
        let mut hosts = BTreeMap::new();
        for h in &c.dhchap {
            let creds = h.credentials()?;
            hosts.insert(h.hostnqn.clone(), creds);
        }
        Ok(SubsysAuth { cfg: Arc::new(cfg), hosts })
    }

    /// Sets (or with `None`, removes) the secrets of `hostnqn`.
    pub fn set_host(&mut self, hostnqn: &str, creds: Option<HostCredentials>) {
        match creds {
            Some(c) => self.hosts.insert(hostnqn.to_string(), c),
            None => self.hosts.remove(hostnqn),
        };
    }

    /// Whether `hostnqn` must authenticate.
    pub fn required(&self, hostnqn: &str) -> bool {
        self.hosts.contains_key(hostnqn)
    }

    /// A fresh per-queue state for `hostnqn` if it must authenticate.
    pub(crate) fn queue(&self, hostnqn: &str, ids: QueueIds, timeout: Duration, now: Instant) -> Option<QueueAuth> {
        let creds = self.hosts.get(hostnqn)?.clone();
        Some(QueueAuth {
            machine: ControllerAuth::new(Arc::clone(&self.cfg), creds, OsRandom),
            hostnqn: hostnqn.to_string(),
            ids,
            usable: false,
            pending: None,
            parked: None,
            dh_job: None,
            deadline: now.checked_add(timeout),
            timeout,
            refused: 0,
        })
    }
}

/// Which queue a [`QueueAuth`] guards, for the log.
#[derive(Debug, Clone)]
pub(crate) struct QueueIds {
    pub subnqn: String,
    pub cntlid: u16,
    pub qid: u16,
}

/// What the next Authentication Receive returns.
#[derive(Debug)]
enum Pending {
    /// A message; the transaction goes on.
    More(Vec<u8>),
    /// The last message: once delivered the queue is authenticated.
    Last(Vec<u8>),
    /// AUTH_Failure1: once delivered the queue closes.
    Failure(Vec<u8>),
}

/// What the transport does after an authentication command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Send the completion (and data); the queue goes on.
    Complete(Response),
    /// Send the completion (and data), then close the queue: the transaction failed.
    CompleteThenClose(Response),
    /// The command waits for a DH computation: take it with [`QueueAuth::take_dh_job`], give its
    /// result to [`QueueAuth::dh_done`] (or report [`QueueAuth::dh_unavailable`]), which
    /// completes this command.
    Computing,
}

/// DH-HMAC-CHAP state of one queue; see the module docs.
#[derive(Debug)]
pub struct QueueAuth {
    machine: ControllerAuth,
    hostnqn: String,
    ids: QueueIds,
    /// Commands other than authentication may run (true from the first success on, also while a
    /// re-authentication runs).
    usable: bool,
    pending: Option<Pending>,
    /// The Authentication Send (its command id) waiting for a DH computation.
    parked: Option<u16>,
    /// That computation, until the transport takes it.
    dh_job: Option<DhJob>,
    /// When the transaction in progress (or the wait for the first one) gives up.
    deadline: Option<Instant>,
    timeout: Duration,
    /// Commands refused with Authentication Required (only the first is logged as a warning).
    refused: u64,
}

impl QueueAuth {
    /// The same state, logged as queue `qid` of controller `cntlid` (known once Connect chose them).
    pub(crate) fn for_queue(mut self, cntlid: u16, qid: u16) -> QueueAuth {
        self.ids.cntlid = cntlid;
        self.ids.qid = qid;
        self
    }

    /// Whether the queue may run other commands.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// Lets `sqe` through, or refuses it with [`AUTH_REQUIRED`] when the queue has not
    /// authenticated (Connect, Disconnect and Authentication Send/Receive always pass).
    pub fn gate(&mut self, sqe: &Sqe) -> Result<(), CmdError> {
        if self.usable
            || (sqe.opcode == opcode::FABRICS
                && matches!(sqe.fctype(), fctype::AUTH_SEND | fctype::AUTH_RECV | fctype::CONNECT | fctype::DISCONNECT))
        {
            return Ok(());
        }
        self.refused += 1;
        if self.refused == 1 {
            warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid = self.ids.qid,
                opcode = sqe.opcode, "command refused: queue not authenticated (Authentication Required)");
        } else {
            debug!(hostnqn = %self.hostnqn, qid = self.ids.qid, opcode = sqe.opcode, "command refused: not authenticated");
        }
        Err(AUTH_REQUIRED)
    }

    /// Whether a transaction stalled past its deadline: the transport closes the queue.
    pub fn expired(&self, now: Instant) -> bool {
        let late = self.deadline.is_some_and(|d| now > d);
        if late {
            warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid = self.ids.qid,
                timeout_ms = self.timeout.as_millis() as u64, "authentication timed out; closing the queue");
        }
        late
    }

    /// Handles Authentication Send (`data` is the command's host data) or Receive.
    pub fn handle(&mut self, sqe: &Sqe, data: &[u8], now: Instant) -> AuthReply {
        let qid = self.ids.qid;
        let cmd = AuthCommand::from_dwords(sqe.cdw10, sqe.cdw11);
        if let Err(e) = cmd.validate() {
            warn!(hostnqn = %self.hostnqn, qid, "authentication command refused: {e}");
            return AuthReply::Complete(Response::err(sqe.cid, qid, CmdError::INVALID_FIELD));
        }
        if self.parked.is_some() {
            return self.out_of_order(sqe, cmd);
        }
        match sqe.fctype() {
            fctype::AUTH_SEND => self.send(sqe, cmd, data, now),
            _ => self.receive(sqe, cmd),
        }
    }

    /// The DH computation the parked Authentication Send waits for (once: the transport owns it).
    pub fn take_dh_job(&mut self) -> Option<DhJob> {
        self.dh_job.take()
    }

    /// Whether an Authentication Send waits for a DH computation.
    pub fn is_computing(&self) -> bool {
        self.parked.is_some()
    }

    /// The result of the job [`Self::take_dh_job`] gave: the parked Send's completion. `None`
    /// when no Send waits for it (the transaction ended meanwhile): the result is dropped.
    pub fn dh_done(&mut self, done: DhDone, now: Instant) -> Option<AuthReply> {
        let cid = self.parked?;
        let Some(result) = self.machine.finish_dh(done) else {
            debug!(hostnqn = %self.hostnqn, qid = self.ids.qid, "DH result for an older job dropped");
            return None;
        };
        self.parked = None;
        self.dh_job = None;
        Some(self.stepped(cid, result, now))
    }

    /// The transport cannot run the job (no worker free): the transaction fails as the protocol
    /// lets it, AUTH_Failure1 (authentication failed) on the next Receive, then the queue
    /// closes. Returns the parked Send's completion (`None` when nothing is parked).
    pub fn dh_unavailable(&mut self) -> Option<AuthReply> {
        let cid = self.parked.take()?;
        self.dh_job = None;
        self.usable = false;
        let reason = FailureReason::Failed;
        warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid = self.ids.qid,
            %reason, reason_code = reason.code(),
            "DH-HMAC-CHAP authentication failed: no DH worker can take the computation (queue full)");
        self.pending = Some(Pending::Failure(self.machine.abort(reason)));
        Some(AuthReply::Complete(Response::ok(cid, self.ids.qid, 0)))
    }

    /// An Authentication Send or Receive while the previous Send waits for its DH computation:
    /// the host broke the protocol's order, the transaction fails and the queue closes (the
    /// parked Send is never completed; its late result is dropped).
    fn out_of_order(&mut self, sqe: &Sqe, cmd: AuthCommand) -> AuthReply {
        let qid = self.ids.qid;
        self.parked = None;
        self.dh_job = None;
        self.usable = false;
        let reason = FailureReason::IncorrectProtocolMessage;
        warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid, %reason,
            "DH-HMAC-CHAP authentication failed: authentication command while the previous Send is still computing");
        let failure = self.machine.abort(reason);
        if sqe.fctype() == fctype::AUTH_RECV {
            let mut b = failure;
            b.truncate(cmd.length as usize);
            AuthReply::CompleteThenClose(Response::with_data(sqe.cid, qid, b))
        } else {
            AuthReply::CompleteThenClose(Response::ok(sqe.cid, qid, 0))
        }
    }

    fn send(&mut self, sqe: &Sqe, cmd: AuthCommand, data: &[u8], now: Instant) -> AuthReply {
        let qid = self.ids.qid;
        let tl = cmd.length as usize;
        if cmd.length > MAX_AUTH_PAYLOAD || data.len() < tl {
            warn!(hostnqn = %self.hostnqn, qid, tl, got = data.len(), "Authentication Send: transfer length does not match its data");
            return AuthReply::Complete(Response::err(sqe.cid, qid, CmdError::INVALID_FIELD));
        }
        let was_authenticated = self.machine.is_authenticated();
        let result = self.machine.begin_message(data.get(..tl).unwrap_or(data));
        if was_authenticated && self.machine.is_reauthentication() && result.is_ok() {
            info!(hostnqn = %self.hostnqn, cntlid = self.ids.cntlid, qid, "re-authentication started");
        }
        match result {
            Ok(Progress::Compute(job)) => {
                // The timeout covers the computation too (a re-authentication's starts here).
                if self.deadline.is_none() {
                    self.deadline = now.checked_add(self.timeout);
                }
                debug!(hostnqn = %self.hostnqn, qid, group = %job.group(), "Authentication Send waits for a DH computation");
                self.parked = Some(sqe.cid);
                self.dh_job = Some(job);
                AuthReply::Computing
            }
            Ok(Progress::Step(step)) => self.stepped(sqe.cid, Ok(step), now),
            Err(f) => self.stepped(sqe.cid, Err(f), now),
        }
    }

    /// Where a step of the machine leaves the queue: the completion of the Send (`cid`) that fed it.
    fn stepped(&mut self, cid: u16, result: Result<Step, AuthFailure>, now: Instant) -> AuthReply {
        let qid = self.ids.qid;
        let ok = Response::ok(cid, qid, 0);
        match result {
            Ok(step) => {
                match step {
                    Step::Send(b) => {
                        self.pending = Some(Pending::More(b));
                        if self.deadline.is_none() {
                            self.deadline = now.checked_add(self.timeout);
                        }
                    }
                    Step::SendThenAuthenticated(b) => self.pending = Some(Pending::Last(b)),
                    Step::Authenticated => self.succeeded(),
                }
                AuthReply::Complete(ok)
            }
            Err(f) => {
                self.usable = false;
                warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid,
                    reason = %f.reason, reason_code = f.reason.code(), "DH-HMAC-CHAP authentication failed: {}", f.error);
                match f.send {
                    Some(b) => {
                        self.pending = Some(Pending::Failure(b));
                        AuthReply::Complete(ok)
                    }
                    // The host's own AUTH_Failure2: nothing more to say.
                    None => AuthReply::CompleteThenClose(ok),
                }
            }
        }
    }

    fn receive(&mut self, sqe: &Sqe, cmd: AuthCommand) -> AuthReply {
        let qid = self.ids.qid;
        let al = cmd.length as usize;
        let bytes_of = |mut b: Vec<u8>| {
            b.truncate(al);
            Response::with_data(sqe.cid, qid, b)
        };
        match self.pending.take() {
            Some(Pending::More(b)) => AuthReply::Complete(bytes_of(b)),
            Some(Pending::Last(b)) => {
                self.succeeded();
                AuthReply::Complete(bytes_of(b))
            }
            Some(Pending::Failure(b)) => AuthReply::CompleteThenClose(bytes_of(b)),
            None => {
                // A Receive the protocol does not expect here: end the transaction.
                self.usable = false;
                let reason = FailureReason::IncorrectProtocolMessage;
                warn!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid,
                    %reason, "DH-HMAC-CHAP authentication failed: Authentication Receive with no message pending");
                AuthReply::CompleteThenClose(bytes_of(self.machine.abort(reason)))
            }
        }
    }

    fn succeeded(&mut self) {
        self.usable = true;
        self.deadline = None;
        let (hash, group) =
            self.machine.negotiated().map_or(("?".into(), "?".into()), |(h, g)| (h.to_string(), g.to_string()));
        info!(hostnqn = %self.hostnqn, subnqn = %self.ids.subnqn, cntlid = self.ids.cntlid, qid = self.ids.qid,
            %hash, dhgroup = %group, reauth = self.machine.is_reauthentication(), "queue authenticated with DH-HMAC-CHAP");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ff_nvme_auth::message::AuthMessage;
    use ff_nvme_auth::{HostAuth, HostConfig, Secret, SeededRandom};

    const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000c1";
    const SUB: &str = "nqn.2026-12.io.ferrofabric:queueauth";

    fn secret() -> Secret {
        Secret::generate(None, None, &mut SeededRandom::new(5)).unwrap()
    }

    fn queue() -> QueueAuth {
        let creds = HostCredentials { hostnqn: HOST.into(), secret: Some(secret()), controller_secret: None };
        let sub =
            SubsysAuth { cfg: Arc::new(ControllerConfig::new(SUB)), hosts: BTreeMap::from([(HOST.into(), creds)]) };
        let ids = QueueIds { subnqn: SUB.into(), cntlid: 1, qid: 0 };
        sub.queue(HOST, ids, Duration::from_secs(30), Instant::now()).unwrap()
    }

    fn host(group: DhGroup) -> HostAuth<SeededRandom> {
        let mut c = HostConfig::new(HOST, SUB, secret());
        c.hashes = vec![HashId::Sha256];
        c.dh_groups = vec![group];
        HostAuth::new(Arc::new(c), SeededRandom::new(6))
    }

    fn sqe(fct: u8, cid: u16, len: usize) -> Sqe {
        let (cdw10, cdw11) = AuthCommand::dhchap(len as u32).to_dwords();
        Sqe { opcode: opcode::FABRICS, cid, nsid: u32::from(fct), cdw10, cdw11, ..Sqe::default() }
    }

    fn send(q: &mut QueueAuth, cid: u16, payload: &[u8]) -> AuthReply {
        q.handle(&sqe(fctype::AUTH_SEND, cid, payload.len()), payload, Instant::now())
    }

    fn recv(q: &mut QueueAuth, cid: u16) -> AuthReply {
        q.handle(&sqe(fctype::AUTH_RECV, cid, 4096), &[], Instant::now())
    }

    fn ok_of(r: AuthReply, cid: u16) -> Option<Vec<u8>> {
        match r {
            AuthReply::Complete(r) => {
                assert_eq!((r.cqe.cid, r.cqe.status), (cid, 0), "completes the command it answers");
                r.data
            }
            other => panic!("expected a completion, got {other:?}"),
        }
    }

    #[test]
    fn a_send_that_needs_dh_is_parked_until_its_result_is_fed_back() {
        let mut q = queue();
        let mut h = host(DhGroup::Ffdhe2048);
        assert_eq!(send(&mut q, 3, &h.start(1)), AuthReply::Computing);
        assert!(q.is_computing());
        let job = q.take_dh_job().expect("the job");
        assert!(q.take_dh_job().is_none(), "handed out once");
        ok_of(q.dh_done(job.compute(), Instant::now()).expect("the parked Send completes"), 3);
        let challenge = ok_of(recv(&mut q, 4), 4).unwrap();
        let Ok(Step::Send(reply)) = h.on_message(&challenge) else { panic!("a Challenge") };
        assert_eq!(send(&mut q, 5, &reply), AuthReply::Computing);
        let done = q.take_dh_job().unwrap().compute();
        ok_of(q.dh_done(done, Instant::now()).unwrap(), 5);
        let success1 = ok_of(recv(&mut q, 6), 6).unwrap();
        assert_eq!(h.on_message(&success1), Ok(Step::Authenticated));
        assert!(q.is_usable() && !q.is_computing());
    }

    #[test]
    fn the_null_group_completes_inline() {
        let mut q = queue();
        let mut h = host(DhGroup::Null);
        ok_of(send(&mut q, 1, &h.start(1)), 1);
        assert!(q.take_dh_job().is_none());
    }

    #[test]
    fn no_worker_fails_the_authentication_with_failure1_then_closes() {
        let mut q = queue();
        let mut h = host(DhGroup::Ffdhe2048);
        assert_eq!(send(&mut q, 3, &h.start(9)), AuthReply::Computing);
        let job = q.take_dh_job().unwrap();
        // The Send itself completes (the protocol reports the failure on the Receive).
        ok_of(q.dh_unavailable().unwrap(), 3);
        let AuthReply::CompleteThenClose(r) = recv(&mut q, 4) else { panic!("the queue closes") };
        let Ok(AuthMessage::Failure1(f)) = AuthMessage::decode(&r.data.unwrap()) else { panic!("AUTH_Failure1") };
        assert_eq!((f.t_id, f.reason), (9, FailureReason::Failed));
        assert!(q.dh_done(job.compute(), Instant::now()).is_none(), "a late result is dropped");
        assert!(!q.is_usable());
    }

    #[test]
    fn another_authentication_command_while_computing_closes_and_the_late_result_is_dropped() {
        let mut q = queue();
        let mut h = host(DhGroup::Ffdhe2048);
        assert_eq!(send(&mut q, 3, &h.start(2)), AuthReply::Computing);
        let job = q.take_dh_job().unwrap();
        let AuthReply::CompleteThenClose(r) = recv(&mut q, 4) else { panic!("the queue closes") };
        assert_eq!(r.cqe.cid, 4);
        let Ok(AuthMessage::Failure1(f)) = AuthMessage::decode(&r.data.unwrap()) else { panic!("AUTH_Failure1") };
        assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);
        assert!(q.dh_done(job.compute(), Instant::now()).is_none());
        assert!(q.dh_unavailable().is_none(), "nothing parked any more");
    }

    #[test]
    fn the_timeout_runs_while_the_computation_is_away() {
        let mut q = queue();
        q.timeout = Duration::from_millis(1);
        q.deadline = None;
        let mut h = host(DhGroup::Ffdhe2048);
        let t0 = Instant::now();
        let n = h.start(1);
        assert_eq!(q.handle(&sqe(fctype::AUTH_SEND, 2, n.len()), &n, t0), AuthReply::Computing);
        assert!(q.expired(t0 + Duration::from_millis(5)), "the deadline is set when the Send parks");
    }
}
