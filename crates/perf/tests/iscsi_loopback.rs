//! ff-perf over iSCSI against our own target (in-process, ephemeral portal): both protocols on one
//! namespace, verify through each, and the same report shape. Short runs, no timing asserts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_perf::{DEFAULT_ISCSI_TARGET, IscsiTarget, Pattern, PerfConfig};
use ff_target::config::{DEFAULT_IQN, DEFAULT_NQN};
use ff_target::{RunningTarget, TargetOptions};

fn target() -> RunningTarget {
    let mut o = TargetOptions::default()
        .with_default_subsystem(DEFAULT_NQN, "ram".parse().unwrap())
        .with_default_iscsi_target(DEFAULT_IQN, DEFAULT_NQN);
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    o.iscsi.listen = vec!["127.0.0.1:0".parse().unwrap()];
    ff_target::start(&o).unwrap()
}

#[test]
fn the_same_namespace_over_iscsi_and_nvme_tcp() {
    assert_eq!(DEFAULT_IQN, DEFAULT_ISCSI_TARGET, "perf's default is the target's");
    let t = target();
    let base = PerfConfig {
        seconds: 0.4,
        warmup_seconds: 0.1,
        queue_depth: 16,
        size: Some(16 << 20),
        ..PerfConfig::default()
    };
    let iscsi =
        IscsiTarget { target: DEFAULT_IQN.into(), lun: 0, initiator: ff_perf::DEFAULT_INITIATOR.into(), chap: None };
    for (p, size) in [(Pattern::RandRw, 4096), (Pattern::Write, 128 * 1024)] {
        let over_iscsi = PerfConfig {
            addr: t.iscsi_addrs[0],
            iscsi: Some(iscsi.clone()),
            pattern: p,
            io_size: size,
            verify: true,
            ..base.clone()
        };
        let r = ff_perf::run(&over_iscsi).unwrap_or_else(|e| panic!("iSCSI {p}: {e}"));
        assert_eq!((r.errors, r.transport.as_str(), r.nqn.as_str(), r.nsid), (0, "iscsi", DEFAULT_IQN, 0));
        assert!(r.ios > 0 && r.verify_counts.checked_reads > 0, "{}", r.render());
        let over_nvme = PerfConfig { addr: t.io_addrs[0], pattern: p, io_size: size, verify: true, ..base.clone() };
        let n = ff_perf::run(&over_nvme).unwrap_or_else(|e| panic!("NVMe/TCP {p}: {e}"));
        assert_eq!((n.errors, n.transport.as_str()), (0, "nvme-tcp"));
        // One JSON shape for both.
        let (a, b) = (r.to_json(), n.to_json());
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
    }
    t.stop();
}
