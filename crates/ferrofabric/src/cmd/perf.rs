//! `ferrofabric perf`: drives an NVMe/TCP namespace with ff-perf (spdk_nvme_perf's flags where they
//! exist: `-q` depth, `-o` I/O size, `-w` pattern, `-t` seconds, `-M`/`--rwmixread`) and prints the
//! spdk_nvme_perf-style table, or the report as JSON with `--json`. Exits non-zero on any I/O error or
//! verify mismatch. Also owns the sock flags the other host-side commands share.

use anyhow::{Result, bail};
use clap::Args;
use ff_blockdev::parse_size;
use ff_perf::{Pattern, PerfConfig};
use ff_sock::{Backend, GroupOptions};
use ff_target::config::DEFAULT_NQN;
use std::net::SocketAddr;

/// Sock layer options of the host side (reactor groups and every connection).
#[derive(Args, Debug, Clone, Default)]
pub struct SockArgs {
    /// Sock backend: epoll, poll or uring.
    #[arg(long = "sock")]
    backend: Option<Backend>,
    /// Receive pipe per connection, e.g. 64K; 0 turns it off.
    #[arg(long)]
    pipe_size: Option<String>,
    /// Reads at or above this size bypass the pipe, e.g. 4K.
    #[arg(long)]
    cutover: Option<String>,
    /// Sends at or above this size use MSG_ZEROCOPY, e.g. 4K; `off` never.
    #[arg(long)]
    zerocopy_threshold: Option<String>,
    /// SO_MARK on every connection (needs CAP_NET_ADMIN).
    #[arg(long)]
    mark: Option<u32>,
}

impl SockArgs {
    /// The group options these flags describe, over the defaults.
    pub fn group(&self) -> Result<GroupOptions> {
        let mut g = GroupOptions::default();
        if let Some(b) = self.backend {
            g.backend = b;
        }
        if let Some(p) = &self.pipe_size {
            g.pipe_size = parse_size(p)? as usize;
        }
        if let Some(c) = &self.cutover {
            g.cutover = parse_size(c)? as usize;
        }
        match self.zerocopy_threshold.as_deref() {
            None => {}
            Some("off" | "none") => {
                g.zerocopy_threshold = None;
                g.sock.zerocopy = false;
            }
            Some(t) => g.zerocopy_threshold = Some(parse_size(t)? as usize),
        }
        g.sock.mark = self.mark;
        Ok(g)
    }
}

/// Arguments of `ferrofabric perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// Target I/O address.
    #[arg(long, default_value = "127.0.0.1:4420")]
    addr: SocketAddr,
    /// Subsystem NQN.
    #[arg(long, default_value = DEFAULT_NQN)]
    nqn: String,
    /// Namespace (default: the first active one).
    #[arg(long)]
    nsid: Option<u32>,
    /// Commands in flight per queue.
    #[arg(short = 'q', long = "queue-depth", default_value_t = 32)]
    queue_depth: u16,
    /// Bytes per I/O, e.g. 4096, 4K, 128K.
    #[arg(short = 'o', long = "io-size", default_value = "4096")]
    io_size: String,
    /// read, write, randread, randwrite, rw or randrw.
    #[arg(short = 'w', long = "pattern", default_value = "randread")]
    pattern: Pattern,
    /// Measured seconds.
    #[arg(short = 't', long = "time", default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Read percentage of rw/randrw.
    #[arg(short = 'M', long, default_value_t = 50)]
    rwmixread: u8,
    /// I/O queues (one connection each).
    #[arg(long, default_value_t = 1)]
    queues: u16,
    /// Reactor threads; queues are spread over them.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Pin reactor threads to these CPUs, comma separated.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Header digest.
    #[arg(long)]
    hdgst: bool,
    /// Data digest.
    #[arg(long)]
    ddgst: bool,
    /// Write verify data, read every write back and check every read of a written block.
    #[arg(long)]
    verify: bool,
    /// Bound offsets to the first SIZE bytes of the namespace, e.g. 256M.
    #[arg(long)]
    size: Option<String>,
    /// Seed of offsets, mix and verify data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Reactors spin instead of blocking in the wait syscall.
    #[arg(long)]
    busy_poll: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SockArgs,
}

