//! Server 1, "A Simple Server": one thread per connection, blocking `read`/`write` with std::net.
//! Easy to follow, and each connection costs a thread, a stack and context switches: the baseline.

use super::{Registry, ServerHandle, ServerKind, ServerStats, SharedStats, bind_listener, connectable, spawn};
use crate::proto::{self, CMD_LEN, Command, Response};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Serves on `addr` until `stop` is set; call [`ServerHandle::stop`] (it also wakes the blocked accept).
pub fn serve_blocking(addr: SocketAddr, stop: Arc<AtomicBool>) -> io::Result<ServerHandle> {
    let listener = bind_listener(addr)?;
    let bound = listener.local_addr()?;
    let stats = Arc::new(SharedStats::default());
    let (st, sp) = (stats.clone(), stop.clone());
    let acceptor = spawn("blocking-accept".into(), move || accept_loop(listener, sp, st))?;
    let wake_to = connectable(bound);
    Ok(ServerHandle::new(ServerKind::Blocking, bound, stop, stats, vec![acceptor]).with_wake(move || {
        // accept() has no timeout: one throwaway connection wakes it to see the flag.
        let _ = TcpStream::connect(wake_to);
    }))
}

fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, stats: Arc<SharedStats>) {
    let registry: Registry = Default::default();
    let mut threads = Vec::new();
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        if let Ok(c) = stream.try_clone() {
            registry.lock().expect("registry").insert(id, c);
        }
        let (reg, st) = (registry.clone(), stats.clone());
        match spawn(format!("blocking-{id}"), move || {
            let s = serve_conn(stream);
            st.add(&s);
            reg.lock().expect("registry").remove(&id);
        }) {
            Ok(t) => threads.push(t),
            // Out of threads: this is the model's limit; the connection is dropped.
            Err(_) => drop(registry.lock().expect("registry").remove(&id)),
        }
        threads.retain(|t| !t.is_finished());
    }
    // Shutting the sockets down returns every blocked read/write in the connection threads.
    for s in registry.lock().expect("registry").values() {
        let _ = s.shutdown(Shutdown::Both);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean close before the first byte.
fn read_full(s: &mut TcpStream, buf: &mut [u8], stats: &mut ServerStats) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stats.bytes_in += got as u64;
    Ok(true)
}

/// The whole life of one connection: read a command, read its data, answer, repeat.
fn serve_conn(mut s: TcpStream) -> ServerStats {
    let mut stats = ServerStats { connections: 1, ..Default::default() };
    let mut head = [0u8; CMD_LEN];
    let (mut data, mut out) = (Vec::new(), Vec::new());
    loop {
        match read_full(&mut s, &mut head, &mut stats) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => {
                stats.errors += 1;
                break;
            }
        }
        stats.requests += 1;
        let cmd = match Command::decode(&head) {
            Ok(c) => c,
            Err(e) => {
                stats.errors += 1;
                let r = Response { status: e.status(), tag: proto::raw_tag(&head), len: 0 };
                let _ = s.write_all(&r.encode());
                break; // no way to find the next command in the stream
            }
        };
        data.resize(cmd.inbound_len(), 0);
        if cmd.inbound_len() > 0 && !matches!(read_full(&mut s, &mut data, &mut stats), Ok(true)) {
            stats.errors += 1;
            break;
        }
        let r = proto::execute(&cmd, &data, &mut out);
        stats.errors += (r.status != proto::Status::Ok) as u64;
        // Two writes (header, data) like the talk's simple server; TCP_NODELAY keeps them prompt.
        if s.write_all(&r.encode()).and_then(|_| s.write_all(&out)).is_err() {
            break;
        }
        stats.bytes_out += (proto::RESP_LEN + out.len()) as u64;
    }
    stats
}
