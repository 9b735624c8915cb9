//! Host and controller state machines against each other: every hash with the null group and
//! ffdhe2048, uni- and bidirectional (ffdhe8192 once), and the failures the spec names.

use std::sync::Arc;

use ff_nvme_auth::message::{Failure, Negotiate, ProtocolDescriptor};
use ff_nvme_auth::{
    AuthError, AuthMessage, ControllerAuth, ControllerConfig, DhGroup, FailureReason, HashId, HostAuth, HostConfig,
    HostCredentials, Secret, SeededRandom, SeqnumCounter, Step,
};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6b0b6f5e-ffab-4a0c-9a8f-2b53a9e1d1c7";
const SUBNQN: &str = "nqn.2024-01.io.ferrofabric:subsys1";
const HOST_SECRET: &str = "DHHC-1:01:C7XNT6VDFTFfbGtrSimOlLFg7BAdH+UwUgkLTuSA5gcd+7/H:";
const CTRL_SECRET: &str = "DHHC-1:02:Hi9ha9idssh3FgURRbfMUvOY7NlHiApDCmHhmIRCdhdlNQwebHEt/7DHoag3SmCHFvei/Q==:";
const OTHER_SECRET: &str = "DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:";

struct Pair {
    host: HostAuth<SeededRandom>,
    ctrl: ControllerAuth<SeededRandom>,
}

fn host_cfg(bidi: bool, hashes: &[HashId], groups: &[DhGroup]) -> HostConfig {
    let mut cfg = HostConfig::new(HOSTNQN, SUBNQN, Secret::parse(HOST_SECRET).unwrap());
    cfg.controller_secret = bidi.then(|| Secret::parse(CTRL_SECRET).unwrap());
    cfg.hashes = hashes.to_vec();
    cfg.dh_groups = groups.to_vec();
    cfg.seqnum = Arc::new(SeqnumCounter::new(1000));
    cfg
}

fn ctrl_cfg(hashes: &[HashId], groups: &[DhGroup]) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(SUBNQN);
    cfg.hashes = hashes.to_vec();
    cfg.dh_groups = groups.to_vec();
    cfg.seqnum = Arc::new(SeqnumCounter::new(u32::MAX - 1));
    cfg
}

fn creds(host_secret: Option<&str>) -> HostCredentials {
    HostCredentials {
        hostnqn: HOSTNQN.into(),
        secret: host_secret.map(|s| Secret::parse(s).unwrap()),
        controller_secret: Some(Secret::parse(CTRL_SECRET).unwrap()),
    }
}

fn pair(bidi: bool, hash: HashId, group: DhGroup) -> Pair {
    Pair {
        host: HostAuth::new(Arc::new(host_cfg(bidi, &HashId::ALL, &DhGroup::ALL)), SeededRandom::new(1)),
        ctrl: ControllerAuth::new(
            Arc::new(ctrl_cfg(&[hash], &[group])),
            creds(Some(HOST_SECRET)),
            SeededRandom::new(2),
        ),
    }
}

