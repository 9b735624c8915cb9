//! Our initiator against a target reconfigured while it serves (through the target's RPC handler):
//! what a host sees when management creates, resizes and removes namespaces, removes a host, deletes a
//! subsystem with I/O in flight, and opens a listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_initiator::{AsyncEvent, Buf, Controller, HostOptions, IoCompletion, IoError, IoGroup, discover};
use ff_nvme::nvme::status;
use ff_rpc::Handler;
use ff_sock::{Backend, GroupOptions};
use ff_target::{RunningTarget, TargetOptions};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NQN: &str = "nqn.2026-12.io.ferrofabric:live";
const NOTICE_NS_CHANGED: AsyncEvent = AsyncEvent { kind: 2, info: 0x00, log_page: 0x04 };
const NOTICE_DISCOVERY_CHANGED: AsyncEvent = AsyncEvent { kind: 2, info: 0xF0, log_page: 0x70 };

fn empty_target() -> (RunningTarget, SocketAddr) {
    empty_target_on(Backend::Epoll)
}

fn empty_target_on(backend: Backend) -> (RunningTarget, SocketAddr) {
    let mut o = TargetOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        discovery_listen: vec![],
        cores: 2,
        ..TargetOptions::default()
    };
    o.sock.backend = backend;
    let t = ff_target::start(&o).unwrap();
    let a = t.io_addrs[0];
    (t, a)
}

fn call(t: &RunningTarget, method: &str, params: Value) -> Value {
    t.manager().call(method, Some(params)).unwrap_or_else(|e| panic!("{method}: {e:?}"))
}

fn opts(io_queues: u16) -> HostOptions {
    HostOptions {
        io_queues,
        queue_depth: 64,
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(5),
        ..HostOptions::default()
    }
}

fn wait_event(c: &Controller, want: AsyncEvent) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if c.take_async_events().contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "no {want:?} within 8 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_one(g: &mut IoGroup) -> IoCompletion {
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut out = Vec::new();
    loop {
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
        if let Some(c) = out.pop() {
            return c;
        }
        assert!(Instant::now() < deadline, "no completion within 8 s");
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(seed * 97) >> 7) as u8).collect()
}

fn is_status(r: &Result<(), IoError>, sc: u8) -> bool {
    matches!(r, Err(IoError::Status { status: s, .. }) if s.sct() == 0 && s.sc() == sc)
}

#[test]
fn subsystem_and_namespace_created_live_are_discovered_and_served() {
    let (t, addr) = empty_target();
    assert!(discover(addr, &opts(0)).unwrap().iter().all(|e| e.subnqn != NQN));
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "allow_any_host": true }));
    assert_eq!(
        call(&t, "nvmf_subsystem_add_ns", json!({ "nqn": NQN, "namespace": { "backend": "ram", "size": "4M" } })),
        1
    );
    assert!(discover(addr, &opts(0)).unwrap().iter().any(|e| e.subnqn == NQN && e.socket_addr() == Some(addr)));
    let mut ctrl = Controller::connect(addr, NQN, &opts(1)).unwrap();
    assert_eq!(ctrl.active_namespaces().unwrap(), [1]);
    assert_eq!(ctrl.identify_namespace(1).unwrap().nsze, 8192);
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
    let data = pattern(8192, 1);
    g.queue(q).unwrap().submit_write(1, 100, 16, Buf::from_slice(&data), false, 1).map_err(|e| e.0).unwrap();
    assert_eq!(wait_one(&mut g).result, Ok(()));
    g.queue(q).unwrap().submit_read(1, 100, 16, Buf::new(8192), 2).map_err(|e| e.0).unwrap();
    let c = wait_one(&mut g);
    assert!(c.result.is_ok() && c.buf.as_deref() == Some(&data[..]));
    // The stats count what this connection did.
    let stats = call(&t, "nvmf_get_stats", json!({}));
    let io_conns: Vec<&Value> =
        stats["connections"].as_array().unwrap().iter().filter(|c| c["qid"] == 1 && c["subnqn"] == NQN).collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut counted = io_conns.first().map(|c| c["io"]["writes"] == 1 && c["io"]["reads"] == 1).unwrap_or(false);
    while !counted {
        // Reactors publish their counters every 100 ms.
        assert!(Instant::now() < deadline, "stats never counted the I/O: {stats}");
        std::thread::sleep(Duration::from_millis(50));
        let s = call(&t, "nvmf_get_stats", json!({}));
        counted = s["connections"].as_array().unwrap().iter().any(|c| {
            c["qid"] == 1 && c["io"]["writes"] == 1 && c["io"]["reads"] == 1 && c["io"]["write_bytes"] == 8192
        });
    }
    drop(g);
    ctrl.shutdown().unwrap();
}

