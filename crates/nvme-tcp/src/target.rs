//! Target-side NVMe/TCP connection core, sans-IO: turns the received byte stream into NVMe commands with
//! their host data gathered, and NVMe completions into the PDUs that carry them back.
//!
//! Owns the transport state of one connection: connection initialization (ICReq/ICResp), the table of
//! outstanding commands, R2T/H2CData transfers into command buffers, C2HData (with the SUCCESS
//! optimisation), digests on send, and fatal errors (C2HTermReq, then close). What a command *means* is
//! the caller's business: it receives [`TargetOutput::Command`] and answers with
//! [`TargetConn::complete`].
//!
//! Receiving is driven by [`TargetConn::recv_target`]: it says whether the next bytes are small (header,
//! padding, digest: read them anywhere and [`TargetConn::feed`] them) or payload (read them straight
//! into the returned slice of the command's buffer and report [`TargetConn::data_received`]).

use crate::decoder::{Decoder, DecoderConfig, Need};
use crate::error::{Error, Fes};
use crate::pdu::{C2HData, CapsuleResp, Framing, IcResp, Pdu, R2T, TermReq};
use ff_nvme::nvme::{Cqe, PSDT_MASK, PSDT_PRP, Sqe, Status, opcode, status};
use std::collections::VecDeque;

pub use crate::cid::{CidHasher, CidMap, CidTable};
pub use crate::tx::{TX_HEAD_MAX, TxPdu};

/// A data buffer the connection fills (host data) or sends (controller data).
pub trait DataBuf: AsRef<[u8]> + AsMut<[u8]> {
    /// Shortens the buffer to `len` bytes (no-op when already shorter).
    fn truncate(&mut self, len: usize);
}

impl DataBuf for Vec<u8> {
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

/// Source of command data buffers (a per-reactor pool).
pub trait BufAlloc<B> {
    /// A buffer of exactly `len` bytes, or `None` when the pool is exhausted.
    fn alloc(&mut self, len: usize) -> Option<B>;
}

/// When a read's C2HData carries the SUCCESS flag, so that no CapsuleResp follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum C2hSuccess {
    /// Only on queues whose host disabled SQ flow control (what the transport spec allows: the
    /// CapsuleResp is the only carrier of SQHD, and such a host does not need it).
    #[default]
    SqFlowOff,
    /// On every successful read, as SPDK's target does by default: one PDU per read instead of two.
    /// The host loses SQHD updates for those commands; hosts that size their queue by outstanding
    /// commands (SPDK, Linux, ours) do not use them.
    Always,
}

impl C2hSuccess {
    /// The configuration spelling: `sq-flow-off` or `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            C2hSuccess::SqFlowOff => "sq-flow-off",
            C2hSuccess::Always => "always",
        }
    }
}

impl std::fmt::Display for C2hSuccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for C2hSuccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sq-flow-off" => Ok(C2hSuccess::SqFlowOff),
            "always" => Ok(C2hSuccess::Always),
            o => Err(format!("unknown c2h_success mode {o:?} (sq-flow-off or always)")),
        }
    }
}

/// Settings of one target connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetConnConfig {
    /// CPDA we require of host data (0: none).
    pub cpda: u8,
    /// Header digest supported (used when the host asks).
    pub hdgst: bool,
    /// Data digest supported (used when the host asks).
    pub ddgst: bool,
    /// MAXH2CDATA we advertise: the largest H2CData PDU the host may send.
    pub maxh2cdata: u32,
    /// Largest in-capsule data accepted (the admin queue needs 8 KiB; I/O queues IOCCSZ).
    pub max_in_capsule: u32,
    /// Largest transfer of one command (MDTS); larger requests fail without allocating.
    pub max_transfer: u32,
    /// Most commands outstanding at once; more is a protocol error by the host.
    pub max_outstanding: usize,
    /// When reads complete with C2HData SUCCESS instead of a CapsuleResp.
    pub c2h_success: C2hSuccess,
}

