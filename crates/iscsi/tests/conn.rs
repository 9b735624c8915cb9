//! Full feature phase flows through the target connection: writes with immediate data, unsolicited
//! Data-Out and R2Ts; reads split into Data-In; status in the last Data-In or a SCSI Response with
//! sense; the CmdSN window; NOP; task management; text; logout; digests.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;
use common::*;
use ff_iscsi::conn::{CloseReason, Completion, TargetOutput, TmfFunction, TmfResponseCode};
use ff_iscsi::pdu::{
    DataIn, LogoutRequest, NopOut, Pdu, R2t, RESERVED_TAG, ScsiCommand, ScsiResponse, TextRequest, TmfRequest,
};
use ff_iscsi::{Digests, Limits, Residual};

fn scsi_rsp(s: &Sent) -> ScsiResponse {
    match s.pdu {
        Pdu::ScsiResponse(r) => r,
        ref p => panic!("not a SCSI Response: {p:?}"),
    }
}

fn data_in(s: &Sent) -> DataIn {
    match s.pdu {
        Pdu::DataIn(d) => d,
        ref p => panic!("not a Data-In: {p:?}"),
    }
}

fn r2ts(outs: &[TargetOutput<Vec<u8>>]) -> Vec<R2t> {
    sent(outs)
        .into_iter()
        .filter_map(|s| match s.pdu {
            Pdu::R2t(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn write_with_immediate_data() {
    let mut c = ffp(portal_with(Limits::default()), &[("MaxRecvDataSegmentLength", "65536")]);
    let mut ini = Ini::new(Digests::default());
    let data = pattern(4096 + 3, 1);
    let edtl = data.len() as u32;
    let outs = drive(&mut c, &ini.cmd(0x10, false, true, edtl, true, &data));
    assert!(sent(&outs).is_empty(), "no R2T when all data came immediately");
    let cmds = commands(outs);
    assert_eq!(cmds.len(), 1);
    let cmd = &cmds[0];
    assert_eq!((cmd.itt, cmd.write, cmd.read, cmd.edtl, cmd.cdb.as_bytes()[0]), (0x10, true, false, edtl, 0x2a));
    assert_eq!(cmd.data.as_deref(), Some(&data[..]));
    let (exp, max) = c.window();
    assert_eq!(exp, 2);
    c.complete(0x10, Completion::good());
    let s = sent(&drain(&mut c));
    let r = scsi_rsp(&s[0]);
    assert_eq!((r.itt, r.response, r.status, r.residual, r.exp_data_sn), (0x10, 0, 0, Residual::None, 0));
    assert_eq!(r.sn.exp_cmd_sn, 2);
    // The window reopens by one when the command completes.
    assert_eq!(r.sn.max_cmd_sn, max.wrapping_add(1));
    assert!(s[0].data.is_empty());
}

#[test]
fn write_with_unsolicited_data_out() {
    let mut c = ffp(
        portal_with(Limits::default()),
        &[("InitialR2T", "No"), ("FirstBurstLength", "16384"), ("MaxRecvDataSegmentLength", "8192")],
    );
    assert!(!c.params().initial_r2t);
    let mut ini = Ini::new(Digests::default());
    let data = pattern(20000, 2);
    // 4 KiB immediate, then unsolicited Data-Out up to the 16 KiB first burst, then one R2T.
    let mut bytes = ini.cmd(7, false, true, 20000, false, &data[..4096]);
    bytes.extend(ini.data_out(7, RESERVED_TAG, 0, 4096, false, &data[4096..12288]));
    bytes.extend(ini.data_out(7, RESERVED_TAG, 1, 12288, true, &data[12288..16384]));
    let outs = drive(&mut c, &bytes);
    let r = r2ts(&outs);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].itt, r[0].offset, r[0].desired_len, r[0].r2t_sn), (7, 16384, 20000 - 16384, 0));
    assert_ne!(r[0].ttt, RESERVED_TAG);
    let outs = drive(&mut c, &ini.data_out(7, r[0].ttt, 0, 16384, true, &data[16384..]));
    let cmds = commands(outs);
    assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
    c.complete(7, Completion::good());
    let s = sent(&drain(&mut c));
    // One R2T was sent for the command.
    assert_eq!(scsi_rsp(&s[0]).exp_data_sn, 1);
}

#[test]
fn write_by_r2ts_across_max_burst() {
    let mut c = ffp(
        portal_with(Limits::default()),
        &[("MaxBurstLength", "16384"), ("MaxOutstandingR2T", "2"), ("ImmediateData", "No")],
    );
    let mut ini = Ini::new(Digests::default());
    let len = 3 * 16384 + 1000;
    let data = pattern(len, 3);
    let outs = drive(&mut c, &ini.cmd(9, false, true, len as u32, true, &[]));
    let first = r2ts(&outs);
    // Two outstanding at most.
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].offset, first[0].desired_len, first[0].r2t_sn), (0, 16384, 0));
    assert_eq!((first[1].offset, first[1].desired_len, first[1].r2t_sn), (16384, 16384, 1));
    assert_ne!(first[0].ttt, first[1].ttt);
    let mut all = first.clone();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let r = all[i];
        // Each R2T's data in 8 KiB Data-Out PDUs (the default MaxRecvDataSegmentLength).
        let mut bytes = Vec::new();
        let (mut off, mut sn) = (r.offset, 0);
        while off < r.offset + r.desired_len {
            let n = 8192.min(r.offset + r.desired_len - off);
            let fin = off + n == r.offset + r.desired_len;
            bytes.extend(ini.data_out(9, r.ttt, sn, off, fin, &data[off as usize..(off + n) as usize]));
            off += n;
            sn += 1;
        }
        let outs = drive(&mut c, &bytes);
        all.extend(r2ts(&outs));
        cmds.extend(commands(outs));
        i += 1;
    }
    let offs: Vec<(u32, u32, u32)> = all.iter().map(|r| (r.offset, r.desired_len, r.r2t_sn)).collect();
    assert_eq!(offs, vec![(0, 16384, 0), (16384, 16384, 1), (32768, 16384, 2), (49152, 1000, 3)]);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
}

