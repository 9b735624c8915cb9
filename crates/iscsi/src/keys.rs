//! The operational text keys of RFC 7143 section 13 and their negotiation rules, target as responder:
//! list selection, numerical minimum and maximum, boolean AND and OR, declarations, and the answers
//! `NotUnderstood`, `Irrelevant` and `Reject`.
//!
//! Owns the negotiated values ([`Params`]); the order of the login and which stage allows which key
//! is [`crate::login`]'s business.

use crate::config::{DigestPolicy, Limits};

/// Normal or discovery session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SessionType {
    /// A session that carries SCSI commands.
    #[default]
    Normal,
    /// A session for SendTargets only.
    Discovery,
}

/// The session and connection parameters in force after login (RFC defaults until negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    /// CRC32C header digest.
    pub header_digest: bool,
    /// CRC32C data digest.
    pub data_digest: bool,
    /// MaxConnections.
    pub max_connections: u16,
    /// InitialR2T: no unsolicited Data-Out.
    pub initial_r2t: bool,
    /// ImmediateData: data in the SCSI Command PDU.
    pub immediate_data: bool,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// DefaultTime2Wait.
    pub default_time2wait: u16,
    /// DefaultTime2Retain.
    pub default_time2retain: u16,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel (we negotiate 0).
    pub error_recovery_level: u8,
    /// The initiator's MaxRecvDataSegmentLength: the most data we put in one PDU.
    pub max_xmit_data_segment_length: u32,
    /// Our MaxRecvDataSegmentLength: the most data a received PDU may carry.
    pub max_recv_data_segment_length: u32,
}

impl Default for Params {
    /// The RFC's defaults.
    fn default() -> Self {
        Params {
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            max_xmit_data_segment_length: 8192,
            max_recv_data_segment_length: 8192,
        }
    }
}

/// Keys the login handles itself (identity and security), not [`answer`].
pub const LEADING_KEYS: [&str; 4] = ["InitiatorName", "InitiatorAlias", "TargetName", "SessionType"];

/// Whether `key` belongs to the security stage.
pub fn is_security_key(key: &str) -> bool {
    key == "AuthMethod" || key.starts_with("CHAP_")
}

/// Keys that mean nothing in a discovery session (answered `Irrelevant` there).
const NORMAL_ONLY: [&str; 8] = [
    "MaxConnections",
    "InitialR2T",
    "ImmediateData",
    "MaxBurstLength",
    "FirstBurstLength",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
];

/// Parses a numerical value: decimal or `0x` hex.
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 16 {
            return None;
        }
        u64::from_str_radix(h, 16).ok()
    } else if !v.is_empty() && v.len() <= 20 && v.bytes().all(|c| c.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

/// A boolean key's value: `Yes` or `No` (anything else is `None`).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// A boolean key's spelling.
pub fn yes_no(b: bool) -> &'static str {
    if b { "Yes" } else { "No" }
}

fn num_in(v: &str, lo: u64, hi: u64) -> Option<u64> {
    parse_number(v).filter(|n| (lo..=hi).contains(n))
}

/// Picks the first offered digest our policy accepts.
fn pick_digest(offer: &str, policy: DigestPolicy) -> Option<bool> {
    offer.split(',').find_map(|o| match (o, policy) {
        ("None", DigestPolicy::Allow | DigestPolicy::Never) => Some(false),
        ("CRC32C", DigestPolicy::Allow | DigestPolicy::Require) => Some(true),
        _ => None,
    })
}

/// Our answer to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send `key=value`.
    Value(String),
    /// A declaration: nothing to send.
    Silent,
}

const MAX_SEGMENT: u64 = (1 << 24) - 1;

