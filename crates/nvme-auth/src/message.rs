//! The authentication messages carried by Authentication Send / Receive: AUTH_Negotiate,
//! DH-HMAC-CHAP_Challenge, _Reply, _Success1, _Success2, AUTH_Failure1 and AUTH_Failure2.
//!
//! Owns the byte layouts (all multi-byte fields little-endian; reserved bytes written as zero
//! and ignored on receipt) and their validation. Decoding never panics: every malformed field
//! is a [`DecodeError`].
//!
//! Layouts (byte offsets), common header first:
//! - header: 0 AUTH_Type, 1 AUTH_Id, 2..4 reserved, 4..6 T_ID
//! - Negotiate: 6 SC_C, 7 NAPD, then NAPD 64-byte descriptors
//!   (0 AUTHID, 1 reserved, 2 HALEN, 3 DHLEN, 4..34 hash IDs, 34..64 DH group IDs)
//! - Challenge: 6 HL, 7 reserved, 8 HashID, 9 DHgID, 10..12 DHVLEN, 12..16 SEQNUM,
//!   16.. C (HL bytes), DHV (DHVLEN bytes)
//! - Reply: 6 HL, 7 reserved, 8 CVALID, 9 reserved, 10..12 DHVLEN, 12..16 SEQNUM,
//!   16.. R (HL), C (HL, present even when CVALID is 0), DHV (DHVLEN)
//! - Success1: 6 HL, 7 reserved, 8 RVALID, 9..16 reserved, 16.. R (HL bytes; SPDK omits it
//!   when RVALID is 0, the kernel and this crate always send it)
//! - Success2: 16 bytes, header only
//! - Failure1 / Failure2: 6 reason code (01h), 7 reason code explanation

use crate::ids::{
    AUTH_TYPE_COMMON, AUTH_TYPE_DHCHAP, DhGroup, FailureReason, HashId, ID_CHALLENGE, ID_FAILURE1, ID_FAILURE2,
    ID_NEGOTIATE, ID_REPLY, ID_SUCCESS1, ID_SUCCESS2, REASON_CODE_FAILURE,
};

/// Length of the common header (type, id, reserved, T_ID).
pub const HEADER_LEN: usize = 6;
/// Length of AUTH_Negotiate before its descriptors.
pub const NEGOTIATE_LEN: usize = 8;
/// Length of one AUTH_Negotiate protocol descriptor.
pub const DESCRIPTOR_LEN: usize = 64;
/// Capacity of each ID list in a descriptor.
pub const DESCRIPTOR_LIST_LEN: usize = 30;
/// Length of the fixed part of Challenge, Reply, Success1; all of Success2.
pub const DHCHAP_FIXED_LEN: usize = 16;
/// Length of AUTH_Failure1 / AUTH_Failure2.
pub const FAILURE_LEN: usize = 8;

/// Why bytes are not a valid authentication message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header or the lengths it declares require.
    #[error("message truncated: {needed} bytes needed, {have} present")]
    Truncated {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// More bytes than the message's declared length (exact decoding only).
    #[error("message is {have} bytes but declares {expected}")]
    TrailingBytes {
        /// The declared length.
        expected: usize,
        /// Bytes present.
        have: usize,
    },
    /// AUTH_Type is neither common (00h) nor DH-HMAC-CHAP (01h).
    #[error("unknown AUTH_Type {0:#04x}")]
    UnknownAuthType(u8),
    /// AUTH_Id is not defined for the AUTH_Type.
    #[error("unknown AUTH_Id {auth_id:#04x} for AUTH_Type {auth_type:#04x}")]
    UnknownMessageId {
        /// The AUTH_Type byte.
        auth_type: u8,
        /// The AUTH_Id byte.
        auth_id: u8,
    },
    /// HashID names no known hash.
    #[error("unknown hash id {0:#04x}")]
    UnknownHash(u8),
    /// DHgID names no known group.
    #[error("unknown DH group id {0:#04x}")]
    UnknownDhGroup(u8),
    /// HL does not match the hash (or is not a DH-HMAC-CHAP digest length).
    #[error("hash length {0} is invalid here")]
    HashLength(u8),
    /// DHVLEN does not fit the group (must be 0 for null, 1..=prime length otherwise).
    #[error("DH value length {dhvlen} is invalid for {group}")]
    DhValueLength {
        /// The DHVLEN field.
        dhvlen: u16,
        /// The group it was checked against.
        group: DhGroup,
    },
    /// A one-bit flag byte holds something other than 0 or 1.
    #[error("{field} is {value:#04x}; expected 0 or 1")]
    Flag {
        /// Which flag (CVALID, RVALID).
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// HALEN or DHLEN exceeds the 30 entries a descriptor holds.
    #[error("{field} is {len}; at most 30")]
    ListLength {
        /// Which count (HALEN, DHLEN).
        field: &'static str,
        /// The value found.
        len: u8,
    },
    /// The failure reason code is not 01h.
    #[error("unknown failure reason code {0:#04x}")]
    UnknownReasonCode(u8),
    /// The failure reason code explanation is not defined.
    #[error("unknown failure reason explanation {0:#04x}")]
    UnknownReasonExplanation(u8),
}

/// Which message a value is, for errors and state checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// AUTH_Negotiate.
    Negotiate,
    /// DH-HMAC-CHAP_Challenge.
    Challenge,
    /// DH-HMAC-CHAP_Reply.
    Reply,
    /// DH-HMAC-CHAP_Success1.
    Success1,
    /// DH-HMAC-CHAP_Success2.
    Success2,
    /// AUTH_Failure1.
    Failure1,
    /// AUTH_Failure2.
    Failure2,
}

