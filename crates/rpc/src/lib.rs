//! The management RPC of ferrofabric: JSON-RPC 2.0 over a Unix socket, as SPDK's `rpc.py` speaks it.
//!
//! - [`protocol`]: requests, responses and errors, and the parser that turns any bytes into a request or
//!   a JSON-RPC error (never a panic);
//! - [`params`]: typed method parameters with errors that name the field;
//! - [`server`]: a listener on a management thread, bounded in request size, connections and time,
//!   handing each request to a [`server::Handler`];
//! - [`client`]: one connection, one call at a time (`ferrofabric rpc`).
//!
//! What the methods do is the handler's business (the target implements it): this crate knows no NVMe.

pub mod client;
pub mod params;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use protocol::{Request, RpcError};
pub use server::{Handler, RpcServer};
