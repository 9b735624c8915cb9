//! I/O validation matrix and the I/O queue handle.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use ff_nvme::nvme::{PSDT_SGL_MPTR_CONTIG, SglDescriptor, Sqe, fctype, opcode, status};
use ff_nvmf::io::{IoFabricsOutcome, IoLimits, NSID_ALL};
use ff_nvmf::{CmdError, DataLocation, IoCmd, Limits, Namespace, NamespaceTable, parse_dsm_ranges, validate};

fn table() -> NamespaceTable {
    let l = Limits::default();
    let mut t = NamespaceTable::new();
    let mut n1 = ns(1, 1000, 512);
    n1.supports_deallocate = true;
    let mut n2 = ns(2, 100, 4096);
    n2.supports_deallocate = false;
    n2.supports_write_zeroes = false;
    for c in [n1, n2] {
        let n = Namespace::from_config(SUB, &c, &l).unwrap();
        t.insert(n.nsid, n);
    }
    t
}

const LIM: IoLimits = IoLimits { mdts_bytes: Some(128 * 1024), icd_bytes: 8192 };

fn rw(op: u8, nsid: u32, slba: u64, nlb: u32, dptr: SglDescriptor) -> Sqe {
    Sqe {
        opcode: op,
        flags: PSDT_SGL_MPTR_CONTIG,
        cid: 1,
        nsid,
        dptr,
        cdw10: slba as u32,
        cdw11: (slba >> 32) as u32,
        cdw12: nlb - 1,
        ..Sqe::default()
    }
}

fn err(sqe: &Sqe) -> CmdError {
    validate(sqe, &table(), &LIM).unwrap_err()
}

#[test]
fn read_write_ok() {
    let t = table();
    let r = validate(&rw(opcode::IO_READ, 1, 10, 8, SglDescriptor::transport(4096)), &t, &LIM).unwrap();
    assert_eq!(r, IoCmd::Read { nsid: 1, slba: 10, nlb: 8, fua: false, block_size: 512, len: 4096 });
    let mut w = rw(opcode::IO_WRITE, 1, 992, 8, SglDescriptor::in_capsule(0, 4096));
    w.cdw12 |= 1 << 30;
    let r = validate(&w, &t, &LIM).unwrap();
    assert_eq!(
        r,
        IoCmd::Write {
            nsid: 1,
            slba: 992,
            nlb: 8,
            fua: true,
            block_size: 512,
            len: 4096,
            data: DataLocation::InCapsule
        }
    );
    let r = validate(&rw(opcode::IO_WRITE, 2, 0, 32, SglDescriptor::transport(128 * 1024)), &t, &LIM).unwrap();
    assert!(matches!(r, IoCmd::Write { data: DataLocation::Transport, len: 131072, .. }));
}

