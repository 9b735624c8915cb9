//! The TLS side-by-side bench for real, as short as it goes (1 sample of 1 s, no quota mode): against
//! SPDK's nvmf_tgt on its ssl sock always, and against our target when the `ferrofabric` binary has a
//! TLS listener. Asserts the report's layout and that every target run served I/O; no timing. Prints
//! `SKIP: <test>: <reason>` and passes when SPDK is missing.

use ff_bench::tls::{self, Side};
use serde_json::Value;
use std::path::PathBuf;

const NAME: &str = "tls_bench_against_spdk_serves_io_and_reports";

/// `$FF_SPDK_DIR`, else /work/spdk, when it holds nvmf_tgt and spdk_nvme_perf.
fn spdk_dir() -> Option<PathBuf> {
    let d = std::env::var_os("FF_SPDK_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or("/work/spdk".into());
    (d.join("build/bin/nvmf_tgt").is_file() && d.join("build/bin/spdk_nvme_perf").is_file()).then_some(d)
}

/// `$FF_BIN`, else the workspace's built `ferrofabric` (release first), when it exists.
fn ff_bin() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("FF_BIN").map(PathBuf::from) {
        return b.is_file().then_some(b);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    ["release", "debug"].iter().map(|p| target.join(p).join("ferrofabric")).find(|b| b.is_file())
}

fn has_tls_listener(bin: &PathBuf) -> bool {
    std::process::Command::new(bin)
        .args(["target", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--tls-listen"))
}

#[test]
fn tls_bench_against_spdk_serves_io_and_reports() {
    let Some(dir) = spdk_dir() else {
        eprintln!(
            "SKIP: {NAME}: no SPDK build (FF_SPDK_DIR unset, no /work/spdk/build/bin/{{nvmf_tgt,spdk_nvme_perf}})"
        );
        return;
    };
    if let Err(e) = ff_bench::procs::ensure_hugepages(2048) {
        eprintln!("SKIP: {NAME}: no hugepages for SPDK: {e:#}");
        return;
    }
    let mut targets = vec![Side::Spdk];
    let bin = ff_bin();
    match &bin {
        Some(b) if has_tls_listener(b) => targets.push(Side::Ours),
        Some(b) => eprintln!("SKIP (ours only): {NAME}: {} target has no --tls-listen yet", b.display()),
        None => eprintln!("SKIP (ours only): {NAME}: no ferrofabric binary (build it, or set FF_BIN)"),
    }
    let mut cfg = tls::Config::quick(bin.unwrap_or_else(|| "ferrofabric".into()));
    cfg.spdk_dir = Some(dir);
    cfg.samples = 1;
    cfg.seconds = 1;
    cfg.targets = targets.clone();
    // Apart from the bench's own ids, so a bench running meanwhile is left alone.
    cfg.shm_id = 4690;
    let rep = tls::run(&cfg).expect("bench tls");

    let out = std::env::temp_dir().join(format!("ff-bench-tls-test-{}", std::process::id()));
    let w = rep.write(&out).expect("writing the report");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&w.summary_json).unwrap()).unwrap();
    for key in ["machine", "command", "options", "rows", "medians", "summary", "notes"] {
        assert!(!summary[key].is_null(), "summary.json has {key}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("### medians") && md.contains("| workload | mode | target |"), "{md}");
    assert!(md.contains("kernel TLS"), "the report says whether records are kernel or user space: {md}");
    let rows = summary["rows"].as_array().unwrap();
    let tls_names: Vec<&str> = targets.iter().map(|s| if *s == Side::Ours { "ours tls" } else { "spdk tls" }).collect();
    assert_eq!(rows.len(), 2 * tls_names.len(), "one sample of each workload per target: {rows:?}");
    for name in &tls_names {
        for w in ["4K randread QD32", "128K read QD16"] {
            let r = rows
                .iter()
                .find(|r| r["target"] == *name && r["workload"] == w)
                .unwrap_or_else(|| panic!("{name} {w} in {rows:?}"));
            let iops = r["iops"].as_f64().unwrap_or_else(|| panic!("{name} {w} served no I/O: {r}"));
            assert!(iops > 0.0, "{name} {w}: {r}");
            assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
        }
    }
    let medians = summary["medians"].as_array().unwrap();
    assert_eq!(medians.len(), rows.len());
    assert!(medians.iter().all(|m| m["samples"] == 1), "{medians:?}");
    let cmps = &summary["summary"]["comparisons"];
    if targets.len() == 2 {
        assert_eq!(cmps.as_array().unwrap().len(), 2, "ours vs spdk at both workloads: {cmps}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
