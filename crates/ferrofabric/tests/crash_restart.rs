//! Crash and restart with the Linux host attached (a QEMU guest from `shared/tools/linux-nvme-vm`):
//! the target, configured by RPC with a file namespace and saved with `save_config`, is killed with
//! SIGKILL while fio writes through the kernel's NVMe/TCP host, then started again from the saved file.
//! The host must reconnect by itself and fio's verify pass must find every block it wrote. Needs root
//! and the VM tool (CI has both); skips loudly elsewhere. Emulated: proves behaviour, never speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrofabric");
const NQN: &str = "nqn.2026-12.io.ferrofabric:crash";

fn rpc(sock: &Path, args: &[&str]) -> bool {
    Command::new(BIN)
        .arg("rpc")
        .arg("-s")
        .arg(sock)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn spawn_target(args: &[&str], sock: &Path, log: &Path) -> Child {
    let child = Command::new(BIN)
        .arg("target")
        .args(args)
        .arg("--rpc-socket")
        .arg(sock)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rpc(sock, &["ferrofabric_get_version"]) {
        assert!(
            Instant::now() < deadline,
            "the target did not come up: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn linux_host_survives_a_killed_target_restarted_from_its_saved_config() {
    let name = "linux_host_survives_a_killed_target_restarted_from_its_saved_config";
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why}");
        return;
    }
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let dir = std::env::temp_dir().join(format!("ff-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sock, cfg, img) = (dir.join("ff.sock"), dir.join("ff.toml"), dir.join("ns1.img"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut target =
        spawn_target(&["--empty", "--listen", &listen, "--no-discovery-port"], &sock, &dir.join("first.log"));
    assert!(rpc(&sock, &["nvmf_create_subsystem", &format!("nqn={NQN}"), "allow_any_host=true"]));
    let backend = format!("namespace.backend=file:{}", img.display());
    assert!(rpc(&sock, &["nvmf_subsystem_add_ns", &format!("nqn={NQN}"), &backend, "namespace.size=64M"]));
    assert!(rpc(&sock, &["save_config", &format!("path={}", cfg.display())]));

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
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/crash-restart.sh");
    let guest = Command::new(&vm)
        .args(["--timeout", "500"])
        .arg(&script)
        .args(["10.0.2.2", &port.to_string(), NQN, &ctl_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run-vm runs");
    let mut restarted = false;
    let mut done = false;
    while let Ok(step) = steps.recv_timeout(Duration::from_secs(520)) {
        eprintln!("{name}: guest reports {step}");
        match step.as_str() {
            "writing" => {
                // Mid-write: SIGKILL (no drain, no flush), a moment down, then the saved config.
                std::thread::sleep(Duration::from_secs(2));
                target.kill().unwrap();
                target.wait().unwrap();
                std::thread::sleep(Duration::from_secs(1));
                let cfg_arg = cfg.display().to_string();
                target = spawn_target(&["--config", &cfg_arg], &sock, &dir.join("second.log"));
                restarted = true;
            }
            _ => {
                done = true;
                break;
            }
        }
    }
    let out = guest.wait_with_output().expect("run-vm ends");
    let _ = target.kill();
    let _ = target.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("passed,")) {
        eprintln!("{name}: {line}");
    }
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    let ok = restarted && done && out.status.success() && last.ends_with(" 0 failed") && !last.starts_with("0 passed");
    let logs = ["first.log", "second.log"].map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ok,
        "{name}: restarted {restarted}, guest exit {:?}, last line {last:?}\n--- guest ---\n{stdout}\n--- run-vm ---\n{}\n\
         --- first target ---\n{}\n--- second target ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        logs[0],
        logs[1]
    );
}
