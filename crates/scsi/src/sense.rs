//! Status codes and sense data (SPC-4 4.5): the [`Sense`] a CHECK CONDITION
//! carries, its fixed (70h) and descriptor (72h) encodings, and one
//! constructor per error this crate or its runtime reports.
//!
//! Owns the byte layout and the key/ASC/ASCQ choice for each error; which
//! command raises which error is the executor's business.

use crate::bytes::{put, put_be, put_u8};

/// SCSI status byte (SAM-5 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The command completed.
    Good = 0x00,
    /// Sense data describes why the command failed.
    CheckCondition = 0x02,
    /// PRE-FETCH found room in the cache (never produced here).
    ConditionMet = 0x04,
    /// The logical unit is busy.
    Busy = 0x08,
    /// Another I_T nexus holds a reservation.
    ReservationConflict = 0x18,
    /// The task set is full.
    TaskSetFull = 0x28,
    /// An ACA condition exists.
    AcaActive = 0x30,
    /// The command was aborted by another nexus's task management (TAS=1).
    TaskAborted = 0x40,
}

/// Sense key (SPC-4 table 46).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SenseKey {
    /// Nothing to report.
    NoSense = 0x0,
    /// Recovered error.
    RecoveredError = 0x1,
    /// The logical unit cannot be accessed now.
    NotReady = 0x2,
    /// Unrecovered medium error (read or write).
    MediumError = 0x3,
    /// Hardware or internal failure.
    HardwareError = 0x4,
    /// Bad CDB or parameter list.
    IllegalRequest = 0x5,
    /// Unit attention.
    UnitAttention = 0x6,
    /// Write protected.
    DataProtect = 0x7,
    /// Aborted command.
    AbortedCommand = 0xB,
    /// Verify or compare found different data.
    Miscompare = 0xE,
}

/// Additional sense code / qualifier pairs used here (SPC-4 table 47).
pub mod asc {
    /// NO ADDITIONAL SENSE INFORMATION.
    pub const NO_ADDITIONAL_SENSE: (u8, u8) = (0x00, 0x00);
    /// WRITE ERROR.
    pub const WRITE_ERROR: (u8, u8) = (0x0C, 0x00);
    /// INVALID FIELD IN COMMAND INFORMATION UNIT (transfer length mismatch).
    pub const INVALID_FIELD_IN_INFORMATION_UNIT: (u8, u8) = (0x0E, 0x03);
    /// UNRECOVERED READ ERROR.
    pub const UNRECOVERED_READ_ERROR: (u8, u8) = (0x11, 0x00);
    /// PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: (u8, u8) = (0x1A, 0x00);
    /// MISCOMPARE DURING VERIFY OPERATION.
    pub const MISCOMPARE_DURING_VERIFY: (u8, u8) = (0x1D, 0x00);
    /// INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND_OPERATION_CODE: (u8, u8) = (0x20, 0x00);
    /// LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: (u8, u8) = (0x21, 0x00);
    /// INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
    /// LOGICAL UNIT NOT SUPPORTED.
    pub const LOGICAL_UNIT_NOT_SUPPORTED: (u8, u8) = (0x25, 0x00);
    /// INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: (u8, u8) = (0x26, 0x00);
    /// INVALID RELEASE OF PERSISTENT RESERVATION.
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: (u8, u8) = (0x26, 0x04);
    /// WRITE PROTECTED.
    pub const WRITE_PROTECTED: (u8, u8) = (0x27, 0x00);
    /// RESERVATIONS PREEMPTED.
    pub const RESERVATIONS_PREEMPTED: (u8, u8) = (0x2A, 0x03);
    /// RESERVATIONS RELEASED.
    pub const RESERVATIONS_RELEASED: (u8, u8) = (0x2A, 0x04);
    /// REGISTRATIONS PREEMPTED.
    pub const REGISTRATIONS_PREEMPTED: (u8, u8) = (0x2A, 0x05);
    /// SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: (u8, u8) = (0x39, 0x00);
    /// INTERNAL TARGET FAILURE.
    pub const INTERNAL_TARGET_FAILURE: (u8, u8) = (0x44, 0x00);
}

