//! Connection failures as typed results (reset, EOF mid-message, writes to a dead peer, connect
//! timeout), IPv6, and a thousand connections in one group with every byte checked.

mod common;
use common::*;
use ff_sock::{Backend, Event, GroupOptions, Listener, SockError, SockGroup, SockId, SockOptions, TcpSock, WriteReq};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// Reads until an error, returning bytes read and the error.
fn read_to_error(g: &mut SockGroup, id: SockId) -> (usize, SockError) {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match g.recv(id, &mut buf) {
            Ok(n) => total += n,
            Err(SockError::WouldBlock) => poll_until(g, |_, ev| !ev.is_empty()),
            Err(e) => return (total, e),
        }
    }
}

#[test]
fn eof_mid_message_is_typed() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |_| {});
        peer.write_all(&[1u8; 30]).unwrap(); // half of a 64-byte command
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let (n, e) = read_to_error(&mut g, id);
        assert_eq!(n, 30);
        assert!(matches!(e, SockError::Eof), "{backend}: {e:?}");
    }
}

#[test]
fn peer_reset_is_typed_for_reader_and_writer() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |_| {});
        peer.write_all(&[1u8; 10]).unwrap();
        let s = socket2::SockRef::from(&peer);
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(peer); // RST
        let (_, e) = read_to_error(&mut g, id);
        assert!(matches!(e, SockError::Reset), "{backend}: {e:?}");
        // Writing now fails; the request completes with an error, none is lost silently.
        let mut r = WriteReq::new(b"hello", 1).unwrap();
        r.push_data(vec![0u8; 4096]);
        let mut outcome = None;
        match g.write(id, r) {
            Err((e, req)) => outcome = Some((req.tag, Err(e))),
            Ok(()) => poll_until(&mut g, |_, ev| {
                for e in ev {
                    if let Event::WriteDone { req, result, .. } = e {
                        outcome = Some((req.tag, result));
                    }
                }
                outcome.is_some()
            }),
        }
        let (tag, res) = outcome.unwrap();
        assert_eq!(tag, 1);
        assert!(res.is_err(), "{backend}: write to a reset peer must fail");
    }
}

#[test]
fn close_completes_queued_writes_with_closed() {
    let (mut g, id, _peer) = group_pair::<Vec<u8>>(Backend::Epoll, |o| o.sock.sndbuf = Some(4096));
    for i in 0..8 {
        let mut r = WriteReq::new(b"h", i).unwrap();
        r.push_data(vec![0u8; 256 * 1024]);
        g.write(id, r).map_err(|(e, _)| e).unwrap();
    }
    g.flush(); // the peer never reads: most stays queued
    g.close(id).unwrap();
    assert!(matches!(g.recv(id, &mut [0u8; 4]), Err(SockError::Closed)), "stale id refused");
    let mut ev = Vec::new();
    g.poll(Some(Duration::ZERO), &mut ev).unwrap();
    let failed = ev.iter().filter(|e| matches!(e, Event::WriteDone { result: Err(SockError::Closed), .. })).count();
    assert!(failed >= 1, "queued requests come back");
    assert_eq!(g.len(), 0);
}