#[test]
fn large_data_goes_straight_into_the_command_buffer() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    let data = pattern(8192, 4);
    let bytes = ini.cmd(1, false, true, 8192, true, &data);
    // Feed the header alone, then the data must be offered as a slice of the command's buffer.
    c.feed(&bytes[..48], &mut Heap);
    match c.recv_target(&mut Heap) {
        ff_iscsi::RecvTarget::Data(dst) => {
            assert_eq!(dst.len(), 8192);
            dst.copy_from_slice(&data);
        }
        other => panic!("expected a data slice, got {other:?}"),
    }
    c.data_received(8192, &mut Heap);
    let cmds = commands(drain(&mut c));
    assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
    // Byte at a time gives the same result.
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let cmds = commands(drive_with(&mut c, &bytes, 1, &mut Heap));
    assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
}

#[test]
fn read_split_into_data_in() {
    let mut c =
        ffp(portal_with(Limits::default()), &[("MaxRecvDataSegmentLength", "4096"), ("MaxBurstLength", "8192")]);
    let mut ini = Ini::new(Digests::default());
    let cmds = commands(drive(&mut c, &ini.cmd(0x20, true, false, 20000, true, &[])));
    assert_eq!((cmds[0].read, cmds[0].data.is_none()), (true, true));
    let data = pattern(20000, 5);
    c.complete(0x20, Completion::with_data(data.clone()));
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 1, "one output carries the whole read");
    let s = sent(&outs);
    // 4 KiB segments, F at each 8 KiB burst and at the end; status in the last one.
    let shape: Vec<(u32, usize, bool, Option<u8>, u32)> = s
        .iter()
        .map(|x| {
            let d = data_in(x);
            (d.offset, x.data.len(), d.final_bit, d.status, d.data_sn)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, 4096, false, None, 0),
            (4096, 4096, true, None, 1),
            (8192, 4096, false, None, 2),
            (12288, 4096, true, None, 3),
            (16384, 3616, true, Some(0), 4),
        ]
    );
    let joined: Vec<u8> = s.iter().flat_map(|x| x.data.clone()).collect();
    assert_eq!(joined, data);
    let last = data_in(&s[4]);
    assert_eq!((last.residual, last.itt, last.ttt), (Residual::None, 0x20, RESERVED_TAG));
    // StatSN only in the PDU with status; the next status PDU follows it.
    let stat = last.sn.stat_sn;
    assert!(s[..4].iter().all(|x| data_in(x).sn.stat_sn == 0));
    let nop = NopOut { immediate: true, itt: 5, ttt: RESERVED_TAG, cmd_sn: ini.cmd_sn, ..NopOut::default() };
    let s = sent(&drive(&mut c, &wire(Pdu::NopOut(nop), &[], &[], Digests::default())));
    let Pdu::NopIn(n) = s[0].pdu else { panic!() };
    assert_eq!(n.sn.stat_sn, stat.wrapping_add(1));
}

