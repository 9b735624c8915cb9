//! Operating `ferrofabric target` as an operator does, through the real binary: `ferrofabric rpc`
//! against its socket (human and JSON output, clear errors with a non-zero exit), the socket's mode,
//! SIGHUP applying an edited `--config`, SIGTERM stopping cleanly (the socket removed), and the
//! Prometheus endpoint counting what a host did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrofabric");
const NQN: &str = "nqn.2026-12.io.ferrofabric:operate";

struct Target {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(port: u16, hosts: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:{port}\"]\ndiscovery_listen = []\n[[subsystem]]\nnqn = \"{NQN}\"\nallow_any_host = false\n\
         hosts = [{hosts}]\n[[subsystem.namespaces]]\nnsid = 1\nbackend = {{ kind = \"ram\", size = \"4M\" }}\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(tag: &str) -> Target {
    start_with(tag, &[])
}

fn start_with(tag: &str, extra: &[&str]) -> Target {
    let dir = std::env::temp_dir().join(format!("ff-operate-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ff.toml");
    std::fs::write(&cfg, config(free_port(), "\"nqn.2014-08.org.nvmexpress:uuid:a\"")).unwrap();
    let sock = dir.join("ff.sock");
    let child = Command::new(BIN)
        .arg("target")
        .arg("--config")
        .arg(&cfg)
        .arg("--rpc-socket")
        .arg(&sock)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Target { child, dir, sock };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rpc(&t.sock, &["ferrofabric_get_version"]).status.success() {
        assert!(Instant::now() < deadline, "the target's RPC socket never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    t
}

fn rpc(sock: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("rpc").arg("-s").arg(sock).args(args).output().unwrap()
}

fn rpc_json(sock: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = rpc(sock, &a);
    assert!(out.status.success(), "rpc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails_with(sock: &Path, args: &[&str], needle: &str) {
    let out = rpc(sock, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rpc {args:?} succeeded");
    assert!(err.contains(needle), "rpc {args:?}: {err:?} does not say {needle:?}");
    assert!(!err.contains("stack backtrace"), "an error message, not a backtrace: {err}");
}

#[test]
fn rpc_cli_answers_and_refuses_clearly() {
    let t = start("cli");
    let mode = std::fs::metadata(&t.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the RPC socket is for its owner only");
    let human = rpc(&t.sock, &["nvmf_get_subsystems"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("nqn: {NQN}")) && text.contains("serial_number:"), "{text}");
    let subs = rpc_json(&t.sock, &["nvmf_get_subsystems", &format!("nqn={NQN}")]);
    assert_eq!(subs[0]["namespaces"][0]["num_blocks"], 8192);
    let add = rpc_json(
        &t.sock,
        &["nvmf_subsystem_add_ns", &format!("nqn={NQN}"), "namespace.backend=null", "namespace.size=1G"],
    );
    assert_eq!(add, 2);
    let params = format!(r#"{{"nqn": "{NQN}", "nsid": 2, "size": "2G"}}"#);
    assert_eq!(rpc_json(&t.sock, &["--params", &params, "nvmf_subsystem_resize_ns"])["num_blocks"], 4 << 20);

    let missing = t.dir.join("nope.sock");
    fails_with(&missing, &["nvmf_get_subsystems"], "nope.sock");
    fails_with(&t.sock, &["nvmf_frobnicate"], "nvmf_frobnicate");
    fails_with(&t.sock, &["nvmf_create_subsystem", "nqn=42"], "`nqn`");
    fails_with(
        &t.sock,
        &["nvmf_subsystem_add_ns", &format!("nqn={NQN}"), "namespace.backend=tape"],
        "namespace.backend",
    );
    fails_with(&t.sock, &["--params", "{not json", "nvmf_get_subsystems"], "--params");
    fails_with(&t.sock, &["nvmf_get_subsystems", "novalue"], "KEY=VALUE");
    let out = rpc(&t.sock, &["--json", "nvmf_delete_subsystem", "nqn=nqn.2026-12.io.x:none"]);
    assert!(!out.status.success());
    // The JSON error object, then the one-line message.
    let err = String::from_utf8_lossy(&out.stderr);
    let e: Value = serde_json::from_str(&err[..err.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(e["code"], -32001, "the JSON error carries the code: {e}");
    // Still serving after all that.
    assert_eq!(
        rpc_json(&t.sock, &["nvmf_get_subsystems", &format!("nqn={NQN}")])[0]["namespaces"].as_array().unwrap().len(),
        2
    );
}

fn signal(t: &Target, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(t.child.id() as i32).unwrap(), sig).unwrap();
}

#[test]
fn sighup_applies_the_edited_config_and_sigterm_stops() {
    let mut t = start("signals");
    let hosts = |t: &Target| rpc_json(&t.sock, &["nvmf_get_subsystems", &format!("nqn={NQN}")])[0]["hosts"].clone();
    assert_eq!(hosts(&t), serde_json::json!([{ "nqn": "nqn.2014-08.org.nvmexpress:uuid:a" }]));
    let port: u16 = rpc_json(&t.sock, &["nvmf_get_listeners"])[0]["trsvcid"].as_str().unwrap().parse().unwrap();
    std::fs::write(t.dir.join("ff.toml"), config(port, "\"nqn.2014-08.org.nvmexpress:uuid:b\"")).unwrap();
    signal(&t, rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hosts(&t) != serde_json::json!([{ "nqn": "nqn.2014-08.org.nvmexpress:uuid:b" }]) {
        assert!(Instant::now() < deadline, "SIGHUP did not apply the new host list: {}", hosts(&t));
        std::thread::sleep(Duration::from_millis(50));
    }
    // save_config with no path writes back the --config file, atomically.
    rpc_json(&t.sock, &["save_config"]);
    let saved = std::fs::read_to_string(t.dir.join("ff.toml")).unwrap();
    assert!(saved.contains("nqn.2014-08.org.nvmexpress:uuid:b") && saved.contains("[[subsystem]]"), "{saved}");
    signal(&t, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = t.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the target");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status:?}");
    assert!(!t.sock.exists(), "the RPC socket is removed at stop");
}

fn scrape(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The value of the first series whose line starts with `prefix`.
fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_counts_what_a_host_did() {
    let maddr = format!("127.0.0.1:{}", free_port());
    let t = start_with("metrics", &["--metrics", &maddr]);
    let (code, _) = scrape(&maddr, "/nope");
    assert_eq!(code, 404);
    // A host writes 8 KiB to namespace 1 and reads it back.
    let port: u16 = rpc_json(&t.sock, &["nvmf_get_listeners"])[0]["trsvcid"].as_str().unwrap().parse().unwrap();
    let host = "nqn.2014-08.org.nvmexpress:uuid:a";
    let o = ff_initiator::HostOptions { hostnqn: host.into(), io_queues: 1, ..ff_initiator::HostOptions::default() };
    let mut ctrl = ff_initiator::Controller::connect(([127, 0, 0, 1], port).into(), NQN, &o).unwrap();
    let mut g = ff_initiator::IoGroup::new(ff_sock::GroupOptions::default()).unwrap();
    let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
    g.queue(q)
        .unwrap()
        .submit_write(1, 0, 16, ff_initiator::Buf::from_slice(&[7; 8192]), false, 1)
        .map_err(|e| e.0)
        .unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while out.is_empty() {
        assert!(Instant::now() < deadline);
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
    }
    assert!(out[0].result.is_ok());
    // Reactors publish every 100 ms: scrape until the write shows.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (code, text) = scrape(&maddr, "/metrics");
        assert_eq!(code, 200, "{text}");
        if series(&text, "ferrofabric_io_bytes_total{reactor=\"0\",direction=\"write\"}") == Some(8192.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "the write never showed in the metrics:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert_eq!(series(&text, "ferrofabric_io_commands_total{reactor=\"0\",kind=\"write\"}"), Some(1.0));
    let ns = format!("ferrofabric_namespace_requests_total{{subnqn=\"{NQN}\",nsid=\"1\",op=\"write\"}}");
    assert_eq!(series(&text, &ns), Some(1.0), "{text}");
    assert!(series(&text, "ferrofabric_controllers").is_some_and(|c| c >= 1.0));
    assert!(text.contains("ferrofabric_connection_io_commands_total{reactor=\"0\",peer="), "{text}");
    assert!(series(&text, "ferrofabric_sock_syscalls_total{reactor=\"0\"}").is_some_and(|n| n > 0.0));
    drop(g);
    ctrl.shutdown().unwrap();
}
