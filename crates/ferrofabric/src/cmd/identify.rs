//! `ferrofabric identify`: connects to a subsystem and prints the highlights of `nvme id-ctrl` (vid, sn,
//! mn, fr, mdts, cntlid, ver, nn, ioccsz, sgls, subnqn, ...) and of `nvme id-ns` for each active namespace
//! (nsze, ncap, nuse, the LBA formats and the block size in use), or JSON.

use crate::cmd::perf::{HostAuthArgs, SockArgs};
use anyhow::Result;
use clap::Args;
use ff_initiator::{Controller, HostOptions, IdentifyController, IdentifyNamespace};
use ff_nvme::nvme::{Sqe, opcode};
use ff_nvme_tcp::Digests;
use ff_target::config::DEFAULT_NQN;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Arguments of `ferrofabric identify`.
#[derive(Args, Debug)]
pub struct IdentifyArgs {
    /// Target I/O address.
    #[arg(long, default_value = "127.0.0.1:4420")]
    addr: SocketAddr,
    /// Subsystem NQN.
    #[arg(long, default_value = DEFAULT_NQN)]
    nqn: String,
    /// Only this namespace (default: every active one).
    #[arg(long)]
    nsid: Option<u32>,
    /// Header digest.
    #[arg(long)]
    hdgst: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    host: HostAuthArgs,
}

/// One LBA format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbaFormat {
    /// Metadata bytes per block.
    pub ms: u16,
    /// Block size as a power of two.
    pub lbads: u8,
    /// Relative performance (0 best).
    pub rp: u8,
}

/// What `identify` shows of a controller.
#[derive(Clone, Debug)]
pub struct Controllers {
    /// PCI vendor id.
    pub vid: u16,
    /// PCI subsystem vendor id.
    pub ssvid: u16,
    /// The parsed page.
    pub id: IdentifyController,
}

/// What `identify` shows of a namespace.
#[derive(Clone, Debug)]
pub struct Namespace {
    /// Namespace id.
    pub nsid: u32,
    /// The parsed page.
    pub id: IdentifyNamespace,
    /// Every LBA format (NLBAF + 1).
    pub lbafs: Vec<LbaFormat>,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2).and_then(|s| s.try_into().ok()).map(u16::from_le_bytes).unwrap_or(0)
}

fn raw_identify(c: &Controller, cns: u32, nsid: u32) -> Result<Vec<u8>> {
    // Raw pages: the library's parsed types leave out VID/SSVID and the LBA format list.
    let sqe = Sqe { opcode: opcode::ADMIN_IDENTIFY, nsid, cdw10: cns, ..Sqe::default() };
    Ok(c.admin_cmd("Identify", sqe, None, 4096)?.1)
}

/// Reads the controller and namespace pages.
pub fn read(c: &Controller, only: Option<u32>) -> Result<(Controllers, Vec<Namespace>)> {
    let page = raw_identify(c, 1, 0)?;
    let ctrl = Controllers { vid: u16_at(&page, 0), ssvid: u16_at(&page, 2), id: IdentifyController::parse(&page) };
    let nsids = match only {
        Some(n) => vec![n],
        None => c.active_namespaces()?,
    };
    let mut out = Vec::new();
    for nsid in nsids {
        let p = raw_identify(c, 0, nsid)?;
        let nlbaf = usize::from(p.get(25).copied().unwrap_or(0)).min(63);
        let lbafs = (0..=nlbaf)
            .map(|i| {
                let off = 128 + 4 * i;
                LbaFormat {
                    ms: u16_at(&p, off),
                    lbads: p.get(off + 2).copied().unwrap_or(0),
                    rp: p.get(off + 3).copied().unwrap_or(0) & 0x3,
                }
            })
            .collect();
        out.push(Namespace { nsid, id: IdentifyNamespace::parse(&p), lbafs });
    }
    Ok((ctrl, out))
}

fn version(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xFF, v & 0xFF)
}

