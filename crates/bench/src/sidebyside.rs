//! What the side-by-side benches ([`crate::spdk`], [`crate::iscsi`], [`crate::tls`]) share about one
//! cell: measuring it on a parked target (resume, quota, CPU time, park again) and summarising its
//! samples (medians, failures, CPU time per I/O) and its pairs with another cell measured in the same
//! rounds.

use crate::measure::Measured;
use crate::procs::{CpuQuota, CpuSampler, Daemon};
use crate::stats::median;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Whether the target runs free or under the CPU quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Mode {
    /// No limit but the CPU it is pinned to.
    Free,
    /// In a cgroup capped at the quota, so the target and not the client sets the figure.
    Quota,
}

impl Mode {
    /// The name in tables: `unbounded` or `quota N%`.
    pub fn name(self, quota_percent: Option<u32>) -> String {
        match self {
            Mode::Free => "unbounded".into(),
            Mode::Quota => format!("quota {}%", quota_percent.unwrap_or(0)),
        }
    }
}

/// Measures one sample of a parked target: resumes `daemon` (in `quota` when given), runs `client`,
/// takes the target's CPUs busy (CPU seconds per second) over the client's measured window, lets the
/// target finish the host's disconnect and parks it again.
pub fn measure_parked(
    daemon: &Daemon,
    quota: Option<&CpuQuota>,
    client: impl FnOnce() -> Result<Measured>,
) -> (Result<Measured, String>, f64) {
    let pid = daemon.pid();
    let go = || -> Result<(Measured, f64)> {
        daemon.resume()?;
        if let Some(q) = quota {
            q.enter(pid).context("entering the quota cgroup")?;
        }
        let sampler = CpuSampler::start(pid);
        let r = client();
        let cpu = match r.as_ref().ok().and_then(|m| m.window) {
            Some((a, b)) => sampler.finish(a, b),
            None => f64::NAN,
        };
        Ok((r?, cpu))
    };
    let r = go();
    if let Some(q) = quota {
        let _ = q.leave(pid);
    }
    std::thread::sleep(Duration::from_millis(100));
    let _ = daemon.pause();
    match r {
        Ok((m, cpu)) => (Ok(m), cpu),
        Err(e) => (Err(format!("{e:#}")), f64::NAN),
    }
}

/// CPU microseconds per I/O of a process that kept `cpus` CPUs busy at `iops`; NaN when either is
/// missing.
pub fn cpu_us_per_io(cpus: f64, iops: f64) -> f64 {
    if cpus.is_finite() && iops > 0.0 { cpus / iops * 1e6 } else { f64::NAN }
}

/// One sample as the summaries see it: its round, the figures (or why there are none) and the
/// target's CPUs busy over the window.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    /// The round it was measured in.
    pub round: usize,
    /// The figures, or why there are none.
    pub m: &'a Result<Measured, String>,
    /// The target's CPUs busy over the measured window (NaN when not read).
    pub target_cpu: f64,
}

/// Medians of one cell's samples.
#[derive(Clone, Debug, Serialize)]
pub struct CellStats {
    /// I/Os per second.
    pub iops: f64,
    /// MiB per second.
    pub mib_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Target CPUs busy (CPU seconds per second).
    pub target_cpu: f64,
    /// Client CPUs busy, where the client measured it.
    pub client_cpu: f64,
    /// Target CPU µs per I/O: the median of the samples' own ratios.
    pub target_us_per_io: f64,
    /// Client CPU µs per I/O, likewise.
    pub client_us_per_io: f64,
    /// Samples with figures.
    pub ok: usize,
    /// Samples taken.
    pub taken: usize,
    /// Why the cell is empty (the first failure) or how many samples failed.
    pub note: String,
}

