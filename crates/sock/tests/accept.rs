//! Listeners owned by a group (`add_listener` / `take_accepted` / `close_listener`) on every backend:
//! every accepted connection joins the group, carries its data both ways intact, and is counted as a
//! multishot accept into the fixed-file table (io_uring, no register syscall) or a plain accept
//! (poll/epoll). On io_uring the multishot accept is also forced to end (the accept range filling up
//! switches it to regular descriptors, freeing it switches back) and must be re-armed losing nothing.

mod common;
use common::*;
use ff_sock::{Accepted, Backend, Event, GroupOptions, Listener, ListenerId, SockError, SockGroup, SockId, WriteReq};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

const PAYLOAD: usize = 4096;

fn group(backend: Backend, f: impl FnOnce(&mut GroupOptions)) -> Option<SockGroup> {
    let mut o = GroupOptions { backend, ..GroupOptions::default() };
    f(&mut o);
    let g = SockGroup::new(o).unwrap();
    if g.backend() != backend {
        eprintln!("SKIP: {backend:?} unavailable: {:?}", g.backend_fallback());
        return None;
    }
    Some(g)
}

fn listen(g: &mut SockGroup) -> (ListenerId, SocketAddr) {
    let l = Listener::bind(any_local(), 128).unwrap();
    let addr = l.local_addr().unwrap();
    (g.add_listener(l).unwrap(), addr)
}

/// Connects client `i`: it sends its index and a 4 KiB pattern.
fn connect(addr: SocketAddr, i: u64) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(&i.to_le_bytes()).unwrap();
    c.write_all(&pattern(i, PAYLOAD)).unwrap();
    c
}

/// Polls until `n` more connections were accepted; returns them.
fn accept_n(g: &mut SockGroup, n: usize) -> Vec<Accepted> {
    let mut got = Vec::new();
    poll_until(g, |g, _| {
        g.take_accepted(&mut got);
        got.len() >= n
    });
    assert_eq!(got.len(), n, "exactly the connections made were accepted");
    got
}

/// Reads each accepted connection's index + pattern, checks it, answers with the index reversed.
fn serve(g: &mut SockGroup, acc: &[Accepted], lid: ListenerId) -> HashMap<u64, SockId> {
    let mut by_index = HashMap::new();
    for a in acc {
        assert_eq!(a.listener, lid);
        assert_eq!(a.peer, g.sock(a.sock).unwrap().peer_addr().ok(), "the peer address is the socket's");
        let mut buf = vec![0u8; 8 + PAYLOAD];
        let mut off = 0;
        while off < buf.len() {
            match g.recv(a.sock, &mut buf[off..]) {
                Ok(n) => off += n,
                Err(SockError::WouldBlock) => poll_until(g, |_, ev| ev.iter().any(|e| matches!(e, Event::Readable(_)))),
                Err(e) => panic!("recv: {e}"),
            }
        }
        let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
        assert!(buf[8..] == pattern(i, PAYLOAD)[..], "connection {i}: payload intact");
        let mut reply = i.to_be_bytes();
        reply.reverse();
        g.write(a.sock, WriteReq::new(&reply, i).unwrap()).map_err(|(e, _)| e).unwrap();
        assert!(by_index.insert(i, a.sock).is_none(), "connection {i} accepted once");
    }
    let mut done = 0;
    poll_until(g, |_, ev| {
        done += ev.iter().filter(|e| matches!(e, Event::WriteDone { result: Ok(()), .. })).count();
        done == acc.len()
    });
    by_index
}

fn check_replies(clients: &mut [(u64, TcpStream)]) {
    for (i, c) in clients {
        let mut r = [0u8; 8];
        c.read_exact(&mut r).unwrap();
        r.reverse();
        assert_eq!(u64::from_be_bytes(r), *i);
    }
}

