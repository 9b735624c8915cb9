//! Async writes and zero-copy transmit: gathering, in-order completion, partial writes under a tiny send
//! buffer, buffers held until their notification, and the COPIED fallback on loopback.

mod common;
use common::*;
use ff_sock::{Event, SockError, WriteReq};
use std::io::Read;
use std::rc::Rc;

fn reader(mut peer: std::net::TcpStream, len: usize) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = vec![0u8; len];
        peer.read_exact(&mut v).unwrap();
        v
    })
}

#[test]
fn requests_gather_into_few_sendmsgs_and_complete_in_order() {
    for backend in BACKENDS {
        let (mut g, id, peer) = group_pair::<Vec<u8>>(backend, |o| o.zerocopy_threshold = None);
        let mut expect = Vec::new();
        for i in 0..32u64 {
            let head = pattern(i, 24);
            let data = pattern(100 + i, 512);
            expect.extend(&head);
            expect.extend(&data);
            let mut r = WriteReq::new(&head, i).unwrap();
            r.push_data(data);
            assert!(r.set_tail(&(i as u32).to_le_bytes()));
            expect.extend((i as u32).to_le_bytes());
            g.write(id, r).map_err(|(e, _)| e).unwrap();
        }
        let rd = reader(peer, expect.len());
        let mut tags = Vec::new();
        poll_until(&mut g, |_, ev| {
            for e in ev {
                if let Event::WriteDone { req, result, .. } = e {
                    result.unwrap();
                    tags.push(req.tag);
                }
            }
            tags.len() == 32
        });
        assert_eq!(tags, (0..32).collect::<Vec<_>>(), "{backend}: in order");
        assert_eq!(rd.join().unwrap(), expect);
        let c = g.sock_counters(id).unwrap();
        assert!(c.sendmsg <= 2, "{backend}: 32 requests x 3 iovecs in {} sendmsg", c.sendmsg);
    }
}

#[test]
fn partial_writes_resume_under_a_tiny_send_buffer() {
    for backend in BACKENDS {
        let (mut g, id, peer) = group_pair::<Rc<[u8]>>(backend, |o| {
            o.sock.sndbuf = Some(4096);
            o.zerocopy_threshold = None;
        });
        let mut expect = Vec::new();
        let mut next = 0u64;
        let total_reqs = 200u64;
        let rd = reader(peer, (total_reqs as usize) * (16 + 16 * 1024));
        let mut done = 0u64;
        poll_until(&mut g, |g, ev| {
            for e in ev {
                if let Event::WriteDone { req, result, .. } = e {
                    result.unwrap();
                    assert_eq!(req.tag, done, "in order");
                    done += 1;
                }
            }
            // Keep a bounded window queued.
            while next < total_reqs && g.queued(id) < 16 {
                let head = pattern(next, 16);
                let data: Rc<[u8]> = pattern(5000 + next, 16 * 1024).into();
                expect.extend(&head);
                expect.extend(data.iter());
                let mut r = WriteReq::new(&head, next).unwrap();
                r.push_data(data);
                g.write(id, r).map_err(|(e, _)| e).unwrap();
                next += 1;
            }
            done == total_reqs
        });
        let got = rd.join().unwrap();
        assert_eq!(checksum(&got), checksum(&expect), "{backend}: stream intact");
        let c = g.sock_counters(id).unwrap();
        assert!(c.sendmsg_partial > 0, "{backend}: the tiny buffer forced partial writes");
    }
}

#[test]
fn zero_copy_holds_buffers_until_notified_then_falls_back_on_loopback() {
    for backend in BACKENDS {
        let (mut g, id, peer) = group_pair::<Vec<u8>>(backend, |o| o.zerocopy_threshold = Some(4096));
        assert!(g.zerocopy_active(id), "{backend}: SO_ZEROCOPY accepted");
        let n = 4u64;
        let size = 64 * 1024;
        for i in 0..n {
            let mut r = WriteReq::new(&pattern(i, 8), i).unwrap();
            r.push_data(pattern(i + 50, size));
            g.write(id, r).map_err(|(e, _)| e).unwrap();
        }
        let rd = reader(peer, n as usize * (8 + size));
        g.flush();
        let c = g.sock_counters(id).unwrap();
        assert!(c.zc_sends >= 1, "{backend}: sent with MSG_ZEROCOPY");
        // Sent, yet not complete: nothing is released before the error queue says so.
        assert_eq!(g.queued(id), n as usize, "{backend}: buffers held until the notification");
        let mut tags = Vec::new();
        poll_until(&mut g, |g, ev| {
            for e in ev {
                if let Event::WriteDone { req, result, .. } = e {
                    result.unwrap();
                    assert!(g.sock_counters(id).unwrap().zc_notifications >= 1, "completed only after a notification");
                    tags.push(req.tag);
                }
            }
            tags.len() == n as usize
        });
        assert_eq!(tags, (0..n).collect::<Vec<_>>());
        let got = rd.join().unwrap();
        let mut expect = Vec::new();
        for i in 0..n {
            expect.extend(pattern(i, 8));
            expect.extend(pattern(i + 50, size));
        }
        assert_eq!(checksum(&got), checksum(&expect));
        let c = g.sock_counters(id).unwrap();
        assert!(c.zc_copied >= 1, "{backend}: loopback copies, and says so");
        assert_eq!(c.zc_fallbacks, 1, "{backend}");
        assert!(!g.zerocopy_active(id), "{backend}: zero copy turned itself off");
        // Later sends are plain copies.
        let zc_before = c.zc_sends;
        let mut r = WriteReq::new(b"x", 99).unwrap();
        r.push_data(vec![0u8; size]);
        g.write(id, r).map_err(|(e, _)| e).unwrap();
        g.flush();
        assert_eq!(g.sock_counters(id).unwrap().zc_sends, zc_before);
    }
}

#[test]
fn small_flushes_stay_below_the_zero_copy_threshold() {
    let (mut g, id, peer) = group_pair::<Vec<u8>>(ff_sock::Backend::Epoll, |o| o.zerocopy_threshold = Some(4096));
    let rd = reader(peer, 100);
    let mut r = WriteReq::new(&[7u8; 100], 1).unwrap();
    r.push_data(Vec::new());
    g.write(id, r).map_err(|(e, _)| e).unwrap();
    g.flush();
    assert_eq!(g.sock_counters(id).unwrap().zc_sends, 0);
    assert_eq!(rd.join().unwrap(), vec![7u8; 100]);
}

#[test]
fn write_queue_is_bounded() {
    let (mut g, id, _peer) = group_pair::<Vec<u8>>(ff_sock::Backend::Epoll, |o| o.write_queue_depth = 2);
    for i in 0..2 {
        g.write(id, WriteReq::new(b"a", i).unwrap()).map_err(|(e, _)| e).unwrap();
    }
    let (e, back) = g.write(id, WriteReq::new(b"b", 2).unwrap()).unwrap_err();
    assert!(matches!(e, SockError::QueueFull));
    assert_eq!(back.tag, 2, "the refused request is handed back");
}
