//! One PDU ready to send: the encoded BHS and header digest inline, the data segment either owned
//! (text, sense, ping data: small) or a range of a buffer the output carries (read data, sent without
//! a copy), and the trailer (padding and data digest) already computed.

use crate::digest::{DIGEST_LEN, Digest};
use crate::error::Error;
use crate::pdu::{BHS_LEN, Opcode, Pdu, pad4};
use std::ops::Range;

/// Largest encoded header we emit: a BHS (targets send no AHS) and its digest.
pub const TX_HEAD_MAX: usize = BHS_LEN + DIGEST_LEN;

/// The digests in use on a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digests {
    /// CRC32C header digest.
    pub header: bool,
    /// CRC32C data digest.
    pub data: bool,
}

/// Where a PDU's data segment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxData {
    /// No data segment.
    None,
    /// Bytes owned by the PDU.
    Owned(Vec<u8>),
    /// A range of the buffer carried by the same output (read data sent without a copy).
    Range(Range<usize>),
}

/// One PDU to send: head, data, trailer, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPdu {
    head: [u8; TX_HEAD_MAX],
    head_len: u8,
    /// The data segment.
    pub data: TxData,
    trailer: [u8; 3 + DIGEST_LEN],
    trailer_len: u8,
    /// The opcode (for logs and tests).
    pub opcode: Opcode,
}

impl TxPdu {
    /// Encodes `pdu` around `data`; a [`TxData::Range`] is resolved against `buf`.
    pub fn encode(pdu: &Pdu, digests: Digests, data: TxData, buf: &[u8]) -> Result<TxPdu, Error> {
        let bytes: &[u8] = match &data {
            TxData::None => &[],
            TxData::Owned(v) => v,
            TxData::Range(r) => buf.get(r.clone()).ok_or(Error::Encode("data range outside the buffer"))?,
        };
        let len = u32::try_from(bytes.len()).map_err(|_| Error::Encode("data segment too long"))?;
        let bhs = pdu.encode(0, len)?;
        let mut head = [0u8; TX_HEAD_MAX];
        head[..BHS_LEN].copy_from_slice(&bhs);
        let mut head_len = BHS_LEN;
        if digests.header {
            head[BHS_LEN..].copy_from_slice(&crc32c::crc32c(&bhs).to_le_bytes());
            head_len += DIGEST_LEN;
        }
        let pad = pad4(bytes.len()) - bytes.len();
        let mut trailer = [0u8; 3 + DIGEST_LEN];
        let mut trailer_len = pad;
        if digests.data && !bytes.is_empty() {
            let mut d = Digest::new();
            d.update(bytes);
            d.update(&[0u8; 3][..pad]);
            trailer[pad..pad + DIGEST_LEN].copy_from_slice(&d.value().to_le_bytes());
            trailer_len += DIGEST_LEN;
        }
        let data = if bytes.is_empty() { TxData::None } else { data };
        Ok(TxPdu {
            head,
            head_len: head_len as u8,
            data,
            trailer,
            trailer_len: trailer_len as u8,
            opcode: pdu.opcode(),
        })
    }

    /// The BHS and header digest.
    pub fn head(&self) -> &[u8] {
        self.head.get(..usize::from(self.head_len)).unwrap_or(&[])
    }

    /// The BHS alone.
    pub fn bhs(&self) -> &[u8; BHS_LEN] {
        self.head.first_chunk::<BHS_LEN>().unwrap_or(&[0; BHS_LEN])
    }

    /// Padding and data digest, sent after the data.
    pub fn trailer(&self) -> &[u8] {
        self.trailer.get(..usize::from(self.trailer_len)).unwrap_or(&[])
    }

    /// The data segment, resolving a range against `buf` (the output's buffer).
    pub fn data<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match &self.data {
            TxData::None => &[],
            TxData::Owned(v) => v,
            TxData::Range(r) => buf.get(r.clone()).unwrap_or(&[]),
        }
    }

    /// Total bytes on the wire.
    pub fn wire_len(&self, buf: &[u8]) -> usize {
        self.head().len() + self.data(buf).len() + self.trailer().len()
    }

    /// The whole PDU in one vector (tests and simple drivers; a reactor sends the parts with writev).
    pub fn to_bytes(&self, buf: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.wire_len(buf));
        v.extend_from_slice(self.head());
        v.extend_from_slice(self.data(buf));
        v.extend_from_slice(self.trailer());
        v
    }
}
