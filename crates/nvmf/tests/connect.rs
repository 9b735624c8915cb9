//! Connect validation matrix, controller IDs, queue grants, teardown.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use ff_nvme::nvme::{Cqe, opcode, status};
use ff_nvmf::controller::fid;
use ff_nvmf::{Connected, DISCOVERY_NQN, Limits, Target};

fn reject(c: Connected) -> Cqe {
    match c {
        Connected::Rejected { cqe } => cqe,
        other => panic!("expected rejection, got {other:?}"),
    }
}

fn check(cqe: &Cqe, st: ff_nvme::nvme::Status, dw0: u32) {
    assert_eq!(cqe.status(), st, "status");
    assert!(cqe.dnr(), "DNR");
    assert_eq!(cqe.dw0, dw0, "IATTR/IPO");
}

#[test]
fn admin_connect_assigns_dynamic_cntlid_and_echoes_cid() {
    let t = target();
    let now = Instant::now();
    let sqe = connect_sqe(0, 31, 0, 15_000);
    let c = t.connect(&sqe, &connect_data(SUB, HOST, 0xFFFF, HOSTID), now);
    let Connected::Admin { cqe, controller, info } = c else { panic!() };
    assert_eq!(cqe.cid, sqe.cid);
    assert_eq!(cqe.sqid, 0);
    assert!(cqe.status().is_success());
    assert_eq!(cqe.dw0, u32::from(controller.cntlid()));
    assert!((1..=0xFFEF).contains(&controller.cntlid()));
    assert_eq!(info.depth, 32);
    assert!(!info.sq_flow_control_disabled);
    assert_eq!(controller.kato_ms(), 15_000);
    let second = connect_admin(&t, now);
    assert_ne!(second.cntlid(), controller.cntlid());
    assert_eq!(t.controller_count(), 2);
    drop(controller);
    assert_eq!(t.controller_count(), 1);
}

#[test]
fn connect_matrix() {
    let t = target();
    let now = Instant::now();
    let data = connect_data(SUB, HOST, 0xFFFF, HOSTID);

    // Record format other than 0.
    let mut sqe = connect_sqe(0, 31, 0, 0);
    sqe.cdw10 |= 1;
    let cqe = reject(t.connect(&sqe, &data, now));
    check(&cqe, status::CONNECT_INCOMPATIBLE_FORMAT, 0);

    // Unknown subsystem: IATTR=1 (data), IPO=256.
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &connect_data("nqn.nope", HOST, 0xFFFF, HOSTID), now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 256);

    // Host not allowed: Connect Invalid Host, pointing at HOSTNQN.
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, "nqn.other", 0xFFFF, HOSTID), now));
    check(&cqe, status::CONNECT_INVALID_HOST, (1 << 16) | 512);

    // Admin connect must ask for a dynamic controller.
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, HOST, 5, HOSTID), now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 16);

    // SQSIZE 0 and SQSIZE > MQES: IATTR=0 (SQE), IPO=44.
    let cqe = reject(t.connect(&connect_sqe(0, 0, 0, 0), &data, now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, 44);
    let cqe = reject(t.connect(&connect_sqe(0, 128, 0, 0), &data, now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, 44);

    // NQN without a terminating NUL.
    let mut bad = data.clone();
    bad[256..512].fill(b'a');
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &bad, now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 256);

    // Short data.
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &data[..512], now));
    assert_eq!(cqe.status(), status::SGL_DATA_LENGTH_INVALID);

    // Not a Connect at all.
    let mut sqe = connect_sqe(0, 31, 0, 0);
    sqe.opcode = opcode::ADMIN_IDENTIFY;
    assert_eq!(reject(t.connect(&sqe, &data, now)).status(), status::COMMAND_SEQUENCE_ERROR);
    assert_eq!(t.controller_count(), 0);
}