#[test]
fn resize_and_removal_reach_a_connected_host_as_async_events() {
    let (t, addr) = empty_target();
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "allow_any_host": true }));
    call(&t, "nvmf_subsystem_add_ns", json!({ "nqn": NQN, "namespace": { "backend": "ram", "size": "4M" } }));
    call(&t, "nvmf_subsystem_add_ns", json!({ "nqn": NQN, "namespace": { "nsid": 2, "backend": "null" } }));
    let mut ctrl = Controller::connect(addr, NQN, &opts(1)).unwrap();
    assert!(ctrl.take_async_events().is_empty());
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
    let data = pattern(4096, 7);
    g.queue(q).unwrap().submit_write(1, 8, 8, Buf::from_slice(&data), false, 1).map_err(|e| e.0).unwrap();
    assert_eq!(wait_one(&mut g).result, Ok(()));

    // Grow: the host hears of it, sees the new size, and the data below stays.
    assert_eq!(
        call(&t, "nvmf_subsystem_resize_ns", json!({ "nqn": NQN, "nsid": 1, "size": "16M" }))["num_blocks"],
        32768
    );
    wait_event(&ctrl, NOTICE_NS_CHANGED);
    assert_eq!(ctrl.identify_namespace(1).unwrap().nsze, 32768);
    g.queue(q).unwrap().submit_write(1, 32767, 1, Buf::from_slice(&[5; 512]), false, 2).map_err(|e| e.0).unwrap();
    assert_eq!(wait_one(&mut g).result, Ok(()), "a block of the grown part");
    g.queue(q).unwrap().submit_read(1, 8, 8, Buf::new(4096), 3).map_err(|e| e.0).unwrap();
    let c = wait_one(&mut g);
    assert!(c.result.is_ok() && c.buf.as_deref() == Some(&data[..]), "data written before the grow");

    // Shrink: blocks beyond are out of range at once.
    call(&t, "nvmf_subsystem_resize_ns", json!({ "nqn": NQN, "nsid": 1, "size": "2M" }));
    wait_event(&ctrl, NOTICE_NS_CHANGED);
    assert_eq!(ctrl.identify_namespace(1).unwrap().nsze, 4096);
    g.queue(q).unwrap().submit_read(1, 5000, 1, Buf::new(512), 4).map_err(|e| e.0).unwrap();
    assert!(is_status(&wait_one(&mut g).result, 0x80), "LBA out of range beyond the new end");

    // Remove: the changed namespace list names it, and its commands fail as Invalid Namespace.
    call(&t, "nvmf_subsystem_remove_ns", json!({ "nqn": NQN, "nsid": 2 }));
    wait_event(&ctrl, NOTICE_NS_CHANGED);
    assert_eq!(ctrl.active_namespaces().unwrap(), [1]);
    g.queue(q).unwrap().submit_read(2, 0, 1, Buf::new(512), 5).map_err(|e| e.0).unwrap();
    assert!(is_status(&wait_one(&mut g).result, status::INVALID_NAMESPACE.sc()), "I/O to the removed namespace");
    drop(g);
    ctrl.shutdown().unwrap();
}

/// A temp file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn namespace_removed_and_subsystem_deleted_under_writes_lose_no_acknowledged_write_epoll() {
    removed_under_writes(Backend::Epoll);
}

/// On io_uring the file backend's requests ride on the reactor's ring: its handle must outlive them.
#[test]
fn namespace_removed_and_subsystem_deleted_under_writes_lose_no_acknowledged_write_uring() {
    removed_under_writes(Backend::Uring);
}

