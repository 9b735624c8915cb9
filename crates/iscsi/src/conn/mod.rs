//! The target side of one iSCSI connection, sans-IO: the login phase, then the full feature phase
//! (commands with their data gathered, R2Ts, Data-In, task management, NOP, text, logout, Reject).
//!
//! Owns the connection's protocol state: the decoder, StatSN, the session's CmdSN window (one
//! connection per session), the table of tasks by ITT, and the outputs queued for the driver. What a
//! command *means* is the runtime's business: it receives [`TargetOutput::Command`] and answers with
//! [`TargetConn::complete`].
//!
//! Driving it, the same way as the NVMe/TCP target core:
//!
//! ```text
//! loop {
//!     match conn.recv_target(&mut pool) {
//!         RecvTarget::Small(n) => { read up to n (or more) bytes anywhere; let used = conn.feed(bytes, &mut pool); }
//!         RecvTarget::Data(dst) => { read into dst (a command's buffer); conn.data_received(n, &mut pool); }
//!         RecvTarget::Closed => break,
//!     }
//!     while let Some(out) = conn.poll_output() { ... Send / SendBuf / SessionRequest / Command / TaskMgmt / Close }
//! }
//! ```

mod control;
mod scsi;

use crate::config::PortalConfig;
use crate::decoder::{Decoder, DecoderConfig, Frame, Header, Need};
use crate::error::Error;
use crate::keys::{Params, SessionType};
use crate::login::{Login, LoginReply, LoginStatus, LoginStep, SessionRequest};
use crate::pdu::{BHS_LEN, LoginResponse, Pdu, RESERVED_TAG, Reject, RejectReason, SeqNums, Stage, ahs::Cdb};
use crate::tx::{Digests, TxData, TxPdu};
use scsi::Task;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes ITTs for the task table with one multiply and a fold instead of SipHash (several lookups per
/// command). The initiator picks ITTs, but the table is per connection and bounded by the command
/// window: a crafted collision slows only the connection that crafted it.
#[derive(Default, Clone, Copy)]
struct IttHasher(u64);

impl Hasher for IttHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32).rotate_left(8));
        }
    }
    fn write_u32(&mut self, n: u32) {
        let x = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// Tasks by ITT.
type TaskMap<B> = HashMap<u32, Task<B>, BuildHasherDefault<IttHasher>>;

/// A data buffer the connection fills (write data) or sends (read data).
pub trait BufAlloc<B> {
    /// A buffer of exactly `len` bytes, or `None` when the pool is exhausted.
    fn alloc(&mut self, len: usize) -> Option<B>;
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Targets, credentials and limits of the portal the connection arrived on.
    pub portal: Arc<PortalConfig>,
    /// Data segments of commands at or over this size are offered as [`RecvTarget::Data`] (read
    /// straight into the command's buffer); smaller ones are copied from what [`TargetConn::feed`] gets.
    pub direct_data_min: usize,
    /// Most immediate commands outstanding at once (beyond the CmdSN window); more are rejected.
    pub max_immediate: usize,
}

impl ConnConfig {
    /// Settings for `portal` with a 4 KiB cut-over and 16 immediate commands.
    pub fn new(portal: Arc<PortalConfig>) -> Self {
        ConnConfig { portal, direct_data_min: 4096, max_immediate: 16 }
    }
}

/// The connection's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Login requests are being answered.
    Login,
    /// The login is ready to end; the runtime's [`TargetConn::admit`] or [`TargetConn::refuse`] is due.
    AwaitAdmit,
    /// Full feature phase.
    FullFeature,
    /// Nothing more is accepted.
    Closed,
}

/// A SCSI command ready to execute.
#[derive(Debug)]
pub struct Command<B> {
    /// Initiator Task Tag: the handle for [`TargetConn::complete`].
    pub itt: u32,
    /// Logical unit (the 8-byte SAM LUN field).
    pub lun: u64,
    /// The CDB (up to 260 bytes with an extended-CDB AHS).
    pub cdb: Cdb,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
    /// R bit: data flows to the initiator.
    pub read: bool,
    /// W bit: data flows to the target.
    pub write: bool,
    /// Expected Data Transfer Length (the write length of a bidirectional command).
    pub edtl: u32,
    /// Expected read length of a bidirectional command.
    pub bidi_read_len: u32,
    /// Sent for immediate delivery.
    pub immediate: bool,
    /// The write data, `edtl` bytes, when `write`.
    pub data: Option<B>,
}

