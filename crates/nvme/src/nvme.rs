//! NVMe queue entries carried inside capsules: the 64-byte submission queue
//! entry ([`Sqe`]), its data pointer as an SGL descriptor ([`SglDescriptor`]),
//! the 16-byte completion queue entry ([`Cqe`]), opcodes and status codes.
//!
//! Owns byte layouts only; what a command means is the target's business.

use crate::Truncated;
use crate::wire::{put_u8, put_u16, put_u32, put_u64, u8_at, u16_at, u32_at, u64_at, zero};

/// Size of a submission queue entry.
pub const SQE_LEN: usize = 64;
/// Size of a completion queue entry.
pub const CQE_LEN: usize = 16;
/// Size of an SGL descriptor.
pub const SGL_DESC_LEN: usize = 16;

/// SQE flags: PRP/SGL for Data Transfer (PSDT), bits 7:6 of the flags byte.
pub const PSDT_MASK: u8 = 0xC0;
/// PSDT value "PRPs are used" (never valid over fabrics).
pub const PSDT_PRP: u8 = 0x00;
/// PSDT value "SGLs, MPTR is a contiguous buffer": the one fabrics use.
pub const PSDT_SGL_MPTR_CONTIG: u8 = 0x40;
/// PSDT value "SGLs, MPTR is an SGL segment".
pub const PSDT_SGL_MPTR_SGL: u8 = 0x80;
/// SQE flags: fused operation, bits 1:0.
pub const FUSE_MASK: u8 = 0x03;

/// Command opcodes.
pub mod opcode {
    /// Fabrics command (all queues); the command type is in [`super::Sqe::fctype`].
    pub const FABRICS: u8 = 0x7F;
    /// Admin: Get Log Page.
    pub const ADMIN_GET_LOG_PAGE: u8 = 0x02;
    /// Admin: Identify.
    pub const ADMIN_IDENTIFY: u8 = 0x06;
    /// Admin: Abort.
    pub const ADMIN_ABORT: u8 = 0x08;
    /// Admin: Set Features.
    pub const ADMIN_SET_FEATURES: u8 = 0x09;
    /// Admin: Get Features.
    pub const ADMIN_GET_FEATURES: u8 = 0x0A;
    /// Admin: Asynchronous Event Request.
    pub const ADMIN_ASYNC_EVENT: u8 = 0x0C;
    /// Admin: Keep Alive.
    pub const ADMIN_KEEP_ALIVE: u8 = 0x18;
    /// NVM I/O: Flush.
    pub const IO_FLUSH: u8 = 0x00;
    /// NVM I/O: Write.
    pub const IO_WRITE: u8 = 0x01;
    /// NVM I/O: Read.
    pub const IO_READ: u8 = 0x02;
    /// NVM I/O: Write Zeroes.
    pub const IO_WRITE_ZEROES: u8 = 0x08;
    /// NVM I/O: Dataset Management.
    pub const IO_DSM: u8 = 0x09;
}

/// Fabrics command types (SQE byte 4 when opcode is [`opcode::FABRICS`]).
pub mod fctype {
    /// Property Set.
    pub const PROPERTY_SET: u8 = 0x00;
    /// Connect.
    pub const CONNECT: u8 = 0x01;
    /// Property Get.
    pub const PROPERTY_GET: u8 = 0x04;
    /// Authentication Send.
    pub const AUTH_SEND: u8 = 0x05;
    /// Authentication Receive.
    pub const AUTH_RECV: u8 = 0x06;
    /// Disconnect.
    pub const DISCONNECT: u8 = 0x08;
}

/// SGL descriptor types (high nibble of the identifier byte).
pub mod sgl {
    /// Data Block descriptor.
    pub const TYPE_DATA_BLOCK: u8 = 0x0;
    /// Bit Bucket descriptor.
    pub const TYPE_BIT_BUCKET: u8 = 0x1;
    /// Segment descriptor.
    pub const TYPE_SEGMENT: u8 = 0x2;
    /// Last Segment descriptor.
    pub const TYPE_LAST_SEGMENT: u8 = 0x3;
    /// Keyed Data Block descriptor (RDMA).
    pub const TYPE_KEYED_DATA_BLOCK: u8 = 0x4;
    /// Transport SGL Data Block descriptor.
    pub const TYPE_TRANSPORT_DATA_BLOCK: u8 = 0x5;
    /// Subtype: address is a memory address.
    pub const SUBTYPE_ADDRESS: u8 = 0x0;
    /// Subtype: address is an offset (in-capsule data).
    pub const SUBTYPE_OFFSET: u8 = 0x1;
    /// Subtype: transport specific (NVMe/TCP uses 0xA).
    pub const SUBTYPE_TRANSPORT: u8 = 0xA;
    /// Identifier byte for in-capsule data: Data Block, Offset.
    pub const ID_IN_CAPSULE: u8 = (TYPE_DATA_BLOCK << 4) | SUBTYPE_OFFSET;
    /// Identifier byte for data moved by H2CData/C2HData PDUs: Transport Data Block.
    pub const ID_TRANSPORT: u8 = (TYPE_TRANSPORT_DATA_BLOCK << 4) | SUBTYPE_TRANSPORT;
}

