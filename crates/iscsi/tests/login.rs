//! Login conversations against the target connection: defaults, key rules, CHAP one-way and mutual
//! (responses computed here with the hash crates directly), discovery, allow-lists, and failures.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;
use common::*;
use ff_iscsi::conn::{CloseReason, ConnConfig, TargetConn, TargetOutput};
use ff_iscsi::pdu::{LoginResponse, NopOut, Pdu, Stage, TextRequest};
use ff_iscsi::{
    Auth, ChapAuth, ChapSecret, Digests, Limits, LoginStatus, Phase, PortalConfig, SessionType, TargetDesc,
};
use md5::{Digest as _, Md5};
use std::sync::Arc;

fn lr(s: &Sent) -> LoginResponse {
    match s.pdu {
        Pdu::LoginResponse(l) => l,
        ref p => panic!("not a Login Response: {p:?}"),
    }
}

fn status(s: &Sent) -> LoginStatus {
    let l = lr(s);
    LoginStatus { class: l.status_class, detail: l.status_detail }
}

fn closed_with(outs: &[TargetOutput<Vec<u8>>], st: LoginStatus) -> bool {
    outs.iter().any(|o| matches!(o, TargetOutput::Close(CloseReason::LoginFailed(s)) if *s == st))
}

fn portal(auth: Auth, allowed: Option<Vec<String>>) -> Arc<PortalConfig> {
    let mut p = (*portal_with(Limits::default())).clone();
    p.targets[0].auth = auth;
    p.targets[0].allowed_initiators = allowed;
    p.targets.push(TargetDesc {
        name: "iqn.2026-01.org.ferrofabric:other".into(),
        alias: None,
        portal_group_tag: 7,
        portals: vec!["192.0.2.1:3260".into()],
        allowed_initiators: Some(vec!["iqn.2026-01.org.example:someone-else".into()]),
        auth: Auth::None,
    });
    Arc::new(p)
}

fn conn(p: Arc<PortalConfig>) -> TargetConn<Vec<u8>> {
    TargetConn::new(ConnConfig::new(p))
}

fn leading() -> Vec<(&'static str, &'static str)> {
    vec![("InitiatorName", INITIATOR), ("TargetName", TARGET), ("SessionType", "Normal")]
}

#[test]
fn defaults_and_sequence_numbers() {
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "None"));
    let (r, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 5, 77), &pairs);
    let l = lr(&r);
    assert_eq!((l.status_class, l.status_detail), (0, 0));
    assert_eq!((l.transit, l.csg, l.nsg), (true, Stage::Security, Stage::Operational));
    assert_eq!((l.version_max, l.version_active, l.isid, l.itt, l.tsih), (0, 0, ISID, 0x1000, 0));
    // StatSN starts at the initiator's ExpStatSN; the window opens at the login's CmdSN.
    assert_eq!((l.sn.stat_sn, l.sn.exp_cmd_sn), (77, 5));
    assert_eq!(l.sn.max_cmd_sn, 5 + Limits::default().queue_depth - 1);
    let kvs = kv(&r.data);
    assert_eq!(get(&kvs, "TargetPortalGroupTag").as_deref(), Some("7"));
    assert_eq!(get(&kvs, "TargetAlias").as_deref(), Some("disk zero"));
    assert_eq!(get(&kvs, "AuthMethod").as_deref(), Some("None"));
    assert!(!r.hdgst && !r.ddgst);

    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 5, 78)),
            &[],
            &[],
            Digests::default(),
        ),
    );
    let Some(TargetOutput::SessionRequest(req)) = outs.first() else { panic!("{outs:?}") };
    assert_eq!((req.isid, req.tsih, req.cid), (ISID, 0, 1));
    assert_eq!((req.initiator_name.as_str(), req.target.as_deref()), (INITIATOR, Some(TARGET)));
    assert_eq!(req.session_type, SessionType::Normal);
    assert_eq!(c.phase(), Phase::AwaitAdmit);
    c.admit(42);
    let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
    let s = sent(&outs);
    let l = lr(&s[0]);
    assert_eq!((l.transit, l.csg, l.nsg, l.tsih, l.sn.stat_sn), (true, Stage::Operational, Stage::FullFeature, 42, 78));
    // Our receive limit is declared even though the initiator asked nothing.
    let kvs = kv(&s[0].data);
    assert_eq!(get(&kvs, "MaxRecvDataSegmentLength"), Some(Limits::default().max_recv_data_segment_length.to_string()));
    assert_eq!(c.phase(), Phase::FullFeature);
    // RFC defaults where nothing was negotiated.
    let p = c.params();
    assert!(p.initial_r2t && p.immediate_data && !p.header_digest && !p.data_digest);
    assert_eq!((p.max_burst_length, p.first_burst_length, p.max_xmit_data_segment_length), (262_144, 65_536, 8192));
}