fn send(step: Step) -> Vec<u8> {
    match step {
        Step::Send(b) => b,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// Runs a whole transaction; returns every message exchanged in order.
fn run(p: &mut Pair, t_id: u16) -> Vec<Vec<u8>> {
    let negotiate = p.host.start(t_id);
    let challenge = send(p.ctrl.on_message(&negotiate).unwrap());
    let reply = send(p.host.on_message(&challenge).unwrap());
    let mut log = vec![negotiate, challenge, reply.clone()];
    match p.ctrl.on_message(&reply).unwrap() {
        Step::SendThenAuthenticated(success1) => {
            assert!(!p.host.is_bidirectional());
            assert_eq!(p.host.on_message(&success1).unwrap(), Step::Authenticated);
            log.push(success1);
        }
        Step::Send(success1) => {
            assert!(p.host.is_bidirectional());
            let Step::SendThenAuthenticated(success2) = p.host.on_message(&success1).unwrap() else {
                panic!("host should send Success2")
            };
            assert_eq!(p.ctrl.on_message(&success2).unwrap(), Step::Authenticated);
            log.push(success1);
            log.push(success2);
        }
        Step::Authenticated => panic!("controller cannot finish on a Reply without Success1"),
    }
    assert!(p.host.is_authenticated() && p.ctrl.is_authenticated());
    log
}

#[test]
fn every_hash_with_null_and_ffdhe2048_uni_and_bidirectional() {
    let mut n = 0;
    for hash in HashId::ALL {
        for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
            for bidi in [false, true] {
                let mut p = pair(bidi, hash, group);
                let log = run(&mut p, 1);
                assert_eq!(p.host.negotiated(), Some((hash, group)));
                assert_eq!(p.ctrl.negotiated(), Some((hash, group)));
                let challenge = AuthMessage::decode(&log[1]).unwrap();
                let AuthMessage::Challenge(c) = challenge else { panic!() };
                assert_eq!((c.hash, c.dh_group), (hash, group));
                assert_eq!(c.dh_value.len(), group.value_len());
                assert_eq!(log.len(), if bidi { 5 } else { 4 });
                n += 1;
            }
        }
    }
    assert_eq!(n, 12);
}

#[test]
fn ffdhe8192_bidirectional_once() {
    let mut p = pair(true, HashId::Sha512, DhGroup::Ffdhe8192);
    let log = run(&mut p, 0xFFFF);
    assert_eq!(log[1].len(), 16 + 64 + 1024);
    assert_eq!(log[2].len(), 16 + 128 + 1024);
}

#[test]
fn the_other_groups_work_too() {
    for g in [DhGroup::Ffdhe3072, DhGroup::Ffdhe4096, DhGroup::Ffdhe6144] {
        run(&mut pair(false, HashId::Sha256, g), 3);
    }
}

#[test]
fn seeded_runs_are_reproducible() {
    let a = run(&mut pair(true, HashId::Sha384, DhGroup::Ffdhe2048), 9);
    let b = run(&mut pair(true, HashId::Sha384, DhGroup::Ffdhe2048), 9);
    assert_eq!(a, b);
}

#[test]
fn controller_prefers_its_own_order() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    p.ctrl = ControllerAuth::new(
        Arc::new(ControllerConfig { seqnum: Arc::new(SeqnumCounter::new(0)), ..ControllerConfig::new(SUBNQN) }),
        creds(Some(HOST_SECRET)),
        SeededRandom::new(3),
    );
    p.host = HostAuth::new(
        Arc::new(host_cfg(false, &[HashId::Sha256, HashId::Sha384], &[DhGroup::Null, DhGroup::Ffdhe3072])),
        SeededRandom::new(4),
    );
    run(&mut p, 1);
    assert_eq!(p.ctrl.negotiated(), Some((HashId::Sha384, DhGroup::Ffdhe3072)));
}

fn failure1(bytes: &[u8]) -> Failure {
    match AuthMessage::decode(bytes).unwrap() {
        AuthMessage::Failure1(f) => f,
        other => panic!("expected Failure1, got {other:?}"),
    }
}

fn failure2(bytes: &[u8]) -> Failure {
    match AuthMessage::decode(bytes).unwrap() {
        AuthMessage::Failure2(f) => f,
        other => panic!("expected Failure2, got {other:?}"),
    }
}

/// Drives negotiate + challenge + reply, returning the controller's verdict on the reply.
fn up_to_reply(p: &mut Pair) -> Result<Step, ff_nvme_auth::AuthFailure> {
    let n = p.host.start(5);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let r = send(p.host.on_message(&c).unwrap());
    p.ctrl.on_message(&r)
}

#[test]
fn wrong_host_secret_gets_failure1_authentication_failed() {
    for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
        let mut p = pair(false, HashId::Sha256, group);
        p.ctrl = ControllerAuth::new(
            Arc::new(ctrl_cfg(&[HashId::Sha256], &[group])),
            creds(Some(OTHER_SECRET)),
            SeededRandom::new(2),
        );
        let f = up_to_reply(&mut p).unwrap_err();
        assert_eq!(f.reason, FailureReason::Failed);
        assert_eq!(f.error, AuthError::HostResponseMismatch);
        let msg = failure1(f.send.as_deref().unwrap());
        assert_eq!((msg.t_id, msg.reason), (5, FailureReason::Failed));
        assert!(!p.ctrl.is_authenticated());
        // The host learns it from Failure1 and does not answer.
        let h = p.host.on_message(f.send.as_deref().unwrap()).unwrap_err();
        assert_eq!(h.error, AuthError::PeerFailure(FailureReason::Failed));
        assert_eq!(h.send, None);
        // Anything further from the host is answered with the same Failure1.
        let again = p.ctrl.on_message(&AuthMessage::Success2 { t_id: 5 }.encode());
        assert_eq!(again.unwrap_err().send, f.send);
    }
}

