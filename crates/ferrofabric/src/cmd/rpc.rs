//! `ferrofabric rpc METHOD [KEY=VALUE ...]`: one call to a running target's management socket.
//!
//! Parameters come as `key=value` pairs (a value that parses as JSON is taken as JSON, anything else,
//! and `null`, as a string; `a.b=v` nests) or whole with `--params JSON`. The result prints as indented `key: value`
//! lines, or as JSON with `--json`. Errors (no socket, unknown method, invalid parameter) print the
//! server's message and exit non-zero.

use anyhow::{Result, bail};
use clap::Args;
use ff_rpc::{Client, ClientError};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Where a target listens for management by default (`--rpc-socket`).
pub const DEFAULT_RPC_SOCKET: &str = "/var/tmp/ferrofabric.sock";

/// Arguments of `ferrofabric rpc`.
#[derive(Args, Debug)]
pub struct RpcArgs {
    /// The target's RPC socket.
    #[arg(short = 's', long, default_value = DEFAULT_RPC_SOCKET)]
    rpc_socket: PathBuf,
    /// Print the result as JSON (for scripts).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// All parameters as one JSON object (instead of KEY=VALUE pairs).
    #[arg(long)]
    params: Option<String>,
    /// The method, e.g. nvmf_get_subsystems, nvmf_create_subsystem, nvmf_subsystem_add_ns.
    method: String,
    /// Parameters as KEY=VALUE (JSON values are parsed; `a.b=v` nests).
    args: Vec<String>,
}

/// Builds the params object from `key=value` pairs.
pub fn params_from_pairs(pairs: &[String]) -> Result<Option<Value>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut root = Map::new();
    for p in pairs {
        let Some((key, raw)) = p.split_once('=') else { bail!("parameter {p:?} is not KEY=VALUE") };
        if key.is_empty() || key.split('.').any(str::is_empty) {
            bail!("parameter {p:?} has an empty key");
        }
        // A JSON number, boolean, quoted string, array or object is taken as such; anything else is a
        // string (NQNs, paths, and `null`, which is a backend name: `--params` gives a JSON null).
        let value = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Null) | Err(_) => Value::String(raw.to_string()),
            Ok(v) => v,
        };
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut obj = &mut root;
        for part in parts {
            let entry = obj.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = entry else { bail!("parameter {key:?}: {part:?} is already a value") };
            obj = m;
        }
        if obj.insert(last.to_string(), value).is_some() {
            bail!("parameter {key:?} given twice");
        }
    }
    Ok(Some(Value::Object(root)))
}

/// The result as indented `key: value` lines.
pub fn human(v: &Value) -> String {
    let mut out = String::new();
    write_human(&mut out, v, 0);
    out
}

fn write_human(out: &mut String, v: &Value, indent: usize) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) if m.is_empty() => out.push_str(&format!("{pad}(none)\n")),
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) | Value::Array(_) if !is_empty(v) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_human(out, v, indent + 1);
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}(none)\n")),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}- [{i}]\n"));
                        write_human(out, v, indent + 1);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(v))),
                }
            }
        }
        v => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Object(_) | Value::Array(_) if is_empty(v) => "(none)".into(),
        v => v.to_string(),
    }
}

/// Runs one call; any failure is an error (non-zero exit).
pub fn run(a: RpcArgs) -> Result<()> {
    let params = match &a.params {
        Some(text) => {
            if !a.args.is_empty() {
                bail!("give parameters either as --params JSON or as KEY=VALUE, not both");
            }
            Some(serde_json::from_str::<Value>(text).map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?)
        }
        None => params_from_pairs(&a.args)?,
    };
    let mut c = Client::connect(&a.rpc_socket, Duration::from_secs(a.timeout))?;
    match c.call(&a.method, params) {
        Ok(v) if a.json => println!("{}", serde_json::to_string_pretty(&v)?),
        Ok(v) => print!("{}", human(&v)),
        Err(ClientError::Rpc(e)) if a.json => {
            eprintln!("{}", serde_json::to_string_pretty(&e)?);
            bail!("{} failed (code {})", a.method, e.code);
        }
        Err(e) => bail!("{}: {e}", a.method),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_become_params() {
        let p = |v: &[&str]| params_from_pairs(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&[]).unwrap(), None);
        assert_eq!(
            p(&["nqn=nqn.2026-11.io.x:y", "max_namespaces=32", "allow_any_host=true", "ns.nsid=2", "ns.size=\"1G\""])
                .unwrap(),
            Some(json!({"nqn": "nqn.2026-11.io.x:y", "max_namespaces": 32, "allow_any_host": true,
                        "ns": {"nsid": 2, "size": "1G"}}))
        );
        assert_eq!(p(&["backend=null"]).unwrap(), Some(json!({"backend": "null"})));
        assert!(p(&["novalue"]).is_err());
        assert!(p(&["a=1", "a=2"]).is_err());
        assert!(p(&["a=1", "a.b=2"]).is_err());
        assert!(p(&["=1"]).is_err());
    }

    #[test]
    fn results_print_as_indented_lines() {
        let v = json!({"nqn": "n", "namespaces": [{"nsid": 1}], "hosts": [], "serial": null});
        // Keys print in order (serde_json keeps objects sorted).
        assert_eq!(human(&v), "hosts: (none)\nnamespaces:\n  - [0]\n    nsid: 1\nnqn: n\nserial: -\n");
    }
}