/// An SGL descriptor in the SQE data pointer (unkeyed form: address, length, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SglDescriptor {
    /// Address, or offset into in-capsule data for the Offset subtype.
    pub address: u64,
    /// Length in bytes.
    pub length: u32,
    /// Identifier byte: type in bits 7:4, subtype in bits 3:0.
    pub id: u8,
}

impl SglDescriptor {
    /// Descriptor for `length` bytes of in-capsule data at `offset` (from ICDOFF).
    #[inline]
    pub const fn in_capsule(offset: u64, length: u32) -> Self {
        Self { address: offset, length, id: sgl::ID_IN_CAPSULE }
    }

    /// Descriptor for `length` bytes transferred with H2CData/C2HData PDUs.
    #[inline]
    pub const fn transport(length: u32) -> Self {
        Self { address: 0, length, id: sgl::ID_TRANSPORT }
    }

    /// Descriptor type (bits 7:4 of the identifier).
    #[inline]
    pub const fn desc_type(&self) -> u8 {
        self.id >> 4
    }

    /// Descriptor subtype (bits 3:0 of the identifier).
    #[inline]
    pub const fn subtype(&self) -> u8 {
        self.id & 0x0F
    }

    /// Whether the data is in the capsule.
    #[inline]
    pub const fn is_in_capsule(&self) -> bool {
        self.id == sgl::ID_IN_CAPSULE
    }

    /// Whether the data moves in H2CData/C2HData PDUs.
    #[inline]
    pub const fn is_transport(&self) -> bool {
        self.id == sgl::ID_TRANSPORT
    }

    /// Writes the 16-byte descriptor (reserved bytes zeroed).
    #[inline]
    pub fn encode(&self, out: &mut [u8; SGL_DESC_LEN]) {
        put_u64(out, 0, self.address);
        put_u32(out, 8, self.length);
        zero(out, 12, 15);
        put_u8(out, 15, self.id);
    }

    /// Reads a 16-byte descriptor (reserved bytes ignored).
    #[inline]
    pub fn decode(b: &[u8; SGL_DESC_LEN]) -> Self {
        Self { address: u64_at(b, 0), length: u32_at(b, 8), id: u8_at(b, 15) }
    }
}

/// A 64-byte NVMe submission queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sqe {
    /// Opcode.
    pub opcode: u8,
    /// Flags: FUSE (bits 1:0) and PSDT (bits 7:6).
    pub flags: u8,
    /// Command identifier.
    pub cid: u16,
    /// Namespace ID; for fabrics commands the low byte is FCTYPE.
    pub nsid: u32,
    /// Command dword 2.
    pub cdw2: u32,
    /// Command dword 3.
    pub cdw3: u32,
    /// Metadata pointer (dwords 4-5).
    pub mptr: u64,
    /// Data pointer (dwords 6-9) as an SGL descriptor.
    pub dptr: SglDescriptor,
    /// Command dword 10.
    pub cdw10: u32,
    /// Command dword 11.
    pub cdw11: u32,
    /// Command dword 12.
    pub cdw12: u32,
    /// Command dword 13.
    pub cdw13: u32,
    /// Command dword 14.
    pub cdw14: u32,
    /// Command dword 15.
    pub cdw15: u32,
}

impl Sqe {
    /// PSDT bits of the flags byte (compare with the `PSDT_*` constants).
    #[inline]
    pub const fn psdt(&self) -> u8 {
        self.flags & PSDT_MASK
    }

    /// Fabrics command type (byte 4); meaningful when opcode is [`opcode::FABRICS`].
    #[inline]
    pub const fn fctype(&self) -> u8 {
        self.nsid.to_le_bytes()[0]
    }

