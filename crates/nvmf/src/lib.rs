//! Transport-independent NVMe over Fabrics controller core, sans-IO.
//!
//! The transport decodes capsules and drives this crate; block I/O runs on
//! the caller's backend from the [`IoCmd`]s produced here. No sockets,
//! threads or I/O: commands in, responses and actions out.
//!
//! - [`auth`]: DH-HMAC-CHAP in-band authentication of each queue.
//! - [`config`]: subsystems, namespaces, hosts and [`Limits`] (TOML-ready).
//! - [`registry`]: the shared [`Target`]: Connect validation, dynamic
//!   controller IDs, live controllers, namespace change notices.
//! - [`controller`]: per-controller properties and admin commands.
//! - [`io`]: NVM I/O validation into [`IoCmd`] and the [`TargetIoQueue`] handle.
//! - [`discovery`]: [`Port`]s and the discovery log page layout.
//! - [`identify`] / [`logpage`]: Identify and log page data layouts.
//! - [`response`]: completions, status helpers and [`Response`].
//!
//! A transport connection uses it like this: the first capsule on a queue
//! is a Connect, passed to [`Target::connect`]; queue 0 yields a
//! [`TargetController`] (admin commands, Property Get/Set, keep-alive, AERs),
//! other queues a [`TargetIoQueue`] (I/O validation). Dropping either is the
//! disconnect.

pub mod auth;
mod bytes;
pub mod config;
pub mod controller;
pub mod discovery;
pub mod identify;
pub mod io;
pub mod logpage;
pub mod registry;
pub mod response;

pub use auth::{AuthReply, QueueAuth, SubsysAuth};
pub use config::{
    ConfigError, DISCOVERY_NQN, DhchapHost, Limits, Namespace, NamespaceConfig, SubsystemConfig, TargetConfig,
};
pub use controller::{AbortRequest, AdminOutcome, TargetController};
pub use discovery::{AddrFamily, Port, SecureChannel};
pub use io::{DataLocation, DsmRange, IoCmd, NamespaceTable, TargetIoQueue, parse_dsm_ranges, validate};
pub use registry::{ConnectData, Connected, ControllerInfo, QueueInfo, Target};
pub use response::{CmdError, Response};
