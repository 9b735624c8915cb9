//! The fuzz body shared by the cargo-fuzz target `auth_message` and the stable test that runs
//! it on mutated valid messages. Feature `fuzzing` only.
//!
//! Input layout: byte 0 selects what is fuzzed (bits 0-2: decoder, fresh controller,
//! controller awaiting a Reply, host awaiting a Challenge, host awaiting Success1; bit 3:
//! ffdhe2048 instead of the null group; bit 4: bidirectional). The rest is a sequence of
//! messages, each a little-endian u16 length then that many bytes (a short last one takes what
//! is left), fed to the chosen side in order.
//!
//! Besides "never panics", the body checks what must hold for any input: a decoded message
//! re-encodes to bytes that decode to the same message, every byte string a state machine asks
//! to deliver decodes, and a failure message carries the failure's own reason.

use std::sync::Arc;

use crate::controller::{ControllerAuth, ControllerConfig, HostCredentials};
use crate::host::{HostAuth, HostConfig};
use crate::ids::{DhGroup, HashId};
use crate::message::{AuthMessage, MessageKind};
use crate::rng::{SeededRandom, SeqnumCounter};
use crate::secret::Secret;
use crate::step::{AuthFailure, Step};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
const SUBNQN: &str = "nqn.2024-01.io.ferrofabric:fuzz";

/// What byte 0 of the input selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `AuthMessage::decode` / `decode_prefix` only.
    Decoder,
    /// A controller that has seen nothing yet.
    FreshController,
    /// A controller that sent a Challenge and awaits the Reply.
    ControllerAwaitingReply,
    /// A host that sent AUTH_Negotiate and awaits the Challenge.
    HostAwaitingChallenge,
    /// A host that sent its Reply and awaits Success1.
    HostAwaitingSuccess1,
}

impl Target {
    /// The selector byte for this target with the given group and direction.
    pub fn selector(self, dh: bool, bidirectional: bool) -> u8 {
        let t = match self {
            Target::Decoder => 0,
            Target::FreshController => 1,
            Target::ControllerAwaitingReply => 2,
            Target::HostAwaitingChallenge => 3,
            Target::HostAwaitingSuccess1 => 4,
        };
        t | (u8::from(dh) << 3) | (u8::from(bidirectional) << 4)
    }
}

/// Frames `messages` as the body expects after the selector byte.
pub fn frame(selector: u8, messages: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![selector];
    for m in messages {
        let len = m.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&m[..len]);
    }
    out
}

fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        out.push(&rest[2..2 + take]);
        rest = &rest[2 + take..];
    }
    out
}

/// A host and a controller sharing secrets, deterministic.
fn sides(group: DhGroup, bidirectional: bool) -> (HostAuth<SeededRandom>, ControllerAuth<SeededRandom>) {
    let secret = || Secret::from_key(Some(HashId::Sha256), &[0x5A; 32]).expect("valid key");
    let ctrl_secret = || Secret::from_key(None, &[0xA5; 48]).expect("valid key");
    let mut hc = HostConfig::new(HOSTNQN, SUBNQN, secret());
    hc.controller_secret = bidirectional.then(ctrl_secret);
    hc.dh_groups = vec![group];
    hc.seqnum = Arc::new(SeqnumCounter::new(7));
    let mut cc = ControllerConfig::new(SUBNQN);
    cc.hashes = vec![HashId::Sha256];
    cc.dh_groups = vec![group];
    cc.seqnum = Arc::new(SeqnumCounter::new(70));
    let creds =
        HostCredentials { hostnqn: HOSTNQN.into(), secret: Some(secret()), controller_secret: Some(ctrl_secret()) };
    (
        HostAuth::new(Arc::new(hc), SeededRandom::new(11)),
        ControllerAuth::new(Arc::new(cc), creds, SeededRandom::new(12)),
    )
}

fn bytes_of(step: Step) -> Vec<u8> {
    match step {
        Step::Send(b) | Step::SendThenAuthenticated(b) => b,
        Step::Authenticated => Vec::new(),
    }
}

/// The valid messages of one whole exchange: Negotiate, Challenge, Reply, Success1 and (if
/// bidirectional) Success2, for seeding corpora and the stable test.
pub fn valid_exchange(dh: bool, bidirectional: bool) -> Vec<Vec<u8>> {
    let group = if dh { DhGroup::Ffdhe2048 } else { DhGroup::Null };
    let (mut host, mut ctrl) = sides(group, bidirectional);
    let mut out = vec![host.start(1)];
    let mut from_host = true;
    // Alternate until a side reports success; bounded by the protocol's five messages.
    for _ in 0..5 {
        let last = out.last().cloned().unwrap_or_default();
        let step = if from_host { ctrl.on_message(&last) } else { host.on_message(&last) };
        match step {
            Ok(Step::Authenticated) | Err(_) => break,
            Ok(s) => out.push(bytes_of(s)),
        }
        from_host = !from_host;
    }
    out
}

fn check_step(result: &Result<Step, AuthFailure>, failure_kind: MessageKind) {
    match result {
        Ok(Step::Send(b) | Step::SendThenAuthenticated(b)) => {
            assert!(AuthMessage::decode(b).is_ok(), "state machine sent junk");
        }
        Ok(Step::Authenticated) => {}
        Err(f) => {
            if let Some(b) = &f.send {
                let m = AuthMessage::decode(b).expect("failure message decodes");
                assert_eq!(m.kind(), failure_kind);
                let (AuthMessage::Failure1(x) | AuthMessage::Failure2(x)) = m else { unreachable!("kind checked") };
                assert_eq!(x.reason, f.reason);
            }
        }
    }
}

fn check_decode(bytes: &[u8]) {
    if let Ok((m, len)) = AuthMessage::decode_prefix(bytes) {
        assert!(len <= bytes.len());
        assert_eq!(AuthMessage::decode(&bytes[..len]).as_ref(), Ok(&m));
        let again = m.encode();
        assert_eq!(AuthMessage::decode(&again).as_ref(), Ok(&m), "re-encode changed it");
    }
    if let Ok(m) = AuthMessage::decode(bytes) {
        assert_eq!(AuthMessage::decode(&m.encode()), Ok(m));
    }
}

/// The fuzz body: never panics on any input unless an invariant above is broken.
pub fn auth_message(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let group = if sel & 0x08 != 0 { DhGroup::Ffdhe2048 } else { DhGroup::Null };
    let bidirectional = sel & 0x10 != 0;
    let messages = split(rest);
    match sel & 0x07 {
        1 | 2 => {
            let (mut host, mut ctrl) = sides(group, bidirectional);
            if sel & 0x07 == 2 {
                let negotiate = host.start(1);
                let r = ctrl.on_message(&negotiate);
                check_step(&r, MessageKind::Failure1);
            }
            for m in messages {
                check_decode(m);
                check_step(&ctrl.on_message(m), MessageKind::Failure1);
            }
        }
        3 | 4 => {
            let (mut host, mut ctrl) = sides(group, bidirectional);
            let negotiate = host.start(1);
            if sel & 0x07 == 4 {
                let challenge = ctrl.on_message(&negotiate).map(bytes_of);
                if let Ok(c) = challenge {
                    check_step(&host.on_message(&c), MessageKind::Failure2);
                }
            }
            for m in messages {
                check_decode(m);
                check_step(&host.on_message(m), MessageKind::Failure2);
            }
        }
        _ => {
            check_decode(rest);
            for m in messages {
                check_decode(m);
            }
        }
    }
}