    /// Writes the 64-byte entry.
    #[inline]
    pub fn encode(&self, out: &mut [u8; SQE_LEN]) {
        put_u8(out, 0, self.opcode);
        put_u8(out, 1, self.flags);
        put_u16(out, 2, self.cid);
        put_u32(out, 4, self.nsid);
        put_u32(out, 8, self.cdw2);
        put_u32(out, 12, self.cdw3);
        put_u64(out, 16, self.mptr);
        let mut d = [0u8; SGL_DESC_LEN];
        self.dptr.encode(&mut d);
        crate::wire::put(out, 24, &d);
        for (i, v) in [self.cdw10, self.cdw11, self.cdw12, self.cdw13, self.cdw14, self.cdw15].into_iter().enumerate() {
            put_u32(out, 40 + 4 * i, v);
        }
    }

    /// Reads a 64-byte entry.
    #[inline]
    pub fn decode(b: &[u8; SQE_LEN]) -> Self {
        let mut d = [0u8; SGL_DESC_LEN];
        if let Some(src) = b.get(24..40) {
            d.copy_from_slice(src);
        }
        Self {
            opcode: u8_at(b, 0),
            flags: u8_at(b, 1),
            cid: u16_at(b, 2),
            nsid: u32_at(b, 4),
            cdw2: u32_at(b, 8),
            cdw3: u32_at(b, 12),
            mptr: u64_at(b, 16),
            dptr: SglDescriptor::decode(&d),
            cdw10: u32_at(b, 40),
            cdw11: u32_at(b, 44),
            cdw12: u32_at(b, 48),
            cdw13: u32_at(b, 52),
            cdw14: u32_at(b, 56),
            cdw15: u32_at(b, 60),
        }
    }

    /// Reads an entry from the front of a slice.
    #[inline]
    pub fn decode_slice(b: &[u8]) -> Result<Self, Truncated> {
        b.first_chunk::<SQE_LEN>().map(Self::decode).ok_or(Truncated { need: SQE_LEN, have: b.len() })
    }
}

/// A completion status: Status Code Type and Status Code, without the
/// phase/CRD/More/DNR bits. Packed as `sct << 8 | sc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u16);

impl Status {
    /// Builds a status from its type and code.
    #[inline]
    pub const fn new(sct: u8, sc: u8) -> Self {
        Self((((sct & 0x7) as u16) << 8) | sc as u16)
    }

    /// Status Code Type (3 bits).
    #[inline]
    pub const fn sct(self) -> u8 {
        ((self.0 >> 8) & 0x7) as u8
    }

    /// Status Code.
    #[inline]
    pub const fn sc(self) -> u8 {
        (self.0 & 0xFF) as u8
    }

    /// Whether this is successful completion.
    #[inline]
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

/// Status codes the target needs.
pub mod status {
    use super::Status;

    /// Status Code Type: generic command status.
    pub const SCT_GENERIC: u8 = 0x0;
    /// Status Code Type: command specific status.
    pub const SCT_COMMAND_SPECIFIC: u8 = 0x1;
    /// Status Code Type: media and data integrity errors.
    pub const SCT_MEDIA: u8 = 0x2;
    /// Status Code Type: path related status.
    pub const SCT_PATH: u8 = 0x3;

