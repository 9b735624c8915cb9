//! One PDU ready to send, shared by the target and host connection cores: the header (with its digest
//! and the padding up to the data) encoded inline, the data carried by value so the driver can send it
//! without a copy, and the data digest already computed.

use crate::digest::data_digest;
use crate::error::Error;
use crate::pdu::{Framing, Pdu, PduType};

/// Largest encoded PDU header we emit (header, digest and padding to a 128-byte alignment).
pub const TX_HEAD_MAX: usize = 128;

/// One PDU to send: an encoded header, optional data, optional data digest.
#[derive(Debug)]
pub struct TxPdu<D> {
    head: [u8; TX_HEAD_MAX],
    head_len: u8,
    /// Data sent after the header, untouched.
    pub data: Option<D>,
    /// Data digest to send after the data.
    pub ddgst: Option<[u8; 4]>,
    /// PDU type (for logs and tests).
    pub kind: PduType,
}

impl<D> TxPdu<D> {
    /// The encoded header bytes.
    pub fn head(&self) -> &[u8] {
        self.head.get(..usize::from(self.head_len)).unwrap_or(&[])
    }
}

impl<D: AsRef<[u8]>> TxPdu<D> {
    /// Encodes `pdu` with `framing` around `data`. Fails only for a framing no peer can negotiate (the
    /// data is dropped then: the connection is being torn down).
    pub fn encode(pdu: &Pdu, framing: &Framing, data: Option<D>) -> Result<TxPdu<D>, Error> {
        let mut head = [0u8; TX_HEAD_MAX];
        let data_len = data.as_ref().map_or(0, |d| d.as_ref().len() as u32);
        let layout = pdu.encode_header(framing, data_len, &mut head)?;
        let head_len = if data_len > 0 { layout.data_offset() } else { layout.header_len() };
        let ddgst = match &data {
            Some(d) if layout.ddgst && data_len > 0 => Some(data_digest([d.as_ref()]).to_le_bytes()),
            _ => None,
        };
        Ok(TxPdu { head, head_len: head_len as u8, data, ddgst, kind: pdu.pdu_type() })
    }
}
