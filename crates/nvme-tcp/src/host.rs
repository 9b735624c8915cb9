//! Host-side NVMe/TCP connection core, sans-IO: NVMe commands with their data in, the PDUs that carry
//! them out; received PDUs in, completions (with the caller's buffers handed back) out.
//!
//! Owns the transport state of one host connection: connection initialization (ICReq out, ICResp
//! checked), command identifiers, in-capsule data versus R2T-driven H2CData transfers split by
//! MAXH2CDATA, C2HData placed straight into the read buffer registered for the command, digests on send
//! and their checks on receive, and fatal errors (H2CTermReq, then close). What a command *means* is the
//! caller's business.
//!
//! Receiving mirrors [`crate::target`]: [`HostConn::recv_target`] says whether the next bytes are small
//! (header, padding, digest: read them anywhere and [`HostConn::feed`] them) or payload (read them straight
//! into the returned slice of the command's read buffer and report [`HostConn::data_received`]).
//!
//! Write data is held as an [`Arc`] while its PDUs are in flight ([`TxData`] views of it), because one
//! buffer may be sent as several H2CData PDUs without a copy. A command whose response arrives while the
//! sender still holds such views completes once the last view is dropped (checked by
//! [`HostConn::poll_output`]).

use crate::decoder::{Decoder, DecoderConfig, Need, Role};
use crate::error::{Error, Fes};
use crate::pdu::{C2HData, CapsuleCmd, Digests, Framing, H2CData, IcReq, Pdu, TermReq};
use ff_nvme::nvme::{Cqe, PSDT_SGL_MPTR_CONTIG, SglDescriptor, Sqe, Status};
use std::collections::VecDeque;
use std::sync::Arc;

pub use crate::tx::{TX_HEAD_MAX, TxPdu};
/// In-capsule data the admin queue always accepts (NVMe/TCP transport binding).
pub const ADMIN_IN_CAPSULE: u32 = 8192;

/// Settings of one host connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Digests requested in ICReq (the controller may enable fewer, never more).
    pub digests: Digests,
    /// MAXR2T sent in ICReq (0's based; we handle one R2T per command at a time).
    pub maxr2t: u32,
    /// Largest write data sent in the capsule; larger writes use a transport SGL and R2T.
    pub max_in_capsule: u32,
    /// Most commands outstanding at once (the queue depth); command ids are `0..depth`.
    pub depth: u16,
    /// Largest C2HData PDU accepted (a larger PLEN is fatal before anything is allocated).
    pub max_data_len: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            digests: Digests::default(),
            maxr2t: 0,
            max_in_capsule: ADMIN_IN_CAPSULE,
            depth: 128,
            max_data_len: 1 << 20,
        }
    }
}

/// A view of a range of write data, shared with the command until the PDU carrying it was sent.
#[derive(Debug)]
pub struct TxData<B> {
    buf: Arc<B>,
    start: usize,
    end: usize,
}

