//! Runs the cargo-fuzz body on stable over a few thousand pseudo-random
//! inputs, half of them mutations of valid PDUs so they get past validation.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use ff_nvme::nvme::{SglDescriptor, Sqe};
use ff_nvme_tcp::fuzzing::pdu_decode;
use ff_nvme_tcp::*;

use ff_testkit::XorShift;

fn seeds(f: &Framing) -> Vec<Vec<u8>> {
    let pdus: [(Pdu, &[u8]); 6] = [
        (
            Pdu::CapsuleCmd(CapsuleCmd {
                sqe: Sqe { cid: 1, dptr: SglDescriptor::in_capsule(0, 5), ..Sqe::default() },
            }),
            b"hello",
        ),
        (Pdu::H2CData(H2CData { cccid: 1, ttag: 2, datao: 0, datal: 3, last: true }), b"abc"),
        (Pdu::C2HData(C2HData { cccid: 1, datao: 0, datal: 3, last: true, success: true }), b"xyz"),
        (Pdu::R2T(R2T { cccid: 1, ttag: 2, r2to: 0, r2tl: 4096 }), b""),
        (Pdu::CapsuleResp(CapsuleResp::default()), b""),
        (Pdu::C2HTermReq(TermReq { fes: 1, fei: 2 }), b"12345678"),
    ];
    pdus.iter()
        .map(|(p, d)| {
            let mut b = vec![0u8; 512];
            let n = p.encode_with_data(f, d, &mut b).unwrap();
            b.truncate(n);
            b
        })
        .collect()
}

#[test]
fn fuzz_body_on_pseudo_random_inputs() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..4000 {
        let knobs = rng.next_u64() as u8;
        let f = Framing { hdgst: knobs & 1 != 0, ddgst: knobs & 2 != 0, pda: (knobs >> 2) & 3 };
        let mut input = vec![knobs];
        if i % 2 == 0 {
            let len = rng.below(400);
            input.extend((0..len).map(|_| rng.next_u64() as u8));
        } else {
            let s = seeds(&f);
            for _ in 0..=rng.below(4) {
                input.extend_from_slice(&s[rng.below(s.len())]);
            }
            for _ in 0..rng.below(4) {
                let at = 1 + rng.below(input.len() - 1);
                input[at] ^= rng.next_u64() as u8;
            }
            input.truncate(1 + rng.below(input.len()));
        }
        pdu_decode(&input);
    }
}
