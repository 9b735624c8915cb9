//! Server 3, "A Simple Non-Blocking Server, v2": one thread and `epoll(7)` (through rustix's thin
//! wrappers, one syscall each). The kernel keeps the set and returns only ready sockets, so a wait
//! costs O(ready), not O(connections). Level-triggered, EPOLLOUT only while output is stuck (it would
//! fire on every wait otherwise).

use super::{ReadEnd, STOP_CHECK_TS, ServerHandle, ServerKind, Session, SharedStats, bind_listener, spawn};
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const LISTENER: u64 = u64::MAX;

/// Serves on `addr` from one thread until `stop` is set.
pub fn serve_epoll(addr: SocketAddr, stop: Arc<AtomicBool>) -> io::Result<ServerHandle> {
    let listener = bind_listener(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let ep = epoll::create(CreateFlags::CLOEXEC)?;
    epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN)?;
    let stats = Arc::new(SharedStats::default());
    let (st, sp) = (stats.clone(), stop.clone());
    let t = spawn("epoll-server".into(), move || run(ep, listener, &sp, &st))?;
    Ok(ServerHandle::new(ServerKind::Epoll, bound, stop, stats, vec![t]))
}

fn interest(s: &Session) -> EventFlags {
    let mut ev = EventFlags::empty();
    if s.wants_read() {
        ev |= EventFlags::IN;
    }
    if s.wants_write() {
        ev |= EventFlags::OUT;
    }
    ev
}

fn run(ep: OwnedFd, listener: TcpListener, stop: &AtomicBool, stats: &SharedStats) {
    // A slab: the epoll token is the slot index.
    let mut slots: Vec<Option<(Session, EventFlags)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut evs: Vec<Event> = Vec::with_capacity(256);
    let mut scratch = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        evs.clear();
        // Fills the vector's spare capacity. An error (EINTR) leaves it empty: nothing ready.
        let _ = epoll::wait(&ep, rustix::buffer::spare_capacity(&mut evs), Some(&STOP_CHECK_TS));
        for ev in &evs {
            let (token, re) = (ev.data.u64(), ev.flags);
            if token == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    let Ok(s) = Session::new(stream) else { continue };
                    let idx = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    let want = interest(&s);
                    if epoll::add(&ep, &s.stream, EventData::new_u64(idx as u64), want).is_ok() {
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
            let rd = EventFlags::IN | EventFlags::HUP | EventFlags::ERR;
            if re.intersects(rd) && s.on_readable(&mut scratch) == ReadEnd::Closed {
                dead = true;
            }
            if s.on_writable().is_err() || s.finished() {
                dead = true;
            }
            if !dead && interest(s) != *registered {
                *registered = interest(s);
                dead = epoll::modify(&ep, &s.stream, EventData::new_u64(token), *registered).is_err();
            }
            if dead {
                let (s, _) = slots[idx].take().expect("live");
                let _ = epoll::delete(&ep, &s.stream);
                stats.add(&s.close_stats());
                free.push(idx);
            }
        }
    }
    for (s, _) in slots.into_iter().flatten() {
        stats.add(&s.close_stats());
    }
}