/// Negotiates one operational key the initiator offered or declared, updating `p`, and says what to
/// answer. Values out of range or malformed get `Reject` (the value in force stays the default);
/// unknown keys, including `X-` vendor keys, get `NotUnderstood`.
pub fn answer(p: &mut Params, lim: &Limits, session: SessionType, key: &str, value: &str) -> Answer {
    use Answer::{Silent, Value};
    let reject = || Value("Reject".into());
    if session == SessionType::Discovery && NORMAL_ONLY.contains(&key) {
        return Value("Irrelevant".into());
    }
    match key {
        "HeaderDigest" | "DataDigest" => {
            let policy = if key == "HeaderDigest" { lim.header_digest } else { lim.data_digest };
            match pick_digest(value, policy) {
                Some(on) => {
                    if key == "HeaderDigest" {
                        p.header_digest = on;
                    } else {
                        p.data_digest = on;
                    }
                    Value(if on { "CRC32C" } else { "None" }.into())
                }
                None => reject(),
            }
        }
        "MaxConnections" => match num_in(value, 1, 65535) {
            // One connection per session: error recovery level 0 and no MC/S.
            Some(_) => {
                p.max_connections = 1;
                Value("1".into())
            }
            None => reject(),
        },
        "InitialR2T" => match parse_bool(value) {
            Some(b) => {
                p.initial_r2t = b || lim.initial_r2t;
                Value(yes_no(p.initial_r2t).into())
            }
            None => reject(),
        },
        "ImmediateData" => match parse_bool(value) {
            Some(b) => {
                p.immediate_data = b && lim.immediate_data;
                Value(yes_no(p.immediate_data).into())
            }
            None => reject(),
        },
        "DataPDUInOrder" | "DataSequenceInOrder" => match parse_bool(value) {
            // OR with our Yes: we always receive in order.
            Some(_) => Value("Yes".into()),
            None => reject(),
        },
        "MaxRecvDataSegmentLength" => match num_in(value, 512, MAX_SEGMENT) {
            Some(n) => {
                p.max_xmit_data_segment_length = n as u32;
                Silent
            }
            None => reject(),
        },
        "MaxBurstLength" => match num_in(value, 512, MAX_SEGMENT) {
            Some(n) => {
                p.max_burst_length = (n as u32).min(lim.max_burst_length.max(512));
                Value(p.max_burst_length.to_string())
            }
            None => reject(),
        },
        "FirstBurstLength" => match num_in(value, 512, MAX_SEGMENT) {
            Some(n) => {
                p.first_burst_length = (n as u32).min(lim.first_burst_length.max(512));
                Value(p.first_burst_length.to_string())
            }
            None => reject(),
        },
        "DefaultTime2Wait" => match num_in(value, 0, 3600) {
            Some(n) => {
                p.default_time2wait = (n as u16).max(lim.default_time2wait);
                Value(p.default_time2wait.to_string())
            }
            None => reject(),
        },
        "DefaultTime2Retain" => match num_in(value, 0, 3600) {
            Some(n) => {
                p.default_time2retain = (n as u16).min(lim.default_time2retain);
                Value(p.default_time2retain.to_string())
            }
            None => reject(),
        },
        "MaxOutstandingR2T" => match num_in(value, 1, 65535) {
            Some(n) => {
                p.max_outstanding_r2t = (n as u16).min(lim.max_outstanding_r2t.max(1));
                Value(p.max_outstanding_r2t.to_string())
            }
            None => reject(),
        },
        "ErrorRecoveryLevel" => match num_in(value, 0, 2) {
            Some(_) => {
                p.error_recovery_level = 0;
                Value("0".into())
            }
            None => reject(),
        },
        // Obsoleted by RFC 7143 (section 13.25): "No" for the booleans is allowed, never NotUnderstood.
        "IFMarker" | "OFMarker" => match parse_bool(value) {
            Some(_) => Value("No".into()),
            None => reject(),
        },
        "IFMarkInt" | "OFMarkInt" => reject(),
        "TaskReporting" => {
            if value.split(',').any(|v| v == "RFC3720") {
                Value("RFC3720".into())
            } else {
                reject()
            }
        }
        "iSCSIProtocolLevel" => match num_in(value, 0, 31) {
            Some(n) => Value(n.min(1).to_string()),
            None => reject(),
        },
        // Target-only keys, and SendTargets (full feature phase only), have no business in a login
        // request.
        "TargetAlias" | "TargetAddress" | "TargetPortalGroupTag" | "SendTargets" => reject(),
        _ => Value("NotUnderstood".into()),
    }
}

