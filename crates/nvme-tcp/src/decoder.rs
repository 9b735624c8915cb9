//! Incremental, sans-IO receive parser for one NVMe/TCP connection.
//!
//! Owns the receive-side protocol state: which part of the current PDU comes
//! next, the header bytes (at most 132, kept inline), the running data digest,
//! and the connection phase (awaiting ICReq/ICResp, established, terminated).
//! It never reads a socket and never touches payload memory: the caller asks
//! [`Decoder::next_need`], reads exactly that many bytes (or fewer) from
//! wherever it likes, and reports them back. Payload bytes go straight into a
//! buffer the caller picks after inspecting [`Decoder::pdu`]; the decoder only
//! hashes them for the data digest.
//!
//! ```text
//! loop {
//!     match dec.next_need() {
//!         Need::Header { len } | Need::Pad { len } | Need::DataDigest { len } =>
//!             { let n = sock.read(&mut small[..len])?; dec.feed(&small[..n])?; }
//!         Need::Data { len } =>
//!             { let dst = pick(dec.pdu()); let n = sock.read(&mut dst[..len])?; dec.data_received(&dst[..n])?; }
//!         Need::Done => handle(dec.finish()?),
//!         Need::Closed => break,
//!     }
//! }
//! ```

use crate::digest::{DIGEST_LEN, DataDigest};
use crate::error::{Error, Fes};
use crate::pdu::{CH_LEN, CommonHeader, Digests, Framing, HeaderCheck, Layout, MAX_HLEN, Pdu, PduType, offset};

/// Default cap on the data of one received PDU (1 MiB).
pub const DEFAULT_MAX_DATA_LEN: u32 = 1 << 20;

/// Which end of the connection the decoder runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Controller side: receives host-to-controller PDUs.
    Target,
    /// Host side: receives controller-to-host PDUs.
    Host,
}

/// Local settings of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecoderConfig {
    /// Which side we are.
    pub role: Role,
    /// Our data alignment for received data PDUs: the CPDA a target puts in
    /// ICResp, or the HPDA a host put in ICReq.
    pub pda: u8,
    /// Target: header digest supported (enabled if the host asks).
    /// Host: header digest requested in our ICReq.
    pub hdgst: bool,
    /// Same as `hdgst`, for the data digest.
    pub ddgst: bool,
    /// Largest data accepted in one PDU; larger PLEN is a fatal error, so a
    /// hostile peer cannot make the caller allocate without bound.
    pub max_data_len: u32,
}

impl DecoderConfig {
    /// Target-side defaults: alignment 0, digests supported, 1 MiB cap.
    pub const fn target() -> Self {
        Self { role: Role::Target, pda: 0, hdgst: true, ddgst: true, max_data_len: DEFAULT_MAX_DATA_LEN }
    }

    /// Host-side defaults: alignment 0, no digests requested, 1 MiB cap.
    pub const fn host() -> Self {
        Self { role: Role::Host, pda: 0, hdgst: false, ddgst: false, max_data_len: DEFAULT_MAX_DATA_LEN }
    }
}

/// What the decoder wants next. `len` is what is left of that part; the
/// caller may supply fewer bytes and will be asked again for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// Header bytes: first the 8-byte common header, then the rest of the
    /// header plus header digest. Pass them to [`Decoder::feed`].
    Header {
        /// Bytes still wanted.
        len: usize,
    },
    /// Padding before the data (to be discarded). Pass to [`Decoder::feed`].
    Pad {
        /// Bytes still wanted.
        len: usize,
    },
    /// PDU data: read into a buffer of the caller's choice, then report it
    /// with [`Decoder::data_received`] (or [`Decoder::feed`]).
    Data {
        /// Bytes still wanted.
        len: usize,
    },
    /// The data digest. Pass to [`Decoder::feed`].
    DataDigest {
        /// Bytes still wanted.
        len: usize,
    },
    /// A PDU is complete: call [`Decoder::finish`].
    Done,
    /// No more input is accepted (fatal error or TermReq received).
    Closed,
}

