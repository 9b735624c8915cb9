//! The host connection core driven with byte vectors (ICResp checks, reads, writes in capsule and by
//! R2T, digests, hostile controllers that must end in an H2CTermReq), and wired back to back to the
//! target core in memory with random chunking.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use ff_nvme::nvme::{Cqe, Sqe, opcode, status};
use ff_nvme_tcp::host::{HostCompletion, HostConfig, HostConn, HostError, HostOutput, RecvTarget, SubmitErrorKind};
use ff_nvme_tcp::target::{self, BufAlloc, Completion, DataDir, TargetConn, TargetConnConfig, TargetOutput};
use ff_nvme_tcp::{
    C2HData, CapsuleResp, Decoder, DecoderConfig, Digests, Fes, Framing, IcResp, Need, Pdu, R2T, TermReq,
};

const BOTH: Digests = Digests { header: true, data: true };

fn pdu_bytes(p: Pdu, f: &Framing, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512 + data.len()];
    let n = p.encode_with_data(f, data, &mut b).unwrap();
    b.truncate(n);
    b
}

fn icresp(dgst: Digests, maxh2cdata: u32) -> Vec<u8> {
    pdu_bytes(Pdu::IcResp(IcResp { pfv: 0, cpda: 0, dgst, maxh2cdata }), &Framing::default(), &[])
}

/// Feeds `bytes` in chunks of at most `chunk`; returns the outputs.
fn drive(conn: &mut HostConn<Vec<u8>>, bytes: &[u8], chunk: usize) -> Vec<HostOutput<Vec<u8>>> {
    let mut off = 0;
    let mut out = Vec::new();
    while off < bytes.len() {
        match conn.recv_target() {
            RecvTarget::Small(n) => {
                let n = n.max(1).min(chunk).min(bytes.len() - off);
                off += conn.feed(&bytes[off..off + n]);
            }
            RecvTarget::Data(dst) => {
                let n = dst.len().min(chunk).min(bytes.len() - off);
                dst[..n].copy_from_slice(&bytes[off..off + n]);
                off += n;
                conn.data_received(n);
            }
            RecvTarget::Closed => break,
        }
        while let Some(o) = conn.poll_output() {
            out.push(o);
        }
    }
    while let Some(o) = conn.poll_output() {
        out.push(o);
    }
    out
}

/// Serialises the PDUs among `outs` as the wire would carry them (data views are dropped here).
fn wire(outs: Vec<HostOutput<Vec<u8>>>, rest: &mut Vec<HostOutput<Vec<u8>>>) -> Vec<u8> {
    let mut w = Vec::new();
    for o in outs {
        match o {
            HostOutput::Send(p) => {
                w.extend_from_slice(p.head());
                if let Some(d) = &p.data {
                    w.extend_from_slice(d.bytes());
                }
                if let Some(g) = p.ddgst {
                    w.extend_from_slice(&g);
                }
            }
            other => rest.push(other),
        }
    }
    w
}

fn take(conn: &mut HostConn<Vec<u8>>) -> Vec<HostOutput<Vec<u8>>> {
    std::iter::from_fn(|| conn.poll_output()).collect()
}

/// Decodes what the host sent, as a controller would (ICReq first).
fn target_view(bytes: &[u8], d: Digests) -> Vec<(Pdu, Vec<u8>)> {
    let mut dec = Decoder::new(DecoderConfig { hdgst: d.header, ddgst: d.data, ..DecoderConfig::target() });
    let mut pdus = Vec::new();
    let mut off = 0;
    let mut data = Vec::new();
    loop {
        match dec.next_need() {
            Need::Header { len } | Need::Pad { len } | Need::DataDigest { len } => {
                if off >= bytes.len() {
                    break;
                }
                off += dec.feed(&bytes[off..(off + len).min(bytes.len())]).unwrap();
            }
            Need::Data { len } => {
                data.extend_from_slice(&bytes[off..off + len]);
                dec.data_received(&bytes[off..off + len]).unwrap();
                off += len;
            }
            Need::Done => pdus.push((dec.finish().unwrap(), std::mem::take(&mut data))),
            Need::Closed => break,
        }
    }
    pdus
}