impl Default for TargetConnConfig {
    fn default() -> Self {
        TargetConnConfig {
            cpda: 0,
            hdgst: true,
            ddgst: true,
            maxh2cdata: 128 * 1024,
            max_in_capsule: 8192,
            max_transfer: 1 << 20,
            max_outstanding: 1024,
            c2h_success: C2hSuccess::SqFlowOff,
        }
    }
}

/// Which way a command's data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No data.
    None,
    /// Host to controller (write-like): the data is gathered before the command is handed up.
    ToController,
    /// Controller to host (read-like): the caller supplies it in [`Completion::data`].
    ToHost,
}

/// A command ready to execute.
#[derive(Debug)]
pub struct Command<B> {
    /// The submission queue entry.
    pub sqe: Sqe,
    /// Direction of the data transfer.
    pub dir: DataDir,
    /// Transfer length in bytes from the SGL.
    pub xfer_len: u32,
    /// Host data, for [`DataDir::ToController`].
    pub data: Option<B>,
}

/// The caller's answer to a [`Command`].
#[derive(Debug)]
pub struct Completion<B> {
    /// NVMe status.
    pub status: Status,
    /// Do Not Retry.
    pub dnr: bool,
    /// Command-specific dword 0.
    pub dw0: u32,
    /// Command-specific dword 1.
    pub dw1: u32,
    /// Data for the host, for [`DataDir::ToHost`] (at most the transfer length).
    pub data: Option<B>,
}

impl<B> Completion<B> {
    /// A completion with `status` and nothing else.
    pub fn status(status: Status) -> Self {
        Completion { status, dnr: !status.is_success(), dw0: 0, dw1: 0, data: None }
    }

    /// A failure the host may retry (DNR clear), such as a transient transport error.
    pub fn retryable(status: Status) -> Self {
        Completion { dnr: false, ..Self::status(status) }
    }
}

/// Why the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We detected a fatal error and sent a C2HTermReq.
    Fatal {
        /// Fatal error status sent.
        fes: u16,
        /// Fatal error information sent.
        fei: u32,
        /// What was wrong.
        reason: &'static str,
    },
    /// The host sent an H2CTermReq.
    HostTerminated {
        /// FES the host reported.
        fes: u16,
    },
}

/// What the connection asks its driver to do, in order.
#[derive(Debug)]
pub enum TargetOutput<B> {
    /// Send this PDU.
    Send(TxPdu<B>),
    /// Execute this command and call [`TargetConn::complete`].
    Command(Command<B>),
    /// Flush what was queued, then close the connection.
    Close(CloseReason),
}

/// Where the payload of the PDU being received goes.
enum Rx<B> {
    None,
    /// In-capsule data of a new command.
    Capsule {
        sqe: Sqe,
        buf: Option<B>,
        filled: usize,
        error: Option<Status>,
    },
    /// H2CData for an outstanding command.
    H2C {
        cid: u16,
        filled: usize,
        datal: u32,
        last: bool,
    },
    /// Bytes with nowhere to go (a failed allocation): read and dropped.
    Discard {
        left: usize,
    },
}

/// A write waiting for its data after an R2T.
struct Transfer<B> {
    sqe: Sqe,
    buf: B,
    len: u32,
    received: u32,
    digest_failed: bool,
}

enum Slot<B> {
    /// Waiting for H2CData into `buf` (R2T sent). Boxed: it is the rare, large case, and a small slot
    /// keeps the cid map's insert and remove cheap for every other command.
    AwaitData(Box<Transfer<B>>),
    /// Handed to the caller. `parked_aer`: an Asynchronous Event Request on the admin queue, which the
    /// controller holds until an event; a host that gave up on it may send its cid again.
    Executing { dir: DataDir, xfer_len: u32, parked_aer: bool },
}

