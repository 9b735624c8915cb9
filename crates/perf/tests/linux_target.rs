//! The real-world bar for the host side: the Linux kernel's NVMe/TCP target (nvmet in a QEMU guest from
//! `shared/tools/linux-nvme-vm`, reached through a forwarded loopback port) serves our discover, identify
//! and a verify perf run (4K random writes, each read back), without and with header and data digests.
//! Needs root and the VM tool (CI has both); skips loudly elsewhere. The guest is emulated (about 1.5K
//! IOPS): this asserts behaviour, never speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_initiator::{Controller, HostOptions};
use ff_nvme_tcp::Digests;
use ff_perf::{Pattern, PerfConfig};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NQN: &str = "nqn.2026-11.io.ferrofabric:linux-target-perf";

/// The VM; dropping it stops QEMU (SIGTERM lets run-vm take QEMU down with it), also when a check panics.
struct Vm {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Vm {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // `child` is our own, not yet reaped: its pid still names it.
        let _ =
            rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Boots the guest target forwarding `port` to its 4420 and waits for `NVMET-READY`.
fn boot(port: u16) -> Vm {
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let mut child = Command::new(&vm)
        .args(["--forward", &format!("127.0.0.1:{port}:4420"), "--timeout", "300", "--env", "NVMET_QUIET=1"])
        .arg(vm.with_file_name("nvmet-target.sh"))
        .args(["4420", NQN, "256"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run-vm starts");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel();
    for (name, stream) in [
        ("guest", child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)),
        ("run-vm", child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)),
    ] {
        let (log, tx) = (log.clone(), tx.clone());
        let Some(stream) = stream else { continue };
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push(format!("{name}: {line}"));
                }
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let vm = Vm { child, log };
    wait_ready(&vm, &rx);
    vm
}

fn wait_ready(vm: &Vm, rx: &Receiver<String>) {
    // A first run downloads packages and builds the guest image: allow for it.
    let deadline = Instant::now() + Duration::from_secs(280);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("NVMET-READY") => {
                eprintln!("linux target: {l}");
                return;
            }
            Ok(l) if l.contains("NVMET-FAILED") => panic!("guest target failed: {l}\n{}", vm.log()),
            Ok(_) => {}
            Err(_) => panic!("no NVMET-READY from the guest in time\n{}", vm.log()),
        }
    }
}

fn host(digests: Digests) -> HostOptions {
    HostOptions {
        digests,
        io_queues: 0,
        connect_timeout: Duration::from_secs(20),
        command_timeout: Duration::from_secs(20),
        ..HostOptions::default()
    }
}

#[test]
fn discover_identify_and_verify_against_the_linux_kernel_target() {
    let name = "discover_identify_and_verify_against_the_linux_kernel_target";
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why}");
        return;
    }
    let port = free_port();
    let vm = boot(port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Discovery: the log names the guest's own address, not the forwarded one; the NQN is what matters.
    let entries = ff_initiator::discover(addr, &host(Digests::default()))
        .unwrap_or_else(|e| panic!("discover: {e}\n{}", vm.log()));
    assert!(entries.iter().any(|e| e.subnqn == NQN), "{NQN} not in {entries:?}");

    for digests in [Digests::default(), Digests { header: true, data: true }] {
        let c = Controller::connect(addr, NQN, &host(digests))
            .unwrap_or_else(|e| panic!("connect ({digests:?}): {e}\n{}", vm.log()));
        let id = c.identify_controller().unwrap();
        assert_eq!(id.subnqn, NQN);
        assert!(!id.model.is_empty() && id.cntrltype == 1, "{id:?}");
        let nss = c.active_namespaces().unwrap();
        assert_eq!(nss.first(), Some(&1), "{nss:?}");
        let ns = c.identify_namespace(1).unwrap();
        assert!(ns.nsze > 0 && ns.block_size >= 512, "{ns:?}");
        assert!(ns.nsze * u64::from(ns.block_size) >= 200 << 20, "a 256 MB namespace: {ns:?}");
        c.shutdown().unwrap();

        let cfg = PerfConfig {
            addr,
            nqn: NQN.into(),
            pattern: Pattern::RandWrite,
            queue_depth: 8,
            io_size: 4096,
            seconds: 3.0,
            warmup_seconds: 0.0,
            verify: true,
            size: Some(16 << 20),
            hdgst: digests.header,
            ddgst: digests.data,
            command_timeout: Duration::from_secs(20),
            ..PerfConfig::default()
        };
        let r = ff_perf::run(&cfg).unwrap_or_else(|e| panic!("perf verify ({digests:?}): {e}\n{}", vm.log()));
        eprintln!("{name} ({digests:?}):\n{}", r.render());
        assert_eq!(r.errors, 0, "{}", r.render());
        assert!(r.verify_counts.writes > 0 && r.verify_counts.checked_reads > 0, "{:?}", r.verify_counts);
    }
    drop(vm);
}
