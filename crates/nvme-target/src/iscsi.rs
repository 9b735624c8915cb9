//! iSCSI on the reactors: what the portals share ([`IscsiShared`]: targets, LUN maps, the session
//! table) and one connection's session ([`IscsiSession`]): the sans-IO connection core
//! ([`ff_iscsi::TargetConn`]) plus the SCSI emulation ([`ff_scsi`]) over the same namespaces, device
//! handles and buffers as NVMe/TCP. A LUN is a namespace of a subsystem, so one backend is reachable
//! over both protocols.
//!
//! One connection per session (MaxConnections=1). A login with the ISID and initiator name of a live
//! session reinstates it: the old connection closes at its reactor's next tick.

use crate::config::{IscsiTargetSpec, LunSpec, TargetOptions};
use crate::scsi_task::{ScsiTask, TaskEnd};
use crate::session::{Env, IoCounts, IoKind, open_dev};
use crate::shared::{NsBackend, Shared};
use crate::txbuf::TxBuf;
use ff_blockdev::{BufPool, IoDone};
use ff_iscsi::chap::ChapAlg;
use ff_iscsi::{
    Auth, ChapAuth, ChapSecret, Command, Completion, ConnConfig, Limits, LoginStatus, Phase, PortalConfig,
    SessionRequest, SessionType, TargetConn, TargetDesc, TaskMgmt, TmfResponseCode,
};
use ff_scsi::{DataDir, ItNexus, LogicalUnit, Nexus, Outcome, Reply, Reservations, Sense};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Port ids of iSCSI portals start here (NVMe listener ids count from 1, management adds more).
pub const PORT_BASE: usize = 1 << 20;
/// Our portal group tag (one group holds every portal).
const PORTAL_GROUP: u16 = 1;
/// SPC protocol identifier of iSCSI.
const PROTOCOL_ISCSI: u8 = 5;
/// Largest transfer one command gathers (the reactor's buffer limit).
const MAX_TRANSFER: u32 = crate::txbuf::MAX_ALLOC as u32;
/// How long a connection may stay in login.
const LOGIN_DEADLINE: Duration = Duration::from_secs(15);
/// Most blocks one UNMAP may name.
const MAX_UNMAP_BLOCKS: u32 = 1 << 20;
/// iSCSI's version descriptor in standard INQUIRY (SPC-4: iSCSI, no version claimed).
const ISCSI_VERSION_DESCRIPTOR: u16 = 0x0960;

/// A live session as the table knows it.
struct LiveSession {
    tsih: u16,
    kill: Arc<AtomicBool>,
}

/// Sessions by (initiator name, ISID, target), all lower case.
#[derive(Default)]
struct Sessions {
    next_tsih: u16,
    live: HashMap<(String, [u8; 6], String), LiveSession>,
}

/// One logical unit's reservations, shared by every session that reaches it.
#[derive(Default)]
struct LuReservations {
    /// Set once any reservation command ran: until then commands skip the lock (the common case).
    active: AtomicBool,
    state: Mutex<Reservations>,
}

impl LuReservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reservations> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opcodes that act on reservations (PERSISTENT RESERVE IN/OUT, RESERVE and RELEASE 6/10).
fn is_reservation_opcode(op: u8) -> bool {
    matches!(op, 0x5e | 0x5f | 0x16 | 0x17 | 0x56 | 0x57)
}

/// What every iSCSI connection of a target shares.
pub struct IscsiShared {
    portal: Arc<PortalConfig>,
    /// LUN maps by lower-case target name.
    luns: HashMap<String, Vec<LunSpec>>,
    sessions: Mutex<Sessions>,
    /// Reservations by namespace (subsystem NQN, nsid): a namespace exported twice shares them.
    reservations: Mutex<HashMap<(String, u32), Arc<LuReservations>>>,
}

/// The negotiation limits `opts` asks for.
fn limits(opts: &TargetOptions) -> Limits {
    let i = &opts.iscsi;
    Limits {
        max_recv_data_segment_length: i.max_recv_data_segment_length,
        max_burst_length: i.max_burst_length.min(MAX_TRANSFER),
        first_burst_length: i.first_burst_length.min(MAX_TRANSFER),
        immediate_data: i.immediate_data,
        initial_r2t: i.initial_r2t,
        header_digest: i.header_digest,
        data_digest: i.data_digest,
        queue_depth: i.queue_depth,
        max_transfer: MAX_TRANSFER,
        ..Limits::default()
    }
}

