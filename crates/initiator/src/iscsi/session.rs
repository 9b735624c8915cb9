//! [`Session`]: one iSCSI connection of the host, sans-IO. The driver hands it received bytes
//! ([`Session::receive`]), sends what [`Session::poll_transmit`] returns, and collects
//! [`Session::poll_completion`]. It logs in on creation, then carries SCSI commands:
//!
//! - CmdSN is assigned when a command leaves, and only inside the target's window (ExpCmdSN to
//!   MaxCmdSN); commands beyond it wait in order;
//! - reads: Data-In lands in the command's buffer at its offset (DataSN in order, never past the
//!   buffer); the status comes in the last Data-In (S bit) or a SCSI Response;
//! - writes: immediate data up to FirstBurstLength in the command PDU, unsolicited Data-Out up to
//!   FirstBurstLength when InitialR2T=No, and Data-Out for each R2T;
//! - target NOP-In pings are answered; Reject fails the rejected command; discovery sessions run
//!   SendTargets=All; logout ends the session.
//!
//! ErrorRecoveryLevel 0: a protocol error or header digest mismatch fails the connection, and every
//! command in flight completes with [`CommandError::ConnectionLost`]. A data digest mismatch on Data-In
//! fails only its command.

use super::login::{Login, LoginStep, parse_pairs};
use super::scsi::{STATUS_GOOD, Sense};
use super::{IscsiError, IscsiOptions, sn_le, sn_lt};
use ff_iscsi::decoder::{Decoder, DecoderConfig, Frame, Need};
use ff_iscsi::pdu::{
    DataIn, DataOut, LogoutRequest, NopIn, NopOut, Pdu, R2t, RESERVED_TAG, Residual, ScsiCommand, ScsiResponse,
    SeqNums, TextRequest, TextResponse,
};
use ff_iscsi::{Digests, Params, TxData, TxPdu};
use std::collections::{HashMap, VecDeque};

/// Where a command's data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// No data (TEST UNIT READY).
    None,
    /// Data from the target lands here; the length is the Expected Data Transfer Length.
    Read(Vec<u8>),
    /// These bytes go to the target.
    Write(Vec<u8>),
}

/// One SCSI command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The 8-byte LUN ([`super::scsi::lun_to_wire`]).
    pub lun: u64,
    /// The CDB (16 bytes; shorter CDBs are zero padded).
    pub cdb: [u8; 16],
    /// Data direction and buffer.
    pub data: DataDir,
    /// The caller's tag, returned in the completion.
    pub tag: u64,
}

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The target completed it with a SCSI status other than GOOD.
    #[error("SCSI status {status:#04x}{}", sense.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Status {
        /// SCSI status.
        status: u8,
        /// Sense data, when the target sent some.
        sense: Option<Sense>,
    },
    /// The iSCSI service response was "target failure".
    #[error("target failure (iSCSI response {0:#04x})")]
    TargetFailure(u8),
    /// The target rejected the command PDU.
    #[error("rejected by the target (reason {0:#04x})")]
    Rejected(u8),
    /// Read data arrived with a wrong data digest: the buffer is not trustworthy.
    #[error("data digest mismatch")]
    DataDigest,
    /// The connection failed (or logged out) while the command was in flight.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The caller's tag.
    pub tag: u64,
    /// Success, or why not.
    pub result: Result<(), CommandError>,
    /// The command's buffer, handed back (read data is in it).
    pub buf: Option<Vec<u8>>,
    /// Bytes of read data received.
    pub received: u32,
    /// What the target reported as not transferred (or too much).
    pub residual: Residual,
}

/// One target from SendTargets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTarget {
    /// TargetName.
    pub name: String,
    /// Its TargetAddress values (`host:port,tpgt`); empty means the portal that answered.
    pub addresses: Vec<String>,
}

#[derive(Debug)]
struct Task {
    tag: u64,
    lun: u64,
    cdb: [u8; 16],
    read: bool,
    write: bool,
    buf: Vec<u8>,
    received: u32,
    next_data_sn: u32,
    digest_bad: bool,
}