fn removed_under_writes(backend: Backend) {
    let (t, addr) = empty_target_on(backend);
    let img = TempFile(std::env::temp_dir().join(format!("ff-live-remove-{backend}-{}.img", std::process::id())));
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "allow_any_host": true }));
    let ns = json!({ "nqn": NQN, "namespace": { "backend": format!("file:{}", img.0.display()), "size": "64M" } });
    call(&t, "nvmf_subsystem_add_ns", ns);
    let mut ctrl = Controller::connect(addr, NQN, &opts(1)).unwrap();
    let queue = ctrl.take_io_queues().pop().unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let removed = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicBool::new(false));
    let (a, r, del) = (acked.clone(), removed.clone(), deleted.clone());
    let (good_tx, good_rx) = std::sync::mpsc::channel();
    // 4 KiB writes of a pattern per block at queue depth 32, until the namespace is gone.
    let writer = std::thread::spawn(move || {
        let mut g = IoGroup::new(GroupOptions::default()).unwrap();
        let q = g.add(queue).unwrap();
        let (mut next, mut inflight, mut good, mut refused) = (0u64, 0u32, Vec::new(), 0u32);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while refused < 64 && Instant::now() < deadline {
            while inflight < 32 && next < 16384 {
                let b = Buf::from_slice(&pattern(4096, next));
                if g.queue(q).unwrap().submit_write(1, next * 8, 8, b, false, next).is_err() {
                    break;
                }
                next += 1;
                inflight += 1;
            }
            out.clear();
            g.poll(Some(Duration::from_millis(10)), &mut out).unwrap();
            for c in &out {
                inflight -= 1;
                match &c.result {
                    Ok(()) => {
                        good.push(c.tag);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert!(r.load(Ordering::Relaxed), "write {} failed before the removal: {e}", c.tag);
                        let ok = is_status(&c.result, status::INVALID_NAMESPACE.sc()) || is_status(&c.result, 0x07);
                        assert!(ok, "write {} failed as neither Invalid Namespace nor Aborted: {e}", c.tag);
                        refused += 1;
                    }
                }
            }
            if next == 16384 && inflight == 0 {
                break;
            }
        }
        good_tx.send((good, refused)).unwrap();
        // Deleting the subsystem disconnects the controller: the queue goes down.
        while !del.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let _ = g.poll(Some(Duration::from_millis(20)), &mut out);
            if g.queue(q).unwrap().down_reason().is_some() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    });
    while acked.load(Ordering::Relaxed) < 500 {
        std::thread::sleep(Duration::from_millis(5));
    }
    removed.store(true, Ordering::Relaxed);
    call(&t, "nvmf_subsystem_remove_ns", json!({ "nqn": NQN, "nsid": 1 }));
    let (good, refused): (Vec<u64>, u32) = good_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(good.len() >= 500);
    assert!(refused > 0, "the removal came after the last write ({} acknowledged): nothing was tested", good.len());
    // Every acknowledged write is in the file.
    let file = std::fs::read(&img.0).unwrap();
    for tag in &good {
        let at = (*tag * 4096) as usize;
        assert!(file[at..at + 4096] == pattern(4096, *tag)[..], "acknowledged write {tag} is not in the file");
    }
    call(&t, "nvmf_delete_subsystem", json!({ "nqn": NQN }));
    deleted.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap(), "the queue of a deleted subsystem stays up");
    assert!(Controller::connect(addr, NQN, &opts(0)).is_err(), "connect to a deleted subsystem");
    drop(ctrl);
}

#[test]
fn a_removed_host_is_disconnected_and_refused() {
    let (t, addr) = empty_target();
    let o = opts(0);
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN }));
    assert!(Controller::connect(addr, NQN, &o).is_err(), "a host not on the list");
    call(&t, "nvmf_subsystem_add_host", json!({ "nqn": NQN, "host": o.hostnqn }));
    let ctrl = Controller::connect(addr, NQN, &o).unwrap();
    let ctrls = call(&t, "nvmf_subsystem_get_controllers", json!({ "nqn": NQN }));
    assert_eq!(ctrls[0]["hostnqn"], o.hostnqn.as_str());
    assert_eq!(ctrls[0]["cntlid"], ctrl.cntlid());
    let r = call(&t, "nvmf_subsystem_remove_host", json!({ "nqn": NQN, "host": o.hostnqn }));
    assert_eq!(r["disconnected"], json!([ctrl.cntlid()]));
    let deadline = Instant::now() + Duration::from_secs(8);
    while ctrl.identify_controller().is_ok() {
        assert!(Instant::now() < deadline, "the removed host's controller still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Controller::connect(addr, NQN, &o).is_err(), "the removed host connects again");
    drop(ctrl);
}

#[test]
fn a_discovery_controller_hears_of_a_new_listener() {
    let (t, addr) = empty_target();
    call(&t, "nvmf_create_subsystem", json!({ "nqn": NQN, "allow_any_host": true }));
    let d = Controller::connect(addr, ff_nvmf_nqn(), &opts(0)).unwrap();
    let before = d.discovery_log().unwrap();
    assert_eq!(before.iter().filter(|e| e.subnqn == NQN).count(), 1, "{before:?}");
    let gen_before = genctr(&d);
    let r = call(&t, "nvmf_add_listener", json!({ "listen_address": { "traddr": "127.0.0.1", "trsvcid": "0" } }));
    wait_event(&d, NOTICE_DISCOVERY_CHANGED);
    assert!(genctr(&d) > gen_before, "the generation counter moves");
    let after = d.discovery_log().unwrap();
    let port: u16 = r["trsvcid"].as_str().unwrap().parse().unwrap();
    assert!(after.iter().any(|e| e.subnqn == NQN && e.socket_addr().map(|a| a.port()) == Some(port)), "{after:?}");
    d.shutdown().unwrap();
}

fn ff_nvmf_nqn() -> &'static str {
    "nqn.2014-08.org.nvmexpress.discovery"
}

/// The discovery log's generation counter (bytes 0..8 of its header).
fn genctr(d: &Controller) -> u64 {
    let h = d.get_log_page(0x70, 16).unwrap();
    u64::from_le_bytes(h[0..8].try_into().unwrap())
}
