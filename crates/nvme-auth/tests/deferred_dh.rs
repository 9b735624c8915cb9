//! The controller with its DH computations handed out (`begin_message` / `finish_dh`), as the
//! target runs it: the same bytes as inline, the null group never asks, and results that come
//! back too late (after a failure, an abort, or for an older job) are refused without effect.

use std::sync::Arc;

use ff_nvme_auth::{
    AuthError, AuthMessage, ControllerAuth, ControllerConfig, DhGroup, DhJob, FailureReason, HashId, HostAuth,
    HostConfig, HostCredentials, Progress, Secret, SeededRandom, SeqnumCounter, Step,
};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:6b0b6f5e-ffab-4a0c-9a8f-2b53a9e1d1c7";
const SUBNQN: &str = "nqn.2024-01.io.ferrofabric:subsys1";
const HOST_SECRET: &str = "DHHC-1:01:C7XNT6VDFTFfbGtrSimOlLFg7BAdH+UwUgkLTuSA5gcd+7/H:";
const CTRL_SECRET: &str = "DHHC-1:02:Hi9ha9idssh3FgURRbfMUvOY7NlHiApDCmHhmIRCdhdlNQwebHEt/7DHoag3SmCHFvei/Q==:";

fn host(bidi: bool, group: DhGroup) -> HostAuth<SeededRandom> {
    let mut cfg = HostConfig::new(HOSTNQN, SUBNQN, Secret::parse(HOST_SECRET).unwrap());
    cfg.controller_secret = bidi.then(|| Secret::parse(CTRL_SECRET).unwrap());
    cfg.hashes = vec![HashId::Sha256];
    cfg.dh_groups = vec![group];
    cfg.seqnum = Arc::new(SeqnumCounter::new(1000));
    HostAuth::new(Arc::new(cfg), SeededRandom::new(1))
}

fn ctrl() -> ControllerAuth<SeededRandom> {
    let mut cfg = ControllerConfig::new(SUBNQN);
    cfg.seqnum = Arc::new(SeqnumCounter::new(77));
    let creds = HostCredentials {
        hostnqn: HOSTNQN.into(),
        secret: Some(Secret::parse(HOST_SECRET).unwrap()),
        controller_secret: Some(Secret::parse(CTRL_SECRET).unwrap()),
    };
    ControllerAuth::new(Arc::new(cfg), creds, SeededRandom::new(2))
}

fn job(p: Progress) -> DhJob {
    match p {
        Progress::Compute(j) => j,
        Progress::Step(s) => panic!("expected a DH job, got {s:?}"),
    }
}

fn bytes(s: Step) -> Vec<u8> {
    match s {
        Step::Send(b) | Step::SendThenAuthenticated(b) => b,
        Step::Authenticated => panic!("nothing to send"),
    }
}

/// A whole bidirectional ffdhe2048 transaction with the DH results fed back by hand; every
/// message the controller sends, and the host's.
fn deferred_run() -> Vec<Vec<u8>> {
    let (mut h, mut c) = (host(true, DhGroup::Ffdhe2048), ctrl());
    let negotiate = h.start(4);
    let j = job(c.begin_message(&negotiate).unwrap());
    assert_eq!(j.group(), DhGroup::Ffdhe2048);
    assert!(!j.is_shared_secret() && c.awaits_dh() && !c.is_authenticated());
    let challenge = bytes(c.finish_dh(j.compute()).unwrap().unwrap());
    assert!(!c.awaits_dh());
    let reply = bytes(h.on_message(&challenge).unwrap());
    let j = job(c.begin_message(&reply).unwrap());
    assert!(j.is_shared_secret());
    // Computed on another thread, as the target does.
    let done = std::thread::spawn(move || j.compute()).join().unwrap();
    let success1 = bytes(c.finish_dh(done).unwrap().unwrap());
    let success2 = bytes(h.on_message(&success1).unwrap());
    assert_eq!(c.begin_message(&success2).unwrap_or_else(|f| panic!("{f}")).step(), Some(Step::Authenticated));
    assert!(c.is_authenticated() && h.is_authenticated());
    assert_eq!(c.negotiated(), Some((HashId::Sha256, DhGroup::Ffdhe2048)));
    vec![challenge, reply, success1, success2]
}

trait StepOf {
    fn step(self) -> Option<Step>;
}

