//! Admin queue behaviour: properties, Identify, log pages, features,
//! keep-alive, asynchronous events, Abort, discovery log.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ff_nvme::nvme::{SglDescriptor, Sqe, fctype, opcode, status};
use ff_nvmf::controller::{AbortRequest, fid};
use ff_nvmf::{AddrFamily, AdminOutcome, DISCOVERY_NQN, Port, SubsystemConfig};

#[test]
fn property_get_cap_vs_and_sizes() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    let r = admin_cmd(&mut c, &prop_get(0x00, true));
    assert!(r.cqe.status().is_success());
    let cap = u64::from(r.cqe.dw0) | (u64::from(r.cqe.dw1) << 32);
    assert_eq!(cap & 0xFFFF, 127, "MQES");
    assert_eq!((cap >> 16) & 1, 1, "CQR");
    assert_eq!((cap >> 24) & 0xFF, 15, "TO");
    assert_eq!((cap >> 37) & 0xFF, 1, "CSS: NVM only");
    assert_eq!((cap >> 48) & 0xF, 0, "MPSMIN");
    assert_eq!((cap >> 52) & 0xF, 0, "MPSMAX");
    assert_eq!((cap >> 59) & 0x3, 0, "CRMS");
    let r = admin_cmd(&mut c, &prop_get(0x08, false));
    assert_eq!(r.cqe.dw0, 0x0001_0300);
    // Wrong size for the property, unknown offset, reserved ATTRIB.
    for sqe in
        [prop_get(0x00, false), prop_get(0x08, true), prop_get(0x30, false), Sqe { cdw10: 2, ..prop_get(0x14, false) }]
    {
        let r = admin_cmd(&mut c, &sqe);
        assert_eq!(r.cqe.status(), status::INVALID_FIELD);
        assert!(r.cqe.dnr());
    }
}

#[test]
fn enable_and_shutdown_sequence() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    // Admin commands before enable are a sequence error.
    let r = admin_cmd(&mut c, &identify(1, 0));
    assert_eq!(r.cqe.status(), status::COMMAND_SEQUENCE_ERROR);
    assert_eq!(admin_cmd(&mut c, &prop_get(0x1C, false)).cqe.dw0, 0);
    enable(&mut c);
    assert_eq!(admin_cmd(&mut c, &prop_get(0x1C, false)).cqe.dw0 & 1, 1, "CSTS.RDY");
    assert_eq!(admin_cmd(&mut c, &prop_get(0x14, false)).cqe.dw0, CC_ENABLE);
    // Shutdown: SHN = 01b → SHST = 10b at once.
    admin_cmd(&mut c, &prop_set(0x14, CC_ENABLE | (1 << 14)));
    let csts = admin_cmd(&mut c, &prop_get(0x1C, false)).cqe.dw0;
    assert_eq!((csts >> 2) & 3, 2, "SHST complete");
    // Disable → RDY clears, then re-enable works.
    admin_cmd(&mut c, &prop_set(0x14, 0));
    assert_eq!(admin_cmd(&mut c, &prop_get(0x1C, false)).cqe.dw0, 0);
    enable(&mut c);
    // Only CC is writable, and only as 4 bytes.
    let r = admin_cmd(&mut c, &prop_set(0x1C, 0));
    assert_eq!(r.cqe.status(), status::INVALID_FIELD);
    let r = admin_cmd(&mut c, &Sqe { cdw10: 1, ..prop_set(0x14, CC_ENABLE) });
    assert_eq!(r.cqe.status(), status::INVALID_FIELD);
}

#[test]
fn enable_with_bad_entry_sizes_is_fatal() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    admin_cmd(&mut c, &prop_set(0x14, 1 | (7 << 16) | (4 << 20)));
    let csts = admin_cmd(&mut c, &prop_get(0x1C, false)).cqe.dw0;
    assert_eq!(csts & 3, 2, "CFS set, RDY clear");
    assert!(!c.is_ready());
}

