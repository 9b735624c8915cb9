//! Server 4: the ferrofabric sock layer. Each reactor thread owns one [`SockGroup`]; an acceptor thread
//! places every new connection on a reactor (round-robin through [`Placer`]) and hands it over through a
//! channel plus the group's [`Waker`]. Commands are read with `recv` (64-byte headers come out of the
//! receive pipe, so many commands cost one syscall); responses are [`WriteReq`]s whose header is inline
//! and whose READ data buffer is handed over uncopied (zero-copy eligible), flushed one sendmsg per socket
//! per poll. No file descriptor or syscall appears here: the layer owns them.

use super::{STOP_CHECK, STOP_CHECK_TS, ServerHandle, ServerKind, ServerStats, SharedStats, spawn};
use crate::proto::{self, CMD_LEN, Command, Response, Status};
use ff_sock::{
    Backend, Event, GroupOptions, Listener, PlacementMode, Placer, SockError, SockGroup, SockId, TcpSock, Waker,
    WriteReq,
};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// Settings of the sock server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockServerConfig {
    /// The groups' readiness backend.
    pub backend: Backend,
    /// Reactor threads (each with its own group); at least 1.
    pub reactors: usize,
}

impl Default for SockServerConfig {
    fn default() -> Self {
        SockServerConfig { backend: Backend::Epoll, reactors: 1 }
    }
}

/// Serves on `addr` with `cfg.reactors` reactors until `stop` is set.
pub fn serve_sock(addr: SocketAddr, stop: Arc<AtomicBool>, cfg: SockServerConfig) -> io::Result<ServerHandle> {
    let listener = Listener::bind(addr, super::BACKLOG)?;
    let bound = listener.local_addr()?;
    let stats = Arc::new(SharedStats::default());
    let opts = GroupOptions { backend: cfg.backend, ..GroupOptions::default() };
    let n = cfg.reactors.max(1);
    let placer = Arc::new(Mutex::new(Placer::new(PlacementMode::RoundRobin, n)));
    let mut threads = Vec::new();
    let mut inboxes = Vec::new();
    for r in 0..n {
        let (tx, rx) = channel::<TcpSock>();
        // The group is created on its own thread; it reports its waker back before serving.
        let (wtx, wrx) = channel::<io::Result<Waker>>();
        let (o, sp, st, pl) = (opts.clone(), stop.clone(), stats.clone(), placer.clone());
        threads.push(spawn(format!("sock-reactor-{r}"), move || reactor(r, o, rx, wtx, &sp, &st, &pl))?);
        let waker = wrx.recv().map_err(|_| io::Error::other("reactor died at start"))??;
        inboxes.push((tx, waker));
    }
    let sp = stop.clone();
    let sock_opts = opts.sock.clone();
    threads.push(spawn("sock-accept".into(), move || {
        while !sp.load(Ordering::Relaxed) {
            if !wait_readable(&listener) {
                continue;
            }
            while let Ok(Some((sock, _peer))) = listener.accept(&sock_opts) {
                let g = placer.lock().expect("placer").place(&sock).group;
                let (tx, waker) = &inboxes[g];
                if tx.send(sock).is_ok() {
                    let _ = waker.wake();
                }
            }
        }
        // Wake reactors so they see the flag without waiting out their poll timeout.
        for (_, w) in &inboxes {
            let _ = w.wake();
        }
    })?);
    Ok(ServerHandle::new(
        if cfg.backend == Backend::Epoll { ServerKind::SockEpoll } else { ServerKind::SockPoll },
        bound,
        stop,
        stats,
        threads,
    ))
}