/// Fixes what depends on several keys once a request's keys are all answered: FirstBurstLength may
/// not exceed MaxBurstLength, and it is irrelevant when no unsolicited data is possible.
pub fn reconcile(p: &mut Params, answers: &mut [(String, String)]) {
    p.first_burst_length = p.first_burst_length.min(p.max_burst_length);
    let irrelevant = p.initial_r2t && !p.immediate_data;
    for (k, v) in answers.iter_mut() {
        if k == "FirstBurstLength" && v != "Reject" && v != "Irrelevant" {
            *v = if irrelevant { "Irrelevant".into() } else { p.first_burst_length.to_string() };
        }
    }
}

/// The keys the target offers itself, because its limits are stricter than the RFC's defaults and
/// the initiator did not negotiate them (`negotiated` says which it did). A boolean AND offered as
/// `No` takes effect at once; the others wait for the initiator's answer ([`take_answer`]).
pub fn offers(
    p: &mut Params,
    lim: &Limits,
    session: SessionType,
    negotiated: &dyn Fn(&str) -> bool,
) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let mut want = |key: &'static str, value: String| {
        if !negotiated(key) {
            v.push((key, value));
        }
    };
    if lim.header_digest == DigestPolicy::Require {
        want("HeaderDigest", "CRC32C".into());
    }
    if lim.data_digest == DigestPolicy::Require {
        want("DataDigest", "CRC32C".into());
    }
    if session == SessionType::Normal {
        let d = Params::default();
        if lim.max_burst_length < d.max_burst_length {
            want("MaxBurstLength", lim.max_burst_length.max(512).to_string());
        }
        if lim.first_burst_length < d.first_burst_length {
            want("FirstBurstLength", lim.first_burst_length.max(512).to_string());
        }
        if !lim.immediate_data {
            want("ImmediateData", "No".into());
        }
    }
    if v.iter().any(|(k, _)| *k == "ImmediateData") {
        p.immediate_data = false;
    }
    v
}