fn connected(d: Digests, maxh2cdata: u32) -> (HostConn<Vec<u8>>, Framing, Vec<u8>) {
    let mut h = HostConn::new(HostConfig { digests: d, depth: 8, ..HostConfig::default() });
    let mut rest = Vec::new();
    let sent = wire(take(&mut h), &mut rest);
    let view = target_view(&sent, d);
    let Pdu::IcReq(r) = view[0].0 else { panic!("{view:?}") };
    assert_eq!((r.pfv, r.hpda, r.dgst, r.maxr2t), (0, 0, d, 0));
    assert!(drive(&mut h, &icresp(d, maxh2cdata), 7).is_empty());
    assert!(h.is_ready());
    (h, Framing { hdgst: d.header, ddgst: d.data, pda: 0 }, sent)
}

fn read_sqe(len_blocks: u32) -> Sqe {
    Sqe { opcode: opcode::IO_READ, nsid: 1, cdw12: len_blocks - 1, ..Sqe::default() }
}

fn write_sqe() -> Sqe {
    Sqe { opcode: opcode::IO_WRITE, nsid: 1, ..Sqe::default() }
}

fn resp(cid: u16, st: ff_nvme::nvme::Status) -> Pdu {
    Pdu::CapsuleResp(CapsuleResp {
        cqe: Cqe { dw0: 0, dw1: 0, sqhd: 1, sqid: 1, cid, status: Cqe::status_field(st, false, false) },
    })
}

fn completions(outs: Vec<HostOutput<Vec<u8>>>) -> Vec<HostCompletion<Vec<u8>>> {
    outs.into_iter()
        .filter_map(|o| match o {
            HostOutput::Completion(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn closed_with(outs: &[HostOutput<Vec<u8>>]) -> Option<HostError> {
    outs.iter().find_map(|o| match o {
        HostOutput::Close(e) => Some(e.clone()),
        _ => None,
    })
}

fn sent_term(outs: Vec<HostOutput<Vec<u8>>>) -> Option<TermReq> {
    let mut rest = Vec::new();
    let w = wire(outs, &mut rest);
    // Prefix an ICReq-free decode: TermReq is accepted in any phase.
    target_view(&w, Digests::default()).into_iter().find_map(|(p, _)| match p {
        Pdu::H2CTermReq(t) => Some(t),
        _ => None,
    })
}

#[test]
fn read_lands_in_the_registered_buffer() {
    for d in [Digests::default(), BOTH] {
        for chunk in [1, 5, 4096] {
            let (mut h, f, _) = connected(d, 4096);
            let cid = h.submit(read_sqe(2), None, Some(vec![0; 8192])).unwrap();
            let mut rest = Vec::new();
            let view = target_view(&[icreq_prefix(d), wire(take(&mut h), &mut rest)].concat(), d);
            let Pdu::CapsuleCmd(c) = view[1].0 else { panic!("{view:?}") };
            assert!(c.sqe.dptr.is_transport());
            assert_eq!(c.sqe.dptr.length, 8192);
            let data: Vec<u8> = (0..8192u32).map(|i| (i * 13) as u8).collect();
            let mut bytes = Vec::new();
            for (i, part) in data.chunks(4096).enumerate() {
                let hd = C2HData { cccid: cid, datao: i as u32 * 4096, datal: 4096, last: i == 1, success: false };
                bytes.extend(pdu_bytes(Pdu::C2HData(hd), &f, part));
            }
            bytes.extend(pdu_bytes(resp(cid, status::SUCCESS), &f, &[]));
            let done = completions(drive(&mut h, &bytes, chunk));
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].read_buf.as_deref(), Some(&data[..]));
            assert_eq!(done[0].read_len, 8192);
            assert!(done[0].cqe.status().is_success() && !done[0].digest_error);
            assert_eq!(h.outstanding(), 0);
        }
    }
}

fn icreq_prefix(d: Digests) -> Vec<u8> {
    pdu_bytes(Pdu::IcReq(ff_nvme_tcp::IcReq { pfv: 0, hpda: 0, dgst: d, maxr2t: 0 }), &Framing::default(), &[])
}

#[test]
fn c2h_success_completes_without_a_response() {
    let (mut h, f, _) = connected(Digests::default(), 4096);
    let cid = h.submit(read_sqe(1), None, Some(vec![0; 512])).unwrap();
    take(&mut h);
    let hd = C2HData { cccid: cid, datao: 0, datal: 512, last: true, success: true };
    let done = completions(drive(&mut h, &pdu_bytes(Pdu::C2HData(hd), &f, &[9; 512]), 100));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].read_buf.as_deref(), Some(&[9u8; 512][..]));
}

