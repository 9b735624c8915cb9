//! Reservations of one logical unit: SPC-4 persistent reservations
//! (PERSISTENT RESERVE IN/OUT) and SPC-2 reservations (RESERVE/RELEASE),
//! with the commands each reservation type lets through from which I_T
//! nexus.
//!
//! Sans-IO like the rest of the crate: [`Reservations`] is plain state the
//! runtime keeps once per LU, shared by every session that reaches the LU
//! (behind the runtime's own lock), and hands to
//! [`crate::exec::execute_with_reservations`] with the [`ItNexus`] a
//! command came through.
//!
//! # What is supported
//!
//! - PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION, REPORT
//!   CAPABILITIES, READ FULL STATUS (iSCSI TransportIDs).
//! - PERSISTENT RESERVE OUT: REGISTER, REGISTER AND IGNORE EXISTING KEY,
//!   RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT; the six
//!   reservation types; LU scope only.
//! - RESERVE / RELEASE (6) and (10) for the whole LU, with the SPC-3/SPC-4
//!   exceptions for a mix of both kinds (REPORT CAPABILITIES sets CRH).
//! - The unit attentions SPC-4 asks for when a reservation or registration
//!   is taken from another I_T nexus (REGISTRATIONS PREEMPTED, RESERVATIONS
//!   PREEMPTED, RESERVATIONS RELEASED), one pending per nexus, delivered by
//!   [`crate::exec::execute_with_reservations`] on that nexus's next
//!   command (INQUIRY and REPORT LUNS pass, REQUEST SENSE returns it).
//!
//! # What is not
//!
//! - APTPL (persist through power loss): state lives in memory, so every
//!   registration and reservation is lost when the target restarts;
//!   REPORT CAPABILITIES reports PTPL_C 0 and APTPL=1 is an invalid field.
//! - SPEC_I_P and ALL_TG_PT (SIP_C, ATP_C 0): a registration is for the
//!   I_T nexus that sent it; REGISTER AND MOVE and REPLACE LOST
//!   RESERVATION: unsupported service actions.
//! - PREEMPT AND ABORT changes the state as PREEMPT does; aborting the
//!   preempted nexuses' commands is the transport's job, for the nexuses
//!   [`Reservations::take_aborted`] returns.

use crate::bytes::{put, put_be, put_u8};
use crate::cdb::Command;
use crate::exec::{Outcome, Reply};
use crate::sense::Sense;

/// An I_T nexus as the transport names it: the initiator port and the
/// relative target port identifier. For iSCSI the initiator port name is
/// `"<initiator name>,i,0x<ISID as 12 hex digits>"` (RFC 7143 / SPC-4
/// TransportID format 01b), so two sessions of one initiator with
/// different ISIDs are different nexuses; `target_port` is the relative
/// target port identifier also reported in VPD 83h.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItNexus {
    /// Initiator port name.
    pub initiator: String,
    /// Relative target port identifier.
    pub target_port: u16,
}

impl ItNexus {
    /// An iSCSI I_T nexus from the initiator name, the session's ISID and
    /// the relative target port identifier.
    pub fn iscsi(initiator_name: &str, isid: [u8; 6], target_port: u16) -> ItNexus {
        let hex: String = isid.iter().map(|b| format!("{b:02x}")).collect();
        ItNexus { initiator: format!("{initiator_name},i,0x{hex}"), target_port }
    }
}

/// SPC-4 protocol identifier of iSCSI (TransportIDs in READ FULL STATUS).
pub const PROTOCOL_ISCSI: u8 = 5;

/// PERSISTENT RESERVE IN service actions.
pub mod prin_action {
    /// READ KEYS.
    pub const READ_KEYS: u8 = 0;
    /// READ RESERVATION.
    pub const READ_RESERVATION: u8 = 1;
    /// REPORT CAPABILITIES.
    pub const REPORT_CAPABILITIES: u8 = 2;
    /// READ FULL STATUS.
    pub const READ_FULL_STATUS: u8 = 3;
}

/// PERSISTENT RESERVE OUT service actions.
pub mod prout_action {
    /// REGISTER.
    pub const REGISTER: u8 = 0;
    /// RESERVE.
    pub const RESERVE: u8 = 1;
    /// RELEASE.
    pub const RELEASE: u8 = 2;
    /// CLEAR.
    pub const CLEAR: u8 = 3;
    /// PREEMPT.
    pub const PREEMPT: u8 = 4;
    /// PREEMPT AND ABORT.
    pub const PREEMPT_AND_ABORT: u8 = 5;
    /// REGISTER AND IGNORE EXISTING KEY.
    pub const REGISTER_AND_IGNORE_EXISTING_KEY: u8 = 6;
}

/// Persistent reservation types (SPC-4 table 213).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PrType {
    /// Write Exclusive.
    WriteExclusive = 1,
    /// Exclusive Access.
    ExclusiveAccess = 3,
    /// Write Exclusive – Registrants Only.
    WriteExclusiveRegistrantsOnly = 5,
    /// Exclusive Access – Registrants Only.
    ExclusiveAccessRegistrantsOnly = 6,
    /// Write Exclusive – All Registrants.
    WriteExclusiveAllRegistrants = 7,
    /// Exclusive Access – All Registrants.
    ExclusiveAccessAllRegistrants = 8,
}

impl PrType {
    /// The type for a TYPE field value.
    pub fn from_code(code: u8) -> Option<PrType> {
        Some(match code {
            1 => PrType::WriteExclusive,
            3 => PrType::ExclusiveAccess,
            5 => PrType::WriteExclusiveRegistrantsOnly,
            6 => PrType::ExclusiveAccessRegistrantsOnly,
            7 => PrType::WriteExclusiveAllRegistrants,
            8 => PrType::ExclusiveAccessAllRegistrants,
            _ => return None,
        })
    }

    /// Every registrant holds the reservation (and READ RESERVATION
    /// reports key 0).
    pub fn all_registrants(self) -> bool {
        matches!(self, PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants)
    }

    /// Registered I_T nexuses get full access (Registrants Only and All
    /// Registrants types).
    pub fn registrants_access(self) -> bool {
        !matches!(self, PrType::WriteExclusive | PrType::ExclusiveAccess)
    }

    /// Reads conflict too, not only writes.
    pub fn exclusive_access(self) -> bool {
        matches!(
            self,
            PrType::ExclusiveAccess | PrType::ExclusiveAccessRegistrantsOnly | PrType::ExclusiveAccessAllRegistrants
        )
    }
}

/// A persistent reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrReservation {
    /// The I_T nexus that reserved (for all-registrants types every
    /// registrant is a holder; this one is kept for information only).
    pub holder: ItNexus,
    /// Type.
    pub pr_type: PrType,
}

