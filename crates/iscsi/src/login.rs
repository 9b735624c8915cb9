//! The target side of the login phase (RFC 7143 sections 6.3, 11.12, 11.13, 12): the leading keys,
//! the security stage (AuthMethod None or CHAP, one-way or mutual), the operational stage, stage
//! transitions, continued text in both directions, and login status classes.
//!
//! Owns the login's state; it sees each Login Request's header and its text and answers with what the
//! Login Response must say. Sequence numbers and framing are the connection's ([`crate::conn`]).
//! The move to the full feature phase waits on the runtime (session creation or reinstatement,
//! TSIH assignment): see [`SessionRequest`].

use crate::chap::{ChapAlg, ct_eq, decode_binary, random_bytes, to_hex};
use crate::config::{Auth, ChapAuth, PortalConfig, TargetDesc};
use crate::keys::{self, Answer, Params, SessionType};
use crate::pdu::{LoginRequest, Stage};
use crate::text::{self, TextAccum, TextOut, TextWriter};
use std::sync::Arc;

/// Most text one Login Response carries (the login phase's fixed MaxRecvDataSegmentLength).
pub const LOGIN_SEGMENT: usize = 8192;

/// Status-Class and Status-Detail of a Login Response (RFC 7143 section 11.13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginStatus {
    /// Status-Class.
    pub class: u8,
    /// Status-Detail.
    pub detail: u8,
}

impl LoginStatus {
    /// Login is proceeding.
    pub const SUCCESS: Self = Self { class: 0, detail: 0 };
    /// Target moved temporarily (redirection).
    pub const TARGET_MOVED_TEMPORARILY: Self = Self { class: 1, detail: 1 };
    /// Target moved permanently (redirection).
    pub const TARGET_MOVED_PERMANENTLY: Self = Self { class: 1, detail: 2 };
    /// Miscellaneous initiator error.
    pub const INITIATOR_ERROR: Self = Self { class: 2, detail: 0 };
    /// Authentication failed.
    pub const AUTHENTICATION_FAILED: Self = Self { class: 2, detail: 1 };
    /// The initiator may not access this target.
    pub const AUTHORIZATION_FAILURE: Self = Self { class: 2, detail: 2 };
    /// No such target.
    pub const NOT_FOUND: Self = Self { class: 2, detail: 3 };
    /// The target was removed.
    pub const TARGET_REMOVED: Self = Self { class: 2, detail: 4 };
    /// No common version.
    pub const UNSUPPORTED_VERSION: Self = Self { class: 2, detail: 5 };
    /// Too many connections on this session.
    pub const TOO_MANY_CONNECTIONS: Self = Self { class: 2, detail: 6 };
    /// A required key is missing.
    pub const MISSING_PARAMETER: Self = Self { class: 2, detail: 7 };
    /// The connection cannot join this session.
    pub const CANT_INCLUDE_IN_SESSION: Self = Self { class: 2, detail: 8 };
    /// Unsupported SessionType.
    pub const SESSION_TYPE_NOT_SUPPORTED: Self = Self { class: 2, detail: 9 };
    /// The TSIH names no session.
    pub const SESSION_DOES_NOT_EXIST: Self = Self { class: 2, detail: 0x0a };
    /// A request not valid during login.
    pub const INVALID_DURING_LOGIN: Self = Self { class: 2, detail: 0x0b };
    /// Target hardware or software error.
    pub const TARGET_ERROR: Self = Self { class: 3, detail: 0 };
    /// Service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self { class: 3, detail: 1 };
    /// Out of resources.
    pub const OUT_OF_RESOURCES: Self = Self { class: 3, detail: 2 };
}

