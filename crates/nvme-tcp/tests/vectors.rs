//! Hand-written byte vectors (from the spec's field offsets) and every
//! validation failure with its FES/FEI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::{established_host, established_target, run};
use ff_nvme::nvme::{Cqe, PSDT_SGL_MPTR_CONTIG, SglDescriptor, Sqe, opcode, status};
use ff_nvme_tcp::digest::{DataDigest, data_digest, header_digest};
use ff_nvme_tcp::pdu::{MAX_PREFIX_LEN, decode_header};
use ff_nvme_tcp::*;

const NO_DGST: Digests = Digests { header: false, data: false };
const BOTH: Digests = Digests { header: true, data: true };

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn encode(pdu: &Pdu, f: &Framing, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4096 + data.len()];
    let n = pdu.encode_with_data(f, data, &mut b).unwrap();
    b.truncate(n);
    b
}

fn fatal(items: &[Result<(Pdu, Vec<u8>), Error>]) -> (Fes, u32) {
    match items.last() {
        Some(Err(Error::Fatal(f))) => (f.fes, f.fei),
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

fn icreq_bytes() -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0] = 0x00; // ICReq
    b[2] = 128; // HLEN
    b[4..8].copy_from_slice(&le32(128)); // PLEN
    b[8..10].copy_from_slice(&[0, 0]); // PFV 1.0
    b[10] = 2; // HPDA: 12-byte alignment
    b[11] = 0x03; // header + data digest
    b[12..16].copy_from_slice(&le32(3)); // MAXR2T (0's based)
    b
}

#[test]
fn icreq_vector() {
    let b = icreq_bytes();
    let want = Pdu::IcReq(IcReq { pfv: 0, hpda: 2, dgst: BOTH, maxr2t: 3 });
    assert_eq!(encode(&want, &Framing { hdgst: true, ddgst: true, pda: 5 }, &[]), b);
    let mut dec = Decoder::new(DecoderConfig::target());
    assert_eq!(dec.next_need(), Need::Header { len: 8 });
    assert_eq!(dec.feed(&b[..8]).unwrap(), 8);
    assert_eq!(dec.next_need(), Need::Header { len: 120 });
    assert_eq!(dec.feed(&b[8..]).unwrap(), 120);
    assert_eq!(dec.next_need(), Need::Done);
    assert_eq!(dec.finish().unwrap(), want);
    let n = dec.negotiated().unwrap();
    assert_eq!(n.digests, BOTH);
    assert_eq!(n.peer_pda, 2);
    assert_eq!(n.framing(), Framing { hdgst: true, ddgst: true, pda: 2 });
}

#[test]
fn icreq_digests_limited_to_what_target_supports() {
    let mut dec = Decoder::new(DecoderConfig { ddgst: false, ..DecoderConfig::target() });
    run(&mut dec, &icreq_bytes(), &[7]);
    assert_eq!(dec.negotiated().unwrap().digests, Digests { header: true, data: false });
}

#[test]
fn icresp_vector() {
    let mut b = [0u8; 128];
    b[0] = 0x01;
    b[2] = 128;
    b[4..8].copy_from_slice(&le32(128));
    b[10] = 1; // CPDA
    b[11] = 0x01; // header digest only
    b[12..16].copy_from_slice(&le32(0x2_0000));
    let want =
        Pdu::IcResp(IcResp { pfv: 0, cpda: 1, dgst: Digests { header: true, data: false }, maxh2cdata: 0x2_0000 });
    assert_eq!(encode(&want, &Framing::default(), &[]), b);
    let mut dec = Decoder::new(DecoderConfig { hdgst: true, ..DecoderConfig::host() });
    let r = run(&mut dec, &b, &[1]);
    assert_eq!(r, vec![Ok((want, vec![]))]);
    assert_eq!(dec.negotiated().unwrap().peer_pda, 1);
}

fn write_sqe() -> Sqe {
    Sqe {
        opcode: opcode::IO_WRITE,
        flags: PSDT_SGL_MPTR_CONTIG,
        cid: 7,
        nsid: 1,
        dptr: SglDescriptor::in_capsule(0, 8),
        cdw10: 0x10,
        ..Sqe::default()
    }
}