#[test]
fn small_write_goes_in_capsule_large_write_waits_for_r2t_and_splits() {
    for d in [Digests::default(), BOTH] {
        let (mut h, f, _) = connected(d, 8192);
        let small = vec![0x5A; 4096];
        let cid = h.submit(write_sqe(), Some(small.clone()), None).unwrap();
        let mut rest = Vec::new();
        let view = target_view(&[icreq_prefix(d), wire(take(&mut h), &mut rest)].concat(), d);
        let Pdu::CapsuleCmd(c) = view[1].0 else { panic!() };
        assert!(c.sqe.dptr.is_in_capsule());
        assert_eq!(view[1].1, small);
        let done = completions(drive(&mut h, &pdu_bytes(resp(cid, status::SUCCESS), &f, &[]), 64));
        assert_eq!(done[0].data.as_deref(), Some(&small[..]), "the write buffer comes back");

        let big: Vec<u8> = (0..20000u32).map(|i| (i * 3) as u8).collect();
        let cid = h.submit(write_sqe(), Some(big.clone()), None).unwrap();
        let cmd = wire(take(&mut h), &mut rest);
        let r2t = R2T { cccid: cid, ttag: 77, r2to: 0, r2tl: 20000 };
        let outs = drive(&mut h, &pdu_bytes(Pdu::R2T(r2t), &f, &[]), 3);
        let view = target_view(&[icreq_prefix(d), cmd, wire(outs, &mut rest)].concat(), d);
        let Pdu::CapsuleCmd(c) = view[1].0 else { panic!() };
        assert!(c.sqe.dptr.is_transport() && c.sqe.dptr.length == 20000);
        let h2c: Vec<_> = view[2..]
            .iter()
            .map(|(p, data)| match p {
                Pdu::H2CData(x) => (x.ttag, x.datao, x.datal, x.last, data.clone()),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(
            h2c.iter().map(|x| (x.0, x.1, x.2, x.3)).collect::<Vec<_>>(),
            [(77, 0, 8192, false), (77, 8192, 8192, false), (77, 16384, 3616, true)]
        );
        assert_eq!(h2c.iter().flat_map(|x| x.4.clone()).collect::<Vec<_>>(), big);
        let done = completions(drive(&mut h, &pdu_bytes(resp(cid, status::SUCCESS), &f, &[]), 64));
        assert_eq!(done[0].data.as_deref(), Some(&big[..]));
    }
}

#[test]
fn write_completion_waits_until_the_sender_drops_the_data() {
    let (mut h, f, _) = connected(Digests::default(), 8192);
    let cid = h.submit(write_sqe(), Some(vec![1; 100]), None).unwrap();
    let held = take(&mut h); // the sender still holds the capsule with its data view
    assert!(completions(drive(&mut h, &pdu_bytes(resp(cid, status::SUCCESS), &f, &[]), 64)).is_empty());
    drop(held);
    let done = completions(take(&mut h));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].data.as_deref(), Some(&[1u8; 100][..]));
}

#[test]
fn queue_full_and_not_ready_hand_buffers_back() {
    let mut h: HostConn<Vec<u8>> = HostConn::new(HostConfig { depth: 1, ..HostConfig::default() });
    let e = h.submit(read_sqe(1), None, Some(vec![0; 4])).unwrap_err();
    assert_eq!(e.kind, SubmitErrorKind::NotReady);
    assert_eq!(e.read_buf, Some(vec![0; 4]));
    drive(&mut h, &icresp(Digests::default(), 4096), 128);
    h.submit(read_sqe(1), None, Some(vec![0; 4])).unwrap();
    let e = h.submit(read_sqe(1), None, Some(vec![0; 4])).unwrap_err();
    assert_eq!(e.kind, SubmitErrorKind::QueueFull);
}

