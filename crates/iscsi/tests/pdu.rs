//! Every opcode's BHS: encode, check key bytes against RFC 7143's layouts, decode back; and the
//! incremental decoder on whole, split and hostile input.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use ff_iscsi::decoder::{Decoder, DecoderConfig, Need};
use ff_iscsi::pdu::*;
use ff_iscsi::{Digests, Error, TxData, TxPdu};

fn round_trip(p: Pdu, data_len: u32) -> Bhs {
    let b = p.encode(0, data_len).unwrap();
    assert_eq!(Pdu::decode(&b).unwrap(), p, "round trip of {:?}", p.opcode());
    assert_eq!(Lengths::of(&b).data_len, data_len);
    b
}

fn be32(b: &Bhs, o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}

#[test]
fn initiator_headers() {
    let b = round_trip(
        Pdu::NopOut(NopOut {
            immediate: true,
            lun: 0x0001_0000_0000_0000,
            itt: 7,
            ttt: RESERVED_TAG,
            cmd_sn: 9,
            exp_stat_sn: 4,
        }),
        5,
    );
    assert_eq!((b[0], b[1], &b[5..8]), (0x40, 0x80, &[0, 0, 5][..]));
    assert_eq!((b[8], be32(&b, 16), be32(&b, 20), be32(&b, 24), be32(&b, 28)), (0, 7, RESERVED_TAG, 9, 4));
    assert_eq!(b[9], 1);

    let mut cdb = [0u8; 16];
    cdb[0] = 0x28;
    let sc = ScsiCommand {
        immediate: false,
        final_bit: true,
        read: true,
        write: false,
        attr: 1,
        lun: 0,
        itt: 0x1234_5678,
        edtl: 4096,
        cmd_sn: 1,
        exp_stat_sn: 2,
        cdb,
    };
    let b = round_trip(Pdu::ScsiCommand(sc), 0);
    assert_eq!((b[0], b[1]), (0x01, 0xc1));
    assert_eq!((be32(&b, 16), be32(&b, 20), be32(&b, 24), be32(&b, 28), b[32]), (0x1234_5678, 4096, 1, 2, 0x28));

    let t = TmfRequest {
        immediate: true,
        function: 5,
        lun: 1 << 48,
        itt: 3,
        ref_itt: RESERVED_TAG,
        cmd_sn: 8,
        exp_stat_sn: 1,
        ref_cmd_sn: 6,
        exp_data_sn: 0,
    };
    let b = round_trip(Pdu::TmfRequest(t), 0);
    assert_eq!((b[0], b[1], be32(&b, 20), be32(&b, 32)), (0x42, 0x85, RESERVED_TAG, 6));

    let l = LoginRequest {
        transit: true,
        cont: false,
        csg: Stage::Security,
        nsg: Stage::Operational,
        version_max: 0,
        version_min: 0,
        isid: [0x80, 1, 2, 3, 4, 5],
        tsih: 0x0102,
        itt: 1,
        cid: 0x0304,
        cmd_sn: 10,
        exp_stat_sn: 11,
    };
    let b = round_trip(Pdu::LoginRequest(l), 40);
    assert_eq!((b[0], b[1]), (0x43, 0x81));
    assert_eq!((&b[8..14], &b[14..16], &b[20..22]), (&[0x80, 1, 2, 3, 4, 5][..], &[1, 2][..], &[3, 4][..]));
    let l2 = LoginRequest { transit: true, csg: Stage::Operational, nsg: Stage::FullFeature, ..l };
    assert_eq!(round_trip(Pdu::LoginRequest(l2), 0)[1], 0x87);

    let t = TextRequest {
        immediate: false,
        final_bit: false,
        cont: true,
        lun: 0,
        itt: 2,
        ttt: 0x99,
        cmd_sn: 3,
        exp_stat_sn: 4,
    };
    let b = round_trip(Pdu::TextRequest(t), 12);
    assert_eq!((b[0], b[1], be32(&b, 20)), (0x04, 0x40, 0x99));

    let d = DataOut { final_bit: true, lun: 0, itt: 5, ttt: 6, exp_stat_sn: 7, data_sn: 8, offset: 0x10000 };
    let b = round_trip(Pdu::DataOut(d), 512);
    assert_eq!((b[0], b[1], be32(&b, 36), be32(&b, 40)), (0x05, 0x80, 8, 0x10000));

    let l = LogoutRequest { immediate: true, reason: 1, itt: 9, cid: 2, cmd_sn: 3, exp_stat_sn: 4 };
    let b = round_trip(Pdu::LogoutRequest(l), 0);
    assert_eq!((b[0], b[1], &b[20..22]), (0x46, 0x81, &[0, 2][..]));

    let s = Snack { kind: 1, lun: 0, itt: 4, ttt: 5, exp_stat_sn: 6, beg_run: 7, run_length: 8 };
    let b = round_trip(Pdu::Snack(s), 0);
    assert_eq!((b[0], b[1], be32(&b, 40), be32(&b, 44)), (0x10, 0x81, 7, 8));
}

