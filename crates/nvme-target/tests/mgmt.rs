//! Management of a running target through its RPC handler (no socket: the server is tested in ff-rpc):
//! bad input refused by name with nothing changed, the saved configuration read back, listeners opened
//! and closed while serving, and a configuration reload applying only the difference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_rpc::Handler;
use ff_rpc::protocol::code;
use ff_target::{AcceptMode, RunningTarget, TargetOptions};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

const NQN: &str = "nqn.2026-12.io.ferrofabric:mgmt";

fn empty_target(accept: AcceptMode) -> RunningTarget {
    let o = TargetOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        discovery_listen: vec![],
        accept,
        cores: 2,
        ..TargetOptions::default()
    };
    ff_target::start(&o).unwrap()
}

fn call(t: &RunningTarget, method: &str, params: Value) -> Result<Value, ff_rpc::RpcError> {
    t.manager().call(method, if params.is_null() { None } else { Some(params) })
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ff-mgmt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn bad_input_is_refused_by_name_and_changes_nothing() {
    let t = empty_target(AcceptMode::Acceptor);
    let dir = TempDir::new("bad");
    let img = dir.0.join("a.img");
    let img = img.to_str().unwrap();
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "allow_any_host": true, "max_namespaces": 4 })).unwrap();
    let ns = json!({ "nqn": NQN, "namespace": { "backend": format!("file:{img}"), "size": "8M" } });
    assert_eq!(call(&t, "nvmf_subsystem_add_ns", ns).unwrap(), 1);
    // What management shows: the running configuration and the controller core's view.
    let state = || {
        ["framework_get_config", "nvmf_get_subsystems", "nvmf_get_listeners"].map(|m| call(&t, m, Value::Null).unwrap())
    };
    let before = state();
    let listeners = call(&t, "nvmf_get_listeners", Value::Null).unwrap();
    let port = listeners[0]["trsvcid"].as_str().unwrap().to_string();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let long = format!("nqn.2026-12.io.x:{}", "a".repeat(210));
    let addr = |a: &str, p: &str| json!({ "listen_address": { "trtype": "tcp", "traddr": a, "trsvcid": p } });
    let add_ns = |n: Value| json!({ "nqn": NQN, "namespace": n });
    // (method, params, expected code, the field the error must name)
    let cases: Vec<(&str, Value, i64, &str)> = vec![
        ("nvmf_no_such_method", json!({}), code::METHOD_NOT_FOUND, ""),
        ("nvmf_create_subsystem", json!({ "nqn": long }), code::INVALID_PARAMS, "nqn"),
        ("nvmf_create_subsystem", json!({ "nqn": 5 }), code::INVALID_PARAMS, "nqn"),
        ("nvmf_create_subsystem", json!({}), code::INVALID_PARAMS, "nqn"),
        ("nvmf_create_subsystem", json!({ "nqn": "nqn.2026-12.io.x:b", "bogus": 1 }), code::INVALID_PARAMS, "bogus"),
        ("nvmf_create_subsystem", json!([NQN]), code::INVALID_PARAMS, ""),
        ("nvmf_create_subsystem", json!({ "nqn": NQN }), code::EXISTS, ""),
        ("nvmf_create_subsystem", json!({ "nqn": ff_nvmf::DISCOVERY_NQN }), code::INVALID_PARAMS, "nqn"),
        (
            "nvmf_create_subsystem",
            json!({ "nqn": "nqn.2026-12.io.x:c", "serial_number": "x".repeat(21) }),
            code::INVALID_PARAMS,
            "serial_number",
        ),
        (
            "nvmf_create_subsystem",
            json!({ "nqn": "nqn.2026-12.io.x:d", "max_namespaces": 5000 }),
            code::INVALID_PARAMS,
            "max_namespaces",
        ),
        ("nvmf_delete_subsystem", json!({ "nqn": "nqn.2026-12.io.x:none" }), code::NOT_FOUND, ""),
        ("nvmf_subsystem_add_ns", add_ns(json!({ "nsid": 1, "backend": "ram" })), code::EXISTS, ""),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "nsid": 0, "backend": "ram" })),
            code::INVALID_PARAMS,
            "namespace.nsid",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "nsid": 5, "backend": "ram" })),
            code::INVALID_PARAMS,
            "namespace.nsid",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "nsid": "2", "backend": "ram" })),
            code::INVALID_PARAMS,
            "namespace.nsid",
        ),
        ("nvmf_subsystem_add_ns", add_ns(json!({ "backend": "tape" })), code::INVALID_PARAMS, "namespace.backend"),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": "file:/nonexistent/dir/x.img" })),
            code::FAILED,
            "namespace.backend",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": format!("file:{img}") })),
            code::IN_USE,
            "namespace.backend",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": "ram", "block_size": 1024 })),
            code::INVALID_PARAMS,
            "namespace.block_size",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": "ram", "uuid": "xyz" })),
            code::INVALID_PARAMS,
            "namespace.uuid",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": "ram", "nguid": "00000000000000000000000000000000" })),
            code::INVALID_PARAMS,
            "namespace.nguid",
        ),
        (
            "nvmf_subsystem_add_ns",
            add_ns(json!({ "backend": "ram", "size": "12Q" })),
            code::INVALID_PARAMS,
            "namespace.size",
        ),
        (
            "nvmf_subsystem_add_ns",
            json!({ "nqn": "nqn.2026-12.io.x:none", "namespace": { "backend": "ram" } }),
            code::NOT_FOUND,
            "",
        ),
        ("nvmf_subsystem_remove_ns", json!({ "nqn": NQN, "nsid": 3 }), code::NOT_FOUND, ""),
        ("nvmf_subsystem_resize_ns", json!({ "nqn": NQN, "nsid": 1, "size": 0 }), code::INVALID_PARAMS, "size"),
        ("nvmf_subsystem_resize_ns", json!({ "nqn": NQN, "nsid": 1, "size": "huge" }), code::INVALID_PARAMS, "size"),
        ("nvmf_subsystem_add_host", json!({ "nqn": NQN, "host": "" }), code::INVALID_PARAMS, "host"),
        ("nvmf_subsystem_add_host", json!({ "nqn": NQN, "host": "a\u{1}b" }), code::INVALID_PARAMS, "host"),
        (
            "nvmf_subsystem_allow_any_host",
            json!({ "nqn": NQN, "allow_any_host": "yes" }),
            code::INVALID_PARAMS,
            "allow_any_host",
        ),
        ("nvmf_add_listener", addr("localhost", "4420"), code::INVALID_PARAMS, "listen_address.traddr"),
        ("nvmf_add_listener", addr("127.0.0.1", "70000"), code::INVALID_PARAMS, "listen_address.trsvcid"),
        (
            "nvmf_add_listener",
            json!({ "listen_address": { "trtype": "rdma", "traddr": "127.0.0.1", "trsvcid": "4420" } }),
            code::INVALID_PARAMS,
            "listen_address.trtype",
        ),
        (
            "nvmf_add_listener",
            json!({ "listen_address": { "adrfam": "ipv6", "traddr": "127.0.0.1", "trsvcid": "4420" } }),
            code::INVALID_PARAMS,
            "listen_address.adrfam",
        ),
        ("nvmf_add_listener", addr("127.0.0.1", &port), code::EXISTS, ""),
        ("nvmf_add_listener", addr("127.0.0.1", &busy_port), code::FAILED, "listen_address"),
        ("nvmf_remove_listener", addr("127.0.0.1", &busy_port), code::NOT_FOUND, ""),
        ("nvmf_disconnect_controller", json!({ "cntlid": 999 }), code::NOT_FOUND, ""),
        ("nvmf_disconnect_controller", json!({ "cntlid": -1 }), code::INVALID_PARAMS, "cntlid"),
        ("save_config", json!({}), code::INVALID_PARAMS, "path"),
        ("save_config", json!({ "path": "/nonexistent/dir/ff.toml" }), code::FAILED, "path"),
        ("load_config", json!({ "path": "/nonexistent/dir/ff.toml" }), code::FAILED, "path"),
    ];
    for (method, params, want, field) in cases {
        let e = call(&t, method, params.clone()).expect_err(&format!("{method} {params} must fail"));
        assert_eq!(e.code, want, "{method} {params}: {e:?}");
        if !field.is_empty() {
            let named = e.data.as_ref().and_then(|d| d["field"].as_str()).unwrap_or_default();
            assert!(named == field || e.message.contains(field), "{method} {params} names {named:?}: {e:?}");
        }
        assert_eq!(state(), before, "{method} {params} changed the configuration");
    }
    drop(busy);
    // The target still serves: a valid change goes through.
    assert_eq!(call(&t, "nvmf_subsystem_add_ns", add_ns(json!({ "backend": "ram", "size": "1M" }))).unwrap(), 2);
    t.stop();
}

