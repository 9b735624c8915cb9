//! The RPC client: one connection to the target's socket, one call at a time.

use crate::protocol::RpcError;
use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens on the socket (no target, or another path).
    // The io::Error is part of the message, not a source: error chains would print it twice.
    #[error("cannot connect to {path}: {error} (is the target running, with --rpc-socket {path}?)")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The connection failed mid-call.
    #[error("rpc connection: {0}")]
    Io(io::Error),
    /// The answer is not a JSON-RPC response.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A connection to an RPC server.
pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`; calls wait at most `timeout` for their answer.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream =
            UnixStream::connect(path).map_err(|error| ClientError::Connect { path: path.to_path_buf(), error })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client { stream, buf: Vec::new(), next_id: 1 })
    }

    /// Calls `method` with `params` and returns its result.
    pub fn call(&mut self, method: &str, params: Option<Value>) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if let Some(p) = params {
            req["params"] = p;
        }
        let mut text = serde_json::to_vec(&req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        text.push(b'\n');
        self.stream.write_all(&text)?;
        let resp = self.read_value()?;
        if resp.get("id") != Some(&json!(id)) {
            return Err(ClientError::Protocol(format!("answer to another request: {resp}")));
        }
        if let Some(e) = resp.get("error") {
            let e: RpcError = serde_json::from_value(e.clone()).map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Err(ClientError::Rpc(e));
        }
        resp.get("result").cloned().ok_or_else(|| ClientError::Protocol(format!("no result: {resp}")))
    }

    fn read_value(&mut self) -> Result<Value, ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Some(Err(e)) if !e.is_eof() => return Err(ClientError::Protocol(e.to_string())),
                _ => {}
            }
            match self.stream.read(&mut chunk)? {
                0 => return Err(ClientError::Protocol("the server closed the connection".into())),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
