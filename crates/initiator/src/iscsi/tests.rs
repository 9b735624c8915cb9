//! The host core with bytes: login exchanges, reads, writes, the window, pings, discovery, and hostile
//! target input. The "target" here is a few lines building PDUs with ff-iscsi's codec.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::login::{Chap, LoginError};
use super::scsi::{self, Sense};
use super::session::{Command, CommandError, Completion, DataDir, Session};
use super::{IscsiError, IscsiOptions};
use ff_iscsi::chap::{ChapAlg, to_hex};
use ff_iscsi::decoder::{Decoder, DecoderConfig, Need};
use ff_iscsi::pdu::{
    DataIn, LoginResponse, NopIn, Pdu, R2t, RESERVED_TAG, Residual, ScsiResponse, SeqNums, Stage, TextResponse,
};
use ff_iscsi::{Digests, TxData, TxPdu};

const IQN: &str = "iqn.2026-12.io.ferrofabric:unit";

/// Every PDU in `bytes`, with its data segment.
fn parse(bytes: &[u8], digests: bool) -> Vec<(Pdu, Vec<u8>)> {
    let mut dec =
        Decoder::new(DecoderConfig { max_data_len: (1 << 24) - 1, header_digest: digests, data_digest: digests });
    let (mut out, mut data, mut rest) = (Vec::new(), Vec::new(), bytes);
    loop {
        match dec.next_need() {
            Need::Done => {
                let f = dec.finish().unwrap();
                assert!(f.data_digest.is_ok());
                out.push((f.header.pdu.unwrap(), std::mem::take(&mut data)));
            }
            _ if rest.is_empty() => return out,
            Need::Data { len } => {
                let n = len.min(rest.len());
                data.extend_from_slice(&rest[..n]);
                dec.feed(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            Need::Closed => panic!("decoder closed"),
            _ => {
                let n = dec.feed(rest).unwrap();
                rest = &rest[n..];
            }
        }
    }
}

/// What the session sent since the last call.
fn sent(s: &mut Session) -> Vec<(Pdu, Vec<u8>)> {
    let digests = s.params().header_digest && s.is_logged_in();
    let mut all = Vec::new();
    while let Some(b) = s.poll_transmit() {
        all.extend(parse(&b, digests));
    }
    all
}

fn pdu(p: Pdu, data: &[u8], d: Digests) -> Vec<u8> {
    TxPdu::encode(&p, d, TxData::Owned(data.to_vec()), &[]).unwrap().to_bytes(&[])
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs.iter().flat_map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect()
}

fn keys(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let s = std::str::from_utf8(e).unwrap();
            let (k, v) = s.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn key(data: &[u8], k: &str) -> Option<String> {
    keys(data).into_iter().find(|(x, _)| x == k).map(|(_, v)| v)
}

fn login_rsp(isid: [u8; 6], transit: bool, csg: Stage, nsg: Stage, stat_sn: u32, tsih: u16) -> LoginResponse {
    LoginResponse {
        transit,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_active: 0,
        isid,
        tsih,
        itt: 0,
        sn: SeqNums { stat_sn, exp_cmd_sn: 1, max_cmd_sn: 32 },
        status_class: 0,
        status_detail: 0,
    }
}

fn opts() -> IscsiOptions {
    IscsiOptions { target_name: Some(IQN.into()), ..IscsiOptions::default() }
}

/// The operational answer a plain target gives.
fn op_answer(o: &IscsiOptions, max_recv: u32, digests: bool) -> Vec<u8> {
    let d = if digests { "CRC32C" } else { "None" };
    text(&[
        ("HeaderDigest", d),
        ("DataDigest", d),
        ("MaxRecvDataSegmentLength", &max_recv.to_string()),
        ("InitialR2T", if o.initial_r2t { "Yes" } else { "No" }),
        ("ImmediateData", if o.immediate_data { "Yes" } else { "No" }),
        ("MaxBurstLength", "262144"),
        ("FirstBurstLength", "65536"),
        ("MaxOutstandingR2T", "1"),
        ("MaxConnections", "1"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("ErrorRecoveryLevel", "0"),
        ("TargetPortalGroupTag", "1"),
    ])
}

/// A logged-in session: AuthMethod=None, then the operational answer above.
fn logged_in(o: IscsiOptions, max_recv: u32, max_cmd_sn: u32) -> Session {
    let digests = o.header_digest;
    let mut s = Session::new(o.clone());
    let first = sent(&mut s);
    let (Pdu::LoginRequest(req), data) = &first[0] else { panic!("{first:?}") };
    assert!(req.transit && req.csg == Stage::Security && req.nsg == Stage::Operational);
    assert_eq!(key(data, "AuthMethod").as_deref(), Some("None"));
    let r = login_rsp(o.isid, true, Stage::Security, Stage::Operational, 7, 0);
    s.receive(&pdu(Pdu::LoginResponse(r), &text(&[("AuthMethod", "None")]), Digests::default())).unwrap();
    let op = sent(&mut s);
    let (Pdu::LoginRequest(req), _) = &op[0] else { panic!("{op:?}") };
    assert!(req.transit && req.csg == Stage::Operational && req.nsg == Stage::FullFeature);
    assert_eq!(req.exp_stat_sn, 8);
    let mut r = login_rsp(o.isid, true, Stage::Operational, Stage::FullFeature, 8, 0x1234);
    r.sn.max_cmd_sn = max_cmd_sn;
    s.receive(&pdu(Pdu::LoginResponse(r), &op_answer(&o, max_recv, digests), Digests::default())).unwrap();
    assert!(s.is_logged_in(), "{:?}", s.error());
    assert_eq!(s.tsih(), 0x1234);
    s
}

fn sn(stat_sn: u32, max_cmd_sn: u32) -> SeqNums {
    SeqNums { stat_sn, exp_cmd_sn: 1, max_cmd_sn }
}

fn read_cmd(len: usize, tag: u64) -> Command {
    Command {
        lun: scsi::lun_to_wire(1),
        cdb: scsi::read16(0, (len / 512) as u32),
        data: DataDir::Read(vec![0; len]),
        tag,
    }
}

fn write_cmd(data: Vec<u8>, tag: u64) -> Command {
    Command {
        lun: scsi::lun_to_wire(1),
        cdb: scsi::write16(0, (data.len() / 512) as u32),
        data: DataDir::Write(data),
        tag,
    }
}

fn completions(s: &mut Session) -> Vec<Completion> {
    std::iter::from_fn(|| s.poll_completion()).collect()
}

#[test]
fn login_offers_our_keys_and_takes_the_targets_limits() {
    let o = IscsiOptions { initial_r2t: false, immediate_data: true, ..opts() };
    let mut s = Session::new(o.clone());
    let first = sent(&mut s);
    let (Pdu::LoginRequest(req), data) = &first[0] else { panic!() };
    assert_eq!((req.isid, req.tsih, req.cmd_sn), (o.isid, 0, 1));
    assert_eq!(key(data, "InitiatorName").as_deref(), Some(super::DEFAULT_INITIATOR));
    assert_eq!(key(data, "TargetName").as_deref(), Some(IQN));
    assert_eq!(key(data, "SessionType").as_deref(), Some("Normal"));
    let s = logged_in(o, 16384, 40);
    let p = s.params();
    assert_eq!(p.max_xmit_data_segment_length, 16384);
    assert_eq!((p.max_burst_length, p.first_burst_length), (262_144, 65_536));
    assert!(!p.initial_r2t && p.immediate_data && !p.header_digest);
    assert_eq!(s.window(), (1, 1, 40));
}

#[test]
fn login_failure_status_and_wrong_isid_are_clear_errors() {
    let mut s = Session::new(opts());
    sent(&mut s);
    let mut r = login_rsp(s.options().isid, false, Stage::Security, Stage::Security, 0, 0);
    r.status_class = 2;
    r.status_detail = 3;
    let e = s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).unwrap_err();
    assert_eq!(e, IscsiError::Login(LoginError::Status { class: 2, detail: 3 }));
    assert!(e.to_string().contains("target not found"));
    assert!(s.is_closed());

    let mut s = Session::new(opts());
    sent(&mut s);
    let r = login_rsp([9; 6], true, Stage::Security, Stage::Operational, 0, 0);
    assert!(s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).is_err());
    // A target that will not give the digest we require fails the login.
    let o = IscsiOptions { header_digest: true, ..opts() };
    let mut s = Session::new(o.clone());
    sent(&mut s);
    let r = login_rsp(o.isid, true, Stage::Security, Stage::Operational, 0, 0);
    s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).unwrap();
    sent(&mut s);
    let r = login_rsp(o.isid, true, Stage::Operational, Stage::FullFeature, 1, 1);
    let e = s.receive(&pdu(Pdu::LoginResponse(r), &text(&[("HeaderDigest", "None")]), Digests::default()));
    assert!(matches!(e, Err(IscsiError::Login(LoginError::Refused(_)))), "{e:?}");
}

#[test]
fn chap_mutual_login_computes_and_checks_responses() {
    let chap = Chap {
        user: "ini".into(),
        secret: b"ini-secret-12".to_vec(),
        mutual: Some(("tgt".into(), b"tgt-secret-12".to_vec())),
    };
    let o = IscsiOptions { chap: Some(chap), ..opts() };
    let run = |target_secret: &[u8]| -> Result<Session, IscsiError> {
        let mut s = Session::new(o.clone());
        let first = sent(&mut s);
        assert_eq!(key(&first[0].1, "AuthMethod").as_deref(), Some("CHAP"), "mutual CHAP never offers None");
        let r = login_rsp(o.isid, false, Stage::Security, Stage::Security, 0, 0);
        s.receive(&pdu(Pdu::LoginResponse(r), &text(&[("AuthMethod", "CHAP")]), Digests::default()))?;
        let a = sent(&mut s);
        assert_eq!(key(&a[0].1, "CHAP_A").as_deref(), Some("5"));
        let challenge = [7u8; 16];
        s.receive(&pdu(
            Pdu::LoginResponse(r),
            &text(&[("CHAP_A", "5"), ("CHAP_I", "42"), ("CHAP_C", &to_hex(&challenge))]),
            Digests::default(),
        ))?;
        let (Pdu::LoginRequest(req), d) = &sent(&mut s)[0] else { panic!() };
        assert!(req.transit && req.nsg == Stage::Operational);
        assert_eq!(key(d, "CHAP_N").as_deref(), Some("ini"));
        assert_eq!(key(d, "CHAP_R").unwrap(), to_hex(&ChapAlg::Md5.response(42, b"ini-secret-12", &challenge)));
        let id: u8 = key(d, "CHAP_I").unwrap().parse().unwrap();
        let theirs = ff_iscsi::chap::decode_binary(&key(d, "CHAP_C").unwrap()).unwrap();
        let proof = to_hex(&ChapAlg::Md5.response(id, target_secret, &theirs));
        let r = login_rsp(o.isid, true, Stage::Security, Stage::Operational, 1, 0);
        s.receive(&pdu(Pdu::LoginResponse(r), &text(&[("CHAP_N", "tgt"), ("CHAP_R", &proof)]), Digests::default()))?;
        Ok(s)
    };
    let mut s = run(b"tgt-secret-12").unwrap();
    let (Pdu::LoginRequest(req), _) = &sent(&mut s)[0] else { panic!() };
    assert_eq!(req.csg, Stage::Operational);
    assert_eq!(run(b"impostor-secret").unwrap_err(), IscsiError::Login(LoginError::MutualChap));
}

#[test]
fn read_data_in_with_status_any_split() {
    let mut s = logged_in(opts(), 8192, 32);
    let itt = s.submit(read_cmd(8192, 77)).unwrap();
    let (Pdu::ScsiCommand(c), d) = &sent(&mut s)[0] else { panic!() };
    assert!(c.read && !c.write && c.final_bit && d.is_empty());
    assert_eq!((c.edtl, c.cmd_sn, c.exp_stat_sn, c.itt), (8192, 1, 9, itt));
    let data: Vec<u8> = (0..8192).map(|i| (i * 7) as u8).collect();
    let mut wire = Vec::new();
    let d0 = DataIn { itt, offset: 0, data_sn: 0, sn: sn(0, 33), ..DataIn::default() };
    wire.extend(pdu(Pdu::DataIn(d0), &data[..4096], Digests::default()));
    let d1 =
        DataIn { itt, offset: 4096, data_sn: 1, final_bit: true, status: Some(0), sn: sn(9, 33), ..DataIn::default() };
    wire.extend(pdu(Pdu::DataIn(d1), &data[4096..], Digests::default()));
    // One byte at a time: the framing never depends on how the socket splits.
    for b in &wire {
        s.receive(std::slice::from_ref(b)).unwrap();
    }
    let done = completions(&mut s);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].tag, done[0].received, done[0].result.clone()), (77, 8192, Ok(())));
    assert_eq!(done[0].buf.as_deref(), Some(&data[..]));
    assert_eq!(s.window(), (2, 1, 33));
    assert_eq!(s.outstanding(), 0);
}

