//! PDU headers: the 8-byte common header, the typed PDU-specific headers of
//! every NVMe/TCP PDU type, their wire layout ([`Layout`]), header
//! validation against the negotiated connection parameters ([`HeaderCheck`]),
//! and allocation-free encoding into caller buffers.
//!
//! Owns the header bytes only. PDU data never passes through this module on
//! the receive side (see [`crate::decoder`]); on the send side the caller
//! writes the header prefix returned by [`Pdu::encode_header`], then its data,
//! then the data digest.

use crate::digest::{DIGEST_LEN, header_digest};
use crate::error::{Error, Fes};
use ff_nvme::nvme::{CQE_LEN, Cqe, SQE_LEN, Sqe};
use ff_nvme::wire::{put, put_u8, put_u16, put_u32, u8_at, u16_at, u32_at, zero};

/// Length of the common header.
pub const CH_LEN: usize = 8;
/// Largest header length of any PDU type (ICReq/ICResp).
pub const MAX_HLEN: usize = 128;
/// Upper bound of header + header digest + padding (PDO is one byte).
pub const MAX_PREFIX_LEN: usize = 256;
/// Largest data carried by a TermReq (the offending PDU header).
pub const MAX_TERM_DATA_LEN: usize = 128;
/// Protocol format version 1.0 (ICReq/ICResp PFV).
pub const PFV_1_0: u16 = 0;
/// Largest valid HPDA/CPDA value.
pub const MAX_PDA: u8 = 31;
/// Smallest MAXH2CDATA a controller may announce.
pub const MIN_MAXH2CDATA: u32 = 4096;

/// Byte offsets of common-header fields, used as FEI.
pub mod offset {
    /// PDU-type.
    pub const TYPE: u32 = 0;
    /// FLAGS.
    pub const FLAGS: u32 = 1;
    /// HLEN.
    pub const HLEN: u32 = 2;
    /// PDO.
    pub const PDO: u32 = 3;
    /// PLEN.
    pub const PLEN: u32 = 4;
    /// ICReq/ICResp PFV.
    pub const PFV: u32 = 8;
    /// ICReq HPDA / ICResp CPDA.
    pub const PDA: u32 = 10;
    /// ICReq/ICResp DGST.
    pub const DGST: u32 = 11;
    /// ICResp MAXH2CDATA.
    pub const MAXH2CDATA: u32 = 12;
    /// H2CData/C2HData DATAL, R2T R2TL.
    pub const DATAL: u32 = 16;
}

/// PDU type (common header byte 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PduType {
    /// Initialize Connection Request (host to controller).
    IcReq = 0x00,
    /// Initialize Connection Response (controller to host).
    IcResp = 0x01,
    /// Host to Controller Terminate Connection Request.
    H2CTermReq = 0x02,
    /// Controller to Host Terminate Connection Request.
    C2HTermReq = 0x03,
    /// Command capsule (host to controller).
    CapsuleCmd = 0x04,
    /// Response capsule (controller to host).
    CapsuleResp = 0x05,
    /// Host to Controller Data.
    H2CData = 0x06,
    /// Controller to Host Data.
    C2HData = 0x07,
    /// Ready to Transfer (controller to host).
    R2T = 0x09,
}

impl PduType {
    /// Parses the type byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x00 => Self::IcReq,
            0x01 => Self::IcResp,
            0x02 => Self::H2CTermReq,
            0x03 => Self::C2HTermReq,
            0x04 => Self::CapsuleCmd,
            0x05 => Self::CapsuleResp,
            0x06 => Self::H2CData,
            0x07 => Self::C2HData,
            0x09 => Self::R2T,
            _ => return None,
        })
    }

    /// The HLEN every PDU of this type must carry.
    pub const fn hlen(self) -> u8 {
        match self {
            Self::IcReq | Self::IcResp => 128,
            Self::CapsuleCmd => (CH_LEN + SQE_LEN) as u8,
            Self::CapsuleResp => (CH_LEN + CQE_LEN) as u8,
            Self::H2CTermReq | Self::C2HTermReq | Self::H2CData | Self::C2HData | Self::R2T => 24,
        }
    }

    /// Whether the host sends this type (otherwise the controller does).
    pub const fn is_host_to_controller(self) -> bool {
        matches!(self, Self::IcReq | Self::H2CTermReq | Self::CapsuleCmd | Self::H2CData)
    }

    /// Whether PDUs of this type carry a header digest when one is negotiated.
    pub const fn has_header_digest(self) -> bool {
        !matches!(self, Self::IcReq | Self::IcResp | Self::H2CTermReq | Self::C2HTermReq)
    }

    /// Whether data of this type is located by PDO and covered by a data digest.
    pub const fn has_digested_data(self) -> bool {
        matches!(self, Self::CapsuleCmd | Self::H2CData | Self::C2HData)
    }

    /// Whether data of this type is mandatory (data transfer PDUs).
    pub const fn requires_data(self) -> bool {
        matches!(self, Self::H2CData | Self::C2HData)
    }

    /// Flag bits other than the digest flags that this type defines.
    const fn extra_flags(self) -> u8 {
        match self {
            Self::H2CData => Flags::LAST_PDU,
            Self::C2HData => Flags::LAST_PDU | Flags::SUCCESS,
            _ => 0,
        }
    }
}

