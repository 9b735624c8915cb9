//! Per-controller state owned by the admin queue connection: properties
//! (CAP, VS, CC, CSTS) with the enable / shutdown sequences, the admin
//! command set (Identify, Get Log Page, Set/Get Features, Asynchronous
//! Event Request, Keep Alive, Abort), keep-alive expiry, and the
//! asynchronous events raised by the registry.
//!
//! All of it runs on the admin queue's reactor; the only shared pieces are
//! the small atomics and notice list in `CtrlShared`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ff_nvme::nvme::{Cqe, FUSE_MASK, PSDT_SGL_MPTR_CONTIG, Sqe, fctype, opcode, status};
use tracing::{debug, warn};

use crate::auth::{AuthReply, DhDone, DhJob, QueueAuth};
use crate::config::Limits;
use crate::identify::{self, ACL, AERL, ControllerIdentity, IDENTIFY_LEN, OAES_DISCOVERY, OAES_NS_ATTR, WCTEMP_K};
use crate::io::NSID_ALL;
use crate::logpage::{self, LogRequest};
use crate::registry::{ConnectData, CtrlShared, SubsysShared, Target, lock};
use crate::response::{CmdError, Response, failure, sc};

/// Property offsets.
pub mod prop {
    /// Controller Capabilities (8 bytes).
    pub const CAP: u32 = 0x00;
    /// Version (4 bytes).
    pub const VS: u32 = 0x08;
    /// Controller Configuration (4 bytes).
    pub const CC: u32 = 0x14;
    /// Controller Status (4 bytes).
    pub const CSTS: u32 = 0x1C;
}

/// CC.EN.
pub const CC_EN: u32 = 1 << 0;
/// CC.SHN mask (bits 15:14).
pub const CC_SHN_MASK: u32 = 0x3 << 14;
/// CSTS.RDY.
pub const CSTS_RDY: u32 = 1 << 0;
/// CSTS.CFS (controller fatal status).
pub const CSTS_CFS: u32 = 1 << 1;
/// CSTS.SHST mask (bits 3:2).
pub const CSTS_SHST_MASK: u32 = 0x3 << 2;
/// CSTS.SHST = shutdown processing complete.
pub const CSTS_SHST_COMPLETE: u32 = 0x2 << 2;
/// CAP.TO in 500 ms units (7.5 s): how long the host waits for RDY.
pub const CAP_TO: u64 = 15;

/// Feature identifiers.
pub mod fid {
    /// Arbitration.
    pub const ARBITRATION: u8 = 0x01;
    /// Power Management.
    pub const POWER_MGMT: u8 = 0x02;
    /// Temperature Threshold.
    pub const TEMP_THRESHOLD: u8 = 0x04;
    /// Error Recovery.
    pub const ERROR_RECOVERY: u8 = 0x05;
    /// Volatile Write Cache.
    pub const VWC: u8 = 0x06;
    /// Number of Queues.
    pub const NUM_QUEUES: u8 = 0x07;
    /// Write Atomicity Normal.
    pub const WRITE_ATOMICITY: u8 = 0x0A;
    /// Asynchronous Event Configuration.
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0B;
    /// Keep Alive Timer.
    pub const KATO: u8 = 0x0F;
    /// Host Identifier.
    pub const HOST_ID: u8 = 0x81;
}

/// Largest admin data transfer honoured (bounds allocation from NUMD).
pub const ADMIN_MAX_XFER: u64 = 1 << 20;

/// AER type: notice.
const AER_TYPE_NOTICE: u32 = 0x2;
/// AER notice info: namespace attribute changed.
const AER_INFO_NS_CHANGED: u32 = 0x00;
/// AER notice info: discovery log page change.
const AER_INFO_DISC_CHANGED: u32 = 0xF0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Features {
    arbitration: u32,
    power_mgmt: u32,
    temp_over: u16,
    temp_under: u16,
    error_recovery: u32,
    vwc_enabled: bool,
    write_atomicity: u32,
    aec: u32,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            arbitration: 0,
            power_mgmt: 0,
            temp_over: WCTEMP_K,
            temp_under: 0,
            error_recovery: 0,
            vwc_enabled: true,
            write_atomicity: 0,
            aec: 0,
        }
    }
}