#[test]
fn capsule_cmd_in_capsule_data_both_digests() {
    let data = *b"ABCDEFGH";
    let mut b = vec![0u8; 88];
    b[0] = 0x04;
    b[1] = 0x03; // HDGSTF | DDGSTF
    b[2] = 72;
    b[3] = 76; // PDO right after the header digest
    b[4..8].copy_from_slice(&le32(88)); // 72 + 4 + 8 + 4
    // SQE at offset 8.
    b[8] = 0x01;
    b[9] = 0x40;
    b[10..12].copy_from_slice(&7u16.to_le_bytes());
    b[12..16].copy_from_slice(&le32(1));
    b[8 + 32..8 + 36].copy_from_slice(&le32(8)); // SGL length
    b[8 + 39] = 0x01; // Data Block, Offset subtype
    b[8 + 40..8 + 44].copy_from_slice(&le32(0x10));
    let hd = crc32c::crc32c(&b[..72]);
    b[72..76].copy_from_slice(&le32(hd));
    b[76..84].copy_from_slice(&data);
    b[84..88].copy_from_slice(&le32(crc32c::crc32c(&data)));

    let want = Pdu::CapsuleCmd(CapsuleCmd { sqe: write_sqe() });
    assert_eq!(encode(&want, &Framing { hdgst: true, ddgst: true, pda: 0 }, &data), b);
    let mut dec = established_target(BOTH, 0);
    assert_eq!(run(&mut dec, &b, &[3, 1, 64]), vec![Ok((want, data.to_vec()))]);
}

#[test]
fn capsule_cmd_padding_for_cpda() {
    // CPDA 1 -> 8-byte alignment: header+digest is 76, data starts at 80.
    let data = [0x5Au8; 12];
    let pdu = Pdu::CapsuleCmd(CapsuleCmd { sqe: write_sqe() });
    let b = encode(&pdu, &Framing { hdgst: true, ddgst: false, pda: 1 }, &data);
    assert_eq!(b[3], 80);
    assert_eq!(&b[76..80], &[0, 0, 0, 0]);
    assert_eq!(b.len(), 92);
    let mut dec = established_target(Digests { header: true, data: false }, 1);
    // Walk the needs by hand to see the pad part.
    dec.feed(&b[..8]).unwrap();
    assert_eq!(dec.next_need(), Need::Header { len: 68 });
    dec.feed(&b[8..76]).unwrap();
    assert_eq!(dec.next_need(), Need::Pad { len: 4 });
    assert_eq!(dec.pdu(), Some(&pdu));
    assert_eq!(dec.layout().unwrap().data_offset(), 80);
    dec.feed(&b[76..80]).unwrap();
    assert_eq!(dec.next_need(), Need::Data { len: 12 });
    dec.data_received(&b[80..86]).unwrap();
    assert_eq!(dec.next_need(), Need::Data { len: 6 });
    assert!(matches!(dec.data_received(&[0; 7]), Err(Error::Usage(_))));
    dec.data_received(&b[86..]).unwrap();
    assert_eq!(dec.finish().unwrap(), pdu);
}

#[test]
fn capsule_cmd_without_data_has_pdo_zero() {
    let pdu = Pdu::CapsuleCmd(CapsuleCmd { sqe: Sqe { dptr: SglDescriptor::transport(4096), ..write_sqe() } });
    let b = encode(&pdu, &Framing { hdgst: true, ddgst: true, pda: 3 }, &[]);
    assert_eq!(&b[..8], &[0x04, 0x01, 72, 0, 76, 0, 0, 0]);
    let mut dec = established_target(BOTH, 3);
    assert_eq!(run(&mut dec, &b, &[100]), vec![Ok((pdu, vec![]))]);
}

#[test]
fn c2h_data_success_last_vector() {
    let data: Vec<u8> = (0..16).collect();
    let mut b = vec![0u8; 40];
    b[0] = 0x07;
    b[1] = 0x0C; // LAST_PDU | SUCCESS
    b[2] = 24;
    b[3] = 24;
    b[4..8].copy_from_slice(&le32(40));
    b[8..10].copy_from_slice(&0x42u16.to_le_bytes());
    b[12..16].copy_from_slice(&le32(0x1000));
    b[16..20].copy_from_slice(&le32(16));
    b[24..].copy_from_slice(&data);
    let want = Pdu::C2HData(C2HData { cccid: 0x42, datao: 0x1000, datal: 16, last: true, success: true });
    assert_eq!(encode(&want, &Framing::default(), &data), b);
    let mut dec = established_host(NO_DGST, 0);
    assert_eq!(run(&mut dec, &b, &[5]), vec![Ok((want, data))]);
}

