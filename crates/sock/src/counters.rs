//! Counters that prove each trick did what it claims: syscalls by kind, where received bytes went, and
//! what zero copy really did. Plain integers: one reactor thread owns them, no atomics on the I/O path.

use serde::Serialize;
use std::ops::AddAssign;

/// Per-socket counters (a group also keeps the sum over its closed sockets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SockCounters {
    /// readv calls that filled the pipe (including the caller's bytes gathered in the same call).
    pub readv_pipe: u64,
    /// readv calls straight into the caller's buffers (cut-over path).
    pub readv_direct: u64,
    /// readv calls that found nothing (EAGAIN).
    pub readv_wouldblock: u64,
    /// Reads answered WouldBlock with no syscall: the last read came back short (the socket was
    /// drained) and no readiness event arrived since.
    pub readv_skipped: u64,
    /// Bytes the kernel wrote into the pipe.
    pub bytes_into_pipe: u64,
    /// Bytes the kernel wrote straight into caller buffers (both paths).
    pub bytes_direct: u64,
    /// Bytes copied from the pipe (io_uring: the provided buffers) into caller buffers.
    pub bytes_copied: u64,
    /// Bytes decoded where they lay in the pipe or, on io_uring, in the provided buffers (with
    /// user-space TLS: in the opened plaintext) ([`crate::SockGroup::recv_in_place`]), never copied.
    pub bytes_parsed_in_place: u64,
    /// sendmsg calls (on io_uring: sendmsg SQEs, counted in `uring_sends` too).
    pub sendmsg: u64,
    /// sendmsg calls that returned EAGAIN or sent less than offered.
    pub sendmsg_partial: u64,
    /// Bytes the kernel accepted.
    pub bytes_sent: u64,
    /// sendmsg calls with MSG_ZEROCOPY.
    pub zc_sends: u64,
    /// Bytes offered with MSG_ZEROCOPY.
    pub zc_bytes: u64,
    /// Zero-copy notifications read from the error queue.
    pub zc_notifications: u64,
    /// Notifications that said the kernel copied anyway.
    pub zc_copied: u64,
    /// Sockets that switched zero copy off because the kernel copied.
    pub zc_fallbacks: u64,
    /// MSG_ZEROCOPY sends refused with ENOBUFS and retried as copies.
    pub zc_enobufs: u64,
    /// recvmsg(MSG_ERRQUEUE) calls.
    pub errqueue_reads: u64,
    /// Write requests completed.
    pub writes_completed: u64,
    /// io_uring: sendmsg / sendmsg_zc SQEs (no syscall of their own: they ride on an enter).
    pub uring_sends: u64,
    /// io_uring: receive completions carrying data (each may hold several buffers with bundles).
    pub uring_recv_cqes: u64,
    /// io_uring: bytes the kernel wrote into provided buffers (then copied once, see `bytes_copied`).
    pub bytes_into_bufs: u64,
    /// User-space TLS: records opened (counted from their headers).
    pub tls_records_opened: u64,
    /// User-space TLS: records sealed (counted from their headers).
    pub tls_records_sealed: u64,
    /// User-space TLS: seal calls, each one ciphertext buffer and one queued write for all the
    /// requests pending at a flush (fewer than the caller's writes when they were batched).
    pub tls_seals: u64,
    /// User-space TLS: ciphertext bytes received and opened.
    pub tls_cipher_bytes_in: u64,
    /// User-space TLS: ciphertext bytes sealed for sending.
    pub tls_cipher_bytes_out: u64,
    /// User-space TLS: plaintext bytes opened.
    pub tls_plain_bytes_in: u64,
    /// User-space TLS: plaintext bytes sealed.
    pub tls_plain_bytes_out: u64,
}

