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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_nvme::nvme::{Sqe, Status, fctype, opcode};
use ff_nvme_auth::fabrics::{self, AuthCommand};
use ff_nvme_auth::{ControllerAuth, ControllerConfig, DhGroup, FailureReason, HashId, HostCredentials, OsRandom, Step};
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
        match sqe.fctype() {
            fctype::AUTH_SEND => self.send(sqe, cmd, data, now),
            _ => self.receive(sqe, cmd),
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
        let ok = Response::ok(sqe.cid, qid, 0);
        match self.machine.on_message(data.get(..tl).unwrap_or(data)) {
            Ok(step) => {
                if was_authenticated && self.machine.is_reauthentication() {
                    info!(hostnqn = %self.hostnqn, cntlid = self.ids.cntlid, qid, "re-authentication started");
                }
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