/// Common header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// A header digest follows the PDU header.
    pub const HDGSTF: u8 = 0x01;
    /// A data digest follows the PDU data.
    pub const DDGSTF: u8 = 0x02;
    /// Last data PDU of a transfer (H2CData, C2HData).
    pub const LAST_PDU: u8 = 0x04;
    /// Command completed successfully; no CapsuleResp follows (C2HData, with LAST_PDU).
    pub const SUCCESS: u8 = 0x08;

    /// Whether all bits in `mask` are set.
    pub const fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// The 8-byte common header, undecoded beyond byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommonHeader {
    /// PDU type byte (may be unknown).
    pub pdu_type: u8,
    /// Flags.
    pub flags: Flags,
    /// Header length (common + PDU specific header, without digest).
    pub hlen: u8,
    /// PDU data offset: where data starts, 0 if no data.
    pub pdo: u8,
    /// Total PDU length including digests and padding.
    pub plen: u32,
}

impl CommonHeader {
    /// Reads the common header.
    pub fn decode(b: &[u8; CH_LEN]) -> Self {
        Self {
            pdu_type: u8_at(b, 0),
            flags: Flags(u8_at(b, 1)),
            hlen: u8_at(b, 2),
            pdo: u8_at(b, 3),
            plen: u32_at(b, 4),
        }
    }

    /// Writes the common header.
    pub fn encode(&self, out: &mut [u8; CH_LEN]) {
        put_u8(out, 0, self.pdu_type);
        put_u8(out, 1, self.flags.0);
        put_u8(out, 2, self.hlen);
        put_u8(out, 3, self.pdo);
        put_u32(out, 4, self.plen);
    }

