//! TLS at the sock layer: user-space records through the group on every backend (with a toy record
//! layer: real TLS framing, a keystream instead of a cipher; it proves framing and buffering, not
//! crypto), and kernel TLS installation (skipped, loudly, where the kernel has no `tls` ULP).

mod common;

use common::{BACKENDS, checksum, pair, pattern, poll_until};
use ff_sock::tls::{
    DirectionKeys, KtlsCipher, KtlsKeys, RecordError, RecordLayer, ktls_available, ktls_install, ktls_unavailable,
};
use ff_sock::{Backend, Event, GroupOptions, SockError, SockGroup, SockId, WriteReq};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const APP: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;

/// A toy TLS 1.3 record layer: header (type 23, 0x0303, length), body = plaintext and inner content
/// type XORed with a per-record keystream, then a 1-byte tag (sum of plaintext and sequence), so a
/// flipped byte or a lost record is caught. Records carry at most 2^14 plaintext bytes.
#[derive(Default)]
struct Toy {
    tx_seq: u64,
    rx_seq: u64,
    /// Records opened (a peer counts what it received).
    opened: u64,
    /// Open at most one record per call (as a layer may after a post-handshake message).
    one_per_call: bool,
}

fn ks(seq: u64, i: usize) -> u8 {
    (seq as u8 ^ 0x5A).wrapping_add(i as u8).wrapping_mul(31)
}

fn tag(seq: u64, plain: &[u8]) -> u8 {
    plain.iter().fold(seq as u8, |a, &b| a.wrapping_add(b))
}

impl Toy {
    fn record(&mut self, inner: u8, plain: &[u8], out: &mut Vec<u8>) {
        let seq = self.tx_seq;
        self.tx_seq += 1;
        let len = plain.len() + 2;
        out.extend_from_slice(&[APP, 3, 3, (len >> 8) as u8, len as u8]);
        out.extend(plain.iter().enumerate().map(|(i, &b)| b ^ ks(seq, i)));
        out.push(inner ^ ks(seq, plain.len()));
        out.push(tag(seq, plain));
    }

    /// A close_notify alert record.
    fn close_notify(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.record(ALERT, &[1, 0], &mut v);
        v
    }

    fn seal_bytes(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.seal(&[plain], &mut v).unwrap();
        v
    }
}

impl RecordLayer for Toy {
    fn open(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, RecordError> {
        let mut at = 0;
        while input.len() - at >= 5 {
            let len = u16::from_be_bytes([input[at + 3], input[at + 4]]) as usize;
            if input.len() - at - 5 < len {
                break;
            }
            if input[at] != APP || len < 2 {
                return Err(RecordError::Fatal("bad record header".into()));
            }
            let body = &input[at + 5..at + 5 + len];
            let seq = self.rx_seq;
            let n = len - 2;
            let start = out.len();
            out.extend(body[..n].iter().enumerate().map(|(i, &b)| b ^ ks(seq, i)));
            let inner = body[n] ^ ks(seq, n);
            if tag(seq, &out[start..]) != body[n + 1] {
                out.truncate(start);
                return Err(RecordError::Fatal("bad tag".into()));
            }
            self.rx_seq += 1;
            self.opened += 1;
            at += 5 + len;
            if inner == ALERT {
                let alert = out.split_off(start);
                return Err(if alert == [1, 0] { RecordError::Closed } else { RecordError::Fatal("alert".into()) });
            }
            if inner == HANDSHAKE {
                // A post-handshake message (KeyUpdate, NewSessionTicket): consumed, no plaintext.
                out.truncate(start);
            }
            if self.one_per_call {
                break;
            }
        }
        Ok(at)
    }

    fn seal(&mut self, plain: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let all: Vec<u8> = plain.concat();
        for chunk in all.chunks(1 << 14) {
            self.record(APP, chunk, out);
        }
        Ok(())
    }
}

/// A group of `backend` with our end of a loopback pair added as a TLS connection.
fn tls_pair(backend: Backend, f: impl FnOnce(&mut GroupOptions)) -> (SockGroup, SockId, TcpStream) {
    let mut o = GroupOptions { backend, ..GroupOptions::default() };
    f(&mut o);
    let (s, peer) = pair(&o.sock);
    peer.set_nodelay(true).unwrap();
    let mut g = SockGroup::new(o).unwrap();
    assert_eq!(g.backend(), backend, "backend unavailable: {:?}", g.backend_fallback());
    let id = g.add_tls(s, Box::new(Toy::default())).unwrap();
    assert!(g.is_tls(id));
    (g, id, peer)
}

/// Reads `n` plaintext bytes from the group, polling as needed.
fn read_plain(g: &mut SockGroup, id: SockId, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    poll_until(g, |g, _| {
        loop {
            match g.recv(id, &mut buf) {
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(SockError::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        got.len() >= n
    });
    got
}

/// Reads records from the peer side until `n` plaintext bytes came out.
fn peer_read(peer: &mut TcpStream, toy: &mut Toy, n: usize) -> Vec<u8> {
    peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut cin, mut plain) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while plain.len() < n {
        let k = peer.read(&mut buf).expect("peer read");
        assert!(k > 0, "group closed early");
        cin.extend_from_slice(&buf[..k]);
        let used = toy.open(&cin, &mut plain).expect("peer open");
        cin.drain(..used);
    }
    plain
}

fn write_done_tags(events: &[Event<Vec<u8>>], id: SockId) -> Vec<(u64, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::WriteDone { sock, req, result } if *sock == id => Some((req.tag, result.is_ok())),
            _ => None,
        })
        .collect()
}

#[test]
fn bytes_round_trip_on_every_backend() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = tls_pair(backend, |_| {});
        let mut ptoy = Toy::default();
        peer.write_all(&ptoy.seal_bytes(b"hello over records")).unwrap();
        assert_eq!(read_plain(&mut g, id, 18), b"hello over records", "{backend:?}");
        let c = g.sock_counters(id).unwrap();
        assert_eq!((c.tls_records_opened, c.tls_plain_bytes_in), (1, 18), "{backend:?}");

