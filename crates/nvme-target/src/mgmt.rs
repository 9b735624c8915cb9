//! Management of a running target: the [`Manager`] owns the running configuration and applies every
//! change to the controller core (which raises the hosts' asynchronous events), to the namespace
//! backends the reactors share, and to the listeners (through the acceptor's or the reactors' inboxes).
//! It answers the RPC methods ([`ff_rpc::Handler`], names and parameters after SPDK's `rpc.py`), reloads
//! a configuration file (SIGHUP) by applying the difference, and writes the running configuration
//! back as TOML.
//!
//! One change runs at a time (a lock held per method); reactors never take it.

use crate::acceptor::ListenCmd;
use crate::config::{NamespaceSpec, SubsystemSpec, TargetOptions};
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

/// Backlog of an I/O listener.
const IO_BACKLOG: i32 = 1024;
/// Backlog of a discovery-only listener.
const DISCOVERY_BACKLOG: i32 = 128;
/// How long a listener removal waits for the acceptor to close it.
const LISTENER_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The methods [`Manager`] answers, for `rpc_get_methods`.
pub const METHODS: &[&str] = &[
    "rpc_get_methods",
    "ferrofabric_get_version",
    "framework_get_config",
    "save_config",
    "load_config",
    "nvmf_get_subsystems",
    "nvmf_create_subsystem",
    "nvmf_delete_subsystem",
    "nvmf_subsystem_add_ns",
    "nvmf_subsystem_remove_ns",
    "nvmf_subsystem_resize_ns",
    "nvmf_subsystem_add_host",
    "nvmf_subsystem_remove_host",
    "nvmf_subsystem_allow_any_host",
    "nvmf_get_listeners",
    "nvmf_add_listener",
    "nvmf_remove_listener",
    "nvmf_subsystem_add_listener",
    "nvmf_subsystem_get_controllers",
    "nvmf_disconnect_controller",
    "nvmf_get_stats",
];

/// One listening address of the target.
#[derive(Clone, Debug)]
pub(crate) struct PortEntry {
    /// Port id (the discovery log's PORTID for I/O listeners).
    pub id: usize,
    /// The address as configured (its port may be 0).
    pub conf: SocketAddr,
    /// The bound address.
    pub addr: SocketAddr,
    /// Serves discovery only (not listed in the discovery log).
    pub discovery_only: bool,
}

/// Who accepts on the listeners, so management knows where to send them.
pub(crate) enum ListenCtl {
    /// The acceptor thread.
    Acceptor(Sender<ListenCmd>),
    /// Each reactor on its own SO_REUSEPORT listener.
    Reactors,
}

/// Binds `n` listeners on `addr` (more than one: SO_REUSEPORT, one per reactor; the first resolves
/// port 0 for the others).
pub(crate) fn bind_listeners(addr: SocketAddr, discovery_only: bool, n: usize) -> anyhow::Result<Vec<Listener>> {
    use anyhow::Context;
    let backlog = if discovery_only { DISCOVERY_BACKLOG } else { IO_BACKLOG };
    let reuseport = n > 1;
    let first = Listener::bind_with(addr, backlog, reuseport).with_context(|| format!("listening on {addr}"))?;
    let bound = first.local_addr()?;
    let mut v = vec![first];
    for _ in 1..n {
        v.push(Listener::bind_with(bound, backlog, true).with_context(|| format!("listening on {bound}"))?);
    }
    Ok(v)
}

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

/// What a configuration reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Changes applied, one line each.
    pub applied: Vec<String>,
    /// Differences that only a restart applies (cores, sock options, limits, ...).
    pub need_restart: Vec<String>,
    /// Changes that failed, with why.
    pub failed: Vec<String>,
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

/// A size parameter: bytes, or text with a suffix (`"1G"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeParam {
    Bytes(u64),
    Text(String),
}

