//! Server 2, "A Simple Non-Blocking Server": one thread, every socket non-blocking, and `poll(2)` over
//! an array of pollfds (the listener first). Each wait passes and scans the whole array: O(n) per wait
//! in the kernel and here, which is what epoll removes.

use super::{ReadEnd, STOP_CHECK, ServerHandle, ServerKind, Session, SharedStats, bind_listener, spawn};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Serves on `addr` from one thread until `stop` is set.
pub fn serve_poll(addr: SocketAddr, stop: Arc<AtomicBool>) -> io::Result<ServerHandle> {
    let listener = bind_listener(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let stats = Arc::new(SharedStats::default());
    let (st, sp) = (stats.clone(), stop.clone());
    let t = spawn("poll-server".into(), move || run(listener, &sp, &st))?;
    Ok(ServerHandle::new(ServerKind::Poll, bound, stop, stats, vec![t]))
}

fn run(listener: TcpListener, stop: &AtomicBool, stats: &SharedStats) {
    let mut sessions: Vec<Session> = Vec::new();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // Rebuilt every round: interest changes with each connection's output backlog.
        pfds.clear();
        pfds.push(libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        for s in &sessions {
            let mut ev = 0;
            if s.wants_read() {
                ev |= libc::POLLIN;
            }
            if s.wants_write() {
                ev |= libc::POLLOUT;
            }
            pfds.push(libc::pollfd { fd: s.stream.as_raw_fd(), events: ev, revents: 0 });
        }
        // SAFETY: pfds is a valid, exclusively borrowed array of pfds.len() pollfds for the call.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, STOP_CHECK.as_millis() as i32) };
        if n <= 0 {
            continue; // timeout (check the flag) or EINTR
        }
        // Walk backwards so swap_remove of a closed session never moves an unvisited one.
        for i in (1..pfds.len()).rev() {
            let re = pfds[i].revents;
            if re == 0 {
                continue;
            }
            let s = &mut sessions[i - 1];
            let mut dead = false;
            if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && s.on_readable(&mut scratch) == ReadEnd::Closed
            {
                dead = true;
            }
            // Answer at once rather than waiting for POLLOUT: the socket usually has room.
            if s.on_writable().is_err() || s.finished() {
                dead = true;
            }
            if dead {
                stats.add(&sessions.swap_remove(i - 1).close_stats());
            }
        }
        if pfds[0].revents != 0 {
            while let Ok((stream, _)) = listener.accept() {
                if let Ok(s) = Session::new(stream) {
                    sessions.push(s);
                }
            }
        }
    }
    for s in sessions {
        stats.add(&s.close_stats());
    }
}
