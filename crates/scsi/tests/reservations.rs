//! Reservations through `execute_with_reservations`, as a transport drives
//! them: two I_T nexuses on one LU, replaying the flows of libiscsi's
//! PRIN/PROUT and RESERVE6 tests, plus the data phase PERSISTENT RESERVE
//! OUT implies.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
use common::*;
use ff_scsi::{
    DataDir, ItNexus, LogicalUnit, Outcome, Reply, Reservations, Status, Transfer, execute_with_reservations, transfer,
};

fn it(i: u8) -> ItNexus {
    ItNexus::iscsi("iqn.2024-01.org.example:init", [0x40, 0, 0, 0, 0, i], 1)
}

fn cmd(r: &mut Reservations, lu: &LogicalUnit, cdb: &[u8], out: &[u8], n: &ItNexus) -> Reply {
    execute_with_reservations(cdb, lu, &nexus(), out, r, n)
}

fn prin(action: u8, alloc: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x5E;
    c[1] = action;
    c[7..9].copy_from_slice(&alloc.to_be_bytes());
    c
}

fn prout(action: u8, ty: u8, len: u32) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x5F;
    c[1] = action;
    c[2] = ty;
    c[5..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn list(key: u64, sa_key: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

fn good(r: Reply) {
    assert!(matches!(r, Reply::Outcome(Outcome::Good | Outcome::Data(_))), "{r:?}");
}

fn keys(r: &mut Reservations, n: &ItNexus) -> (u32, Vec<u64>) {
    let Reply::Outcome(Outcome::Data(d)) = cmd(r, &lu(), &prin(0, 16384), &[], n) else { panic!() };
    let len = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as usize;
    assert_eq!(len, d.len() - 8);
    let k = d[8..].chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
    (u32::from_be_bytes([d[0], d[1], d[2], d[3]]), k)
}

const READ: [u8; 10] = [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0];
const WRITE: [u8; 10] = [0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0];
const MODE_SENSE: [u8; 6] = [0x1A, 0, 0x3F, 0, 255, 0];

#[test]
fn prout_data_phase_and_plain_execute() {
    let c = prout(6, 0, 24);
    assert_eq!(transfer(&c, &lu()), Transfer { dir: DataDir::FromInitiator, len: 24, exact: true });
    assert_eq!(transfer(&prin(0, 100), &lu()), Transfer { dir: DataDir::ToInitiator, len: 100, exact: false });
    assert_eq!(transfer(&[0x16, 0, 0, 0, 0, 0], &lu()), Transfer::NONE);
    // Without reservation state the commands stay unsupported.
    for c in [&prin(0, 100)[..], &c, &[0x16, 0, 0, 0, 0, 0], &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]] {
        assert_eq!(code(run(c, &lu())), INVALID_OPCODE);
    }
}

#[test]
fn libiscsi_register_and_read_keys() {
    let mut r = Reservations::new();
    let a = it(1);
    // Suite setup: PRIN READ KEYS must answer, at least 8 bytes.
    assert_eq!(keys(&mut r, &a), (0, vec![]));
    good(cmd(&mut r, &lu(), &prout(6, 0, 24), &list(0, 0xABCD), &a));
    assert_eq!(keys(&mut r, &a), (1, vec![0xABCD]));
    // Re-register without the key: RESERVATION CONFLICT, no sense.
    let c = cmd(&mut r, &lu(), &prout(0, 0, 24), &list(0, 0xABCE), &a);
    assert_eq!((c.clone(), c.status()), (Reply::ReservationConflict, Status::ReservationConflict));
    assert_eq!(Status::ReservationConflict as u8, 0x18);
    // Truncated READ KEYS keeps the full ADDITIONAL LENGTH.
    let Reply::Outcome(Outcome::Data(d)) = cmd(&mut r, &lu(), &prin(0, 8), &[], &a) else { panic!() };
    assert_eq!(d, vec![0, 0, 0, 1, 0, 0, 0, 8]);
    good(cmd(&mut r, &lu(), &prout(0, 0, 24), &list(0xABCD, 0), &a));
    assert_eq!(keys(&mut r, &a), (2, vec![]));
    // Service action range: 0..=3 good, 4..0x1F invalid field.
    for sa in 0..0x20u8 {
        let rep = cmd(&mut r, &lu(), &prin(sa, 16384), &[], &a);
        assert_eq!(rep.status() == Status::Good, sa < 4, "{sa}");
    }
    // A parameter list length other than 24, whatever the data-out.
    let rep = cmd(&mut r, &lu(), &prout(6, 0, 32), &[0; 32], &a);
    assert_eq!(
        code(match rep {
            Reply::Outcome(o) => o,
            Reply::ReservationConflict => panic!(),
        }),
        (0x05, 0x1A, 0x00)
    );
    let rep = cmd(&mut r, &lu(), &prout(6, 0, 24), &[0; 10], &a);
    assert_eq!(rep.status(), Status::CheckCondition);
}

#[test]
fn libiscsi_reserve_access_write_exclusive() {
    let (mut r, lu) = (Reservations::new(), lu());
    let (a, b) = (it(1), it(2));
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 1), &a));
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 2), &b));
    good(cmd(&mut r, &lu, &prout(1, 1, 24), &list(1, 0), &a));
    let Reply::Outcome(Outcome::Data(d)) = cmd(&mut r, &lu, &prin(1, 100), &[], &b) else { panic!() };
    assert_eq!((&d[8..16], d[21]), (&1u64.to_be_bytes()[..], 1));
    assert!(matches!(cmd(&mut r, &lu, &READ, &[], &a), Reply::Outcome(Outcome::Block(_))));
    assert!(matches!(cmd(&mut r, &lu, &WRITE, &[0; 512], &a), Reply::Outcome(Outcome::Block(_))));
    assert!(matches!(cmd(&mut r, &lu, &READ, &[], &b), Reply::Outcome(Outcome::Block(_))));
    assert_eq!(cmd(&mut r, &lu, &WRITE, &[0; 512], &b), Reply::ReservationConflict);
    assert_eq!(cmd(&mut r, &lu, &MODE_SENSE, &[], &b), Reply::ReservationConflict);
    good(cmd(&mut r, &lu, &[0x12, 0, 0, 0, 96, 0], &[], &b));
    // A malformed CDB is a CHECK CONDITION before any conflict.
    assert_eq!(cmd(&mut r, &lu, &[0x2A, 0xE0, 0, 0, 0, 0, 0, 0, 1, 0], &[], &b).status(), Status::CheckCondition);
    // The other nexus cannot release it; the holder can.
    good(cmd(&mut r, &lu, &prout(2, 1, 24), &list(2, 0), &b));
    assert_eq!(cmd(&mut r, &lu, &WRITE, &[0; 512], &b), Reply::ReservationConflict);
    good(cmd(&mut r, &lu, &prout(2, 1, 24), &list(1, 0), &a));
    assert!(matches!(cmd(&mut r, &lu, &WRITE, &[0; 512], &b), Reply::Outcome(Outcome::Block(_))));
}