fn target_desc(t: &IscsiTargetSpec, portals: &[SocketAddr]) -> TargetDesc {
    let auth = match &t.chap {
        None => Auth::None,
        Some(c) => Auth::Chap(ChapAuth {
            initiators: vec![ChapSecret { name: c.user.clone(), secret: c.secret.clone().into_bytes() }],
            target: c
                .mutual_user
                .as_ref()
                .zip(c.mutual_secret.as_ref())
                .map(|(n, s)| ChapSecret { name: n.clone(), secret: s.clone().into_bytes() }),
            require_mutual: false,
            algorithms: vec![ChapAlg::Md5, ChapAlg::Sha256],
        }),
    };
    TargetDesc {
        name: t.name.clone(),
        alias: t.alias.clone(),
        portal_group_tag: PORTAL_GROUP,
        portals: portals.iter().map(|a| a.to_string()).collect(),
        allowed_initiators: if t.allow_any_initiator { None } else { Some(t.initiators.clone()) },
        auth,
    }
}

impl IscsiShared {
    /// The shared state for `opts`' iSCSI targets, reachable through `portals` (bound addresses).
    pub fn new(opts: &TargetOptions, portals: &[SocketAddr]) -> IscsiShared {
        let portal = PortalConfig {
            targets: opts.iscsi_targets.iter().map(|t| target_desc(t, portals)).collect(),
            discovery_auth: Auth::None,
            discovery_initiators: None,
            limits: limits(opts),
        };
        let luns = opts.iscsi_targets.iter().map(|t| (t.name.to_ascii_lowercase(), t.luns.clone())).collect();
        IscsiShared {
            portal: Arc::new(portal),
            luns,
            sessions: Mutex::new(Sessions::default()),
            reservations: Mutex::new(HashMap::new()),
        }
    }

    /// The reservations of namespace `nsid` of `nqn`.
    fn reservations(&self, nqn: &str, nsid: u32) -> Arc<LuReservations> {
        let mut m = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((nqn.to_string(), nsid)).or_default().clone()
    }

    /// The portal configuration a connection arriving at `local` sees: wildcard portals are answered
    /// in SendTargets with the address the initiator reached.
    fn portal_for(&self, local: Option<SocketAddr>) -> Arc<PortalConfig> {
        let Some(local) = local else { return self.portal.clone() };
        let wild = |p: &String| p.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_unspecified());
        if !self.portal.targets.iter().any(|t| t.portals.iter().any(wild)) {
            return self.portal.clone();
        }
        let mut p = (*self.portal).clone();
        for t in &mut p.targets {
            for a in &mut t.portals {
                if let Ok(sa) = a.parse::<SocketAddr>()
                    && sa.ip().is_unspecified()
                {
                    *a = SocketAddr::new(local.ip(), sa.port()).to_string();
                }
            }
        }
        Arc::new(p)
    }

    /// Admits a session: a new TSIH (a live session with the same initiator, ISID and target is
    /// reinstated: told to close), or a refusal.
    fn admit(&self, req: &SessionRequest) -> Result<(SessionKey, u16), LoginStatus> {
        if req.tsih != 0 {
            // Adding a connection to a session: MaxConnections is 1 here.
            return Err(LoginStatus::SESSION_DOES_NOT_EXIST);
        }
        let target = req.target.as_deref().unwrap_or("").to_ascii_lowercase();
        let key = (req.initiator_name.to_ascii_lowercase(), req.isid, target);
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = s.live.remove(&key) {
            tracing::info!(initiator = %req.initiator_name, tsih = old.tsih, "session reinstated");
            old.kill.store(true, Ordering::Relaxed);
        }
        let mut tsih = s.next_tsih.wrapping_add(1).max(1);
        while s.live.values().any(|l| l.tsih == tsih) {
            tsih = tsih.wrapping_add(1).max(1);
        }
        s.next_tsih = tsih;
        let kill = Arc::new(AtomicBool::new(false));
        s.live.insert(key.clone(), LiveSession { tsih, kill: kill.clone() });
        Ok((SessionKey { key, tsih, kill }, tsih))
    }

    fn release(&self, k: &SessionKey) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.live.get(&k.key).is_some_and(|l| l.tsih == k.tsih) {
            s.live.remove(&k.key);
        }
    }
}

/// A session's entry in the table.
struct SessionKey {
    key: (String, [u8; 6], String),
    tsih: u16,
    kill: Arc<AtomicBool>,
}

