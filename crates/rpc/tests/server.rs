//! The RPC server against real Unix-socket clients: calls, errors that name the field, malformed
//! input, oversized requests, pipelined and batched requests, notifications, a panicking handler,
//! socket permissions and stale-socket takeover.
#![allow(clippy::unwrap_used)]

use ff_rpc::protocol::code;
use ff_rpc::server::ServerOptions;
use ff_rpc::{Client, ClientError, Handler, RpcError, RpcServer, params};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Counter {
    n: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddParams {
    by: u64,
}

impl Handler for Counter {
    fn call(&self, method: &str, p: Option<Value>) -> Result<Value, RpcError> {
        match method {
            "get" => Ok(json!(self.n.load(Ordering::SeqCst))),
            "add" => {
                let p: AddParams = params::parse(p)?;
                Ok(json!(self.n.fetch_add(p.by, Ordering::SeqCst) + p.by))
            }
            "boom" => panic!("handler bug"),
            m => Err(RpcError::method_not_found(m)),
        }
    }
}

fn sock_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ff-rpc-test-{}-{name}.sock", std::process::id()))
}

fn raw(path: &PathBuf, bytes: &[u8]) -> Vec<Value> {
    let mut s = UnixStream::connect(path).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::Deserializer::from_str(&out).into_iter::<Value>().map(|v| v.unwrap()).collect()
}

#[test]
fn calls_errors_and_hostile_input() {
    let path = sock_path("main");
    let opts = ServerOptions { max_request: 4096, ..ServerOptions::default() };
    let srv = RpcServer::bind_with(&path, Arc::new(Counter::default()), opts).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the operator may manage the target");

    let mut c = Client::connect(&path, Duration::from_secs(5)).unwrap();
    assert_eq!(c.call("add", Some(json!({"by": 2}))).unwrap(), json!(2));
    assert_eq!(c.call("get", None).unwrap(), json!(2));
    let field = |r: Result<Value, ClientError>| match r {
        Err(ClientError::Rpc(e)) => (e.code, e.data.and_then(|d| d["field"].as_str().map(String::from))),
        other => panic!("expected an RPC error, got {other:?}"),
    };
    assert_eq!(field(c.call("add", Some(json!({"by": "x"})))), (code::INVALID_PARAMS, Some("by".into())));
    assert_eq!(field(c.call("add", Some(json!({"by": 1, "typo": 1})))), (code::INVALID_PARAMS, Some("typo".into())));
    assert_eq!(field(c.call("add", None)), (code::INVALID_PARAMS, Some("by".into())));
    assert_eq!(field(c.call("nope", None)).0, code::METHOD_NOT_FOUND);
    // A handler that panics answers internal error and the server keeps serving.
    assert_eq!(field(c.call("boom", None)).0, code::INTERNAL_ERROR);
    assert_eq!(c.call("get", None).unwrap(), json!(2));

    // Pipelined requests without separators, a notification (no answer) and a batch.
    let out = raw(
        &path,
        br#"{"jsonrpc":"2.0","method":"get","id":1}{"jsonrpc":"2.0","method":"add","params":{"by":1}}[{"jsonrpc":"2.0","method":"get","id":"b"},{"jsonrpc":"2.0","method":"x","id":2},7]"#,
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["result"], json!(2));
    let batch = out[1].as_array().unwrap();
    assert_eq!(batch[0]["result"], json!(3), "the notification ran before the batch");
    assert_eq!(batch[1]["error"]["code"], json!(code::METHOD_NOT_FOUND));
    assert_eq!(batch[2]["error"]["code"], json!(code::INVALID_REQUEST));

    // Not JSON: a parse error, then the connection closes.
    let out = raw(&path, b"{\"method\": ]");
    assert_eq!(out[0]["error"]["code"], json!(code::PARSE_ERROR));
    // Too large: refused without being parsed to the end.
    let big = format!("{{\"jsonrpc\":\"2.0\",\"method\":\"get\",\"id\":1,\"pad\":\"{}\"", "x".repeat(8000));
    let out = raw(&path, big.as_bytes());
    assert_eq!(out[0]["error"]["code"], json!(code::INVALID_REQUEST));
    assert!(out[0]["error"]["message"].as_str().unwrap().contains("larger"));

    // Still serving the well-behaved.
    assert_eq!(c.call("get", None).unwrap(), json!(3));
    srv.stop();
    assert!(!path.exists(), "the socket file goes with the server");
    assert!(matches!(Client::connect(&path, Duration::from_secs(1)), Err(ClientError::Connect { .. })));
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
    let path = sock_path("stale");
    let first = RpcServer::bind(&path, Arc::new(Counter::default())).unwrap();
    let second = RpcServer::bind(&path, Arc::new(Counter::default()));
    assert_eq!(second.err().map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
    drop(first);
    // A leftover file nobody listens on (a killed target) is taken over.
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(l);
    assert!(path.exists());
    let srv = RpcServer::bind(&path, Arc::new(Counter::default())).unwrap();
    let mut c = Client::connect(&path, Duration::from_secs(5)).unwrap();
    assert_eq!(c.call("get", None).unwrap(), json!(0));
    drop(srv);
}