#[test]
fn read_residuals() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    // Less than expected: underflow.
    commands(drive(&mut c, &ini.cmd(1, true, false, 4096, true, &[])));
    c.complete(1, Completion::with_data(pattern(1000, 0)));
    let s = sent(&drain(&mut c));
    let d = data_in(s.last().unwrap());
    assert_eq!((d.status, d.residual), (Some(0), Residual::Underflow(3096)));
    // More than expected: cut, overflow.
    commands(drive(&mut c, &ini.cmd(2, true, false, 512, true, &[])));
    c.complete(2, Completion::with_data(pattern(4096, 0)));
    let s = sent(&drain(&mut c));
    assert_eq!(s.iter().map(|x| x.data.len()).sum::<usize>(), 512);
    assert_eq!(data_in(s.last().unwrap()).residual, Residual::Overflow(3584));
    // No data at all: a SCSI Response with the whole length as underflow.
    commands(drive(&mut c, &ini.cmd(3, true, false, 512, true, &[])));
    c.complete(3, Completion::good());
    let s = sent(&drain(&mut c));
    assert_eq!(scsi_rsp(&s[0]).residual, Residual::Underflow(512));
}

#[test]
fn sense_goes_in_a_scsi_response() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    commands(drive(&mut c, &ini.cmd(4, true, false, 1024, true, &[])));
    let sense = vec![0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0];
    let mut comp = Completion::check_condition(sense.clone());
    comp.data = Some(pattern(1024, 9));
    c.complete(4, comp);
    let s = sent(&drain(&mut c));
    assert_eq!(s.len(), 2);
    let d = data_in(&s[0]);
    assert_eq!((d.status, d.final_bit, s[0].data.len()), (None, true, 1024));
    let r = scsi_rsp(&s[1]);
    assert_eq!((r.status, r.response, r.exp_data_sn, r.residual), (0x02, 0, 1, Residual::None));
    assert_eq!(&s[1].data[..2], &(sense.len() as u16).to_be_bytes());
    assert_eq!(&s[1].data[2..], &sense[..]);
}

#[test]
fn cmd_sn_window() {
    let lim = Limits { queue_depth: 2, ..Limits::default() };
    let mut c = ffp(portal_with(lim), &[]);
    assert_eq!(c.window(), (1, 2));
    let mut ini = Ini::new(Digests::default());
    // Too high, too low: silently ignored.
    ini.cmd_sn = 3;
    assert!(drive(&mut c, &ini.cmd(1, false, false, 0, true, &[])).is_empty());
    ini.cmd_sn = 0;
    assert!(drive(&mut c, &ini.cmd(1, false, false, 0, true, &[])).is_empty());
    assert_eq!(c.window(), (1, 2));
    ini.cmd_sn = 1;
    assert_eq!(commands(drive(&mut c, &ini.cmd(1, false, false, 0, true, &[]))).len(), 1);
    assert_eq!(commands(drive(&mut c, &ini.cmd(2, false, false, 0, true, &[]))).len(), 1);
    // Both slots taken: the window is closed (MaxCmdSN = ExpCmdSN - 1).
    assert_eq!(c.window(), (3, 2));
    assert!(drive(&mut c, &ini.cmd(3, false, false, 0, true, &[])).is_empty());
    c.complete(1, Completion::good());
    let s = sent(&drain(&mut c));
    assert_eq!((scsi_rsp(&s[0]).sn.exp_cmd_sn, scsi_rsp(&s[0]).sn.max_cmd_sn), (3, 3));
    ini.cmd_sn = 3;
    assert_eq!(commands(drive(&mut c, &ini.cmd(3, false, false, 0, true, &[]))).len(), 1);
    // Immediate commands are outside the window.
    let mut b = ini.cmd(4, false, false, 0, true, &[]);
    b[0] |= 0x40;
    assert_eq!(commands(drive(&mut c, &b)).len(), 1);
    assert_eq!(c.window().0, 4);
}

