//! REPORT SUPPORTED OPERATION CODES: the table of commands this crate
//! executes for a logical unit, each with its CDB usage data (a mask of the
//! CDB bits the device server honours), and the three reporting forms.
//!
//! Owns the table; it must list exactly what the executor accepts, which
//! the tests check by running every listed CDB.

use crate::bytes::{put_be, put_u8};
use crate::cdb::{opcode as op, service_action as sa};
use crate::lu::LogicalUnit;
use crate::sense::Sense;

/// One supported command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpcodeInfo {
    /// Operation code.
    pub opcode: u8,
    /// Service action, for operation codes that have them.
    pub service_action: Option<u16>,
    /// CDB usage data; its length is the CDB length.
    pub usage: &'static [u8],
}

const fn e(opcode: u8, usage: &'static [u8]) -> OpcodeInfo {
    OpcodeInfo { opcode, service_action: None, usage }
}

const fn s(opcode: u8, action: u8, usage: &'static [u8]) -> OpcodeInfo {
    OpcodeInfo { opcode, service_action: Some(action as u16), usage }
}

const FF: u8 = 0xFF;

/// Every command, in operation code order. DPO/FUA (and the ignored FUA_NV)
/// are honoured on reads and writes; protection fields must be zero, so
/// their bits are not listed as used; group numbers are ignored.
const TABLE: [OpcodeInfo; 51] = [
    e(op::TEST_UNIT_READY, &[0x00, 0, 0, 0, 0, 0]),
    e(op::REQUEST_SENSE, &[0x03, 0x01, 0, 0, FF, 0]),
    e(op::READ_6, &[0x08, 0x1F, FF, FF, FF, 0]),
    e(op::WRITE_6, &[0x0A, 0x1F, FF, FF, FF, 0]),
    e(op::INQUIRY, &[0x12, 0x01, FF, FF, FF, 0]),
    e(op::RESERVE_6, &[0x16, 0, 0, 0, 0, 0]),
    e(op::RELEASE_6, &[0x17, 0, 0, 0, 0, 0]),
    e(op::MODE_SENSE_6, &[0x1A, 0x08, FF, FF, FF, 0]),
    e(op::START_STOP_UNIT, &[0x1B, 0, 0, 0, 0, 0]),
    e(op::PREVENT_ALLOW_MEDIUM_REMOVAL, &[0x1E, 0, 0, 0, 0, 0]),
    e(op::READ_CAPACITY_10, &[0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, 0]),
    e(op::READ_10, &[0x28, 0x1A, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::WRITE_10, &[0x2A, 0x1A, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::WRITE_AND_VERIFY_10, &[0x2E, 0x12, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::VERIFY_10, &[0x2F, 0x16, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::PRE_FETCH_10, &[0x34, 0x02, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::SYNCHRONIZE_CACHE_10, &[0x35, 0x02, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::READ_DEFECT_DATA_10, &[0x37, 0, 0x1F, 0, 0, 0, 0, FF, FF, 0]),
    e(op::WRITE_SAME_10, &[0x41, 0x08, FF, FF, FF, FF, 0, FF, FF, 0]),
    e(op::UNMAP, &[0x42, 0, 0, 0, 0, 0, 0, FF, FF, 0]),
    e(op::RESERVE_10, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    e(op::RELEASE_10, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    e(op::MODE_SENSE_10, &[0x5A, 0x18, FF, FF, 0, 0, 0, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_IN, 0, &[0x5E, 0x00, 0, 0, 0, 0, 0, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_IN, 1, &[0x5E, 0x01, 0, 0, 0, 0, 0, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_IN, 2, &[0x5E, 0x02, 0, 0, 0, 0, 0, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_IN, 3, &[0x5E, 0x03, 0, 0, 0, 0, 0, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 0, &[0x5F, 0x00, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 1, &[0x5F, 0x01, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 2, &[0x5F, 0x02, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 3, &[0x5F, 0x03, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 4, &[0x5F, 0x04, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 5, &[0x5F, 0x05, FF, 0, 0, FF, FF, FF, FF, 0]),
    s(op::PERSISTENT_RESERVE_OUT, 6, &[0x5F, 0x06, FF, 0, 0, FF, FF, FF, FF, 0]),
    e(op::READ_16, &[0x88, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::COMPARE_AND_WRITE, &[0x89, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0, 0, FF, 0, 0]),
    e(op::WRITE_16, &[0x8A, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::WRITE_AND_VERIFY_16, &[0x8E, 0x12, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::VERIFY_16, &[0x8F, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::PRE_FETCH_16, &[0x90, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::SYNCHRONIZE_CACHE_16, &[0x91, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::WRITE_SAME_16, &[0x93, 0x09, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    s(op::SERVICE_ACTION_IN_16, sa::READ_CAPACITY_16, &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, 0]),
    s(
        op::SERVICE_ACTION_IN_16,
        sa::GET_LBA_STATUS,
        &[0x9E, 0x12, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0],
    ),
    e(op::REPORT_LUNS, &[0xA0, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, 0]),
    s(op::MAINTENANCE_IN, sa::REPORT_SUPPORTED_OPCODES, &[0xA3, 0x0C, 0x87, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::READ_12, &[0xA8, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::WRITE_12, &[0xAA, 0x1A, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::WRITE_AND_VERIFY_12, &[0xAE, 0x12, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::VERIFY_12, &[0xAF, 0x16, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
    e(op::READ_DEFECT_DATA_12, &[0xB7, 0x1F, FF, FF, FF, FF, FF, FF, FF, FF, 0, 0]),
];

/// The commands `lu` supports through [`crate::execute`]: UNMAP only when
/// thin, COMPARE AND WRITE only when it has a non-zero length limit, and
/// no reservation commands.
pub fn supported(lu: &LogicalUnit) -> impl Iterator<Item = &'static OpcodeInfo> + '_ {
    supported_with(lu, false)
}

/// Whether `opcode` needs the LU's [`crate::reservations::Reservations`].
fn is_reservation_command(opcode: u8) -> bool {
    matches!(
        opcode,
        op::RESERVE_6
            | op::RELEASE_6
            | op::RESERVE_10
            | op::RELEASE_10
            | op::PERSISTENT_RESERVE_IN
            | op::PERSISTENT_RESERVE_OUT
    )
}

/// [`supported`], plus RESERVE/RELEASE and PERSISTENT RESERVE IN/OUT when
/// `reservations` (the path through
/// [`crate::exec::execute_with_reservations`]).
pub fn supported_with(lu: &LogicalUnit, reservations: bool) -> impl Iterator<Item = &'static OpcodeInfo> + '_ {
    TABLE.iter().filter(move |i| match i.opcode {
        op::UNMAP => lu.thin,
        op::COMPARE_AND_WRITE => lu.max_compare_write_blocks > 0,
        o => reservations || !is_reservation_command(o),
    })
}

/// Whether `opcode` is one that carries service actions.
fn has_service_actions(opcode: u8) -> bool {
    TABLE.iter().any(|i| i.opcode == opcode && i.service_action.is_some())
}

/// Command timeouts descriptor: no timeouts are advertised.
const TIMEOUTS: [u8; 12] = [0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// What a REPORT SUPPORTED OPERATION CODES CDB asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpcodesRequest {
    /// Append command timeouts descriptors.
    pub rctd: bool,
    /// Reporting options (0 all, 1 opcode, 2 opcode + action, 3 either).
    pub options: u8,
    /// Requested operation code.
    pub opcode: u8,
    /// Requested service action.
    pub service_action: u16,
}

/// REPORT SUPPORTED OPERATION CODES parameter data before
/// allocation-length truncation, for [`crate::execute`].
pub fn report(lu: &LogicalUnit, req: &OpcodesRequest) -> Result<Vec<u8>, Sense> {
    report_with(lu, req, false)
}

/// [`report`] listing the reservation commands too when `reservations`.
pub fn report_with(lu: &LogicalUnit, req: &OpcodesRequest, reservations: bool) -> Result<Vec<u8>, Sense> {
    let one = |found: Option<&OpcodeInfo>| {
        let mut b = vec![0u8; 4];
        if let Some(i) = found {
            put_u8(&mut b, 1, 0x03 | if req.rctd { 0x80 } else { 0 }); // supported as the standard says
            put_be(&mut b, 2, 2, i.usage.len() as u64);
            b.extend_from_slice(i.usage);
            if req.rctd {
                b.extend_from_slice(&TIMEOUTS);
            }
        } else {
            put_u8(&mut b, 1, 0x01); // not supported
        }
        b
    };
    let with_sa = has_service_actions(req.opcode);
    let find = |want_sa: bool| {
        supported_with(lu, reservations)
            .find(|i| i.opcode == req.opcode && (!want_sa || i.service_action == Some(req.service_action)))
    };
    match req.options {
        0 => {
            let mut b = vec![0u8; 4];
            for i in supported_with(lu, reservations) {
                let mut d = [0u8; 8];
                put_u8(&mut d, 0, i.opcode);
                put_be(&mut d, 2, 2, u64::from(i.service_action.unwrap_or(0)));
                put_u8(&mut d, 5, u8::from(i.service_action.is_some()) | if req.rctd { 0x02 } else { 0 });
                put_be(&mut d, 6, 2, i.usage.len() as u64);
                b.extend_from_slice(&d);
                if req.rctd {
                    b.extend_from_slice(&TIMEOUTS);
                }
            }
            let n = b.len() - 4;
            put_be(&mut b, 0, 4, n as u64);
            Ok(b)
        }
        1 if with_sa => Err(Sense::invalid_field_in_cdb(2, Some(2))),
        1 => Ok(one(find(false))),
        2 if !with_sa => Err(Sense::invalid_field_in_cdb(2, Some(2))),
        2 => Ok(one(find(true))),
        3 => Ok(one(find(with_sa))),
        _ => Err(Sense::invalid_field_in_cdb(2, Some(2))),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn lu() -> LogicalUnit {
        LogicalUnit::new(512, 100, "S", [0x60; 16])
    }

    fn req(options: u8, opcode: u8, sa: u16) -> OpcodesRequest {
        OpcodesRequest { rctd: false, options, opcode, service_action: sa }
    }

    #[test]
    fn table_is_sorted_and_consistent() {
        for w in TABLE.windows(2) {
            assert!((w[0].opcode, w[0].service_action) < (w[1].opcode, w[1].service_action));
        }
        for i in &TABLE {
            assert_eq!(i.usage[0], i.opcode);
            assert_eq!(Some(i.usage.len()), crate::cdb::cdb_len(i.opcode));
            if let Some(sa) = i.service_action {
                assert_eq!(u16::from(i.usage[1] & 0x1F), sa);
            }
        }
    }

    #[test]
    fn all_commands_listing() {
        let b = report(&lu(), &req(0, 0, 0)).unwrap_or_default();
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        assert_eq!(n, b.len() - 4);
        // Thick LU: no UNMAP, and no reservation commands without state.
        assert_eq!(n / 8, TABLE.len() - 1 - 15);
        assert!(b[4..].chunks(8).all(|d| d[0] != op::UNMAP));
        let rc16 = b[4..].chunks(8).find(|d| d[0] == 0x9E).map(<[u8]>::to_vec);
        assert_eq!(rc16, Some(vec![0x9E, 0, 0, 0x10, 0, 0x01, 0, 16]));
        let mut t = lu();
        t.thin = true;
        let mut r = req(0, 0, 0);
        r.rctd = true;
        let b = report_with(&t, &r, true).unwrap_or_default();
        assert_eq!(b.len() - 4, TABLE.len() * 20);
        assert_eq!(report(&t, &r).map(|b| b.len() - 4), Ok((TABLE.len() - 15) * 20));
        assert_eq!(&b[4 + 5..4 + 8], &[0x02, 0, 6]);
        assert_eq!(&b[12..14], &[0, 0x0A]);
    }

    #[test]
    fn one_command_forms() {
        let b = report(&lu(), &req(1, op::WRITE_10, 0)).unwrap_or_default();
        assert_eq!(&b[..4], &[0, 0x03, 0, 10]);
        assert_eq!(&b[4..6], &[0x2A, 0x1A]);
        let b = report(&lu(), &req(1, 0x55, 0)).unwrap_or_default();
        assert_eq!(b, vec![0, 0x01, 0, 0]);
        assert!(report(&lu(), &req(1, 0x9E, 0x10)).is_err());
        let b = report(&lu(), &req(2, 0x9E, 0x10)).unwrap_or_default();
        assert_eq!(&b[..6], &[0, 0x03, 0, 16, 0x9E, 0x10]);
        let b = report(&lu(), &req(2, 0x9E, 0x12)).unwrap_or_default();
        assert_eq!(&b[..6], &[0, 0x03, 0, 16, 0x9E, 0x12]);
        let b = report(&lu(), &req(2, 0x9E, 0x13)).unwrap_or_default();
        assert_eq!(b[1], 0x01);
        assert!(report(&lu(), &req(2, op::READ_10, 0)).is_err());
        assert_eq!(report(&lu(), &req(3, op::READ_10, 7)).map(|b| b[1]), Ok(0x03));
        assert_eq!(report(&lu(), &req(3, 0xA3, 0x0C)).map(|b| b[1]), Ok(0x03));
        let mut r = req(1, op::READ_16, 0);
        r.rctd = true;
        let b = report(&lu(), &r).unwrap_or_default();
        assert_eq!(b[1], 0x83);
        assert_eq!(b.len(), 4 + 16 + 12);
        assert!(report(&lu(), &req(4, 0, 0)).is_err());
    }
}
