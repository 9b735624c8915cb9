//! Hostile input to a logged-in connection: each case is rejected or closes the connection as
//! RFC 7143 says for ErrorRecoveryLevel 0, and never panics.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

mod common;
use common::*;
use ff_iscsi::conn::{CloseReason, Completion, TargetOutput};
use ff_iscsi::pdu::{LoginRequest, NopOut, Pdu, RESERVED_TAG, RejectReason, Snack, Stage};
use ff_iscsi::{Digests, Limits};

fn rejected(s: &[Sent]) -> Option<(u8, Vec<u8>)> {
    s.iter().find_map(|x| match x.pdu {
        Pdu::Reject(r) => Some((r.reason, x.data.clone())),
        _ => None,
    })
}

fn closed(outs: &[TargetOutput<Vec<u8>>]) -> Option<CloseReason> {
    outs.iter().find_map(|o| match o {
        TargetOutput::Close(r) => Some(r.clone()),
        _ => None,
    })
}

fn still_alive(c: &mut ff_iscsi::TargetConn<Vec<u8>>, dg: Digests) {
    let nop = NopOut { immediate: true, itt: 0x77, ttt: RESERVED_TAG, ..NopOut::default() };
    let s = sent(&drive(c, &wire(Pdu::NopOut(nop), &[], &[], dg)));
    assert!(matches!(s.as_slice(), [x] if matches!(x.pdu, Pdu::NopIn(n) if n.itt == 0x77)), "{s:?}");
}

#[test]
fn truncated_input_waits_quietly() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    let b = ini.cmd(1, false, true, 100, true, &[5; 100]);
    for cut in [1, 47, 48, 120] {
        let mut c2 = ffp(portal_with(Limits::default()), &[]);
        assert!(drive(&mut c2, &b[..cut]).is_empty());
        assert!(!c2.is_closed());
    }
    assert_eq!(commands(drive(&mut c, &b)).len(), 1);
}

#[test]
fn header_digest_error_closes() {
    let dg = Digests { header: true, data: true };
    let mut c = ffp(portal_with(Limits::default()), &[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]);
    let mut b = Ini::new(dg).cmd(1, true, false, 512, true, &[]);
    b[49] ^= 0xff;
    let outs = drive(&mut c, &b);
    assert_eq!(closed(&outs), Some(CloseReason::HeaderDigest));
    assert!(sent(&outs).is_empty());
    assert!(c.is_closed());
}

#[test]
fn data_digest_errors() {
    let dg = Digests { header: true, data: true };
    let pairs = [("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")];
    // On a ping: Reject, the connection goes on.
    let mut c = ffp(portal_with(Limits::default()), &pairs);
    let nop = NopOut { immediate: true, itt: 3, ttt: RESERVED_TAG, ..NopOut::default() };
    let mut b = wire(Pdu::NopOut(nop), &[], b"12345678", dg);
    b[53] ^= 1;
    let outs = drive(&mut c, &b);
    let (reason, hdr) = rejected(&sent(&outs)).unwrap();
    assert_eq!((reason, &hdr[..48]), (RejectReason::DataDigest as u8, &b[..48]));
    still_alive(&mut c, dg);
    // On write data: Reject, then the connection closes (no recovery at level 0).
    let mut c = ffp(portal_with(Limits::default()), &pairs);
    let mut b = Ini::new(dg).cmd(1, false, true, 8, true, &[1; 8]);
    b[53] ^= 1;
    let outs = drive(&mut c, &b);
    assert_eq!(rejected(&sent(&outs)).unwrap().0, RejectReason::DataDigest as u8);
    assert!(matches!(closed(&outs), Some(CloseReason::ProtocolError(_))));
    assert!(commands(outs).is_empty());
}

#[test]
fn oversized_data_segment_is_rejected_and_skipped() {
    let mut c = ffp(portal_with(Limits { max_recv_data_segment_length: 4096, ..Limits::default() }), &[]);
    let nop = NopOut { immediate: true, itt: 3, ttt: RESERVED_TAG, ..NopOut::default() };
    let outs = drive(&mut c, &wire(Pdu::NopOut(nop), &[], &[0; 4097], Digests::default()));
    assert_eq!(rejected(&sent(&outs)).unwrap().0, RejectReason::ProtocolError as u8);
    still_alive(&mut c, Digests::default());
}