#[test]
fn bad_icresp_is_fatal() {
    // A digest we did not request, then MAXH2CDATA below 4096, then a wrong PFV.
    let bad = [
        icresp(BOTH, 4096),
        icresp(Digests::default(), 1024),
        pdu_bytes(
            Pdu::IcResp(IcResp { pfv: 1, cpda: 0, dgst: Digests::default(), maxh2cdata: 4096 }),
            &Framing::default(),
            &[],
        ),
    ];
    for b in bad {
        let mut h: HostConn<Vec<u8>> = HostConn::new(HostConfig::default());
        take(&mut h);
        let outs = drive(&mut h, &b, 128);
        assert!(matches!(closed_with(&outs), Some(HostError::Fatal { .. })), "{outs:?}");
        assert!(sent_term(outs).is_some());
        assert!(!h.is_ready());
    }
}

#[test]
fn response_with_unknown_cid_is_fatal() {
    let (mut h, f, _) = connected(Digests::default(), 4096);
    let outs = drive(&mut h, &pdu_bytes(resp(5, status::SUCCESS), &f, &[]), 64);
    assert!(matches!(closed_with(&outs), Some(HostError::Fatal { fei: 20, .. })));
    assert_eq!(sent_term(outs).map(|t| t.fes), Some(Fes::InvalidHeaderField.code()));
    assert!(h.is_closed());
}

#[test]
fn c2hdata_beyond_the_buffer_for_a_write_or_out_of_order_is_fatal() {
    type Case = (Box<dyn Fn(u16, u16) -> C2HData>, u16);
    let cases: Vec<Case> = vec![
        // Longer than asked.
        (
            Box::new(|r, _| C2HData { cccid: r, datao: 0, datal: 8192, last: true, success: false }),
            Fes::DataTransferOutOfRange.code(),
        ),
        // Out of order.
        (
            Box::new(|r, _| C2HData { cccid: r, datao: 512, datal: 512, last: true, success: false }),
            Fes::DataTransferOutOfRange.code(),
        ),
        // For a write.
        (
            Box::new(|_, w| C2HData { cccid: w, datao: 0, datal: 512, last: true, success: false }),
            Fes::InvalidHeaderField.code(),
        ),
        // Unknown cid.
        (
            Box::new(|_, _| C2HData { cccid: 7, datao: 0, datal: 512, last: true, success: false }),
            Fes::InvalidHeaderField.code(),
        ),
    ];
    for (mk, fes) in cases {
        let (mut h, f, _) = connected(Digests::default(), 4096);
        let r = h.submit(read_sqe(8), None, Some(vec![0; 4096])).unwrap();
        let w = h.submit(write_sqe(), Some(vec![0; 512]), None).unwrap();
        take(&mut h);
        let hd = mk(r, w);
        let outs = drive(&mut h, &pdu_bytes(Pdu::C2HData(hd), &f, &vec![0xEE; hd.datal as usize]), 4096);
        assert!(matches!(closed_with(&outs), Some(HostError::Fatal { .. })), "{hd:?}: {outs:?}");
        assert_eq!(sent_term(outs).map(|t| t.fes), Some(fes), "{hd:?}");
        h.fail_all(status::ABORTED_SQ_DELETION);
        let done = completions(take(&mut h));
        assert_eq!(done.len(), 2, "outstanding commands come back with their buffers");
        assert!(done.iter().all(|c| !c.cqe.status().is_success()));
    }
}

#[test]
fn r2t_without_data_or_beyond_it_is_fatal() {
    for (which, len) in [(0, 512u32), (1, 8192), (2, 100)] {
        let (mut h, f, _) = connected(Digests::default(), 4096);
        let r = h.submit(read_sqe(1), None, Some(vec![0; 512])).unwrap();
        let w = h.submit(write_sqe(), Some(vec![0; 16384]), None).unwrap();
        take(&mut h);
        let r2t = match which {
            0 => R2T { cccid: r, ttag: 1, r2to: 0, r2tl: len },
            1 => R2T { cccid: w, ttag: 1, r2to: 16384 - 4096, r2tl: len },
            _ => R2T { cccid: 99, ttag: 1, r2to: 0, r2tl: len },
        };
        let outs = drive(&mut h, &pdu_bytes(Pdu::R2T(r2t), &f, &[]), 4096);
        assert!(matches!(closed_with(&outs), Some(HostError::Fatal { .. })), "{r2t:?}");
        assert!(sent_term(outs).is_some());
    }
}