/// The run these arguments describe.
pub fn config(a: &PerfArgs) -> Result<PerfConfig> {
    let c = PerfConfig {
        addr: a.addr,
        nqn: a.nqn.clone(),
        nsid: a.nsid,
        queue_depth: a.queue_depth,
        io_size: parse_size(&a.io_size)? as usize,
        pattern: a.pattern,
        rwmixread: a.rwmixread,
        seconds: a.seconds,
        warmup_seconds: a.warmup,
        queues: a.queues,
        cores: a.cores,
        hdgst: a.hdgst,
        ddgst: a.ddgst,
        verify: a.verify,
        size: a.size.as_deref().map(parse_size).transpose()?,
        group: a.sock.group()?,
        seed: a.seed,
        cpus: a.cpus.clone(),
        busy_poll: a.busy_poll,
        progress: !a.json,
        ..PerfConfig::default()
    };
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// Runs perf and prints the result; errors and mismatches fail the command.
pub fn run(a: PerfArgs) -> Result<()> {
    let c = config(&a)?;
    let r = ff_perf::run(&c)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r.to_json())?);
    } else {
        print!("{}", r.render());
    }
    if r.errors > 0 {
        bail!("{} I/O error(s)", r.errors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: PerfArgs,
    }

    fn parse(args: &[&str]) -> Result<PerfConfig> {
        let t = T::try_parse_from(std::iter::once("perf").chain(args.iter().copied()))?;
        config(&t.a)
    }

    #[test]
    fn spdk_style_flags_parse() {
        let c = parse(&[
            "--addr",
            "10.0.0.1:4421",
            "--nqn",
            "nqn.x",
            "-q",
            "128",
            "-o",
            "128K",
            "-w",
            "randrw",
            "-t",
            "3",
            "--warmup",
            "0.5",
            "--rwmixread",
            "70",
            "--queues",
            "4",
            "--cores",
            "2",
            "--hdgst",
            "--ddgst",
            "--verify",
            "--size",
            "64M",
            "--sock",
            "poll",
            "--pipe-size",
            "0",
            "--cutover",
            "4K",
            "--zerocopy-threshold",
            "off",
            "--mark",
            "7",
        ])
        .unwrap();
        assert_eq!(c.addr, "10.0.0.1:4421".parse().unwrap());
        assert_eq!((c.nqn.as_str(), c.queue_depth, c.io_size), ("nqn.x", 128, 128 * 1024));
        assert_eq!((c.pattern, c.rwmixread, c.seconds, c.warmup_seconds), (Pattern::RandRw, 70, 3.0, 0.5));
        assert_eq!((c.queues, c.cores), (4, 2));
        assert!(c.hdgst && c.ddgst && c.verify);
        assert_eq!(c.size, Some(64 << 20));
        assert_eq!(c.group.backend, Backend::Poll);
        assert_eq!((c.group.pipe_size, c.group.cutover, c.group.zerocopy_threshold), (0, 4096, None));
        assert!(!c.group.sock.zerocopy);
        assert_eq!(c.group.sock.mark, Some(7));
    }

    #[test]
    fn defaults_and_refusals() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.queue_depth, c.io_size, c.pattern), (32, 4096, Pattern::RandRead));
        assert_eq!(c.nqn, DEFAULT_NQN);
        assert!(parse(&["-w", "sideways"]).is_err());
        assert!(parse(&["-o", "1000"]).is_err());
        assert!(parse(&["-q", "0"]).is_err());
        assert!(parse(&["-t", "0"]).is_err());
        assert!(parse(&["--rwmixread", "101"]).is_err());
        assert!(parse(&["--sock", "kqueue"]).is_err());
    }
}
