//! The login exchange from the initiator's side (RFC 7143 sections 6 and 12): one Login Request per
//! step, each answer checked, until the target moves us to full feature phase.
//!
//! Stages: security (AuthMethod; CHAP_A, then CHAP_N/CHAP_R and, for mutual CHAP, our challenge), then
//! operational (digests, data segment and burst sizes, R2T and immediate data, ErrorRecoveryLevel=0).
//! Every PDU is returned as bytes; [`Login`] never does I/O.

use super::IscsiOptions;
use ff_iscsi::chap::{self, ChapAlg};
use ff_iscsi::keys::{parse_bool, yes_no};
use ff_iscsi::pdu::{LoginRequest, LoginResponse, Pdu, Stage};
use ff_iscsi::text::{TextAccum, TextWriter};
use ff_iscsi::{Digests, Params, TxData, TxPdu};

/// CHAP credentials (one-way, or mutual when `mutual` is set).
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    /// Our CHAP name (CHAP_N).
    pub user: String,
    /// The secret the target knows us by.
    pub secret: Vec<u8>,
    /// For mutual CHAP: the name and secret the target must prove.
    pub mutual: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Chap {
    // Secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap")
            .field("user", &self.user)
            .field("mutual", &self.mutual.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The target answered with a non-zero status class.
    #[error("target refused the login: {}", status_text(*class, *detail))]
    Status {
        /// Status class (1 redirection, 2 initiator error, 3 target error).
        class: u8,
        /// Status detail.
        detail: u8,
    },
    /// The target's answer breaks the protocol or refuses what we require.
    #[error("{0}")]
    Refused(String),
    /// Mutual CHAP: the target did not prove it knows the secret.
    #[error("mutual CHAP: the target's response is wrong")]
    MutualChap,
}

/// Words for the common login status codes (RFC 7143 section 11.13.5).
fn status_text(class: u8, detail: u8) -> String {
    let what = match (class, detail) {
        (1, 1) => "target moved temporarily",
        (1, 2) => "target moved permanently",
        (2, 0) => "initiator error",
        (2, 1) => "authentication failure",
        (2, 2) => "authorization failure",
        (2, 3) => "target not found",
        (2, 4) => "target removed",
        (2, 5) => "unsupported version",
        (2, 6) => "too many connections",
        (2, 7) => "missing parameter",
        (2, 8) => "cannot include in session",
        (2, 9) => "session type not supported",
        (2, 10) => "session does not exist",
        (2, 11) => "invalid request during login",
        (3, 0) => "target error",
        (3, 1) => "service unavailable",
        (3, 2) => "out of resources",
        _ => "unknown status",
    };
    format!("{what} (class {class:#04x}, detail {detail:#04x})")
}

/// What the login settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginOutcome {
    /// The negotiated parameters (`max_xmit_data_segment_length` is the target's receive limit).
    pub params: Params,
    /// Session handle the target assigned.
    pub tsih: u16,
    /// StatSN of the final Login Response (the next expected is one more).
    pub stat_sn: u32,
    /// Command window after login.
    pub exp_cmd_sn: u32,
    /// Highest CmdSN the target accepts.
    pub max_cmd_sn: u32,
}

/// What to do after a Login Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Send this Login Request and wait for the next answer.
    Send(Vec<u8>),
    /// Full feature phase reached.
    Done(LoginOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// AuthMethod offered.
    Auth,
    /// CHAP_A sent, waiting for CHAP_I/CHAP_C.
    ChapAlg,
    /// CHAP_R sent; with mutual CHAP, our identifier and challenge wait for the target's answer.
    ChapResponse(Option<(u8, Vec<u8>)>),
    /// Operational keys sent.
    Operational,
}

/// Most Login Requests one login may take before we call the target's answers a loop.
const MAX_ROUNDS: u32 = 32;

/// The initiator's login state machine (see the module docs).
#[derive(Debug, Clone)]
pub struct Login {
    opts: IscsiOptions,
    step: Step,
    stage: Stage,
    cmd_sn: u32,
    exp_stat_sn: u32,
    params: Params,
    /// Keys sent in the current stage and not answered yet.
    offered: Vec<&'static str>,
    /// Answers owed to keys the target offered on its own.
    owed: Vec<(String, String)>,
    accum: TextAccum,
    rounds: u32,
    tsih: u16,
}

