//! JSON-RPC 2.0 messages: a request is `{"jsonrpc": "2.0", "method": M, "params": P, "id": I}`, a
//! response carries `result` or `error` with the same id. A request without an id is a notification
//! and gets no response. Errors use the specification's codes (parse error, invalid request, method
//! not found, invalid params, internal error) and a few of ours for the target's own refusals.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Largest method name accepted.
pub const METHOD_MAX: usize = 128;

/// A JSON-RPC error: the code, a message that names what was wrong, and optional details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// What was wrong, for a person.
    pub message: String,
    /// Details for a program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The codes the specification defines, and ours (from -32000 down).
pub mod code {
    /// The bytes are not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The parameters are missing, of the wrong type, or out of range.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The named object does not exist.
    pub const NOT_FOUND: i64 = -32001;
    /// The named object exists already.
    pub const EXISTS: i64 = -32002;
    /// The object is in use and the operation would break its users.
    pub const IN_USE: i64 = -32003;
    /// The operation failed in the system (a file that cannot be opened, a port that cannot be bound).
    pub const FAILED: i64 = -32004;
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), data: None }
    }

    /// Invalid params, naming the field.
    pub fn invalid_param(field: &str, why: impl std::fmt::Display) -> RpcError {
        RpcError::new(code::INVALID_PARAMS, format!("invalid parameter `{field}`: {why}"))
            .with_data(json!({ "field": field }))
    }

    /// No such method.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::new(code::METHOD_NOT_FOUND, format!("method not found: {method:?}"))
    }

    /// The named object does not exist.
    pub fn not_found(what: impl std::fmt::Display) -> RpcError {
        RpcError::new(code::NOT_FOUND, format!("not found: {what}"))
    }

    /// The named object exists already.
    pub fn exists(what: impl std::fmt::Display) -> RpcError {
        RpcError::new(code::EXISTS, format!("already exists: {what}"))
    }

    /// The object is in use.
    pub fn in_use(what: impl std::fmt::Display) -> RpcError {
        RpcError::new(code::IN_USE, format!("in use: {what}"))
    }

    /// The system refused.
    pub fn failed(what: impl std::fmt::Display) -> RpcError {
        RpcError::new(code::FAILED, what.to_string())
    }

    /// The same error with details attached.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }
}

/// A request, checked: version 2.0, a method name, params an object or array (or absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id to answer with; `None` for a notification (no response is sent).
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// The parameters (`None` when absent).
    pub params: Option<Value>,
}

/// One incoming message: a request, or a batch of them (an array).
#[derive(Debug)]
pub enum Incoming {
    /// One request, or the error for a message that is not one (with the id when it could be read).
    Single(Result<Request, (Value, RpcError)>),
    /// A batch: one entry per element.
    Batch(Vec<Result<Request, (Value, RpcError)>>),
}

/// Parses one JSON value received as a message.
pub fn parse(v: Value) -> Incoming {
    match v {
        Value::Array(items) if !items.is_empty() => Incoming::Batch(items.into_iter().map(parse_one).collect()),
        Value::Array(_) => Incoming::Single(Err((Value::Null, RpcError::new(code::INVALID_REQUEST, "empty batch")))),
        v => Incoming::Single(parse_one(v)),
    }
}

