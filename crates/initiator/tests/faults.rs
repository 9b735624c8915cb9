//! The initiator against a misbehaving fake target (the target connection core plus hand-written PDUs on
//! a loopback listener): every fault ends in a clear error for the command, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use ff_initiator::{Buf, Controller, HostOptions, IoCompletion, IoError, IoGroup};
use ff_nvme::nvme::{Cqe, fctype, opcode, status};
use ff_nvme_tcp::target::{BufAlloc, Completion, RecvTarget, TargetConn, TargetConnConfig, TargetOutput};
use ff_nvme_tcp::{C2HData, CapsuleResp, Digests, Pdu, TermReq};
use ff_sock::{Backend, GroupOptions};

/// Every fault scenario runs with the host's I/O queues on each sock backend.
const BACKENDS: [Backend; 3] = [Backend::Epoll, Backend::Poll, Backend::Uring];
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    CloseMidIo,
    WrongDigest,
    UnknownCid,
    LongC2H,
    TermReq,
    NeverAnswer,
}

struct Heap;
impl BufAlloc<Vec<u8>> for Heap {
    fn alloc(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
}

/// Starts the fake target; the fault hits the first I/O read only (later reads are answered).
fn fake(fault: Fault) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let reads = reads.clone();
            std::thread::spawn(move || serve(s, fault, &reads));
        }
    });
    addr
}

fn send(s: &mut TcpStream, conn: &TargetConn<Vec<u8>>, p: Pdu, data: &[u8]) {
    let mut b = vec![0u8; 512 + data.len()];
    let n = p.encode_with_data(&conn.framing().unwrap_or_default(), data, &mut b).unwrap();
    let _ = s.write_all(&b[..n]);
}

fn serve(mut s: TcpStream, fault: Fault, reads: &AtomicUsize) {
    let mut conn: TargetConn<Vec<u8>> = TargetConn::new(TargetConnConfig::default());
    let mut buf = vec![0u8; 1 << 16];
    let (mut have, mut off) = (0usize, 0usize);
    let mut io_queue = false;
    loop {
        if off == have {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => (have, off) = (n, 0),
            }
        }
        match conn.recv_target(&mut Heap) {
            RecvTarget::Small(n) => off += conn.feed(&buf[off..(off + n.max(1)).min(have)], &mut Heap),
            RecvTarget::Data(dst) => {
                let k = dst.len().min(have - off);
                dst[..k].copy_from_slice(&buf[off..off + k]);
                off += k;
                conn.data_received(k, &mut Heap);
            }
            RecvTarget::Closed => return,
        }
        while let Some(o) = conn.poll_output() {
            match o {
                TargetOutput::Send(p) => {
                    let mut w = p.head().to_vec();
                    if let Some(d) = &p.data {
                        w.extend_from_slice(d);
                    }
                    if let Some(mut g) = p.ddgst {
                        if fault == Fault::WrongDigest && io_queue && p.kind == ff_nvme_tcp::PduType::C2HData {
                            g[0] ^= 0xFF;
                        }
                        w.extend_from_slice(&g);
                    }
                    let _ = s.write_all(&w);
                }
                TargetOutput::Close(_) => return,
                TargetOutput::Command(c) => {
                    let sqe = c.sqe;
                    let ok = Completion::status(status::SUCCESS);
                    let comp = match (sqe.opcode, sqe.fctype()) {
                        (opcode::FABRICS, fctype::CONNECT) => {
                            let qid = (sqe.cdw10 >> 16) as u16;
                            conn.set_queue(qid, (sqe.cdw11 & 0xFFFF) as u16, false);
                            io_queue = qid != 0;
                            Completion { dw0: 1, ..ok }
                        }
                        (opcode::FABRICS, fctype::PROPERTY_GET) => match sqe.cdw11 {
                            0x00 => Completion { dw0: 127 | (1 << 24), ..ok },
                            0x1C => Completion { dw0: 1 | (2 << 2), ..ok },
                            _ => Completion { dw0: 0x0001_0300, ..ok },
                        },
                        (opcode::ADMIN_IDENTIFY, _) if sqe.opcode == opcode::ADMIN_IDENTIFY => {
                            let mut d = vec![0u8; 4096];
                            d[111] = 1;
                            d[1792..1796].copy_from_slice(&516u32.to_le_bytes());
                            Completion { data: Some(d), ..ok }
                        }
                        (opcode::IO_READ, _) => {
                            let first = reads.fetch_add(1, Ordering::SeqCst) == 0;
                            let len = c.xfer_len as usize;
                            match fault {
                                _ if !first && fault != Fault::WrongDigest => {
                                    Completion { data: Some(vec![0xAB; len]), ..ok }
                                }
                                Fault::CloseMidIo => return,
                                Fault::NeverAnswer => continue,
                                Fault::UnknownCid => {
                                    let cqe = Cqe { cid: sqe.cid.wrapping_add(100), ..Cqe::default() };
                                    send(&mut s, &conn, Pdu::CapsuleResp(CapsuleResp { cqe }), &[]);
                                    continue;
                                }
                                Fault::LongC2H => {
                                    let h = C2HData {
                                        cccid: sqe.cid,
                                        datao: 0,
                                        datal: len as u32 + 4096,
                                        last: true,
                                        success: false,
                                    };
                                    send(&mut s, &conn, Pdu::C2HData(h), &vec![1; len + 4096]);
                                    continue;
                                }
                                Fault::TermReq => {
                                    send(&mut s, &conn, Pdu::C2HTermReq(TermReq { fes: 2, fei: 0 }), &[]);
                                    continue;
                                }
                                Fault::WrongDigest => Completion { data: Some(vec![0xAB; len]), ..ok },
                            }
                        }
                        // Set Features (1 queue granted), Keep Alive, Abort (not aborted: dw0 bit 0), the rest.
                        (opcode::ADMIN_ABORT, _) => Completion { dw0: 1, ..ok },
                        _ => ok,
                    };
                    conn.complete(sqe.cid, comp);
                }
            }
        }
    }
}

