//! Socket options reach the kernel, and a bounded event count with rotation serves every socket.

mod common;
use common::*;
use ff_sock::{Event, GroupOptions, Listener, SockError, SockGroup, SockId, SockOptions, TcpSock};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[test]
fn options_are_applied() {
    let opts = SockOptions {
        nodelay: true,
        quickack: true,
        priority: Some(3),
        rcvbuf: Some(256 * 1024),
        sndbuf: Some(256 * 1024),
        mark: None,
        zerocopy: true,
    };
    let (s, _peer) = pair(&opts);
    assert_eq!(s.get_int(libc::IPPROTO_TCP, libc::TCP_NODELAY).unwrap(), 1);
    assert_eq!(s.get_int(libc::SOL_SOCKET, libc::SO_PRIORITY).unwrap(), 3);
    // The kernel doubles the requested size for bookkeeping.
    assert!(s.get_int(libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap() >= 256 * 1024);
    assert!(s.zerocopy_enabled());
}

#[test]
fn so_mark_is_set_before_connect() {
    // SO_MARK needs CAP_NET_ADMIN.
    let l = Listener::bind(any_local(), 4).unwrap();
    let opts = SockOptions { mark: Some(0x42), ..SockOptions::default() };
    match TcpSock::connect(l.local_addr().unwrap(), &opts, Duration::from_secs(2)) {
        Ok(s) => assert_eq!(s.get_int(libc::SOL_SOCKET, libc::SO_MARK).unwrap(), 0x42),
        Err(SockError::Io(e)) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("SKIP: so_mark_is_set_before_connect: SO_MARK needs CAP_NET_ADMIN");
        }
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn one_event_per_wait_still_serves_every_socket() {
    for backend in BACKENDS {
        let o = GroupOptions { backend, max_events: 1, ..GroupOptions::default() };
        let mut g: SockGroup = SockGroup::new(o.clone()).unwrap();
        let mut peers = Vec::new();
        let mut ids: Vec<SockId> = Vec::new();
        for _ in 0..4 {
            let (s, p) = pair(&o.sock);
            ids.push(g.add(s).unwrap());
            peers.push(p);
        }
        // Every peer keeps its socket readable; the reactor reads only one byte per event so each
        // socket stays ready: without rotation the first would win every wait.
        for p in &mut peers {
            p.write_all(&[0u8; 1]).unwrap();
        }
        let mut served: BTreeMap<SockId, usize> = BTreeMap::new();
        let mut ev = Vec::new();
        for _ in 0..40 {
            ev.clear();
            g.poll(Some(Duration::from_millis(100)), &mut ev).unwrap();
            for e in &ev {
                if let Event::Readable(id) = e {
                    *served.entry(*id).or_default() += 1;
                }
            }
        }
        assert_eq!(served.len(), 4, "{backend}: every socket served: {served:?}");
        assert!(served.values().all(|&n| n >= 5), "{backend}: fair share: {served:?}");
    }
}