#[test]
fn saved_configuration_reads_back_and_starts_the_same_target() {
    let t = empty_target(AcceptMode::Acceptor);
    let dir = TempDir::new("save");
    let host = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "serial_number": "SN123", "model_number": "M" })).unwrap();
    call(&t, "nvmf_subsystem_add_host", json!({ "nqn": NQN, "host": host })).unwrap();
    let uuid = "6a1f8d2e-3b4c-4d5e-8f60-718293a4b5c6";
    let ns = json!({ "nqn": NQN, "namespace": { "nsid": 3, "backend": "ram", "size": "2M", "block_size": 4096, "uuid": uuid } });
    assert_eq!(call(&t, "nvmf_subsystem_add_ns", ns).unwrap(), 3);
    let img = dir.0.join("b.img");
    let ns = json!({ "nqn": NQN, "namespace": { "backend": format!("file:{}", img.display()), "size": 1 << 20 } });
    assert_eq!(call(&t, "nvmf_subsystem_add_ns", ns).unwrap(), 1);
    assert_eq!(
        call(&t, "nvmf_subsystem_resize_ns", json!({ "nqn": NQN, "nsid": 1, "size": "2M" })).unwrap()["num_blocks"],
        4096
    );
    let path = dir.0.join("ff.toml");
    call(&t, "save_config", json!({ "path": path })).unwrap();
    let saved = TargetOptions::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let running = t.manager().running_config();
    assert_eq!(saved, running);
    assert_eq!(saved.subsystems[0].namespaces.len(), 2);
    assert_eq!(saved.subsystems[0].namespaces[0].backend.size, Some(2 << 20), "the resize is saved");
    assert_eq!(saved.subsystems[0].hosts, [host]);
    // Started from the saved file (on another port), the target serves the same subsystems.
    let mut again = saved.clone();
    again.listen = vec!["127.0.0.1:0".parse().unwrap()];
    t.stop();
    let t2 = ff_target::start(&again).unwrap();
    let subs = call(&t2, "nvmf_get_subsystems", json!({ "nqn": NQN })).unwrap();
    assert_eq!(subs[0]["serial_number"], "SN123");
    assert_eq!(subs[0]["namespaces"][1]["uuid"], uuid);
    assert_eq!(subs[0]["namespaces"][1]["block_size"], 4096);
    assert_eq!(subs[0]["namespaces"][0]["num_blocks"], 4096);
    assert_eq!(subs[0]["allow_any_host"], false);
    t2.stop();
}

