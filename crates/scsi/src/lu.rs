//! The logical unit description: what the runtime knows about the block
//! backend and the identity the LU reports, checked once by
//! [`LogicalUnit::validate`] so the executor can trust it.
//!
//! Owns defaults and consistency rules; the byte layouts built from it live
//! in the INQUIRY, mode and capacity modules.

/// The only vendor identification this target reports (8 ASCII bytes).
pub const VENDOR: &str = "FERROFAB";
/// Default product identification.
pub const DEFAULT_PRODUCT: &str = "ferrofabric LUN";
/// Default product revision level (4 ASCII bytes).
pub const DEFAULT_REVISION: &str = "0001";
/// Default largest transfer in one command: 8 MiB of 512-byte blocks.
pub const DEFAULT_MAX_TRANSFER_BLOCKS: u32 = 16384;
/// Default largest UNMAP in blocks (and per WRITE SAME with UNMAP).
pub const DEFAULT_MAX_UNMAP_BLOCKS: u32 = 1 << 22;
/// Default largest number of UNMAP block descriptors.
pub const DEFAULT_MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Default largest WRITE SAME in blocks.
pub const DEFAULT_MAX_WRITE_SAME_BLOCKS: u64 = 1 << 22;
/// Default largest COMPARE AND WRITE in blocks (VMware ATS sends one).
pub const DEFAULT_MAX_COMPARE_WRITE_BLOCKS: u8 = 1;
/// Longest unit serial number: VPD 80h and the T10 designator must both fit a
/// one-byte length next to the vendor id.
pub const MAX_SERIAL_LEN: usize = 64;

/// Why a [`LogicalUnit`] cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LuError {
    /// Block size other than 512 or 4096.
    #[error("block size {0} not supported (512 or 4096)")]
    BlockSize(u32),
    /// No block at all.
    #[error("logical unit holds no block")]
    Empty,
    /// Capacity in bytes does not fit 64 bits.
    #[error("capacity overflows 64-bit bytes")]
    TooLarge,
    /// An identification string is too long or not printable ASCII.
    #[error("{field} must be printable ASCII of at most {max} bytes")]
    Ascii {
        /// Which field.
        field: &'static str,
        /// Its longest length.
        max: usize,
    },
    /// A limit is zero where zero is meaningless.
    #[error("{0} must not be zero")]
    ZeroLimit(&'static str),
    /// An all-zero device identifier names no device.
    #[error("device identifier is all zeros")]
    DeviceId,
    /// The physical block exponent makes a physical block over 64 KiB
    /// logical blocks (LBPPBE is 4 bits).
    #[error("logical blocks per physical block exponent {0} over 15")]
    PhysicalExponent(u8),
}

/// A logical unit as the SCSI layer sees it. Build with
/// [`LogicalUnit::new`], adjust fields, then [`LogicalUnit::validate`].
///
/// From a block backend's `ff_blockdev::DevInfo`: `block_size` and
/// `num_blocks` as they are, `write_cache` from `volatile_write_cache`,
/// `thin` when `deallocate && deallocate_reads_zeroes` (LBPRZ is
/// reported), `optimal_transfer_blocks` from `optimal_io_blocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalUnit {
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    /// Number of logical blocks.
    pub num_blocks: u64,
    /// log2 of logical blocks per physical block (READ CAPACITY 16 LBPPBE):
    /// 3 for a 512-byte LU on 4 KiB storage.
    pub lbppbe: u8,
    /// A volatile write cache sits in front of the medium: SYNCHRONIZE CACHE
    /// becomes a flush and FUA matters.
    pub write_cache: bool,
    /// The write cache is enabled (Caching page WCE); only meaningful with
    /// [`LogicalUnit::write_cache`].
    pub write_cache_enabled: bool,
    /// Thin provisioned: UNMAP and WRITE SAME with UNMAP are supported and
    /// unmapped blocks read back as zeros (LBPME, LBPRZ).
    pub thin: bool,
    /// Writes are refused with WRITE PROTECTED.
    pub read_only: bool,
    /// Optimal transfer length in blocks (0: not reported).
    pub optimal_transfer_blocks: u32,
    /// Largest READ/WRITE/VERIFY transfer in blocks; larger ones fail with
    /// INVALID FIELD IN CDB.
    pub max_transfer_blocks: u32,
    /// Largest total block count in one UNMAP (thin only).
    pub max_unmap_blocks: u32,
    /// Largest number of descriptors in one UNMAP (thin only).
    pub max_unmap_descriptors: u32,
    /// Largest WRITE SAME in blocks.
    pub max_write_same_blocks: u64,
    /// Largest COMPARE AND WRITE in blocks (0 disables the command).
    pub max_compare_write_blocks: u8,
    /// Product identification (up to 16 ASCII bytes).
    pub product: String,
    /// Product revision level (up to 4 ASCII bytes).
    pub revision: String,
    /// Unit serial number (VPD 80h, T10 designator), printable ASCII.
    pub serial: String,
    /// 16-byte identifier: an NAA IEEE Registered Extended name when its
    /// first nibble is 6, otherwise reported as an EUI-64 based 16-byte
    /// designator (VPD 83h).
    pub device_id: [u8; 16],
    /// A version descriptor for the transport in standard INQUIRY (iSCSI is
    /// 0960h), or 0 for none: kept here so this crate names no transport.
    pub transport_version: u16,
}

