//! The ferrofabric sock layer: non-blocking TCP sockets grouped per reactor thread, with the tricks that
//! make storage protocols fast (the SPDK talk "TCP Networking for Storage Software Developers"):
//!
//! - [`group`]: a socket group per thread, its API and what every backend shares, with one engine per
//!   backend: readiness (`poll`, `epoll`) and io_uring;
//! - `ring`: the io_uring backend's ring, provided-buffer ring and fixed-file table;
//! - `pipe`: a per-connection receive pipe with a cut-over to direct receive;
//! - `write`: queued scatter-gather writes flushed with one sendmsg, completed in order;
//! - [`zerocopy`]: MSG_ZEROCOPY with error-queue notifications and the automatic copied fallback;
//! - [`placement`]: connections placed by NAPI id or incoming CPU;
//! - [`counters`]: every syscall and copied byte, so tests and benchmarks can prove each trick;
//! - [`mem`]: the owner of anonymous mappings the kernel reads or writes (buffer rings, I/O arenas).
//! - [`tls`]: TLS on a socket after its handshake: kernel TLS, or user-space records through the group.
//!
//! The layer owns every data-path syscall; protocol code above it never touches a file descriptor.

pub mod counters;
pub mod error;
pub mod group;
pub mod mem;
pub mod options;
mod pipe;
pub mod placement;
mod poller;
mod ring;
pub mod socket;
pub mod tls;
mod write;
pub mod zerocopy;

pub use counters::{GroupCounters, SockCounters};
pub use error::{SockError, SockResult};
pub use group::{Accepted, Event, ForeignCounts, ListenerId, SockGroup, SockId, Waker};
pub use options::{Backend, GroupOptions, SockOptions, UringOptions};
pub use placement::{Placement, PlacementMode, Placer};
pub use ring::Setup as UringSetup;
pub use socket::{Listener, TcpSock};
pub use write::{HEAD_MAX, StableBuf, TAIL_MAX, WriteReq};
