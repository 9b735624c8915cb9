//! The talk's four servers of the [`crate::proto`] protocol, in the order the talk builds them:
//!
//! 1. [`blocking`]: a thread per connection, blocking reads and writes ("A Simple Server");
//! 2. [`poll`]: one thread, non-blocking sockets grouped with `poll(2)` ("A Simple Non-Blocking Server");
//! 3. [`epoll`]: one thread, the kernel keeps the set with `epoll(7)` ("... Server, v2");
//! 4. [`sock`]: the ferrofabric sock layer (receive pipe, batched zero-copy-eligible writes, reactors fed
//!    by an acceptor with round-robin placement).
//!
//! This module owns what they share: the [`ServerKind`] names, [`ServerStats`], the [`ServerHandle`]
//! that stops and joins a server, the listener setup and (for poll and epoll) the hand-written
//! buffering [`Session`].

pub mod blocking;
pub mod epoll;
pub mod poll;
pub mod sock;

use crate::proto::{self, CMD_LEN, Command, Response};
use serde::Serialize;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often single-threaded servers look at their stop flag while idle.
pub(crate) const STOP_CHECK: Duration = Duration::from_millis(50);
/// [`STOP_CHECK`] as the timeout rustix's poll and epoll_wait take.
pub(crate) const STOP_CHECK_TS: rustix::event::Timespec =
    rustix::event::Timespec { tv_sec: STOP_CHECK.as_secs() as i64, tv_nsec: STOP_CHECK.subsec_nanos() as i64 };
/// Listen backlog: the benchmark connects up to 1,024 clients back to back.
pub(crate) const BACKLOG: i32 = 1024;

/// Which server (and, for the sock layer, which backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// Thread per connection.
    Blocking,
    /// One thread, `poll(2)`.
    Poll,
    /// One thread, `epoll(7)`.
    Epoll,
    /// ff-sock groups on epoll.
    SockEpoll,
    /// ff-sock groups on poll.
    SockPoll,
}

impl ServerKind {
    /// Every kind, in the talk's order.
    pub const ALL: [ServerKind; 5] =
        [ServerKind::Blocking, ServerKind::Poll, ServerKind::Epoll, ServerKind::SockEpoll, ServerKind::SockPoll];

    /// The name used on the command line and in rows.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Blocking => "blocking",
            ServerKind::Poll => "poll",
            ServerKind::Epoll => "epoll",
            ServerKind::SockEpoll => "sock-epoll",
            ServerKind::SockPoll => "sock-poll",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "sock" && *k == ServerKind::SockEpoll))
            .ok_or_else(|| format!("unknown server {s:?} (blocking, poll, epoll, sock-epoll, sock-poll)"))
    }
}

/// Starts a server of `kind` on `addr` (port 0 picks one; see [`ServerHandle::local_addr`]).
/// `reactors` applies to the sock servers only.
pub fn start(kind: ServerKind, addr: SocketAddr, stop: Arc<AtomicBool>, reactors: usize) -> io::Result<ServerHandle> {
    match kind {
        ServerKind::Blocking => blocking::serve_blocking(addr, stop),
        ServerKind::Poll => poll::serve_poll(addr, stop),
        ServerKind::Epoll => epoll::serve_epoll(addr, stop),
        ServerKind::SockEpoll => {
            sock::serve_sock(addr, stop, sock::SockServerConfig { backend: ff_sock::Backend::Epoll, reactors })
        }
        ServerKind::SockPoll => {
            sock::serve_sock(addr, stop, sock::SockServerConfig { backend: ff_sock::Backend::Poll, reactors })
        }
    }
}

/// What a server did, summed over its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: u64,
    /// Commands answered (errors included).
    pub requests: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Commands answered with an error status, and connections dropped mid-command.
    pub errors: u64,
}

/// Stats threads add to when a connection or thread ends (not per request: no shared cache line on the
/// data path, so the counters do not tax the servers being compared).
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    v: [AtomicU64; 5],
}

impl SharedStats {
    pub(crate) fn add(&self, s: &ServerStats) {
        for (a, v) in self.v.iter().zip([s.connections, s.requests, s.bytes_in, s.bytes_out, s.errors]) {
            a.fetch_add(v, Ordering::Relaxed);
        }
    }
    fn get(&self) -> ServerStats {
        let g = |i: usize| self.v[i].load(Ordering::Relaxed);
        ServerStats { connections: g(0), requests: g(1), bytes_in: g(2), bytes_out: g(3), errors: g(4) }
    }
}

/// A running server: its address, and [`ServerHandle::stop`] to end it. Dropping it stops it too.
pub struct ServerHandle {
    kind: ServerKind,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<SharedStats>,
    threads: Vec<JoinHandle<()>>,
    /// Extra wake-up after the flag is set (the blocking acceptor sits in accept()).
    wake: Option<Box<dyn Fn() + Send>>,
}