#[derive(Debug)]
enum State {
    Login(Box<Login>),
    Full,
    LoggingOut(u32),
    Closed,
    Failed(IscsiError),
}

/// Where the data segment of the PDU being received goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rx {
    /// Not decided yet (no data byte of this PDU seen).
    Idle,
    /// Into the small buffer (text, sense, ping data, a Reject's header).
    Small,
    /// Into a read command's buffer at this position.
    Task { itt: u32, at: usize },
}

/// The first CmdSN of a session (any value works; the target learns it from the login).
const FIRST_CMD_SN: u32 = 1;

/// One iSCSI connection's protocol state (see the module docs).
#[derive(Debug)]
pub struct Session {
    opts: IscsiOptions,
    state: State,
    params: Params,
    digests: Digests,
    tsih: u16,
    dec: Decoder,
    rx: Rx,
    small: Vec<u8>,
    cmd_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
    tasks: HashMap<u32, Task>,
    waiting: VecDeque<u32>,
    tx: VecDeque<Vec<u8>>,
    done: VecDeque<Completion>,
    text_itt: Option<u32>,
    text: Vec<u8>,
    discovered: Option<Vec<DiscoveredTarget>>,
    logout_requested: bool,
}

impl Session {
    /// A session that starts logging in: its first Login Request is ready in [`Session::poll_transmit`].
    pub fn new(opts: IscsiOptions) -> Session {
        let (login, first) = Login::start(&opts, FIRST_CMD_SN);
        let mut s = Session {
            opts,
            state: State::Login(Box::new(login)),
            params: Params::default(),
            digests: Digests::default(),
            tsih: 0,
            dec: Decoder::new(DecoderConfig::default()),
            rx: Rx::Idle,
            small: Vec::new(),
            cmd_sn: FIRST_CMD_SN,
            exp_cmd_sn: FIRST_CMD_SN,
            max_cmd_sn: FIRST_CMD_SN,
            exp_stat_sn: 0,
            next_itt: 1,
            tasks: HashMap::new(),
            waiting: VecDeque::new(),
            tx: VecDeque::new(),
            done: VecDeque::new(),
            text_itt: None,
            text: Vec::new(),
            discovered: None,
            logout_requested: false,
        };
        s.tx.push_back(first);
        s
    }

    /// The options the session was created with.
    pub fn options(&self) -> &IscsiOptions {
        &self.opts
    }