#[test]
fn identify_controller_via_admin() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let r = admin_cmd(&mut c, &identify(1, 0));
    let b = r.data.unwrap();
    assert_eq!(b.len(), 4096);
    assert_eq!(le16(&b, 78), c.cntlid(), "CNTLID matches Connect");
    assert_eq!(&b[4..10], b"FF0001");
    assert_eq!(b[512], 0x66);
    assert_eq!(b[513], 0x44);
    assert_eq!(le16(&b, 514), 128);
    assert_eq!(le32(&b, 516), 1024);
    assert_eq!(le16(&b, 520) & 0x0C, 0x0C);
    assert_eq!(b[525] & 1, 1);
    assert_ne!(le32(&b, 536) & 3, 0, "SGLs supported (Linux requires)");
    assert_eq!(&b[768..768 + SUB.len()], SUB.as_bytes());
    assert_eq!(le32(&b, 1792), (64 + 8192) / 16);
    assert_eq!(le16(&b, 1800), 0, "ICDOFF 0 (Linux requires)");
    assert_ne!(le16(&b, 320), 0, "KAS (Linux requires)");
    // Wrong buffer length / SGL type.
    let mut s = identify(1, 0);
    s.dptr = SglDescriptor::transport(512);
    assert_eq!(admin_cmd(&mut c, &s).cqe.status(), status::SGL_DATA_LENGTH_INVALID);
    s.dptr = SglDescriptor::in_capsule(0, 4096);
    assert_eq!(admin_cmd(&mut c, &s).cqe.status(), status::SGL_DESCRIPTOR_TYPE_INVALID);
}

#[test]
fn identify_namespaces() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let b = admin_cmd(&mut c, &identify(0, 2)).data.unwrap();
    assert_eq!(le64(&b, 0), 1024, "NSZE");
    assert_eq!(b[130], 12, "LBADS 4096");
    // Inactive but valid NSID: zeroes; invalid NSIDs: Invalid Namespace.
    let b = admin_cmd(&mut c, &identify(0, 7)).data.unwrap();
    assert!(b.iter().all(|&x| x == 0));
    for nsid in [0, 0xFFFF_FFFF, 5000] {
        let r = admin_cmd(&mut c, &identify(0, nsid));
        assert_eq!(r.cqe.status(), status::INVALID_NAMESPACE);
        assert!(r.cqe.dnr());
    }
    let b = admin_cmd(&mut c, &identify(2, 0)).data.unwrap();
    assert_eq!((le32(&b, 0), le32(&b, 4), le32(&b, 8)), (1, 2, 0));
    let b = admin_cmd(&mut c, &identify(2, 1)).data.unwrap();
    assert_eq!((le32(&b, 0), le32(&b, 4)), (2, 0));
    let b = admin_cmd(&mut c, &identify(3, 1)).data.unwrap();
    assert_eq!((b[0], b[1]), (2, 16), "NGUID descriptor");
    let nguid = admin_cmd(&mut c, &identify(0, 1)).data.unwrap()[104..120].to_vec();
    assert_eq!(&b[4..20], &nguid[..], "NGUID consistent with CNS 00h");
    assert_eq!(admin_cmd(&mut c, &identify(3, 9)).cqe.status(), status::INVALID_NAMESPACE);
    // CNS 06h with CSI NVM: answered (Linux 6.1 asks); other CSI rejected.
    let r = admin_cmd(&mut c, &identify(6, 0));
    assert!(r.cqe.status().is_success());
    let r = admin_cmd(&mut c, &Sqe { cdw11: 2 << 24, ..identify(6, 0) });
    assert_eq!(r.cqe.status(), status::INVALID_FIELD);
    // CNS 1Ch and friends are not offered.
    assert_eq!(admin_cmd(&mut c, &identify(0x1C, 0)).cqe.status(), status::INVALID_FIELD);
}