    /// Successful completion.
    pub const SUCCESS: Status = Status::new(SCT_GENERIC, 0x00);
    /// Invalid command opcode.
    pub const INVALID_OPCODE: Status = Status::new(SCT_GENERIC, 0x01);
    /// Invalid field in command.
    pub const INVALID_FIELD: Status = Status::new(SCT_GENERIC, 0x02);
    /// Command ID conflict.
    pub const COMMAND_ID_CONFLICT: Status = Status::new(SCT_GENERIC, 0x03);
    /// Data transfer error.
    pub const DATA_TRANSFER_ERROR: Status = Status::new(SCT_GENERIC, 0x04);
    /// Internal error.
    pub const INTERNAL_ERROR: Status = Status::new(SCT_GENERIC, 0x06);
    /// Command abort requested.
    pub const ABORT_REQUESTED: Status = Status::new(SCT_GENERIC, 0x07);
    /// Command aborted due to SQ deletion.
    pub const ABORTED_SQ_DELETION: Status = Status::new(SCT_GENERIC, 0x08);
    /// Invalid namespace or format.
    pub const INVALID_NAMESPACE: Status = Status::new(SCT_GENERIC, 0x0B);
    /// Command sequence error.
    pub const COMMAND_SEQUENCE_ERROR: Status = Status::new(SCT_GENERIC, 0x0C);
    /// Invalid SGL segment descriptor.
    pub const SGL_INVALID_SEGMENT: Status = Status::new(SCT_GENERIC, 0x0D);
    /// Invalid number of SGL descriptors.
    pub const SGL_INVALID_COUNT: Status = Status::new(SCT_GENERIC, 0x0E);
    /// Data SGL length invalid (SGL data block invalid).
    pub const SGL_DATA_LENGTH_INVALID: Status = Status::new(SCT_GENERIC, 0x0F);
    /// Metadata SGL length invalid.
    pub const SGL_METADATA_LENGTH_INVALID: Status = Status::new(SCT_GENERIC, 0x10);
    /// SGL descriptor type invalid.
    pub const SGL_DESCRIPTOR_TYPE_INVALID: Status = Status::new(SCT_GENERIC, 0x11);
    /// SGL offset invalid.
    pub const SGL_OFFSET_INVALID: Status = Status::new(SCT_GENERIC, 0x16);
    /// SGL descriptor subtype invalid.
    pub const SGL_SUBTYPE_INVALID: Status = Status::new(SCT_GENERIC, 0x17);
    /// Keep alive timer expired.
    pub const KEEP_ALIVE_EXPIRED: Status = Status::new(SCT_GENERIC, 0x19);
    /// Transient transport error (e.g. a data digest mismatch).
    pub const TRANSIENT_TRANSPORT_ERROR: Status = Status::new(SCT_GENERIC, 0x22);
    /// NVM command set: LBA out of range.
    pub const LBA_OUT_OF_RANGE: Status = Status::new(SCT_GENERIC, 0x80);
    /// NVM command set: capacity exceeded.
    pub const CAPACITY_EXCEEDED: Status = Status::new(SCT_GENERIC, 0x81);
    /// NVM command set: namespace not ready.
    pub const NAMESPACE_NOT_READY: Status = Status::new(SCT_GENERIC, 0x82);

    /// Command specific: invalid queue identifier.
    pub const INVALID_QUEUE_ID: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x01);
    /// Command specific: invalid queue size.
    pub const INVALID_QUEUE_SIZE: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x02);
    /// Fabrics Connect: incompatible format.
    pub const CONNECT_INCOMPATIBLE_FORMAT: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x80);
    /// Fabrics Connect: controller busy.
    pub const CONNECT_CONTROLLER_BUSY: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x81);
    /// Fabrics Connect: invalid parameters.
    pub const CONNECT_INVALID_PARAMETERS: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x82);
    /// Fabrics Connect: restart discovery.
    pub const CONNECT_RESTART_DISCOVERY: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x83);
    /// Fabrics Connect: invalid host.
    pub const CONNECT_INVALID_HOST: Status = Status::new(SCT_COMMAND_SPECIFIC, 0x84);
}

/// CQE status field: phase tag bit.
pub const CQE_STATUS_PHASE: u16 = 1 << 0;
/// CQE status field: More bit.
pub const CQE_STATUS_MORE: u16 = 1 << 14;
/// CQE status field: Do Not Retry bit.
pub const CQE_STATUS_DNR: u16 = 1 << 15;

/// A 16-byte NVMe completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cqe {
    /// Command specific dword 0.
    pub dw0: u32,
    /// Command specific dword 1.
    pub dw1: u32,
    /// Submission queue head pointer.
    pub sqhd: u16,
    /// Submission queue identifier.
    pub sqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Raw status field: phase (bit 0), SC (8:1), SCT (11:9), CRD (13:12),
    /// More (14), DNR (15).
    pub status: u16,
}

impl Cqe {
    /// Packs a status into the raw CQE status field.
    #[inline]
    pub const fn status_field(status: Status, dnr: bool, phase: bool) -> u16 {
        ((status.0 & 0x7FF) << 1) | if dnr { CQE_STATUS_DNR } else { 0 } | if phase { CQE_STATUS_PHASE } else { 0 }
    }

    /// The status without phase/CRD/More/DNR.
    #[inline]
    pub const fn status(&self) -> Status {
        Status((self.status >> 1) & 0x7FF)
    }