/// What the runtime decides when a login is about to enter the full feature phase: create the session
/// (or reinstate the one with the same initiator name, ISID and target), or add the connection to the
/// session `tsih`; then call [`crate::conn::TargetConn::admit`] or [`crate::conn::TargetConn::refuse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// InitiatorName.
    pub initiator_name: String,
    /// InitiatorAlias, if declared.
    pub initiator_alias: Option<String>,
    /// Initiator session id.
    pub isid: [u8; 6],
    /// 0 for a new session (or a reinstatement), else the session to join.
    pub tsih: u16,
    /// Connection id.
    pub cid: u16,
    /// Normal or discovery.
    pub session_type: SessionType,
    /// The target (normal sessions).
    pub target: Option<String>,
    /// The negotiated parameters.
    pub params: Params,
}

/// What one Login Response must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginReply {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub data: Vec<u8>,
}

/// The login's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginStep {
    /// Send this response; the login goes on.
    Reply(LoginReply),
    /// Send this response once the runtime admitted the session (it moves to full feature phase).
    Admit(SessionRequest, LoginReply),
    /// Send a response with this status, then close.
    Fail(LoginStatus),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthState {
    Start,
    ChapA,
    ChapR { alg: ChapAlg, id: u8, challenge: Vec<u8> },
    Done,
}

/// The login state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    portal: Arc<PortalConfig>,
    stage: Stage,
    first: Option<LoginRequest>,
    seen: Vec<String>,
    accum: TextAccum,
    /// CSG of the continued request being accumulated.
    cont_csg: Option<Stage>,
    out: TextOut,
    /// Flags of the last chunk of a continued response.
    final_flags: Option<(bool, Stage, Stage)>,
    pub params: Params,
    session_type: SessionType,
    initiator_name: Option<String>,
    initiator_alias: Option<String>,
    pub target: Option<TargetDesc>,
    auth_policy: Auth,
    auth: AuthState,
    declared: bool,
    /// Keys we offered and await answers for.
    offered: Vec<(String, String)>,
    offers_made: bool,
}

type Fail = LoginStatus;

impl Login {
    pub fn new(portal: Arc<PortalConfig>) -> Self {
        let params = Params {
            max_recv_data_segment_length: portal.limits.max_recv_data_segment_length.clamp(512, (1 << 24) - 1),
            ..Params::default()
        };
        Login {
            portal,
            stage: Stage::Security,
            first: None,
            seen: Vec::new(),
            accum: TextAccum::default(),
            cont_csg: None,
            out: TextOut::default(),
            final_flags: None,
            params,
            session_type: SessionType::Normal,
            initiator_name: None,
            initiator_alias: None,
            target: None,
            auth_policy: Auth::None,
            auth: AuthState::Start,
            declared: false,
            offered: Vec::new(),
            offers_made: false,
        }
    }

    pub fn session_type(&self) -> SessionType {
        self.session_type
    }

    pub fn initiator_name(&self) -> Option<&str> {
        self.initiator_name.as_deref()
    }

    /// The current stage (for failure responses).
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Handles one Login Request with its data segment.
    pub fn on_request(&mut self, req: &LoginRequest, data: &[u8]) -> LoginStep {
        match self.step(req, data) {
            Ok(s) => s,
            Err(status) => LoginStep::Fail(status),
        }
    }