#[test]
fn validation_matrix() {
    use ff_nvme::nvme::Status;
    let t4k = SglDescriptor::transport(4096);
    let cases: Vec<(&str, Sqe, Status)> = vec![
        ("LBA past end", rw(opcode::IO_READ, 1, 993, 8, t4k), status::LBA_OUT_OF_RANGE),
        ("slba+nlb overflows u64", rw(opcode::IO_READ, 1, u64::MAX - 3, 8, t4k), status::LBA_OUT_OF_RANGE),
        ("slba huge", rw(opcode::IO_WRITE, 1, 1 << 40, 1, SglDescriptor::transport(512)), status::LBA_OUT_OF_RANGE),
        ("MDTS exceeded", rw(opcode::IO_READ, 1, 0, 512, SglDescriptor::transport(256 * 1024)), status::INVALID_FIELD),
        ("unknown nsid", rw(opcode::IO_READ, 3, 0, 8, t4k), status::INVALID_NAMESPACE),
        ("nsid 0", rw(opcode::IO_READ, 0, 0, 8, t4k), status::INVALID_NAMESPACE),
        (
            "SGL shorter than transfer",
            rw(opcode::IO_READ, 1, 0, 8, SglDescriptor::transport(2048)),
            status::SGL_DATA_LENGTH_INVALID,
        ),
        (
            "keyed SGL",
            rw(opcode::IO_READ, 1, 0, 8, SglDescriptor { id: 0x40, ..t4k }),
            status::SGL_DESCRIPTOR_TYPE_INVALID,
        ),
        (
            "segment SGL",
            rw(opcode::IO_WRITE, 1, 0, 8, SglDescriptor { id: 0x20, ..t4k }),
            status::SGL_DESCRIPTOR_TYPE_INVALID,
        ),
        (
            "transport wrong subtype",
            rw(opcode::IO_WRITE, 1, 0, 8, SglDescriptor { id: 0x50, ..t4k }),
            status::SGL_SUBTYPE_INVALID,
        ),
        (
            "in-capsule read",
            rw(opcode::IO_READ, 1, 0, 8, SglDescriptor::in_capsule(0, 4096)),
            status::SGL_DESCRIPTOR_TYPE_INVALID,
        ),
        (
            "in-capsule too big",
            rw(opcode::IO_WRITE, 1, 0, 32, SglDescriptor::in_capsule(0, 16384)),
            status::SGL_DATA_LENGTH_INVALID,
        ),
        (
            "in-capsule offset",
            rw(opcode::IO_WRITE, 1, 0, 8, SglDescriptor::in_capsule(64, 4096)),
            status::SGL_OFFSET_INVALID,
        ),
        ("PRP", Sqe { flags: 0, ..rw(opcode::IO_READ, 1, 0, 8, t4k) }, status::INVALID_FIELD),
        ("fused", Sqe { flags: PSDT_SGL_MPTR_CONTIG | 1, ..rw(opcode::IO_READ, 1, 0, 8, t4k) }, status::INVALID_FIELD),
        ("unknown opcode", Sqe { opcode: 0x05, ..rw(opcode::IO_READ, 1, 0, 8, t4k) }, status::INVALID_OPCODE),
        ("vendor opcode", Sqe { opcode: 0x81, ..rw(opcode::IO_READ, 1, 0, 8, t4k) }, status::INVALID_OPCODE),
        (
            "write zeroes unsupported",
            rw(opcode::IO_WRITE_ZEROES, 2, 0, 1, SglDescriptor::default()),
            status::INVALID_OPCODE,
        ),
        (
            "write zeroes past end",
            rw(opcode::IO_WRITE_ZEROES, 1, 999, 2, SglDescriptor::default()),
            status::LBA_OUT_OF_RANGE,
        ),
        (
            "DSM unsupported",
            Sqe { cdw10: 0, ..rw(opcode::IO_DSM, 2, 0, 1, SglDescriptor::transport(16)) },
            status::INVALID_OPCODE,
        ),
        (
            "DSM short data",
            Sqe { cdw10: 1, cdw11: 4, cdw12: 0, ..rw(opcode::IO_DSM, 1, 0, 1, SglDescriptor::in_capsule(0, 16)) },
            status::SGL_DATA_LENGTH_INVALID,
        ),
        ("flush unknown ns", rw(opcode::IO_FLUSH, 9, 0, 1, SglDescriptor::default()), status::INVALID_NAMESPACE),
    ];
    for (what, sqe, want) in cases {
        let e = err(&sqe);
        assert_eq!(e.status, want, "{what}");
        assert!(e.dnr, "{what}: DNR");
    }
}

#[test]
fn namespace_not_ready_is_retryable() {
    let mut t = table();
    t.get_mut(&1).unwrap().ready = false;
    let e = validate(&rw(opcode::IO_READ, 1, 0, 8, SglDescriptor::transport(4096)), &t, &LIM).unwrap_err();
    assert_eq!(e.status, status::NAMESPACE_NOT_READY);
    assert!(!e.dnr);
}

#[test]
fn unlimited_mdts() {
    let lim = IoLimits { mdts_bytes: None, icd_bytes: 0 };
    let r = validate(&rw(opcode::IO_READ, 1, 0, 1000, SglDescriptor::transport(512_000)), &table(), &lim);
    assert!(r.is_ok());
}

