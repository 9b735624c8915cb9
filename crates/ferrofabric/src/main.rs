//! The `ferrofabric` command: one subcommand per module under [`cmd`] (target, bench, perf, discover,
//! identify, demo, rpc); a new one is a module there and a variant here, nothing else touched.

mod cmd;
mod metrics;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// ferrofabric: storage networking (NVMe/TCP) on the ff-sock layer.
#[derive(Parser, Debug)]
#[command(name = "ferrofabric", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand; each variant's arguments and behaviour live in `cmd::<name>`.
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve NVMe/TCP: with no arguments a 1 GiB RAM namespace on 127.0.0.1:4420.
    Target(cmd::target::TargetArgs),
    /// Run a benchmark and write its report (rows.csv, summary.json, SVG plots).
    Bench(cmd::bench::BenchArgs),
    /// Drive an NVMe/TCP namespace or (--iscsi) an iSCSI LU with ff-perf (spdk_nvme_perf-style flags and
    /// output, --json).
    Perf(cmd::perf::PerfArgs),
    /// Print a discovery controller's log, like `nvme discover`.
    Discover(cmd::discover::DiscoverArgs),
    /// Print Identify Controller and Namespace highlights, like `nvme id-ctrl` / `id-ns`.
    Identify(cmd::identify::IdentifyArgs),
    /// The main job: our target on its defaults, exercised by our perf tool (verify, then 4K randread).
    Demo(cmd::demo::DemoArgs),
    /// Call a running target's management RPC (JSON-RPC over its Unix socket).
    Rpc(cmd::rpc::RpcArgs),
    /// Print a new random NVMe/TCP TLS pre-shared key (NVMeTLSkey-1:...), like `nvme gen-tls-key`.
    GenTlsKey(cmd::gen_tls_key::GenTlsKeyArgs),
}

fn main() {
    let cli = Cli::parse();
    // Logs go to stderr so stdout stays the report; a long-running target logs connections (info), the
    // one-shot tools only problems (warn). RUST_LOG overrides both.
    let level = if matches!(cli.command, Command::Target(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Target(args) => cmd::target::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Perf(args) => cmd::perf::run(args),
        Command::Discover(args) => cmd::discover::run(args),
        Command::Identify(args) => cmd::identify::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Rpc(args) => cmd::rpc::run(args),
        Command::GenTlsKey(args) => cmd::gen_tls_key::run(args),
    };
    // The error and its causes on one line, exit status 1; no backtrace (RUST_BACKTRACE is for panics).
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
