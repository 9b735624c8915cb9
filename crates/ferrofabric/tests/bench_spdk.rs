//! `ferrofabric bench spdk --quick` end to end, as a user runs it: our targets start as their own
//! processes, ff-perf drives them, and without an SPDK build every SPDK cell and comparison says so
//! instead of showing a number. No timing is asserted: benchmarks report.

use serde_json::Value;
use std::process::Command;

#[test]
fn bench_spdk_quick_runs_ours_and_marks_spdk_not_built() {
    let out = std::env::temp_dir().join(format!("ff-bench-spdk-test-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_ferrofabric"))
        .args(["bench", "spdk", "--quick", "--out"])
        .arg(&out)
        .env_remove("FF_SPDK_DIR")
        .output()
        .expect("ferrofabric runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bench spdk --quick failed\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let medians = summary["summary"]["medians"].as_array().unwrap();
    let cell = |target: &str, client: &str| {
        medians
            .iter()
            .find(|m| m["target"] == target && m["client"] == client && m["workload"] == "4K randread QD32")
            .unwrap_or_else(|| panic!("{target} / {client} in {medians:?}"))
    };
    // Our target under our client: real samples with real figures.
    let ours = cell("ours", "ff perf");
    assert_eq!(ours["samples"], 2, "{ours}");
    assert!(ours["iops"].as_f64().unwrap() > 0.0, "{ours}");
    assert!(ours["target_cpu"].as_f64().is_some_and(|c| c > 0.0), "the target's CPU was read: {ours}");
    // SPDK's cells have no samples, and the table says why.
    let spdk = cell("spdk", "ff perf");
    assert_eq!(spdk["samples"], 0, "{spdk}");
    let table = summary["medians"].as_array().unwrap();
    let row = table.iter().find(|r| r["target"] == "spdk" && r["client"] == "ff perf").unwrap();
    assert!(row["note"].as_str().unwrap().contains("not built"), "{row}");
    for c in summary["summary"]["comparisons"].as_array().unwrap() {
        if c["b"].as_str().unwrap().starts_with("spdk") {
            assert!(c["verdict"].as_str().unwrap().contains("not built"), "{c}");
        }
    }
    assert!(out.join("rows.csv").is_file() && out.join("iops_by_round.svg").is_file());
    let _ = std::fs::remove_dir_all(&out);
}
