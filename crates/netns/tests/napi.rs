//! End-to-end checks that a [`VethPair`] gives TCP sockets real NAPI ids:
//! non-zero ids on accepted sockets, one id per rx queue, the queue chosen
//! by the sending CPU through the pair's XPS map, and `SO_INCOMING_CPU`
//! equal to the sending CPU (default, non-threaded NAPI).
//!
//! Every test skips loudly when namespaces cannot be created (not root).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;

use ff_netns::{Side, VethPair, available, incoming_cpu, incoming_napi_id, pin_current_thread};

fn skip_unless_available(test: &str) -> bool {
    match available() {
        Ok(()) => false,
        Err(reason) => {
            eprintln!("SKIP: {test}: {reason}");
            true
        }
    }
}

/// What the server saw for one accepted connection.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sender_cpu: usize,
    napi_id: u32,
    incoming_cpu: i32,
}

/// Runs a server in namespace a and, in namespace b, one client thread per
/// entry of `client_cpus` (pinned to it) making `per_cpu` sequential
/// connections. Each client sends its CPU number and waits for a one-byte
/// reply; the server samples the socket options right after reading the
/// request and before replying, so the last packet it saw is the client's
/// data segment, transmitted from the pinned CPU.
fn run_connections(pair: &VethPair, client_cpus: &[usize], per_cpu: usize) -> Vec<Seen> {
    let total = client_cpus.len() * per_cpu;
    let listen_ip = pair.addr_a();
    let (port_tx, port_rx) = mpsc::channel();
    let server = pair.spawn_in_a(move || {
        let listener = TcpListener::bind(SocketAddr::new(listen_ip, 0)).unwrap();
        port_tx.send(listener.local_addr().unwrap().port()).unwrap();
        (0..total)
            .map(|_| {
                let (mut conn, _) = listener.accept().unwrap();
                let mut req = [0u8; 8];
                conn.read_exact(&mut req).unwrap();
                let seen = Seen {
                    sender_cpu: u64::from_le_bytes(req) as usize,
                    napi_id: incoming_napi_id(&conn).unwrap(),
                    incoming_cpu: incoming_cpu(&conn).unwrap(),
                };
                conn.write_all(&[1]).unwrap();
                seen
            })
            .collect::<Vec<_>>()
    });
    let server_addr = SocketAddr::new(listen_ip, port_rx.recv().unwrap());
    let clients: Vec<_> = client_cpus
        .iter()
        .map(|&cpu| {
            pair.spawn_in_b(move || {
                pin_current_thread(cpu).unwrap();
                for _ in 0..per_cpu {
                    let mut conn = TcpStream::connect(server_addr).unwrap();
                    conn.write_all(&(cpu as u64).to_le_bytes()).unwrap();
                    let mut ack = [0u8; 1];
                    conn.read_exact(&mut ack).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap()
}

/// The headline property: with GRO on / TSO off (set up by `VethPair`),
/// accepted sockets report non-zero NAPI ids; connections sent from CPUs
/// that XPS maps to different queues get different ids, connections from
/// the same CPU always get the same id, and the incoming CPU is the sender's.
#[test]
fn accepted_sockets_report_napi_ids_per_sending_cpu() {
    if skip_unless_available("accepted_sockets_report_napi_ids_per_sending_cpu") {
        return;
    }
    let pair = VethPair::new("ffnapi", 4).unwrap();
    let cpus = pair.cpus().to_vec();
    let seen = run_connections(&pair, &cpus, 6);
    assert_eq!(seen.len(), cpus.len() * 6);

    let mut ids_by_cpu: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
    for s in &seen {
        assert_ne!(s.napi_id, 0, "no NAPI id on {s:?}");
        assert_eq!(s.incoming_cpu, s.sender_cpu as i32, "non-threaded veth NAPI runs on the transmitting CPU: {s:?}");
        ids_by_cpu.entry(s.sender_cpu).or_default().insert(s.napi_id);
    }
    for (cpu, ids) in &ids_by_cpu {
        assert_eq!(ids.len(), 1, "CPU {cpu} spread over NAPI ids {ids:?}");
    }
    // CPUs that XPS maps to the same queue must share the id, different
    // queues must not.
    let mut id_by_queue: BTreeMap<u32, u32> = BTreeMap::new();
    for (&cpu, ids) in &ids_by_cpu {
        let id = *ids.first().unwrap();
        let queue = pair.queue_for_cpu(cpu).unwrap();
        assert_eq!(*id_by_queue.entry(queue).or_insert(id), id, "queue {queue}");
    }
    let distinct: BTreeSet<u32> = id_by_queue.values().copied().collect();
    assert_eq!(distinct.len(), id_by_queue.len(), "{id_by_queue:?}");
    if cpus.len() >= 2 {
        assert!(distinct.len() >= 2, "expected >= 2 NAPI ids: {seen:?}");
    } else {
        eprintln!("SKIP (partial): only CPU {cpus:?} allowed, cannot get 2 NAPI ids");
    }
}

/// Control: a single-queue pair still uses NAPI, but every connection,
/// whichever CPU it comes from, lands on the one rx queue and its NAPI id.
#[test]
fn single_queue_pair_has_one_napi_id() {
    if skip_unless_available("single_queue_pair_has_one_napi_id") {
        return;
    }
    let pair = VethPair::new("ffone", 1).unwrap();
    let cpus = pair.cpus().to_vec();
    let seen = run_connections(&pair, &cpus, 3);
    let ids: BTreeSet<u32> = seen.iter().map(|s| s.napi_id).collect();
    assert_eq!(ids.len(), 1, "{seen:?}");
    assert!(!ids.contains(&0), "{seen:?}");
}

/// The client side is NAPI-backed too (both ends have GRO on / TSO off):
/// the connected socket in b sees a non-zero id once the reply arrived.
#[test]
fn client_side_sockets_report_napi_ids() {
    if skip_unless_available("client_side_sockets_report_napi_ids") {
        return;
    }
    let pair = VethPair::new("ffcli", 2).unwrap();
    let listen_ip = pair.addr_a();
    let (port_tx, port_rx) = mpsc::channel();
    let server = pair.spawn_in_a(move || {
        let listener = TcpListener::bind(SocketAddr::new(listen_ip, 0)).unwrap();
        port_tx.send(listener.local_addr().unwrap().port()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(b"pong").unwrap();
        // Wait for the client to close so the reply is not cut short.
        let _ = conn.read(&mut buf);
    });
    let addr = SocketAddr::new(listen_ip, port_rx.recv().unwrap());
    let id = pair.in_b(move || {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut conn: TcpStream = sock.into();
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        incoming_napi_id(&conn).unwrap()
    });
    server.join().unwrap();
    assert_ne!(id, 0);
}

/// The pair reports the offload state it relies on, addresses are where the
/// docs say, and dropping it (also by unwinding) removes both namespaces.
#[test]
fn offloads_addresses_and_teardown() {
    if skip_unless_available("offloads_addresses_and_teardown") {
        return;
    }
    let pair = VethPair::new("ffdrop", 3).unwrap();
    for side in [Side::A, Side::B] {
        let o = pair.offloads(side).unwrap();
        assert!(o.gro && !o.tso, "{side:?}: {o:?}");
        let name = pair.ifname(side).to_string();
        let visible = pair.in_ns(side, move || {
            // /proc/thread-self/net follows this thread's namespace.
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            dev.lines().any(|l| l.trim_start().starts_with(&format!("{name}:")))
        });
        assert!(visible, "{} not visible in its namespace", pair.ifname(side));
    }
    let (a, b) = (pair.addr_a().to_string(), pair.addr_b().to_string());
    assert!(a.starts_with("10.201.") && a.ends_with(".1"), "{a}");
    assert!(b.starts_with("10.201.") && b.ends_with(".2"), "{b}");
    let names: Vec<String> =
        [Side::A, Side::B].iter().map(|&s| format!("/var/run/netns/{}", pair.netns_name(s))).collect();
    assert!(names.iter().all(|n| std::path::Path::new(n).exists()));
    drop(pair);
    assert!(names.iter().all(|n| !std::path::Path::new(n).exists()), "{names:?}");

    let mut unwound = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = VethPair::new("ffpanic", 2).unwrap();
        unwound.push(format!("/var/run/netns/{}", pair.netns_name(Side::A)));
        unwound.push(format!("/var/run/netns/{}", pair.netns_name(Side::B)));
        panic!("deliberate");
    }));
    assert!(r.is_err());
    assert_eq!(unwound.len(), 2);
    assert!(unwound.iter().all(|n| !std::path::Path::new(n).exists()), "{unwound:?}");
}