impl<B: AsRef<[u8]>> TxData<B> {
    /// The bytes of this view.
    pub fn bytes(&self) -> &[u8] {
        (*self.buf).as_ref().get(self.start..self.end).unwrap_or(&[])
    }
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for TxData<B> {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// A finished command, with the caller's buffers handed back.
#[derive(Debug)]
pub struct HostCompletion<B> {
    /// Command identifier.
    pub cid: u16,
    /// The completion queue entry (synthesised for C2HData with SUCCESS).
    pub cqe: Cqe,
    /// The read buffer registered at submit.
    pub read_buf: Option<B>,
    /// Bytes of C2HData placed in `read_buf`.
    pub read_len: u32,
    /// The write data given at submit (`None` only if the connection failed while it was being sent).
    pub data: Option<B>,
    /// A data digest of this command's C2HData did not match: the read data is not trustworthy.
    pub digest_error: bool,
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// We detected a protocol violation by the controller and sent an H2CTermReq.
    #[error("controller violated the protocol: {reason} (FES {fes:#x}, FEI {fei})")]
    Fatal {
        /// Fatal error status sent.
        fes: u16,
        /// Fatal error information sent.
        fei: u32,
        /// What was wrong.
        reason: &'static str,
    },
    /// The controller sent a C2HTermReq.
    #[error("controller terminated the connection (C2HTermReq FES {fes:#x}, FEI {fei})")]
    PeerTerminated {
        /// FES the controller reported.
        fes: u16,
        /// FEI the controller reported.
        fei: u32,
    },
}

/// What the connection asks its driver to do, in order.
#[derive(Debug)]
pub enum HostOutput<B> {
    /// Send this PDU.
    Send(TxPdu<TxData<B>>),
    /// A command finished.
    Completion(HostCompletion<B>),
    /// Flush what was queued, then close the connection; fail what is outstanding ([`HostConn::fail_all`]).
    Close(HostError),
}

/// Why a submission was refused; the buffers come back.
#[derive(Debug)]
pub struct SubmitError<B> {
    /// What was wrong.
    pub kind: SubmitErrorKind,
    /// The write data, returned.
    pub data: Option<B>,
    /// The read buffer, returned.
    pub read_buf: Option<B>,
}

/// Reason of a [`SubmitError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitErrorKind {
    /// ICResp has not arrived yet.
    #[error("connection not initialized")]
    NotReady,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// `depth` commands are outstanding.
    #[error("queue full")]
    QueueFull,
    /// Both write data and a read buffer, or a transfer above 4 GiB.
    #[error("invalid data buffers")]
    BadBuffers,
}

/// What to read next.
#[derive(Debug)]
pub enum RecvTarget<'a> {
    /// Read at most this many bytes into any buffer and pass them to [`HostConn::feed`].
    Small(usize),
    /// Read into this slice (payload, straight into the command's read buffer), then call
    /// [`HostConn::data_received`].
    Data(&'a mut [u8]),
    /// Nothing more is accepted.
    Closed,
}

struct Slot<B> {
    /// Write data; shared with in-flight [`TxData`] views.
    data: Option<Arc<B>>,
    data_len: u32,
    in_capsule: bool,
    /// Bytes of write data requested by R2Ts so far.
    r2t_done: u32,
    read_buf: Option<B>,
    /// Transfer length for reads (SGL length).
    read_len: u32,
    /// Next expected C2HData offset.
    received: u32,
    digest_error: bool,
    /// Completion received; waiting for the sender to drop the data views.
    retiring: Option<Cqe>,
}

/// Where the payload of the PDU being received goes.
enum Rx {
    None,
    C2H { cid: u16, filled: usize, end: usize, hdr: C2HData },
    Discard,
}

const DISCARD_LEN: usize = 4096;

/// The host side of one NVMe/TCP connection. See the module docs.
pub struct HostConn<B> {
    cfg: HostConfig,
    dec: Decoder,
    framing: Option<Framing>,
    maxh2cdata: u32,
    slots: Vec<Option<Slot<B>>>,
    free: Vec<u16>,
    outstanding: usize,
    retiring: Vec<u16>,
    rx: Rx,
    out: VecDeque<HostOutput<B>>,
    discard: Box<[u8; DISCARD_LEN]>,
    qid: u16,
    closed: bool,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> HostConn<B> {
    /// A connection whose first output is the ICReq.
    pub fn new(cfg: HostConfig) -> Self {
        let dcfg = DecoderConfig {
            role: Role::Host,
            pda: 0,
            hdgst: cfg.digests.header,
            ddgst: cfg.digests.data,
            max_data_len: cfg.max_data_len.max(crate::pdu::MAX_TERM_DATA_LEN as u32),
        };
        let depth = cfg.depth.max(1);
        let mut c = HostConn {
            cfg,
            dec: Decoder::new(dcfg),
            framing: None,
            maxh2cdata: 0,
            slots: (0..depth).map(|_| None).collect(),
            // Popped from the end: low ids first.
            free: (0..depth).rev().collect(),
            outstanding: 0,
            retiring: Vec::new(),
            rx: Rx::None,
            out: VecDeque::new(),
            discard: Box::new([0; DISCARD_LEN]),
            qid: 0,
            closed: false,
        };
        let icreq = IcReq { pfv: 0, hpda: 0, dgst: cfg.digests, maxr2t: cfg.maxr2t };
        c.push_pdu_framed(Pdu::IcReq(icreq), None, Framing::default());
        c
    }

    /// Whether ICResp arrived and commands may be submitted.
    pub fn is_ready(&self) -> bool {
        self.framing.is_some() && !self.closed
    }

    /// The negotiated framing (digests in use, controller's alignment), once ICResp arrived.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// MAXH2CDATA from ICResp (0 before).
    pub fn maxh2cdata(&self) -> u32 {
        self.maxh2cdata
    }

    /// Whether the connection stopped accepting input.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Commands submitted and not yet handed back.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Records the queue id (used in synthesised completions).
    pub fn set_qid(&mut self, qid: u16) {
        self.qid = qid;
    }

    /// Sets the in-capsule limit (I/O queues: IOCCSZ * 16 - 64 from Identify Controller).
    pub fn set_max_in_capsule(&mut self, bytes: u32) {
        self.cfg.max_in_capsule = bytes;
    }

    /// Next output, if any. Completions whose write data the sender has released come first.
    pub fn poll_output(&mut self) -> Option<HostOutput<B>> {
        if !self.retiring.is_empty() {
            self.reap_retiring();
        }
        self.out.pop_front()
    }

    fn reap_retiring(&mut self) {
        let mut i = 0;
        while let Some(&cid) = self.retiring.get(i) {
            let unique = match self.slots.get(usize::from(cid)) {
                Some(Some(s)) => s.data.as_ref().is_none_or(|a| Arc::strong_count(a) == 1),
                _ => true,
            };
            if unique {
                self.retiring.swap_remove(i);
                if let Some(cqe) =
                    self.slots.get_mut(usize::from(cid)).and_then(|s| s.as_mut()).and_then(|s| s.retiring)
                {
                    self.finish(cid, cqe);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Submits `sqe` (its cid is assigned here and returned). `data` is write data (sent in the capsule
    /// when small enough, else on R2T); `read_buf` receives C2HData (its length is the transfer length).
    /// The data pointer of `sqe` is filled in.
    // The refused buffers go back whole; the error path is cold.
    #[allow(clippy::result_large_err)]
    pub fn submit(&mut self, mut sqe: Sqe, data: Option<B>, read_buf: Option<B>) -> Result<u16, SubmitError<B>> {
        let refuse = |kind, data, read_buf| Err(SubmitError { kind, data, read_buf });
        if self.closed {
            return refuse(SubmitErrorKind::Closed, data, read_buf);
        }
        if self.framing.is_none() {
            return refuse(SubmitErrorKind::NotReady, data, read_buf);
        }
        let dlen = data.as_ref().map(|d| d.as_ref().len()).unwrap_or(0);
        let rlen = read_buf.as_ref().map(|d| d.as_ref().len()).unwrap_or(0);
        let (Ok(dlen), Ok(rlen)) = (u32::try_from(dlen), u32::try_from(rlen)) else {
            return refuse(SubmitErrorKind::BadBuffers, data, read_buf);
        };
        if (data.is_some() && read_buf.is_some()) || (data.is_some() && dlen == 0) {
            return refuse(SubmitErrorKind::BadBuffers, data, read_buf);
        }
        let Some(cid) = self.free.pop() else {
            return refuse(SubmitErrorKind::QueueFull, data, read_buf);
        };
        sqe.cid = cid;
        sqe.flags = (sqe.flags & !ff_nvme::nvme::PSDT_MASK) | PSDT_SGL_MPTR_CONTIG;
        let in_capsule = data.is_some() && dlen <= self.cfg.max_in_capsule;
        sqe.dptr =
            if in_capsule { SglDescriptor::in_capsule(0, dlen) } else { SglDescriptor::transport(dlen.max(rlen)) };
        let data = data.map(Arc::new);
        let slot = Slot {
            data: data.clone(),
            data_len: dlen,
            in_capsule,
            r2t_done: 0,
            read_buf,
            read_len: rlen,
            received: 0,
            digest_error: false,
            retiring: None,
        };
        if let Some(s) = self.slots.get_mut(usize::from(cid)) {
            *s = Some(slot);
        }
        self.outstanding += 1;
        let tx = match data {
            Some(buf) if in_capsule => Some(TxData { buf, start: 0, end: dlen as usize }),
            _ => None,
        };
        self.push_pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe }), tx);
        Ok(cid)
    }

    /// What to read next.
    pub fn recv_target(&mut self) -> RecvTarget<'_> {
        if self.closed {
            return RecvTarget::Closed;
        }
        match self.dec.next_need() {
            Need::Header { len } | Need::Pad { len } | Need::DataDigest { len } => RecvTarget::Small(len),
            Need::Closed => RecvTarget::Closed,
            Need::Done => RecvTarget::Small(0),
            Need::Data { len } => {
                if matches!(self.rx, Rx::None) {
                    self.setup_rx();
                }
                if self.closed {
                    return RecvTarget::Closed;
                }
                match &self.rx {
                    Rx::C2H { cid, filled, .. } => {
                        let f = *filled;
                        match self.slots.get_mut(usize::from(*cid)) {
                            Some(Some(Slot { read_buf: Some(b), .. })) => {
                                RecvTarget::Data(b.as_mut().get_mut(f..f + len).unwrap_or(&mut []))
                            }
                            _ => RecvTarget::Closed,
                        }
                    }
                    Rx::Discard | Rx::None => {
                        let n = len.min(DISCARD_LEN);
                        RecvTarget::Data(self.discard.get_mut(..n).unwrap_or(&mut []))
                    }
                }
            }
        }
    }

    /// Decides where the payload of the PDU whose header just arrived goes.
    fn setup_rx(&mut self) {
        let Some(pdu) = self.dec.pdu().copied() else { return };
        let Pdu::C2HData(d) = pdu else {
            self.rx = Rx::Discard;
            return;
        };
        let check = match self.slots.get(usize::from(d.cccid)) {
            Some(Some(s)) if s.retiring.is_none() => match &s.read_buf {
                None => Err((Fes::InvalidHeaderField, 8, "C2HData for a command that reads no data")),
                Some(_) if d.datao != s.received => {
                    Err((Fes::DataTransferOutOfRange, 12, "C2HData out of order (DATAO is not the next offset)"))
                }
                Some(_) if u64::from(d.datao) + u64::from(d.datal) > u64::from(s.read_len) => {
                    Err((Fes::DataTransferOutOfRange, 16, "C2HData beyond the registered read buffer"))
                }
                Some(_) => Ok(()),
            },
            _ => Err((Fes::InvalidHeaderField, 8, "C2HData for an unknown command id")),
        };
        match check {
            Ok(()) => {
                let start = d.datao as usize;
                self.rx = Rx::C2H { cid: d.cccid, filled: start, end: start + d.datal as usize, hdr: d };
            }
            Err((fes, fei, reason)) => self.fatal(fes, fei, reason),
        }
    }

    /// Supplies small bytes (header, padding, digest); returns how many were taken.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
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
            self.drain_done();
        }
        self.drain_done();
        used
    }