    /// Validates the common header of a received PDU and computes its layout.
    ///
    /// Checks, in order: known type, exact HLEN, flags against the negotiated
    /// digests, PDO (0 or past header + digest and aligned), PLEN, and the
    /// data cap. Errors name the offending field's offset as FEI.
    pub fn validate(&self, chk: &HeaderCheck) -> Result<Layout, Error> {
        let ty = PduType::from_u8(self.pdu_type).ok_or(Error::fatal(
            Fes::InvalidHeaderField,
            offset::TYPE,
            "unknown PDU type",
        ))?;
        if self.hlen != ty.hlen() {
            return Err(Error::fatal(Fes::InvalidHeaderField, offset::HLEN, "wrong HLEN for PDU type"));
        }
        let flags = self.flags.0;
        let hdgst = ty.has_header_digest() && chk.hdgst;
        if flags & Flags::HDGSTF != 0 && !hdgst {
            return Err(bad_flags("HDGSTF set but header digest not in use"));
        }
        if flags & Flags::HDGSTF == 0 && hdgst {
            return Err(bad_flags("HDGSTF clear but header digest negotiated"));
        }
        if flags & Flags::DDGSTF != 0 && !(ty.has_digested_data() && chk.ddgst) {
            return Err(bad_flags("DDGSTF set but data digest not in use"));
        }
        if flags & Flags::SUCCESS != 0 && ty.extra_flags() & Flags::SUCCESS != 0 && flags & Flags::LAST_PDU == 0 {
            return Err(bad_flags("SUCCESS without LAST_PDU"));
        }
        let header_len = u32::from(self.hlen) + if hdgst { DIGEST_LEN as u32 } else { 0 };
        let plen_err = |reason| Error::fatal(Fes::InvalidHeaderField, offset::PLEN, reason);
        match ty {
            PduType::IcReq | PduType::IcResp => {
                if self.plen != header_len {
                    return Err(plen_err("PLEN must equal HLEN for ICReq/ICResp"));
                }
                Ok(Layout::no_data(self.hlen, false))
            }
            PduType::H2CTermReq | PduType::C2HTermReq => {
                // Data (the offending header) follows the header directly; PDO is reserved.
                let data_len = self.plen.checked_sub(header_len).ok_or(plen_err("PLEN shorter than HLEN"))?;
                if data_len > MAX_TERM_DATA_LEN as u32 {
                    return Err(plen_err("TermReq PLEN above 152"));
                }
                Ok(Layout { hlen: self.hlen, hdgst: false, pad: 0, data_len, ddgst: false })
            }
            PduType::CapsuleResp | PduType::R2T => {
                if self.plen != header_len {
                    return Err(plen_err("PLEN must equal HLEN (+ header digest)"));
                }
                Ok(Layout::no_data(self.hlen, hdgst))
            }
            PduType::CapsuleCmd | PduType::H2CData | PduType::C2HData => {
                if self.pdo == 0 {
                    if ty.requires_data() {
                        return Err(Error::fatal(Fes::InvalidHeaderField, offset::PDO, "data PDU without PDO"));
                    }
                    if self.plen != header_len {
                        return Err(Error::fatal(
                            Fes::InvalidHeaderField,
                            offset::PDO,
                            "PDO is 0 but PLEN says data follows",
                        ));
                    }
                    return Ok(Layout::no_data(self.hlen, hdgst));
                }
                let pdo = u32::from(self.pdo);
                if pdo < header_len || !pdo.is_multiple_of(chk.alignment()) {
                    return Err(Error::fatal(
                        Fes::InvalidHeaderField,
                        offset::PDO,
                        "PDO overlaps header or is misaligned",
                    ));
                }
                let ddgst = chk.ddgst;
                if ddgst && flags & Flags::DDGSTF == 0 {
                    return Err(bad_flags("DDGSTF clear but data digest negotiated"));
                }
                let tail = pdo + if ddgst { DIGEST_LEN as u32 } else { 0 };
                let data_len = self.plen.checked_sub(tail).ok_or(plen_err("PLEN shorter than PDO + digest"))?;
                if data_len == 0 {
                    return Err(plen_err("PDO set but no data"));
                }
                if data_len > chk.max_data_len {
                    return Err(Error::fatal(
                        Fes::DataTransferLimitExceeded,
                        offset::PLEN,
                        "PDU data above the negotiated limit",
                    ));
                }
                // pdo >= header_len was checked and pdo fits in u8.
                let pad = u8::try_from(pdo - header_len).unwrap_or(0);
                Ok(Layout { hlen: self.hlen, hdgst, pad, data_len, ddgst })
            }
        }
    }
}

fn bad_flags(reason: &'static str) -> Error {
    Error::fatal(Fes::InvalidHeaderField, offset::FLAGS, reason)
}

/// Parameters a received header is validated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderCheck {
    /// Header digest negotiated.
    pub hdgst: bool,
    /// Data digest negotiated.
    pub ddgst: bool,
    /// Our PDU data alignment (CPDA on the controller, HPDA on the host).
    pub pda: u8,
    /// Largest PDU data we accept (in-capsule data size / MAXH2CDATA / read chunk).
    pub max_data_len: u32,
}

impl HeaderCheck {
    /// Required data alignment in bytes, `(pda + 1) * 4`.
    pub const fn alignment(&self) -> u32 {
        (self.pda as u32 + 1) * 4
    }
}

/// Where the parts of a PDU sit on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Layout {
    /// Header length without digest.
    pub hlen: u8,
    /// A header digest follows the header.
    pub hdgst: bool,
    /// Padding bytes between header (+ digest) and data.
    pub pad: u8,
    /// Data bytes.
    pub data_len: u32,
    /// A data digest follows the data.
    pub ddgst: bool,
}

impl Layout {
    const fn no_data(hlen: u8, hdgst: bool) -> Self {
        Self { hlen, hdgst, pad: 0, data_len: 0, ddgst: false }
    }

    /// Header plus header digest.
    pub const fn header_len(&self) -> usize {
        self.hlen as usize + if self.hdgst { DIGEST_LEN } else { 0 }
    }

    /// Offset of the data (header, header digest and padding before it).
    pub const fn data_offset(&self) -> usize {
        self.header_len() + self.pad as usize
    }