/// One logical unit as a session sees it.
struct LunRt {
    lun: u16,
    ns: Arc<NsBackend>,
    lu: LogicalUnit,
    res: Arc<LuReservations>,
}

/// A command whose block work is in flight.
struct Slot {
    itt: u32,
    ns: Arc<NsBackend>,
    task: ScsiTask,
    /// Task management aborted it: its end is not reported.
    aborted: bool,
    write_len: Option<u32>,
}

/// A task management function waiting for the device work of the tasks it aborted.
struct PendingTmf {
    itt: u32,
    waiting: Vec<u16>,
}

/// A stable 16-byte NAA-6 style identifier and a serial for a namespace, so a LUN keeps its identity
/// across restarts and matches whatever exports the same namespace.
fn identity(nqn: &str, nsid: u32) -> ([u8; 16], String) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for b in nqn.bytes().chain(nsid.to_be_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        h2 = (h2 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&h.to_be_bytes());
    id[8..].copy_from_slice(&h2.to_be_bytes());
    id[0] = 0x60 | (id[0] & 0x0f);
    (id, format!("FF{h:016X}"))
}

fn logical_unit(spec: &LunSpec, ns: &NsBackend) -> LogicalUnit {
    let info = &ns.info;
    let (device_id, serial) = identity(&spec.nqn, spec.nsid);
    let mut lu = LogicalUnit::new(info.block_size, info.num_blocks, &serial, device_id);
    lu.write_cache = info.volatile_write_cache;
    lu.write_cache_enabled = info.volatile_write_cache;
    lu.thin = info.deallocate && info.deallocate_reads_zeroes;
    lu.optimal_transfer_blocks = info.optimal_io_blocks;
    lu.max_transfer_blocks = lu.max_transfer_blocks.min(MAX_TRANSFER / info.block_size.max(1));
    // A WRITE SAME and an UNMAP are bounded like a transfer, so initiators that size one by the other
    // (libiscsi's tests do) stay within both.
    lu.max_write_same_blocks = lu.max_write_same_blocks.min(u64::from(lu.max_transfer_blocks));
    lu.max_unmap_blocks = lu.max_unmap_blocks.min(MAX_UNMAP_BLOCKS);
    lu.transport_version = ISCSI_VERSION_DESCRIPTOR;
    lu
}

fn check(s: Sense) -> Completion<TxBuf> {
    Completion::check_condition(s.to_fixed().to_vec())
}

fn end_completion(end: TaskEnd) -> Completion<TxBuf> {
    match end {
        TaskEnd::Good(Some(buf)) => Completion::with_data(TxBuf::Io(buf)),
        TaskEnd::Good(None) => Completion::good(),
        TaskEnd::Check(s) => check(s),
    }
}

fn count_io(io: &mut IoCounts, op: &ff_scsi::BlockOp, lu: &LogicalUnit) {
    let bytes = |b: u32| u64::from(b) * u64::from(lu.block_size);
    match *op {
        ff_scsi::BlockOp::Read { blocks, .. } => io.record(IoKind::Read, bytes(blocks)),
        ff_scsi::BlockOp::Write { blocks, .. } => io.record(IoKind::Write, bytes(blocks)),
        _ => io.record(IoKind::Other, 0),
    }
}

/// One iSCSI connection's session; see the module docs.
pub struct IscsiSession {
    /// The connection core.
    pub conn: TargetConn<TxBuf>,
    shared: Arc<IscsiShared>,
    peer: SocketAddr,
    created: Instant,
    session: Option<SessionKey>,
    /// The target of a normal session.
    target: Option<String>,
    /// This session's I_T nexus (reservations are held by it).
    nexus: ItNexus,
    /// Reservations of every LU of the target (released for this nexus when it ends).
    all_res: Vec<Arc<LuReservations>>,
    /// The LUN table, and the namespace generation it was built at.
    luns: Vec<LunRt>,
    luns_generation: Option<u64>,
    lun_ids: Vec<u16>,
    designators: Vec<u8>,
    slots: Vec<Option<Slot>>,
    free: Vec<u16>,
    tmfs: Vec<PendingTmf>,
    /// I/O commands so far.
    pub io: IoCounts,
}

