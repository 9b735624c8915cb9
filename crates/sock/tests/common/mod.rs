//! Shared test plumbing: loopback connection pairs with one end in a group, and poll loops that give up
//! after a bounded number of rounds instead of hanging.
#![allow(dead_code)]

use ff_sock::{Backend, Event, GroupOptions, Listener, SockGroup, SockId, SockOptions, StableBuf, TcpSock};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Every backend: every sock-layer test runs on each.
pub const BACKENDS: [Backend; 3] = [Backend::Poll, Backend::Epoll, Backend::Uring];

/// A loopback pair: `sock` is our end (non-blocking, options applied), `peer` a plain blocking stream.
pub fn pair(opts: &SockOptions) -> (TcpSock, TcpStream) {
    let l = Listener::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let addr = l.local_addr().unwrap();
    let peer = TcpStream::connect(addr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some((s, _)) = l.accept(opts).unwrap() {
            return (s, peer);
        }
        assert!(Instant::now() < deadline, "accept timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A group of `backend` with `opts` adjusted, holding our end of a fresh pair.
pub fn group_pair<B: StableBuf>(
    backend: Backend,
    f: impl FnOnce(&mut GroupOptions),
) -> (SockGroup<B>, SockId, TcpStream) {
    let mut o = GroupOptions { backend, ..GroupOptions::default() };
    f(&mut o);
    let (s, peer) = pair(&o.sock);
    let mut g = SockGroup::new(o).unwrap();
    assert_eq!(g.backend(), backend, "backend unavailable: {:?}", g.backend_fallback());
    let id = g.add(s).unwrap();
    (g, id, peer)
}

/// Polls until `done` says so, at most 10 s of wall clock (a hang is a failure, not a timing assert).
pub fn poll_until<B: StableBuf>(g: &mut SockGroup<B>, mut done: impl FnMut(&mut SockGroup<B>, Vec<Event<B>>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ev = Vec::new();
    loop {
        g.poll(Some(Duration::from_millis(10)), &mut ev).unwrap();
        if done(g, std::mem::take(&mut ev)) {
            return;
        }
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
    }
}

/// The local address of a std listener bound to loopback port 0.
pub fn any_local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Deterministic test bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// FNV-1a, enough to check data end to end.
pub fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}