/// What the transport must do after an admin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    /// Send this data (if any) and completion.
    Complete(Response),
    /// Asynchronous Event Request held; its completion comes out of
    /// [`TargetController::poll_async`] when an event occurs.
    Parked,
    /// Abort of a command on an I/O queue: look for it, then call
    /// [`TargetController::finish_abort`] with whether it was aborted.
    Abort(AbortRequest),
    /// Send this data and completion, then close the association: its
    /// authentication failed.
    CompleteThenClose(Response),
    /// Authentication Send waiting for a DH computation: take it with
    /// [`TargetController::take_dh_job`]; [`TargetController::dh_done`] (or
    /// [`TargetController::dh_unavailable`]) gives the command's completion.
    Computing,
}

/// An Abort the transport resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortRequest {
    /// CID of the Abort command itself.
    pub cid: u16,
    /// Queue of the command to abort.
    pub sqid: u16,
    /// CID of the command to abort. If the transport aborts it, it
    /// completes it with [`aborted`].
    pub target_cid: u16,
}

/// Completion for a command the transport aborted on request.
pub fn aborted(cid: u16, sqid: u16) -> Cqe {
    failure(cid, sqid, CmdError::retry(status::ABORT_REQUESTED))
}

/// The target side of an NVMe controller, owned by its admin queue connection. Dropping it
/// (or [`TargetController::disconnect`]) removes it from the target.
#[derive(Debug)]
pub struct TargetController {
    target: Arc<Target>,
    shared: Arc<CtrlShared>,
    subsys: Option<Arc<SubsysShared>>,
    subnqn: String,
    hostnqn: String,
    hostid: [u8; 16],
    limits: Limits,
    cc: u32,
    csts: u32,
    kato_ms: u32,
    last_keep_alive: Instant,
    features: Features,
    aers: VecDeque<u16>,
    ns_masked: bool,
    disc_masked: bool,
    completions: VecDeque<Response>,
    aborts_in_flight: u8,
    released: bool,
    /// DH-HMAC-CHAP state when the host must authenticate.
    auth: Option<Box<QueueAuth>>,
}

impl TargetController {
    pub(crate) fn new(
        target: Arc<Target>,
        shared: Arc<CtrlShared>,
        subsys: Option<Arc<SubsysShared>>,
        d: &ConnectData,
        kato_ms: u32,
        now: Instant,
        auth: Option<Box<QueueAuth>>,
    ) -> Self {
        let mut limits = *target.limits();
        if let Some(s) = &subsys {
            limits.max_namespaces = s.max_nsid;
        }
        Self {
            target,
            shared,
            subsys,
            subnqn: d.subnqn.clone(),
            hostnqn: d.hostnqn.clone(),
            hostid: d.hostid,
            limits,
            cc: 0,
            csts: 0,
            kato_ms,
            last_keep_alive: now,
            features: Features::default(),
            aers: VecDeque::new(),
            ns_masked: false,
            disc_masked: false,
            completions: VecDeque::new(),
            aborts_in_flight: 0,
            released: false,
            auth,
        }
    }

    /// Controller ID.
    pub fn cntlid(&self) -> u16 {
        self.shared.cntlid
    }

    /// Whether this is a discovery controller.
    pub fn is_discovery(&self) -> bool {
        self.subsys.is_none()
    }

    /// Subsystem NQN the host connected to.
    pub fn subnqn(&self) -> &str {
        &self.subnqn
    }

    /// Host NQN.
    pub fn hostnqn(&self) -> &str {
        &self.hostnqn
    }

    /// Keep-alive timeout in ms (0 = disabled).
    pub fn kato_ms(&self) -> u32 {
        self.kato_ms
    }

    /// CC property.
    pub fn cc(&self) -> u32 {
        self.cc
    }

    /// Volatile Write Cache feature as last set by the host (true by
    /// default). When false the backend should make writes durable before
    /// completing them.
    pub fn write_cache_enabled(&self) -> bool {
        self.features.vwc_enabled
    }

    /// CSTS property.
    pub fn csts(&self) -> u32 {
        self.csts
    }

    /// Whether the host enabled the controller and it is ready.
    pub fn is_ready(&self) -> bool {
        self.cc & CC_EN != 0 && self.csts & CSTS_RDY != 0
    }

    /// Whether the controller still exists in the target (false after its
    /// subsystem was removed): the transport should close the association.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// Whether the keep-alive timer ran out: no Keep Alive for longer than
    /// KATO since the last one (or since Connect). The transport polls this
    /// and tears the association down when true.
    pub fn keep_alive_expired(&self, now: Instant) -> bool {
        // A host cannot send Keep Alive before it authenticated (and Linux starts it only once the
        // controller is live): the authentication timeout bounds that phase instead.
        !self.auth_pending()
            && self.kato_ms != 0
            && now.saturating_duration_since(self.last_keep_alive) > Duration::from_millis(u64::from(self.kato_ms))
    }

