//! NVMe/TCP over TLS 1.3 with pre-shared keys, our initiator against our target on loopback: both
//! cipher suites (SHA-256 and SHA-384 keys) on the admin and every I/O queue with data verified, a
//! reconnected I/O queue running its handshake again, kernel TLS asked for (used where the kernel has
//! it, user-space records where not) and refused, discovery over TLS listing the TLS port as requiring
//! a secure channel; and what must fail: a wrong key, a host without a key, plain text on the TLS
//! listener, a ClientHello on the plain listener — each refused while the target keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::wait;
use ff_initiator::{Buf, Controller, Error, HostOptions, IoGroup, TlsOptions};
use ff_nvme_tls::psk::{ConfiguredPsk, PskHash};
use ff_sock::GroupOptions;
use ff_target::{HostAuthSpec, RunningTarget, TargetOptions, config::DEFAULT_NQN};
use std::time::{Duration, Instant};

/// A host with a SHA-256 key on the target.
const HOST_256: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000b1";
/// A host with a SHA-384 key on the target.
const HOST_384: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000b2";
/// A host without a key.
const NO_KEY_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-0000000000bb";

struct Keys {
    k256: ConfiguredPsk,
    k384: ConfiguredPsk,
}

fn keys() -> Keys {
    Keys { k256: ConfiguredPsk::generate(PskHash::Sha256), k384: ConfiguredPsk::generate(PskHash::Sha384) }
}

fn host(nqn: &str, psk: &ConfiguredPsk) -> HostAuthSpec {
    HostAuthSpec { nqn: nqn.into(), dhchap_key: None, dhchap_ctrl_key: None, psk: Some(psk.encode()) }
}

/// A target with a plain and a TLS listener, holding both hosts' keys.
fn target(k: &Keys, ktls: bool) -> RunningTarget {
    target_with(k, |o| o.tls.ktls = ktls)
}

fn target_with(k: &Keys, tweak: impl FnOnce(&mut TargetOptions)) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, "ram".parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen = vec![];
    o.subsystems[0].auth_hosts = vec![host(HOST_256, &k.k256), host(HOST_384, &k.k384)];
    tweak(&mut o);
    ff_target::start(&o).expect("target starts")
}

fn opts(hostnqn: &str, psk: Option<&ConfiguredPsk>, ktls: bool, io_queues: u16) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.into(),
        tls: psk.map(|p| TlsOptions { psk: p.clone(), ktls }),
        io_queues,
        queue_depth: 16,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(5),
        ..HostOptions::default()
    }
}

/// Writes `blocks` blocks of a pattern through every queue of `g`, reads them back, compares: large
/// enough that a transfer spans several TLS records.
fn write_read_back(g: &mut IoGroup, seed: u8, blocks: u32) {
    let bs = 512usize;
    let len = blocks as usize * bs;
    let n = g.len();
    for i in 0..n {
        let data: Vec<u8> = (0..len).map(|j| seed.wrapping_add(i as u8).wrapping_add((j / 4096) as u8)).collect();
        let q = g.queue(ff_initiator::QueueId(i)).unwrap();
        q.submit_write(1, u64::from(blocks) * i as u64, blocks, Buf::from_slice(&data), false, i as u64)
            .map_err(|e| e.0)
            .unwrap();
    }
    for c in wait(g, n) {
        assert_eq!(c.result, Ok(()), "write on queue {}", c.tag);
    }
    for i in 0..n {
        let q = g.queue(ff_initiator::QueueId(i)).unwrap();
        q.submit_read(1, u64::from(blocks) * i as u64, blocks, Buf::new(len), i as u64).map_err(|e| e.0).unwrap();
    }
    for c in wait(g, n) {
        assert_eq!(c.result, Ok(()), "read on queue {}", c.tag);
        let i = c.tag as usize;
        let buf = c.buf.unwrap();
        for (j, b) in buf.iter().enumerate() {
            assert_eq!(*b, seed.wrapping_add(i as u8).wrapping_add((j / 4096) as u8), "byte {j} on queue {i}");
        }
    }
}

/// Admin queue plus two I/O queues over TLS, 64 KiB of I/O on each, a reconnect, then shutdown.
/// Returns the TLS records the I/O group opened in user space (none when the queues run on kTLS).
fn session(t: &RunningTarget, o: &HostOptions) -> u64 {
    let mut ctrl = Controller::connect(t.tls_addrs[0], DEFAULT_NQN, o).expect("connects over TLS");
    assert_eq!(ctrl.active_namespaces().unwrap(), vec![1], "admin commands work over TLS");
    let queues = ctrl.take_io_queues();
    assert_eq!(queues.len(), usize::from(o.io_queues));
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    for q in queues {
        g.add(q).unwrap();
    }
    write_read_back(&mut g, 0x40, 128);
    // A reconnected queue runs a fresh handshake and carries data again.
    let mut failed = Vec::new();
    g.reconnect(ff_initiator::QueueId(0), &mut failed).expect("reconnects over TLS");
    write_read_back(&mut g, 0x70, 8);
    let opened = g.sock_group().counters().sock.tls_records_opened;
    drop(g);
    ctrl.shutdown().unwrap();
    opened
}