#[test]
fn check_condition_carries_sense_and_underflow() {
    let mut s = logged_in(opts(), 8192, 32);
    let itt = s.submit(read_cmd(4096, 1)).unwrap();
    sent(&mut s);
    let mut sense = vec![0u8; 18];
    sense[0] = 0x70;
    sense[2] = 0x05;
    sense[12] = 0x21;
    let mut seg = (sense.len() as u16).to_be_bytes().to_vec();
    seg.extend(&sense);
    let r =
        ScsiResponse { status: 2, itt, sn: sn(9, 33), residual: Residual::Underflow(4096), ..ScsiResponse::default() };
    s.receive(&pdu(Pdu::ScsiResponse(r), &seg, Digests::default())).unwrap();
    let d = completions(&mut s).pop().unwrap();
    assert_eq!(d.result, Err(CommandError::Status { status: 2, sense: Some(Sense { key: 5, asc: 0x21, ascq: 0 }) }));
    assert_eq!((d.residual, d.received), (Residual::Underflow(4096), 0));
}

#[test]
fn write_immediate_unsolicited_then_r2t() {
    // ImmediateData and InitialR2T=No: 8 KiB immediate (MaxRecvDataSegmentLength), unsolicited Data-Out
    // to FirstBurstLength (64 KiB), the rest by R2T in 8 KiB Data-Out PDUs.
    let mut s = logged_in(IscsiOptions { initial_r2t: false, immediate_data: true, ..opts() }, 8192, 32);
    let data: Vec<u8> = (0..128 * 1024).map(|i| (i % 251) as u8).collect();
    let itt = s.submit(write_cmd(data.clone(), 5)).unwrap();
    let out = sent(&mut s);
    let (Pdu::ScsiCommand(c), imm) = &out[0] else { panic!() };
    assert!(c.write && !c.final_bit, "unsolicited Data-Out follows");
    assert_eq!(imm[..], data[..8192]);
    let mut at = 8192;
    for (i, (p, d)) in out[1..].iter().enumerate() {
        let Pdu::DataOut(o) = p else { panic!("{p:?}") };
        assert_eq!((o.itt, o.ttt, o.data_sn, o.offset as usize), (itt, RESERVED_TAG, i as u32, at));
        assert_eq!(d[..], data[at..at + d.len()]);
        at += d.len();
        assert_eq!(o.final_bit, at == 65536);
    }
    assert_eq!(at, 65536);
    let r2t = R2t { itt, ttt: 0xabc, offset: 65536, desired_len: 65536, sn: sn(9, 33), lun: c.lun, r2t_sn: 0 };
    s.receive(&pdu(Pdu::R2t(r2t), &[], Digests::default())).unwrap();
    let out = sent(&mut s);
    assert_eq!(out.len(), 8);
    for (i, (p, d)) in out.iter().enumerate() {
        let Pdu::DataOut(o) = p else { panic!() };
        assert_eq!((o.ttt, o.data_sn, o.offset as usize, o.final_bit), (0xabc, i as u32, at, i == 7));
        assert_eq!(d[..], data[at..at + 8192]);
        at += 8192;
    }
    let r = ScsiResponse { itt, sn: sn(9, 33), ..ScsiResponse::default() };
    s.receive(&pdu(Pdu::ScsiResponse(r), &[], Digests::default())).unwrap();
    let d = completions(&mut s).pop().unwrap();
    assert_eq!((d.tag, d.result), (5, Ok(())));
}