/// The runtime's answer to a [`Command`].
#[derive(Debug)]
pub struct Completion<B> {
    /// iSCSI response: 0 command completed at target, 1 target failure.
    pub response: u8,
    /// SCSI status.
    pub status: u8,
    /// Sense data (empty without); non-empty sense goes in a SCSI Response.
    pub sense: Vec<u8>,
    /// Read data: what the command produced (more than expected is cut and reported as overflow).
    pub data: Option<B>,
    /// Bytes the command wanted to write, when it differs from the EDTL (for the residual).
    pub write_len: Option<u32>,
}

impl<B> Completion<B> {
    /// GOOD status, no data.
    pub fn good() -> Self {
        Completion { response: 0, status: 0, sense: Vec::new(), data: None, write_len: None }
    }

    /// GOOD status with read data.
    pub fn with_data(data: B) -> Self {
        Completion { data: Some(data), ..Self::good() }
    }

    /// CHECK CONDITION with sense data.
    pub fn check_condition(sense: Vec<u8>) -> Self {
        Completion { status: 0x02, sense, ..Self::good() }
    }
}

/// Task management functions (RFC 7143 section 11.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TmfFunction {
    /// Abort one task.
    AbortTask,
    /// Abort this session's tasks on a LUN.
    AbortTaskSet,
    /// Clear ACA (not supported).
    ClearAca,
    /// Abort all tasks on a LUN (every session).
    ClearTaskSet,
    /// Reset a LUN.
    LunReset,
    /// Reset the target.
    TargetWarmReset,
    /// Reset the target and drop all connections (not supported).
    TargetColdReset,
    /// Reassign a task to this connection (ErrorRecoveryLevel 2 only).
    TaskReassign,
}

impl TmfFunction {
    /// Parses a function code.
    pub const fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::AbortTask,
            2 => Self::AbortTaskSet,
            3 => Self::ClearAca,
            4 => Self::ClearTaskSet,
            5 => Self::LunReset,
            6 => Self::TargetWarmReset,
            7 => Self::TargetColdReset,
            8 => Self::TaskReassign,
            _ => return None,
        })
    }
}

/// TMF response codes (RFC 7143 section 11.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TmfResponseCode {
    /// Function complete.
    Complete = 0,
    /// Task does not exist.
    TaskDoesNotExist = 1,
    /// LUN does not exist.
    LunDoesNotExist = 2,
    /// Task still allegiant.
    TaskStillAllegiant = 3,
    /// Task allegiance reassignment not supported.
    ReassignNotSupported = 4,
    /// Task management function not supported.
    NotSupported = 5,
    /// Function authorization failed.
    AuthorizationFailed = 6,
    /// Function rejected.
    Rejected = 255,
}

/// A task management request for the runtime; answer with [`TargetConn::complete_tmf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmt {
    /// ITT of the TMF request (the handle for the answer).
    pub itt: u32,
    /// The function.
    pub function: TmfFunction,
    /// Logical unit.
    pub lun: u64,
    /// Referenced task (ABORT TASK).
    pub ref_itt: Option<u32>,
    /// ITTs of this connection's commands the runtime holds that the function aborts: their
    /// completions will be dropped (aborted tasks get no response).
    pub aborted: Vec<u32>,
}

/// Why the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The initiator logged out (the response was queued first).
    Logout,
    /// The login failed with this status (the response was queued first).
    LoginFailed(LoginStatus),
    /// A protocol violation at ErrorRecoveryLevel 0 (a Reject may have been queued first).
    ProtocolError(&'static str),
    /// A header digest failed: the framing is lost.
    HeaderDigest,
}

