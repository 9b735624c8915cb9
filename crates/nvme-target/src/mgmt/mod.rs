//! Management of a running target: the [`Manager`] owns the running configuration and applies every
//! change to the controller core (which raises the hosts' asynchronous events), to the namespace
//! backends the reactors share, and to the listeners (through the acceptor's or the reactors' inboxes).
//! It answers the RPC methods ([`ff_rpc::Handler`], names and parameters after SPDK's `rpc.py`), reloads
//! a configuration file (SIGHUP) by applying the difference, and writes the running configuration
//! back as TOML.
//!
//! One change runs at a time (a lock held per method); reactors never take it. Here: the operations on
//! subsystems, namespaces and hosts, and the stats; `listen`: listening addresses; `reload`: applying a
//! configuration file's difference, writing one; `rpc`: the methods' parameters and answers.

mod listen;
mod reload;
mod rpc;

pub(crate) use listen::{ListenCtl, PortEntry, bind_listeners};
pub use reload::ReloadReport;
use reload::write_atomically;
pub use rpc::METHODS;

use crate::acceptor::ListenCmd;
use crate::config::{HostAuthSpec, NamespaceSpec, SubsystemSpec, TargetOptions};
use crate::reactor::{Inbox, Mgmt, ReactorStats};
use crate::shared::{NsBackend, Shared};
use crate::{OpenedDevs, subsystem_config};
use ff_blockdev::{BackendKind, BackendSpec, BlockDevFactory, parse_size};
use ff_nvmf::{ConfigError, DISCOVERY_NQN, Namespace, NamespaceConfig};
use ff_rpc::params::{self, parse};
use ff_rpc::protocol::code;
use ff_rpc::{Handler, RpcError};
use ff_sock::Listener;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the manager changes, under its lock.
struct State {
    /// The running configuration (what `save_config` writes).
    opts: TargetOptions,
    /// Opened backends by (NQN, nsid).
    devs: OpenedDevs,
    /// Listening addresses.
    ports: Vec<PortEntry>,
    /// The next port id.
    next_port: usize,
    /// The configuration file the target started from (`save_config` and `load_config` default).
    config_path: Option<PathBuf>,
}

/// Management of a running target; see the module docs.
pub struct Manager {
    shared: Arc<Shared>,
    inboxes: Vec<Inbox>,
    stats: Vec<Arc<Mutex<ReactorStats>>>,
    listen: ListenCtl,
    state: Mutex<State>,
    started: Instant,
}

/// One namespace's device counters, summed over the reactors.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NamespaceStats {
    /// Subsystem NQN.
    pub nqn: String,
    /// Namespace ID.
    pub nsid: u32,
    /// Requests the backend completed.
    pub device: ff_blockdev::DevStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The RPC error for a controller-core refusal, naming `field` where the core does not.
fn core_error(e: ConfigError, field: &str) -> RpcError {
    match e {
        ConfigError::DuplicateSubsystem(n) => RpcError::exists(format!("subsystem {n}")),
        ConfigError::NoSubsystem(n) => RpcError::not_found(format!("subsystem {n}")),
        ConfigError::NoNamespace(n) => RpcError::not_found(format!("namespace {n}")),
        ConfigError::NoController(c) => RpcError::not_found(format!("controller {c}")),
        ConfigError::BadId { field: f, .. } => {
            RpcError::invalid_param(&format!("namespace.{}", f.split('/').next().unwrap_or(f)), e.to_string())
        }
        ConfigError::BadText(what) => RpcError::invalid_param(
            match what {
                "serial" => "serial_number",
                "model" => "model_number",
                o => o,
            },
            e.to_string(),
        ),
        ConfigError::BadLimit(_) => RpcError::invalid_param("max_namespaces", e.to_string()),
        other => RpcError::invalid_param(field, other.to_string()),
    }
}

/// A serial number derived from the NQN (20 characters at most), so subsystems differ by default.
fn derived_serial(nqn: &str) -> String {
    // FNV-1a: stable across runs and builds (the std hasher is not).
    let h = nqn.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("FF{h:016X}")
}