/// One AUTH_Negotiate protocol descriptor. IDs are kept raw: a host may list hashes or groups
/// this crate does not know, which must be skipped rather than refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolDescriptor {
    /// Protocol identifier (01h = DH-HMAC-CHAP).
    pub auth_id: u8,
    /// Offered hash IDs (at most 30).
    pub hash_ids: Vec<u8>,
    /// Offered DH group IDs (at most 30).
    pub dh_group_ids: Vec<u8>,
}

/// AUTH_Negotiate (host to controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiate {
    /// Transaction identifier chosen by the host.
    pub t_id: u16,
    /// Secure channel concatenation request.
    pub sc_c: u8,
    /// Offered protocols.
    pub protocols: Vec<ProtocolDescriptor>,
}

/// DH-HMAC-CHAP_Challenge (controller to host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Transaction identifier.
    pub t_id: u16,
    /// Selected hash.
    pub hash: HashId,
    /// Selected DH group.
    pub dh_group: DhGroup,
    /// S1, non-zero.
    pub seqnum: u32,
    /// C1, `hash.hash_len()` bytes.
    pub challenge: Vec<u8>,
    /// The controller's DH value (empty for the null group).
    pub dh_value: Vec<u8>,
}

/// DH-HMAC-CHAP_Reply (host to controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Transaction identifier.
    pub t_id: u16,
    /// R1, HL bytes (32, 48 or 64).
    pub response: Vec<u8>,
    /// C2 when the host asks the controller to authenticate itself (CVALID = 1).
    pub controller_challenge: Option<Vec<u8>>,
    /// S2 (0 unless CVALID).
    pub seqnum: u32,
    /// The host's DH value (empty for the null group).
    pub dh_value: Vec<u8>,
}

/// DH-HMAC-CHAP_Success1 (controller to host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success1 {
    /// Transaction identifier.
    pub t_id: u16,
    /// HL: the negotiated hash length, set even without a response.
    pub hash_len: u8,
    /// R2 when the host asked for it (RVALID = 1).
    pub response: Option<Vec<u8>>,
}

/// AUTH_Failure1 or AUTH_Failure2 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Transaction identifier.
    pub t_id: u16,
    /// Reason code explanation (under reason code 01h).
    pub reason: FailureReason,
}

/// Any authentication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMessage {
    /// AUTH_Negotiate.
    Negotiate(Negotiate),
    /// DH-HMAC-CHAP_Challenge.
    Challenge(Challenge),
    /// DH-HMAC-CHAP_Reply.
    Reply(Reply),
    /// DH-HMAC-CHAP_Success1.
    Success1(Success1),
    /// DH-HMAC-CHAP_Success2 (carries only the T_ID).
    Success2 {
        /// Transaction identifier.
        t_id: u16,
    },
    /// AUTH_Failure1 (controller to host).
    Failure1(Failure),
    /// AUTH_Failure2 (host to controller).
    Failure2(Failure),
}

fn need(buf: &[u8], needed: usize) -> Result<(), DecodeError> {
    if buf.len() < needed { Err(DecodeError::Truncated { needed, have: buf.len() }) } else { Ok(()) }
}