fn opts(digests: Digests) -> HostOptions {
    HostOptions {
        digests,
        io_queues: 1,
        queue_depth: 16,
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_millis(300),
        ..HostOptions::default()
    }
}

fn first_read(fault: Fault, digests: Digests, backend: Backend) -> (IoCompletion, IoGroup, Controller) {
    let addr = fake(fault);
    let mut ctrl = Controller::connect(addr, "nqn.test:fake", &opts(digests)).unwrap();
    let mut g = IoGroup::new(GroupOptions { backend, ..GroupOptions::default() }).unwrap();
    let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
    g.queue(q).unwrap().submit_read(1, 0, 8, Buf::new(4096), 42).map_err(|e| e.0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut out = Vec::new();
    while out.is_empty() {
        assert!(Instant::now() < deadline, "{fault:?}: no completion");
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
    }
    assert_eq!(out.len(), 1, "{out:?}");
    (out.pop().unwrap(), g, ctrl)
}

#[test]
fn peer_faults_fail_the_command_with_a_clear_error() {
    for (fault, backend) in [Fault::CloseMidIo, Fault::UnknownCid, Fault::LongC2H, Fault::TermReq]
        .into_iter()
        .flat_map(|f| BACKENDS.map(|b| (f, b)))
    {
        let (c, mut g, _ctrl) = first_read(fault, Digests::default(), backend);
        assert_eq!(c.tag, 42);
        let Err(IoError::ConnectionLost(why)) = &c.result else { panic!("{fault:?}: {:?}", c.result) };
        eprintln!("{fault:?}: {why}");
        let q = ff_initiator::QueueId(0);
        assert!(g.queue(q).unwrap().down_reason().is_some());
        // Submissions on a down queue are refused with the buffer back; reconnect brings it back.
        let e = g.queue(q).unwrap().submit_read(1, 0, 8, Buf::new(4096), 1).unwrap_err();
        assert!(e.1.is_some());
        let mut out = Vec::new();
        g.reconnect(q, &mut out).unwrap();
        g.queue(q).unwrap().submit_read(1, 0, 8, Buf::new(4096), 43).map_err(|e| e.0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.is_empty() {
            assert!(Instant::now() < deadline);
            g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
        }
        assert_eq!(out[0].result, Ok(()), "{fault:?} on {backend} after reconnect");
    }
}

#[test]
fn wrong_data_digest_fails_only_the_command() {
    for backend in BACKENDS {
        let (c, mut g, _ctrl) = first_read(Fault::WrongDigest, Digests { header: false, data: true }, backend);
        assert_eq!(c.result, Err(IoError::DataDigest), "{backend}");
        let q = ff_initiator::QueueId(0);
        assert!(g.queue(q).unwrap().down_reason().is_none(), "{backend}");
    }
}

#[test]
fn unanswered_command_times_out_aborts_and_reconnects() {
    for backend in BACKENDS {
        unanswered(backend);
    }
}

fn unanswered(backend: Backend) {
    let (c, mut g, _ctrl) = first_read(Fault::NeverAnswer, Digests::default(), backend);
    assert_eq!(c.result, Err(IoError::Timeout));
    let q = ff_initiator::QueueId(0);
    assert!(g.queue(q).unwrap().down_reason().is_none(), "reconnected after the timeout");
    g.queue(q).unwrap().submit_read(1, 0, 8, Buf::new(4096), 7).map_err(|e| e.0).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.is_empty() {
        assert!(Instant::now() < deadline);
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
    }
    assert_eq!(out[0].result, Ok(()));
    assert!(out[0].buf.as_deref().unwrap().iter().all(|&b| b == 0xAB));
}