    /// The PDO field value: data offset when there is data, else 0
    /// (TermReq data directly follows the header and uses 0 too).
    pub const fn pdo(&self, ty: PduType) -> u8 {
        if self.data_len > 0 && ty.has_digested_data() { self.data_offset() as u8 } else { 0 }
    }

    /// Total PDU length (PLEN), saturating on (impossible) overflow.
    pub const fn plen(&self) -> u32 {
        (self.data_offset() as u32).saturating_add(self.data_len).saturating_add(if self.ddgst {
            DIGEST_LEN as u32
        } else {
            0
        })
    }
}

/// Digest enables exchanged in ICReq/ICResp (DGST byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digests {
    /// Header digest enabled/requested.
    pub header: bool,
    /// Data digest enabled/requested.
    pub data: bool,
}

impl Digests {
    /// Parses the DGST byte (reserved bits ignored).
    pub const fn from_byte(b: u8) -> Self {
        Self { header: b & 0x01 != 0, data: b & 0x02 != 0 }
    }

    /// The DGST byte.
    pub const fn to_byte(self) -> u8 {
        (self.header as u8) | ((self.data as u8) << 1)
    }
}

/// ICReq PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IcReq {
    /// PDU format version (0 = 1.0).
    pub pfv: u16,
    /// Host PDU data alignment for controller-to-host data, 0's based dwords.
    pub hpda: u8,
    /// Digests the host asks for.
    pub dgst: Digests,
    /// Maximum outstanding R2Ts per command, 0's based.
    pub maxr2t: u32,
}

/// ICResp PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IcResp {
    /// PDU format version (0 = 1.0).
    pub pfv: u16,
    /// Controller PDU data alignment for host-to-controller data, 0's based dwords.
    pub cpda: u8,
    /// Digests enabled for the connection.
    pub dgst: Digests,
    /// Maximum data bytes per H2CData PDU.
    pub maxh2cdata: u32,
}

/// H2CTermReq / C2HTermReq PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TermReq {
    /// Fatal Error Status (raw; see [`Fes::from_code`]).
    pub fes: u16,
    /// Fatal Error Information.
    pub fei: u32,
}

/// CapsuleCmd PDU-specific header: a submission queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapsuleCmd {
    /// The command.
    pub sqe: Sqe,
}

/// CapsuleResp PDU-specific header: a completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapsuleResp {
    /// The completion.
    pub cqe: Cqe,
}

/// H2CData PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct H2CData {
    /// Command capsule CID.
    pub cccid: u16,
    /// Transfer tag from the R2T.
    pub ttag: u16,
    /// Offset of this data in the command's transfer.
    pub datao: u32,
    /// Data length in this PDU.
    pub datal: u32,
    /// LAST_PDU flag.
    pub last: bool,
}

/// C2HData PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct C2HData {
    /// Command capsule CID.
    pub cccid: u16,
    /// Offset of this data in the command's transfer.
    pub datao: u32,
    /// Data length in this PDU.
    pub datal: u32,
    /// LAST_PDU flag.
    pub last: bool,
    /// SUCCESS flag: the command completed; no CapsuleResp follows.
    pub success: bool,
}

/// R2T PDU-specific header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct R2T {
    /// Command capsule CID.
    pub cccid: u16,
    /// Transfer tag the host echoes in H2CData.
    pub ttag: u16,
    /// Requested data offset.
    pub r2to: u32,
    /// Requested data length.
    pub r2tl: u32,
}

/// A typed PDU header (data is never held here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pdu {
    /// ICReq.
    IcReq(IcReq),
    /// ICResp.
    IcResp(IcResp),
    /// H2CTermReq.
    H2CTermReq(TermReq),
    /// C2HTermReq.
    C2HTermReq(TermReq),
    /// CapsuleCmd.
    CapsuleCmd(CapsuleCmd),
    /// CapsuleResp.
    CapsuleResp(CapsuleResp),
    /// H2CData.
    H2CData(H2CData),
    /// C2HData.
    C2HData(C2HData),
    /// R2T.
    R2T(R2T),
}

/// How we frame PDUs we send: negotiated digests and the *peer's* alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Framing {
    /// Header digest negotiated.
    pub hdgst: bool,
    /// Data digest negotiated.
    pub ddgst: bool,
    /// The receiver's PDU data alignment (CPDA when the host sends, HPDA when the controller does).
    pub pda: u8,
}

