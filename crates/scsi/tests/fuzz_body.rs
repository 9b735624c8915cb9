//! Runs the cargo-fuzz body on stable over pseudo-random inputs, most of
//! them starting from valid CDBs so they get past decoding.
#![allow(clippy::indexing_slicing)]

use ff_scsi::fuzzing::execute_cdb;

/// xorshift64: deterministic, dependency-free.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

const SEEDS: [&[u8]; 16] = [
    &[0x12, 0x01, 0x83, 0x01, 0x00, 0x00],
    &[0x1A, 0x00, 0x3F, 0x00, 0xFF, 0x00],
    &[0x5A, 0x18, 0x3F, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00],
    &[0x28, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x08, 0x00],
    &[0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0],
    &[0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0],
    &[0x42, 0x00, 0, 0, 0, 0, 0, 0x00, 0x18, 0x00],
    &[0x89, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0],
    &[0xA3, 0x0C, 0x82, 0x2A, 0, 0, 0, 0, 1, 0, 0, 0],
    &[0xA0, 0x00, 0x00, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    &[0x35, 0x02, 0, 0, 0, 0, 0, 0, 0, 0],
    &[0x5E, 0x03, 0, 0, 0, 0, 0, 0x10, 0, 0],
    &[0x5F, 0x01, 0x03, 0, 0, 0, 0, 0, 24, 0],
    &[0x16, 0, 0, 0, 0, 0],
    &[0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0],
];

#[test]
fn fuzz_body_on_pseudo_random_inputs() {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let unmap_list = [0u8, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0];
    for i in 0..20_000 {
        let mut input = vec![next(&mut s) as u8];
        let seed = SEEDS[i % SEEDS.len()];
        let mut cdb = [0u8; 16];
        cdb[..seed.len()].copy_from_slice(seed);
        // Mutate a few CDB bytes (never on every round: plain seeds must pass too).
        for _ in 0..(next(&mut s) % 4) {
            let at = (next(&mut s) % 16) as usize;
            cdb[at] ^= next(&mut s) as u8;
        }
        input.extend_from_slice(&cdb);
        if i % 3 == 0 {
            input.extend_from_slice(&unmap_list);
        } else {
            let n = (next(&mut s) % 64) as usize;
            input.extend((0..n).map(|_| next(&mut s) as u8));
        }
        execute_cdb(&input);
    }
    execute_cdb(&[]);
    execute_cdb(&[0xFF]);
}

#[test]
fn reservation_sequences_keep_their_invariants() {
    let mut s = 0xD1B5_4A32_D192_ED03u64;
    for _ in 0..5_000 {
        let n = (next(&mut s) % 80) as usize;
        let input: Vec<u8> = (0..n).map(|_| next(&mut s) as u8).collect();
        ff_scsi::fuzzing::reservation_sequence(&input);
    }
    ff_scsi::fuzzing::reservation_sequence(&[]);
}