#[test]
fn every_operational_key() {
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "None"));
    login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
    let offer = [
        ("HeaderDigest", "CRC32C,None"),
        ("DataDigest", "None,CRC32C"),
        ("MaxConnections", "4"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxRecvDataSegmentLength", "65536"),
        ("MaxBurstLength", "16776192"),
        ("FirstBurstLength", "262144"),
        ("DefaultTime2Wait", "0"),
        ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "64"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("ErrorRecoveryLevel", "2"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("OFMarkInt", "2048~8192"),
        ("InitiatorAlias", "host one"),
        ("X-com.example.Thing", "1"),
        ("NoSuchKey", "1"),
        ("TargetAddress", "10.0.0.1"),
    ];
    let (r, _) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, false, 1, 1), &offer);
    let l = lr(&r);
    assert_eq!((l.status_class, l.transit, l.csg), (0, false, Stage::Operational));
    let kvs = kv(&r.data);
    let lim = Limits::default();
    let expect = [
        ("HeaderDigest", "CRC32C".to_string()),
        ("DataDigest", "None".into()),
        ("MaxConnections", "1".into()),
        ("InitialR2T", "No".into()),
        ("ImmediateData", "Yes".into()),
        ("MaxBurstLength", lim.max_burst_length.to_string()),
        ("FirstBurstLength", lim.first_burst_length.min(262_144).to_string()),
        ("DefaultTime2Wait", "2".into()),
        ("DefaultTime2Retain", "0".into()),
        ("MaxOutstandingR2T", lim.max_outstanding_r2t.to_string()),
        ("DataPDUInOrder", "Yes".into()),
        ("DataSequenceInOrder", "Yes".into()),
        ("ErrorRecoveryLevel", "0".into()),
        ("IFMarker", "No".into()),
        ("OFMarker", "No".into()),
        ("OFMarkInt", "Reject".into()),
        ("X-com.example.Thing", "NotUnderstood".into()),
        ("NoSuchKey", "NotUnderstood".into()),
        ("TargetAddress", "Reject".into()),
        ("MaxRecvDataSegmentLength", lim.max_recv_data_segment_length.to_string()),
    ];
    for (k, v) in &expect {
        assert_eq!(get(&kvs, k).as_ref(), Some(v), "answer to {k}");
    }
    // Declarations get no answer.
    assert_eq!(get(&kvs, "InitiatorAlias"), None);
    // Now move on with an empty request.
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 2)),
            &[],
            &[],
            Digests::default(),
        ),
    );
    let Some(TargetOutput::SessionRequest(req)) = outs.first() else { panic!() };
    assert!(req.params.header_digest && !req.params.data_digest && !req.params.initial_r2t);
    assert_eq!(req.params.max_xmit_data_segment_length, 65536);
    assert_eq!(req.initiator_alias.as_deref(), Some("host one"));
    c.admit(1);
    assert!(c.params().header_digest);
}

fn chap_portal(mutual: bool) -> Arc<PortalConfig> {
    let mut chap = ChapAuth::one_way("alice", b"alice-secret-123");
    if mutual {
        chap.target = Some(ChapSecret { name: "target-user".into(), secret: b"target-secret-456".to_vec() });
    }
    portal(Auth::Chap(chap), None)
}