impl StepOf for Progress {
    fn step(self) -> Option<Step> {
        match self {
            Progress::Step(s) => Some(s),
            Progress::Compute(_) => None,
        }
    }
}

#[test]
fn deferred_dh_gives_the_bytes_inline_gives() {
    let deferred = deferred_run();
    let (mut h, mut c) = (host(true, DhGroup::Ffdhe2048), ctrl());
    let challenge = bytes(c.on_message(&h.start(4)).unwrap());
    let reply = bytes(h.on_message(&challenge).unwrap());
    let success1 = bytes(c.on_message(&reply).unwrap());
    let success2 = bytes(h.on_message(&success1).unwrap());
    assert_eq!(c.on_message(&success2).unwrap(), Step::Authenticated);
    assert_eq!(deferred, vec![challenge, reply, success1, success2]);
}

#[test]
fn the_null_group_never_asks_for_a_computation() {
    let (mut h, mut c) = (host(false, DhGroup::Null), ctrl());
    let challenge = bytes(c.begin_message(&h.start(1)).unwrap().step().expect("inline"));
    let reply = bytes(h.on_message(&challenge).unwrap());
    assert!(matches!(c.begin_message(&reply).unwrap().step(), Some(Step::SendThenAuthenticated(_))));
    assert!(c.is_authenticated());
}

#[test]
fn a_message_while_the_computation_is_away_fails_and_its_result_is_refused() {
    let (mut h, mut c) = (host(false, DhGroup::Ffdhe2048), ctrl());
    let negotiate = h.start(2);
    let j = job(c.begin_message(&negotiate).unwrap());
    // The host sends again before the Challenge: out of order.
    let f = c.begin_message(&negotiate).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectProtocolMessage);
    assert!(matches!(AuthMessage::decode(f.send.as_deref().unwrap()), Ok(AuthMessage::Failure1(_))));
    assert!(c.finish_dh(j.compute()).is_none(), "a result for a failed transaction is dropped");
    assert!(!c.is_authenticated() && !c.awaits_dh());
}

#[test]
fn a_result_after_an_abort_or_of_an_older_job_is_refused() {
    // Abort (timeout, unexpected Receive) while the job is away.
    let (mut h, mut c) = (host(false, DhGroup::Ffdhe2048), ctrl());
    let j = job(c.begin_message(&h.start(3)).unwrap());
    let failure1 = c.abort(FailureReason::Failed);
    assert!(matches!(AuthMessage::decode(&failure1), Ok(AuthMessage::Failure1(_))));
    assert!(c.finish_dh(j.compute()).is_none());

    // A job of an earlier transaction, on a machine that re-authenticates meanwhile.
    let (mut h, mut c) = (host(false, DhGroup::Ffdhe2048), ctrl());
    let challenge = bytes(c.on_message(&h.start(5)).unwrap());
    let reply = bytes(h.on_message(&challenge).unwrap());
    let stale = job(c.begin_message(&reply).unwrap()).compute();
    // Not fed: the host gives up with AUTH_Failure2, then starts over.
    let f2 = AuthMessage::Failure2(ff_nvme_auth::message::Failure { t_id: 5, reason: FailureReason::Failed }).encode();
    assert!(matches!(c.begin_message(&f2).unwrap_err().error, AuthError::PeerFailure(_)));
    let mut c2 = ctrl();
    let j = job(c2.begin_message(&h.start(6)).unwrap());
    assert!(c2.finish_dh(stale).is_none(), "a result that is not of the job the machine waits for");
    assert!(c2.awaits_dh(), "the refused result changed nothing");
    assert!(matches!(c2.finish_dh(j.compute()), Some(Ok(Step::Send(_)))));
}

#[test]
fn a_bad_peer_value_fails_before_any_computation() {
    let (mut h, mut c) = (host(false, DhGroup::Ffdhe2048), ctrl());
    let challenge = bytes(c.on_message(&h.start(8)).unwrap());
    let reply = bytes(h.on_message(&challenge).unwrap());
    let AuthMessage::Reply(mut r) = AuthMessage::decode(&reply).unwrap() else { panic!() };
    r.dh_value = vec![1];
    let f = c.begin_message(&AuthMessage::Reply(r).encode()).unwrap_err();
    assert_eq!(f.reason, FailureReason::IncorrectPayload);
    assert!(!c.awaits_dh());
}