impl IscsiSession {
    /// A fresh connection from `peer` that arrived at `local`.
    pub fn new(shared: Arc<IscsiShared>, peer: SocketAddr, local: Option<SocketAddr>) -> IscsiSession {
        let cfg = ConnConfig::new(shared.portal_for(local));
        let depth = cfg.portal.limits.queue_depth as usize + cfg.max_immediate;
        IscsiSession {
            conn: TargetConn::new(cfg),
            shared,
            peer,
            created: Instant::now(),
            session: None,
            target: None,
            nexus: ItNexus::iscsi("", [0; 6], PORTAL_GROUP),
            all_res: Vec::new(),
            luns: Vec::new(),
            luns_generation: None,
            lun_ids: Vec::new(),
            designators: Vec::new(),
            slots: (0..depth).map(|_| None).collect(),
            free: (0..depth as u16).rev().collect(),
            tmfs: Vec::new(),
            io: IoCounts::default(),
        }
    }

    /// The target name of a normal session (empty before login or for discovery).
    pub fn target_name(&self) -> &str {
        self.target.as_deref().unwrap_or("")
    }

    /// Admits or refuses the session the login asks for.
    pub fn session_request(&mut self, req: SessionRequest) {
        match self.shared.admit(&req) {
            Ok((key, tsih)) => {
                if req.session_type == SessionType::Normal {
                    self.target = req.target.clone();
                    self.nexus = ItNexus::iscsi(&req.initiator_name, req.isid, PORTAL_GROUP);
                    let specs = req.target.as_deref().and_then(|t| self.shared.luns.get(&t.to_ascii_lowercase()));
                    self.all_res =
                        specs.into_iter().flatten().map(|l| self.shared.reservations(&l.nqn, l.nsid)).collect();
                    let name = req.target.as_deref().unwrap_or("");
                    let port_name = format!("{name},t,0x{PORTAL_GROUP:04x}");
                    let mut d = ff_scsi::inquiry::designator::relative_target_port(PROTOCOL_ISCSI, PORTAL_GROUP);
                    d.extend(ff_scsi::inquiry::designator::target_port_group(PROTOCOL_ISCSI, PORTAL_GROUP));
                    d.extend(ff_scsi::inquiry::designator::scsi_name(PROTOCOL_ISCSI, &port_name, true));
                    d.extend(ff_scsi::inquiry::designator::scsi_name(PROTOCOL_ISCSI, name, false));
                    self.designators = d;
                }
                tracing::info!(
                    peer = %self.peer,
                    initiator = %req.initiator_name,
                    target = self.target_name(),
                    tsih,
                    kind = ?req.session_type,
                    "iSCSI session"
                );
                self.session = Some(key);
                self.conn.admit(tsih);
            }
            Err(st) => {
                tracing::warn!(peer = %self.peer, initiator = %req.initiator_name, ?st, "iSCSI login refused");
                self.conn.refuse(st);
            }
        }
    }

    /// Rebuilds the LUN table when management changed the namespaces.
    fn refresh_luns(&mut self, shared: &Shared) {
        let g = shared.generation();
        if self.luns_generation == Some(g) {
            return;
        }
        self.luns_generation = Some(g);
        self.luns.clear();
        let specs = self.target.as_deref().and_then(|t| self.shared.luns.get(&t.to_ascii_lowercase()));
        for spec in specs.into_iter().flatten() {
            if let Some(ns) = shared.backends(&spec.nqn).and_then(|b| b.by_nsid.get(&spec.nsid).cloned()) {
                let lu = logical_unit(spec, &ns);
                let res = self.shared.reservations(&spec.nqn, spec.nsid);
                self.luns.push(LunRt { lun: spec.lun, ns, lu, res });
            }
        }
        self.luns.sort_by_key(|l| l.lun);
        self.lun_ids = self.luns.iter().map(|l| l.lun).collect();
    }

