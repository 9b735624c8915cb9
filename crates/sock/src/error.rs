//! Typed socket errors: would-block, EOF and resets are values a reactor branches on, not strings.

use std::io;

/// What a socket operation can end in besides success.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// Nothing to read or no room to write now; try again after the next poll.
    #[error("operation would block")]
    WouldBlock,
    /// The peer closed its sending side (orderly shutdown); no more bytes will arrive.
    #[error("connection closed by peer")]
    Eof,
    /// The peer reset the connection (ECONNRESET or EPIPE).
    #[error("connection reset by peer")]
    Reset,
    /// A connect did not finish within its timeout.
    #[error("timed out")]
    Timeout,
    /// The socket was closed locally, or the id names no socket of this group.
    #[error("socket closed")]
    Closed,
    /// The socket's write queue is full; the caller bounds its outstanding requests.
    #[error("write queue full")]
    QueueFull,
    /// Any other operating-system error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl SockError {
    /// Classifies an `io::Error` from a socket syscall.
    pub fn from_io(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EAGAIN) => SockError::WouldBlock,
            Some(libc::ECONNRESET) | Some(libc::EPIPE) => SockError::Reset,
            Some(libc::ETIMEDOUT) => SockError::Timeout,
            _ => SockError::Io(e),
        }
    }

    /// The same error again (an `io::Error` keeps its OS code, else its kind and message), for a
    /// socket that reports one failure both as an event and to its reader.
    pub fn duplicate(&self) -> SockError {
        match self {
            SockError::WouldBlock => SockError::WouldBlock,
            SockError::Eof => SockError::Eof,
            SockError::Reset => SockError::Reset,
            SockError::Timeout => SockError::Timeout,
            SockError::Closed => SockError::Closed,
            SockError::QueueFull => SockError::QueueFull,
            SockError::Io(e) => SockError::Io(match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
        }
    }

    /// True when the connection can no longer carry data.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SockError::WouldBlock | SockError::QueueFull)
    }
}

/// Result alias for sock-layer operations.
pub type SockResult<T> = Result<T, SockError>;