#[test]
fn r2t_only_writes_send_nothing_unsolicited() {
    let mut s = logged_in(IscsiOptions { initial_r2t: true, immediate_data: false, ..opts() }, 8192, 32);
    s.submit(write_cmd(vec![1; 4096], 1)).unwrap();
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    let (Pdu::ScsiCommand(c), d) = &out[0] else { panic!() };
    assert!(c.final_bit && d.is_empty());
}

#[test]
fn window_holds_commands_until_max_cmd_sn_moves() {
    // MaxCmdSN 2 with CmdSN 1: two commands may leave, the third waits.
    let mut s = logged_in(opts(), 8192, 2);
    let itts: Vec<u32> = (0..3).map(|t| s.submit(read_cmd(512, t)).unwrap()).collect();
    let out = sent(&mut s);
    assert_eq!(out.len(), 2);
    assert_eq!(s.window_blocked(), 1);
    // A stale window (MaxCmdSN below ExpCmdSN - 1) is ignored.
    let stale = NopIn {
        itt: RESERVED_TAG,
        ttt: RESERVED_TAG,
        sn: SeqNums { stat_sn: 9, exp_cmd_sn: 10, max_cmd_sn: 5 },
        lun: 0,
    };
    s.receive(&pdu(Pdu::NopIn(stale), &[], Digests::default())).unwrap();
    assert!(sent(&mut s).is_empty());
    let d = DataIn {
        itt: itts[0],
        final_bit: true,
        status: Some(0),
        sn: SeqNums { stat_sn: 9, exp_cmd_sn: 2, max_cmd_sn: 3 },
        ..DataIn::default()
    };
    s.receive(&pdu(Pdu::DataIn(d), &[0; 512], Digests::default())).unwrap();
    let out = sent(&mut s);
    let (Pdu::ScsiCommand(c), _) = &out[0] else { panic!() };
    assert_eq!((c.itt, c.cmd_sn, c.exp_stat_sn), (itts[2], 3, 10));
    assert_eq!(s.window_blocked(), 0);
}