    /// Reports `n` payload bytes written into the slice from [`HostConn::recv_target`].
    pub fn data_received(&mut self, n: usize) {
        if self.closed || n == 0 {
            return;
        }
        let r = match &mut self.rx {
            Rx::C2H { cid, filled, end, .. } => {
                let at = *filled;
                let n = n.min(end.saturating_sub(at));
                *filled += n;
                let s = match self.slots.get(usize::from(*cid)) {
                    Some(Some(Slot { read_buf: Some(b), .. })) => b.as_ref().get(at..at + n).unwrap_or(&[]),
                    _ => &[],
                };
                self.dec.data_received(s)
            }
            Rx::Discard | Rx::None => self.dec.data_received(self.discard.get(..n).unwrap_or(&[])),
        };
        if let Err(e) = r {
            self.on_decode_error(e);
        }
        self.drain_done();
    }

    fn drain_done(&mut self) {
        while !self.closed && matches!(self.dec.next_need(), Need::Done) {
            let r = self.dec.finish();
            let rx = std::mem::replace(&mut self.rx, Rx::None);
            match r {
                Ok(pdu) => self.on_pdu(pdu, false),
                Err(Error::DataDigest { .. }) => {
                    // The stream stays in sync; only the command the data belongs to fails.
                    if let Rx::C2H { hdr, .. } = rx {
                        self.on_pdu(Pdu::C2HData(hdr), true);
                    }
                }
                Err(e) => self.on_decode_error(e),
            }
        }
    }

