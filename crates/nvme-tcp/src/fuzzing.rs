//! The shared fuzz body: used by the cargo-fuzz target `pdu_decode` and by a
//! stable `#[test]` over pseudo-random inputs, so both exercise the same code.
//!
//! It panics only when a codec invariant breaks (that is the fuzz oracle);
//! errors returned for malformed input are expected and ignored.

#![allow(clippy::panic, reason = "panicking on a broken invariant is the fuzz oracle")]

use crate::decoder::{Decoder, DecoderConfig, Need, Role};
use crate::pdu::{Digests, Framing, HeaderCheck, IcReq, IcResp, Pdu, decode_header};

/// Feeds `data` to decoders in both roles (with and without a completed
/// connection initialization) and checks that decoded headers re-encode.
pub fn pdu_decode(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let hdgst = knobs & 0x01 != 0;
    let ddgst = knobs & 0x02 != 0;
    let pda = (knobs >> 2) & 0x03;
    let chunk = usize::from(knobs >> 4) + 1;
    let chk = HeaderCheck { hdgst, ddgst, pda, max_data_len: 1 << 16 };
    if let Ok((pdu, layout)) = decode_header(rest, &chk) {
        check_reencode(&pdu, hdgst, ddgst, layout.data_len, &chk);
    }
    for role in [Role::Target, Role::Host] {
        let cfg = DecoderConfig { role, pda, hdgst: true, ddgst: true, max_data_len: 1 << 16 };
        let dgst = Digests { header: hdgst, data: ddgst };
        let init = match role {
            Role::Target => Pdu::IcReq(IcReq { pfv: 0, hpda: 0, dgst, maxr2t: 0 }),
            Role::Host => Pdu::IcResp(IcResp { pfv: 0, cpda: 0, dgst, maxh2cdata: 8192 }),
        };
        let mut buf = [0u8; 128];
        let init_ok = init.encode_with_data(&Framing::default(), &[], &mut buf).is_ok();
        // Fed exactly what each part asks for, and fed whole chunks as a receiver decoding in place
        // from its pipe does: both must see the same PDUs and errors.
        let mut seen = Vec::new();
        for in_place in [false, true] {
            // Raw: the stream must start with ICReq/ICResp.
            let raw = drive(&mut Decoder::new(cfg), rest, chunk, in_place);
            // Established: prepend a valid initialization PDU.
            let mut dec = Decoder::new(cfg);
            let established = if init_ok {
                drive(&mut dec, &buf, 128, in_place);
                assert!(dec.negotiated().is_some(), "initialization PDU not accepted");
                drive(&mut dec, rest, chunk, in_place)
            } else {
                Vec::new()
            };
            seen.push((raw, established));
        }
        assert_eq!(seen.first(), seen.last(), "feeding in place changed what was decoded");
    }
}

/// Feeds `input` in pieces of at most `chunk` bytes; returns every finished PDU or error in order.
/// `in_place`: header, padding and digest parts get pieces of `16 * chunk` bytes, not only what they
/// ask for.
fn drive(dec: &mut Decoder, mut input: &[u8], chunk: usize, in_place: bool) -> Vec<Result<Pdu, crate::Error>> {
    let mut seen = Vec::new();
    loop {
        match dec.next_need() {
            Need::Done => {
                let r = dec.finish();
                if let Err(e) = &r
                    && !matches!(e, crate::Error::DataDigest { .. })
                {
                    panic!("finish failed after Done: {e}");
                }
                seen.push(r);
            }
            Need::Closed => return seen,
            need @ (Need::Header { len } | Need::Pad { len } | Need::Data { len } | Need::DataDigest { len }) => {
                assert!(len > 0, "decoder asked for zero bytes");
                if input.is_empty() {
                    return seen;
                }
                let whole = in_place && !matches!(need, Need::Data { .. });
                // In place, pieces of 16 to 256 bytes: most hold a whole header, some cut one.
                let n = if whole { (chunk * 16).min(input.len()) } else { chunk.min(input.len()).min(len) };
                let now = input.get(..n).unwrap_or(&[]);
                match dec.feed(now) {
                    Ok(used) => {
                        if whole {
                            assert!(used > 0 && used <= n, "decoder took {used} of {n} bytes");
                        } else {
                            assert_eq!(used, n, "decoder consumed less than it asked for");
                        }
                        input = input.get(used..).unwrap_or(&[]);
                    }
                    Err(e) => {
                        assert!(e.is_fatal(), "non-fatal feed error: {e}");
                        assert_eq!(dec.next_need(), Need::Closed);
                        seen.push(Err(e));
                        return seen;
                    }
                }
            }
        }
    }
}

fn check_reencode(pdu: &Pdu, hdgst: bool, ddgst: bool, data_len: u32, chk: &HeaderCheck) {
    let framing = Framing { hdgst, ddgst, pda: chk.pda };
    let mut out = [0u8; crate::pdu::MAX_PREFIX_LEN];
    let layout = pdu.encode_header(&framing, data_len, &mut out);
    let Ok(layout) = layout else {
        panic!("decoded PDU does not re-encode: {layout:?}");
    };
    match decode_header(&out, chk) {
        Ok((again, l2)) => {
            assert_eq!(&again, pdu, "re-encoded PDU decodes differently");
            assert_eq!(l2, layout);
        }
        Err(e) => panic!("re-encoded PDU fails to decode: {e}"),
    }
}