#[test]
fn h2c_data_r2t_capsule_resp_term_vectors() {
    let h2c = Pdu::H2CData(H2CData { cccid: 1, ttag: 9, datao: 4096, datal: 4, last: true });
    let b = encode(&h2c, &Framing::default(), &[1, 2, 3, 4]);
    assert_eq!(b, [6, 0x04, 24, 24, 28, 0, 0, 0, 1, 0, 9, 0, 0, 0x10, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);

    let r2t = Pdu::R2T(R2T { cccid: 3, ttag: 0x0102, r2to: 0, r2tl: 0x2000 });
    let b = encode(&r2t, &Framing { hdgst: true, ddgst: true, pda: 0 }, &[]);
    let mut want = vec![9, 0x01, 24, 0, 28, 0, 0, 0, 3, 0, 2, 1, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0];
    let hd = header_digest(&want);
    want.extend_from_slice(&le32(hd));
    assert_eq!(b, want);
    let mut dec = established_host(BOTH, 0);
    assert_eq!(run(&mut dec, &b, &[2]), vec![Ok((r2t, vec![]))]);

    let cqe =
        Cqe { dw0: 1, dw1: 0, sqhd: 2, sqid: 0, cid: 3, status: Cqe::status_field(status::SUCCESS, false, false) };
    let resp = Pdu::CapsuleResp(CapsuleResp { cqe });
    let b = encode(&resp, &Framing::default(), &[]);
    assert_eq!(b, [5, 0, 24, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);

    // A C2HTermReq never carries digests, even when negotiated.
    let term = Pdu::C2HTermReq(TermReq { fes: 0x01, fei: 3 });
    let b = encode(&term, &Framing { hdgst: true, ddgst: true, pda: 0 }, &[0xEE; 8]);
    assert_eq!(&b[..14], &[3, 0, 24, 0, 32, 0, 0, 0, 1, 0, 3, 0, 0, 0]);
    let mut dec = established_host(BOTH, 0);
    assert_eq!(run(&mut dec, &b, &[9]), vec![Ok((term, vec![0xEE; 8]))]);
    assert_eq!(dec.next_need(), Need::Closed);
    assert_eq!(dec.feed(&[0]), Err(Error::Terminated));
}

#[test]
fn term_req_before_initialization_is_accepted() {
    let term = Pdu::H2CTermReq(TermReq { fes: 0x06, fei: 8 });
    let b = encode(&term, &Framing::default(), &[]);
    let mut dec = Decoder::new(DecoderConfig::target());
    assert_eq!(run(&mut dec, &b, &[24]), vec![Ok((term, vec![]))]);
}

#[test]
fn fatal_error_builds_term_req() {
    let mut dec = established_target(NO_DGST, 0);
    let mut bad = [0u8; 24];
    bad[0] = 0x06;
    bad[2] = 23; // wrong HLEN
    let r = run(&mut dec, &bad, &[24]);
    let Some(Err(Error::Fatal(f))) = r.last() else { panic!("{r:?}") };
    let term = Pdu::C2HTermReq(f.term_req());
    let b = encode(&term, &Framing::default(), &bad);
    assert_eq!(&b[8..14], &[0x01, 0, 2, 0, 0, 0]);
    assert_eq!(&b[24..], &bad);
    // The decoder stays stopped and repeats its error.
    assert_eq!(dec.next_need(), Need::Closed);
    assert_eq!(dec.feed(&[0]), Err(Error::Fatal(*f)));
    assert_eq!(dec.error(), Some(Error::Fatal(*f)));
}

// ---- validation failures -------------------------------------------------

fn ch(ty: u8, flags: u8, hlen: u8, pdo: u8, plen: u32) -> Vec<u8> {
    let mut v = vec![ty, flags, hlen, pdo];
    v.extend_from_slice(&le32(plen));
    v.resize(usize::from(hlen), 0);
    v
}

fn h2c_hdr(flags: u8, pdo: u8, plen: u32, datal: u32) -> Vec<u8> {
    let mut v = ch(6, flags, 24, pdo, plen);
    v[16..20].copy_from_slice(&le32(datal));
    v
}

#[test]
fn sequence_and_direction_errors() {
    let cmd = encode(&Pdu::CapsuleCmd(CapsuleCmd::default()), &Framing::default(), &[]);
    // Command before ICReq.
    let r = run(&mut Decoder::new(DecoderConfig::target()), &cmd, &[64]);
    assert_eq!(fatal(&r), (Fes::PduSequenceError, 0));
    // Second ICReq.
    let r = run(&mut established_target(NO_DGST, 0), &icreq_bytes(), &[64]);
    assert_eq!(fatal(&r), (Fes::PduSequenceError, 0));
    // Controller-to-host PDU arriving at the target.
    let resp = encode(&Pdu::CapsuleResp(CapsuleResp::default()), &Framing::default(), &[]);
    let r = run(&mut established_target(NO_DGST, 0), &resp, &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 0));
    // Host-to-controller PDU arriving at the host.
    let r = run(&mut established_host(NO_DGST, 0), &cmd, &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 0));
    // Unknown type.
    let r = run(&mut established_target(NO_DGST, 0), &ch(0x08, 0, 24, 0, 24), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 0));
    // ICResp before... anything on the host is fine, but an R2T first is not.
    let r2t = encode(&Pdu::R2T(R2T { r2tl: 1, ..R2T::default() }), &Framing::default(), &[]);
    let r = run(&mut Decoder::new(DecoderConfig::host()), &r2t, &[64]);
    assert_eq!(fatal(&r), (Fes::PduSequenceError, 0));
}