    fn on_decode_error(&mut self, e: Error) {
        match e {
            Error::Terminated => self.close(HostError::PeerTerminated { fes: 0, fei: 0 }),
            _ => match e.fatal_error() {
                Some(f) => {
                    let f = *f;
                    self.fatal(f.fes, f.fei, f.reason);
                }
                None => self.fatal(Fes::InvalidHeaderField, 0, "undecodable PDU"),
            },
        }
    }

    fn close(&mut self, e: HostError) {
        if self.closed {
            return;
        }
        self.out.push_back(HostOutput::Close(e));
        self.closed = true;
    }

    fn fatal(&mut self, fes: Fes, fei: u32, reason: &'static str) {
        if self.closed {
            return;
        }
        // TermReq goes out unframed by digests; before ICResp the framing is the default one anyway.
        self.push_pdu(Pdu::H2CTermReq(TermReq { fes: fes.code(), fei }), None);
        self.close(HostError::Fatal { fes: fes.code(), fei, reason });
    }

    fn on_pdu(&mut self, pdu: Pdu, digest_failed: bool) {
        match pdu {
            Pdu::IcResp(r) => {
                self.framing = Some(Framing { hdgst: r.dgst.header, ddgst: r.dgst.data, pda: r.cpda });
                self.maxh2cdata = r.maxh2cdata;
            }
            Pdu::C2HTermReq(t) => self.close(HostError::PeerTerminated { fes: t.fes, fei: t.fei }),
            Pdu::CapsuleResp(c) => {
                let cid = c.cqe.cid;
                match self.slots.get(usize::from(cid)) {
                    Some(Some(s)) if s.retiring.is_none() => self.complete(cid, c.cqe),
                    // CID sits at byte 12 of the CQE, after the 8-byte common header.
                    _ => self.fatal(Fes::InvalidHeaderField, 20, "CapsuleResp for an unknown command id"),
                }
            }
            Pdu::C2HData(d) => {
                let Some(Some(s)) = self.slots.get_mut(usize::from(d.cccid)) else { return };
                s.received = d.datao.saturating_add(d.datal);
                s.digest_error |= digest_failed;
                if d.success {
                    let cqe = Cqe { dw0: 0, dw1: 0, sqhd: 0, sqid: self.qid, cid: d.cccid, status: 0 };
                    self.complete(d.cccid, cqe);
                }
            }
            Pdu::R2T(r) => self.on_r2t(r),
            _ => self.fatal(Fes::InvalidHeaderField, 0, "PDU type not accepted by a host"),
        }
    }