#[test]
fn missing_host_secret_fails_the_same_way() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    p.ctrl =
        ControllerAuth::new(Arc::new(ctrl_cfg(&[HashId::Sha256], &[DhGroup::Null])), creds(None), SeededRandom::new(2));
    let f = up_to_reply(&mut p).unwrap_err();
    assert_eq!(f.reason, FailureReason::Failed);
    assert!(matches!(f.error, AuthError::MissingHostSecret(ref n) if n == HOSTNQN));
}

#[test]
fn bidirectional_without_controller_secret_fails() {
    let mut p = pair(true, HashId::Sha256, DhGroup::Null);
    p.ctrl = ControllerAuth::new(
        Arc::new(ctrl_cfg(&[HashId::Sha256], &[DhGroup::Null])),
        HostCredentials { controller_secret: None, ..creds(Some(HOST_SECRET)) },
        SeededRandom::new(2),
    );
    let f = up_to_reply(&mut p).unwrap_err();
    assert_eq!(f.error, AuthError::MissingControllerSecret);
    assert_eq!(f.reason, FailureReason::Failed);
}

#[test]
fn wrong_controller_secret_is_caught_by_the_host() {
    let mut p = pair(true, HashId::Sha512, DhGroup::Ffdhe2048);
    p.ctrl = ControllerAuth::new(
        Arc::new(ctrl_cfg(&[HashId::Sha512], &[DhGroup::Ffdhe2048])),
        HostCredentials { controller_secret: Some(Secret::parse(OTHER_SECRET).unwrap()), ..creds(Some(HOST_SECRET)) },
        SeededRandom::new(2),
    );
    let s1 = send(up_to_reply(&mut p).unwrap());
    let f = p.host.on_message(&s1).unwrap_err();
    assert_eq!(f.error, AuthError::ControllerResponseMismatch);
    let msg = failure2(f.send.as_deref().unwrap());
    assert_eq!((msg.t_id, msg.reason), (5, FailureReason::Failed));
    assert!(!p.host.is_authenticated());
    // The controller takes Failure2 as the end of the transaction.
    let c = p.ctrl.on_message(f.send.as_deref().unwrap()).unwrap_err();
    assert_eq!(c.error, AuthError::PeerFailure(FailureReason::Failed));
    assert_eq!(c.send, None);
    assert!(!p.ctrl.is_authenticated());
}

#[test]
fn host_refuses_success1_without_the_response_it_asked_for() {
    let mut p = pair(true, HashId::Sha256, DhGroup::Null);
    let _ = send(up_to_reply(&mut p).unwrap());
    let forged =
        AuthMessage::Success1(ff_nvme_auth::message::Success1 { t_id: 5, hash_len: 32, response: None }).encode();
    let f = p.host.on_message(&forged).unwrap_err();
    assert_eq!(f.error, AuthError::MissingControllerResponse);
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
}

fn negotiate(sc_c: u8, protocols: Vec<ProtocolDescriptor>) -> Vec<u8> {
    AuthMessage::Negotiate(Negotiate { t_id: 4, sc_c, protocols }).encode()
}

fn dhchap(hashes: &[u8], groups: &[u8]) -> ProtocolDescriptor {
    ProtocolDescriptor { auth_id: 1, hash_ids: hashes.to_vec(), dh_group_ids: groups.to_vec() }
}

