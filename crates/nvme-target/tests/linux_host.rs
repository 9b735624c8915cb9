//! The real-world bar: the Linux kernel's NVMe/TCP host (nvme-cli + fio in a QEMU guest, from
//! `shared/tools/linux-nvme-vm`) uses our target as a disk: discovery, connect with and without
//! digests, id-ctrl, id-ns, fio write+verify (4k random, 128k sequential), reads, disconnect.
//! Runs on the RAM and the file backend, on epoll and io_uring (where the file namespace's I/O goes
//! through each reactor's ring, which the counters prove). Needs root and the VM tool (CI has both); skips loudly
//! elsewhere. The guest is emulated: this proves behaviour, never speed.

use ff_blockdev::{BackendSpec, DevStats};
use ff_nvme_tcp::target::C2hSuccess;
use ff_target::{ReactorStats, TargetOptions, config::DEFAULT_NQN};
use std::path::PathBuf;
use std::process::Command;

/// Starts a target on an ephemeral loopback port and asserts the guest smoke script passes against it;
/// returns the reactors' final counters (`None` when skipped).
fn smoke(name: &str, backend: BackendSpec, sock: ff_sock::Backend) -> Option<Vec<ReactorStats>> {
    smoke_with(name, backend, sock, ff_target::AcceptMode::Acceptor, C2hSuccess::SqFlowOff)
}

fn smoke_with(
    name: &str,
    backend: BackendSpec,
    sock: ff_sock::Backend,
    accept: ff_target::AcceptMode,
    c2h_success: C2hSuccess,
) -> Option<Vec<ReactorStats>> {
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why}");
        return None;
    }
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, backend);
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.cores = 2;
    o.sock.backend = sock;
    o.accept = accept;
    o.c2h_success = c2h_success;
    let t = ff_target::start(&o).expect("target starts");
    assert!(t.sock_backends.iter().all(|b| *b == sock), "{name}: reactors run {:?}, not {sock}", t.sock_backends);
    let port = t.io_addrs[0].port();
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let out = Command::new(&vm)
        .args(["--timeout", "500", "--env", "SMOKE_READ_SECONDS=3", "--env", "SMOKE_QUIET=1"])
        .arg(vm.with_file_name("nvme-host-smoke.sh"))
        .args(["10.0.2.2", &port.to_string(), DEFAULT_NQN])
        .output()
        .expect("run-vm runs");
    let stats = t.stop_and_report();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("passed,")) {
        eprintln!("{name}: {line}");
    }
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    assert!(
        out.status.success() && last.ends_with(" 0 failed") && !last.starts_with("0 passed"),
        "{name}: Linux host smoke failed (exit {:?}, last line {last:?})\n--- guest ---\n{stdout}\n--- run-vm ---\n{stderr}",
        out.status.code()
    );
    Some(stats)
}

#[test]
fn linux_host_uses_a_ram_namespace() {
    smoke("linux_host_uses_a_ram_namespace", "ram".parse().unwrap(), ff_sock::Backend::Epoll);
}