#[test]
fn nop_in_ping_is_echoed_without_a_cmd_sn() {
    let mut s = logged_in(opts(), 8192, 32);
    let ping = NopIn { lun: 3, itt: RESERVED_TAG, ttt: 0x55, sn: sn(9, 32) };
    s.receive(&pdu(Pdu::NopIn(ping), b"ping", Digests::default())).unwrap();
    let out = sent(&mut s);
    let (Pdu::NopOut(n), d) = &out[0] else { panic!() };
    assert!(n.immediate);
    assert_eq!((n.itt, n.ttt, n.lun, n.cmd_sn), (RESERVED_TAG, 0x55, 3, 1));
    assert_eq!(&d[..], b"ping");
}

#[test]
fn digests_on_the_wire_and_a_wrong_data_digest_fails_only_its_read() {
    let o = IscsiOptions { header_digest: true, data_digest: true, ..opts() };
    let mut s = logged_in(o, 8192, 32);
    let d = Digests { header: true, data: true };
    let a = s.submit(read_cmd(512, 1)).unwrap();
    let b = s.submit(read_cmd(512, 2)).unwrap();
    assert_eq!(sent(&mut s).len(), 2, "parsed with digests");
    let mut bad = pdu(
        Pdu::DataIn(DataIn { itt: a, final_bit: true, status: Some(0), sn: sn(9, 32), ..DataIn::default() }),
        &[1; 512],
        d,
    );
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    s.receive(&bad).unwrap();
    s.receive(&pdu(
        Pdu::DataIn(DataIn { itt: b, final_bit: true, status: Some(0), sn: sn(10, 32), ..DataIn::default() }),
        &[2; 512],
        d,
    ))
    .unwrap();
    let done = completions(&mut s);
    assert_eq!(done[0].result, Err(CommandError::DataDigest));
    assert_eq!(done[1].result, Ok(()));
    // A wrong header digest loses the framing: the connection fails.
    let c = s.submit(read_cmd(512, 3)).unwrap();
    let mut bad = pdu(Pdu::DataIn(DataIn { itt: c, sn: sn(11, 32), ..DataIn::default() }), &[], d);
    bad[49] ^= 1;
    assert!(matches!(s.receive(&bad), Err(IscsiError::Protocol(m)) if m.contains("header digest")));
    let done = completions(&mut s);
    assert!(matches!(&done[0].result, Err(CommandError::ConnectionLost(_))));
}