    fn on_r2t(&mut self, r: crate::pdu::R2T) {
        let buf = match self.slots.get_mut(usize::from(r.cccid)) {
            Some(Some(s)) if s.retiring.is_none() => {
                let Some(buf) = s.data.clone().filter(|_| !s.in_capsule) else {
                    return self.fatal(Fes::InvalidHeaderField, 8, "R2T for a command without R2T data");
                };
                if r.r2to != s.r2t_done {
                    return self.fatal(
                        Fes::DataTransferOutOfRange,
                        12,
                        "R2T out of order (R2TO is not the next offset)",
                    );
                }
                if u64::from(r.r2to) + u64::from(r.r2tl) > u64::from(s.data_len) {
                    return self.fatal(Fes::DataTransferOutOfRange, 16, "R2T beyond the command's data");
                }
                s.r2t_done = r.r2to + r.r2tl;
                buf
            }
            _ => return self.fatal(Fes::InvalidHeaderField, 8, "R2T for an unknown command id"),
        };
        let chunk = self.maxh2cdata.max(crate::pdu::MIN_MAXH2CDATA);
        let end = r.r2to + r.r2tl;
        let mut off = r.r2to;
        while off < end && !self.closed {
            let len = chunk.min(end - off);
            let last = off + len == end;
            let h = H2CData { cccid: r.cccid, ttag: r.ttag, datao: off, datal: len, last };
            let tx = TxData { buf: buf.clone(), start: off as usize, end: (off + len) as usize };
            self.push_pdu(Pdu::H2CData(h), Some(tx));
            off += len;
        }
    }