impl Login {
    /// A login with `opts`, using `cmd_sn` as the session's first CmdSN; returns the first request.
    pub fn start(opts: &IscsiOptions, cmd_sn: u32) -> (Login, Vec<u8>) {
        let mut params =
            Params { max_recv_data_segment_length: opts.max_recv_data_segment_length, ..Params::default() };
        if opts.target_name.is_none() {
            params.immediate_data = false;
        }
        let mut l = Login {
            opts: opts.clone(),
            step: Step::Auth,
            stage: Stage::Security,
            cmd_sn,
            exp_stat_sn: 0,
            params,
            offered: Vec::new(),
            owed: Vec::new(),
            accum: TextAccum::default(),
            rounds: 0,
            tsih: 0,
        };
        let mut w = TextWriter::new();
        w.push("InitiatorName", &opts.initiator_name);
        match &opts.target_name {
            Some(t) => {
                w.push("SessionType", "Normal");
                w.push("TargetName", t);
            }
            None => w.push("SessionType", "Discovery"),
        }
        let first = match &opts.chap {
            None => {
                w.push("AuthMethod", "None");
                l.request(true, Stage::Operational, w)
            }
            // With mutual CHAP the target must authenticate: do not let it pick None.
            Some(c) if c.mutual.is_some() => {
                w.push("AuthMethod", "CHAP");
                l.request(false, Stage::Operational, w)
            }
            Some(_) => {
                w.push("AuthMethod", "CHAP,None");
                l.request(false, Stage::Operational, w)
            }
        };
        (l, first)
    }

