//! The readiness backends a group waits on: `poll(2)` (an array the kernel scans on every call) and
//! `epoll(7)` (a set the kernel keeps). Both report (token, readiness) pairs, at most `max` per wait,
//! and rotate so one busy socket cannot keep the others from being reported.

use crate::options::Backend;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    pub fn add(&mut self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.add(fd, token, write),
            Poller::Epoll(e) => e.ctl(libc::EPOLL_CTL_ADD, fd, token, write),
        }
    }

    /// Changes whether `fd` is watched for writes.
    pub fn modify(&mut self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.modify(fd, write),
            Poller::Epoll(e) => e.ctl(libc::EPOLL_CTL_MOD, fd, token, write),
        }
    }

    /// Stops watching `fd`.
    pub fn remove(&mut self, fd: RawFd) -> io::Result<()> {
        match self {
            Poller::Poll(p) => p.remove(fd),
            Poller::Epoll(e) => e.ctl(libc::EPOLL_CTL_DEL, fd, 0, false),
        }
    }

    /// Whether interest changes cost a syscall (epoll) or not (poll).
    pub fn ctl_is_syscall(&self) -> bool {
        matches!(self, Poller::Epoll(_))
    }

    /// Waits up to `timeout` (`None` forever) and appends at most `max` readiness reports to `out`.
    /// Returns how many the kernel reported.
    pub fn wait(&mut self, timeout: Option<Duration>, max: usize, out: &mut Vec<Ready>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            Some(d) if d.is_zero() => 0,
            // Round up so a short timeout does not become a busy loop.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        match self {
            Poller::Poll(p) => p.wait(ms, max, out),
            Poller::Epoll(e) => e.wait(ms, max, out),
        }
    }
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
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) }, events: Vec::new() })
    }

    fn ctl(&mut self, op: libc::c_int, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        // Level-triggered: a socket the reactor did not drain is reported again, so nothing is lost.
        let bits = libc::EPOLLIN | libc::EPOLLRDHUP | if write { libc::EPOLLOUT } else { 0 };
        let mut ev = libc::epoll_event { events: bits as u32, u64: token };
        // SAFETY: ev is valid for the call; the kernel ignores it for EPOLL_CTL_DEL.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn wait(&mut self, ms: libc::c_int, max: usize, out: &mut Vec<Ready>) -> io::Result<usize> {
        let max = max.clamp(1, i32::MAX as usize);
        if self.events.len() < max {
            self.events.resize(max, libc::epoll_event { events: 0, u64: 0 });
        }
        // SAFETY: events holds at least `max` entries valid for writes.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max as libc::c_int, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
        }
        // epoll already rotates: level-triggered entries it returns go to the back of its ready list.
        for ev in &self.events[..n as usize] {
            let r = ev.events as libc::c_int;
            out.push(Ready {
                token: ev.u64,
                readable: r & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0,
                writable: r & libc::EPOLLOUT != 0,
                error: r & libc::EPOLLERR != 0,
                hangup: r & libc::EPOLLHUP != 0,
            });
        }
        Ok(n as usize)
    }
}
