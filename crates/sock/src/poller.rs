//! The readiness backends a group waits on: `poll(2)` (an array the kernel scans on every call) and
//! `epoll(7)` (a set the kernel keeps). Both report (token, readiness) pairs, at most `max` per wait,
//! and rotate so one busy socket cannot keep the others from being reported.

use crate::options::Backend;
use rustix::event::epoll;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readiness of one socket after a wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Caller token given at registration.
    pub token: u64,
    /// Data (or EOF) to read.
    pub readable: bool,
    /// Room to write.
    pub writable: bool,
    /// Error-queue messages or a socket error are pending.
    pub error: bool,
    /// The peer hung up.
    pub hangup: bool,
}

/// One group's wait mechanism.
#[derive(Debug)]
pub enum Poller {
    /// poll(2).
    Poll(PollSet),
    /// epoll(7).
    Epoll(Epoll),
}

impl Poller {
    /// Creates the backend `kind`.
    pub fn new(kind: Backend) -> io::Result<Poller> {
        Ok(match kind {
            Backend::Poll => Poller::Poll(PollSet::default()),
            Backend::Epoll => Poller::Epoll(Epoll::new()?),
            // io_uring is not a readiness poller: the group drives its ring itself (see `uring`) and
            // keeps an empty poll set here.
            Backend::Uring => Poller::Poll(PollSet::default()),
        })
    }

    /// Starts watching `fd` for reads (and writes when `write`).
    pub fn add(&mut self, fd: BorrowedFd<'_>, token: u64, write: bool) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.add(fd.as_raw_fd(), token, write),
            Poller::Epoll(e) => Ok(epoll::add(&e.fd, fd, epoll::EventData::new_u64(token), interest_epoll(write))?),
        }
    }

    /// Changes whether `fd` is watched for writes.
    pub fn modify(&mut self, fd: BorrowedFd<'_>, token: u64, write: bool) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.modify(fd.as_raw_fd(), write),
            Poller::Epoll(e) => Ok(epoll::modify(&e.fd, fd, epoll::EventData::new_u64(token), interest_epoll(write))?),
        }
    }

    /// Stops watching `fd`.
    pub fn remove(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.remove(fd.as_raw_fd()),
            Poller::Epoll(e) => Ok(epoll::delete(&e.fd, fd)?),
        }
    }

    /// Whether interest changes cost a syscall (epoll) or not (poll).
    pub fn ctl_is_syscall(&self) -> bool {
        matches!(self, Poller::Epoll(_))
    }

    /// Waits up to `timeout` (`None` forever) and appends at most `max` readiness reports to `out`.
    /// Returns how many the kernel reported.
    pub fn wait(&mut self, timeout: Option<Duration>, max: usize, out: &mut Vec<Ready>) -> io::Result<usize> {
        match self {
            Poller::Poll(p) => {
                let ms = match timeout {
                    None => -1,
                    Some(d) if d.is_zero() => 0,
                    // Round up so a short timeout does not become a busy loop.
                    Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
                };
                p.wait(ms, max, out)
            }
            Poller::Epoll(e) => e.wait(timeout, max, out),
        }
    }
}

/// Level-triggered: a socket the reactor did not drain is reported again, so nothing is lost.
fn interest_epoll(write: bool) -> epoll::EventFlags {
    let f = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    if write { f | epoll::EventFlags::OUT } else { f }
}

fn interest_poll(write: bool) -> libc::c_short {
    libc::POLLIN | libc::POLLRDHUP | if write { libc::POLLOUT } else { 0 }
}

/// The poll(2) set: parallel arrays of pollfds and tokens, plus a rotating start for fairness.
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
    start: usize,
}

impl PollSet {
    fn find(&self, fd: RawFd) -> io::Result<usize> {
        self.fds.iter().position(|p| p.fd == fd).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn add(&mut self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        if self.fds.iter().any(|p| p.fd == fd) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.fds.push(libc::pollfd { fd, events: interest_poll(write), revents: 0 });
        self.tokens.push(token);
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, write: bool) -> io::Result<()> {
        let i = self.find(fd)?;
        self.fds[i].events = interest_poll(write);
        Ok(())
    }

    fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.find(fd)?;
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        Ok(())
    }

    fn wait(&mut self, ms: libc::c_int, max: usize, out: &mut Vec<Ready>) -> io::Result<usize> {
        // SAFETY: fds is a valid array of fds.len() pollfds.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
        }
        let len = self.fds.len();
        let mut taken = 0;
        let mut last = self.start;
        // The O(n) scan the talk warns about; starting where the last wait stopped keeps it fair.
        for k in 0..len {
            if taken == max {
                break;
            }
            let i = (self.start + k) % len;
            let r = self.fds[i].revents;
            if r == 0 {
                continue;
            }
            out.push(Ready {
                token: self.tokens[i],
                readable: r & (libc::POLLIN | libc::POLLRDHUP) != 0,
                writable: r & libc::POLLOUT != 0,
                error: r & (libc::POLLERR | libc::POLLNVAL) != 0,
                hangup: r & libc::POLLHUP != 0,
            });
            taken += 1;
            last = i;
        }
        if len > 0 {
            self.start = (last + 1) % len;
        }
        Ok(n as usize)
    }
}

/// An epoll instance and its event array.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<epoll::Event>,
}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll").field("fd", &self.fd).finish_non_exhaustive()
    }
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        Ok(Epoll { fd: epoll::create(epoll::CreateFlags::CLOEXEC)?, events: Vec::new() })
    }

    fn wait(&mut self, timeout: Option<Duration>, max: usize, out: &mut Vec<Ready>) -> io::Result<usize> {
        let max = max.clamp(1, i32::MAX as usize);
        if self.events.len() != max {
            let empty = epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
            self.events.resize(max, empty);
        }
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let n = match epoll::wait(&self.fd, &mut self.events[..], ts.as_ref()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        // epoll already rotates: level-triggered entries it returns go to the back of its ready list.
        for ev in &self.events[..n] {
            let r = ev.flags;
            out.push(Ready {
                token: ev.data.u64(),
                readable: r.intersects(epoll::EventFlags::IN | epoll::EventFlags::RDHUP),
                writable: r.contains(epoll::EventFlags::OUT),
                error: r.contains(epoll::EventFlags::ERR),
                hangup: r.contains(epoll::EventFlags::HUP),
            });
        }
        Ok(n)
    }
}