#[test]
fn both_suites_carry_admin_and_io_on_every_queue() {
    let k = keys();
    let t = target(&k, false);
    assert!(session(&t, &opts(HOST_256, Some(&k.k256), false, 2)) > 0, "records opened in user space");
    assert!(session(&t, &opts(HOST_384, Some(&k.k384), false, 2)) > 0, "records opened in user space");
    t.stop();
}

#[test]
fn kernel_tls_is_used_where_the_kernel_has_it_and_records_stay_in_user_space_where_not() {
    let k = keys();
    let t = target(&k, true);
    let opened = session(&t, &opts(HOST_256, Some(&k.k256), true, 1));
    if ff_sock::tls::ktls_available() {
        assert_eq!(opened, 0, "the I/O queue must run on kernel TLS, not user-space records");
    } else {
        eprintln!("kernel TLS unavailable here (no tls ULP): this run proves the user-space fallback on both ends");
        assert!(opened > 0, "without kernel TLS the I/O queue opens records in user space");
    }
    t.stop();
}

fn tls_error(r: Result<Controller, Error>) -> String {
    match r {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    }
}

/// The target still serves a good host over TLS after whatever the test did.
fn still_serves(t: &RunningTarget, k: &Keys) {
    let c = Controller::connect(t.tls_addrs[0], DEFAULT_NQN, &opts(HOST_256, Some(&k.k256), false, 0))
        .expect("the target still serves TLS");
    c.shutdown().unwrap();
    let c = Controller::connect(t.io_addrs[0], DEFAULT_NQN, &opts(NO_KEY_HOST, None, false, 0))
        .expect("the target still serves plain text");
    c.shutdown().unwrap();
}

#[test]
fn wrong_or_missing_keys_are_refused() {
    let k = keys();
    let t = target(&k, false);
    // HOST_256 with HOST_384's key: the binder does not verify.
    let e = tls_error(Controller::connect(t.tls_addrs[0], DEFAULT_NQN, &opts(HOST_256, Some(&k.k384), false, 0)));
    assert!(e.starts_with("TLS:"), "{e}");
    // A fresh key the target never saw.
    let other = ConfiguredPsk::generate(PskHash::Sha256);
    let e = tls_error(Controller::connect(t.tls_addrs[0], DEFAULT_NQN, &opts(HOST_256, Some(&other), false, 0)));
    assert!(e.starts_with("TLS:"), "{e}");
    // A host the target holds no key for.
    let e = tls_error(Controller::connect(t.tls_addrs[0], DEFAULT_NQN, &opts(NO_KEY_HOST, Some(&other), false, 0)));
    assert!(e.starts_with("TLS:"), "{e}");
    still_serves(&t, &k);
    t.stop();
}

#[test]
fn plain_text_on_the_tls_listener_and_tls_on_the_plain_one_are_refused() {
    let k = keys();
    let t = target(&k, false);
    // Refused by the target closing the connection: a lost connection, not a timeout or any other failure.
    let plain_on_tls = Controller::connect(t.tls_addrs[0], DEFAULT_NQN, &opts(HOST_256, None, false, 0));
    assert!(
        matches!(plain_on_tls, Err(Error::ConnectionLost(_))),
        "an ICReq in plain text must not get through a TLS listener: {:?}",
        plain_on_tls.err()
    );
    // Our handshake sees the close.
    let e = tls_error(Controller::connect(t.io_addrs[0], DEFAULT_NQN, &opts(HOST_256, Some(&k.k256), false, 0)));
    assert!(e.starts_with("TLS:"), "a ClientHello on a plain listener must be refused: {e}");
    still_serves(&t, &k);
    t.stop();
}

#[test]
fn discovery_over_tls_lists_the_tls_port_as_requiring_a_secure_channel() {
    let k = keys();
    let t = target(&k, false);
    let entries = ff_initiator::discover(t.tls_addrs[0], &opts(HOST_256, Some(&k.k256), false, 0)).unwrap();
    let port = |a: std::net::SocketAddr| {
        entries
            .iter()
            .find(|e| e.subnqn == DEFAULT_NQN && e.trsvcid.trim() == a.port().to_string())
            .unwrap_or_else(|| panic!("no entry for {a}: {entries:?}"))
    };
    let (tls, plain) = (port(t.tls_addrs[0]), port(t.io_addrs[0]));
    assert_eq!((tls.treq & 0x03, tls.tsas_sectype), (0x01, 2), "TLS port: required, TLS 1.3");
    assert_eq!((plain.treq & 0x03, plain.tsas_sectype), (0x02, 0), "plain port: not required, none");
    t.stop();
}

