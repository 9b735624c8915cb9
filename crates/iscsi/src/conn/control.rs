//! The full feature phase's non-SCSI requests: NOP-Out and target pings, Text (SendTargets and
//! declarations, with continued responses), Task Management, Logout, and Asynchronous Messages.

use super::{TargetConn, TargetOutput, TaskMgmt, TmfFunction, TmfResponseCode, Verdict};
use crate::config::TargetDesc;
use crate::keys::{self, SessionType};
use crate::pdu::{
    AsyncMessage, BHS_LEN, LogoutRequest, LogoutResponse, NopIn, NopOut, Pdu, RESERVED_TAG, RejectReason, TextRequest,
    TextResponse, TmfRequest, TmfResponse,
};
use crate::text::{self, TextAccum, TextOut, TextWriter};

/// Most target pings awaiting an answer.
const MAX_PINGS: usize = 16;

/// State of the control requests.
#[derive(Debug, Default)]
pub(super) struct ControlState {
    /// The session's target (normal sessions).
    pub target: Option<TargetDesc>,
    /// The initiator's name.
    pub initiator: Option<String>,
    /// A logout waiting for outstanding commands: its ITT.
    pub logout: Option<u32>,
    /// TTTs of our pings awaiting their NOP-Out.
    pings: Vec<u32>,
    /// TMF requests handed to the runtime.
    tmfs: Vec<u32>,
    /// The text exchange in progress.
    text: Option<TextExchange>,
}