fn hex(b: &[u8]) -> String {
    let mut s = "0x".to_string();
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    let h = s.strip_prefix("0x").unwrap();
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

/// Runs AuthMethod and CHAP_A; returns the connection, the algorithm code, id and challenge.
fn chap_start(p: Arc<PortalConfig>, chap_a: &str) -> (TargetConn<Vec<u8>>, String, u8, Vec<u8>) {
    let mut c = conn(p);
    let mut pairs = leading();
    pairs.push(("AuthMethod", "CHAP,None"));
    let (r, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
    let l = lr(&r);
    // No transit before authentication.
    assert_eq!((l.status_class, l.transit), (0, false));
    assert_eq!(get(&kv(&r.data), "AuthMethod").as_deref(), Some("CHAP"));
    let (r, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 1), &[("CHAP_A", chap_a)]);
    assert_eq!(lr(&r).status_class, 0);
    let kvs = kv(&r.data);
    let alg = get(&kvs, "CHAP_A").unwrap();
    let id: u8 = get(&kvs, "CHAP_I").unwrap().parse().unwrap();
    let ch = unhex(&get(&kvs, "CHAP_C").unwrap());
    (c, alg, id, ch)
}

fn md5_resp(id: u8, secret: &[u8], ch: &[u8]) -> Vec<u8> {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(ch);
    h.finalize().to_vec()
}

#[test]
fn chap_one_way_md5() {
    let (mut c, alg, id, ch) = chap_start(chap_portal(false), "5");
    assert_eq!(alg, "5");
    assert_eq!(ch.len(), 16);
    let r = hex(&md5_resp(id, b"alice-secret-123", &ch));
    let (s, _) = login_step(
        &mut c,
        login_req(Stage::Security, Stage::Operational, true, 1, 2),
        &[("CHAP_N", "alice"), ("CHAP_R", &r)],
    );
    let l = lr(&s);
    assert_eq!((l.status_class, l.transit, l.nsg), (0, true, Stage::Operational));
    assert_eq!(get(&kv(&s.data), "CHAP_R"), None);
}

#[test]
fn chap_sha256_picked_in_initiator_order_and_base64_response() {
    let (mut c, alg, id, ch) = chap_start(chap_portal(false), "7,5");
    assert_eq!(alg, "7");
    assert_eq!(ch.len(), 32);
    let mut h = sha2::Sha256::new();
    h.update([id]);
    h.update(b"alice-secret-123");
    h.update(&ch);
    let digest = h.finalize();
    // The same response in base64 (RFC 7143's 0b form), encoded here by hand.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::from("0b");
    for chunk in digest.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            b64.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            b64.push('=');
        }
    }
    let (s, _) = login_step(
        &mut c,
        login_req(Stage::Security, Stage::Operational, true, 1, 2),
        &[("CHAP_N", "alice"), ("CHAP_R", &b64)],
    );
    assert_eq!((lr(&s).status_class, lr(&s).transit), (0, true));
}

#[test]
fn chap_wrong_secret_or_name_fails() {
    for (name, secret) in [("alice", &b"wrong"[..]), ("mallory", &b"alice-secret-123"[..])] {
        let (mut c, _, id, ch) = chap_start(chap_portal(false), "5");
        let r = hex(&md5_resp(id, secret, &ch));
        let (s, outs) = login_step(
            &mut c,
            login_req(Stage::Security, Stage::Operational, true, 1, 2),
            &[("CHAP_N", name), ("CHAP_R", &r)],
        );
        assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
        assert!(closed_with(&outs, LoginStatus::AUTHENTICATION_FAILED));
        assert!(c.is_closed());
    }
}

#[test]
fn chap_mutual() {
    let (mut c, _, id, ch) = chap_start(chap_portal(true), "5");
    let r = hex(&md5_resp(id, b"alice-secret-123", &ch));
    let my_ch: Vec<u8> = (100..116).collect();
    let (s, _) = login_step(
        &mut c,
        login_req(Stage::Security, Stage::Operational, true, 1, 2),
        &[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "9"), ("CHAP_C", &hex(&my_ch))],
    );
    assert_eq!((lr(&s).status_class, lr(&s).transit), (0, true));
    let kvs = kv(&s.data);
    assert_eq!(get(&kvs, "CHAP_N").as_deref(), Some("target-user"));
    assert_eq!(unhex(&get(&kvs, "CHAP_R").unwrap()), md5_resp(9, b"target-secret-456", &my_ch));
}

