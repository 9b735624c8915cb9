//! `servers`: the talk's server progression (blocking, poll, epoll, ff-sock on epoll and poll) under the
//! same verifying load at growing connection counts. The measuring body is `ff_talk::servers_bench`
//! (its owner interleaves the kinds within each connection count); this module only turns its rows and
//! medians into a [`Report`]: requests/s against connections (log scale), a line per server kind.

use crate::report::{Plot, Report, Series, Table};
use anyhow::{Result, ensure};
pub use ff_talk::{ServerKind, ServersBenchConfig};
use ff_talk::{ServersRow, ServersSummary, servers_bench_with, summarize};
use serde_json::json;

/// The default configuration (about 90 s: 6 connection counts x 5 kinds x 3 repeats x 1 s).
pub fn default_config() -> ServersBenchConfig {
    ServersBenchConfig::default()
}

/// A CI smoke configuration: two connection counts, one short repeat.
pub fn quick_config() -> ServersBenchConfig {
    ServersBenchConfig { connections: vec![1, 16], seconds: 0.2, reps: 1, ..ServersBenchConfig::default() }
}

/// Runs the benchmark (progress to the log) and returns its report.
pub fn run(cfg: &ServersBenchConfig) -> Result<Report> {
    ensure!(!cfg.connections.is_empty(), "no connection counts");
    let rows = servers_bench_with(cfg, |r| {
        tracing::info!(
            server = r.server.name(),
            connections = r.connections,
            rep = r.rep,
            rps = r.requests_per_sec,
            "point"
        );
    })?;
    Ok(build_report(cfg, &rows))
}

fn build_report(cfg: &ServersBenchConfig, rows: &[ServersRow]) -> Report {
    let mut rep = Report::new("servers", json!({ "config": cfg }));
    let mut t = Table::new(&[
        "server",
        "connections",
        "rep",
        "queue_depth",
        "read_len",
        "write_pct",
        "requests",
        "seconds",
        "requests_per_sec",
        "p50_us",
        "p99_us",
    ]);
    for r in rows {
        t.push(vec![
            r.server.name().into(),
            r.connections.into(),
            r.rep.into(),
            r.queue_depth.into(),
            u64::from(r.read_len).into(),
            u64::from(r.write_pct).into(),
            r.requests.into(),
            r.seconds.into(),
            r.requests_per_sec.into(),
            r.p50_us.into(),
            r.p99_us.into(),
        ]);
    }
    rep.rows = t;
    let sums: Vec<ServersSummary> = summarize(rows);
    let mut m = Table::new(&["connections", "server", "requests_per_sec", "p50_us", "p99_us", "vs_blocking"]);
    for s in &sums {
        m.push(vec![
            s.connections.into(),
            s.server.name().into(),
            s.requests_per_sec.into(),
            s.p50_us.into(),
            s.p99_us.into(),
            s.vs_blocking.unwrap_or(f64::NAN).into(),
        ]);
    }
    rep.medians = m;
    let mut best = Vec::new();
    for &c in &cfg.connections {
        if let Some(b) =
            sums.iter().filter(|s| s.connections == c).max_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec))
        {
            rep.notes.push(format!(
                "{c} connections: fastest is {} at {:.0} req/s{}",
                b.server.name(),
                b.requests_per_sec,
                b.vs_blocking.map(|v| format!(" ({v:.2}x blocking)")).unwrap_or_default()
            ));
            best.push(json!({"connections": c, "server": b.server.name(), "requests_per_sec": b.requests_per_sec}));
        }
    }
    rep.summary = json!({ "medians": sums, "fastest": best });
    let series = |f: fn(&ServersSummary) -> f64| -> Vec<Series> {
        cfg.kinds
            .iter()
            .map(|&k| Series {
                name: k.name().to_string(),
                points: sums.iter().filter(|s| s.server == k).map(|s| (s.connections as f64, f(s))).collect(),
            })
            .collect()
    };
    rep.plots.push(Plot {
        file: "requests_per_sec.svg".into(),
        title: "servers: requests/s by connections (median)".into(),
        x_label: "connections (log scale)".into(),
        y_label: "requests/s".into(),
        log_x: true,
        log_y: false,
        x_bytes: false,
        series: series(|s| s.requests_per_sec),
    });
    rep.plots.push(Plot {
        file: "p99_us.svg".into(),
        title: "servers: p99 latency by connections (median of p99s)".into(),
        x_label: "connections (log scale)".into(),
        y_label: "p99 latency, us (log scale)".into(),
        log_x: true,
        log_y: true,
        x_bytes: false,
        series: series(|s| s.p99_us),
    });
    rep
}