#[test]
fn data_out_beyond_the_transfer() {
    let mut c = ffp(portal_with(Limits::default()), &[("ImmediateData", "No")]);
    let mut ini = Ini::new(Digests::default());
    let outs = drive(&mut c, &ini.cmd(1, false, true, 1024, true, &[]));
    let Pdu::R2t(r) = sent(&outs)[0].pdu else { panic!() };
    let outs = drive(&mut c, &ini.data_out(1, r.ttt, 0, 0, true, &[0; 2048]));
    assert_eq!(rejected(&sent(&outs)).unwrap().0, RejectReason::ProtocolError as u8);
    assert!(matches!(closed(&outs), Some(CloseReason::ProtocolError(_))));
}

#[test]
fn data_out_sequence_errors() {
    // As libiscsi's DataSN test: two PDUs with DataSN 0, DataSN 27, DataSN -1, and reversed order;
    // a wrong offset; a wrong TTT; F before the end of the R2T.
    type Case = fn(&Ini, u32) -> Vec<u8>;
    let cases: [(&str, Case); 7] = [
        ("twice 0", |i, t| {
            [i.data_out(1, t, 0, 0, false, &[0; 512]), i.data_out(1, t, 0, 512, true, &[0; 512])].concat()
        }),
        ("27", |i, t| i.data_out(1, t, 27, 0, false, &[0; 512])),
        ("-1", |i, t| i.data_out(1, t, u32::MAX, 0, false, &[0; 512])),
        ("reversed", |i, t| {
            [i.data_out(1, t, 1, 512, true, &[0; 512]), i.data_out(1, t, 0, 0, false, &[0; 512])].concat()
        }),
        ("offset", |i, t| i.data_out(1, t, 0, 4, false, &[0; 512])),
        ("ttt", |i, t| i.data_out(1, t + 100, 0, 0, false, &[0; 512])),
        ("early F", |i, t| i.data_out(1, t, 0, 0, true, &[0; 512])),
    ];
    for (name, f) in cases {
        let mut c = ffp(portal_with(Limits::default()), &[("ImmediateData", "No")]);
        let mut ini = Ini::new(Digests::default());
        let outs = drive(&mut c, &ini.cmd(1, false, true, 1024, true, &[]));
        let Pdu::R2t(r) = sent(&outs)[0].pdu else { panic!() };
        let outs = drive(&mut c, &f(&ini, r.ttt));
        assert!(!outs.iter().any(|o| matches!(o, TargetOutput::Command(_))), "{name}: command ran");
        assert!(rejected(&sent(&outs)).is_some(), "{name}: no Reject");
        assert!(c.is_closed(), "{name}: connection left open");
    }
}

#[test]
fn unsolicited_data_not_allowed() {
    // InitialR2T=Yes (default): a command announcing unsolicited Data-Out is rejected.
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    let s = sent(&drive(&mut c, &ini.cmd(1, false, true, 1024, false, &[])));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::ProtocolError as u8);
    // And a Data-Out with the reserved TTT for a command that opened no unsolicited burst is fatal.
    let outs = drive(&mut c, &ini.cmd(2, false, true, 1024, true, &[]));
    assert_eq!(sent(&outs).len(), 1);
    let outs = drive(&mut c, &ini.data_out(2, RESERVED_TAG, 0, 0, true, &[0; 1024]));
    assert!(rejected(&sent(&outs)).is_some() && c.is_closed());
    // ImmediateData=No: data in the command is rejected.
    let mut c = ffp(portal_with(Limits::default()), &[("ImmediateData", "No")]);
    let mut ini = Ini::new(Digests::default());
    let s = sent(&drive(&mut c, &ini.cmd(1, false, true, 8, true, &[1; 8])));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::ProtocolError as u8);
    // Immediate data beyond the EDTL, data on a read.
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    assert!(rejected(&sent(&drive(&mut c, &ini.cmd(1, false, true, 4, true, &[1; 8])))).is_some());
    assert!(rejected(&sent(&drive(&mut c, &ini.cmd(2, true, false, 8, true, &[1; 8])))).is_some());
    // The rejected commands' CmdSNs were consumed: the next one runs.
    assert_eq!(commands(drive(&mut c, &ini.cmd(3, true, false, 8, true, &[]))).len(), 1);
}

