//! CPU pinning and CPU time: `sched_setaffinity` for the calling thread or any thread of this process
//! found by name (e.g. an in-process target's reactor, whose spawner does not expose pinning), and
//! `getrusage` for the thread and the process.

use rustix::process::Pid;
use rustix::thread::CpuSet;
use std::time::Duration;

/// Pins thread `tid` (0: the calling thread) to `cpu`.
pub fn pin_thread(tid: libc::pid_t, cpu: usize) -> std::io::Result<()> {
    // rustix spells "the calling thread" None; a negative id names no thread, as the kernel says.
    let pid = match tid {
        0 => None,
        t if t < 0 => return Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
        t => Pid::from_raw(t),
    };
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(pid, &set)?)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current(cpu: usize) -> std::io::Result<()> {
    pin_thread(0, cpu)
}

/// Thread ids of this process whose name (`/proc/self/task/*/comm`) starts with `prefix`.
pub fn threads_named(prefix: &str) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else { continue };
        if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end().starts_with(prefix)) {
            out.push(tid);
        }
    }
    out
}

/// CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
}

impl CpuTime {
    /// Hand-written: rustix 1.1 has no getrusage (and std none either).
    fn read(who: libc::c_int) -> CpuTime {
        // SAFETY: rusage is plain data; zero is a valid value for getrusage to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is valid for writes; `who` is RUSAGE_SELF or RUSAGE_THREAD.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return CpuTime::default();
        }
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        CpuTime { user: tv(ru.ru_utime), sys: tv(ru.ru_stime) }
    }

    /// The whole process (all threads).
    pub fn process() -> CpuTime {
        CpuTime::read(libc::RUSAGE_SELF)
    }

    /// The calling thread.
    pub fn thread() -> CpuTime {
        CpuTime::read(libc::RUSAGE_THREAD)
    }

    /// Time spent since `earlier`.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user.saturating_sub(earlier.user), sys: self.sys.saturating_sub(earlier.sys) }
    }
}