#[test]
fn wrong_data_digest_fails_only_that_command() {
    let (mut h, f, _) = connected(BOTH, 4096);
    let cid = h.submit(read_sqe(1), None, Some(vec![0; 512])).unwrap();
    take(&mut h);
    let hd = C2HData { cccid: cid, datao: 0, datal: 512, last: true, success: false };
    let mut b = pdu_bytes(Pdu::C2HData(hd), &f, &[3; 512]);
    let n = b.len();
    b[n - 1] ^= 0xFF;
    b.extend(pdu_bytes(resp(cid, status::SUCCESS), &f, &[]));
    let done = completions(drive(&mut h, &b, 100));
    assert_eq!(done.len(), 1);
    assert!(done[0].digest_error);
    assert!(!h.is_closed());
    // The stream is still usable.
    let cid = h.submit(read_sqe(1), None, Some(vec![0; 512])).unwrap();
    let done = completions(drive(&mut h, &pdu_bytes(resp(cid, status::SUCCESS), &f, &[]), 100));
    assert!(!done[0].digest_error);
}

#[test]
fn c2h_termreq_closes() {
    let (mut h, f, _) = connected(Digests::default(), 4096);
    let outs = drive(&mut h, &pdu_bytes(Pdu::C2HTermReq(TermReq { fes: 2, fei: 0 }), &f, &[]), 64);
    assert_eq!(closed_with(&outs), Some(HostError::PeerTerminated { fes: 2, fei: 0 }));
    assert!(matches!(h.recv_target(), RecvTarget::Closed));
}

