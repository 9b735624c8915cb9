//! Typed method parameters: a method declares a struct (serde, `deny_unknown_fields`) and
//! [`parse`] turns the request's params into it, or into an invalid-params error that names the field
//! (a missing one, an unknown one, or one of the wrong type, with its path inside the params).

use crate::protocol::{RpcError, code};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The params of a request as `T`. Absent params read as `{}` (so a struct whose fields all have
/// defaults accepts none).
pub fn parse<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let v = params.unwrap_or_else(|| Value::Object(Default::default()));
    if v.is_array() {
        return Err(RpcError::new(code::INVALID_PARAMS, "params must be an object with named fields"));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Missing and unknown fields are reported by serde at the parent: take the name from the message.
        let field = if path == "." { backticked(&inner).unwrap_or_default() } else { path };
        let msg = if field.is_empty() {
            format!("invalid params: {inner}")
        } else {
            format!("invalid parameter `{field}`: {inner}")
        };
        RpcError::new(code::INVALID_PARAMS, msg).with_data(json!({ "field": field }))
    })
}

/// The first `name` in backticks of a serde message ("missing field `nqn`").
fn backticked(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg.get(start..)?.find('`')?;
    msg.get(start..start + len).map(str::to_string)
}

/// Longest NQN (NVMe Base specification: 223 bytes of UTF-8).
pub const NQN_MAX: usize = 223;

/// Checks an NQN parameter: 1 to 223 bytes, printable, no NUL. Like the Linux target (and unlike
/// SPDK's) any such name is taken, not only the `nqn.` forms: blktests names its subsystems
/// `blktests-subsystem-N`.
pub fn nqn(field: &str, v: &str) -> Result<(), RpcError> {
    if v.is_empty() {
        return Err(RpcError::invalid_param(field, "empty"));
    }
    if v.len() > NQN_MAX {
        return Err(RpcError::invalid_param(field, format!("{} bytes, at most {NQN_MAX}", v.len())));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(RpcError::invalid_param(field, "contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        nqn: String,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        ns: Option<Ns>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ns {
        nsid: u32,
    }

    fn field_of(p: Value) -> String {
        let e = parse::<P>(Some(p)).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        e.data.expect("data")["field"].as_str().expect("field").to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse::<P>(Some(json!({"nqn": "a"}))).is_ok());
        assert_eq!(field_of(json!({})), "nqn", "missing");
        assert_eq!(field_of(json!({"nqn": "a", "bogus": 1})), "bogus", "unknown");
        assert_eq!(field_of(json!({"nqn": 5})), "nqn", "wrong type");
        assert_eq!(field_of(json!({"nqn": "a", "size": -1})), "size", "out of range");
        assert_eq!(field_of(json!({"nqn": "a", "ns": {"nsid": "x"}})), "ns.nsid", "nested");
        assert!(parse::<P>(Some(json!(["a"]))).is_err());
        assert!(parse::<P>(None).is_err());
    }

    #[test]
    fn nqns_are_bounded() {
        assert!(nqn("nqn", "blktests-subsystem-1").is_ok());
        assert!(nqn("nqn", &"a".repeat(223)).is_ok());
        let e = nqn("nqn", &"a".repeat(224)).unwrap_err();
        assert!(e.message.contains("`nqn`") && e.message.contains("224"), "{e:?}");
        assert!(nqn("nqn", "").is_err());
        assert!(nqn("nqn", "a\u{0}b").is_err());
    }
}