    /// Executes `cmd`: completes it now or starts its block work.
    pub fn execute(&mut self, cmd: Command<TxBuf>, env: &mut Env<'_>) {
        self.refresh_luns(env.shared);
        let itt = cmd.itt;
        let cdb = cmd.cdb.as_bytes();
        let lun = ff_scsi::luns::decode_lun(cmd.lun.to_be_bytes());
        let nexus = Nexus { luns: &self.lun_ids, port_designators: &self.designators, pending_sense: None };
        let Some(rt) = lun.and_then(|l| self.luns.iter().find(|r| r.lun == l)) else {
            if let Some(b) = cmd.data {
                b.recycle(env.pool);
            }
            let c = match ff_scsi::execute_no_lun(cdb, &nexus) {
                Outcome::Data(v) => Completion::with_data(TxBuf::Vec(v)),
                Outcome::Check(s) => check(s),
                _ => Completion::good(),
            };
            return self.conn.complete(itt, c);
        };
        let (outcome, t) =
            if rt.res.active.load(Ordering::Relaxed) || cdb.first().is_some_and(|&op| is_reservation_opcode(op)) {
                let data_out = cmd.data.as_ref().map_or(&[][..], |b| b.as_ref());
                let mut res = rt.res.lock();
                rt.res.active.store(true, Ordering::Relaxed);
                let reply = ff_scsi::execute_with_reservations(cdb, &rt.lu, &nexus, data_out, &mut res, &self.nexus);
                let preempted = res.take_aborted();
                drop(res);
                if !preempted.is_empty() {
                    // PREEMPT AND ABORT: the preempted nexuses' commands run to completion here (their
                    // sessions may be on other reactors); the reservation change itself is in force.
                    tracing::info!(peer = %self.peer, nexuses = preempted.len(), "reservations preempted");
                }
                match reply {
                    Reply::Outcome(o) => (o, ff_scsi::transfer(cdb, &rt.lu)),
                    Reply::ReservationConflict => {
                        if let Some(b) = cmd.data {
                            b.recycle(env.pool);
                        }
                        let c = Completion { status: ff_scsi::Status::ReservationConflict as u8, ..Completion::good() };
                        return self.conn.complete(itt, c);
                    }
                }
            } else {
                // Decoded once for both the execution and the expected transfer.
                match ff_scsi::decode(cdb) {
                    Ok(c) => (
                        ff_scsi::execute_command(&c, &rt.lu, &nexus),
                        ff_scsi::cdb::command_transfer(&c, u64::from(rt.lu.block_size)),
                    ),
                    Err(s) => (Outcome::Check(s), ff_scsi::Transfer::NONE),
                }
            };
        // What the CDB wants written against what the initiator sent (the residual).
        let sent = if cmd.write { cmd.edtl } else { 0 };
        let mut wants = if t.dir == DataDir::FromInitiator { t.len.min(u64::from(u32::MAX)) as u32 } else { 0 };
        let write_len = (sent != wants && (cmd.write || wants > 0)).then_some(wants);
        let mut data = cmd.data;
        if !matches!(outcome, Outcome::Block(_))
            && let Some(b) = data.take()
        {
            b.recycle(env.pool);
        }
        let c = match outcome {
            Outcome::Good => Completion::good(),
            Outcome::Data(v) => Completion::with_data(TxBuf::Vec(v)),
            Outcome::Check(s) => check(s),
            Outcome::Block(op) => {
                count_io(&mut self.io, &op, &rt.lu);
                let mut op = op;
                if sent < wants {
                    // The initiator sends less than the CDB asks (iSCSI overflow): a write proceeds
                    // with the whole blocks that arrived (FCP-4's rule a); anything else is refused.
                    let bs = rt.lu.block_size;
                    match op {
                        ff_scsi::BlockOp::Write { lba, fua, dpo, .. } if sent / bs > 0 => {
                            op = ff_scsi::BlockOp::Write { lba, blocks: sent / bs, fua, dpo };
                            wants = (sent / bs) * bs;
                        }
                        ff_scsi::BlockOp::Write { .. } => {
                            if let Some(b) = data {
                                b.recycle(env.pool);
                            }
                            return self.conn.complete(itt, Completion { write_len, ..Completion::good() });
                        }
                        _ => {
                            if let Some(b) = data {
                                b.recycle(env.pool);
                            }
                            let c = Completion { write_len, ..check(Sense::invalid_field_in_information_unit()) };
                            return self.conn.complete(itt, c);
                        }
                    }
                }
                let data_out = data.map(|b| {
                    let mut io = b.into_io(env.pool);
                    if io.len() > wants as usize {
                        io.set_len(wants as usize);
                    }
                    io
                });
                let ns = rt.ns.clone();
                let Some(slot) = self.free.pop() else {
                    if let Some(b) = data_out {
                        env.pool.put(b);
                    }
                    return self.conn.complete(itt, check(Sense::internal_target_failure()));
                };
                let tag = env.tag.with_cid(slot).to_u64();
                let dev = match open_dev(env.devs, env.on_ring, &ns) {
                    Some(d) => d,
                    None => {
                        self.free.push(slot);
                        if let Some(b) = data_out {
                            env.pool.put(b);
                        }
                        return self.conn.complete(itt, check(Sense::internal_target_failure()));
                    }
                };
                match ScsiTask::start(op, data_out, &rt.lu, dev.as_mut(), env.pool, tag) {
                    Ok(task) => {
                        if let Some(s) = self.slots.get_mut(slot as usize) {
                            *s = Some(Slot { itt, ns, task, aborted: false, write_len });
                        }
                        return;
                    }
                    Err(end) => {
                        self.free.push(slot);
                        Completion { write_len, ..end_completion(end) }
                    }
                }
            }
        };
        self.conn.complete(itt, Completion { write_len: c.write_len.or(write_len), ..c });
    }