impl Pdu {
    /// The PDU type.
    pub const fn pdu_type(&self) -> PduType {
        match self {
            Self::IcReq(_) => PduType::IcReq,
            Self::IcResp(_) => PduType::IcResp,
            Self::H2CTermReq(_) => PduType::H2CTermReq,
            Self::C2HTermReq(_) => PduType::C2HTermReq,
            Self::CapsuleCmd(_) => PduType::CapsuleCmd,
            Self::CapsuleResp(_) => PduType::CapsuleResp,
            Self::H2CData(_) => PduType::H2CData,
            Self::C2HData(_) => PduType::C2HData,
            Self::R2T(_) => PduType::R2T,
        }
    }

    /// The command this PDU belongs to, if it names one.
    pub const fn cid(&self) -> Option<u16> {
        match self {
            Self::CapsuleCmd(c) => Some(c.sqe.cid),
            Self::CapsuleResp(c) => Some(c.cqe.cid),
            Self::H2CData(d) => Some(d.cccid),
            Self::C2HData(d) => Some(d.cccid),
            Self::R2T(r) => Some(r.cccid),
            _ => None,
        }
    }

    /// Computes the wire layout of this PDU with `data_len` data bytes.
    pub fn layout(&self, framing: &Framing, data_len: u32) -> Result<Layout, Error> {
        let ty = self.pdu_type();
        if framing.pda > MAX_PDA {
            return Err(Error::Encode("PDA above 31"));
        }
        match self {
            Self::H2CData(H2CData { datal, .. }) | Self::C2HData(C2HData { datal, .. }) => {
                if *datal != data_len || data_len == 0 {
                    return Err(Error::Encode("data PDU length must equal DATAL and be non-zero"));
                }
            }
            Self::H2CTermReq(_) | Self::C2HTermReq(_) => {
                if data_len > MAX_TERM_DATA_LEN as u32 {
                    return Err(Error::Encode("TermReq data above 128 bytes"));
                }
                return Ok(Layout { hlen: ty.hlen(), hdgst: false, pad: 0, data_len, ddgst: false });
            }
            Self::CapsuleCmd(_) => {}
            _ => {
                if data_len != 0 {
                    return Err(Error::Encode("PDU type carries no data"));
                }
            }
        }
        let hdgst = framing.hdgst && ty.has_header_digest();
        let mut layout = Layout::no_data(ty.hlen(), hdgst);
        if data_len > 0 {
            let align = (usize::from(framing.pda) + 1) * 4;
            let hl = layout.header_len();
            let pad = hl.next_multiple_of(align) - hl;
            layout.pad = u8::try_from(pad).map_err(|_| Error::Encode("padding too large"))?;
            layout.data_len = data_len;
            layout.ddgst = framing.ddgst;
            let total = (layout.data_offset() as u64) + u64::from(data_len) + if layout.ddgst { 4 } else { 0 };
            if total > u64::from(u32::MAX) {
                return Err(Error::Encode("PDU longer than 4 GiB"));
            }
        }
        Ok(layout)
    }

    /// Encodes common header, PDU-specific header, header digest and padding
    /// (zeroed) into `out`, for a PDU carrying `data_len` data bytes.
    ///
    /// Writes `layout.data_offset()` bytes (`header_len()` when there is no
    /// data). The caller sends the data next, then
    /// [`crate::digest::DataDigest`] bytes if `layout.ddgst`.
    pub fn encode_header(&self, framing: &Framing, data_len: u32, out: &mut [u8]) -> Result<Layout, Error> {
        let layout = self.layout(framing, data_len)?;
        let ty = self.pdu_type();
        let total = if layout.data_len > 0 { layout.data_offset() } else { layout.header_len() };
        let have = out.len();
        let out = out.get_mut(..total).ok_or(Error::Truncated { need: total, have })?;
        let hlen = usize::from(layout.hlen);
        zero(out, 0, total);
        let mut flags = ty.extra_flags() & self.extra_flag_bits();
        if layout.hdgst {
            flags |= Flags::HDGSTF;
        }
        if layout.ddgst {
            flags |= Flags::DDGSTF;
        }
        let ch = CommonHeader {
            pdu_type: ty as u8,
            flags: Flags(flags),
            hlen: layout.hlen,
            pdo: layout.pdo(ty),
            plen: layout.plen(),
        };
        if let Some(c) = out.first_chunk_mut::<CH_LEN>() {
            ch.encode(c);
        }
        self.encode_psh(out);
        if layout.hdgst {
            let d = header_digest(out.get(..hlen).unwrap_or(&[]));
            put_u32(out, hlen, d);
        }
        Ok(layout)
    }

