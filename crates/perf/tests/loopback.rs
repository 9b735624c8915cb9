//! ff-perf against our own target on loopback (in-process, ephemeral port): every pattern, verify (and
//! that verify catches a namespace that does not keep data), mixed reads and writes, several queues on
//! several reactor threads, digests, a bounded range, and the JSON report's shape. Short runs, no timing
//! asserts: behaviour only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_perf::{Pattern, PerfConfig, PerfError, PerfReport};
use ff_target::{RunningTarget, TargetOptions, config::DEFAULT_NQN};

fn target(backend: &str) -> RunningTarget {
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, backend.parse().unwrap());
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen.clear();
    ff_target::start(&o).unwrap()
}

fn cfg(t: &RunningTarget, pattern: Pattern) -> PerfConfig {
    PerfConfig {
        addr: t.io_addrs[0],
        nqn: DEFAULT_NQN.into(),
        pattern,
        seconds: 0.5,
        warmup_seconds: 0.1,
        queue_depth: 16,
        ..PerfConfig::default()
    }
}

fn assert_clean(r: &PerfReport) {
    assert!(r.ios > 0, "no I/O completed: {r:?}");
    assert_eq!(r.errors, 0, "{}", r.render());
    assert_eq!(r.reads + r.writes, r.ios);
    assert!(r.iops > 0.0 && r.mib_s > 0.0);
    assert!(r.latency.p50_us > 0.0 && r.latency.p50_us <= r.latency.p99_us && r.latency.p99_us <= r.latency.max_us);
}

#[test]
fn every_pattern_runs_and_moves_the_right_direction() {
    let t = target("ram");
    for p in [Pattern::Read, Pattern::Write, Pattern::RandRead, Pattern::RandWrite, Pattern::Rw, Pattern::RandRw] {
        let r = ff_perf::run(&cfg(&t, p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_clean(&r);
        match p.read_pct(50) {
            100 => assert_eq!(r.writes, 0, "{p}"),
            0 => assert_eq!(r.reads, 0, "{p}"),
            _ => assert!(r.reads > 0 && r.writes > 0, "{p}: {} reads, {} writes", r.reads, r.writes),
        }
        assert_eq!(r.pattern, p.to_string());
        assert!(r.threads[0].syscalls_per_io > 0.0, "{p}: sock counters moved");
    }
    t.stop();
}

#[test]
fn verify_reads_back_every_write_and_checks_mixed_reads() {
    let t = target("ram");
    for (p, size) in [(Pattern::RandWrite, 4096), (Pattern::RandRw, 4096), (Pattern::Write, 128 * 1024)] {
        let c = PerfConfig { verify: true, io_size: size, rwmixread: 30, ..cfg(&t, p) };
        let r = ff_perf::run(&c).unwrap_or_else(|e| panic!("{p} verify: {e}"));
        assert_clean(&r);
        let v = r.verify_counts;
        assert!(v.writes > 0 && v.checked_reads > 0, "{p}: {v:?}");
        // Every write is read back unless the run ended first (at most a queue's worth).
        assert!(v.checked_reads + 16 >= v.writes, "{p}: {v:?}");
        assert!(r.render().contains("no mismatch"));
    }
    t.stop();
}

#[test]
fn verify_fails_loudly_on_a_namespace_that_returns_zeroes() {
    // The null backend discards writes and reads zeroes: the first read-back must fail with its LBA.
    let t = target("null");
    let c = PerfConfig { verify: true, ..cfg(&t, Pattern::RandWrite) };
    match ff_perf::run(&c) {
        Err(e @ PerfError::Verify { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("VERIFY FAILED") && msg.contains("LBA") && msg.contains("all zeroes"), "{msg}");
        }
        other => panic!("verify against null must fail, got {other:?}"),
    }
    t.stop();
}

#[test]
fn several_queues_on_several_reactor_threads() {
    let t = target("ram");
    let c = PerfConfig { queues: 4, cores: 2, verify: true, ..cfg(&t, Pattern::RandRw) };
    let r = ff_perf::run(&c).unwrap();
    assert_clean(&r);
    assert_eq!((r.queues, r.cores, r.threads.len()), (4, 2, 2));
    for th in &r.threads {
        assert_eq!(th.qids.len(), 2, "{th:?}");
        assert!(th.ios > 0, "thread {} did no I/O", th.thread);
    }
    assert_eq!(r.threads.iter().map(|t| t.ios).sum::<u64>(), r.ios);
    t.stop();
}

#[test]
fn digests_on_with_verify() {
    let t = target("ram");
    for (h, d) in [(true, false), (true, true)] {
        let c = PerfConfig { hdgst: h, ddgst: d, verify: true, ..cfg(&t, Pattern::RandRw) };
        let r = ff_perf::run(&c).unwrap();
        assert_clean(&r);
        assert!(r.hdgst == h && r.ddgst == d && r.verify_counts.checked_reads > 0);
    }
    t.stop();
}

#[test]
fn a_small_range_keeps_verify_exclusive_per_slot() {
    // 64 slots, 2 threads x 2 queues x QD 32: more commands than slots, so busy slots must be skipped.
    let t = target("ram");
    let c = PerfConfig {
        size: Some(64 * 4096),
        queues: 2,
        cores: 2,
        queue_depth: 32,
        verify: true,
        ..cfg(&t, Pattern::RandRw)
    };
    let r = ff_perf::run(&c).unwrap();
    assert_clean(&r);
    assert_eq!(r.range_bytes, 64 * 4096);
    t.stop();
}

#[test]
fn json_report_shape() {
    let t = target("ram");
    let r = ff_perf::run(&cfg(&t, Pattern::RandRead)).unwrap();
    let j = r.to_json();
    for k in [
        "iops",
        "mib_s",
        "latency",
        "cpu",
        "errors",
        "threads",
        "syscalls_per_io",
        "verify_counts",
        "pattern",
        "queue_depth",
        "io_size",
        "sock",
    ] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    for k in ["avg_us", "p50_us", "p99_us", "p999_us", "max_us"] {
        assert!(j["latency"][k].is_number(), "latency.{k}");
    }
    for k in ["user_s", "sys_s", "wall_s", "cores_busy"] {
        assert!(j["cpu"][k].is_number(), "cpu.{k}");
    }
    let th = &j["threads"][0];
    for k in ["ios", "iops", "syscalls_per_io", "sock_backend", "qids", "latency", "errors"] {
        assert!(th.get(k).is_some(), "threads[0].{k}");
    }
    t.stop();
}

#[test]
fn bad_configurations_are_refused() {
    let t = target("ram");
    let too_big = PerfConfig { io_size: 1 << 20, ..cfg(&t, Pattern::Read) };
    assert!(matches!(ff_perf::run(&too_big), Err(PerfError::Invalid(_))), "above MDTS");
    let odd = PerfConfig { io_size: 1000, ..cfg(&t, Pattern::Read) };
    assert!(matches!(ff_perf::run(&odd), Err(PerfError::Invalid(_))));
    let wrong_ns = PerfConfig { nsid: Some(7), ..cfg(&t, Pattern::Read) };
    assert!(ff_perf::run(&wrong_ns).is_err());
    t.stop();
}