/// How a command fares under a reservation held by someone else (SPC-4
/// 5.12.1 table "SPC commands that are allowed in the presence of various
/// reservations" and the SBC-3 table for block commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Allowed from any I_T nexus under any type.
    Any,
    /// Reads the medium: conflicts under Exclusive Access types only.
    Read,
    /// Writes, or otherwise listed as a conflict: allowed only to
    /// registrants under Registrants Only / All Registrants types.
    Write,
}

fn access(cdb: &[u8], cmd: &Command) -> Access {
    match *cmd {
        Command::TestUnitReady
        | Command::Inquiry { .. }
        | Command::RequestSense { .. }
        | Command::ReportLuns { .. }
        | Command::ReadCapacity10
        | Command::ReadCapacity16 { .. }
        | Command::PersistentReserveIn { .. }
        | Command::PersistentReserveOut { .. } => Access::Any,
        Command::Read { .. } | Command::Verify { .. } | Command::PreFetch { .. } | Command::GetLbaStatus { .. } => {
            Access::Read
        }
        // READ DEFECT DATA is not a medium read: SBC lists it as a
        // conflict under Write Exclusive too. It falls through below.
        // START with power condition 0 is allowed, stopping is not.
        Command::StartStopUnit if crate::bytes::u8_at(cdb, 4) & 0xF1 == 0x01 => Access::Any,
        // PREVENT 00b (allow removal) is allowed.
        Command::PreventAllow if crate::bytes::u8_at(cdb, 4) & 0x03 == 0 => Access::Any,
        _ => Access::Write,
    }
}

/// Commands another I_T nexus may still send while an SPC-2 reservation is
/// held (SPC-2 5.5.1 / SPC-4 5.13.2): the ones that report state, RELEASE
/// (a no-op for a non-holder), and PREVENT ALLOW allowing removal.
fn allowed_under_spc2(cdb: &[u8], cmd: &Command) -> bool {
    match *cmd {
        Command::Inquiry { .. } | Command::RequestSense { .. } | Command::ReportLuns { .. } | Command::Release => true,
        Command::PreventAllow => crate::bytes::u8_at(cdb, 4) & 0x03 == 0,
        _ => false,
    }
}

/// Registration and reservation state of one logical unit. All of it is
/// volatile: APTPL is not supported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    /// Registered I_T nexuses with their keys, in registration order.
    registrations: Vec<(ItNexus, u64)>,
    /// PRgeneration.
    generation: u32,
    /// The persistent reservation.
    reservation: Option<PrReservation>,
    /// The SPC-2 reservation's holder.
    spc2: Option<ItNexus>,
    /// Nexuses PREEMPT AND ABORT preempted, for the transport.
    aborted: Vec<ItNexus>,
    /// Pending unit attention per I_T nexus (the latest one).
    unit_attentions: Vec<(ItNexus, Sense)>,
}

/// Data-in cut to the allocation length, as a reply.
fn data(v: Vec<u8>, alloc: u32) -> Reply {
    let v = crate::bytes::truncate(v, alloc);
    Reply::Outcome(if v.is_empty() { Outcome::Good } else { Outcome::Data(v) })
}

fn check(s: Sense) -> Reply {
    Reply::Outcome(Outcome::Check(s))
}

const GOOD: Reply = Reply::Outcome(Outcome::Good);

/// The 24-byte basic PERSISTENT RESERVE OUT parameter list.
struct ProutParams {
    key: u64,
    sa_key: u64,
    spec_i_p: bool,
    all_tg_pt: bool,
    aptpl: bool,
}

impl Reservations {
    /// No registrations, no reservation, PRgeneration 0.
    pub fn new() -> Reservations {
        Reservations::default()
    }

    /// PRgeneration: bumped by every successful PERSISTENT RESERVE OUT
    /// that changes registrations.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The registered I_T nexuses and their keys, in registration order.
    pub fn registrations(&self) -> impl Iterator<Item = (&ItNexus, u64)> {
        self.registrations.iter().map(|(n, k)| (n, *k))
    }

    /// The persistent reservation, if any.
    pub fn reservation(&self) -> Option<&PrReservation> {
        self.reservation.as_ref()
    }

    /// The holder of the SPC-2 (RESERVE) reservation, if any.
    pub fn spc2_holder(&self) -> Option<&ItNexus> {
        self.spc2.as_ref()
    }

    /// The key `nexus` registered, if it did.
    pub fn key_of(&self, nexus: &ItNexus) -> Option<u64> {
        self.registrations.iter().find(|(n, _)| n == nexus).map(|(_, k)| *k)
    }

    /// Whether `nexus` holds the persistent reservation (every registrant
    /// does under an all-registrants type).
    pub fn is_holder(&self, nexus: &ItNexus) -> bool {
        match &self.reservation {
            Some(r) if r.pr_type.all_registrants() => self.key_of(nexus).is_some(),
            Some(r) => r.holder == *nexus,
            None => false,
        }
    }

    /// The I_T nexuses whose commands a PREEMPT AND ABORT asked to abort
    /// since the last call (SPC-4 5.12.11.5): the transport aborts their
    /// outstanding commands for this LU as for ABORT TASK SET, except the
    /// PREEMPT AND ABORT itself. Each PERSISTENT RESERVE OUT replaces the
    /// list, so take it right after the PREEMPT AND ABORT, under the same
    /// lock.
    pub fn take_aborted(&mut self) -> Vec<ItNexus> {
        std::mem::take(&mut self.aborted)
    }

    /// The I_T nexus is gone (session closed, connection lost, I_T NEXUS
    /// RESET, logout): its SPC-2 reservation is released and its pending
    /// unit attention dropped (a new nexus starts with the transport's own
    /// I_T NEXUS LOSS attention). Persistent registrations and reservations
    /// survive, as SPC-4 requires.
    pub fn nexus_lost(&mut self, nexus: &ItNexus) {
        if self.spc2.as_ref() == Some(nexus) {
            self.spc2 = None;
        }
        self.unit_attentions.retain(|(n, _)| n != nexus);
    }

    /// The unit attention pending for `nexus`, if any.
    pub fn unit_attention(&self, nexus: &ItNexus) -> Option<Sense> {
        self.unit_attentions.iter().find(|(n, _)| n == nexus).map(|(_, s)| *s)
    }

    /// Takes (clears) the unit attention pending for `nexus`: for a
    /// transport that reports them itself rather than through
    /// [`crate::exec::execute_with_reservations`].
    pub fn take_unit_attention(&mut self, nexus: &ItNexus) -> Option<Sense> {
        let i = self.unit_attentions.iter().position(|(n, _)| n == nexus)?;
        Some(self.unit_attentions.swap_remove(i).1)
    }

