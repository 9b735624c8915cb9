//! The target connection core driven with byte vectors: connection setup, reads, writes in capsule and
//! by R2T, digests, and hostile input that must end in a C2HTermReq.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use ff_nvme::nvme::{SglDescriptor, Sqe, opcode, status};
use ff_nvme_tcp::target::{
    BufAlloc, C2hSuccess, Completion, DataDir, RecvTarget, TargetConn, TargetConnConfig, TargetOutput,
};
use ff_nvme_tcp::{CapsuleCmd, Decoder, DecoderConfig, Digests, Fes, Framing, H2CData, IcReq, Need, Pdu, PduType};

struct Heap;
impl BufAlloc<Vec<u8>> for Heap {
    fn alloc(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
}

/// Feeds `bytes` to the connection in chunks of at most `chunk`, as a socket would deliver them.
fn drive(conn: &mut TargetConn<Vec<u8>>, bytes: &[u8], chunk: usize) -> Vec<TargetOutput<Vec<u8>>> {
    let mut off = 0;
    let mut out = Vec::new();
    while off < bytes.len() {
        match conn.recv_target(&mut Heap) {
            RecvTarget::Small(n) => {
                let n = n.max(1).min(chunk).min(bytes.len() - off);
                let used = conn.feed(&bytes[off..off + n], &mut Heap);
                off += used;
                if used == 0 && !conn.is_closed() {
                    // Done state: nothing consumed, progress comes from the next call.
                    continue;
                }
            }
            RecvTarget::Data(dst) => {
                let n = dst.len().min(chunk).min(bytes.len() - off);
                dst[..n].copy_from_slice(&bytes[off..off + n]);
                off += n;
                conn.data_received(n, &mut Heap);
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

fn pdu_bytes(p: Pdu, f: &Framing, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512 + data.len()];
    let n = p.encode_with_data(f, data, &mut b).unwrap();
    b.truncate(n);
    b
}

fn icreq(dgst: Digests) -> Vec<u8> {
    pdu_bytes(Pdu::IcReq(IcReq { pfv: 0, hpda: 0, dgst, maxr2t: 0 }), &Framing::default(), &[])
}

fn read_cmd(cid: u16, len: u32) -> Sqe {
    Sqe { opcode: opcode::IO_READ, flags: 0x40, cid, nsid: 1, dptr: SglDescriptor::transport(len), ..Sqe::default() }
}

fn write_cmd(cid: u16, len: u32, in_capsule: bool) -> Sqe {
    Sqe {
        opcode: opcode::IO_WRITE,
        flags: 0x40,
        cid,
        nsid: 1,
        dptr: if in_capsule { SglDescriptor::in_capsule(0, len) } else { SglDescriptor::transport(len) },
        ..Sqe::default()
    }
}

/// Decodes what the target sent, as a host would.
fn host_view(outs: &[TargetOutput<Vec<u8>>], digests: Digests) -> Vec<(Pdu, Vec<u8>)> {
    let mut wire = Vec::new();
    for o in outs {
        if let TargetOutput::Send(p) = o {
            wire.extend_from_slice(p.head());
            if let Some(d) = &p.data {
                wire.extend_from_slice(d);
            }
            if let Some(g) = p.ddgst {
                wire.extend_from_slice(&g);
            }
        }
    }
    let mut dec = Decoder::new(DecoderConfig { hdgst: digests.header, ddgst: digests.data, ..DecoderConfig::host() });
    // The host already sent ICReq: prime the decoder's phase by expecting ICResp first when present.
    let mut pdus = Vec::new();
    let mut off = 0;
    let mut data = Vec::new();
    while off < wire.len() {
        match dec.next_need() {
            Need::Header { len } | Need::Pad { len } | Need::DataDigest { len } => {
                off += dec.feed(&wire[off..(off + len).min(wire.len())]).unwrap();
            }
            Need::Data { len } => {
                data.extend_from_slice(&wire[off..off + len]);
                dec.data_received(&wire[off..off + len]).unwrap();
                off += len;
            }
            Need::Done => pdus.push((dec.finish().unwrap(), std::mem::take(&mut data))),
            Need::Closed => break,
        }
    }
    if matches!(dec.next_need(), Need::Done) {
        pdus.push((dec.finish().unwrap(), data));
    }
    pdus
}

fn commands(outs: Vec<TargetOutput<Vec<u8>>>) -> Vec<ff_nvme_tcp::target::Command<Vec<u8>>> {
    outs.into_iter()
        .filter_map(|o| match o {
            TargetOutput::Command(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn connected(d: Digests) -> (TargetConn<Vec<u8>>, Framing) {
    let mut c = TargetConn::new(TargetConnConfig::default());
    let outs = drive(&mut c, &icreq(d), 1000);
    let view = host_view(&outs, d);
    let Pdu::IcResp(r) = view[0].0 else { panic!("{view:?}") };
    assert_eq!(r.dgst, d);
    assert_eq!(r.maxh2cdata, TargetConnConfig::default().maxh2cdata);
    (c, Framing { hdgst: d.header, ddgst: d.data, pda: 0 })
}

#[test]
fn read_returns_c2hdata_then_capsule_resp() {
    for d in [Digests::default(), Digests { header: true, data: true }] {
        for chunk in [1, 7, 4096] {
            let (mut c, f) = connected(d);
            let cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(5, 4096) }), &f, &[]);
            let cmds = commands(drive(&mut c, &cmd, chunk));
            assert_eq!(cmds.len(), 1);
            assert_eq!(cmds[0].dir, DataDir::ToHost);
            assert_eq!(cmds[0].xfer_len, 4096);
            let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
            c.complete(5, Completion { data: Some(data.clone()), ..Completion::status(status::SUCCESS) });
            let mut outs = Vec::new();
            while let Some(o) = c.poll_output() {
                outs.push(o);
            }
            // Re-run the whole exchange through a host decoder (ICResp first).
            let mut all = drive(&mut TargetConn::new(TargetConnConfig::default()), &icreq(d), 1000);
            all.extend(outs);
            let view = host_view(&all, d);
            let Pdu::C2HData(h) = view[1].0 else { panic!("{view:?}") };
            assert_eq!((h.cccid, h.datao, h.datal, h.last, h.success), (5, 0, 4096, true, false));
            assert_eq!(view[1].1, data);
            let Pdu::CapsuleResp(r) = view[2].0 else { panic!() };
            assert_eq!(r.cqe.cid, 5);
            assert!(r.cqe.status().is_success());
        }
    }
}

#[test]
fn c2h_success_skips_the_response_when_sq_flow_control_is_off() {
    let (mut c, f) = connected(Digests::default());
    c.set_queue(1, 127, true);
    drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(9, 512) }), &f, &[]), 64);
    c.complete(9, Completion { data: Some(vec![1; 512]), ..Completion::status(status::SUCCESS) });
    let mut kinds = Vec::new();
    while let Some(TargetOutput::Send(p)) = c.poll_output() {
        kinds.push(p.kind);
    }
    assert_eq!(kinds, [PduType::C2HData]);
}

/// Drives one read of `len` bytes to completion on I/O queue 1 and returns the kinds of PDU sent.
fn read_pdus(cfg: TargetConnConfig, sq_flow_off: bool, c: Completion<Vec<u8>>) -> Vec<(PduType, bool)> {
    let mut conn = TargetConn::new(cfg);
    drive(&mut conn, &icreq(Digests::default()), 1000);
    while conn.poll_output().is_some() {}
    conn.set_queue(1, 127, sq_flow_off);
    let f = Framing::default();
    drive(&mut conn, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(9, 512) }), &f, &[]), 64);
    conn.complete(9, c);
    let mut out = Vec::new();
    while let Some(TargetOutput::Send(p)) = conn.poll_output() {
        let success = p.kind == PduType::C2HData && p.head()[1] & ff_nvme_tcp::pdu::Flags::SUCCESS != 0;
        out.push((p.kind, success));
    }
    out
}

