//! DH-HMAC-CHAP from our initiator against our target on loopback: right secrets (uni- and
//! bidirectional, null group and ffdhe2048; each hash) on the admin and every I/O queue with data
//! verified, a reconnected I/O queue authenticating again, wrong host and controller secrets, no
//! secret for a key-protected host, hosts the target does not ask to authenticate, and bad secret
//! strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::wait;
use ff_initiator::auth::{DhGroup, FailureReason, HashId, Secret};
use ff_initiator::{AuthCause, Buf, Controller, DhchapOptions, Error, HostOptions, IoGroup};
use ff_nvme_auth::SeededRandom;
use ff_sock::GroupOptions;
use ff_target::{HostAuthSpec, RunningTarget, TargetOptions, config::DEFAULT_NQN};
use std::time::{Duration, Instant};

/// The host the target holds secrets for.
const AUTH_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000a1";
/// A host without a secret on the target: it connects without authentication.
const OPEN_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000aa";

struct Keys {
    host: Secret,
    ctrl: Secret,
}

fn keys(seed: u64) -> Keys {
    let mut rng = SeededRandom::new(seed);
    Keys {
        host: Secret::generate(None, None, &mut rng).unwrap(),
        ctrl: Secret::generate(Some(HashId::Sha256), None, &mut rng).unwrap(),
    }
}

/// A target that holds `k.host` (and `k.ctrl` when `bidi`) for [`AUTH_HOST`].
fn target(k: &Keys, bidi: bool) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, "ram".parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen = vec![];
    o.subsystems[0].auth_hosts = vec![HostAuthSpec {
        nqn: AUTH_HOST.into(),
        dhchap_key: Some(k.host.to_dhhc_string()),
        dhchap_ctrl_key: bidi.then(|| k.ctrl.to_dhhc_string()),
        psk: None,
    }];
    ff_target::start(&o).expect("target starts")
}

fn opts(hostnqn: &str, dhchap: Option<DhchapOptions>, io_queues: u16) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.into(),
        dhchap,
        io_queues,
        queue_depth: 16,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(5),
        ..HostOptions::default()
    }
}

/// Credentials as the CLI builds them (from the strings), offering only `group`.
fn creds(host: &Secret, ctrl: Option<&Secret>, group: DhGroup) -> DhchapOptions {
    let ctrl = ctrl.map(Secret::to_dhhc_string);
    let mut d = DhchapOptions::parse(&host.to_dhhc_string(), ctrl.as_deref()).unwrap();
    d.dh_groups = vec![group];
    d
}

/// Writes a pattern through every queue of `g`, reads it back, compares.
fn write_read_back(g: &mut IoGroup, seed: u8) {
    let bs = 512usize;
    let n = g.len();
    for i in 0..n {
        let data = vec![seed.wrapping_add(i as u8); 8 * bs];
        let q = g.queue(ff_initiator::QueueId(i)).unwrap();
        q.submit_write(1, 8 * i as u64, 8, Buf::from_slice(&data), false, i as u64).map_err(|e| e.0).unwrap();
    }
    for c in wait(g, n) {
        assert_eq!(c.result, Ok(()), "write on queue {}", c.tag);
    }
    for i in 0..n {
        let q = g.queue(ff_initiator::QueueId(i)).unwrap();
        q.submit_read(1, 8 * i as u64, 8, Buf::new(8 * bs), i as u64).map_err(|e| e.0).unwrap();
    }
    for c in wait(g, n) {
        assert_eq!(c.result, Ok(()), "read on queue {}", c.tag);
        let want = seed.wrapping_add(c.tag as u8);
        assert!(c.buf.unwrap().iter().all(|&b| b == want), "read back on queue {}", c.tag);
    }
}

/// Admin queue plus two I/O queues, I/O on both, then shutdown.
fn session(t: &RunningTarget, o: &HostOptions) {
    let mut ctrl = Controller::connect(t.io_addrs[0], DEFAULT_NQN, o).expect("connects");
    assert_eq!(ctrl.active_namespaces().unwrap(), vec![1], "admin commands work");
    let queues = ctrl.take_io_queues();
    assert_eq!(queues.len(), usize::from(o.io_queues));
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    for q in queues {
        g.add(q).unwrap();
    }
    write_read_back(&mut g, 0x40);
    drop(g);
    ctrl.shutdown().unwrap();
}

fn auth_err(t: &RunningTarget, o: &HostOptions) -> (u16, AuthCause, String) {
    match Controller::connect(t.io_addrs[0], DEFAULT_NQN, o) {
        Ok(_) => panic!("connected"),
        Err(e @ Error::Auth { .. }) => {
            let text = e.to_string();
            let Error::Auth { qid, cause } = e else { unreachable!() };
            (qid, cause, text)
        }
        Err(e) => panic!("not an authentication error: {e}"),
    }
}