#[test]
fn target_headers() {
    let sn = SeqNums { stat_sn: 0x11, exp_cmd_sn: 0x22, max_cmd_sn: 0x33 };
    let check_sn = |b: &Bhs| assert_eq!((be32(b, 24), be32(b, 28), be32(b, 32)), (0x11, 0x22, 0x33));

    let b = round_trip(Pdu::NopIn(NopIn { lun: 0, itt: RESERVED_TAG, ttt: 4, sn }), 0);
    assert_eq!((b[0], b[1], be32(&b, 16), be32(&b, 20)), (0x20, 0x80, RESERVED_TAG, 4));
    check_sn(&b);

    let r = ScsiResponse {
        response: 0,
        status: 2,
        itt: 9,
        snack_tag: 0,
        sn,
        exp_data_sn: 3,
        bidi_residual: Residual::Overflow(5),
        residual: Residual::Underflow(512),
    };
    let b = round_trip(Pdu::ScsiResponse(r), 20);
    assert_eq!((b[0], b[1], b[2], b[3], be32(&b, 36), be32(&b, 40), be32(&b, 44)), (0x21, 0x92, 0, 2, 3, 5, 512));
    check_sn(&b);

    let b = round_trip(Pdu::TmfResponse(TmfResponse { response: 1, itt: 9, sn }), 0);
    assert_eq!((b[0], b[1], b[2]), (0x22, 0x80, 1));

    let l = LoginResponse {
        transit: true,
        cont: false,
        csg: Stage::Operational,
        nsg: Stage::FullFeature,
        version_max: 0,
        version_active: 0,
        isid: [1; 6],
        tsih: 0x0a0b,
        itt: 2,
        sn,
        status_class: 2,
        status_detail: 1,
    };
    let b = round_trip(Pdu::LoginResponse(l), 100);
    assert_eq!((b[0], b[1], &b[14..16], b[36], b[37]), (0x23, 0x87, &[0x0a, 0x0b][..], 2, 1));
    check_sn(&b);

    let t = TextResponse { final_bit: true, cont: false, lun: 0, itt: 1, ttt: RESERVED_TAG, sn };
    assert_eq!(round_trip(Pdu::TextResponse(t), 3)[1], 0x80);

    let d = DataIn {
        final_bit: true,
        ack: false,
        status: Some(0),
        residual: Residual::Underflow(7),
        lun: 0,
        itt: 3,
        ttt: RESERVED_TAG,
        sn,
        data_sn: 4,
        offset: 8192,
    };
    let b = round_trip(Pdu::DataIn(d), 4096);
    assert_eq!((b[0], b[1], b[3], be32(&b, 36), be32(&b, 40), be32(&b, 44)), (0x25, 0x83, 0, 4, 8192, 7));
    let d2 = DataIn { final_bit: false, status: None, residual: Residual::None, ..d };
    assert_eq!(round_trip(Pdu::DataIn(d2), 4096)[1], 0x00);

    let l = LogoutResponse { response: 0, itt: 5, sn, time2wait: 2, time2retain: 20 };
    let b = round_trip(Pdu::LogoutResponse(l), 0);
    assert_eq!((b[0], &b[40..44]), (0x26, &[0, 2, 0, 20][..]));

    let r = R2t { lun: 0, itt: 6, ttt: 7, sn, r2t_sn: 1, offset: 65536, desired_len: 262_144 };
    let b = round_trip(Pdu::R2t(r), 0);
    assert_eq!((b[0], b[1], be32(&b, 36), be32(&b, 40), be32(&b, 44)), (0x31, 0x80, 1, 65536, 262_144));

    let a = AsyncMessage { lun: 0, sn, event: 1, vcode: 0, param1: 0, param2: 0, param3: 5 };
    let b = round_trip(Pdu::AsyncMessage(a), 0);
    assert_eq!((b[0], be32(&b, 16), b[36], &b[42..44]), (0x32, RESERVED_TAG, 1, &[0, 5][..]));

    let r = Reject { reason: RejectReason::ProtocolError as u8, sn, data_sn: 0 };
    let b = round_trip(Pdu::Reject(r), 48);
    assert_eq!((b[0], b[2], be32(&b, 16)), (0x3f, 4, RESERVED_TAG));
}

