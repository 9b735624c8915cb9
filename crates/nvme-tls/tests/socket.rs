//! `accept` / `connect` over real loopback sockets: both suites, the exact record boundary after the
//! handshake, plaintext peers, wrong keys, silent and vanishing peers.

use std::io::{IoSlice, IoSliceMut, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ff_nvme_tls::psk::{ConfiguredPsk, PskHash, PskIdentity};
use ff_nvme_tls::{ClientPsk, PskLookup, TlsError, accept, connect};
use ff_sock::{SockError, SockOptions, TcpSock};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-host";
const SUB: &str = "nqn.2016-06.io.ferrofabric:sock-test";

/// A connected pair: (host side, target side).
fn pair() -> (TcpSock, TcpSock) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    let o = SockOptions::default();
    (TcpSock::from_std(c, &o).unwrap(), TcpSock::from_std(s, &o).unwrap())
}

fn lookup(psk: &ConfiguredPsk) -> PskLookup {
    let psk = psk.clone();
    Arc::new(move |id: &PskIdentity| (id.hostnqn == HOST && id.subnqn == SUB).then(|| psk.clone()))
}

fn client(psk: &ConfiguredPsk) -> ClientPsk {
    ClientPsk { hostnqn: HOST.into(), subnqn: SUB.into(), psk: psk.clone() }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn send(sock: &TcpSock, bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        match sock.sendmsg(&[IoSlice::new(&bytes[done..])], 0) {
            Ok(n) => done += n,
            Err(SockError::WouldBlock) => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Reads and opens records until `want` plaintext bytes arrived.
fn recv_plain(sock: &TcpSock, layer: &mut dyn ff_sock::tls::RecordLayer, want: usize) -> Vec<u8> {
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    while plain.len() < want {
        match sock.readv(&mut [IoSliceMut::new(&mut buf)]) {
            Ok(n) => wire.extend_from_slice(&buf[..n]),
            Err(SockError::WouldBlock) => {
                assert!(sock.wait_readable(Duration::from_secs(10)).unwrap(), "no data");
                continue;
            }
            Err(e) => panic!("recv: {e}"),
        }
        let used = layer.open(&wire, &mut plain).unwrap();
        wire.drain(..used);
    }
    plain
}

#[test]
fn handshake_then_records_over_loopback_both_suites() {
    for (hash, suite) in [(PskHash::Sha256, "TLS_AES_128_GCM_SHA256"), (PskHash::Sha384, "TLS_AES_256_GCM_SHA384")] {
        let psk = ConfiguredPsk::generate(hash);
        let (h, t) = pair();
        let lk = lookup(&psk);
        let target = thread::spawn(move || {
            let est = accept(&t, &lk, soon()).unwrap();
            let mut layer = est.record_layer();
            // The host wrote its first records right after its handshake, maybe before ours ended:
            // accept must have left them in the socket.
            let got = recv_plain(&t, layer.as_mut(), 5000);
            let mut wire = Vec::new();
            layer.seal(&[b"echo:", &got[..10]], &mut wire).unwrap();
            send(&t, &wire);
            (est.identity.clone(), est.cipher_suite())
        });
        let est = connect(&h, &client(&psk), soon()).unwrap();
        assert_eq!(est.cipher_suite(), suite);
        let mut layer = est.record_layer();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = Vec::new();
        layer.seal(&[&data], &mut wire).unwrap();
        send(&h, &wire);
        let reply = recv_plain(&h, layer.as_mut(), 15);
        assert_eq!(&reply[..5], b"echo:");
        assert_eq!(&reply[5..], &data[..10]);
        let (id, tsuite) = target.join().unwrap();
        assert_eq!(id, PskIdentity::v0(hash, HOST, SUB));
        assert_eq!(tsuite, suite);
    }
}

#[test]
fn plaintext_icreq_on_tls_listener_is_not_tls_and_only_a_header_is_read() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let (h, t) = pair();
    let mut icreq = [0u8; 128];
    icreq[2] = 128; // hlen
    icreq[4] = 128; // plen, little-endian u32 at offset 4
    send(&h, &icreq);
    let e = accept(&t, &lookup(&psk), soon()).unwrap_err();
    assert!(matches!(&e, TlsError::NotTls(m) if m.contains("ICReq")), "{e}");
    assert!(e.to_string().contains("did not start TLS"), "{e}");
    // Only the 5-byte record header left the socket.
    let mut rest = [0u8; 256];
    assert!(t.wait_readable(Duration::from_secs(5)).unwrap());
    assert_eq!(t.readv(&mut [IoSliceMut::new(&mut rest)]).unwrap(), 123);
}

#[test]
fn wrong_psk_fails_on_both_ends_over_sockets() {
    let (h, t) = pair();
    let lk = lookup(&ConfiguredPsk::generate(PskHash::Sha384));
    let target = thread::spawn(move || accept(&t, &lk, soon()).unwrap_err());
    let ce = connect(&h, &client(&ConfiguredPsk::generate(PskHash::Sha384)), soon()).unwrap_err();
    let te = target.join().unwrap();
    assert!(matches!(&te, TlsError::Handshake(m) if m.contains("different PSKs")), "{te}");
    // The target's alert reached the host before it closed.
    assert!(matches!(&ce, TlsError::Handshake(m) if m.contains("different PSKs")), "{ce}");
}

#[test]
fn unknown_identity_over_sockets() {
    let (h, t) = pair();
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let none: PskLookup = Arc::new(|_: &PskIdentity| None);
    let target = thread::spawn(move || accept(&t, &none, soon()).unwrap_err());
    let ce = connect(&h, &client(&psk), soon()).unwrap_err();
    let te = target.join().unwrap();
    assert!(matches!(&te, TlsError::UnknownIdentity(m) if m.contains(HOST)), "{te}");
    assert!(matches!(ce, TlsError::Handshake(_) | TlsError::Closed), "{ce}");
}

#[test]
fn silent_peer_times_out_at_the_deadline() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    // A target that never answers the ClientHello.
    let (h, _t) = pair();
    let deadline = Instant::now() + Duration::from_millis(300);
    let e = connect(&h, &client(&psk), deadline).unwrap_err();
    assert!(matches!(e, TlsError::Timeout), "{e}");
    // Ordering, not speed: a timeout is only reported once the deadline has passed.
    assert!(Instant::now() >= deadline, "timed out before the deadline");
    // A host that connects and sends nothing.
    let (_h, t) = pair();
    let e = accept(&t, &lookup(&psk), Instant::now() + Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, TlsError::Timeout), "{e}");
}

#[test]
fn peer_closing_mid_handshake_is_closed() {
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let (h, t) = pair();
    let target = thread::spawn(move || {
        // Read a bit of the ClientHello, then hang up.
        assert!(t.wait_readable(Duration::from_secs(5)).unwrap());
        drop(t);
    });
    let e = connect(&h, &client(&psk), soon()).unwrap_err();
    target.join().unwrap();
    assert!(matches!(e, TlsError::Closed), "{e}");
    // A host that sends half a record header and closes.
    let (h, t) = pair();
    let mut raw = TcpStream::from(std::os::fd::OwnedFd::from(h));
    raw.write_all(&[0x16, 3]).unwrap();
    drop(raw);
    let e = accept(&t, &lookup(&psk), soon()).unwrap_err();
    assert!(matches!(e, TlsError::Closed), "{e}");
}
