//! NVMe in-band authentication (DH-HMAC-CHAP) against the running target over real TCP, with a
//! minimal host built on `ff_nvme_auth::HostAuth`: every hash with the null group and ffdhe2048,
//! uni- and bidirectional, on the admin and an I/O queue; wrong secrets; commands before
//! authentication; malformed Authentication Send payloads; re-authentication; a stalled
//! transaction; hosts without a secret connecting as before.

mod common;

use common::{HOST_NQN, Host};
use ff_nvme::nvme::{Cqe, SglDescriptor, Sqe, Status, fctype, opcode, status};
use ff_nvme_auth::fabrics::{self, AuthCommand};
use ff_nvme_auth::message::AuthMessage;
use ff_nvme_auth::{
    AuthError, DhGroup, FailureReason, HashId, HostAuth, HostConfig, OsRandom, Secret, SeededRandom, Step,
};
use ff_nvme_tcp::{CapsuleCmd, Digests, Pdu};
use ff_target::{HostAuthSpec, RunningTarget, TargetOptions};
use std::sync::Arc;
use std::time::Instant;

const NQN: &str = "nqn.2026-12.io.ferrofabric:auth";
/// A host that must authenticate (the helpers' default host NQN).
const AUTH_HOST: &str = HOST_NQN;
/// A host with no secret: it connects without authentication.
const OPEN_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000aa";
const AUTH_REQUIRED: Status = Status::new(fabrics::SCT_AUTH_REQUIRED, fabrics::SC_AUTH_REQUIRED);

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

fn start(k: &Keys, bidi: bool, tweak: impl FnOnce(&mut TargetOptions)) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(NQN, "ram".parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.subsystems[0].auth_hosts = vec![HostAuthSpec {
        nqn: AUTH_HOST.into(),
        dhchap_key: Some(k.host.to_dhhc_string()),
        dhchap_ctrl_key: bidi.then(|| k.ctrl.to_dhhc_string()),
        psk: None,
    }];
    tweak(&mut o);
    ff_target::start(&o).expect("target starts")
}

fn host_cfg(k: &Keys, host_secret: &Secret, ctrl: Option<&Secret>, hash: HashId, group: DhGroup) -> Arc<HostConfig> {
    let _ = k;
    let mut c = HostConfig::new(AUTH_HOST, NQN, clone_secret(host_secret));
    c.controller_secret = ctrl.map(clone_secret);
    c.hashes = vec![hash];
    c.dh_groups = vec![group];
    Arc::new(c)
}

fn clone_secret(s: &Secret) -> Secret {
    Secret::parse(&s.to_dhhc_string()).unwrap()
}

fn open(t: &RunningTarget) -> Host {
    let mut h = Host::connect(t.io_addrs[0]);
    h.handshake(Digests::default());
    h
}

fn fabrics_cmd(fct: u8, cid: u16) -> Sqe {
    Sqe { opcode: opcode::FABRICS, cid, nsid: u32::from(fct), ..Sqe::default() }
}

/// Authentication Send of `payload` (in capsule) with the fields `cmd` gives; the completion.
fn auth_send_with(h: &mut Host, cmd: AuthCommand, payload: &[u8]) -> Cqe {
    let (cdw10, cdw11) = cmd.to_dwords();
    let sqe = Sqe {
        flags: 0x40,
        dptr: SglDescriptor::in_capsule(0, payload.len() as u32),
        cdw10,
        cdw11,
        ..fabrics_cmd(fabrics::FCTYPE_AUTH_SEND, 9)
    };
    h.send(Pdu::CapsuleCmd(CapsuleCmd { sqe }), payload);
    match h.recv().expect("Authentication Send completion") {
        (Pdu::CapsuleResp(r), _) => r.cqe,
        (p, _) => panic!("unexpected {p:?}"),
    }
}

fn auth_send(h: &mut Host, payload: &[u8]) -> Cqe {
    auth_send_with(h, AuthCommand::dhchap(payload.len() as u32), payload)
}

/// Authentication Receive with room for 4 KiB: completion and data.
fn auth_recv(h: &mut Host) -> (Cqe, Vec<u8>) {
    let (cdw10, cdw11) = AuthCommand::dhchap(4096).to_dwords();
    let sqe = Sqe {
        flags: 0x40,
        dptr: SglDescriptor::transport(4096),
        cdw10,
        cdw11,
        ..fabrics_cmd(fabrics::FCTYPE_AUTH_RECV, 10)
    };
    h.admin(sqe)
}

