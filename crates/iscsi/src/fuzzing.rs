//! Shared fuzz bodies: used by the cargo-fuzz targets `iscsi_pdu` and `iscsi_login`, and by stable
//! tests over pseudo-random inputs, so both exercise the same code.
//!
//! They panic only when an invariant breaks (that is the fuzz oracle); errors for malformed input are
//! expected and ignored.

#![allow(clippy::panic, reason = "panicking on a broken invariant is the fuzz oracle")]

use crate::config::{Auth, ChapAuth, PortalConfig, TargetDesc};
use crate::conn::{BufAlloc, ConnConfig, RecvTarget, TargetConn, TargetOutput};
use crate::decoder::{Decoder, DecoderConfig, Need};
use crate::pdu::{BHS_LEN, Pdu};
use std::sync::Arc;

struct Heap;
impl BufAlloc<Vec<u8>> for Heap {
    fn alloc(&mut self, len: usize) -> Option<Vec<u8>> {
        (len <= 1 << 20).then(|| vec![0; len])
    }
}

/// Feeds `data` to the decoder (digests per the first byte) and checks that every decoded header
/// re-encodes to the same bytes.
pub fn pdu_decode(data: &[u8]) {
    let Some((&knobs, rest)) = data.split_first() else { return };
    let cfg = DecoderConfig { max_data_len: 1 << 16, header_digest: knobs & 1 != 0, data_digest: knobs & 2 != 0 };
    let chunk = usize::from(knobs >> 2) + 1;
    let mut dec = Decoder::new(cfg);
    let mut input = rest;
    loop {
        match dec.next_need() {
            Need::Done => {
                let Ok(f) = dec.finish() else { panic!("finish failed after Done") };
                if let Ok(pdu) = f.header.pdu {
                    check_reencode(&pdu, &f.header.bhs, f.header.lengths.ahs_len(), f.header.lengths.data_len);
                }
            }
            Need::Closed => return,
            Need::Header { len } | Need::Data { len } | Need::Trailer { len } => {
                assert!(len > 0, "decoder asked for zero bytes");
                if input.is_empty() {
                    return;
                }
                let n = chunk.min(input.len());
                match dec.feed(input.get(..n).unwrap_or(&[])) {
                    Ok(used) => {
                        assert!(used > 0 && used <= n, "decoder took {used} of {n} bytes");
                        input = input.get(used..).unwrap_or(&[]);
                    }
                    Err(e) => {
                        assert!(e.is_fatal(), "non-fatal feed error: {e}");
                        assert_eq!(dec.next_need(), Need::Closed);
                        return;
                    }
                }
            }
        }
    }
}

fn check_reencode(pdu: &Pdu, bhs: &[u8; BHS_LEN], ahs_len: usize, data_len: u32) {
    let Ok(again) = pdu.encode(ahs_len, data_len) else { panic!("decoded PDU does not re-encode") };
    let Ok(back) = Pdu::decode(&again) else { panic!("re-encoded PDU does not decode") };
    assert_eq!(&back, pdu, "re-encoded PDU decodes differently");
    // Byte 0's bit 7 and the reserved fields are ignored on receipt, so compare what they leave. A
    // Reject's and an Async Message's ITT field is reserved (sent as FFFFFFFFh whatever it held).
    if !matches!(pdu, Pdu::Reject(_) | Pdu::AsyncMessage(_)) {
        assert_eq!(again.get(16..20), bhs.get(16..20), "ITT changed");
    }
}

/// A portal with one open target and one CHAP target, for the login fuzz body and tests.
pub fn fuzz_portal() -> Arc<PortalConfig> {
    let open = TargetDesc {
        name: "iqn.2026-01.org.ferrofabric:open".into(),
        alias: Some("open".into()),
        portal_group_tag: 1,
        portals: vec!["127.0.0.1:3260".into()],
        allowed_initiators: None,
        auth: Auth::None,
    };
    let chap = TargetDesc {
        name: "iqn.2026-01.org.ferrofabric:chap".into(),
        auth: Auth::Chap(ChapAuth::one_way("user", b"secretsecret")),
        ..open.clone()
    };
    Arc::new(PortalConfig { targets: vec![open, chap], ..PortalConfig::default() })
}

/// Feeds `data` to a fresh target connection in pieces, admitting any session it asks for and
/// completing every command, and checks it never accepts input after closing. Returns how many
/// commands reached the runtime.
pub fn login(data: &[u8]) -> usize {
    let Some((&knobs, rest)) = data.split_first() else { return 0 };
    let mut commands = 0;
    let chunk = usize::from(knobs) + 1;
    let mut conn: TargetConn<Vec<u8>> = TargetConn::new(ConnConfig::new(fuzz_portal()));
    let mut input = rest;
    let mut steps = 0usize;
    while !input.is_empty() && steps < 100_000 {
        steps += 1;
        match conn.recv_target(&mut Heap) {
            RecvTarget::Closed => break,
            RecvTarget::Small(_) => {
                let n = chunk.min(input.len());
                let used = conn.feed(input.get(..n).unwrap_or(&[]), &mut Heap);
                assert!(used <= n);
                if used == 0 && !conn.is_closed() {
                    panic!("feed took nothing from an open connection");
                }
                input = input.get(used..).unwrap_or(&[]);
            }
            RecvTarget::Data(dst) => {
                let n = dst.len().min(chunk).min(input.len());
                if let (Some(d), Some(s)) = (dst.get_mut(..n), input.get(..n)) {
                    d.copy_from_slice(s);
                }
                input = input.get(n..).unwrap_or(&[]);
                conn.data_received(n, &mut Heap);
            }
        }
        while let Some(o) = conn.poll_output() {
            match o {
                TargetOutput::SessionRequest(_) => conn.admit(1),
                TargetOutput::Command(c) => {
                    commands += 1;
                    conn.complete(c.itt, crate::conn::Completion::good());
                }
                TargetOutput::TaskMgmt(t) => conn.complete_tmf(t.itt, crate::conn::TmfResponseCode::Complete),
                _ => {}
            }
        }
    }
    if conn.is_closed() {
        assert_eq!(conn.feed(b"x", &mut Heap), 0, "closed connection took input");
    }
    commands
}
