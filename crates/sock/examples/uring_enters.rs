//! Syscalls per received PDU on loopback at a given queue depth: a client keeps `qd` PDUs (64-byte
//! header + 4 KiB payload) in flight and a sock group answers each with a 16-byte response.
//!
//! `cargo run --release -p ff-sock --example uring_enters -- [uring|epoll|poll] [qd] [pdus] [busy|event]`

use ff_sock::{Backend, Event, GroupOptions, Listener, SockError, SockGroup, SockOptions, WriteReq};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const HDR: usize = 64;
const DATA: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend: Backend = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(Backend::Uring);
    let qd: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(32);
    let pdus: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let busy = args.get(4).map(|s| s == "busy").unwrap_or(false);
    let l = Listener::bind("127.0.0.1:0".parse().unwrap(), 4).unwrap();
    let addr = l.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut r = s.try_clone().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(qd);
        for _ in 0..qd {
            tx.send(()).unwrap();
        }
        // Responses are read in bulk; each frees one slot of the window.
        let reader = std::thread::spawn(move || {
            let mut b = vec![0u8; 16 * 1024];
            let (mut bytes, total) = (0usize, 16 * pdus);
            while bytes < total {
                let n = r.read(&mut b).unwrap();
                assert!(n > 0, "server closed");
                for _ in (bytes / 16)..((bytes + n) / 16) {
                    let _ = tx.send(());
                }
                bytes += n;
            }
        });
        // Like an initiator at queue depth `qd`: every free slot is refilled, all at once.
        let mut w = s;
        let mut burst = Vec::with_capacity(qd * (HDR + DATA));
        let mut sent = 0;
        while sent < pdus {
            rx.recv().unwrap();
            let mut k = 1;
            while sent + k < pdus && rx.try_recv().is_ok() {
                k += 1;
            }
            burst.clear();
            for i in sent..sent + k {
                let mut pdu = [0u8; HDR];
                pdu[..8].copy_from_slice(&(i as u64).to_le_bytes());
                burst.extend_from_slice(&pdu);
                burst.resize(burst.len() + DATA, 0);
            }
            w.write_all(&burst).unwrap();
            sent += k;
        }
        reader.join().unwrap();
    });
    let sock = loop {
        if let Some((s, _)) = l.accept(&SockOptions::default()).unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // Features one by one: FF_URING_BUNDLES=0, FF_URING_FIXED=0, FF_URING_SQPOLL=<idle ms>,
    // FF_URING_NAPI=<busy-poll µs>, FF_URING_BUFS=<count>, FF_URING_BUF_SIZE=<bytes>.
    let env = |k: &str| std::env::var(k).ok();
    let mut opts = GroupOptions { backend, ..GroupOptions::default() };
    if env("FF_URING_BUNDLES").as_deref() == Some("0") {
        opts.uring.bundles = false;
    }
    if env("FF_URING_FIXED").as_deref() == Some("0") {
        opts.uring.fixed_files = 0;
    }
    opts.uring.sqpoll = env("FF_URING_SQPOLL").map(|v| v.parse().unwrap());
    opts.uring.napi_busy_poll_us = env("FF_URING_NAPI").map(|v| v.parse().unwrap());
    if let Some(v) = env("FF_URING_BUFS") {
        opts.uring.bufs = v.parse().unwrap();
    }
    if let Some(v) = env("FF_URING_BUF_SIZE") {
        opts.uring.buf_size = v.parse().unwrap();
    }
    let line = opts.to_string();
    let mut g: SockGroup = SockGroup::new(opts).unwrap();
    let id = g.add(sock).unwrap();
    let mut ev = Vec::new();
    let mut hdr = [0u8; HDR];
    let mut data = vec![0u8; DATA];
    let (mut in_hdr, mut in_data, mut done) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    let timeout = if busy { Some(Duration::ZERO) } else { Some(Duration::from_millis(100)) };
    while done < pdus {
        g.poll(timeout, &mut ev).unwrap();
        for e in ev.drain(..) {
            if !matches!(e, Event::Readable(_)) {
                continue;
            }
            loop {
                let r = if in_hdr < HDR {
                    g.recv(id, &mut hdr[in_hdr..]).map(|n| in_hdr += n)
                } else {
                    g.recv(id, &mut data[in_data..]).map(|n| in_data += n)
                };
                match r {
                    Ok(()) => {}
                    Err(SockError::WouldBlock) => break,
                    Err(e) => panic!("{e}"),
                }
                if in_data == DATA {
                    g.write(id, WriteReq::new(&[1u8; 16], done as u64).unwrap()).map_err(|(e, _)| e).unwrap();
                    done += 1;
                    in_hdr = 0;
                    in_data = 0;
                }
            }
        }
    }
    g.flush();
    let secs = start.elapsed().as_secs_f64();
    client.join().unwrap();
    let c = g.counters();
    println!("{line}");
    if let Some(s) = g.uring_setup() {
        println!("{s:?}");
    }
    println!(
        "backend={} qd={qd} mode={} pdus={pdus} iops={:.0} enters/pdu={:.4} waits/pdu={:.4} syscalls/pdu={:.4} \
         sqes/enter={:.2} cqes/enter={:.2} recv_cqes/pdu={:.4} bufs_recycled={} rearms={} enobufs={}",
        g.backend(),
        if busy { "busy" } else { "event" },
        pdus as f64 / secs,
        c.uring_enters as f64 / pdus as f64,
        c.waits as f64 / pdus as f64,
        c.syscalls() as f64 / pdus as f64,
        c.sqes_per_enter(),
        c.cqes_per_enter(),
        c.sock.uring_recv_cqes as f64 / pdus as f64,
        c.uring_bufs_recycled,
        c.uring_rearms,
        c.uring_enobufs,
    );
}