/// `nvme id-ctrl` / `id-ns` style text.
pub fn render(c: &Controllers, nss: &[Namespace]) -> String {
    let id = &c.id;
    let mut s = String::from("NVME Identify Controller:\n");
    let mut f = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<9}: {v}");
    };
    f("vid", format!("{:#x}", c.vid));
    f("ssvid", format!("{:#x}", c.ssvid));
    f("sn", id.serial.clone());
    f("mn", id.model.clone());
    f("fr", id.firmware.clone());
    f("mdts", id.mdts.to_string());
    f("cntlid", format!("{:#x}", id.cntlid));
    f("ver", format!("{:#x} ({})", id.ver, version(id.ver)));
    f("cntrltype", id.cntrltype.to_string());
    f("kas", id.kas.to_string());
    f("maxcmd", id.maxcmd.to_string());
    f("nn", id.nn.to_string());
    f("oncs", format!("{:#x}", id.oncs));
    f("vwc", format!("{:#x}", id.vwc));
    f("sgls", format!("{:#x}", id.sgls));
    f("subnqn", id.subnqn.clone());
    f("ioccsz", id.ioccsz.to_string());
    f("iorcsz", id.iorcsz.to_string());
    f("icdoff", id.icdoff.to_string());
    for n in nss {
        let _ = writeln!(s, "\nNVME Identify Namespace {}:", n.nsid);
        let _ = writeln!(s, "nsze    : {:#x} ({} blocks)", n.id.nsze, n.id.nsze);
        let _ = writeln!(s, "ncap    : {:#x}", n.id.ncap);
        let _ = writeln!(s, "nuse    : {:#x}", n.id.nuse);
        let _ = writeln!(s, "nsfeat  : {:#x}", n.id.nsfeat);
        let _ = writeln!(s, "nlbaf   : {}", n.lbafs.len().saturating_sub(1));
        let _ = writeln!(s, "flbas   : {:#x}", n.id.flbas);
        let cur = usize::from(n.id.flbas & 0xF);
        for (i, l) in n.lbafs.iter().enumerate() {
            let _ = writeln!(
                s,
                "lbaf {i:>2} : ms:{:<3} lbads:{:<2} rp:{:#x}{}",
                l.ms,
                l.lbads,
                l.rp,
                if i == cur { " (in use)" } else { "" }
            );
        }
        let bytes = n.id.nsze.saturating_mul(u64::from(n.id.block_size));
        let _ = writeln!(
            s,
            "block size {} B, size {} bytes ({:.2} GiB)",
            n.id.block_size,
            bytes,
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    s
}

/// The same as JSON.
pub fn to_json(c: &Controllers, nss: &[Namespace]) -> Value {
    let id = &c.id;
    json!({
        "controller": {
            "vid": c.vid, "ssvid": c.ssvid, "sn": id.serial, "mn": id.model, "fr": id.firmware,
            "mdts": id.mdts, "cntlid": id.cntlid, "ver": id.ver, "version": version(id.ver),
            "cntrltype": id.cntrltype, "kas": id.kas, "maxcmd": id.maxcmd, "nn": id.nn, "oncs": id.oncs,
            "vwc": id.vwc, "sgls": id.sgls, "subnqn": id.subnqn, "ioccsz": id.ioccsz, "iorcsz": id.iorcsz,
            "icdoff": id.icdoff,
        },
        "namespaces": nss.iter().map(|n| json!({
            "nsid": n.nsid, "nsze": n.id.nsze, "ncap": n.id.ncap, "nuse": n.id.nuse, "nsfeat": n.id.nsfeat,
            "flbas": n.id.flbas, "block_size": n.id.block_size, "metadata_size": n.id.metadata_size,
            "lbafs": n.lbafs.iter().map(|l| json!({"ms": l.ms, "lbads": l.lbads, "rp": l.rp})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Connects (admin queue only), identifies, prints, shuts the controller down.
pub fn run(a: IdentifyArgs) -> Result<()> {
    let g = a.sock.group()?;
    let o = a.host.apply(HostOptions {
        digests: Digests { header: a.hdgst, data: false },
        io_queues: 0,
        sock: g.sock.clone(),
        ..HostOptions::default()
    })?;
    let c = Controller::connect(a.addr, &a.nqn, &o)?;
    let (ctrl, nss) = read(&c, a.nsid)?;
    c.shutdown()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&ctrl, &nss))?);
    } else {
        print!("{}", render(&ctrl, &nss));
    }
    Ok(())
}