    fn request(&mut self, transit: bool, nsg: Stage, w: TextWriter) -> Vec<u8> {
        self.rounds += 1;
        let req = LoginRequest {
            transit,
            cont: false,
            csg: self.stage,
            nsg: if transit { nsg } else { self.stage },
            version_max: 0,
            version_min: 0,
            isid: self.opts.isid,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        // Login requests are built from bounded text: encoding cannot fail.
        TxPdu::encode(&Pdu::LoginRequest(req), Digests::default(), TxData::Owned(w.into_bytes()), &[])
            .map(|t| t.to_bytes(&[]))
            .unwrap_or_default()
    }

    /// Takes one Login Response and its data segment.
    pub fn on_response(&mut self, rsp: &LoginResponse, data: &[u8]) -> Result<LoginStep, LoginError> {
        if rsp.status_class != 0 {
            return Err(LoginError::Status { class: rsp.status_class, detail: rsp.status_detail });
        }
        if rsp.isid != self.opts.isid || rsp.itt != 0 {
            return Err(LoginError::Refused("Login Response for another ISID or ITT".into()));
        }
        if rsp.csg != self.stage {
            return Err(LoginError::Refused(format!(
                "Login Response in stage {:?}, we are in {:?}",
                rsp.csg, self.stage
            )));
        }
        if self.rounds >= MAX_ROUNDS {
            return Err(LoginError::Refused("login does not converge".into()));
        }
        self.exp_stat_sn = rsp.sn.stat_sn.wrapping_add(1);
        self.tsih = rsp.tsih;
        self.accum.push(data).map_err(|e| LoginError::Refused(e.to_string()))?;
        if rsp.cont {
            // The target's text continues: ask for the rest with an empty request.
            let again = self.request(false, self.stage, TextWriter::new());
            return Ok(LoginStep::Send(again));
        }
        let text = self.accum.take();
        let keys = parse_pairs(&text)?;
        if rsp.transit && rsp.nsg <= self.stage {
            return Err(LoginError::Refused("target transits to an earlier stage".into()));
        }
        match self.stage {
            Stage::Security => self.security(rsp, &keys),
            Stage::Operational => self.operational(rsp, &keys),
            Stage::FullFeature => Err(LoginError::Refused("Login Response after full feature phase".into())),
        }
    }

    fn security(&mut self, rsp: &LoginResponse, keys: &[(&str, &str)]) -> Result<LoginStep, LoginError> {
        let get = |k: &str| keys.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        for (k, _) in keys {
            let ours = matches!(*k, "AuthMethod" | "TargetPortalGroupTag" | "TargetAlias" | "TargetAddress")
                || k.starts_with("CHAP_");
            if !ours {
                return Err(LoginError::Refused(format!("key {k} in the security stage")));
            }
        }
        match std::mem::replace(&mut self.step, Step::Auth) {
            Step::Auth => {
                let method = get("AuthMethod").unwrap_or(if self.opts.chap.is_none() { "None" } else { "" });
                match (method, &self.opts.chap) {
                    ("None", None) => self.after_security(rsp),
                    ("None", Some(c)) if c.mutual.is_none() => self.after_security(rsp),
                    ("CHAP", Some(_)) => {
                        let mut w = TextWriter::new();
                        w.push("CHAP_A", "5");
                        self.step = Step::ChapAlg;
                        Ok(LoginStep::Send(self.request(false, Stage::Operational, w)))
                    }
                    (m, _) => Err(LoginError::Refused(format!("target chose AuthMethod={m}"))),
                }
            }
            Step::ChapAlg => {
                let Some(c) = self.opts.chap.clone() else {
                    return Err(LoginError::Refused("CHAP without credentials".into()));
                };
                let alg = get("CHAP_A").and_then(ChapAlg::from_code);
                if alg != Some(ChapAlg::Md5) {
                    return Err(LoginError::Refused(format!("target chose CHAP_A={:?}", get("CHAP_A"))));
                }
                let id = get("CHAP_I")
                    .and_then(ff_iscsi::keys::parse_number)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| LoginError::Refused("missing or invalid CHAP_I".into()))?;
                let challenge = get("CHAP_C")
                    .and_then(chap::decode_binary)
                    .ok_or_else(|| LoginError::Refused("missing or invalid CHAP_C".into()))?;
                let mut w = TextWriter::new();
                w.push("CHAP_N", &c.user);
                w.push("CHAP_R", &chap::to_hex(&ChapAlg::Md5.response(id, &c.secret, &challenge)));
                let mine = if c.mutual.is_some() {
                    let ours = chap::random_bytes(16 + 1).ok_or_else(|| LoginError::Refused("no randomness".into()))?;
                    let (my_id, my_challenge) = match ours.split_first() {
                        Some((i, rest)) => (*i, rest.to_vec()),
                        None => return Err(LoginError::Refused("no randomness".into())),
                    };
                    // The RFC forbids answering a challenge identical to the one we were sent.
                    if my_challenge == challenge {
                        return Err(LoginError::Refused("target reflected our challenge".into()));
                    }
                    w.push("CHAP_I", &my_id.to_string());
                    w.push("CHAP_C", &chap::to_hex(&my_challenge));
                    Some((my_id, my_challenge))
                } else {
                    None
                };
                self.step = Step::ChapResponse(mine);
                Ok(LoginStep::Send(self.request(true, Stage::Operational, w)))
            }
            Step::ChapResponse(mine) => {
                if let (Some((id, challenge)), Some(c)) = (&mine, &self.opts.chap)
                    && let Some((user, secret)) = &c.mutual
                {
                    let name_ok = get("CHAP_N") == Some(user.as_str());
                    let r = get("CHAP_R").and_then(chap::decode_binary).unwrap_or_default();
                    let want = ChapAlg::Md5.response(*id, secret, challenge);
                    if !name_ok || !chap::ct_eq(&r, &want) {
                        return Err(LoginError::MutualChap);
                    }
                }
                if !rsp.transit {
                    // Authenticated but the target wants another round: keep asking to move on.
                    self.step = Step::ChapResponse(None);
                    return Ok(LoginStep::Send(self.request(true, Stage::Operational, TextWriter::new())));
                }
                self.after_security(rsp)
            }
            Step::Operational => Err(LoginError::Refused("security answer in the operational stage".into())),
        }
    }

    /// The security stage is agreed: move on when the target does, else ask again.
    fn after_security(&mut self, rsp: &LoginResponse) -> Result<LoginStep, LoginError> {
        if !rsp.transit {
            self.step = Step::Auth;
            let w = TextWriter::new();
            // An empty request with T set says we are ready to leave the stage.
            return Ok(LoginStep::Send(self.request(true, Stage::Operational, w)));
        }
        match rsp.nsg {
            Stage::FullFeature => self.done(rsp),
            _ => {
                self.stage = Stage::Operational;
                self.step = Step::Operational;
                let w = self.operational_offer();
                Ok(LoginStep::Send(self.request(true, Stage::FullFeature, w)))
            }
        }
    }