#[test]
fn libiscsi_reserve6_two_initiators() {
    let (mut r, lu) = (Reservations::new(), lu());
    let (a, b) = (it(1), it(2));
    let (reserve, release) = ([0x16, 0, 0, 0, 0, 0], [0x17, 0, 0, 0, 0, 0]);
    good(cmd(&mut r, &lu, &reserve, &[], &a));
    good(cmd(&mut r, &lu, &reserve, &[], &a));
    assert_eq!(cmd(&mut r, &lu, &reserve, &[], &b), Reply::ReservationConflict);
    good(cmd(&mut r, &lu, &release, &[], &b));
    good(cmd(&mut r, &lu, &MODE_SENSE, &[], &a));
    assert_eq!(cmd(&mut r, &lu, &MODE_SENSE, &[], &b), Reply::ReservationConflict);
    assert_eq!(cmd(&mut r, &lu, &reserve, &[], &b), Reply::ReservationConflict);
    good(cmd(&mut r, &lu, &release, &[], &a));
    good(cmd(&mut r, &lu, &reserve, &[], &b));
    // Session loss (libiscsi's itnexus_loss and logout tests) releases it.
    r.nexus_lost(&b);
    good(cmd(&mut r, &lu, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], &a));
    // LUN reset too.
    r.reset();
    good(cmd(&mut r, &lu, &reserve, &[], &b));
    // Third-party and extent reservations are refused.
    assert_eq!(cmd(&mut r, &lu, &[0x16, 0x10, 0, 0, 0, 0], &[], &b).status(), Status::CheckCondition);
    assert_eq!(cmd(&mut r, &lu, &[0x16, 0x01, 0, 0, 0, 0], &[], &b).status(), Status::CheckCondition);
}