#[test]
fn ic_field_errors() {
    let mut b = icreq_bytes();
    b[2] = 127;
    assert_eq!(fatal(&run(&mut Decoder::new(DecoderConfig::target()), &b, &[8])), (Fes::InvalidHeaderField, 2));
    let mut b = icreq_bytes();
    b[4] = 129;
    assert_eq!(fatal(&run(&mut Decoder::new(DecoderConfig::target()), &b, &[8])), (Fes::InvalidHeaderField, 4));
    let mut b = icreq_bytes();
    b[8] = 1;
    assert_eq!(fatal(&run(&mut Decoder::new(DecoderConfig::target()), &b, &[8])), (Fes::UnsupportedParameter, 8));
    let mut b = icreq_bytes();
    b[10] = 32;
    assert_eq!(fatal(&run(&mut Decoder::new(DecoderConfig::target()), &b, &[8])), (Fes::InvalidHeaderField, 10));
    let mut b = icreq_bytes();
    b[1] = 0x01; // HDGSTF on an ICReq
    assert_eq!(fatal(&run(&mut Decoder::new(DecoderConfig::target()), &b, &[8])), (Fes::InvalidHeaderField, 1));

    let resp = |maxh2c: u32, dgst: Digests| {
        let mut b = [0u8; 128];
        Pdu::IcResp(IcResp { pfv: 0, cpda: 0, dgst, maxh2cdata: maxh2c })
            .encode_with_data(&Framing::default(), &[], &mut b)
            .unwrap();
        b
    };
    let r = run(&mut Decoder::new(DecoderConfig::host()), &resp(1000, NO_DGST), &[128]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 12));
    let r = run(&mut Decoder::new(DecoderConfig::host()), &resp(4098, NO_DGST), &[128]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 12));
    // The host asked for no digests; the controller may not enable them.
    let r = run(&mut Decoder::new(DecoderConfig::host()), &resp(8192, BOTH), &[128]);
    assert_eq!(fatal(&r), (Fes::UnsupportedParameter, 11));
}

