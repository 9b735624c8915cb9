//! Interop with SPDK (issue #14, "tests cover each client above that can run here"): SPDK's
//! `spdk_nvme_perf` against our target and our `ferrofabric perf` against SPDK's `nvmf_tgt`, with NVMe
//! in-band authentication (DH-HMAC-CHAP, one way and both ways) and with TLS 1.3 PSK secure channels,
//! plus wrong-key runs that must be refused while our target keeps serving. Each run is short (1 s)
//! and checks that I/O completed without errors; nothing is timed.
//!
//! Needs an SPDK build (`$FF_SPDK_DIR`, else /work/spdk: `build/bin/{nvmf_tgt,spdk_nvme_perf}`),
//! hugepages (root) and the `ferrofabric` binary (`$FF_BIN`, else the workspace's target dir: build it
//! with `cargo build -p ferrofabric`, the bench crate cannot depend on it). Without one of them a test
//! prints `SKIP: <test>: <reason>` and returns; set `FF_INTEROP_REQUIRE=1` to make that a failure.
//!
//! The tests take one lock: every SPDK process busy-polls a core and the machines this runs on have
//! two. Each test has its own SPDK shared-memory ids and removes the hugepage and runtime files those
//! ids left once its processes have exited.

use ff_bench::procs::{Daemon, ensure_hugepages, free_port, log_file};
use ff_bench::spdk::clients::{self, Measured, PerfDhchap, PerfTls, Probe, Run};
use ff_bench::spdk::procs::{self as spdk_procs, OURS_NQN, SPDK_NQN, SpdkBuild, SpdkTls};
use ff_bench::target::Workload;
use ff_bench::tls::{self, psk};
use ff_perf::Pattern;
use serde_json::{Value, json};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The host NQN every key of these tests is bound to.
const HOST: &str = tls::HOSTNQN;

/// One test at a time (see the module comment).
static SERIAL: Mutex<()> = Mutex::new(());