impl Manager {
    pub(crate) fn new(
        mut opts: TargetOptions,
        shared: Arc<Shared>,
        devs: OpenedDevs,
        ports: Vec<PortEntry>,
        inboxes: Vec<Inbox>,
        stats: Vec<Arc<Mutex<ReactorStats>>>,
        listen: ListenCtl,
    ) -> Manager {
        // The running configuration names the bound addresses (port 0 resolved): a saved configuration
        // brings the target back where the hosts knew it.
        opts.listen = ports.iter().filter(|p| !p.discovery_only).map(|p| p.addr).collect();
        opts.discovery_listen = ports.iter().filter(|p| p.discovery_only).map(|p| p.addr).collect();
        let next_port = ports.iter().map(|p| p.id).max().unwrap_or(0) + 1;
        Manager {
            shared,
            inboxes,
            stats,
            listen,
            state: Mutex::new(State { opts, devs, ports, next_port, config_path: None }),
            started: Instant::now(),
        }
    }

    /// Names the configuration file the target started from: `save_config` and `load_config` use it
    /// when given no path.
    pub fn set_config_path(&self, path: Option<PathBuf>) {
        lock(&self.state).config_path = path;
    }

    /// The running configuration.
    pub fn running_config(&self) -> TargetOptions {
        lock(&self.state).opts.clone()
    }