#[test]
fn negotiation_failures_carry_the_spec_reasons() {
    let cases = [
        (negotiate(1, vec![dhchap(&[1], &[0])]), FailureReason::SccMismatch),
        (negotiate(0, vec![]), FailureReason::ProtocolUnusable),
        (negotiate(0, vec![ProtocolDescriptor { auth_id: 2, ..dhchap(&[1], &[0]) }]), FailureReason::ProtocolUnusable),
        (negotiate(0, vec![dhchap(&[2, 3, 9], &[0])]), FailureReason::HashUnusable),
        (negotiate(0, vec![dhchap(&[1], &[1, 2, 7])]), FailureReason::DhGroupUnusable),
    ];
    for (bytes, reason) in cases {
        let mut p = pair(false, HashId::Sha256, DhGroup::Null);
        let f = p.ctrl.on_message(&bytes).unwrap_err();
        assert_eq!(f.reason, reason, "{:?}", f.error);
        let msg = failure1(f.send.as_deref().unwrap());
        assert_eq!((msg.t_id, msg.reason), (4, reason));
    }
    // An unknown protocol first and unknown ids are skipped, not refused.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let ok = negotiate(0, vec![ProtocolDescriptor { auth_id: 9, ..dhchap(&[], &[]) }, dhchap(&[0x80, 1], &[0x80, 0])]);
    assert!(matches!(p.ctrl.on_message(&ok), Ok(Step::Send(_))));
}

#[test]
fn truncated_messages_are_refused_with_incorrect_payload() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Ffdhe2048);
    let n = p.host.start(6);
    let f = p.ctrl.on_message(&n[..n.len() - 1]).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
    assert_eq!(failure1(f.send.as_deref().unwrap()).t_id, 6);

    // A truncated challenge: the host answers with Failure2.
    let mut p = pair(false, HashId::Sha256, DhGroup::Ffdhe2048);
    let n = p.host.start(6);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let f = p.host.on_message(&c[..c.len() - 10]).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
    assert_eq!(failure2(f.send.as_deref().unwrap()).t_id, 6);

    // A truncated reply.
    let mut p = pair(false, HashId::Sha256, DhGroup::Ffdhe2048);
    let n = p.host.start(6);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let r = send(p.host.on_message(&c).unwrap());
    let f = p.ctrl.on_message(&r[..100]).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
}

#[test]
fn out_of_order_and_replayed_messages_are_refused() {
    // Reply before Negotiate.
    let mut a = pair(false, HashId::Sha256, DhGroup::Null);
    let mut b = pair(false, HashId::Sha256, DhGroup::Null);
    let n = b.host.start(1);
    let c = send(b.ctrl.on_message(&n).unwrap());
    let r = send(b.host.on_message(&c).unwrap());
    let f = a.ctrl.on_message(&r).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);

    // Negotiate replayed while a Reply is awaited.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let _ = send(p.ctrl.on_message(&n).unwrap());
    let f = p.ctrl.on_message(&n).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);

    // A Reply replayed into a later transaction: new challenge, old response.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let log = run(&mut p, 1);
    let n = p.host.start(1);
    let _ = send(p.ctrl.on_message(&n).unwrap());
    let f = p.ctrl.on_message(&log[2]).unwrap_err();
    assert_eq!(f.error, AuthError::HostResponseMismatch);

    // A Challenge replayed to a host that already replied.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let _ = send(p.host.on_message(&c).unwrap());
    let f = p.host.on_message(&c).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);
    assert!(f.send.is_some());

    // Success1 before any challenge; messages to an idle host.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let s1 = AuthMessage::Success1(ff_nvme_auth::message::Success1 { t_id: 0, hash_len: 32, response: None }).encode();
    assert!(p.host.on_message(&s1).is_err());
    p.host.start(1);
    let f = p.host.on_message(&s1).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);

    // Success2 when the controller authenticated unidirectionally.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    run(&mut p, 1);
    let f = p.ctrl.on_message(&AuthMessage::Success2 { t_id: 1 }.encode()).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);
}

