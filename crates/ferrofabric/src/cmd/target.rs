//! `ferrofabric target`: serves NVMe/TCP and iSCSI. With no arguments it serves a 1 GiB RAM namespace
//! under [`DEFAULT_NQN`] on 127.0.0.1:4420 (discovery there and on 127.0.0.1:8009), the same namespace
//! as LUN 0 of [`DEFAULT_IQN`] on the iSCSI portal 127.0.0.1:3260, and prints names and addresses once
//! ready. The management RPC listens on `--rpc-socket`; SIGHUP re-reads `--config` and
//! applies the difference; SIGINT or SIGTERM shut it down cleanly.

use anyhow::{Context, Result};
use clap::Args;
use ff_blockdev::{BackendSpec, parse_size};
use ff_nvme_tcp::target::C2hSuccess;
use ff_sock::{Backend, PlacementMode};
use ff_target::config::{DEFAULT_IQN, DEFAULT_ISCSI_LISTEN, DEFAULT_NQN, DigestArg};
use ff_target::{PollMode, TargetOptions};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `ferrofabric target`. Flags override the `--config` file.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// TOML file describing subsystems, namespaces, listeners, limits and sock options.
    #[arg(long)]
    config: Option<PathBuf>,
    /// I/O listener address (repeatable); default 127.0.0.1:4420.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Discovery-only listener (repeatable); default 127.0.0.1:8009.
    #[arg(long)]
    discovery_listen: Vec<SocketAddr>,
    /// TLS listener (repeatable): NVMe/TCP that requires a secure channel, TLS 1.3 with the host's
    /// pre-shared key (--psk); also answers discovery. NVMe/TCP's TLS port is 4420 too (not 4421).
    #[arg(long)]
    tls_listen: Vec<SocketAddr>,
    /// Listener where TLS is optional (repeatable): a host that starts with a TLS ClientHello gets
    /// TLS 1.3 with its --psk, one that starts with an ICReq stays plain text.
    #[arg(long)]
    tls_optional_listen: Vec<SocketAddr>,
    /// TLS pre-shared key: HOSTNQN=NVMeTLSkey-1:01:...: (as `nvme gen-tls-key` or `ferrofabric
    /// gen-tls-key` prints it); the host may connect through a TLS listener to every subsystem with
    /// it, and is allowed to connect. Repeatable.
    #[arg(long, value_name = "HOSTNQN=NVMeTLSkey-1:...")]
    psk: Vec<String>,
    /// Seal and open TLS records in user space even where kernel TLS is available.
    #[arg(long)]
    no_ktls: bool,
    /// Do not open the separate discovery port (I/O listeners still answer discovery).
    #[arg(long)]
    no_discovery_port: bool,
    /// Subsystem NQN of the flag-defined subsystem.
    #[arg(long)]
    nqn: Option<String>,
    /// Namespace backend: null, ram or file:PATH.
    #[arg(long)]
    backend: Option<String>,
    /// Namespace size for null/ram (and to create or extend a file), e.g. 1G.
    #[arg(long)]
    size: Option<String>,
    /// Logical block size: 512 or 4096.
    #[arg(long)]
    block_size: Option<u32>,
    /// Reactor threads.
    #[arg(long)]
    cores: Option<usize>,
    /// busy (lowest latency, spins) or event (blocks when idle).
    #[arg(long)]
    poll: Option<PollMode>,
    /// Sock backend: epoll, poll or uring (falls back to epoll, with a warning, where io_uring is unavailable).
    #[arg(long)]
    sock: Option<Backend>,
    /// Connection placement: round-robin, least-loaded, napi-id, incoming-cpu (acceptor mode).
    #[arg(long)]
    placement: Option<PlacementMode>,
    /// Who accepts: acceptor (one thread places connections by --placement) or reactor (each reactor
    /// accepts on its own SO_REUSEPORT listener; multishot accept on io_uring).
    #[arg(long)]
    accept: Option<ff_target::AcceptMode>,
    /// When a read completes with C2HData SUCCESS and no response capsule: sq-flow-off (only on queues
    /// whose host disabled SQ flow control; default) or always (one PDU per read, as SPDK's target).
    #[arg(long)]
    c2h_success: Option<C2hSuccess>,
    /// iSCSI portal (repeatable); default 127.0.0.1:3260 when the default target is served.
    #[arg(long)]
    iscsi_listen: Vec<SocketAddr>,
    /// Serve no iSCSI.
    #[arg(long, conflicts_with = "iscsi_listen")]
    no_iscsi: bool,
    /// iSCSI target name of the flag-defined namespace (LUN 0).
    #[arg(long)]
    iqn: Option<String>,
    /// Require CHAP of iSCSI initiators: USER:SECRET (the secret 12 to 255 bytes).
    #[arg(long)]
    iscsi_chap: Option<String>,
    /// Mutual CHAP: the target's USER:SECRET.
    #[arg(long, requires = "iscsi_chap")]
    iscsi_mutual_chap: Option<String>,
    /// Only these iSCSI initiator names may log in (repeatable).
    #[arg(long)]
    iscsi_initiator: Vec<String>,
    /// iSCSI header digest: allow (the initiator chooses), require or never.
    #[arg(long)]
    iscsi_header_digest: Option<DigestArg>,
    /// iSCSI data digest: allow, require or never.
    #[arg(long)]
    iscsi_data_digest: Option<DigestArg>,
    /// NVMe DH-HMAC-CHAP: HOSTNQN=DHHC-1:...: the host must authenticate with this secret (its
    /// `nvme connect --dhchap-secret`) on every subsystem; it is also allowed to connect. Repeatable.
    #[arg(long, value_name = "HOSTNQN=DHHC-1:...")]
    dhchap_key: Vec<String>,
    /// Bidirectional DH-HMAC-CHAP: HOSTNQN=DHHC-1:..., the controller secret the target proves itself
    /// with (the host's `--dhchap-ctrl-secret`); needs a --dhchap-key for the same host. Repeatable.
    #[arg(long, value_name = "HOSTNQN=DHHC-1:...")]
    dhchap_ctrl_key: Vec<String>,
    /// DH-HMAC-CHAP hashes allowed, most preferred first (sha256,sha384,sha512); default all.
    #[arg(long, value_delimiter = ',')]
    dhchap_hash: Vec<String>,
    /// DH groups allowed, most preferred first (null,ffdhe2048,...,ffdhe8192); default all.
    #[arg(long, value_delimiter = ',')]
    dhchap_dhgroup: Vec<String>,
    /// Start with no subsystem (management adds them), whatever the defaults.
    #[arg(long, conflicts_with_all = ["nqn", "backend", "size", "block_size"])]
    empty: bool,
    /// Management RPC socket (JSON-RPC 2.0, mode 0600).
    #[arg(long, default_value = super::rpc::DEFAULT_RPC_SOCKET)]
    rpc_socket: PathBuf,
    /// Do not open the management RPC socket.
    #[arg(long)]
    no_rpc: bool,
    /// Serve Prometheus metrics (OpenMetrics text) on http://ADDR/metrics, e.g. 127.0.0.1:9420.
    #[arg(long)]
    metrics: Option<SocketAddr>,
}