#[test]
fn linux_host_uses_a_file_namespace() {
    let dir = std::env::temp_dir().join(format!("ff-target-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // O_DIRECT file backend, created at 256 MiB: FUA and Flush must reach the file.
    let mut spec: BackendSpec = format!("file:{}", dir.join("ns1.img").display()).parse().unwrap();
    spec.size = Some(256 << 20);
    smoke("linux_host_uses_a_file_namespace", spec, ff_sock::Backend::Epoll);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn linux_host_uses_a_ram_namespace_on_io_uring_with_multishot_accept_and_c2h_success_always() {
    // Every reactor accepts on its own SO_REUSEPORT listener: on io_uring a multishot accept installs
    // the host's connections straight into the ring's fixed-file table. Reads complete with C2HData
    // SUCCESS although the Linux host keeps SQ flow control on (SPDK's target default).
    let name = "linux_host_uses_a_ram_namespace_on_io_uring_with_multishot_accept_and_c2h_success_always";
    let Some(stats) = smoke_with(
        name,
        "ram".parse().unwrap(),
        ff_sock::Backend::Uring,
        ff_target::AcceptMode::Reactor,
        C2hSuccess::Always,
    ) else {
        return;
    };
    let multishot: u64 = stats.iter().map(|r| r.sock.accepts_multishot).sum();
    let plain: u64 = stats.iter().map(|r| r.sock.accepts_plain).sum();
    eprintln!("{name}: accepts multishot {multishot}, plain {plain}");
    assert!(multishot > 0 && plain == 0, "{name}: connections came in by multishot accept ({multishot}/{plain})");
}

#[test]
fn linux_host_uses_a_file_namespace_on_io_uring() {
    let name = "linux_host_uses_a_file_namespace_on_io_uring";
    let dir = std::env::temp_dir().join(format!("ff-target-file-uring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec: BackendSpec = format!("file:{}", dir.join("ns1.img").display()).parse().unwrap();
    spec.size = Some(256 << 20);
    let stats = smoke(name, spec, ff_sock::Backend::Uring);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(stats) = stats else { return };
    // Every read, write and flush of the file namespace went through a reactor's ring.
    let mut total = DevStats::default();
    let mut foreign = 0;
    for (i, r) in stats.iter().enumerate() {
        let mut dev = DevStats::default();
        for d in r.devs.iter().flatten() {
            add(&mut dev, d);
        }
        eprintln!(
            "{name}: reactor {i}: {:?}: enters {} sqes {} foreign {:?} file {dev:?}",
            r.backend, r.sock.uring_enters, r.sock.uring_sqes, r.foreign
        );
        foreign += r.foreign.sqes;
        add(&mut total, &dev);
    }
    assert!(total.reads > 0 && total.writes > 0, "{name}: the host did file I/O: {total:?}");
    assert!(
        total.uring_ios >= total.reads + total.writes + total.flushes,
        "{name}: every read, write and flush completed through the ring: {total:?}"
    );
    assert_eq!(foreign, total.uring_sqes, "{name}: the groups carried every SQE the file handles prepared");
    assert!(total.fsyncs >= total.flushes, "{name}: each flush synced the file: {total:?}");
    // Reads and writes used the reactor's registered arena (READ_FIXED/WRITE_FIXED).
    assert!(total.uring_fixed_sqes > 0, "{name}: registered buffers were used: {total:?}");
}

/// Adds the counters that matter here.
fn add(a: &mut DevStats, d: &DevStats) {
    a.reads += d.reads;
    a.writes += d.writes;
    a.flushes += d.flushes;
    a.fsyncs += d.fsyncs;
    a.dsync_writes += d.dsync_writes;
    a.errors += d.errors;
    a.uring_ios += d.uring_ios;
    a.uring_sqes += d.uring_sqes;
    a.short_ios += d.short_ios;
    a.uring_fixed_sqes += d.uring_fixed_sqes;
}

/// The Linux host follows a target reconfigured while it is connected: a subsystem and namespace
/// created by RPC are discovered and used; a namespace added, grown and removed reaches the kernel
/// through the namespace-changed AEN (nothing asks it to rescan); deleting the subsystem takes its
/// controller down. The guest script reports each step on a control port and the test answers with
/// the next change.
#[test]
fn linux_host_follows_live_reconfiguration() {
    use ff_rpc::Handler;
    use serde_json::json;
    use std::io::BufRead;
    let name = "linux_host_follows_live_reconfiguration";
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why}");
        return;
    }
    let nqn = "nqn.2026-12.io.ferrofabric:live";
    let o = TargetOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        discovery_listen: vec![],
        cores: 2,
        ..TargetOptions::default()
    };
    let t = ff_target::start(&o).expect("target starts");
    let m = t.manager();
    let call =
        |method: &str, p: serde_json::Value| m.call(method, Some(p)).unwrap_or_else(|e| panic!("{method}: {e:?}"));
    call("nvmf_create_subsystem", json!({ "nqn": nqn, "allow_any_host": true }));
    call("nvmf_subsystem_add_ns", json!({ "nqn": nqn, "namespace": { "backend": "ram", "size": "64M" } }));
    // The guest's steps arrive one per connection on the control port.
    let ctl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ctl_port = ctl.local_addr().unwrap().port();
    let (step_tx, steps) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for s in ctl.incoming().flatten() {
            let mut line = String::new();
            let _ = std::io::BufReader::new(s).read_line(&mut line);
            if step_tx.send(line.trim().to_string()).is_err() {
                return;
            }
        }
    });
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/live-reconfig.sh");
    let port = t.io_addrs[0].port();
    let guest = std::process::Command::new(&vm)
        .args(["--timeout", "400"])
        .arg(&script)
        .args(["10.0.2.2", &port.to_string(), nqn, &ctl_port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run-vm runs");
    let mut done = false;
    while let Ok(step) = steps.recv_timeout(std::time::Duration::from_secs(420)) {
        eprintln!("{name}: guest reports {step}");
        match step.as_str() {
            "connected" => call(
                "nvmf_subsystem_add_ns",
                json!({ "nqn": nqn, "namespace": { "nsid": 2, "backend": "ram", "size": "32M" } }),
            ),
            "saw-add" => call("nvmf_subsystem_resize_ns", json!({ "nqn": nqn, "nsid": 1, "size": "128M" })),
            "saw-resize" => call("nvmf_subsystem_remove_ns", json!({ "nqn": nqn, "nsid": 2 })),
            "saw-remove" => call("nvmf_delete_subsystem", json!({ "nqn": nqn })),
            _ => {
                done = true;
                break;
            }
        };
    }
    let out = guest.wait_with_output().expect("run-vm ends");
    t.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("passed,")) {
        eprintln!("{name}: {line}");
    }
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    assert!(
        done && out.status.success() && last.ends_with(" 0 failed") && !last.starts_with("0 passed"),
        "{name}: guest failed (exit {:?}, last line {last:?})\n--- guest ---\n{stdout}\n--- run-vm ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