    /// A device request of command slot `slot` completed.
    pub fn io_done(&mut self, slot: u16, done: IoDone, env: &mut Env<'_>) {
        let Some(Some(s)) = self.slots.get_mut(slot as usize) else {
            if let Some(b) = done.buf {
                env.pool.put(b);
            }
            return;
        };
        let tag = env.tag.with_cid(slot).to_u64();
        let ns = s.ns.clone();
        let end = match open_dev(env.devs, env.on_ring, &ns) {
            Some(dev) => s.task.on_done(done, dev.as_mut(), env.pool, tag),
            None => {
                if let Some(b) = done.buf {
                    env.pool.put(b);
                }
                s.task.release(env.pool);
                Some(TaskEnd::Check(Sense::internal_target_failure()))
            }
        };
        let Some(end) = end else { return };
        let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        self.free.push(slot);
        if s.aborted {
            if let TaskEnd::Good(Some(b)) = end {
                env.pool.put(b);
            }
            // The core holds an aborted task (and its ITT) until this call; it sends nothing for it.
            self.conn.complete(s.itt, Completion::good());
            self.finish_tmfs(slot);
            return;
        }
        let c = end_completion(end);
        self.conn.complete(s.itt, Completion { write_len: s.write_len, ..c });
    }

    /// Marks the tasks a management function aborted; answers it once their device work is over.
    pub fn task_mgmt(&mut self, t: TaskMgmt) {
        let mut waiting = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(s) = s
                && !s.aborted
                && t.aborted.contains(&s.itt)
            {
                s.aborted = true;
                waiting.push(i as u16);
            }
        }
        tracing::info!(peer = %self.peer, function = ?t.function, aborted = t.aborted.len(), "task management");
        // Resets release SPC-2 reservations (persistent ones survive, as SPC-4 says).
        match t.function {
            ff_iscsi::TmfFunction::LunReset => {
                let lun = ff_scsi::luns::decode_lun(t.lun.to_be_bytes());
                for r in self.luns.iter().filter(|r| Some(r.lun) == lun) {
                    r.res.lock().reset();
                }
            }
            ff_iscsi::TmfFunction::TargetWarmReset => {
                for r in &self.all_res {
                    r.lock().reset();
                }
            }
            _ => {}
        }
        if waiting.is_empty() {
            self.conn.complete_tmf(t.itt, TmfResponseCode::Complete);
        } else {
            self.tmfs.push(PendingTmf { itt: t.itt, waiting });
        }
    }

    fn finish_tmfs(&mut self, slot: u16) {
        let mut done = Vec::new();
        self.tmfs.retain_mut(|p| {
            p.waiting.retain(|&w| w != slot);
            if p.waiting.is_empty() {
                done.push(p.itt);
                false
            } else {
                true
            }
        });
        for itt in done {
            self.conn.complete_tmf(itt, TmfResponseCode::Complete);
        }
    }

    /// Periodic work; true when the connection must close (login too slow, or the session was
    /// reinstated by a newer login).
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.conn.phase() {
            Phase::Login | Phase::AwaitAdmit => now.duration_since(self.created) > LOGIN_DEADLINE,
            _ => self.session.as_ref().is_some_and(|s| s.kill.load(Ordering::Relaxed)),
        }
    }

    /// Called once when the connection closes: in-flight device work completes into nothing.
    pub fn on_close(&mut self, pool: &mut BufPool) {
        for s in self.slots.iter_mut().filter_map(Option::take) {
            let mut task = s.task;
            task.release(pool);
        }
        if let Some(k) = self.session.take() {
            self.shared.release(&k);
        }
        for r in &self.all_res {
            r.lock().nexus_lost(&self.nexus);
        }
    }
}