/// Builds the options from the file (if any) and the flags.
pub fn options(a: &TargetArgs) -> Result<TargetOptions> {
    let mut o = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            TargetOptions::from_toml(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => TargetOptions::default(),
    };
    if !a.listen.is_empty() {
        o.listen = a.listen.clone();
    }
    if !a.discovery_listen.is_empty() {
        o.discovery_listen = a.discovery_listen.clone();
    }
    if a.no_discovery_port {
        o.discovery_listen.clear();
    }
    if !a.tls_listen.is_empty() {
        o.tls_listen = a.tls_listen.clone();
    }
    if !a.tls_optional_listen.is_empty() {
        o.tls_optional_listen = a.tls_optional_listen.clone();
    }
    if a.no_ktls {
        o.tls.ktls = false;
    }
    if let Some(c) = a.cores {
        o.cores = c;
    }
    if let Some(p) = a.poll {
        o.poll = p;
    }
    if let Some(s) = a.sock {
        o.sock.backend = s;
    }
    if let Some(p) = a.placement {
        o.placement = p;
    }
    if let Some(m) = a.accept {
        o.accept = m;
    }
    if let Some(m) = a.c2h_success {
        o.c2h_success = m;
    }
    let flags_define_ns = a.nqn.is_some() || a.backend.is_some() || a.size.is_some() || a.block_size.is_some();
    if (o.subsystems.is_empty() && !a.empty && a.config.is_none()) || flags_define_ns {
        let mut spec: BackendSpec = a.backend.as_deref().unwrap_or("ram").parse()?;
        spec.size = a.size.as_deref().map(parse_size).transpose()?;
        spec.block_size = a.block_size;
        let nqn = a.nqn.as_deref().unwrap_or(DEFAULT_NQN);
        o = o.with_default_subsystem(nqn, spec);
        if !a.no_iscsi {
            o = o.with_default_iscsi_target(a.iqn.as_deref().unwrap_or(DEFAULT_IQN), nqn);
            if o.iscsi.listen.is_empty() {
                o.iscsi.listen = vec![DEFAULT_ISCSI_LISTEN.parse()?];
            }
        }
    }
    if !a.iscsi_listen.is_empty() {
        o.iscsi.listen = a.iscsi_listen.clone();
    }
    if a.no_iscsi {
        o.iscsi.listen.clear();
    }
    if let Some(d) = a.iscsi_header_digest {
        o.iscsi.header_digest = d.0;
    }
    if let Some(d) = a.iscsi_data_digest {
        o.iscsi.data_digest = d.0;
    }
    let split = |s: &str, what: &str| -> Result<(String, String)> {
        let (u, p) = s.split_once(':').with_context(|| format!("{what} takes USER:SECRET"))?;
        Ok((u.to_string(), p.to_string()))
    };
    if let Some(c) = &a.iscsi_chap {
        let (user, secret) = split(c, "--iscsi-chap")?;
        let mutual = a.iscsi_mutual_chap.as_deref().map(|m| split(m, "--iscsi-mutual-chap")).transpose()?;
        let (mutual_user, mutual_secret) = mutual.unzip();
        for t in &mut o.iscsi_targets {
            t.chap = Some(ff_target::ChapSpec {
                user: user.clone(),
                secret: secret.clone(),
                mutual_user: mutual_user.clone(),
                mutual_secret: mutual_secret.clone(),
            });
        }
    }
    if !a.iscsi_initiator.is_empty() {
        for t in &mut o.iscsi_targets {
            t.allow_any_initiator = false;
            t.initiators = a.iscsi_initiator.clone();
        }
    }
    apply_dhchap(a, &mut o)?;
    Ok(o)
}

