//! A quick run of the `servers` benchmark body, printing each point and the medians.
//!
//! Usage: `cargo run --release -p ff-talk --example servers_bench -- [CONNECTIONS,...] [SECONDS] [REPS]`
//! (defaults 1,4,16,64,256,1024 1 3). The real CLI is `ferrofabric bench servers`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut cfg = ff_talk::ServersBenchConfig::default();
    if let Some(c) = args.next() {
        cfg.connections = c.split(',').map(str::parse).collect::<Result<_, _>>()?;
    }
    cfg.seconds = args.next().map(|s| s.parse()).transpose()?.unwrap_or(cfg.seconds);
    cfg.reps = args.next().map(|s| s.parse()).transpose()?.unwrap_or(cfg.reps);
    println!(
        "servers bench: {:?} connections, {} s per point, {} reps, kinds {:?}",
        cfg.connections, cfg.seconds, cfg.reps, cfg.kinds
    );
    let rows = ff_talk::servers_bench_with(&cfg, |r| {
        println!(
            "{:>10} c={:<5} rep={} {:>9.0} req/s p50 {:>7.1} us p99 {:>8.1} us",
            r.server.name(),
            r.connections,
            r.rep,
            r.requests_per_sec,
            r.p50_us,
            r.p99_us
        )
    })?;
    println!("medians:");
    for s in ff_talk::summarize(&rows) {
        let ratio = s.vs_blocking.map(|v| format!("{v:.2}x blocking")).unwrap_or_default();
        println!(
            "{:>10} c={:<5} {:>9.0} req/s p50 {:>7.1} us p99 {:>8.1} us {ratio}",
            s.server.name(),
            s.connections,
            s.requests_per_sec,
            s.p50_us,
            s.p99_us
        );
    }
    Ok(())
}