/// A logged-in session with one 4 KiB read (and one 4 KiB write) in flight.
fn busy() -> (Session, u32, u32) {
    let mut s = logged_in(opts(), 8192, 32);
    let r = s.submit(read_cmd(4096, 1)).unwrap();
    let w = s.submit(write_cmd(vec![0; 4096], 2)).unwrap();
    sent(&mut s);
    (s, r, w)
}

fn assert_fails(mut s: Session, bytes: &[u8], what: &str) {
    let e = s.receive(bytes).expect_err(what);
    assert!(s.is_closed(), "{what}");
    let done = completions(&mut s);
    assert_eq!(done.len(), 2, "{what}: every command completes");
    assert!(done.iter().all(|d| matches!(d.result, Err(CommandError::ConnectionLost(_)))), "{what}");
    assert_eq!(s.receive(&[0; 48]).unwrap_err(), e, "{what}: later input gets the same error");
    assert!(s.submit(read_cmd(512, 9)).is_err());
}

#[test]
fn hostile_target_input_fails_the_connection_cleanly() {
    let nd = Digests::default();
    let (s, r, _) = busy();
    let beyond = DataIn { itt: r, offset: 2048, sn: sn(9, 32), ..DataIn::default() };
    assert_fails(s, &pdu(Pdu::DataIn(beyond), &[0; 4096], nd), "Data-In beyond the buffer");
    let (s, r, _) = busy();
    let huge = DataIn { itt: r, offset: u32::MAX - 10, sn: sn(9, 32), ..DataIn::default() };
    assert_fails(s, &pdu(Pdu::DataIn(huge), &[0; 512], nd), "Data-In at an offset that overflows");
    let (s, _, w) = busy();
    assert_fails(
        s,
        &pdu(Pdu::DataIn(DataIn { itt: w, sn: sn(9, 32), ..DataIn::default() }), &[0; 512], nd),
        "Data-In for a write",
    );
    let (s, _, _) = busy();
    assert_fails(
        s,
        &pdu(Pdu::DataIn(DataIn { itt: 999, sn: sn(9, 32), ..DataIn::default() }), &[0; 4], nd),
        "unknown ITT",
    );
    let (s, r, _) = busy();
    assert_fails(
        s,
        &pdu(Pdu::DataIn(DataIn { itt: r, data_sn: 3, sn: sn(9, 32), ..DataIn::default() }), &[0; 4], nd),
        "DataSN gap",
    );
    let (s, r, _) = busy();
    let r2t = R2t { itt: r, ttt: 1, desired_len: 512, sn: sn(9, 32), ..R2t::default() };
    assert_fails(s, &pdu(Pdu::R2t(r2t), &[], nd), "R2T for a read");
    let (s, _, w) = busy();
    let r2t = R2t { itt: w, ttt: 1, offset: 4000, desired_len: 512, sn: sn(9, 32), ..R2t::default() };
    assert_fails(s, &pdu(Pdu::R2t(r2t), &[], nd), "R2T beyond the write");
    let (s, _, w) = busy();
    let r2t = R2t { itt: w, ttt: 1, offset: 0, desired_len: 0, sn: sn(9, 32), ..R2t::default() };
    assert_fails(s, &pdu(Pdu::R2t(r2t), &[], nd), "empty R2T");
    let (s, _, _) = busy();
    let mut unknown = [0u8; 48];
    unknown[0] = 0x1f;
    assert_fails(s, &unknown, "unknown opcode");
    let (s, _, _) = busy();
    let mut initiator_op = [0u8; 48];
    initiator_op[0] = 0x01;
    initiator_op[1] = 0x80;
    assert_fails(s, &initiator_op, "an initiator opcode from the target");
    let (s, _, _) = busy();
    let mut too_long = pdu(Pdu::NopIn(NopIn { itt: RESERVED_TAG, ttt: RESERVED_TAG, ..NopIn::default() }), &[], nd);
    too_long[5] = 0x10;
    assert_fails(s, &too_long, "data segment over MaxRecvDataSegmentLength");
    let (s, _, _) = busy();
    let rsp = login_rsp([0; 6], true, Stage::Operational, Stage::FullFeature, 9, 1);
    assert_fails(s, &pdu(Pdu::LoginResponse(rsp), &[], nd), "Login Response in full feature phase");
}

