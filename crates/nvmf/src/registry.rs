//! The target-wide registry shared by every reactor: subsystems and their
//! namespace tables, listeners, live controllers, dynamic controller IDs
//! and the discovery generation counter. Owns Connect validation: a Connect
//! on queue 0 creates a [`TargetController`], a Connect on an I/O queue attaches
//! a [`TargetIoQueue`] to an existing one. A host with a DH-HMAC-CHAP
//! secret on the subsystem gets ATR in the Connect response and a
//! [`crate::auth::QueueAuth`] on the new queue.
//!
//! Only the management path (Connect, queue teardown, admin commands that
//! read target state, configuration changes) takes the mutex; I/O queues
//! read namespaces through a generation-checked snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ff_nvme::nvme::{Cqe, Sqe, fctype, opcode, status};
use tracing::{debug, info, warn};

use crate::auth::{QueueIds as AuthIds, SubsysAuth};
use crate::bytes::u16_at;
use crate::config::{ConfigError, DISCOVERY_NQN, Limits, Namespace, NamespaceConfig, SubsystemConfig, TargetConfig};
use crate::controller::TargetController;
use crate::discovery::{self, Port, TREQ_SECURE_NOT_REQUIRED, TREQ_SQFLOW_DISABLE_OK, Visible};
use crate::io::{IoLimits, NamespaceTable, TargetIoQueue};
use crate::response::{CmdError, failure, success};

/// Lowest and highest dynamic controller IDs.
pub const CNTLID_MIN: u16 = 1;
/// Highest dynamic controller ID (FFF0h and up are reserved).
pub const CNTLID_MAX: u16 = 0xFFEF;
/// Connect data CNTLID asking for a dynamic controller.
pub const CNTLID_DYNAMIC: u16 = 0xFFFF;
/// Size of the Connect command data.
pub const CONNECT_DATA_LEN: usize = 1024;
/// Connect CATTR bit: host disables SQ flow control.
pub const CATTR_DISABLE_SQ_FLOW: u8 = 1 << 2;

/// Byte offsets reported in IPO for Connect Invalid Parameters.
pub mod ipo {
    /// SQE: RECFMT.
    pub const RECFMT: u16 = 40;
    /// SQE: QID.
    pub const QID: u16 = 42;
    /// SQE: SQSIZE.
    pub const SQSIZE: u16 = 44;
    /// SQE: CATTR.
    pub const CATTR: u16 = 46;
    /// SQE: KATO.
    pub const KATO: u16 = 48;
    /// Data: HOSTID.
    pub const HOSTID: u16 = 0;
    /// Data: CNTLID.
    pub const CNTLID: u16 = 16;
    /// Data: SUBNQN.
    pub const SUBNQN: u16 = 256;
    /// Data: HOSTNQN.
    pub const HOSTNQN: u16 = 512;
}