#[test]
fn log_pages() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let b = admin_cmd(&mut c, &get_log(2, 512, 0, false)).data.unwrap();
    assert_eq!(le16(&b, 1), 303);
    let b = admin_cmd(&mut c, &get_log(5, 4096, 0, false)).data.unwrap();
    assert_eq!(le32(&b, 6 * 4) & 1, 1);
    let b = admin_cmd(&mut c, &get_log(3, 512, 0, false)).data.unwrap();
    assert_eq!(b[0], 1);
    // Offset into SMART: bytes 0..4 of the window are bytes 4..8 of the log.
    let b = admin_cmd(&mut c, &get_log(2, 8, 0, false)).data.unwrap();
    let w = admin_cmd(&mut c, &get_log(2, 4, 4, false)).data.unwrap();
    assert_eq!(&w[..], &b[4..8]);
    // Error log asked with more entries than exist: zero padded.
    let b = admin_cmd(&mut c, &get_log(1, 256, 0, false)).data.unwrap();
    assert_eq!(b.len(), 256);
    // Unknown LID, discovery LID on an NVM controller.
    for lid in [0x70, 0x0D] {
        let r = admin_cmd(&mut c, &get_log(lid, 64, 0, false));
        assert_eq!(r.cqe.status(), ff_nvmf::response::sc::INVALID_LOG_PAGE);
    }
    // Misaligned / past-the-end offsets, too large.
    assert_eq!(admin_cmd(&mut c, &get_log(2, 4, 2, false)).cqe.status(), status::INVALID_FIELD);
    assert_eq!(admin_cmd(&mut c, &get_log(2, 4, 1024, false)).cqe.status(), status::INVALID_FIELD);
    assert_eq!(admin_cmd(&mut c, &get_log(2, 1 << 24, 0, false)).cqe.status(), status::INVALID_FIELD);
}

#[test]
fn features_set_get() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let set = |f, v| features(opcode::ADMIN_SET_FEATURES, f, v);
    let get = |f, v| features(opcode::ADMIN_GET_FEATURES, f, v);
    assert!(admin_cmd(&mut c, &set(fid::ASYNC_EVENT_CONFIG, 1 << 8)).cqe.status().is_success());
    assert_eq!(admin_cmd(&mut c, &get(fid::ASYNC_EVENT_CONFIG, 0)).cqe.dw0, 1 << 8);
    assert!(admin_cmd(&mut c, &set(fid::KATO, 30_000)).cqe.status().is_success());
    assert_eq!(admin_cmd(&mut c, &get(fid::KATO, 0)).cqe.dw0, 30_000);
    assert!(admin_cmd(&mut c, &set(fid::VWC, 0)).cqe.status().is_success());
    assert_eq!(admin_cmd(&mut c, &get(fid::VWC, 0)).cqe.dw0, 0);
    assert_eq!(admin_cmd(&mut c, &set(fid::POWER_MGMT, 1)).cqe.status(), status::INVALID_FIELD);
    assert!(admin_cmd(&mut c, &set(fid::TEMP_THRESHOLD, 350)).cqe.status().is_success());
    assert_eq!(admin_cmd(&mut c, &get(fid::TEMP_THRESHOLD, 0)).cqe.dw0 & 0xFFFF, 350);
    assert_eq!(admin_cmd(&mut c, &get(fid::TEMP_THRESHOLD, 1 << 16)).cqe.status(), status::INVALID_FIELD);
    // Host identifier: not settable on fabrics, readable in 128-bit form.
    assert_eq!(admin_cmd(&mut c, &set(fid::HOST_ID, 1)).cqe.status(), status::COMMAND_SEQUENCE_ERROR);
    assert_eq!(admin_cmd(&mut c, &get(fid::HOST_ID, 0)).cqe.status(), status::INVALID_FIELD);
    let mut g = get(fid::HOST_ID, 1);
    g.dptr = SglDescriptor::transport(16);
    assert_eq!(admin_cmd(&mut c, &g).data.unwrap(), HOSTID.to_vec());
    // Save bit, unknown FIDs, interrupt features that do not exist on fabrics.
    let r = admin_cmd(&mut c, &Sqe { cdw10: u32::from(fid::ARBITRATION) | (1 << 31), ..set(0, 0) });
    assert_eq!(r.cqe.status(), ff_nvmf::response::sc::FEATURE_NOT_SAVEABLE);
    for f in [0x08, 0x09, 0x0C, 0x0E, 0x7F] {
        assert_eq!(admin_cmd(&mut c, &set(f, 0)).cqe.status(), status::INVALID_FIELD, "fid {f:#x}");
    }
    // SEL = 3: capabilities.
    let r = admin_cmd(&mut c, &Sqe { cdw10: u32::from(fid::KATO) | (3 << 8), ..get(0, 0) });
    assert_eq!(r.cqe.dw0, 1 << 2);
}

