//! The body of `ferrofabric bench servers`: every server kind at each connection count, in-process on
//! 127.0.0.1 port 0, driven by [`crate::loadgen`]. Configurations are interleaved (for each connection
//! count, round-robin over the kinds, repeated `reps` times) so drift in the machine (other builds,
//! thermal, page cache) spreads over all kinds instead of biasing the last one. Output formats belong to
//! the caller; this module returns rows and their medians.

use crate::loadgen::{self, LoadConfig};
use crate::servers::{self, ServerKind};
use anyhow::Context;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// What to measure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServersBenchConfig {
    /// Connection counts (each 1 to 1,024).
    pub connections: Vec<usize>,
    /// Seconds of load per point.
    pub seconds: f64,
    /// Repetitions of the whole round-robin per connection count.
    pub reps: usize,
    /// Server kinds, in the order each round visits them.
    pub kinds: Vec<ServerKind>,
    /// Bytes per READ (the response data after the 64-byte response header).
    pub read_len: u32,
    /// Bytes per WRITE.
    pub write_len: u32,
    /// Percentage of WRITEs.
    pub write_pct: u8,
    /// Requests outstanding per connection.
    pub queue_depth: usize,
    /// Reactor threads of the sock servers.
    pub sock_reactors: usize,
}

impl Default for ServersBenchConfig {
    fn default() -> Self {
        ServersBenchConfig {
            connections: vec![1, 4, 16, 64, 256, 1024],
            seconds: 1.0,
            reps: 3,
            kinds: ServerKind::ALL.to_vec(),
            read_len: 4096,
            write_len: 4096,
            write_pct: 0,
            queue_depth: 1,
            sock_reactors: 1,
        }
    }
}

/// One measured point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServersRow {
    /// Server kind.
    pub server: ServerKind,
    /// Connections.
    pub connections: usize,
    /// Repetition index (0-based).
    pub rep: usize,
    /// Requests outstanding per connection.
    pub queue_depth: usize,
    /// Bytes per READ.
    pub read_len: u32,
    /// Percentage of WRITEs.
    pub write_pct: u8,
    /// Requests completed (all verified).
    pub requests: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
}

/// Medians over repetitions of one (server, connections) point, and the ratio to `blocking`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServersSummary {
    /// Server kind.
    pub server: ServerKind,
    /// Connections.
    pub connections: usize,
    /// Rows that went into the medians.
    pub reps: usize,
    /// Median requests per second.
    pub requests_per_sec: f64,
    /// Median of the p50 latencies, microseconds.
    pub p50_us: f64,
    /// Median of the p99 latencies, microseconds.
    pub p99_us: f64,
    /// requests_per_sec / blocking's median at the same connection count (`None` without a baseline).
    pub vs_blocking: Option<f64>,
}

/// Runs the benchmark; see the module docs. Fails on the first point whose load does not verify.
pub fn servers_bench(cfg: &ServersBenchConfig) -> anyhow::Result<Vec<ServersRow>> {
    servers_bench_with(cfg, |_| {})
}