#[test]
fn chap_mutual_refusals() {
    // Our challenge reflected back.
    let (mut c, _, id, ch) = chap_start(chap_portal(true), "5");
    let r = hex(&md5_resp(id, b"alice-secret-123", &ch));
    let (s, _) = login_step(
        &mut c,
        login_req(Stage::Security, Stage::Operational, true, 1, 2),
        &[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "9"), ("CHAP_C", &hex(&ch))],
    );
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
    // Mutual asked of a target without credentials of its own.
    let (mut c, _, id, ch) = chap_start(chap_portal(false), "5");
    let r = hex(&md5_resp(id, b"alice-secret-123", &ch));
    let (s, _) = login_step(
        &mut c,
        login_req(Stage::Security, Stage::Operational, true, 1, 2),
        &[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "9"), ("CHAP_C", "0x0102030405060708")],
    );
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
}

#[test]
fn chap_algorithm_negotiation_failures() {
    // As libiscsi's CHAP test: a value starting with 5 is not 5, and an empty list offers nothing.
    for bad in ["56", "", "6,8"] {
        let mut c = conn(chap_portal(false));
        let mut pairs = leading();
        pairs.push(("AuthMethod", "CHAP"));
        login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &pairs);
        let (s, outs) =
            login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 1), &[("CHAP_A", bad)]);
        assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED, "CHAP_A={bad}");
        assert!(c.is_closed() && !outs.is_empty());
    }
}

#[test]
fn authentication_required() {
    // Only None offered to a CHAP target.
    let mut c = conn(chap_portal(false));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "None"));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
    // Skipping the security stage.
    let mut c = conn(chap_portal(false));
    let (s, _) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, true, 1, 0), &leading());
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
    // CHAP offered to a target that asks none: None is the only acceptable method.
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "CHAP"));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
}

#[test]
fn operational_stage_first_when_no_authentication() {
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("MaxRecvDataSegmentLength", "4096"));
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 0)),
            &[],
            &text(&pairs),
            Digests::default(),
        ),
    );
    assert!(matches!(outs.first(), Some(TargetOutput::SessionRequest(_))));
    c.admit(3);
    let s = sent(&std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>());
    let kvs = kv(&s[0].data);
    assert_eq!(get(&kvs, "TargetPortalGroupTag").as_deref(), Some("7"));
    assert!(get(&kvs, "MaxRecvDataSegmentLength").is_some());
    assert_eq!(c.params().max_xmit_data_segment_length, 4096);
}

#[test]
fn security_to_full_feature_directly() {
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "None"));
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Security, Stage::FullFeature, true, 1, 0)),
            &[],
            &text(&pairs),
            Digests::default(),
        ),
    );
    assert!(matches!(outs.first(), Some(TargetOutput::SessionRequest(_))));
    c.refuse(LoginStatus::TOO_MANY_CONNECTIONS);
    let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
    assert_eq!(status(&sent(&outs)[0]), LoginStatus::TOO_MANY_CONNECTIONS);
    assert!(closed_with(&outs, LoginStatus::TOO_MANY_CONNECTIONS));
}

#[test]
fn identity_failures() {
    let cases: Vec<(Vec<(&str, &str)>, LoginStatus)> = vec![
        (vec![("TargetName", TARGET)], LoginStatus::MISSING_PARAMETER),
        (vec![("InitiatorName", INITIATOR)], LoginStatus::MISSING_PARAMETER),
        (vec![("InitiatorName", INITIATOR), ("TargetName", "iqn.2026-01.org.nowhere:x")], LoginStatus::NOT_FOUND),
        (
            vec![("InitiatorName", INITIATOR), ("TargetName", "iqn.2026-01.org.ferrofabric:other")],
            LoginStatus::AUTHORIZATION_FAILURE,
        ),
        (
            vec![("InitiatorName", INITIATOR), ("TargetName", TARGET), ("SessionType", "Weird")],
            LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
        ),
    ];
    for (pairs, want) in cases {
        let mut c = conn(portal(Auth::None, None));
        let (s, outs) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
        assert_eq!(status(&s), want, "{pairs:?}");
        assert!(closed_with(&outs, want));
    }
}