#[test]
fn c2h_success_always_skips_the_response_with_sq_flow_control_on() {
    let ok = || Completion { data: Some(vec![1; 512]), ..Completion::status(status::SUCCESS) };
    let default = TargetConnConfig::default();
    let always = TargetConnConfig { c2h_success: C2hSuccess::Always, ..default };
    // Default: SUCCESS only where the host disabled SQ flow control.
    assert_eq!(read_pdus(default, false, ok()), [(PduType::C2HData, false), (PduType::CapsuleResp, false)]);
    assert_eq!(read_pdus(default, true, ok()), [(PduType::C2HData, true)]);
    // Always: one PDU per read either way.
    assert_eq!(read_pdus(always, false, ok()), [(PduType::C2HData, true)]);
    // A completion with command-specific dwords still needs its CapsuleResp.
    let dw0 = Completion { dw0: 7, ..ok() };
    assert_eq!(read_pdus(always, false, dw0), [(PduType::C2HData, false), (PduType::CapsuleResp, false)]);
    // A failed read sends no data, only the response.
    let failed = Completion::status(status::INVALID_FIELD);
    assert_eq!(read_pdus(always, false, failed), [(PduType::CapsuleResp, false)]);
}

#[test]
fn c2h_success_mode_parses_its_spellings() {
    for m in [C2hSuccess::SqFlowOff, C2hSuccess::Always] {
        assert_eq!(m.to_string().parse::<C2hSuccess>(), Ok(m));
    }
    assert!("sometimes".parse::<C2hSuccess>().is_err());
}