#[test]
fn reject_fails_only_the_rejected_command() {
    let (mut s, r, _) = busy();
    let mut hdr = [0u8; 48];
    hdr[0] = 0x01;
    hdr[16..20].copy_from_slice(&r.to_be_bytes());
    let rej = ff_iscsi::pdu::Reject { reason: 0x09, sn: sn(9, 32), data_sn: 0 };
    s.receive(&pdu(Pdu::Reject(rej), &hdr, Digests::default())).unwrap();
    let d = completions(&mut s);
    assert_eq!((d.len(), d[0].tag, d[0].result.clone()), (1, 1, Err(CommandError::Rejected(0x09))));
    assert_eq!(s.outstanding(), 1);
}

#[test]
fn discovery_send_targets_with_continuation_then_logout() {
    let o = IscsiOptions { target_name: None, ..IscsiOptions::default() };
    let mut s = Session::new(o.clone());
    let first = sent(&mut s);
    assert_eq!(key(&first[0].1, "SessionType").as_deref(), Some("Discovery"));
    assert_eq!(key(&first[0].1, "TargetName"), None);
    let r = login_rsp(o.isid, true, Stage::Security, Stage::Operational, 0, 0);
    s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).unwrap();
    let op = sent(&mut s);
    assert_eq!(key(&op[0].1, "ImmediateData"), None, "no session keys in discovery");
    let r = login_rsp(o.isid, true, Stage::Operational, Stage::FullFeature, 1, 0);
    s.receive(&pdu(
        Pdu::LoginResponse(r),
        &text(&[("HeaderDigest", "None"), ("DataDigest", "None")]),
        Digests::default(),
    ))
    .unwrap();
    assert!(s.is_logged_in());
    assert!(s.submit(read_cmd(512, 1)).is_err(), "no SCSI on a discovery session");
    s.send_targets().unwrap();
    let (Pdu::TextRequest(t), d) = &sent(&mut s)[0] else { panic!() };
    assert_eq!(&d[..], b"SendTargets=All\0");
    let all = text(&[("TargetName", "iqn.a"), ("TargetAddress", "10.0.0.1:3260,1"), ("TargetAddress", "[::1]:3260,1")]);
    let more = text(&[("TargetName", "iqn.b")]);
    let (p1, p2) = all.split_at(20);
    let part = TextResponse { itt: t.itt, ttt: 0x77, cont: true, sn: sn(2, 32), ..TextResponse::default() };
    s.receive(&pdu(Pdu::TextResponse(part), p1, Digests::default())).unwrap();
    let (Pdu::TextRequest(t2), d2) = &sent(&mut s)[0] else { panic!() };
    assert_eq!((t2.itt, t2.ttt, d2.len()), (t.itt, 0x77, 0));
    let mut rest = p2.to_vec();
    rest.extend(more);
    let last =
        TextResponse { itt: t.itt, ttt: RESERVED_TAG, final_bit: true, sn: sn(3, 32), ..TextResponse::default() };
    s.receive(&pdu(Pdu::TextResponse(last), &rest, Digests::default())).unwrap();
    let found = s.discovered().unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].name.as_str(), found[0].addresses.len()), ("iqn.a", 2));
    assert_eq!((found[1].name.as_str(), found[1].addresses.len()), ("iqn.b", 0));
    s.logout().unwrap();
    let (Pdu::LogoutRequest(l), _) = &sent(&mut s)[0] else { panic!() };
    assert_eq!((l.reason, l.exp_stat_sn), (0, 4));
    let lr = ff_iscsi::pdu::LogoutResponse { itt: l.itt, sn: sn(4, 32), ..Default::default() };
    s.receive(&pdu(Pdu::LogoutResponse(lr), &[], Digests::default())).unwrap();
    assert!(s.is_closed() && s.error().is_none());
}