        g.write(id, WriteReq::new(b"world", 7).unwrap()).map_err(|(e, _)| e).unwrap();
        g.flush();
        assert_eq!(peer_read(&mut peer, &mut ptoy, 5), b"world", "{backend:?}");
        let mut done = Vec::new();
        poll_until(&mut g, |_, ev| {
            done.extend(write_done_tags(&ev, id));
            !done.is_empty()
        });
        assert_eq!(done, [(7, true)], "{backend:?}");
    }
}

#[test]
fn a_record_split_across_reads_is_assembled() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = tls_pair(backend, |_| {});
        let rec = Toy::default().seal_bytes(&pattern(1, 3000));
        // Header cut in two, then body in pieces: each piece is read (WouldBlock: no whole record).
        let cuts = [0, 3, 9, 1500, rec.len()];
        for w in cuts.windows(2) {
            peer.write_all(&rec[w[0]..w[1]]).unwrap();
            if w[1] == rec.len() {
                break;
            }
            let mut buf = [0u8; 64];
            poll_until(&mut g, |g, ev| {
                if !ev.iter().any(|e| matches!(e, Event::Readable(s) if *s == id)) {
                    return false;
                }
                match g.recv(id, &mut buf) {
                    Err(SockError::WouldBlock) => true,
                    r => panic!("{backend:?}: partial record must not read as {r:?}"),
                }
            });
            assert_eq!(g.sock_counters(id).unwrap().tls_records_opened, 0);
        }
        assert_eq!(read_plain(&mut g, id, 3000), pattern(1, 3000), "{backend:?}");
        assert!(g.sock_counters(id).unwrap().tls_cipher_bytes_in == rec.len() as u64);
    }
}

#[test]
fn a_burst_of_small_writes_is_one_record_and_every_request_completes() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = tls_pair(backend, |_| {});
        let mut expect = Vec::new();
        for tag in 0..32u64 {
            let head = format!("resp{tag:02};");
            expect.extend_from_slice(head.as_bytes());
            let mut r = WriteReq::new(head.as_bytes(), tag + 100).unwrap();
            r.push_data(vec![tag as u8; 3]);
            expect.extend_from_slice(&[tag as u8; 3]);
            g.write(id, r).map_err(|(e, _)| e).unwrap();
        }
        assert_eq!(g.queued(id), 32);
        g.flush();
        assert_eq!(g.queued(id), 0, "sealed requests are done");
        let mut ptoy = Toy::default();
        assert_eq!(peer_read(&mut peer, &mut ptoy, expect.len()), expect, "{backend:?}");
        assert_eq!(ptoy.opened, 1, "{backend:?}: one record for the burst");
        let c = g.sock_counters(id).unwrap();
        assert_eq!((c.tls_seals, c.tls_records_sealed), (1, 1), "{backend:?}");
        assert_eq!(c.tls_plain_bytes_out, expect.len() as u64);

        // Poll until the kernel has taken every ciphertext byte (the internal request completed),
        // and a few rounds more: only the caller's 32 requests may surface.
        let mut done = Vec::new();
        let mut extra = 0;
        poll_until(&mut g, |g, ev| {
            done.extend(write_done_tags(&ev, id));
            let c = g.sock_counters(id).unwrap();
            if c.bytes_sent == c.tls_cipher_bytes_out {
                extra += 1;
            }
            extra > 5
        });
        let want: Vec<(u64, bool)> = (0..32).map(|t| (t + 100, true)).collect();
        assert_eq!(done, want, "{backend:?}: in order, no internal request");
        assert_eq!(g.counters().sock.writes_completed, 32);
    }
}

