//! SCSI commands on a target connection: command reception with immediate data, unsolicited
//! Data-Out up to FirstBurstLength, R2Ts for the rest (MaxBurstLength, MaxOutstandingR2T, R2TSN,
//! TTT, offsets), Data-Out validation, then completion as Data-In (status in the last one when there
//! is no sense) or a SCSI Response with sense and residuals.
//!
//! Data arrives in order (we answer DataPDUInOrder=Yes and DataSequenceInOrder=Yes), so each sequence
//! (the unsolicited one, or one per R2T) is a single running offset and DataSN.

use super::{BufAlloc, Command, Completion, Rx, TargetConn, TargetOutput, Verdict};
use crate::decoder::Header;
use crate::keys::SessionType;
use crate::pdu::ahs::Cdb;
use crate::pdu::{DataIn, DataOut, Pdu, R2t, RESERVED_TAG, RejectReason, Residual, ScsiCommand, ScsiResponse, SeqNums};
use crate::tx::{TxData, TxPdu};

/// SCSI status BUSY: no buffer for a write right now; the initiator retries.
const STATUS_BUSY: u8 = 0x08;

/// Fixed-format sense: ILLEGAL REQUEST, INVALID FIELD IN CDB (a transfer longer than we gather).
fn sense_invalid_field() -> Vec<u8> {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = 0x05;
    s[7] = 10;
    s[12] = 0x24;
    s
}

/// One data sequence: the unsolicited burst (TTT reserved) or one R2T's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seq {
    ttt: u32,
    next: u32,
    end: u32,
    data_sn: u32,
}

/// Why a write cannot run once its data is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    TooLarge,
    NoBuffer,
}

/// A write gathering its data.
struct Xfer<B> {
    buf: Option<B>,
    fail: Option<Failure>,
    received: u32,
    unsol: Option<Seq>,
    r2ts: Vec<Seq>,
    next_r2t: u32,
}

enum State<B> {
    Receiving(Box<Xfer<B>>),
    Executing { aborted: bool },
}

/// A task the connection tracks, by ITT.
pub(super) struct Task<B> {
    pub lun: u64,
    cdb: Cdb,
    attr: u8,
    read: bool,
    write: bool,
    edtl: u32,
    bidi_read_len: u32,
    pub immediate: bool,
    state: State<B>,
    r2t_sn: u32,
}

impl<B> Task<B> {
    pub fn buf(&self) -> Option<&B> {
        match &self.state {
            State::Receiving(x) => x.buf.as_ref(),
            State::Executing { .. } => None,
        }
    }

    pub fn buf_mut(&mut self) -> Option<&mut B> {
        match &mut self.state {
            State::Receiving(x) => x.buf.as_mut(),
            State::Executing { .. } => None,
        }
    }

    /// Whether the runtime holds it.
    pub fn executing(&self) -> bool {
        matches!(self.state, State::Executing { .. })
    }