/// Runs one whole DH-HMAC-CHAP transaction on the queue `h` carries.
fn authenticate(h: &mut Host, cfg: Arc<HostConfig>, t_id: u16) -> Result<(HashId, DhGroup), AuthError> {
    let mut a = HostAuth::new(cfg, OsRandom);
    let mut msg = a.start(t_id);
    loop {
        let c = auth_send(h, &msg);
        assert!(c.status().is_success(), "Authentication Send: {:?}", c.status());
        let (c, data) = auth_recv(h);
        assert!(c.status().is_success(), "Authentication Receive: {:?}", c.status());
        match a.on_message(&data) {
            Ok(Step::Send(b)) => msg = b,
            Ok(Step::SendThenAuthenticated(b)) => {
                let c = auth_send(h, &b);
                assert!(c.status().is_success(), "Success2: {:?}", c.status());
                return Ok(a.negotiated().unwrap());
            }
            Ok(Step::Authenticated) => return Ok(a.negotiated().unwrap()),
            Err(f) => {
                if let Some(b) = f.send {
                    auth_send(h, &b);
                }
                return Err(f.error);
            }
        }
    }
}

/// Connect as `hostnqn` to queue `qid` (a new controller for 0): the completion.
fn connect(h: &mut Host, hostnqn: &str, qid: u16, cntlid: u16) -> Cqe {
    h.connect_as(NQN, hostnqn, qid, cntlid, 30_000)
}

fn identify_ctrl() -> Sqe {
    Sqe {
        opcode: opcode::ADMIN_IDENTIFY,
        flags: 0x40,
        cid: 5,
        dptr: SglDescriptor::transport(4096),
        cdw10: 1,
        ..Sqe::default()
    }
}

fn flush(cid: u16) -> Sqe {
    Sqe { opcode: 0x00, cid, nsid: 1, ..Sqe::default() }
}