#[test]
fn keep_alive_expiry_with_fake_clock() {
    let t = target();
    let t0 = Instant::now();
    let mut c = connect_admin_to(&t, SUB, 10_000, t0);
    let at = |s| t0 + Duration::from_millis(s);
    assert!(!c.keep_alive_expired(at(10_000)), "exactly KATO is still in time");
    assert!(c.keep_alive_expired(at(10_001)));
    assert_eq!(c.keep_alive_deadline(), Some(at(10_000)));
    enable(&mut c);
    let ka = Sqe { opcode: opcode::ADMIN_KEEP_ALIVE, cid: 9, ..Sqe::default() };
    let r = done(c.handle_admin(&ka, at(9_000)));
    assert!(r.cqe.status().is_success());
    assert!(!c.keep_alive_expired(at(18_000)));
    assert!(c.keep_alive_expired(at(19_500)));
    // KATO 0 disables the timer.
    let c0 = connect_admin_to(&t, SUB, 0, t0);
    assert!(!c0.keep_alive_expired(at(100_000_000)));
}

#[test]
fn aer_queueing_limit_and_namespace_notice() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::ASYNC_EVENT_CONFIG, 1 << 8));
    let aer = |cid| Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid, ..Sqe::default() };
    for cid in 100..104 {
        assert_eq!(c.handle_admin(&aer(cid), Instant::now()), AdminOutcome::Parked);
    }
    let r = admin_cmd(&mut c, &aer(104));
    assert_eq!(r.cqe.status(), ff_nvmf::response::sc::AER_LIMIT_EXCEEDED);
    assert!(r.cqe.dnr());
    assert!(c.poll_async().is_none());

    let woken = t.add_namespace(SUB, ns(5, 4096, 512)).unwrap();
    assert_eq!(woken, vec![c.cntlid()]);
    let r = c.poll_async().unwrap();
    assert_eq!(r.cqe.cid, 100);
    assert_eq!(r.cqe.dw0, 0x02 | (0x04 << 16), "notice, NS attribute changed, LID 04h");
    // Masked until the log is read, even if more changes happen.
    t.resize_namespace(SUB, 5, 8192).unwrap();
    assert!(c.poll_async().is_none());
    let b = admin_cmd(&mut c, &get_log(4, 4096, 0, false)).data.unwrap();
    assert_eq!(le32(&b, 0), 5);
    assert_eq!(le32(&b, 4), 0);
    // Reading with RAE = 0 re-arms; the pending resize now reports.
    let r = c.poll_async().unwrap();
    assert_eq!(r.cqe.cid, 101);
    // The list was cleared by the read.
    let b = admin_cmd(&mut c, &get_log(4, 4096, 0, true)).data.unwrap();
    assert_eq!(le32(&b, 0), 0);
    // New namespace visible.
    let b = admin_cmd(&mut c, &identify(2, 0)).data.unwrap();
    assert_eq!(le32(&b, 8), 5);

    // Abort of a parked AER completes it with Abort Requested.
    let ab = Sqe { opcode: opcode::ADMIN_ABORT, cid: 7, cdw10: 102 << 16, ..Sqe::default() };
    let r = admin_cmd(&mut c, &ab);
    assert_eq!(r.cqe.dw0 & 1, 0, "aborted");
    let r = c.poll_async().unwrap();
    assert_eq!((r.cqe.cid, r.cqe.status()), (102, status::ABORT_REQUESTED));
}

#[test]
fn aer_dropped_when_not_enabled() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let aer = Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid: 1, ..Sqe::default() };
    assert_eq!(c.handle_admin(&aer, Instant::now()), AdminOutcome::Parked);
    t.remove_namespace(SUB, 2).unwrap();
    assert!(c.poll_async().is_none());
}

