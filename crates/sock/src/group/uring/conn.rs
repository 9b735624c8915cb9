//! A connection's io_uring state (received provided buffers, the send in flight with its msghdr) and
//! the zombie a closed connection leaves while the kernel still holds its requests.

use crate::error::SockError;
use crate::write::WriteQueue;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

/// Bytes of one provided buffer not yet read.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxBuf {
    pub(super) bid: u16,
    pub(super) off: usize,
    pub(super) len: usize,
}

/// A send SQE in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) total: usize,
    pub(super) zc_id: Option<u32>,
}

/// A connection's io_uring state: its received buffers and its requests in flight. The msghdr and the
/// iovec array a sendmsg SQE points at live here, on the heap, untouched while `send` is set.
pub(super) struct UConn {
    pub(super) fd: RawFd,
    pub(super) fixed: Option<u32>,
    pub(super) rxq: VecDeque<RxBuf>,
    pub(super) rx_len: usize,
    pub(super) eof: bool,
    pub(super) rx_err: Option<i32>,
    pub(super) recv_armed: bool,
    pub(super) starved: bool,
    pub(super) in_rx_ready: bool,
    /// Poll round of the last receive completion (a readable report without one is a "pipe event").
    pub(super) cqe_round: u64,
    pub(super) send: Option<InFlight>,
    pub(super) pollout: bool,
    pub(super) zc_pending: u32,
    pub(super) msg: Box<libc::msghdr>,
    pub(super) iovs: Vec<libc::iovec>,
}

impl UConn {
    pub(super) fn new(fd: RawFd) -> UConn {
        UConn {
            fd,
            fixed: None,
            rxq: VecDeque::new(),
            rx_len: 0,
            eof: false,
            rx_err: None,
            recv_armed: false,
            starved: false,
            in_rx_ready: false,
            cqe_round: 0,
            send: None,
            pollout: false,
            zc_pending: 0,
            msg: Box::new(empty_msghdr()),
            iovs: Vec::new(),
        }
    }

    /// What SQEs for this connection act on.
    pub(super) fn target(&self) -> crate::ring::Target {
        match self.fixed {
            Some(slot) => crate::ring::Target::Fixed(slot),
            None => crate::ring::Target::Fd(self.fd),
        }
    }

    /// Requests of this connection the kernel still holds.
    pub(super) fn busy_sending(&self) -> bool {
        self.send.is_some() || self.pollout || self.zc_pending > 0
    }

    pub(super) fn busy(&self) -> bool {
        self.recv_armed || self.send.is_some() || self.pollout || self.zc_pending > 0
    }

    pub(super) fn has_input(&self) -> bool {
        self.rx_len > 0 || self.eof || self.rx_err.is_some()
    }

    /// Marks `n` bytes of the oldest received buffer read; returns its id once it is used up, for the
    /// caller to give back to the ring.
    pub(super) fn consume_front(&mut self, n: usize) -> Option<u16> {
        let front = self.rxq.front_mut()?;
        front.off += n;
        front.len -= n;
        self.rx_len -= n;
        if front.len > 0 {
            return None;
        }
        self.rxq.pop_front().map(|b| b.bid)
    }

    /// What a read gets with nothing buffered: the receive error, the end of stream, or WouldBlock.
    pub(super) fn nothing_buffered(&self) -> SockError {
        match self.rx_err {
            Some(e) => SockError::from_io(io::Error::from_raw_os_error(e)),
            None if self.eof => SockError::Eof,
            None => SockError::WouldBlock,
        }
    }
}

/// A msghdr with nothing in it (every field spelled out: no zeroed-memory trick needed).
pub(crate) fn empty_msghdr() -> libc::msghdr {
    libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    }
}

/// Builds an SQE on the socket's fixed-file slot when it has one, else on its descriptor.
macro_rules! on_fd {
    ($u:expr, |$f:ident| $e:expr) => {
        match $u.fixed {
            Some(slot) => {
                let $f = types::Fixed(slot);
                $e
            }
            None => {
                let $f = types::Fd($u.fd);
                $e
            }
        }
    };
}

/// A closed socket whose requests are still in the kernel: its write requests (and the memory its
/// SQEs point at) are kept until the last completion, then handed back with [`SockError::Closed`].
pub(super) struct Zombie<B> {
    pub(super) idx: u32,
    pub(super) generation: u32,
    pub(super) wq: WriteQueue<B>,
    pub(super) u: UConn,
}