    fn operational_offer(&mut self) -> TextWriter {
        let o = &self.opts;
        let mut w = TextWriter::new();
        let offer = |w: &mut TextWriter, offered: &mut Vec<&'static str>, k: &'static str, v: &str| {
            w.push(k, v);
            offered.push(k);
        };
        let mut offered = Vec::new();
        let digest = |on: bool| if on { "CRC32C" } else { "None" };
        offer(&mut w, &mut offered, "HeaderDigest", digest(o.header_digest));
        offer(&mut w, &mut offered, "DataDigest", digest(o.data_digest));
        // A declaration: the target answers nothing.
        w.push("MaxRecvDataSegmentLength", &o.max_recv_data_segment_length.to_string());
        if o.target_name.is_some() {
            let yes_no = |b: bool| if b { "Yes" } else { "No" };
            offer(&mut w, &mut offered, "InitialR2T", yes_no(o.initial_r2t));
            offer(&mut w, &mut offered, "ImmediateData", yes_no(o.immediate_data));
            offer(&mut w, &mut offered, "MaxBurstLength", &o.max_burst_length.to_string());
            offer(&mut w, &mut offered, "FirstBurstLength", &o.first_burst_length.to_string());
            offer(&mut w, &mut offered, "MaxOutstandingR2T", "1");
            offer(&mut w, &mut offered, "MaxConnections", "1");
            offer(&mut w, &mut offered, "DataPDUInOrder", "Yes");
            offer(&mut w, &mut offered, "DataSequenceInOrder", "Yes");
        }
        offer(&mut w, &mut offered, "ErrorRecoveryLevel", "0");
        self.offered = offered;
        self.params.initial_r2t = o.initial_r2t;
        self.params.immediate_data = o.immediate_data && o.target_name.is_some();
        self.params.max_burst_length = o.max_burst_length;
        self.params.first_burst_length = o.first_burst_length;
        w
    }

    fn operational(&mut self, rsp: &LoginResponse, keys: &[(&str, &str)]) -> Result<LoginStep, LoginError> {
        for &(k, v) in keys {
            let was_offered = self.offered.contains(&k);
            self.offered.retain(|o| *o != k);
            self.apply(k, v, was_offered)?;
        }
        if !self.offered.is_empty() && rsp.transit {
            // Keys left unanswered keep their defaults; only the digests we insist on matter.
            for k in std::mem::take(&mut self.offered) {
                self.apply(k, "NotUnderstood", true)?;
            }
        }
        if self.params.first_burst_length > self.params.max_burst_length {
            return Err(LoginError::Refused("FirstBurstLength above MaxBurstLength".into()));
        }
        if rsp.transit && rsp.nsg == Stage::FullFeature && self.owed.is_empty() {
            return self.done(rsp);
        }
        let mut w = TextWriter::new();
        for (k, v) in std::mem::take(&mut self.owed) {
            w.push(&k, &v);
        }
        Ok(LoginStep::Send(self.request(true, Stage::FullFeature, w)))
    }