impl AddAssign for SockCounters {
    fn add_assign(&mut self, o: Self) {
        self.readv_pipe += o.readv_pipe;
        self.readv_direct += o.readv_direct;
        self.readv_wouldblock += o.readv_wouldblock;
        self.readv_skipped += o.readv_skipped;
        self.bytes_into_pipe += o.bytes_into_pipe;
        self.bytes_direct += o.bytes_direct;
        self.bytes_copied += o.bytes_copied;
        self.bytes_parsed_in_place += o.bytes_parsed_in_place;
        self.sendmsg += o.sendmsg;
        self.sendmsg_partial += o.sendmsg_partial;
        self.bytes_sent += o.bytes_sent;
        self.zc_sends += o.zc_sends;
        self.zc_bytes += o.zc_bytes;
        self.zc_notifications += o.zc_notifications;
        self.zc_copied += o.zc_copied;
        self.zc_fallbacks += o.zc_fallbacks;
        self.zc_enobufs += o.zc_enobufs;
        self.errqueue_reads += o.errqueue_reads;
        self.writes_completed += o.writes_completed;
        self.uring_sends += o.uring_sends;
        self.uring_recv_cqes += o.uring_recv_cqes;
        self.bytes_into_bufs += o.bytes_into_bufs;
        self.tls_records_opened += o.tls_records_opened;
        self.tls_records_sealed += o.tls_records_sealed;
        self.tls_seals += o.tls_seals;
        self.tls_cipher_bytes_in += o.tls_cipher_bytes_in;
        self.tls_cipher_bytes_out += o.tls_cipher_bytes_out;
        self.tls_plain_bytes_in += o.tls_plain_bytes_in;
        self.tls_plain_bytes_out += o.tls_plain_bytes_out;
    }
}

impl SockCounters {
    /// All receive syscalls.
    pub fn recv_syscalls(&self) -> u64 {
        self.readv_pipe + self.readv_direct + self.readv_wouldblock
    }

    /// All syscalls this socket made on the data path.
    pub fn syscalls(&self) -> u64 {
        self.recv_syscalls() + (self.sendmsg - self.uring_sends) + self.errqueue_reads
    }
}

/// Per-group counters: the wait syscalls and their yield, plus the sum of all socket counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounters {
    /// poll/epoll_wait calls; with io_uring, polls (each makes at most one io_uring_enter).
    pub waits: u64,
    /// Waits that returned no event.
    pub empty_waits: u64,
    /// Events returned by the kernel over all waits.
    pub kernel_events: u64,
    /// Readable events served from the pipe without a wait syscall.
    pub pipe_events: u64,
    /// epoll_ctl calls (interest changes); with io_uring, file-table registrations.
    pub ctl_calls: u64,
    /// io_uring_enter calls (submit and wait together; a busy poll with nothing to do makes none).
    pub uring_enters: u64,
    /// SQEs queued on the ring.
    pub uring_sqes: u64,
    /// CQEs reaped from the ring.
    pub uring_cqes: u64,
    /// Provided buffers handed back to the buffer ring.
    pub uring_bufs_recycled: u64,
    /// Multishot receives armed again after they ended (ENOBUFS, overflow).
    pub uring_rearms: u64,
    /// Multishot receives ended because the buffer ring ran dry (ENOBUFS, or the kernel stopping at an
    /// empty ring); they are armed again once buffers are back, and no data is lost.
    pub uring_enobufs: u64,
    /// Sockets installed in the ring's fixed-file table.
    pub uring_fixed_files: u64,
    /// Connections accepted by a multishot accept straight into the fixed-file table (no register call).
    pub accepts_multishot: u64,
    /// Connections accepted with a regular descriptor: accept(2) on readiness (poll/epoll), or a
    /// multishot accept without direct slots (uring with the accept range nearly full or unavailable).
    pub accepts_plain: u64,
    /// Multishot accepts armed again after they ended (error, cancellation, mode switch).
    pub accept_rearms: u64,
    /// Failed accepts (aborted handshakes, descriptor limits) and failed fd installs; the connection
    /// stays in the backlog or its slot is retried, except where the counter's doc in group.rs says.
    pub accept_errors: u64,
    /// Sum of per-socket counters, live and closed.
    pub sock: SockCounters,
}

impl GroupCounters {
    /// Mean kernel events per wait.
    pub fn events_per_wait(&self) -> f64 {
        if self.waits == 0 { 0.0 } else { self.kernel_events as f64 / self.waits as f64 }
    }

    /// All syscalls of the group: waits, interest changes, io_uring_enter calls and socket calls.
    pub fn syscalls(&self) -> u64 {
        // A group runs one backend: its waits are syscalls on poll/epoll; on io_uring the enters are.
        let waits = if self.uring_enters > 0 { self.uring_enters } else { self.waits };
        waits + self.ctl_calls + self.sock.syscalls()
    }

    /// Mean SQEs submitted per io_uring_enter.
    pub fn sqes_per_enter(&self) -> f64 {
        if self.uring_enters == 0 { 0.0 } else { self.uring_sqes as f64 / self.uring_enters as f64 }
    }

    /// Mean CQEs reaped per io_uring_enter.
    pub fn cqes_per_enter(&self) -> f64 {
        if self.uring_enters == 0 { 0.0 } else { self.uring_cqes as f64 / self.uring_enters as f64 }
    }
}
