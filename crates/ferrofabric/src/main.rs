//! The `ferrofabric` command: one subcommand per module under [`cmd`]. Today `bench`; `target`, `perf`,
//! `discover` and `identify` join as their own modules with a variant here and nothing else touched.

mod cmd;

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
}

fn main() -> anyhow::Result<()> {
    // Logs go to stderr so stdout stays the report table; RUST_LOG=debug shows every run.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Target(args) => cmd::target::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    }
}