#[test]
fn nop_ping_both_ways() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let nop = NopOut { immediate: true, lun: 3, itt: 0x55, ttt: RESERVED_TAG, cmd_sn: 1, exp_stat_sn: 0 };
    let s = sent(&drive(&mut c, &wire(Pdu::NopOut(nop), &[], b"ping data", Digests::default())));
    let Pdu::NopIn(n) = s[0].pdu else { panic!() };
    assert_eq!((n.itt, n.ttt, n.lun), (0x55, RESERVED_TAG, 3));
    assert_eq!(s[0].data, b"ping data");
    // Non-immediate ping consumes a CmdSN.
    let nop = NopOut { immediate: false, itt: 0x56, ttt: RESERVED_TAG, cmd_sn: 1, ..NopOut::default() };
    assert_eq!(sent(&drive(&mut c, &wire(Pdu::NopOut(nop), &[], &[], Digests::default()))).len(), 1);
    assert_eq!(c.window().0, 2);
    // Target ping: StatSN not advanced; the answer is reported.
    let before = n.sn.stat_sn;
    let ttt = c.ping().unwrap();
    let s = sent(&drain(&mut c));
    let Pdu::NopIn(p) = s[0].pdu else { panic!() };
    assert_eq!((p.itt, p.ttt), (RESERVED_TAG, ttt));
    assert_eq!(p.sn.stat_sn, before.wrapping_add(2));
    let answer = NopOut { immediate: true, itt: RESERVED_TAG, ttt, cmd_sn: 2, ..NopOut::default() };
    let outs = drive(&mut c, &wire(Pdu::NopOut(answer), &[], &[], Digests::default()));
    assert!(matches!(outs.as_slice(), [TargetOutput::PingReply(t)] if *t == ttt));
    assert!(sent(&outs).is_empty());
}

fn tmf(function: u8, itt: u32, ref_itt: u32, ref_cmd_sn: u32, cmd_sn: u32) -> Vec<u8> {
    let t = TmfRequest {
        immediate: true,
        function,
        lun: 0,
        itt,
        ref_itt,
        cmd_sn,
        exp_stat_sn: 0,
        ref_cmd_sn,
        exp_data_sn: 0,
    };
    wire(Pdu::TmfRequest(t), &[], &[], Digests::default())
}

fn tmf_code(s: &Sent) -> u8 {
    match s.pdu {
        Pdu::TmfResponse(r) => r.response,
        ref p => panic!("{p:?}"),
    }
}