    /// When the keep-alive timer will expire, for scheduling the poll.
    pub fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.kato_ms == 0 {
            None
        } else {
            self.last_keep_alive.checked_add(Duration::from_millis(u64::from(self.kato_ms)))
        }
    }

    /// CAP property.
    pub fn cap(&self) -> u64 {
        let mqes = u64::from(self.limits.mqes());
        let cqr = 1 << 16;
        let css_nvm = 1 << 37;
        // MPSMIN = MPSMAX = 0 (4 KiB), DSTRD 0, no subsystem reset.
        mqes | cqr | (CAP_TO << 24) | css_nvm
    }

    /// Handles one admin queue command that carries no host data; `now`
    /// feeds the keep-alive timer. After every call, drain
    /// [`Self::poll_async`].
    pub fn handle_admin(&mut self, sqe: &Sqe, now: Instant) -> AdminOutcome {
        self.handle_admin_data(sqe, &[], now)
    }

    /// Whether this queue must still (or again) pass DH-HMAC-CHAP before
    /// other commands run.
    pub fn auth_pending(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| !a.is_usable())
    }

    /// Whether an authentication transaction stalled past its deadline: the
    /// transport closes the association.
    pub fn auth_expired(&self, now: Instant) -> bool {
        self.auth.as_ref().is_some_and(|a| a.expired(now))
    }

    /// The DH computation an Authentication Send waits for ([`AdminOutcome::Computing`]).
    pub fn take_dh_job(&mut self) -> Option<DhJob> {
        self.auth.as_mut().and_then(|a| a.take_dh_job())
    }

    /// The result of [`Self::take_dh_job`]'s job: the waiting Send's completion, or `None` when
    /// nothing waits for it any more (it is dropped).
    pub fn dh_done(&mut self, done: DhDone, now: Instant) -> Option<AdminOutcome> {
        let reply = self.auth.as_mut()?.dh_done(done, now)?;
        if self.auth.as_ref().is_some_and(|a| a.is_usable()) {
            self.last_keep_alive = now;
        }
        Some(Self::auth_outcome(reply))
    }

    /// The job could not run (no worker free): the authentication fails; the waiting Send's
    /// completion.
    pub fn dh_unavailable(&mut self) -> Option<AdminOutcome> {
        self.auth.as_mut()?.dh_unavailable().map(Self::auth_outcome)
    }

    fn auth_outcome(reply: AuthReply) -> AdminOutcome {
        match reply {
            AuthReply::Complete(r) => AdminOutcome::Complete(r),
            AuthReply::CompleteThenClose(r) => AdminOutcome::CompleteThenClose(r),
            AuthReply::Computing => AdminOutcome::Computing,
        }
    }

    /// Handles one admin queue command with its host data (Authentication
    /// Send is the only one that carries any); see [`Self::handle_admin`].
    pub fn handle_admin_data(&mut self, sqe: &Sqe, data: &[u8], now: Instant) -> AdminOutcome {
        let cid = sqe.cid;
        if let Some(a) = &mut self.auth {
            if let Err(e) = a.gate(sqe) {
                return AdminOutcome::Complete(Response::err(cid, 0, e));
            }
            if sqe.opcode == opcode::FABRICS && matches!(sqe.fctype(), fctype::AUTH_SEND | fctype::AUTH_RECV) {
                let reply = a.handle(sqe, data, now);
                if a.is_usable() {
                    // The keep-alive timer starts when the host can send Keep Alive.
                    self.last_keep_alive = now;
                }
                return Self::auth_outcome(reply);
            }
        }
        if let Some(i) = self.aers.iter().position(|&c| c == cid) {
            // A new command under a parked AER's id: the host abandoned that AER (SPDK's host ends its
            // AERs locally at detach, then reuses the ids), so it must never complete.
            self.aers.remove(i);
            debug!(cntlid = self.cntlid(), cid, "host reused the id of a parked AER; the AER is dropped");
        }
        let r = if sqe.opcode == opcode::FABRICS {
            self.fabrics(sqe)
        } else if !self.is_ready() {
            Err(CmdError::SEQUENCE)
        } else if sqe.flags & FUSE_MASK != 0 {
            Err(CmdError::INVALID_FIELD)
        } else {
            match sqe.opcode {
                opcode::ADMIN_IDENTIFY => self.identify(sqe),
                opcode::ADMIN_GET_LOG_PAGE => self.get_log_page(sqe),
                opcode::ADMIN_SET_FEATURES => self.set_features(sqe, now),
                opcode::ADMIN_GET_FEATURES => self.get_features(sqe),
                opcode::ADMIN_KEEP_ALIVE => {
                    self.last_keep_alive = now;
                    Ok(Response::ok(cid, 0, 0))
                }
                opcode::ADMIN_ASYNC_EVENT => return self.async_event_request(cid),
                opcode::ADMIN_ABORT if !self.is_discovery() => return self.abort(sqe),
                _ => Err(CmdError::INVALID_OPCODE),
            }
        };
        if let Err(e) = &r {
            debug!(cntlid = self.cntlid(), opcode = sqe.opcode, status = ?e.status, "admin command failed");
        }
        AdminOutcome::Complete(Response::from_result(cid, 0, r))
    }

    /// Next asynchronous completion (an Asynchronous Event Request answered
    /// because of a notice, or one aborted by Abort). Poll after every admin
    /// command and whenever the registry reports a change for this
    /// controller.
    pub fn poll_async(&mut self) -> Option<Response> {
        self.deliver_events();
        self.completions.pop_front()
    }

    /// Answers an [`AdminOutcome::Abort`]: dw0 bit 0 clear means the command
    /// was aborted.
    pub fn finish_abort(&mut self, req: AbortRequest, aborted: bool) -> Response {
        self.aborts_in_flight = self.aborts_in_flight.saturating_sub(1);
        Response::ok(req.cid, 0, u32::from(!aborted))
    }

    /// Removes the controller from the target now (also done on drop).
    pub fn disconnect(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.target.release_controller(self.cntlid());
        }
    }

    // ---- Fabrics commands on the admin queue ----

    fn fabrics(&mut self, sqe: &Sqe) -> Result<Response, CmdError> {
        match sqe.fctype() {
            fctype::PROPERTY_GET => self.property_get(sqe),
            fctype::PROPERTY_SET => self.property_set(sqe),
            // Connect only opens a queue; Disconnect only closes I/O queues.
            fctype::CONNECT => Err(CmdError::SEQUENCE),
            fctype::DISCONNECT => Err(CmdError::INVALID_FIELD),
            _ => Err(CmdError::INVALID_OPCODE),
        }
    }

    fn property_get(&self, sqe: &Sqe) -> Result<Response, CmdError> {
        let size8 = match sqe.cdw10 & 0x7 {
            0 => false,
            1 => true,
            _ => return Err(CmdError::INVALID_FIELD),
        };
        let value: u64 = match (sqe.cdw11, size8) {
            (prop::CAP, true) => self.cap(),
            (prop::VS, false) => u64::from(identify::VERSION),
            (prop::CC, false) => u64::from(self.cc),
            (prop::CSTS, false) => u64::from(self.csts),
            _ => return Err(CmdError::INVALID_FIELD),
        };
        let mut r = Response::ok(sqe.cid, 0, value as u32);
        r.cqe.dw1 = (value >> 32) as u32;
        Ok(r)
    }

    fn property_set(&mut self, sqe: &Sqe) -> Result<Response, CmdError> {
        // Only CC is writable, and it is a 4-byte property.
        if sqe.cdw10 & 0x7 != 0 || sqe.cdw11 != prop::CC {
            return Err(CmdError::INVALID_FIELD);
        }
        self.write_cc(sqe.cdw12);
        Ok(Response::ok(sqe.cid, 0, 0))
    }

    /// Applies a CC write: EN 0→1 makes the controller ready (or fatal if
    /// the configuration is unusable), EN 1→0 resets it, SHN requests a
    /// shutdown which completes at once (nothing is cached here).
    fn write_cc(&mut self, new: u32) {
        let old = self.cc;
        self.cc = new;
        let (was_en, en) = (old & CC_EN != 0, new & CC_EN != 0);
        if en && !was_en {
            if self.cc_valid(new) {
                self.csts = CSTS_RDY;
                self.shared.ready.store(true, Ordering::Release);
            } else {
                warn!(cntlid = self.cntlid(), cc = new, "unsupported CC on enable");
                self.csts |= CSTS_CFS;
            }
        } else if !en && was_en {
            self.reset();
        }
        let (old_shn, shn) = (old & CC_SHN_MASK, new & CC_SHN_MASK);
        if shn != 0 && old_shn == 0 {
            self.csts = (self.csts & !CSTS_SHST_MASK) | CSTS_SHST_COMPLETE;
            self.shared.ready.store(false, Ordering::Release);
        } else if shn == 0 && old_shn != 0 {
            self.csts &= !CSTS_SHST_MASK;
        }
    }

    fn cc_valid(&self, cc: u32) -> bool {
        let css = (cc >> 4) & 0x7;
        let mps = (cc >> 7) & 0xF;
        let ams = (cc >> 11) & 0x7;
        let iosqes = (cc >> 16) & 0xF;
        let iocqes = (cc >> 20) & 0xF;
        // Admin-only (discovery) controllers ignore the I/O entry sizes.
        let sizes_ok = self.is_discovery() || (iosqes == 6 && iocqes == 4);
        css == 0 && mps == 0 && ams == 0 && sizes_ok
    }

    /// Controller reset: back to the state right after Connect, except the
    /// association (admin queue, KATO) stays.
    fn reset(&mut self) {
        self.csts = 0;
        self.features = Features::default();
        self.aers.clear();
        self.completions.clear();
        self.ns_masked = false;
        self.disc_masked = false;
        self.shared.ready.store(false, Ordering::Release);
        self.shared.granted_io_queues.store(0, Ordering::Release);
    }

    // ---- Identify ----

    fn identify(&self, sqe: &Sqe) -> Result<Response, CmdError> {
        let cns = (sqe.cdw10 & 0xFF) as u8;
        let csi = (sqe.cdw11 >> 24) as u8;
        check_data_to_host(sqe, IDENTIFY_LEN as u64)?;
        let data = match (&self.subsys, cns) {
            (_, 0x01) => self.identify_controller(),
            // NVM command set specific controller structure: nothing beyond
            // the base structure to report, so zeroes (Linux reads DMRL /
            // DMRSL / WZSL here; zero means "no limit"). Early 6.1 kernels
            // also ask discovery controllers, so answer them the same way.
            (_, 0x06) if csi == 0 => vec![0; IDENTIFY_LEN],
            (None, _) => return Err(CmdError::INVALID_FIELD),
            (Some(s), 0x00) => {
                let nsid = self.valid_nsid(sqe.nsid)?;
                s.snapshot().get(&nsid).map(identify::namespace).unwrap_or_else(|| vec![0; IDENTIFY_LEN])
            }
            (Some(s), 0x02) => {
                if sqe.nsid >= 0xFFFF_FFFE {
                    return Err(CmdError::INVALID_NAMESPACE);
                }
                identify::active_list(s.snapshot().keys().copied(), sqe.nsid)
            }
            (Some(s), 0x03) => {
                let nsid = self.valid_nsid(sqe.nsid)?;
                s.snapshot().get(&nsid).map(identify::descriptors).ok_or(CmdError::INVALID_NAMESPACE)?
            }
            // NVM command set specific namespace structure: no fields beyond
            // the base structure apply (no PI, no extended LBA formats).
            (Some(_), 0x05) if csi == 0 => {
                self.valid_nsid(sqe.nsid)?;
                vec![0; IDENTIFY_LEN]
            }
            (Some(s), 0x08) => {
                let nsid = self.valid_nsid(sqe.nsid)?;
                s.snapshot().get(&nsid).map(identify::namespace_independent).unwrap_or_else(|| vec![0; IDENTIFY_LEN])
            }
            _ => return Err(CmdError::INVALID_FIELD),
        };
        Ok(Response::with_data(sqe.cid, 0, data))
    }

    /// An NSID that names a (possibly inactive) namespace: 1..=NN.
    fn valid_nsid(&self, nsid: u32) -> Result<u32, CmdError> {
        if nsid == 0 || nsid == NSID_ALL || nsid > self.limits.max_namespaces {
            return Err(CmdError::INVALID_NAMESPACE);
        }
        Ok(nsid)
    }

    fn identify_controller(&self) -> Vec<u8> {
        let table = self.subsys.as_ref().map(|s| s.snapshot());
        let any = |f: fn(&crate::config::Namespace) -> bool| table.as_ref().is_some_and(|t| t.values().any(f));
        let (serial, model, fr) = match &self.subsys {
            Some(s) => (s.serial.as_str(), s.model.as_str(), s.firmware_rev.as_str()),
            None => ("discovery", "ferrofabric discovery", env!("CARGO_PKG_VERSION")),
        };
        let id = ControllerIdentity {
            cntlid: self.cntlid(),
            subnqn: &self.subnqn,
            serial,
            model,
            firmware_rev: fr,
            discovery: self.is_discovery(),
            dsm: any(|n| n.deallocate),
            write_zeroes: any(|n| n.write_zeroes),
            vwc: any(|n| n.vwc),
        };
        identify::controller(&id, &self.limits)
    }

    fn any_vwc(&self) -> bool {
        self.subsys.as_ref().is_some_and(|s| s.snapshot().values().any(|n| n.vwc))
    }

    // ---- Get Log Page ----

    fn max_admin_xfer(&self) -> u64 {
        match self.limits.mdts_bytes() {
            Some(m) if !self.is_discovery() => m.min(ADMIN_MAX_XFER),
            _ => ADMIN_MAX_XFER,
        }
    }

    fn get_log_page(&mut self, sqe: &Sqe) -> Result<Response, CmdError> {
        let req = LogRequest::decode(sqe)?;
        if req.len > self.max_admin_xfer() {
            return Err(CmdError::INVALID_FIELD);
        }
        check_data_to_host(sqe, req.len)?;
        let len = usize::try_from(req.len).map_err(|_| CmdError::INVALID_FIELD)?;
        let full = match (self.is_discovery(), req.lid) {
            (true, logpage::LID_DISCOVERY) => self.target.discovery_log(&self.hostnqn),
            (false, logpage::LID_SUPPORTED) => logpage::supported(&logpage::NVM_LIDS),
            (false, logpage::LID_ERROR) => logpage::error_info(),
            (false, logpage::LID_SMART) => logpage::smart(),
            (false, logpage::LID_FW_SLOT) => {
                let fr = self.subsys.as_ref().map(|s| s.firmware_rev.clone()).unwrap_or_default();
                logpage::firmware_slot(&fr)
            }
            (false, logpage::LID_CHANGED_NS) => logpage::changed_namespaces(&lock(&self.shared.notices).changed_ns),
            (false, logpage::LID_CMD_EFFECTS) if req.csi == 0 => logpage::command_effects(),
            (false, logpage::LID_CMD_EFFECTS) => return Err(CmdError::INVALID_FIELD),
            _ => return Err(CmdError::dnr(sc::INVALID_LOG_PAGE)),
        };
        let data = logpage::window(&full, req.offset, len)?;
        // Reading the log with RAE clear re-arms the event it reports.
        if !req.rae {
            match req.lid {
                logpage::LID_CHANGED_NS => {
                    lock(&self.shared.notices).changed_ns.clear();
                    self.ns_masked = false;
                }
                logpage::LID_DISCOVERY => self.disc_masked = false,
                _ => {}
            }
        }
        Ok(Response::with_data(sqe.cid, 0, data))
    }

    // ---- Features ----

    fn feature_allowed(&self, f: u8) -> bool {
        if self.is_discovery() {
            return matches!(f, fid::ASYNC_EVENT_CONFIG | fid::KATO);
        }
        match f {
            fid::VWC => self.any_vwc(),
            fid::ARBITRATION
            | fid::POWER_MGMT
            | fid::TEMP_THRESHOLD
            | fid::ERROR_RECOVERY
            | fid::NUM_QUEUES
            | fid::WRITE_ATOMICITY
            | fid::ASYNC_EVENT_CONFIG
            | fid::KATO
            | fid::HOST_ID => true,
            _ => false,
        }
    }

    fn set_features(&mut self, sqe: &Sqe, now: Instant) -> Result<Response, CmdError> {
        let f = (sqe.cdw10 & 0xFF) as u8;
        if !self.feature_allowed(f) {
            return Err(CmdError::INVALID_FIELD);
        }
        if sqe.cdw10 & (1 << 31) != 0 {
            return Err(CmdError::dnr(sc::FEATURE_NOT_SAVEABLE));
        }
        let v = sqe.cdw11;
        let mut dw0 = 0;
        match f {
            fid::ARBITRATION => self.features.arbitration = v,
            fid::POWER_MGMT => {
                // One power state (NPSS = 0).
                if v & 0x1F != 0 {
                    return Err(CmdError::INVALID_FIELD);
                }
                self.features.power_mgmt = v;
            }
            fid::TEMP_THRESHOLD => {
                let (under, th) = temp_select(v)?;
                if under {
                    self.features.temp_under = th;
                } else {
                    self.features.temp_over = th;
                }
            }
            fid::ERROR_RECOVERY => {
                // DULBE needs deallocated-block errors, which are not offered.
                if v & (1 << 16) != 0 {
                    return Err(CmdError::INVALID_FIELD);
                }
                self.features.error_recovery = v;
            }
            fid::VWC => self.features.vwc_enabled = v & 1 != 0,
            fid::NUM_QUEUES => dw0 = self.set_num_queues(v)?,
            fid::WRITE_ATOMICITY => self.features.write_atomicity = v & 1,
            fid::ASYNC_EVENT_CONFIG => self.features.aec = v,
            fid::KATO => {
                self.kato_ms = v.div_ceil(1000).saturating_mul(1000);
                self.last_keep_alive = now;
            }
            // The host identifier comes with Connect on fabrics.
            fid::HOST_ID => return Err(CmdError::SEQUENCE),
            _ => return Err(CmdError::INVALID_FIELD),
        }
        Ok(Response::ok(sqe.cid, 0, dw0))
    }

    /// Grants min(requested, max) submission and completion queues (both
    /// 0's based in dw0), remembered for I/O Connect validation.
    fn set_num_queues(&mut self, v: u32) -> Result<u32, CmdError> {
        let nsqr = v & 0xFFFF;
        let ncqr = v >> 16;
        if nsqr == 0xFFFF || ncqr == 0xFFFF {
            return Err(CmdError::INVALID_FIELD);
        }
        if self.target.has_io_queues(self.cntlid()) {
            return Err(CmdError::SEQUENCE);
        }
        let max = u32::from(self.limits.max_io_queues) - 1;
        let (nsqa, ncqa) = (nsqr.min(max), ncqr.min(max));
        // Queue pairs: usable I/O queues are limited by the smaller side.
        self.shared.granted_io_queues.store(nsqa.min(ncqa) + 1, Ordering::Release);
        Ok((ncqa << 16) | nsqa)
    }

    fn get_features(&self, sqe: &Sqe) -> Result<Response, CmdError> {
        let f = (sqe.cdw10 & 0xFF) as u8;
        let sel = (sqe.cdw10 >> 8) & 0x7;
        if !self.feature_allowed(f) {
            return Err(CmdError::INVALID_FIELD);
        }
        let defaults = Features::default();
        let feat = match sel {
            0 => &self.features,
            1 | 2 => &defaults,
            3 => {
                // Capabilities: changeable (bit 2), never saveable or
                // namespace specific; the host identifier is fixed.
                let caps = if f == fid::HOST_ID { 0 } else { 1 << 2 };
                return Ok(Response::ok(sqe.cid, 0, caps));
            }
            _ => return Err(CmdError::INVALID_FIELD),
        };
        let dw0 = match f {
            fid::ARBITRATION => feat.arbitration,
            fid::POWER_MGMT => feat.power_mgmt,
            fid::TEMP_THRESHOLD => {
                let (under, _) = temp_select(sqe.cdw11 & !0xFFFF)?;
                let th = if under { feat.temp_under } else { feat.temp_over };
                (sqe.cdw11 & 0x003F_0000) | u32::from(th)
            }
            fid::ERROR_RECOVERY => feat.error_recovery,
            fid::VWC => u32::from(feat.vwc_enabled),
            fid::NUM_QUEUES => {
                let g = match (sel, self.shared.granted_io_queues.load(Ordering::Acquire)) {
                    (0, g) if g != 0 => g,
                    _ => u32::from(self.limits.max_io_queues),
                };
                ((g - 1) << 16) | (g - 1)
            }
            fid::WRITE_ATOMICITY => feat.write_atomicity,
            fid::ASYNC_EVENT_CONFIG => feat.aec,
            fid::KATO => {
                if sel == 0 {
                    self.kato_ms
                } else {
                    0
                }
            }
            fid::HOST_ID => {
                // Only the 128-bit form (EXHID) exists on fabrics.
                if sqe.cdw11 & 1 == 0 {
                    return Err(CmdError::INVALID_FIELD);
                }
                check_data_to_host(sqe, 16)?;
                return Ok(Response::with_data(sqe.cid, 0, self.hostid.to_vec()));
            }
            _ => return Err(CmdError::INVALID_FIELD),
        };
        Ok(Response::ok(sqe.cid, 0, dw0))
    }

    // ---- Asynchronous events ----

    fn async_event_request(&mut self, cid: u16) -> AdminOutcome {
        if self.aers.len() > usize::from(AERL) {
            return AdminOutcome::Complete(Response::err(cid, 0, CmdError::dnr(sc::AER_LIMIT_EXCEEDED)));
        }
        self.aers.push_back(cid);
        self.deliver_events();
        AdminOutcome::Parked
    }

    /// Completes parked AERs for pending, enabled, unmasked notices. A
    /// notice for a disabled event is dropped (the log still accumulates).
    fn deliver_events(&mut self) {
        let discovery = self.is_discovery();
        while !self.aers.is_empty() {
            let mut n = lock(&self.shared.notices);
            let event = if !discovery && n.ns_pending {
                if self.features.aec & OAES_NS_ATTR == 0 {
                    n.ns_pending = false;
                    None
                } else if self.ns_masked {
                    None
                } else {
                    n.ns_pending = false;
                    self.ns_masked = true;
                    Some((AER_INFO_NS_CHANGED, logpage::LID_CHANGED_NS))
                }
            } else if discovery && n.disc_pending {
                if self.features.aec & OAES_DISCOVERY == 0 {
                    n.disc_pending = false;
                    None
                } else if self.disc_masked {
                    None
                } else {
                    n.disc_pending = false;
                    self.disc_masked = true;
                    Some((AER_INFO_DISC_CHANGED, logpage::LID_DISCOVERY))
                }
            } else {
                None
            };
            drop(n);
            let Some((info, lid)) = event else { break };
            if let Some(cid) = self.aers.pop_front() {
                let dw0 = AER_TYPE_NOTICE | (info << 8) | (u32::from(lid) << 16);
                self.completions.push_back(Response::ok(cid, 0, dw0));
            }
        }
    }

    // ---- Abort ----

    fn abort(&mut self, sqe: &Sqe) -> AdminOutcome {
        let sqid = (sqe.cdw10 & 0xFFFF) as u16;
        let target_cid = (sqe.cdw10 >> 16) as u16;
        let not_aborted = AdminOutcome::Complete(Response::ok(sqe.cid, 0, 1));
        if self.aborts_in_flight > ACL {
            return AdminOutcome::Complete(Response::err(sqe.cid, 0, CmdError::retry(sc::ABORT_LIMIT_EXCEEDED)));
        }
        if sqid == 0 {
            // Only parked AERs can still be outstanding on the admin queue.
            return match self.aers.iter().position(|&c| c == target_cid) {
                Some(i) => {
                    self.aers.remove(i);
                    self.completions.push_back(Response { cqe: aborted(target_cid, 0), data: None });
                    AdminOutcome::Complete(Response::ok(sqe.cid, 0, 0))
                }
                None => not_aborted,
            };
        }
        let granted = match self.shared.granted_io_queues.load(Ordering::Acquire) {
            0 => u32::from(self.limits.max_io_queues),
            g => g,
        };
        if u32::from(sqid) > granted {
            return not_aborted;
        }
        self.aborts_in_flight += 1;
        AdminOutcome::Abort(AbortRequest { cid: sqe.cid, sqid, target_cid })
    }
}

