//! ff-perf over iSCSI against Linux tgt (started per test on its own portal and control port): every
//! pattern, verify (every write read back and compared) through immediate data, unsolicited Data-Out and
//! R2Ts, several sessions on several threads, digests, and the report's shape. Short runs, no timing
//! asserts. Without tgtd the tests print `SKIP` and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_perf::{IscsiTarget, Pattern, PerfConfig, PerfReport};
use ff_testkit::tgt::{IQN, Tgt};

fn cfg(t: &Tgt, pattern: Pattern) -> PerfConfig {
    PerfConfig {
        addr: t.addr,
        pattern,
        seconds: 0.4,
        warmup_seconds: 0.1,
        queue_depth: 16,
        size: Some(16 << 20),
        iscsi: Some(IscsiTarget {
            target: IQN.into(),
            lun: 1,
            initiator: ff_perf::DEFAULT_INITIATOR.into(),
            chap: None,
        }),
        ..PerfConfig::default()
    }
}

fn assert_clean(r: &PerfReport) {
    assert!(r.ios > 0, "no I/O completed: {r:?}");
    assert_eq!(r.errors, 0, "{}", r.render());
    assert_eq!(r.reads + r.writes, r.ios);
    assert_eq!((r.transport.as_str(), r.nqn.as_str(), r.nsid, r.block_size), ("iscsi", IQN, 1, 512));
    assert!(r.latency.p50_us > 0.0 && r.latency.p50_us <= r.latency.p99_us);
}

#[test]
fn every_pattern_runs_and_moves_the_right_direction() {
    let Some(t) = Tgt::start("every_pattern_runs_and_moves_the_right_direction", 64 << 20) else { return };
    for p in [Pattern::Read, Pattern::Write, Pattern::RandRead, Pattern::RandWrite, Pattern::Rw, Pattern::RandRw] {
        let r = ff_perf::run(&cfg(&t, p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_clean(&r);
        match p.read_pct(50) {
            100 => assert_eq!(r.writes, 0, "{p}"),
            0 => assert_eq!(r.reads, 0, "{p}"),
            _ => assert!(r.reads > 0 && r.writes > 0, "{p}"),
        }
        assert!(r.render().contains("iSCSI (addr:"), "{}", r.render());
    }
}

#[test]
fn verify_reads_back_every_write_over_several_sessions() {
    let Some(t) = Tgt::start("verify_reads_back_every_write_over_several_sessions", 64 << 20) else { return };
    for (p, size, queues) in
        [(Pattern::RandWrite, 4096, 1), (Pattern::RandRw, 4096, 2), (Pattern::Write, 128 * 1024, 2)]
    {
        let c = PerfConfig { verify: true, io_size: size, rwmixread: 30, queues, cores: queues.into(), ..cfg(&t, p) };
        let r = ff_perf::run(&c).unwrap_or_else(|e| panic!("{p} verify: {e}"));
        assert_clean(&r);
        assert!(r.verify_counts.writes > 0 && r.verify_counts.checked_reads > 0, "{p}: {:?}", r.verify_counts);
        assert_eq!((r.queues, r.threads.len()), (queues, usize::from(queues)));
        let json = r.to_json();
        assert_eq!(json["transport"], "iscsi");
        assert_eq!(json["verify"], true);
    }
}

#[test]
fn digests_and_a_missing_lun_or_target() {
    let Some(t) = Tgt::start("digests_and_a_missing_lun_or_target", 64 << 20) else { return };
    for k in ["HeaderDigest", "DataDigest"] {
        t.adm(&["--op", "update", "--mode", "target", "--tid", "1", "--name", k, "--value", "CRC32C,None"]);
    }
    let c = PerfConfig { hdgst: true, ddgst: true, verify: true, io_size: 64 * 1024, ..cfg(&t, Pattern::RandRw) };
    let r = ff_perf::run(&c).unwrap();
    assert_clean(&r);
    assert!(r.hdgst && r.ddgst);
    let mut bad = cfg(&t, Pattern::RandRead);
    bad.iscsi.as_mut().unwrap().target = "iqn.2026-12.io.ferrofabric:absent".into();
    let e = ff_perf::run(&bad).unwrap_err();
    assert!(e.to_string().contains("target not found"), "{e}");
    let mut bad = cfg(&t, Pattern::RandRead);
    bad.iscsi.as_mut().unwrap().lun = 7;
    assert!(ff_perf::run(&bad).is_err(), "LUN 7 does not exist");
}
