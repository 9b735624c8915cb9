//! The receive pipe and its cut-over, proven with counters: a burst of small PDUs costs far fewer recv
//! syscalls than PDUs; large payloads go straight to the caller's buffer.

mod common;
use common::*;
use ff_sock::{Backend, Event, SockError, SockGroup, SockId};
use std::io::Write;

/// Reads exactly `buf.len()` bytes through the group, polling when it would block.
fn read_exact(g: &mut SockGroup, id: SockId, buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        match g.recv(id, &mut buf[off..]) {
            Ok(n) => off += n,
            Err(SockError::WouldBlock) => poll_until(g, |_, ev| ev.iter().any(|e| matches!(e, Event::Readable(_)))),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn burst_of_small_pdus_costs_few_syscalls() {
    const PDUS: usize = 1000;
    let burst: Vec<u8> = (0..PDUS).flat_map(|i| pattern(i as u64, 64)).collect();
    for backend in BACKENDS {
        let mut syscalls = Vec::new();
        for pipe_size in [0, 64 * 1024] {
            let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |o| o.pipe_size = pipe_size);
            peer.write_all(&burst).unwrap();
            let mut pdu = [0u8; 64];
            for i in 0..PDUS {
                read_exact(&mut g, id, &mut pdu);
                assert_eq!(pdu[..], pattern(i as u64, 64)[..], "PDU {i} corrupted ({backend})");
            }
            let c = g.sock_counters(id).unwrap();
            assert_eq!(c.bytes_direct + c.bytes_copied, burst.len() as u64, "every byte accounted for");
            if backend == Backend::Uring {
                // No recv syscall at all: the multishot receive fills provided buffers, each byte is
                // copied once into the caller's buffer, and the enters are few.
                assert_eq!(c.recv_syscalls(), 0);
                assert_eq!(c.bytes_into_bufs, burst.len() as u64, "every byte went through a provided buffer");
                let enters = g.counters().uring_enters;
                assert!(enters * 20 < PDUS as u64, "{enters} io_uring_enter calls for {PDUS} PDUs");
            }
            syscalls.push(c.readv_pipe + c.readv_direct);
        }
        if backend == Backend::Uring {
            continue;
        }
        let (no_pipe, with_pipe) = (syscalls[0], syscalls[1]);
        assert!(no_pipe >= PDUS as u64, "without a pipe every 64-byte read is a syscall: {no_pipe}");
        assert!(with_pipe * 20 < PDUS as u64, "{backend}: {with_pipe} recv syscalls for {PDUS} PDUs with the pipe");
    }
}

#[test]
fn payloads_at_or_above_cutover_land_directly() {
    const PDUS: usize = 64;
    const PAYLOAD: usize = 128 * 1024;
    const PIPE: usize = 8 * 1024;
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |o| {
            o.pipe_size = PIPE;
            o.cutover = 8 * 1024;
        });
        let sender = std::thread::spawn(move || {
            for i in 0..PDUS {
                let mut pdu = pattern(i as u64, 64);
                pdu.extend(pattern(1000 + i as u64, PAYLOAD));
                peer.write_all(&pdu).unwrap();
            }
            peer
        });
        let mut hdr = [0u8; 64];
        let mut data = vec![0u8; PAYLOAD];
        let mut copied_payload = 0u64;
        for i in 0..PDUS {
            read_exact(&mut g, id, &mut hdr);
            assert_eq!(hdr[..], pattern(i as u64, 64)[..]);
            let before = g.sock_counters(id).unwrap().bytes_copied;
            read_exact(&mut g, id, &mut data);
            copied_payload += g.sock_counters(id).unwrap().bytes_copied - before;
            assert_eq!(checksum(&data), checksum(&pattern(1000 + i as u64, PAYLOAD)), "payload {i}");
        }
        drop(sender.join().unwrap());
        let c = g.sock_counters(id).unwrap();
        if backend == Backend::Uring {
            // io_uring receives into provided buffers: every byte, payload included, is copied exactly
            // once into the destination, and nothing is read twice.
            let total = (PDUS * (64 + PAYLOAD)) as u64;
            assert_eq!(c.bytes_copied, total, "{backend}: one copy per byte");
            assert_eq!(c.bytes_into_bufs, total, "{backend}");
            assert_eq!(c.bytes_direct, 0, "{backend}");
            continue;
        }
        // After the first PDU a header read takes at most AFTER_LARGE_FILL bytes into the pipe, so at
        // most that much of each payload is copied; the first PDU may copy up to a whole pipe.
        let bound = PIPE + (PDUS - 1) * ff_sock::group::AFTER_LARGE_FILL;
        assert!(copied_payload <= bound as u64, "{backend}: copied {copied_payload} > {bound}");
        assert!(c.bytes_direct >= (PDUS * PAYLOAD - bound) as u64, "{backend}: direct {}", c.bytes_direct);
        assert!(c.readv_direct > 0);
    }
}