/// [`servers_bench`], calling `on_row` as each point finishes (for progress output).
pub fn servers_bench_with(
    cfg: &ServersBenchConfig,
    mut on_row: impl FnMut(&ServersRow),
) -> anyhow::Result<Vec<ServersRow>> {
    anyhow::ensure!(cfg.seconds > 0.0, "seconds must be positive");
    anyhow::ensure!(!cfg.kinds.is_empty(), "no server kinds");
    if let Some(&c) = cfg.connections.iter().find(|&&c| c == 0 || c > loadgen::MAX_CONNECTIONS) {
        anyhow::bail!("connection count {c} outside 1..={}", loadgen::MAX_CONNECTIONS);
    }
    let mut rows = Vec::new();
    for &conns in &cfg.connections {
        for rep in 0..cfg.reps.max(1) {
            for &kind in &cfg.kinds {
                let row = point(cfg, kind, conns, rep).with_context(|| format!("{kind} with {conns} connections"))?;
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn point(cfg: &ServersBenchConfig, kind: ServerKind, conns: usize, rep: usize) -> anyhow::Result<ServersRow> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    // A fresh server per point: no connection or thread of one point lingers into the next.
    let server = servers::start(kind, any, Arc::new(AtomicBool::new(false)), cfg.sock_reactors)?;
    let mut lc = LoadConfig::new(server.local_addr());
    lc.connections = conns;
    lc.queue_depth = cfg.queue_depth;
    lc.read_len = cfg.read_len;
    lc.write_len = cfg.write_len;
    lc.write_pct = cfg.write_pct;
    lc.duration = Some(Duration::from_secs_f64(cfg.seconds));
    let r = loadgen::run(&lc);
    let stats = server.stop();
    let r = r?;
    anyhow::ensure!(stats.errors == 0, "server counted {} errors", stats.errors);
    Ok(ServersRow {
        server: kind,
        connections: conns,
        rep,
        queue_depth: cfg.queue_depth,
        read_len: cfg.read_len,
        write_pct: cfg.write_pct,
        requests: r.requests,
        seconds: r.seconds,
        requests_per_sec: r.requests_per_sec,
        p50_us: r.p50_us,
        p99_us: r.p99_us,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians per (server, connections), ordered by connections then server, with the ratio to the
/// `blocking` median at the same connection count.
pub fn summarize(rows: &[ServersRow]) -> Vec<ServersSummary> {
    let mut keys: Vec<(usize, ServerKind)> = rows.iter().map(|r| (r.connections, r.server)).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<ServersSummary> = keys
        .into_iter()
        .map(|(connections, server)| {
            let pick = |f: fn(&ServersRow) -> f64| -> Vec<f64> {
                rows.iter().filter(|r| r.connections == connections && r.server == server).map(f).collect()
            };
            ServersSummary {
                server,
                connections,
                reps: pick(|r| r.requests_per_sec).len(),
                requests_per_sec: median(pick(|r| r.requests_per_sec)),
                p50_us: median(pick(|r| r.p50_us)),
                p99_us: median(pick(|r| r.p99_us)),
                vs_blocking: None,
            }
        })
        .collect();
    let base: Vec<(usize, f64)> =
        out.iter().filter(|s| s.server == ServerKind::Blocking).map(|s| (s.connections, s.requests_per_sec)).collect();
    for s in &mut out {
        s.vs_blocking =
            base.iter().find(|(c, rps)| *c == s.connections && *rps > 0.0).map(|(_, rps)| s.requests_per_sec / rps);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: ServerKind, connections: usize, rep: usize, rps: f64) -> ServersRow {
        ServersRow {
            server,
            connections,
            rep,
            queue_depth: 1,
            read_len: 4096,
            write_pct: 0,
            requests: rps as u64,
            seconds: 1.0,
            requests_per_sec: rps,
            p50_us: rps / 1000.0,
            p99_us: rps / 100.0,
        }
    }

    #[test]
    fn summary_takes_medians_and_ratios_to_blocking() {
        let rows = vec![
            row(ServerKind::Blocking, 4, 0, 100.0),
            row(ServerKind::Epoll, 4, 0, 300.0),
            row(ServerKind::Blocking, 4, 1, 200.0),
            row(ServerKind::Epoll, 4, 1, 500.0),
            row(ServerKind::Blocking, 4, 2, 900.0),
            row(ServerKind::Epoll, 4, 2, 400.0),
            row(ServerKind::Poll, 1, 0, 50.0),
        ];
        let s = summarize(&rows);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].server, s[0].connections, s[0].vs_blocking), (ServerKind::Poll, 1, None));
        let b = s.iter().find(|x| x.server == ServerKind::Blocking).unwrap();
        assert_eq!((b.reps, b.requests_per_sec, b.vs_blocking), (3, 200.0, Some(1.0)));
        let e = s.iter().find(|x| x.server == ServerKind::Epoll).unwrap();
        assert_eq!((e.requests_per_sec, e.vs_blocking), (400.0, Some(2.0)));
        assert_eq!(e.p50_us, 0.4);
    }

    #[test]
    fn bad_configs_are_refused() {
        let cfg = ServersBenchConfig { connections: vec![0], ..Default::default() };
        assert!(servers_bench(&cfg).is_err());
        let cfg = ServersBenchConfig { kinds: vec![], ..Default::default() };
        assert!(servers_bench(&cfg).is_err());
    }
}
