//! The iSCSI side-by-side bench's peer targets for real: tgtd and SPDK's iscsi_tgt started as the bench
//! starts them, one short iscsi-perf sample each, and every process gone afterwards. Each part prints
//! `SKIP: <test>: <reason>` and passes when its tool is missing.

use ff_bench::iscsi::clients::{self, ClientKind, Endpoint, Run};
use ff_bench::iscsi::targets::{IscsiTarget, TargetKind};
use ff_bench::iscsi::which;
use ff_bench::measure::Probe;
use ff_bench::target::Workload;
use ff_perf::Pattern;
use std::path::PathBuf;

const RR4K_QD8: Workload = Workload { io_size: 4096, pattern: Pattern::RandRead, qd: 8 };

fn cpus() -> (usize, usize) {
    (0, usize::from(ff_perf::affinity::online_cpus() > 1))
}

fn logs(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ff-bench-iscsi-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One 1 s sample against `t`, then `t` dropped and its process checked gone.
fn sample_and_stop(t: IscsiTarget) {
    let (_, client_cpu) = cpus();
    let pid = t.pid();
    t.daemon.resume().unwrap();
    let run = Run {
        workload: RR4K_QD8,
        endpoint: Endpoint::Iscsi { addr: t.daemon.addr, iqn: t.kind.iqn().into(), lun: t.kind.lun() },
        seconds: 1,
        warmup: 0,
        cpu: client_cpu,
        probe: Probe::None,
    };
    let m = clients::run(ClientKind::IscsiPerf, &run);
    let log = t.daemon.log.clone();
    drop(t);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "target {pid} still running after drop");
    let m = m.unwrap_or_else(|e| panic!("{e:#}; target log {}", log.display()));
    assert!(m.iops > 0.0, "{m:?}");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn tgt_serves_iscsi_perf_and_stops() {
    if !which("iscsi-perf") {
        eprintln!("SKIP: tgt_serves_iscsi_perf_and_stops: iscsi-perf not installed (libiscsi-bin)");
        return;
    }
    if !which("tgtd") || !which("tgtadm") || !which("taskset") {
        eprintln!("SKIP: tgt_serves_iscsi_perf_and_stops: tgtd, tgtadm or taskset not installed");
        return;
    }
    let t = IscsiTarget::start_tgt(cpus().0, &logs("tgt")).expect("starting tgtd");
    assert_eq!(t.kind, TargetKind::Tgt);
    let files = t.owned_files().to_vec();
    assert!(files.iter().all(|f| f.exists()), "tgtd's control socket files {files:?}");
    sample_and_stop(t);
    assert!(files.iter().all(|f| !f.exists()), "left behind: {files:?}");
}

#[test]
fn spdk_iscsi_tgt_serves_iscsi_perf_and_stops() {
    const NAME: &str = "spdk_iscsi_tgt_serves_iscsi_perf_and_stops";
    if !which("iscsi-perf") {
        eprintln!("SKIP: {NAME}: iscsi-perf not installed (libiscsi-bin)");
        return;
    }
    let Some(dir) = std::env::var_os("FF_SPDK_DIR").map(PathBuf::from).or_else(|| {
        let d = PathBuf::from("/work/spdk");
        d.join("build/bin/iscsi_tgt").is_file().then_some(d)
    }) else {
        eprintln!("SKIP: {NAME}: no SPDK build (FF_SPDK_DIR unset, no /work/spdk/build/bin/iscsi_tgt)");
        return;
    };
    if let Err(e) = ff_bench::procs::ensure_hugepages(1024) {
        eprintln!("SKIP: {NAME}: no hugepages for SPDK: {e:#}");
        return;
    }
    // Another shared-memory id than the bench's, so a bench running meanwhile is left alone.
    let t = IscsiTarget::start_spdk(&dir, cpus().0, 4390, &logs("spdk")).expect("starting iscsi_tgt");
    sample_and_stop(t);
}