#[test]
fn recv_in_place_serves_plaintext_even_without_a_pipe() {
    let mut cases: Vec<(Backend, usize)> = BACKENDS.iter().map(|&b| (b, GroupOptions::default().pipe_size)).collect();
    cases.push((Backend::Epoll, 0));
    cases.push((Backend::Poll, 0));
    for (backend, pipe_size) in cases {
        let (mut g, id, mut peer) = tls_pair(backend, |o| o.pipe_size = pipe_size);
        assert_eq!(g.parses_in_place(), pipe_size > 0 || backend == Backend::Uring);
        let mut ptoy = Toy::default();
        let mut wire = ptoy.seal_bytes(b"abcd");
        wire.extend(ptoy.seal_bytes(b"efghij"));
        peer.write_all(&wire).unwrap();
        let mut got = Vec::new();
        poll_until(&mut g, |g, _| {
            loop {
                // A parser that takes at most 3 bytes a call: the rest stays for the next call.
                match g.recv_in_place(id, |b| {
                    let n = b.len().min(3);
                    got.extend_from_slice(&b[..n]);
                    n
                }) {
                    Ok(_) => {}
                    Err(SockError::WouldBlock) => break,
                    Err(e) => panic!("{backend:?}: {e}"),
                }
            }
            got.len() >= 10
        });
        assert_eq!(got, b"abcdefghij", "{backend:?} pipe {pipe_size}");
        assert_eq!(g.sock_counters(id).unwrap().bytes_parsed_in_place, 10);
    }
}

#[test]
fn close_notify_reads_as_eof_after_the_data_before_it() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = tls_pair(backend, |_| {});
        let mut ptoy = Toy::default();
        let mut wire = ptoy.seal_bytes(b"last words");
        wire.extend(ptoy.close_notify());
        peer.write_all(&wire).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        let mut end = None;
        poll_until(&mut g, |g, _| {
            loop {
                match g.recv(id, &mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(SockError::WouldBlock) => return false,
                    Err(e) => {
                        end = Some(e);
                        return true;
                    }
                }
            }
        });
        assert_eq!(got, b"last words", "{backend:?}");
        assert!(matches!(end, Some(SockError::Eof)), "{backend:?}: {end:?}");
        assert!(matches!(g.recv(id, &mut buf), Err(SockError::Eof)), "the end stays");
    }
}

#[test]
fn a_bad_record_ends_the_connection_with_an_error() {
    for backend in BACKENDS {
        for case in ["bad tag", "oversized"] {
            let (mut g, id, mut peer) = tls_pair(backend, |_| {});
            let mut wire = Toy::default().seal_bytes(b"tampered");
            match case {
                "bad tag" => wire[7] ^= 1,
                _ => wire[3..5].copy_from_slice(&0x4200u16.to_be_bytes()),
            }
            peer.write_all(&wire).unwrap();
            let mut buf = [0u8; 64];
            let mut err = None;
            poll_until(&mut g, |g, _| match g.recv(id, &mut buf) {
                Err(SockError::WouldBlock) => false,
                Ok(n) => panic!("{backend:?} {case}: {n} bytes from a bad record"),
                Err(e) => {
                    err = Some(e);
                    true
                }
            });
            let e = err.unwrap();
            assert!(e.is_fatal(), "{backend:?} {case}");
            assert!(matches!(&e, SockError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData), "{e:?}");
            assert!(e.to_string().starts_with("TLS record error"), "{case}: {e}");
        }
    }
}