#[test]
fn in_capsule_write_delivers_data_with_the_command() {
    for d in [Digests::default(), Digests { header: true, data: true }] {
        let (mut c, f) = connected(d);
        let data = vec![0xAB; 4096];
        let cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: write_cmd(1, 4096, true) }), &f, &data);
        let cmds = commands(drive(&mut c, &cmd, 333));
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
    }
}

#[test]
fn r2t_write_gathers_split_h2cdata_into_one_buffer() {
    for d in [Digests::default(), Digests { header: true, data: true }] {
        let (mut c, f) = connected(d);
        let cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: write_cmd(3, 16384, false) }), &f, &[]);
        let outs = drive(&mut c, &cmd, 100);
        let r2t = outs
            .iter()
            .find_map(|o| match o {
                TargetOutput::Send(p) if p.kind == PduType::R2T => Some(p.head().to_vec()),
                _ => None,
            })
            .expect("R2T sent");
        let (Pdu::R2T(r), _) = ff_nvme_tcp::pdu::decode_header(
            &r2t,
            &ff_nvme_tcp::HeaderCheck { hdgst: d.header, ddgst: d.data, pda: 0, max_data_len: 1 << 20 },
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((r.cccid, r.r2to, r.r2tl), (3, 0, 16384));
        let payload: Vec<u8> = (0..16384u32).map(|i| (i * 7) as u8).collect();
        let mut wire = Vec::new();
        for (i, part) in payload.chunks(8192).enumerate() {
            let h = H2CData { cccid: 3, ttag: r.ttag, datao: (i * 8192) as u32, datal: 8192, last: i == 1 };
            wire.extend(pdu_bytes(Pdu::H2CData(h), &f, part));
        }
        let cmds = commands(drive(&mut c, &wire, 1500));
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].data.as_deref(), Some(&payload[..]));
    }
}

fn term_of(outs: &[TargetOutput<Vec<u8>>]) -> Option<(u16, u32)> {
    outs.iter().find_map(|o| match o {
        TargetOutput::Close(ff_nvme_tcp::target::CloseReason::Fatal { fes, fei, .. }) => Some((*fes, *fei)),
        _ => None,
    })
}

