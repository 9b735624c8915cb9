//! Processes under test and what is measured of them from outside, shared by the side-by-side benches:
//! a [`Daemon`] (a target started once, pinned, parked with SIGSTOP while another one is measured, so a
//! busy-polling target not under test costs nothing); the cgroup that caps a target's CPU in
//! target-bound mode; CPU time and syscall counts read from the kernel (`/proc/PID/task/*/schedstat`,
//! `perf stat -e raw_syscalls:sys_enter`), `perf record` profiles, and the [`Probes`] that start them
//! over a client run's measured window.

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

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Creates `dir/name` for a process's stdout and stderr.
pub fn log_file(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path, f))
}

/// A long-running child process with a TCP listener: a target under test. Dropping it ends it
/// ([`Daemon::terminate`]).
pub struct Daemon {
    /// Its name in tables and errors.
    pub name: String,
    /// The listener clients connect to.
    pub addr: SocketAddr,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Spawns `cmd` with its output to `log` (already open as `out`) and waits up to `timeout` until
    /// `addr` accepts a connection.
    pub fn start(
        name: &str,
        mut cmd: Command,
        addr: SocketAddr,
        (log, out): (PathBuf, std::fs::File),
        timeout: Duration,
    ) -> Result<Daemon> {
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        let child = cmd.spawn().with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let mut d = Daemon { name: name.to_string(), addr, log, child };
        d.wait_ready(timeout)?;
        Ok(d)
    }

    /// Waits until the listener accepts a connection (the probe is closed at once: every target here
    /// takes a host that leaves before its first PDU).
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} exited during start-up ({st}); see {}", self.name, self.log.display());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("{} did not listen on {} within {timeout:?}; see {}", self.name, self.addr, self.log.display());
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
        rustix::process::kill_process(pid, sig)
            .map_err(|e| anyhow::anyhow!("signal {} to {}: {}", sig.as_raw(), self.name, std::io::Error::from(e)))
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

impl Daemon {
    /// Ends it: SIGTERM, SIGKILL after 10 s; reaps it. Does nothing once it has been reaped.
    pub fn terminate(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
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

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
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