    fn step(&mut self, req: &LoginRequest, data: &[u8]) -> Result<LoginStep, Fail> {
        match &self.first {
            None => {
                if req.version_min > 0 {
                    return Err(LoginStatus::UNSUPPORTED_VERSION);
                }
                self.first = Some(*req);
            }
            Some(f) => {
                if f.isid != req.isid || f.tsih != req.tsih || f.cid != req.cid {
                    return Err(LoginStatus::INITIATOR_ERROR);
                }
            }
        }
        // The initiator collects a continued response with empty requests.
        if self.out.pending() {
            if !data.is_empty() || req.cont {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
            return Ok(self.next_chunk());
        }
        // The leading exchange may start in the operational stage; continued text keeps its stage.
        let leading = self.initiator_name.is_none();
        let stage_ok = match self.cont_csg {
            Some(s) => req.csg == s,
            None => req.csg == self.stage || (leading && req.csg == Stage::Operational),
        };
        if !stage_ok {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        if req.transit && req.nsg <= req.csg {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        self.accum.push(data).map_err(|_| LoginStatus::INITIATOR_ERROR)?;
        if req.cont {
            self.cont_csg = Some(req.csg);
            // More text follows: an empty response asks for it.
            return Ok(LoginStep::Reply(LoginReply {
                transit: false,
                cont: false,
                csg: req.csg,
                nsg: req.csg,
                data: Vec::new(),
            }));
        }
        self.cont_csg = None;
        let all = self.accum.take();
        let kvs = text::parse(&all).map_err(|_| LoginStatus::INITIATOR_ERROR)?;
        for (k, _) in &kvs {
            if self.seen.iter().any(|s| s == k) {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
        }
        self.seen.extend(kvs.iter().map(|(k, _)| (*k).to_owned()));
        let mut answers: Vec<(String, String)> = Vec::new();
        let first_reply = self.initiator_name.is_none();
        if let Some((_, alias)) = kvs.iter().find(|(k, _)| *k == "InitiatorAlias") {
            self.initiator_alias = Some((*alias).to_owned());
        }
        if first_reply {
            self.identify(&kvs)?;
            if req.csg == Stage::Operational {
                // Skipping the security stage is only for targets that ask no authentication.
                if self.auth_policy != Auth::None {
                    return Err(LoginStatus::AUTHENTICATION_FAILED);
                }
                self.auth = AuthState::Done;
                self.stage = Stage::Operational;
            }
        }
        if self.stage == Stage::Security {
            self.security(req, &kvs, &mut answers)?;
        } else if kvs.iter().any(|(k, _)| keys::is_security_key(k)) {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        for (k, v) in &kvs {
            if keys::is_security_key(k) || keys::LEADING_KEYS.contains(k) {
                continue;
            }
            // The initiator's answer to one of our offers: applied, not answered.
            if let Some(i) = self.offered.iter().position(|(o, _)| o == k) {
                self.offered.remove(i);
                if !keys::take_answer(&mut self.params, &self.portal.limits, k, v) {
                    return Err(LoginStatus::INITIATOR_ERROR);
                }
                continue;
            }
            if let Answer::Value(a) = keys::answer(&mut self.params, &self.portal.limits, self.session_type, k, v) {
                answers.push(((*k).to_owned(), a));
            }
        }
        keys::reconcile(&mut self.params, &mut answers);
        let mut w = TextWriter::new();
        if first_reply
            && self.session_type == SessionType::Normal
            && let Some(t) = &self.target
        {
            if let Some(alias) = &t.alias {
                w.push("TargetAlias", alias);
            }
            w.push("TargetPortalGroupTag", &t.portal_group_tag.to_string());
        }
        for (k, v) in &answers {
            w.push(k, v);
        }
        // Where and whether we move on.
        let auth_done = self.auth == AuthState::Done;
        let mut transit = req.transit && auth_done && self.offered.is_empty();
        if transit && req.nsg == Stage::FullFeature && !self.offers_made {
            // Our stricter limits go out before the full feature phase; the answers come next.
            self.offers_made = true;
            let seen = &self.seen;
            let offers = keys::offers(&mut self.params, &self.portal.limits, self.session_type, &|k| {
                seen.iter().any(|s| s == k)
            });
            for (k, v) in &offers {
                w.push(k, v);
            }
            self.offered =
                offers.into_iter().filter(|(k, _)| *k != "ImmediateData").map(|(k, v)| (k.to_owned(), v)).collect();
            transit = self.offered.is_empty();
        }
        let csg = self.stage;
        let nsg = if transit { req.nsg } else { csg };
        if !self.declared && (csg == Stage::Operational || nsg == Stage::FullFeature) {
            w.push("MaxRecvDataSegmentLength", &self.params.max_recv_data_segment_length.to_string());
            self.declared = true;
        }
        if transit && nsg == Stage::Operational {
            self.stage = Stage::Operational;
        }
        self.out = TextOut::new(w.into_bytes());
        self.final_flags = Some((transit, csg, nsg));
        Ok(self.next_chunk())
    }

    /// The next chunk of the pending response; the last one carries the stage transition.
    fn next_chunk(&mut self) -> LoginStep {
        let (data, more) = self.out.next_chunk(LOGIN_SEGMENT);
        let (transit, csg, nsg) = self.final_flags.unwrap_or((false, self.stage, self.stage));
        if more {
            return LoginStep::Reply(LoginReply { transit: false, cont: true, csg, nsg: csg, data });
        }
        let reply = LoginReply { transit, cont: false, csg, nsg, data };
        if transit && nsg == Stage::FullFeature {
            if self.session_type == SessionType::Normal && self.target.is_none() {
                return LoginStep::Fail(LoginStatus::MISSING_PARAMETER);
            }
            let first = self.first.unwrap_or(LoginRequest {
                transit: false,
                cont: false,
                csg,
                nsg,
                version_max: 0,
                version_min: 0,
                isid: [0; 6],
                tsih: 0,
                itt: 0,
                cid: 0,
                cmd_sn: 0,
                exp_stat_sn: 0,
            });
            let req = SessionRequest {
                initiator_name: self.initiator_name.clone().unwrap_or_default(),
                initiator_alias: self.initiator_alias.clone(),
                isid: first.isid,
                tsih: first.tsih,
                cid: first.cid,
                session_type: self.session_type,
                target: self.target.as_ref().map(|t| t.name.clone()),
                params: self.params,
            };
            return LoginStep::Admit(req, reply);
        }
        LoginStep::Reply(reply)
    }

    /// The leading request's identity keys: who logs in, to what, and what authentication applies.
    fn identify(&mut self, kvs: &[(&str, &str)]) -> Result<(), Fail> {
        let get = |key: &str| kvs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let name = get("InitiatorName").filter(|n| !n.is_empty()).ok_or(LoginStatus::MISSING_PARAMETER)?;
        self.initiator_name = Some(name.to_owned());
        self.session_type = match get("SessionType") {
            None | Some("Normal") => SessionType::Normal,
            Some("Discovery") => SessionType::Discovery,
            Some(_) => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        match self.session_type {
            SessionType::Normal => {
                let tn = get("TargetName").filter(|n| !n.is_empty()).ok_or(LoginStatus::MISSING_PARAMETER)?;
                let t = self.portal.target(tn).ok_or(LoginStatus::NOT_FOUND)?;
                if !t.admits(name) {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                self.auth_policy = t.auth.clone();
                self.target = Some(t.clone());
            }
            SessionType::Discovery => {
                let allowed = self
                    .portal
                    .discovery_initiators
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|n| n.eq_ignore_ascii_case(name)));
                if !allowed {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                self.auth_policy = self.portal.discovery_auth.clone();
            }
        }
        Ok(())
    }

    /// The security stage: AuthMethod, then CHAP_A, then CHAP_N/CHAP_R (and mutual CHAP_I/CHAP_C).
    fn security(
        &mut self,
        req: &LoginRequest,
        kvs: &[(&str, &str)],
        out: &mut Vec<(String, String)>,
    ) -> Result<(), Fail> {
        let get = |key: &str| kvs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let failed = LoginStatus::AUTHENTICATION_FAILED;
        if self.auth == AuthState::Start {
            match get("AuthMethod") {
                Some(offer) => {
                    let chosen = offer
                        .split(',')
                        .find(|m| matches!((&self.auth_policy, *m), (Auth::None, "None") | (Auth::Chap(_), "CHAP")));
                    match chosen {
                        Some("CHAP") => {
                            out.push(("AuthMethod".into(), "CHAP".into()));
                            self.auth = AuthState::ChapA;
                        }
                        Some(_) => {
                            out.push(("AuthMethod".into(), "None".into()));
                            self.auth = AuthState::Done;
                        }
                        None => return Err(failed),
                    }
                }
                // AuthMethod defaults to None.
                None if self.auth_policy == Auth::None => self.auth = AuthState::Done,
                None if req.transit => return Err(failed),
                None => {}
            }
        } else if get("AuthMethod").is_some() {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        let just_agreed = get("AuthMethod").is_some();
        let has_chap_keys = kvs.iter().any(|(k, _)| k.starts_with("CHAP_"));
        let chap = match &self.auth_policy {
            Auth::Chap(c) => c.clone(),
            Auth::None if has_chap_keys => return Err(LoginStatus::INITIATOR_ERROR),
            Auth::None => return Ok(()),
        };
        match self.auth.clone() {
            AuthState::ChapA => {
                let Some(offer) = get("CHAP_A") else {
                    // CHAP_A may come with AuthMethod's answer pending, not later than the next request.
                    return if just_agreed && !has_chap_keys { Ok(()) } else { Err(failed) };
                };
                let alg = offer
                    .split(',')
                    .filter_map(ChapAlg::from_code)
                    .find(|a| chap.algorithms.contains(a))
                    .ok_or(failed)?;
                let rnd = random_bytes(alg.digest_len() + 1).ok_or(LoginStatus::TARGET_ERROR)?;
                let (id, challenge) =
                    rnd.split_first().map(|(i, c)| (*i, c.to_vec())).ok_or(LoginStatus::TARGET_ERROR)?;
                out.push(("CHAP_A".into(), alg.code().to_string()));
                out.push(("CHAP_I".into(), id.to_string()));
                out.push(("CHAP_C".into(), to_hex(&challenge)));
                self.auth = AuthState::ChapR { alg, id, challenge };
            }
            AuthState::ChapR { alg, id, challenge } => {
                verify_chap(&chap, alg, id, &challenge, &get, out)?;
                self.auth = AuthState::Done;
            }
            AuthState::Start | AuthState::Done if has_chap_keys => return Err(LoginStatus::INITIATOR_ERROR),
            AuthState::Start | AuthState::Done => {}
        }
        Ok(())
    }
}

/// Checks the initiator's CHAP_N/CHAP_R against our challenge, and answers a mutual CHAP challenge.
fn verify_chap<'a>(
    chap: &ChapAuth,
    alg: ChapAlg,
    id: u8,
    challenge: &[u8],
    get: &dyn Fn(&str) -> Option<&'a str>,
    out: &mut Vec<(String, String)>,
) -> Result<(), Fail> {
    let failed = LoginStatus::AUTHENTICATION_FAILED;
    let name = get("CHAP_N").ok_or(failed)?;
    let resp = get("CHAP_R").and_then(decode_binary).ok_or(failed)?;
    let cred = chap.initiators.iter().find(|c| c.name == name).ok_or(failed)?;
    if !ct_eq(&resp, &alg.response(id, &cred.secret, challenge)) {
        return Err(failed);
    }
    match (get("CHAP_I"), get("CHAP_C")) {
        (None, None) if chap.require_mutual => Err(failed),
        (None, None) => Ok(()),
        (Some(i), Some(c)) => {
            let ours = chap.target.as_ref().ok_or(failed)?;
            let i = keys::parse_number(i).filter(|&n| n <= 255).ok_or(failed)? as u8;
            let c = decode_binary(c).ok_or(failed)?;
            // A challenge reflected back at us, or one secret for both directions, defeats CHAP.
            if c == challenge || c.is_empty() || ours.secret == cred.secret {
                return Err(failed);
            }
            out.push(("CHAP_N".into(), ours.name.clone()));
            out.push(("CHAP_R".into(), to_hex(&alg.response(i, &ours.secret, &c))));
            Ok(())
        }
        _ => Err(failed),
    }
}