#[test]
fn accepted_connections_join_the_group_on_every_backend() {
    const N: u64 = 64;
    for backend in BACKENDS {
        let Some(mut g) = group(backend, |_| {}) else { continue };
        let (lid, addr) = listen(&mut g);
        let ctl_before = g.counters().ctl_calls;
        let mut clients: Vec<(u64, TcpStream)> = (0..N).map(|i| (i, connect(addr, i))).collect();
        let acc = accept_n(&mut g, N as usize);
        let c = g.counters();
        if backend == Backend::Uring {
            let setup = g.uring_setup().unwrap();
            assert!(setup.accept_files > 0, "accept range registered: {setup:?}");
            assert_eq!((c.accepts_multishot, c.accepts_plain), (N, 0), "{c:?}");
            assert_eq!(c.ctl_calls, ctl_before, "no register syscall per accepted socket: {c:?}");
            assert_eq!(c.uring_fixed_files, 0, "nothing installed by register calls: {c:?}");
        } else {
            assert_eq!((c.accepts_multishot, c.accepts_plain), (0, N), "{backend:?}: {c:?}");
        }
        assert_eq!(g.len(), N as usize);
        let by_index = serve(&mut g, &acc, lid);
        check_replies(&mut clients);
        // Closing accepted sockets: the peer sees EOF; on io_uring the slots go back to the kernel.
        for (i, c) in clients.iter_mut().take(4) {
            drop(g.close(by_index[i]).unwrap());
            // On io_uring the close of the slot and the receive's cancellation go out with the next enter.
            g.flush();
            let mut b = [0u8; 1];
            assert_eq!(c.read(&mut b).unwrap(), 0, "{backend:?}: EOF after close");
        }
        assert_eq!(g.counters().accept_errors, 0, "{backend:?}");
    }
}

#[test]
fn closing_a_listener_stops_accepting_and_keeps_its_connections() {
    for backend in BACKENDS {
        let Some(mut g) = group(backend, |_| {}) else { continue };
        let (lid, addr) = listen(&mut g);
        let mut clients = vec![(7, connect(addr, 7))];
        let acc = accept_n(&mut g, 1);
        let l = g.close_listener(lid).unwrap();
        assert!(g.listener(lid).is_none() && g.close_listener(lid).is_err(), "the id is stale now");
        drop(l);
        let mut ev = Vec::new();
        for _ in 0..3 {
            g.poll(Some(std::time::Duration::from_millis(5)), &mut ev).unwrap();
        }
        assert!(TcpStream::connect(addr).is_err(), "{backend:?}: nobody listens any more");
        // The connection accepted before still works.
        serve(&mut g, &acc, lid);
        check_replies(&mut clients);
        // A new listener reuses the slot with a new id.
        let (lid2, addr2) = listen(&mut g);
        assert_ne!(lid, lid2);
        let mut clients = vec![(8, connect(addr2, 8))];
        let acc = accept_n(&mut g, 1);
        serve(&mut g, &acc, lid2);
        check_replies(&mut clients);
    }
}

/// A small accept range (16 slots) filled one connection at a time: past three quarters the multishot
/// accept is cancelled and re-armed for regular descriptors; once slots are freed it switches back.
/// Every connection is accepted exactly once with its data intact.
#[test]
fn uring_multishot_accept_is_rearmed_across_mode_switches() {
    let Some(mut g) = group(Backend::Uring, |o| o.uring.fixed_files = 16) else { return };
    if g.uring_setup().unwrap().accept_files != 16 {
        eprintln!("SKIP: no direct accept range: {:?}", g.uring_setup());
        return;
    }
    let (lid, addr) = listen(&mut g);
    let mut clients = Vec::new();
    let mut socks = HashMap::new();
    // One at a time, so the group sees the range fill before the kernel accepts the next one.
    for i in 0..20u64 {
        clients.push((i, connect(addr, i)));
        let acc = accept_n(&mut g, 1);
        socks.extend(serve(&mut g, &acc, lid));
    }
    check_replies(&mut clients);
    let c = g.counters();
    assert_eq!(c.accepts_multishot + c.accepts_plain, 20, "{c:?}");
    assert!(c.accepts_multishot >= 12 && c.accepts_plain >= 1, "switched to regular fds when 3/4 full: {c:?}");
    assert!(c.accept_rearms >= 1, "the ended multishot was armed again: {c:?}");
    // Free the direct slots: the next accepts go straight into the table again.
    for i in 0..20 {
        drop(g.close(socks[&i]).unwrap());
    }
    let rearms = c.accept_rearms;
    let direct = c.accepts_multishot;
    let mut clients = Vec::new();
    for i in 100..104u64 {
        clients.push((i, connect(addr, i)));
        let acc = accept_n(&mut g, 1);
        serve(&mut g, &acc, lid);
    }
    check_replies(&mut clients);
    let c = g.counters();
    assert!(c.accept_rearms > rearms, "switched back: {c:?}");
    assert!(c.accepts_multishot > direct, "direct accepts again: {c:?}");
    assert_eq!(c.accept_errors, 0, "{c:?}");
}
