//! Property tests: encode/decode round trips, chunking independence of the
//! incremental decoder, and no panics on arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::{receiver_for, run, run_in_place};
use ff_nvme::nvme::{CQE_LEN, Cqe, SQE_LEN, SglDescriptor, Sqe};
use ff_nvme_tcp::pdu::{IcReq, IcResp};
use ff_nvme_tcp::*;
use proptest::prelude::*;

fn arb_sqe() -> impl Strategy<Value = Sqe> {
    (
        (any::<u8>(), any::<u8>(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>()),
        (any::<u64>(), any::<u32>(), any::<u8>()),
        any::<[u32; 6]>(),
    )
        .prop_map(|((opcode, flags, cid, nsid, cdw2, cdw3, mptr), (address, length, id), c)| Sqe {
            opcode,
            flags,
            cid,
            nsid,
            cdw2,
            cdw3,
            mptr,
            dptr: SglDescriptor { address, length, id },
            cdw10: c[0],
            cdw11: c[1],
            cdw12: c[2],
            cdw13: c[3],
            cdw14: c[4],
            cdw15: c[5],
        })
}

fn arb_cqe() -> impl Strategy<Value = Cqe> {
    (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>())
        .prop_map(|(dw0, dw1, sqhd, sqid, cid, status)| Cqe { dw0, dw1, sqhd, sqid, cid, status })
}

fn data(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), min..=max)
}

/// PDUs a target receives (after ICReq), with their data.
fn to_target() -> impl Strategy<Value = (Pdu, Vec<u8>)> {
    prop_oneof![
        (arb_sqe(), data(0, 300)).prop_map(|(sqe, d)| (Pdu::CapsuleCmd(CapsuleCmd { sqe }), d)),
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<bool>(), data(1, 300)).prop_map(
            |(cccid, ttag, datao, last, d)| {
                let datal = d.len() as u32;
                (Pdu::H2CData(H2CData { cccid, ttag, datao, datal, last }), d)
            }
        ),
    ]
}

/// PDUs a host receives (after ICResp), with their data.
fn to_host() -> impl Strategy<Value = (Pdu, Vec<u8>)> {
    prop_oneof![
        arb_cqe().prop_map(|cqe| (Pdu::CapsuleResp(CapsuleResp { cqe }), vec![])),
        (any::<u16>(), any::<u16>(), any::<u32>(), 1u32..)
            .prop_map(|(cccid, ttag, r2to, r2tl)| (Pdu::R2T(R2T { cccid, ttag, r2to, r2tl }), vec![])),
        (any::<u16>(), any::<u32>(), any::<bool>(), any::<bool>(), data(1, 300)).prop_map(
            |(cccid, datao, last, success, d)| {
                let datal = d.len() as u32;
                let last = last || success;
                (Pdu::C2HData(C2HData { cccid, datao, datal, last, success }), d)
            }
        ),
    ]
}

fn digests() -> impl Strategy<Value = Digests> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| Digests { header, data })
}

fn term() -> impl Strategy<Value = (TermReq, Vec<u8>)> {
    (any::<u16>(), any::<u32>(), data(0, 128)).prop_map(|(fes, fei, d)| (TermReq { fes, fei }, d))
}

fn any_pdu() -> impl Strategy<Value = (Pdu, Vec<u8>)> {
    prop_oneof![
        to_target(),
        to_host(),
        term().prop_map(|(t, d)| (Pdu::H2CTermReq(t), d)),
        term().prop_map(|(t, d)| (Pdu::C2HTermReq(t), d)),
        (any::<u16>(), 0u8..=31, digests(), any::<u32>())
            .prop_map(|(_, hpda, dgst, maxr2t)| (Pdu::IcReq(IcReq { pfv: 0, hpda, dgst, maxr2t }), vec![])),
        (0u8..=31, digests(), 1024u32..=(1 << 20))
            .prop_map(|(cpda, dgst, m)| (Pdu::IcResp(IcResp { pfv: 0, cpda, dgst, maxh2cdata: m * 4 }), vec![])),
    ]
}

fn encode(pdu: &Pdu, f: &Framing, d: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512 + d.len()];
    let n = pdu.encode_with_data(f, d, &mut b).unwrap();
    b.truncate(n);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sqe_cqe_round_trip(sqe in arb_sqe(), cqe in arb_cqe()) {
        let mut b = [0u8; SQE_LEN];
        sqe.encode(&mut b);
        prop_assert_eq!(Sqe::decode(&b), sqe);
        let mut c = [0u8; CQE_LEN];
        cqe.encode(&mut c);
        prop_assert_eq!(Cqe::decode(&c), cqe);
    }

    #[test]
    fn pdu_round_trip((pdu, d) in any_pdu(), dg in digests(), pda in 0u8..=31, chunk in 1usize..200) {
        let f = Framing { hdgst: dg.header, ddgst: dg.data, pda };
        let bytes = encode(&pdu, &f, &d);
        let mut dec = receiver_for(&pdu, dg, pda);
        let got = run(&mut dec, &bytes, &[chunk]);
        prop_assert_eq!(got, vec![Ok((pdu, d))]);
    }

    #[test]
    fn chunking_does_not_matter(
        to_tgt in any::<bool>(),
        tpdus in prop::collection::vec(to_target(), 1..8),
        hpdus in prop::collection::vec(to_host(), 1..8),
        dg in digests(),
        pda in 0u8..=31,
        chunks in prop::collection::vec(1usize..300, 1..16),
    ) {
        let pdus = if to_tgt { tpdus } else { hpdus };
        let f = Framing { hdgst: dg.header, ddgst: dg.data, pda };
        let stream: Vec<u8> = pdus.iter().flat_map(|(p, d)| encode(p, &f, d)).collect();
        let expect: Vec<_> = pdus.into_iter().map(Ok).collect();
        let first = &expect[0].as_ref().unwrap().0;
        let whole = run(&mut receiver_for(first, dg, pda), &stream, &[usize::MAX]);
        prop_assert_eq!(&whole, &expect);
        let chunked = run(&mut receiver_for(first, dg, pda), &stream, &chunks);
        prop_assert_eq!(&chunked, &expect);
        // Decoding in place: headers whole in one slice, split across slices, or after a common
        // header that came alone all end the same.
        let in_place = run_in_place(&mut receiver_for(first, dg, pda), &stream, &chunks);
        prop_assert_eq!(&in_place, &expect);
        let whole_in_place = run_in_place(&mut receiver_for(first, dg, pda), &stream, &[usize::MAX]);
        prop_assert_eq!(&whole_in_place, &expect);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        ff_nvme_tcp::fuzzing::pdu_decode(&bytes);
    }

    #[test]
    fn mutated_valid_pdus_never_panic(
        (pdu, d) in any_pdu(),
        knobs in any::<u8>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let f = Framing { hdgst: knobs & 1 != 0, ddgst: knobs & 2 != 0, pda: (knobs >> 2) & 3 };
        let mut bytes = vec![knobs];
        bytes.extend(encode(&pdu, &f, &d));
        for (i, v) in flips {
            let i = i.index(bytes.len() - 1) + 1;
            bytes[i] ^= v;
        }
        ff_nvme_tcp::fuzzing::pdu_decode(&bytes);
    }
}
