//! What the benchmarks read from the operating system: per-thread CPU time, the machine facts every
//! report records (kernel, CPU model, cores) and a UTC timestamp (no date crate in the workspace).

use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CPU time consumed by the calling thread so far, split into user and system time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThreadCpu {
    /// Time spent in user space.
    pub user: Duration,
    /// Time spent in the kernel on the thread's behalf (syscalls, and softirqs that ran in its context).
    pub sys: Duration,
}

impl ThreadCpu {
    /// Reads `getrusage(RUSAGE_THREAD)` for the calling thread (through ff-perf, which owns the one
    /// hand-written getrusage).
    pub fn now() -> ThreadCpu {
        let t = ff_perf::affinity::CpuTime::thread();
        ThreadCpu { user: t.user, sys: t.sys }
    }

    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }

    /// The CPU time spent since `earlier`.
    pub fn since(&self, earlier: ThreadCpu) -> ThreadCpu {
        ThreadCpu { user: self.user.saturating_sub(earlier.user), sys: self.sys.saturating_sub(earlier.sys) }
    }
}

/// The facts about the machine a result is only meaningful with.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// Host name, to tell result directories from different machines apart.
    pub hostname: String,
}

impl Machine {
    /// Reads the facts from /proc; unknown values read as "unknown".
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).ok();
        let cpu_model = read("/proc/cpuinfo")
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            cpu_model,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            hostname: read("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// Whether the process runs as root (namespaces and veth need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The current UTC time as `YYYYMMDDTHHMMSSZ` (sortable, and safe in a directory name).
pub fn utc_timestamp() -> String {
    utc_timestamp_of(SystemTime::now())
}

/// `t` as `YYYYMMDDTHHMMSSZ`.
pub fn utc_timestamp_of(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(utc_timestamp_of(UNIX_EPOCH), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC (a leap day in a century leap year).
        assert_eq!(utc_timestamp_of(UNIX_EPOCH + Duration::from_secs(951_827_696)), "20000229T123456Z");
        // 2026-11-29 08:12:08 UTC.
        assert_eq!(utc_timestamp_of(UNIX_EPOCH + Duration::from_secs(1_795_939_928)), "20261129T081208Z");
    }

    #[test]
    fn thread_cpu_moves_forward() {
        let a = ThreadCpu::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(ThreadCpu::now() >= a);
    }
}