#[test]
fn tags_and_unknown_pdus() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    assert_eq!(commands(drive(&mut c, &ini.cmd(1, true, false, 8, true, &[]))).len(), 1);
    // The same ITT while it is outstanding; the reserved ITT.
    let s = sent(&drive(&mut c, &ini.cmd(1, true, false, 8, true, &[])));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::TaskInProgress as u8);
    let s = sent(&drive(&mut c, &ini.cmd(RESERVED_TAG, true, false, 8, true, &[])));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::InvalidPduField as u8);
    // Data-Out for no command.
    let s = sent(&drive(&mut c, &ini.data_out(99, 5, 0, 0, true, &[0; 16])));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::InvalidPduField as u8);
    // SNACK at ErrorRecoveryLevel 0, an unknown opcode, a login request, a target opcode.
    let s = sent(&drive(&mut c, &wire(Pdu::Snack(Snack::default()), &[], &[], Digests::default())));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::ProtocolError as u8);
    let mut b = wire(Pdu::NopOut(NopOut::default()), &[], &[], Digests::default());
    b[0] = 0x1c;
    assert_eq!(rejected(&sent(&drive(&mut c, &b))).unwrap().0, RejectReason::CommandNotSupported as u8);
    let l = LoginRequest {
        transit: false,
        cont: false,
        csg: Stage::Security,
        nsg: Stage::Security,
        version_max: 0,
        version_min: 0,
        isid: ISID,
        tsih: 1,
        itt: 5,
        cid: 1,
        cmd_sn: 0,
        exp_stat_sn: 0,
    };
    let s = sent(&drive(&mut c, &wire(Pdu::LoginRequest(l), &[], &[], Digests::default())));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::ProtocolError as u8);
    let mut b = wire(Pdu::NopOut(NopOut::default()), &[], &[], Digests::default());
    b[0] = 0x21;
    assert_eq!(rejected(&sent(&drive(&mut c, &b))).unwrap().0, RejectReason::ProtocolError as u8);
    still_alive(&mut c, Digests::default());
    c.complete(1, Completion::good());
    assert_eq!(sent(&drain(&mut c)).len(), 1);
}

#[test]
fn cmd_sn_gap_closes() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    ini.cmd_sn = 5;
    let outs = drive(&mut c, &ini.cmd(1, true, false, 8, true, &[]));
    assert!(rejected(&sent(&outs)).is_some());
    assert!(matches!(closed(&outs), Some(CloseReason::ProtocolError(_))));
}

#[test]
fn resource_limits() {
    // No buffer: BUSY once the data sent with the command was read.
    let mut c = ffp(portal_with(Limits { max_transfer: 4096, ..Limits::default() }), &[]);
    let mut ini = Ini::new(Digests::default());
    let outs = drive_with(&mut c, &ini.cmd(1, false, true, 64, true, &[3; 64]), 1 << 20, &mut Empty);
    let s = sent(&outs);
    assert!(matches!(s.as_slice(), [x] if matches!(x.pdu, Pdu::ScsiResponse(r) if r.status == 0x08)), "{s:?}");
    assert!(commands(outs).is_empty());
    // Larger than we gather: CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN CDB, and no R2T
    // asking for data that would be thrown away.
    let outs = drive(&mut c, &ini.cmd(2, false, true, 8192, true, &[3; 4096]));
    let s = sent(&outs);
    assert_eq!(s.len(), 1, "{s:?}");
    match s[0].pdu {
        Pdu::ScsiResponse(r) => {
            assert_eq!(r.status, 0x02);
            assert_eq!((s[0].data[2 + 2] & 0x0f, s[0].data[2 + 12]), (0x05, 0x24));
        }
        ref p => panic!("{p:?}"),
    }
    assert!(!c.is_closed());
}

#[test]
fn too_many_immediate_commands() {
    let mut c = ffp(portal_with(Limits::default()), &[]);
    let mut ini = Ini::new(Digests::default());
    for itt in 0..16 {
        let mut b = ini.cmd(itt, true, false, 8, true, &[]);
        ini.cmd_sn -= 1;
        b[0] |= 0x40;
        assert_eq!(commands(drive(&mut c, &b)).len(), 1);
    }
    let mut b = ini.cmd(100, true, false, 8, true, &[]);
    b[0] |= 0x40;
    let s = sent(&drive(&mut c, &b));
    assert_eq!(rejected(&s).unwrap().0, RejectReason::ImmediateCommandReject as u8);
}