impl LogicalUnit {
    /// A writable, thick LU with a write-back cache and default limits.
    pub fn new(block_size: u32, num_blocks: u64, serial: &str, device_id: [u8; 16]) -> LogicalUnit {
        LogicalUnit {
            block_size,
            num_blocks,
            lbppbe: 0,
            write_cache: true,
            write_cache_enabled: true,
            thin: false,
            read_only: false,
            optimal_transfer_blocks: 0,
            max_transfer_blocks: DEFAULT_MAX_TRANSFER_BLOCKS,
            max_unmap_blocks: DEFAULT_MAX_UNMAP_BLOCKS,
            max_unmap_descriptors: DEFAULT_MAX_UNMAP_DESCRIPTORS,
            max_write_same_blocks: DEFAULT_MAX_WRITE_SAME_BLOCKS,
            max_compare_write_blocks: DEFAULT_MAX_COMPARE_WRITE_BLOCKS,
            product: DEFAULT_PRODUCT.to_string(),
            revision: DEFAULT_REVISION.to_string(),
            serial: serial.to_string(),
            device_id,
            transport_version: 0,
        }
    }

    /// Checks sizes, limits and identification strings.
    pub fn validate(&self) -> Result<(), LuError> {
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(LuError::BlockSize(self.block_size));
        }
        if self.num_blocks == 0 {
            return Err(LuError::Empty);
        }
        if self.num_blocks.checked_mul(u64::from(self.block_size)).is_none() {
            return Err(LuError::TooLarge);
        }
        if self.lbppbe > 15 {
            return Err(LuError::PhysicalExponent(self.lbppbe));
        }
        ascii("product", &self.product, 16, false)?;
        ascii("revision", &self.revision, 4, false)?;
        ascii("serial", &self.serial, MAX_SERIAL_LEN, true)?;
        if self.device_id.iter().all(|&b| b == 0) {
            return Err(LuError::DeviceId);
        }
        if self.max_transfer_blocks == 0 {
            return Err(LuError::ZeroLimit("max_transfer_blocks"));
        }
        if self.max_write_same_blocks == 0 {
            return Err(LuError::ZeroLimit("max_write_same_blocks"));
        }
        if self.thin && self.max_unmap_blocks == 0 {
            return Err(LuError::ZeroLimit("max_unmap_blocks"));
        }
        if self.thin && self.max_unmap_descriptors == 0 {
            return Err(LuError::ZeroLimit("max_unmap_descriptors"));
        }
        Ok(())
    }

    /// Capacity in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.num_blocks.saturating_mul(u64::from(self.block_size))
    }

    /// The write cache as the host sees it (Caching page WCE).
    pub fn wce(&self) -> bool {
        self.write_cache && self.write_cache_enabled
    }

    /// Checks `lba .. lba + blocks` lies on the medium (a zero-length range
    /// may start right after the last block, as SBC-3 allows).
    pub(crate) fn in_range(&self, lba: u64, blocks: u64) -> bool {
        lba.checked_add(blocks).is_some_and(|end| end <= self.num_blocks)
    }
}

/// SPC-4 4.4.1: ASCII data fields hold 20h..7Eh only.
fn ascii(field: &'static str, s: &str, max: usize, need_one: bool) -> Result<(), LuError> {
    let ok = s.len() <= max && (!need_one || !s.is_empty()) && s.bytes().all(|c| (0x20..=0x7E).contains(&c));
    if ok { Ok(()) } else { Err(LuError::Ascii { field, max }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lu() -> LogicalUnit {
        LogicalUnit::new(512, 1000, "SER1", [0x60; 16])
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(lu().validate(), Ok(()));
        assert!(lu().wce());
        assert_eq!(lu().size_bytes(), 512_000);
    }

    #[test]
    fn rejects_bad_descriptions() {
        let mut l = lu();
        l.block_size = 520;
        assert_eq!(l.validate(), Err(LuError::BlockSize(520)));
        let mut l = lu();
        l.num_blocks = 0;
        assert_eq!(l.validate(), Err(LuError::Empty));
        let mut l = lu();
        l.num_blocks = u64::MAX / 256;
        assert_eq!(l.validate(), Err(LuError::TooLarge));
        let mut l = lu();
        l.product = "seventeen chars!!".into();
        assert!(matches!(l.validate(), Err(LuError::Ascii { field: "product", .. })));
        let mut l = lu();
        l.serial = "tab\there".into();
        assert!(matches!(l.validate(), Err(LuError::Ascii { field: "serial", .. })));
        let mut l = lu();
        l.serial.clear();
        assert!(l.validate().is_err());
        let mut l = lu();
        l.thin = true;
        l.max_unmap_descriptors = 0;
        assert_eq!(l.validate(), Err(LuError::ZeroLimit("max_unmap_descriptors")));
        let mut l = lu();
        l.device_id = [0; 16];
        assert_eq!(l.validate(), Err(LuError::DeviceId));
        let mut l = lu();
        l.lbppbe = 16;
        assert_eq!(l.validate(), Err(LuError::PhysicalExponent(16)));
    }

    #[test]
    fn range_checks_do_not_overflow() {
        let l = lu();
        assert!(l.in_range(0, 1000));
        assert!(l.in_range(1000, 0));
        assert!(!l.in_range(1001, 0));
        assert!(!l.in_range(999, 2));
        assert!(!l.in_range(u64::MAX, 2));
    }
}
