//! Test helpers: drive a decoder over a byte stream like a socket layer would.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use ff_nvme_tcp::pdu::{Digests, Framing, IcReq, IcResp, MAX_HLEN};
use ff_nvme_tcp::{Decoder, DecoderConfig, Error, Need, Pdu, Role};

/// What came out of the stream: a PDU with its data, or an error.
pub type Item = Result<(Pdu, Vec<u8>), Error>;

/// Feeds `stream` cut into pieces of the given sizes (cycled); payload goes to
/// a separate Vec via `data_received`, the rest via `feed`.
pub fn run(dec: &mut Decoder, stream: &[u8], chunks: &[usize]) -> Vec<Item> {
    drive(dec, stream, chunks, false)
}

/// As [`run`], but header, padding and digest parts get the whole chunk, however much the decoder
/// asked for, as a receiver decoding in place from its pipe does; the decoder takes what it needs.
pub fn run_in_place(dec: &mut Decoder, stream: &[u8], chunks: &[usize]) -> Vec<Item> {
    drive(dec, stream, chunks, true)
}

fn drive(dec: &mut Decoder, stream: &[u8], chunks: &[usize], in_place: bool) -> Vec<Item> {
    let mut out = Vec::new();
    let mut data = Vec::new();
    let mut pos = 0;
    let mut ci = 0;
    loop {
        match dec.next_need() {
            Need::Done => {
                let r = dec.finish();
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                out.push(r.map(|p| (p, std::mem::take(&mut data))));
                data.clear();
                if fatal {
                    return out;
                }
            }
            Need::Closed => return out,
            need => {
                let len = match need {
                    Need::Header { len } | Need::Pad { len } | Need::Data { len } | Need::DataDigest { len } => len,
                    _ => unreachable!(),
                };
                if pos >= stream.len() {
                    return out;
                }
                let c = chunks.get(ci % chunks.len().max(1)).copied().unwrap_or(usize::MAX).max(1);
                ci += 1;
                let is_data = matches!(need, Need::Data { .. });
                let n = if in_place && !is_data { c } else { c.min(len) }.min(stream.len() - pos);
                let bytes = &stream[pos..pos + n];
                let r = if is_data {
                    // The "direct read": bytes land in the caller's own buffer.
                    data.extend_from_slice(bytes);
                    dec.data_received(bytes).map(|()| n)
                } else {
                    dec.feed(bytes)
                };
                match r {
                    Ok(used) => {
                        if in_place {
                            // Progress on every call, and no more than the part asked for, except that a
                            // whole header (common header and the rest) may be taken at once.
                            let limit = if matches!(need, Need::Header { .. }) { len.max(MAX_HLEN + 4) } else { len };
                            assert!(used > 0 && used <= n.min(limit), "used {used} of {n} for {need:?}");
                        } else {
                            assert_eq!(used, n);
                        }
                        pos += used;
                    }
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
    }
}

/// A target decoder that already went through ICReq with the given digests.
pub fn established_target(dgst: Digests, cpda: u8) -> Decoder {
    let mut dec = Decoder::new(DecoderConfig { pda: cpda, ..DecoderConfig::target() });
    let mut b = [0u8; 128];
    Pdu::IcReq(IcReq { pfv: 0, hpda: 0, dgst, maxr2t: 0 }).encode_with_data(&Framing::default(), &[], &mut b).unwrap();
    let r = run(&mut dec, &b, &[128]);
    assert!(matches!(r.as_slice(), [Ok((Pdu::IcReq(_), _))]), "{r:?}");
    assert_eq!(dec.negotiated().unwrap().digests, dgst);
    dec
}

/// A host decoder that already went through ICResp with the given digests.
pub fn established_host(dgst: Digests, hpda: u8) -> Decoder {
    let mut dec = Decoder::new(DecoderConfig { pda: hpda, hdgst: true, ddgst: true, ..DecoderConfig::host() });
    let mut b = [0u8; 128];
    Pdu::IcResp(IcResp { pfv: 0, cpda: 0, dgst, maxh2cdata: 65536 })
        .encode_with_data(&Framing::default(), &[], &mut b)
        .unwrap();
    let r = run(&mut dec, &b, &[128]);
    assert!(matches!(r.as_slice(), [Ok((Pdu::IcResp(_), _))]), "{r:?}");
    dec
}

/// Decoder for the side that receives `pdu`, established with `dgst`/`pda`.
pub fn receiver_for(pdu: &Pdu, dgst: Digests, pda: u8) -> Decoder {
    match (pdu, pdu.pdu_type().is_host_to_controller()) {
        (Pdu::IcReq(_), _) => Decoder::new(DecoderConfig { pda, ..DecoderConfig::target() }),
        (Pdu::IcResp(_), _) => Decoder::new(DecoderConfig { pda, hdgst: true, ddgst: true, ..DecoderConfig::host() }),
        (_, true) => established_target(dgst, pda),
        (_, false) => established_host(dgst, pda),
    }
}

/// The role receiving `pdu`.
pub fn role_for(pdu: &Pdu) -> Role {
    if pdu.pdu_type().is_host_to_controller() { Role::Target } else { Role::Host }
}