#[test]
fn right_secret_unidirectional_null_ffdhe2048_and_each_hash_admin_and_io_queues() {
    let k = keys(11);
    let t = target(&k, false);
    for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
        let t0 = Instant::now();
        session(&t, &opts(AUTH_HOST, Some(creds(&k.host, None, group)), 2));
        eprintln!("uni {group}: session {:?}", t0.elapsed());
    }
    // Offering one hash makes the target use it: each works.
    for hash in HashId::ALL {
        let mut d = creds(&k.host, None, DhGroup::Null);
        d.hashes = vec![hash];
        session(&t, &opts(AUTH_HOST, Some(d), 1));
    }
}

#[test]
fn right_secrets_bidirectional_null_and_ffdhe2048_admin_and_io_queues() {
    let k = keys(12);
    let t = target(&k, true);
    for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
        let t0 = Instant::now();
        session(&t, &opts(AUTH_HOST, Some(creds(&k.host, Some(&k.ctrl), group)), 2));
        eprintln!("bi {group}: session {:?}", t0.elapsed());
    }
}

#[test]
fn a_reconnected_io_queue_authenticates_again() {
    let k = keys(13);
    let t = target(&k, true);
    let o = opts(AUTH_HOST, Some(creds(&k.host, Some(&k.ctrl), DhGroup::Null)), 1);
    let mut ctrl = Controller::connect(t.io_addrs[0], DEFAULT_NQN, &o).unwrap();
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
    write_read_back(&mut g, 1);
    let mut out = Vec::new();
    g.reconnect(q, &mut out).expect("reconnect authenticates");
    write_read_back(&mut g, 2);
    drop(g);
    ctrl.shutdown().unwrap();
}

#[test]
fn wrong_host_secret_is_refused_by_the_controller() {
    let k = keys(14);
    let wrong = keys(99);
    for bidi in [false, true] {
        let t = target(&k, bidi);
        let ctrl = bidi.then_some(&k.ctrl);
        let (qid, cause, text) = auth_err(&t, &opts(AUTH_HOST, Some(creds(&wrong.host, ctrl, DhGroup::Null)), 1));
        assert_eq!((qid, cause), (0, AuthCause::Rejected(FailureReason::Failed)), "{text}");
        assert!(text.contains("refused") && text.contains("wrong host secret"), "{text}");
    }
}

#[test]
fn wrong_controller_secret_fails_our_check() {
    let k = keys(15);
    let wrong = keys(98);
    let t = target(&k, true);
    for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
        let o = opts(AUTH_HOST, Some(creds(&k.host, Some(&wrong.ctrl), group)), 1);
        let (qid, cause, text) = auth_err(&t, &o);
        assert_eq!((qid, cause), (0, AuthCause::ControllerNotVerified), "{text}");
        assert!(text.contains("controller secret"), "{text}");
    }
    // The target is still fine with the right secrets afterwards.
    session(&t, &opts(AUTH_HOST, Some(creds(&k.host, Some(&k.ctrl), DhGroup::Null)), 1));
}

#[test]
fn no_secret_for_a_key_protected_host_is_an_auth_required_error() {
    let k = keys(16);
    let t = target(&k, false);
    let (qid, cause, text) = auth_err(&t, &opts(AUTH_HOST, None, 1));
    assert_eq!((qid, cause), (0, AuthCause::NoSecret), "{text}");
    assert!(text.contains("requires authentication"), "{text}");
}

#[test]
fn host_without_a_key_on_the_target_connects_without_authentication() {
    let k = keys(17);
    let t = target(&k, true);
    // No secret at all: unchanged behaviour.
    session(&t, &opts(OPEN_HOST, None, 2));
    // A secret the target does not ask for is not used (the target decides, as with Linux).
    session(&t, &opts(OPEN_HOST, Some(creds(&k.host, Some(&k.ctrl), DhGroup::Null)), 1));
}

#[test]
fn bad_secret_strings_are_clear_errors_that_never_show_the_key() {
    let good = keys(18).host.to_dhhc_string();
    let e = DhchapOptions::parse("DHHC-1:00:bm90IGEga2V5:", None).unwrap_err();
    assert!(matches!(e, Error::BadSecret { which: "host secret", .. }), "{e}");
    assert!(e.to_string().starts_with("invalid DH-HMAC-CHAP host secret"), "{e}");
    let e = DhchapOptions::parse(&good, Some("secret")).unwrap_err();
    assert!(matches!(e, Error::BadSecret { which: "controller secret", .. }), "{e}");
    // A flipped key byte: the CRC catches it, the message shows neither key.
    let mut bad = good.clone().into_bytes();
    bad[12] = if bad[12] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let e = DhchapOptions::parse(&bad, None).unwrap_err();
    assert!(!e.to_string().contains(&bad[10..40]), "{e}");
    let d = DhchapOptions::parse(&good, None).unwrap();
    assert!(!format!("{d:?}").contains(&good[10..40]), "Debug shows no key");
}
