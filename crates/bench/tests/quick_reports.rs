//! Smoke test of the benchmarks in their `--quick` configuration: the report files exist and parse,
//! and the sock-layer counters tell a coherent story. No timing is asserted: benchmarks report.

use ff_bench::report::Report;
use ff_bench::{recv_cutover, uring, zerocopy};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("ff-bench-{name}-{}-{nanos}", std::process::id()))
}

/// Writes the report, checks every file, and returns summary.json's rows.
fn write_and_check(rep: &Report, dir: &Path) -> Vec<Value> {
    let w = rep.write(dir).expect("writing the report");
    let csv = std::fs::read_to_string(&w.rows_csv).unwrap();
    let mut lines = csv.lines();
    let width = lines.next().expect("CSV header").split(',').count();
    let mut n = 0;
    for l in lines {
        assert_eq!(l.split(',').count(), width, "CSV row width: {l}");
        n += 1;
    }
    assert!(n > 0, "CSV has rows");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&w.summary_json).unwrap()).unwrap();
    for key in ["machine", "command", "options", "rows", "medians", "summary", "notes"] {
        assert!(!summary[key].is_null(), "summary.json has {key}");
    }
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!summary["machine"]["kernel"].as_str().unwrap().is_empty());
    assert!(!w.plots.is_empty());
    for p in &w.plots {
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{} is an SVG", p.display());
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{} has lines", p.display());
    }
    let rows = summary["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), n, "JSON rows match CSV rows");
    let _ = std::fs::remove_dir_all(dir);
    rows
}

fn u(r: &Value, k: &str) -> u64 {
    r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"))
}

#[test]
fn recv_cutover_quick_report_is_coherent() {
    let cfg = recv_cutover::Config::quick();
    let rep = recv_cutover::run(&cfg).expect("recv-cutover --quick");
    let rows = write_and_check(&rep, &temp_dir("recv-cutover"));
    assert_eq!(rows.len(), cfg.sizes.len() * cfg.modes().len() * cfg.repeats);
    for r in &rows {
        let (n, pdus) = (u(r, "n") as usize, u(r, "pdus"));
        assert_eq!(u(r, "bytes"), pdus * (recv_cutover::HEADER + n) as u64);
        // Every received byte is accounted for exactly once: straight into the caller or into the pipe.
        assert_eq!(u(r, "bytes_direct") + u(r, "bytes_into_pipe"), u(r, "bytes"), "{r}");
        assert!(u(r, "bytes_copied") <= u(r, "bytes_into_pipe"), "{r}");
        match r["mode"].as_str().unwrap() {
            "direct" => {
                assert_eq!(u(r, "bytes_copied"), 0, "direct copies nothing: {r}");
                assert_eq!(u(r, "readv_pipe"), 0, "{r}");
                // A header and (when N > 0) a payload recv per PDU at least.
                assert!(u(r, "recv_syscalls") >= pdus * if n > 0 { 2 } else { 1 }, "{r}");
            }
            "pipe" if n <= 512 => {
                assert!(u(r, "recv_syscalls") < pdus, "the pipe batches small PDUs: {r}");
                assert!(u(r, "bytes_copied") > 0, "{r}");
            }
            _ => {}
        }
    }
    let s = &rep.summary;
    assert!(s.get("measured_cutover_bytes").is_some() && s["per_n"].as_array().unwrap().len() == cfg.sizes.len());
}

#[test]
fn zerocopy_quick_report_is_coherent() {
    let cfg = zerocopy::Config::quick();
    let rep = zerocopy::run(&cfg).expect("zerocopy --quick");
    let rows = write_and_check(&rep, &temp_dir("zerocopy"));
    let nets = rep.options["networks"].as_array().unwrap().len();
    assert!(nets >= 1, "loopback always runs");
    assert_eq!(rows.len(), nets * cfg.sizes.len() * zerocopy::MODES.len() * cfg.repeats);
    for r in &rows {
        let msgs = u(r, "msgs");
        assert_eq!(u(r, "bytes"), msgs * u(r, "size"), "{r}");
        assert!(u(r, "sendmsg") >= msgs, "one message per sendmsg at least: {r}");
        match r["mode"].as_str().unwrap() {
            "copy" => {
                assert_eq!(u(r, "zc_sends"), 0, "copy never uses MSG_ZEROCOPY: {r}");
                assert_eq!(u(r, "zc_notifications"), 0, "{r}");
            }
            "zc" => {
                assert!(u(r, "zc_sends") > 0, "{r}");
                assert!(u(r, "zc_copied") <= u(r, "zc_notifications"), "{r}");
                // The fallback happens once, exactly when the kernel reported a copy.
                assert_eq!(u(r, "zc_fallbacks"), u64::from(u(r, "zc_copied") > 0), "{r}");
                assert_eq!(u(r, "zc_active_end"), u64::from(u(r, "zc_copied") == 0), "{r}");
            }
            "zc-forced" => {
                assert_eq!(u(r, "zc_sends"), u(r, "sendmsg"), "every send is MSG_ZEROCOPY: {r}");
                assert!(u(r, "zc_notifications") > 0, "{r}");
                assert_eq!(u(r, "zc_fallbacks"), 0, "{r}");
            }
            m => panic!("unknown mode {m}"),
        }
    }
}

#[test]
fn uring_quick_report_is_coherent() {
    if !ff_bench::target::uring_available() {
        eprintln!("SKIP: uring_quick_report_is_coherent: io_uring is not available here");
        return;
    }
    let cfg = uring::Config::quick();
    let rep = uring::run(&cfg).expect("uring --quick");
    let rows = write_and_check(&rep, &temp_dir("uring"));
    // The sweep's epoll and uring per QD, plus part 2's steps minus the two QD32 points the sweep has.
    let per_rep = cfg.qds.len() * 2 + 2 * uring::STEPS.len() - 2;
    assert_eq!(rows.len(), per_rep * cfg.repeats);
    assert_eq!(rep.plots.len(), 2, "IOPS and syscalls by QD");
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    for r in &rows {
        assert_eq!(r["failure"], "", "{r}");
        assert!(u(r, "perf_ios") > 0 && u(r, "target_ios") > 0, "{r}");
        // Every I/O perf completed reached the namespace; the target also saw warm-up and drain.
        assert!(u(r, "target_ios") >= u(r, "perf_ios"), "{r}");
        let backend = if r["setup"] == "epoll" { "epoll" } else { "uring" };
        assert_eq!(r["perf_sock_backend"], backend, "{r}");
        assert_eq!(r["target_sock_backend"], backend, "{r}");
        if backend == "uring" {
            assert!(u(r, "target_uring_enters") > 0, "{r}");
            assert!(f(r, "perf_enters_per_io") > 0.0, "{r}");
            // On io_uring the enters are the syscalls (the target's counters are exact).
            assert!(f(r, "target_enters_per_io") <= f(r, "target_syscalls_per_io"), "{r}");
        } else {
            assert_eq!(u(r, "target_uring_enters"), 0, "{r}");
            assert_eq!(f(r, "perf_enters_per_io"), 0.0, "{r}");
            assert!(f(r, "perf_syscalls_per_io") > 0.0, "{r}");
        }
    }
    let v = &rep.summary["verdict"];
    for k in ["enters_goal_met", "per_core_goal_met", "goal_met"] {
        assert!(v[k].is_boolean(), "verdict has {k}: {v}");
    }
    assert!(rep.notes.iter().any(|n| n.starts_with("VERDICT")), "the verdict is stated");
}