#[test]
fn report_supported_opcodes_lists_what_the_reservation_path_runs() {
    let mut r = Reservations::new();
    let a = it(1);
    let rsoc = |opts: u8, op: u8, sa: u16| {
        let mut c = [0u8; 12];
        c[0] = 0xA3;
        c[1] = 0x0C;
        c[2] = opts;
        c[3] = op;
        c[4..6].copy_from_slice(&sa.to_be_bytes());
        c[6..10].copy_from_slice(&65535u32.to_be_bytes());
        c
    };
    let Reply::Outcome(Outcome::Data(all)) = cmd(&mut r, &thin(), &rsoc(0, 0, 0), &[], &a) else { panic!() };
    let mut seen = Vec::new();
    for d in all[4..].chunks(8) {
        let (op, sa, servactv) = (d[0], u16::from_be_bytes([d[2], d[3]]), d[5] & 1 != 0);
        seen.push((op, sa));
        let len = u16::from_be_bytes([d[6], d[7]]) as usize;
        let mut cdb = vec![0u8; len];
        cdb[0] = op;
        if servactv {
            cdb[1] = sa as u8;
        }
        // Each listed CDB, zero but for its opcode and action, is not an
        // invalid opcode (REGISTER with an empty list is a length error).
        if let Reply::Outcome(Outcome::Check(s)) = cmd(&mut r, &thin(), &cdb, &[], &a) {
            assert_ne!(s.asc, 0x20, "{op:02x}/{sa}");
        }
    }
    for want in [(0x16, 0), (0x17, 0), (0x56, 0), (0x57, 0), (0x5E, 3), (0x5F, 6), (0x9E, 0x12), (0x37, 0)] {
        assert!(seen.contains(&want), "{want:02x?}");
    }
    assert!(!seen.contains(&(0x5F, 7)));
}

#[test]
fn libiscsi_preempt_with_unit_attentions() {
    let (mut r, lu) = (Reservations::new(), lu());
    let (a, b) = (it(1), it(2));
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 0x11), &a));
    good(cmd(&mut r, &lu, &prout(3, 0, 24), &list(0x11, 0), &a));
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 0x11), &a));
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 0x22), &b));
    let (generation, k) = keys(&mut r, &a);
    assert_eq!(k.len(), 2);
    good(cmd(&mut r, &lu, &prout(4, 3, 24), &list(0x22, 0x11), &b));
    // The preempted nexus: INQUIRY passes, the next TUR reports the
    // attention once (libiscsi's tur_until_good), then GOOD.
    good(cmd(&mut r, &lu, &[0x12, 0, 0, 0, 36, 0], &[], &a));
    let Reply::Outcome(Outcome::Check(s)) = cmd(&mut r, &lu, &[0; 6], &[], &a) else { panic!() };
    assert_eq!((s.key as u8, s.asc, s.ascq), (0x06, 0x2A, 0x05));
    assert_eq!(cmd(&mut r, &lu, &[0; 6], &[], &a), Reply::Outcome(Outcome::Good));
    good(cmd(&mut r, &lu, &[0; 6], &[], &b));
    assert_eq!(keys(&mut r, &a), (generation + 1, vec![0x22]));
    // REQUEST SENSE returns a pending attention as its data.
    good(cmd(&mut r, &lu, &prout(6, 0, 24), &list(0, 0x11), &a));
    good(cmd(&mut r, &lu, &prout(3, 0, 24), &list(0x11, 0), &a));
    let Reply::Outcome(Outcome::Data(d)) = cmd(&mut r, &lu, &[0x03, 0, 0, 0, 18, 0], &[], &b) else { panic!() };
    assert_eq!((d[2], d[12], d[13]), (0x06, 0x2A, 0x03));
    let Reply::Outcome(Outcome::Data(d)) = cmd(&mut r, &lu, &[0x03, 0, 0, 0, 18, 0], &[], &b) else { panic!() };
    assert_eq!((d[2], d[12]), (0, 0));
}