#[test]
fn a_mebibyte_each_way() {
    const N: usize = 1 << 20;
    for backend in BACKENDS {
        let (mut g, id, peer) = tls_pair(backend, |o| o.write_queue_depth = 8);
        let mut rd = peer.try_clone().unwrap();
        let mut wr = peer;
        let sender = std::thread::spawn(move || {
            let mut t = Toy::default();
            for chunk in pattern(5, N).chunks(100_000) {
                wr.write_all(&t.seal_bytes(chunk)).unwrap();
            }
            wr
        });
        let receiver = std::thread::spawn(move || peer_read(&mut rd, &mut Toy::default(), N));

        let data = pattern(6, N);
        let mut next = 0;
        let mut tag = 0;
        let mut got = Vec::new();
        let mut done = 0;
        let mut buf = vec![0u8; 40_000];
        poll_until(&mut g, |g, ev| {
            done += write_done_tags(&ev, id).len();
            while next < N {
                let end = (next + 65_536).min(N);
                let mut r = WriteReq::data_only(tag);
                r.push_data(data[next..end].to_vec());
                match g.write(id, r) {
                    Ok(()) => {
                        next = end;
                        tag += 1;
                    }
                    Err((SockError::QueueFull, _)) => break,
                    Err((e, _)) => panic!("{backend:?}: write {e}"),
                }
            }
            loop {
                match g.recv(id, &mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(SockError::WouldBlock) => break,
                    Err(e) => panic!("{backend:?}: recv {e}"),
                }
            }
            got.len() >= N && next == N && done == tag as usize
        });
        let echoed = receiver.join().unwrap();
        drop(sender.join().unwrap());
        assert_eq!(checksum(&got), checksum(&pattern(5, N)), "{backend:?} in");
        assert_eq!(checksum(&echoed[..N]), checksum(&data), "{backend:?} out");
        let c = g.sock_counters(id).unwrap();
        assert_eq!((c.tls_plain_bytes_in, c.tls_plain_bytes_out), (N as u64, N as u64));
        assert!(c.tls_records_sealed >= (N >> 14) as u64);
        assert!(c.tls_seals <= tag, "requests were batched into fewer seals");
        assert_eq!(c.zc_sends, 0, "zero copy is off for TLS");
    }
}

#[test]
fn write_limits_and_close_apply_to_pending_plaintext() {
    for backend in BACKENDS {
        let (mut g, id, _peer) = tls_pair(backend, |o| o.write_queue_depth = 4);
        for tag in 0..4 {
            g.write(id, WriteReq::new(b"x", tag).unwrap()).map_err(|(e, _)| e).unwrap();
        }
        match g.write(id, WriteReq::new(b"y", 9).unwrap()) {
            Err((SockError::QueueFull, r)) => assert_eq!(r.tag, 9),
            other => panic!("{backend:?}: expected QueueFull, got {:?}", other.map_err(|(e, _)| e)),
        }
        g.close(id).unwrap();
        let mut ev = Vec::new();
        g.poll(Some(Duration::ZERO), &mut ev).unwrap();
        let results: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::WriteDone { req, result, .. } => Some((req.tag, matches!(result, Err(SockError::Closed)))),
                _ => None,
            })
            .collect();
        assert_eq!(results, [(0, true), (1, true), (2, true), (3, true)], "{backend:?}");
    }
}

#[test]
fn plaintext_left_over_is_reported_readable_without_blocking() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = tls_pair(backend, |_| {});
        let mut ptoy = Toy::default();
        peer.write_all(&ptoy.seal_bytes(&pattern(2, 1000))).unwrap();
        let mut buf = [0u8; 100];
        poll_until(&mut g, |g, _| g.recv(id, &mut buf).is_ok());
        // 900 bytes wait in the plaintext buffer: the group says so (its poll then waits with a zero
        // timeout), and the poll reports Readable without a receive syscall.
        assert!(g.tls_input_pending(), "{backend:?}: leftover plaintext not seen");
        let before = g.counters();
        let mut ev = Vec::new();
        g.poll(Some(Duration::from_secs(60)), &mut ev).unwrap();
        assert!(matches!(ev.as_slice(), [Event::Readable(s)] if *s == id), "{backend:?}: {ev:?}");
        let after = g.counters();
        assert_eq!(after.pipe_events, before.pipe_events + 1);
        assert_eq!(after.sock.recv_syscalls(), before.sock.recv_syscalls(), "no recv syscall to learn it");
        assert_eq!(read_plain(&mut g, id, 900), pattern(2, 1000)[100..]);
    }
}

fn keys(cipher: KtlsCipher, key_len: usize) -> KtlsKeys {
    let d = |b: u8| DirectionKeys { key: vec![b; key_len], iv: [b; 12], seq: 0 };
    KtlsKeys { cipher, tx: d(1), rx: d(2) }
}