/// Applies the initiator's answer to one of our offers. `false` when the answer leaves a value we
/// cannot work with (a required digest refused, a burst above our limit).
pub fn take_answer(p: &mut Params, lim: &Limits, key: &str, value: &str) -> bool {
    match key {
        "HeaderDigest" | "DataDigest" => {
            if value != "CRC32C" {
                return false;
            }
            if key == "HeaderDigest" {
                p.header_digest = true;
            } else {
                p.data_digest = true;
            }
        }
        "MaxBurstLength" => match num_in(value, 512, u64::from(lim.max_burst_length)) {
            Some(n) => p.max_burst_length = n as u32,
            None => return false,
        },
        "FirstBurstLength" if value == "Irrelevant" => {}
        "FirstBurstLength" => match num_in(value, 512, u64::from(lim.first_burst_length)) {
            Some(n) => p.first_burst_length = n as u32,
            None => return false,
        },
        // Offered as No under AND: the result is No whatever the answer.
        "ImmediateData" => p.immediate_data = false,
        _ => return false,
    }
    p.first_burst_length = p.first_burst_length.min(p.max_burst_length);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(key: &str, v: &str) -> (Answer, Params) {
        let mut p = Params::default();
        let a = answer(&mut p, &Limits::default(), SessionType::Normal, key, v);
        (a, p)
    }

    fn val(s: &str) -> Answer {
        Answer::Value(s.into())
    }

    #[test]
    fn result_functions() {
        let lim = Limits::default();
        assert_eq!(ans("MaxBurstLength", "16776192").0, val(&lim.max_burst_length.to_string()));
        assert_eq!(ans("MaxBurstLength", "4096").0, val("4096"));
        assert_eq!(ans("MaxBurstLength", "511").0, val("Reject"));
        assert_eq!(ans("MaxBurstLength", "0x1000").0, val("4096"));
        assert_eq!(ans("DefaultTime2Wait", "0").0, val("2"));
        assert_eq!(ans("DefaultTime2Wait", "10").0, val("10"));
        assert_eq!(ans("DefaultTime2Retain", "0").0, val("0"));
        assert_eq!(ans("DefaultTime2Retain", "3601").0, val("Reject"));
        assert_eq!(ans("ImmediateData", "No").0, val("No"));
        assert_eq!(ans("ImmediateData", "Yes").0, val("Yes"));
        assert_eq!(ans("InitialR2T", "No").0, val("No"));
        assert_eq!(ans("InitialR2T", "maybe").0, val("Reject"));
        assert_eq!(ans("ErrorRecoveryLevel", "2").0, val("0"));
        assert_eq!(ans("MaxConnections", "8").0, val("1"));
        assert_eq!(ans("HeaderDigest", "CRC32C,None").0, val("CRC32C"));
        assert_eq!(ans("HeaderDigest", "None,CRC32C").0, val("None"));
        assert_eq!(ans("HeaderDigest", "MD5").0, val("Reject"));
        assert_eq!(ans("X-com.example.Key", "1").0, val("NotUnderstood"));
        assert_eq!(ans("Bogus", "1").0, val("NotUnderstood"));
        assert_eq!(ans("OFMarker", "Yes").0, val("No"));
        assert_eq!(ans("OFMarkInt", "1~65535").0, val("Reject"));
        assert_eq!(ans("iSCSIProtocolLevel", "2").0, val("1"));
        let (a, p) = ans("MaxRecvDataSegmentLength", "65536");
        assert_eq!((a, p.max_xmit_data_segment_length), (Answer::Silent, 65536));
        let mut p = Params::default();
        let a = answer(&mut p, &Limits::default(), SessionType::Discovery, "ImmediateData", "Yes");
        assert_eq!(a, val("Irrelevant"));
    }

    #[test]
    fn policies() {
        let mut p = Params::default();
        let lim = Limits { header_digest: DigestPolicy::Require, initial_r2t: true, ..Limits::default() };
        assert_eq!(answer(&mut p, &lim, SessionType::Normal, "HeaderDigest", "None"), val("Reject"));
        assert_eq!(answer(&mut p, &lim, SessionType::Normal, "HeaderDigest", "None,CRC32C"), val("CRC32C"));
        assert_eq!(answer(&mut p, &lim, SessionType::Normal, "InitialR2T", "No"), val("Yes"));
        assert!(p.header_digest && p.initial_r2t);
    }

    #[test]
    fn target_offers() {
        let lim = Limits {
            header_digest: DigestPolicy::Require,
            max_burst_length: 65536,
            first_burst_length: 8192,
            immediate_data: false,
            ..Limits::default()
        };
        let mut p = Params::default();
        let o = offers(&mut p, &lim, SessionType::Normal, &|k| k == "FirstBurstLength");
        let keys: Vec<&str> = o.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec!["HeaderDigest", "MaxBurstLength", "ImmediateData"]);
        assert!(!p.immediate_data);
        assert!(take_answer(&mut p, &lim, "MaxBurstLength", "32768"));
        assert_eq!(p.max_burst_length, 32768);
        assert!(!take_answer(&mut p, &lim, "MaxBurstLength", "262144"));
        assert!(!take_answer(&mut p, &lim, "HeaderDigest", "Reject"));
        assert!(take_answer(&mut p, &lim, "HeaderDigest", "CRC32C"));
        assert!(offers(&mut Params::default(), &Limits::default(), SessionType::Normal, &|_| false).is_empty());
    }

    #[test]
    fn first_burst_follows_max_burst() {
        let mut p = Params::default();
        let lim = Limits::default();
        let mut answers = Vec::new();
        for (k, v) in [("FirstBurstLength", "262144"), ("MaxBurstLength", "8192")] {
            if let Answer::Value(a) = answer(&mut p, &lim, SessionType::Normal, k, v) {
                answers.push((k.to_string(), a));
            }
        }
        reconcile(&mut p, &mut answers);
        assert_eq!(p.first_burst_length, 8192);
        assert_eq!(answers[0].1, "8192");
        p.initial_r2t = true;
        p.immediate_data = false;
        reconcile(&mut p, &mut answers);
        assert_eq!(answers[0].1, "Irrelevant");
    }
}
