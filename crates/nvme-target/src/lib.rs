//! The ferrofabric NVMe/TCP target runtime: reactors (one thread per core, each owning a socket group)
//! drive the sans-IO transport core ([`ff_nvme_tcp::target`]) and the controller core ([`ff_nvmf`]) over
//! block backends ([`ff_blockdev`]); an acceptor places new connections on reactors.
//!
//! - [`config`]: what to serve (subsystems, namespaces, listeners) and how (cores, poll mode, sock
//!   options), from flags or a TOML file;
//! - [`start`] runs it and returns a [`RunningTarget`]; [`ReactorStats`] are each reactor's counters;
//! - [`mgmt`]: changes while it serves (the RPC methods), stats, the running and saved configuration.
//!
//! Internals, not public: `acceptor` (listeners, placement, hand-over), `reactor` (the per-core
//! loop), `session` (one connection's command execution), `shared` (what reactors share), `token`
//! (the tags of device requests), `txbuf` (the buffers connections send and receive). With the
//! `fuzzing` feature, `fuzzing` drives the command path without sockets (the cargo-fuzz targets,
//! their stable tests, `ff-bench core`).

mod acceptor;
pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod iscsi;
pub mod mgmt;
mod reactor;
mod scsi_task;
mod session;
mod shared;
mod tls;
mod token;
mod txbuf;

pub use config::{
    AcceptMode, AuthOptions, ChapSpec, HostAuthSpec, IscsiOptions, IscsiTargetSpec, LunSpec, NamespaceSpec,
    SubsystemSpec, TargetOptions, TlsOptions,
};
pub use mgmt::Manager;
pub use reactor::{ConnStats, PollMode, ReactorStats};
pub use session::IoCounts;

use anyhow::Context;
use ff_blockdev::{BlockDevFactory, OpenedBackend};
use ff_nvmf::{AddrFamily, NamespaceConfig, Port, SecureChannel, SubsystemConfig, Target, TargetConfig};
use ff_sock::{Listener, Placer};
use reactor::{Inbox, Mgmt, Reactor};
use shared::{NsBackend, Shared, SubsysBackends};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A running target; [`RunningTarget::stop`] shuts it down cleanly.
pub struct RunningTarget {
    stop: Arc<AtomicBool>,
    inboxes: Vec<Inbox>,
    threads: Vec<JoinHandle<()>>,
    /// Addresses of the plain I/O listeners at start (port 0 resolved).
    pub io_addrs: Vec<SocketAddr>,
    /// Addresses of the TLS listeners at start (port 0 resolved).
    pub tls_addrs: Vec<SocketAddr>,
    /// Addresses of the listeners where TLS is optional, at start (port 0 resolved).
    pub tls_optional_addrs: Vec<SocketAddr>,
    /// Addresses of the discovery-only listeners at start.
    pub discovery_addrs: Vec<SocketAddr>,
    /// Addresses of the iSCSI portals (port 0 resolved).
    pub iscsi_addrs: Vec<SocketAddr>,
    /// Names of the iSCSI targets served at start.
    pub iqns: Vec<String>,
    /// NQNs of the subsystems served at start.
    pub nqns: Vec<String>,
    /// The sock backend each reactor really uses (io_uring may have fallen back to epoll).
    pub sock_backends: Vec<ff_sock::Backend>,
    stats: Vec<Arc<Mutex<ReactorStats>>>,
    manager: Arc<Manager>,
}

impl RunningTarget {
    /// The management of this target: what the RPC methods do (subsystems, namespaces, hosts,
    /// listeners, stats, saved configuration), for an RPC server or for direct calls.
    pub fn manager(&self) -> Arc<Manager> {
        self.manager.clone()
    }

    /// Stops accepting, finishes or fails in-flight I/O, flushes and closes every connection, and joins
    /// all threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Each reactor's counters as last published (every 100 ms tick).
    pub fn reactor_stats(&self) -> Vec<ReactorStats> {
        self.stats.iter().map(|s| s.lock().map(|g| g.clone()).unwrap_or_default()).collect()
    }