/// The target closed the connection: EOF (or reset) before any further byte; a read timeout
/// (the queue still open) is not.
fn closed(h: &mut Host) -> bool {
    use std::io::{ErrorKind, Read};
    h.s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut b = [0u8; 1];
    match h.s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Admin queue (authenticated, enabled) and one authenticated I/O queue that flushes.
fn full_session(t: &RunningTarget, cfg: &Arc<HostConfig>) -> (HashId, DhGroup) {
    let mut admin = open(t);
    let c = connect(&mut admin, AUTH_HOST, 0, 0xFFFF);
    assert!(c.status().is_success());
    assert!(fabrics::connect_requires_auth(c.dw0), "ATR in Connect DW0 {:#x}", c.dw0);
    let cntlid = c.dw0 as u16;
    let got = authenticate(&mut admin, Arc::clone(cfg), 1).expect("admin queue authenticates");
    admin.enable();
    assert!(admin.admin(identify_ctrl()).0.status().is_success());
    let mut io = open(t);
    let c = connect(&mut io, AUTH_HOST, 1, cntlid);
    assert!(c.status().is_success() && fabrics::connect_requires_auth(c.dw0), "I/O Connect {c:?}");
    assert_eq!(io.admin(flush(1)).0.status(), AUTH_REQUIRED, "I/O before the queue authenticated");
    assert_eq!(authenticate(&mut io, Arc::clone(cfg), 2).expect("I/O queue authenticates"), got);
    assert!(io.admin(flush(2)).0.status().is_success(), "flush on the authenticated I/O queue");
    got
}

#[test]
fn every_hash_with_null_and_ffdhe2048_uni_and_bidirectional_on_admin_and_io_queues() {
    let k = keys(1);
    for bidi in [false, true] {
        let t = start(&k, bidi, |_| {});
        for hash in HashId::ALL {
            for group in [DhGroup::Null, DhGroup::Ffdhe2048] {
                let cfg = host_cfg(&k, &k.host, bidi.then_some(&k.ctrl), hash, group);
                let t0 = Instant::now();
                assert_eq!(full_session(&t, &cfg), (hash, group));
                eprintln!(
                    "auth: {hash} {group} {}: admin + I/O queue connected and authenticated in {:?} (debug build)",
                    if bidi { "bidirectional" } else { "unidirectional" },
                    t0.elapsed()
                );
            }
        }
        t.stop();
    }
}

#[test]
fn ffdhe8192_and_sha512_authenticate_too() {
    let k = keys(2);
    let t = start(&k, true, |_| {});
    let cfg = host_cfg(&k, &k.host, Some(&k.ctrl), HashId::Sha512, DhGroup::Ffdhe8192);
    assert_eq!(full_session(&t, &cfg), (HashId::Sha512, DhGroup::Ffdhe8192));
    t.stop();
}

#[test]
fn a_host_without_a_secret_connects_as_before_and_timing_is_printed() {
    let k = keys(3);
    let t = start(&k, false, |_| {});
    let t0 = Instant::now();
    let mut h = open(&t);
    let c = connect(&mut h, OPEN_HOST, 0, 0xFFFF);
    assert!(c.status().is_success() && !fabrics::connect_requires_auth(c.dw0), "{c:?}");
    h.enable();
    assert!(h.admin(identify_ctrl()).0.status().is_success());
    eprintln!("auth: admin connect without authentication: {:?} (debug build)", t0.elapsed());
    t.stop();
}

#[test]
fn wrong_host_secret_fails_and_gets_no_io_queue() {
    let k = keys(4);
    let t = start(&k, false, |_| {});
    let wrong = keys(99).host;
    let mut admin = open(&t);
    let c = connect(&mut admin, AUTH_HOST, 0, 0xFFFF);
    let cntlid = c.dw0 as u16;
    let e = authenticate(&mut admin, host_cfg(&k, &wrong, None, HashId::Sha256, DhGroup::Ffdhe2048), 1).unwrap_err();
    assert_eq!(e, AuthError::PeerFailure(FailureReason::Failed));
    assert!(closed(&mut admin), "the target closes the queue after AUTH_Failure1");
    // The controller is gone, or at least not enabled: no I/O queue for it.
    let mut io = open(&t);
    let c = connect(&mut io, AUTH_HOST, 1, cntlid);
    assert!(!c.status().is_success(), "I/O queue of a host that failed authentication: {c:?}");
    // Others are still served.
    let mut other = open(&t);
    assert!(connect(&mut other, OPEN_HOST, 0, 0xFFFF).status().is_success());
    t.stop();
}

#[test]
fn wrong_controller_secret_is_detected_by_the_host() {
    let k = keys(5);
    let t = start(&k, true, |_| {});
    let wrong = keys(98).ctrl;
    let mut admin = open(&t);
    connect(&mut admin, AUTH_HOST, 0, 0xFFFF);
    let e =
        authenticate(&mut admin, host_cfg(&k, &k.host, Some(&wrong), HashId::Sha384, DhGroup::Null), 1).unwrap_err();
    assert_eq!(e, AuthError::ControllerResponseMismatch);
    // The host's AUTH_Failure2 ends the association.
    assert!(closed(&mut admin));
    t.stop();
}

#[test]
fn bidirectional_request_without_a_controller_secret_fails() {
    let k = keys(6);
    let t = start(&k, false, |_| {});
    let mut admin = open(&t);
    connect(&mut admin, AUTH_HOST, 0, 0xFFFF);
    let e =
        authenticate(&mut admin, host_cfg(&k, &k.host, Some(&k.ctrl), HashId::Sha256, DhGroup::Null), 1).unwrap_err();
    assert_eq!(e, AuthError::PeerFailure(FailureReason::Failed));
    t.stop();
}

#[test]
fn commands_before_authentication_are_refused_with_authentication_required() {
    let k = keys(7);
    let t = start(&k, false, |_| {});
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    let prop_get = Sqe { cdw10: 1, cdw11: 0, ..fabrics_cmd(fctype::PROPERTY_GET, 2) };
    let prop_set = Sqe { cdw11: 0x14, cdw12: 1 | (6 << 16) | (4 << 20), ..fabrics_cmd(fctype::PROPERTY_SET, 3) };
    let keep_alive = Sqe { opcode: opcode::ADMIN_KEEP_ALIVE, cid: 4, ..Sqe::default() };
    for sqe in [prop_get, prop_set, identify_ctrl(), keep_alive, Sqe { opcode: 0x7E, cid: 6, ..Sqe::default() }] {
        let (c, data) = h.admin(sqe);
        assert_eq!(c.status(), AUTH_REQUIRED, "opcode {:#x} before authentication", sqe.opcode);
        assert!(c.dnr() && data.is_empty());
    }
    authenticate(&mut h, host_cfg(&k, &k.host, None, HashId::Sha256, DhGroup::Null), 3).unwrap();
    assert!(h.admin(prop_get).0.status().is_success(), "Property Get once authenticated");
    t.stop();
}

#[test]
fn malformed_authentication_send_payloads_fail_and_the_target_serves_others() {
    let k = keys(8);
    let t = start(&k, false, |_| {});
    let negotiate = HostAuth::new(host_cfg(&k, &k.host, None, HashId::Sha256, DhGroup::Null), OsRandom).start(7);
    let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
    for (what, payload) in [
        ("truncated AUTH_Negotiate", &negotiate[..negotiate.len() - 3]),
        ("garbage", &garbage[..]),
        ("one byte", &[1][..]),
    ] {
        let mut h = open(&t);
        connect(&mut h, AUTH_HOST, 0, 0xFFFF);
        assert!(auth_send(&mut h, payload).status().is_success(), "{what}: the Send itself completes");
        let (c, data) = auth_recv(&mut h);
        assert!(c.status().is_success(), "{what}");
        let AuthMessage::Failure1(f) = AuthMessage::decode(&data).unwrap() else { panic!("{what}: {data:?}") };
        assert!(
            matches!(f.reason, FailureReason::IncorrectPayload | FailureReason::IncorrectProtocolMessage),
            "{what}: {:?}",
            f.reason
        );
        assert!(closed(&mut h), "{what}: queue closed after the failure");
    }
    // Wrong SECP / SPSP: Invalid Field, the queue stays (and can still authenticate).
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    let bad = AuthCommand { secp: 0xEA, ..AuthCommand::dhchap(negotiate.len() as u32) };
    assert_eq!(auth_send_with(&mut h, bad, &negotiate).status(), status::INVALID_FIELD);
    let bad = AuthCommand { spsp0: 2, ..AuthCommand::dhchap(negotiate.len() as u32) };
    assert_eq!(auth_send_with(&mut h, bad, &negotiate).status(), status::INVALID_FIELD);
    // TL larger than the data carried.
    let long = AuthCommand::dhchap(negotiate.len() as u32 + 100);
    assert_eq!(auth_send_with(&mut h, long, &negotiate).status(), status::INVALID_FIELD);
    authenticate(&mut h, host_cfg(&k, &k.host, None, HashId::Sha256, DhGroup::Null), 1).unwrap();
    // A Receive with nothing to return: AUTH_Failure1, then closed.
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    let (_, data) = auth_recv(&mut h);
    assert!(matches!(AuthMessage::decode(&data), Ok(AuthMessage::Failure1(_))));
    assert!(closed(&mut h));
    // The target still serves everyone.
    let mut other = open(&t);
    assert!(connect(&mut other, OPEN_HOST, 0, 0xFFFF).status().is_success());
    let cfg = host_cfg(&k, &k.host, None, HashId::Sha512, DhGroup::Ffdhe2048);
    full_session(&t, &cfg);
    t.stop();
}

#[test]
fn reauthentication_keeps_the_queue_usable() {
    let k = keys(9);
    let t = start(&k, true, |_| {});
    let cfg = host_cfg(&k, &k.host, Some(&k.ctrl), HashId::Sha256, DhGroup::Ffdhe2048);
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    authenticate(&mut h, Arc::clone(&cfg), 1).unwrap();
    h.enable();
    // Start a second transaction and use the queue in the middle of it.
    let mut a = HostAuth::new(Arc::clone(&cfg), OsRandom);
    assert!(auth_send(&mut h, &a.start(2)).status().is_success());
    assert!(h.admin(identify_ctrl()).0.status().is_success(), "admin command during re-authentication");
    let (_, challenge) = auth_recv(&mut h);
    let Ok(Step::Send(reply)) = a.on_message(&challenge) else { panic!("challenge") };
    assert!(auth_send(&mut h, &reply).status().is_success());
    let (_, success1) = auth_recv(&mut h);
    let Ok(Step::SendThenAuthenticated(s2)) = a.on_message(&success1) else { panic!("success1") };
    assert!(auth_send(&mut h, &s2).status().is_success());
    assert!(h.admin(identify_ctrl()).0.status().is_success(), "admin command after re-authentication");
    // A failed re-authentication ends the queue.
    let wrong = host_cfg(&k, &keys(97).host, None, HashId::Sha256, DhGroup::Null);
    assert!(authenticate(&mut h, wrong, 3).is_err());
    assert!(closed(&mut h));
    t.stop();
}

#[test]
fn a_stalled_authentication_is_ended() {
    let k = keys(10);
    let t = start(&k, false, |o| o.limits.auth_timeout_ms = 300);
    // Nothing after Connect.
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    assert!(closed(&mut h), "no AUTH_Negotiate: the queue is closed");
    // Negotiate, then silence.
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    let mut a = HostAuth::new(host_cfg(&k, &k.host, None, HashId::Sha256, DhGroup::Null), OsRandom);
    assert!(auth_send(&mut h, &a.start(1)).status().is_success());
    assert!(closed(&mut h), "transaction stalled after the Challenge: the queue is closed");
    t.stop();
}

#[test]
fn toml_config_with_host_secrets_and_policy_serves_and_round_trips() {
    let k = keys(11);
    let toml = format!(
        r#"
listen = ["127.0.0.1:0"]
discovery_listen = []

[auth]
hashes = ["sha384"]
dhgroups = ["ffdhe3072", "null"]

[[subsystem]]
nqn = "{NQN}"
allow_any_host = false
hosts = ["{OPEN_HOST}"]

[[subsystem.host]]
nqn = "{AUTH_HOST}"
dhchap_key = "{}"
dhchap_ctrl_key = "{}"

[[subsystem.namespaces]]
nsid = 1
backend = {{ kind = "ram", size = "16M" }}
"#,
        k.host.to_dhhc_string(),
        k.ctrl.to_dhhc_string()
    );
    let o = TargetOptions::from_toml(&toml).unwrap();
    o.validate().unwrap();
    assert_eq!(TargetOptions::from_toml(&o.to_toml().unwrap()).unwrap(), o, "saved configuration reads back");
    let t = ff_target::start(&o).unwrap();
    // The policy is the file's: SHA-384 only, ffdhe3072 preferred over null.
    let offered = host_cfg(&k, &k.host, Some(&k.ctrl), HashId::Sha384, DhGroup::Null);
    let mut all = HostConfig::new(AUTH_HOST, NQN, clone_secret(&k.host));
    all.controller_secret = Some(clone_secret(&k.ctrl));
    assert_eq!(full_session(&t, &Arc::new(all)), (HashId::Sha384, DhGroup::Ffdhe3072));
    assert_eq!(full_session(&t, &offered), (HashId::Sha384, DhGroup::Null));
    // A hash outside the policy: the target refuses it.
    let mut h = open(&t);
    connect(&mut h, AUTH_HOST, 0, 0xFFFF);
    let e = authenticate(&mut h, host_cfg(&k, &k.host, None, HashId::Sha256, DhGroup::Null), 1).unwrap_err();
    assert_eq!(e, AuthError::PeerFailure(FailureReason::HashUnusable));
    // The listed host without secrets still connects without authentication; others are refused.
    let mut h = open(&t);
    let c = connect(&mut h, OPEN_HOST, 0, 0xFFFF);
    assert!(c.status().is_success() && !fabrics::connect_requires_auth(c.dw0));
    let mut h = open(&t);
    assert!(!connect(&mut h, "nqn.2014-08.org.nvmexpress:uuid:99", 0, 0xFFFF).status().is_success());
    t.stop();
}

#[test]
fn bad_secrets_and_policies_are_clear_errors_that_never_show_the_key() {
    let k = keys(12);
    let good = k.host.to_dhhc_string();
    let mut broken = good.clone();
    broken.replace_range(12..13, if &good[12..13] == "A" { "B" } else { "A" });
    for (cfg, want) in [
        (format!("[[subsystem]]\nnqn = \"{NQN}\"\n[[subsystem.host]]\nnqn = \"h\"\ndhchap_key = \"{broken}\""), "CRC"),
        (format!("[[subsystem]]\nnqn = \"{NQN}\"\n[[subsystem.host]]\nnqn = \"h\"\ndhchap_key = \"secret\""), "DHHC-1"),
        (format!("[auth]\nhashes = [\"md5\"]\n[[subsystem]]\nnqn = \"{NQN}\""), "unknown hash"),
        (format!("[auth]\ndhgroups = [\"ffdhe1024\"]\n[[subsystem]]\nnqn = \"{NQN}\""), "unknown DH group"),
        (
            format!(
                "[[subsystem]]\nnqn = \"{NQN}\"\n[[subsystem.host]]\nnqn = \"h\"\ndhchap_key = \"{good}\"\n[[subsystem.host]]\nnqn = \"h\"\ndhchap_key = \"{good}\""
            ),
            "two",
        ),
    ] {
        let e = TargetOptions::from_toml(&cfg).and_then(|o| o.validate()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains(want), "{msg:?} should mention {want:?}");
        assert!(!msg.contains(&good[10..40]) && !msg.contains(&broken[10..40]), "the key leaked: {msg}");
    }
    let o = TargetOptions::from_toml(&format!(
        "[[subsystem]]\nnqn = \"{NQN}\"\n[[subsystem.host]]\nnqn = \"h\"\ndhchap_key = \"{good}\""
    ))
    .unwrap();
    assert!(!format!("{o:?}").contains(&good[10..40]), "Debug shows no secret");
}

#[test]
fn rpc_add_host_takes_dhchap_keys_and_refuses_bad_ones_by_field() {
    use ff_rpc::Handler;
    use serde_json::json;
    let k = keys(13);
    let t = start(&k, false, |o| o.subsystems[0].auth_hosts.clear());
    let m = t.manager();
    let call = |p: serde_json::Value| m.call("nvmf_subsystem_add_host", Some(p));
    let field = |e: ff_rpc::RpcError| e.data.and_then(|d| d["field"].as_str().map(str::to_string)).unwrap_or_default();
    let e = call(json!({ "nqn": NQN, "host": AUTH_HOST, "dhchap_key": "key0" })).unwrap_err();
    assert!(e.message.contains("keyring"), "{}", e.message);
    assert_eq!(field(e), "dhchap_key");
    let e = call(json!({ "nqn": NQN, "host": AUTH_HOST, "dhchap_ctrlr_key": k.ctrl.to_dhhc_string() })).unwrap_err();
    assert_eq!(field(e), "dhchap_ctrlr_key");
    let e = call(json!({ "nqn": NQN, "host": AUTH_HOST, "dhchap_key": "DHHC-1:00:AAAA:" })).unwrap_err();
    assert_eq!(field(e), "dhchap_key");
    // Before the key: the host connects without authentication.
    let mut h = open(&t);
    assert!(!fabrics::connect_requires_auth(connect(&mut h, AUTH_HOST, 0, 0xFFFF).dw0));
    call(json!({ "nqn": NQN, "host": AUTH_HOST, "dhchap_key": k.host.to_dhhc_string(),
        "dhchap_ctrlr_key": k.ctrl.to_dhhc_string() }))
    .unwrap();
    let subs = m.call("nvmf_get_subsystems", None).unwrap();
    let shown = subs.to_string();
    assert!(shown.contains("bidirectional") && !shown.contains(&k.host.to_dhhc_string()[10..40]), "{shown}");
    let cfg = host_cfg(&k, &k.host, Some(&k.ctrl), HashId::Sha256, DhGroup::Ffdhe2048);
    full_session(&t, &cfg);
    // Removing the host drops its secrets too: re-added without one, it connects unauthenticated.
    m.call("nvmf_subsystem_remove_host", Some(json!({ "nqn": NQN, "host": AUTH_HOST }))).unwrap();
    call(json!({ "nqn": NQN, "host": AUTH_HOST })).unwrap();
    let mut h = open(&t);
    assert!(!fabrics::connect_requires_auth(connect(&mut h, AUTH_HOST, 0, 0xFFFF).dw0));
    t.stop();
}