#[test]
fn large_reads_with_empty_pipe_never_copy() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |o| o.cutover = 4096);
        let data = pattern(7, 1 << 20);
        let d2 = data.clone();
        let t = std::thread::spawn(move || peer.write_all(&d2).map(|_| peer));
        let mut got = vec![0u8; data.len()];
        // Every read asks for at least the cut-over: the pipe is never used.
        let mut off = 0;
        while off < got.len() {
            let end = (off + 64 * 1024).min(got.len());
            let want = end - off;
            if want < 4096 {
                break;
            }
            match g.recv(id, &mut got[off..end]) {
                Ok(n) => off += n,
                Err(SockError::WouldBlock) => poll_until(&mut g, |_, ev| !ev.is_empty()),
                Err(e) => panic!("{e}"),
            }
        }
        drop(t.join().unwrap().unwrap());
        let c = g.sock_counters(id).unwrap();
        if backend == Backend::Uring {
            // At most one copy: what was read was copied once out of the provided buffers.
            assert_eq!(c.bytes_copied, off as u64, "{backend}");
            assert!(c.bytes_into_bufs >= off as u64, "{backend}");
            assert_eq!(&got[..off], &data[..off]);
            continue;
        }
        assert_eq!(c.bytes_copied, 0, "{backend}");
        assert_eq!(c.bytes_into_pipe, 0, "{backend}");
        assert_eq!(&got[..off], &data[..off]);
    }
}

#[test]
fn sockets_with_pipe_data_stay_ready_without_a_wait() {
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |_| {});
        peer.write_all(&[1u8; 640]).unwrap();
        let mut one = [0u8; 64];
        read_exact(&mut g, id, &mut one);
        assert!(g.pipe_len(id) > 0, "the burst is buffered");
        let before = g.counters();
        let mut ev = Vec::new();
        g.poll(Some(std::time::Duration::from_secs(5)), &mut ev).unwrap();
        assert!(matches!(ev.as_slice(), [Event::Readable(x)] if *x == id), "{backend}: {ev:?}");
        let after = g.counters();
        assert_eq!(after.pipe_events, before.pipe_events + 1);
        assert_eq!(after.sock.recv_syscalls(), before.sock.recv_syscalls(), "no recv syscall to learn it");
    }
}

#[test]
fn idle_pipes_return_memory_to_the_pool() {
    let (mut g, id, mut peer) = group_pair::<Vec<u8>>(ff_sock::Backend::Epoll, |_| {});
    peer.write_all(&[9u8; 100]).unwrap();
    let mut b = [0u8; 100];
    read_exact(&mut g, id, &mut b);
    assert_eq!(g.pipe_len(id), 0);
    assert_eq!(g.idle_pipes(), 1, "drained pipe gave its buffer back");
}

#[test]
fn a_short_read_means_drained_until_the_next_readiness() {
    for backend in [ff_sock::Backend::Poll, ff_sock::Backend::Epoll] {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |_| {});
        peer.write_all(&[3u8; 100]).unwrap();
        let mut b = [0u8; 100];
        read_exact(&mut g, id, &mut b);
        let before = g.sock_counters(id).unwrap();
        // The fill offered the whole pipe and got 100 bytes: the socket is empty, so no syscall asks.
        assert!(matches!(g.recv(id, &mut b), Err(SockError::WouldBlock)), "{backend}");
        let after = g.sock_counters(id).unwrap();
        assert_eq!(after.recv_syscalls(), before.recv_syscalls(), "{backend}: no readv for a known-empty socket");
        assert_eq!(after.readv_skipped, before.readv_skipped + 1, "{backend}");
        // Bytes that arrive later are reported by the next wait, and the read after it asks the kernel.
        peer.write_all(&[4u8; 10]).unwrap();
        let mut ev = Vec::new();
        g.poll(Some(std::time::Duration::from_secs(5)), &mut ev).unwrap();
        assert!(matches!(ev.as_slice(), [Event::Readable(x)] if *x == id), "{backend}: {ev:?}");
        let mut ten = [0u8; 10];
        assert_eq!(g.recv(id, &mut ten).unwrap(), 10, "{backend}");
        assert_eq!(ten, [4u8; 10]);
    }
}

