//! The io_uring backend's own hazards, with every byte checked: the provided-buffer ring running dry
//! under a flood of small PDUs (multishot receive ends with ENOBUFS and is armed again, nothing lost),
//! EOF ending the multishot for good, and closing a socket with sends and a receive in flight (every
//! request comes back exactly once, the peer sees a clean prefix, and the slot's next socket sees none
//! of the old one's bytes).

mod common;
use common::*;
use ff_sock::{Backend, Event, GroupOptions, SockError, SockGroup, SockId, WriteReq};
use std::io::{Read, Write};
use std::time::Duration;

/// Reads exactly `buf.len()` bytes, polling when it would block.
fn read_exact(g: &mut SockGroup, id: SockId, buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        match g.recv(id, &mut buf[off..]) {
            Ok(n) => off += n,
            Err(SockError::WouldBlock) => poll_until(g, |_, ev| ev.iter().any(|e| matches!(e, Event::Readable(_)))),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn uring_pair(f: impl FnOnce(&mut GroupOptions)) -> Option<(SockGroup, SockId, std::net::TcpStream)> {
    let mut o = GroupOptions { backend: Backend::Uring, ..GroupOptions::default() };
    f(&mut o);
    let (s, peer) = pair(&o.sock);
    let mut g: SockGroup = SockGroup::new(o).unwrap();
    if g.backend() != Backend::Uring {
        eprintln!("SKIP: io_uring unavailable: {:?}", g.backend_fallback());
        return None;
    }
    let id = g.add(s).unwrap();
    Some((g, id, peer))
}

#[test]
fn buffer_ring_exhaustion_under_a_flood_of_small_pdus_loses_nothing() {
    const PDUS: usize = 20_000;
    const PDU: usize = 64;
    let Some((mut g, id, mut peer)) = uring_pair(|o| {
        o.uring.bufs = 8;
        o.uring.buf_size = 512;
    }) else {
        return;
    };
    let stream: Vec<u8> = (0..PDUS).flat_map(|i| pattern(i as u64, PDU)).collect();
    let expect = checksum(&stream);
    let sender = std::thread::spawn(move || {
        peer.write_all(&stream).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        peer
    });
    // Let the 4 KiB of provided buffers fill up before anyone reads: the multishot receive must end.
    let mut ev = Vec::new();
    for _ in 0..20 {
        g.poll(Some(Duration::from_millis(5)), &mut ev).unwrap();
    }
    assert!(g.counters().uring_enobufs >= 1, "the ring ran dry: {:?}", g.counters());
    let mut got = Vec::with_capacity(PDUS * PDU);
    let mut pdu = [0u8; PDU];
    for i in 0..PDUS {
        read_exact(&mut g, id, &mut pdu);
        assert_eq!(pdu[..], pattern(i as u64, PDU)[..], "PDU {i}");
        got.extend_from_slice(&pdu);
    }
    assert_eq!(checksum(&got), expect);
    // Then EOF: the multishot receive ends for good.
    let e = loop {
        match g.recv(id, &mut pdu) {
            Err(SockError::WouldBlock) => poll_until(&mut g, |_, ev| !ev.is_empty()),
            other => break other,
        }
    };
    assert!(matches!(e, Err(SockError::Eof)), "{e:?}");
    drop(sender.join().unwrap());
    let gc = g.counters();
    let c = g.sock_counters(id).unwrap();
    assert_eq!(c.bytes_into_bufs, (PDUS * PDU) as u64, "no byte received twice or lost");
    assert_eq!(c.bytes_copied, (PDUS * PDU) as u64, "one copy per byte");
    assert!(gc.uring_rearms >= 1, "re-armed after ENOBUFS: {gc:?}");
    // Every buffer but the last few (republished at the next enter) went back to the ring.
    assert!(gc.uring_bufs_recycled as usize + 8 >= (PDUS * PDU) / 512, "buffers recycled: {gc:?}");
    assert_eq!(g.pipe_len(id), 0);
}

#[test]
fn close_with_sends_and_receive_in_flight_returns_everything_once_and_leaks_nothing() {
    const REQS: u64 = 8;
    const SIZE: usize = 256 * 1024;
    let Some((mut g, a, mut peer_a)) = uring_pair(|o| o.sock.sndbuf = Some(8192)) else { return };
    // The peer sends to us too, so the receive has completed buffers and more data arriving.
    peer_a.write_all(&pattern(1, 64 * 1024)).unwrap();
    let mut expect = Vec::new();
    for i in 0..REQS {
        let head = pattern(100 + i, 16);
        let data = pattern(200 + i, SIZE);
        expect.extend(&head);
        expect.extend(&data);
        let mut r = WriteReq::new(&head, i).unwrap();
        r.push_data(data);
        g.write(a, r).map_err(|(e, _)| e).unwrap();
    }
    // The peer does not read yet: the sendmsg SQE waits in the kernel.
    let mut done: Vec<(u64, bool)> = Vec::new();
    let mut ev = Vec::new();
    for _ in 0..5 {
        g.poll(Some(Duration::from_millis(2)), &mut ev).unwrap();
    }
    for e in ev.drain(..) {
        if let Event::WriteDone { req, result, .. } = e {
            done.push((req.tag, result.is_ok()));
        }
    }
    assert!(g.queued(a) > 0, "requests still in flight when closing");
    let sock = g.close(a).unwrap();
    drop(sock);
    // The peer reads what made it: a prefix of the stream, never a duplicate or a gap.
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 65536];
        peer_a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        loop {
            match peer_a.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => v.extend_from_slice(&buf[..n]),
            }
        }
        v
    });
    // A new socket takes the same slot (and fixed-file slot); it must see only its own bytes.
    let (s, mut peer_b) = pair(&g.options().sock.clone());
    let b = g.add(s).unwrap();
    assert_eq!(b.index(), a.index(), "slot reused");
    let stream_b = pattern(7, 512 * 1024);
    let sb = stream_b.clone();
    let writer_b = std::thread::spawn(move || {
        peer_b.write_all(&sb).unwrap();
        peer_b
    });
    let mut got_b = vec![0u8; stream_b.len()];
    let mut off = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while off < got_b.len() || done.len() < REQS as usize {
        assert!(std::time::Instant::now() < deadline, "stuck: {off} bytes, {} completions", done.len());
        match g.recv(b, &mut got_b[off..]) {
            Ok(n) => off += n,
            Err(SockError::WouldBlock) => {
                g.poll(Some(Duration::from_millis(5)), &mut ev).unwrap();
                for e in ev.drain(..) {
                    if let Event::WriteDone { sock, req, result } = e {
                        assert_eq!(sock, a, "only the closed socket had writes");
                        assert!(matches!(result, Ok(()) | Err(SockError::Closed)), "{result:?}");
                        done.push((req.tag, result.is_ok()));
                    }
                }
            }
            Err(e) => panic!("recv on the new socket: {e}"),
        }
    }
    assert_eq!(checksum(&got_b), checksum(&stream_b), "the new socket got exactly its own bytes");
    let tags: Vec<u64> = done.iter().map(|d| d.0).collect();
    assert_eq!(tags, (0..REQS).collect::<Vec<_>>(), "every request back exactly once, in order");
    let got_a = reader.join().unwrap();
    assert!(got_a.len() <= expect.len());
    assert!(got_a == expect[..got_a.len()], "the closed socket's peer got a clean prefix");
    let ok_bytes: usize = done.iter().filter(|d| d.1).count() * (16 + SIZE);
    assert!(got_a.len() >= ok_bytes, "requests reported sent were sent");
    drop(writer_b.join().unwrap());
}