/// `$FF_SPDK_DIR`, else /work/spdk, when it holds nvmf_tgt and spdk_nvme_perf; else the tree looked at.
fn spdk_dir() -> Result<PathBuf, PathBuf> {
    let d = std::env::var_os("FF_SPDK_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or("/work/spdk".into());
    if d.join("build/bin/nvmf_tgt").is_file() && d.join("build/bin/spdk_nvme_perf").is_file() { Ok(d) } else { Err(d) }
}

/// `$FF_BIN`, else the workspace's built `ferrofabric` (release first), when it exists.
fn ff_bin() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("FF_BIN").map(PathBuf::from) {
        return b.is_file().then_some(b);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    ["release", "debug"].iter().map(|p| target.join(p).join("ferrofabric")).find(|b| b.is_file())
}

/// Whether `ff target --help` and `ff perf --help` offer every flag these tests use.
fn has_flags(ff: &Path) -> Result<(), String> {
    let help = |sub: &str| {
        Command::new(ff)
            .args([sub, "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let (target, perf) = (help("target"), help("perf"));
    for f in ["--tls-listen", "--psk", "--dhchap-key", "--dhchap-ctrl-key"] {
        if !target.contains(f) {
            return Err(format!("{} target has no {f}", ff.display()));
        }
    }
    for f in ["--psk", "--hostnqn", "--dhchap-secret", "--dhchap-ctrl-secret", "--json"] {
        if !perf.contains(f) {
            return Err(format!("{} perf has no {f}", ff.display()));
        }
    }
    Ok(())
}

/// What a test runs with; dropping it removes what the SPDK processes of its shared-memory ids left.
struct Env {
    spdk: SpdkBuild,
    ff: PathBuf,
    /// Logs, configs and key files of the test.
    dir: PathBuf,
    /// `nvmf_tgt`'s shared-memory id; `spdk_nvme_perf` runs with `shm + 1`.
    shm: u32,
    target_cpu: usize,
    client_cpu: usize,
    _serial: MutexGuard<'static, ()>,
}

impl Env {
    /// The environment of test `name`, or `None` (after saying why) when something it needs is missing.
    fn new(name: &str, shm: u32) -> Option<Env> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let skip = |why: String| {
            assert!(std::env::var_os("FF_INTEROP_REQUIRE").is_none(), "{name}: FF_INTEROP_REQUIRE is set but {why}");
            eprintln!("SKIP: {name}: {why}");
        };
        let dir = match spdk_dir() {
            Ok(d) => d,
            Err(d) => {
                skip(format!(
                    "no SPDK build: {}/build/bin lacks nvmf_tgt or spdk_nvme_perf (set FF_SPDK_DIR)",
                    d.display()
                ));
                return None;
            }
        };
        if let Err(e) = ensure_hugepages(2048) {
            skip(format!("no hugepages for SPDK: {e:#}"));
            return None;
        }
        let Some(ff) = ff_bin() else {
            skip("no ferrofabric binary (cargo build -p ferrofabric, or set FF_BIN)".into());
            return None;
        };
        if let Err(why) = has_flags(&ff) {
            skip(why);
            return None;
        }
        let tmp = std::env::temp_dir().join(format!("ff-spdk-interop-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("test dir");
        let client_cpu = usize::from(ff_perf::affinity::online_cpus() > 1);
        Some(Env { spdk: SpdkBuild { dir }, ff, dir: tmp, shm, target_cpu: 0, client_cpu, _serial: serial })
    }

    /// A key file as SPDK's file keyring reads it (mode 0600, no trailing newline).
    fn key_file(&self, name: &str, key: &str) -> PathBuf {
        let p = self.dir.join(name);
        psk::write_key_file(&p, key).expect("key file");
        p
    }

    /// Our target, busy poll on the target CPU, its null namespace under [`OURS_NQN`], with `extra`
    /// flags; `tls_port` adds a TLS listener (with `--psk` in `extra`) and is then what it waits for.
    fn ours(&self, extra: &[String], tls_port: Option<u16>) -> Daemon {
        let plain = free_port().expect("port");
        let mut cmd = spdk_procs::ours_command(&self.ff, self.target_cpu, plain);
        cmd.args(["--poll", "busy"]).args(extra).env("RUST_LOG", "warn");
        if let Some(p) = tls_port {
            cmd.args(["--tls-listen", &format!("127.0.0.1:{p}")]);
            if !tls::kernel_tls() {
                cmd.arg("--no-ktls");
            }
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], tls_port.unwrap_or(plain)));
        let log = log_file(&self.dir, "target-ours.log").expect("log");
        Daemon::start("ours", cmd, addr, log, Duration::from_secs(20)).expect("starting our target")
    }

    /// SPDK's `nvmf_tgt` with `config` (made for `port`).
    fn spdk_target(&self, config: &Value, port: u16) -> Daemon {
        spdk_procs::start_nvmf_tgt(&self.spdk, "spdk", config, port, self.target_cpu, self.shm, &self.dir)
            .expect("starting nvmf_tgt")
    }

    /// `spdk_nvme_perf`, 4K randread QD8 for 1 s, against `addr`.
    fn spdk_perf(
        &self,
        addr: SocketAddr,
        tls: Option<PerfTls>,
        dhchap: Option<&PerfDhchap>,
    ) -> anyhow::Result<Measured> {
        let run = Run {
            workload: Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 8 },
            addr,
            nqn: OURS_NQN,
            seconds: 1,
            warmup: 0,
            cpu: self.client_cpu,
            shm_id: self.shm + 1,
            probe: Probe::None,
            tls,
        };
        let r = clients::spdk_perf_with(&self.spdk, &run, dhchap);
        remove_spdk_files(self.shm + 1);
        r
    }

    /// `ferrofabric perf` on the client CPU against SPDK's subsystem at `addr`: `-o size -w pattern -q qd`
    /// for 1 s, no warm-up, plus `extra`. Its JSON report, or why it failed (exit status and stderr).
    fn ff_perf(&self, addr: SocketAddr, size: &str, pattern: &str, qd: u16, extra: &[&str]) -> Result<Value, String> {
        let mut cmd = Command::new(&self.ff);
        cmd.args(["perf", "--addr", &addr.to_string(), "--nqn", SPDK_NQN, "--hostnqn", HOST]);
        cmd.args(["-q", &qd.to_string(), "-o", size, "-w", pattern, "-t", "1", "--warmup", "0", "--json"]);
        cmd.args(["--cpus", &self.client_cpu.to_string()]).args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("starting ferrofabric perf: {e}"))?;
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default());
        match status {
            None => Err(format!("ferrofabric perf did not finish within 120 s: {stderr}")),
            Some(st) if !st.success() => Err(format!("ferrofabric perf exited with {st}: {stderr}")),
            Some(_) => serde_json::from_str(&stdout).map_err(|e| format!("perf --json output: {e}: {stdout}")),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // The test's daemons are gone by now (declared after the Env, dropped before it).
        remove_spdk_files(self.shm);
        remove_spdk_files(self.shm + 1);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what SPDK processes with shared-memory id `shm` leave behind once they are gone: their
/// hugepage files (`/dev/hugepages/spdk<shm>map_*`), DPDK's runtime dir and nvmf_tgt's trace file.
fn remove_spdk_files(shm: u32) {
    let prefix = format!("spdk{shm}map_");
    if let Ok(rd) = std::fs::read_dir("/dev/hugepages") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/spdk{shm}"));
    let _ = std::fs::remove_file(format!("/dev/shm/nvmf_trace.{shm}"));
}

/// A fresh DH-HMAC-CHAP secret, `DHHC-1:00:<base64(key || crc32_le(key))>:`: a 32-byte random key used
/// untransformed (`00`), as `nvme gen-dhchap-key` prints one and SPDK's keyring and ours parse it.
fn dhchap_secret() -> String {
    let key = psk::random_key().expect("random key");
    let mut b = key.to_vec();
    b.extend_from_slice(&psk::crc32(&key).to_le_bytes());
    format!("DHHC-1:00:{}:", psk::base64(&b))
}

/// A fresh TLS PSK in the interchange format (`NVMeTLSkey-1:01:...:`).
fn tls_psk() -> String {
    psk::interchange(&psk::random_key().expect("random key"))
}

/// A run that completed I/O and reported no error.
fn assert_served(what: &str, m: &anyhow::Result<Measured>) {
    match m {
        Ok(m) => {
            assert!(m.iops > 0.0, "{what}: no I/O completed: {m:?}");
            assert!(m.errors.is_empty(), "{what}: errors: {:?}", m.errors);
            eprintln!("{what}: {:.0} IOPS, no errors", m.iops);
        }
        Err(e) => panic!("{what}: {e:#}"),
    }
}

/// Our target's log says `what`: a refused run failed for the reason the test means (spdk_nvme_perf
/// exits 0 without a controller, and the end of its output names no reason).
fn assert_logged(t: &Daemon, what: &str) {
    let log = std::fs::read_to_string(&t.log).unwrap_or_default();
    let line = log.lines().find(|l| l.contains(what));
    assert!(line.is_some(), "our target's log has no {what:?}: {log}");
    eprintln!("  our target: {}", line.unwrap_or_default().trim());
}

/// `ferrofabric perf --json`'s report of a run that completed I/O without errors.
fn assert_ff_served(what: &str, r: Result<Value, String>) {
    let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    let ios = r["ios"].as_u64().unwrap_or(0);
    assert!(ios > 0, "{what}: no I/O completed: {r}");
    assert_eq!(r["errors"].as_u64(), Some(0), "{what}: errors in {r}");
    eprintln!("{what}: {ios} I/Os, {:.0} IOPS, errors: 0", r["iops"].as_f64().unwrap_or(f64::NAN));
}

/// Our target's flags for DH-HMAC-CHAP: [`HOST`] must authenticate with `host`; with `ctrl` the target
/// proves itself with that secret too (bidirectional).
fn dhchap_flags(host: &str, ctrl: Option<&str>) -> Vec<String> {
    let mut v = vec!["--dhchap-key".to_string(), format!("{HOST}={host}")];
    if let Some(c) = ctrl {
        v.extend(["--dhchap-ctrl-key".to_string(), format!("{HOST}={c}")]);
    }
    v
}

#[test]
fn spdk_perf_dhchap_unidirectional_against_ours() {
    let Some(env) = Env::new("spdk_perf_dhchap_unidirectional_against_ours", 4720) else { return };
    let key = dhchap_secret();
    let mut t = env.ours(&dhchap_flags(&key, None), None);
    let auth = PerfDhchap { hostnqn: HOST.into(), key_file: env.key_file("host.key", &key), ctrlr_key_file: None };
    assert_served("spdk_nvme_perf DH-HMAC-CHAP -> ours", &env.spdk_perf(t.addr, None, Some(&auth)));
    assert!(t.alive(), "our target exited; see {}", t.log.display());
}

#[test]
fn spdk_perf_dhchap_bidirectional_against_ours() {
    let Some(env) = Env::new("spdk_perf_dhchap_bidirectional_against_ours", 4722) else { return };
    let (key, ctrl) = (dhchap_secret(), dhchap_secret());
    let mut t = env.ours(&dhchap_flags(&key, Some(&ctrl)), None);
    let auth = PerfDhchap {
        hostnqn: HOST.into(),
        key_file: env.key_file("host.key", &key),
        ctrlr_key_file: Some(env.key_file("ctrl.key", &ctrl)),
    };
    assert_served("spdk_nvme_perf DH-HMAC-CHAP bidirectional -> ours", &env.spdk_perf(t.addr, None, Some(&auth)));
    assert!(t.alive(), "our target exited; see {}", t.log.display());
}

#[test]
fn spdk_perf_wrong_dhchap_keys_are_refused_and_ours_keeps_serving() {
    let Some(env) = Env::new("spdk_perf_wrong_dhchap_keys_are_refused_and_ours_keeps_serving", 4724) else {
        return;
    };
    let (key, ctrl) = (dhchap_secret(), dhchap_secret());
    let mut t = env.ours(&dhchap_flags(&key, Some(&ctrl)), None);
    let (good, good_ctrl) = (env.key_file("host.key", &key), env.key_file("ctrl.key", &ctrl));
    let (bad, bad_ctrl) = (env.key_file("bad.key", &dhchap_secret()), env.key_file("bad-ctrl.key", &dhchap_secret()));

    // A wrong host secret: our target refuses the host.
    let wrong_host = PerfDhchap { hostnqn: HOST.into(), key_file: bad, ctrlr_key_file: Some(good_ctrl.clone()) };
    let e = env.spdk_perf(t.addr, None, Some(&wrong_host)).expect_err("a wrong host secret must not connect");
    eprintln!("wrong host secret, spdk_nvme_perf: {e:#}");
    assert!(t.alive(), "our target exited after a wrong host secret; see {}", t.log.display());
    assert_logged(&t, "host response does not match the host secret");

    // A wrong controller secret: the host refuses our target (it cannot prove the secret it was given).
    let wrong_ctrl = PerfDhchap { hostnqn: HOST.into(), key_file: good.clone(), ctrlr_key_file: Some(bad_ctrl) };
    let e = env.spdk_perf(t.addr, None, Some(&wrong_ctrl)).expect_err("a wrong controller secret must not connect");
    eprintln!("wrong controller secret, spdk_nvme_perf: {e:#}");
    assert!(t.alive(), "our target exited after a wrong controller secret; see {}", t.log.display());
    // SPDK's host says "controller challenge mismatch" and tells our target with an AUTH_Failure2.
    assert_logged(&t, "peer reported failure");

    let right = PerfDhchap { hostnqn: HOST.into(), key_file: good, ctrlr_key_file: Some(good_ctrl) };
    assert_served("spdk_nvme_perf DH-HMAC-CHAP after the refusals", &env.spdk_perf(t.addr, None, Some(&right)));
    assert!(t.alive(), "our target exited; see {}", t.log.display());
}

#[test]
fn spdk_perf_tls_against_ours() {
    let Some(env) = Env::new("spdk_perf_tls_against_ours", 4726) else { return };
    let key = tls_psk();
    let port = free_port().expect("port");
    let mut t = env.ours(&["--psk".into(), format!("{HOST}={key}")], Some(port));
    let tls = PerfTls { hostnqn: HOST.into(), psk_file: env.key_file("psk.key", &key) };
    assert_served("spdk_nvme_perf -S ssl -> ours", &env.spdk_perf(t.addr, Some(tls), None));
    assert!(t.alive(), "our target exited; see {}", t.log.display());
}

#[test]
fn spdk_perf_wrong_psk_is_refused_and_ours_keeps_serving() {
    let Some(env) = Env::new("spdk_perf_wrong_psk_is_refused_and_ours_keeps_serving", 4728) else { return };
    let key = tls_psk();
    let port = free_port().expect("port");
    let mut t = env.ours(&["--psk".into(), format!("{HOST}={key}")], Some(port));
    let wrong = PerfTls { hostnqn: HOST.into(), psk_file: env.key_file("bad.key", &tls_psk()) };
    let e = env.spdk_perf(t.addr, Some(wrong), None).expect_err("a wrong PSK must not connect");
    eprintln!("wrong PSK, spdk_nvme_perf: {e:#}");
    assert!(t.alive(), "our target exited after a wrong PSK; see {}", t.log.display());
    assert_logged(&t, "different PSKs");
    let right = PerfTls { hostnqn: HOST.into(), psk_file: env.key_file("psk.key", &key) };
    assert_served("spdk_nvme_perf -S ssl after the refusal", &env.spdk_perf(t.addr, Some(right), None));
    assert!(t.alive(), "our target exited; see {}", t.log.display());
}

#[test]
fn ff_perf_tls_against_spdk() {
    let Some(env) = Env::new("ff_perf_tls_against_spdk", 4730) else { return };
    let key = tls_psk();
    let port = free_port().expect("port");
    let tls = SpdkTls { key_file: env.key_file("psk.key", &key), hostnqn: HOST.into() };
    let mut t = env.spdk_target(&spdk_procs::nvmf_tgt_config(port, true, Some(&tls)), port);
    assert_ff_served(
        "ff perf --psk 4K randread QD8 -> spdk",
        env.ff_perf(t.addr, "4K", "randread", 8, &["--psk", &key]),
    );
    if tls::kernel_tls() {
        // The default above used kernel TLS: the user-space records too.
        assert_ff_served(
            "ff perf --psk --no-ktls 4K randread QD8 -> spdk",
            env.ff_perf(t.addr, "4K", "randread", 8, &["--psk", &key, "--no-ktls"]),
        );
    }
    // SPDK's ssl sock is slow at 128K here: only that it completes, without errors.
    assert_ff_served("ff perf --psk 128K read QD16 -> spdk", env.ff_perf(t.addr, "128K", "read", 16, &["--psk", &key]));
    assert!(t.alive(), "nvmf_tgt exited; see {}", t.log.display());
}

/// `nvmf_tgt`'s configuration for DH-HMAC-CHAP: the plain one (posix sock) with the subsystem closed to
/// all hosts but [`HOST`], which must authenticate with key `hkey` (and prove the controller with `ckey`
/// when `ctrl_key` is given), both from SPDK's file keyring.
fn spdk_dhchap_config(port: u16, host_key: &Path, ctrl_key: Option<&Path>) -> Value {
    let mut cfg = spdk_procs::nvmf_tgt_config(port, true, None);
    let mut keys = vec![json!({"method": "keyring_file_add_key", "params": {"name": "hkey", "path": host_key}})];
    let mut host = json!({"nqn": SPDK_NQN, "host": HOST, "dhchap_key": "hkey"});
    if let Some(c) = ctrl_key {
        keys.push(json!({"method": "keyring_file_add_key", "params": {"name": "ckey", "path": c}}));
        host["dhchap_ctrlr_key"] = "ckey".into();
    }
    let subsystems = cfg["subsystems"].as_array_mut().expect("subsystems");
    let nvmf = subsystems.iter_mut().find(|s| s["subsystem"] == "nvmf").expect("nvmf subsystem");
    let calls = nvmf["config"].as_array_mut().expect("nvmf config");
    for c in calls.iter_mut().filter(|c| c["method"] == "nvmf_create_subsystem") {
        c["params"]["allow_any_host"] = false.into();
    }
    calls.push(json!({"method": "nvmf_subsystem_add_host", "params": host}));
    subsystems.insert(0, json!({"subsystem": "keyring", "config": keys}));
    cfg
}

#[test]
fn ff_perf_dhchap_unidirectional_against_spdk() {
    let Some(env) = Env::new("ff_perf_dhchap_unidirectional_against_spdk", 4732) else { return };
    let key = dhchap_secret();
    let port = free_port().expect("port");
    let mut t = env.spdk_target(&spdk_dhchap_config(port, &env.key_file("host.key", &key), None), port);
    assert_ff_served(
        "ff perf --dhchap-secret -> spdk",
        env.ff_perf(t.addr, "4K", "randread", 8, &["--dhchap-secret", &key]),
    );
    assert!(t.alive(), "nvmf_tgt exited; see {}", t.log.display());
}

#[test]
fn ff_perf_dhchap_bidirectional_against_spdk() {
    let Some(env) = Env::new("ff_perf_dhchap_bidirectional_against_spdk", 4734) else { return };
    let (key, ctrl) = (dhchap_secret(), dhchap_secret());
    let port = free_port().expect("port");
    let config = spdk_dhchap_config(port, &env.key_file("host.key", &key), Some(&env.key_file("ctrl.key", &ctrl)));
    let mut t = env.spdk_target(&config, port);
    assert_ff_served(
        "ff perf --dhchap-secret --dhchap-ctrl-secret -> spdk",
        env.ff_perf(t.addr, "4K", "randread", 8, &["--dhchap-secret", &key, "--dhchap-ctrl-secret", &ctrl]),
    );
    assert!(t.alive(), "nvmf_tgt exited; see {}", t.log.display());
}