#[test]
fn allow_list() {
    let allowed = Some(vec![INITIATOR.to_uppercase()]);
    let mut c = conn(portal(Auth::None, allowed.clone()));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &leading());
    assert_eq!(status(&s), LoginStatus::SUCCESS, "names compare case-insensitively");
    let mut c = conn(portal(Auth::None, Some(vec!["iqn.2026-01.org.example:host2".into()])));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &leading());
    assert_eq!(status(&s), LoginStatus::AUTHORIZATION_FAILURE);
}

#[test]
fn malformed_logins() {
    // A key twice in one request, a key repeated across requests, a key name over 63 bytes.
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("InitiatorName", INITIATOR));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("MaxBurstLength", "8192"));
    login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &pairs);
    let (s, _) =
        login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 1), &[("MaxBurstLength", "4096")]);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    let long = "K".repeat(64);
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push((&long, "1"));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    let long_value = "v".repeat(256);
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("InitiatorAlias", &long_value));
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    // Unsupported version.
    let mut c = conn(portal(Auth::None, None));
    let mut req = login_req(Stage::Security, Stage::Operational, true, 1, 0);
    req.version_min = 1;
    req.version_max = 1;
    let (s, _) = login_step(&mut c, req, &leading());
    assert_eq!(status(&s), LoginStatus::UNSUPPORTED_VERSION);

    // Transit to a stage not after the current one; a CSG that is not the current stage.
    let mut c = conn(portal(Auth::None, None));
    let (s, _) = login_step(&mut c, login_req(Stage::Operational, Stage::Security, true, 1, 0), &leading());
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);
    let mut c = conn(portal(Auth::None, None));
    login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &leading());
    let (s, _) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, true, 1, 1), &[]);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    // A changed ISID mid-login.
    let mut c = conn(portal(Auth::None, None));
    login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &leading());
    let mut req = login_req(Stage::Security, Stage::Operational, true, 1, 1);
    req.isid = [1, 2, 3, 4, 5, 6];
    let (s, _) = login_step(&mut c, req, &[]);
    assert_eq!(status(&s), LoginStatus::INITIATOR_ERROR);

    // T and C together: the header itself is invalid.
    let mut c = conn(portal(Auth::None, None));
    let mut b = wire(
        Pdu::LoginRequest(login_req(Stage::Security, Stage::Operational, true, 1, 0)),
        &[],
        &text(&leading()),
        Digests::default(),
    );
    b[1] |= 0x40;
    let outs = drive(&mut c, &b);
    assert_eq!(status(&sent(&outs)[0]), LoginStatus::INITIATOR_ERROR);
    assert!(c.is_closed());
}

#[test]
fn full_feature_pdu_before_login_completes() {
    let mut c = conn(portal(Auth::None, None));
    let nop = NopOut { immediate: true, lun: 0, itt: 9, ttt: u32::MAX, cmd_sn: 1, exp_stat_sn: 0 };
    let outs = drive(&mut c, &wire(Pdu::NopOut(nop), &[], &[], Digests::default()));
    let s = sent(&outs);
    assert_eq!(status(&s[0]), LoginStatus::INVALID_DURING_LOGIN);
    assert_eq!(lr(&s[0]).itt, 9);
    assert!(closed_with(&outs, LoginStatus::INVALID_DURING_LOGIN));
    // After a first successful step too.
    let mut c = conn(portal(Auth::None, None));
    login_step(&mut c, login_req(Stage::Security, Stage::Operational, false, 1, 0), &leading());
    let t = TextRequest { final_bit: true, itt: 3, ttt: u32::MAX, cmd_sn: 1, ..TextRequest::default() };
    let outs = drive(&mut c, &wire(Pdu::TextRequest(t), &[], &text(&[("SendTargets", "All")]), Digests::default()));
    assert_eq!(status(&sent(&outs)[0]), LoginStatus::INVALID_DURING_LOGIN);
    assert!(c.is_closed());
}

