//! One TCP socket: creation (non-blocking from the start), listen/accept/connect, the TCP options of the
//! talk, and the raw readv/sendmsg calls with would-block, EOF and reset as typed results.
//!
//! Groups own the syscalls on the data path; this module only wraps them so every call site is one place.

use crate::error::{SockError, SockResult};
use crate::options::SockOptions;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// SO_INCOMING_NAPI_ID (asm-generic/socket.h); libc does not export it on every target.
const SO_INCOMING_NAPI_ID: libc::c_int = 56;

/// A connected, non-blocking TCP socket.
#[derive(Debug)]
pub struct TcpSock {
    fd: OwnedFd,
}

/// A non-blocking listening TCP socket.
#[derive(Debug)]
pub struct Listener {
    sock: Socket,
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let domain = Domain::for_address(*addr);
    // SOCK_NONBLOCK | SOCK_CLOEXEC at creation: no window where the socket blocks.
    Socket::new(domain, Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))
}

impl Listener {
    /// Binds and listens on `addr` (IPv4 or IPv6; an IPv6 listener is v6-only so v4 can bind separately).
    pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<Listener> {
        Self::bind_with(addr, backlog, false)
    }

    /// Like [`Listener::bind`]; with `reuseport` (SO_REUSEPORT) several listeners share the address and
    /// the kernel spreads new connections over them, e.g. one listener per reactor.
    pub fn bind_with(addr: SocketAddr, backlog: i32, reuseport: bool) -> io::Result<Listener> {
        let sock = new_socket(&addr)?;
        sock.set_reuse_address(true)?;
        if reuseport {
            sock.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        sock.bind(&addr.into())?;
        sock.listen(backlog)?;
        Ok(Listener { sock })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()?.as_socket().ok_or_else(|| io::Error::other("listener has no inet address"))
    }

    /// Accepts one pending connection, non-blocking, with `opts` applied; `Ok(None)` when none is waiting.
    pub fn accept(&self, opts: &SockOptions) -> io::Result<Option<(TcpSock, SocketAddr)>> {
        // SAFETY: null address arguments are allowed; accept4 returns a new fd we own.
        let fd = unsafe {
            libc::accept4(
                self.sock.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                // The peer gave up before we accepted it: not the listener's error.
                Some(libc::ECONNABORTED) | Some(libc::EPROTO) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fd is a fresh descriptor returned by accept4 and owned by nobody else.
        let sock = TcpSock { fd: unsafe { OwnedFd::from_raw_fd(fd) } };
        let peer = sock.peer_addr()?;
        sock.apply(opts)?;
        Ok(Some((sock, peer)))
    }
}

/// Waits up to `timeout` until some of `fds` are readable (a listener with a pending connection, or a
/// socket with data), returning their indices. Management path only (acceptors), one poll(2).
pub fn wait_readable_any(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: pfds is a valid array of pfds.len() pollfds.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(Vec::new()) } else { Err(e) };
    }
    Ok(pfds.iter().enumerate().filter(|(_, p)| p.revents != 0).map(|(i, _)| i).collect())
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl TcpSock {
    /// Connects to `addr` with `opts` applied before connect (SO_MARK must precede it), waiting at most
    /// `timeout`. The returned socket is non-blocking.
    pub fn connect(addr: SocketAddr, opts: &SockOptions, timeout: Duration) -> SockResult<TcpSock> {
        let sock = new_socket(&addr)?;
        let s = TcpSock { fd: sock.into() };
        s.apply(opts)?;
        let sa: SockAddr = addr.into();
        // SAFETY: sa points at a valid sockaddr of sa.len() bytes.
        let rc = unsafe { libc::connect(s.fd.as_raw_fd(), sa.as_ptr().cast(), sa.len()) };
        if rc == 0 {
            return Ok(s);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(SockError::from_io(e));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SockError::Timeout);
            }
            let mut pfd = libc::pollfd { fd: s.fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            if n == 1 {
                return match s.take_error()? {
                    None => Ok(s),
                    Some(e) => Err(SockError::from_io(e)),
                };
            }
        }
    }

    /// Wraps a connected descriptor the group got from io_uring (accept, FIXED_FD_INSTALL) and applies
    /// `opts`; an option the kernel refuses is logged, not fatal: the connection is already accepted.
    pub(crate) fn from_accepted(fd: OwnedFd, opts: &SockOptions) -> TcpSock {
        let s = TcpSock { fd };
        if let Err(e) = s.apply(opts) {
            tracing::warn!("accepted socket refused an option: {e}");
        }
        s
    }

    /// Wraps an already connected socket (e.g. from std) and makes it non-blocking.
    pub fn from_std(stream: std::net::TcpStream, opts: &SockOptions) -> io::Result<TcpSock> {
        stream.set_nonblocking(true)?;
        // SAFETY: into_raw_fd hands us sole ownership of the descriptor.
        let s = TcpSock { fd: unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) } };
        s.apply(opts)?;
        Ok(s)
    }

    /// Applies the TCP options; an option the kernel refuses is an error, so a misconfiguration is seen.
    pub fn apply(&self, o: &SockOptions) -> io::Result<()> {
        self.set_int(libc::IPPROTO_TCP, libc::TCP_NODELAY, o.nodelay as i32)?;
        if o.quickack {
            self.set_int(libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1)?;
        }
        if let Some(p) = o.priority {
            self.set_int(libc::SOL_SOCKET, libc::SO_PRIORITY, p as i32)?;
        }
        if let Some(b) = o.rcvbuf {
            self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, b.min(i32::MAX as usize) as i32)?;
        }
        if let Some(b) = o.sndbuf {
            self.set_int(libc::SOL_SOCKET, libc::SO_SNDBUF, b.min(i32::MAX as usize) as i32)?;
        }
        if let Some(m) = o.mark {
            self.set_int(libc::SOL_SOCKET, libc::SO_MARK, m as i32)?;
        }
        if o.zerocopy {
            // Not every socket family supports it; a refusal just leaves zero copy off.
            let _ = self.set_int(libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1);
        }
        Ok(())
    }

    /// Sets an integer socket option.
    pub fn set_int(&self, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
        // SAFETY: val is a valid c_int for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const val).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Reads an integer socket option.
    pub fn get_int(&self, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
        let mut val: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: val/len are valid for writes of the given size.
        let rc = unsafe { libc::getsockopt(self.fd.as_raw_fd(), level, name, (&raw mut val).cast(), &mut len) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(val) }
    }

    /// SO_INCOMING_NAPI_ID: the NIC rx queue (NAPI instance) the last packet arrived on; 0 when unknown.
    pub fn incoming_napi_id(&self) -> io::Result<u32> {
        self.get_int(libc::SOL_SOCKET, SO_INCOMING_NAPI_ID).map(|v| v as u32)
    }

    /// SO_INCOMING_CPU: the CPU that processed the last packet; `None` when the kernel has none yet.
    pub fn incoming_cpu(&self) -> io::Result<Option<u32>> {
        let v = self.get_int(libc::SOL_SOCKET, libc::SO_INCOMING_CPU)?;
        Ok(if v < 0 { None } else { Some(v as u32) })
    }

    /// Whether SO_ZEROCOPY is on.
    pub fn zerocopy_enabled(&self) -> bool {
        self.get_int(libc::SOL_SOCKET, libc::SO_ZEROCOPY).map(|v| v != 0).unwrap_or(false)
    }

    /// SO_ERROR: the pending error, cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let v = self.get_int(libc::SOL_SOCKET, libc::SO_ERROR)?;
        Ok(if v == 0 { None } else { Some(io::Error::from_raw_os_error(v)) })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        SockRef::from(self).peer_addr()?.as_socket().ok_or_else(|| io::Error::other("no inet peer"))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        SockRef::from(self).local_addr()?.as_socket().ok_or_else(|| io::Error::other("no inet addr"))
    }

    /// Shuts down the write side (sends FIN) so the peer sees EOF after the queued data.
    pub fn shutdown_write(&self) -> io::Result<()> {
        SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    /// Closes with SO_LINGER 0 so the peer gets a reset (for tests of reset handling).
    pub fn abort(self) {
        let _ = SockRef::from(&self).set_linger(Some(Duration::ZERO));
    }

    /// One readv. `Ok(n)` with n > 0; EOF, reset and would-block are errors. Interrupted calls are retried.
    pub fn readv(&self, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        let cnt = bufs.len().min(libc::UIO_MAXIOV as usize) as libc::c_int;
        loop {
            // SAFETY: IoSliceMut is ABI-compatible with iovec; the slices are valid for writes.
            let n = unsafe { libc::readv(self.fd.as_raw_fd(), bufs.as_mut_ptr().cast(), cnt) };
            if n > 0 {
                return Ok(n as usize);
            }
            if n == 0 {
                return if bufs.iter().all(|b| b.is_empty()) { Ok(0) } else { Err(SockError::Eof) };
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(SockError::from_io(e));
            }
        }
    }

    /// One sendmsg of `bufs` with `flags` (MSG_NOSIGNAL | MSG_DONTWAIT are always added). Returns bytes
    /// accepted.
    pub fn sendmsg(&self, bufs: &[IoSlice<'_>], flags: libc::c_int) -> SockResult<usize> {
        // SAFETY: IoSlice is ABI-compatible with iovec (guaranteed by std on Unix).
        let iovs = unsafe { std::slice::from_raw_parts(bufs.as_ptr().cast::<libc::iovec>(), bufs.len()) };
        self.sendmsg_iov(iovs, flags)
    }

    /// sendmsg over raw iovecs; the caller keeps the memory they point at valid for the call (and, with
    /// MSG_ZEROCOPY, until the kernel's notification).
    pub(crate) fn sendmsg_iov(&self, iovs: &[libc::iovec], flags: libc::c_int) -> SockResult<usize> {
        // SAFETY: msghdr is plain old data; zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iovs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iovs.len().min(libc::UIO_MAXIOV as usize) as _;
        loop {
            // SAFETY: msg references iovecs valid for reads for the duration of the call.
            let n =
                unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, flags | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(SockError::from_io(e));
            }
        }
    }

    /// Waits up to `timeout` for bytes (or EOF) to read, without consuming them: an acceptor calls it so
    /// placement can read the rx queue of the first data packet. Management path only.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n == 1) }
    }

    /// The raw descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<TcpSock> for OwnedFd {
    fn from(s: TcpSock) -> OwnedFd {
        s.fd
    }
}

impl AsFd for TcpSock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TcpSock {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

use socket2::SockRef;
