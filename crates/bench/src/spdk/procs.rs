//! The NVMe/TCP targets of the side-by-side bench: our `ferrofabric target` and SPDK's `nvmf_tgt`, each
//! a [`Daemon`] started once and pinned to the target CPU. The machinery they share with the other
//! side-by-side benches (parking, CPU quota, CPU time, syscall counts, profiles) is [`crate::procs`].

pub use crate::procs::{
    CpuQuota, CpuSampler, Daemon, Profile, ProfileSummary, SyscallCount, ensure_hugepages, process_cpu_ns,
    profiling_works, syscall_counting_works,
};
use crate::procs::{free_port, log_file};
use anyhow::{Result, bail, ensure};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The NQN our targets serve in the bench.
pub const OURS_NQN: &str = "nqn.2026-11.io.ferrofabric:default";
/// The NQN SPDK's targets serve in the bench (the one SPDK's docs use).
pub const SPDK_NQN: &str = "nqn.2016-06.io.spdk:cnode1";

/// An SPDK build tree (what `shared/tools/spdk-peer/build.sh` produces).
#[derive(Clone, Debug, Serialize)]
pub struct SpdkBuild {
    /// The tree's root (holds `build/bin`).
    pub dir: PathBuf,
}

impl SpdkBuild {
    /// The build named by `dir`, else by `$FF_SPDK_DIR`; `Ok(None)` when neither names one, an error
    /// when the named tree lacks `nvmf_tgt` or `spdk_nvme_perf`.
    pub fn find(dir: Option<&Path>) -> Result<Option<SpdkBuild>> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => match std::env::var_os("FF_SPDK_DIR") {
                Some(d) if !d.is_empty() => PathBuf::from(d),
                _ => return Ok(None),
            },
        };
        let b = SpdkBuild { dir };
        for bin in [b.nvmf_tgt(), b.perf()] {
            ensure!(
                bin.is_file(),
                "SPDK build {}: {} is missing (build it with shared/tools/spdk-peer)",
                b.dir.display(),
                bin.display()
            );
        }
        Ok(Some(b))
    }

    /// `build/bin/nvmf_tgt`.
    pub fn nvmf_tgt(&self) -> PathBuf {
        self.dir.join("build/bin/nvmf_tgt")
    }

    /// `build/bin/spdk_nvme_perf`.
    pub fn perf(&self) -> PathBuf {
        self.dir.join("build/bin/spdk_nvme_perf")
    }
}

/// Which target serves a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TargetKind {
    /// `ferrofabric target`, busy poll, every default (C2HData SUCCESS only without SQ flow control).
    Ours,
    /// `ferrofabric target --c2h-success always` (what SPDK's target does by default).
    OursAlways,
    /// `ferrofabric target --poll event`: blocks in the wait syscall when idle.
    OursEvent,
    /// SPDK's `nvmf_tgt` with its TCP transport defaults (`c2h_success` on).
    Spdk,
    /// SPDK's `nvmf_tgt` with `c2h_success` off (`nvmf_create_transport -o`).
    SpdkC2hOff,
}

impl TargetKind {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Ours => "ours",
            TargetKind::OursAlways => "ours c2h=always",
            TargetKind::OursEvent => "ours event",
            TargetKind::Spdk => "spdk",
            TargetKind::SpdkC2hOff => "spdk c2h off",
        }
    }

    /// SPDK's target rather than ours.
    pub fn is_spdk(self) -> bool {
        matches!(self, TargetKind::Spdk | TargetKind::SpdkC2hOff)
    }

    /// The subsystem it serves.
    pub fn nqn(self) -> &'static str {
        if self.is_spdk() { SPDK_NQN } else { OURS_NQN }
    }
}

/// A running target process, resumed only while measured.
pub struct TargetProc {
    /// What it is.
    pub kind: TargetKind,
    /// The process.
    pub daemon: Daemon,
}

impl TargetProc {
    /// Starts one of ours from `ff_bin` on `cpu`: one reactor, a 1 GiB null namespace of 4 KiB blocks
    /// that leaves read buffers untouched (as SPDK's null bdev), no discovery port.
    pub fn start_ours(ff_bin: &Path, kind: TargetKind, cpu: usize, log_dir: &Path) -> Result<TargetProc> {
        let port = free_port()?;
        let (log, f) = log_file(log_dir, &format!("target-{}.log", kind.name().replace([' ', '='], "-")))?;
        let mut cmd = ours_command(ff_bin, cpu, port);
        match kind {
            TargetKind::Ours => cmd.args(["--poll", "busy"]),
            TargetKind::OursAlways => cmd.args(["--poll", "busy", "--c2h-success", "always"]),
            TargetKind::OursEvent => cmd.args(["--poll", "event"]),
            _ => bail!("{} is not ours", kind.name()),
        };
        cmd.env("RUST_LOG", "warn");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let daemon = Daemon::start(kind.name(), cmd, addr, (log, f), Duration::from_secs(20))?;
        Ok(TargetProc { kind, daemon })
    }

    /// Starts SPDK's `nvmf_tgt` on `cpu` from a JSON configuration: a 1 GiB null bdev of 4 KiB blocks
    /// in one subsystem open to any host, the posix sock implementation, the TCP transport's defaults
    /// except `c2h_success` for [`TargetKind::SpdkC2hOff`]. `shm_id` keeps its hugepage files apart.
    pub fn start_spdk(
        build: &SpdkBuild,
        kind: TargetKind,
        cpu: usize,
        shm_id: u32,
        log_dir: &Path,
    ) -> Result<TargetProc> {
        ensure!(kind.is_spdk(), "{} is not SPDK's", kind.name());
        let port = free_port()?;
        let config = nvmf_tgt_config(port, kind == TargetKind::Spdk, None);
        let daemon = start_nvmf_tgt(build, kind.name(), &config, port, cpu, shm_id, log_dir)?;
        Ok(TargetProc { kind, daemon })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Parks it (SIGSTOP): it uses no CPU until resumed.
    pub fn pause(&self) -> Result<()> {
        self.daemon.pause()
    }

    /// Resumes it (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.daemon.resume()
    }