#[test]
fn random_target_pdus_never_panic() {
    // Xorshift: deterministic, so a failure reproduces.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let (mut s, r, w) = busy();
        for _ in 0..16 {
            let mut bhs = [0u8; 48];
            bhs.iter_mut().for_each(|b| *b = next() as u8);
            let ops = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f, next() as u8];
            bhs[0] = ops[next() as usize % ops.len()];
            bhs[4] = u8::from(next() % 8 == 0);
            let len = (next() % 9000) as usize;
            bhs[5..8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
            // Half the PDUs name a live command, and offsets stay small often enough to land.
            if next() % 2 == 0 {
                bhs[16..20].copy_from_slice(&[r, w][next() as usize % 2].to_be_bytes());
                bhs[40..44].copy_from_slice(&((next() % 8192) as u32).to_be_bytes());
                bhs[36..40].copy_from_slice(&((next() % 2) as u32).to_be_bytes());
            }
            let mut wire = bhs.to_vec();
            wire.extend((0..ff_iscsi::pdu::pad4(len) + usize::from(bhs[4]) * 4).map(|_| next() as u8));
            let cut = next() as usize % (wire.len() + 1);
            let _ = s.receive(&wire[..cut]);
            let _ = s.receive(&wire[cut..]);
            while s.poll_transmit().is_some() {}
            if s.is_closed() {
                break;
            }
        }
        // Whatever happened, a failed session has handed back every command.
        if s.is_closed() {
            assert_eq!(s.outstanding(), 0);
        }
        completions(&mut s);
    }
}

