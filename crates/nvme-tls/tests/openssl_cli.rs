//! Interop with peers we did not configure: the `openssl s_server` / `s_client` tools with their own
//! (pre-TLS 1.3 style) PSK options, given the identity and TLS PSK our derivation yields. Our host
//! must also skip the two session tickets s_server sends by default, as an SPDK target does. Skipped,
//! with a note, where no `openssl` binary is installed.

use std::io::{IoSlice, IoSliceMut, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ff_nvme_tls::psk::{ConfiguredPsk, PskHash, PskIdentity, psk_digest, retained_psk, tls_psk};
use ff_nvme_tls::{ClientPsk, PskLookup, accept, connect};
use ff_sock::tls::{RecordError, RecordLayer};
use ff_sock::{SockError, SockOptions, TcpSock};

const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:cli-host";
const SUB: &str = "nqn.2016-06.io.ferrofabric:cli";

fn have_openssl() -> bool {
    let ok = Command::new("openssl").arg("version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("skipped: no openssl binary");
    }
    ok
}

/// The identity and hex TLS PSK the tools are given (SHA-256: their PSK options are SHA-256 only).
fn tool_psk(psk: &ConfiguredPsk) -> (String, String) {
    let id = PskIdentity::v0(PskHash::Sha256, HOST, SUB);
    let key = tls_psk(&retained_psk(psk, HOST).unwrap(), &id).unwrap();
    (id.to_string(), to_hex(&key))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Opens records until `until` is found in the plaintext or the peer closes.
fn recv_until(sock: &TcpSock, layer: &mut dyn RecordLayer, until: &[u8]) -> (Vec<u8>, Option<RecordError>) {
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match layer.open(&wire, &mut plain) {
            Ok(used) => {
                wire.drain(..used);
            }
            Err(e) => return (plain, Some(e)),
        }
        if plain.windows(until.len()).any(|w| w == until) {
            return (plain, None);
        }
        assert!(Instant::now() < deadline, "timed out; got {plain:?}");
        match sock.readv(&mut [IoSliceMut::new(&mut buf)]) {
            Ok(n) => wire.extend_from_slice(&buf[..n]),
            Err(SockError::WouldBlock) => {
                sock.wait_readable(Duration::from_millis(200)).unwrap();
            }
            Err(SockError::Eof) => return (plain, None),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn our_host_with_openssl_s_server() {
    if !have_openssl() {
        return;
    }
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let (id, hex) = tool_psk(&psk);
    let port = free_port();
    let _server = Kill(
        Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-nocert", "-tls1_3"])
            .args(["-ciphersuites", "TLS_AES_128_GCM_SHA256", "-psk_identity", &id, "-psk", &hex])
            .args(["-rev", "-naccept", "1", "-quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("s_server did not listen: {e}"),
        }
    };
    let sock = TcpSock::from_std(stream, &SockOptions::default()).unwrap();
    let cp = ClientPsk { hostnqn: HOST.into(), subnqn: SUB.into(), psk };
    let est = connect(&sock, &cp, Instant::now() + Duration::from_secs(10)).unwrap();
    assert_eq!(est.cipher_suite(), "TLS_AES_128_GCM_SHA256");
    let mut layer = est.record_layer();
    let mut wire = Vec::new();
    layer.seal(&[b"hello nvme\n"], &mut wire).unwrap();
    send(&sock, &wire);
    // s_server sends its session tickets first, then the reversed line.
    let (plain, err) = recv_until(&sock, layer.as_mut(), b"emvn olleh");
    assert!(err.is_none(), "{err:?}");
    assert!(plain.windows(10).any(|w| w == b"emvn olleh"), "{plain:?}");
}

#[test]
fn our_target_with_openssl_s_client() {
    if !have_openssl() {
        return;
    }
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let (id, hex) = tool_psk(&psk);
    target_with_s_client(&psk, &id, &hex);
}

#[test]
fn our_target_accepts_a_version_1_identity() {
    if !have_openssl() {
        return;
    }
    // NVMe1R01 <host> <sub> <digest>: the TLS PSK's context is "01 <digest>" (libnvme's scheme).
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let retained = retained_psk(&psk, HOST).unwrap();
    let digest = psk_digest(PskHash::Sha256, &retained, HOST, SUB);
    let id = PskIdentity {
        version: 1,
        hash: PskHash::Sha256,
        hostnqn: HOST.into(),
        subnqn: SUB.into(),
        digest: Some(digest),
    };
    let key = tls_psk(&retained, &id).unwrap();
    target_with_s_client(&psk, &id.to_string(), &to_hex(&key));
}

/// An `openssl s_client` (stdin piped) connected to a fresh listener, and our side of that connection.
fn s_client(id: &str, hex: &str) -> (Kill, TcpSock) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = Kill(
        Command::new("openssl")
            // No -quiet: it implies -ign_eof, and a test closes stdin to make s_client send close_notify.
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-tls1_3"])
            .args(["-ciphersuites", "TLS_AES_128_GCM_SHA256", "-psk_identity", id, "-psk", hex])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (stream, _) = listener.accept().unwrap();
    (client, TcpSock::from_std(stream, &SockOptions::default()).unwrap())
}

fn target_with_s_client(psk: &ConfiguredPsk, id: &str, hex: &str) {
    let (mut client, sock) = s_client(id, hex);
    let expected = psk.clone();
    let lookup: PskLookup =
        Arc::new(move |i: &PskIdentity| (i.hostnqn == HOST && i.subnqn == SUB).then(|| expected.clone()));
    let est = accept(&sock, &lookup, Instant::now() + Duration::from_secs(10)).unwrap();
    assert_eq!(est.identity.to_string(), id);
    let mut stdin = client.0.stdin.take().unwrap();
    stdin.write_all(b"ping from s_client\n").unwrap();
    stdin.flush().unwrap();
    let mut layer = est.record_layer();
    let (plain, err) = recv_until(&sock, layer.as_mut(), b"ping from s_client\n");
    assert!(err.is_none(), "{err:?}");
    assert_eq!(plain, b"ping from s_client\n");
    // Closing stdin makes s_client send close_notify: our layer reports an orderly close.
    drop(stdin);
    let (rest, err) = recv_until(&sock, layer.as_mut(), b"\0never");
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(err, Some(RecordError::Closed));
}

#[test]
fn our_target_refuses_a_version_1_identity_with_a_wrong_digest() {
    if !have_openssl() {
        return;
    }
    let psk = ConfiguredPsk::generate(PskHash::Sha256);
    let retained = retained_psk(&psk, HOST).unwrap();
    let id = PskIdentity {
        version: 1,
        hash: PskHash::Sha256,
        hostnqn: HOST.into(),
        subnqn: SUB.into(),
        digest: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
    };
    let hex = to_hex(&tls_psk(&retained, &id).unwrap());
    let (_client, sock) = s_client(&id.to_string(), &hex);
    let lookup: PskLookup = Arc::new(move |_: &PskIdentity| Some(psk.clone()));
    let e = accept(&sock, &lookup, Instant::now() + Duration::from_secs(10)).unwrap_err();
    assert!(matches!(&e, ff_nvme_tls::TlsError::UnknownIdentity(m) if m.contains("digest")), "{e}");
}