#[test]
fn task_management() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    commands(drive(&mut c, &ini.cmd(1, true, false, 512, true, &[])));
    // ABORT TASK of an executing command goes to the runtime; its completion is then dropped.
    let outs = drive(&mut c, &tmf(1, 100, 1, 1, ini.cmd_sn));
    let Some(TargetOutput::TaskMgmt(t)) = outs.first() else { panic!("{outs:?}") };
    assert_eq!((t.function, t.ref_itt, t.aborted.clone()), (TmfFunction::AbortTask, Some(1), vec![1]));
    c.complete(1, Completion::with_data(vec![0; 512]));
    assert!(drain(&mut c).is_empty(), "no response for an aborted task");
    c.complete_tmf(100, TmfResponseCode::Complete);
    assert_eq!(tmf_code(&sent(&drain(&mut c))[0]), 0);
    // Unknown task, already done: does not exist; not yet received: complete.
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(1, 101, 77, 1, ini.cmd_sn)))[0]), 1);
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(1, 102, 77, ini.cmd_sn + 1, ini.cmd_sn)))[0]), 0);
    // Unsupported and unknown functions.
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(3, 103, 0, 0, ini.cmd_sn)))[0]), 5);
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(7, 104, 0, 0, ini.cmd_sn)))[0]), 5);
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(8, 105, 0, 0, ini.cmd_sn)))[0]), 4);
    assert_eq!(tmf_code(&sent(&drive(&mut c, &tmf(42, 106, 0, 0, ini.cmd_sn)))[0]), 255);
    // LUN RESET takes a write still waiting for data with it.
    let outs = drive(&mut c, &ini.cmd(2, false, true, 4096, true, &[]));
    assert_eq!(r2ts(&outs).len(), 1);
    commands(drive(&mut c, &ini.cmd(3, true, false, 512, true, &[])));
    assert_eq!(c.outstanding(), 2);
    let outs = drive(&mut c, &tmf(5, 107, 0, 0, ini.cmd_sn));
    let Some(TargetOutput::TaskMgmt(t)) = outs.first() else { panic!() };
    assert_eq!((t.function, t.aborted.clone()), (TmfFunction::LunReset, vec![3]));
    assert_eq!(c.outstanding(), 1);
    c.complete(3, Completion::good());
    c.complete_tmf(107, TmfResponseCode::Complete);
    let s = sent(&drain(&mut c));
    assert_eq!((s.len(), tmf_code(&s[0])), (1, 0));
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn logout_waits_for_outstanding_commands() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    commands(drive(&mut c, &ini.cmd(1, true, false, 512, true, &[])));
    let l = LogoutRequest { immediate: true, reason: 0, itt: 9, cid: 1, cmd_sn: ini.cmd_sn, exp_stat_sn: 0 };
    let outs = drive(&mut c, &wire(Pdu::LogoutRequest(l), &[], &[], Digests::default()));
    assert!(matches!(outs.as_slice(), [TargetOutput::Logout(0)]));
    // New commands now are rejected.
    let s = sent(&drive(&mut c, &ini.cmd(2, true, false, 512, true, &[])));
    assert!(matches!(s[0].pdu, Pdu::Reject(r) if r.reason == 0x0c));
    c.complete(1, Completion::with_data(vec![1; 512]));
    let outs = drain(&mut c);
    let s = sent(&outs);
    assert!(matches!(s.last().unwrap().pdu, Pdu::LogoutResponse(r) if r.response == 0 && r.itt == 9));
    assert!(matches!(outs.last(), Some(TargetOutput::Close(CloseReason::Logout))));
    assert!(c.is_closed());
}

#[test]
fn logout_other_reasons() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    for (reason, cid, want) in [(1u8, 2u16, 1u8), (2, 1, 2)] {
        let l = LogoutRequest { immediate: true, reason, itt: 9, cid, cmd_sn: 1, exp_stat_sn: 0 };
        let s = sent(&drive(&mut c, &wire(Pdu::LogoutRequest(l), &[], &[], Digests::default())));
        assert!(matches!(s[0].pdu, Pdu::LogoutResponse(r) if r.response == want));
        assert!(!c.is_closed());
    }
    let l = LogoutRequest { immediate: true, reason: 1, itt: 9, cid: 1, cmd_sn: 1, exp_stat_sn: 0 };
    let outs = drive(&mut c, &wire(Pdu::LogoutRequest(l), &[], &[], Digests::default()));
    assert!(matches!(outs.last(), Some(TargetOutput::Close(CloseReason::Logout))));
}

#[test]
fn digests_in_full_feature_phase() {
    let mut c = ffp(portal_with(Limits::default()), &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]);
    let dg = Digests { header: true, data: true };
    let mut ini = Ini::new(dg);
    let data = pattern(1001, 6);
    let cmds = commands(drive_with(&mut c, &ini.cmd(1, false, true, 1001, true, &data), 7, &mut Heap));
    assert_eq!(cmds[0].data.as_deref(), Some(&data[..]));
    c.complete(1, Completion::good());
    let s = sent(&drain(&mut c));
    assert!(s[0].hdgst);
    commands(drive(&mut c, &ini.cmd(2, true, false, 1001, true, &[])));
    c.complete(2, Completion::with_data(data.clone()));
    let s = sent(&drain(&mut c));
    assert!(s[0].hdgst && s[0].ddgst);
    assert_eq!(s[0].data, data);
}

