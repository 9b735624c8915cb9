//! One TCP socket: creation (non-blocking from the start), listen/accept/connect, the TCP options of the
//! talk, and the raw readv/sendmsg calls with would-block, EOF and reset as typed results.
//!
//! Groups own the syscalls on the data path; this module only wraps them so every call site is one place.

use crate::error::{SockError, SockResult};
use crate::options::SockOptions;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

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
        use rustix::io::Errno;
        let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
        let fd = match rustix::net::accept_with(&self.sock, flags) {
            Ok(fd) => fd,
            Err(Errno::AGAIN) => return Ok(None),
            // The peer gave up before we accepted it: not the listener's error.
            Err(Errno::CONNABORTED | Errno::PROTO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let sock = TcpSock { fd };
        let peer = sock.peer_addr()?;
        sock.apply(opts)?;
        Ok(Some((sock, peer)))
    }
}

/// Waits up to `timeout` until some of `fds` are readable (a listener with a pending connection, or a
/// socket with data), returning their indices. Management path only (acceptors), one poll(2).
pub fn wait_readable_any(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<usize>> {
    use rustix::event::{PollFd, PollFlags};
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(fd, PollFlags::IN)).collect();
    match rustix::event::poll(&mut pfds, Some(&timespec(timeout))) {
        Ok(_) => Ok(pfds.iter().enumerate().filter(|(_, p)| !p.revents().is_empty()).map(|(i, _)| i).collect()),
        Err(rustix::io::Errno::INTR) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// A poll timeout.
fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: i64::from(d.subsec_nanos()) }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
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
        TcpSock::apply_to(&SockRef::from(&sock), opts)?;
        // connect_timeout makes the socket blocking again when it returns: set it back.
        match sock.connect_timeout(&addr.into(), timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(SockError::Timeout),
            Err(e) => return Err(SockError::from_io(e)),
        }
        sock.set_nonblocking(true)?;
        Ok(TcpSock { fd: sock.into() })
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
        let s = TcpSock { fd: OwnedFd::from(stream) };
        s.apply(opts)?;
        Ok(s)
    }

    /// Applies the TCP options; an option the kernel refuses is an error, so a misconfiguration is seen.
    pub fn apply(&self, o: &SockOptions) -> io::Result<()> {
        Self::apply_to(&SockRef::from(self), o)
    }

    fn apply_to(s: &SockRef<'_>, o: &SockOptions) -> io::Result<()> {
        s.set_tcp_nodelay(o.nodelay)?;
        if o.quickack {
            s.set_tcp_quickack(true)?;
        }
        if let Some(p) = o.priority {
            s.set_priority(p)?;
        }
        if let Some(b) = o.rcvbuf {
            s.set_recv_buffer_size(b)?;
        }
        if let Some(b) = o.sndbuf {
            s.set_send_buffer_size(b)?;
        }
        if let Some(m) = o.mark {
            s.set_mark(m)?;
        }
        if o.zerocopy {
            // Not every socket family supports it; a refusal just leaves zero copy off. socket2 and
            // rustix have no typed SO_ZEROCOPY.
            let _ = set_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1);
        }
        Ok(())
    }

    /// Sets an integer socket option (for the options no crate types).
    pub fn set_int(&self, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
        set_int(self.fd.as_raw_fd(), level, name, val)
    }

    /// Reads an integer socket option (for the options no crate types).
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
        SockRef::from(self).take_error()
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
        let cnt = bufs.len().min(libc::UIO_MAXIOV as usize);
        let bufs = &mut bufs[..cnt];
        loop {
            match rustix::io::readv(&self.fd, bufs) {
                Ok(0) => return if bufs.iter().all(|b| b.is_empty()) { Ok(0) } else { Err(SockError::Eof) },
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(SockError::from_io(e.into())),
            }
        }
    }

    /// One sendmsg of `bufs` with `flags` (e.g. `libc::MSG_ZEROCOPY`; MSG_NOSIGNAL | MSG_DONTWAIT are
    /// always added). Returns bytes accepted. Interrupted calls are retried. With MSG_ZEROCOPY the
    /// caller keeps the memory untouched until the kernel's notification.
    pub fn sendmsg(&self, bufs: &[IoSlice<'_>], flags: libc::c_int) -> SockResult<usize> {
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        let cnt = bufs.len().min(libc::UIO_MAXIOV as usize);
        // rustix has no MSG_ZEROCOPY flag: its flag type keeps the bits it does not name.
        let flags = SendFlags::from_bits_retain(flags as u32) | SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        loop {
            match rustix::net::sendmsg(&self.fd, &bufs[..cnt], &mut SendAncillaryBuffer::default(), flags) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(SockError::from_io(e.into())),
            }
        }
    }

    /// Waits up to `timeout` for bytes (or EOF) to read, without consuming them: an acceptor calls it so
    /// placement can read the rx queue of the first data packet. Management path only.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags};
        let mut pfd = [PollFd::new(&self.fd, PollFlags::IN)];
        Ok(rustix::event::poll(&mut pfd, Some(&timespec(timeout)))? == 1)
    }

    /// Copies the first bytes waiting to be read into `buf` without consuming them (0: none yet, or
    /// EOF). Management path only: an acceptor looks at a connection's first byte to say why it refuses
    /// it (a TLS ClientHello on a plain-text listener).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::net::RecvFlags;
        match rustix::net::recv(&self.fd, buf, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((n, _)) => Ok(n),
            Err(rustix::io::Errno::AGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
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

/// setsockopt of an int: the options socket2 and rustix do not type (SO_ZEROCOPY, TCP_QUICKACK on a
/// raw descriptor, any caller-chosen one).
fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: val is a valid c_int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, (&raw const val).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
