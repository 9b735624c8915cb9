//! An initiator written for the tests: builds request PDUs, drives a target connection the way a
//! reactor does, and decodes what it sends.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use ff_iscsi::conn::{BufAlloc, ConnConfig, RecvTarget, TargetConn, TargetOutput};
use ff_iscsi::pdu::{LoginRequest, Pdu, Stage};
use ff_iscsi::{Digests, PortalConfig, TxPdu};
use std::sync::Arc;

pub const TARGET: &str = "iqn.2026-01.org.ferrofabric:disk0";
pub const INITIATOR: &str = "iqn.2026-01.org.example:host1";
pub const ISID: [u8; 6] = [0x80, 0, 0x12, 0x34, 0, 1];

pub struct Heap;
impl BufAlloc<Vec<u8>> for Heap {
    fn alloc(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
}

/// A pool that has no buffers.
pub struct Empty;
impl BufAlloc<Vec<u8>> for Empty {
    fn alloc(&mut self, _len: usize) -> Option<Vec<u8>> {
        None
    }
}

/// One PDU on the wire: BHS, AHS, header digest, data, padding, data digest.
pub fn wire(p: Pdu, ahs: &[u8], data: &[u8], dg: Digests) -> Vec<u8> {
    let bhs = p.encode(ahs.len(), data.len() as u32).unwrap();
    let mut v = bhs.to_vec();
    v.extend_from_slice(ahs);
    if dg.header {
        v.extend_from_slice(&crc32c::crc32c(&v).to_le_bytes());
    }
    v.extend_from_slice(data);
    let pad = (4 - data.len() % 4) % 4;
    v.extend_from_slice(&[0; 3][..pad]);
    if dg.data && !data.is_empty() {
        let mut d = data.to_vec();
        d.extend_from_slice(&[0; 3][..pad]);
        v.extend_from_slice(&crc32c::crc32c(&d).to_le_bytes());
    }
    v
}

/// Feeds `bytes` in pieces of at most `chunk`, reading data straight into command buffers when
/// offered; returns every output.
pub fn drive_with(
    conn: &mut TargetConn<Vec<u8>>,
    bytes: &[u8],
    chunk: usize,
    alloc: &mut impl BufAlloc<Vec<u8>>,
) -> Vec<TargetOutput<Vec<u8>>> {
    let mut off = 0;
    let mut out = Vec::new();
    let mut idle = 0;
    while off < bytes.len() {
        match conn.recv_target(alloc) {
            RecvTarget::Small(_) => {
                let n = chunk.min(bytes.len() - off);
                let used = conn.feed(&bytes[off..off + n], alloc);
                off += used;
                if used == 0 {
                    idle += 1;
                    assert!(idle < 3 || conn.is_closed(), "connection takes no input");
                    if conn.is_closed() {
                        break;
                    }
                }
            }
            RecvTarget::Data(dst) => {
                let n = dst.len().min(chunk).min(bytes.len() - off);
                dst[..n].copy_from_slice(&bytes[off..off + n]);
                off += n;
                conn.data_received(n, alloc);
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

pub fn drive(conn: &mut TargetConn<Vec<u8>>, bytes: &[u8]) -> Vec<TargetOutput<Vec<u8>>> {
    drive_with(conn, bytes, 1 << 20, &mut Heap)
}

/// A PDU the target sent, decoded, with its data and whether its digests were present and right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub pdu: Pdu,
    pub data: Vec<u8>,
    pub hdgst: bool,
    pub ddgst: bool,
}

fn decode_tx(tx: &TxPdu, buf: &[u8]) -> Sent {
    let head = tx.head();
    let pdu = Pdu::decode(tx.bhs()).unwrap();
    let hdgst = head.len() == 52;
    if hdgst {
        assert_eq!(&head[48..], &crc32c::crc32c(&head[..48]).to_le_bytes(), "bad header digest sent");
    }
    let data = tx.data(buf).to_vec();
    let tr = tx.trailer();
    let pad = (4 - data.len() % 4) % 4;
    let ddgst = tr.len() == pad + 4;
    if ddgst {
        let mut d = data.clone();
        d.extend_from_slice(&tr[..pad]);
        assert_eq!(&tr[pad..], &crc32c::crc32c(&d).to_le_bytes(), "bad data digest sent");
    }
    // The wire length field agrees with the data.
    let bhs = tx.bhs();
    assert_eq!(u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]) as usize, data.len());
    Sent { pdu, data, hdgst, ddgst }
}

/// The PDUs among `outs`, in order.
pub fn sent(outs: &[TargetOutput<Vec<u8>>]) -> Vec<Sent> {
    let mut v = Vec::new();
    for o in outs {
        match o {
            TargetOutput::Send(tx) => v.push(decode_tx(tx, &[])),
            TargetOutput::SendBuf { buf, pdus } => v.extend(pdus.iter().map(|t| decode_tx(t, buf))),
            _ => {}
        }
    }
    v
}

/// Splits text into pairs (repeats allowed, as in SendTargets answers).
pub fn kv(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let s = std::str::from_utf8(e).unwrap();
            let (k, v) = s.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub fn get(kvs: &[(String, String)], key: &str) -> Option<String> {
    kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

pub fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in pairs {
        v.extend_from_slice(k.as_bytes());
        v.push(b'=');
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

pub fn login_req(csg: Stage, nsg: Stage, transit: bool, cmd_sn: u32, exp_stat_sn: u32) -> LoginRequest {
    LoginRequest {
        transit,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_min: 0,
        isid: ISID,
        tsih: 0,
        itt: 0x1000,
        cid: 1,
        cmd_sn,
        exp_stat_sn,
    }
}

/// One login request with `pairs`, returning the single Login Response.
pub fn login_step(
    conn: &mut TargetConn<Vec<u8>>,
    req: LoginRequest,
    pairs: &[(&str, &str)],
) -> (Sent, Vec<TargetOutput<Vec<u8>>>) {
    let outs = drive(conn, &wire(Pdu::LoginRequest(req), &[], &text(pairs), Digests::default()));
    let s = sent(&outs);
    assert_eq!(s.len(), 1, "one Login Response expected, got {s:?}");
    (s[0].clone(), outs)
}

pub fn portal_with(limits: ff_iscsi::Limits) -> Arc<PortalConfig> {
    Arc::new(PortalConfig {
        targets: vec![ff_iscsi::TargetDesc {
            name: TARGET.into(),
            alias: Some("disk zero".into()),
            portal_group_tag: 7,
            portals: vec!["192.0.2.1:3260".into(), "[2001:db8::1]:3260".into()],
            allowed_initiators: None,
            auth: ff_iscsi::Auth::None,
        }],
        limits,
        ..PortalConfig::default()
    })
}

/// A connection logged in to [`TARGET`] with `pairs` negotiated in one operational request
/// (security stage with AuthMethod=None first). CmdSN starts at 1; the initiator's next CmdSN is 1.
pub fn logged_in(portal: Arc<PortalConfig>, pairs: &[(&str, &str)]) -> TargetConn<Vec<u8>> {
    let mut conn = TargetConn::new(ConnConfig::new(portal));
    let (r, _) = login_step(
        &mut conn,
        login_req(Stage::Security, Stage::Operational, true, 1, 0),
        &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("SessionType", "Normal"), ("AuthMethod", "None")],
    );
    let Pdu::LoginResponse(lr) = r.pdu else { panic!("{r:?}") };
    assert_eq!((lr.status_class, lr.transit, lr.nsg), (0, true, Stage::Operational));
    let (r, outs) = login_step(&mut conn, login_req(Stage::Operational, Stage::FullFeature, true, 1, 1), pairs);
    assert!(outs.is_empty() || matches!(r.pdu, Pdu::LoginResponse(_)));
    // The final response waits for the runtime.
    let _ = r;
    conn
}

/// Like [`logged_in`], driving the admission too; returns the connection in full feature phase.
pub fn ffp(portal: Arc<PortalConfig>, pairs: &[(&str, &str)]) -> TargetConn<Vec<u8>> {
    let mut conn = TargetConn::new(ConnConfig::new(portal));
    let (r, _) = login_step(
        &mut conn,
        login_req(Stage::Security, Stage::Operational, true, 1, 0),
        &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("SessionType", "Normal"), ("AuthMethod", "None")],
    );
    assert!(matches!(r.pdu, Pdu::LoginResponse(l) if l.status_class == 0));
    let outs = drive(
        &mut conn,
        &wire(
            Pdu::LoginRequest(login_req(Stage::Operational, Stage::FullFeature, true, 1, 1)),
            &[],
            &text(pairs),
            Digests::default(),
        ),
    );
    assert!(sent(&outs).is_empty(), "final response before admission");
    assert!(outs.iter().any(|o| matches!(o, TargetOutput::SessionRequest(_))));
    conn.admit(0x0101);
    let s = sent(&std::iter::from_fn(|| conn.poll_output()).collect::<Vec<_>>());
    let Pdu::LoginResponse(lr) = s[0].pdu else { panic!() };
    assert_eq!((lr.status_class, lr.tsih, lr.nsg, lr.transit), (0, 0x0101, Stage::FullFeature, true));
    assert_eq!(conn.phase(), ff_iscsi::Phase::FullFeature);
    conn
}

/// Builds full-feature requests with a running CmdSN.
pub struct Ini {
    pub cmd_sn: u32,
    pub dg: Digests,
}

impl Ini {
    pub fn new(dg: Digests) -> Self {
        Ini { cmd_sn: 1, dg }
    }

    /// A SCSI Command with `data` as immediate data (its CmdSN consumed).
    pub fn cmd(&mut self, itt: u32, read: bool, write: bool, edtl: u32, final_bit: bool, data: &[u8]) -> Vec<u8> {
        let c = ff_iscsi::pdu::ScsiCommand {
            immediate: false,
            final_bit,
            read,
            write,
            attr: 1,
            lun: 0,
            itt,
            edtl,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
            cdb: [if write { 0x2a } else { 0x28 }, 0, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0],
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        wire(Pdu::ScsiCommand(c), &[], data, self.dg)
    }

    pub fn data_out(&self, itt: u32, ttt: u32, data_sn: u32, offset: u32, final_bit: bool, data: &[u8]) -> Vec<u8> {
        let d = ff_iscsi::pdu::DataOut { final_bit, lun: 0, itt, ttt, exp_stat_sn: 0, data_sn, offset };
        wire(Pdu::DataOut(d), &[], data, self.dg)
    }
}

/// The commands among `outs`.
pub fn commands(outs: Vec<TargetOutput<Vec<u8>>>) -> Vec<ff_iscsi::Command<Vec<u8>>> {
    outs.into_iter()
        .filter_map(|o| match o {
            TargetOutput::Command(c) => Some(c),
            _ => None,
        })
        .collect()
}

pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

pub fn drain(conn: &mut TargetConn<Vec<u8>>) -> Vec<TargetOutput<Vec<u8>>> {
    std::iter::from_fn(|| conn.poll_output()).collect()
}
