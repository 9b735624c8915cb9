//! Load generator: C connections from one thread (ff-sock on epoll), Q requests outstanding on each,
//! every response verified; prints requests/s and latency percentiles.
//!
//! Usage: `cargo run -p ff-talk --example loadgen -- [ADDR] [CONNECTIONS] [QUEUE_DEPTH] [SECONDS] [WRITE_PCT]`
//! (defaults 127.0.0.1:7000 1 1 1 0; READs and WRITEs move 4 KiB).

use ff_talk::loadgen::{LoadConfig, run};
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut cfg = LoadConfig::new(args.next().unwrap_or_else(|| "127.0.0.1:7000".into()).parse()?);
    cfg.connections = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    cfg.queue_depth = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    cfg.duration = Some(Duration::from_secs_f64(args.next().map(|s| s.parse()).transpose()?.unwrap_or(1.0)));
    cfg.write_pct = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    println!(
        "loadgen -> {}: {} connection(s), depth {}, {:?}, {}% WRITE, 4 KiB data",
        cfg.addr,
        cfg.connections,
        cfg.queue_depth,
        cfg.duration.unwrap_or_default(),
        cfg.write_pct
    );
    let r = run(&cfg)?;
    println!(
        "{} requests ({} reads, {} writes) in {:.2} s: {:.0} req/s, p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        r.requests, r.reads, r.writes, r.seconds, r.requests_per_sec, r.p50_us, r.p99_us, r.max_us
    );
    Ok(())
}