#[test]
fn headers_parse_in_place_without_a_copy() {
    const PDUS: usize = 1000;
    let burst: Vec<u8> = (0..PDUS).flat_map(|i| pattern(i as u64, 72)).collect();
    for backend in BACKENDS {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |o| {
            o.pipe_size = 4096;
            // Small provided buffers: on io_uring a record is cut at most buffer ends.
            o.uring.buf_size = 512;
        });
        assert!(g.parses_in_place());
        peer.write_all(&burst).unwrap();
        // A parser that takes whole 72-byte records only, as a PDU decoder stops before a payload: the
        // ring wraps every 4096 bytes (io_uring: every 512-byte provided buffer ends), so records split
        // across the wrap must come back whole.
        let mut got: Vec<u8> = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        while got.len() < burst.len() {
            let r = g.recv_in_place(id, |bytes| {
                partial.extend_from_slice(bytes);
                let whole = partial.len() / 72 * 72;
                got.extend(partial.drain(..whole));
                bytes.len()
            });
            match r {
                Ok(n) => assert!(n > 0, "{backend}: a fill that returned bytes hands some over"),
                Err(SockError::WouldBlock) => poll_until(&mut g, |_, ev| !ev.is_empty()),
                Err(e) => panic!("{backend}: {e}"),
            }
        }
        assert_eq!(got, burst, "{backend}: every byte once, in order");
        let c = g.sock_counters(id).unwrap();
        assert_eq!(c.bytes_copied, 0, "{backend}: nothing copied out of the pipe");
        assert_eq!(c.bytes_parsed_in_place, burst.len() as u64, "{backend}");
        if backend == Backend::Uring {
            // Parsed in the provided buffers the multishot receive filled: no recv syscall at all.
            assert_eq!(c.recv_syscalls(), 0, "{backend}");
            assert_eq!(c.bytes_into_bufs, burst.len() as u64, "{backend}");
        } else {
            assert!(c.readv_pipe < (PDUS / 10) as u64, "{backend}: {} fills for {PDUS} records", c.readv_pipe);
        }
    }
}

#[test]
fn in_place_parsing_uses_only_what_the_parser_takes() {
    for backend in [Backend::Epoll, Backend::Uring] {
        let (mut g, id, mut peer) = group_pair::<Vec<u8>>(backend, |_| {});
        peer.write_all(b"headerPAYLOAD").unwrap();
        let mut took = 0;
        while took == 0 {
            match g.recv_in_place(id, |b| b.len().min(6)) {
                Ok(n) => took = n,
                Err(SockError::WouldBlock) => poll_until(&mut g, |_, ev| !ev.is_empty()),
                Err(e) => panic!("{backend}: {e}"),
            }
        }
        assert_eq!(took, 6, "{backend}");
        // The payload stays for a normal receive into its own buffer.
        let mut rest = [0u8; 7];
        read_exact(&mut g, id, &mut rest);
        assert_eq!(&rest, b"PAYLOAD", "{backend}");
        // Then the peer's close reads as the end, in place too.
        drop(peer);
        loop {
            match g.recv_in_place(id, |b| b.len()) {
                Err(SockError::Eof) => break,
                Err(SockError::WouldBlock) => poll_until(&mut g, |_, ev| !ev.is_empty()),
                other => panic!("{backend}: {other:?}"),
            }
        }
    }
    // Without a pipe there is nowhere to parse in place: refused, not silently copied.
    let (mut g, id, _peer) = group_pair::<Vec<u8>>(Backend::Epoll, |o| o.pipe_size = 0);
    assert!(!g.parses_in_place());
    assert!(matches!(g.recv_in_place(id, |b| b.len()), Err(SockError::Io(_))));
}
