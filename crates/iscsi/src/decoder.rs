//! Incremental, sans-IO receive parser for one iSCSI connection.
//!
//! Owns the framing of the received byte stream: BHS, AHS, header digest, data segment, padding, data
//! digest. It never reads a socket and never stores payload: the caller asks [`Decoder::next_need`],
//! supplies at most that many bytes from wherever it has them, and routes data-segment bytes itself
//! (the decoder only hashes them). A slice that holds a whole header is decoded where it lies.
//!
//! ```text
//! loop {
//!     match dec.next_need() {
//!         Need::Header { .. } | Need::Trailer { .. } => { let n = dec.feed(rx_bytes)?; consume(n) }
//!         Need::Data { len } => { read up to len bytes into the right buffer; dec.feed(those bytes)? }
//!         Need::Done => handle(dec.finish()?),
//!         Need::Closed => break,
//!     }
//! }
//! ```
//!
//! A header that is framed correctly but invalid (an unknown opcode, a reserved value, a data segment
//! over our limit) does not stop the decoder: its data is still framed (so the caller can discard it)
//! and [`Frame::pdu`] carries the error, for a Reject. Only a header digest mismatch is fatal.

use crate::digest::{DIGEST_LEN, Digest};
use crate::error::Error;
use crate::pdu::ahs::Ahs;
use crate::pdu::{BHS_LEN, Bhs, Lengths, Pdu};

/// Largest header: BHS, 255 words of AHS, header digest.
const HDR_MAX: usize = BHS_LEN + 255 * 4 + DIGEST_LEN;

/// Receive settings; the digests and limit change when login completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecoderConfig {
    /// Largest data segment accepted: the MaxRecvDataSegmentLength we declared (8192 during login).
    pub max_data_len: u32,
    /// Header digest in use.
    pub header_digest: bool,
    /// Data digest in use.
    pub data_digest: bool,
}

impl Default for DecoderConfig {
    /// The login-phase settings: no digests, 8 KiB data segments.
    fn default() -> Self {
        DecoderConfig { max_data_len: 8192, header_digest: false, data_digest: false }
    }
}

/// What the decoder wants next; `len` is what is left of that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// Header bytes (BHS, AHS, header digest).
    Header {
        /// Bytes still wanted.
        len: usize,
    },
    /// Data segment bytes: the caller routes them, then passes them to [`Decoder::feed`].
    Data {
        /// Bytes still wanted.
        len: usize,
    },
    /// Padding and data digest.
    Trailer {
        /// Bytes still wanted.
        len: usize,
    },
    /// A PDU is complete: call [`Decoder::finish`].
    Done,
    /// No more input is accepted.
    Closed,
}

/// A received PDU's header, as [`Decoder::header`] shows it while its data arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The raw BHS (for a Reject's data segment).
    pub bhs: Bhs,
    /// The length fields.
    pub lengths: Lengths,
    /// The typed header, or why it is invalid.
    pub pdu: Result<Pdu, Error>,
    /// The AHS (SCSI Command only).
    pub ahs: Ahs,
}

/// A complete PDU: its header and whether its data digest matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// `Err(Error::DataDigest)` when the data digest did not match.
    pub data_digest: Result<(), Error>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Bhs,
    HeaderRest,
    Data,
    Trailer,
    Done,
    Failed(Error),
}

/// Incremental receive parser (see the module docs).
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    stage: Stage,
    hdr: Box<[u8; HDR_MAX]>,
    filled: usize,
    header: Option<Header>,
    remaining: usize,
    digest: Digest,
    trailer: [u8; 3 + DIGEST_LEN],
    trailer_len: usize,
    pad: usize,
}

impl Decoder {
    /// A decoder with `cfg`.
    pub fn new(cfg: DecoderConfig) -> Self {
        Decoder {
            cfg,
            stage: Stage::Bhs,
            hdr: Box::new([0; HDR_MAX]),
            filled: 0,
            header: None,
            remaining: 0,
            digest: Digest::new(),
            trailer: [0; 3 + DIGEST_LEN],
            trailer_len: 0,
            pad: 0,
        }
    }

