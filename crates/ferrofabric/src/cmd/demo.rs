//! `ferrofabric demo`: the README's main job in one command. Starts our target in-process on its
//! defaults (a 1 GiB RAM namespace on 127.0.0.1:4420, discovery on 127.0.0.1:8009, the same namespace
//! as iSCSI LUN 0 on 127.0.0.1:3260; an ephemeral port when one is busy, said so), discovers and
//! identifies it, then runs ff-perf against it: a verify pass (4K random writes, each read back and
//! checked), a 4K random read at QD32 over NVMe/TCP, and the same read over iSCSI. Prints what it does
//! and the results; any error, verify mismatch or failed I/O makes it exit non-zero.

use anyhow::{Context, Result, bail};
use clap::Args;
use ff_initiator::{Controller, HostOptions};
use ff_perf::{Pattern, PerfConfig};
use ff_target::TargetOptions;
use ff_target::config::{DEFAULT_IQN, DEFAULT_ISCSI_LISTEN, DEFAULT_NQN};
use std::net::{SocketAddr, TcpListener};

/// Arguments of `ferrofabric demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seconds of the verify pass.
    #[arg(long, default_value_t = 2.0)]
    verify_seconds: f64,
    /// Seconds of the 4K random read.
    #[arg(long, default_value_t = 5.0)]
    read_seconds: f64,
}

/// `addr` if it can be bound now, else the same IP with port 0 (and a note saying so).
fn free_or_ephemeral(addr: SocketAddr, what: &str) -> SocketAddr {
    match TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(e) => {
            println!("  {addr} ({what}) is busy ({e}): using an ephemeral port instead");
            SocketAddr::new(addr.ip(), 0)
        }
    }
}

/// Starts the target, runs the two passes, stops the target.
pub fn run(a: DemoArgs) -> Result<()> {
    println!("== ferrofabric demo: our NVMe/TCP and iSCSI target, exercised by our perf tool over loopback");
    let mut o = TargetOptions::default()
        .with_default_subsystem(DEFAULT_NQN, "ram".parse()?)
        .with_default_iscsi_target(DEFAULT_IQN, DEFAULT_NQN);
    o.iscsi.listen = vec![free_or_ephemeral(DEFAULT_ISCSI_LISTEN.parse()?, "iSCSI")];
    o.listen = o.listen.iter().map(|&l| free_or_ephemeral(l, "NVMe/TCP")).collect();
    o.discovery_listen = o.discovery_listen.iter().map(|&l| free_or_ephemeral(l, "discovery")).collect();
    let t = ff_target::start(&o).context("starting the target")?;
    let addr = *t.io_addrs.first().context("the target has no I/O listener")?;
    println!(
        "target: {DEFAULT_NQN}, 1 GiB RAM namespace, listening on {addr}{}",
        t.discovery_addrs.first().map(|d| format!(" (discovery also on {d})")).unwrap_or_default()
    );
    let iscsi = *t.iscsi_addrs.first().context("the target has no iSCSI portal")?;
    println!("        the same namespace is LUN 0 of {DEFAULT_IQN} on {iscsi} (iSCSI)");
    let r = passes(&a, addr, iscsi);
    t.stop();
    println!("target stopped");
    r
}

fn passes(a: &DemoArgs, addr: SocketAddr, iscsi: SocketAddr) -> Result<()> {
    let entries = ff_initiator::discover(addr, &HostOptions::default()).context("discovery")?;
    println!("\n-- discover {addr}: {} record(s)", entries.len());
    for e in &entries {
        println!("   subnqn {} at {}:{} (subtype {})", e.subnqn, e.traddr, e.trsvcid, e.subtype);
    }
    if !entries.iter().any(|e| e.subnqn == DEFAULT_NQN) {
        bail!("discovery does not list {DEFAULT_NQN}");
    }
    let c = Controller::connect(addr, DEFAULT_NQN, &HostOptions { io_queues: 0, ..HostOptions::default() })?;
    let (ctrl, nss) = crate::cmd::identify::read(&c, None)?;
    c.shutdown()?;
    println!(
        "-- identify: model {:?}, serial {:?}, firmware {:?}, cntlid {:#x}, mdts {}, {} namespace(s)",
        ctrl.id.model,
        ctrl.id.serial,
        ctrl.id.firmware,
        ctrl.id.cntlid,
        ctrl.id.mdts,
        nss.len()
    );
    for n in &nss {
        println!(
            "   nsid {}: {} blocks of {} B ({:.2} GiB)",
            n.nsid,
            n.id.nsze,
            n.id.block_size,
            (n.id.nsze * u64::from(n.id.block_size)) as f64 / (1u64 << 30) as f64
        );
    }
    let base = PerfConfig { addr, nqn: DEFAULT_NQN.into(), progress: true, ..PerfConfig::default() };
    let verify = PerfConfig {
        pattern: Pattern::RandWrite,
        queue_depth: 32,
        verify: true,
        seconds: a.verify_seconds,
        warmup_seconds: 0.0,
        ..base.clone()
    };
    println!(
        "\n-- pass 1: verify: 4K random writes at QD32 for {} s, each read back and checked against (LBA, generation)",
        a.verify_seconds
    );
    let r = ff_perf::run(&verify)?;
    print!("{}", r.render());
    if r.errors > 0 {
        bail!("verify pass: {} I/O error(s)", r.errors);
    }
    if r.verify_counts.checked_reads == 0 {
        bail!("verify pass checked nothing");
    }
    let read = PerfConfig {
        pattern: Pattern::RandRead,
        queue_depth: 32,
        seconds: a.read_seconds,
        warmup_seconds: 1.0,
        ..base
    };
    println!("\n-- pass 2: 4K random read at QD32 over NVMe/TCP for {} s (after 1 s warm-up)", a.read_seconds);
    let r = ff_perf::run(&read)?;
    print!("{}", r.render());
    if r.errors > 0 {
        bail!("read pass: {} I/O error(s)", r.errors);
    }
    let iscsi_read = PerfConfig {
        addr: iscsi,
        iscsi: Some(ff_perf::IscsiTarget {
            target: DEFAULT_IQN.into(),
            lun: 0,
            initiator: ff_initiator::iscsi::DEFAULT_INITIATOR.into(),
            chap: None,
        }),
        ..read.clone()
    };
    println!("\n-- pass 3: the same 4K random read over iSCSI (LUN 0 of {DEFAULT_IQN}) for {} s", a.read_seconds);
    let ri = ff_perf::run(&iscsi_read)?;
    print!("{}", ri.render());
    if ri.errors > 0 {
        bail!("iSCSI read pass: {} I/O error(s)", ri.errors);
    }
    println!(
        "\ndemo OK: verify pass clean; 4K randread QD32: NVMe/TCP {:.0} IOPS (p50 {:.1} us, p99 {:.1} us), \
         iSCSI {:.0} IOPS (p50 {:.1} us, p99 {:.1} us)",
        r.iops, r.latency.p50_us, r.latency.p99_us, ri.iops, ri.latency.p50_us, ri.latency.p99_us
    );
    Ok(())
}
