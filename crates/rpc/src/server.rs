//! The RPC listener: a Unix socket (mode 0600) served by a management thread, never by a reactor. Each
//! connection gets a thread of its own (at most [`ServerOptions::max_connections`] at once) that reads
//! JSON values back to back (one per request, as `rpc.py` sends them, newline-separated or not), answers
//! each on the same connection, and gives up on a request larger than
//! [`ServerOptions::max_request`] or a peer silent for [`ServerOptions::idle_timeout`].

use crate::protocol::{self, Incoming, RpcError, code};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What answers requests: the target implements it. Called from RPC threads, one request at a time per
/// connection; it reaches reactors only through their inboxes.
pub trait Handler: Send + Sync + 'static {
    /// Runs `method` with `params`, returning its result or an error that names what was wrong.
    fn call(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError>;
}

/// Limits of the server.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// Largest request in bytes.
    pub max_request: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { max_request: 1 << 20, idle_timeout: Duration::from_secs(60), max_connections: 16 }
    }
}

/// A running RPC server; dropping it stops it and removes the socket file.
pub struct RpcServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RpcServer {
    /// Listens on `path` with default limits. A stale socket file (nobody listening) is replaced; a
    /// live one is an error (another process serves RPC there).
    pub fn bind(path: &Path, handler: Arc<dyn Handler>) -> io::Result<RpcServer> {
        Self::bind_with(path, handler, ServerOptions::default())
    }

    /// [`RpcServer::bind`] with `opts`.
    pub fn bind_with(path: &Path, handler: Arc<dyn Handler>, opts: ServerOptions) -> io::Result<RpcServer> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by another process", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // Management is for the operator alone.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread =
            std::thread::Builder::new().name("ff-rpc".into()).spawn(move || accept_loop(listener, handler, opts, s))?;
        Ok(RpcServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting (connections being served finish their request) and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: UnixListener, handler: Arc<dyn Handler>, opts: ServerOptions, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("rpc: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.load(Ordering::Acquire) >= opts.max_connections {
            tracing::warn!("rpc: {} connections already, refusing one more", opts.max_connections);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (h, a) = (Arc::clone(&handler), Arc::clone(&active));
        let spawned = std::thread::Builder::new().name("ff-rpc-conn".into()).spawn(move || {
            if let Err(e) = serve(stream, h.as_ref(), &opts) {
                tracing::debug!("rpc: connection ended: {e}");
            }
            a.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            tracing::warn!("rpc: no thread for a connection: {e}");
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Serves one connection until EOF, an error, an oversized request or the idle timeout.
fn serve(mut stream: UnixStream, handler: &dyn Handler, opts: &ServerOptions) -> io::Result<()> {
    stream.set_read_timeout(Some(opts.idle_timeout))?;
    stream.set_write_timeout(Some(opts.idle_timeout))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Answer every complete value already buffered.
        loop {
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    buf.drain(..used);
                    if let Some(out) = answer(handler, v) {
                        let mut text = serde_json::to_vec(&out).unwrap_or_default();
                        text.push(b'\n');
                        stream.write_all(&text)?;
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    // Not JSON: say so, then close (the stream cannot be resynchronised).
                    let out = protocol::response(
                        Value::Null,
                        Err(RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"))),
                    );
                    let _ = stream.write_all(&[serde_json::to_vec(&out).unwrap_or_default(), b"\n".to_vec()].concat());
                    return Ok(());
                }
                None => {
                    buf.clear();
                    break;
                }
            }
        }
        if buf.len() > opts.max_request {
            let e = RpcError::new(code::INVALID_REQUEST, format!("request larger than {} bytes", opts.max_request));
            let out = protocol::response(Value::Null, Err(e));
            let _ = stream.write_all(&[serde_json::to_vec(&out).unwrap_or_default(), b"\n".to_vec()].concat());
            return Ok(());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The response to one message (`None`: notifications only).
pub fn answer(handler: &dyn Handler, v: Value) -> Option<Value> {
    match protocol::parse(v) {
        Incoming::Single(r) => answer_one(handler, r),
        Incoming::Batch(items) => {
            let out: Vec<Value> = items.into_iter().filter_map(|r| answer_one(handler, r)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

fn answer_one(handler: &dyn Handler, r: Result<protocol::Request, (Value, RpcError)>) -> Option<Value> {
    match r {
        Err((id, e)) => Some(protocol::response(id, Err(e))),
        Ok(req) => {
            // A handler bug must not take the management thread down with it.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.call(&req.method, req.params)))
                    .unwrap_or_else(|_| {
                        Err(RpcError::new(code::INTERNAL_ERROR, format!("{} failed internally", req.method)))
                    });
            if let Err(e) = &result {
                tracing::info!(method = %req.method, code = e.code, "rpc: {}", e.message);
            }
            req.id.map(|id| protocol::response(id, result))
        }
    }
}
