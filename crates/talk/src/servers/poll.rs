//! Server 2, "A Simple Non-Blocking Server": one thread, every socket non-blocking, and `poll(2)` over
//! an array of pollfds (the listener first). Each wait passes and scans the whole array: O(n) per wait
//! in the kernel and here, which is what epoll removes.

use super::{ReadEnd, STOP_CHECK_TS, ServerHandle, ServerKind, Session, SharedStats, bind_listener, spawn};
use rustix::event::{PollFd, PollFlags};
use std::io;
use std::net::{SocketAddr, TcpListener};
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
    // What poll reported for the listener and each session, copied out of the pollfds (which borrow
    // the sockets) so the sessions can be served and closed.
    let mut ready: Vec<PollFlags> = Vec::new();
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // Rebuilt every round: interest changes with each connection's output backlog.
        let mut pfds = Vec::with_capacity(sessions.len() + 1);
        pfds.push(PollFd::new(&listener, PollFlags::IN));
        for s in &sessions {
            let mut ev = PollFlags::empty();
            if s.wants_read() {
                ev |= PollFlags::IN;
            }
            if s.wants_write() {
                ev |= PollFlags::OUT;
            }
            pfds.push(PollFd::new(&s.stream, ev));
        }
        match rustix::event::poll(&mut pfds, Some(&STOP_CHECK_TS)) {
            Ok(n) if n > 0 => {}
            _ => continue, // timeout (check the flag) or EINTR
        }
        ready.clear();
        ready.extend(pfds.iter().map(PollFd::revents));
        drop(pfds);
        // Walk backwards so swap_remove of a closed session never moves an unvisited one.
        for i in (1..ready.len()).rev() {
            let re = ready[i];
            if re.is_empty() {
                continue;
            }
            let s = &mut sessions[i - 1];
            let mut dead = false;
            if re.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
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
        if !ready[0].is_empty() {
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