    /// Re-reads `path` (or the configuration file the target started from) and applies the difference
    /// with the running configuration, as the RPC methods would.
    pub fn reload(&self, path: Option<&Path>) -> anyhow::Result<ReloadReport> {
        use anyhow::Context;
        let mut st = lock(&self.state);
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                st.config_path.clone().context("no configuration file to read (the target started without --config)")?
            }
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let new = TargetOptions::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?;
        new.validate()?;
        Ok(self.apply(&mut st, &new))
    }

    fn subsystem<'s>(st: &'s State, nqn: &str) -> Result<&'s SubsystemSpec, RpcError> {
        st.opts.subsystems.iter().find(|s| s.nqn == nqn).ok_or_else(|| RpcError::not_found(format!("subsystem {nqn}")))
    }

    fn subsystem_mut<'s>(st: &'s mut State, nqn: &str) -> Result<&'s mut SubsystemSpec, RpcError> {
        st.opts
            .subsystems
            .iter_mut()
            .find(|s| s.nqn == nqn)
            .ok_or_else(|| RpcError::not_found(format!("subsystem {nqn}")))
    }

    /// Creates subsystem `spec` with its hosts and namespaces; on any failure nothing stays.
    fn create_subsystem(&self, st: &mut State, spec: &SubsystemSpec) -> Result<(), RpcError> {
        params::nqn("nqn", &spec.nqn)?;
        if spec.nqn == DISCOVERY_NQN {
            return Err(RpcError::invalid_param("nqn", "the discovery subsystem is built in"));
        }
        if Self::subsystem(st, &spec.nqn).is_ok() {
            return Err(RpcError::exists(format!("subsystem {}", spec.nqn)));
        }
        for h in &spec.hosts {
            params::nqn("hosts", h)?;
        }
        let bare = SubsystemSpec { namespaces: Vec::new(), ..spec.clone() };
        self.shared
            .target
            .add_subsystem(subsystem_config(&bare, &st.opts.auth, Vec::new()))
            .map_err(|e| core_error(e, "nqn"))?;
        st.opts.subsystems.push(bare);
        tracing::info!(nqn = %spec.nqn, "management: subsystem created");
        for ns in &spec.namespaces {
            if let Err(e) = self.add_namespace(st, &spec.nqn, ns.clone()) {
                let _ = self.delete_subsystem(st, &spec.nqn);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes subsystem `nqn`: its controllers are disconnected, its namespaces' handles close once
    /// their requests completed.
    fn delete_subsystem(&self, st: &mut State, nqn: &str) -> Result<(), RpcError> {
        Self::subsystem(st, nqn)?;
        self.shared.target.remove_subsystem(nqn).map_err(|e| core_error(e, "nqn"))?;
        self.shared.remove(nqn);
        self.shared.psks.remove_subsystem(nqn);
        st.devs.retain(|(n, _), _| n != nqn);
        st.opts.subsystems.retain(|s| s.nqn != nqn);
        tracing::info!(%nqn, "management: subsystem deleted");
        Ok(())
    }

    /// Adds namespace `ns` to subsystem `nqn` (nsid 0: the lowest free one); returns its nsid.
    fn add_namespace(&self, st: &mut State, nqn: &str, mut ns: NamespaceSpec) -> Result<u32, RpcError> {
        let sub = Self::subsystem(st, nqn)?;
        let max = if sub.max_namespaces == 0 {
            self.shared.target.limits().max_namespaces
        } else {
            sub.max_namespaces.min(self.shared.target.limits().max_namespaces)
        };
        let used: BTreeSet<u32> = sub.namespaces.iter().map(|n| n.nsid).collect();
        if ns.nsid == 0 {
            ns.nsid = (1..=max)
                .find(|i| !used.contains(i))
                .ok_or_else(|| RpcError::new(code::FAILED, format!("subsystem {nqn} has all {max} namespaces")))?;
        } else if ns.nsid > max {
            return Err(RpcError::invalid_param(
                "namespace.nsid",
                format!("{} is above the subsystem's {max}", ns.nsid),
            ));
        } else if used.contains(&ns.nsid) {
            return Err(RpcError::exists(format!("namespace {} of {nqn}", ns.nsid)));
        }
        if let BackendKind::File(p) = &ns.backend.kind {
            let user = st.opts.subsystems.iter().find_map(|s| {
                s.namespaces.iter().find(|n| n.backend.kind == ns.backend.kind).map(|n| (s.nqn.clone(), n.nsid))
            });
            if let Some((other, nsid)) = user {
                return Err(RpcError::in_use(format!("{} backs namespace {nsid} of {other}", p.display()))
                    .with_data(json!({ "field": "namespace.backend" })));
            }
        }
        // Identifiers are checked before the backend is opened (which may create a file).
        let limits = ff_nvmf::Limits { max_namespaces: max, ..*self.shared.target.limits() };
        let probe = NamespaceConfig {
            nsid: ns.nsid,
            block_size: ns.backend.block_size.unwrap_or(512),
            blocks: 1,
            nguid: ns.nguid.clone(),
            uuid: ns.uuid.clone(),
            volatile_write_cache: false,
            supports_deallocate: false,
            supports_write_zeroes: false,
        };
        let probed = Namespace::from_config(nqn, &probe, &limits).map_err(|e| match e {
            ConfigError::BadGeometry(_) => RpcError::invalid_param("namespace.block_size", "512 or 4096"),
            e => core_error(e, "namespace"),
        })?;
        for s in self.shared.target.subsystems() {
            for n in &s.namespaces {
                let Ok(other) = Namespace::from_config(&s.nqn, n, self.shared.target.limits()) else { continue };
                if ns.uuid.is_some() && other.uuid == probed.uuid {
                    return Err(RpcError::exists(format!("uuid of namespace {} of {}", n.nsid, s.nqn))
                        .with_data(json!({ "field": "namespace.uuid" })));
                }
                if ns.nguid.is_some() && other.nguid == probed.nguid {
                    return Err(RpcError::exists(format!("nguid of namespace {} of {}", n.nsid, s.nqn))
                        .with_data(json!({ "field": "namespace.nguid" })));
                }
            }
        }
        let dev = ff_blockdev::open(&ns.backend).map_err(|e| {
            RpcError::new(code::FAILED, format!("opening {}: {e}", ns.backend.kind))
                .with_data(json!({ "field": "namespace.backend" }))
        })?;
        let info = dev.info();
        let cfg = crate::namespace_config(&ns, &info);
        let dev = Arc::new(dev);
        let factory: Arc<dyn BlockDevFactory> = dev.clone();
        let index = self.shared.alloc_index();
        let nsid = ns.nsid;
        // The backend is in place before the hosts hear of the namespace.
        self.shared.update(nqn, |b| {
            b.by_nsid.insert(nsid, Arc::new(NsBackend { index, factory, info }));
        });
        if let Err(e) = self.shared.target.add_namespace(nqn, cfg) {
            self.shared.update(nqn, |b| {
                b.by_nsid.remove(&nsid);
            });
            return Err(core_error(e, "namespace"));
        }
        st.devs.insert((nqn.to_string(), nsid), dev);
        let sub = Self::subsystem_mut(st, nqn)?;
        sub.namespaces.push(ns);
        sub.namespaces.sort_by_key(|n| n.nsid);
        tracing::info!(%nqn, nsid, blocks = info.num_blocks, block_size = info.block_size, "management: namespace added");
        Ok(nsid)
    }

    /// Removes a namespace: the hosts get Invalid Namespace for new commands, requests in flight
    /// complete, and the handles close after them.
    fn remove_namespace(&self, st: &mut State, nqn: &str, nsid: u32) -> Result<(), RpcError> {
        let sub = Self::subsystem(st, nqn)?;
        if !sub.namespaces.iter().any(|n| n.nsid == nsid) {
            return Err(RpcError::not_found(format!("namespace {nsid} of {nqn}")));
        }
        self.shared.target.remove_namespace(nqn, nsid).map_err(|e| core_error(e, "nsid"))?;
        self.shared.update(nqn, |b| {
            b.by_nsid.remove(&nsid);
        });
        st.devs.remove(&(nqn.to_string(), nsid));
        Self::subsystem_mut(st, nqn)?.namespaces.retain(|n| n.nsid != nsid);
        tracing::info!(%nqn, nsid, "management: namespace removed");
        Ok(())
    }

    /// Resizes a namespace to `size` bytes; returns its new block count.
    fn resize_namespace(&self, st: &mut State, nqn: &str, nsid: u32, size: u64) -> Result<u64, RpcError> {
        let key = (nqn.to_string(), nsid);
        let sub = Self::subsystem(st, nqn)?;
        if !sub.namespaces.iter().any(|n| n.nsid == nsid) {
            return Err(RpcError::not_found(format!("namespace {nsid} of {nqn}")));
        }
        let old =
            st.devs.get(&key).cloned().ok_or_else(|| RpcError::not_found(format!("namespace {nsid} of {nqn}")))?;
        let new = old.resized(size).map_err(|e| RpcError::invalid_param("size", e))?;
        let (old_blocks, info) = (old.info().num_blocks, new.info());
        if info.num_blocks == old_blocks {
            return Ok(old_blocks);
        }
        let new = Arc::new(new);
        let factory: Arc<dyn BlockDevFactory> = new.clone();
        let index = self.shared.alloc_index();
        let backend = Arc::new(NsBackend { index, factory, info });
        let prev = self.shared.backends(nqn).and_then(|b| b.by_nsid.get(&nsid).cloned());
        let swap_backend = |to: Option<Arc<NsBackend>>| {
            self.shared.update(nqn, |b| {
                if let Some(to) = to {
                    b.by_nsid.insert(nsid, to);
                }
            })
        };
        // Hosts never see blocks the backend does not have: grow the backend first, shrink it last.
        let grow = info.num_blocks > old_blocks;
        if grow {
            swap_backend(Some(backend.clone()));
        }
        let core = self.shared.target.resize_namespace(nqn, nsid, info.num_blocks).map_err(|e| core_error(e, "size"));
        match (grow, core.is_ok()) {
            (false, true) => swap_backend(Some(backend)),
            (true, false) => swap_backend(prev),
            _ => {}
        }
        core?;
        st.devs.insert(key, new);
        if let Some(ns) = Self::subsystem_mut(st, nqn)?.namespaces.iter_mut().find(|n| n.nsid == nsid) {
            ns.backend.size = Some(info.num_blocks * u64::from(info.block_size));
        }
        tracing::info!(%nqn, nsid, blocks = info.num_blocks, "management: namespace resized");
        Ok(info.num_blocks)
    }

    fn add_host(&self, st: &mut State, nqn: &str, host: &str) -> Result<(), RpcError> {
        params::nqn("host", host)?;
        Self::subsystem(st, nqn)?;
        self.shared.target.allow_host(nqn, host).map_err(|e| core_error(e, "host"))?;
        let sub = Self::subsystem_mut(st, nqn)?;
        if !sub.hosts.iter().any(|h| h == host) {
            sub.hosts.push(host.to_string());
        }
        Ok(())
    }

    /// Sets (or with `None`, clears) the DH-HMAC-CHAP secrets `host` must authenticate with on
    /// subsystem `nqn`; a host with secrets is also allowed to connect.
    fn set_host_auth(&self, st: &mut State, nqn: &str, host: &str, auth: Option<HostAuthSpec>) -> Result<(), RpcError> {
        params::nqn("host", host)?;
        Self::subsystem(st, nqn)?;
        if let Some(a) = &auth {
            let field = if a.psk.is_some() && a.tls_psk().is_err() { "psk" } else { "dhchap_key" };
            a.validate().map_err(|e| RpcError::invalid_param(field, format!("{e:#}")))?;
        }
        self.shared
            .target
            .set_host_dhchap(nqn, auth.as_ref().and_then(HostAuthSpec::to_core), host)
            .map_err(|e| core_error(e, "dhchap_key"))?;
        let psk = auth.as_ref().and_then(|a| a.tls_psk().ok().flatten());
        self.shared.psks.set(nqn, host, psk);
        let sub = Self::subsystem_mut(st, nqn)?;
        sub.auth_hosts.retain(|h| h.nqn != host);
        if let Some(a) = auth {
            tracing::info!(%nqn, %host, dhchap = a.dhchap_key.is_some(), tls_psk = a.psk.is_some(), "management: host secrets set");
            sub.auth_hosts.push(a);
        }
        Ok(())
    }

    fn remove_host(&self, st: &mut State, nqn: &str, host: &str) -> Result<Vec<u16>, RpcError> {
        Self::subsystem(st, nqn)?;
        let gone = self.shared.target.disallow_host(nqn, host).map_err(|e| core_error(e, "host"))?;
        if Self::subsystem(st, nqn)?.auth_hosts.iter().any(|h| h.nqn == host) {
            self.set_host_auth(st, nqn, host, None)?;
        }
        Self::subsystem_mut(st, nqn)?.hosts.retain(|h| h != host);
        if !gone.is_empty() {
            tracing::info!(%nqn, %host, controllers = ?gone, "management: host removed, its controllers disconnected");
        }
        Ok(gone)
    }

    fn set_allow_any_host(&self, st: &mut State, nqn: &str, any: bool) -> Result<(), RpcError> {
        Self::subsystem(st, nqn)?;
        self.shared.target.set_allow_any_host(nqn, any).map_err(|e| core_error(e, "nqn"))?;
        Self::subsystem_mut(st, nqn)?.allow_any_host = any;
        Ok(())
    }

    /// Each reactor's counters as last published (every 100 ms).
    pub fn reactor_stats(&self) -> Vec<ReactorStats> {
        self.stats.iter().map(|s| lock(s).clone()).collect()
    }

    /// Device counters of each namespace, summed over the reactors.
    pub fn namespace_stats(&self) -> Vec<NamespaceStats> {
        let names = self.shared.indexes();
        let mut out: Vec<NamespaceStats> = names
            .iter()
            .map(|(nqn, nsid, _)| NamespaceStats { nqn: nqn.clone(), nsid: *nsid, device: Default::default() })
            .collect();
        for r in self.reactor_stats() {
            for (idx, d) in r.devs.iter().enumerate() {
                let (Some(d), Some(pos)) = (d, names.iter().position(|(_, _, x)| *x == idx)) else { continue };
                let t = &mut out[pos].device;
                t.reads += d.reads;
                t.writes += d.writes;
                t.flushes += d.flushes;
                t.fsyncs += d.fsyncs;
                t.dsync_writes += d.dsync_writes;
                t.write_zeroes += d.write_zeroes;
                t.zero_fill_bytes += d.zero_fill_bytes;
                t.deallocates += d.deallocates;
                t.errors += d.errors;
                t.uring_ios += d.uring_ios;
                t.uring_sqes += d.uring_sqes;
                t.short_ios += d.short_ios;
                t.uring_fixed_sqes += d.uring_fixed_sqes;
            }
        }
        out
    }

    /// Live controllers (admin queues connected), discovery ones included.
    pub fn controller_count(&self) -> usize {
        self.shared.target.controller_count()
    }

    /// How long the target has served.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