    /// Marks a task the runtime holds as aborted: its completion will be dropped.
    pub fn abort(&mut self) {
        if let State::Executing { aborted } = &mut self.state {
            *aborted = true;
        }
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> TargetConn<B> {
    /// Judges a SCSI Command header: sequencing, flags against the negotiated keys, buffer.
    pub(super) fn command_header(&mut self, c: &ScsiCommand, h: &Header, alloc: &mut impl BufAlloc<B>) -> Rx {
        let reject = |conn: &mut Self, r| {
            conn.verdict = Verdict::Reject(r);
            Rx::Discard
        };
        if self.session_type == SessionType::Discovery {
            return reject(self, RejectReason::ProtocolError);
        }
        if self.control.logout.is_some() {
            return reject(self, RejectReason::WaitingForLogout);
        }
        if !c.immediate {
            let v = self.take_cmd_sn(c.cmd_sn);
            if v != Verdict::Go {
                self.verdict = v;
                return Rx::Discard;
            }
        } else if self.immediate >= self.cfg.max_immediate {
            return reject(self, RejectReason::ImmediateCommandReject);
        }
        let len = h.lengths.data_len;
        let p = self.params;
        let unsolicited_room = p.first_burst_length.min(c.edtl);
        let bad = if c.itt == RESERVED_TAG {
            Some(RejectReason::InvalidPduField)
        } else if self.tasks.contains_key(&c.itt) {
            Some(RejectReason::TaskInProgress)
        } else if (!c.write && (len > 0 || !c.final_bit))
            || (len > 0 && !p.immediate_data)
            || len > c.edtl
            || len > p.first_burst_length
            || (c.write && !c.final_bit && (p.initial_r2t || len >= unsolicited_room))
        {
            // Data without W, immediate data not negotiated, more than expected or than the first
            // burst, unsolicited Data-Out announced where none may follow.
            Some(RejectReason::ProtocolError)
        } else {
            None
        };
        if let Some(r) = bad {
            return reject(self, r);
        }
        let bidi = c.read && c.write;
        let mut task = Task {
            lun: c.lun,
            cdb: h.ahs.cdb(&c.cdb),
            attr: c.attr,
            read: c.read,
            write: c.write,
            edtl: c.edtl,
            bidi_read_len: if bidi { h.ahs.bidi_read_len.unwrap_or(0) } else { 0 },
            immediate: c.immediate,
            state: State::Executing { aborted: false },
            r2t_sn: 0,
        };
        let mut rx = Rx::Discard;
        if c.write && c.edtl > 0 {
            let (buf, fail) = if c.edtl > self.cfg.portal.limits.max_transfer {
                (None, Some(Failure::TooLarge))
            } else {
                match alloc.alloc(c.edtl as usize) {
                    Some(b) => (Some(b), None),
                    None => (None, Some(Failure::NoBuffer)),
                }
            };
            if buf.is_some() && len > 0 {
                rx = Rx::Task { itt: c.itt, at: 0 };
            }
            let x = Xfer { buf, fail, received: 0, unsol: None, r2ts: Vec::new(), next_r2t: 0 };
            task.state = State::Receiving(Box::new(x));
        }
        if c.immediate {
            self.immediate += 1;
        } else {
            self.in_window += 1;
        }
        self.tasks.insert(c.itt, task);
        rx
    }

    /// A SCSI Command PDU (and its immediate data) is in.
    pub(super) fn command_done(&mut self, c: &ScsiCommand, h: &Header, _rx: Rx) {
        let len = h.lengths.data_len;
        let fbl = self.params.first_burst_length;
        let Some(task) = self.tasks.get_mut(&c.itt) else { return };
        match &mut task.state {
            State::Executing { .. } => self.execute(c.itt),
            State::Receiving(x) => {
                x.received = len;
                if c.final_bit {
                    x.next_r2t = len;
                } else {
                    x.unsol = Some(Seq { ttt: RESERVED_TAG, next: len, end: fbl.min(c.edtl), data_sn: 0 });
                }
                self.progress(c.itt);
            }
        }
    }

    /// Judges a Data-Out header against the sequence it claims to continue.
    pub(super) fn data_out_header(&mut self, d: &DataOut, h: &Header) -> Rx {
        let len = h.lengths.data_len;
        let Some(task) = self.tasks.get_mut(&d.itt) else {
            self.verdict = Verdict::Reject(RejectReason::InvalidPduField);
            return Rx::Discard;
        };
        let State::Receiving(x) = &mut task.state else {
            self.verdict = Verdict::Fatal(RejectReason::ProtocolError, "Data-Out for a command with all its data");
            return Rx::Discard;
        };
        let seq = if d.ttt == RESERVED_TAG { x.unsol.as_ref() } else { x.r2ts.iter().find(|s| s.ttt == d.ttt) };
        let Some(seq) = seq else {
            self.verdict = Verdict::Fatal(RejectReason::ProtocolError, "Data-Out for no open sequence");
            return Rx::Discard;
        };
        let end = u64::from(d.offset) + u64::from(len);
        let ends = end == u64::from(seq.end);
        let bad = if d.offset != seq.next {
            Some("Data-Out at the wrong buffer offset")
        } else if d.data_sn != seq.data_sn {
            Some("Data-Out with the wrong DataSN")
        } else if end > u64::from(seq.end) {
            Some("Data-Out beyond the sequence or the expected transfer")
        } else if ends && !d.final_bit {
            Some("Data-Out sequence complete without the F bit")
        } else if d.final_bit && !ends && d.ttt != RESERVED_TAG {
            Some("F bit before the end of the R2T's data")
        } else {
            None
        };
        if let Some(why) = bad {
            self.verdict = Verdict::Fatal(RejectReason::ProtocolError, why);
            return Rx::Discard;
        }
        if x.buf.is_some() && len > 0 { Rx::Task { itt: d.itt, at: d.offset as usize } } else { Rx::Discard }
    }

    /// A Data-Out PDU is in: advance its sequence and the command.
    pub(super) fn data_out_done(&mut self, d: &DataOut, h: &Header) {
        let len = h.lengths.data_len;
        let Some(State::Receiving(x)) = self.tasks.get_mut(&d.itt).map(|t| &mut t.state) else { return };
        x.received = x.received.saturating_add(len);
        if d.ttt == RESERVED_TAG {
            if let Some(s) = x.unsol.as_mut() {
                s.next += len;
                s.data_sn = s.data_sn.wrapping_add(1);
            }
            if d.final_bit {
                x.unsol = None;
                x.next_r2t = x.received;
            }
        } else if let Some(i) = x.r2ts.iter().position(|s| s.ttt == d.ttt) {
            if let Some(s) = x.r2ts.get_mut(i) {
                s.next += len;
                s.data_sn = s.data_sn.wrapping_add(1);
            }
            if d.final_bit {
                x.r2ts.remove(i);
            }
        }
        self.progress(d.itt);
    }

    /// Sends the R2Ts a write still needs, or hands it to the runtime once all its data is in.
    fn progress(&mut self, itt: u32) {
        let p = self.params;
        let mut r2ts = Vec::new();
        let mut done = false;
        let sn = self.peek_sn();
        let mut ttts = Vec::new();
        if let Some(task) = self.tasks.get(&itt)
            && let State::Receiving(x) = &task.state
        {
            if x.unsol.is_some() {
                return;
            }
            // A write that will fail takes what the initiator already sends, but asks for no more.
            let room = if x.fail.is_some() {
                0
            } else {
                usize::from(p.max_outstanding_r2t.max(1)).saturating_sub(x.r2ts.len())
            };
            let mut at = x.next_r2t;
            while ttts.len() < room && at < task.edtl {
                let n = p.max_burst_length.max(512).min(task.edtl - at);
                ttts.push((at, n));
                at += n;
            }
            done = x.r2ts.is_empty() && ttts.is_empty() && (x.received >= task.edtl || x.fail.is_some());
        }
        for (offset, len) in ttts {
            let ttt = self.alloc_ttt();
            let Some(task) = self.tasks.get_mut(&itt) else { return };
            let State::Receiving(x) = &mut task.state else { return };
            x.r2ts.push(Seq { ttt, next: offset, end: offset + len, data_sn: 0 });
            x.next_r2t = offset + len;
            let r2t_sn = task.r2t_sn;
            task.r2t_sn += 1;
            r2ts.push(R2t { lun: task.lun, itt, ttt, sn, r2t_sn, offset, desired_len: len });
        }
        for r in r2ts {
            self.send(Pdu::R2t(r), Vec::new());
        }
        if done {
            self.execute(itt);
        }
    }

    /// Hands a command (with its write data) to the runtime, or fails it when the data had nowhere to go.
    fn execute(&mut self, itt: u32) {
        let Some(task) = self.tasks.get_mut(&itt) else { return };
        let state = std::mem::replace(&mut task.state, State::Executing { aborted: false });
        let mut data = None;
        if let State::Receiving(x) = state {
            let x = *x;
            match x.fail {
                Some(f) => {
                    let c = match f {
                        Failure::TooLarge => Completion::check_condition(sense_invalid_field()),
                        Failure::NoBuffer => Completion { status: STATUS_BUSY, ..Completion::good() },
                    };
                    return self.complete(itt, c);
                }
                None => data = x.buf,
            }
        }
        let cmd = Command {
            itt,
            lun: task.lun,
            // The task keeps only its state from here on: the CDB moves to the runtime.
            cdb: std::mem::replace(&mut task.cdb, Cdb::new(&[])),
            attr: task.attr,
            read: task.read,
            write: task.write,
            edtl: task.edtl,
            bidi_read_len: task.bidi_read_len,
            immediate: task.immediate,
            data,
        };
        self.out.push_back(TargetOutput::Command(cmd));
    }

    /// Completes command `itt`: read data as Data-In PDUs (at most the initiator's
    /// MaxRecvDataSegmentLength each, the F bit at each MaxBurstLength), the status in the last Data-In
    /// when there is no sense, else a SCSI Response with the sense and residuals. Unknown ITTs, tasks
    /// still receiving data, and aborted tasks are ignored.
    pub fn complete(&mut self, itt: u32, c: Completion<B>) {
        match self.tasks.get(&itt) {
            Some(t) if t.executing() => {}
            _ => return,
        }
        let Some(task) = self.tasks.remove(&itt) else { return };
        if task.immediate {
            self.immediate = self.immediate.saturating_sub(1);
        } else {
            self.in_window = self.in_window.saturating_sub(1);
        }
        if !matches!(task.state, State::Executing { aborted: false }) || self.phase != super::Phase::FullFeature {
            self.maybe_finish_logout();
            return;
        }
        self.respond(itt, &task, c);
        self.maybe_finish_logout();
    }

    fn respond(&mut self, itt: u32, task: &Task<B>, c: Completion<B>) {
        let bidi = task.read && task.write;
        let read_exp = if bidi {
            task.bidi_read_len
        } else if task.read {
            task.edtl
        } else {
            0
        };
        let produced = match (&c.data, task.read) {
            (Some(b), true) => u32::try_from(b.as_ref().len()).unwrap_or(u32::MAX),
            _ => 0,
        };
        let read_res = Residual::of(read_exp, produced);
        let residual = if task.read && !task.write {
            read_res
        } else if task.write {
            Residual::of(task.edtl, c.write_len.unwrap_or(task.edtl))
        } else {
            Residual::of(task.edtl, 0)
        };
        let bidi_residual = if bidi { read_res } else { Residual::None };
        let send_len = produced.min(read_exp);
        let status_in_data = send_len > 0 && c.response == 0 && c.sense.is_empty() && !bidi;
        let mut pdus = Vec::new();
        let buf = if send_len > 0 { c.data } else { None };
        let mut data_sn = 0u32;
        if let Some(b) = &buf {
            let seg = self.params.max_xmit_data_segment_length.max(512);
            let burst = self.params.max_burst_length.max(512);
            let (mut off, mut burst_left) = (0u32, burst);
            while off < send_len {
                let n = seg.min(send_len - off).min(burst_left);
                let last = off + n == send_len;
                let burst_end = last || n == burst_left;
                let with_status = last && status_in_data;
                let sn = if with_status { self.status_sn() } else { SeqNums { stat_sn: 0, ..self.peek_sn() } };
                let di = DataIn {
                    final_bit: burst_end,
                    ack: false,
                    status: with_status.then_some(c.status),
                    residual: if with_status { residual } else { Residual::None },
                    lun: task.lun,
                    itt,
                    ttt: RESERVED_TAG,
                    sn,
                    data_sn,
                    offset: off,
                };
                let range = off as usize..(off + n) as usize;
                match TxPdu::encode(&Pdu::DataIn(di), self.digests, TxData::Range(range), b.as_ref()) {
                    Ok(tx) => pdus.push(tx),
                    Err(_) => return self.close(super::CloseReason::ProtocolError("could not encode Data-In")),
                }
                data_sn += 1;
                off += n;
                burst_left = if burst_end { burst } else { burst_left - n };
            }
        }
        if !status_in_data {
            let mut data = Vec::new();
            if !c.sense.is_empty() {
                let n = c.sense.len().min(usize::from(u16::MAX));
                data.extend_from_slice(&(n as u16).to_be_bytes());
                data.extend_from_slice(c.sense.get(..n).unwrap_or(&[]));
            }
            let rsp = ScsiResponse {
                response: c.response,
                status: if c.response == 0 { c.status } else { 0 },
                itt,
                snack_tag: 0,
                sn: self.status_sn(),
                exp_data_sn: data_sn + task.r2t_sn,
                bidi_residual,
                residual,
            };
            let data = if data.is_empty() { TxData::None } else { TxData::Owned(data) };
            match TxPdu::encode(&Pdu::ScsiResponse(rsp), self.digests, data, &[]) {
                Ok(tx) => pdus.push(tx),
                Err(_) => return self.close(super::CloseReason::ProtocolError("could not encode a SCSI Response")),
            }
        }
        match buf {
            Some(buf) => self.out.push_back(TargetOutput::SendBuf { buf, pdus }),
            None => self.out.extend(pdus.into_iter().map(TargetOutput::Send)),
        }
    }

    /// Drops the tasks still gathering data that `pick` selects, and marks the executing ones aborted;
    /// returns the ITTs of the executing ones.
    pub(super) fn abort_tasks(&mut self, pick: impl Fn(u32, &Task<B>) -> bool) -> Vec<u32> {
        let mut executing = Vec::new();
        let mut gone = Vec::new();
        for (itt, t) in self.tasks.iter_mut() {
            if !pick(*itt, t) {
                continue;
            }
            if t.executing() {
                t.abort();
                executing.push(*itt);
            } else {
                gone.push(*itt);
            }
        }
        for itt in gone {
            if let Some(t) = self.tasks.remove(&itt) {
                if t.immediate {
                    self.immediate = self.immediate.saturating_sub(1);
                } else {
                    self.in_window = self.in_window.saturating_sub(1);
                }
            }
        }
        executing.sort_unstable();
        executing
    }
}