fn connects(a: SocketAddr) -> bool {
    TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()
}

fn listeners_open_and_close_while_serving(accept: AcceptMode) {
    let t = empty_target(accept);
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let a = json!({ "listen_address": { "traddr": "127.0.0.1", "trsvcid": free.port().to_string() } });
    let r = call(&t, "nvmf_add_listener", a.clone()).unwrap();
    assert_eq!(r["trsvcid"], free.port().to_string());
    assert!(connects(free), "the new listener accepts");
    let subs = call(&t, "nvmf_get_subsystems", json!({ "nqn": ff_nvmf::DISCOVERY_NQN })).unwrap();
    assert_eq!(subs[0]["listen_addresses"].as_array().unwrap().len(), 2);
    call(&t, "nvmf_remove_listener", a).unwrap();
    // Reactors close their copies when they read their inbox: give them a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while connects(free) {
        assert!(std::time::Instant::now() < deadline, "the removed listener still accepts");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(call(&t, "nvmf_get_listeners", Value::Null).unwrap().as_array().unwrap().len(), 1);
    t.stop();
}

#[test]
fn listeners_open_and_close_while_serving_acceptor() {
    listeners_open_and_close_while_serving(AcceptMode::Acceptor);
}

#[test]
fn listeners_open_and_close_while_serving_per_reactor() {
    listeners_open_and_close_while_serving(AcceptMode::Reactor);
}