    /// Whether the login finished and commands can be submitted.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::Full)
    }

    /// Whether the session ended: logged out or failed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Why the session failed, if it did.
    pub fn error(&self) -> Option<&IscsiError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The negotiated parameters (RFC defaults before the login completes).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The session handle the target assigned.
    pub fn tsih(&self) -> u16 {
        self.tsih
    }

    /// Commands submitted and not completed.
    pub fn outstanding(&self) -> usize {
        self.tasks.len()
    }

    /// Commands waiting for the CmdSN window to open.
    pub fn window_blocked(&self) -> usize {
        self.waiting.len()
    }

    /// The CmdSN window: (next CmdSN to send, ExpCmdSN, MaxCmdSN).
    pub fn window(&self) -> (u32, u32, u32) {
        (self.cmd_sn, self.exp_cmd_sn, self.max_cmd_sn)
    }

    /// Whether the target asked us to log out (Asynchronous Message event 1).
    pub fn logout_requested(&self) -> bool {
        self.logout_requested
    }

    /// The SendTargets answer, once complete.
    pub fn discovered(&self) -> Option<&[DiscoveredTarget]> {
        self.discovered.as_deref()
    }

    /// The next PDU to send, whole.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// The next finished command.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    /// Queues a SCSI command. It leaves at once when the window allows, else in order when it opens.
    /// Refused (with the command handed back) unless the session is in full feature phase.
    #[allow(clippy::result_large_err, reason = "the refused command goes back whole so the caller keeps its buffer")]
    pub fn submit(&mut self, cmd: Command) -> Result<u32, (IscsiError, Command)> {
        match &self.state {
            State::Full => {}
            State::Failed(e) => return Err((e.clone(), cmd)),
            _ => return Err((IscsiError::Invalid("session is not in full feature phase"), cmd)),
        }
        if self.opts.target_name.is_none() {
            return Err((IscsiError::Invalid("a discovery session carries no SCSI commands"), cmd));
        }
        if self.tasks.len() >= u16::MAX as usize {
            return Err((IscsiError::Invalid("too many commands in flight"), cmd));
        }
        let itt = self.alloc_itt();
        let (read, write, buf) = match cmd.data {
            DataDir::None => (false, false, Vec::new()),
            DataDir::Read(b) => (true, false, b),
            DataDir::Write(b) => (false, true, b),
        };
        if u32::try_from(buf.len()).is_err() {
            return Err((IscsiError::Invalid("transfer longer than 4 GiB"), Command { data: DataDir::None, ..cmd }));
        }
        self.tasks.insert(
            itt,
            Task {
                tag: cmd.tag,
                lun: cmd.lun,
                cdb: cmd.cdb,
                read,
                write,
                buf,
                received: 0,
                next_data_sn: 0,
                digest_bad: false,
            },
        );
        self.waiting.push_back(itt);
        self.pump();
        Ok(itt)
    }

    /// Starts SendTargets=All on a discovery session; [`Session::discovered`] has the answer.
    pub fn send_targets(&mut self) -> Result<(), IscsiError> {
        if !matches!(self.state, State::Full) || self.text_itt.is_some() {
            return Err(IscsiError::Invalid("SendTargets needs an idle session in full feature phase"));
        }
        let itt = self.alloc_itt();
        self.text_itt = Some(itt);
        self.text.clear();
        self.discovered = None;
        self.send_text(itt, RESERVED_TAG, b"SendTargets=All\0".to_vec());
        Ok(())
    }

    /// Starts a logout (close the session); the session is closed when the target answers.
    pub fn logout(&mut self) -> Result<(), IscsiError> {
        if !matches!(self.state, State::Full) {
            return Err(IscsiError::Invalid("logout needs a session in full feature phase"));
        }
        let itt = self.alloc_itt();
        let req = LogoutRequest {
            immediate: true,
            reason: 0,
            itt,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send(Pdu::LogoutRequest(req), Vec::new());
        self.state = State::LoggingOut(itt);
        Ok(())
    }

    /// Ends the session from outside (the socket failed): every command completes with the reason.
    pub fn fail(&mut self, e: IscsiError) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        let why = e.to_string();
        self.state = State::Failed(e);
        self.dec.close();
        self.tx.clear();
        self.waiting.clear();
        self.fail_tasks(&why);
    }

    fn fail_tasks(&mut self, why: &str) {
        let mut itts: Vec<u32> = self.tasks.keys().copied().collect();
        itts.sort_unstable();
        for itt in itts {
            if let Some(t) = self.tasks.remove(&itt) {
                self.done.push_back(Completion {
                    tag: t.tag,
                    result: Err(CommandError::ConnectionLost(why.to_string())),
                    buf: Some(t.buf),
                    received: t.received,
                    residual: Residual::None,
                });
            }
        }
    }

    /// Takes received bytes (any split). A protocol error fails the session and is returned; later
    /// calls return the same error.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), IscsiError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if let Err(e) = self.receive_inner(bytes) {
            self.fail(e.clone());
            return Err(e);
        }
        Ok(())
    }

    fn receive_inner(&mut self, mut rest: &[u8]) -> Result<(), IscsiError> {
        loop {
            match self.dec.next_need() {
                Need::Done => {
                    let f = self.dec.finish().map_err(proto)?;
                    let rx = std::mem::replace(&mut self.rx, Rx::Idle);
                    self.handle(f, rx)?;
                    if matches!(self.state, State::Closed) {
                        return Ok(());
                    }
                }
                Need::Closed => return Err(IscsiError::Protocol("receive after the connection closed".into())),
                _ if rest.is_empty() => return Ok(()),
                Need::Header { .. } | Need::Trailer { .. } => {
                    let n = self.dec.feed(rest).map_err(proto)?;
                    rest = rest.get(n..).unwrap_or(&[]);
                    // An invalid header (unknown opcode, oversized segment) fails now, not after its data.
                    if let Some(h) = self.dec.header()
                        && let Err(e) = h.pdu
                    {
                        return Err(proto(e));
                    }
                }
                Need::Data { len } => {
                    let (chunk, after) = rest.split_at(len.min(rest.len()));
                    self.route(chunk)?;
                    let n = self.dec.feed(chunk).map_err(proto)?;
                    if n != chunk.len() {
                        return Err(IscsiError::Protocol("decoder refused data bytes".into()));
                    }
                    rest = after;
                }
            }
        }
    }

    /// Puts data-segment bytes where they belong; the first chunk of a PDU picks the place.
    fn route(&mut self, chunk: &[u8]) -> Result<(), IscsiError> {
        if self.rx == Rx::Idle {
            let h = self.dec.header().ok_or_else(|| IscsiError::Protocol("data without a header".into()))?;
            let pdu = h.pdu.map_err(proto)?;
            let len = h.lengths.data_len as usize;
            self.rx = match pdu {
                Pdu::DataIn(d) if matches!(self.state, State::Full | State::LoggingOut(_)) => {
                    let t = self
                        .tasks
                        .get(&d.itt)
                        .ok_or_else(|| IscsiError::Protocol(format!("Data-In for unknown ITT {:#x}", d.itt)))?;
                    if !t.read {
                        return Err(IscsiError::Protocol(format!("Data-In for ITT {:#x}, not a read", d.itt)));
                    }
                    let end = (d.offset as usize).checked_add(len);
                    if end.is_none_or(|e| e > t.buf.len()) {
                        return Err(IscsiError::Protocol(format!(
                            "Data-In of {len} bytes at offset {} beyond the {}-byte buffer of ITT {:#x}",
                            d.offset,
                            t.buf.len(),
                            d.itt
                        )));
                    }
                    Rx::Task { itt: d.itt, at: d.offset as usize }
                }
                _ => {
                    self.small.clear();
                    Rx::Small
                }
            };
        }
        match self.rx {
            Rx::Task { itt, at } => {
                let dst = self.tasks.get_mut(&itt).and_then(|t| t.buf.get_mut(at..at + chunk.len()));
                let dst = dst.ok_or_else(|| IscsiError::Protocol("Data-In outside the buffer".into()))?;
                dst.copy_from_slice(chunk);
                self.rx = Rx::Task { itt, at: at + chunk.len() };
            }
            _ => self.small.extend_from_slice(chunk),
        }
        Ok(())
    }

    fn handle(&mut self, f: Frame, rx: Rx) -> Result<(), IscsiError> {
        let pdu = f.header.pdu.map_err(proto)?;
        let data_len = f.header.lengths.data_len;
        let data = if rx == Rx::Small { std::mem::take(&mut self.small) } else { Vec::new() };
        let digest_ok = f.data_digest.is_ok();
        if !digest_ok && !matches!(pdu, Pdu::DataIn(_)) {
            return Err(IscsiError::Protocol(format!("data digest mismatch on {:?}", pdu.opcode())));
        }
        if let State::Login(login) = &mut self.state {
            let Pdu::LoginResponse(rsp) = pdu else {
                return Err(IscsiError::Protocol(format!("{:?} during login", pdu.opcode())));
            };
            match login.on_response(&rsp, &data)? {
                LoginStep::Send(b) => self.tx.push_back(b),
                LoginStep::Done(o) => {
                    self.params = o.params;
                    self.digests = Digests { header: o.params.header_digest, data: o.params.data_digest };
                    self.tsih = o.tsih;
                    self.exp_stat_sn = o.stat_sn.wrapping_add(1);
                    self.exp_cmd_sn = o.exp_cmd_sn;
                    self.max_cmd_sn = o.max_cmd_sn;
                    // The decoder switches to the negotiated digests and size from the next PDU on.
                    self.dec.set_config(DecoderConfig {
                        max_data_len: self.opts.max_recv_data_segment_length,
                        header_digest: self.digests.header,
                        data_digest: self.digests.data,
                    });
                    self.state = State::Full;
                    self.pump();
                }
            }
            return Ok(());
        }
        match pdu {
            Pdu::DataIn(d) => self.on_data_in(d, data_len, digest_ok),
            Pdu::ScsiResponse(r) => self.on_response(r, &data),
            Pdu::R2t(r) => self.on_r2t(r),
            Pdu::NopIn(n) => {
                self.on_nop_in(n, data);
                Ok(())
            }
            Pdu::TextResponse(t) => self.on_text(t, &data),
            Pdu::LogoutResponse(l) => {
                self.status_sn(&l.sn);
                match self.state {
                    State::LoggingOut(itt) if itt == l.itt => {
                        self.state = State::Closed;
                        self.dec.close();
                        self.waiting.clear();
                        self.fail_tasks("logged out");
                        Ok(())
                    }
                    _ => Err(IscsiError::Protocol("unsolicited Logout Response".into())),
                }
            }
            Pdu::AsyncMessage(a) => {
                self.status_sn(&a.sn);
                match a.event {
                    1 => self.logout_requested = true,
                    2 | 3 => {
                        return Err(IscsiError::ConnectionLost(format!(
                            "target drops the connection (event {})",
                            a.event
                        )));
                    }
                    _ => {}
                }
                Ok(())
            }
            Pdu::Reject(r) => {
                self.status_sn(&r.sn);
                // The data segment is the rejected PDU's header: its ITT names the command.
                let itt = data.get(16..20).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
                if let Some(t) = itt.and_then(|i| self.tasks.remove(&i)) {
                    self.waiting.retain(|w| Some(*w) != itt);
                    self.complete(t, Err(CommandError::Rejected(r.reason)), Residual::None);
                } else if itt.is_some() && itt == self.text_itt {
                    return Err(IscsiError::Protocol(format!("Text Request rejected (reason {:#04x})", r.reason)));
                }
                Ok(())
            }
            Pdu::TmfResponse(t) => {
                self.status_sn(&t.sn);
                Ok(())
            }
            other => Err(IscsiError::Protocol(format!("unexpected {:?} from the target", other.opcode()))),
        }
    }

    fn on_data_in(&mut self, d: DataIn, len: u32, digest_ok: bool) -> Result<(), IscsiError> {
        self.window_sn(&d.sn);
        let t = self
            .tasks
            .get_mut(&d.itt)
            .ok_or_else(|| IscsiError::Protocol(format!("Data-In for unknown ITT {:#x}", d.itt)))?;
        if !t.read && len > 0 {
            return Err(IscsiError::Protocol(format!("Data-In with data for ITT {:#x}, not a read", d.itt)));
        }
        if d.data_sn != t.next_data_sn {
            return Err(IscsiError::Protocol(format!(
                "Data-In DataSN {} for ITT {:#x}, expected {}",
                d.data_sn, d.itt, t.next_data_sn
            )));
        }
        t.next_data_sn = t.next_data_sn.wrapping_add(1);
        t.received = t.received.saturating_add(len);
        t.digest_bad |= !digest_ok;
        if let Some(status) = d.status {
            self.exp_stat_sn = d.sn.stat_sn.wrapping_add(1);
            if let Some(t) = self.tasks.remove(&d.itt) {
                let result = if t.digest_bad {
                    Err(CommandError::DataDigest)
                } else if status == STATUS_GOOD {
                    Ok(())
                } else {
                    Err(CommandError::Status { status, sense: None })
                };
                self.complete(t, result, d.residual);
            }
        }
        self.pump();
        Ok(())
    }

    fn on_response(&mut self, r: ScsiResponse, data: &[u8]) -> Result<(), IscsiError> {
        self.status_sn(&r.sn);
        let t = self
            .tasks
            .remove(&r.itt)
            .ok_or_else(|| IscsiError::Protocol(format!("SCSI Response for unknown ITT {:#x}", r.itt)))?;
        // Sense data: a 2-byte SenseLength, then the sense bytes.
        let sense = data.get(..2).and_then(|l| {
            let n = usize::from(u16::from_be_bytes([l[0], l[1]]));
            data.get(2..2 + n).and_then(Sense::parse)
        });
        let result = if r.response != 0 {
            Err(CommandError::TargetFailure(r.response))
        } else if t.digest_bad {
            Err(CommandError::DataDigest)
        } else if r.status != STATUS_GOOD {
            Err(CommandError::Status { status: r.status, sense })
        } else {
            Ok(())
        };
        self.complete(t, result, r.residual);
        self.pump();
        Ok(())
    }

    fn on_r2t(&mut self, r: R2t) -> Result<(), IscsiError> {
        self.window_sn(&r.sn);
        let max_seg = self.params.max_xmit_data_segment_length.max(512) as usize;
        let t =
            self.tasks.get(&r.itt).ok_or_else(|| IscsiError::Protocol(format!("R2T for unknown ITT {:#x}", r.itt)))?;
        if !t.write {
            return Err(IscsiError::Protocol(format!("R2T for ITT {:#x}, not a write", r.itt)));
        }
        let start = r.offset as usize;
        let end = start.checked_add(r.desired_len as usize).filter(|&e| e <= t.buf.len());
        let Some(end) = end.filter(|_| r.desired_len > 0) else {
            return Err(IscsiError::Protocol(format!(
                "R2T for {} bytes at offset {} of a {}-byte write",
                r.desired_len,
                r.offset,
                t.buf.len()
            )));
        };
        let lun = t.lun;
        let mut pdus = Vec::new();
        let mut at = start;
        let mut data_sn = 0u32;
        while at < end {
            let n = (end - at).min(max_seg);
            let out = DataOut {
                final_bit: at + n == end,
                lun,
                itt: r.itt,
                ttt: r.ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                offset: at as u32,
            };
            pdus.push((out, at..at + n));
            data_sn += 1;
            at += n;
        }
        for (out, range) in pdus {
            let bytes = self.tasks.get(&r.itt).and_then(|t| t.buf.get(range)).unwrap_or(&[]).to_vec();
            self.send(Pdu::DataOut(out), bytes);
        }
        self.pump();
        Ok(())
    }

    fn on_nop_in(&mut self, n: NopIn, data: Vec<u8>) {
        if n.itt == RESERVED_TAG {
            self.window_sn(&n.sn);
            if n.ttt != RESERVED_TAG {
                // A ping from the target: echo its tag, LUN and data, without taking a CmdSN.
                let out = NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: RESERVED_TAG,
                    ttt: n.ttt,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                };
                self.send(Pdu::NopOut(out), data);
            }
        } else {
            // The answer to a ping of ours (we send none, but it is harmless).
            self.status_sn(&n.sn);
        }
        self.pump();
    }

    fn on_text(&mut self, t: TextResponse, data: &[u8]) -> Result<(), IscsiError> {
        self.status_sn(&t.sn);
        if Some(t.itt) != self.text_itt {
            return Err(IscsiError::Protocol(format!("Text Response for unknown ITT {:#x}", t.itt)));
        }
        if self.text.len() + data.len() > ff_iscsi::text::MAX_TEXT {
            return Err(IscsiError::Protocol("SendTargets answer too long".into()));
        }
        self.text.extend_from_slice(data);
        if !t.final_bit {
            // More to come: an empty request with the target's TTT asks for it.
            self.send_text(t.itt, t.ttt, Vec::new());
            return Ok(());
        }
        self.text_itt = None;
        let text = std::mem::take(&mut self.text);
        let mut targets: Vec<DiscoveredTarget> = Vec::new();
        for (k, v) in parse_pairs(&text)? {
            match k {
                "TargetName" => targets.push(DiscoveredTarget { name: v.to_string(), addresses: Vec::new() }),
                "TargetAddress" => match targets.last_mut() {
                    Some(last) => last.addresses.push(v.to_string()),
                    None => return Err(IscsiError::Protocol("TargetAddress before any TargetName".into())),
                },
                _ => {}
            }
        }
        self.discovered = Some(targets);
        Ok(())
    }

    fn complete(&mut self, t: Task, result: Result<(), CommandError>, residual: Residual) {
        self.done.push_back(Completion { tag: t.tag, result, buf: Some(t.buf), received: t.received, residual });
    }

    fn alloc_itt(&mut self) -> u32 {
        loop {
            let itt = self.next_itt;
            self.next_itt = self.next_itt.wrapping_add(1);
            if itt != RESERVED_TAG && !self.tasks.contains_key(&itt) && Some(itt) != self.text_itt {
                return itt;
            }
        }
    }

    /// A PDU that carries a status: StatSN advances, and the window may move.
    fn status_sn(&mut self, sn: &SeqNums) {
        if sn_le(self.exp_stat_sn, sn.stat_sn) {
            self.exp_stat_sn = sn.stat_sn.wrapping_add(1);
        }
        self.window_sn(sn);
    }

    /// ExpCmdSN and MaxCmdSN move forward only; a MaxCmdSN below ExpCmdSN - 1 is ignored (RFC 7143
    /// section 4.2.2.1).
    fn window_sn(&mut self, sn: &SeqNums) {
        if sn_lt(sn.max_cmd_sn, sn.exp_cmd_sn.wrapping_sub(1)) {
            return;
        }
        if sn_lt(self.exp_cmd_sn, sn.exp_cmd_sn) {
            self.exp_cmd_sn = sn.exp_cmd_sn;
        }
        if sn_lt(self.max_cmd_sn, sn.max_cmd_sn) {
            self.max_cmd_sn = sn.max_cmd_sn;
        }
    }

    /// Sends waiting commands while the window has room.
    fn pump(&mut self) {
        if !matches!(self.state, State::Full) {
            return;
        }
        while let Some(&itt) = self.waiting.front() {
            if !sn_le(self.cmd_sn, self.max_cmd_sn) {
                break;
            }
            self.waiting.pop_front();
            self.send_command(itt);
            self.cmd_sn = self.cmd_sn.wrapping_add(1);
        }
    }

    fn send_command(&mut self, itt: u32) {
        let Some(t) = self.tasks.get(&itt) else { return };
        let p = self.params;
        let edtl = t.buf.len();
        let max_seg = p.max_xmit_data_segment_length.max(512) as usize;
        let first_burst = p.first_burst_length as usize;
        let (imm, unsolicited) = if t.write {
            let imm = if p.immediate_data { edtl.min(first_burst).min(max_seg) } else { 0 };
            let unsol = if p.initial_r2t { imm } else { edtl.min(first_burst) };
            (imm, unsol)
        } else {
            (0, 0)
        };
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: unsolicited == imm,
            read: t.read,
            write: t.write,
            attr: 1,
            lun: t.lun,
            itt,
            edtl: edtl as u32,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: t.cdb,
        };
        let imm_data = t.buf.get(..imm).unwrap_or(&[]).to_vec();
        let lun = t.lun;
        self.send(Pdu::ScsiCommand(cmd), imm_data);
        let mut at = imm;
        let mut data_sn = 0;
        while at < unsolicited {
            let n = (unsolicited - at).min(max_seg);
            let out = DataOut {
                final_bit: at + n == unsolicited,
                lun,
                itt,
                ttt: RESERVED_TAG,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                offset: at as u32,
            };
            let bytes = self.tasks.get(&itt).and_then(|t| t.buf.get(at..at + n)).unwrap_or(&[]).to_vec();
            self.send(Pdu::DataOut(out), bytes);
            data_sn += 1;
            at += n;
        }
    }

    fn send_text(&mut self, itt: u32, ttt: u32, data: Vec<u8>) {
        let req = TextRequest {
            immediate: true,
            final_bit: true,
            cont: false,
            lun: 0,
            itt,
            ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.send(Pdu::TextRequest(req), data);
    }

    fn send(&mut self, pdu: Pdu, data: Vec<u8>) {
        match TxPdu::encode(&pdu, self.digests, TxData::Owned(data), &[]) {
            Ok(t) => self.tx.push_back(t.to_bytes(&[])),
            // Only a caller bug (a segment over 16 MiB) gets here: fail loudly but without a panic.
            Err(e) => self.fail(IscsiError::Invalid(if matches!(e, ff_iscsi::Error::Encode(_)) {
                "cannot encode a PDU"
            } else {
                "PDU encoding failed"
            })),
        }
    }
}

fn proto(e: ff_iscsi::Error) -> IscsiError {
    IscsiError::Protocol(e.to_string())
}
