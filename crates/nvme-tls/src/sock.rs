//! The handshake driven over a non-blocking socket, bounded by a deadline: records are read exactly
//! (header, then its body) so the socket keeps every byte after the peer's last handshake record.

use std::io::{IoSlice, IoSliceMut};
use std::time::Instant;

use ff_sock::{SockError, TcpSock};

use crate::engine::{self, Handshake, Progress, RECORD_HEADER};
use crate::{ClientPsk, Established, PskLookup, TlsError};

/// Blocking (deadline-bounded, poll via wait_readable) server handshake on a freshly accepted
/// non-blocking socket.
pub fn accept(sock: &TcpSock, lookup: &PskLookup, deadline: Instant) -> Result<Established, TlsError> {
    drive(sock, Handshake::server(lookup)?, deadline)
}

/// Blocking (deadline-bounded) client handshake on a connected non-blocking socket.
pub fn connect(sock: &TcpSock, psk: &ClientPsk, deadline: Instant) -> Result<Established, TlsError> {
    drive(sock, Handshake::client(psk)?, deadline)
}

fn drive(sock: &TcpSock, mut hs: Handshake, deadline: Instant) -> Result<Established, TlsError> {
    let mut first = true;
    loop {
        let step = hs.step();
        let out = hs.take_output();
        if !out.is_empty() {
            let sent = send_all(sock, &out, deadline);
            // On a failed step the output is an alert: sending it is best effort.
            if step.is_ok() {
                sent?;
            }
        }
        match step? {
            Progress::Done(est) => {
                if !hs.unread().is_empty() {
                    // Cannot happen with exact record reads; refuse rather than lose bytes.
                    return Err(TlsError::Handshake("bytes after the handshake were consumed".into()));
                }
                return Ok(est);
            }
            Progress::NeedInput => {
                let mut hdr = [0u8; RECORD_HEADER];
                read_exact(sock, &mut hdr, deadline)?;
                if first {
                    engine::check_first(hs.is_server(), &hdr)?;
                    first = false;
                }
                let len = engine::record_body_len(&hdr)?;
                let mut rec = vec![0u8; RECORD_HEADER + len];
                rec[..RECORD_HEADER].copy_from_slice(&hdr);
                read_exact(sock, &mut rec[RECORD_HEADER..], deadline)?;
                hs.feed(&rec);
            }
        }
    }
}

fn sock_err(e: SockError) -> TlsError {
    match e {
        SockError::Eof | SockError::Reset | SockError::Closed => TlsError::Closed,
        SockError::Timeout => TlsError::Timeout,
        SockError::Io(e) => TlsError::Io(e),
        e => TlsError::Io(std::io::Error::other(e.to_string())),
    }
}

fn remaining(deadline: Instant) -> Result<std::time::Duration, TlsError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(TlsError::Timeout) } else { Ok(left) }
}

fn read_exact(sock: &TcpSock, buf: &mut [u8], deadline: Instant) -> Result<(), TlsError> {
    let mut got = 0;
    while got < buf.len() {
        match sock.readv(&mut [IoSliceMut::new(&mut buf[got..])]) {
            Ok(n) => got += n,
            Err(SockError::WouldBlock) => {
                sock.wait_readable(remaining(deadline)?)?;
            }
            Err(e) => return Err(sock_err(e)),
        }
    }
    Ok(())
}

fn send_all(sock: &TcpSock, mut buf: &[u8], deadline: Instant) -> Result<(), TlsError> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    while !buf.is_empty() {
        match sock.sendmsg(&[IoSlice::new(buf)], 0) {
            Ok(n) => buf = &buf[n..],
            Err(SockError::WouldBlock) => {
                let left = remaining(deadline)?;
                let ts = Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ };
                let mut pfd = [PollFd::new(sock, PollFlags::OUT)];
                rustix::event::poll(&mut pfd, Some(&ts)).map_err(|e| TlsError::Io(e.into()))?;
            }
            Err(e) => return Err(sock_err(e)),
        }
    }
    Ok(())
}