    /// Encodes a whole PDU with its data (one buffer) into `out`; returns its length.
    /// Convenient for small PDUs (TermReq, tests); the hot path uses
    /// [`Pdu::encode_header`] and sends data from where it lives.
    pub fn encode_with_data(&self, framing: &Framing, data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let data_len = u32::try_from(data.len()).map_err(|_| Error::Encode("data above 4 GiB"))?;
        let layout = self.layout(framing, data_len)?;
        let plen = layout.plen() as usize;
        if out.len() < plen {
            return Err(Error::Truncated { need: plen, have: out.len() });
        }
        self.encode_header(framing, data_len, out)?;
        let off = if data.is_empty() { layout.header_len() } else { layout.data_offset() };
        put(out, off, data);
        if layout.ddgst {
            put_u32(out, off + data.len(), crate::digest::data_digest([data]));
        }
        Ok(plen)
    }

    fn extra_flag_bits(&self) -> u8 {
        match self {
            Self::H2CData(d) => u8::from(d.last) * Flags::LAST_PDU,
            Self::C2HData(d) => (u8::from(d.last) * Flags::LAST_PDU) | (u8::from(d.success) * Flags::SUCCESS),
            _ => 0,
        }
    }

    /// Writes the PDU-specific header at offset 8 (the buffer is pre-zeroed).
    fn encode_psh(&self, out: &mut [u8]) {
        match self {
            Self::IcReq(r) => {
                put_u16(out, 8, r.pfv);
                put_u8(out, 10, r.hpda);
                put_u8(out, 11, r.dgst.to_byte());
                put_u32(out, 12, r.maxr2t);
            }
            Self::IcResp(r) => {
                put_u16(out, 8, r.pfv);
                put_u8(out, 10, r.cpda);
                put_u8(out, 11, r.dgst.to_byte());
                put_u32(out, 12, r.maxh2cdata);
            }
            Self::H2CTermReq(t) | Self::C2HTermReq(t) => {
                put_u16(out, 8, t.fes);
                put_u32(out, 10, t.fei);
            }
            Self::CapsuleCmd(c) => {
                let mut b = [0u8; SQE_LEN];
                c.sqe.encode(&mut b);
                put(out, CH_LEN, &b);
            }
            Self::CapsuleResp(c) => {
                let mut b = [0u8; CQE_LEN];
                c.cqe.encode(&mut b);
                put(out, CH_LEN, &b);
            }
            Self::H2CData(d) => {
                put_u16(out, 8, d.cccid);
                put_u16(out, 10, d.ttag);
                put_u32(out, 12, d.datao);
                put_u32(out, 16, d.datal);
            }
            Self::C2HData(d) => {
                put_u16(out, 8, d.cccid);
                put_u32(out, 12, d.datao);
                put_u32(out, 16, d.datal);
            }
            Self::R2T(r) => {
                put_u16(out, 8, r.cccid);
                put_u16(out, 10, r.ttag);
                put_u32(out, 12, r.r2to);
                put_u32(out, 16, r.r2tl);
            }
        }
    }