#[test]
fn continued_text_both_ways() {
    // 150 vendor keys: the request needs two PDUs (C bit) and the answer two responses.
    let names: Vec<String> = (0..150).map(|i| format!("X-org.example.a-rather-long-vendor-key-{i:04}")).collect();
    let mut all = text(&leading());
    for n in &names {
        all.extend_from_slice(format!("{n}=1\0").as_bytes());
    }
    assert!(all.len() > 4096);
    let (a, b) = all.split_at(all.len() / 2);
    let mut c = conn(portal(Auth::None, None));
    let mut req = login_req(Stage::Operational, Stage::FullFeature, false, 1, 0);
    req.cont = true;
    let outs = drive(&mut c, &wire(Pdu::LoginRequest(req), &[], a, Digests::default()));
    let s = sent(&outs);
    assert_eq!((s.len(), s[0].data.len(), lr(&s[0]).cont, lr(&s[0]).status_class), (1, 0, false, 0));
    let (s, _) = {
        let outs = drive(
            &mut c,
            &wire(
                Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 1)),
                &[],
                b,
                Digests::default(),
            ),
        );
        (sent(&outs), outs)
    };
    let first = lr(&s[0]);
    assert!(first.cont && !first.transit, "first part of a long answer");
    assert!(s[0].data.len() <= 8192);
    let mut answer = s[0].data.clone();
    // Collect the rest with empty requests.
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 2)),
            &[],
            &[],
            Digests::default(),
        ),
    );
    let s = sent(&outs);
    if let Some(last) = s.first() {
        answer.extend_from_slice(&last.data);
    }
    // The last part transits: the runtime is asked first.
    assert!(outs.iter().any(|o| matches!(o, TargetOutput::SessionRequest(_))));
    c.admit(5);
    let s = sent(&std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>());
    assert!(lr(&s[0]).transit && !lr(&s[0]).cont);
    answer.extend_from_slice(&s[0].data);
    let kvs = kv(&answer);
    for n in &names {
        assert_eq!(get(&kvs, n).as_deref(), Some("NotUnderstood"), "{n}");
    }
}

#[test]
fn discovery_session() {
    let p = portal(Auth::None, None);
    let mut c = conn(p);
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 0)),
            &[],
            &text(&[
                ("InitiatorName", INITIATOR),
                ("SessionType", "Discovery"),
                ("ImmediateData", "Yes"),
                ("HeaderDigest", "None"),
            ]),
            Digests::default(),
        ),
    );
    let Some(TargetOutput::SessionRequest(req)) = outs.first() else { panic!("{outs:?}") };
    assert_eq!((req.session_type, req.target.as_deref()), (SessionType::Discovery, None));
    c.admit(9);
    let s = sent(&std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>());
    let kvs = kv(&s[0].data);
    assert_eq!(get(&kvs, "ImmediateData").as_deref(), Some("Irrelevant"));
    assert_eq!(get(&kvs, "TargetPortalGroupTag"), None);
    assert_eq!(c.session_type(), SessionType::Discovery);

    let t =
        TextRequest { immediate: true, final_bit: true, itt: 3, ttt: u32::MAX, cmd_sn: 1, ..TextRequest::default() };
    let outs = drive(&mut c, &wire(Pdu::TextRequest(t), &[], &text(&[("SendTargets", "All")]), Digests::default()));
    let s = sent(&outs);
    let Pdu::TextResponse(r) = s[0].pdu else { panic!() };
    assert!(r.final_bit && !r.cont && r.ttt == u32::MAX && r.itt == 3);
    // Only the target this initiator may use, with both portals and the group tag.
    let kvs = kv(&s[0].data);
    assert_eq!(
        kvs,
        vec![
            ("TargetName".into(), TARGET.into()),
            ("TargetAddress".into(), "192.0.2.1:3260,7".into()),
            ("TargetAddress".into(), "[2001:db8::1]:3260,7".into()),
        ]
    );
}

