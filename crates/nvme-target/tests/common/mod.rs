//! A hand-driven NVMe/TCP host for the target's tests: raw PDUs out, decoded PDUs in, over a plain
//! blocking socket so tests control every byte.
#![allow(dead_code)]

use ff_nvme::nvme::{Cqe, SglDescriptor, Sqe, fctype, opcode, status};
use ff_nvme_tcp::{CapsuleCmd, Decoder, DecoderConfig, Digests, Framing, IcReq, Need, Pdu};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The host NQN the helpers connect as.
pub const HOST_NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";

/// A hand-driven host: raw PDUs out, decoded PDUs in.
pub struct Host {
    pub s: TcpStream,
    pub dec: Decoder,
    pub framing: Framing,
}

impl Host {
    pub fn connect(addr: SocketAddr) -> Host {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Host {
            s,
            dec: Decoder::new(DecoderConfig { hdgst: true, ddgst: true, ..DecoderConfig::host() }),
            framing: Framing::default(),
        }
    }

    pub fn send(&mut self, p: Pdu, data: &[u8]) {
        let mut b = vec![0u8; 512 + data.len()];
        let n = p.encode_with_data(&self.framing, data, &mut b).unwrap();
        self.s.write_all(&b[..n]).unwrap();
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Next PDU and its data; `None` on EOF or reset.
    pub fn recv(&mut self) -> Option<(Pdu, Vec<u8>)> {
        let mut data = Vec::new();
        loop {
            let mut b = [0u8; 1];
            match self.dec.next_need() {
                Need::Done => {
                    let p = self.dec.finish().unwrap();
                    if let Some(n) = self.dec.negotiated() {
                        self.framing = n.framing();
                    }
                    return Some((p, data));
                }
                Need::Closed => return None,
                Need::Data { .. } => {
                    if self.s.read(&mut b).ok()? == 0 {
                        return None;
                    }
                    data.push(b[0]);
                    self.dec.data_received(&b).unwrap();
                }
                _ => {
                    if self.s.read(&mut b).ok()? == 0 {
                        return None;
                    }
                    self.dec.feed(&b).unwrap();
                }
            }
        }
    }

    pub fn handshake(&mut self, dgst: Digests) {
        self.send(Pdu::IcReq(IcReq { pfv: 0, hpda: 0, dgst, maxr2t: 0 }), &[]);
        let (p, _) = self.recv().expect("ICResp");
        assert!(matches!(p, Pdu::IcResp(_)), "{p:?}");
    }

    /// Sends Connect for the admin queue of `nqn` (kato in ms) and returns its status.
    pub fn try_connect_admin(&mut self, nqn: &str, kato: u32) -> ff_nvme::nvme::Status {
        self.connect_as(nqn, HOST_NQN, 0, 0xFFFF, kato).status()
    }

    /// Sends Connect for queue `qid` of controller `cntlid` (0xFFFF: a new one) as `hostnqn`; returns
    /// the response (dw0 holds the controller id on success).
    pub fn connect_as(&mut self, nqn: &str, hostnqn: &str, qid: u16, cntlid: u16, kato: u32) -> Cqe {
        let mut data = vec![0u8; 1024];
        data[16..18].copy_from_slice(&cntlid.to_le_bytes());
        data[256..256 + nqn.len()].copy_from_slice(nqn.as_bytes());
        data[512..512 + hostnqn.len()].copy_from_slice(hostnqn.as_bytes());
        let sqe = Sqe {
            opcode: opcode::FABRICS,
            flags: 0x40,
            cid: 1,
            nsid: u32::from(fctype::CONNECT),
            dptr: SglDescriptor::in_capsule(0, 1024),
            cdw10: u32::from(qid) << 16,
            cdw11: 31,
            cdw12: kato,
            ..Sqe::default()
        };
        self.send(Pdu::CapsuleCmd(CapsuleCmd { sqe }), &data);
        let (p, _) = self.recv().expect("connect response");
        let Pdu::CapsuleResp(r) = p else { panic!("{p:?}") };
        r.cqe
    }

    /// Connects the admin queue of `nqn` (kato in ms), asserting success.
    pub fn connect_admin(&mut self, nqn: &str, kato: u32) {
        assert_eq!(self.try_connect_admin(nqn, kato), status::SUCCESS, "connect");
    }

    /// Property Set CC.EN=1 (with IOSQES 6, IOCQES 4) so admin commands other than fabrics are allowed.
    pub fn enable(&mut self) {
        let cc: u32 = 1 | (6 << 16) | (4 << 20);
        let sqe = Sqe {
            opcode: opcode::FABRICS,
            cid: 3,
            nsid: u32::from(fctype::PROPERTY_SET),
            cdw10: 0,
            cdw11: 0x14,
            cdw12: cc,
            ..Sqe::default()
        };
        let (cqe, _) = self.admin(sqe);
        assert!(cqe.status().is_success(), "CC.EN=1: {:?}", cqe.status());
    }

    /// Sends an admin command without data and returns its completion and any C2H data.
    pub fn admin(&mut self, sqe: Sqe) -> (Cqe, Vec<u8>) {
        self.send(Pdu::CapsuleCmd(CapsuleCmd { sqe }), &[]);
        let mut data = Vec::new();
        loop {
            match self.recv().expect("response") {
                // SUCCESS: no CapsuleResp follows (c2h_success), the completion is implied.
                (Pdu::C2HData(h), d) if h.success => {
                    data.extend(d);
                    let cqe = Cqe { cid: h.cccid, ..Default::default() };
                    return (cqe, data);
                }
                (Pdu::C2HData(_), d) => data.extend(d),
                (Pdu::CapsuleResp(r), _) => return (r.cqe, data),
                (p, _) => panic!("unexpected {p:?}"),
            }
        }
    }
}
