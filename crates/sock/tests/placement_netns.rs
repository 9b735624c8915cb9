//! Placement on real rx queues: two network namespaces joined by a veth pair with several queues and GRO
//! on (ff-netns), clients pinned to different CPUs so their packets arrive on different queues. In
//! NAPI-ID mode connections with the same id share a group; in CPU mode, the same incoming CPU does.
//! Needs root (CI runs as root); skips loudly elsewhere.

use ff_netns::{VethPair, available, pin_current_thread};
use ff_sock::{GroupOptions, Listener, PlacementMode, Placer, SockGroup, SockOptions, TcpSock, WriteReq};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

const GROUPS: usize = 4;
const PER_CPU: usize = 4;

fn skip(test: &str) -> bool {
    match available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("SKIP: {test}: {why}");
            true
        }
    }
}

/// One accepted connection as the server placed it.
#[derive(Debug, Clone, Copy)]
struct Placed {
    sender_cpu: usize,
    key: Option<u32>,
    group: usize,
}

/// Server in namespace a places every connection after its first bytes arrive; clients in namespace b,
/// pinned per CPU, send their CPU number and wait for a reply. Returns the placements and the map state
/// after all connections closed.
fn run(pair: &VethPair, mode: PlacementMode) -> (Vec<Placed>, Vec<usize>, bool) {
    let cpus: Vec<usize> = pair.cpus().to_vec();
    let total = cpus.len() * PER_CPU;
    let ip = pair.addr_a();
    let (port_tx, port_rx) = mpsc::channel();
    let server = pair.spawn_in_a(move || {
        let l = Listener::bind(SocketAddr::new(ip, 0), 64).unwrap();
        port_tx.send(l.local_addr().unwrap().port()).unwrap();
        let mut placer = Placer::new(mode, GROUPS);
        let mut groups: Vec<SockGroup> =
            (0..GROUPS).map(|_| SockGroup::new(GroupOptions::default()).unwrap()).collect();
        let mut placed = Vec::new();
        let mut placements = Vec::new();
        while placed.len() < total {
            let Some((s, _)) = l.accept(&SockOptions::default()).unwrap() else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            // Place on the rx queue of the first data packet, as the target's acceptor does.
            assert!(s.wait_readable(Duration::from_secs(5)).unwrap(), "client sent nothing");
            let p = placer.place(&s);
            let g = &mut groups[p.group];
            let id = g.add(s).unwrap();
            let mut req = [0u8; 8];
            let mut got = 0;
            while got < 8 {
                match g.recv(id, &mut req[got..]) {
                    Ok(n) => got += n,
                    Err(ff_sock::SockError::WouldBlock) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            g.write(id, WriteReq::new(&[1], 0).unwrap()).map_err(|(e, _)| e).unwrap();
            g.flush();
            placed.push(Placed { sender_cpu: u64::from_le_bytes(req) as usize, key: p.key, group: p.group });
            placements.push((p.group, id, p));
        }
        for (g, id, p) in placements {
            groups[g].close(id).unwrap();
            placer.release(p);
        }
        let all_released = placed.iter().filter_map(|p| p.key).all(|k| placer.group_of_key(k).is_none());
        (placed, placer.load().to_vec(), all_released)
    });
    let port = port_rx.recv().unwrap();
    let dst = SocketAddr::new(pair.addr_a(), port);
    let clients: Vec<_> = cpus
        .iter()
        .map(|&cpu| {
            pair.spawn_in_b(move || {
                pin_current_thread(cpu).unwrap();
                for _ in 0..PER_CPU {
                    let s = TcpSock::connect(dst, &SockOptions::default(), Duration::from_secs(5)).unwrap();
                    let mut std_s = std::net::TcpStream::from(std::os::fd::OwnedFd::from(s));
                    std_s.set_nonblocking(false).unwrap();
                    std_s.write_all(&(cpu as u64).to_le_bytes()).unwrap();
                    let mut b = [0u8; 1];
                    std_s.read_exact(&mut b).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap()
}

fn check_same_key_same_group(placed: &[Placed]) -> BTreeMap<u32, usize> {
    let mut by_key = BTreeMap::new();
    for p in placed {
        let k = p.key.expect("the kernel reported a key for every connection");
        let g = *by_key.entry(k).or_insert(p.group);
        assert_eq!(g, p.group, "connections with key {k:#x} split over groups: {placed:?}");
    }
    by_key
}

#[test]
fn napi_id_mode_groups_connections_by_rx_queue() {
    if skip("napi_id_mode_groups_connections_by_rx_queue") {
        return;
    }
    let pair = VethPair::new("ffpl", 4).unwrap();
    let (placed, load, released) = run(&pair, PlacementMode::NapiId);
    let by_key = check_same_key_same_group(&placed);
    assert!(by_key.keys().all(|&k| k != 0), "NAPI ids are non-zero: {by_key:?}");
    // The pair's XPS map sends each CPU's packets through its own queue.
    let per_cpu: BTreeMap<usize, BTreeSet<u32>> = placed.iter().fold(BTreeMap::new(), |mut m, p| {
        m.entry(p.sender_cpu).or_default().insert(p.key.unwrap());
        m
    });
    assert!(per_cpu.values().all(|ids| ids.len() == 1), "one rx queue per sending CPU: {per_cpu:?}");
    if pair.cpus().len() >= 2 {
        assert!(by_key.len() >= 2, "distinct queues seen: {by_key:?}");
        let groups: BTreeSet<usize> = by_key.values().copied().collect();
        assert_eq!(groups.len(), by_key.len(), "distinct rx queues spread over distinct groups");
    } else {
        eprintln!("SKIP (part): only one CPU allowed; cannot show two queues");
    }
    assert!(load.iter().all(|&l| l == 0), "load returns to zero: {load:?}");
    assert!(released, "the id-to-group map forgets ids with no connection left");
}

#[test]
fn incoming_cpu_mode_groups_connections_by_cpu() {
    if skip("incoming_cpu_mode_groups_connections_by_cpu") {
        return;
    }
    let pair = VethPair::new("ffpc", 4).unwrap();
    let (placed, load, released) = run(&pair, PlacementMode::IncomingCpu);
    let by_key = check_same_key_same_group(&placed);
    for p in &placed {
        assert_eq!(p.key, Some(p.sender_cpu as u32), "SO_INCOMING_CPU is the sending CPU on veth: {p:?}");
    }
    if pair.cpus().len() >= 2 {
        assert!(by_key.len() >= 2);
    }
    assert!(load.iter().all(|&l| l == 0));
    assert!(released);
}