impl ServerHandle {
    pub(crate) fn new(
        kind: ServerKind,
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        stats: Arc<SharedStats>,
        threads: Vec<JoinHandle<()>>,
    ) -> ServerHandle {
        ServerHandle { kind, addr, stop, stats, threads, wake: None }
    }

    pub(crate) fn with_wake(mut self, f: impl Fn() + Send + 'static) -> ServerHandle {
        self.wake = Some(Box::new(f));
        self
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Sets the stop flag, wakes and joins every thread, and returns the totals.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats.get()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = &self.wake {
            w();
        }
        for t in self.threads.drain(..) {
            // A panicking server thread is a bug the tests want to see, not hide.
            if let Err(p) = t.join()
                && !std::thread::panicking()
            {
                std::panic::resume_unwind(p);
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A std listener with our backlog (std's own is smaller than a 1,024-connection burst wants).
pub(crate) fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// Where a client reaches `bound` (an unspecified bind address is reached over loopback).
pub(crate) fn connectable(bound: SocketAddr) -> SocketAddr {
    let mut a = bound;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    a
}

/// Spawns a named server thread.
pub(crate) fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).stack_size(256 * 1024).spawn(f)
}

/// Most bytes read per readiness event before moving on to other connections (fairness).
const READ_BUDGET: usize = 256 * 1024;
/// Stop reading while this much output is unsent (a client that does not read cannot grow us).
const OUT_HIGH: usize = 4 << 20;

/// Why a session's read stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// No more bytes now (or the budget is spent).
    WouldBlock,
    /// The peer closed or reset.
    Closed,
}

/// A non-blocking connection's hand-written buffering for the poll and epoll servers: read big chunks,
/// parse as many commands as are complete, queue responses, and write what the socket takes.
pub(crate) struct Session {
    pub(crate) stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// An undecodable command was answered: send what is queued, then close.
    closing: bool,
    data: Vec<u8>,
    pub(crate) stats: ServerStats,
}

impl Session {
    pub(crate) fn new(stream: TcpStream) -> io::Result<Session> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(Session {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            closing: false,
            data: Vec::new(),
            stats: ServerStats { connections: 1, ..Default::default() },
        })
    }

    /// Reads into `scratch`-sized chunks until would-block, close or the budget, then parses.
    pub(crate) fn on_readable(&mut self, scratch: &mut [u8]) -> ReadEnd {
        let mut got = 0;
        let end = loop {
            if !self.wants_read() || got >= READ_BUDGET {
                break ReadEnd::WouldBlock;
            }
            match self.stream.read(scratch) {
                Ok(0) => break ReadEnd::Closed,
                Ok(n) => {
                    got += n;
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    // Parse as we go so a pipelining client cannot make inbuf grow without bound.
                    self.parse();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break ReadEnd::Closed,
            }
        };
        self.stats.bytes_in += got as u64;
        end
    }

    fn parse(&mut self) {
        let mut at = 0;
        while !self.closing && self.inbuf.len() - at >= CMD_LEN {
            let head = &self.inbuf[at..at + CMD_LEN];
            let cmd = match Command::decode(head) {
                Ok(c) => c,
                Err(e) => {
                    let r = Response { status: e.status(), tag: proto::raw_tag(head), len: 0 };
                    self.out.extend_from_slice(&r.encode());
                    self.stats.requests += 1;
                    self.stats.errors += 1;
                    // The stream cannot be resynchronised after a bad header.
                    self.closing = true;
                    at = self.inbuf.len();
                    break;
                }
            };
            let need = CMD_LEN + cmd.inbound_len();
            if self.inbuf.len() - at < need {
                break;
            }
            let r = proto::execute(&cmd, &self.inbuf[at + CMD_LEN..at + need], &mut self.data);
            self.out.extend_from_slice(&r.encode());
            self.out.extend_from_slice(&self.data);
            self.stats.requests += 1;
            self.stats.errors += (r.status != proto::Status::Ok) as u64;
            at += need;
        }
        self.inbuf.drain(..at);
    }

    /// Writes queued output until would-block; `Err` when the connection is gone.
    pub(crate) fn on_writable(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    self.stats.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Output is waiting for room in the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// More input is welcome.
    pub(crate) fn wants_read(&self) -> bool {
        !self.closing && self.out.len() - self.out_pos < OUT_HIGH
    }

    /// Everything is said; close now.
    pub(crate) fn finished(&self) -> bool {
        self.closing && !self.wants_write()
    }

    /// The final stats, counting a command cut off by the close as an error.
    pub(crate) fn close_stats(&self) -> ServerStats {
        let mut s = self.stats;
        s.errors += (!self.inbuf.is_empty()) as u64;
        s
    }
}

/// Live connections of the blocking server, so stop can shut them down (unblocking their reads).
pub(crate) type Registry = Arc<Mutex<std::collections::HashMap<u64, TcpStream>>>;