#[test]
fn ktls_refuses_keys_of_the_wrong_length() {
    let (s, _peer) = pair(&Default::default());
    let e = ktls_install(&s, &keys(KtlsCipher::Aes256Gcm, 16)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn ktls_installs_or_fails_with_the_clear_fallback_error() {
    let (s, peer) = pair(&Default::default());
    let r = ktls_install(&s, &keys(KtlsCipher::Aes128Gcm, 16));
    if !ktls_available() {
        eprintln!(
            "SKIP kTLS round trip: the kernel has no `tls` ULP (tcp_available_ulp: {:?}); checking the fallback error",
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default().trim()
        );
        let e = r.unwrap_err();
        assert!(ktls_unavailable(&e), "{e:?}");
        assert_eq!(e.to_string(), "kernel TLS unavailable (no tls module)");
        // The socket is untouched: it still carries plain bytes.
        let mut g: SockGroup = SockGroup::new(GroupOptions::default()).unwrap();
        let id = g.add(s).unwrap();
        let mut peer = peer;
        peer.write_all(b"plain").unwrap();
        let mut buf = [0u8; 5];
        poll_until(&mut g, |g, _| g.recv(id, &mut buf).is_ok());
        assert_eq!(&buf, b"plain");
        return;
    }
    r.unwrap();
    // Both ends in the kernel, keys mirrored: plaintext in, plaintext out, records on the wire.
    let peer = ff_sock::TcpSock::from_std(peer, &Default::default()).unwrap();
    let mut k = keys(KtlsCipher::Aes128Gcm, 16);
    std::mem::swap(&mut k.tx, &mut k.rx);
    ktls_install(&peer, &k).unwrap();
    let mut g: SockGroup = SockGroup::new(GroupOptions::default()).unwrap();
    let a = g.add(s).unwrap();
    let b = g.add(peer).unwrap();
    g.write(a, WriteReq::new(b"through the kernel", 1).unwrap()).map_err(|(e, _)| e).unwrap();
    let mut buf = [0u8; 18];
    let mut got = 0;
    poll_until(&mut g, |g, _| {
        if let Ok(n) = g.recv(b, &mut buf[got..]) {
            got += n;
        }
        got == 18
    });
    assert_eq!(&buf, b"through the kernel");
}

#[test]
fn ciphertext_in_flight_at_close_never_surfaces() {
    for backend in BACKENDS {
        // The peer does not read: sealed records stay queued (or, on io_uring, in the kernel's
        // hands and then in a closed connection's zombie) when the connection closes.
        let (mut g, id, peer) = tls_pair(backend, |_| {});
        for tag in 0..4u64 {
            let mut r = WriteReq::data_only(tag + 100);
            r.push_data(pattern(tag, 1 << 20));
            g.write(id, r).map_err(|(e, _)| e).unwrap();
        }
        g.flush();
        let mut ev = Vec::new();
        g.poll(Some(Duration::ZERO), &mut ev).unwrap();
        g.close(id).unwrap();
        drop(peer);
        let mut rounds = 0;
        poll_until(&mut g, |_, e| {
            ev.extend(e);
            rounds += 1;
            rounds > 50
        });
        let done = write_done_tags(&ev, id);
        assert_eq!(done, [(100, true), (101, true), (102, true), (103, true)], "{backend:?}");
    }
}

#[test]
fn records_left_by_a_layer_that_stops_early_are_opened_before_reading_again() {
    for backend in BACKENDS {
        let mut o = GroupOptions { backend, ..GroupOptions::default() };
        o.sock.nodelay = true;
        let (s, mut peer) = pair(&o.sock);
        let mut g: SockGroup = SockGroup::new(o).unwrap();
        let id = g.add_tls(s, Box::new(Toy { one_per_call: true, ..Toy::default() })).unwrap();
        // One write: a post-handshake record (no plaintext), then two application records. Nothing
        // else arrives, so the last record must be opened from what is already buffered.
        let mut ptoy = Toy::default();
        let mut wire = Vec::new();
        ptoy.record(HANDSHAKE, b"key update", &mut wire);
        wire.extend(ptoy.seal_bytes(b"first;"));
        wire.extend(ptoy.seal_bytes(b"second"));
        peer.write_all(&wire).unwrap();
        assert_eq!(read_plain(&mut g, id, 12), b"first;second", "{backend:?}");
        assert_eq!(g.sock_counters(id).unwrap().tls_records_opened, 3);
    }
}
