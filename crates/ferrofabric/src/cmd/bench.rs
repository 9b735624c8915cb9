//! `ferrofabric bench <name>`: parses a benchmark's options, runs it through `ff-bench`, writes the
//! report under `--out` (default `results/<bench>-<UTC timestamp>/`) and prints the human table.

use anyhow::Result;
use clap::{Args, Subcommand};
use ff_bench::iscsi as iscsi_bench;
use ff_bench::report::{Report, default_out_dir};
use ff_bench::servers::ServerKind;
use ff_bench::spdk as spdk_bench;
use ff_bench::stats::parse_size;
use ff_bench::target as target_bench;
use ff_bench::tls as tls_bench;
use ff_bench::uring as uring_bench;
use ff_bench::{core_path, recv_cutover, servers, zerocopy};
use std::path::PathBuf;

/// Arguments of `ferrofabric bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    bench: Bench,
}

/// Options every benchmark takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Output directory (default: results/<bench>-<UTC timestamp>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Small configuration for CI smoke runs (a few seconds).
    #[arg(long)]
    quick: bool,
    /// Repeats per configuration (medians are taken over them).
    #[arg(long)]
    repeats: Option<usize>,
}

/// Options of the benchmarks that sweep a byte size.
#[derive(Args, Debug, Clone)]
pub struct Sizes {
    /// Sizes to measure, comma separated (e.g. 0,4K,64K).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Option<Vec<usize>>,
    /// Bytes per run (e.g. 64M).
    #[arg(long, value_parser = parse_size)]
    bytes: Option<usize>,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
enum Bench {
    /// Receive pipe vs direct receive by PDU data size; prints the measured cut-over.
    RecvCutover {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        sizes: Sizes,
        /// Also sweep hybrid with these cut-overs, comma separated (e.g. 2K,4K,16K).
        #[arg(long, value_delimiter = ',', value_parser = parse_size)]
        cutover: Vec<usize>,
    },
    /// Copy vs MSG_ZEROCOPY sends by message size, on loopback and veth.
    Zerocopy {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        sizes: Sizes,
        /// Skip the veth half (which needs root and network namespaces).
        #[arg(long)]
        no_veth: bool,
    },
    /// The talk's servers (blocking, poll, epoll, ff-sock) by connection count.
    Servers {
        #[command(flatten)]
        common: Common,
        /// Connection counts, comma separated (1 to 1024).
        #[arg(long, value_delimiter = ',')]
        connections: Option<Vec<usize>>,
        /// Seconds of load per point.
        #[arg(long)]
        seconds: Option<f64>,
        /// Server kinds, comma separated (blocking, poll, epoll, sock-epoll, sock-poll).
        #[arg(long, value_delimiter = ',')]
        kinds: Option<Vec<ServerKind>>,
    },
    /// The target's command path with no socket: nanoseconds per 4K read command, headers fed step by
    /// step and in place (no TCP timing: the yardstick for user-space cost on the I/O path).
    Core {
        #[command(flatten)]
        common: Common,
        /// Read commands per repeat.
        #[arg(long)]
        commands: Option<usize>,
    },
    /// Our NVMe/TCP target on one busy-polling core under ff-perf (4K QD1/32/128, 128K QD16) and the
    /// end-to-end sock trick matrix, next to the plain-socket baseline measured in the same run.
    Target {
        #[command(flatten)]
        common: Common,
        /// Measured seconds per point.
        #[arg(long)]
        seconds: Option<f64>,
        /// Skip the trick matrix.
        #[arg(long)]
        no_tricks: bool,
        /// Leave io_uring out of the trick matrix.
        #[arg(long)]
        no_uring: bool,
    },
    /// Our target and initiator side by side with SPDK's nvmf_tgt and spdk_nvme_perf (needs an SPDK
    /// build: --spdk-dir or FF_SPDK_DIR; without one the SPDK cells say "not built"): interleaved
    /// samples, free and under a CPU quota on the target, medians and per-round ratios.
    Spdk {
        #[command(flatten)]
        common: Common,
        /// SPDK build tree (holds build/bin/nvmf_tgt and spdk_nvme_perf); default $FF_SPDK_DIR.
        #[arg(long)]
        spdk_dir: Option<PathBuf>,
        /// Measured seconds per sample (whole seconds: spdk_nvme_perf's unit).
        #[arg(long)]
        seconds: Option<u32>,
        /// Warm-up seconds before each sample.
        #[arg(long)]
        warmup: Option<u32>,
        /// Target-bound mode's CPU quota, percent of one core.
        #[arg(long)]
        quota: Option<u32>,
        /// Skip the target-bound (CPU quota) mode.
        #[arg(long)]
        no_quota: bool,
        /// Skip the untimed round that counts syscalls with perf stat.
        #[arg(long)]
        no_syscalls: bool,
        /// Skip the untimed round that profiles targets and clients with perf record.
        #[arg(long)]
        no_profile: bool,
        /// Drive the targets with spdk_nvme_perf only.
        #[arg(long)]
        no_ff_client: bool,
    },
    /// Our iSCSI target side by side with SPDK's iscsi_tgt and Linux's tgtd (4K randread QD32, 128K read
    /// QD16; clients: libiscsi's iscsi-perf and ff perf; ours also over NVMe/TCP): interleaved samples,
    /// free and under a CPU quota on the target, medians, per-round ratios, syscalls per I/O.
    Iscsi {
        #[command(flatten)]
        common: Common,
        /// SPDK build tree (holds build/bin/iscsi_tgt); default $FF_SPDK_DIR.
        #[arg(long)]
        spdk_dir: Option<PathBuf>,
        /// Timed samples per cell (rounds); same as --repeats.
        #[arg(long)]
        samples: Option<usize>,
        /// Measured seconds per sample (whole seconds: iscsi-perf reports per second).
        #[arg(long)]
        seconds: Option<u32>,
        /// Warm-up seconds before each sample.
        #[arg(long)]
        warmup: Option<u32>,
        /// Target-bound mode's CPU quota, percent of one core.
        #[arg(long)]
        quota: Option<u32>,
        /// Skip the target-bound (CPU quota) mode.
        #[arg(long)]
        no_quota: bool,
        /// Skip the untimed round that counts syscalls with perf stat.
        #[arg(long)]
        no_syscalls: bool,
        /// Drive the targets with iscsi-perf only (no ff perf over iSCSI).
        #[arg(long)]
        no_ff_client: bool,
        /// Leave out ff perf over NVMe/TCP against our target.
        #[arg(long)]
        no_nvme: bool,
        /// Targets to run, comma separated (ours, spdk, tgt); default all.
        #[arg(long, value_delimiter = ',', value_parser = parse_iscsi_target)]
        targets: Option<Vec<iscsi_bench::targets::TargetKind>>,
    },
    /// NVMe/TCP over TLS 1.3 (PSK): our target side by side with SPDK's nvmf_tgt on its ssl sock, the same
    /// client (spdk_nvme_perf -S ssl) against both (needs an SPDK build: --spdk-dir or FF_SPDK_DIR): 4K
    /// randread QD32 and 128K read QD16, interleaved samples, free and under a CPU quota on the target,
    /// plain TCP as a reference; prints markdown tables.
    Tls {
        #[command(flatten)]
        common: Common,
        /// SPDK build tree (holds build/bin/nvmf_tgt and spdk_nvme_perf); default $FF_SPDK_DIR.
        #[arg(long)]
        spdk_dir: Option<PathBuf>,
        /// Timed samples per cell (rounds); same as --repeats.
        #[arg(long)]
        samples: Option<usize>,
        /// Measured seconds per sample (whole seconds: spdk_nvme_perf's unit).
        #[arg(long)]
        seconds: Option<u32>,
        /// Warm-up seconds before each sample.
        #[arg(long)]
        warmup: Option<u32>,
        /// Target-bound mode's CPU quota, percent of one core.
        #[arg(long, conflicts_with = "no_quota")]
        quota: Option<u32>,
        /// Skip the target-bound (CPU quota) mode.
        #[arg(long)]
        no_quota: bool,
        /// Skip the plain-TCP reference cells.
        #[arg(long)]
        no_plain: bool,
        /// Targets to run, comma separated (ours, spdk); default both.
        #[arg(long, value_delimiter = ',')]
        targets: Option<Vec<tls_bench::Side>>,
    },
    /// io_uring vs epoll end to end through our target: 4K randread by queue depth, then each uring
    /// feature added in turn (4K QD32, 128K QD16); checks the goal (< 0.1 io_uring_enter per 4K I/O
    /// at QD32, more IOPS per busy core than epoll).
    Uring {
        #[command(flatten)]
        common: Common,
        /// Measured seconds per point.
        #[arg(long)]
        seconds: Option<f64>,
        /// Queue depths of the 4K randread sweep, comma separated.
        #[arg(long, value_delimiter = ',')]
        qd: Option<Vec<u16>>,
        /// Skip part 2 (features in turn).
        #[arg(long)]
        no_features: bool,
    },
}

/// Runs the chosen benchmark, writes its report and prints the summary.
pub fn run(args: BenchArgs) -> Result<()> {
    let (report, out) = match args.bench {
        Bench::RecvCutover { common, sizes, cutover } => {
            let mut cfg = if common.quick { recv_cutover::Config::quick() } else { recv_cutover::Config::default() };
            cfg.repeats = common.repeats.unwrap_or(cfg.repeats);
            cfg.sizes = sizes.sizes.unwrap_or(cfg.sizes);
            cfg.bytes_per_run = sizes.bytes.map_or(cfg.bytes_per_run, |b| b as u64);
            cfg.cutovers = cutover;
            (recv_cutover::run(&cfg)?, common.out)
        }
        Bench::Zerocopy { common, sizes, no_veth } => {
            let mut cfg = if common.quick { zerocopy::Config::quick() } else { zerocopy::Config::default() };
            cfg.repeats = common.repeats.unwrap_or(cfg.repeats);
            cfg.sizes = sizes.sizes.unwrap_or(cfg.sizes);
            cfg.bytes_per_run = sizes.bytes.map_or(cfg.bytes_per_run, |b| b as u64);
            cfg.veth &= !no_veth;
            (zerocopy::run(&cfg)?, common.out)
        }
        Bench::Servers { common, connections, seconds, kinds } => {
            let mut cfg = if common.quick { servers::quick_config() } else { servers::default_config() };
            cfg.reps = common.repeats.unwrap_or(cfg.reps);
            cfg.connections = connections.unwrap_or(cfg.connections);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.kinds = kinds.unwrap_or(cfg.kinds);
            (servers::run(&cfg)?, common.out)
        }
        Bench::Core { common, commands } => {
            let mut cfg = if common.quick { core_path::Config::quick() } else { core_path::Config::default() };
            cfg.repeats = common.repeats.unwrap_or(cfg.repeats);
            cfg.commands = commands.unwrap_or(cfg.commands);
            (core_path::run(&cfg)?, common.out)
        }
        Bench::Target { common, seconds, no_tricks, no_uring } => {
            let mut cfg = if common.quick { target_bench::Config::quick() } else { target_bench::Config::default() };
            cfg.repeats = common.repeats.unwrap_or(cfg.repeats);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.tricks = !no_tricks;
            cfg.uring &= !no_uring;
            (target_bench::run(&cfg)?, common.out)
        }
        Bench::Uring { common, seconds, qd, no_features } => {
            let mut cfg = if common.quick { uring_bench::Config::quick() } else { uring_bench::Config::default() };
            cfg.repeats = common.repeats.unwrap_or(cfg.repeats);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.qds = qd.unwrap_or(cfg.qds);
            cfg.features = !no_features;
            (uring_bench::run(&cfg)?, common.out)
        }
        Bench::Spdk { common, spdk_dir, seconds, warmup, quota, no_quota, no_syscalls, no_profile, no_ff_client } => {
            let bin = std::env::current_exe()?;
            let mut cfg = if common.quick { spdk_bench::Config::quick(bin) } else { spdk_bench::Config::new(bin) };
            cfg.spdk_dir = spdk_dir;
            cfg.samples = common.repeats.unwrap_or(cfg.samples);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.warmup = warmup.unwrap_or(cfg.warmup);
            if quota.is_some() {
                cfg.quota_percent = quota;
            }
            if no_quota {
                cfg.quota_percent = None;
            }
            cfg.syscalls &= !no_syscalls;
            cfg.profile &= !no_profile;
            cfg.ff_client &= !no_ff_client;
            (spdk_bench::run(&cfg)?, common.out)
        }
        Bench::Iscsi {
            common,
            spdk_dir,
            samples,
            seconds,
            warmup,
            quota,
            no_quota,
            no_syscalls,
            no_ff_client,
            no_nvme,
            targets,
        } => {
            let bin = std::env::current_exe()?;
            let mut cfg = if common.quick { iscsi_bench::Config::quick(bin) } else { iscsi_bench::Config::new(bin) };
            cfg.spdk_dir = spdk_dir;
            cfg.samples = samples.or(common.repeats).unwrap_or(cfg.samples);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.warmup = warmup.unwrap_or(cfg.warmup);
            if quota.is_some() {
                cfg.quota_percent = quota;
            }
            if no_quota {
                cfg.quota_percent = None;
            }
            cfg.syscalls &= !no_syscalls;
            cfg.ff_client &= !no_ff_client;
            cfg.nvme_client &= !no_nvme;
            cfg.targets = targets.unwrap_or(cfg.targets);
            (iscsi_bench::run(&cfg)?, common.out)
        }
        Bench::Tls { common, spdk_dir, samples, seconds, warmup, quota, no_quota, no_plain, targets } => {
            let bin = std::env::current_exe()?;
            let mut cfg = if common.quick { tls_bench::Config::quick(bin) } else { tls_bench::Config::new(bin) };
            cfg.spdk_dir = spdk_dir;
            cfg.samples = samples.or(common.repeats).unwrap_or(cfg.samples);
            cfg.seconds = seconds.unwrap_or(cfg.seconds);
            cfg.warmup = warmup.unwrap_or(cfg.warmup);
            if quota.is_some() {
                cfg.quota_percent = quota;
            }
            if no_quota {
                cfg.quota_percent = None;
            }
            cfg.plain &= !no_plain;
            cfg.targets = targets.unwrap_or(cfg.targets);
            let report = tls_bench::run(&cfg)?;
            return emit_markdown(&report, common.out);
        }
    };
    emit(&report, out)
}

fn parse_iscsi_target(s: &str) -> Result<iscsi_bench::targets::TargetKind, String> {
    use iscsi_bench::targets::TargetKind;
    match s {
        "ours" => Ok(TargetKind::Ours),
        "spdk" => Ok(TargetKind::Spdk),
        "tgt" => Ok(TargetKind::Tgt),
        _ => Err(format!("unknown target {s:?} (ours, spdk, tgt)")),
    }
}

fn emit(report: &Report, out: Option<PathBuf>) -> Result<()> {
    let dir = out.unwrap_or_else(|| default_out_dir(&report.bench));
    let written = report.write(&dir)?;
    print!("{}", report.render_text());
    println!("report: {}", written.dir.display());
    Ok(())
}

/// As [`emit`], the summary printed as markdown (command line, tables, notes).
fn emit_markdown(report: &Report, out: Option<PathBuf>) -> Result<()> {
    let dir = out.unwrap_or_else(|| default_out_dir(&report.bench));
    let written = report.write(&dir)?;
    print!("{}", report.render_markdown());
    println!("\nreport: {}", written.dir.display());
    Ok(())
}