/// Direct cid slots before the queue size is known (Connect sets it).
const DEFAULT_DEPTH: usize = 32;

/// Scratch for payload that is read and dropped.
const DISCARD_LEN: usize = 4096;

/// The target side of one NVMe/TCP connection. See the module docs.
pub struct TargetConn<B> {
    cfg: TargetConnConfig,
    dec: Decoder,
    framing: Option<Framing>,
    slots: CidTable<Slot<B>>,
    rx: Rx<B>,
    out: VecDeque<TargetOutput<B>>,
    discard: [u8; DISCARD_LEN],
    qid: u16,
    sqsize: u16,
    sq_head: u16,
    sqflow_disabled: bool,
    closed: bool,
}

/// What to read next.
#[derive(Debug)]
pub enum RecvTarget<'a> {
    /// Read at most this many bytes into any buffer and pass them to [`TargetConn::feed`].
    Small(usize),
    /// Read into this slice (payload, straight into the command's buffer), then call
    /// [`TargetConn::data_received`].
    Data(&'a mut [u8]),
    /// Nothing more is accepted.
    Closed,
}

fn data_dir(sqe: &Sqe) -> DataDir {
    // Bits 1:0 of the opcode (of FCTYPE for fabrics commands) give the direction.
    let code = if sqe.opcode == opcode::FABRICS { sqe.fctype() } else { sqe.opcode };
    match code & 0x3 {
        0x1 => DataDir::ToController,
        0x2 => DataDir::ToHost,
        // 0x3 (bidirectional) is not supported by any command we serve; treat as host data.
        0x3 => DataDir::ToController,
        _ => DataDir::None,
    }
}

impl<B: DataBuf> TargetConn<B> {
    /// A connection awaiting ICReq.
    pub fn new(cfg: TargetConnConfig) -> Self {
        let dcfg = DecoderConfig {
            role: crate::decoder::Role::Target,
            pda: cfg.cpda,
            hdgst: cfg.hdgst,
            ddgst: cfg.ddgst,
            max_data_len: cfg.maxh2cdata.max(cfg.max_in_capsule),
        };
        TargetConn {
            cfg,
            dec: Decoder::new(dcfg),
            framing: None,
            slots: CidTable::with_depth(cfg.max_outstanding.min(DEFAULT_DEPTH)),
            rx: Rx::None,
            out: VecDeque::new(),
            discard: [0; DISCARD_LEN],
            qid: 0,
            sqsize: 0,
            sq_head: 0,
            sqflow_disabled: false,
            closed: false,
        }
    }

    /// The negotiated framing, once ICReq was answered.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Records the queue this connection serves, after a successful Connect: `sqsize` is 0's based;
    /// `sqflow_disabled` when the host asked to disable SQ flow control (enables C2H SUCCESS).
    pub fn set_queue(&mut self, qid: u16, sqsize: u16, sqflow_disabled: bool) {
        self.slots.set_depth(usize::from(sqsize) + 1);
        self.qid = qid;
        self.sqsize = sqsize;
        self.sqflow_disabled = sqflow_disabled;
    }

    /// Adjusts the in-capsule limit once the queue is known (I/O queues use IOCCSZ).
    pub fn set_max_in_capsule(&mut self, bytes: u32) {
        self.cfg.max_in_capsule = bytes;
    }