/// What the connection asks its driver to do, in order.
#[derive(Debug)]
pub enum TargetOutput<B> {
    /// Send this PDU.
    Send(TxPdu),
    /// Send these PDUs in order; their [`TxData::Range`] data are ranges of `buf` (read data).
    SendBuf {
        /// The buffer the PDUs' data come from.
        buf: B,
        /// The PDUs.
        pdus: Vec<TxPdu>,
    },
    /// The login wants to enter the full feature phase: call [`TargetConn::admit`] or [`TargetConn::refuse`].
    SessionRequest(SessionRequest),
    /// Execute this command and call [`TargetConn::complete`].
    Command(Command<B>),
    /// Perform this task management function and call [`TargetConn::complete_tmf`].
    TaskMgmt(TaskMgmt),
    /// The initiator answered the target ping with this TTT.
    PingReply(u32),
    /// The initiator logs out (0: the session, 1: this connection); the response and a close follow
    /// once outstanding commands are completed.
    Logout(u8),
    /// Flush what was queued, then close the connection.
    Close(CloseReason),
}

/// What to read next.
#[derive(Debug)]
pub enum RecvTarget<'a> {
    /// Read up to this many bytes (more is fine) into any buffer and pass them to [`TargetConn::feed`].
    Small(usize),
    /// Read into this slice of a command's buffer, then call [`TargetConn::data_received`].
    Data(&'a mut [u8]),
    /// Nothing more is accepted.
    Closed,
}

/// Where the data segment of the PDU being received goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    /// Not decided yet (header still arriving).
    Pending,
    /// Into `small` (login, text, ping data).
    Small,
    /// Into the buffer of task `itt` at `at`.
    Task { itt: u32, at: usize },
    /// Read and dropped; what to do at the end is in `verdict`.
    Discard,
}

/// What to do when a PDU whose header was judged at once is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Process normally.
    Go,
    /// Ignore silently (outside the CmdSN window).
    Drop,
    /// Reject it.
    Reject(RejectReason),
    /// Reject it, then close (ErrorRecoveryLevel 0 cannot recover).
    Fatal(RejectReason, &'static str),
}

