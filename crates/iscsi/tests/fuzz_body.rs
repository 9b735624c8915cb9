//! Runs the cargo-fuzz bodies on stable over pseudo-random inputs, many of them mutations of valid
//! streams so they get past the first checks.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;
use common::*;
use ff_iscsi::Digests;
use ff_iscsi::fuzzing;
use ff_iscsi::pdu::{Pdu, Stage};
use ff_testkit::XorShift;

fn login_stream() -> Vec<u8> {
    let mut v = wire(
        Pdu::LoginRequest(login_req(Stage::Security, Stage::Operational, true, 1, 0)),
        &[],
        &text(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", "iqn.2026-01.org.ferrofabric:open"),
            ("AuthMethod", "None"),
        ]),
        Digests::default(),
    );
    v.extend(wire(
        Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 1)),
        &[],
        &text(&[("InitialR2T", "No"), ("MaxBurstLength", "8192")]),
        Digests::default(),
    ));
    let mut ini = Ini::new(Digests::default());
    v.extend(ini.cmd(1, false, true, 1024, false, &[1; 512]));
    v.extend(ini.data_out(1, u32::MAX, 0, 512, true, &[2; 512]));
    v.extend(ini.cmd(2, true, false, 1024, true, &[]));
    v
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=(rng.next_u64() % 8) {
        if v.is_empty() {
            break;
        }
        let at = (rng.next_u64() as usize) % v.len();
        match rng.next_u64() % 3 {
            0 => v[at] ^= 1 << (rng.next_u64() % 8),
            1 => v[at] = rng.next_u64() as u8,
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn fuzz_bodies_on_stable() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let seed = login_stream();
    for i in 0..1500 {
        let input: Vec<u8> = if i % 2 == 0 {
            let mut v = vec![(rng.next_u64() % 64) as u8];
            v.extend(mutate(&mut rng, &seed));
            v
        } else {
            (0..(rng.next_u64() % 600)).map(|_| rng.next_u64() as u8).collect()
        };
        fuzzing::pdu_decode(&input);
        let _ = fuzzing::login(&input);
    }
    // The unmutated stream logs in and runs both commands.
    let mut v = vec![255];
    v.extend(&seed);
    assert_eq!(fuzzing::login(&v), 2);
}

/// Found by cargo-fuzz: a Reject whose (reserved) ITT field was not FFFFFFFFh tripped the re-encode
/// oracle; the field is ignored on receipt, so the oracle must not compare it.
#[test]
fn reject_with_a_zero_itt_field() {
    ff_iscsi::fuzzing::pdu_decode(&[
        0x02, 0x3f, 0x30, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5c, 0x30, 0xff, 0xff, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x5c, 0x5c, 0x5c, 0x5c, 0x5c, 0x01, 0x21, 0x06, 0x7a, 0x0a, 0x00, 0x01, 0x01, 0x00, 0x31,
        0x01, 0x5d, 0x00, 0x00, 0x5c, 0x5c, 0x5c, 0x5b, 0x00, 0x00, 0x5c, 0x5c, 0x0a, 0x00, 0x00, 0x00, 0x0a,
    ]);
}
