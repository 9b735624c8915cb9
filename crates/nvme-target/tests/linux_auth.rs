//! DH-HMAC-CHAP against the real Linux host: a 6.12 guest (`run-vm --kernel 6.12`) connects to our
//! targets with `nvme connect --dhchap-secret` (and `--dhchap-ctrl-secret`), its kernel log must say
//! the admin queue authenticated, it writes and reads back data, re-authenticates every queue
//! while reading, and a wrong secret is refused. One
//! target per hash / DH group policy, so a success proves that pair was used. Needs root and the VM
//! tool; skips loudly elsewhere. The guest is emulated: the times it prints are not performance.

use ff_nvme_auth::{HashId, OsRandom, Secret};
use ff_target::{HostAuthSpec, RunningTarget, TargetOptions};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The target's log, kept to count the queues it authenticated (the kernel logs only qid 0).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of this test process (both tests share it: each reads only its own target's lines).
fn capture() -> Log {
    static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let w = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || w.clone())
            .try_init();
        log
    })
    .clone()
}

const NQN: &str = "nqn.2026-12.io.ferrofabric:linux-auth";
/// The host NQN of each test (the log is shared, each test counts its own host's queues).
const HOST_UNI: &str = "nqn.2014-08.org.nvmexpress:uuid:6c1f0e1e-7a5b-4d55-9f0e-0a1b2c3d4e5f";
const HOST_BIDI: &str = "nqn.2014-08.org.nvmexpress:uuid:6c1f0e1e-7a5b-4d55-9f0e-0a1b2c3d4e60";
/// One guest at a time: two emulated guests on a small machine slow each other past timeouts.
static VM: Mutex<()> = Mutex::new(());

fn secret(hash: Option<HashId>) -> String {
    Secret::generate(hash, None, &mut OsRandom).unwrap().to_dhhc_string()
}

/// A target on an ephemeral port allowing only `hashes` / `groups` (empty: all).
fn target(hostnqn: &str, key: &str, ctrl: Option<&str>, hashes: &[&str], groups: &[&str]) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(NQN, "ram".parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.subsystems[0].allow_any_host = false;
    o.subsystems[0].auth_hosts = vec![HostAuthSpec {
        nqn: hostnqn.into(),
        dhchap_key: Some(key.into()),
        dhchap_ctrl_key: ctrl.map(str::to_string),
        psk: None,
    }];
    o.auth.hashes = hashes.iter().map(|s| s.to_string()).collect();
    o.auth.dhgroups = groups.iter().map(|s| s.to_string()).collect();
    ff_target::start(&o).expect("target starts")
}

fn run(name: &str, hostnqn: &str, bidirectional: bool, policies: &[(&[&str], &[&str])]) {
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why}");
        return;
    }
    let _one = VM.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let log = capture();
    let key = secret(None);
    let ctrl = bidirectional.then(|| secret(Some(HashId::Sha256)));
    let wrong = secret(None);
    let targets: Vec<RunningTarget> =
        policies.iter().map(|(h, g)| target(hostnqn, &key, ctrl.as_deref(), h, g)).collect();
    let ports: Vec<String> = targets.iter().map(|t| t.io_addrs[0].port().to_string()).collect();
    for ((h, g), p) in policies.iter().zip(&ports) {
        eprintln!("{name}: port {p}: hashes {h:?} dhgroups {g:?} (empty: all, strongest first)");
    }
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/auth-host.sh");
    let mut cmd = Command::new(&vm);
    cmd.args(["--kernel", "6.12", "--timeout", "500", "--env", &format!("WRONG_KEY={wrong}")]).arg(&script).args([
        "10.0.2.2",
        &ports.join(","),
        NQN,
        hostnqn,
        &key,
    ]);
    if let Some(c) = &ctrl {
        cmd.arg(c);
    }
    let out = cmd.output().expect("run-vm runs");
    for t in targets {
        t.stop();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.starts_with("TIME") || l.contains("passed,"))
    {
        eprintln!("{name}: {line}");
    }
    for line in stdout.lines().filter(|l| l.starts_with("AUTHLOG") && l.contains("authenticated")) {
        eprintln!("{name}: {line}");
    }
    // The target's side: every queue of every port authenticated, with the policy's hash and group.
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).to_string();
    let ours: Vec<&str> =
        text.lines().filter(|l| l.contains("queue authenticated with DH-HMAC-CHAP") && l.contains(hostnqn)).collect();
    let io_queues = ours.iter().filter(|l| !l.contains(" qid=0 ")).count();
    for l in &ours {
        if let Some(i) = l.find("qid=") {
            eprintln!("{name}: target: {}", &l[i..]);
        }
    }
    let reauth = ours.iter().filter(|l| l.contains("reauth=true")).count();
    eprintln!(
        "{name}: target: {} queues authenticated, {io_queues} of them I/O queues, {reauth} re-authentications",
        ours.len()
    );
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    assert!(
        out.status.success() && last.ends_with(" 0 failed") && !last.starts_with("0 passed"),
        "{name}: Linux host DH-HMAC-CHAP failed (exit {:?}, last line {last:?})\n--- guest ---\n{stdout}\n--- run-vm ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(io_queues >= policies.len(), "{name}: the target authenticated I/O queues on every port");
    assert!(reauth >= 2, "{name}: the host re-authenticated the admin and I/O queues ({reauth})");
}

#[test]
fn linux_host_authenticates_unidirectionally() {
    run(
        "linux_host_authenticates_unidirectionally",
        HOST_UNI,
        false,
        &[(&[], &[]), (&["sha256"], &["ffdhe2048"]), (&["sha384"], &["null"])],
    );
}

#[test]
fn linux_host_authenticates_bidirectionally() {
    run(
        "linux_host_authenticates_bidirectionally",
        HOST_BIDI,
        true,
        &[(&["sha256"], &["null"]), (&["sha384"], &["ffdhe3072"]), (&["sha512"], &["ffdhe2048"])],
    );
}
