//! The SCSI side of the host: the few CDBs we send (SBC-4, SPC-5), the SAM LUN structure, and sense
//! data (fixed and descriptor formats).

/// GOOD status.
pub const STATUS_GOOD: u8 = 0x00;
/// CHECK CONDITION status: sense data says why.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// UNIT ATTENTION sense key (e.g. the power-on reset every new I_T nexus sees once).
pub const SENSE_UNIT_ATTENTION: u8 = 0x06;
/// NOT READY sense key.
pub const SENSE_NOT_READY: u8 = 0x02;

/// The 8-byte SAM LUN of `lun`: peripheral addressing below 256, flat space addressing to 16383.
pub fn lun_to_wire(lun: u16) -> u64 {
    if lun < 256 { u64::from(lun) << 48 } else { (0x4000 | u64::from(lun & 0x3fff)) << 48 }
}

/// TEST UNIT READY.
pub fn test_unit_ready() -> [u8; 16] {
    [0; 16]
}

/// INQUIRY, standard data, `alloc` bytes.
pub fn inquiry(alloc: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x12;
    c[3..5].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// READ CAPACITY(16) (SERVICE ACTION IN(16)), 32 bytes of answer.
pub fn read_capacity16() -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[10..14].copy_from_slice(&32u32.to_be_bytes());
    c
}

/// READ(16) of `blocks` blocks at `lba`.
pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x88, lba, blocks)
}

/// WRITE(16) of `blocks` blocks at `lba`.
pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x8a, lba, blocks)
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// What READ CAPACITY(16) says about a logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks.
    pub blocks: u64,
    /// Bytes per logical block.
    pub block_size: u32,
}

impl Capacity {
    /// Parses READ CAPACITY(16) data (at least 12 bytes); a zero block size is refused.
    pub fn parse(d: &[u8]) -> Option<Capacity> {
        let last = u64::from_be_bytes(d.get(0..8)?.try_into().ok()?);
        let block_size = u32::from_be_bytes(d.get(8..12)?.try_into().ok()?);
        (block_size > 0).then_some(Capacity { blocks: last.checked_add(1)?, block_size })
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// The parts of sense data a caller acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

impl Sense {
    /// Parses fixed (0x70/0x71) or descriptor (0x72/0x73) sense data; anything else is `None`.
    pub fn parse(d: &[u8]) -> Option<Sense> {
        match d.first()? & 0x7f {
            0x70 | 0x71 => Some(Sense { key: d.get(2)? & 0x0f, asc: *d.get(12)?, ascq: *d.get(13)? }),
            0x72 | 0x73 => Some(Sense { key: d.get(1)? & 0x0f, asc: *d.get(2)?, ascq: *d.get(3)? }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Sense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sense key {:#x}, ASC/ASCQ {:#04x}/{:#04x}", self.key, self.asc, self.ascq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdbs_and_parsers() {
        assert_eq!(read16(0x0102_0304_0506_0708, 8)[..14], [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 8]);
        assert_eq!(write16(1, 0x100)[0], 0x8a);
        assert_eq!(read_capacity16()[..2], [0x9e, 0x10]);
        assert_eq!(inquiry(96)[..5], [0x12, 0, 0, 0, 96]);
        assert_eq!(lun_to_wire(1), 0x0001_0000_0000_0000);
        assert_eq!(lun_to_wire(300), 0x412c_0000_0000_0000);
        let mut cap = [0u8; 32];
        cap[7] = 99;
        cap[10] = 2;
        assert_eq!(Capacity::parse(&cap), Some(Capacity { blocks: 100, block_size: 512 }));
        assert_eq!(Capacity::parse(&[0; 32]), None);
        assert_eq!(Capacity::parse(&[0xff; 12]), None, "last LBA of all ones overflows");
        assert_eq!(Capacity::parse(&[1; 4]), None);
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x06;
        fixed[12] = 0x29;
        assert_eq!(Sense::parse(&fixed), Some(Sense { key: 6, asc: 0x29, ascq: 0 }));
        assert_eq!(Sense::parse(&[0x72, 0x05, 0x24, 0x00]), Some(Sense { key: 5, asc: 0x24, ascq: 0 }));
        assert_eq!(Sense::parse(&[0x70, 0, 6]), None);
        assert_eq!(Sense::parse(&[]), None);
    }
}