/// Parses bytes holding exactly one JSON value (the fuzzing entry point; the server reads a stream).
pub fn parse_bytes(bytes: &[u8]) -> Incoming {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => parse(v),
        Err(e) => Incoming::Single(Err((Value::Null, RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"))))),
    }
}

fn parse_one(v: Value) -> Result<Request, (Value, RpcError)> {
    let Value::Object(mut m) = v else {
        return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, "a request is a JSON object")));
    };
    // The id is read first, so even a malformed request is answered under its own id.
    let id = m.remove("id");
    let answer_id = id.clone().unwrap_or(Value::Null);
    let bad = |msg: String| (answer_id.clone(), RpcError::new(code::INVALID_REQUEST, msg));
    match &id {
        None | Some(Value::Null | Value::Number(_) | Value::String(_)) => {}
        Some(_) => {
            return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, "`id` must be a number, a string or null")));
        }
    }
    // SPDK's rpc.py always sends "2.0"; a request without the member is accepted as 2.0 too.
    match m.remove("jsonrpc") {
        None => {}
        Some(Value::String(s)) if s == "2.0" => {}
        Some(other) => return Err(bad(format!("`jsonrpc` must be \"2.0\", not {other}"))),
    }
    let method = match m.remove("method") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= METHOD_MAX => s,
        Some(Value::String(s)) if s.is_empty() => return Err(bad("`method` is empty".into())),
        Some(Value::String(_)) => return Err(bad(format!("`method` is longer than {METHOD_MAX} bytes"))),
        Some(_) => return Err(bad("`method` must be a string".into())),
        None => return Err(bad("`method` is missing".into())),
    };
    let params = match m.remove("params") {
        None | Some(Value::Null) => None,
        Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
        Some(_) => return Err(bad("`params` must be an object or an array".into())),
    };
    if let Some(k) = m.keys().next() {
        return Err(bad(format!("unknown member `{k}`")));
    }
    Ok(Request { id, method, params })
}

/// The response to a request with `id`: its result, or its error.
pub fn response(id: Value, r: Result<Value, RpcError>) -> Value {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), Value::String("2.0".into()));
    match r {
        Ok(v) => m.insert("result".into(), v),
        Err(e) => m.insert("error".into(), serde_json::to_value(e).unwrap_or(Value::Null)),
    };
    m.insert("id".into(), id);
    Value::Object(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn single(v: Value) -> Result<Request, (Value, RpcError)> {
        match parse(v) {
            Incoming::Single(r) => r,
            Incoming::Batch(_) => panic!("batch"),
        }
    }

    #[test]
    fn requests_parse_and_malformed_ones_are_named() {
        let r = single(json!({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}, "id": 7})).unwrap();
        assert_eq!((r.id, r.method.as_str(), r.params), (Some(json!(7)), "m", Some(json!({"a": 1}))));
        let n = single(json!({"jsonrpc": "2.0", "method": "m"})).unwrap();
        assert_eq!(n.id, None, "a notification");
        for (v, part) in [
            (json!({"jsonrpc": "1.0", "method": "m", "id": 1}), "jsonrpc"),
            (json!({"jsonrpc": "2.0", "id": 1}), "method"),
            (json!({"jsonrpc": "2.0", "method": 5, "id": 1}), "method"),
            (json!({"jsonrpc": "2.0", "method": "m", "params": 3, "id": 1}), "params"),
            (json!({"jsonrpc": "2.0", "method": "m", "id": 1, "extra": true}), "extra"),
            (json!({"jsonrpc": "2.0", "method": "", "id": 1}), "method"),
        ] {
            let (id, e) = single(v).unwrap_err();
            assert_eq!(e.code, code::INVALID_REQUEST);
            assert!(e.message.contains(part), "{e:?} names {part}");
            assert_eq!(id, json!(1), "answered under its own id");
        }
        let (_, e) = single(json!({"method": "m", "id": {"x": 1}})).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        let Incoming::Single(Err((_, e))) = parse_bytes(b"{\"method\": ") else { panic!() };
        assert_eq!(e.code, code::PARSE_ERROR);
        let Incoming::Batch(b) = parse(json!([{"method": "a", "id": 1}, 3])) else { panic!() };
        assert!(b[0].is_ok() && b[1].is_err());
    }

    #[test]
    fn responses_carry_result_or_error_and_the_id() {
        assert_eq!(response(json!(1), Ok(json!(true))), json!({"jsonrpc": "2.0", "result": true, "id": 1}));
        let e = response(json!("a"), Err(RpcError::invalid_param("nqn", "too long")));
        assert_eq!(e["error"]["code"], json!(code::INVALID_PARAMS));
        assert_eq!(e["error"]["data"]["field"], json!("nqn"));
        assert_eq!(e["id"], json!("a"));
    }
}