    /// Commands received and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.slots.len()
    }

    /// Whether the connection stopped accepting input.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<TargetOutput<B>> {
        self.out.pop_front()
    }

    /// What to read next; may call `alloc` for the buffer of a command's data.
    pub fn recv_target(&mut self, alloc: &mut impl BufAlloc<B>) -> RecvTarget<'_> {
        if self.closed {
            return RecvTarget::Closed;
        }
        match self.dec.next_need() {
            Need::Header { len } | Need::Pad { len } | Need::DataDigest { len } => RecvTarget::Small(len),
            Need::Closed => RecvTarget::Closed,
            Need::Done => RecvTarget::Small(0),
            Need::Data { len } => {
                if matches!(self.rx, Rx::None) {
                    self.setup_rx(alloc);
                }
                if self.closed {
                    return RecvTarget::Closed;
                }
                match &mut self.rx {
                    Rx::Capsule { buf: Some(b), filled, .. } => {
                        let f = *filled;
                        RecvTarget::Data(b.as_mut().get_mut(f..f + len).unwrap_or(&mut []))
                    }
                    Rx::H2C { cid, filled, .. } => {
                        let f = *filled;
                        match self.slots.get_mut(*cid) {
                            Some(Slot::AwaitData(t)) => {
                                RecvTarget::Data(t.buf.as_mut().get_mut(f..f + len).unwrap_or(&mut []))
                            }
                            _ => RecvTarget::Closed,
                        }
                    }
                    Rx::Capsule { buf: None, .. } | Rx::Discard { .. } | Rx::None => {
                        let n = len.min(DISCARD_LEN);
                        RecvTarget::Data(self.discard.get_mut(..n).unwrap_or(&mut []))
                    }
                }
            }
        }
    }

    /// Decides where the payload of the PDU whose header just arrived goes.
    fn setup_rx(&mut self, alloc: &mut impl BufAlloc<B>) {
        let Some(pdu) = self.dec.pdu().copied() else { return };
        let data_len = self.dec.layout().map(|l| l.data_len as usize).unwrap_or(0);
        match pdu {
            Pdu::CapsuleCmd(c) => {
                let sqe = c.sqe;
                let mut error = None;
                if data_dir(&sqe) != DataDir::ToController {
                    error = Some(status::INVALID_FIELD);
                } else if !sqe.dptr.is_in_capsule() {
                    error = Some(status::SGL_DESCRIPTOR_TYPE_INVALID);
                } else if sqe.dptr.address != 0 {
                    error = Some(status::SGL_OFFSET_INVALID);
                } else if sqe.dptr.length as usize != data_len || data_len > self.cfg.max_in_capsule as usize {
                    error = Some(status::SGL_DATA_LENGTH_INVALID);
                }
                let buf = if error.is_none() { alloc.alloc(data_len) } else { None };
                if error.is_none() && buf.is_none() {
                    error = Some(status::INTERNAL_ERROR);
                }
                self.rx = Rx::Capsule { sqe, buf, filled: 0, error };
            }
            Pdu::H2CData(d) => {
                let ok = match self.slots.get(d.cccid) {
                    Some(Slot::AwaitData(t)) => {
                        d.ttag == d.cccid
                            && d.datao == t.received
                            && u64::from(d.datao) + u64::from(d.datal) <= u64::from(t.len)
                            && d.datal as usize == data_len
                    }
                    _ => false,
                };
                if ok {
                    self.rx = Rx::H2C { cid: d.cccid, filled: d.datao as usize, datal: d.datal, last: d.last };
                } else {
                    // Data for no transfer we asked for, or beyond it: the stream cannot be trusted.
                    self.fatal(Fes::DataTransferOutOfRange, 16, "H2CData outside the requested transfer");
                }
            }
            _ => self.rx = Rx::Discard { left: data_len },
        }
    }

    /// Supplies small bytes (header, padding, digest); returns how many were taken.
    pub fn feed(&mut self, bytes: &[u8], alloc: &mut impl BufAlloc<B>) -> usize {
        if self.closed {
            return 0;
        }
        let mut used = 0;
        while used < bytes.len() && !self.closed {
            if matches!(self.dec.next_need(), Need::Data { .. }) {
                break; // payload must go through recv_target's slice
            }
            match self.dec.feed(bytes.get(used..).unwrap_or(&[])) {
                Ok(n) => used += n,
                Err(e) => {
                    self.on_decode_error(e);
                    break;
                }
            }
            self.drain_done(alloc);
        }
        self.drain_done(alloc);
        used
    }

    /// Reports `n` payload bytes written into the slice from [`TargetConn::recv_target`].
    pub fn data_received(&mut self, n: usize, alloc: &mut impl BufAlloc<B>) {
        if self.closed || n == 0 {
            return;
        }
        let r = match &mut self.rx {
            Rx::Capsule { buf: Some(b), filled, .. } => {
                let s = b.as_ref().get(*filled..*filled + n).unwrap_or(&[]);
                *filled += n;
                self.dec.data_received(s)
            }
            Rx::H2C { cid, filled, .. } => {
                let s = match self.slots.get(*cid) {
                    Some(Slot::AwaitData(t)) => t.buf.as_ref().get(*filled..*filled + n).unwrap_or(&[]),
                    _ => &[],
                };
                *filled += n;
                self.dec.data_received(s)
            }
            Rx::Capsule { buf: None, .. } | Rx::Discard { .. } | Rx::None => {
                if let Rx::Discard { left } = &mut self.rx {
                    *left = left.saturating_sub(n);
                }
                self.dec.data_received(self.discard.get(..n).unwrap_or(&[]))
            }
        };
        if let Err(e) = r {
            self.on_decode_error(e);
        }
        self.drain_done(alloc);
    }

    fn drain_done(&mut self, alloc: &mut impl BufAlloc<B>) {
        while !self.closed && matches!(self.dec.next_need(), Need::Done) {
            let r = self.dec.finish();
            let rx = std::mem::replace(&mut self.rx, Rx::None);
            match r {
                Ok(pdu) => self.on_pdu(pdu, rx, false, alloc),
                Err(Error::DataDigest { .. }) => {
                    // The stream stays in sync; only this command fails.
                    if let Some(pdu) = self.last_pdu_of(&rx) {
                        self.on_pdu(pdu, rx, true, alloc);
                    }
                }
                Err(e) => self.on_decode_error(e),
            }
        }
    }

    /// The header of the PDU whose data `rx` received (for digest failures).
    fn last_pdu_of(&self, rx: &Rx<B>) -> Option<Pdu> {
        match rx {
            Rx::Capsule { sqe, .. } => Some(Pdu::CapsuleCmd(crate::pdu::CapsuleCmd { sqe: *sqe })),
            Rx::H2C { cid, datal, last, .. } => Some(Pdu::H2CData(crate::pdu::H2CData {
                cccid: *cid,
                ttag: *cid,
                datao: 0,
                datal: *datal,
                last: *last,
            })),
            _ => None,
        }
    }

    fn on_decode_error(&mut self, e: Error) {
        match e.fatal_error() {
            Some(f) => {
                let f = *f;
                self.fatal(f.fes, f.fei, f.reason);
            }
            None => self.fatal(Fes::InvalidHeaderField, 0, "undecodable PDU"),
        }
    }

    fn fatal(&mut self, fes: Fes, fei: u32, reason: &'static str) {
        if self.closed {
            return;
        }
        let term = TermReq { fes: fes.code(), fei };
        self.push_pdu(Pdu::C2HTermReq(term), None);
        self.out.push_back(TargetOutput::Close(CloseReason::Fatal { fes: fes.code(), fei, reason }));
        self.closed = true;
    }

    fn on_pdu(&mut self, pdu: Pdu, rx: Rx<B>, digest_failed: bool, alloc: &mut impl BufAlloc<B>) {
        match pdu {
            Pdu::IcReq(_) => {
                let Some(neg) = self.dec.negotiated().copied() else { return };
                self.framing = Some(Framing { hdgst: neg.digests.header, ddgst: neg.digests.data, pda: neg.peer_pda });
                let resp = IcResp { pfv: 0, cpda: self.cfg.cpda, dgst: neg.digests, maxh2cdata: self.cfg.maxh2cdata };
                // ICResp itself is never digested.
                self.push_pdu_framed(Pdu::IcResp(resp), None, Framing::default());
            }
            Pdu::H2CTermReq(t) => {
                self.out.push_back(TargetOutput::Close(CloseReason::HostTerminated { fes: t.fes }));
                self.closed = true;
            }
            Pdu::CapsuleCmd(c) => self.on_capsule(c.sqe, rx, digest_failed, alloc),
            Pdu::H2CData(d) => {
                let datal = match rx {
                    Rx::H2C { datal, .. } => datal as usize,
                    _ => 0,
                };
                self.on_h2c_done(d.cccid, d.last, digest_failed, datal)
            }
            _ => self.fatal(Fes::InvalidHeaderField, 0, "PDU type not accepted by a target"),
        }
    }

    fn on_capsule(&mut self, sqe: Sqe, rx: Rx<B>, digest_failed: bool, alloc: &mut impl BufAlloc<B>) {
        self.sq_head = if self.sqsize == 0 { 0 } else { (self.sq_head + 1) % (self.sqsize.saturating_add(1)) };
        let cid = sqe.cid;
        if let Some(slot) = self.slots.get(cid) {
            if matches!(slot, Slot::Executing { parked_aer: true, .. }) {
                // Hosts end their AERs locally when they tear down (SPDK's does) and reuse the ids for
                // the shutdown that follows: the AER is abandoned, the caller's controller drops it
                // when it sees the new command under the same cid.
                self.slots.remove(cid);
            } else {
                // Never disturb the command already using this cid.
                self.respond(cid, Completion::status(status::COMMAND_ID_CONFLICT));
                return;
            }
        }
        if self.slots.len() >= self.cfg.max_outstanding {
            self.fatal(Fes::PduSequenceError, 0, "more commands outstanding than the queue holds");
            return;
        }
        if digest_failed {
            // Transient: the same command sent again may well arrive intact.
            self.respond(cid, Completion::retryable(status::TRANSIENT_TRANSPORT_ERROR));
            return;
        }
        let dir = data_dir(&sqe);
        if let Rx::Capsule { buf, error, .. } = rx {
            match (buf, error) {
                (Some(b), None) => self.start(sqe, dir, sqe.dptr.length, Some(b)),
                (_, e) => self.respond(cid, Completion::status(e.unwrap_or(status::INTERNAL_ERROR))),
            }
            return;
        }
        let xfer = if dir == DataDir::None { 0 } else { sqe.dptr.length };
        if xfer > 0 && sqe.psdt() & PSDT_MASK == PSDT_PRP {
            self.respond(cid, Completion::status(status::INVALID_FIELD));
            return;
        }
        if xfer > 0 && !sqe.dptr.is_transport() {
            // An in-capsule descriptor without in-capsule data, or a type no TCP transfer uses.
            let st = if sqe.dptr.is_in_capsule() {
                status::SGL_DATA_LENGTH_INVALID
            } else {
                status::SGL_DESCRIPTOR_TYPE_INVALID
            };
            self.respond(cid, Completion::status(st));
            return;
        }
        if xfer > self.cfg.max_transfer {
            self.respond(cid, Completion::status(status::INVALID_FIELD));
            return;
        }
        if dir == DataDir::ToController && xfer > 0 {
            match alloc.alloc(xfer as usize) {
                Some(buf) => {
                    let t = Transfer { sqe, buf, len: xfer, received: 0, digest_failed: false };
                    self.slots.insert(cid, Slot::AwaitData(Box::new(t)));
                    // One R2T for the whole transfer: the host splits it into MAXH2CDATA-sized PDUs.
                    let r2t = R2T { cccid: cid, ttag: cid, r2to: 0, r2tl: xfer };
                    self.push_pdu(Pdu::R2T(r2t), None);
                }
                None => self.respond(cid, Completion::status(status::INTERNAL_ERROR)),
            }
            return;
        }
        self.start(sqe, dir, xfer, None);
    }

    fn start(&mut self, sqe: Sqe, dir: DataDir, xfer_len: u32, data: Option<B>) {
        let parked_aer = self.qid == 0 && sqe.opcode == opcode::ADMIN_ASYNC_EVENT;
        self.slots.insert(sqe.cid, Slot::Executing { dir, xfer_len, parked_aer });
        self.out.push_back(TargetOutput::Command(Command { sqe, dir, xfer_len, data }));
    }

    fn on_h2c_done(&mut self, cid: u16, last: bool, digest_failed: bool, datal: usize) {
        let Some(Slot::AwaitData(t)) = self.slots.get_mut(cid) else {
            return; // setup_rx already failed the connection
        };
        t.received = t.received.saturating_add(datal as u32);
        t.digest_failed |= digest_failed;
        let complete = t.received == t.len;
        if complete != last {
            self.fatal(Fes::PduSequenceError, 1, "LAST_PDU does not match the end of the transfer");
            return;
        }
        if !complete {
            return;
        }
        if let Some(Slot::AwaitData(t)) = self.slots.remove(cid) {
            let Transfer { sqe, buf, len, digest_failed, .. } = *t;
            if digest_failed {
                // The data is unreliable; the host may retry the command.
                self.respond(cid, Completion::retryable(status::TRANSIENT_TRANSPORT_ERROR));
            } else {
                self.start(sqe, DataDir::ToController, len, Some(buf));
            }
        }
    }

    /// Completes command `cid` with `c`: sends its data (C2HData) and response (CapsuleResp), or a C2HData
    /// with SUCCESS alone when [`TargetConnConfig::c2h_success`] allows it. Unknown cids are ignored.
    pub fn complete(&mut self, cid: u16, mut c: Completion<B>) {
        let Some(Slot::Executing { dir, xfer_len, .. }) = self.slots.remove(cid) else { return };
        if self.closed {
            return;
        }
        if let Some(mut data) = c.data.take()
            && dir == DataDir::ToHost
            && c.status.is_success()
        {
            data.truncate(xfer_len as usize);
            let len = data.as_ref().len() as u32;
            if len > 0 {
                let allowed = self.sqflow_disabled || self.cfg.c2h_success == C2hSuccess::Always;
                let success = allowed && c.dw0 == 0 && c.dw1 == 0;
                let hdr = C2HData { cccid: cid, datao: 0, datal: len, last: true, success };
                self.push_pdu(Pdu::C2HData(hdr), Some(data));
                if success {
                    return;
                }
            }
        }
        self.respond(cid, c);
    }

    /// Sends a CapsuleResp for `cid`.
    fn respond(&mut self, cid: u16, c: Completion<B>) {
        let cqe = Cqe {
            dw0: c.dw0,
            dw1: c.dw1,
            sqhd: self.sq_head,
            sqid: self.qid,
            cid,
            status: Cqe::status_field(c.status, c.dnr, false),
        };
        self.push_pdu(Pdu::CapsuleResp(CapsuleResp { cqe }), None);
    }

    fn push_pdu(&mut self, pdu: Pdu, data: Option<B>) {
        let framing = self.framing.unwrap_or_default();
        self.push_pdu_framed(pdu, data, framing);
    }

    fn push_pdu_framed(&mut self, pdu: Pdu, data: Option<B>, framing: Framing) {
        match TxPdu::encode(&pdu, &framing, data) {
            Ok(tx) => self.out.push_back(TargetOutput::Send(tx)),
            Err(_) => {
                // Only a framing we negotiated ourselves reaches here; failing loudly beats a corrupt stream.
                self.out.push_back(TargetOutput::Close(CloseReason::Fatal {
                    fes: Fes::InvalidHeaderField.code(),
                    fei: 0,
                    reason: "could not encode a PDU",
                }));
                self.closed = true;
            }
        }
    }
}