    /// [`RunningTarget::stop`], then each reactor's final counters (after the shutdown flush).
    pub fn stop_and_report(mut self) -> Vec<ReactorStats> {
        self.shutdown();
        self.reactor_stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for i in &self.inboxes {
            let _ = i.send(Mgmt::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RunningTarget {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn nvmf_port(addr: SocketAddr, portid: u16, secure_channel: SecureChannel) -> Port {
    Port {
        secure_channel,
        adrfam: if addr.is_ipv4() { AddrFamily::Ipv4 } else { AddrFamily::Ipv6 },
        traddr: addr.ip().to_string(),
        trsvcid: addr.port().to_string(),
        portid,
    }
}

/// The opened backends of a target, by (subsystem NQN, nsid): management resizes through them.
pub(crate) type OpenedDevs = HashMap<(String, u32), Arc<OpenedBackend>>;

/// Opens the backend of namespace `n` of subsystem `nqn` and describes the namespace it backs.
pub(crate) fn open_namespace(nqn: &str, n: &NamespaceSpec) -> anyhow::Result<(OpenedBackend, NamespaceConfig)> {
    let dev = ff_blockdev::open(&n.backend)
        .with_context(|| format!("opening namespace {} of {nqn}: {}", n.nsid, n.backend.kind))?;
    let cfg = namespace_config(n, &dev.info());
    Ok((dev, cfg))
}

/// The namespace the controller core advertises for `n` on a device of geometry `info`.
pub(crate) fn namespace_config(n: &NamespaceSpec, info: &ff_blockdev::DevInfo) -> NamespaceConfig {
    NamespaceConfig {
        nsid: n.nsid,
        block_size: info.block_size,
        blocks: info.num_blocks,
        nguid: n.nguid.clone(),
        uuid: n.uuid.clone(),
        volatile_write_cache: info.volatile_write_cache,
        supports_deallocate: info.deallocate,
        supports_write_zeroes: info.write_zeroes,
    }
}

/// The controller core's view of subsystem `s` (namespaces apart).
pub(crate) fn subsystem_config(
    s: &SubsystemSpec,
    auth: &config::AuthOptions,
    namespaces: Vec<NamespaceConfig>,
) -> SubsystemConfig {
    let mut hosts = s.hosts.clone();
    for h in &s.auth_hosts {
        if !hosts.contains(&h.nqn) {
            hosts.push(h.nqn.clone());
        }
    }
    SubsystemConfig {
        nqn: s.nqn.clone(),
        serial: s.serial.clone(),
        model: s.model.clone(),
        firmware_rev: env!("CARGO_PKG_VERSION").chars().take(8).collect(),
        namespaces,
        allow_any_host: s.allow_any_host,
        hosts,
        max_namespaces: s.max_namespaces,
        dhchap: s.auth_hosts.iter().filter_map(config::HostAuthSpec::to_core).collect(),
        dhchap_hashes: auth.hashes.clone(),
        dhchap_dhgroups: auth.dhgroups.clone(),
    }
}

/// Opens the backends and builds the controller core for `opts`, advertising `io_ports` (address, port
/// id) in discovery.
pub(crate) fn build_shared(
    opts: &TargetOptions,
    io_ports: &[IoPort],
    iscsi_portals: &[SocketAddr],
) -> anyhow::Result<(Arc<Shared>, OpenedDevs)> {
    opts.validate()?;
    // Backends first: their geometry is what the namespaces advertise.
    let mut subsystems = Vec::new();
    let mut backends: HashMap<String, Arc<SubsysBackends>> = HashMap::new();
    let mut opened = OpenedDevs::new();
    let mut ns_count = 0;
    for s in &opts.subsystems {
        let mut sb = SubsysBackends::default();
        let mut namespaces = Vec::new();
        for n in &s.namespaces {
            let (dev, cfg) = open_namespace(&s.nqn, n)?;
            namespaces.push(cfg);
            let info = dev.info();
            let dev = Arc::new(dev);
            let factory: Arc<dyn BlockDevFactory> = dev.clone();
            sb.by_nsid.insert(n.nsid, Arc::new(NsBackend { index: ns_count, factory, info }));
            opened.insert((s.nqn.clone(), n.nsid), dev);
            ns_count += 1;
        }
        backends.insert(s.nqn.clone(), Arc::new(sb));
        subsystems.push(subsystem_config(s, &opts.auth, namespaces));
    }
    let nvmf_ports = io_ports.iter().map(|p| nvmf_port(p.addr, p.id, p.tls)).collect();
    let target = Target::from_config(TargetConfig { limits: opts.limits, subsystems, listeners: nvmf_ports })
        .map_err(|e| anyhow::anyhow!("invalid target configuration: {e}"))?;
    let limits = *target.limits();
    let max_transfer = limits.mdts_bytes().unwrap_or(8 << 20).min(8 << 20) as u32;
    let conn = ff_nvme_tcp::target::TargetConnConfig {
        cpda: 0,
        hdgst: true,
        ddgst: true,
        maxh2cdata: max_transfer.clamp(4096, 128 * 1024),
        // The admin queue carries up to 8 KiB in capsule whatever IOCCSZ says (the host's rule).
        max_in_capsule: limits.in_capsule_data_size.max(8192),
        max_transfer,
        max_outstanding: limits.max_queue_depth as usize,
        c2h_success: opts.c2h_success,
    };
    let mut shared = Shared::new(target, backends, ns_count, conn);
    shared.psks = Arc::new(tls::PskTable::from_options(opts));
    if !iscsi_portals.is_empty() {
        shared.iscsi = Some(Arc::new(iscsi::IscsiShared::new(opts, iscsi_portals)));
    }
    Ok((Arc::new(shared), opened))
}

/// An I/O listener as discovery lists it.
pub(crate) struct IoPort {
    addr: SocketAddr,
    id: u16,
    tls: SecureChannel,
}

/// Starts a target serving `opts`.
pub fn start(opts: &TargetOptions) -> anyhow::Result<RunningTarget> {
    opts.validate()?;
    let per_reactor = opts.accept == config::AcceptMode::Reactor;
    // Listeners: I/O listeners (which also serve discovery) then discovery-only ones, port ids from 1. In
    // per-reactor accept mode each reactor gets its own SO_REUSEPORT listener on every address (the
    // first one resolves port 0 for the others).
    let mut listeners = Vec::new();
    let mut reactor_listeners: Vec<Vec<(Listener, usize)>> = (0..opts.cores).map(|_| Vec::new()).collect();
    let mut ports = Vec::new();
    let all = opts
        .listen
        .iter()
        .map(|a| (a, false, SecureChannel::None))
        .chain(opts.tls_listen.iter().map(|a| (a, false, SecureChannel::Required)))
        .chain(opts.tls_optional_listen.iter().map(|a| (a, false, SecureChannel::Optional)))
        .chain(opts.discovery_listen.iter().map(|a| (a, true, SecureChannel::None)));
    for (i, (a, discovery_only, tls)) in all.enumerate() {
        let id = i + 1;
        let mut ls = mgmt::bind_listeners(*a, discovery_only, if per_reactor { opts.cores } else { 1 })?;
        let bound = ls[0].local_addr()?;
        ports.push(mgmt::PortEntry { id, conf: *a, addr: bound, discovery_only, tls });
        if per_reactor {
            for (rl, l) in reactor_listeners.iter_mut().zip(ls) {
                rl.push((l, id));
            }
        } else {
            listeners.push(acceptor::Listening { listener: ls.remove(0), port: id, tls });
        }
    }
    // iSCSI portals: port ids from iscsi::PORT_BASE, outside the NVMe listeners' (discovery does not
    // list them; management does not see them).
    let mut iscsi_addrs = Vec::new();
    for (i, a) in opts.iscsi.listen.iter().enumerate() {
        let id = iscsi::PORT_BASE + i;
        let mut ls = mgmt::bind_listeners(*a, false, if per_reactor { opts.cores } else { 1 })
            .with_context(|| format!("iSCSI portal {a}"))?;
        iscsi_addrs.push(ls[0].local_addr()?);
        if per_reactor {
            for (rl, l) in reactor_listeners.iter_mut().zip(ls) {
                rl.push((l, id));
            }
        } else {
            listeners.push(acceptor::Listening { listener: ls.remove(0), port: id, tls: SecureChannel::None });
        }
    }
    let io_ports: Vec<IoPort> = ports
        .iter()
        .filter(|p| !p.discovery_only)
        .map(|p| IoPort { addr: p.addr, id: p.id as u16, tls: p.tls })
        .collect();
    let (shared, opened) = build_shared(opts, &io_ports, &iscsi_addrs)?;
    let limits = *shared.target.limits();

    let stop = Arc::new(AtomicBool::new(false));
    let (released_tx, released_rx) = std::sync::mpsc::channel();
    let mut inboxes = Vec::new();
    let mut sock_backends = Vec::new();
    let mut stats = Vec::new();
    let mut threads = Vec::new();
    let mut group = opts.sock.clone();
    // Each command may have an R2T, a C2HData and a response queued at once.
    group.write_queue_depth = group.write_queue_depth.max(3 * limits.max_queue_depth as usize + 16);
    for (i, own) in reactor_listeners.into_iter().enumerate() {
        // A reactor is built on its own thread: its socket group and device handles never cross threads.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (g, mode, sh, rel) = (group.clone(), opts.poll, shared.clone(), released_tx.clone());
        let max_conn = (limits.max_connections as usize).div_ceil(opts.cores);
        threads.push(std::thread::Builder::new().name(format!("ff-reactor-{i}")).spawn(move || match Reactor::new(
            i, g, mode, sh, rel, own, max_conn,
        ) {
            Ok((r, inbox)) => {
                let _ = tx.send(Ok((inbox, r.backend(), r.stats_sink())));
                r.run();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?);
        let (inbox, backend, sink) = rx.recv().context("reactor thread died")?.context("creating a reactor")?;
        inboxes.push(inbox);
        sock_backends.push(backend);
        stats.push(sink);
    }
    let listen_ctl = if per_reactor {
        mgmt::ListenCtl::Reactors
    } else {
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
        let placer = Placer::new(opts.placement, opts.cores);
        let acc_inboxes = inboxes.clone();
        let acc_stop = stop.clone();
        let sock_opts = opts.sock.sock.clone();
        let max_conn = limits.max_connections as usize;
        let handshaker = tls::Handshaker::new(shared.psks.clone(), opts.tls.clone());
        threads.push(std::thread::Builder::new().name("ff-acceptor".into()).spawn(move || {
            acceptor::run(
                listeners,
                Some(handshaker),
                cmd_rx,
                placer,
                acc_inboxes,
                released_rx,
                sock_opts,
                max_conn,
                acc_stop,
            )
        })?);
        mgmt::ListenCtl::Acceptor(cmd_tx)
    };
    let addrs = |t: SecureChannel| io_ports.iter().filter(|p| p.tls == t).map(|p| p.addr).collect();
    let (io_addrs, tls_addrs, tls_optional_addrs) =
        (addrs(SecureChannel::None), addrs(SecureChannel::Required), addrs(SecureChannel::Optional));
    let discovery_addrs = ports.iter().filter(|p| p.discovery_only).map(|p| p.addr).collect();
    let manager =
        Arc::new(Manager::new(opts.clone(), shared, opened, ports, inboxes.clone(), stats.clone(), listen_ctl));
    Ok(RunningTarget {
        stop,
        inboxes,
        threads,
        io_addrs,
        tls_addrs,
        tls_optional_addrs,
        discovery_addrs,
        iscsi_addrs,
        iqns: opts.iscsi_targets.iter().map(|t| t.name.clone()).collect(),
        nqns: opts.subsystems.iter().map(|s| s.nqn.clone()).collect(),
        sock_backends,
        stats,
        manager,
    })
}