fn le16(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn le32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn flag(field: &'static str, value: u8) -> Result<bool, DecodeError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Flag { field, value }),
    }
}

/// HL of a Reply/Success1 must be a DH-HMAC-CHAP digest length.
fn hash_len(hl: u8) -> Result<usize, DecodeError> {
    if HashId::ALL.iter().any(|h| h.hash_len() == usize::from(hl)) {
        Ok(usize::from(hl))
    } else {
        Err(DecodeError::HashLength(hl))
    }
}

fn header(auth_type: u8, auth_id: u8, t_id: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[auth_type, auth_id, 0, 0]);
    out.extend_from_slice(&t_id.to_le_bytes());
}

impl AuthMessage {
    /// Decodes a message that must occupy all of `buf` (an Authentication Send payload of
    /// known length).
    pub fn decode(buf: &[u8]) -> Result<AuthMessage, DecodeError> {
        let (msg, len) = AuthMessage::decode_prefix(buf)?;
        if len != buf.len() {
            return Err(DecodeError::TrailingBytes { expected: len, have: buf.len() });
        }
        Ok(msg)
    }

    /// Decodes a message at the start of `buf`, returning it and its length; trailing bytes are
    /// ignored (an Authentication Receive buffer may be larger than the message in it).
    pub fn decode_prefix(buf: &[u8]) -> Result<(AuthMessage, usize), DecodeError> {
        need(buf, HEADER_LEN)?;
        let (auth_type, auth_id, t_id) = (buf[0], buf[1], le16(buf, 4));
        match (auth_type, auth_id) {
            (AUTH_TYPE_COMMON, ID_NEGOTIATE) => decode_negotiate(buf, t_id),
            (AUTH_TYPE_COMMON, ID_FAILURE1 | ID_FAILURE2) => {
                need(buf, FAILURE_LEN)?;
                if buf[6] != REASON_CODE_FAILURE {
                    return Err(DecodeError::UnknownReasonCode(buf[6]));
                }
                let reason = FailureReason::from_code(buf[7]).ok_or(DecodeError::UnknownReasonExplanation(buf[7]))?;
                let f = Failure { t_id, reason };
                let msg = if auth_id == ID_FAILURE1 { AuthMessage::Failure1(f) } else { AuthMessage::Failure2(f) };
                Ok((msg, FAILURE_LEN))
            }
            (AUTH_TYPE_DHCHAP, ID_CHALLENGE) => decode_challenge(buf, t_id),
            (AUTH_TYPE_DHCHAP, ID_REPLY) => decode_reply(buf, t_id),
            (AUTH_TYPE_DHCHAP, ID_SUCCESS1) => decode_success1(buf, t_id),
            (AUTH_TYPE_DHCHAP, ID_SUCCESS2) => {
                need(buf, DHCHAP_FIXED_LEN)?;
                Ok((AuthMessage::Success2 { t_id }, DHCHAP_FIXED_LEN))
            }
            (AUTH_TYPE_COMMON | AUTH_TYPE_DHCHAP, _) => Err(DecodeError::UnknownMessageId { auth_type, auth_id }),
            _ => Err(DecodeError::UnknownAuthType(auth_type)),
        }
    }

    /// The T_ID field read from raw bytes without validating anything else (to address a
    /// failure message to a transaction whose message could not be decoded).
    pub fn peek_t_id(buf: &[u8]) -> Option<u16> {
        (buf.len() >= HEADER_LEN).then(|| le16(buf, 4))
    }

    /// Which message this is.
    pub fn kind(&self) -> MessageKind {
        match self {
            AuthMessage::Negotiate(_) => MessageKind::Negotiate,
            AuthMessage::Challenge(_) => MessageKind::Challenge,
            AuthMessage::Reply(_) => MessageKind::Reply,
            AuthMessage::Success1(_) => MessageKind::Success1,
            AuthMessage::Success2 { .. } => MessageKind::Success2,
            AuthMessage::Failure1(_) => MessageKind::Failure1,
            AuthMessage::Failure2(_) => MessageKind::Failure2,
        }
    }

    /// The transaction identifier.
    pub fn t_id(&self) -> u16 {
        match self {
            AuthMessage::Negotiate(m) => m.t_id,
            AuthMessage::Challenge(m) => m.t_id,
            AuthMessage::Reply(m) => m.t_id,
            AuthMessage::Success1(m) => m.t_id,
            AuthMessage::Success2 { t_id } => *t_id,
            AuthMessage::Failure1(m) | AuthMessage::Failure2(m) => m.t_id,
        }
    }

