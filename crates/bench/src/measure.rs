//! One client run against one target, as every side-by-side bench sees it: what it [`Measured`], the
//! measured window (after the warm-up, trimmed at both ends) and the [`Probes`] that watch the target
//! and the client over that window in untimed rounds.

use crate::procs::{Profile, ProfileSummary, SyscallCount};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a run watches over its measured window (in untimed rounds: both slow the processes down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Nothing.
    None,
    /// The syscalls of the target (this pid) and of the client.
    Syscalls {
        /// The target's pid.
        target: u32,
    },
    /// `perf record` of the target (this pid) and of the client, files in `dir`.
    Profile {
        /// The target's pid.
        target: u32,
        /// Where the recordings go (removed once summarised).
        dir: PathBuf,
    },
}

/// What one client run measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// I/Os per second.
    pub iops: f64,
    /// MiB per second.
    pub mib_s: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 99th percentile latency.
    pub p99_us: f64,
    /// Error lines the client printed (teardown noise excluded, see [`is_teardown_noise`]).
    pub errors: Vec<String>,
    /// The measured window: from its first to its last instant.
    pub window: Option<(Instant, Instant)>,
    /// The client's syscalls per I/O over the window (NaN when not counted).
    pub client_syscalls_per_io: f64,
    /// CPUs the client process kept busy over the window (CPU seconds per second), where measured.
    pub client_cpu: Option<f64>,
    /// The target's syscalls per I/O over the window (NaN when not counted).
    pub target_syscalls_per_io: f64,
    /// Where the target's CPU went over the window (profile rounds).
    pub target_profile: Option<ProfileSummary>,
    /// Where the client's CPU went over the window (profile rounds; ff perf: the bench process).
    pub client_profile: Option<ProfileSummary>,
}

/// The measured window of a run whose load started at `t0`: after the warm-up, trimmed at both ends
/// so it never reaches into connection setup or teardown.
pub fn window(t0: Instant, warmup: u32, seconds: u32) -> (Instant, Instant) {
    let start = t0 + Duration::from_secs(u64::from(warmup)) + Duration::from_millis(150);
    let end = t0 + Duration::from_secs(u64::from(warmup + seconds)) - Duration::from_millis(100);
    (start, end.max(start + Duration::from_millis(100)))
}

/// Sleeps until `t` (at once when it has passed).
pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The probes of one run, started at the window's start.
#[derive(Default)]
pub struct Probes {
    target_sys: Option<SyscallCount>,
    client_sys: Option<SyscallCount>,
    target_prof: Option<Profile>,
    client_prof: Option<Profile>,
}

/// What the probes saw: syscall counts of target and client, profiles of target and client.
pub type ProbeResults = (Option<u64>, Option<u64>, Option<ProfileSummary>, Option<ProfileSummary>);

impl Probes {
    /// Waits for the window and starts what `probe` asks for on the target and on `client`.
    pub fn start(probe: &Probe, win: (Instant, Instant), client: u32) -> Probes {
        if *probe == Probe::None {
            return Probes::default();
        }
        sleep_until(win.0);
        let secs = (win.1 - win.0).as_secs_f64();
        match probe {
            Probe::None => Probes::default(),
            Probe::Syscalls { target } => Probes {
                target_sys: SyscallCount::start(*target, secs),
                client_sys: SyscallCount::start(client, secs),
                ..Probes::default()
            },
            Probe::Profile { target, dir } => Probes {
                target_prof: Profile::start(*target, secs, dir.join(format!("target-{target}.perf.data"))),
                client_prof: Profile::start(client, secs, dir.join(format!("client-{client}.perf.data"))),
                ..Probes::default()
            },
        }
    }

    /// Waits for every probe and returns what it saw.
    pub fn finish(self) -> ProbeResults {
        (
            self.target_sys.and_then(SyscallCount::finish),
            self.client_sys.and_then(SyscallCount::finish),
            self.target_prof.and_then(Profile::finish),
            self.client_prof.and_then(Profile::finish),
        )
    }
}

/// A count over the window, per I/O at `iops`.
pub fn per_io(count: Option<u64>, iops: f64, win: (Instant, Instant)) -> f64 {
    match count {
        Some(n) if iops > 0.0 => n as f64 / (iops * (win.1 - win.0).as_secs_f64()),
        _ => f64::NAN,
    }
}

/// The last five lines of `s`, joined with ` | ` (for errors quoting a tool's output).
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