#[test]
fn h2cdata_beyond_the_transfer_is_fatal() {
    let (mut c, f) = connected(Digests::default());
    drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: write_cmd(3, 4096, false) }), &f, &[]), 99);
    let h = H2CData { cccid: 3, ttag: 3, datao: 0, datal: 8192, last: true };
    let outs = drive(&mut c, &pdu_bytes(Pdu::H2CData(h), &f, &[0; 8192]), 4096);
    assert_eq!(term_of(&outs).map(|t| t.0), Some(Fes::DataTransferOutOfRange.code()));
    assert!(outs.iter().any(|o| matches!(o, TargetOutput::Send(p) if p.kind == PduType::C2HTermReq)));
    assert!(c.is_closed());
}

#[test]
fn h2cdata_for_an_unknown_command_is_fatal() {
    let (mut c, f) = connected(Digests::default());
    let h = H2CData { cccid: 77, ttag: 77, datao: 0, datal: 4096, last: true };
    let outs = drive(&mut c, &pdu_bytes(Pdu::H2CData(h), &f, &[0; 4096]), 4096);
    assert_eq!(term_of(&outs).map(|t| t.0), Some(Fes::DataTransferOutOfRange.code()));
}

#[test]
fn wrong_data_digest_fails_only_that_command() {
    let d = Digests { header: true, data: true };
    let (mut c, f) = connected(d);
    let mut cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: write_cmd(1, 4096, true) }), &f, &[5; 4096]);
    let n = cmd.len();
    cmd[n - 1] ^= 0xFF; // corrupt the data digest
    let outs = drive(&mut c, &cmd, 4096);
    assert!(commands_of(&outs) == 0, "the command is not executed");
    assert!(!c.is_closed(), "the stream stays usable");
    // The next command works.
    let outs2 = drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(2, 512) }), &f, &[]), 4096);
    assert_eq!(commands_of(&outs2), 1);
    let mut all = drive(&mut TargetConn::new(TargetConnConfig::default()), &icreq(d), 1000);
    all.extend(outs);
    let view = host_view(&all, d);
    let Pdu::CapsuleResp(r) = view[1].0 else { panic!("{view:?}") };
    assert_eq!(r.cqe.status(), status::TRANSIENT_TRANSPORT_ERROR);
    assert!(!r.cqe.dnr(), "a transient error must leave the host free to retry (DNR clear)");
}

#[test]
fn wrong_h2cdata_digest_fails_the_write_with_a_retryable_status() {
    let d = Digests { header: true, data: true };
    let (mut c, f) = connected(d);
    let mut outs =
        drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: write_cmd(6, 8192, false) }), &f, &[]), 64);
    let mut wire = Vec::new();
    for (i, part) in [[1u8; 4096], [2u8; 4096]].iter().enumerate() {
        let h = H2CData { cccid: 6, ttag: 6, datao: (i * 4096) as u32, datal: 4096, last: i == 1 };
        wire.extend(pdu_bytes(Pdu::H2CData(h), &f, part));
    }
    let first_end = wire.len() / 2;
    wire[first_end - 1] ^= 0x55; // corrupt the first PDU's data digest
    let rest = drive(&mut c, &wire, 1000);
    assert_eq!(commands_of(&rest), 0, "data that failed its digest is never written");
    assert!(!c.is_closed(), "the stream stays usable");
    outs.extend(rest);
    let mut all = drive(&mut TargetConn::new(TargetConnConfig::default()), &icreq(d), 1000);
    all.extend(outs);
    let resp = host_view(&all, d)
        .into_iter()
        .find_map(|(p, _)| match p {
            Pdu::CapsuleResp(r) => Some(r),
            _ => None,
        })
        .expect("a response for the write");
    assert_eq!((resp.cqe.cid, resp.cqe.status()), (6, status::TRANSIENT_TRANSPORT_ERROR));
    assert!(!resp.cqe.dnr());
}

fn commands_of(outs: &[TargetOutput<Vec<u8>>]) -> usize {
    outs.iter().filter(|o| matches!(o, TargetOutput::Command(_))).count()
}