#[test]
fn discovery_allow_list_and_auth() {
    let mut p = (*portal(Auth::None, None)).clone();
    p.discovery_initiators = Some(vec!["iqn.2026-01.org.example:other".into()]);
    let mut c = conn(Arc::new(p.clone()));
    let pairs = [("InitiatorName", INITIATOR), ("SessionType", "Discovery")];
    let (s, _) = login_step(&mut c, login_req(Stage::Security, Stage::Operational, true, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::AUTHORIZATION_FAILURE);
    p.discovery_initiators = None;
    p.discovery_auth = Auth::Chap(ChapAuth::one_way("d", b"discovery-secret"));
    let mut c = conn(Arc::new(p));
    let (s, _) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, true, 1, 0), &pairs);
    assert_eq!(status(&s), LoginStatus::AUTHENTICATION_FAILED);
}

#[test]
fn admission_is_not_skippable() {
    // Input while the runtime decides is an initiator error.
    let mut c = conn(portal(Auth::None, None));
    let mut pairs = leading();
    pairs.push(("AuthMethod", "None"));
    drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Security, Stage::FullFeature, true, 1, 0)),
            &[],
            &text(&pairs),
            Digests::default(),
        ),
    );
    assert_eq!(c.phase(), Phase::AwaitAdmit);
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Security, Stage::FullFeature, true, 1, 1)),
            &[],
            &[],
            Digests::default(),
        ),
    );
    assert!(c.is_closed());
    assert!(outs.iter().any(|o| matches!(o, TargetOutput::Close(_))));
    c.admit(1);
    assert_eq!(c.phase(), Phase::Closed);
}

#[test]
fn target_offers_its_stricter_limits_before_full_feature() {
    let lim = Limits {
        header_digest: ff_iscsi::DigestPolicy::Require,
        max_burst_length: 65_536,
        immediate_data: false,
        ..Limits::default()
    };
    let mut c = conn(portal_with(lim));
    let pairs = leading();
    // The initiator asks for full feature without naming the keys our limits restrict.
    let (r, outs) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, true, 1, 0), &pairs);
    assert!(!outs.iter().any(|o| matches!(o, TargetOutput::SessionRequest(_))));
    let l = lr(&r);
    assert!(!l.transit, "no transit while our offers are unanswered");
    let kvs = kv(&r.data);
    assert_eq!(get(&kvs, "HeaderDigest").as_deref(), Some("CRC32C"));
    assert_eq!(get(&kvs, "MaxBurstLength").as_deref(), Some("65536"));
    assert_eq!(get(&kvs, "ImmediateData").as_deref(), Some("No"));
    // Its answers complete the negotiation.
    let answers = [("HeaderDigest", "CRC32C"), ("MaxBurstLength", "32768"), ("ImmediateData", "Yes")];
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, l.sn.stat_sn.wrapping_add(1))),
            &[],
            &text(&answers),
            Digests::default(),
        ),
    );
    assert!(matches!(outs.first(), Some(TargetOutput::SessionRequest(_))), "{outs:?}");
    c.admit(9);
    let s = sent(&std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>());
    assert!(lr(&s[0]).transit);
    let p = c.params();
    assert!(p.header_digest && !p.immediate_data);
    assert_eq!(p.max_burst_length, 32_768);
}

#[test]
fn refused_required_digest_fails_the_login() {
    let lim = Limits { header_digest: ff_iscsi::DigestPolicy::Require, ..Limits::default() };
    let mut c = conn(portal_with(lim));
    let (r, _) = login_step(&mut c, login_req(Stage::Operational, Stage::FullFeature, true, 1, 0), &leading());
    let l = lr(&r);
    let outs = drive(
        &mut c,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, l.sn.stat_sn.wrapping_add(1))),
            &[],
            &text(&[("HeaderDigest", "None")]),
            Digests::default(),
        ),
    );
    assert!(closed_with(&outs, LoginStatus::INITIATOR_ERROR), "{outs:?}");
}