#[test]
fn operational_rounds_answer_the_targets_own_offers() {
    let o = opts();
    let mut s = Session::new(o.clone());
    sent(&mut s);
    let r = login_rsp(o.isid, true, Stage::Security, Stage::Operational, 0, 0);
    s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).unwrap();
    sent(&mut s);
    // The target lowers the bursts, offers keys of its own and does not transit yet.
    let r = login_rsp(o.isid, false, Stage::Operational, Stage::Operational, 1, 0);
    let answer = text(&[
        ("MaxBurstLength", "65536"),
        ("FirstBurstLength", "16384"),
        ("MaxRecvDataSegmentLength", "4096"),
        ("X-com.example.Knob", "7"),
        ("DefaultTime2Wait", "3"),
    ]);
    s.receive(&pdu(Pdu::LoginResponse(r), &answer, Digests::default())).unwrap();
    let (Pdu::LoginRequest(req), d) = &sent(&mut s)[0] else { panic!() };
    assert!(req.transit && req.csg == Stage::Operational && req.nsg == Stage::FullFeature);
    assert_eq!(key(d, "X-com.example.Knob").as_deref(), Some("NotUnderstood"));
    assert_eq!(key(d, "DefaultTime2Wait").as_deref(), Some("3"));
    assert_eq!(key(d, "MaxBurstLength"), None, "answers are not offered again");
    let r = login_rsp(o.isid, true, Stage::Operational, Stage::FullFeature, 2, 9);
    s.receive(&pdu(Pdu::LoginResponse(r), &[], Digests::default())).unwrap();
    assert!(s.is_logged_in());
    let p = s.params();
    assert_eq!((p.max_burst_length, p.first_burst_length, p.max_xmit_data_segment_length), (65536, 16384, 4096));
    // A burst above our offer is a protocol error, and so is a target that loops.
    let mut s = Session::new(o.clone());
    sent(&mut s);
    s.receive(&pdu(
        Pdu::LoginResponse(login_rsp(o.isid, true, Stage::Security, Stage::Operational, 0, 0)),
        &[],
        Digests::default(),
    ))
    .unwrap();
    sent(&mut s);
    let r = login_rsp(o.isid, true, Stage::Operational, Stage::FullFeature, 1, 9);
    let e = s.receive(&pdu(Pdu::LoginResponse(r), &text(&[("MaxBurstLength", "99999999")]), Digests::default()));
    assert!(e.is_err());
    let mut s = Session::new(o.clone());
    sent(&mut s);
    let again = pdu(
        Pdu::LoginResponse(login_rsp(o.isid, false, Stage::Security, Stage::Security, 0, 0)),
        &[],
        Digests::default(),
    );
    let mut failed = false;
    for _ in 0..100 {
        if s.receive(&again).is_err() {
            failed = true;
            break;
        }
        sent(&mut s);
    }
    assert!(failed, "a login that never converges fails");
}