    /// Phase tag.
    #[inline]
    pub const fn phase(&self) -> bool {
        self.status & CQE_STATUS_PHASE != 0
    }

    /// Do Not Retry.
    #[inline]
    pub const fn dnr(&self) -> bool {
        self.status & CQE_STATUS_DNR != 0
    }

    /// Writes the 16-byte entry.
    #[inline]
    pub fn encode(&self, out: &mut [u8; CQE_LEN]) {
        put_u32(out, 0, self.dw0);
        put_u32(out, 4, self.dw1);
        put_u16(out, 8, self.sqhd);
        put_u16(out, 10, self.sqid);
        put_u16(out, 12, self.cid);
        put_u16(out, 14, self.status);
    }

    /// Reads a 16-byte entry.
    #[inline]
    pub fn decode(b: &[u8; CQE_LEN]) -> Self {
        Self {
            dw0: u32_at(b, 0),
            dw1: u32_at(b, 4),
            sqhd: u16_at(b, 8),
            sqid: u16_at(b, 10),
            cid: u16_at(b, 12),
            status: u16_at(b, 14),
        }
    }

    /// Reads an entry from the front of a slice.
    #[inline]
    pub fn decode_slice(b: &[u8]) -> Result<Self, Truncated> {
        b.first_chunk::<CQE_LEN>().map(Self::decode).ok_or(Truncated { need: CQE_LEN, have: b.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_layout_by_hand() {
        // A Read of 8 blocks at LBA 0x1000 via a transport SGL of 4 KiB.
        let sqe = Sqe {
            opcode: opcode::IO_READ,
            flags: PSDT_SGL_MPTR_CONTIG,
            cid: 0x1234,
            nsid: 1,
            dptr: SglDescriptor::transport(4096),
            cdw10: 0x1000,
            cdw12: 7,
            ..Sqe::default()
        };
        let mut b = [0u8; SQE_LEN];
        sqe.encode(&mut b);
        let mut want = [0u8; SQE_LEN];
        want[0] = 0x02;
        want[1] = 0x40;
        want[2..4].copy_from_slice(&[0x34, 0x12]);
        want[4] = 1;
        want[32..36].copy_from_slice(&4096u32.to_le_bytes());
        want[39] = 0x5A;
        want[40..44].copy_from_slice(&[0x00, 0x10, 0, 0]);
        want[48] = 7;
        assert_eq!(b, want);
        assert_eq!(Sqe::decode(&b), sqe);
        assert_eq!(sqe.psdt(), PSDT_SGL_MPTR_CONTIG);
        assert!(sqe.dptr.is_transport());
        assert_eq!(sqe.dptr.desc_type(), sgl::TYPE_TRANSPORT_DATA_BLOCK);
        assert_eq!(sqe.dptr.subtype(), sgl::SUBTYPE_TRANSPORT);
    }

    #[test]
    fn fabrics_fctype_is_byte_4() {
        let mut b = [0u8; SQE_LEN];
        b[0] = opcode::FABRICS;
        b[4] = fctype::CONNECT;
        b[39] = sgl::ID_IN_CAPSULE;
        let sqe = Sqe::decode(&b);
        assert_eq!(sqe.fctype(), fctype::CONNECT);
        assert!(sqe.dptr.is_in_capsule());
    }

    #[test]
    fn cqe_layout_and_status_bits() {
        let cqe = Cqe {
            dw0: 0xAABB_CCDD,
            dw1: 0,
            sqhd: 5,
            sqid: 1,
            cid: 0x0102,
            status: Cqe::status_field(status::CONNECT_INVALID_HOST, true, true),
        };
        let mut b = [0u8; CQE_LEN];
        cqe.encode(&mut b);
        // SCT 1, SC 0x84 -> (0x184 << 1) | DNR | P = 0x8309.
        assert_eq!(b, [0xDD, 0xCC, 0xBB, 0xAA, 0, 0, 0, 0, 5, 0, 1, 0, 0x02, 0x01, 0x09, 0x83]);
        let back = Cqe::decode(&b);
        assert_eq!(back, cqe);
        assert_eq!(back.status(), status::CONNECT_INVALID_HOST);
        assert_eq!(back.status().sct(), status::SCT_COMMAND_SPECIFIC);
        assert_eq!(back.status().sc(), 0x84);
        assert!(back.phase() && back.dnr());
        assert!(matches!(Cqe::decode_slice(&b[..15]), Err(Truncated { need: 16, have: 15 })));
    }
}