#[test]
fn garbage_is_fatal_and_never_panics() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..200 {
        let (mut h, _, _) = connected(BOTH, 4096);
        let _ = h.submit(read_sqe(1), None, Some(vec![0; 512]));
        let bytes: Vec<u8> = (0..300).map(|_| (xorshift(&mut seed) & 0xFF) as u8).collect();
        drive(&mut h, &bytes, 1 + (xorshift(&mut seed) % 64) as usize);
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

struct Heap;
impl BufAlloc<Vec<u8>> for Heap {
    fn alloc(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
}

/// Host and target cores back to back in memory, with random chunking both ways and a RAM disk.
#[test]
fn back_to_back_with_the_target_core() {
    for d in [Digests::default(), BOTH] {
        let mut seed = 0xDEAD_BEEF_u64 ^ u64::from(d.data);
        let tcfg = TargetConnConfig { maxh2cdata: 16384, ..TargetConnConfig::default() };
        let mut t: TargetConn<Vec<u8>> = TargetConn::new(tcfg);
        t.set_queue(1, 63, false);
        let mut h: HostConn<Vec<u8>> = HostConn::new(HostConfig { digests: d, depth: 32, ..HostConfig::default() });
        h.set_qid(1);
        let mut disk = vec![0u8; 1 << 20];
        let mut to_t: Vec<u8> = Vec::new();
        let mut to_h: Vec<u8> = Vec::new();
        let mut done: Vec<HostCompletion<Vec<u8>>> = Vec::new();
        let step = |h: &mut HostConn<Vec<u8>>,
                    t: &mut TargetConn<Vec<u8>>,
                    to_t: &mut Vec<u8>,
                    to_h: &mut Vec<u8>,
                    done: &mut Vec<HostCompletion<Vec<u8>>>,
                    disk: &mut Vec<u8>,
                    seed: &mut u64| {
            let mut rest = Vec::new();
            to_t.extend(wire(take(h), &mut rest));
            for o in rest {
                match o {
                    HostOutput::Completion(c) => done.push(c),
                    o => panic!("{o:?}"),
                }
            }
            // Target side: random chunk.
            let n = (1 + xorshift(seed) % 20000) as usize;
            let n = n.min(to_t.len());
            let chunk: Vec<u8> = to_t.drain(..n).collect();
            let mut off = 0;
            while off < chunk.len() {
                match t.recv_target(&mut Heap) {
                    target::RecvTarget::Small(k) => {
                        off += t.feed(&chunk[off..(off + k.max(1)).min(chunk.len())], &mut Heap)
                    }
                    target::RecvTarget::Data(dst) => {
                        let k = dst.len().min(chunk.len() - off);
                        dst[..k].copy_from_slice(&chunk[off..off + k]);
                        off += k;
                        t.data_received(k, &mut Heap);
                    }
                    target::RecvTarget::Closed => panic!("target closed"),
                }
            }
            while let Some(o) = t.poll_output() {
                match o {
                    TargetOutput::Send(p) => {
                        to_h.extend_from_slice(p.head());
                        if let Some(dd) = &p.data {
                            to_h.extend_from_slice(dd);
                        }
                        if let Some(g) = p.ddgst {
                            to_h.extend_from_slice(&g);
                        }
                    }
                    TargetOutput::Command(c) => {
                        let off = c.sqe.cdw10 as usize * 512;
                        let len = c.xfer_len as usize;
                        let comp = match c.dir {
                            DataDir::ToController => {
                                disk[off..off + len].copy_from_slice(c.data.as_ref().unwrap());
                                Completion::status(status::SUCCESS)
                            }
                            DataDir::ToHost => Completion {
                                data: Some(disk[off..off + len].to_vec()),
                                ..Completion::status(status::SUCCESS)
                            },
                            DataDir::None => Completion::status(status::SUCCESS),
                        };
                        t.complete(c.sqe.cid, comp);
                    }
                    TargetOutput::Close(r) => panic!("{r:?}"),
                }
            }
            // Host side: random chunk.
            let n = ((1 + xorshift(seed) % 20000) as usize).min(to_h.len());
            let chunk: Vec<u8> = to_h.drain(..n).collect();
            let mut off = 0;
            while off < chunk.len() {
                match h.recv_target() {
                    RecvTarget::Small(k) => off += h.feed(&chunk[off..(off + k.max(1)).min(chunk.len())]),
                    RecvTarget::Data(dst) => {
                        let k = dst.len().min(chunk.len() - off);
                        dst[..k].copy_from_slice(&chunk[off..off + k]);
                        off += k;
                        h.data_received(k);
                    }
                    RecvTarget::Closed => panic!("host closed"),
                }
            }
        };
        while !h.is_ready() {
            step(&mut h, &mut t, &mut to_t, &mut to_h, &mut done, &mut disk, &mut seed);
        }
        // Writes then reads of 4 KiB .. 128 KiB at distinct places, several in flight.
        let sizes = [4096usize, 8192, 12288, 65536, 131072, 4096, 20480, 131072];
        let mut model = vec![0u8; 1 << 20];
        let mut lba = 0u32;
        let mut places = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|k| (k as u64 * 31 + i as u64 * 7 + u64::from(d.data)) as u8).collect();
            model[lba as usize * 512..lba as usize * 512 + len].copy_from_slice(&data);
            let sqe = Sqe { cdw10: lba, ..write_sqe() };
            h.submit(sqe, Some(data), None).unwrap();
            places.push((lba, len));
            lba += (len / 512) as u32;
        }
        while done.len() < sizes.len() {
            step(&mut h, &mut t, &mut to_t, &mut to_h, &mut done, &mut disk, &mut seed);
        }
        assert!(done.iter().all(|c| c.cqe.status().is_success() && c.data.is_some()));
        assert_eq!(disk, model);
        done.clear();
        let mut by_cid = std::collections::HashMap::new();
        for &(lba, len) in &places {
            let sqe = Sqe { cdw10: lba, ..read_sqe(1) };
            by_cid.insert(h.submit(sqe, None, Some(vec![0; len])).unwrap(), (lba, len));
        }
        while done.len() < places.len() {
            step(&mut h, &mut t, &mut to_t, &mut to_h, &mut done, &mut disk, &mut seed);
        }
        for c in &done {
            let buf = c.read_buf.as_ref().unwrap();
            let (lba, len) = by_cid[&c.cid];
            assert_eq!(buf.len(), len);
            assert_eq!(&buf[..], &model[lba as usize * 512..lba as usize * 512 + len], "cid {}", c.cid);
            assert!(c.cqe.status().is_success() && !c.digest_error);
        }
        assert_eq!(h.outstanding(), 0);
    }
}