impl SizeParam {
    fn bytes(&self, field: &str) -> Result<u64, RpcError> {
        match self {
            SizeParam::Bytes(n) => Ok(*n),
            SizeParam::Text(t) => parse_size(t).map_err(|e| RpcError::invalid_param(field, e)),
        }
    }
}

/// An address parameter as `rpc.py` spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenAddress {
    #[serde(default)]
    trtype: Option<String>,
    #[serde(default)]
    adrfam: Option<String>,
    traddr: String,
    trsvcid: String,
}

impl ListenAddress {
    fn socket_addr(&self) -> Result<SocketAddr, RpcError> {
        if let Some(t) = &self.trtype
            && !t.eq_ignore_ascii_case("tcp")
        {
            return Err(RpcError::invalid_param("listen_address.trtype", format!("{t:?}: only tcp is served")));
        }
        let ip: IpAddr = self.traddr.parse().map_err(|_| {
            RpcError::invalid_param("listen_address.traddr", format!("{:?} is not an IP address", self.traddr))
        })?;
        let port: u16 = self.trsvcid.parse().map_err(|_| {
            RpcError::invalid_param("listen_address.trsvcid", format!("{:?} is not a port number", self.trsvcid))
        })?;
        if let Some(f) = &self.adrfam {
            let ok = match f.to_ascii_lowercase().as_str() {
                "ipv4" => ip.is_ipv4(),
                "ipv6" => ip.is_ipv6(),
                _ => return Err(RpcError::invalid_param("listen_address.adrfam", format!("{f:?}: ipv4 or ipv6"))),
            };
            if !ok {
                return Err(RpcError::invalid_param("listen_address.adrfam", format!("{f} does not match {ip}")));
            }
        }
        Ok(SocketAddr::new(ip, port))
    }
}