/// Applies the `--dhchap-*` and `--psk` flags to every subsystem (they replace the file's entries for
/// the same hosts).
fn apply_dhchap(a: &TargetArgs, o: &mut TargetOptions) -> Result<()> {
    let split = |s: &str, flag: &str, prefix: &str| -> Result<(String, String)> {
        // NQNs hold no '='; the secret may end in base64 padding, so split at the first one.
        let (h, k) = s.split_once('=').with_context(|| format!("{flag} takes HOSTNQN={prefix}..."))?;
        anyhow::ensure!(!h.is_empty() && k.starts_with(prefix), "{flag} takes HOSTNQN={prefix}..., not {h}=...");
        Ok((h.to_string(), k.to_string()))
    };
    let mut hosts: Vec<ff_target::HostAuthSpec> = Vec::new();
    for k in &a.dhchap_key {
        let (nqn, key) = split(k, "--dhchap-key", "DHHC-1:")?;
        anyhow::ensure!(!hosts.iter().any(|h| h.nqn == nqn), "--dhchap-key given twice for {nqn}");
        hosts.push(ff_target::HostAuthSpec::dhchap(nqn, key));
    }
    for k in &a.psk {
        let (nqn, key) = split(k, "--psk", "NVMeTLSkey-1:")?;
        match hosts.iter_mut().find(|h| h.nqn == nqn) {
            Some(h) if h.psk.is_some() => anyhow::bail!("--psk given twice for {nqn}"),
            Some(h) => h.psk = Some(key),
            None => {
                hosts.push(ff_target::HostAuthSpec { nqn, dhchap_key: None, dhchap_ctrl_key: None, psk: Some(key) })
            }
        }
    }
    for k in &a.dhchap_ctrl_key {
        let (nqn, key) = split(k, "--dhchap-ctrl-key", "DHHC-1:")?;
        let h = hosts
            .iter_mut()
            .find(|h| h.nqn == nqn && h.dhchap_key.is_some())
            .with_context(|| format!("--dhchap-ctrl-key for {nqn} needs a --dhchap-key for it too"))?;
        h.dhchap_ctrl_key = Some(key);
    }
    for h in &hosts {
        h.validate().with_context(|| format!("secrets of host {} (--dhchap-key / --psk)", h.nqn))?;
    }
    for s in &mut o.subsystems {
        s.auth_hosts.retain(|x| !hosts.iter().any(|h| h.nqn == x.nqn));
        s.auth_hosts.extend(hosts.iter().cloned());
    }
    if !a.dhchap_hash.is_empty() {
        o.auth.hashes = a.dhchap_hash.clone();
    }
    if !a.dhchap_dhgroup.is_empty() {
        o.auth.dhgroups = a.dhchap_dhgroup.clone();
    }
    Ok(())
}