#[test]
fn io_connect_matrix() {
    let t = target();
    let now = Instant::now();
    let mut c = connect_admin(&t, now);
    let id = c.cntlid();

    // Before CC.EN the controller cannot take I/O queues.
    let cqe = connect_io(&t, id, 1, 127).unwrap_err();
    assert_eq!(cqe.status(), status::COMMAND_SEQUENCE_ERROR);
    enable(&mut c);

    // Grant 2 I/O queues out of 4 requested? The grant is min(request, max).
    let r = admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::NUM_QUEUES, 1 | (1 << 16)));
    assert_eq!(r.cqe.dw0, 1 | (1 << 16));

    let q1 = connect_io(&t, id, 1, 127).unwrap();
    assert_eq!(q1.qid(), 1);
    assert_eq!(q1.cntlid(), id);
    let _q2 = connect_io(&t, id, 2, 127).unwrap();

    // QID beyond the granted count: IATTR=0, IPO=42.
    let cqe = connect_io(&t, id, 3, 127).unwrap_err();
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, 42);
    // Same QID twice.
    let cqe = connect_io(&t, id, 1, 127).unwrap_err();
    assert_eq!(cqe.status(), status::COMMAND_SEQUENCE_ERROR);
    // SQSIZE checks apply to I/O queues.
    drop(q1);
    let cqe = connect_io(&t, id, 1, 0).unwrap_err();
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, 44);
    let cqe = connect_io(&t, id, 1, 128).unwrap_err();
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, 44);
    // After the drop the QID is free again.
    let _q1 = connect_io(&t, id, 1, 127).unwrap();

    // Unknown controller ID.
    let cqe = connect_io(&t, id.wrapping_add(100), 1, 127).unwrap_err();
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 16);
    // Host NQN / host ID mismatch.
    let r = t.connect(&connect_sqe(1, 127, 0, 0), &connect_data(SUB, "nqn.evil", id, HOSTID), now);
    check(&reject(r), status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 512);
    let r = t.connect(&connect_sqe(1, 127, 0, 0), &connect_data(SUB, HOST, id, [9; 16]), now);
    check(&reject(r), status::CONNECT_INVALID_PARAMETERS, 1 << 16);

    // Number of Queues can no longer change once I/O queues exist.
    let r = admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::NUM_QUEUES, 3 | (3 << 16)));
    assert_eq!(r.cqe.status(), status::COMMAND_SEQUENCE_ERROR);
}

#[test]
fn number_of_queues_grant_is_clamped() {
    let t = target_with(Limits { max_io_queues: 4, ..Limits::default() });
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    // Host asks for 64 SQs / 32 CQs (0's based 63 / 31).
    let r = admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::NUM_QUEUES, 63 | (31 << 16)));
    assert!(r.cqe.status().is_success());
    assert_eq!(r.cqe.dw0, 3 | (3 << 16));
    let r = admin_cmd(&mut c, &features(opcode::ADMIN_GET_FEATURES, fid::NUM_QUEUES, 0));
    assert_eq!(r.cqe.dw0, 3 | (3 << 16));
    // 65535 is not a valid request.
    let r = admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::NUM_QUEUES, 0xFFFF));
    assert_eq!(r.cqe.status(), status::INVALID_FIELD);
    assert!(r.cqe.dnr());
    // Granted 4: QID 4 works, 5 does not.
    assert!(connect_io(&t, c.cntlid(), 4, 31).is_ok());
    assert!(connect_io(&t, c.cntlid(), 5, 31).is_err());
}

#[test]
fn empty_host_nqn_is_admitted_only_by_an_open_subsystem() {
    let now = Instant::now();
    // The default test subsystem has an allow-list: an empty Host NQN is Connect Invalid Host.
    let t = target();
    let cqe = reject(t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, "", 0xFFFF, HOSTID), now));
    check(&cqe, status::CONNECT_INVALID_HOST, (1 << 16) | 512);
    assert_eq!(t.controller_count(), 0);

    // A subsystem that allows any host takes it, and its I/O queues connect with the same empty NQN.
    let open = Target::new(Limits::default()).unwrap();
    open.add_subsystem(subsystem(vec![], true)).unwrap();
    let r = open.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, "", 0xFFFF, HOSTID), now);
    let Connected::Admin { cqe, mut controller, .. } = r else { panic!("admin connect refused: {r:?}") };
    assert!(cqe.status().is_success());
    assert_eq!(controller.hostnqn(), "");
    enable(&mut controller);
    let io = open.connect(&connect_sqe(1, 31, 0, 0), &connect_data(SUB, "", controller.cntlid(), HOSTID), now);
    assert!(matches!(io, Connected::Io { .. }), "I/O connect with the same empty Host NQN: {io:?}");
    // The I/O queue must still name the host the admin queue named.
    let other = open.connect(&connect_sqe(2, 31, 0, 0), &connect_data(SUB, HOST, controller.cntlid(), HOSTID), now);
    check(&reject(other), status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 512);

    // An empty subsystem NQN is still invalid.
    let cqe = reject(open.connect(&connect_sqe(0, 31, 0, 0), &connect_data("", HOST, 0xFFFF, HOSTID), now));
    check(&cqe, status::CONNECT_INVALID_PARAMETERS, (1 << 16) | 256);
}