/// Connects one admin queue over TLS as `identity_host` and sends a Connect naming `connect_host` and
/// `connect_sub`; returns the Connect's status (sct, sc).
fn connect_status(
    t: &RunningTarget,
    psk: &ConfiguredPsk,
    identity_host: &str,
    connect_host: &str,
    connect_sub: &str,
) -> (u8, u8) {
    use ff_initiator::link::{QueueTls, SyncLink, connect_cmd};
    let tls = TlsOptions { psk: psk.clone(), ktls: false };
    let deadline = Instant::now() + Duration::from_secs(10);
    let queue_tls = QueueTls { opts: &tls, hostnqn: identity_host, subnqn: DEFAULT_NQN };
    let cfg = ff_nvme_tcp::host::HostConfig::default();
    let mut link = SyncLink::connect(t.tls_addrs[0], cfg, &GroupOptions::default(), deadline, Some(queue_tls))
        .expect("TLS and ICReq");
    let (sqe, data) = connect_cmd(0, 31, 0, 0, &[7; 16], 0xFFFF, connect_sub, connect_host);
    let c = link.exec(sqe, Some(data), None, deadline).expect("Connect completes");
    let st = c.cqe.status();
    (st.sct(), st.sc())
}

#[test]
fn connect_must_name_the_host_and_subsystem_of_the_tls_identity() {
    let k = keys();
    let t = target(&k, false);
    // The identity's own NQNs: accepted.
    assert_eq!(connect_status(&t, &k.k256, HOST_256, HOST_256, DEFAULT_NQN), (0, 0));
    // HOST_256's key, then a Connect as HOST_384: Connect Invalid Host.
    assert_eq!(connect_status(&t, &k.k256, HOST_256, HOST_384, DEFAULT_NQN), (1, 0x84));
    // The right host, another subsystem than the identity names: Connect Invalid Parameters.
    assert_eq!(connect_status(&t, &k.k256, HOST_256, HOST_256, "nqn.2026-12.io.example:other"), (1, 0x82));
    still_serves(&t, &k);
    t.stop();
}

/// Sends `bytes` to `addr` and waits (bounded) for the target to close the connection; true if it did.
fn closed_after(addr: std::net::SocketAddr, bytes: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert, say: keep reading until the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn hostile_bytes_on_the_tls_listener_end_only_their_connection() {
    let k = keys();
    let t = target_with(&k, |o| o.tls.handshake_timeout_ms = 500);
    let tls = t.tls_addrs[0];
    // A plain-text ICReq (PDU type 0, HLEN 128, PLEN 128).
    let mut icreq = vec![0u8; 128];
    icreq[1] = 0;
    icreq[2] = 128;
    icreq[4] = 128;
    assert!(closed_after(tls, &icreq), "plain ICReq on the TLS listener");
    // A handshake record header announcing more than any record may carry.
    assert!(closed_after(tls, &[0x16, 0x03, 0x01, 0xFF, 0xFF]), "oversized record");
    // Half a record, then silence: the handshake deadline ends it.
    assert!(closed_after(tls, &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00]), "truncated ClientHello");
    // A ClientHello-looking record of garbage.
    let mut junk = vec![0x16, 0x03, 0x01, 0x00, 0x20];
    junk.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    assert!(closed_after(tls, &junk), "garbage handshake record");
    // On the plain listener, TLS bytes are not an NVMe/TCP PDU.
    assert!(closed_after(t.io_addrs[0], &junk), "ClientHello bytes on the plain listener");
    still_serves(&t, &k);
    t.stop();
}

#[test]
fn a_tls_optional_listener_takes_tls_and_plain_hosts_alike() {
    let k = keys();
    let t = target_with(&k, |o| o.tls_optional_listen = vec!["127.0.0.1:0".parse().unwrap()]);
    let addr = t.tls_optional_addrs[0];
    let c = Controller::connect(addr, DEFAULT_NQN, &opts(HOST_256, Some(&k.k256), false, 1)).expect("TLS host");
    c.shutdown().unwrap();
    let c = Controller::connect(addr, DEFAULT_NQN, &opts(NO_KEY_HOST, None, false, 1)).expect("plain host");
    c.shutdown().unwrap();
    // A wrong key is still refused there.
    let other = ConfiguredPsk::generate(PskHash::Sha256);
    let e = tls_error(Controller::connect(addr, DEFAULT_NQN, &opts(HOST_256, Some(&other), false, 0)));
    assert!(e.starts_with("TLS:"), "{e}");
    let entries = ff_initiator::discover(addr, &opts(NO_KEY_HOST, None, false, 0)).unwrap();
    let e = entries
        .iter()
        .find(|e| e.subnqn == DEFAULT_NQN && e.trsvcid.trim() == addr.port().to_string())
        .expect("an entry for the optional port");
    assert_eq!((e.treq & 0x03, e.tsas_sectype), (0x02, 2), "optional port: not required, TLS 1.3");
    t.stop();
}