    /// Sets `sense` as the unit attention of every nexus in `to`.
    fn raise<'a>(&mut self, to: impl IntoIterator<Item = &'a ItNexus>, sense: Sense) {
        for n in to {
            match self.unit_attentions.iter_mut().find(|(m, _)| m == n) {
                Some((_, s)) => *s = sense,
                None => self.unit_attentions.push((n.clone(), sense)),
            }
        }
    }

    /// Registered nexuses other than `except`, cloned (to raise on).
    fn others(&self, except: &ItNexus) -> Vec<ItNexus> {
        self.registrations.iter().map(|(n, _)| n).filter(|n| *n != except).cloned().collect()
    }

    /// LOGICAL UNIT RESET or a target reset (hard reset, SAM-5 6.3.2):
    /// releases the SPC-2 reservation; persistent reservations survive.
    pub fn reset(&mut self) {
        self.spc2 = None;
    }

    /// Whether `cmd` (decoded from `cdb`) from `nexus` conflicts with a
    /// reservation: `Err(Reply::ReservationConflict)` when it does. The
    /// reservation commands themselves are checked here too (PERSISTENT
    /// RESERVE IN/OUT while an SPC-2 reservation exists, RESERVE/RELEASE
    /// while registrations exist, SPC-4 5.13.3, and RESERVE while another
    /// nexus holds the SPC-2 reservation); their other rules are in their
    /// handlers.
    pub fn check(&self, cdb: &[u8], cmd: &Command, nexus: &ItNexus) -> Result<(), Reply> {
        let conflict = match *cmd {
            Command::PersistentReserveIn { .. } | Command::PersistentReserveOut { .. } => self.spc2.is_some(),
            Command::Reserve => !self.registrations.is_empty() || self.spc2.as_ref().is_some_and(|h| h != nexus),
            Command::Release => !self.registrations.is_empty(),
            _ => {
                let spc2 = self.spc2.as_ref().is_some_and(|h| h != nexus) && !allowed_under_spc2(cdb, cmd);
                spc2 || self.pr_conflict(access(cdb, cmd), nexus)
            }
        };
        if conflict { Err(Reply::ReservationConflict) } else { Ok(()) }
    }

    fn pr_conflict(&self, access: Access, nexus: &ItNexus) -> bool {
        let Some(r) = &self.reservation else {
            return false;
        };
        if self.is_holder(nexus) {
            return false;
        }
        let registrant = r.pr_type.registrants_access() && self.key_of(nexus).is_some();
        match access {
            Access::Any => false,
            Access::Read => r.pr_type.exclusive_access() && !registrant,
            Access::Write => !registrant,
        }
    }

    /// RESERVE (6)/(10) from `nexus`: RESERVATION CONFLICT while any
    /// persistent registration exists or another nexus holds the SPC-2
    /// reservation; GOOD (again) for the holder.
    pub fn reserve(&mut self, nexus: &ItNexus) -> Reply {
        if !self.registrations.is_empty() || self.spc2.as_ref().is_some_and(|h| h != nexus) {
            return Reply::ReservationConflict;
        }
        self.spc2 = Some(nexus.clone());
        GOOD
    }

    /// RELEASE (6)/(10) from `nexus`: releases its SPC-2 reservation; GOOD
    /// and nothing else for any other nexus; RESERVATION CONFLICT while
    /// persistent registrations exist.
    pub fn release(&mut self, nexus: &ItNexus) -> Reply {
        if !self.registrations.is_empty() {
            return Reply::ReservationConflict;
        }
        if self.spc2.as_ref() == Some(nexus) {
            self.spc2 = None;
        }
        GOOD
    }

    /// PERSISTENT RESERVE IN with service `action` (0..=3), answered to
    /// `alloc` bytes. RESERVATION CONFLICT while an SPC-2 reservation
    /// exists (SPC-4 5.13.3).
    pub fn persistent_reserve_in(&self, action: u8, alloc: u16) -> Reply {
        if self.spc2.is_some() {
            return Reply::ReservationConflict;
        }
        let alloc = u32::from(alloc);
        match action {
            prin_action::READ_KEYS => data(self.read_keys(), alloc),
            prin_action::READ_RESERVATION => data(self.read_reservation(), alloc),
            prin_action::REPORT_CAPABILITIES => data(report_capabilities(), alloc),
            prin_action::READ_FULL_STATUS => data(self.read_full_status(), alloc),
            _ => check(Sense::invalid_field_in_cdb(1, Some(4))),
        }
    }

    /// READ KEYS parameter data: PRgeneration, the list length (not cut by
    /// the allocation length) and every registered key.
    pub fn read_keys(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        put_be(&mut b, 0, 4, u64::from(self.generation));
        put_be(&mut b, 4, 4, (self.registrations.len() * 8) as u64);
        for (_, k) in &self.registrations {
            b.extend_from_slice(&k.to_be_bytes());
        }
        b
    }

    /// READ RESERVATION parameter data: PRgeneration and, when reserved, the
    /// holder's key (0 for all-registrants types), scope LU and the type.
    pub fn read_reservation(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        put_be(&mut b, 0, 4, u64::from(self.generation));
        if let Some(r) = &self.reservation {
            let key = if r.pr_type.all_registrants() { 0 } else { self.key_of(&r.holder).unwrap_or(0) };
            b.resize(24, 0);
            put_be(&mut b, 4, 4, 16);
            put_be(&mut b, 8, 8, key);
            put_u8(&mut b, 21, r.pr_type as u8); // scope 0h: logical unit
        }
        b
    }

    /// READ FULL STATUS parameter data: one descriptor per registration,
    /// with R_HOLDER, the scope and type for holders, the relative target
    /// port identifier and the initiator's iSCSI TransportID.
    pub fn read_full_status(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        put_be(&mut b, 0, 4, u64::from(self.generation));
        for (nexus, key) in &self.registrations {
            let tid = transport_id(&nexus.initiator);
            let mut d = vec![0u8; 24];
            put_be(&mut d, 0, 8, *key);
            if let Some(r) = self.reservation.as_ref().filter(|_| self.is_holder(nexus)) {
                put_u8(&mut d, 12, 0x01); // R_HOLDER; ALL_TG_PT 0
                put_u8(&mut d, 13, r.pr_type as u8);
            }
            put_be(&mut d, 18, 2, u64::from(nexus.target_port));
            put_be(&mut d, 20, 4, tid.len() as u64);
            d.extend_from_slice(&tid);
            b.extend_from_slice(&d);
        }
        let n = b.len() - 8;
        put_be(&mut b, 4, 4, n as u64);
        b
    }

    /// PERSISTENT RESERVE OUT from `nexus`: service `action` (0..=6), the
    /// CDB's `scope` and `pr_type`, and `params`, the whole parameter list
    /// (data-out; its length is the CDB's PARAMETER LIST LENGTH, which
    /// [`crate::transfer`] announced as exact).
    ///
    /// Errors, in order: a scope other than LU or an unknown type for the
    /// actions that use them (INVALID FIELD IN CDB); SPEC_I_P, or
    /// ALL_TG_PT / APTPL on a registration (INVALID FIELD IN PARAMETER
    /// LIST: not supported); a list that is not 24 bytes (PARAMETER LIST
    /// LENGTH ERROR); then the reservation rules, which end in RESERVATION
    /// CONFLICT (status 18h, no sense) or INVALID RELEASE OF PERSISTENT
    /// RESERVATION.
    pub fn persistent_reserve_out(
        &mut self,
        action: u8,
        scope: u8,
        pr_type: u8,
        params: &[u8],
        nexus: &ItNexus,
    ) -> Reply {
        self.prout(action, scope, pr_type, params.len() as u64, params, nexus)
    }

    /// [`Reservations::persistent_reserve_out`] with the CDB's PARAMETER
    /// LIST LENGTH, which `params` may fall short of.
    pub(crate) fn prout(
        &mut self,
        action: u8,
        scope: u8,
        pr_type: u8,
        param_len: u64,
        params: &[u8],
        nexus: &ItNexus,
    ) -> Reply {
        use prout_action::*;
        self.aborted.clear();
        if self.spc2.is_some() {
            return Reply::ReservationConflict;
        }
        if action > REGISTER_AND_IGNORE_EXISTING_KEY {
            return check(Sense::invalid_field_in_cdb(1, Some(4)));
        }
        let typed = matches!(action, RESERVE | RELEASE | PREEMPT | PREEMPT_AND_ABORT);
        let ty = PrType::from_code(pr_type);
        if typed && scope != 0 {
            return check(Sense::invalid_field_in_cdb(2, Some(7)));
        }
        let ty = match ty {
            Some(t) => Some(t),
            None if typed => return check(Sense::invalid_field_in_cdb(2, Some(3))),
            None => None,
        };
        let p = match parse_params(action, param_len, params) {
            Ok(p) => p,
            Err(s) => return check(s),
        };
        match (action, ty) {
            (REGISTER, _) => self.register(nexus, &p, false),
            (REGISTER_AND_IGNORE_EXISTING_KEY, _) => self.register(nexus, &p, true),
            _ if self.key_of(nexus) != Some(p.key) => Reply::ReservationConflict,
            (CLEAR, _) => {
                let others = self.others(nexus);
                self.raise(&others, Sense::reservations_preempted());
                self.registrations.clear();
                self.reservation = None;
                self.bump();
                GOOD
            }
            (RESERVE, Some(t)) => self.pr_reserve(nexus, t),
            (RELEASE, Some(t)) => self.pr_release(nexus, t),
            (PREEMPT, Some(t)) => self.preempt(nexus, p.sa_key, t, false),
            (PREEMPT_AND_ABORT, Some(t)) => self.preempt(nexus, p.sa_key, t, true),
            _ => check(Sense::invalid_field_in_cdb(2, Some(3))),
        }
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Removes the registrations `remove` picks, then releases a
    /// reservation whose holder is no longer registered. The removed
    /// nexuses come back.
    fn remove_where(&mut self, mut remove: impl FnMut(&ItNexus, u64) -> bool) -> Vec<ItNexus> {
        let mut gone = Vec::new();
        self.registrations.retain(|(n, k)| {
            let r = remove(n, *k);
            if r {
                gone.push(n.clone());
            }
            !r
        });
        let orphaned = match &self.reservation {
            Some(r) if r.pr_type.all_registrants() => self.registrations.is_empty(),
            Some(r) => !self.registrations.iter().any(|(n, _)| *n == r.holder),
            None => false,
        };
        if orphaned {
            self.reservation = None;
        }
        gone
    }

    fn register(&mut self, nexus: &ItNexus, p: &ProutParams, ignore: bool) -> Reply {
        match self.key_of(nexus) {
            None if !ignore && p.key != 0 => Reply::ReservationConflict,
            // Unregistering what is not registered: nothing to do.
            None if p.sa_key == 0 => GOOD,
            None => {
                self.registrations.push((nexus.clone(), p.sa_key));
                self.bump();
                GOOD
            }
            Some(k) if !ignore && k != p.key => Reply::ReservationConflict,
            Some(_) if p.sa_key == 0 => {
                let registrants_only = self.reservation.as_ref().is_some_and(|r| {
                    matches!(r.pr_type, PrType::WriteExclusiveRegistrantsOnly | PrType::ExclusiveAccessRegistrantsOnly)
                });
                self.remove_where(|n, _| n == nexus);
                // The holder of a Registrants Only reservation left: the
                // other registrants lose it (SPC-4 5.12.11.2.3).
                if registrants_only && self.reservation.is_none() {
                    let others = self.others(nexus);
                    self.raise(&others, Sense::reservations_released());
                }
                self.bump();
                GOOD
            }
            Some(_) => {
                for (n, k) in &mut self.registrations {
                    if n == nexus {
                        *k = p.sa_key;
                    }
                }
                self.bump();
                GOOD
            }
        }
    }

    fn pr_reserve(&mut self, nexus: &ItNexus, t: PrType) -> Reply {
        match &self.reservation {
            None => {
                self.reservation = Some(PrReservation { holder: nexus.clone(), pr_type: t });
                GOOD
            }
            // The holder reserving again with the same type: nothing changes.
            Some(r) if self.is_holder(nexus) && r.pr_type == t => GOOD,
            Some(_) => Reply::ReservationConflict,
        }
    }

    fn pr_release(&mut self, nexus: &ItNexus, t: PrType) -> Reply {
        match &self.reservation {
            Some(r) if self.is_holder(nexus) => {
                if r.pr_type != t {
                    return check(Sense::invalid_release_of_persistent_reservation());
                }
                if t.registrants_access() {
                    let others = self.others(nexus);
                    self.raise(&others, Sense::reservations_released());
                }
                self.reservation = None;
                GOOD
            }
            // No reservation, or held by someone else: GOOD, nothing done.
            _ => GOOD,
        }
    }

    fn preempt(&mut self, nexus: &ItNexus, sa_key: u64, t: PrType, abort: bool) -> Reply {
        let current = self.reservation.clone();
        let all_registrants = current.as_ref().is_some_and(|r| r.pr_type.all_registrants());
        let holder_key = current.as_ref().filter(|r| !r.pr_type.all_registrants()).and_then(|r| self.key_of(&r.holder));
        let mut replaced = false;
        let gone = if all_registrants && sa_key == 0 {
            // Preempt an all-registrants reservation: every other
            // registration goes, the preempting nexus reserves anew.
            let gone = self.remove_where(|n, _| n != nexus);
            self.reservation = Some(PrReservation { holder: nexus.clone(), pr_type: t });
            replaced = true;
            gone
        } else if holder_key.is_some() && holder_key == Some(sa_key) {
            // Preempt the holder: its key's registrations go (except ours),
            // and the reservation becomes ours with the CDB's type.
            let gone = self.remove_where(|n, k| k == sa_key && n != nexus);
            self.reservation = Some(PrReservation { holder: nexus.clone(), pr_type: t });
            replaced = true;
            gone
        } else {
            // Only registrations are removed; zero names none of them.
            if sa_key == 0 {
                return check(Sense::invalid_field_in_parameter_list(8, None));
            }
            if !self.registrations.iter().any(|(_, k)| *k == sa_key) {
                return Reply::ReservationConflict;
            }
            self.remove_where(|_, k| k == sa_key)
        };
        self.bump();
        let gone: Vec<ItNexus> = gone.into_iter().filter(|n| n != nexus).collect();
        self.raise(&gone, Sense::registrations_preempted());
        // A new type: the registrants that stay learn their old
        // reservation is gone (SPC-4 5.12.11.4.3).
        if replaced && current.is_some_and(|c| c.pr_type != t) {
            let others = self.others(nexus);
            self.raise(&others, Sense::reservations_released());
        }
        if abort {
            self.aborted = gone;
        }
        GOOD
    }
}