    /// The wire bytes. Length fields are derived from the values; values that cannot be
    /// represented (more than 30 IDs in a list, more than 255 descriptors, a DH value over
    /// 65535 bytes) are truncated, so callers build messages through the state machines or
    /// keep within the spec's limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            AuthMessage::Negotiate(m) => {
                header(AUTH_TYPE_COMMON, ID_NEGOTIATE, m.t_id, &mut out);
                let napd = m.protocols.len().min(255);
                out.extend_from_slice(&[m.sc_c, napd as u8]);
                for d in &m.protocols[..napd] {
                    let ha = &d.hash_ids[..d.hash_ids.len().min(DESCRIPTOR_LIST_LEN)];
                    let dh = &d.dh_group_ids[..d.dh_group_ids.len().min(DESCRIPTOR_LIST_LEN)];
                    let mut desc = [0u8; DESCRIPTOR_LEN];
                    desc[0] = d.auth_id;
                    desc[2] = ha.len() as u8;
                    desc[3] = dh.len() as u8;
                    desc[4..4 + ha.len()].copy_from_slice(ha);
                    desc[34..34 + dh.len()].copy_from_slice(dh);
                    out.extend_from_slice(&desc);
                }
            }
            AuthMessage::Challenge(m) => {
                header(AUTH_TYPE_DHCHAP, ID_CHALLENGE, m.t_id, &mut out);
                let dhv = &m.dh_value[..m.dh_value.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&[m.hash.hash_len() as u8, 0, m.hash.id(), m.dh_group.id()]);
                out.extend_from_slice(&(dhv.len() as u16).to_le_bytes());
                out.extend_from_slice(&m.seqnum.to_le_bytes());
                out.extend_from_slice(&fit(&m.challenge, m.hash.hash_len()));
                out.extend_from_slice(dhv);
            }
            AuthMessage::Reply(m) => {
                header(AUTH_TYPE_DHCHAP, ID_REPLY, m.t_id, &mut out);
                let hl = m.response.len().min(255);
                let dhv = &m.dh_value[..m.dh_value.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&[hl as u8, 0, u8::from(m.controller_challenge.is_some()), 0]);
                out.extend_from_slice(&(dhv.len() as u16).to_le_bytes());
                out.extend_from_slice(&m.seqnum.to_le_bytes());
                out.extend_from_slice(&m.response[..hl]);
                match &m.controller_challenge {
                    Some(c) => out.extend_from_slice(&fit(c, hl)),
                    None => out.resize(out.len() + hl, 0),
                }
                out.extend_from_slice(dhv);
            }
            AuthMessage::Success1(m) => {
                header(AUTH_TYPE_DHCHAP, ID_SUCCESS1, m.t_id, &mut out);
                out.extend_from_slice(&[m.hash_len, 0, u8::from(m.response.is_some())]);
                out.resize(DHCHAP_FIXED_LEN, 0);
                let hl = usize::from(m.hash_len);
                match &m.response {
                    Some(r) => out.extend_from_slice(&fit(r, hl)),
                    None => out.resize(DHCHAP_FIXED_LEN + hl, 0),
                }
            }
            AuthMessage::Success2 { t_id } => {
                header(AUTH_TYPE_DHCHAP, ID_SUCCESS2, *t_id, &mut out);
                out.resize(DHCHAP_FIXED_LEN, 0);
            }
            AuthMessage::Failure1(f) | AuthMessage::Failure2(f) => {
                let id = if matches!(self, AuthMessage::Failure1(_)) { ID_FAILURE1 } else { ID_FAILURE2 };
                header(AUTH_TYPE_COMMON, id, f.t_id, &mut out);
                out.extend_from_slice(&[REASON_CODE_FAILURE, f.reason.code()]);
            }
        }
        out
    }
}

/// `v` cut or zero-extended to exactly `len` bytes (keeps encoded lengths consistent with HL).
fn fit(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = v[..v.len().min(len)].to_vec();
    out.resize(len, 0);
    out
}