/// Waits up to [`STOP_CHECK`] for a connection to accept (the acceptor is management path, not a group).
fn wait_readable(l: &Listener) -> bool {
    let mut pfd = [rustix::event::PollFd::new(l, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut pfd, Some(&STOP_CHECK_TS)).is_ok_and(|n| n > 0)
}

/// Receive state of one connection.
struct Conn {
    head: [u8; CMD_LEN],
    head_got: usize,
    /// The decoded command whose WRITE data is being received.
    cmd: Option<Command>,
    data: Vec<u8>,
    data_got: usize,
    /// An error response is queued; close once the write queue drains.
    closing: bool,
    placement: ff_sock::Placement,
    stats: ServerStats,
}

/// Per-request work done between receives; at most this many commands per Readable, for fairness (the
/// group reports the socket again while its pipe or the kernel still holds bytes).
const CMDS_PER_EVENT: usize = 32;
/// READ data buffers kept for reuse (they come back in WriteDone).
const POOL_MAX: usize = 1024;

struct Reactor {
    group: SockGroup<Vec<u8>>,
    conns: HashMap<SockId, Conn>,
    pool: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

fn reactor(
    r: usize,
    opts: GroupOptions,
    inbox: Receiver<TcpSock>,
    waker_tx: Sender<io::Result<Waker>>,
    stop: &AtomicBool,
    stats: &SharedStats,
    placer: &Mutex<Placer>,
) {
    let mut group = match SockGroup::new(opts) {
        Ok(g) => g,
        Err(e) => {
            let _ = waker_tx.send(Err(e));
            return;
        }
    };
    match group.waker() {
        Ok(w) => {
            let _ = waker_tx.send(Ok(w));
        }
        Err(e) => {
            let _ = waker_tx.send(Err(e));
            return;
        }
    }
    let mut me = Reactor { group, conns: HashMap::new(), pool: Vec::new(), scratch: Vec::new() };
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        events.clear();
        if me.group.poll(Some(STOP_CHECK), &mut events).is_err() {
            continue;
        }
        for ev in events.drain(..) {
            match ev {
                Event::Readable(id) => me.on_readable(id, stats, placer),
                Event::WriteDone { sock, req, result } => {
                    for b in req.into_data() {
                        if me.pool.len() < POOL_MAX {
                            me.pool.push(b);
                        }
                    }
                    let drained = me.group.queued(sock) == 0;
                    match me.conns.get(&sock) {
                        Some(c) if result.is_err() || (c.closing && drained) => me.close(sock, stats, placer),
                        _ => {}
                    }
                }
                Event::Failed(id, _) => me.close(id, stats, placer),
                Event::Wake => {
                    while let Ok(sock) = inbox.try_recv() {
                        let placement = ff_sock::Placement { group: r, key: None };
                        if let Ok(id) = me.group.add(sock) {
                            me.conns.insert(id, Conn::new(placement));
                        } else {
                            placer.lock().expect("placer").release(placement);
                        }
                    }
                }
            }
        }
    }
    let ids: Vec<SockId> = me.conns.keys().copied().collect();
    for id in ids {
        me.close(id, stats, placer);
    }
}

impl Conn {
    fn new(placement: ff_sock::Placement) -> Conn {
        Conn {
            head: [0; CMD_LEN],
            head_got: 0,
            cmd: None,
            data: Vec::new(),
            data_got: 0,
            closing: false,
            placement,
            stats: ServerStats { connections: 1, ..Default::default() },
        }
    }
}

impl Reactor {
    fn close(&mut self, id: SockId, stats: &SharedStats, placer: &Mutex<Placer>) {
        if let Some(mut c) = self.conns.remove(&id) {
            c.stats.errors += (c.head_got > 0 || c.cmd.is_some()) as u64; // cut off mid-command
            c.stats.bytes_out = self.group.sock_counters(id).map(|k| k.bytes_sent).unwrap_or(c.stats.bytes_out);
            stats.add(&c.stats);
            placer.lock().expect("placer").release(c.placement);
        }
        let _ = self.group.close(id);
    }

    fn on_readable(&mut self, id: SockId, stats: &SharedStats, placer: &Mutex<Placer>) {
        let mut done = 0;
        loop {
            let Some(c) = self.conns.get_mut(&id) else { return };
            if c.closing || done >= CMDS_PER_EVENT {
                return;
            }
            // Receive the header, then (WRITE) the data straight into the command's buffer.
            let r = match c.cmd {
                None => self.group.recv(id, &mut c.head[c.head_got..]),
                Some(_) => self.group.recv(id, &mut c.data[c.data_got..]),
            };
            let n = match r {
                Ok(n) => n,
                Err(SockError::WouldBlock) => return,
                Err(_) => return self.close(id, stats, placer),
            };
            c.stats.bytes_in += n as u64;
            let cmd = match c.cmd {
                None => {
                    c.head_got += n;
                    if c.head_got < CMD_LEN {
                        continue;
                    }
                    c.head_got = 0;
                    match Command::decode(&c.head) {
                        Ok(cmd) if cmd.inbound_len() > 0 => {
                            c.cmd = Some(cmd);
                            c.data.resize(cmd.inbound_len(), 0);
                            c.data_got = 0;
                            continue;
                        }
                        Ok(cmd) => cmd,
                        Err(e) => {
                            // Undecodable: answer, then close once the answer is out.
                            c.closing = true;
                            c.stats.requests += 1;
                            c.stats.errors += 1;
                            let resp = Response { status: e.status(), tag: proto::raw_tag(&c.head), len: 0 };
                            let req = WriteReq::new(&resp.encode(), 0).expect("64-byte header fits");
                            if self.group.write(id, req).is_err() {
                                self.close(id, stats, placer);
                            }
                            return;
                        }
                    }
                }
                Some(cmd) => {
                    c.data_got += n;
                    if c.data_got < c.data.len() {
                        continue;
                    }
                    c.cmd = None;
                    cmd
                }
            };
            done += 1;
            let mut buf = self.pool.pop().unwrap_or_default();
            let data: &[u8] = if cmd.inbound_len() > 0 { &c.data } else { &self.scratch };
            let resp = proto::execute(&cmd, data, &mut buf);
            c.stats.requests += 1;
            c.stats.errors += (resp.status != Status::Ok) as u64;
            let mut req = WriteReq::new(&resp.encode(), cmd.tag).expect("64-byte header fits");
            if buf.is_empty() {
                self.pool.push(buf);
            } else {
                req.push_data(buf);
            }
            // QueueFull means the client pipelines beyond any sane depth (512): drop it.
            if self.group.write(id, req).is_err() {
                return self.close(id, stats, placer);
            }
        }
    }
}