#[test]
fn transaction_id_and_sequence_number_checks() {
    // A challenge for another transaction.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let mut other = c.clone();
    other[4] = 2;
    let f = p.host.on_message(&other).unwrap_err();
    assert_eq!(f.error, AuthError::TransactionId { expected: 1, got: 2 });
    // Sequence number 0 in a challenge.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let mut c = send(p.ctrl.on_message(&n).unwrap());
    c[12..16].fill(0);
    assert_eq!(p.host.on_message(&c).unwrap_err().error, AuthError::SeqnumZero);
    // A reply for another transaction.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let mut r = send(p.host.on_message(&c).unwrap());
    r[4] = 7;
    let f = p.ctrl.on_message(&r).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
    // The controller's sequence numbers skip zero across the wrap.
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let seqs: Vec<u32> = (0..3)
        .map(|_| {
            let n = p.host.start(1);
            let c = send(p.ctrl.on_message(&n).unwrap());
            let r = send(p.host.on_message(&c).unwrap());
            let _ = p.ctrl.on_message(&r).unwrap();
            u32::from_le_bytes(c[12..16].try_into().unwrap())
        })
        .collect();
    assert_eq!(seqs, [u32::MAX, 1, 2]);
}

#[test]
fn host_refuses_a_choice_it_did_not_offer() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    p.host = HostAuth::new(Arc::new(host_cfg(false, &[HashId::Sha512], &[DhGroup::Null])), SeededRandom::new(1));
    // A controller that ignores the offer: answer a forged negotiate from another host.
    let n = negotiate(0, vec![dhchap(&[1], &[0])]);
    let c = send(p.ctrl.on_message(&n).unwrap());
    p.host.start(4);
    let f = p.host.on_message(&c).unwrap_err();
    assert_eq!(f.reason, FailureReason::HashUnusable);
    assert_eq!(failure2(f.send.as_deref().unwrap()).reason, FailureReason::HashUnusable);
}

#[test]
fn reauthentication_restarts_on_an_authenticated_queue() {
    let mut p = pair(true, HashId::Sha384, DhGroup::Ffdhe2048);
    let first = run(&mut p, 1);
    assert!(!p.ctrl.is_reauthentication());
    let second = run(&mut p, 2);
    assert!(p.ctrl.is_reauthentication());
    assert_ne!(first[1], second[1], "fresh challenge and DH value");
    // A failed re-authentication leaves the queue unauthenticated.
    let n = p.host.start(3);
    let c = send(p.ctrl.on_message(&n).unwrap());
    let mut r = send(p.host.on_message(&c).unwrap());
    r[16] ^= 1;
    assert_eq!(p.ctrl.on_message(&r).unwrap_err().reason, FailureReason::Failed);
    assert!(!p.ctrl.is_authenticated());
}

#[test]
fn abort_yields_failure1_for_a_pending_receive() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(8);
    let _ = p.ctrl.on_message(&n).unwrap();
    let b = p.ctrl.abort(FailureReason::IncorrectProtocolMessage);
    let f = failure1(&b);
    assert_eq!((f.t_id, f.reason), (8, FailureReason::IncorrectProtocolMessage));
    let h = p.host.on_message(&b).unwrap_err();
    assert_eq!(h.error, AuthError::PeerFailure(FailureReason::IncorrectProtocolMessage));
}

#[test]
fn host_reads_a_message_out_of_a_larger_receive_buffer() {
    let mut p = pair(false, HashId::Sha256, DhGroup::Null);
    let n = p.host.start(1);
    let mut c = send(p.ctrl.on_message(&n).unwrap());
    c.resize(4096, 0);
    let r = send(p.host.on_message(&c).unwrap());
    let Step::SendThenAuthenticated(mut s1) = p.ctrl.on_message(&r).unwrap() else { panic!() };
    s1.resize(4096, 0);
    assert_eq!(p.host.on_message(&s1).unwrap(), Step::Authenticated);
}

#[test]
fn credentials_from_config_strings() {
    let c = HostCredentials::from_config(HOSTNQN, Some(HOST_SECRET), None).unwrap();
    assert!(c.secret.is_some() && c.controller_secret.is_none());
    let bad = HostCredentials::from_config(HOSTNQN, Some(HOST_SECRET), Some("DHHC-1:09:x:"));
    assert_eq!(bad.unwrap_err(), ff_nvme_auth::SecretError::UnknownHash(9));
    assert!(format!("{c:?}").contains("key_len: 32"));
}
