//! `ferrofabric bench iscsi --quick` end to end, as a user runs it: our target serves iSCSI and
//! NVMe/TCP from its own process, iscsi-perf and ff perf (over both) drive it, tgt runs next to it when
//! installed,
//! and without an SPDK build SPDK's cells and comparisons say so instead of showing a number. No timing
//! is asserted: benchmarks report.

use serde_json::Value;
use std::process::Command;

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

#[test]
fn bench_iscsi_quick_runs_ours_and_marks_spdk_not_built() {
    if !on_path("iscsi-perf") || !on_path("taskset") {
        eprintln!("SKIP: bench_iscsi_quick_runs_ours_and_marks_spdk_not_built: iscsi-perf or taskset not installed");
        return;
    }
    let tgt = on_path("tgtd") && on_path("tgtadm");
    if !tgt {
        eprintln!("SKIP: bench_iscsi_quick_runs_ours_and_marks_spdk_not_built (tgt part): tgtd not installed");
    }
    let out = std::env::temp_dir().join(format!("ff-bench-iscsi-test-{}", std::process::id()));
    let targets = if tgt { "ours,spdk,tgt" } else { "ours,spdk" };
    let run = Command::new(env!("CARGO_BIN_EXE_ferrofabric"))
        .args(["bench", "iscsi", "--quick", "--targets", targets, "--out"])
        .arg(&out)
        .env_remove("FF_SPDK_DIR")
        .output()
        .expect("ferrofabric runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "bench iscsi --quick failed\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let medians = summary["summary"]["medians"].as_array().unwrap();
    let cell = |target: &str, client: &str| {
        medians
            .iter()
            .find(|m| m["target"] == target && m["client"] == client && m["workload"] == "4K randread QD32")
            .unwrap_or_else(|| panic!("{target} / {client} in {medians:?}"))
    };
    for (target, client) in [("ours", "iscsi-perf"), ("ours", "ff perf iscsi"), ("ours", "ff perf nvme/tcp")] {
        let c = cell(target, client);
        assert_eq!(c["samples"], 2, "{c}");
        assert!(c["iops"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["target_cpu"].as_f64().is_some_and(|x| x > 0.0), "the target's CPU was read: {c}");
    }
    if tgt {
        for client in ["iscsi-perf", "ff perf iscsi"] {
            let c = cell("tgt", client);
            assert_eq!(c["samples"], 2, "{c}");
        }
    }
    let spdk = cell("spdk iscsi_tgt", "iscsi-perf");
    assert_eq!(spdk["samples"], 0, "{spdk}");
    for c in summary["summary"]["comparisons"].as_array().unwrap() {
        if c["b"].as_str().unwrap().starts_with("spdk") {
            assert!(c["verdict"].as_str().unwrap().contains("not built"), "{c}");
        }
    }
    assert!(out.join("rows.csv").is_file() && out.join("iops_by_round.svg").is_file());
    let _ = std::fs::remove_dir_all(&out);
}