#[derive(Debug)]
struct TextExchange {
    itt: u32,
    ttt: u32,
    accum: TextAccum,
    out: TextOut,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> TargetConn<B> {
    /// Consumes the CmdSN of a non-immediate control request; false when the request must go no further.
    fn control_sn(&mut self, immediate: bool, cmd_sn: u32, bhs: &[u8; BHS_LEN]) -> bool {
        if immediate {
            return true;
        }
        match self.take_cmd_sn(cmd_sn) {
            Verdict::Go => true,
            Verdict::Drop => false,
            Verdict::Reject(r) => {
                self.reject(r, bhs);
                false
            }
            Verdict::Fatal(r, why) => {
                self.reject(r, bhs);
                self.close(super::CloseReason::ProtocolError(why));
                false
            }
        }
    }

    pub(super) fn nop_out(&mut self, n: &NopOut, data: &[u8], bhs: &[u8; BHS_LEN]) {
        if n.itt == RESERVED_TAG {
            // The answer to one of our pings; it carries no CmdSN of its own.
            if let Some(i) = self.control.pings.iter().position(|&t| t == n.ttt) {
                self.control.pings.remove(i);
                self.out.push_back(TargetOutput::PingReply(n.ttt));
            }
            return;
        }
        if !self.control_sn(n.immediate, n.cmd_sn, bhs) {
            return;
        }
        let max = self.params.max_xmit_data_segment_length as usize;
        let echo = data.get(..data.len().min(max)).unwrap_or(&[]).to_vec();
        let sn = self.status_sn();
        self.send(Pdu::NopIn(NopIn { lun: n.lun, itt: n.itt, ttt: RESERVED_TAG, sn }), echo);
    }

    /// Sends a target ping (NOP-In asking for a NOP-Out); returns its TTT, reported back as
    /// [`TargetOutput::PingReply`]. `None` outside the full feature phase or with too many unanswered.
    pub fn ping(&mut self) -> Option<u32> {
        if self.phase != super::Phase::FullFeature || self.control.pings.len() >= MAX_PINGS {
            return None;
        }
        let ttt = self.alloc_ttt();
        self.control.pings.push(ttt);
        let sn = self.peek_sn();
        self.send(Pdu::NopIn(NopIn { lun: 0, itt: RESERVED_TAG, ttt, sn }), Vec::new());
        Some(ttt)
    }

    /// Sends an Asynchronous Message: `event` 0 (SCSI event, with `sense`), 1 (logout requested),
    /// 2 or 3 (connection or session drop), 4 (renegotiation). Only in the full feature phase.
    pub fn send_async(&mut self, event: u8, lun: u64, params: [u16; 3], sense: &[u8]) {
        if self.phase != super::Phase::FullFeature {
            return;
        }
        let mut data = Vec::new();
        if !sense.is_empty() {
            let n = sense.len().min(usize::from(u16::MAX));
            data.extend_from_slice(&(n as u16).to_be_bytes());
            data.extend_from_slice(sense.get(..n).unwrap_or(&[]));
        }
        let sn = self.status_sn();
        let [param1, param2, param3] = params;
        let m = AsyncMessage { lun, sn, event, vcode: 0, param1, param2, param3 };
        self.send(Pdu::AsyncMessage(m), data);
    }

    pub(super) fn text_request(&mut self, t: &TextRequest, data: &[u8], bhs: &[u8; BHS_LEN]) {
        if !self.control_sn(t.immediate, t.cmd_sn, bhs) {
            return;
        }
        if t.itt == RESERVED_TAG {
            return self.reject(RejectReason::InvalidPduField, bhs);
        }
        let ongoing = self.control.text.as_ref().is_some_and(|x| x.itt == t.itt && x.ttt == t.ttt);
        if t.ttt != RESERVED_TAG && !ongoing {
            return self.reject(RejectReason::InvalidPduField, bhs);
        }
        if !ongoing {
            self.control.text = Some(TextExchange {
                itt: t.itt,
                ttt: RESERVED_TAG,
                accum: TextAccum::default(),
                out: TextOut::default(),
            });
        }
        let Some(x) = self.control.text.as_mut() else { return };
        if x.out.pending() {
            // The initiator collects the rest of our response with empty requests.
            if !data.is_empty() {
                self.control.text = None;
                return self.reject(RejectReason::ProtocolError, bhs);
            }
            return self.text_chunk(t.itt);
        }
        if x.accum.push(data).is_err() {
            self.control.text = None;
            return self.reject(RejectReason::ProtocolError, bhs);
        }
        if t.cont {
            let ttt = self.alloc_ttt();
            if let Some(x) = self.control.text.as_mut() {
                x.ttt = ttt;
            }
            let sn = self.status_sn();
            let r = TextResponse { final_bit: false, cont: false, lun: t.lun, itt: t.itt, ttt, sn };
            return self.send(Pdu::TextResponse(r), Vec::new());
        }
        let all = x.accum.take();
        let Ok(kvs) = text::parse(&all) else {
            self.control.text = None;
            return self.reject(RejectReason::ProtocolError, bhs);
        };
        let mut w = TextWriter::new();
        for (k, v) in kvs {
            match k {
                "SendTargets" => self.send_targets(v, &mut w),
                "MaxRecvDataSegmentLength" => match keys::parse_number(v).filter(|n| (512..1 << 24).contains(n)) {
                    Some(n) => self.params.max_xmit_data_segment_length = n as u32,
                    None => w.push(k, "Reject"),
                },
                _ if k.starts_with("X-") || k.starts_with("X#") => w.push(k, "NotUnderstood"),
                // Everything else is negotiated at login only (or not at all).
                _ => {
                    let mut scratch = self.params;
                    let lim = self.cfg.portal.limits;
                    match keys::answer(&mut scratch, &lim, self.session_type, k, v) {
                        keys::Answer::Value(a) if a == "NotUnderstood" || a == "Irrelevant" => w.push(k, &a),
                        _ => w.push(k, "Reject"),
                    }
                }
            }
        }
        if let Some(x) = self.control.text.as_mut() {
            x.out = TextOut::new(w.into_bytes());
        }
        self.text_chunk(t.itt);
    }

    /// Sends the next Text Response of the exchange: C and a TTT while more follows, F at the end.
    fn text_chunk(&mut self, itt: u32) {
        let max = self.params.max_xmit_data_segment_length as usize;
        let Some(x) = self.control.text.as_mut() else { return };
        let (chunk, more) = x.out.next_chunk(max);
        let ttt = if more {
            let t = self.next_ttt;
            self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
            if self.next_ttt == RESERVED_TAG {
                self.next_ttt = 1;
            }
            x.ttt = t;
            t
        } else {
            self.control.text = None;
            RESERVED_TAG
        };
        let sn = self.status_sn();
        let r = TextResponse { final_bit: !more, cont: more, lun: 0, itt, ttt, sn };
        self.send(Pdu::TextResponse(r), chunk);
    }

    /// SendTargets: `All` in a discovery session lists every target the initiator may use; an empty
    /// value (or the session's own target name) lists the session's target.
    fn send_targets(&mut self, v: &str, w: &mut TextWriter) {
        let me = self.control.initiator.clone().unwrap_or_default();
        let portal = self.cfg.portal.clone();
        let list: Vec<&TargetDesc> = match (self.session_type, v) {
            (SessionType::Discovery, "All") => portal.targets.iter().filter(|t| t.admits(&me)).collect(),
            (SessionType::Discovery, name) => portal.target(name).filter(|t| t.admits(&me)).into_iter().collect(),
            (SessionType::Normal, "All") => return w.push("SendTargets", "Reject"),
            (SessionType::Normal, name) => match &self.control.target {
                Some(t) if name.is_empty() || t.name.eq_ignore_ascii_case(name) => {
                    return write_target(t, w);
                }
                _ => Vec::new(),
            },
        };
        for t in list {
            write_target(t, w);
        }
    }

    pub(super) fn tmf_request(&mut self, t: &TmfRequest, bhs: &[u8; BHS_LEN]) {
        if !self.control_sn(t.immediate, t.cmd_sn, bhs) {
            return;
        }
        if t.itt == RESERVED_TAG {
            return self.reject(RejectReason::InvalidPduField, bhs);
        }
        if self.session_type == SessionType::Discovery {
            return self.reject(RejectReason::ProtocolError, bhs);
        }
        let Some(f) = TmfFunction::from_code(t.function) else {
            return self.tmf_response(t.itt, TmfResponseCode::Rejected);
        };
        let (ref_itt, aborted) = match f {
            TmfFunction::ClearAca | TmfFunction::TargetColdReset => {
                return self.tmf_response(t.itt, TmfResponseCode::NotSupported);
            }
            TmfFunction::TaskReassign => return self.tmf_response(t.itt, TmfResponseCode::ReassignNotSupported),
            TmfFunction::AbortTask => {
                let r = t.ref_itt;
                match self.tasks.get(&r).map(|task| task.executing()) {
                    None => {
                        // Not received yet (its CmdSN still ahead of us): the abort is complete;
                        // already done: it does not exist.
                        let ahead = t.ref_cmd_sn.wrapping_sub(self.exp_cmd_sn) as i32 >= 0;
                        let code = if ahead { TmfResponseCode::Complete } else { TmfResponseCode::TaskDoesNotExist };
                        return self.tmf_response(t.itt, code);
                    }
                    Some(false) => {
                        self.abort_tasks(|itt, _| itt == r);
                        return self.tmf_response(t.itt, TmfResponseCode::Complete);
                    }
                    Some(true) => (Some(r), self.abort_tasks(|itt, _| itt == r)),
                }
            }
            TmfFunction::AbortTaskSet | TmfFunction::ClearTaskSet | TmfFunction::LunReset => {
                let lun = t.lun;
                (None, self.abort_tasks(|_, task| task.lun == lun))
            }
            TmfFunction::TargetWarmReset => (None, self.abort_tasks(|_, _| true)),
        };
        self.control.tmfs.push(t.itt);
        self.out.push_back(TargetOutput::TaskMgmt(TaskMgmt { itt: t.itt, function: f, lun: t.lun, ref_itt, aborted }));
    }

    /// Answers the task management request `itt` ([`TargetOutput::TaskMgmt`]); unknown ones are ignored.
    pub fn complete_tmf(&mut self, itt: u32, code: TmfResponseCode) {
        let Some(i) = self.control.tmfs.iter().position(|&t| t == itt) else { return };
        self.control.tmfs.remove(i);
        if self.phase == super::Phase::FullFeature {
            self.tmf_response(itt, code);
        }
    }

    fn tmf_response(&mut self, itt: u32, code: TmfResponseCode) {
        let sn = self.status_sn();
        self.send(Pdu::TmfResponse(TmfResponse { response: code as u8, itt, sn }), Vec::new());
    }

    pub(super) fn logout_request(&mut self, l: &LogoutRequest, bhs: &[u8; BHS_LEN]) {
        if !self.control_sn(l.immediate, l.cmd_sn, bhs) {
            return;
        }
        let response = match l.reason {
            1 if l.cid != self.cid => Some(1),
            // Connection recovery needs ErrorRecoveryLevel 2.
            2 => Some(2),
            _ => None,
        };
        if let Some(response) = response {
            let sn = self.status_sn();
            let r = LogoutResponse { response, itt: l.itt, sn, time2wait: 0, time2retain: 0 };
            return self.send(Pdu::LogoutResponse(r), Vec::new());
        }
        // Writes still gathering data will never get it now.
        self.abort_tasks(|_, t| !t.executing());
        self.control.logout = Some(l.itt);
        self.out.push_back(TargetOutput::Logout(l.reason));
        self.maybe_finish_logout();
    }

    /// Sends the Logout Response and closes once no command is outstanding.
    pub(super) fn maybe_finish_logout(&mut self) {
        let Some(itt) = self.control.logout else { return };
        if !self.tasks.is_empty() || self.phase != super::Phase::FullFeature {
            return;
        }
        let sn = self.status_sn();
        let r = LogoutResponse { response: 0, itt, sn, time2wait: 0, time2retain: 0 };
        self.send(Pdu::LogoutResponse(r), Vec::new());
        self.close(super::CloseReason::Logout);
    }
}

fn write_target(t: &TargetDesc, w: &mut TextWriter) {
    w.push("TargetName", &t.name);
    for p in &t.portals {
        w.push("TargetAddress", &format!("{p},{}", t.portal_group_tag));
    }
}
