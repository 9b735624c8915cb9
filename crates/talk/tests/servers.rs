//! Every server under verified mixed load from the load generator, and under hostile input.
//! Bounded by socket timeouts and the load generator's stall timeout; no timing asserts.

use ff_talk::loadgen::{self, LoadConfig};
use ff_talk::proto::{self, Command, Opcode, RESP_LEN, Response, Status};
use ff_talk::servers::{self, ServerHandle, ServerKind};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn start(kind: ServerKind, reactors: usize) -> ServerHandle {
    servers::start(kind, "127.0.0.1:0".parse().unwrap(), Arc::new(AtomicBool::new(false)), reactors).unwrap()
}

fn mixed_load(addr: SocketAddr, connections: usize, requests: u64) -> loadgen::LoadReport {
    let mut cfg = LoadConfig::new(addr);
    cfg.connections = connections;
    cfg.queue_depth = 2;
    cfg.read_len = 8192;
    cfg.write_len = 4096;
    cfg.write_pct = 50;
    cfg.duration = None;
    cfg.requests = Some(requests);
    loadgen::run(&cfg).unwrap()
}

fn fifty_connections(kind: ServerKind, reactors: usize) {
    let server = start(kind, reactors);
    let r = mixed_load(server.local_addr(), 50, 2_000);
    assert_eq!(r.requests, 2_000);
    assert!(r.reads > 0 && r.writes > 0, "{r:?}");
    let stats = server.stop();
    assert_eq!(stats.connections, 50);
    assert_eq!(stats.requests, 2_000);
    assert_eq!(stats.errors, 0);
}

#[test]
fn blocking_serves_fifty_connections() {
    fifty_connections(ServerKind::Blocking, 1);
}

#[test]
fn poll_serves_fifty_connections() {
    fifty_connections(ServerKind::Poll, 1);
}

#[test]
fn epoll_serves_fifty_connections() {
    fifty_connections(ServerKind::Epoll, 1);
}

#[test]
fn sock_epoll_serves_fifty_connections_on_two_reactors() {
    fifty_connections(ServerKind::SockEpoll, 2);
}

#[test]
fn sock_poll_serves_fifty_connections() {
    fifty_connections(ServerKind::SockPoll, 1);
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the server closes: the bytes it sent, or `None` when it timed out (the server hung).
fn read_to_close(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Some(got),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(got),
        Err(_) => None,
    }
}

/// The answer to an undecodable command: at most one error response, then a close.
fn expect_error_then_close(s: &mut TcpStream, status: Status) {
    let got = read_to_close(s).expect("server closed the connection");
    if !got.is_empty() {
        assert_eq!(got.len(), RESP_LEN, "one response, then close");
        assert_eq!(Response::decode(&got).unwrap().status, status);
    }
}

fn roundtrip_read(addr: SocketAddr, tag: u64) {
    let mut s = connect(addr);
    s.write_all(&Command::read(tag, 4096).encode()).unwrap();
    let mut buf = vec![0u8; RESP_LEN + 4096];
    s.read_exact(&mut buf).unwrap();
    let r = Response::decode(&buf).unwrap();
    assert_eq!((r.status, r.tag, r.len), (Status::Ok, tag, 4096));
    assert!(proto::check_pattern(tag, 0, &buf[RESP_LEN..]));
}

fn hostile(kind: ServerKind) {
    let server = start(kind, 1);
    let addr = server.local_addr();

    // Garbage: 64 bytes that are no command.
    let mut s = connect(addr);
    s.write_all(&[0xab; 64]).unwrap();
    expect_error_then_close(&mut s, Status::BadCommand);

    // A truncated command, then close.
    let mut s = connect(addr);
    s.write_all(&Command::read(1, 4096).encode()[..20]).unwrap();
    drop(s);

    // A WRITE whose data stops short, then close.
    let mut s = connect(addr);
    s.write_all(&Command { opcode: Opcode::Write, tag: 2, len: 8192, data_crc: 0 }.encode()).unwrap();
    s.write_all(&[1; 100]).unwrap();
    drop(s);

    // Oversized and misaligned lengths with a valid header checksum.
    for len in [proto::MAX_DATA * 4, u32::MAX, 100] {
        let mut s = connect(addr);
        s.write_all(&Command { opcode: Opcode::Write, tag: 3, len, data_crc: 0 }.encode()).unwrap();
        expect_error_then_close(&mut s, Status::BadLength);
    }

    // Bad WRITE data checksum: an error status, and the stream stays usable.
    let mut s = connect(addr);
    let data = vec![7u8; 4096];
    let mut cmd = Command::write(4, &data);
    cmd.data_crc ^= 1;
    s.write_all(&cmd.encode()).unwrap();
    s.write_all(&data).unwrap();
    s.write_all(&Command::read(5, 0).encode()).unwrap();
    let mut buf = [0u8; 2 * RESP_LEN];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(Response::decode(&buf[..RESP_LEN]).unwrap().status, Status::BadDataCrc);
    assert_eq!(Response::decode(&buf[RESP_LEN..]).unwrap(), Response { status: Status::Ok, tag: 5, len: 0 });
    drop(s);

    // A client that vanishes with a response in flight.
    let s = connect(addr);
    let mut w = &s;
    w.write_all(&Command::read(6, proto::MAX_DATA).encode()).unwrap();
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);

    // Still serving, correctly.
    roundtrip_read(addr, 99);
    let r = mixed_load(addr, 4, 200);
    assert_eq!(r.requests, 200);
    let stats = server.stop();
    assert!(stats.errors >= 5, "hostile commands were counted: {stats:?}");
}

#[test]
fn blocking_survives_hostile_input() {
    hostile(ServerKind::Blocking);
}

#[test]
fn poll_survives_hostile_input() {
    hostile(ServerKind::Poll);
}

#[test]
fn epoll_survives_hostile_input() {
    hostile(ServerKind::Epoll);
}

#[test]
fn sock_epoll_survives_hostile_input() {
    hostile(ServerKind::SockEpoll);
}

#[test]
fn sock_poll_survives_hostile_input() {
    hostile(ServerKind::SockPoll);
}

#[test]
fn bench_runs_a_tiny_interleaved_grid() {
    let cfg = ff_talk::ServersBenchConfig {
        connections: vec![1, 8],
        seconds: 0.1,
        reps: 2,
        kinds: vec![ServerKind::Blocking, ServerKind::SockEpoll],
        ..Default::default()
    };
    let rows = ff_talk::servers_bench(&cfg).unwrap();
    let order: Vec<(usize, usize, ServerKind)> = rows.iter().map(|r| (r.connections, r.rep, r.server)).collect();
    assert_eq!(
        order[..4],
        [
            (1, 0, ServerKind::Blocking),
            (1, 0, ServerKind::SockEpoll),
            (1, 1, ServerKind::Blocking),
            (1, 1, ServerKind::SockEpoll)
        ]
    );
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.requests > 0));
    let s = ff_talk::summarize(&rows);
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|x| x.reps == 2 && x.vs_blocking.is_some()));
}