impl Drop for TargetController {
    fn drop(&mut self) {
        self.release();
    }
}

/// Temperature threshold selection from cdw11: (under?, TMPTH). Only the
/// composite sensor (TMPSEL 0, or Fh = all) exists.
fn temp_select(v: u32) -> Result<(bool, u16), CmdError> {
    let tmpsel = (v >> 16) & 0xF;
    let thsel = (v >> 20) & 0x3;
    if tmpsel != 0 && tmpsel != 0xF {
        return Err(CmdError::INVALID_FIELD);
    }
    match thsel {
        0 => Ok((false, (v & 0xFFFF) as u16)),
        1 => Ok((true, (v & 0xFFFF) as u16)),
        _ => Err(CmdError::INVALID_FIELD),
    }
}

/// Data going to the host must use SGLs with a Transport SGL Data Block of
/// exactly the command's length.
fn check_data_to_host(sqe: &Sqe, len: u64) -> Result<(), CmdError> {
    if sqe.psdt() != PSDT_SGL_MPTR_CONTIG {
        return Err(CmdError::INVALID_FIELD);
    }
    if !sqe.dptr.is_transport() {
        return Err(CmdError::dnr(status::SGL_DESCRIPTOR_TYPE_INVALID));
    }
    if u64::from(sqe.dptr.length) != len {
        return Err(CmdError::SGL_LENGTH);
    }
    Ok(())
}
