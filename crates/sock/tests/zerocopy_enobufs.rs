//! MSG_ZEROCOPY refused with ENOBUFS (no option memory for the notification) backs off to copies
//! without losing or reordering a byte. Uses a network namespace so the tiny per-namespace
//! `net.core.optmem_max` touches nothing else. Needs root; skips loudly elsewhere.

mod common;
use common::*;
use ff_netns::{Side, VethPair, available};
use ff_sock::{Event, GroupOptions, Listener, SockGroup, SockOptions, TcpSock, WriteReq};
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn enobufs_backs_off_to_copies_and_loses_nothing() {
    if let Err(why) = available() {
        eprintln!("SKIP: enobufs_backs_off_to_copies_and_loses_nothing: {why}");
        return;
    }
    let pair = VethPair::new("ffzc", 1).unwrap();
    let ns = pair.netns_name(Side::A).to_string();
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "sysctl", "-qw", "net.core.optmem_max=64"])
        .status()
        .unwrap();
    assert!(st.success(), "could not shrink optmem_max in the test namespace");
    let ip = pair.addr_a();
    let (tags, counters, received, expect) = pair.in_a(move || {
        let l = Listener::bind(SocketAddr::new(ip, 0), 4).unwrap();
        let addr = l.local_addr().unwrap();
        let o = GroupOptions { zerocopy_threshold: Some(4096), ..GroupOptions::default() };
        let c = TcpSock::connect(addr, &o.sock, Duration::from_secs(2)).unwrap();
        let (s, _) = loop {
            if let Some(x) = l.accept(&SockOptions::default()).unwrap() {
                break x;
            }
        };
        let mut peer = std::net::TcpStream::from(std::os::fd::OwnedFd::from(s));
        peer.set_nonblocking(false).unwrap();
        let n = 16u64;
        let size = 32 * 1024;
        let reader = std::thread::spawn(move || {
            let mut v = vec![0u8; n as usize * size];
            peer.read_exact(&mut v).unwrap();
            v
        });
        let mut g: SockGroup = SockGroup::new(o).unwrap();
        let id = g.add(c).unwrap();
        let mut expect = Vec::new();
        for i in 0..n {
            let d = pattern(i, size);
            expect.extend(&d);
            let mut r = WriteReq::data_only(i);
            r.push_data(d);
            g.write(id, r).map_err(|(e, _)| e).unwrap();
            g.flush(); // one flush per request: several zero-copy attempts
        }
        let mut tags = Vec::new();
        poll_until(&mut g, |_, ev| {
            for e in ev {
                if let Event::WriteDone { req, result, .. } = e {
                    result.unwrap();
                    tags.push(req.tag);
                }
            }
            tags.len() == n as usize
        });
        (tags, g.sock_counters(id).unwrap(), reader.join().unwrap(), expect)
    });
    assert_eq!(tags, (0..16).collect::<Vec<_>>(), "in order");
    assert_eq!(checksum(&received), checksum(&expect), "no byte lost");
    assert!(counters.zc_enobufs >= 1, "ENOBUFS seen: {counters:?}");
    assert!(counters.zc_enobufs < 16, "backoff spares most attempts: {counters:?}");
}