#[test]
fn connect_times_out_and_refuses_typed() {
    // A closed port refuses at once.
    let l = std::net::TcpListener::bind(any_local()).unwrap();
    let addr = l.local_addr().unwrap();
    let refused = {
        drop(l);
        TcpSock::connect(addr, &SockOptions::default(), Duration::from_secs(2))
    };
    assert!(
        matches!(refused, Err(SockError::Io(ref e)) if e.raw_os_error() == Some(libc::ECONNREFUSED)),
        "{refused:?}"
    );
    // Only loopback is ours to use: fill a listener's backlog so its port drops further SYNs.
    let l = Listener::bind(any_local(), 0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    let mut timed_out = false;
    for _ in 0..64 {
        match TcpSock::connect(addr, &SockOptions::default(), Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(SockError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(timed_out, "a full backlog makes connect time out");
}

#[test]
fn ipv6_loopback_works() {
    let Ok(l) = Listener::bind("[::1]:0".parse().unwrap(), 4) else {
        eprintln!("SKIP: ipv6_loopback_works: no IPv6 loopback on this machine");
        return;
    };
    let addr = l.local_addr().unwrap();
    let c = TcpSock::connect(addr, &SockOptions::default(), Duration::from_secs(2)).unwrap();
    let mut g: SockGroup = SockGroup::new(GroupOptions::default()).unwrap();
    let cid = g.add(c).unwrap();
    g.write(cid, WriteReq::new(b"v6!", 0).unwrap()).map_err(|(e, _)| e).unwrap();
    g.flush();
    let s = loop {
        if let Some((s, peer)) = l.accept(&SockOptions::default()).unwrap() {
            assert!(peer.is_ipv6());
            break s;
        }
    };
    let sid = g.add(s).unwrap();
    let mut b = [0u8; 3];
    let mut got = 0;
    poll_until(&mut g, |g, _| {
        if let Ok(n) = g.recv(sid, &mut b[got..]) {
            got += n;
        }
        got == 3
    });
    assert_eq!(&b, b"v6!");
}

#[test]
fn a_thousand_connections_in_one_group_with_checksums() {
    const CONNS: usize = 1000;
    for backend in BACKENDS {
        let l = Listener::bind(any_local(), 1024).unwrap();
        let addr = l.local_addr().unwrap();
        let opts = GroupOptions { backend, ..GroupOptions::default() };
        let mut server: SockGroup = SockGroup::new(opts.clone()).unwrap();
        let mut client: SockGroup = SockGroup::new(opts.clone()).unwrap();
        // Each client sends len(4 bytes) + payload; the server echoes the checksum back.
        let mut expect = HashMap::new();
        let mut cids = Vec::new();
        for i in 0..CONNS {
            let c = TcpSock::connect(addr, &opts.sock, Duration::from_secs(5)).unwrap();
            let cid = client.add(c).unwrap();
            let payload = pattern(i as u64, 1000 + (i * 37) % 9000);
            expect.insert(cid, checksum(&payload));
            let mut r = WriteReq::new(&(payload.len() as u32).to_le_bytes(), i as u64).unwrap();
            r.push_data(payload);
            client.write(cid, r).map_err(|(e, _)| e).unwrap();
            cids.push(cid);
            while let Some((s, _)) = l.accept(&opts.sock).unwrap() {
                server.add(s).unwrap();
            }
        }
        client.flush();
        // Server state per connection: bytes gathered so far.
        let mut inbox: HashMap<SockId, Vec<u8>> = HashMap::new();
        let mut answered = 0;
        let mut got: HashMap<SockId, u64> = HashMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut ev = Vec::new();
        while got.len() < CONNS {
            assert!(std::time::Instant::now() < deadline, "{backend}: stuck at {} answers", got.len());
            while let Some((s, _)) = l.accept(&opts.sock).unwrap() {
                server.add(s).unwrap();
            }
            server.poll(Some(Duration::from_millis(1)), &mut ev).unwrap();
            for e in ev.drain(..) {
                let Event::Readable(id) = e else { continue };
                let buf = inbox.entry(id).or_default();
                let mut tmp = [0u8; 16384];
                loop {
                    match server.recv(id, &mut tmp) {
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        Err(SockError::WouldBlock) => break,
                        Err(e) => panic!("{backend}: server recv {e}"),
                    }
                }
                if buf.len() >= 4 {
                    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                    if buf.len() == 4 + len {
                        let sum = checksum(&buf[4..]);
                        server.write(id, WriteReq::new(&sum.to_le_bytes(), 0).unwrap()).map_err(|(e, _)| e).unwrap();
                        answered += 1;
                    }
                }
            }
            client.poll(Some(Duration::ZERO), &mut ev).unwrap();
            for e in ev.drain(..) {
                let Event::Readable(id) = e else { continue };
                let mut b = [0u8; 8];
                if let Ok(8) = client.recv(id, &mut b) {
                    got.insert(id, u64::from_le_bytes(b));
                }
            }
        }
        assert_eq!(answered, CONNS);
        for cid in cids {
            assert_eq!(got[&cid], expect[&cid], "{backend}: checksum of connection {cid:?}");
        }
        assert_eq!(server.len(), CONNS);
        let gc = server.counters();
        assert!(gc.waits > 0 && gc.kernel_events > 0);
    }
}