/// Length of fixed-format sense data as built here (additional length 10).
pub const FIXED_SENSE_LEN: usize = 18;

/// Where in the CDB or parameter list the offending field is
/// (sense-key specific field pointer, SPC-4 4.5.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// True for the CDB (C/D = 1), false for the parameter list.
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// Bit (0..=7) of the field's most significant bit, when known (BPV).
    pub bit: Option<u8>,
}

/// Sense data for a CHECK CONDITION (or for REQUEST SENSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// Sense key.
    pub key: SenseKey,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// INFORMATION field (an LBA, or a miscompare offset).
    pub information: Option<u64>,
    /// Sense-key specific field pointer (ILLEGAL REQUEST only).
    pub field: Option<FieldPointer>,
}

impl Sense {
    /// Sense with `key` and `asc` and nothing else.
    pub const fn new(key: SenseKey, asc: (u8, u8)) -> Sense {
        Sense { key, asc: asc.0, ascq: asc.1, information: None, field: None }
    }

    /// NO SENSE: what REQUEST SENSE returns when nothing is pending.
    pub const fn no_sense() -> Sense {
        Sense::new(SenseKey::NoSense, asc::NO_ADDITIONAL_SENSE)
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (pointer at byte 0).
    pub const fn invalid_opcode() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::INVALID_COMMAND_OPERATION_CODE).with_cdb_field(0, None)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at `byte` (and `bit`).
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::INVALID_FIELD_IN_CDB).with_cdb_field(byte, bit)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing at `byte`
    /// (and `bit`) of the parameter list.
    pub const fn invalid_field_in_parameter_list(byte: u16, bit: Option<u8>) -> Sense {
        let mut s = Sense::new(SenseKey::IllegalRequest, asc::INVALID_FIELD_IN_PARAMETER_LIST);
        s.field = Some(FieldPointer { in_cdb: false, byte, bit });
        s
    }

    /// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
    pub const fn parameter_list_length_error() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::PARAMETER_LIST_LENGTH_ERROR)
    }

    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const fn lba_out_of_range() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED: any command but INQUIRY,
    /// REPORT LUNS and REQUEST SENSE sent to a LUN that does not exist.
    pub const fn lun_not_supported() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::LOGICAL_UNIT_NOT_SUPPORTED)
    }

    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED (MODE SENSE PC=11b),
    /// pointing at the PC field.
    pub const fn saving_parameters_not_supported() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::SAVING_PARAMETERS_NOT_SUPPORTED).with_cdb_field(2, Some(7))
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT: what a
    /// transport may answer when the initiator's expected data transfer
    /// length disagrees with the CDB for a command that moves data out.
    pub const fn invalid_field_in_information_unit() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::INVALID_FIELD_IN_INFORMATION_UNIT)
    }

    /// ILLEGAL REQUEST, INVALID RELEASE OF PERSISTENT RESERVATION: a
    /// PERSISTENT RESERVE OUT RELEASE from the holder whose scope or type
    /// differs from the reservation's.
    pub const fn invalid_release_of_persistent_reservation() -> Sense {
        Sense::new(SenseKey::IllegalRequest, asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION)
    }

    /// UNIT ATTENTION, RESERVATIONS PREEMPTED: another I_T nexus cleared
    /// the persistent reservations and registrations (PROUT CLEAR).
    pub const fn reservations_preempted() -> Sense {
        Sense::new(SenseKey::UnitAttention, asc::RESERVATIONS_PREEMPTED)
    }

    /// UNIT ATTENTION, RESERVATIONS RELEASED: a Registrants Only or All
    /// Registrants reservation was released, or replaced by a preemption.
    pub const fn reservations_released() -> Sense {
        Sense::new(SenseKey::UnitAttention, asc::RESERVATIONS_RELEASED)
    }

    /// UNIT ATTENTION, REGISTRATIONS PREEMPTED: another I_T nexus removed
    /// this nexus's registration (PROUT PREEMPT).
    pub const fn registrations_preempted() -> Sense {
        Sense::new(SenseKey::UnitAttention, asc::REGISTRATIONS_PREEMPTED)
    }

    /// DATA PROTECT, WRITE PROTECTED.
    pub const fn write_protected() -> Sense {
        Sense::new(SenseKey::DataProtect, asc::WRITE_PROTECTED)
    }

    /// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION; `offset` is the byte
    /// offset of the first differing byte from the start of the compared
    /// data-out (SBC-3 COMPARE AND WRITE and VERIFY with BYTCHK).
    pub const fn miscompare(offset: u64) -> Sense {
        Sense::new(SenseKey::Miscompare, asc::MISCOMPARE_DURING_VERIFY).with_information(offset)
    }

    /// MEDIUM ERROR, UNRECOVERED READ ERROR at `lba` (the first failed block,
    /// or the first block of the request when the backend cannot tell).
    pub const fn unrecovered_read_error(lba: u64) -> Sense {
        Sense::new(SenseKey::MediumError, asc::UNRECOVERED_READ_ERROR).with_information(lba)
    }

    /// MEDIUM ERROR, WRITE ERROR at `lba`.
    pub const fn write_error(lba: u64) -> Sense {
        Sense::new(SenseKey::MediumError, asc::WRITE_ERROR).with_information(lba)
    }

    /// HARDWARE ERROR, INTERNAL TARGET FAILURE: a backend failure that is
    /// neither a read nor a write error (a failed flush or deallocate).
    pub const fn internal_target_failure() -> Sense {
        Sense::new(SenseKey::HardwareError, asc::INTERNAL_TARGET_FAILURE)
    }

    /// The same sense with the INFORMATION field set.
    pub const fn with_information(mut self, information: u64) -> Sense {
        self.information = Some(information);
        self
    }

    const fn with_cdb_field(mut self, byte: u16, bit: Option<u8>) -> Sense {
        self.field = Some(FieldPointer { in_cdb: true, byte, bit });
        self
    }

    /// Sense-key specific bytes 15..18 of fixed format: SKSV, C/D, BPV,
    /// bit pointer and field pointer; zero when there is no pointer.
    fn key_specific(&self) -> [u8; 3] {
        match self.field {
            Some(f) => {
                let mut b0 = 0x80;
                if f.in_cdb {
                    b0 |= 0x40;
                }
                if let Some(bit) = f.bit {
                    b0 |= 0x08 | (bit & 0x07);
                }
                let [hi, lo] = f.byte.to_be_bytes();
                [b0, hi, lo]
            }
            None => [0; 3],
        }
    }

    /// Fixed-format sense data (response code 70h, 18 bytes). The
    /// INFORMATION field is 4 bytes here: a value that does not fit leaves
    /// VALID clear, as SPC-4 requires.
    pub fn to_fixed(&self) -> [u8; FIXED_SENSE_LEN] {
        let mut b = [0u8; FIXED_SENSE_LEN];
        let info = self.information.and_then(|i| u32::try_from(i).ok());
        put_u8(&mut b, 0, if info.is_some() { 0xF0 } else { 0x70 });
        put_u8(&mut b, 2, self.key as u8);
        put_be(&mut b, 3, 4, u64::from(info.unwrap_or(0)));
        put_u8(&mut b, 7, (FIXED_SENSE_LEN - 8) as u8);
        put_u8(&mut b, 12, self.asc);
        put_u8(&mut b, 13, self.ascq);
        put(&mut b, 15, &self.key_specific());
        b
    }

    /// Descriptor-format sense data (response code 72h) with an information
    /// descriptor (64-bit) and a sense-key specific descriptor when present.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut b = vec![0x72, self.key as u8, self.asc, self.ascq, 0, 0, 0, 0];
        if let Some(info) = self.information {
            b.extend_from_slice(&[0x00, 0x0A, 0x80, 0x00]);
            b.extend_from_slice(&info.to_be_bytes());
        }
        if self.field.is_some() {
            let sks = self.key_specific();
            b.extend_from_slice(&[0x02, 0x06, 0x00, 0x00, sks[0], sks[1], sks[2], 0x00]);
        }
        let add = (b.len() - 8) as u8;
        put_u8(&mut b, 7, add);
        b
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lba_out_of_range() {
        let b = Sense::lba_out_of_range().to_fixed();
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], 0x05);
        assert_eq!(b[7], 10);
        assert_eq!((b[12], b[13]), (0x21, 0x00));
        assert_eq!(&b[15..18], &[0, 0, 0]);
    }

    #[test]
    fn fixed_invalid_field_pointer() {
        let b = Sense::invalid_field_in_cdb(1, Some(4)).to_fixed();
        assert_eq!((b[2], b[12], b[13]), (0x05, 0x24, 0x00));
        // SKSV | C/D | BPV | bit 4, field byte 1.
        assert_eq!(&b[15..18], &[0xCC, 0x00, 0x01]);
        let b = Sense::invalid_field_in_cdb(0x102, None).to_fixed();
        assert_eq!(&b[15..18], &[0xC0, 0x01, 0x02]);
        let b = Sense::invalid_field_in_parameter_list(9, None).to_fixed();
        assert_eq!((b[12], b[15], b[17]), (0x26, 0x80, 9));
    }

    #[test]
    fn fixed_information_field() {
        let b = Sense::miscompare(0x1234).to_fixed();
        assert_eq!(b[0], 0xF0);
        assert_eq!(b[2], 0x0E);
        assert_eq!(&b[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!((b[12], b[13]), (0x1D, 0x00));
        // Too large for 4 bytes: VALID stays clear and the field zero.
        let b = Sense::unrecovered_read_error(1 << 40).to_fixed();
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], 0x03);
        assert_eq!(&b[3..7], &[0; 4]);
        assert_eq!((b[12], b[13]), (0x11, 0x00));
        let b = Sense::write_error(7).to_fixed();
        assert_eq!((b[0], b[2], b[6], b[12]), (0xF0, 0x03, 7, 0x0C));
    }

    #[test]
    fn each_error_has_its_key_and_code() {
        let cases = [
            (Sense::invalid_opcode(), 0x05, 0x20, 0x00),
            (Sense::parameter_list_length_error(), 0x05, 0x1A, 0x00),
            (Sense::write_protected(), 0x07, 0x27, 0x00),
            (Sense::lun_not_supported(), 0x05, 0x25, 0x00),
            (Sense::saving_parameters_not_supported(), 0x05, 0x39, 0x00),
            (Sense::internal_target_failure(), 0x04, 0x44, 0x00),
            (Sense::invalid_field_in_information_unit(), 0x05, 0x0E, 0x03),
            (Sense::no_sense(), 0x00, 0x00, 0x00),
            (Sense::invalid_release_of_persistent_reservation(), 0x05, 0x26, 0x04),
            (Sense::reservations_preempted(), 0x06, 0x2A, 0x03),
            (Sense::reservations_released(), 0x06, 0x2A, 0x04),
            (Sense::registrations_preempted(), 0x06, 0x2A, 0x05),
        ];
        for (s, key, a, q) in cases {
            let b = s.to_fixed();
            assert_eq!((b[2], b[12], b[13]), (key, a, q), "{s:?}");
        }
    }

    #[test]
    fn descriptor_format() {
        let d = Sense::miscompare(1 << 40).to_descriptor();
        assert_eq!(&d[..4], &[0x72, 0x0E, 0x1D, 0x00]);
        assert_eq!(d[7] as usize, d.len() - 8);
        assert_eq!(&d[8..12], &[0x00, 0x0A, 0x80, 0x00]);
        assert_eq!(&d[12..20], &(1u64 << 40).to_be_bytes());
        let d = Sense::invalid_field_in_cdb(2, None).to_descriptor();
        assert_eq!(d.len(), 16);
        assert_eq!(&d[8..16], &[0x02, 0x06, 0, 0, 0xC0, 0x00, 0x02, 0]);
        assert_eq!(Sense::no_sense().to_descriptor(), vec![0x72, 0, 0, 0, 0, 0, 0, 0]);
    }
}
