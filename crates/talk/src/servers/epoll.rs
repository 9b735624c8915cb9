//! Server 3, "A Simple Non-Blocking Server, v2": one thread and `epoll(7)` called directly. The kernel
//! keeps the set and returns only ready sockets, so a wait costs O(ready), not O(connections).
//! Level-triggered, EPOLLOUT only while output is stuck (it would fire on every wait otherwise).

use super::{ReadEnd, STOP_CHECK, ServerHandle, ServerKind, Session, SharedStats, bind_listener, spawn};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const LISTENER: u64 = u64::MAX;

/// Serves on `addr` from one thread until `stop` is set.
pub fn serve_epoll(addr: SocketAddr, stop: Arc<AtomicBool>) -> io::Result<ServerHandle> {
    let listener = bind_listener(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let ep = Epoll::new()?;
    ep.ctl(libc::EPOLL_CTL_ADD, listener.as_raw_fd(), libc::EPOLLIN as u32, LISTENER)?;
    let stats = Arc::new(SharedStats::default());
    let (st, sp) = (stats.clone(), stop.clone());
    let t = spawn("epoll-server".into(), move || run(ep, listener, &sp, &st))?;
    Ok(ServerHandle::new(ServerKind::Epoll, bound, stop, stats, vec![t]))
}

/// The epoll instance: three thin wrappers are all the unsafe this server needs.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned descriptor is owned right below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nobody else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a valid epoll_event for the call (ignored for DEL).
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn wait(&self, evs: &mut Vec<libc::epoll_event>, timeout_ms: i32) -> usize {
        evs.clear();
        // SAFETY: the kernel writes at most capacity() events into the vector's spare capacity.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), evs.capacity() as libc::c_int, timeout_ms)
        };
        let n = n.max(0) as usize; // EINTR: nothing ready
        // SAFETY: the first n entries were initialised by epoll_wait.
        unsafe { evs.set_len(n) };
        n
    }
}

fn interest(s: &Session) -> u32 {
    let mut ev = 0;
    if s.wants_read() {
        ev |= libc::EPOLLIN;
    }
    if s.wants_write() {
        ev |= libc::EPOLLOUT;
    }
    ev as u32
}

fn run(ep: Epoll, listener: TcpListener, stop: &AtomicBool, stats: &SharedStats) {
    // A slab: the epoll token is the slot index.
    let mut slots: Vec<Option<(Session, u32)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut evs: Vec<libc::epoll_event> = Vec::with_capacity(256);
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        ep.wait(&mut evs, STOP_CHECK.as_millis() as i32);
        for ev in &evs {
            let (token, re) = (ev.u64, ev.events);
            if token == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    let Ok(s) = Session::new(stream) else { continue };
                    let idx = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    let want = interest(&s);
                    if ep.ctl(libc::EPOLL_CTL_ADD, s.stream.as_raw_fd(), want, idx as u64).is_ok() {
                        slots[idx] = Some((s, want));
                    } else {
                        stats.add(&s.close_stats());
                        free.push(idx);
                    }
                }
                continue;
            }
            let idx = token as usize;
            // A slot freed earlier in this batch may show a stale event: nothing to do for it.
            let Some(Some((s, registered))) = slots.get_mut(idx) else { continue };
            let mut dead = false;
            let rd = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if re & rd != 0 && s.on_readable(&mut scratch) == ReadEnd::Closed {
                dead = true;
            }
            if s.on_writable().is_err() || s.finished() {
                dead = true;
            }
            if !dead && interest(s) != *registered {
                *registered = interest(s);
                dead = ep.ctl(libc::EPOLL_CTL_MOD, s.stream.as_raw_fd(), *registered, token).is_err();
            }
            if dead {
                let (s, _) = slots[idx].take().expect("live");
                let _ = ep.ctl(libc::EPOLL_CTL_DEL, s.stream.as_raw_fd(), 0, 0);
                stats.add(&s.close_stats());
                free.push(idx);
            }
        }
    }
    for (s, _) in slots.into_iter().flatten() {
        stats.add(&s.close_stats());
    }
}