/// Runs the target until SIGINT/SIGTERM.
pub fn run(a: TargetArgs) -> Result<()> {
    let o = options(&a)?;
    // Block the signals before any thread starts so every thread inherits the mask and the main
    // thread alone receives them, synchronously, in sigwait.
    let set = handled_signals();
    let t = ff_target::start(&o)?;
    let manager = t.manager();
    manager.set_config_path(a.config.clone());
    let rpc = if a.no_rpc {
        None
    } else {
        let handler: std::sync::Arc<dyn ff_rpc::Handler> = manager.clone();
        let server = ff_rpc::RpcServer::bind(&a.rpc_socket, handler).with_context(|| {
            format!("opening the RPC socket {} (--rpc-socket, or --no-rpc)", a.rpc_socket.display())
        })?;
        Some(server)
    };
    for nqn in &t.nqns {
        println!("ferrofabric target ready: nqn {nqn}");
    }
    for a in &t.io_addrs {
        println!("  listening on {a} (nvme-tcp, discovery)");
    }
    for a in &t.tls_addrs {
        println!("  listening on {a} (nvme-tcp over TLS 1.3, discovery)");
    }
    for a in &t.tls_optional_addrs {
        println!("  listening on {a} (nvme-tcp, TLS 1.3 optional, discovery)");
    }
    for a in &t.discovery_addrs {
        println!("  listening on {a} (discovery)");
    }
    for iqn in &t.iqns {
        println!("ferrofabric target ready: iqn {iqn}");
    }
    for a in &t.iscsi_addrs {
        println!("  listening on {a} (iscsi)");
    }
    println!(
        "  {} reactor(s), poll {:?}, sock {}, placement {}, c2h_success {}",
        o.cores, o.poll, o.sock.backend, o.placement, o.c2h_success
    );
    let metrics = a.metrics.map(|addr| crate::metrics::Endpoint::start(addr, manager.clone())).transpose()?;
    if let Some(r) = &rpc {
        println!("  management RPC on {}", r.path().display());
    }
    if let Some(m) = &metrics {
        println!("  metrics on http://{}/metrics", m.addr);
    }
    let sig = loop {
        match wait_signal(&set) {
            libc::SIGHUP => reload(&manager),
            sig => break sig,
        }
    };
    eprintln!("signal {sig}: shutting down");
    if let Some(r) = rpc {
        r.stop();
    }
    if let Some(m) = metrics {
        m.stop();
    }
    // The counters prove which tricks ran (syscalls per wait, pipe vs direct bytes, zero-copy fallbacks).
    for (i, s) in t.stop_and_report().iter().enumerate() {
        let c = &s.sock;
        eprintln!(
            "reactor {i}: {} waits ({} empty, {:.2} events each), {} recv syscalls ({} skipped as drained), \
             received B: {} parsed in place, {} copied out, {} direct; \
             {} sendmsg, {} B sent, {} writes done, {} zero-copy sends ({} copied)",
            c.waits,
            c.empty_waits,
            c.events_per_wait(),
            c.sock.recv_syscalls(),
            c.sock.readv_skipped,
            c.sock.bytes_parsed_in_place,
            c.sock.bytes_copied,
            c.sock.bytes_direct,
            c.sock.sendmsg,
            c.sock.bytes_sent,
            c.sock.writes_completed,
            c.sock.zc_sends,
            c.sock.zc_copied,
        );
    }
    Ok(())
}

