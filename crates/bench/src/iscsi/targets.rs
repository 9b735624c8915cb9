//! The iSCSI targets of the side-by-side bench, each one process pinned to the target CPU on a null LUN
//! of 4 KiB blocks: our `ferrofabric target` (which also serves the same namespace over NVMe/TCP), SPDK's
//! `iscsi_tgt` and Linux's user-space `tgtd`.

use crate::procs::{Daemon, free_port, log_file};
use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The logical block size of every LUN in the bench (iscsi-perf offsets are in blocks: with 4 KiB
/// blocks a random 4K read is always 4K aligned, as on the NVMe side).
pub const BLOCK_SIZE: u32 = 4096;
/// Our target's iSCSI name and the NQN of the same namespace over NVMe/TCP.
pub const OURS_IQN: &str = "iqn.2026-11.io.ferrofabric:default";
/// The NQN our target serves the same namespace under.
pub const OURS_NQN: &str = "nqn.2026-11.io.ferrofabric:default";
/// SPDK's target node (SPDK prefixes a bare node name with its own `iqn.2016-06.io.spdk:`).
pub const SPDK_IQN: &str = "iqn.2016-06.io.spdk:disk1";
/// tgt's target.
pub const TGT_IQN: &str = "iqn.2026-11.io.ferrofabric:tgt";

/// Which iSCSI target serves a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TargetKind {
    /// `ferrofabric target`: one busy-polling reactor, iSCSI and NVMe/TCP listeners on one namespace.
    Ours,
    /// SPDK's `iscsi_tgt -m <one core>`, posix sock, null bdev.
    Spdk,
    /// Linux's user-space target `tgtd` (stgt), null backing store.
    Tgt,
}

impl TargetKind {
    /// Every kind, in table order.
    pub const ALL: [TargetKind; 3] = [TargetKind::Ours, TargetKind::Spdk, TargetKind::Tgt];

    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Ours => "ours",
            TargetKind::Spdk => "spdk iscsi_tgt",
            TargetKind::Tgt => "tgt",
        }
    }

    /// The target name clients log in to.
    pub fn iqn(self) -> &'static str {
        match self {
            TargetKind::Ours => OURS_IQN,
            TargetKind::Spdk => SPDK_IQN,
            TargetKind::Tgt => TGT_IQN,
        }
    }

    /// The LUN of the null device (tgt keeps LUN 0 for its controller).
    pub fn lun(self) -> u32 {
        match self {
            TargetKind::Tgt => 1,
            _ => 0,
        }
    }
}

/// A running iSCSI target, resumed only while measured.
pub struct IscsiTarget {
    /// What it is.
    pub kind: TargetKind,
    /// The process (its listener is the iSCSI portal).
    pub daemon: Daemon,
    /// Our target's NVMe/TCP listener on the same namespace.
    pub nvme: Option<SocketAddr>,
    /// tgtd's management socket files, removed once it has exited.
    cleanup: Vec<PathBuf>,
    /// tgtd's control port.
    control: Option<u16>,
}