#[test]
fn a_command_reusing_a_parked_aer_id_drops_that_aer() {
    // SPDK's host ends its AERs locally at detach and reuses their ids for the shutdown's Property Get.
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    admin_cmd(&mut c, &features(opcode::ADMIN_SET_FEATURES, fid::ASYNC_EVENT_CONFIG, 1 << 8));
    let aer = |cid| Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid, ..Sqe::default() };
    for cid in 0..2 {
        assert_eq!(c.handle_admin(&aer(cid), Instant::now()), AdminOutcome::Parked);
    }
    let r = admin_cmd(&mut c, &Sqe { cid: 1, ..prop_get(0x14, false) });
    assert!(r.cqe.status().is_success(), "Property Get CC under a parked AER's id: {:?}", r.cqe.status());
    assert_eq!(r.cqe.cid, 1);
    // The event goes to the AER still parked, and only to it: the dropped one never completes.
    t.add_namespace(SUB, ns(5, 4096, 512)).unwrap();
    let r = c.poll_async().unwrap();
    assert_eq!(r.cqe.cid, 0);
    assert!(c.poll_async().is_none());
}

#[test]
fn abort_on_io_queue_is_resolved_by_transport() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let ab = Sqe { opcode: opcode::ADMIN_ABORT, cid: 8, cdw10: 1 | (55 << 16), ..Sqe::default() };
    let AdminOutcome::Abort(req) = c.handle_admin(&ab, Instant::now()) else { panic!() };
    assert_eq!(req, AbortRequest { cid: 8, sqid: 1, target_cid: 55 });
    assert_eq!(c.finish_abort(req, false).cqe.dw0, 1);
    let AdminOutcome::Abort(req) = c.handle_admin(&ab, Instant::now()) else { panic!() };
    assert_eq!(c.finish_abort(req, true).cqe.dw0, 0);
    let cqe = ff_nvmf::controller::aborted(55, 1);
    assert_eq!(cqe.status(), status::ABORT_REQUESTED);
    // Unknown admin CID: not aborted.
    let ab0 = Sqe { cdw10: 77 << 16, ..ab };
    assert_eq!(admin_cmd(&mut c, &ab0).cqe.dw0, 1);
}

#[test]
fn unknown_admin_opcode_and_fabrics_misuse() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    for op in [0x01, 0x05, 0x80, 0xC0, 0xFF] {
        let r = admin_cmd(&mut c, &Sqe { opcode: op, cid: 1, ..Sqe::default() });
        assert_eq!(r.cqe.status(), status::INVALID_OPCODE, "opcode {op:#x}");
        assert!(r.cqe.dnr());
    }
    assert_eq!(admin_cmd(&mut c, &fabrics(fctype::CONNECT, 1)).cqe.status(), status::COMMAND_SEQUENCE_ERROR);
    assert_eq!(admin_cmd(&mut c, &fabrics(fctype::AUTH_SEND, 1)).cqe.status(), status::INVALID_OPCODE);
    // Fused admin command.
    let r = admin_cmd(&mut c, &Sqe { flags: 0x41, ..identify(1, 0) });
    assert_eq!(r.cqe.status(), status::INVALID_FIELD);
}

fn discovery_target() -> std::sync::Arc<ff_nvmf::Target> {
    let t = target();
    t.add_listener(Port {
        adrfam: AddrFamily::Ipv6,
        traddr: "2001:db8::1".into(),
        trsvcid: "4420".into(),
        portid: 2,
        secure_channel: ff_nvmf::discovery::SecureChannel::None,
    });
    t.add_subsystem(SubsystemConfig {
        nqn: "nqn.2026-01.io.ferrofabric:open".into(),
        allow_any_host: true,
        ..subsystem(vec![], true)
    })
    .unwrap();
    t.add_subsystem(SubsystemConfig { nqn: "nqn.2026-01.io.ferrofabric:private".into(), ..subsystem(vec![], false) })
        .unwrap();
    t
}