/// Connect Invalid Parameters with IATTR (bit 16: 1 = in the data) and IPO.
pub fn invalid_param(in_data: bool, offset: u16) -> CmdError {
    CmdError {
        status: status::CONNECT_INVALID_PARAMETERS,
        dnr: true,
        dw0: (u32::from(in_data) << 16) | u32::from(offset),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-subsystem state shared with controllers and I/O queues.
#[derive(Debug)]
pub(crate) struct SubsysShared {
    pub serial: String,
    pub model: String,
    pub firmware_rev: String,
    /// Highest namespace ID (Identify NN of its controllers).
    pub max_nsid: u32,
    /// Bumped on every namespace table change.
    pub generation: AtomicU64,
    table: Mutex<Arc<NamespaceTable>>,
}

impl SubsysShared {
    pub fn snapshot(&self) -> Arc<NamespaceTable> {
        Arc::clone(&lock(&self.table))
    }

    fn update(&self, f: impl FnOnce(&mut NamespaceTable)) {
        let mut t = lock(&self.table);
        let mut next = NamespaceTable::clone(&t);
        f(&mut next);
        *t = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Events raised by the management path for a controller's admin queue.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    /// Namespaces changed since the host last read LID 04h.
    pub changed_ns: Vec<u32>,
    /// A namespace attribute notice is waiting to be reported.
    pub ns_pending: bool,
    /// A discovery log change notice is waiting to be reported.
    pub disc_pending: bool,
}

/// Per-controller state shared between its admin queue, its I/O queues and
/// the registry.
#[derive(Debug)]
pub(crate) struct CtrlShared {
    pub cntlid: u16,
    /// Admin queue connected and subsystem still configured.
    pub alive: AtomicBool,
    /// CSTS.RDY set and no shutdown.
    pub ready: AtomicBool,
    /// I/O queues granted by Set Features Number of Queues; 0 = not set.
    pub granted_io_queues: AtomicU32,
    pub notices: Mutex<Notices>,
}

#[derive(Debug)]
struct Subsystem {
    cfg: SubsystemConfig,
    shared: Arc<SubsysShared>,
    /// DH-HMAC-CHAP policy and secrets (kept parsed: Connect needs them).
    auth: SubsysAuth,
}

#[derive(Debug)]
struct CtrlEntry {
    subnqn: String,
    hostnqn: String,
    hostid: [u8; 16],
    discovery: bool,
    shared: Arc<CtrlShared>,
    io_qids: BTreeSet<u16>,
}

/// The mutable target state behind [`Target`]'s mutex.
#[derive(Debug, Default)]
pub struct Registry {
    subsystems: BTreeMap<String, Subsystem>,
    listeners: Vec<Port>,
    controllers: BTreeMap<u16, CtrlEntry>,
    next_cntlid: u16,
    connections: u32,
    genctr: u64,
}

impl Registry {
    fn alloc_cntlid(&mut self) -> Option<u16> {
        let span = u32::from(CNTLID_MAX - CNTLID_MIN) + 1;
        for _ in 0..span {
            let id = self.next_cntlid.clamp(CNTLID_MIN, CNTLID_MAX);
            self.next_cntlid = if id >= CNTLID_MAX { CNTLID_MIN } else { id + 1 };
            if !self.controllers.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Discovery content changed: new generation, tell discovery controllers.
    fn discovery_changed(&mut self) {
        self.genctr = self.genctr.wrapping_add(1);
        for c in self.controllers.values().filter(|c| c.discovery) {
            lock(&c.shared.notices).disc_pending = true;
        }
    }

    fn notify_ns(&self, nqn: &str, nsid: u32) -> Vec<u16> {
        let mut woken = Vec::new();
        for (id, c) in self.controllers.iter().filter(|(_, c)| !c.discovery && c.subnqn == nqn) {
            let mut n = lock(&c.shared.notices);
            // Past 1024 entries the log reports "too many"; keep one more
            // so the overflow stays visible without growing unbounded.
            if !n.changed_ns.contains(&nsid) && n.changed_ns.len() <= 1024 {
                n.changed_ns.push(nsid);
            }
            n.ns_pending = true;
            woken.push(*id);
        }
        woken
    }
}

/// A controller as management sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerInfo {
    /// Controller ID.
    pub cntlid: u16,
    /// Its subsystem.
    pub subnqn: String,
    /// The host's NQN.
    pub hostnqn: String,
    /// The host's identifier.
    pub hostid: [u8; 16],
    /// A discovery controller.
    pub discovery: bool,
    /// I/O queues connected.
    pub io_queues: usize,
    /// Not yet disconnected by management or subsystem removal.
    pub live: bool,
}

/// Result of a Connect command.
#[derive(Debug)]
pub enum Connected {
    /// Admin queue connected: a new controller.
    Admin {
        /// Completion to send.
        cqe: Cqe,
        /// The controller; the admin queue connection owns it.
        controller: Box<TargetController>,
        /// Negotiated queue parameters.
        info: QueueInfo,
    },
    /// I/O queue attached to an existing controller.
    Io {
        /// Completion to send.
        cqe: Cqe,
        /// The queue handle.
        queue: TargetIoQueue,
        /// Negotiated queue parameters.
        info: QueueInfo,
    },
    /// Connect failed; send the completion and expect the host to close.
    Rejected {
        /// Completion to send.
        cqe: Cqe,
    },
}

impl Connected {
    /// The completion to send, whatever the outcome.
    pub fn cqe(&self) -> &Cqe {
        match self {
            Self::Admin { cqe, .. } | Self::Io { cqe, .. } | Self::Rejected { cqe } => cqe,
        }
    }
}

/// Queue parameters fixed by Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Controller ID.
    pub cntlid: u16,
    /// Queue ID.
    pub qid: u16,
    /// Queue entries (SQSIZE + 1).
    pub depth: u32,
    /// SQ flow control disabled by the host: SQHD need not be tracked, and
    /// on NVMe/TCP a read may complete with C2HData SUCCESS instead of a
    /// response capsule.
    pub sq_flow_control_disabled: bool,
}

/// Decoded Connect command data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectData {
    /// Host identifier.
    pub hostid: [u8; 16],
    /// Requested controller ID (FFFFh = dynamic).
    pub cntlid: u16,
    /// Subsystem NQN.
    pub subnqn: String,
    /// Host NQN.
    pub hostnqn: String,
}

impl ConnectData {
    /// Parses the 1024-byte Connect data. NQNs must be NUL-terminated UTF-8; the subsystem NQN must not
    /// be empty. An empty host NQN parses (some hosts send none unless told one): whether it may connect
    /// is the subsystem's host policy.
    pub fn parse(data: &[u8]) -> Result<Self, CmdError> {
        if data.len() < CONNECT_DATA_LEN {
            return Err(CmdError::SGL_LENGTH);
        }
        let mut hostid = [0u8; 16];
        if let Some(h) = data.first_chunk::<16>() {
            hostid = *h;
        }
        let nqn = |off: u16, may_be_empty: bool| -> Result<String, CmdError> {
            let start = usize::from(off);
            let field = data.get(start..start + 256).unwrap_or_default();
            let end = field.iter().position(|&b| b == 0).ok_or(invalid_param(true, off))?;
            let s = std::str::from_utf8(field.get(..end).unwrap_or_default()).map_err(|_| invalid_param(true, off))?;
            if s.is_empty() && !may_be_empty {
                return Err(invalid_param(true, off));
            }
            Ok(s.to_string())
        };
        Ok(Self {
            hostid,
            cntlid: u16_at(data, 16),
            subnqn: nqn(ipo::SUBNQN, false)?,
            hostnqn: nqn(ipo::HOSTNQN, true)?,
        })
    }
}

/// The NVMe-oF target: configuration plus live controllers. Share it as
/// `Arc<Target>` between all reactors.
#[derive(Debug)]
pub struct Target {
    limits: Limits,
    inner: Mutex<Registry>,
}

impl Target {
    /// A target with no subsystems or listeners.
    pub fn new(limits: Limits) -> Result<Arc<Self>, ConfigError> {
        limits.validate()?;
        Ok(Arc::new(Self { limits, inner: Mutex::new(Registry { next_cntlid: CNTLID_MIN, ..Registry::default() }) }))
    }

    /// A target from a whole configuration.
    pub fn from_config(cfg: TargetConfig) -> Result<Arc<Self>, ConfigError> {
        let t = Self::new(cfg.limits)?;
        for s in cfg.subsystems {
            t.add_subsystem(s)?;
        }
        for l in cfg.listeners {
            t.add_listener(l);
        }
        Ok(t)
    }

    /// Limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn auth_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.limits.auth_timeout_ms))
    }

    fn reg(&self) -> MutexGuard<'_, Registry> {
        lock(&self.inner)
    }

    /// Adds a subsystem.
    pub fn add_subsystem(&self, cfg: SubsystemConfig) -> Result<(), ConfigError> {
        let nss = cfg.validate(&self.limits)?;
        let auth = SubsysAuth::from_config(&cfg)?;
        let mut reg = self.reg();
        if reg.subsystems.contains_key(&cfg.nqn) {
            return Err(ConfigError::DuplicateSubsystem(cfg.nqn));
        }
        let table: NamespaceTable = nss.into_iter().map(|n| (n.nsid, n)).collect();
        let shared = Arc::new(SubsysShared {
            serial: cfg.serial.clone(),
            model: cfg.model.clone(),
            firmware_rev: cfg.firmware_rev.clone(),
            max_nsid: cfg.max_nsid(&self.limits),
            generation: AtomicU64::new(0),
            table: Mutex::new(Arc::new(table)),
        });
        info!(nqn = %cfg.nqn, "subsystem added");
        reg.subsystems.insert(cfg.nqn.clone(), Subsystem { cfg, shared, auth });
        reg.discovery_changed();
        Ok(())
    }

    /// Removes a subsystem; its controllers are marked dead (their queues
    /// see `controller_live() == false` and should be closed).
    pub fn remove_subsystem(&self, nqn: &str) -> Result<(), ConfigError> {
        let mut reg = self.reg();
        reg.subsystems.remove(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        for c in reg.controllers.values().filter(|c| c.subnqn == nqn) {
            c.shared.alive.store(false, Ordering::Release);
        }
        reg.discovery_changed();
        Ok(())
    }

    /// Adds a namespace to a live subsystem; returns the controllers that
    /// now hold a Namespace Attribute Changed notice (poll their
    /// [`TargetController::poll_async`]).
    pub fn add_namespace(&self, nqn: &str, ns: NamespaceConfig) -> Result<Vec<u16>, ConfigError> {
        let reg = self.reg();
        let sub = reg.subsystems.get(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        let n = Namespace::from_config(nqn, &ns, &Limits { max_namespaces: sub.shared.max_nsid, ..self.limits })?;
        if sub.shared.snapshot().contains_key(&n.nsid) {
            return Err(ConfigError::BadNsid(n.nsid));
        }
        let nsid = n.nsid;
        sub.shared.update(|t| {
            t.insert(nsid, n);
        });
        Ok(reg.notify_ns(nqn, nsid))
    }

    /// Removes a namespace; returns the controllers notified.
    pub fn remove_namespace(&self, nqn: &str, nsid: u32) -> Result<Vec<u16>, ConfigError> {
        self.change_namespace(nqn, nsid, |t| {
            t.remove(&nsid);
        })
    }

    /// Changes a namespace's capacity; returns the controllers notified.
    pub fn resize_namespace(&self, nqn: &str, nsid: u32, blocks: u64) -> Result<Vec<u16>, ConfigError> {
        if blocks == 0 {
            return Err(ConfigError::BadGeometry(nsid));
        }
        self.change_namespace(nqn, nsid, |t| {
            if let Some(n) = t.get_mut(&nsid) {
                n.blocks = blocks;
            }
        })
    }

    /// Marks a namespace ready or not (not ready → I/O fails with the
    /// retryable Namespace Not Ready). No notice is raised.
    pub fn set_namespace_ready(&self, nqn: &str, nsid: u32, ready: bool) -> Result<(), ConfigError> {
        let reg = self.reg();
        let sub = reg.subsystems.get(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        if !sub.shared.snapshot().contains_key(&nsid) {
            return Err(ConfigError::NoNamespace(nsid));
        }
        sub.shared.update(|t| {
            if let Some(n) = t.get_mut(&nsid) {
                n.ready = ready;
            }
        });
        Ok(())
    }

    fn change_namespace(
        &self,
        nqn: &str,
        nsid: u32,
        f: impl FnOnce(&mut NamespaceTable),
    ) -> Result<Vec<u16>, ConfigError> {
        let reg = self.reg();
        let sub = reg.subsystems.get(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        if !sub.shared.snapshot().contains_key(&nsid) {
            return Err(ConfigError::NoNamespace(nsid));
        }
        sub.shared.update(f);
        Ok(reg.notify_ns(nqn, nsid))
    }

    /// Adds a port the target listens on (appears in the discovery log).
    pub fn add_listener(&self, l: Port) {
        let mut reg = self.reg();
        if !reg.listeners.contains(&l) {
            reg.listeners.push(l);
            reg.discovery_changed();
        }
    }

    /// Removes every listener with `portid`.
    pub fn remove_listener(&self, portid: u16) {
        let mut reg = self.reg();
        let before = reg.listeners.len();
        reg.listeners.retain(|l| l.portid != portid);
        if reg.listeners.len() != before {
            reg.discovery_changed();
        }
    }

    /// Adds `hostnqn` to a subsystem's allowed hosts.
    pub fn allow_host(&self, nqn: &str, hostnqn: &str) -> Result<(), ConfigError> {
        crate::config::validate_nqn(hostnqn)?;
        let mut reg = self.reg();
        let sub = reg.subsystems.get_mut(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        if !sub.cfg.hosts.iter().any(|h| h == hostnqn) {
            sub.cfg.hosts.push(hostnqn.to_string());
            reg.discovery_changed();
        }
        Ok(())
    }

    /// Sets the DH-HMAC-CHAP secrets `hostnqn` must authenticate with on subsystem `nqn`, or with
    /// `None` lets it connect without authentication again. Queues already connected keep their
    /// state; the next Connect (or re-authentication's new queue) uses the new secrets.
    pub fn set_host_dhchap(
        &self,
        nqn: &str,
        host: Option<crate::config::DhchapHost>,
        hostnqn: &str,
    ) -> Result<(), ConfigError> {
        crate::config::validate_nqn(hostnqn)?;
        let creds = host.as_ref().map(crate::config::DhchapHost::credentials).transpose()?;
        let mut reg = self.reg();
        let sub = reg.subsystems.get_mut(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        sub.auth.set_host(hostnqn, creds);
        sub.cfg.dhchap.retain(|h| h.hostnqn != hostnqn);
        if let Some(h) = host {
            sub.cfg.dhchap.push(h);
        }
        Ok(())
    }

    /// Takes `hostnqn` off a subsystem's allowed hosts and disconnects its controllers there (their
    /// queues see `controller_live() == false` and close). Unknown hosts are not an error.
    pub fn disallow_host(&self, nqn: &str, hostnqn: &str) -> Result<Vec<u16>, ConfigError> {
        let mut reg = self.reg();
        let sub = reg.subsystems.get_mut(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        sub.cfg.hosts.retain(|h| h != hostnqn);
        let any = sub.cfg.allow_any_host;
        let mut gone = Vec::new();
        if !any {
            for (id, c) in reg.controllers.iter().filter(|(_, c)| c.subnqn == nqn && c.hostnqn == hostnqn) {
                c.shared.alive.store(false, Ordering::Release);
                gone.push(*id);
            }
        }
        reg.discovery_changed();
        Ok(gone)
    }

    /// Opens a subsystem to any host, or back to its allow-list (connected hosts stay connected).
    pub fn set_allow_any_host(&self, nqn: &str, any: bool) -> Result<(), ConfigError> {
        let mut reg = self.reg();
        let sub = reg.subsystems.get_mut(nqn).ok_or_else(|| ConfigError::NoSubsystem(nqn.to_string()))?;
        if sub.cfg.allow_any_host != any {
            sub.cfg.allow_any_host = any;
            reg.discovery_changed();
        }
        Ok(())
    }

    /// Disconnects controller `cntlid`: its queues see `controller_live() == false` and close.
    pub fn disconnect_controller(&self, cntlid: u16) -> Result<(), ConfigError> {
        let reg = self.reg();
        let c = reg.controllers.get(&cntlid).ok_or(ConfigError::NoController(cntlid))?;
        c.shared.alive.store(false, Ordering::Release);
        Ok(())
    }

    /// Every subsystem as configured now, namespaces included, by NQN.
    pub fn subsystems(&self) -> Vec<SubsystemConfig> {
        let reg = self.reg();
        reg.subsystems
            .values()
            .map(|s| {
                let mut cfg = s.cfg.clone();
                cfg.namespaces = s.shared.snapshot().values().map(Namespace::to_config).collect();
                cfg
            })
            .collect()
    }

    /// Every live controller.
    pub fn controllers(&self) -> Vec<ControllerInfo> {
        let reg = self.reg();
        reg.controllers
            .iter()
            .map(|(id, c)| ControllerInfo {
                cntlid: *id,
                subnqn: c.subnqn.clone(),
                hostnqn: c.hostnqn.clone(),
                hostid: c.hostid,
                discovery: c.discovery,
                io_queues: c.io_qids.len(),
                live: c.shared.alive.load(Ordering::Acquire),
            })
            .collect()
    }

    /// The ports listed in the discovery log.
    pub fn listeners(&self) -> Vec<Port> {
        self.reg().listeners.clone()
    }

    /// Live controllers.
    pub fn controller_count(&self) -> usize {
        self.reg().controllers.len()
    }

    /// Current discovery generation counter.
    pub fn discovery_generation(&self) -> u64 {
        self.reg().genctr
    }

    /// TREQ byte for discovery entries.
    pub fn treq(&self) -> u8 {
        TREQ_SECURE_NOT_REQUIRED | if self.limits.allow_sq_flow_control_disable { TREQ_SQFLOW_DISABLE_OK } else { 0 }
    }

    /// The full discovery log as `hostnqn` sees it.
    pub fn discovery_log(&self, hostnqn: &str) -> Vec<u8> {
        let reg = self.reg();
        let visible: Vec<Visible<'_>> = reg
            .subsystems
            .values()
            .filter(|s| s.cfg.host_allowed(hostnqn))
            .map(|s| Visible { nqn: s.cfg.nqn.as_str() })
            .collect();
        discovery::build_log(reg.genctr, &reg.listeners, &visible, self.treq())
    }

    /// Handles a Connect command (opcode 7Fh, FCTYPE 01h) arriving as the
    /// first command on a new queue. `data` is the 1024-byte Connect data
    /// (in-capsule). `now` starts the keep-alive timer.
    pub fn connect(self: &Arc<Self>, sqe: &Sqe, data: &[u8], now: Instant) -> Connected {
        let qid = (sqe.cdw10 >> 16) as u16;
        match self.try_connect(sqe, data, now) {
            Ok(c) => c,
            Err(e) => {
                debug!(qid, status = ?e.status, dw0 = e.dw0, "connect rejected");
                Connected::Rejected { cqe: failure(sqe.cid, qid, e) }
            }
        }
    }

    fn try_connect(self: &Arc<Self>, sqe: &Sqe, data: &[u8], now: Instant) -> Result<Connected, CmdError> {
        if sqe.opcode != opcode::FABRICS || sqe.fctype() != fctype::CONNECT {
            return Err(CmdError::SEQUENCE);
        }
        let recfmt = (sqe.cdw10 & 0xFFFF) as u16;
        let qid = (sqe.cdw10 >> 16) as u16;
        let sqsize = (sqe.cdw11 & 0xFFFF) as u16;
        let cattr = ((sqe.cdw11 >> 16) & 0xFF) as u8;
        let kato = sqe.cdw12;
        if recfmt != 0 {
            return Err(CmdError::dnr(status::CONNECT_INCOMPATIBLE_FORMAT));
        }
        let d = ConnectData::parse(data)?;
        // SQSIZE is 0's based: a one-entry queue cannot work, and the
        // queue may not exceed MQES.
        if sqsize == 0 || sqsize > self.limits.mqes() {
            return Err(invalid_param(false, ipo::SQSIZE));
        }
        let sq_flow_off = cattr & CATTR_DISABLE_SQ_FLOW != 0;
        if sq_flow_off && !self.limits.allow_sq_flow_control_disable {
            return Err(invalid_param(false, ipo::CATTR));
        }
        let info =
            |cntlid| QueueInfo { cntlid, qid, depth: u32::from(sqsize) + 1, sq_flow_control_disabled: sq_flow_off };
        if qid == 0 {
            self.connect_admin(sqe, &d, kato, now).map(|(cqe, controller)| {
                let i = info(controller.cntlid());
                Connected::Admin { cqe, controller, info: i }
            })
        } else {
            self.connect_io(sqe, &d, qid, now).map(|(cqe, queue)| {
                let i = info(queue.cntlid());
                Connected::Io { cqe, queue, info: i }
            })
        }
    }

    fn connect_admin(
        self: &Arc<Self>,
        sqe: &Sqe,
        d: &ConnectData,
        kato: u32,
        now: Instant,
    ) -> Result<(Cqe, Box<TargetController>), CmdError> {
        let mut reg = self.reg();
        let discovery = d.subnqn == DISCOVERY_NQN;
        let subsys = if discovery {
            None
        } else {
            let sub = reg.subsystems.get(&d.subnqn).ok_or(invalid_param(true, ipo::SUBNQN))?;
            // An empty host NQN matches no allow-list entry (they are validated non-empty); a subsystem
            // open to any host takes it, as SPDK's target does (spdk_nvme_perf sends none unless told one).
            if !sub.cfg.host_allowed(&d.hostnqn) {
                return Err(CmdError {
                    status: status::CONNECT_INVALID_HOST,
                    dnr: true,
                    dw0: (1 << 16) | u32::from(ipo::HOSTNQN),
                });
            }
            Some((
                Arc::clone(&sub.shared),
                sub.auth.queue(
                    &d.hostnqn,
                    AuthIds { subnqn: d.subnqn.clone(), cntlid: 0, qid: 0 },
                    self.auth_timeout(),
                    now,
                ),
            ))
        };
        let (subsys, auth) = match subsys {
            Some((s, a)) => (Some(s), a),
            None => (None, None),
        };
        if d.cntlid != CNTLID_DYNAMIC {
            return Err(invalid_param(true, ipo::CNTLID));
        }
        if reg.connections >= self.limits.max_connections {
            return Err(CmdError::retry(status::CONNECT_CONTROLLER_BUSY));
        }
        let cntlid = reg.alloc_cntlid().ok_or(CmdError::retry(status::CONNECT_CONTROLLER_BUSY))?;
        // A discovery host asking for no keep-alive still gets the spec's
        // default so abandoned discovery controllers go away.
        let kato = if discovery && kato == 0 { self.limits.kato_default_ms } else { kato };
        // Round up to the KAS granularity (1 s) the host was told about.
        let kato = kato.div_ceil(1000).saturating_mul(1000);
        let shared = Arc::new(CtrlShared {
            cntlid,
            alive: AtomicBool::new(true),
            ready: AtomicBool::new(false),
            granted_io_queues: AtomicU32::new(0),
            notices: Mutex::new(Notices::default()),
        });
        reg.controllers.insert(
            cntlid,
            CtrlEntry {
                subnqn: d.subnqn.clone(),
                hostnqn: d.hostnqn.clone(),
                hostid: d.hostid,
                discovery,
                shared: Arc::clone(&shared),
                io_qids: BTreeSet::new(),
            },
        );
        reg.connections += 1;
        drop(reg);
        if d.hostnqn.is_empty() {
            warn!(cntlid, subnqn = %d.subnqn, "host sent an empty Host NQN; admitted because the subsystem allows any host");
        }
        let auth = auth.map(|a| Box::new(a.for_queue(cntlid, 0)));
        info!(cntlid, subnqn = %d.subnqn, hostnqn = %d.hostnqn, kato, dhchap = auth.is_some(), "controller created");
        let dw0 = ff_nvme_auth::fabrics::connect_response_dw0(cntlid, auth.is_some());
        let ctrl = TargetController::new(Arc::clone(self), shared, subsys, d, kato, now, auth);
        Ok((success(sqe.cid, 0, dw0), Box::new(ctrl)))
    }

    fn connect_io(
        self: &Arc<Self>,
        sqe: &Sqe,
        d: &ConnectData,
        qid: u16,
        now: Instant,
    ) -> Result<(Cqe, TargetIoQueue), CmdError> {
        let mut reg = self.reg();
        if d.subnqn == DISCOVERY_NQN {
            // Discovery controllers have no I/O queues.
            return Err(invalid_param(false, ipo::QID));
        }
        let timeout = self.auth_timeout();
        let auth = reg.subsystems.get(&d.subnqn).and_then(|s| {
            s.auth.queue(&d.hostnqn, AuthIds { subnqn: d.subnqn.clone(), cntlid: d.cntlid, qid }, timeout, now)
        });
        let subsys = reg.subsystems.get(&d.subnqn).map(|s| Arc::clone(&s.shared));
        let connections = reg.connections;
        let entry = reg.controllers.get_mut(&d.cntlid).ok_or(invalid_param(true, ipo::CNTLID))?;
        if entry.subnqn != d.subnqn {
            return Err(invalid_param(true, ipo::SUBNQN));
        }
        if entry.hostnqn != d.hostnqn {
            return Err(invalid_param(true, ipo::HOSTNQN));
        }
        if entry.hostid != d.hostid {
            return Err(invalid_param(true, ipo::HOSTID));
        }
        let subsys = subsys.ok_or(invalid_param(true, ipo::SUBNQN))?;
        if !entry.shared.alive.load(Ordering::Acquire) || !entry.shared.ready.load(Ordering::Acquire) {
            return Err(CmdError::SEQUENCE);
        }
        let granted = match entry.shared.granted_io_queues.load(Ordering::Acquire) {
            0 => u32::from(self.limits.max_io_queues),
            g => g,
        };
        if u32::from(qid) > granted {
            return Err(invalid_param(false, ipo::QID));
        }
        if entry.io_qids.contains(&qid) {
            return Err(CmdError::SEQUENCE);
        }
        if connections >= self.limits.max_connections {
            return Err(CmdError::retry(status::CONNECT_CONTROLLER_BUSY));
        }
        entry.io_qids.insert(qid);
        let ctrl = Arc::clone(&entry.shared);
        reg.connections += 1;
        drop(reg);
        let cache = subsys.snapshot();
        let cache_gen = subsys.generation.load(Ordering::Acquire);
        let cntlid = ctrl.cntlid;
        debug!(cntlid, qid, dhchap = auth.is_some(), "I/O queue connected");
        let dw0 = ff_nvme_auth::fabrics::connect_response_dw0(cntlid, auth.is_some());
        let q = TargetIoQueue {
            auth: auth.map(Box::new),
            target: Arc::clone(self),
            ctrl,
            subsys,
            qid,
            cache,
            cache_gen,
            limits: IoLimits::from(&self.limits),
            released: false,
        };
        Ok((success(sqe.cid, qid, dw0), q))
    }

    /// Frees an I/O queue's QID (called when a [`TargetIoQueue`] drops).
    /// The controller identity is checked by pointer: its CNTLID may have
    /// been reused after the original controller went away.
    pub(crate) fn release_io_queue(&self, ctrl: &Arc<CtrlShared>, qid: u16) {
        let mut reg = self.reg();
        let removed = reg
            .controllers
            .get_mut(&ctrl.cntlid)
            .is_some_and(|c| Arc::ptr_eq(&c.shared, ctrl) && c.io_qids.remove(&qid));
        if removed {
            reg.connections = reg.connections.saturating_sub(1);
        }
    }

    /// Removes a controller (its admin queue is gone).
    pub(crate) fn release_controller(&self, cntlid: u16) {
        let mut reg = self.reg();
        if let Some(c) = reg.controllers.remove(&cntlid) {
            c.shared.alive.store(false, Ordering::Release);
            c.shared.ready.store(false, Ordering::Release);
            // I/O queues still open count until they drop; they will find
            // no entry, so account for them now.
            let n = 1 + u32::try_from(c.io_qids.len()).unwrap_or(u32::MAX);
            reg.connections = reg.connections.saturating_sub(n);
            info!(cntlid, "controller removed");
        }
    }

    /// Whether any I/O queue of `cntlid` is connected.
    pub(crate) fn has_io_queues(&self, cntlid: u16) -> bool {
        self.reg().controllers.get(&cntlid).is_some_and(|c| !c.io_qids.is_empty())
    }
}
