//! Options: per-socket TCP settings and per-group (backend) settings, settable from the command line and
//! printable, so every benchmark row and log line can say exactly what configuration produced it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which readiness mechanism a socket group uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `poll(2)` over an array of pollfds: the talk's first grouping, O(n) per wait.
    Poll,
    /// `epoll(7)`: the kernel keeps the set and returns only ready sockets.
    Epoll,
    /// io_uring: multishot receive into provided buffers, batched sends, fixed files, one enter per
    /// poll. Falls back to epoll (with a warning) where the kernel or a policy refuses io_uring.
    Uring,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "poll" => Ok(Backend::Poll),
            "epoll" => Ok(Backend::Epoll),
            "uring" | "io_uring" => Ok(Backend::Uring),
            other => Err(format!("unknown sock backend {other:?} (expected uring, epoll or poll)")),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::Uring => "uring",
        })
    }
}

/// TCP options applied to each socket when it is created, accepted or connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SockOptions {
    /// TCP_NODELAY: small commands must not wait for Nagle.
    pub nodelay: bool,
    /// TCP_QUICKACK after each receive: acknowledge at once instead of delaying.
    pub quickack: bool,
    /// SO_PRIORITY (the queueing discipline's band / VLAN priority).
    pub priority: Option<u32>,
    /// SO_RCVBUF in bytes; `None` keeps the kernel's autotuning.
    pub rcvbuf: Option<usize>,
    /// SO_SNDBUF in bytes; `None` keeps the kernel's autotuning.
    pub sndbuf: Option<usize>,
    /// SO_MARK, set before connect so the initiator can steer a group's sockets (needs CAP_NET_ADMIN).
    pub mark: Option<u32>,
    /// SO_ZEROCOPY, so sends at or above the group's threshold may use MSG_ZEROCOPY.
    pub zerocopy: bool,
}

impl Default for SockOptions {
    fn default() -> Self {
        SockOptions {
            nodelay: true,
            quickack: false,
            priority: None,
            rcvbuf: None,
            sndbuf: None,
            mark: None,
            zerocopy: true,
        }
    }
}

/// Default receive-pipe size per connection (bytes).
pub const DEFAULT_PIPE_SIZE: usize = 64 * 1024;
/// Default cut-over: reads at or above this go straight to the caller's buffer.
pub const DEFAULT_CUTOVER: usize = 64 * 1024;
/// Default zero-copy threshold: flushes of at least this many bytes use MSG_ZEROCOPY (the talk's 4 KiB).
pub const DEFAULT_ZEROCOPY_THRESHOLD: usize = 4 * 1024;

/// Default provided receive buffers per io_uring group.
pub const DEFAULT_URING_BUFS: u16 = 1024;
/// Default provided receive buffer size: 16 KiB (1024 of them: 16 MiB per reactor).
pub const DEFAULT_URING_BUF_SIZE: usize = 16 * 1024;

/// Settings of a group's io_uring ring (`[sock.uring]` in TOML).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UringOptions {
    /// Provided receive buffers per group (rounded up to a power of two, at most 16384).
    pub bufs: u16,
    /// Size of each provided receive buffer in bytes.
    pub buf_size: usize,
    /// Receive bundles (several buffers per completion) where the kernel has them.
    pub bundles: bool,
    /// Fixed-file table entries (sockets beyond it use plain descriptors); 0 turns it off.
    pub fixed_files: u32,
    /// An SQPOLL kernel thread with this idle time in ms (off by default: it costs a core).
    pub sqpoll: Option<u32>,
    /// NAPI busy polling registered on the ring, with this busy-poll timeout in µs (off by default; it
    /// only pays on real NICs, where a wait can spin on the rx queue instead of sleeping).
    pub napi_busy_poll_us: Option<u32>,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            bufs: DEFAULT_URING_BUFS,
            buf_size: DEFAULT_URING_BUF_SIZE,
            bundles: true,
            fixed_files: 4096,
            sqpoll: None,
            napi_busy_poll_us: None,
        }
    }
}

/// Settings of one socket group (one reactor's set of connections).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupOptions {
    /// Readiness backend.
    pub backend: Backend,
    /// Receive-pipe capacity per connection in bytes; 0 turns the pipe off (every read is direct).
    pub pipe_size: usize,
    /// Reads of at least this many bytes bypass the pipe and land in the caller's buffer.
    pub cutover: usize,
    /// Flushes of at least this many bytes use MSG_ZEROCOPY; `None` never does.
    pub zerocopy_threshold: Option<usize>,
    /// Most events one poll returns; the rest wait for the next poll (rotation keeps it fair).
    pub max_events: usize,
    /// Most iovecs one sendmsg gathers across queued requests.
    pub max_iovs: usize,
    /// Most write requests queued per socket (queued + awaiting completion).
    pub write_queue_depth: usize,
    /// Most idle pipe buffers the group keeps for reuse.
    pub pipe_pool_max: usize,
    /// io_uring settings (used when `backend` is `uring`).
    pub uring: UringOptions,
    /// TCP settings for sockets added to this group.
    pub sock: SockOptions,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            backend: Backend::Epoll,
            pipe_size: DEFAULT_PIPE_SIZE,
            cutover: DEFAULT_CUTOVER,
            zerocopy_threshold: Some(DEFAULT_ZEROCOPY_THRESHOLD),
            max_events: 64,
            max_iovs: 64,
            write_queue_depth: 512,
            pipe_pool_max: 256,
            uring: UringOptions::default(),
            sock: SockOptions::default(),
        }
    }
}

impl fmt::Display for GroupOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zc = match self.zerocopy_threshold {
            Some(t) if self.sock.zerocopy => t.to_string(),
            _ => "off".to_string(),
        };
        write!(
            f,
            "backend={} pipe={} cutover={} zerocopy={} max_events={} max_iovs={} wq_depth={} nodelay={} quickack={}",
            self.backend,
            self.pipe_size,
            self.cutover,
            zc,
            self.max_events,
            self.max_iovs,
            self.write_queue_depth,
            self.sock.nodelay,
            self.sock.quickack
        )?;
        if self.backend == Backend::Uring {
            let u = &self.uring;
            write!(f, " uring_bufs={}x{} bundles={}", u.bufs, u.buf_size, u.bundles)?;
            if let Some(i) = u.sqpoll {
                write!(f, " sqpoll={i}")?;
            }
            if let Some(us) = u.napi_busy_poll_us {
                write!(f, " napi_busy_poll_us={us}")?;
            }
            if u.fixed_files == 0 {
                write!(f, " fixed_files=off")?;
            }
        }
        if let Some(m) = self.sock.mark {
            write!(f, " mark={m}")?;
        }
        if let Some(p) = self.sock.priority {
            write!(f, " priority={p}")?;
        }
        Ok(())
    }
}