#[test]
fn reload_applies_only_the_difference() {
    let dir = TempDir::new("reload");
    let path = dir.0.join("ff.toml");
    let text = |extra_ns: &str, hosts: &str, size: &str| {
        format!(
            r#"
listen = ["127.0.0.1:0"]
discovery_listen = []
cores = 2
[[subsystem]]
nqn = "{NQN}"
allow_any_host = false
hosts = [{hosts}]
[[subsystem.namespaces]]
nsid = 1
backend = {{ kind = "ram", size = "{size}" }}
{extra_ns}
[[subsystem]]
nqn = "nqn.2026-12.io.ferrofabric:other"
"#
        )
    };
    std::fs::write(&path, text("", r#""nqn.2014-08.org.nvmexpress:uuid:a""#, "1M")).unwrap();
    let o = TargetOptions::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let t = ff_target::start(&o).unwrap();
    let m = t.manager();
    m.set_config_path(Some(path.clone()));
    let first = m.running_config();
    // Nothing changed: nothing applied.
    let r = m.reload(None).unwrap();
    assert!(r.applied.is_empty() && r.failed.is_empty(), "{r:?}");
    std::fs::write(
        &path,
        text(
            "[[subsystem.namespaces]]\nnsid = 2\nbackend = \"null\"\n",
            r#""nqn.2014-08.org.nvmexpress:uuid:b""#,
            "2M",
        ),
    )
    .unwrap();
    let r = m.reload(None).unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!(r.applied.len(), 4, "resize, add namespace, remove one host, add another: {r:?}");
    assert!(r.need_restart.is_empty(), "{r:?}");
    let now = m.running_config();
    assert_eq!(now.subsystems[0].hosts, ["nqn.2014-08.org.nvmexpress:uuid:b"]);
    assert_eq!(now.subsystems[0].namespaces.len(), 2);
    assert_eq!(now.subsystems[1], first.subsystems[1], "the other subsystem is untouched");
    let subs = call(&t, "nvmf_get_subsystems", json!({ "nqn": NQN })).unwrap();
    assert_eq!(subs[0]["namespaces"][0]["num_blocks"], 4096);
    // iSCSI targets are set at start: a reload says so instead of pretending to apply them.
    let with_iscsi = format!(
        "{}\n[[iscsi_target]]\nname = \"iqn.2026-12.io.ferrofabric:reload\"\n",
        text(
            "[[subsystem.namespaces]]\nnsid = 2\nbackend = \"null\"\n",
            r#""nqn.2014-08.org.nvmexpress:uuid:b""#,
            "2M"
        )
    );
    std::fs::write(&path, with_iscsi).unwrap();
    let r = m.reload(None).unwrap();
    assert!(r.applied.is_empty() && r.failed.is_empty(), "{r:?}");
    assert_eq!(r.need_restart, ["iscsi_target"], "{r:?}");
    // A file that does not parse changes nothing.
    std::fs::write(&path, "cores = \"many\"").unwrap();
    assert!(m.reload(None).is_err());
    assert_eq!(m.running_config(), now);
    t.stop();
}