/// The parameter list checks, SPC-4 6.16.3 / 6.16.4.
fn parse_params(action: u8, param_len: u64, params: &[u8]) -> Result<ProutParams, Sense> {
    use crate::bytes::{be64, u8_at};
    if param_len < 24 || params.len() < 24 {
        return Err(Sense::parameter_list_length_error());
    }
    let flags = u8_at(params, 20);
    let p = ProutParams {
        key: be64(params, 0),
        sa_key: be64(params, 8),
        spec_i_p: flags & 0x08 != 0,
        all_tg_pt: flags & 0x04 != 0,
        aptpl: flags & 0x01 != 0,
    };
    let register = matches!(action, prout_action::REGISTER | prout_action::REGISTER_AND_IGNORE_EXISTING_KEY);
    if p.spec_i_p {
        return Err(Sense::invalid_field_in_parameter_list(20, Some(3)));
    }
    if register && p.all_tg_pt {
        return Err(Sense::invalid_field_in_parameter_list(20, Some(2)));
    }
    if register && p.aptpl {
        return Err(Sense::invalid_field_in_parameter_list(20, Some(0)));
    }
    if param_len != 24 {
        return Err(Sense::parameter_list_length_error());
    }
    Ok(p)
}

/// REPORT CAPABILITIES parameter data (SPC-4 6.15.4).
pub fn report_capabilities() -> Vec<u8> {
    let mut b = vec![0u8; 8];
    put_be(&mut b, 0, 2, 8);
    // CRH: RESERVE/RELEASE follow the SPC-4 5.13.3 exceptions. SIP_C,
    // ATP_C, PTPL_C 0: SPEC_I_P, ALL_TG_PT and APTPL are not supported.
    put_u8(&mut b, 2, 0x10);
    // TMV with ALLOW COMMANDS 001b: TEST UNIT READY passes Write Exclusive
    // and Exclusive Access reservations (others as SPC-4 5.12.1 lists).
    put_u8(&mut b, 3, 0x80 | 0x10);
    // All six types: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
    put_u8(&mut b, 4, 0x80 | 0x40 | 0x20 | 0x08 | 0x02);
    put_u8(&mut b, 5, 0x01);
    b
}