#[test]
fn reserved_values_rejected() {
    let mut b = [0u8; BHS_LEN];
    b[0] = 0x1f;
    assert_eq!(Pdu::decode(&b), Err(Error::UnknownOpcode(0x1f)));
    // Logout reason 3, task attribute 5, CSG 2, S without F, both residual flags.
    let cases: [(u8, u8); 5] = [(0x06, 0x83), (0x01, 0x85), (0x03, 0x08), (0x25, 0x01), (0x21, 0x86)];
    for (op, flags) in cases {
        let mut b = [0u8; BHS_LEN];
        b[0] = op;
        b[1] = flags;
        assert!(matches!(Pdu::decode(&b), Err(Error::InvalidField { .. })), "{op:#x} {flags:#x}");
    }
    // AHS on a PDU that carries none; data on a TMF request.
    let mut b = Pdu::NopOut(NopOut::default()).encode(0, 0).unwrap();
    b[4] = 1;
    assert!(Pdu::decode(&b).is_err());
    let b = Pdu::TmfRequest(TmfRequest::default()).encode(0, 4).unwrap();
    assert!(Pdu::decode(&b).is_err());
    // Reserved fields are ignored, as the RFC asks.
    let mut b = Pdu::NopOut(NopOut::default()).encode(0, 0).unwrap();
    b[2] = 0xff;
    b[40] = 0xff;
    assert_eq!(Pdu::decode(&b), Ok(Pdu::NopOut(NopOut::default())));
}

fn stream(pdus: &[(Pdu, Vec<u8>)], dg: Digests) -> Vec<u8> {
    let mut v = Vec::new();
    for (p, d) in pdus {
        let data = if d.is_empty() { TxData::None } else { TxData::Owned(d.clone()) };
        v.extend(TxPdu::encode(p, dg, data, &[]).unwrap().to_bytes(&[]));
    }
    v
}

fn decode_all(bytes: &[u8], cfg: DecoderConfig, chunk: usize) -> Vec<(Pdu, Vec<u8>, bool)> {
    let mut dec = Decoder::new(cfg);
    let mut out = Vec::new();
    let mut data = Vec::new();
    let mut off = 0;
    loop {
        match dec.next_need() {
            Need::Done => {
                let f = dec.finish().unwrap();
                out.push((f.header.pdu.unwrap(), std::mem::take(&mut data), f.data_digest.is_ok()));
            }
            Need::Closed => return out,
            Need::Data { len } => {
                let n = len.min(chunk).min(bytes.len() - off);
                if n == 0 {
                    return out;
                }
                let used = dec.feed(&bytes[off..off + n]).unwrap();
                data.extend_from_slice(&bytes[off..off + used]);
                off += used;
            }
            Need::Header { .. } | Need::Trailer { .. } => {
                // A whole receive buffer: the header is decoded where it lies.
                let n = chunk.min(bytes.len() - off);
                if n == 0 {
                    return out;
                }
                off += dec.feed(&bytes[off..off + n]).unwrap();
            }
        }
    }
}