#[test]
fn flush_write_zeroes_dsm() {
    let t = table();
    assert_eq!(
        validate(&rw(opcode::IO_FLUSH, 1, 0, 1, SglDescriptor::default()), &t, &LIM),
        Ok(IoCmd::Flush { nsid: 1 })
    );
    assert_eq!(
        validate(&rw(opcode::IO_FLUSH, NSID_ALL, 0, 1, SglDescriptor::default()), &t, &LIM),
        Ok(IoCmd::Flush { nsid: NSID_ALL })
    );
    let mut wz = rw(opcode::IO_WRITE_ZEROES, 1, 0, 1000, SglDescriptor::transport(0));
    wz.cdw12 |= 1 << 25;
    assert_eq!(
        validate(&wz, &t, &LIM),
        Ok(IoCmd::WriteZeroes { nsid: 1, slba: 0, nlb: 1000, deallocate: true, fua: false, block_size: 512 })
    );
    let dsm =
        Sqe { cdw10: 1, cdw11: 1 << 2, cdw12: 0, ..rw(opcode::IO_DSM, 1, 0, 1, SglDescriptor::in_capsule(0, 32)) };
    assert_eq!(
        validate(&dsm, &t, &LIM),
        Ok(IoCmd::Dsm { nsid: 1, ranges: 2, deallocate: true, len: 32, data: DataLocation::InCapsule })
    );

    let mut data = vec![0u8; 32];
    data[4..8].copy_from_slice(&8u32.to_le_bytes());
    data[8..16].copy_from_slice(&100u64.to_le_bytes());
    data[20..24].copy_from_slice(&1u32.to_le_bytes());
    data[24..32].copy_from_slice(&999u64.to_le_bytes());
    let r = parse_dsm_ranges(&data, 2, 1000).unwrap();
    assert_eq!((r[0].slba, r[0].nlb, r[1].slba, r[1].nlb), (100, 8, 999, 1));
    assert_eq!(parse_dsm_ranges(&data, 2, 999).unwrap_err().status, status::LBA_OUT_OF_RANGE);
    assert_eq!(parse_dsm_ranges(&data, 3, 1000).unwrap_err().status, status::SGL_DATA_LENGTH_INVALID);
    data[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(parse_dsm_ranges(&data, 2, 1000).unwrap_err().status, status::LBA_OUT_OF_RANGE);
}

#[test]
fn io_queue_tracks_namespace_changes_and_controller_state() {
    let t = target();
    let mut c = connect_admin(&t, Instant::now());
    enable(&mut c);
    let mut q = connect_io(&t, c.cntlid(), 1, 127).unwrap();
    let read5 = rw(opcode::IO_READ, 5, 0, 1, SglDescriptor::transport(512));
    assert_eq!(q.validate(&read5).unwrap_err().status, status::INVALID_NAMESPACE);
    t.add_namespace(SUB, ns(5, 64, 512)).unwrap();
    assert!(q.validate(&read5).is_ok());
    assert_eq!(q.namespace(5).unwrap().blocks, 64);
    t.resize_namespace(SUB, 5, 16).unwrap();
    let past = rw(opcode::IO_READ, 5, 16, 1, SglDescriptor::transport(512));
    assert_eq!(q.validate(&past).unwrap_err().status, status::LBA_OUT_OF_RANGE);
    t.set_namespace_ready(SUB, 5, false).unwrap();
    assert_eq!(q.validate(&read5).unwrap_err().status, status::NAMESPACE_NOT_READY);

    let cqe = q.completion(9, Err(CmdError::INVALID_FIELD));
    assert_eq!((cqe.cid, cqe.sqid, cqe.status(), cqe.dnr()), (9, 1, status::INVALID_FIELD, true));

    // Fabrics on an I/O queue: Disconnect honoured, Property Get refused.
    let d = fabrics(fctype::DISCONNECT, 3);
    assert!(matches!(q.handle_fabrics(&d), IoFabricsOutcome::Disconnect(c) if c.status == 0 && c.sqid == 1));
    let IoFabricsOutcome::Complete(cqe) = q.handle_fabrics(&fabrics(fctype::PROPERTY_GET, 4)) else { panic!() };
    assert_eq!(cqe.status(), status::INVALID_OPCODE);

    // Controller reset: the queue fails commands and reports not live.
    admin_cmd(&mut c, &prop_set(0x14, 0));
    assert!(!q.controller_live());
    let read1 = rw(opcode::IO_READ, 1, 0, 1, SglDescriptor::transport(512));
    assert_eq!(q.validate(&read1).unwrap_err().status, status::COMMAND_SEQUENCE_ERROR);
}
