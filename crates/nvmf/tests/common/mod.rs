//! Shared helpers: a target with one subsystem, Connect capsules, enable.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use ff_nvme::nvme::{Cqe, PSDT_SGL_MPTR_CONTIG, SglDescriptor, Sqe, fctype, opcode};
use ff_nvmf::{
    AddrFamily, AdminOutcome, Connected, Limits, NamespaceConfig, Port, Response, SubsystemConfig, Target,
    TargetController, TargetIoQueue,
};

pub const SUB: &str = "nqn.2026-01.io.ferrofabric:disk1";
pub const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
pub const HOSTID: [u8; 16] = [7; 16];

pub fn ns(nsid: u32, blocks: u64, bs: u32) -> NamespaceConfig {
    NamespaceConfig {
        nsid,
        block_size: bs,
        blocks,
        nguid: None,
        uuid: None,
        volatile_write_cache: true,
        supports_deallocate: true,
        supports_write_zeroes: true,
    }
}

pub fn subsystem(hosts: Vec<String>, any: bool) -> SubsystemConfig {
    SubsystemConfig {
        nqn: SUB.into(),
        serial: "FF0001".into(),
        model: "ferrofabric test".into(),
        firmware_rev: "0.1.0".into(),
        namespaces: vec![ns(1, 1 << 20, 512), ns(2, 1 << 10, 4096)],
        allow_any_host: any,
        hosts,
        max_namespaces: 0,
        dhchap: vec![],
        dhchap_hashes: vec![],
        dhchap_dhgroups: vec![],
    }
}

pub fn target_with(limits: Limits) -> Arc<Target> {
    let t = Target::new(limits).unwrap();
    t.add_subsystem(subsystem(vec![HOST.into()], false)).unwrap();
    t.add_listener(Port {
        adrfam: AddrFamily::Ipv4,
        traddr: "192.0.2.10".into(),
        trsvcid: "4420".into(),
        portid: 1,
        secure_channel: ff_nvmf::discovery::SecureChannel::None,
    });
    t
}

pub fn target() -> Arc<Target> {
    target_with(Limits::default())
}

pub fn connect_sqe(qid: u16, sqsize: u16, cattr: u8, kato: u32) -> Sqe {
    Sqe {
        opcode: opcode::FABRICS,
        flags: PSDT_SGL_MPTR_CONTIG,
        cid: 0x10 + qid,
        nsid: u32::from(fctype::CONNECT),
        dptr: SglDescriptor::in_capsule(0, 1024),
        cdw10: u32::from(qid) << 16,
        cdw11: u32::from(sqsize) | (u32::from(cattr) << 16),
        cdw12: kato,
        ..Sqe::default()
    }
}

pub fn connect_data(subnqn: &str, hostnqn: &str, cntlid: u16, hostid: [u8; 16]) -> Vec<u8> {
    let mut d = vec![0u8; 1024];
    d[..16].copy_from_slice(&hostid);
    d[16..18].copy_from_slice(&cntlid.to_le_bytes());
    d[256..256 + subnqn.len()].copy_from_slice(subnqn.as_bytes());
    d[512..512 + hostnqn.len()].copy_from_slice(hostnqn.as_bytes());
    d
}

pub fn connect_admin_to(t: &Arc<Target>, subnqn: &str, kato: u32, now: Instant) -> Box<TargetController> {
    match t.connect(&connect_sqe(0, 31, 0, kato), &connect_data(subnqn, HOST, 0xFFFF, HOSTID), now) {
        Connected::Admin { controller, cqe, .. } => {
            assert_eq!(cqe.status, 0);
            assert_eq!(cqe.dw0 & 0xFFFF, u32::from(controller.cntlid()));
            controller
        }
        other => panic!("admin connect failed: {other:?}"),
    }
}

pub fn connect_admin(t: &Arc<Target>, now: Instant) -> Box<TargetController> {
    connect_admin_to(t, SUB, 15_000, now)
}

pub fn connect_io(t: &Arc<Target>, cntlid: u16, qid: u16, sqsize: u16) -> Result<TargetIoQueue, Cqe> {
    match t.connect(&connect_sqe(qid, sqsize, 0, 0), &connect_data(SUB, HOST, cntlid, HOSTID), Instant::now()) {
        Connected::Io { queue, cqe, .. } => {
            assert_eq!(cqe.status, 0);
            assert_eq!(cqe.sqid, qid);
            Ok(queue)
        }
        Connected::Rejected { cqe } => Err(cqe),
        Connected::Admin { .. } => panic!("I/O connect made a controller"),
    }
}

pub fn fabrics(fct: u8, cid: u16) -> Sqe {
    Sqe { opcode: opcode::FABRICS, nsid: u32::from(fct), cid, flags: PSDT_SGL_MPTR_CONTIG, ..Sqe::default() }
}

pub fn prop_set(off: u32, v: u32) -> Sqe {
    Sqe { cdw10: 0, cdw11: off, cdw12: v, ..fabrics(fctype::PROPERTY_SET, 1) }
}

pub fn prop_get(off: u32, eight: bool) -> Sqe {
    Sqe { cdw10: u32::from(eight), cdw11: off, ..fabrics(fctype::PROPERTY_GET, 2) }
}

pub const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);

pub fn done(o: AdminOutcome) -> Response {
    match o {
        AdminOutcome::Complete(r) => r,
        other => panic!("expected a completion, got {other:?}"),
    }
}

pub fn admin_cmd(c: &mut TargetController, sqe: &Sqe) -> Response {
    done(c.handle_admin(sqe, Instant::now()))
}

pub fn enable(c: &mut TargetController) {
    let r = admin_cmd(c, &prop_set(0x14, CC_ENABLE));
    assert_eq!(r.cqe.status, 0);
    assert!(c.is_ready());
}

/// An admin command reading `len` bytes to the host.
pub fn data_in(op: u8, cid: u16, len: u32) -> Sqe {
    Sqe { opcode: op, cid, flags: PSDT_SGL_MPTR_CONTIG, dptr: SglDescriptor::transport(len), ..Sqe::default() }
}

pub fn identify(cns: u8, nsid: u32) -> Sqe {
    Sqe { nsid, cdw10: u32::from(cns), ..data_in(opcode::ADMIN_IDENTIFY, 3, 4096) }
}

/// Get Log Page for `len` bytes (multiple of 4) at `offset`.
pub fn get_log(lid: u8, len: u32, offset: u64, rae: bool) -> Sqe {
    let numd = len / 4 - 1;
    Sqe {
        cdw10: u32::from(lid) | (u32::from(rae) << 15) | ((numd & 0xFFFF) << 16),
        cdw11: numd >> 16,
        cdw12: offset as u32,
        cdw13: (offset >> 32) as u32,
        ..data_in(opcode::ADMIN_GET_LOG_PAGE, 4, len)
    }
}

pub fn features(op: u8, f: u8, cdw11: u32) -> Sqe {
    Sqe { opcode: op, cid: 5, flags: PSDT_SGL_MPTR_CONTIG, cdw10: u32::from(f), cdw11, ..Sqe::default() }
}

pub fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

pub fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