    /// Whether it is still running (not exited).
    pub fn alive(&mut self) -> bool {
        self.daemon.alive()
    }
}

/// `taskset -c CPU ferrofabric target` as every side-by-side bench runs ours: an NVMe/TCP listener on
/// 127.0.0.1:`port`, one reactor, a 1 GiB null namespace of 4 KiB blocks that leaves read buffers
/// untouched (as SPDK's null bdev), no discovery port, no iSCSI, no RPC. Callers add the poll mode.
pub fn ours_command(ff_bin: &Path, cpu: usize, port: u16) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpu.to_string()]).arg(ff_bin).arg("target");
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--no-discovery-port", "--no-iscsi", "--nqn", OURS_NQN]);
    cmd.args(["--backend", "null-nofill", "--size", "1G", "--block-size", "4096", "--cores", "1", "--no-rpc"]);
    cmd
}

/// What an SPDK target needs for a TLS listener: the PSK in a keyring file and the one host allowed.
#[derive(Clone, Debug)]
pub struct SpdkTls {
    /// The interchange-format PSK file (absolute, mode 0600, no trailing newline).
    pub key_file: PathBuf,
    /// The host NQN the PSK belongs to (the TLS identity is `NVMe0R01 <host> <subsystem>`).
    pub hostnqn: String,
}

/// `nvmf_tgt`'s JSON configuration as the side-by-side benches run it: a 1 GiB null bdev of 4 KiB
/// blocks in subsystem [`SPDK_NQN`], a listener on 127.0.0.1:`port`, the TCP transport's defaults but
/// `c2h_success`. Plain (`tls: None`): the posix sock implementation and a subsystem open to any host.
/// TLS: the `ssl` sock implementation held to TLS 1.3 without kTLS, the key in the file keyring as
/// `key0`, a secure-channel listener, and only `tls.hostnqn` allowed, with that key (SPDK refuses a
/// secure channel on a subsystem open to any host).
pub fn nvmf_tgt_config(port: u16, c2h_success: bool, tls: Option<&SpdkTls>) -> serde_json::Value {
    use serde_json::json;
    let listener = json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()});
    let mut subsystems = Vec::new();
    let mut nvmf = vec![
        json!({"method": "nvmf_create_transport", "params": {"trtype": "TCP", "c2h_success": c2h_success}}),
        json!({"method": "nvmf_create_subsystem", "params": {"nqn": SPDK_NQN, "allow_any_host": tls.is_none(),
            "serial_number": "SPDK00000000000001", "model_number": "SPDK bdev Controller"}}),
        json!({"method": "nvmf_subsystem_add_ns", "params": {"nqn": SPDK_NQN, "namespace": {"bdev_name": "Null0"}}}),
    ];
    match tls {
        None => {
            subsystems.push(json!({"subsystem": "sock", "config": [
                {"method": "sock_set_default_impl", "params": {"impl_name": "posix"}}]}));
            nvmf.push(json!({"method": "nvmf_subsystem_add_listener",
                "params": {"nqn": SPDK_NQN, "listen_address": listener}}));
        }
        Some(t) => {
            subsystems.push(json!({"subsystem": "keyring", "config": [
                {"method": "keyring_file_add_key", "params": {"name": "key0", "path": t.key_file.display().to_string()}}]}));
            subsystems.push(json!({"subsystem": "sock", "config": [
                {"method": "sock_impl_set_options", "params": {"impl_name": "ssl", "tls_version": 13, "enable_ktls": false}}]}));
            nvmf.push(json!({"method": "nvmf_subsystem_add_listener",
                "params": {"nqn": SPDK_NQN, "secure_channel": true, "listen_address": listener}}));
            nvmf.push(json!({"method": "nvmf_subsystem_add_host",
                "params": {"nqn": SPDK_NQN, "host": t.hostnqn, "psk": "key0"}}));
        }
    }
    subsystems.push(json!({"subsystem": "bdev", "config": [
        {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 262_144, "block_size": 4096}}]}));
    subsystems.push(json!({"subsystem": "nvmf", "config": nvmf}));
    json!({ "subsystems": subsystems })
}

/// Starts `nvmf_tgt` on `cpu` with `config` (written next to its log in `log_dir`) and waits for its
/// listener on 127.0.0.1:`port`. `shm_id` keeps its hugepage files apart from other SPDK processes.
pub fn start_nvmf_tgt(
    build: &SpdkBuild,
    name: &str,
    config: &serde_json::Value,
    port: u16,
    cpu: usize,
    shm_id: u32,
    log_dir: &Path,
) -> Result<Daemon> {
    let stem = name.replace([' ', '/'], "-");
    let json_path = log_dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(config)? + "\n")?;
    let (log, f) = log_file(log_dir, &format!("target-{stem}.log"))?;
    let rpc = log_dir.join(format!("{stem}.rpc.sock"));
    let mut cmd = Command::new(build.nvmf_tgt());
    cmd.args(["-m", &format!("{:#x}", 1u64 << cpu), "-i", &shm_id.to_string(), "-s", "512"]);
    // Several SPDK targets share the core (only one runs at a time): skip the per-core lock files.
    cmd.arg("--disable-cpumask-locks").arg("-r").arg(&rpc).arg("--json").arg(&json_path);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Daemon::start(name, cmd, addr, (log, f), Duration::from_secs(60))
}