/// The target side of one iSCSI connection. See the module docs.
pub struct TargetConn<B> {
    cfg: ConnConfig,
    dec: Decoder,
    phase: Phase,
    login: Option<Box<Login>>,
    pending_final: Option<(LoginReply, u32)>,
    params: Params,
    session_type: SessionType,
    digests: Digests,
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
    stat_sn: u32,
    exp_cmd_sn: u32,
    tasks: TaskMap<B>,
    /// Non-immediate commands received and not completed (they hold window slots).
    in_window: u32,
    immediate: usize,
    next_ttt: u32,
    rx: Rx,
    verdict: Verdict,
    small: Vec<u8>,
    login_started: bool,
    out: VecDeque<TargetOutput<B>>,
    control: control::ControlState,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> TargetConn<B> {
    /// A connection awaiting its first Login Request.
    pub fn new(cfg: ConnConfig) -> Self {
        let login = Box::new(Login::new(cfg.portal.clone()));
        TargetConn {
            dec: Decoder::new(DecoderConfig::default()),
            phase: Phase::Login,
            login: Some(login),
            pending_final: None,
            params: Params::default(),
            session_type: SessionType::Normal,
            digests: Digests::default(),
            isid: [0; 6],
            tsih: 0,
            cid: 0,
            stat_sn: 0,
            exp_cmd_sn: 0,
            tasks: TaskMap::default(),
            in_window: 0,
            immediate: 0,
            next_ttt: 1,
            rx: Rx::Pending,
            verdict: Verdict::Go,
            small: Vec::new(),
            login_started: false,
            out: VecDeque::new(),
            control: control::ControlState::default(),
            cfg,
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether input is no longer accepted.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The negotiated parameters (RFC defaults before the login completes).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Normal or discovery session.
    pub fn session_type(&self) -> SessionType {
        self.session_type
    }

    /// Tasks the connection tracks (receiving data or executing).
    pub fn outstanding(&self) -> usize {
        self.tasks.len()
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<TargetOutput<B>> {
        self.out.pop_front()
    }

    /// The next CmdSN expected and the highest accepted.
    pub fn window(&self) -> (u32, u32) {
        (self.exp_cmd_sn, self.max_cmd_sn())
    }

    fn max_cmd_sn(&self) -> u32 {
        let depth = self.cfg.portal.limits.queue_depth.max(1);
        self.exp_cmd_sn.wrapping_add(depth.saturating_sub(self.in_window)).wrapping_sub(1)
    }

    /// Sequence numbers for a PDU that carries status (StatSN advances).
    fn status_sn(&mut self) -> SeqNums {
        let sn = SeqNums { stat_sn: self.stat_sn, exp_cmd_sn: self.exp_cmd_sn, max_cmd_sn: self.max_cmd_sn() };
        self.stat_sn = self.stat_sn.wrapping_add(1);
        sn
    }

    /// Sequence numbers for a PDU that carries no status (StatSN is the next one, not advanced).
    fn peek_sn(&self) -> SeqNums {
        SeqNums { stat_sn: self.stat_sn, exp_cmd_sn: self.exp_cmd_sn, max_cmd_sn: self.max_cmd_sn() }
    }

    fn alloc_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// Encodes and queues one PDU.
    fn send(&mut self, pdu: Pdu, data: Vec<u8>) {
        let data = if data.is_empty() { TxData::None } else { TxData::Owned(data) };
        match TxPdu::encode(&pdu, self.digests, data, &[]) {
            Ok(tx) => self.out.push_back(TargetOutput::Send(tx)),
            Err(_) => self.close(CloseReason::ProtocolError("could not encode a PDU")),
        }
    }

    /// Queues a Reject carrying `bhs`.
    fn reject(&mut self, reason: RejectReason, bhs: &[u8; BHS_LEN]) {
        let sn = self.status_sn();
        self.send(Pdu::Reject(Reject { reason: reason as u8, sn, data_sn: 0 }), bhs.to_vec());
    }

    /// Stops input and queues the close.
    fn close(&mut self, why: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.dec.close();
        self.out.push_back(TargetOutput::Close(why));
    }

    /// What to read next; may allocate a command's buffer through `alloc`.
    pub fn recv_target(&mut self, alloc: &mut impl BufAlloc<B>) -> RecvTarget<'_> {
        self.pump(alloc);
        if self.phase == Phase::Closed {
            return RecvTarget::Closed;
        }
        match self.dec.next_need() {
            Need::Header { len } | Need::Trailer { len } => RecvTarget::Small(len),
            Need::Done => RecvTarget::Small(0),
            Need::Closed => RecvTarget::Closed,
            Need::Data { len } => {
                let total = self.dec.header().map_or(0, |h| h.lengths.data_len as usize);
                match self.rx {
                    Rx::Task { itt, at } if total >= self.cfg.direct_data_min => {
                        match self.tasks.get_mut(&itt).and_then(|t| t.buf_mut()) {
                            Some(b) => RecvTarget::Data(b.as_mut().get_mut(at..at + len).unwrap_or(&mut [])),
                            None => RecvTarget::Small(len),
                        }
                    }
                    _ => RecvTarget::Small(len),
                }
            }
        }
    }

    /// Supplies received bytes (headers, digests, padding, and data too: it is copied to where it
    /// belongs); returns how many were taken. Stops early at the end of a PDU only when the
    /// connection closes.
    pub fn feed(&mut self, bytes: &[u8], alloc: &mut impl BufAlloc<B>) -> usize {
        let mut used = 0;
        loop {
            self.pump(alloc);
            if self.phase == Phase::Closed || used >= bytes.len() {
                return used;
            }
            let rest = bytes.get(used..).unwrap_or(&[]);
            let r = match self.dec.next_need() {
                Need::Data { len } => {
                    let chunk = rest.get(..len.min(rest.len())).unwrap_or(&[]);
                    self.route(chunk);
                    self.dec.feed(chunk)
                }
                Need::Closed => return used,
                _ => self.dec.feed(rest),
            };
            match r {
                Ok(n) => used += n,
                Err(e) => {
                    self.on_decode_error(e);
                    return used;
                }
            }
        }
    }

    /// Reports `n` bytes written into the slice from [`TargetConn::recv_target`].
    pub fn data_received(&mut self, n: usize, alloc: &mut impl BufAlloc<B>) {
        if n == 0 || self.phase == Phase::Closed {
            return;
        }
        let Rx::Task { itt, at } = self.rx else { return };
        let r = match self.tasks.get(&itt).and_then(|t| t.buf()) {
            Some(b) => self.dec.feed(b.as_ref().get(at..at + n).unwrap_or(&[])),
            None => return,
        };
        self.rx = Rx::Task { itt, at: at + n };
        if let Err(e) = r {
            self.on_decode_error(e);
        }
        self.pump(alloc);
    }

    /// Copies data-segment bytes to where the current PDU's data goes.
    fn route(&mut self, chunk: &[u8]) {
        match self.rx {
            Rx::Small => self.small.extend_from_slice(chunk),
            Rx::Task { itt, at } => {
                if let Some(dst) = self
                    .tasks
                    .get_mut(&itt)
                    .and_then(|t| t.buf_mut())
                    .and_then(|b| b.as_mut().get_mut(at..at + chunk.len()))
                {
                    dst.copy_from_slice(chunk);
                }
                self.rx = Rx::Task { itt, at: at + chunk.len() };
            }
            Rx::Pending | Rx::Discard => {}
        }
    }

    fn on_decode_error(&mut self, e: Error) {
        match e {
            Error::HeaderDigest { .. } => self.close(CloseReason::HeaderDigest),
            _ => self.close(CloseReason::ProtocolError("undecodable input")),
        }
    }

    /// Judges a header as soon as it is in, and finishes complete PDUs.
    fn pump(&mut self, alloc: &mut impl BufAlloc<B>) {
        while self.phase != Phase::Closed {
            if self.rx == Rx::Pending
                && let Some(h) = self.dec.header().cloned()
            {
                self.small.clear();
                self.verdict = Verdict::Go;
                self.rx = self.on_header(&h, alloc);
            }
            if self.dec.next_need() != Need::Done {
                return;
            }
            let frame = self.dec.finish();
            let rx = std::mem::replace(&mut self.rx, Rx::Pending);
            match frame {
                Ok(f) => self.on_frame(f, rx),
                Err(e) => self.on_decode_error(e),
            }
        }
    }

    /// Decides where a PDU's data goes, from its header alone.
    fn on_header(&mut self, h: &Header, alloc: &mut impl BufAlloc<B>) -> Rx {
        // During login a bad or foreign header fails the login at once, without waiting for a data
        // segment that may be megabytes long or never come.
        if matches!(self.phase, Phase::Login | Phase::AwaitAdmit) {
            match h.pdu {
                Ok(Pdu::LoginRequest(_)) if self.phase == Phase::Login => {}
                Ok(Pdu::LoginRequest(_)) | Err(_) => {
                    self.login_fail_raw(&h.bhs, LoginStatus::INITIATOR_ERROR);
                    return Rx::Discard;
                }
                Ok(_) => {
                    self.login_fail_raw(&h.bhs, LoginStatus::INVALID_DURING_LOGIN);
                    return Rx::Discard;
                }
            }
        }
        let Ok(pdu) = h.pdu else { return Rx::Discard };
        match (self.phase, pdu) {
            (Phase::Login, Pdu::LoginRequest(_)) => Rx::Small,
            (Phase::FullFeature, Pdu::ScsiCommand(c)) => self.command_header(&c, h, alloc),
            (Phase::FullFeature, Pdu::DataOut(d)) => self.data_out_header(&d, h),
            (Phase::FullFeature, Pdu::NopOut(_) | Pdu::TextRequest(_)) => Rx::Small,
            _ => Rx::Discard,
        }
    }

    /// A PDU is complete.
    fn on_frame(&mut self, f: Frame, rx: Rx) {
        let h = f.header;
        match self.phase {
            Phase::Login | Phase::AwaitAdmit => self.login_frame(&h, rx, f.data_digest.is_ok()),
            Phase::FullFeature => {
                let pdu = match h.pdu {
                    Ok(p) => p,
                    Err(e) => {
                        let reason = e.reject_reason().unwrap_or(RejectReason::InvalidPduField);
                        self.reject(reason, &h.bhs);
                        return;
                    }
                };
                match self.verdict {
                    Verdict::Go => {}
                    Verdict::Drop => return,
                    Verdict::Reject(r) => return self.reject(r, &h.bhs),
                    Verdict::Fatal(r, why) => {
                        self.reject(r, &h.bhs);
                        return self.close(CloseReason::ProtocolError(why));
                    }
                }
                if f.data_digest.is_err() {
                    self.on_data_digest_error(&pdu, &h);
                    return;
                }
                self.ffp_pdu(pdu, &h, rx);
            }
            Phase::Closed => {}
        }
    }

    /// A data digest failed on a PDU that was otherwise fine.
    fn on_data_digest_error(&mut self, pdu: &Pdu, h: &Header) {
        self.reject(RejectReason::DataDigest, &h.bhs);
        // Command and Data-Out data lost at ErrorRecoveryLevel 0: the task cannot complete; only
        // connection recovery (a new login) helps. A ping or text is only dropped; the initiator retries.
        if matches!(pdu, Pdu::ScsiCommand(_) | Pdu::DataOut(_)) {
            self.close(CloseReason::ProtocolError("data digest error on command data"));
        }
    }

    fn ffp_pdu(&mut self, pdu: Pdu, h: &Header, rx: Rx) {
        let data = std::mem::take(&mut self.small);
        match pdu {
            Pdu::ScsiCommand(c) => self.command_done(&c, h, rx),
            Pdu::DataOut(d) => self.data_out_done(&d, h),
            Pdu::NopOut(n) => self.nop_out(&n, &data, &h.bhs),
            Pdu::TextRequest(t) => self.text_request(&t, &data, &h.bhs),
            Pdu::TmfRequest(t) => self.tmf_request(&t, &h.bhs),
            Pdu::LogoutRequest(l) => self.logout_request(&l, &h.bhs),
            // No SNACK at ErrorRecoveryLevel 0.
            Pdu::Snack(_) => self.reject(RejectReason::ProtocolError, &h.bhs),
            Pdu::LoginRequest(_) => self.reject(RejectReason::ProtocolError, &h.bhs),
            _ => self.reject(RejectReason::ProtocolError, &h.bhs),
        }
    }

    /// Checks a non-immediate CmdSN against the window and consumes it. `Drop` outside the window (the
    /// RFC's silent ignore); a gap inside it cannot be filled on a single connection at
    /// ErrorRecoveryLevel 0, so it is fatal.
    fn take_cmd_sn(&mut self, cmd_sn: u32) -> Verdict {
        if cmd_sn == self.exp_cmd_sn && self.in_window_sn(cmd_sn) {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            return Verdict::Go;
        }
        if self.in_window_sn(cmd_sn) {
            Verdict::Fatal(RejectReason::ProtocolError, "CmdSN gap on a single-connection session")
        } else {
            Verdict::Drop
        }
    }

    fn in_window_sn(&self, sn: u32) -> bool {
        let after_exp = sn.wrapping_sub(self.exp_cmd_sn) as i32 >= 0;
        let before_max = self.max_cmd_sn().wrapping_sub(sn) as i32 >= 0;
        after_exp && before_max
    }

    // ---- login phase ----

    fn login_frame(&mut self, h: &Header, _rx: Rx, digest_ok: bool) {
        let data = std::mem::take(&mut self.small);
        let req = match h.pdu {
            Ok(Pdu::LoginRequest(r)) if self.phase == Phase::Login && digest_ok => r,
            Ok(Pdu::LoginRequest(_)) | Err(_) => return self.login_fail_raw(&h.bhs, LoginStatus::INITIATOR_ERROR),
            Ok(_) => return self.login_fail_raw(&h.bhs, LoginStatus::INVALID_DURING_LOGIN),
        };
        let Some(login) = self.login.as_mut() else { return };
        if !self.login_started {
            self.login_started = true;
            self.isid = req.isid;
            self.tsih = req.tsih;
            self.cid = req.cid;
            self.stat_sn = req.exp_stat_sn;
            self.exp_cmd_sn = req.cmd_sn;
        }
        match login.on_request(&req, &data) {
            LoginStep::Reply(r) => self.login_reply(&r, req.itt, 0, LoginStatus::SUCCESS),
            LoginStep::Fail(st) => self.login_fail(req.itt, st),
            LoginStep::Admit(sreq, r) => {
                self.pending_final = Some((r, req.itt));
                self.phase = Phase::AwaitAdmit;
                self.out.push_back(TargetOutput::SessionRequest(sreq));
            }
        }
    }

    fn login_reply(&mut self, r: &LoginReply, itt: u32, tsih: u16, status: LoginStatus) {
        let sn = self.status_sn();
        let resp = LoginResponse {
            transit: r.transit,
            cont: r.cont,
            csg: r.csg,
            nsg: r.nsg,
            version_max: 0,
            version_active: 0,
            isid: self.isid,
            tsih,
            itt,
            sn,
            status_class: status.class,
            status_detail: status.detail,
        };
        // Login PDUs never carry digests.
        let data = if r.data.is_empty() { TxData::None } else { TxData::Owned(r.data.clone()) };
        match TxPdu::encode(&Pdu::LoginResponse(resp), Digests::default(), data, &[]) {
            Ok(tx) => self.out.push_back(TargetOutput::Send(tx)),
            Err(_) => self.close(CloseReason::ProtocolError("could not encode a PDU")),
        }
    }

    fn login_fail(&mut self, itt: u32, st: LoginStatus) {
        let stage = self.login.as_ref().map_or(Stage::Security, |l| l.stage());
        let r = LoginReply { transit: false, cont: false, csg: stage, nsg: stage, data: Vec::new() };
        self.login_reply(&r, itt, 0, st);
        self.close(CloseReason::LoginFailed(st));
    }

    /// Fails the login in answer to a PDU that is not a usable Login Request.
    fn login_fail_raw(&mut self, bhs: &[u8; BHS_LEN], st: LoginStatus) {
        if !self.login_started {
            self.isid.copy_from_slice(bhs.get(8..14).unwrap_or(&[0; 6]));
        }
        self.login_fail(Pdu::itt_of(bhs), st);
    }

    /// Admits the session the login asked for ([`TargetOutput::SessionRequest`]): `tsih` is the new
    /// session's handle (or the joined one's). Sends the final Login Response; the connection enters
    /// the full feature phase with the negotiated digests and limits.
    pub fn admit(&mut self, tsih: u16) {
        if self.phase != Phase::AwaitAdmit {
            return;
        }
        let Some((reply, itt)) = self.pending_final.take() else { return };
        let login = self.login.take();
        self.tsih = tsih;
        self.login_reply(&reply, itt, tsih, LoginStatus::SUCCESS);
        if let Some(l) = login {
            self.params = l.params;
            self.session_type = l.session_type();
            self.control.target = l.target.clone();
            self.control.initiator = l.initiator_name().map(str::to_owned);
        }
        self.digests = Digests { header: self.params.header_digest, data: self.params.data_digest };
        self.dec.set_config(DecoderConfig {
            max_data_len: self.params.max_recv_data_segment_length,
            header_digest: self.params.header_digest,
            data_digest: self.params.data_digest,
        });
        self.phase = Phase::FullFeature;
    }

    /// Refuses the session the login asked for: the final Login Response carries `status`, then the
    /// connection closes.
    pub fn refuse(&mut self, status: LoginStatus) {
        if self.phase != Phase::AwaitAdmit {
            return;
        }
        let itt = self.pending_final.take().map_or(0, |(_, itt)| itt);
        self.login_fail(itt, status);
    }
}