#[test]
fn discovery_log_visibility_offsets_and_short_buffer() {
    let t = discovery_target();
    let mut d = connect_admin_to(&t, DISCOVERY_NQN, 0, Instant::now());
    enable(&mut d);
    let id = admin_cmd(&mut d, &identify(1, 0)).data.unwrap();
    assert_eq!(id[111], 2, "CNTRLTYPE discovery");
    assert_eq!(&id[768..768 + DISCOVERY_NQN.len()], DISCOVERY_NQN.as_bytes());
    // Namespaces do not exist on a discovery controller; CNS 06h is
    // answered with zeroes because early 6.1 hosts ask it anyway.
    assert_eq!(admin_cmd(&mut d, &identify(0, 1)).cqe.status(), status::INVALID_FIELD);
    assert!(admin_cmd(&mut d, &identify(6, 0)).cqe.status().is_success());

    // Header only: what nvme-cli reads first.
    let h = admin_cmd(&mut d, &get_log(0x70, 1024, 0, true)).data.unwrap();
    let genctr = le64(&h, 0);
    let numrec = le64(&h, 8);
    // 2 listeners × (current discovery + SUB + open); private is hidden.
    assert_eq!(numrec, 6);
    assert_eq!(genctr, t.discovery_generation());
    let full = admin_cmd(&mut d, &get_log(0x70, 1024 * 7, 0, true)).data.unwrap();
    let nqns: Vec<String> = (1..=6)
        .map(|i| {
            let e = &full[i * 1024..(i + 1) * 1024];
            let n = &e[256..512];
            String::from_utf8(n[..n.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
        })
        .collect();
    assert!(nqns.iter().any(|n| n == SUB));
    assert!(nqns.iter().any(|n| n.ends_with(":open")));
    assert!(!nqns.iter().any(|n| n.ends_with(":private")));
    assert_eq!(nqns.iter().filter(|n| *n == DISCOVERY_NQN).count(), 2);
    let e1 = &full[1024..2048];
    assert_eq!((e1[0], e1[1], e1[3] & 0x04), (3, 1, 0x04), "TCP, IPv4, SQ flow disable OK");
    assert_eq!(le16(e1, 6), 0xFFFF);
    assert_eq!(&e1[512..522], b"192.0.2.10");
    // Second entry via offset equals the slice of the full read.
    let w = admin_cmd(&mut d, &get_log(0x70, 1024, 2048, true)).data.unwrap();
    assert_eq!(&w[..], &full[2048..3072]);
    // Short buffer past the end: zero padded; offset beyond: Invalid Field.
    let w = admin_cmd(&mut d, &get_log(0x70, 2048, 6 * 1024, true)).data.unwrap();
    assert_eq!(&w[..1024], &full[6 * 1024..]);
    assert!(w[1024..].iter().all(|&b| b == 0));
    assert_eq!(admin_cmd(&mut d, &get_log(0x70, 4, 8 * 1024, true)).cqe.status(), status::INVALID_FIELD);
    // A partial header read.
    let w = admin_cmd(&mut d, &get_log(0x70, 16, 0, true)).data.unwrap();
    assert_eq!(&w[..], &h[..16]);

    // Generation changes with the visible set; an enabled AER fires once.
    admin_cmd(&mut d, &features(opcode::ADMIN_SET_FEATURES, fid::ASYNC_EVENT_CONFIG, 1 << 31));
    let aer = Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid: 40, ..Sqe::default() };
    assert_eq!(d.handle_admin(&aer, Instant::now()), AdminOutcome::Parked);
    t.allow_host("nqn.2026-01.io.ferrofabric:private", HOST).unwrap();
    let r = d.poll_async().unwrap();
    assert_eq!(r.cqe.dw0, 0x02 | (0xF0 << 8) | (0x70 << 16));
    let h2 = admin_cmd(&mut d, &get_log(0x70, 1024, 0, false)).data.unwrap();
    assert_ne!(le64(&h2, 0), genctr);
    assert_eq!(le64(&h2, 8), 8, "2 × (discovery + 3 subsystems)");
    // Only discovery LIDs.
    assert_eq!(admin_cmd(&mut d, &get_log(2, 512, 0, false)).cqe.status(), ff_nvmf::response::sc::INVALID_LOG_PAGE);
}