    /// Applies one operational key from the target: the answer to our offer, or its own offer.
    fn apply(&mut self, k: &str, v: &str, answer: bool) -> Result<(), LoginError> {
        let bad = || LoginError::Refused(format!("target answered {k}={v}"));
        let num = |lo: u64, hi: u64| ff_iscsi::keys::parse_number(v).filter(|n| (lo..=hi).contains(n));
        let neutral = matches!(v, "NotUnderstood" | "Irrelevant" | "Reject");
        let p = &mut self.params;
        match k {
            "HeaderDigest" | "DataDigest" => {
                let want = if k == "HeaderDigest" { self.opts.header_digest } else { self.opts.data_digest };
                let got = match v {
                    "CRC32C" => true,
                    "None" => false,
                    _ if neutral && !want => false,
                    _ if !answer => {
                        // The target offers a list: pick ours if it is there.
                        let pick = if v.split(',').any(|o| o == digest_name(want)) { want } else { !want };
                        self.owed.push((k.to_string(), digest_name(pick).to_string()));
                        pick
                    }
                    _ => return Err(bad()),
                };
                if got != want {
                    return Err(LoginError::Refused(format!("target refuses {k}={}", digest_name(want))));
                }
                if k == "HeaderDigest" {
                    p.header_digest = got;
                } else {
                    p.data_digest = got;
                }
            }
            "MaxRecvDataSegmentLength" => {
                p.max_xmit_data_segment_length = num(512, (1 << 24) - 1).ok_or_else(bad)? as u32;
            }
            "MaxBurstLength" | "FirstBurstLength" if !neutral => {
                let n = num(512, (1 << 24) - 1).ok_or_else(bad)? as u32;
                let slot = if k == "MaxBurstLength" { &mut p.max_burst_length } else { &mut p.first_burst_length };
                // Our offer is the maximum; a target offer is met with the lower of both.
                if answer && n > *slot {
                    return Err(bad());
                }
                *slot = (*slot).min(n);
                if !answer {
                    self.owed.push((k.to_string(), slot.to_string()));
                }
            }
            "InitialR2T" if !neutral => {
                let yes = parse_bool(v).ok_or_else(bad)?;
                if answer && !yes && p.initial_r2t {
                    return Err(bad());
                }
                p.initial_r2t |= yes;
                if !answer {
                    self.owed.push((k.to_string(), yes_no(p.initial_r2t).into()));
                }
            }
            "ImmediateData" if !neutral => {
                let yes = parse_bool(v).ok_or_else(bad)?;
                if answer && yes && !p.immediate_data {
                    return Err(bad());
                }
                p.immediate_data &= yes;
                if !answer {
                    self.owed.push((k.to_string(), yes_no(p.immediate_data).into()));
                }
            }
            "MaxOutstandingR2T" if !neutral => {
                num(1, 65535).ok_or_else(bad)?;
                p.max_outstanding_r2t = 1;
                if !answer {
                    self.owed.push((k.to_string(), "1".into()));
                }
            }
            "ErrorRecoveryLevel" if !neutral => {
                if num(0, 2).ok_or_else(bad)? != 0 && answer {
                    return Err(bad());
                }
                if !answer {
                    self.owed.push((k.to_string(), "0".into()));
                }
            }
            "DataPDUInOrder" | "DataSequenceInOrder" if !neutral => {
                if parse_bool(v) != Some(true) {
                    return Err(LoginError::Refused(format!("{k}=No is not supported")));
                }
                if !answer {
                    self.owed.push((k.to_string(), "Yes".into()));
                }
            }
            "MaxConnections" if !neutral => {
                num(1, 65535).ok_or_else(bad)?;
                if !answer {
                    self.owed.push((k.to_string(), "1".into()));
                }
            }
            "DefaultTime2Wait" | "DefaultTime2Retain" if !neutral => {
                let n = num(0, 3600).ok_or_else(bad)?;
                if !answer {
                    self.owed.push((k.to_string(), n.to_string()));
                }
            }
            "TargetPortalGroupTag" | "TargetAlias" | "TargetAddress" => {}
            "IFMarker" | "OFMarker" if !answer => self.owed.push((k.to_string(), "No".into())),
            _ if answer || neutral => {}
            _ => self.owed.push((k.to_string(), "NotUnderstood".into())),
        }
        Ok(())
    }

    fn done(&mut self, rsp: &LoginResponse) -> Result<LoginStep, LoginError> {
        if self.opts.target_name.is_some() && rsp.tsih == 0 {
            return Err(LoginError::Refused("final Login Response without a TSIH".into()));
        }
        if self.opts.header_digest != self.params.header_digest || self.opts.data_digest != self.params.data_digest {
            return Err(LoginError::Refused("the target skipped the digest negotiation we require".into()));
        }
        self.stage = Stage::FullFeature;
        Ok(LoginStep::Done(LoginOutcome {
            params: self.params,
            tsih: rsp.tsih,
            stat_sn: rsp.sn.stat_sn,
            exp_cmd_sn: rsp.sn.exp_cmd_sn,
            max_cmd_sn: rsp.sn.max_cmd_sn,
        }))
    }
}

fn digest_name(on: bool) -> &'static str {
    if on { "CRC32C" } else { "None" }
}

/// `key=value` pairs in order; repeated keys are kept (SendTargets repeats them), malformed text fails.
pub(crate) fn parse_pairs(text: &[u8]) -> Result<Vec<(&str, &str)>, LoginError> {
    let mut out = Vec::new();
    for entry in text.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let s = std::str::from_utf8(entry).map_err(|_| LoginError::Refused("text is not UTF-8".into()))?;
        let (k, v) = s.split_once('=').ok_or_else(|| LoginError::Refused(format!("malformed text entry {s:?}")))?;
        if k.is_empty() {
            return Err(LoginError::Refused("text entry without a key".into()));
        }
        out.push((k, v));
    }
    Ok(out)
}