    /// The response for `cid` arrived: hand the command back now, or once its write data is released.
    fn complete(&mut self, cid: u16, cqe: Cqe) {
        let Some(Some(s)) = self.slots.get_mut(usize::from(cid)) else { return };
        if s.data.as_ref().is_some_and(|a| Arc::strong_count(a) > 1) {
            s.retiring = Some(cqe);
            self.retiring.push(cid);
            return;
        }
        self.finish(cid, cqe);
    }

    fn finish(&mut self, cid: u16, cqe: Cqe) {
        let Some(s) = self.slots.get_mut(usize::from(cid)).and_then(|s| s.take()) else { return };
        self.free.push(cid);
        self.outstanding = self.outstanding.saturating_sub(1);
        let data = s.data.and_then(|a| Arc::try_unwrap(a).ok());
        self.out.push_back(HostOutput::Completion(HostCompletion {
            cid,
            cqe,
            read_buf: s.read_buf,
            read_len: s.received,
            data,
            digest_error: s.digest_error,
        }));
    }

    /// Completes every outstanding command with `st` (after the connection failed), handing buffers back
    /// (write data still held by the sender is dropped when the sender lets go of it).
    pub fn fail_all(&mut self, st: Status) {
        self.closed = true;
        self.retiring.clear();
        for cid in 0..self.slots.len() {
            let cid = cid as u16;
            if matches!(self.slots.get(usize::from(cid)), Some(Some(_))) {
                let cqe =
                    Cqe { dw0: 0, dw1: 0, sqhd: 0, sqid: self.qid, cid, status: Cqe::status_field(st, true, false) };
                self.finish(cid, cqe);
            }
        }
    }

    fn push_pdu(&mut self, pdu: Pdu, data: Option<TxData<B>>) {
        let framing = match pdu {
            Pdu::H2CTermReq(_) => Framing::default(),
            _ => self.framing.unwrap_or_default(),
        };
        self.push_pdu_framed(pdu, data, framing);
    }

    fn push_pdu_framed(&mut self, pdu: Pdu, data: Option<TxData<B>>, framing: Framing) {
        match TxPdu::encode(&pdu, &framing, data) {
            Ok(tx) => self.out.push_back(HostOutput::Send(tx)),
            Err(_) => {
                // Only framing the controller negotiated reaches here; failing loudly beats a corrupt stream.
                self.close(HostError::Fatal {
                    fes: Fes::InvalidHeaderField.code(),
                    fei: 0,
                    reason: "could not encode a PDU",
                });
            }
        }
    }
}
