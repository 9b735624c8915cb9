//! The Prometheus endpoint of `ferrofabric target --metrics ADDR`: the management stats (per reactor,
//! per connection, per namespace) as OpenMetrics text on `GET /metrics`, read from the reactors'
//! published counters at each scrape (a management thread; reactors are never asked).

use ff_target::Manager;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The OpenMetrics text content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one series.
type Labels = Vec<(&'static str, String)>;

/// Reads the manager's stats at each scrape.
struct Stats(Arc<Manager>);

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ferrofabric stats")
    }
}

/// One family: a name, its help, and a value per label set.
fn counters(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, series: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, v) in series {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, series: &[(Labels, f64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, ConstGauge::new(0.0f64).metric_type())?;
    for (labels, v) in series {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Stats {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = &self.0;
        let reactors = m.reactor_stats();
        let r = |i: usize| vec![("reactor", i.to_string())];
        let per_reactor = |f: &dyn Fn(&ff_target::ReactorStats) -> u64| -> Vec<(Labels, u64)> {
            reactors.iter().enumerate().map(|(i, s)| (r(i), f(s))).collect()
        };
        gauges(
            &mut e,
            "ferrofabric_uptime_seconds",
            "Seconds since the target started.",
            &[(vec![], m.uptime().as_secs_f64())],
        )?;
        gauges(
            &mut e,
            "ferrofabric_controllers",
            "Live controllers, discovery ones included.",
            &[(vec![], m.controller_count() as f64)],
        )?;
        gauges(
            &mut e,
            "ferrofabric_reactor_connections",
            "Connections a reactor serves.",
            &reactors.iter().enumerate().map(|(i, s)| (r(i), s.connections.len() as f64)).collect::<Vec<_>>(),
        )?;
        gauges(
            &mut e,
            "ferrofabric_reactor_iops",
            "I/O commands per second over the last second.",
            &reactors.iter().enumerate().map(|(i, s)| (r(i), s.iops)).collect::<Vec<_>>(),
        )?;
        let mut io = Vec::new();
        let mut bytes = Vec::new();
        for (i, s) in reactors.iter().enumerate() {
            for (kind, n) in [("read", s.io.reads), ("write", s.io.writes), ("other", s.io.other)] {
                io.push((vec![("reactor", i.to_string()), ("kind", kind.to_string())], n));
            }
            for (dir, n) in [("read", s.io.read_bytes), ("write", s.io.write_bytes)] {
                bytes.push((vec![("reactor", i.to_string()), ("direction", dir.to_string())], n));
            }
        }
        counters(&mut e, "ferrofabric_io_commands", "I/O commands received, by kind.", &io)?;
        counters(&mut e, "ferrofabric_io_bytes", "Bytes of read and write commands.", &bytes)?;
        counters(
            &mut e,
            "ferrofabric_sock_syscalls",
            "Data-path syscalls of the socket group (waits, receives, sends).",
            &per_reactor(&|s| s.sock.syscalls()),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_waits",
            "Wait calls (poll, epoll_wait; polls on io_uring).",
            &per_reactor(&|s| s.sock.waits),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_bytes_parsed_in_place",
            "Received bytes decoded where they landed, never copied.",
            &per_reactor(&|s| s.sock.sock.bytes_parsed_in_place),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_bytes_copied",
            "Received bytes copied out of the receive pipe or provided buffers.",
            &per_reactor(&|s| s.sock.sock.bytes_copied),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_bytes_direct",
            "Received bytes the kernel wrote straight into their final buffer.",
            &per_reactor(&|s| s.sock.sock.bytes_direct),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_bytes_sent",
            "Bytes the kernel accepted for sending.",
            &per_reactor(&|s| s.sock.sock.bytes_sent),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_zerocopy_sends",
            "Sends with MSG_ZEROCOPY (or send_zc).",
            &per_reactor(&|s| s.sock.sock.zc_sends),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_zerocopy_copied",
            "Zero-copy sends the kernel copied anyway.",
            &per_reactor(&|s| s.sock.sock.zc_copied),
        )?;
        counters(
            &mut e,
            "ferrofabric_sock_zerocopy_fallbacks",
            "Sockets that turned zero copy off because the kernel copied.",
            &per_reactor(&|s| s.sock.sock.zc_fallbacks),
        )?;
        // Per connection: bounded by the connections served.
        let mut conn_io = Vec::new();
        let mut conn_sys = Vec::new();
        for (i, s) in reactors.iter().enumerate() {
            for c in &s.connections {
                let base = vec![
                    ("reactor", i.to_string()),
                    ("peer", c.peer.to_string()),
                    ("subnqn", c.subnqn.clone()),
                    ("cntlid", c.cntlid.map(|v| v.to_string()).unwrap_or_default()),
                    ("qid", c.qid.map(|v| v.to_string()).unwrap_or_default()),
                ];
                for (kind, n) in [("read", c.io.reads), ("write", c.io.writes), ("other", c.io.other)] {
                    let mut l = base.clone();
                    l.push(("kind", kind.to_string()));
                    conn_io.push((l, n));
                }
                conn_sys.push((base, c.sock.syscalls()));
            }
        }
        counters(&mut e, "ferrofabric_connection_io_commands", "I/O commands of one connection, by kind.", &conn_io)?;
        counters(
            &mut e,
            "ferrofabric_connection_syscalls",
            "Data-path syscalls of one connection's socket.",
            &conn_sys,
        )?;
        let ns = m.namespace_stats();
        let nsl = |n: &ff_target::mgmt::NamespaceStats| vec![("subnqn", n.nqn.clone()), ("nsid", n.nsid.to_string())];
        let mut dev = Vec::new();
        for n in &ns {
            for (op, v) in [
                ("read", n.device.reads),
                ("write", n.device.writes),
                ("flush", n.device.flushes),
                ("write_zeroes", n.device.write_zeroes),
                ("deallocate", n.device.deallocates),
            ] {
                let mut l = nsl(n);
                l.push(("op", op.to_string()));
                dev.push((l, v));
            }
        }
        counters(
            &mut e,
            "ferrofabric_namespace_requests",
            "Requests a namespace's backend completed, by operation.",
            &dev,
        )?;
        counters(
            &mut e,
            "ferrofabric_namespace_errors",
            "Requests a namespace's backend failed.",
            &ns.iter().map(|n| (nsl(n), n.device.errors)).collect::<Vec<_>>(),
        )?;
        Ok(())
    }
}

/// The metrics of `manager` as OpenMetrics text.
pub fn render(manager: &Arc<Manager>) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Stats(manager.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// A running metrics endpoint; [`Endpoint::stop`] ends it.
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Serves `GET /metrics` on `addr` from a thread of its own.
    pub fn start(addr: SocketAddr, manager: Arc<Manager>) -> anyhow::Result<Endpoint> {
        let server =
            Arc::new(tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("metrics endpoint on {addr}: {e}"))?);
        let bound =
            server.server_addr().to_ip().ok_or_else(|| anyhow::anyhow!("metrics endpoint has no IP address"))?;
        let s = server.clone();
        let thread = std::thread::Builder::new().name("ff-metrics".into()).spawn(move || {
            for req in s.incoming_requests() {
                let path = req.url().split('?').next().unwrap_or("");
                let resp = match (req.method(), path) {
                    (tiny_http::Method::Get, "/metrics") => {
                        let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE).ok();
                        let mut r = tiny_http::Response::from_string(render(&manager));
                        if let Some(h) = header {
                            r = r.with_header(h);
                        }
                        r
                    }
                    (tiny_http::Method::Get, _) => {
                        tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
                    }
                    _ => tiny_http::Response::from_string("only GET\n").with_status_code(405),
                };
                let _ = req.respond(resp);
            }
        })?;
        Ok(Endpoint { server, thread: Some(thread), addr: bound })
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