    /// The settings.
    pub const fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Changes the settings; they apply from the next PDU (login completion switches digests on).
    pub fn set_config(&mut self, cfg: DecoderConfig) {
        self.cfg = cfg;
    }

    /// The current PDU's header, from the end of its header until [`Decoder::finish`].
    pub const fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The fatal error that stopped the decoder, if any.
    pub const fn error(&self) -> Option<Error> {
        match self.stage {
            Stage::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Stops the decoder: every later call answers [`Need::Closed`].
    pub fn close(&mut self) {
        self.stage = Stage::Failed(Error::Closed);
        self.header = None;
    }

    /// What to supply next.
    pub fn next_need(&self) -> Need {
        match self.stage {
            Stage::Bhs => Need::Header { len: BHS_LEN - self.filled },
            Stage::HeaderRest => Need::Header { len: self.header_len().saturating_sub(self.filled) },
            Stage::Data => Need::Data { len: self.remaining },
            Stage::Trailer => Need::Trailer { len: self.remaining },
            Stage::Done => Need::Done,
            Stage::Failed(_) => Need::Closed,
        }
    }

    fn header_len(&self) -> usize {
        let l = Lengths::of(self.bhs());
        BHS_LEN + l.ahs_len() + if self.cfg.header_digest { DIGEST_LEN } else { 0 }
    }

    fn bhs(&self) -> &Bhs {
        self.hdr.first_chunk::<BHS_LEN>().unwrap_or(&[0; BHS_LEN])
    }

    /// Supplies bytes for the current part and returns how many were taken (at most what the part
    /// still needs; at the start of a PDU, a slice holding the whole header has all of it taken and
    /// decoded in place). Data bytes are the caller's to keep: the decoder only digests them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let r = self.feed_inner(bytes);
        if let Err(e) = r
            && e.is_fatal()
        {
            self.stage = Stage::Failed(e);
            self.header = None;
        }
        r
    }

    /// Takes the completed PDU and readies the decoder for the next one.
    pub fn finish(&mut self) -> Result<Frame, Error> {
        match self.stage {
            Stage::Done => {}
            Stage::Failed(e) => return Err(e),
            _ => return Err(Error::Usage("finish before the PDU is complete")),
        }
        let header = self.header.take().ok_or(Error::Usage("no PDU decoded"))?;
        self.stage = Stage::Bhs;
        self.filled = 0;
        let mut data_digest = Ok(());
        if self.cfg.data_digest && header.lengths.data_len > 0 {
            let at = self.trailer_len - DIGEST_LEN;
            let mut w = [0u8; DIGEST_LEN];
            w.copy_from_slice(self.trailer.get(at..self.trailer_len).unwrap_or(&[0; DIGEST_LEN]));
            let received = u32::from_le_bytes(w);
            let computed = self.digest.value();
            if received != computed {
                data_digest = Err(Error::DataDigest { received, computed });
            }
        }
        Ok(Frame { header, data_digest })
    }

    fn feed_inner(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        match self.stage {
            Stage::Bhs => {
                if self.filled == 0
                    && let Some(bhs) = bytes.first_chunk::<BHS_LEN>()
                {
                    let l = Lengths::of(bhs);
                    let hl = BHS_LEN + l.ahs_len() + if self.cfg.header_digest { DIGEST_LEN } else { 0 };
                    if let Some(whole) = bytes.get(..hl) {
                        let h = decode_header(&self.cfg, whole)?;
                        self.start_data(h);
                        return Ok(hl);
                    }
                }
                let n = self.take(bytes, BHS_LEN);
                if self.filled == BHS_LEN {
                    if self.header_len() == BHS_LEN {
                        let h = decode_header(&self.cfg, self.bhs())?;
                        self.start_data(h);
                    } else {
                        self.stage = Stage::HeaderRest;
                    }
                }
                Ok(n)
            }
            Stage::HeaderRest => {
                let hl = self.header_len();
                let n = self.take(bytes, hl);
                if self.filled == hl {
                    let h = decode_header(&self.cfg, self.hdr.get(..hl).unwrap_or(&[]))?;
                    self.start_data(h);
                }
                Ok(n)
            }
            Stage::Data => {
                let n = bytes.len().min(self.remaining);
                if self.cfg.data_digest {
                    self.digest.update(bytes.get(..n).unwrap_or(&[]));
                }
                self.remaining -= n;
                if self.remaining == 0 {
                    self.enter_trailer();
                }
                Ok(n)
            }
            Stage::Trailer => {
                let n = bytes.len().min(self.remaining);
                let at = self.trailer_len - self.remaining;
                if let (Some(dst), Some(src)) = (self.trailer.get_mut(at..at + n), bytes.get(..n)) {
                    dst.copy_from_slice(src);
                    // The data digest covers the padding as sent.
                    let pad_part = self.pad.saturating_sub(at).min(n);
                    if self.cfg.data_digest {
                        self.digest.update(src.get(..pad_part).unwrap_or(&[]));
                    }
                }
                self.remaining -= n;
                if self.remaining == 0 {
                    self.stage = Stage::Done;
                }
                Ok(n)
            }
            Stage::Done => Err(Error::Usage("PDU complete: call finish first")),
            Stage::Failed(e) => Err(e),
        }
    }

    fn take(&mut self, bytes: &[u8], upto: usize) -> usize {
        let n = bytes.len().min(upto.saturating_sub(self.filled));
        if let (Some(dst), Some(src)) = (self.hdr.get_mut(self.filled..self.filled + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.filled += n;
            n
        } else {
            0
        }
    }

    fn start_data(&mut self, h: Header) {
        self.remaining = h.lengths.data_len as usize;
        self.header = Some(h);
        self.digest = Digest::new();
        if self.remaining > 0 {
            self.stage = Stage::Data;
        } else {
            self.enter_trailer();
        }
    }

    fn enter_trailer(&mut self) {
        let Some(h) = &self.header else {
            self.stage = Stage::Done;
            return;
        };
        let len = h.lengths.data_len as usize;
        let pad = crate::pdu::pad4(len) - len;
        self.pad = pad;
        let dd = if self.cfg.data_digest && len > 0 { DIGEST_LEN } else { 0 };
        self.trailer_len = pad + dd;
        self.remaining = self.trailer_len;
        self.stage = if self.remaining > 0 { Stage::Trailer } else { Stage::Done };
    }
}

/// Checks the header digest of `whole` (BHS, AHS, digest) and decodes it.
fn decode_header(cfg: &DecoderConfig, whole: &[u8]) -> Result<Header, Error> {
    let Some(bhs) = whole.first_chunk::<BHS_LEN>().copied() else {
        return Err(Error::Truncated("header"));
    };
    let lengths = Lengths::of(&bhs);
    let ahs_end = BHS_LEN + lengths.ahs_len();
    if cfg.header_digest {
        let mut w = [0u8; DIGEST_LEN];
        w.copy_from_slice(whole.get(ahs_end..ahs_end + DIGEST_LEN).unwrap_or(&[0; DIGEST_LEN]));
        let received = u32::from_le_bytes(w);
        let computed = crc32c::crc32c(whole.get(..ahs_end).unwrap_or(&[]));
        if received != computed {
            return Err(Error::HeaderDigest { received, computed });
        }
    }
    let mut ahs = Ahs::default();
    let pdu = Pdu::decode(&bhs).and_then(|p| {
        if lengths.data_len > cfg.max_data_len {
            return Err(Error::DataTooLong { len: lengths.data_len, max: cfg.max_data_len });
        }
        if lengths.ahs_words > 0 {
            ahs = Ahs::parse(whole.get(BHS_LEN..ahs_end).unwrap_or(&[]))?;
        }
        Ok(p)
    });
    Ok(Header { bhs, lengths, pdu, ahs })
}