/// Negotiated connection parameters, known once ICReq/ICResp is through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// Digests in use.
    pub digests: Digests,
    /// Peer's data alignment: HPDA from ICReq (target) or CPDA from ICResp (host);
    /// use it in [`crate::pdu::Framing`] when sending.
    pub peer_pda: u8,
}

impl Negotiated {
    /// Framing for the PDUs we send on this connection.
    pub const fn framing(&self) -> Framing {
        Framing { hdgst: self.digests.header, ddgst: self.digests.data, pda: self.peer_pda }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitInit,
    Established,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Common,
    Header,
    Pad,
    Data,
    DataDigest,
    Done,
    Failed(Error),
}

/// Largest header plus header digest any PDU type has.
const HDR_BUF: usize = MAX_HLEN + DIGEST_LEN;

/// Incremental receive parser (see the module docs).
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    phase: Phase,
    negotiated: Option<Negotiated>,
    stage: Stage,
    hdr: [u8; HDR_BUF],
    filled: usize,
    layout: Layout,
    pdu: Option<Pdu>,
    remaining: usize,
    digest: DataDigest,
    ddgst: [u8; DIGEST_LEN],
}

impl Decoder {
    /// A decoder for a fresh connection (expects ICReq or ICResp first).
    pub fn new(cfg: DecoderConfig) -> Self {
        Self {
            cfg,
            phase: Phase::AwaitInit,
            negotiated: None,
            stage: Stage::Common,
            hdr: [0; HDR_BUF],
            filled: 0,
            layout: Layout::default(),
            pdu: None,
            remaining: 0,
            digest: DataDigest::new(),
            ddgst: [0; DIGEST_LEN],
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Parameters negotiated by ICReq/ICResp, once that PDU was finished.
    pub const fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The current PDU's header, available once the whole header is in
    /// (from the first [`Need::Pad`]/[`Need::Data`] on) until [`Decoder::finish`].
    pub const fn pdu(&self) -> Option<&Pdu> {
        self.pdu.as_ref()
    }

    /// The current PDU's layout, valid while [`Decoder::pdu`] is `Some`.
    pub fn layout(&self) -> Option<&Layout> {
        self.pdu.as_ref().map(|_| &self.layout)
    }

    /// The fatal error that stopped the decoder, if any.
    pub const fn error(&self) -> Option<Error> {
        match self.stage {
            Stage::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// What to supply next.
    pub const fn next_need(&self) -> Need {
        match self.stage {
            Stage::Common => {
                if matches!(self.phase, Phase::Terminated) {
                    Need::Closed
                } else {
                    Need::Header { len: CH_LEN - self.filled }
                }
            }
            Stage::Header => Need::Header { len: self.layout.header_len().saturating_sub(self.filled) },
            Stage::Pad => Need::Pad { len: self.remaining },
            Stage::Data => Need::Data { len: self.remaining },
            Stage::DataDigest => Need::DataDigest { len: self.remaining },
            Stage::Done => Need::Done,
            Stage::Failed(_) => Need::Closed,
        }
    }

    /// Supplies bytes for the current part; consumes at most what that part
    /// still needs and returns how many bytes were consumed. One exception: at
    /// the start of a PDU, a slice that holds the whole header (common header
    /// and the rest) has all of it taken and decoded in place, in one call.
    /// In the data part the consumed bytes are payload the caller keeps (same
    /// as [`Decoder::data_received`]). A fatal error also stops the decoder.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let r = self.feed_inner(bytes);
        if let Err(e) = r
            && e.is_fatal()
        {
            self.stage = Stage::Failed(e);
            self.pdu = None;
        }
        r
    }

    /// Reports payload bytes the caller read into its own buffer. `data` must
    /// not be longer than the outstanding [`Need::Data`] length.
    pub fn data_received(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.stage != Stage::Data {
            return Err(Error::Usage("data_received outside the data part"));
        }
        if data.len() > self.remaining {
            return Err(Error::Usage("more data than the PDU carries"));
        }
        self.feed(data).map(|_| ())
    }

    /// Takes the completed PDU and readies the decoder for the next one.
    ///
    /// Returns [`Error::DataDigest`] (not fatal; the stream stays in sync) if
    /// the data digest did not match. Finishing ICReq/ICResp records the
    /// negotiated parameters; finishing a TermReq closes the decoder.
    pub fn finish(&mut self) -> Result<Pdu, Error> {
        match self.stage {
            Stage::Done => {}
            Stage::Failed(e) => return Err(e),
            _ => return Err(Error::Usage("finish before the PDU is complete")),
        }
        let pdu = self.pdu.take().ok_or(Error::Usage("no PDU decoded"))?;
        self.stage = Stage::Common;
        self.filled = 0;
        match pdu {
            Pdu::IcReq(r) => {
                self.negotiated = Some(Negotiated {
                    digests: Digests { header: r.dgst.header && self.cfg.hdgst, data: r.dgst.data && self.cfg.ddgst },
                    peer_pda: r.hpda,
                });
                self.phase = Phase::Established;
            }
            Pdu::IcResp(r) => {
                self.negotiated = Some(Negotiated { digests: r.dgst, peer_pda: r.cpda });
                self.phase = Phase::Established;
            }
            Pdu::H2CTermReq(_) | Pdu::C2HTermReq(_) => self.phase = Phase::Terminated,
            _ => {}
        }
        if self.layout.ddgst {
            let received = u32::from_le_bytes(self.ddgst);
            let computed = self.digest.finish();
            if received != computed {
                return Err(Error::DataDigest { received, computed, cid: pdu.cid() });
            }
        }
        Ok(pdu)
    }

    fn feed_inner(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        match self.stage {
            Stage::Common => {
                if self.phase == Phase::Terminated {
                    return Err(Error::Terminated);
                }
                // A whole header in the caller's bytes (a pipe holding a batch of capsules) is decoded
                // where it lies: no copy into `hdr`, one call per header.
                if self.filled == 0
                    && let Some(ch) = bytes.first_chunk::<CH_LEN>()
                {
                    self.on_common_header(ch)?;
                    let hl = self.layout.header_len();
                    if let Some(h) = bytes.get(..hl) {
                        self.on_decoded(Pdu::decode(h, &self.layout))?;
                        return Ok(hl);
                    }
                    // Only part of the rest is here: keep it (and the common header) for later.
                    return Ok(self.take_header_bytes(bytes, hl));
                }
                let n = self.take_header_bytes(bytes, CH_LEN);
                if self.filled == CH_LEN {
                    let ch = *self.hdr.first_chunk::<CH_LEN>().unwrap_or(&[0; CH_LEN]);
                    self.on_common_header(&ch)?;
                }
                Ok(n)
            }
            Stage::Header => {
                let hl = self.layout.header_len();
                let n = self.take_header_bytes(bytes, hl);
                if self.filled == hl {
                    let pdu = Pdu::decode(self.hdr.get(..hl).unwrap_or(&[]), &self.layout);
                    self.on_decoded(pdu)?;
                }
                Ok(n)
            }
            Stage::Pad => {
                let n = bytes.len().min(self.remaining);
                self.remaining -= n;
                if self.remaining == 0 {
                    self.enter_data();
                }
                Ok(n)
            }
            Stage::Data => {
                let n = bytes.len().min(self.remaining);
                // CRC32C over every payload byte is the most expensive thing here: only when negotiated.
                if self.layout.ddgst {
                    self.digest.update(bytes.get(..n).unwrap_or(&[]));
                }
                self.remaining -= n;
                if self.remaining == 0 {
                    self.enter_digest();
                }
                Ok(n)
            }
            Stage::DataDigest => {
                let n = bytes.len().min(self.remaining);
                let at = DIGEST_LEN - self.remaining;
                if let (Some(dst), Some(src)) = (self.ddgst.get_mut(at..at + n), bytes.get(..n)) {
                    dst.copy_from_slice(src);
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

    fn take_header_bytes(&mut self, bytes: &[u8], upto: usize) -> usize {
        let want = upto.saturating_sub(self.filled);
        let n = bytes.len().min(want);
        if let (Some(dst), Some(src)) = (self.hdr.get_mut(self.filled..self.filled + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.filled += n;
            n
        } else {
            0
        }
    }

    fn check(&self) -> HeaderCheck {
        let d = self.negotiated.map(|n| n.digests).unwrap_or_default();
        HeaderCheck { hdgst: d.header, ddgst: d.data, pda: self.cfg.pda, max_data_len: self.cfg.max_data_len }
    }

    /// Role and sequence checks, then common-header validation.
    fn on_common_header(&mut self, ch: &[u8; CH_LEN]) -> Result<(), Error> {
        let ch = CommonHeader::decode(ch);
        let ty = PduType::from_u8(ch.pdu_type).ok_or(Error::fatal(
            Fes::InvalidHeaderField,
            offset::TYPE,
            "unknown PDU type",
        ))?;
        let inbound = match self.cfg.role {
            Role::Target => ty.is_host_to_controller(),
            Role::Host => !ty.is_host_to_controller(),
        };
        if !inbound {
            return Err(Error::fatal(Fes::InvalidHeaderField, offset::TYPE, "PDU type not valid in this direction"));
        }
        let is_init = matches!(ty, PduType::IcReq | PduType::IcResp);
        let is_term = matches!(ty, PduType::H2CTermReq | PduType::C2HTermReq);
        if !is_term && is_init != (self.phase == Phase::AwaitInit) {
            return Err(Error::fatal(
                Fes::PduSequenceError,
                0,
                if is_init { "repeated connection initialization" } else { "PDU before connection initialization" },
            ));
        }
        self.layout = ch.validate(&self.check())?;
        if self.layout.header_len() <= CH_LEN {
            // Every PDU type's HLEN is above 8, so this cannot happen; it keeps the machine total
            // (a header part of zero bytes would never be asked for).
            return Err(Error::fatal(Fes::InvalidHeaderField, offset::HLEN, "HLEN too small"));
        }
        self.stage = Stage::Header;
        Ok(())
    }

    /// Takes the decoded header of the current PDU and moves on to its padding, data or end.
    fn on_decoded(&mut self, pdu: Result<Pdu, Error>) -> Result<(), Error> {
        let pdu = pdu?;
        // The controller may only enable digests the host asked for.
        if let (Pdu::IcResp(r), Role::Host) = (&pdu, self.cfg.role)
            && ((r.dgst.header && !self.cfg.hdgst) || (r.dgst.data && !self.cfg.ddgst))
        {
            return Err(Error::fatal(
                Fes::UnsupportedParameter,
                offset::DGST,
                "ICResp enables a digest the host did not request",
            ));
        }
        self.pdu = Some(pdu);
        self.digest = DataDigest::new();
        self.remaining = usize::from(self.layout.pad);
        if self.remaining > 0 {
            self.stage = Stage::Pad;
        } else {
            self.enter_data();
        }
        Ok(())
    }

    fn enter_data(&mut self) {
        self.remaining = self.layout.data_len as usize;
        if self.remaining > 0 {
            self.stage = Stage::Data;
        } else {
            self.enter_digest();
        }
    }

    fn enter_digest(&mut self) {
        if self.layout.ddgst {
            self.remaining = DIGEST_LEN;
            self.stage = Stage::DataDigest;
        } else {
            self.stage = Stage::Done;
        }
    }
}