/// SIGHUP: re-reads the configuration file and applies the difference, logging what changed.
fn reload(manager: &ff_target::Manager) {
    match manager.reload(None) {
        Ok(r) => {
            for c in &r.applied {
                tracing::info!("reload: {c}");
            }
            for c in &r.failed {
                tracing::error!("reload: {c}");
            }
            if !r.need_restart.is_empty() {
                tracing::warn!(
                    "reload: these settings changed but only apply at restart: {}",
                    r.need_restart.join(", ")
                );
            }
            tracing::info!(applied = r.applied.len(), failed = r.failed.len(), "configuration reloaded");
        }
        Err(e) => tracing::error!("reload refused, nothing changed: {e:#}"),
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and returns that set, for [`wait_signal`].
///
/// Hand-written with libc, as is `wait_signal`: rustix has signal masks and sigwait only in its
/// doc(hidden), unstable `runtime` module (unsafe, and meant for libc replacements, not for a process
/// that links libc), and no other dependency offers them.
fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, so all-zero is a valid value; sigemptyset and sigaddset write
    // only inside `set`; pthread_sigmask only reads it and accepts a null old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one signal of `set` (blocked by [`handled_signals`]) and returns its number.
fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: set is a valid, initialised signal set; sig is a valid out pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: TargetArgs,
    }

    fn parse(args: &[&str]) -> Result<TargetOptions> {
        let t = T::try_parse_from(std::iter::once("target").chain(args.iter().copied()))?;
        options(&t.a)
    }

    /// Two valid `DHHC-1` secrets.
    fn secrets() -> Vec<String> {
        let mut rng = ff_nvme_auth::SeededRandom::new(7);
        (0..2).map(|_| ff_nvme_auth::Secret::generate(None, None, &mut rng).unwrap().to_dhhc_string()).collect()
    }

    #[test]
    fn dhchap_flags_set_every_subsystem_and_the_policy() {
        let keys = secrets();
        let (k, c) = (&keys[0], &keys[1]);
        let o = parse(&[
            "--no-iscsi",
            "--dhchap-key",
            &format!("nqn.h1={k}"),
            "--dhchap-ctrl-key",
            &format!("nqn.h1={c}"),
            "--dhchap-key",
            &format!("nqn.h2={k}"),
            "--dhchap-hash",
            "sha384,sha256",
            "--dhchap-dhgroup",
            "ffdhe2048",
        ])
        .unwrap();
        let hosts = &o.subsystems[0].auth_hosts;
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].dhchap_ctrl_key.as_deref(), Some(c.as_str()));
        assert_eq!(hosts[1].dhchap_ctrl_key, None);
        assert_eq!(o.auth.hashes, ["sha384", "sha256"]);
        assert_eq!(o.auth.dhgroups, ["ffdhe2048"]);
        o.validate().unwrap();
    }

    /// `k` with one base64 digit of the key changed (the CRC no longer matches).
    fn corrupt(k: &str) -> String {
        let mut s = k.to_string();
        let c = if &s[12..13] == "A" { "B" } else { "A" };
        s.replace_range(12..13, c);
        s
    }

    #[test]
    fn bad_dhchap_flags_say_what_is_wrong() {
        let keys = secrets();
        let k = &keys[0];
        for (args, want) in [
            (vec!["--dhchap-key".to_string(), k.clone()], "HOSTNQN="),
            (vec!["--dhchap-key".into(), "nqn.h=secret".into()], "HOSTNQN="),
            (vec!["--dhchap-ctrl-key".into(), format!("nqn.h={k}")], "needs a --dhchap-key"),
            (vec!["--dhchap-key".into(), format!("nqn.h={}", corrupt(k))], "CRC"),
        ] {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let e = format!("{:#}", parse(&refs).unwrap_err());
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }
}