#[test]
fn uring_backend_parses_and_prints() {
    let b: Backend = "uring".parse().unwrap();
    assert_eq!(b, Backend::Uring);
    assert_eq!(b.to_string(), "uring");
    let o = GroupOptions { backend: Backend::Uring, ..GroupOptions::default() };
    assert!(o.to_string().contains("backend=uring"));
}

#[test]
fn one_enter_per_poll_and_none_when_idle_busy_polling() {
    let Some((mut g, id, mut peer)) = uring_pair(|_| {}) else { return };
    let setup = g.uring_setup().unwrap();
    let mut ev = Vec::new();
    g.poll(Some(Duration::ZERO), &mut ev).unwrap(); // submits the receive
    let before = g.counters().uring_enters;
    for _ in 0..100 {
        g.poll(Some(Duration::ZERO), &mut ev).unwrap();
    }
    let idle = g.counters().uring_enters - before;
    if setup.taskrun_flag {
        assert_eq!(idle, 0, "an idle busy poll makes no syscall");
    } else {
        assert!(idle <= 100);
    }
    peer.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    read_exact(&mut g, id, &mut b);
    assert_eq!(&b, b"ping");
    let c = g.counters();
    assert!(c.uring_enters >= 1 && c.uring_cqes >= 1, "{c:?}");
}

#[test]
fn a_ring_that_cannot_be_built_falls_back_to_epoll_and_says_so() {
    // Provided buffers no machine can map make the ring setup fail as a refused io_uring would.
    let o = GroupOptions {
        backend: Backend::Uring,
        uring: ff_sock::UringOptions { buf_size: 1 << 50, ..Default::default() },
        ..GroupOptions::default()
    };
    let (s, mut peer) = pair(&o.sock);
    let mut g: SockGroup = SockGroup::new(o).unwrap();
    assert_eq!(g.backend(), Backend::Epoll);
    assert!(g.options().to_string().contains("backend=epoll"));
    let why = g.backend_fallback().expect("the reason is kept");
    assert!(!why.is_empty());
    let id = g.add(s).unwrap();
    peer.write_all(b"still works").unwrap();
    let mut b = [0u8; 11];
    read_exact(&mut g, id, &mut b);
    assert_eq!(&b, b"still works");
}