fn address_json(a: &SocketAddr) -> Value {
    json!({
        "trtype": "TCP",
        "adrfam": if a.is_ipv4() { "IPv4" } else { "IPv6" },
        "traddr": a.ip().to_string(),
        "trsvcid": a.port().to_string(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NqnParam {
    nqn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSubsystem {
    nqn: String,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    model_number: Option<String>,
    #[serde(default)]
    allow_any_host: bool,
    #[serde(default)]
    max_namespaces: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceParams {
    #[serde(default)]
    nsid: Option<u32>,
    backend: String,
    #[serde(default)]
    size: Option<SizeParam>,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    nguid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNs {
    nqn: String,
    namespace: NamespaceParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NsRef {
    nqn: String,
    nsid: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeNs {
    nqn: String,
    nsid: u32,
    size: SizeParam,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostParam {
    nqn: String,
    host: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowAny {
    nqn: String,
    allow_any_host: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerParam {
    listen_address: ListenAddress,
    #[serde(default)]
    discovery_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsysListener {
    nqn: String,
    listen_address: ListenAddress,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptNqn {
    #[serde(default)]
    nqn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cntlid {
    cntlid: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathParam {
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Writes `text` to `path` atomically: a temporary file in the same folder, synced, renamed over it,
/// and the folder synced (a crash leaves the old file or the new one, never half of one).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

    /// Applies the difference between the running configuration and `new`.
    fn apply(&self, st: &mut State, new: &TargetOptions) -> ReloadReport {
        let mut r = ReloadReport::default();
        let outcome = |r: &mut ReloadReport, what: String, res: Result<(), RpcError>| match res {
            Ok(()) => r.applied.push(what),
            Err(e) => r.failed.push(format!("{what}: {}", e.message)),
        };
        let cur = st.opts.clone();
        // Subsystems gone, or changed in what only a re-creation changes.
        for s in &cur.subsystems {
            let recreate = new
                .subsystems
                .iter()
                .find(|n| n.nqn == s.nqn)
                .map(|n| n.serial != s.serial || n.model != s.model || n.max_namespaces != s.max_namespaces);
            if recreate != Some(false) {
                outcome(&mut r, format!("deleted subsystem {}", s.nqn), self.delete_subsystem(st, &s.nqn));
            }
        }
        for n in &new.subsystems {
            let Some(s) = st.opts.subsystems.iter().find(|s| s.nqn == n.nqn).cloned() else {
                outcome(&mut r, format!("created subsystem {}", n.nqn), self.create_subsystem(st, n));
                continue;
            };
            if s.allow_any_host != n.allow_any_host {
                let res = self.set_allow_any_host(st, &n.nqn, n.allow_any_host);
                outcome(&mut r, format!("{}: allow_any_host = {}", n.nqn, n.allow_any_host), res);
            }
            for h in s.hosts.iter().filter(|h| !n.hosts.contains(h)) {
                outcome(&mut r, format!("{}: removed host {h}", n.nqn), self.remove_host(st, &n.nqn, h).map(|_| ()));
            }
            for h in n.hosts.iter().filter(|h| !s.hosts.contains(h)) {
                outcome(&mut r, format!("{}: added host {h}", n.nqn), self.add_host(st, &n.nqn, h));
            }
            for ns in &s.namespaces {
                let same = n.namespaces.iter().find(|x| x.nsid == ns.nsid);
                let resize = same.filter(|x| {
                    *x != ns
                        && x.backend.kind == ns.backend.kind
                        && x.backend.block_size == ns.backend.block_size
                        && x.uuid == ns.uuid
                        && x.nguid == ns.nguid
                });
                match (same, resize) {
                    (Some(x), Some(_)) => {
                        let size = x.backend.size.unwrap_or(ff_blockdev::DEFAULT_SIZE);
                        let res = self.resize_namespace(st, &n.nqn, ns.nsid, size).map(|_| ());
                        outcome(&mut r, format!("{}: resized namespace {} to {size} bytes", n.nqn, ns.nsid), res);
                    }
                    (Some(x), None) if x == ns => {}
                    _ => {
                        let res = self.remove_namespace(st, &n.nqn, ns.nsid);
                        outcome(&mut r, format!("{}: removed namespace {}", n.nqn, ns.nsid), res);
                    }
                }
            }
            let have: Vec<u32> = st
                .opts
                .subsystems
                .iter()
                .find(|x| x.nqn == n.nqn)
                .map(|x| x.namespaces.iter().map(|ns| ns.nsid).collect())
                .unwrap_or_default();
            for ns in n.namespaces.iter().filter(|ns| !have.contains(&ns.nsid)) {
                let res = self.add_namespace(st, &n.nqn, ns.clone()).map(|_| ());
                outcome(&mut r, format!("{}: added namespace {}", n.nqn, ns.nsid), res);
            }
        }
        // Listeners: by the configured address or the bound one.
        let wanted: Vec<(SocketAddr, bool)> =
            new.listen.iter().map(|a| (*a, false)).chain(new.discovery_listen.iter().map(|a| (*a, true))).collect();
        let matches =
            |p: &PortEntry, (a, d): &(SocketAddr, bool)| p.discovery_only == *d && (p.conf == *a || p.addr == *a);
        let gone: Vec<SocketAddr> =
            st.ports.iter().filter(|p| !wanted.iter().any(|w| matches(p, w))).map(|p| p.addr).collect();
        for a in gone {
            outcome(&mut r, format!("closed listener {a}"), self.remove_listener(st, a).map(|_| ()));
        }
        for w in &wanted {
            if !st.ports.iter().any(|p| matches(p, w)) {
                let res = self.add_listener(st, w.0, w.1).map(|_| ());
                outcome(&mut r, format!("opened listener {}", w.0), res);
            }
        }
        let restart = [
            (cur.cores != new.cores, "cores"),
            (cur.poll != new.poll, "poll"),
            (cur.placement != new.placement, "placement"),
            (cur.accept != new.accept, "accept"),
            (cur.sock != new.sock, "sock"),
            (cur.limits != new.limits, "limits"),
            (cur.c2h_success != new.c2h_success, "c2h_success"),
        ];
        r.need_restart = restart.iter().filter(|(d, _)| *d).map(|(_, n)| n.to_string()).collect();
        r
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
        self.shared.target.add_subsystem(subsystem_config(&bare, Vec::new())).map_err(|e| core_error(e, "nqn"))?;
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

    fn remove_host(&self, st: &mut State, nqn: &str, host: &str) -> Result<Vec<u16>, RpcError> {
        Self::subsystem(st, nqn)?;
        let gone = self.shared.target.disallow_host(nqn, host).map_err(|e| core_error(e, "host"))?;
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

    /// Opens a listener on `addr`; returns the bound address.
    fn add_listener(&self, st: &mut State, addr: SocketAddr, discovery_only: bool) -> Result<SocketAddr, RpcError> {
        if let Some(p) = st.ports.iter().find(|p| p.addr == addr || (addr.port() != 0 && p.conf == addr)) {
            return Err(RpcError::exists(format!("listener {}", p.addr)));
        }
        let n = match self.listen {
            ListenCtl::Acceptor(_) => 1,
            ListenCtl::Reactors => self.inboxes.len(),
        };
        let mut ls = bind_listeners(addr, discovery_only, n).map_err(|e| {
            RpcError::new(code::FAILED, format!("{e:#}")).with_data(json!({ "field": "listen_address" }))
        })?;
        let bound = ls[0].local_addr().map_err(RpcError::failed)?;
        let id = st.next_port;
        st.next_port += 1;
        match &self.listen {
            ListenCtl::Acceptor(tx) => tx
                .send(ListenCmd::Add { listener: ls.remove(0), port: id })
                .map_err(|_| RpcError::failed("the acceptor is gone (the target is stopping)"))?,
            ListenCtl::Reactors => {
                for (inbox, l) in self.inboxes.iter().zip(ls) {
                    let _ = inbox.send(Mgmt::Listen { listener: l, port: id });
                }
            }
        }
        if !discovery_only {
            self.shared.target.add_listener(crate::nvmf_port(bound, id as u16));
            st.opts.listen.push(bound);
        } else {
            st.opts.discovery_listen.push(bound);
        }
        st.ports.push(PortEntry { id, conf: addr, addr: bound, discovery_only });
        tracing::info!(%bound, discovery_only, "management: listening");
        Ok(bound)
    }

    /// Closes the listener on `addr` (the connections it brought stay); returns its bound address.
    fn remove_listener(&self, st: &mut State, addr: SocketAddr) -> Result<SocketAddr, RpcError> {
        let i = st
            .ports
            .iter()
            .position(|p| p.addr == addr || p.conf == addr)
            .ok_or_else(|| RpcError::not_found(format!("listener {addr}")))?;
        let p = st.ports.remove(i);
        match &self.listen {
            ListenCtl::Acceptor(tx) => {
                let (done, closed) = std::sync::mpsc::sync_channel(1);
                if tx.send(ListenCmd::Remove { port: p.id, done }).is_ok() {
                    let _ = closed.recv_timeout(LISTENER_CLOSE_WAIT);
                }
            }
            ListenCtl::Reactors => {
                for inbox in &self.inboxes {
                    let _ = inbox.send(Mgmt::Unlisten { port: p.id });
                }
            }
        }
        if !p.discovery_only {
            self.shared.target.remove_listener(p.id as u16);
        }
        st.opts.listen.retain(|a| *a != p.addr);
        st.opts.discovery_listen.retain(|a| *a != p.addr);
        tracing::info!(addr = %p.addr, "management: listener closed");
        Ok(p.addr)
    }

    fn subsystems_json(&self, st: &State, only: Option<&str>) -> Result<Value, RpcError> {
        if let Some(n) = only
            && n != DISCOVERY_NQN
        {
            Self::subsystem(st, n)?;
        }
        let io_addrs: Vec<Value> =
            st.ports.iter().filter(|p| !p.discovery_only).map(|p| address_json(&p.addr)).collect();
        let mut out = Vec::new();
        if only.is_none_or(|n| n == DISCOVERY_NQN) {
            let all: Vec<Value> = st.ports.iter().map(|p| address_json(&p.addr)).collect();
            out.push(json!({
                "nqn": DISCOVERY_NQN,
                "subtype": "Discovery",
                "listen_addresses": all,
                "allow_any_host": true,
                "hosts": [],
            }));
        }
        let core = self.shared.target.subsystems();
        for s in st.opts.subsystems.iter().filter(|s| only.is_none_or(|n| n == s.nqn)) {
            let live = core.iter().find(|c| c.nqn == s.nqn);
            let namespaces: Vec<Value> = s
                .namespaces
                .iter()
                .map(|n| {
                    let c = live.and_then(|l| l.namespaces.iter().find(|c| c.nsid == n.nsid));
                    json!({
                        "nsid": n.nsid,
                        "backend": n.backend.kind.to_string(),
                        "block_size": c.map(|c| c.block_size),
                        "num_blocks": c.map(|c| c.blocks),
                        "uuid": c.and_then(|c| c.uuid.clone()),
                        "nguid": c.and_then(|c| c.nguid.clone()),
                    })
                })
                .collect();
            out.push(json!({
                "nqn": s.nqn,
                "subtype": "NVMe",
                "listen_addresses": io_addrs,
                "allow_any_host": s.allow_any_host,
                "hosts": s.hosts.iter().map(|h| json!({ "nqn": h })).collect::<Vec<_>>(),
                "serial_number": s.serial,
                "model_number": s.model,
                "max_namespaces": if s.max_namespaces == 0 { self.shared.target.limits().max_namespaces } else { s.max_namespaces },
                "namespaces": namespaces,
            }));
        }
        Ok(Value::Array(out))
    }

    fn controllers_json(&self, st: &State, nqn: Option<&str>) -> Result<Value, RpcError> {
        if let Some(n) = nqn
            && n != DISCOVERY_NQN
        {
            Self::subsystem(st, n)?;
        }
        let mut v: Vec<_> =
            self.shared.target.controllers().into_iter().filter(|c| nqn.is_none_or(|n| c.subnqn == n)).collect();
        v.sort_by_key(|c| c.cntlid);
        Ok(Value::Array(
            v.iter()
                .map(|c| {
                    let h = &c.hostid;
                    let hostid = format!(
                        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]
                    );
                    json!({
                        "cntlid": c.cntlid,
                        "subnqn": c.subnqn,
                        "hostnqn": c.hostnqn,
                        "hostid": hostid,
                        "discovery": c.discovery,
                        "num_io_qpairs": c.io_queues,
                        "live": c.live,
                    })
                })
                .collect(),
        ))
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

    fn stats_json(&self) -> Value {
        let per_io = |syscalls: u64, ios: u64| if ios == 0 { 0.0 } else { syscalls as f64 / ios as f64 };
        let mut reactors = Vec::new();
        let mut connections = Vec::new();
        for (i, s) in self.reactor_stats().iter().enumerate() {
            let g = &s.sock;
            reactors.push(json!({
                "reactor": i,
                "backend": s.backend.map(|b| b.to_string()),
                "connections": s.connections.len(),
                "iops": s.iops,
                "io": s.io,
                "syscalls": g.syscalls(),
                "syscalls_per_io": per_io(g.syscalls(), s.io.total()),
                "events_per_wait": g.events_per_wait(),
                "bytes_parsed_in_place": g.sock.bytes_parsed_in_place,
                "bytes_copied": g.sock.bytes_copied,
                "zc_fallbacks": g.sock.zc_fallbacks,
                "sock": g,
                "ring_device_sqes": s.foreign.sqes,
            }));
            for c in &s.connections {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("reactor".into(), json!(i));
                    m.insert("syscalls_per_io".into(), json!(per_io(c.sock.syscalls(), c.io.total())));
                }
                connections.push(v);
            }
        }
        json!({
            "uptime_s": self.uptime().as_secs_f64(),
            "reactors": reactors,
            "connections": connections,
            "namespaces": self.namespace_stats(),
        })
    }

    fn save(&self, st: &State, path: Option<PathBuf>) -> Result<Value, RpcError> {
        let path = path.or_else(|| st.config_path.clone()).ok_or_else(|| {
            RpcError::invalid_param("path", "the target started without --config: name the file to write")
        })?;
        let text = st.opts.to_toml().map_err(|e| RpcError::new(code::INTERNAL_ERROR, format!("{e:#}")))?;
        write_atomically(&path, &text).map_err(|e| {
            RpcError::new(code::FAILED, format!("writing {}: {e}", path.display()))
                .with_data(json!({ "field": "path" }))
        })?;
        tracing::info!(path = %path.display(), "management: configuration saved");
        Ok(json!({ "path": path }))
    }

    fn dispatch(&self, method: &str, p: Option<Value>) -> Result<Value, RpcError> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        match method {
            "rpc_get_methods" => {
                parse::<NoParams>(p)?;
                Ok(json!(METHODS))
            }
            "ferrofabric_get_version" => {
                parse::<NoParams>(p)?;
                Ok(json!({ "version": env!("CARGO_PKG_VERSION"), "name": "ferrofabric" }))
            }
            "framework_get_config" => {
                parse::<NoParams>(p)?;
                serde_json::to_value(&st.opts).map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))
            }
            "save_config" => {
                let a: PathParam = parse(p)?;
                self.save(st, a.path)
            }
            "load_config" => {
                let a: PathParam = parse(p)?;
                let path = a.path.or_else(|| st.config_path.clone()).ok_or_else(|| {
                    RpcError::invalid_param("path", "the target started without --config: name the file to read")
                })?;
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    RpcError::new(code::FAILED, format!("reading {}: {e}", path.display()))
                        .with_data(json!({ "field": "path" }))
                })?;
                let new = TargetOptions::from_toml(&text)
                    .and_then(|o| o.validate().map(|()| o))
                    .map_err(|e| RpcError::invalid_param("path", format!("{}: {e:#}", path.display())))?;
                let r = self.apply(st, &new);
                Ok(json!({ "applied": r.applied, "need_restart": r.need_restart, "failed": r.failed }))
            }
            "nvmf_get_subsystems" => {
                let a: OptNqn = parse(p)?;
                self.subsystems_json(st, a.nqn.as_deref())
            }
            "nvmf_create_subsystem" => {
                let a: CreateSubsystem = parse(p)?;
                let spec = SubsystemSpec {
                    serial: a.serial_number.unwrap_or_else(|| derived_serial(&a.nqn)),
                    model: a.model_number.unwrap_or_else(|| "ferrofabric".into()),
                    nqn: a.nqn,
                    allow_any_host: a.allow_any_host,
                    hosts: Vec::new(),
                    max_namespaces: a.max_namespaces,
                    namespaces: Vec::new(),
                };
                self.create_subsystem(st, &spec)?;
                Ok(json!(true))
            }
            "nvmf_delete_subsystem" => {
                let a: NqnParam = parse(p)?;
                self.delete_subsystem(st, &a.nqn)?;
                Ok(json!(true))
            }
            "nvmf_subsystem_add_ns" => {
                let a: AddNs = parse(p)?;
                let n = a.namespace;
                let mut backend: BackendSpec =
                    n.backend.parse().map_err(|e| RpcError::invalid_param("namespace.backend", e))?;
                if let Some(s) = &n.size {
                    backend.size = Some(s.bytes("namespace.size")?);
                }
                backend.block_size = n.block_size;
                if n.nsid == Some(0) {
                    return Err(RpcError::invalid_param("namespace.nsid", "namespace ids start at 1"));
                }
                let spec = NamespaceSpec { nsid: n.nsid.unwrap_or(0), backend, uuid: n.uuid, nguid: n.nguid };
                Ok(json!(self.add_namespace(st, &a.nqn, spec)?))
            }
            "nvmf_subsystem_remove_ns" => {
                let a: NsRef = parse(p)?;
                self.remove_namespace(st, &a.nqn, a.nsid)?;
                Ok(json!(true))
            }
            "nvmf_subsystem_resize_ns" => {
                let a: ResizeNs = parse(p)?;
                let size = a.size.bytes("size")?;
                let blocks = self.resize_namespace(st, &a.nqn, a.nsid, size)?;
                Ok(json!({ "num_blocks": blocks }))
            }
            "nvmf_subsystem_add_host" => {
                let a: HostParam = parse(p)?;
                self.add_host(st, &a.nqn, &a.host)?;
                Ok(json!(true))
            }
            "nvmf_subsystem_remove_host" => {
                let a: HostParam = parse(p)?;
                let gone = self.remove_host(st, &a.nqn, &a.host)?;
                Ok(json!({ "disconnected": gone }))
            }
            "nvmf_subsystem_allow_any_host" => {
                let a: AllowAny = parse(p)?;
                self.set_allow_any_host(st, &a.nqn, a.allow_any_host)?;
                Ok(json!(true))
            }
            "nvmf_get_listeners" => {
                parse::<NoParams>(p)?;
                Ok(Value::Array(
                    st.ports
                        .iter()
                        .map(|p| {
                            let mut v = address_json(&p.addr);
                            v["discovery_only"] = json!(p.discovery_only);
                            v["portid"] = json!(p.id);
                            v
                        })
                        .collect(),
                ))
            }
            "nvmf_add_listener" => {
                let a: ListenerParam = parse(p)?;
                let bound = self.add_listener(st, a.listen_address.socket_addr()?, a.discovery_only)?;
                Ok(address_json(&bound))
            }
            "nvmf_remove_listener" => {
                let a: ListenerParam = parse(p)?;
                let addr = self.remove_listener(st, a.listen_address.socket_addr()?)?;
                Ok(address_json(&addr))
            }
            "nvmf_subsystem_add_listener" => {
                // Every subsystem is reachable on every I/O listener: this makes sure the address is one.
                let a: SubsysListener = parse(p)?;
                if a.nqn != DISCOVERY_NQN {
                    Self::subsystem(st, &a.nqn)?;
                }
                let addr = a.listen_address.socket_addr()?;
                match st.ports.iter().find(|p| !p.discovery_only && (p.addr == addr || p.conf == addr)) {
                    Some(p) => Ok(address_json(&p.addr)),
                    None => Ok(address_json(&self.add_listener(st, addr, false)?)),
                }
            }
            "nvmf_subsystem_get_controllers" => {
                let a: OptNqn = parse(p)?;
                self.controllers_json(st, a.nqn.as_deref())
            }
            "nvmf_disconnect_controller" => {
                let a: Cntlid = parse(p)?;
                self.shared.target.disconnect_controller(a.cntlid).map_err(|e| core_error(e, "cntlid"))?;
                Ok(json!(true))
            }
            "nvmf_get_stats" => {
                parse::<NoParams>(p)?;
                Ok(self.stats_json())
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

impl Handler for Manager {
    fn call(&self, method: &str, params: Option<Value>) -> Result<Value, RpcError> {
        let r = self.dispatch(method, params);
        if let Err(e) = &r {
            tracing::debug!(method, code = e.code, "management call refused: {}", e.message);
        }
        r
    }
}