#[test]
fn digest_flag_errors() {
    // HDGSTF without negotiation.
    let r = run(&mut established_target(NO_DGST, 0), &h2c_hdr(0x01, 28, 32, 4), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
    // HDGSTF missing with negotiation.
    let r = run(&mut established_target(BOTH, 0), &h2c_hdr(0x02, 24, 32, 4), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
    // DDGSTF without negotiation.
    let r = run(&mut established_target(NO_DGST, 0), &h2c_hdr(0x02, 24, 32, 4), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
    // DDGSTF missing on data with data digest negotiated.
    let dd = Digests { header: false, data: true };
    let r = run(&mut established_target(dd, 0), &h2c_hdr(0x00, 24, 28, 4), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
    // DDGSTF on an R2T (no data possible).
    let mut r2t = ch(9, 0x02, 24, 0, 24);
    r2t[16] = 1;
    let r = run(&mut established_host(dd, 0), &r2t, &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
    // SUCCESS without LAST_PDU.
    let mut c2h = ch(7, 0x08, 24, 24, 28);
    c2h[16] = 4;
    let r = run(&mut established_host(NO_DGST, 0), &c2h, &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 1));
}

#[test]
fn pdo_and_plen_errors() {
    let t = || established_target(NO_DGST, 0);
    // Data PDU without PDO.
    assert_eq!(fatal(&run(&mut t(), &h2c_hdr(0, 0, 28, 4), &[64])), (Fes::InvalidHeaderField, 3));
    // PDO inside the header.
    assert_eq!(fatal(&run(&mut t(), &h2c_hdr(0, 20, 28, 8), &[64])), (Fes::InvalidHeaderField, 3));
    // PDO not aligned to CPDA 1 (8 bytes).
    let r = run(&mut established_target(NO_DGST, 1), &h2c_hdr(0, 28, 32, 4), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 3));
    // Same PDO fine with CPDA 0.
    let mut ok = h2c_hdr(0, 28, 32, 4);
    ok.extend_from_slice(&[0; 8]);
    assert!(run(&mut t(), &ok, &[64])[0].is_ok());
    // PLEN shorter than PDO.
    assert_eq!(fatal(&run(&mut t(), &h2c_hdr(0, 24, 20, 0), &[64])), (Fes::InvalidHeaderField, 4));
    // PDO set but no data.
    assert_eq!(fatal(&run(&mut t(), &h2c_hdr(0, 24, 24, 0), &[64])), (Fes::InvalidHeaderField, 4));
    // DATAL disagrees with PLEN - PDO.
    assert_eq!(fatal(&run(&mut t(), &h2c_hdr(0, 24, 32, 4), &[64])), (Fes::InvalidHeaderField, 16));
    // CapsuleCmd with PDO 0 but PLEN claiming data.
    assert_eq!(fatal(&run(&mut t(), &ch(4, 0, 72, 0, 80), &[64])), (Fes::InvalidHeaderField, 3));
    // R2T/CapsuleResp PLEN must equal HLEN.
    let r = run(&mut established_host(NO_DGST, 0), &ch(5, 0, 24, 0, 28), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 4));
    // R2T for nothing.
    let r = run(&mut established_host(NO_DGST, 0), &ch(9, 0, 24, 0, 24), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 16));
    // TermReq longer than 152.
    let r = run(&mut established_host(NO_DGST, 0), &ch(3, 0, 24, 0, 153), &[64]);
    assert_eq!(fatal(&r), (Fes::InvalidHeaderField, 4));
    // Oversized PLEN: hostile 4 GiB data is refused before any data is asked for.
    let r = run(&mut t(), &h2c_hdr(0, 24, u32::MAX, u32::MAX - 24), &[64]);
    assert_eq!(fatal(&r), (Fes::DataTransferLimitExceeded, 4));
    let mut small = Decoder::new(DecoderConfig { max_data_len: 16, ..DecoderConfig::target() });
    let mut no_dgst = icreq_bytes();
    no_dgst[11] = 0;
    run(&mut small, &no_dgst, &[128]);
    assert_eq!(fatal(&run(&mut small, &h2c_hdr(0, 24, 24 + 17, 17), &[64])), (Fes::DataTransferLimitExceeded, 4));
}

#[test]
fn header_digest_error() {
    let pdu = Pdu::CapsuleCmd(CapsuleCmd { sqe: write_sqe() });
    let mut b = encode(&pdu, &Framing { hdgst: true, ddgst: false, pda: 0 }, &[0; 8]);
    b[20] ^= 0x10;
    let r = run(&mut established_target(Digests { header: true, data: false }, 0), &b, &[64]);
    assert_eq!(fatal(&r), (Fes::HeaderDigestError, 72));
}

#[test]
fn data_digest_error_is_not_fatal() {
    let f = Framing { hdgst: false, ddgst: true, pda: 0 };
    let bad_pdu = Pdu::H2CData(H2CData { cccid: 77, ttag: 1, datao: 0, datal: 4, last: false });
    let mut stream = encode(&bad_pdu, &f, &[1, 2, 3, 4]);
    let n = stream.len();
    stream[n - 1] ^= 0xFF;
    let good = Pdu::H2CData(H2CData { cccid: 77, ttag: 1, datao: 4, datal: 4, last: true });
    stream.extend(encode(&good, &f, &[5, 6, 7, 8]));
    let mut dec = established_target(Digests { header: false, data: true }, 0);
    let r = run(&mut dec, &stream, &[3]);
    assert_eq!(r.len(), 2);
    match r[0] {
        Err(Error::DataDigest { received, computed, cid: Some(77) }) => {
            assert_eq!(computed, data_digest([&[1u8, 2, 3, 4][..]]));
            assert_ne!(received, computed);
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(r[1], Ok((good, vec![5, 6, 7, 8])));
}

#[test]
fn truncated_and_misuse() {
    let chk = HeaderCheck { hdgst: false, ddgst: false, pda: 0, max_data_len: 1024 };
    assert_eq!(decode_header(&[4, 0, 72], &chk), Err(Error::Truncated { need: 8, have: 3 }));
    let b = encode(&Pdu::CapsuleCmd(CapsuleCmd::default()), &Framing::default(), &[]);
    assert_eq!(decode_header(&b[..40], &chk), Err(Error::Truncated { need: 72, have: 40 }));
    assert!(decode_header(&b, &chk).is_ok());
    let mut small = [0u8; 30];
    let r = Pdu::CapsuleCmd(CapsuleCmd::default()).encode_header(&Framing::default(), 0, &mut small);
    assert_eq!(r, Err(Error::Truncated { need: 72, have: 30 }));
    // Encoding rules.
    let mut buf = [0u8; MAX_PREFIX_LEN];
    let h2c = Pdu::H2CData(H2CData { datal: 5, ..H2CData::default() });
    assert!(matches!(h2c.encode_header(&Framing::default(), 4, &mut buf), Err(Error::Encode(_))));
    let resp = Pdu::CapsuleResp(CapsuleResp::default());
    assert!(matches!(resp.encode_header(&Framing::default(), 1, &mut buf), Err(Error::Encode(_))));
    let f = Framing { pda: 32, ..Framing::default() };
    assert!(matches!(h2c.encode_header(&f, 5, &mut buf), Err(Error::Encode(_))));
    // Decoder misuse is a usage error, not a protocol one.
    let mut dec = Decoder::new(DecoderConfig::target());
    assert!(matches!(dec.finish(), Err(Error::Usage(_))));
    assert!(matches!(dec.data_received(&[1]), Err(Error::Usage(_))));
    // A partial stream just waits for more.
    assert!(run(&mut dec, &icreq_bytes()[..100], &[13]).is_empty());
    assert_eq!(dec.next_need(), Need::Header { len: 28 });
}

#[test]
fn max_alignment_padding() {
    // HPDA 31 -> 128-byte alignment; C2HData header 24 + digest 4 -> PDO 128.
    let dg = Digests { header: true, data: true };
    let pdu = Pdu::C2HData(C2HData { cccid: 1, datao: 0, datal: 3, last: true, success: false });
    let f = Framing { hdgst: true, ddgst: true, pda: 31 };
    let b = encode(&pdu, &f, &[9, 9, 9]);
    assert_eq!(b[3], 128);
    assert_eq!(b.len(), 128 + 3 + 4);
    let mut dec = established_host(dg, 31);
    assert_eq!(run(&mut dec, &b, &[1]), vec![Ok((pdu, vec![9, 9, 9]))]);
    let mut d = DataDigest::new();
    d.update(&[9]);
    d.update(&[9, 9]);
    assert_eq!(&b[131..], &d.finish().to_le_bytes());
}
