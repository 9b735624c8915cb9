//! The shared fuzz bodies: [`execute_cdb`] for a cargo-fuzz target
//! `scsi_command`, [`reservation_sequence`] for one still to be added next
//! to it, and the stable `fuzz_body` test that runs both over
//! pseudo-random inputs.
//!
//! It panics only when an invariant breaks (that is the fuzz oracle):
//! responses longer than the allocation length or than [`crate::transfer`]
//! announced, block operations outside the LU, parsed UNMAP ranges outside
//! the LU, or sense data with a missing field pointer for a CDB field error.

#![allow(clippy::panic, reason = "panicking on a broken invariant is the fuzz oracle")]

use crate::block::BlockOp;
use crate::cdb::DataDir;
use crate::lu::LogicalUnit;
use crate::reservations::{ItNexus, Reservations};
use crate::{Nexus, Outcome, Reply, execute, execute_no_lun, execute_with_reservations, transfer, unmap};

/// Feeds `data` as knobs (LU shape), a CDB and an UNMAP parameter list.
/// Byte 0 picks block size, thin, read-only and cache; the next 16 bytes
/// are the CDB; the rest is parameter data.
pub fn execute_cdb(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let mut lu = LogicalUnit::new(if knobs & 1 != 0 { 4096 } else { 512 }, 1, "FUZZ", [0x60; 16]);
    lu.thin = knobs & 0x02 != 0;
    lu.read_only = knobs & 0x04 != 0;
    lu.write_cache = knobs & 0x08 != 0;
    lu.lbppbe = (knobs >> 4) & 0x03;
    lu.num_blocks = match knobs >> 6 {
        0 => 1,
        1 => 2048,
        2 => u64::from(u32::MAX) + 7,
        _ => 1 << 40,
    };
    lu.max_unmap_descriptors = 4;
    lu.max_unmap_blocks = 4096;
    assert!(lu.validate().is_ok(), "fuzz LU invalid");
    let (cdb, params) = rest.split_at(rest.len().min(16));
    let luns = [0u16, 1, 300];
    let nexus = Nexus { luns: &luns, port_designators: &[0x51, 0x94, 0, 4, 0, 0, 0, 1], pending_sense: None };
    let t = transfer(cdb, &lu);
    let out = execute(cdb, &lu, &nexus);
    match &out {
        Outcome::Data(d) => {
            assert_eq!(t.dir, DataDir::ToInitiator, "data for a CDB without data-in: {cdb:02x?}");
            assert!(d.len() as u64 <= t.len, "{} bytes over the {} announced", d.len(), t.len);
        }
        Outcome::Block(op) => check_op(op, &lu, t.len, params),
        Outcome::Good | Outcome::Check(_) => {}
    }
    if let Outcome::Check(s) = &out
        && s.asc == 0x24
    {
        assert!(s.field.is_some_and(|f| f.in_cdb), "INVALID FIELD IN CDB without a pointer");
    }
    // The same CDB through the reservation path, with the parameter bytes
    // as data-out, from a nexus that registered and one that did not.
    let mut res = Reservations::new();
    let (a, b) = (it_nexus(0), it_nexus(1));
    let _ = res.persistent_reserve_out(6, 0, 0, &register_list(0x1234), &a);
    if knobs & 0x10 != 0 {
        let _ = res.persistent_reserve_out(1, 0, (knobs >> 5) + 1, &register_list_key(0x1234), &a);
    }
    for n in [&a, &b] {
        match execute_with_reservations(cdb, &lu, &nexus, params, &mut res, n) {
            Reply::Outcome(Outcome::Data(d)) => {
                assert!(d.len() as u64 <= t.len, "{} bytes over the {} announced", d.len(), t.len);
            }
            Reply::Outcome(Outcome::Block(op)) => check_op(&op, &lu, t.len, params),
            _ => {}
        }
        check_state(&res);
    }
    if let Outcome::Data(d) = execute_no_lun(cdb, &nexus) {
        assert!(d.len() as u64 <= t.len.max(8), "no-LUN reply over the allocation length");
    }
    // Whatever the command, the parameter list parser must hold up too.
    if let Ok(ranges) = unmap::parse(params, &lu) {
        for r in ranges {
            assert!(r.blocks > 0 && r.lba + u64::from(r.blocks) <= lu.num_blocks, "range outside the LU");
        }
    }
}