#[test]
fn extended_cdb_and_bidirectional_length() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let cdb: Vec<u8> = (0..32u8).collect();
    let mut ahs = Vec::new();
    ff_iscsi::pdu::ahs::encode_ext_cdb(&cdb, &mut ahs);
    ff_iscsi::pdu::ahs::encode_bidi_read_len(300, &mut ahs);
    let mut base = [0u8; 16];
    base.copy_from_slice(&cdb[..16]);
    let sc = ScsiCommand {
        final_bit: true,
        read: true,
        write: true,
        itt: 4,
        edtl: 8,
        cmd_sn: 1,
        cdb: base,
        ..ScsiCommand::default()
    };
    let cmds = commands(drive(&mut c, &wire(Pdu::ScsiCommand(sc), &ahs, &[1; 8], Digests::default())));
    assert_eq!(cmds[0].cdb.as_bytes(), &cdb[..]);
    assert_eq!((cmds[0].bidi_read_len, cmds[0].data.as_deref()), (300, Some(&[1u8; 8][..])));
    c.complete(4, Completion::with_data(vec![2; 200]));
    let s = sent(&drain(&mut c));
    // Bidirectional: the status always travels in a SCSI Response, the read residual in its own field.
    let r = scsi_rsp(s.last().unwrap());
    assert_eq!((r.bidi_residual, r.residual), (Residual::Underflow(100), Residual::None));
}

#[test]
fn text_in_full_feature_phase() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let t = TextRequest {
        immediate: true,
        final_bit: true,
        itt: 3,
        ttt: RESERVED_TAG,
        cmd_sn: 1,
        ..TextRequest::default()
    };
    let body = text(&[
        ("SendTargets", ""),
        ("X-vendor.key", "1"),
        ("MaxRecvDataSegmentLength", "16384"),
        ("ImmediateData", "No"),
    ]);
    let s = sent(&drive(&mut c, &wire(Pdu::TextRequest(t), &[], &body, Digests::default())));
    let kvs = kv(&s[0].data);
    assert_eq!(get(&kvs, "TargetName").as_deref(), Some(TARGET));
    assert_eq!(get(&kvs, "X-vendor.key").as_deref(), Some("NotUnderstood"));
    assert_eq!(get(&kvs, "ImmediateData").as_deref(), Some("Reject"));
    assert_eq!(c.params().max_xmit_data_segment_length, 16384);
    // SendTargets=All belongs to discovery sessions.
    let s = sent(&drive(&mut c, &wire(Pdu::TextRequest(t), &[], &text(&[("SendTargets", "All")]), Digests::default())));
    assert_eq!(get(&kv(&s[0].data), "SendTargets").as_deref(), Some("Reject"));
}

#[test]
fn long_text_response_is_continued() {
    let mut p = (*portal_with(Limits::default())).clone();
    p.targets[0].portals = (0..300).map(|i| format!("192.0.2.{}:{}", i % 250, 3260 + i)).collect();
    let mut c = ffp(std::sync::Arc::new(p), &[]);
    let t = TextRequest {
        immediate: true,
        final_bit: true,
        itt: 3,
        ttt: RESERVED_TAG,
        cmd_sn: 1,
        ..TextRequest::default()
    };
    let s = sent(&drive(&mut c, &wire(Pdu::TextRequest(t), &[], &text(&[("SendTargets", "")]), Digests::default())));
    let mut answer = s[0].data.clone();
    let Pdu::TextResponse(mut r) = s[0].pdu else { panic!() };
    let mut rounds = 0;
    while !r.final_bit {
        assert!(r.cont && r.ttt != RESERVED_TAG && s[0].data.len() <= 8192);
        let more =
            TextRequest { immediate: true, final_bit: true, itt: 3, ttt: r.ttt, cmd_sn: 1, ..TextRequest::default() };
        let s = sent(&drive(&mut c, &wire(Pdu::TextRequest(more), &[], &[], Digests::default())));
        answer.extend_from_slice(&s[0].data);
        let Pdu::TextResponse(next) = s[0].pdu else { panic!() };
        r = next;
        rounds += 1;
    }
    assert!(rounds >= 1);
    assert_eq!(r.ttt, RESERVED_TAG);
    assert_eq!(kv(&answer).iter().filter(|(k, _)| k == "TargetAddress").count(), 300);
}
