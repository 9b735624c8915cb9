//! What real hosts do that a strict reading of the spec would refuse, replayed byte for byte against the
//! running target: spdk_nvme_perf connects with an empty Host NQN unless told one, and at detach it ends
//! its Asynchronous Event Requests locally and reuses their command ids for the shutdown sequence.

mod common;
use common::{HOST_NQN, Host};
use ff_nvme::nvme::{Sqe, fctype, opcode, status};
use ff_nvme_tcp::{CapsuleCmd, Digests, Pdu};
use ff_target::{RunningTarget, TargetOptions, config::DEFAULT_NQN};

fn target(allow_any_host: bool) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, "null".parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.subsystems[0].allow_any_host = allow_any_host;
    if !allow_any_host {
        o.subsystems[0].hosts = vec![HOST_NQN.to_string()];
    }
    ff_target::start(&o).unwrap()
}

fn property(h: &mut Host, cid: u16, set: Option<u32>, offset: u32) -> (u16, u32) {
    let fct = if set.is_some() { fctype::PROPERTY_SET } else { fctype::PROPERTY_GET };
    let sqe = Sqe {
        opcode: opcode::FABRICS,
        cid,
        nsid: u32::from(fct),
        cdw11: offset,
        cdw12: set.unwrap_or(0),
        ..Sqe::default()
    };
    let (cqe, _) = h.admin(sqe);
    assert_eq!(cqe.cid, cid);
    (cqe.status, cqe.dw0)
}

#[test]
fn spdk_perf_attach_and_detach_with_an_empty_host_nqn() {
    let t = target(true);
    let addr = t.io_addrs[0];
    let mut admin = Host::connect(addr);
    admin.handshake(Digests::default());
    let cqe = admin.connect_as(DEFAULT_NQN, "", 0, 0xFFFF, 10_000);
    assert!(cqe.status().is_success(), "empty Host NQN on an open subsystem: {:?}", cqe.status());
    let cntlid = cqe.dw0 as u16;
    admin.enable();
    // Four AERs under cids 0..=3, as spdk_nvme_perf parks them.
    for cid in 0..4 {
        let aer = Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid, ..Sqe::default() };
        admin.send(Pdu::CapsuleCmd(CapsuleCmd { sqe: aer }), &[]);
    }
    let mut io = Host::connect(addr);
    io.handshake(Digests::default());
    let cqe = io.connect_as(DEFAULT_NQN, "", 1, cntlid, 0);
    assert!(cqe.status().is_success(), "I/O queue: {:?}", cqe.status());
    drop(io); // the I/O queue goes first

    // The shutdown sequence, under the abandoned AERs' ids: Get CC, Set CC.SHN=01b, poll CSTS.SHST.
    let (st, cc) = property(&mut admin, 3, None, 0x14);
    assert_eq!(st, 0, "Property Get CC after the I/O queue went: status {:#x}", st >> 1);
    assert_eq!(cc & 1, 1, "CC.EN");
    let (st, _) = property(&mut admin, 2, Some(cc | (1 << 14)), 0x14);
    assert_eq!(st, 0, "Property Set CC.SHN");
    let (st, csts) = property(&mut admin, 1, None, 0x1C);
    assert_eq!(st, 0, "Property Get CSTS");
    assert_eq!((csts >> 2) & 3, 2, "CSTS.SHST: shutdown processing complete");
    t.stop();
}

#[test]
fn empty_host_nqn_is_refused_where_an_allow_list_applies() {
    let t = target(false);
    let mut h = Host::connect(t.io_addrs[0]);
    h.handshake(Digests::default());
    let cqe = h.connect_as(DEFAULT_NQN, "", 0, 0xFFFF, 0);
    assert_eq!(cqe.status(), status::CONNECT_INVALID_HOST);
    assert!(cqe.dnr());
    // The listed host still connects.
    let mut ok = Host::connect(t.io_addrs[0]);
    ok.handshake(Digests::default());
    ok.connect_admin(DEFAULT_NQN, 0);
    t.stop();
}