fn check_op(op: &BlockOp, lu: &LogicalUnit, announced: u64, params: &[u8]) {
    let inside = |lba: u64, n: u64| n > 0 && lba.checked_add(n).is_some_and(|e| e <= lu.num_blocks);
    let bs = lu.block_size;
    let moved = op.data_in_len(bs) + op.data_out_len(bs);
    assert_eq!(moved, announced, "transfer() disagrees with the operation {op:?}");
    match *op {
        BlockOp::Read { lba, blocks, .. }
        | BlockOp::Write { lba, blocks, .. }
        | BlockOp::Verify { lba, blocks, .. }
        | BlockOp::CompareAndWrite { lba, blocks, .. } => {
            assert!(inside(lba, u64::from(blocks)), "{op:?} outside the LU");
        }
        BlockOp::WriteSame(ws) => {
            assert!(inside(ws.lba, ws.blocks), "{op:?} outside the LU");
            let _ = ws.plan(params, lu);
        }
        BlockOp::Flush { lba, blocks, .. } => {
            assert!(lba.checked_add(blocks).is_some_and(|e| e <= lu.num_blocks), "flush outside");
        }
        BlockOp::Unmap { param_len } => assert!(param_len >= 8 && lu.thin && !lu.read_only),
    }
}

fn it_nexus(i: u8) -> ItNexus {
    ItNexus::iscsi("iqn.2024-01.fuzz:init", [0x40, 0, 0, 0, 0, i], 1)
}

fn register_list(sa_key: u64) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

fn register_list_key(key: u64) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p
}

/// Invariants of the reservation state: a persistent reservation has a
/// registered holder (any registrant for all-registrants types), no key is
/// zero, no nexus is registered twice, and the PERSISTENT RESERVE IN
/// answers agree with it.
fn check_state(r: &Reservations) {
    let regs: Vec<_> = r.registrations().collect();
    for (i, (n, k)) in regs.iter().enumerate() {
        assert_ne!(*k, 0, "registered with key 0");
        assert!(regs.iter().skip(i + 1).all(|(m, _)| m != n), "nexus registered twice");
    }
    if let Some(res) = r.reservation() {
        let ok = if res.pr_type.all_registrants() { !regs.is_empty() } else { r.key_of(&res.holder).is_some() };
        assert!(ok, "reservation without a registered holder: {res:?}");
    }
    let keys = r.read_keys();
    assert_eq!(keys.len(), 8 + 8 * regs.len());
    let full = r.read_full_status();
    let len = u32::from_be_bytes([full[4], full[5], full[6], full[7]]) as usize;
    assert_eq!(len, full.len() - 8, "READ FULL STATUS length");
    let rr = r.read_reservation();
    assert_eq!(rr.len(), if r.reservation().is_some() { 24 } else { 8 });
}

/// Feeds `data` as a sequence of reservation commands from three I_T
/// nexuses: each step is one byte of nexus and action, one of CDB byte 2
/// (scope and type), one of flags, and a byte choosing keys from a small
/// set so they collide. After every step the state must keep
/// [`check_state`]'s invariants, and PRgeneration never moves on a failed
/// command.
pub fn reservation_sequence(data: &[u8]) {
    let mut r = Reservations::new();
    let nexuses = [it_nexus(0), it_nexus(1), it_nexus(2)];
    const KEYS: [u64; 4] = [0, 1, 2, 0xFFFF_FFFF_FFFF_FFFF];
    for step in data.chunks(4) {
        let [sel, b2, flags, keys] = [0, 1, 2, 3].map(|i| step.get(i).copied().unwrap_or(0));
        let n = &nexuses[usize::from(sel >> 6) % 3];
        let action = sel & 0x0F;
        let mut p = [0u8; 24];
        p[..8].copy_from_slice(&KEYS[usize::from(keys & 3)].to_be_bytes());
        p[8..16].copy_from_slice(&KEYS[usize::from((keys >> 2) & 3)].to_be_bytes());
        // Mostly valid lists: unsupported flags and short lists now and then.
        p[20] = if flags & 0x80 != 0 { flags & 0x0D } else { 0 };
        let len = if keys & 0xC0 == 0xC0 { 16 } else { 24 };
        let before = r.clone();
        let reply = match sel & 0x30 {
            0x00 | 0x10 => r.persistent_reserve_out(action, b2 >> 4 & 1, b2 & 0x0F, &p[..len], n),
            0x20 => r.persistent_reserve_in(action & 3, u16::from(b2)),
            _ if action & 1 == 0 => r.reserve(n),
            _ => r.release(n),
        };
        if !matches!(reply, Reply::Outcome(Outcome::Good | Outcome::Data(_))) {
            assert_eq!(r.generation(), before.generation(), "failed command moved PRgeneration");
            assert_eq!(r.registrations().count(), before.registrations().count());
        }
        if sel & 0x0F == 0x0F {
            r.nexus_lost(n);
        }
        check_state(&r);
    }
}