impl CellStats {
    /// The medians over `samples`; failed samples only count in `taken` and `note`.
    pub fn of(samples: &[SampleRef<'_>]) -> CellStats {
        let good: Vec<(&Measured, f64)> =
            samples.iter().filter_map(|s| s.m.as_ref().ok().map(|m| (m, s.target_cpu))).collect();
        let med = |f: &dyn Fn(&Measured, f64) -> f64| median(&good.iter().map(|&(m, c)| f(m, c)).collect::<Vec<_>>());
        let client = |m: &Measured| m.client_cpu.unwrap_or(f64::NAN);
        let note = if good.is_empty() {
            samples.iter().find_map(|s| s.m.as_ref().err().cloned()).unwrap_or_default()
        } else if good.len() < samples.len() {
            format!("{} of {} samples failed", samples.len() - good.len(), samples.len())
        } else {
            String::new()
        };
        CellStats {
            iops: med(&|m, _| m.iops),
            mib_s: med(&|m, _| m.mib_s),
            p50_us: med(&|m, _| m.p50_us),
            p99_us: med(&|m, _| m.p99_us),
            target_cpu: med(&|_, c| c),
            client_cpu: med(&|m, _| client(m)),
            target_us_per_io: med(&|m, c| cpu_us_per_io(c, m.iops)),
            client_us_per_io: med(&|m, _| cpu_us_per_io(client(m), m.iops)),
            ok: good.len(),
            taken: samples.len(),
            note,
        }
    }
}

/// `f` of every sample with figures, by round (the input of [`crate::stats::PairRatios::of`]).
pub fn by_round(samples: &[SampleRef<'_>], f: impl Fn(&Measured) -> f64) -> HashMap<usize, f64> {
    samples.iter().filter_map(|s| s.m.as_ref().ok().map(|m| (s.round, f(m)))).collect()
}

/// One row of a comparison: `a` over `b` as the median of per-round ratios, against a goal.
pub struct Comparison<'a> {
    /// What is compared (e.g. "tls: ours vs spdk").
    pub name: &'a str,
    /// The workload's name.
    pub workload: &'a str,
    /// The mode's name.
    pub mode: &'a str,
    /// Side a's name.
    pub a: &'a str,
    /// Side b's name.
    pub b: &'a str,
    /// The metric, when the JSON names it.
    pub metric: Option<&'a str>,
    /// Median of side a's values.
    pub a_median: f64,
    /// Median of side b's values.
    pub b_median: f64,
    /// The per-round ratios.
    pub ratios: &'a crate::stats::PairRatios,
    /// The ratio the comparison should reach, if any.
    pub goal: Option<f64>,
    /// Why a side was not run, as the verdict says it.
    pub missing: Option<String>,
}

/// The comparisons table of a side-by-side report and its JSON rows, built one [`Comparison`] at a
/// time with the same columns and verdicts for every bench.
pub struct Comparisons {
    table: crate::report::Table,
    json: Vec<serde_json::Value>,
}

impl Default for Comparisons {
    fn default() -> Self {
        Self::new()
    }
}

impl Comparisons {
    /// An empty table.
    pub fn new() -> Comparisons {
        let table = crate::report::Table::new(&[
            "comparison",
            "workload",
            "mode",
            "a",
            "b",
            "a_median",
            "b_median",
            "pair_median",
            "pair_min",
            "pair_max",
            "pairs",
            "goal",
            "verdict",
        ]);
        Comparisons { table, json: Vec::new() }
    }

    /// Adds `c`: "met" / "not met" against its goal, "no pairs", or why a side is missing.
    pub fn push(&mut self, c: Comparison<'_>) {
        use crate::report::Cell;
        let p = c.ratios;
        let verdict = match (c.missing, c.goal) {
            (Some(why), _) => why,
            (None, _) if p.pairs.is_empty() => "no pairs".into(),
            (None, Some(g)) if p.median >= g => "met".into(),
            (None, Some(_)) => "not met".into(),
            (None, None) => String::new(),
        };
        let mut j = serde_json::json!({
            "comparison": c.name, "workload": c.workload, "mode": c.mode, "a": c.a, "b": c.b,
            "a_median": c.a_median, "b_median": c.b_median, "pair_ratios": p.ratios(),
            "pair_median": p.median, "goal": c.goal, "verdict": verdict,
        });
        if let Some(m) = c.metric {
            j["metric"] = m.into();
        }
        self.json.push(j);
        self.table.push(vec![
            c.name.into(),
            c.workload.into(),
            c.mode.into(),
            c.a.into(),
            c.b.into(),
            c.a_median.into(),
            c.b_median.into(),
            p.median.into(),
            p.min.into(),
            p.max.into(),
            p.pairs.len().into(),
            c.goal.map_or(Cell::Float(f64::NAN), Cell::Float),
            verdict.into(),
        ]);
    }

    /// The table and the JSON rows.
    pub fn finish(self) -> (crate::report::Table, Vec<serde_json::Value>) {
        (self.table, self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(iops: f64, client_cpu: Option<f64>) -> Result<Measured, String> {
        Ok(Measured { iops, mib_s: iops / 256.0, p50_us: 10.0, p99_us: 20.0, client_cpu, ..Measured::default() })
    }

    #[test]
    fn cell_stats_take_medians_of_the_good_samples_and_say_what_failed() {
        let (a, b, c) = (m(100_000.0, Some(1.0)), m(50_000.0, Some(1.0)), Err("target exited".to_string()));
        let s = [
            SampleRef { round: 0, m: &a, target_cpu: 0.5 },
            SampleRef { round: 1, m: &b, target_cpu: 0.5 },
            SampleRef { round: 2, m: &c, target_cpu: f64::NAN },
        ];
        let st = CellStats::of(&s);
        assert_eq!((st.ok, st.taken), (2, 3));
        assert_eq!(st.iops, 75_000.0);
        assert_eq!(st.note, "1 of 3 samples failed");
        // 0.5 CPU at 100k and 50k IOPS: 5 and 10 µs per I/O; client 10 and 20.
        assert!((st.target_us_per_io - 7.5).abs() < 1e-9, "{}", st.target_us_per_io);
        assert!((st.client_us_per_io - 15.0).abs() < 1e-9, "{}", st.client_us_per_io);
        assert_eq!(by_round(&s, |m| m.iops), HashMap::from([(0, 100_000.0), (1, 50_000.0)]));
        let empty = CellStats::of(&s[2..]);
        assert_eq!(empty.note, "target exited");
        assert!(empty.iops.is_nan() && empty.target_us_per_io.is_nan());
        assert!(cpu_us_per_io(f64::NAN, 1.0).is_nan() && cpu_us_per_io(1.0, 0.0).is_nan());
        assert_eq!(Mode::Quota.name(Some(50)), "quota 50%");
    }
}