#[test]
fn sq_flow_control_disable_is_reported_or_refused() {
    let t = target();
    let now = Instant::now();
    let r = t.connect(&connect_sqe(0, 31, 1 << 2, 0), &connect_data(SUB, HOST, 0xFFFF, HOSTID), now);
    let Connected::Admin { info, .. } = r else { panic!() };
    assert!(info.sq_flow_control_disabled);

    let strict = target_with(Limits { allow_sq_flow_control_disable: false, ..Limits::default() });
    let r = strict.connect(&connect_sqe(0, 31, 1 << 2, 0), &connect_data(SUB, HOST, 0xFFFF, HOSTID), now);
    check(&reject(r), status::CONNECT_INVALID_PARAMETERS, 46);
}

#[test]
fn discovery_connect_defaults_kato_and_refuses_io() {
    let t = target();
    let now = Instant::now();
    let d = connect_admin_to(&t, DISCOVERY_NQN, 0, now);
    assert!(d.is_discovery());
    assert_eq!(d.kato_ms(), 120_000);
    // Any host may discover.
    let r = t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(DISCOVERY_NQN, "nqn.any", 0xFFFF, HOSTID), now);
    assert!(matches!(r, Connected::Admin { .. }));
    let r = t.connect(&connect_sqe(1, 31, 0, 0), &connect_data(DISCOVERY_NQN, HOST, d.cntlid(), HOSTID), now);
    check(&reject(r), status::CONNECT_INVALID_PARAMETERS, 42);
}

#[test]
fn kato_rounds_up_to_kas_granularity() {
    let t = target();
    let c = connect_admin_to(&t, SUB, 1500, Instant::now());
    assert_eq!(c.kato_ms(), 2000);
}

#[test]
fn connection_limit_is_busy_without_dnr() {
    let t = target_with(Limits { max_connections: 1, ..Limits::default() });
    let now = Instant::now();
    let _c = connect_admin(&t, now);
    let r = t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, HOST, 0xFFFF, HOSTID), now);
    let cqe = reject(r);
    assert_eq!(cqe.status(), status::CONNECT_CONTROLLER_BUSY);
    assert!(!cqe.dnr());
}

#[test]
fn admin_disconnect_kills_io_queues() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let q = connect_io(&t, c.cntlid(), 1, 31).unwrap();
    assert!(q.controller_live());
    c.disconnect();
    assert!(!q.controller_live());
    assert_eq!(t.controller_count(), 0);
    drop(q);
}

#[test]
fn removing_subsystem_marks_controllers_dead() {
    let t = target();
    let c = connect_admin(&t, Instant::now());
    assert!(c.is_alive());
    t.remove_subsystem(SUB).unwrap();
    assert!(!c.is_alive());
}

#[test]
fn target_from_config_rejects_duplicates() {
    use ff_nvmf::{Target, TargetConfig};
    let cfg = TargetConfig {
        limits: Limits::default(),
        subsystems: vec![subsystem(vec![], true), subsystem(vec![], true)],
        listeners: vec![],
    };
    assert!(Target::from_config(cfg).is_err());
    let ok = TargetConfig { subsystems: vec![subsystem(vec![], true)], ..TargetConfig::default() };
    let t = Target::from_config(ok).unwrap();
    // allow_any_host admits a stranger.
    let r = t.connect(&connect_sqe(0, 31, 0, 0), &connect_data(SUB, "nqn.stranger", 0xFFFF, HOSTID), Instant::now());
    assert!(matches!(r, Connected::Admin { .. }));
}