#[test]
fn a_parked_aer_id_may_be_reused_on_the_admin_queue_only() {
    let aer = |cid| Sqe { opcode: opcode::ADMIN_ASYNC_EVENT, cid, ..Sqe::default() };
    let prop_get = |cid| Sqe { opcode: opcode::FABRICS, cid, nsid: 4, cdw11: 0x14, ..Sqe::default() };
    // Admin queue (qid 0): the AER stays with the caller; a command under its id is accepted.
    let (mut c, f) = connected(Digests::default());
    c.set_queue(0, 31, false);
    assert_eq!(commands_of(&drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: aer(3) }), &f, &[]), 72)), 1);
    let outs = drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: prop_get(3) }), &f, &[]), 72);
    assert_eq!(commands_of(&outs), 1, "the Property Get runs");
    assert!(!outs.iter().any(|o| matches!(o, TargetOutput::Send(_))), "no conflict response");
    assert_eq!(c.outstanding(), 1, "the AER's slot went to the new command");
    // Any other command still guards its id, on the admin queue too.
    let outs = drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: prop_get(3) }), &f, &[]), 72);
    assert_eq!(commands_of(&outs), 0);
    // An I/O queue has no parked AERs: the same reuse is a conflict.
    let (mut io, f) = connected(Digests::default());
    io.set_queue(1, 31, false);
    assert_eq!(commands_of(&drive(&mut io, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: aer(3) }), &f, &[]), 72)), 1);
    let outs = drive(&mut io, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(3, 512) }), &f, &[]), 72);
    assert_eq!(commands_of(&outs), 0, "conflict on an I/O queue");
}

#[test]
fn duplicate_cid_is_a_conflict_and_leaves_the_first_alone() {
    let (mut c, f) = connected(Digests::default());
    let cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(4, 512) }), &f, &[]);
    assert_eq!(commands_of(&drive(&mut c, &cmd, 4096)), 1);
    let outs = drive(&mut c, &cmd, 4096);
    assert_eq!(commands_of(&outs), 0);
    assert_eq!(c.outstanding(), 1);
}

#[test]
fn bad_sgl_and_oversized_transfers_get_status_not_panics() {
    let (mut c, f) = connected(Digests::default());
    let mut sqe = read_cmd(1, 4096);
    sqe.dptr.id = 0x00; // data block with address: not a TCP transfer
    let outs = drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe }), &f, &[]), 4096);
    assert_eq!(commands_of(&outs), 0);
    let huge = read_cmd(2, u32::MAX);
    let outs = drive(&mut c, &pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: huge }), &f, &[]), 4096);
    assert_eq!(commands_of(&outs), 0, "beyond MDTS: refused without allocating");
    assert!(!c.is_closed());
}

#[test]
fn garbage_and_capsule_before_icreq_are_fatal() {
    let mut c: TargetConn<Vec<u8>> = TargetConn::new(TargetConnConfig::default());
    let outs = drive(&mut c, &[0xFF; 64], 64);
    assert!(term_of(&outs).is_some());
    let mut c: TargetConn<Vec<u8>> = TargetConn::new(TargetConnConfig::default());
    let cmd = pdu_bytes(Pdu::CapsuleCmd(CapsuleCmd { sqe: read_cmd(1, 512) }), &Framing::default(), &[]);
    let outs = drive(&mut c, &cmd, 4096);
    assert_eq!(term_of(&outs).map(|t| t.0), Some(Fes::PduSequenceError.code()));
}

#[test]
fn host_termreq_closes() {
    let (mut c, f) = connected(Digests::default());
    let t = ff_nvme_tcp::TermReq { fes: 1, fei: 0 };
    let outs = drive(&mut c, &pdu_bytes(Pdu::H2CTermReq(t), &f, &[]), 4096);
    assert!(
        outs.iter()
            .any(|o| matches!(o, TargetOutput::Close(ff_nvme_tcp::target::CloseReason::HostTerminated { fes: 1 })))
    );
}
