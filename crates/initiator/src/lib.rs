//! The ferrofabric initiator: the NVMe/TCP host (and, in [`iscsi`], the iSCSI host) without an async
//! runtime. The transport state of every connection lives in the sans-IO [`ff_nvme_tcp::host`] core; this
//! crate moves its bytes over [`ff_sock`] socket groups.
//!
//! - [`options`]: [`HostOptions`] (host NQN/ID, digests, KATO, queues, socket options, timeouts);
//! - [`auth`]: DH-HMAC-CHAP credentials and the per-queue authentication after Connect;
//! - [`buf`]: [`Buf`], the I/O buffer data lands in and is sent from without a copy;
//! - [`link`]: one connection on a socket group (pumping the core), and the blocking driver used for
//!   connection setup and the admin queue;
//! - [`admin`]: [`Controller`]: association setup, admin commands, keep-alive, aborts, shutdown, discovery;
//! - [`io`]: [`IoQueue`] and [`IoGroup`]: I/O queues driven by a reactor thread, timeouts and reconnects;
//! - [`identify`]: Identify and discovery log parsing;
//! - [`iscsi`]: the iSCSI host: a sans-IO session core (login, SCSI commands, R2T, discovery) and its
//!   socket driver;
//! - [`error`]: [`Error`] (setup/admin) and [`IoError`] (one I/O command).

pub mod admin;
pub mod auth;
pub mod buf;
pub mod error;
pub mod identify;
pub mod io;
pub mod iscsi;
pub mod link;
pub mod options;
pub mod tls;

pub use admin::{AsyncEvent, Controller, discover};
pub use auth::DhchapOptions;
pub use buf::Buf;
pub use error::{AuthCause, Error, IoError};
pub use identify::{DiscoveryEntry, IdentifyController, IdentifyNamespace};
pub use io::{IoCompletion, IoGroup, IoQueue, QueueId};
pub use options::HostOptions;
pub use tls::TlsOptions;

/// The well-known discovery subsystem NQN.
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
