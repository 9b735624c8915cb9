//! The latency clock: the CPU's invariant time-stamp counter where the CPU has one (SPDK's perf times
//! with the same ticks), else the monotonic clock. A vDSO `clock_gettime` costs tens of nanoseconds in a
//! guest (7% of the perf core at 4K QD32 here); a TSC read costs a few.

use std::time::{Duration, Instant};

/// How long the TSC is timed against the monotonic clock to learn its rate.
const CALIBRATION: Duration = Duration::from_millis(10);

/// A point on a [`Clock`], in its ticks.
pub type Tick = u64;

/// A monotonic clock in ticks, cheap to read; `Copy`, so each thread takes its own.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
    /// Ticks per nanosecond when ticking with the TSC; `None`: ticks are nanoseconds since `base`.
    tsc_per_ns: Option<f64>,
}

impl Clock {
    /// Uses the invariant TSC when the CPU says it has one (calibrating for [`CALIBRATION`]), else the
    /// monotonic clock.
    pub fn new() -> Clock {
        let base = Instant::now();
        Clock { base, tsc_per_ns: tsc::invariant().then(|| tsc::calibrate(CALIBRATION)) }
    }

    /// The monotonic clock only (tests, or to compare).
    pub fn monotonic() -> Clock {
        Clock { base: Instant::now(), tsc_per_ns: None }
    }

    /// True when ticking with the TSC.
    pub fn is_tsc(&self) -> bool {
        self.tsc_per_ns.is_some()
    }

    /// Now.
    #[inline]
    pub fn now(&self) -> Tick {
        match self.tsc_per_ns {
            Some(_) => tsc::read(),
            None => u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Nanoseconds from `earlier` to `later` (0 if `later` is earlier).
    #[inline]
    pub fn ns_between(&self, earlier: Tick, later: Tick) -> u64 {
        let d = later.saturating_sub(earlier);
        match self.tsc_per_ns {
            Some(r) => (d as f64 / r) as u64,
            None => d,
        }
    }

    /// The tick `d` after `t`.
    pub fn after(&self, t: Tick, d: Duration) -> Tick {
        let ns = d.as_nanos() as f64;
        let ticks = match self.tsc_per_ns {
            Some(r) => ns * r,
            None => ns,
        };
        t.saturating_add(ticks as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::time::{Duration, Instant};

    /// CPUID 0x8000_0007 EDX bit 8: the TSC ticks at a constant rate in every power state.
    pub(super) fn invariant() -> bool {
        let max_ext = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        max_ext >= 0x8000_0007 && (std::arch::x86_64::__cpuid(0x8000_0007).edx >> 8) & 1 == 1
    }

    /// Hand-written: RDTSC is an instruction, not a syscall, so neither rustix nor std wraps it;
    /// std::arch's intrinsic is the API (still `unsafe` in std, unlike `__cpuid` above).
    #[inline]
    pub(super) fn read() -> u64 {
        // SAFETY: RDTSC has no memory effects; every x86_64 CPU implements it.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// TSC ticks per nanosecond, timed against the monotonic clock for `span`.
    pub(super) fn calibrate(span: Duration) -> f64 {
        let (t0, c0) = (Instant::now(), read());
        while t0.elapsed() < span {
            std::hint::spin_loop();
        }
        let (c1, t1) = (read(), Instant::now());
        let ns = t1.duration_since(t0).as_nanos().max(1) as f64;
        (c1.saturating_sub(c0) as f64 / ns).max(f64::MIN_POSITIVE)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    use std::time::Duration;

    pub(super) fn invariant() -> bool {
        false
    }

    pub(super) fn read() -> u64 {
        0
    }

    pub(super) fn calibrate(_span: Duration) -> f64 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees_with_sleep(c: Clock) {
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(30));
        let ns = c.ns_between(t0, c.now());
        // A sleep never ends early (3% slack for the TSC rate learnt in 10 ms); the upper bound only
        // catches a wrong rate (ticks taken for nanoseconds), not a slow machine.
        assert!((29_000_000..10_000_000_000).contains(&ns), "30 ms sleep measured as {ns} ns");
        assert!(c.after(t0, Duration::from_millis(5)) > t0);
        assert_eq!(c.ns_between(c.now(), t0), 0, "a later start clamps to 0");
    }

    #[test]
    fn tsc_or_fallback_measures_a_sleep() {
        agrees_with_sleep(Clock::new());
    }

    #[test]
    fn monotonic_measures_a_sleep() {
        let c = Clock::monotonic();
        assert!(!c.is_tsc());
        agrees_with_sleep(c);
    }
}
