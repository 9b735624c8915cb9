//! `ferrofabric discover`: reads a discovery controller's log page and prints one block per entry the way
//! `nvme discover` does (trtype, adrfam, subtype, treq, portid, trsvcid, subnqn, traddr), or JSON.

use crate::cmd::perf::{HostAuthArgs, SockArgs};
use anyhow::Result;
use clap::Args;
use ff_initiator::{DiscoveryEntry, HostOptions};
use ff_nvme_tcp::Digests;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Arguments of `ferrofabric discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Discovery controller address (an I/O listener of ours answers discovery too).
    #[arg(long, default_value = "127.0.0.1:8009")]
    addr: SocketAddr,
    /// Header digest.
    #[arg(long)]
    hdgst: bool,
    /// Print the entries as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    host: HostAuthArgs,
}

fn trtype(v: u8) -> &'static str {
    match v {
        1 => "rdma",
        2 => "fc",
        3 => "tcp",
        254 => "loop",
        _ => "unrecognized",
    }
}

fn adrfam(v: u8) -> &'static str {
    match v {
        1 => "ipv4",
        2 => "ipv6",
        3 => "infiniband",
        4 => "fibre-channel",
        254 => "intra-host",
        _ => "unrecognized",
    }
}

fn subtype(v: u8) -> &'static str {
    match v {
        1 => "discovery subsystem referral",
        2 => "nvme subsystem",
        3 => "current discovery subsystem",
        _ => "unrecognized",
    }
}

fn treq(v: u8) -> String {
    let secure = match v & 0x3 {
        0 => "not specified",
        1 => "required",
        2 => "not required",
        _ => "reserved",
    };
    if v & 0x4 != 0 { format!("{secure}, sq flow control disable supported") } else { secure.to_string() }
}

fn sectype(v: u8) -> &'static str {
    match v {
        0 => "none",
        1 => "tls1.2",
        2 => "tls1.3",
        _ => "reserved",
    }
}

/// The entries as `nvme discover` prints them.
pub fn render(entries: &[DiscoveryEntry]) -> String {
    let mut s = format!("\nDiscovery Log Number of Records {}\n", entries.len());
    for (i, e) in entries.iter().enumerate() {
        let _ = writeln!(s, "=====Discovery Log Entry {i}======");
        let _ = writeln!(s, "trtype:  {}", trtype(e.trtype));
        let _ = writeln!(s, "adrfam:  {}", adrfam(e.adrfam));
        let _ = writeln!(s, "subtype: {}", subtype(e.subtype));
        let _ = writeln!(s, "treq:    {}", treq(e.treq));
        let _ = writeln!(s, "portid:  {}", e.portid);
        let _ = writeln!(s, "trsvcid: {}", e.trsvcid);
        let _ = writeln!(s, "subnqn:  {}", e.subnqn);
        let _ = writeln!(s, "traddr:  {}", e.traddr);
        let _ = writeln!(s, "sectype: {}", sectype(e.tsas_sectype));
    }
    s
}

/// The entries as JSON (the names nvme-cli's JSON output uses).
pub fn to_json(entries: &[DiscoveryEntry]) -> Value {
    json!({
        "records": entries.iter().map(|e| json!({
            "trtype": trtype(e.trtype),
            "adrfam": adrfam(e.adrfam),
            "subtype": subtype(e.subtype),
            "treq": treq(e.treq),
            "portid": e.portid,
            "trsvcid": e.trsvcid,
            "subnqn": e.subnqn,
            "traddr": e.traddr,
            "cntlid": e.cntlid,
            "asqsz": e.asqsz,
            "sectype": sectype(e.tsas_sectype),
        })).collect::<Vec<_>>()
    })
}

/// Runs discovery and prints the log.
pub fn run(a: DiscoverArgs) -> Result<()> {
    let g = a.sock.group()?;
    let o = a.host.apply(HostOptions {
        digests: Digests { header: a.hdgst, data: false },
        sock: g.sock.clone(),
        ..HostOptions::default()
    })?;
    let entries = ff_initiator::discover(a.addr, &o)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&entries))?);
    } else {
        print!("{}", render(&entries));
    }
    Ok(())
}
