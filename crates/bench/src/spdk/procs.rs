//! The target processes of the side-by-side bench and what is measured of them from outside: our
//! `ferrofabric target` and SPDK's `nvmf_tgt`, each started once, pinned to the target CPU and parked
//! with SIGSTOP while another one is measured (so a busy-polling target not under test costs nothing);
//! the cgroup that caps a target's CPU in target-bound mode; CPU time and syscall counts read from the
//! kernel (`/proc/PID/task/*/schedstat`, `perf stat -e raw_syscalls:sys_enter`).

use anyhow::{Context, Result, bail, ensure};
use rustix::process::Signal;
use serde::Serialize;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Its listener.
    pub addr: SocketAddr,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path, f))
}

impl TargetProc {
    /// Starts one of ours from `ff_bin` on `cpu`: one reactor, a 1 GiB null namespace of 4 KiB blocks
    /// that leaves read buffers untouched (as SPDK's null bdev), no discovery port.
    pub fn start_ours(ff_bin: &Path, kind: TargetKind, cpu: usize, log_dir: &Path) -> Result<TargetProc> {
        let port = free_port()?;
        let (log, f) = log_file(log_dir, &format!("target-{}.log", kind.name().replace([' ', '='], "-")))?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]).arg(ff_bin).arg("target");
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--no-discovery-port", "--no-iscsi", "--nqn", OURS_NQN]);
        cmd.args(["--backend", "null-nofill", "--size", "1G", "--block-size", "4096", "--cores", "1", "--no-rpc"]);
        match kind {
            TargetKind::Ours => cmd.args(["--poll", "busy"]),
            TargetKind::OursAlways => cmd.args(["--poll", "busy", "--c2h-success", "always"]),
            TargetKind::OursEvent => cmd.args(["--poll", "event"]),
            _ => bail!("{} is not ours", kind.name()),
        };
        cmd.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
        let child = cmd.spawn().with_context(|| format!("starting {} (taskset {})", ff_bin.display(), cpu))?;
        let mut t = TargetProc { kind, addr: SocketAddr::from(([127, 0, 0, 1], port)), log, child };
        t.wait_ready(Duration::from_secs(20))?;
        Ok(t)
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
        let stem = kind.name().replace(' ', "-");
        let config = serde_json::json!({"subsystems": [
            {"subsystem": "sock", "config": [
                {"method": "sock_set_default_impl", "params": {"impl_name": "posix"}}]},
            {"subsystem": "bdev", "config": [
                {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 262_144, "block_size": 4096}}]},
            {"subsystem": "nvmf", "config": [
                {"method": "nvmf_create_transport", "params": {"trtype": "TCP", "c2h_success": kind == TargetKind::Spdk}},
                {"method": "nvmf_create_subsystem", "params": {"nqn": SPDK_NQN, "allow_any_host": true,
                    "serial_number": "SPDK00000000000001", "model_number": "SPDK bdev Controller"}},
                {"method": "nvmf_subsystem_add_ns", "params": {"nqn": SPDK_NQN, "namespace": {"bdev_name": "Null0"}}},
                {"method": "nvmf_subsystem_add_listener", "params": {"nqn": SPDK_NQN, "listen_address":
                    {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}}}]}
        ]});
        let json_path = log_dir.join(format!("{stem}.json"));
        std::fs::write(&json_path, serde_json::to_string_pretty(&config)? + "\n")?;
        let (log, f) = log_file(log_dir, &format!("target-{stem}.log"))?;
        let rpc = log_dir.join(format!("{stem}.rpc.sock"));
        let mut cmd = Command::new(build.nvmf_tgt());
        cmd.args(["-m", &format!("{:#x}", 1u64 << cpu), "-i", &shm_id.to_string(), "-s", "512"]);
        // Several SPDK targets share the core (only one runs at a time): skip the per-core lock files.
        cmd.arg("--disable-cpumask-locks").arg("-r").arg(&rpc).arg("--json").arg(&json_path);
        cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
        let child = cmd.spawn().with_context(|| format!("starting {}", build.nvmf_tgt().display()))?;
        let mut t = TargetProc { kind, addr: SocketAddr::from(([127, 0, 0, 1], port)), log, child };
        t.wait_ready(Duration::from_secs(60))?;
        Ok(t)
    }

    /// Waits until the listener accepts a connection (the probe is closed at once: both targets take
    /// a host that leaves before its ICReq).
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} exited during start-up ({st}); see {}", self.kind.name(), self.log.display());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} did not listen on {} within {timeout:?}; see {}",
                    self.kind.name(),
                    self.addr,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        // Our own child, not yet reaped (Drop reaps it): its pid still names it.
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).map_err(|e| {
            anyhow::anyhow!("signal {} to {}: {}", sig.as_raw(), self.kind.name(), std::io::Error::from(e))
        })
    }

    /// Parks it (SIGSTOP): it uses no CPU until resumed.
    pub fn pause(&self) -> Result<()> {
        self.signal(Signal::STOP)
    }

    /// Resumes it (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::CONT)
    }

    /// Whether it is still running (not exited).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TargetProc {
    fn drop(&mut self) {
        // A stopped process does not act on SIGTERM until continued.
        let _ = self.resume();
        let _ = self.signal(Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cgroup that caps the CPU of the processes moved into it (v2 `cpu.max`, or v1 CFS quota).
pub struct CpuQuota {
    dir: PathBuf,
    root_procs: PathBuf,
    /// Percent of one CPU.
    pub percent: u32,
}

impl CpuQuota {
    /// Creates the cgroup with `percent` of one CPU per 100 ms period. Needs root.
    pub fn new(percent: u32) -> Result<CpuQuota> {
        ensure!((1..=100).contains(&percent), "CPU quota must be 1..=100 percent, not {percent}");
        let name = format!("ff-bench-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let (dir, root_procs) = if v2 {
            // The cpu controller must be enabled for the root's children.
            let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
            (Path::new("/sys/fs/cgroup").join(&name), PathBuf::from("/sys/fs/cgroup/cgroup.procs"))
        } else {
            (Path::new("/sys/fs/cgroup/cpu").join(&name), PathBuf::from("/sys/fs/cgroup/cpu/cgroup.procs"))
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {} (needs root)", dir.display()))?;
        let q = CpuQuota { dir, root_procs, percent };
        if v2 {
            q.write("cpu.max", &format!("{} 100000", percent * 1000))?;
        } else {
            q.write("cpu.cfs_period_us", "100000")?;
            q.write("cpu.cfs_quota_us", &(percent * 1000).to_string())?;
        }
        Ok(q)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let p = self.dir.join(file);
        let mut f =
            std::fs::OpenOptions::new().write(true).open(&p).with_context(|| format!("opening {}", p.display()))?;
        f.write_all(value.as_bytes()).with_context(|| format!("writing {value:?} to {}", p.display()))
    }

    /// Moves process `pid` (all its threads) under the cap.
    pub fn enter(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Moves process `pid` back to the root cgroup.
    pub fn leave(&self, pid: u32) -> Result<()> {
        std::fs::write(&self.root_procs, pid.to_string()).with_context(|| format!("moving {pid} out of the quota"))
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Anything still inside goes back to the root first, or rmdir fails.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(&self.root_procs, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// CPU time (ns) used by every thread of `pid` so far, from `/proc/PID/task/*/schedstat`.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for e in dir.flatten() {
        let s = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
        total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(total)
}

/// Samples a process's CPU time every 20 ms on a thread of its own, so the CPU used inside any
/// window of the run can be read afterwards.
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(Instant, u64)>>>,
}

impl CpuSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> CpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(ns) = process_cpu_ns(pid) {
                    v.push((Instant::now(), ns));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            v
        });
        CpuSampler { stop, thread: Some(thread) }
    }

    /// Stops and returns the CPUs busy (CPU seconds per second) between `from` and `to`; NaN when the
    /// window holds fewer than two samples.
    pub fn finish(mut self, from: Instant, to: Instant) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let v = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let inside: Vec<&(Instant, u64)> = v.iter().filter(|(t, _)| *t >= from && *t <= to).collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / 1e9 / (b.0 - a.0).as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts the syscalls a process makes for a while: `perf stat -e raw_syscalls:sys_enter -p PID`.
pub struct SyscallCount {
    child: Child,
}

/// `perf stat` counting syscalls: of process `pid`, or of the command that follows.
fn perf_stat(pid: Option<u32>) -> Command {
    let mut c = Command::new("perf");
    c.args(["stat", "-x,", "-e", "raw_syscalls:sys_enter"]);
    if let Some(pid) = pid {
        c.args(["-p", &pid.to_string()]);
    }
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// The count in `perf stat -x,` output (`<not counted>` reads as `None`).
fn parse_count(stderr: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stderr);
    text.lines().find(|l| l.contains("raw_syscalls:sys_enter"))?.split(',').next()?.trim().parse().ok()
}

impl SyscallCount {
    /// Starts counting `pid`'s syscalls for `secs`; `None` when `perf` cannot run.
    pub fn start(pid: u32, secs: f64) -> Option<SyscallCount> {
        let child = perf_stat(Some(pid)).args(["--", "sleep"]).arg(format!("{secs:.3}")).spawn().ok()?;
        Some(SyscallCount { child })
    }

    /// Waits for the count.
    pub fn finish(self) -> Option<u64> {
        parse_count(&self.child.wait_with_output().ok()?.stderr)
    }
}

/// Whether `perf stat` can count syscalls here (the tracepoint needs linux-perf and root or a
/// permissive kernel): it counts those of `true`.
pub fn syscall_counting_works() -> bool {
    perf_stat(None).args(["--", "true"]).output().ok().and_then(|o| parse_count(&o.stderr)).is_some_and(|n| n > 0)
}

/// Where one process spent its CPU over a window, from `perf record` (cpu-clock samples, no call graphs).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProfileSummary {
    /// Share of samples in the kernel.
    pub kernel_pct: f64,
    /// Share in the program's own binary.
    pub binary_pct: f64,
    /// Share in libc.
    pub libc_pct: f64,
    /// The hottest symbols with their shares (`[k]` kernel, `[.]` user), hottest first.
    pub top: Vec<(String, f64)>,
}

/// A `perf record` of one process for a while.
pub struct Profile {
    child: Child,
    data: PathBuf,
}

impl Profile {
    /// Starts sampling `pid` for `secs` into `data`; `None` when `perf` cannot run.
    pub fn start(pid: u32, secs: f64, data: PathBuf) -> Option<Profile> {
        let child = Command::new("perf")
            .args(["record", "-q", "-F", "1999", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .args(["--", "sleep"])
            .arg(format!("{secs:.3}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Profile { child, data })
    }

    /// Waits for the recording and summarises it.
    pub fn finish(mut self) -> Option<ProfileSummary> {
        self.child.wait().ok()?;
        let report = |sort: &str| -> Option<String> {
            let out = Command::new("perf")
                .args(["report", "-q", "--no-children", "-g", "none", "--percent-limit", "0.5", "--sort", sort, "-i"])
                .arg(&self.data)
                .stderr(Stdio::null())
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let pct = |l: &str| l.split_whitespace().next().and_then(|v| v.trim_end_matches('%').parse::<f64>().ok());
        let mut s = ProfileSummary::default();
        for l in report("dso")?.lines() {
            let Some(p) = pct(l) else { continue };
            if l.contains("[kernel") {
                s.kernel_pct += p;
            } else if l.contains("libc") {
                s.libc_pct += p;
            } else if !l.contains("[vdso]") && !l.contains(".so") {
                s.binary_pct += p;
            }
        }
        for l in report("sym")?.lines().take(8) {
            let Some(p) = pct(l) else { continue };
            let sym = l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
            s.top.push((sym, p));
        }
        let _ = std::fs::remove_file(&self.data);
        Some(s)
    }
}

/// Whether `perf record` works here.
pub fn profiling_works(dir: &Path) -> bool {
    let data = dir.join("probe.perf.data");
    let ok = Command::new("perf")
        .args(["record", "-q", "-F", "999", "-o"])
        .arg(&data)
        .args(["--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&data);
    ok
}

/// Makes sure SPDK has hugepages: at least `pages` 2 MiB pages reserved and hugetlbfs mounted.
pub fn ensure_hugepages(pages: u64) -> Result<()> {
    let nr = "/proc/sys/vm/nr_hugepages";
    let have: u64 = std::fs::read_to_string(nr)?.trim().parse().unwrap_or(0);
    if have < pages {
        std::fs::write(nr, pages.to_string()).with_context(|| format!("reserving {pages} hugepages (needs root)"))?;
    }
    let mounted =
        std::fs::read_to_string("/proc/mounts")?.lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"));
    if !mounted {
        std::fs::create_dir_all("/dev/hugepages")?;
        let st =
            Command::new("mount").args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", "/dev/hugepages"]).status()?;
        ensure!(st.success(), "mounting hugetlbfs on /dev/hugepages failed");
    }
    Ok(())
}