#[test]
fn decoder_in_place_and_split() {
    let sn = SeqNums::default();
    let pdus = vec![
        (Pdu::NopIn(NopIn { itt: 1, ttt: RESERVED_TAG, sn, lun: 0 }), b"abcde".to_vec()),
        (Pdu::R2t(R2t { itt: 2, ttt: 3, ..R2t::default() }), Vec::new()),
        (Pdu::DataIn(DataIn { itt: 4, final_bit: true, ..DataIn::default() }), vec![7; 1001]),
    ];
    for dg in [Digests::default(), Digests { header: true, data: false }, Digests { header: true, data: true }] {
        let bytes = stream(&pdus, dg);
        let cfg = DecoderConfig { max_data_len: 8192, header_digest: dg.header, data_digest: dg.data };
        for chunk in [1, 3, 48, 52, 4096] {
            let got = decode_all(&bytes, cfg, chunk);
            let want: Vec<_> = pdus.iter().map(|(p, d)| (*p, d.clone(), true)).collect();
            assert_eq!(got, want, "digests {dg:?} chunk {chunk}");
        }
    }
}

#[test]
fn decoder_hostile_input() {
    let dg = Digests { header: true, data: true };
    let cfg = DecoderConfig { max_data_len: 4096, header_digest: true, data_digest: true };
    let good = stream(&[(Pdu::NopOut(NopOut { itt: 1, ..NopOut::default() }), vec![1, 2, 3])], dg);
    // A flipped header bit: fatal.
    let mut bad = good.clone();
    bad[20] ^= 1;
    let mut dec = Decoder::new(cfg);
    assert!(matches!(dec.feed(&bad), Err(Error::HeaderDigest { .. })));
    assert_eq!(dec.next_need(), Need::Closed);
    // A flipped data bit: the PDU comes out with a digest error, the stream stays in sync.
    let mut bad = good.clone();
    bad[53] ^= 1;
    bad.extend_from_slice(&good);
    let got = decode_all(&bad, cfg, 4096);
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), vec![false, true]);
    // Padding bytes count in the data digest.
    let mut bad = good.clone();
    bad[55] ^= 1;
    assert!(!decode_all(&bad, cfg, 4096)[0].2);
    // Too long a data segment: an invalid header, framed and skipped.
    let big = stream(&[(Pdu::NopOut(NopOut::default()), vec![0; 5000])], dg);
    let mut dec = Decoder::new(cfg);
    let mut off = 0;
    while dec.next_need() != Need::Done {
        off += dec.feed(&big[off..]).unwrap();
    }
    let f = dec.finish().unwrap();
    assert_eq!(f.header.pdu, Err(Error::DataTooLong { len: 5000, max: 4096 }));
    assert_eq!(off, big.len());
    // Truncated input: the decoder keeps asking, nothing comes out.
    let mut dec = Decoder::new(cfg);
    dec.feed(&good[..30]).unwrap();
    assert_eq!(dec.next_need(), Need::Header { len: 18 });
    assert!(dec.finish().is_err());
}

#[test]
fn tx_pdu_layout() {
    let p = Pdu::NopIn(NopIn { itt: 1, ttt: RESERVED_TAG, ..NopIn::default() });
    let tx = TxPdu::encode(&p, Digests { header: true, data: true }, TxData::Owned(vec![9; 5]), &[]).unwrap();
    assert_eq!(tx.head().len(), 52);
    assert_eq!(&tx.head()[48..], &crc32c::crc32c(&tx.head()[..48]).to_le_bytes());
    assert_eq!(&tx.trailer()[..3], &[0, 0, 0]);
    let mut padded = vec![9u8; 5];
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(&tx.trailer()[3..], &crc32c::crc32c(&padded).to_le_bytes());
    assert_eq!(tx.wire_len(&[]), 52 + 5 + 3 + 4);
    // A range outside the buffer is refused.
    assert!(TxPdu::encode(&p, Digests::default(), TxData::Range(0..10), &[0; 4]).is_err());
}