fn decode_negotiate(buf: &[u8], t_id: u16) -> Result<(AuthMessage, usize), DecodeError> {
    need(buf, NEGOTIATE_LEN)?;
    let (sc_c, napd) = (buf[6], usize::from(buf[7]));
    let total = NEGOTIATE_LEN + napd * DESCRIPTOR_LEN;
    need(buf, total)?;
    let mut protocols = Vec::with_capacity(napd);
    for d in buf[NEGOTIATE_LEN..total].chunks_exact(DESCRIPTOR_LEN) {
        let (halen, dhlen) = (d[2], d[3]);
        if usize::from(halen) > DESCRIPTOR_LIST_LEN {
            return Err(DecodeError::ListLength { field: "HALEN", len: halen });
        }
        if usize::from(dhlen) > DESCRIPTOR_LIST_LEN {
            return Err(DecodeError::ListLength { field: "DHLEN", len: dhlen });
        }
        protocols.push(ProtocolDescriptor {
            auth_id: d[0],
            hash_ids: d[4..4 + usize::from(halen)].to_vec(),
            dh_group_ids: d[34..34 + usize::from(dhlen)].to_vec(),
        });
    }
    Ok((AuthMessage::Negotiate(Negotiate { t_id, sc_c, protocols }), total))
}

fn decode_challenge(buf: &[u8], t_id: u16) -> Result<(AuthMessage, usize), DecodeError> {
    need(buf, DHCHAP_FIXED_LEN)?;
    let hash = HashId::from_id(buf[8]).ok_or(DecodeError::UnknownHash(buf[8]))?;
    let dh_group = DhGroup::from_id(buf[9]).ok_or(DecodeError::UnknownDhGroup(buf[9]))?;
    if usize::from(buf[6]) != hash.hash_len() {
        return Err(DecodeError::HashLength(buf[6]));
    }
    let dhvlen = le16(buf, 10);
    let dv = usize::from(dhvlen);
    if (dh_group == DhGroup::Null) != (dv == 0) || dv > dh_group.value_len() {
        return Err(DecodeError::DhValueLength { dhvlen, group: dh_group });
    }
    let hl = hash.hash_len();
    let total = DHCHAP_FIXED_LEN + hl + dv;
    need(buf, total)?;
    let c = DHCHAP_FIXED_LEN;
    Ok((
        AuthMessage::Challenge(Challenge {
            t_id,
            hash,
            dh_group,
            seqnum: le32(buf, 12),
            challenge: buf[c..c + hl].to_vec(),
            dh_value: buf[c + hl..total].to_vec(),
        }),
        total,
    ))
}

fn decode_reply(buf: &[u8], t_id: u16) -> Result<(AuthMessage, usize), DecodeError> {
    need(buf, DHCHAP_FIXED_LEN)?;
    let hl = hash_len(buf[6])?;
    let cvalid = flag("CVALID", buf[8])?;
    let dv = usize::from(le16(buf, 10));
    let total = DHCHAP_FIXED_LEN + 2 * hl + dv;
    need(buf, total)?;
    let r = DHCHAP_FIXED_LEN;
    Ok((
        AuthMessage::Reply(Reply {
            t_id,
            response: buf[r..r + hl].to_vec(),
            controller_challenge: cvalid.then(|| buf[r + hl..r + 2 * hl].to_vec()),
            seqnum: le32(buf, 12),
            dh_value: buf[r + 2 * hl..total].to_vec(),
        }),
        total,
    ))
}

fn decode_success1(buf: &[u8], t_id: u16) -> Result<(AuthMessage, usize), DecodeError> {
    need(buf, DHCHAP_FIXED_LEN)?;
    let rvalid = flag("RVALID", buf[8])?;
    let hl = buf[6];
    if !rvalid {
        // HL is informational without a response; some targets send 0.
        if hl != 0 {
            hash_len(hl)?;
        }
        // The response field is optional here: take it if the buffer has it.
        let with_field = DHCHAP_FIXED_LEN + usize::from(hl);
        let len = if buf.len() >= with_field { with_field } else { DHCHAP_FIXED_LEN };
        return Ok((AuthMessage::Success1(Success1 { t_id, hash_len: hl, response: None }), len));
    }
    let hlen = hash_len(hl)?;
    let total = DHCHAP_FIXED_LEN + hlen;
    need(buf, total)?;
    Ok((
        AuthMessage::Success1(Success1 { t_id, hash_len: hl, response: Some(buf[DHCHAP_FIXED_LEN..total].to_vec()) }),
        total,
    ))
}