impl IscsiTarget {
    /// Starts ours from `ff_bin` on `cpu`: one busy-polling reactor, a 1 GiB null namespace of 4 KiB
    /// blocks that leaves read buffers untouched, served over iSCSI and NVMe/TCP.
    pub fn start_ours(ff_bin: &Path, cpu: usize, log_dir: &Path) -> Result<IscsiTarget> {
        let (port, nvme_port) = (free_port()?, free_port()?);
        ensure!(port != nvme_port, "two free ports wanted, got one twice");
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]).arg(ff_bin).arg("target");
        cmd.args(["--iscsi-listen", &format!("127.0.0.1:{port}")]);
        cmd.args(["--listen", &format!("127.0.0.1:{nvme_port}"), "--no-discovery-port", "--nqn", OURS_NQN]);
        cmd.args(["--backend", "null-nofill", "--size", "1G", "--block-size", "4096", "--cores", "1", "--no-rpc"]);
        cmd.args(["--poll", "busy"]).env("RUST_LOG", "warn");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_file(log_dir, "iscsi-target-ours.log")?;
        let daemon = Daemon::start("ours", cmd, addr, log, Duration::from_secs(20))?;
        Ok(IscsiTarget {
            kind: TargetKind::Ours,
            daemon,
            nvme: Some(SocketAddr::from(([127, 0, 0, 1], nvme_port))),
            cleanup: Vec::new(),
            control: None,
        })
    }

    /// Starts SPDK's `iscsi_tgt` from the build in `spdk_dir` on `cpu`, configured by a JSON file of
    /// the same RPC methods `scripts/rpc.py` sends (portal group, initiator group open to any host,
    /// a 1 GiB null bdev of 4 KiB blocks, one target node with it as LUN 0, no CHAP). `shm_id` keeps its
    /// hugepage files apart from other SPDK processes.
    pub fn start_spdk(spdk_dir: &Path, cpu: usize, shm_id: u32, log_dir: &Path) -> Result<IscsiTarget> {
        let bin = spdk_dir.join("build/bin/iscsi_tgt");
        ensure!(bin.is_file(), "{} is missing (build SPDK with shared/tools/spdk-peer)", bin.display());
        let port = free_port()?;
        let config = serde_json::json!({"subsystems": [
            {"subsystem": "sock", "config": [
                {"method": "sock_set_default_impl", "params": {"impl_name": "posix"}}]},
            {"subsystem": "bdev", "config": [
                {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 262_144, "block_size": BLOCK_SIZE}}]},
            {"subsystem": "iscsi", "config": [
                // Listening waits for iscsi_start_portal_group, after the target node exists: a login
                // that came first would find no target.
                {"method": "iscsi_create_portal_group", "params": {"tag": 1, "wait": true, "portals": [
                    {"host": "127.0.0.1", "port": port.to_string()}]}},
                {"method": "iscsi_create_initiator_group", "params": {"tag": 1, "initiators": ["ANY"], "netmasks": ["ANY"]}},
                {"method": "iscsi_create_target_node", "params": {"name": "disk1", "alias_name": "ff-bench",
                    "pg_ig_maps": [{"pg_tag": 1, "ig_tag": 1}], "luns": [{"bdev_name": "Null0", "lun_id": 0}],
                    "queue_depth": 128, "disable_chap": true}},
                {"method": "iscsi_start_portal_group", "params": {"tag": 1}}]}
        ]});
        let json_path = log_dir.join("iscsi-spdk.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&config)? + "\n")?;
        let mut cmd = Command::new(&bin);
        cmd.args(["-m", &format!("{:#x}", 1u64 << cpu), "-i", &shm_id.to_string(), "-s", "512"]);
        // Other SPDK processes may own the core's lock file (only one target runs at a time).
        cmd.arg("--disable-cpumask-locks").arg("-r").arg(log_dir.join("iscsi-spdk.rpc.sock"));
        cmd.arg("--json").arg(&json_path);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_file(log_dir, "iscsi-target-spdk.log")?;
        let daemon = Daemon::start("spdk iscsi_tgt", cmd, addr, log, Duration::from_secs(60))?;
        Ok(IscsiTarget { kind: TargetKind::Spdk, daemon, nvme: None, cleanup: Vec::new(), control: None })
    }

    /// Starts `tgtd -f` on `cpu` (taskset on the launch, so every thread it ever starts inherits the one
    /// CPU) with its own control port and portal, then adds the target, a null LUN 1 of 4 KiB blocks and
    /// an allow-all ACL with `tgtadm`. tgt's null store has a fixed size (1 TiB), which a null device's
    /// reads do not care about.
    pub fn start_tgt(cpu: usize, log_dir: &Path) -> Result<IscsiTarget> {
        let control = free_control_port()?;
        let port = free_port()?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string(), "tgtd", "-f", "-C", &control.to_string()]);
        cmd.args(["--iscsi", &format!("portal=127.0.0.1:{port}")]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_file(log_dir, "iscsi-target-tgt.log")?;
        let sock = format!("/var/run/tgtd/socket.{control}");
        let cleanup = vec![PathBuf::from(&sock), PathBuf::from(sock + ".lock")];
        let daemon = Daemon::start("tgt", cmd, addr, log, Duration::from_secs(20));
        let t = IscsiTarget { kind: TargetKind::Tgt, daemon: daemon?, nvme: None, cleanup, control: Some(control) };
        let c = control.to_string();
        let tid = ["--lld", "iscsi", "--tid", "1"];
        tgtadm(&c, &[&tid[..], &["--mode", "target", "--op", "new", "--targetname", TGT_IQN]].concat())?;
        // The null store ignores the path; tgtadm still wants one.
        let lu = ["--mode", "logicalunit", "--op", "new", "--lun", "1", "--bstype", "null", "--backing-store", "null"];
        tgtadm(&c, &[&tid[..], &lu[..], &["--blocksize", &BLOCK_SIZE.to_string()]].concat())?;
        tgtadm(&c, &[&tid[..], &["--mode", "target", "--op", "bind", "--initiator-address", "ALL"]].concat())?;
        Ok(t)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Files the process leaves behind when it exits, removed when this is dropped.
    pub fn owned_files(&self) -> &[PathBuf] {
        &self.cleanup
    }
}

/// One `tgtadm` call on control port `control`.
fn tgtadm(control: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("tgtadm")
        .args(["-C", control])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running tgtadm")?;
    if !out.status.success() {
        bail!("tgtadm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A tgtd control port with no socket file yet (port 0 is the system's tgtd: never that one).
fn free_control_port() -> Result<u16> {
    let base = 4000 + (std::process::id() % 2000) as u16;
    (0..200u16)
        .map(|i| base + i)
        .find(|p| !Path::new(&format!("/var/run/tgtd/socket.{p}")).exists())
        .context("no free tgtd control port")
}

impl Drop for IscsiTarget {
    fn drop(&mut self) {
        // A tgtd that has served a session does not exit on SIGTERM; it does on its management's
        // "delete system", which wants the system offline and no target left.
        if let Some(c) = self.control
            && self.daemon.resume().is_ok()
        {
            let c = c.to_string();
            let _ = tgtadm(&c, &["--mode", "sys", "--op", "update", "--name", "State", "-v", "offline"]);
            let _ = tgtadm(&c, &["--lld", "iscsi", "--tid", "1", "--mode", "target", "--op", "delete", "--force"]);
            let _ = tgtadm(&c, &["--mode", "system", "--op", "delete"]);
        }
        // Fields drop after this: end the daemon first so its files can go.
        self.daemon.terminate();
        for f in &self.cleanup {
            let _ = std::fs::remove_file(f);
        }
    }
}