    /// Decodes the PDU-specific header from a full header (`layout.header_len()`
    /// bytes: common header, PSH, header digest) whose common header was
    /// validated into `layout`. Verifies the header digest and the fields
    /// that the common header alone cannot check.
    pub fn decode(header: &[u8], layout: &Layout) -> Result<Self, Error> {
        let need = layout.header_len();
        let h = header.get(..need).ok_or(Error::Truncated { need, have: header.len() })?;
        let hlen = usize::from(layout.hlen);
        let ch = CommonHeader::decode(h.first_chunk::<CH_LEN>().unwrap_or(&[0; CH_LEN]));
        if layout.hdgst {
            let computed = header_digest(h.get(..hlen).unwrap_or(&[]));
            if computed != u32_at(h, hlen) {
                return Err(Error::fatal(Fes::HeaderDigestError, u32::from(layout.hlen), "header digest mismatch"));
            }
        }
        let ty = PduType::from_u8(ch.pdu_type).ok_or(Error::fatal(
            Fes::InvalidHeaderField,
            offset::TYPE,
            "unknown PDU type",
        ))?;
        if ch.hlen != ty.hlen() || ch.hlen != layout.hlen {
            return Err(Error::fatal(Fes::InvalidHeaderField, offset::HLEN, "wrong HLEN for PDU type"));
        }
        let flags = ch.flags;
        let pdu = match ty {
            PduType::IcReq => {
                let r = IcReq {
                    pfv: u16_at(h, 8),
                    hpda: u8_at(h, 10),
                    dgst: Digests::from_byte(u8_at(h, 11)),
                    maxr2t: u32_at(h, 12),
                };
                check_ic(r.pfv, r.hpda)?;
                Self::IcReq(r)
            }
            PduType::IcResp => {
                let r = IcResp {
                    pfv: u16_at(h, 8),
                    cpda: u8_at(h, 10),
                    dgst: Digests::from_byte(u8_at(h, 11)),
                    maxh2cdata: u32_at(h, 12),
                };
                check_ic(r.pfv, r.cpda)?;
                if r.maxh2cdata < MIN_MAXH2CDATA || !r.maxh2cdata.is_multiple_of(4) {
                    return Err(Error::fatal(
                        Fes::InvalidHeaderField,
                        offset::MAXH2CDATA,
                        "MAXH2CDATA below 4096 or not a dword multiple",
                    ));
                }
                Self::IcResp(r)
            }
            PduType::H2CTermReq | PduType::C2HTermReq => {
                let t = TermReq { fes: u16_at(h, 8), fei: u32_at(h, 10) };
                if ty == PduType::H2CTermReq { Self::H2CTermReq(t) } else { Self::C2HTermReq(t) }
            }
            PduType::CapsuleCmd => {
                Self::CapsuleCmd(CapsuleCmd { sqe: Sqe::decode_slice(h.get(CH_LEN..).unwrap_or(&[]))? })
            }
            PduType::CapsuleResp => {
                Self::CapsuleResp(CapsuleResp { cqe: Cqe::decode_slice(h.get(CH_LEN..).unwrap_or(&[]))? })
            }
            PduType::H2CData => Self::H2CData(H2CData {
                cccid: u16_at(h, 8),
                ttag: u16_at(h, 10),
                datao: u32_at(h, 12),
                datal: check_datal(u32_at(h, 16), layout)?,
                last: flags.contains(Flags::LAST_PDU),
            }),
            PduType::C2HData => Self::C2HData(C2HData {
                cccid: u16_at(h, 8),
                datao: u32_at(h, 12),
                datal: check_datal(u32_at(h, 16), layout)?,
                last: flags.contains(Flags::LAST_PDU),
                success: flags.contains(Flags::SUCCESS),
            }),
            PduType::R2T => {
                let r = R2T { cccid: u16_at(h, 8), ttag: u16_at(h, 10), r2to: u32_at(h, 12), r2tl: u32_at(h, 16) };
                if r.r2tl == 0 {
                    return Err(Error::fatal(Fes::InvalidHeaderField, offset::DATAL, "R2T for zero bytes"));
                }
                Self::R2T(r)
            }
        };
        Ok(pdu)
    }
}

fn check_ic(pfv: u16, pda: u8) -> Result<(), Error> {
    if pfv != PFV_1_0 {
        return Err(Error::fatal(Fes::UnsupportedParameter, offset::PFV, "unsupported PDU format version"));
    }
    if pda > MAX_PDA {
        return Err(Error::fatal(Fes::InvalidHeaderField, offset::PDA, "PDA above 31"));
    }
    Ok(())
}

fn check_datal(datal: u32, layout: &Layout) -> Result<u32, Error> {
    if datal != layout.data_len {
        return Err(Error::fatal(Fes::InvalidHeaderField, offset::DATAL, "DATAL disagrees with PLEN/PDO"));
    }
    Ok(datal)
}

/// Validates and decodes a complete received header (`bytes` starts with the
/// common header and holds at least the header and header digest).
pub fn decode_header(bytes: &[u8], chk: &HeaderCheck) -> Result<(Pdu, Layout), Error> {
    let ch = bytes.first_chunk::<CH_LEN>().ok_or(Error::Truncated { need: CH_LEN, have: bytes.len() })?;
    let layout = CommonHeader::decode(ch).validate(chk)?;
    let pdu = Pdu::decode(bytes, &layout)?;
    Ok((pdu, layout))
}