/// An iSCSI TransportID (SPC-4 7.6.4.6) for an initiator port name:
/// format 01b (name, ",i,0x" and ISID) when the name carries an ISID,
/// format 00b (device name) otherwise; the name null terminated and padded
/// to a multiple of four bytes, at least 20.
pub fn transport_id(initiator: &str) -> Vec<u8> {
    let format: u8 = if initiator.contains(",i,0x") { 0x40 } else { 0x00 };
    let name = initiator.as_bytes();
    // ADDITIONAL LENGTH is two bytes: an absurdly long name is cut.
    let name = name.get(..name.len().min(0xFFF0)).unwrap_or(name);
    let padded = (name.len() + 1).div_ceil(4).max(5) * 4;
    let mut b = vec![0u8; 4 + padded];
    put_u8(&mut b, 0, format | PROTOCOL_ISCSI);
    put_be(&mut b, 2, 2, padded as u64);
    put(&mut b, 4, name);
    b
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn nx(i: u8) -> ItNexus {
        ItNexus::iscsi("iqn.2024-01.org.example:host", [0x40, 0, 0, 0, 0, i], 1)
    }

    fn params(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        p[20] = flags;
        p
    }

    fn out(r: &mut Reservations, action: u8, ty: u8, key: u64, sa_key: u64, n: &ItNexus) -> Reply {
        r.persistent_reserve_out(action, 0, ty, &params(key, sa_key, 0), n)
    }

    fn sense(r: Reply) -> (u8, u8, u8) {
        match r {
            Reply::Outcome(Outcome::Check(s)) => (s.key as u8, s.asc, s.ascq),
            other => panic!("expected CHECK CONDITION, got {other:?}"),
        }
    }

    fn bytes(r: Reply) -> Vec<u8> {
        match r {
            Reply::Outcome(Outcome::Data(d)) => d,
            other => panic!("expected data, got {other:?}"),
        }
    }

    use prout_action::*;
    const CONFLICT: Reply = Reply::ReservationConflict;

    #[test]
    fn iscsi_nexus_name() {
        assert_eq!(nx(7).initiator, "iqn.2024-01.org.example:host,i,0x400000000007");
    }

    #[test]
    fn register_reregister_unregister() {
        let mut r = Reservations::new();
        let a = nx(1);
        // REGISTER with a reservation key while unregistered conflicts.
        assert_eq!(out(&mut r, REGISTER, 0, 5, 9, &a), CONFLICT);
        assert_eq!(out(&mut r, REGISTER, 0, 0, 0, &a), GOOD);
        assert_eq!(r.generation(), 0);
        assert_eq!(out(&mut r, REGISTER, 0, 0, 9, &a), GOOD);
        assert_eq!((r.key_of(&a), r.generation()), (Some(9), 1));
        // Re-register with the wrong key (libiscsi's reregister_key_fails).
        assert_eq!(out(&mut r, REGISTER, 0, 0, 10, &a), CONFLICT);
        assert_eq!(out(&mut r, REGISTER, 0, 9, 10, &a), GOOD);
        assert_eq!(out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 1234, 11, &a), GOOD);
        assert_eq!((r.key_of(&a), r.generation()), (Some(11), 3));
        assert_eq!(out(&mut r, REGISTER, 0, 11, 0, &a), GOOD);
        assert_eq!((r.key_of(&a), r.generation()), (None, 4));
    }

    #[test]
    fn read_keys_bytes() {
        let mut r = Reservations::new();
        assert_eq!(bytes(r.persistent_reserve_in(0, 100)), vec![0; 8]);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0xAB, &nx(1));
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0xCD, &nx(2));
        let d = bytes(r.persistent_reserve_in(0, 100));
        assert_eq!(&d[..8], &[0, 0, 0, 2, 0, 0, 0, 16]);
        assert_eq!(&d[8..16], &0xABu64.to_be_bytes());
        assert_eq!(&d[16..24], &0xCDu64.to_be_bytes());
        // Truncated: the length still counts every key.
        assert_eq!(bytes(r.persistent_reserve_in(0, 8)), vec![0, 0, 0, 2, 0, 0, 0, 16]);
        assert_eq!(r.persistent_reserve_in(0, 0), GOOD);
    }

    #[test]
    fn reserve_release_every_type() {
        for ty in [1u8, 3, 5, 6, 7, 8] {
            let mut r = Reservations::new();
            let a = nx(1);
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0x77, &a);
            // Not registered, or the wrong key: conflict.
            assert_eq!(out(&mut r, RESERVE, ty, 0x77, 0, &nx(2)), CONFLICT);
            assert_eq!(out(&mut r, RESERVE, ty, 0x78, 0, &a), CONFLICT);
            assert_eq!(out(&mut r, RESERVE, ty, 0x77, 0, &a), GOOD);
            assert_eq!(out(&mut r, RESERVE, ty, 0x77, 0, &a), GOOD);
            let other = if ty == 1 { 3 } else { 1 };
            assert_eq!(out(&mut r, RESERVE, other, 0x77, 0, &a), CONFLICT);
            let d = bytes(r.persistent_reserve_in(1, 100));
            let key = if ty >= 7 { 0 } else { 0x77 };
            assert_eq!(&d[..8], &[0, 0, 0, 1, 0, 0, 0, 16]);
            assert_eq!(&d[8..16], &u64::to_be_bytes(key));
            assert_eq!(d[21], ty);
            assert_eq!(r.generation(), 1, "RESERVE leaves PRgeneration alone");
            // RELEASE with another type is an invalid release.
            assert_eq!(sense(out(&mut r, RELEASE, other, 0x77, 0, &a)), (0x05, 0x26, 0x04));
            assert_eq!(out(&mut r, RELEASE, ty, 0x77, 0, &a), GOOD);
            assert_eq!(bytes(r.persistent_reserve_in(1, 100)), vec![0, 0, 0, 1, 0, 0, 0, 0]);
            // Releasing nothing is fine.
            assert_eq!(out(&mut r, RELEASE, ty, 0x77, 0, &a), GOOD);
        }
    }

    #[test]
    fn cdb_and_parameter_errors() {
        let mut r = Reservations::new();
        let a = nx(1);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
        // Scope other than LU, unknown types.
        let s = r.persistent_reserve_out(RESERVE, 2, 1, &params(1, 0, 0), &a);
        assert_eq!(sense(s), (0x05, 0x24, 0x00));
        for ty in [0u8, 2, 4, 9, 15] {
            assert_eq!(sense(out(&mut r, RESERVE, ty, 1, 0, &a)), (0x05, 0x24, 0x00));
        }
        // REGISTER ignores the type.
        assert_eq!(out(&mut r, REGISTER, 15, 1, 1, &a), GOOD);
        // Parameter list length other than 24.
        for len in [0usize, 8, 23, 25, 32] {
            let mut p = params(1, 2, 0);
            p.resize(len, 0);
            let s = r.persistent_reserve_out(REGISTER, 0, 0, &p, &a);
            assert_eq!(sense(s), (0x05, 0x1A, 0x00), "{len}");
        }
        // SPEC_I_P, ALL_TG_PT, APTPL.
        for (flags, bit) in [(0x08u8, 3u8), (0x04, 2), (0x01, 0)] {
            let s = r.persistent_reserve_out(REGISTER, 0, 0, &params(1, 2, flags), &a);
            let Reply::Outcome(Outcome::Check(s)) = s else { panic!() };
            assert_eq!((s.asc, s.field.map(|f| (f.in_cdb, f.byte, f.bit))), (0x26, Some((false, 20, Some(bit)))));
        }
        // APTPL is ignored outside registration.
        assert_eq!(r.persistent_reserve_out(RESERVE, 0, 1, &params(1, 0, 0x01), &a), GOOD);
        assert_eq!(r.key_of(&a), Some(1));
        assert_eq!(sense(r.persistent_reserve_out(7, 0, 1, &params(1, 0, 0), &a)), (0x05, 0x24, 0x00));
        assert_eq!(sense(r.persistent_reserve_in(4, 100)), (0x05, 0x24, 0x00));
    }

    #[test]
    fn clear_removes_everything() {
        let mut r = Reservations::new();
        let (a, b) = (nx(1), nx(2));
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 2, &b);
        out(&mut r, RESERVE, 3, 1, 0, &a);
        assert_eq!(out(&mut r, CLEAR, 0, 3, 0, &b), CONFLICT);
        assert_eq!(out(&mut r, CLEAR, 0, 2, 0, &b), GOOD);
        assert_eq!((r.registrations().count(), r.reservation(), r.generation()), (0, None, 3));
    }

    #[test]
    fn preempt_registrations_only() {
        // libiscsi's prout_preempt_rm_reg: no reservation, remove the other key.
        let mut r = Reservations::new();
        let (a, b) = (nx(1), nx(2));
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0x11, &a);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0x22, &b);
        let g = r.generation();
        assert_eq!(out(&mut r, PREEMPT, 3, 0x22, 0x11, &b), GOOD);
        assert_eq!(r.registrations().map(|(_, k)| k).collect::<Vec<_>>(), vec![0x22]);
        assert_eq!((r.generation(), r.reservation()), (g + 1, None));
        // A key nobody holds conflicts; zero is an invalid field.
        assert_eq!(out(&mut r, PREEMPT, 3, 0x22, 0x99, &b), CONFLICT);
        let s = out(&mut r, PREEMPT, 3, 0x22, 0, &b);
        assert_eq!(sense(s), (0x05, 0x26, 0x00));
    }

    #[test]
    fn preempt_the_holder_and_abort() {
        let mut r = Reservations::new();
        let (a, b, c) = (nx(1), nx(2), nx(3));
        for (n, k) in [(&a, 1), (&b, 2), (&c, 1)] {
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, k, n);
        }
        out(&mut r, RESERVE, 1, 1, 0, &a);
        assert_eq!(out(&mut r, PREEMPT_AND_ABORT, 3, 2, 1, &b), GOOD);
        let res = r.reservation().cloned();
        assert_eq!(res, Some(PrReservation { holder: b.clone(), pr_type: PrType::ExclusiveAccess }));
        assert_eq!(r.registrations().count(), 1);
        assert_eq!(r.take_aborted(), vec![a.clone(), c.clone()]);
        assert!(r.take_aborted().is_empty());
        // Self-preemption changes the type, keeps the registration.
        assert_eq!(out(&mut r, PREEMPT, 1, 2, 2, &b), GOOD);
        assert_eq!(r.reservation().map(|x| x.pr_type), Some(PrType::WriteExclusive));
        assert_eq!(r.key_of(&b), Some(2));
    }

    #[test]
    fn all_registrants_reservation_follows_registrations() {
        let mut r = Reservations::new();
        let (a, b, c) = (nx(1), nx(2), nx(3));
        for (n, k) in [(&a, 1), (&b, 2), (&c, 3)] {
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, k, n);
        }
        out(&mut r, RESERVE, 7, 1, 0, &a);
        assert!(r.is_holder(&b));
        // The reserving nexus unregisters: the others still hold it.
        out(&mut r, REGISTER, 0, 1, 0, &a);
        assert_eq!(r.reservation().map(|x| x.pr_type), Some(PrType::WriteExclusiveAllRegistrants));
        // Any holder releases it.
        assert_eq!(out(&mut r, RELEASE, 7, 2, 0, &b), GOOD);
        assert_eq!(r.reservation(), None);
        // Preempt with key 0: only the preempting nexus stays.
        out(&mut r, RESERVE, 8, 2, 0, &b);
        assert_eq!(out(&mut r, PREEMPT, 1, 3, 0, &c), GOOD);
        assert_eq!(r.registrations().map(|(_, k)| k).collect::<Vec<_>>(), vec![3]);
        assert_eq!(r.reservation().map(|x| (&x.holder, x.pr_type)), Some((&c, PrType::WriteExclusive)));
        // The last registrant leaving releases an all-registrants reservation.
        out(&mut r, RESERVE, 1, 3, 0, &c);
        out(&mut r, PREEMPT, 8, 3, 3, &c);
        out(&mut r, REGISTER, 0, 3, 0, &c);
        assert_eq!(r.reservation(), None);
    }

    #[test]
    fn unit_attentions_for_the_others() {
        let mut r = Reservations::new();
        let (a, b, c) = (nx(1), nx(2), nx(3));
        for (n, k) in [(&a, 1), (&b, 2), (&c, 3)] {
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, k, n);
        }
        // PREEMPT of a registration: only the preempted nexus hears of it.
        out(&mut r, PREEMPT, 3, 1, 3, &a);
        assert_eq!(r.unit_attention(&c), Some(Sense::registrations_preempted()));
        assert_eq!((r.unit_attention(&a), r.unit_attention(&b)), (None, None));
        assert_eq!(r.take_unit_attention(&c), Some(Sense::registrations_preempted()));
        assert_eq!(r.take_unit_attention(&c), None);
        // RELEASE of a Registrants Only reservation tells the other registrants.
        out(&mut r, RESERVE, 5, 1, 0, &a);
        out(&mut r, RELEASE, 5, 1, 0, &a);
        assert_eq!((r.unit_attention(&a), r.unit_attention(&b)), (None, Some(Sense::reservations_released())));
        r.take_unit_attention(&b);
        // ... but not that of Write Exclusive.
        out(&mut r, RESERVE, 1, 1, 0, &a);
        out(&mut r, RELEASE, 1, 1, 0, &a);
        assert_eq!(r.unit_attention(&b), None);
        // The holder of Registrants Only unregistering.
        out(&mut r, RESERVE, 6, 1, 0, &a);
        out(&mut r, REGISTER, 0, 1, 0, &a);
        assert_eq!(r.take_unit_attention(&b), Some(Sense::reservations_released()));
        // Preempting the holder with another type.
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 3, &c);
        out(&mut r, RESERVE, 1, 1, 0, &a);
        out(&mut r, PREEMPT, 3, 3, 1, &c);
        assert_eq!(r.take_unit_attention(&a), Some(Sense::registrations_preempted()));
        assert_eq!(r.take_unit_attention(&b), Some(Sense::reservations_released()));
        assert_eq!(r.take_unit_attention(&c), None);
        // CLEAR: everyone but the sender.
        out(&mut r, CLEAR, 0, 2, 0, &b);
        assert_eq!(r.take_unit_attention(&c), Some(Sense::reservations_preempted()));
        assert_eq!(r.take_unit_attention(&b), None);
        // Nexus loss drops a pending one.
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
        out(&mut r, CLEAR, 0, 1, 0, &a);
        r.nexus_lost(&b);
        assert_eq!(r.unit_attention(&b), None);
    }

    #[test]
    fn holder_unregistering_releases() {
        let mut r = Reservations::new();
        let a = nx(1);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
        out(&mut r, RESERVE, 5, 1, 0, &a);
        out(&mut r, REGISTER, 0, 1, 0, &a);
        assert_eq!(r.reservation(), None);
    }

    #[test]
    fn report_capabilities_bytes() {
        let d = bytes(Reservations::new().persistent_reserve_in(2, 100));
        assert_eq!(d, vec![0, 8, 0x10, 0x90, 0xEA, 0x01, 0, 0]);
    }

    #[test]
    fn read_full_status_bytes() {
        let mut r = Reservations::new();
        let a = ItNexus { initiator: "iqn.a,i,0x000000000001".into(), target_port: 3 };
        let b = ItNexus { initiator: "iqn.bb".into(), target_port: 4 };
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0x55, &a);
        out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 0x66, &b);
        out(&mut r, RESERVE, 6, 0x55, 0, &a);
        let d = bytes(r.persistent_reserve_in(3, 1000));
        assert_eq!(&d[..4], &[0, 0, 0, 2]);
        // a: 22-char name + NUL → 24 bytes; b: 6 + NUL → minimum 20.
        assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as usize, d.len() - 8);
        assert_eq!(d.len() - 8, (24 + 28) + (24 + 24));
        let da = &d[8..8 + 52];
        assert_eq!(&da[..8], &0x55u64.to_be_bytes());
        assert_eq!((da[12], da[13]), (0x01, 6));
        assert_eq!(&da[18..24], &[0, 3, 0, 0, 0, 28]);
        assert_eq!(&da[24..28], &[0x45, 0, 0, 24]);
        assert_eq!(&da[28..50], b"iqn.a,i,0x000000000001");
        assert_eq!(&da[50..52], &[0, 0]);
        let db = &d[60..];
        assert_eq!(&db[..8], &0x66u64.to_be_bytes());
        assert_eq!((db[12], db[13]), (0, 0));
        assert_eq!(&db[18..24], &[0, 4, 0, 0, 0, 24]);
        assert_eq!(&db[24..28], &[0x05, 0, 0, 20]);
        assert_eq!(&db[28..34], b"iqn.bb");
        assert!(db[34..].iter().all(|&x| x == 0));
    }

    #[test]
    fn transport_id_padding() {
        assert_eq!(transport_id("abc").len(), 24);
        assert_eq!(transport_id(&"x".repeat(19)).len(), 24);
        assert_eq!(transport_id(&"x".repeat(20)).len(), 28);
        assert_eq!(transport_id(&"x".repeat(23)).len(), 28);
        assert_eq!(transport_id(&"x".repeat(100_000)).len(), 4 + 0xFFF4);
    }

    #[test]
    fn spc2_reserve_release() {
        let mut r = Reservations::new();
        let (a, b) = (nx(1), nx(2));
        assert_eq!(r.reserve(&a), GOOD);
        assert_eq!(r.reserve(&a), GOOD);
        assert_eq!(r.reserve(&b), CONFLICT);
        assert_eq!(r.release(&b), GOOD);
        assert_eq!(r.spc2_holder(), Some(&a));
        // PRIN/PROUT conflict for everyone while it is held.
        assert_eq!(r.persistent_reserve_in(0, 100), CONFLICT);
        assert_eq!(out(&mut r, REGISTER, 0, 0, 1, &a), CONFLICT);
        assert_eq!(r.release(&a), GOOD);
        assert_eq!(r.reserve(&b), GOOD);
        r.nexus_lost(&a);
        assert_eq!(r.spc2_holder(), Some(&b));
        r.nexus_lost(&b);
        assert_eq!(r.spc2_holder(), None);
        r.reserve(&a);
        r.reset();
        assert_eq!(r.spc2_holder(), None);
        // Registrations make RESERVE and RELEASE conflict, for everyone.
        out(&mut r, REGISTER, 0, 0, 1, &a);
        assert_eq!(r.reserve(&a), CONFLICT);
        assert_eq!(r.release(&b), CONFLICT);
        // Persistent state survives nexus loss and reset.
        r.nexus_lost(&a);
        r.reset();
        assert_eq!(r.key_of(&a), Some(1));
    }

    fn cmd(cdb: &[u8]) -> Command {
        crate::cdb::decode(cdb).unwrap_or(Command::TestUnitReady)
    }

    const READ: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    const WRITE: [u8; 10] = [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn allowed(r: &Reservations, cdb: &[u8], n: &ItNexus) -> bool {
        r.check(cdb, &cmd(cdb), n).is_ok()
    }

    /// libiscsi's prout_reserve_access: (registered read, registered
    /// write, unregistered read, unregistered write) for a second nexus.
    #[test]
    fn access_per_type() {
        let table = [
            (3u8, [false, false, false, false]),
            (1, [true, false, true, false]),
            (6, [true, true, false, false]),
            (5, [true, true, true, false]),
            (8, [true, true, false, false]),
            (7, [true, true, true, false]),
        ];
        for (ty, want) in table {
            let mut r = Reservations::new();
            let (a, b) = (nx(1), nx(2));
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 1, &a);
            out(&mut r, REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0, 2, &b);
            out(&mut r, RESERVE, ty, 1, 0, &a);
            assert!(allowed(&r, &READ, &a) && allowed(&r, &WRITE, &a));
            let got_reg = [allowed(&r, &READ, &b), allowed(&r, &WRITE, &b)];
            out(&mut r, REGISTER, 0, 2, 0, &b);
            let got = [got_reg[0], got_reg[1], allowed(&r, &READ, &b), allowed(&r, &WRITE, &b)];
            assert_eq!(got, want, "type {ty}");
            // Always allowed: INQUIRY, TUR, READ CAPACITY, REPORT LUNS, PRIN, PROUT.
            for c in [
                &[0x12, 0, 0, 0, 36, 0][..],
                &[0, 0, 0, 0, 0, 0],
                &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
                &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0],
                &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0],
            ] {
                assert!(allowed(&r, c, &b), "{c:02x?} type {ty}");
            }
            // MODE SENSE, SYNCHRONIZE CACHE, STOP, READ DEFECT DATA conflict
            // for the stranger; GET LBA STATUS is a read.
            let lba_status = [0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0];
            assert_eq!(allowed(&r, &lba_status, &b), want[2], "type {ty}");
            for c in [
                &[0x1A, 0, 0x3F, 0, 255, 0][..],
                &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                &[0x1B, 0, 0, 0, 0, 0],
                &[0x37, 0, 0, 0, 0, 0, 0, 0, 4, 0],
            ] {
                assert!(!allowed(&r, c, &b), "{c:02x?} type {ty}");
            }
            assert!(allowed(&r, &[0x1B, 0, 0, 0, 1, 0], &b));
            assert_eq!(r.check(&WRITE, &cmd(&WRITE), &b), if want[3] { Ok(()) } else { Err(CONFLICT) });
        }
    }

    #[test]
    fn spc2_conflicts() {
        let mut r = Reservations::new();
        let (a, b) = (nx(1), nx(2));
        r.reserve(&a);
        for c in [&READ[..], &WRITE, &[0x1A, 0, 0x3F, 0, 255, 0], &[0, 0, 0, 0, 0, 0], &[0x16, 0, 0, 0, 0, 0]] {
            assert!(allowed(&r, c, &a), "{c:02x?}");
            assert!(!allowed(&r, c, &b), "{c:02x?}");
        }
        for c in [&[0x12, 0, 0, 0, 36, 0][..], &[0x03, 0, 0, 0, 18, 0], &[0x17, 0, 0, 0, 0, 0]] {
            assert!(allowed(&r, c, &b), "{c:02x?}");
        }
        assert!(!allowed(&r, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0], &a));
    }
}
