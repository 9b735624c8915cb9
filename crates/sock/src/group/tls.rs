//! User-space TLS records on a connection of the group: a filter between the caller and the engine,
//! so every backend (poll, epoll, io_uring) carries TLS without an engine knowing about it.
//!
//! - Receive: the engine's own receive (pipe, direct readv, provided buffers) fills a bounded
//!   ciphertext buffer; every whole record in it is opened into a plaintext buffer, which `recv`,
//!   `recvv` and `recv_in_place` serve. Only TLS connections carry these buffers.
//! - Send: the caller's requests wait as plaintext; at a flush (or the one inside `poll`) all of a
//!   connection's pending requests are sealed together into one ciphertext buffer, queued on the
//!   engine's write queue as one internal request, so a burst of small responses becomes one record
//!   and one sendmsg. The caller's requests complete once sealed; the internal one never surfaces.

use super::{Core, Event, SockGroup, SockId};
use crate::error::{SockError, SockResult};
use crate::socket::TcpSock;
use crate::tls::{RecordError, RecordLayer};
use crate::write::{StableBuf, WriteReq};
use std::collections::VecDeque;
use std::io::{self, IoSliceMut};

/// TLS record header: content type (1), legacy version (2), length (2).
const HEADER: usize = 5;
/// Largest record body a peer may send: 2^14 plaintext bytes plus 256 of expansion (RFC 8446 5.2).
pub(super) const MAX_RECORD_BODY: usize = (1 << 14) + 256;
/// Ciphertext held per connection: a few whole records, so one read can bring several and the
/// partial record left after opening always fits (a peer cannot make us hold more).
const CIPHER_BUF: usize = 4 * (HEADER + MAX_RECORD_BODY);

/// One user-space TLS connection's state (see the module docs).
pub(super) struct TlsConn<B> {
    records: Box<dyn RecordLayer>,
    /// Received ciphertext not yet opened: `cin[..cin_len]`, at most one partial record after each
    /// opening (allocated at the first read).
    cin: Vec<u8>,
    cin_len: usize,
    /// Opened plaintext `plain[plain_off..]` not yet taken by the caller.
    plain: Vec<u8>,
    plain_off: usize,
    /// The receive side ended (close_notify: Eof; a record error; a stream cut inside a record): the
    /// reason, returned once the plaintext before it is taken.
    rx_end: Option<SockError>,
    /// The caller's requests, plaintext, waiting for the next seal.
    pending: VecDeque<WriteReq<B>>,
}

impl<B: StableBuf> TlsConn<B> {
    fn new(records: Box<dyn RecordLayer>) -> Self {
        TlsConn {
            records,
            cin: Vec::new(),
            cin_len: 0,
            plain: Vec::new(),
            plain_off: 0,
            rx_end: None,
            pending: VecDeque::new(),
        }
    }

    /// Keeps a caller's request for the next seal, or hands it back when `depth` are already waiting
    /// (the write queue's limit applies to plaintext too).
    #[allow(clippy::result_large_err)]
    pub(super) fn push(&mut self, req: WriteReq<B>, depth: usize) -> Result<(), WriteReq<B>> {
        if self.pending.len() >= depth.max(1) {
            return Err(req);
        }
        self.pending.push_back(req);
        Ok(())
    }

    /// Caller requests not yet sealed.
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The unsealed requests, oldest first (the connection closes).
    pub(super) fn into_pending(self) -> impl Iterator<Item = WriteReq<B>> {
        self.pending.into_iter()
    }

    fn has_plain(&self) -> bool {
        self.plain_off < self.plain.len()
    }

    /// Plaintext waits, or a whole record to open (no syscall needed to serve the next read).
    fn has_input(&self) -> bool {
        self.has_plain()
            || self.cin.get(..self.cin_len.min(HEADER)).is_some_and(|h| {
                h.len() == HEADER && HEADER + u16::from_be_bytes([h[3], h[4]]) as usize <= self.cin_len
            })
    }

    fn end(&mut self, e: SockError) -> SockError {
        let r = e.duplicate();
        self.rx_end = Some(e);
        self.cin_len = 0;
        r
    }

    /// Opens every whole record in the ciphertext buffer into `plain` (empty on entry); returns
    /// (records, ciphertext bytes, plaintext bytes) or the end of the stream.
    fn open_whole(&mut self) -> Result<(u64, usize, usize), SockError> {
        let (whole, records) = match whole_records(&self.cin[..self.cin_len]) {
            Ok(w) => w,
            Err(why) => return Err(self.end(fatal(why))),
        };
        if whole == 0 {
            return Ok((0, 0, 0));
        }
        let before = self.plain.len();
        match self.records.open(&self.cin[..whole], &mut self.plain) {
            Ok(used) if used > 0 && used <= whole => {
                // Count only the records the layer took (it may stop early, e.g. after a KeyUpdate).
                let opened =
                    if used == whole { records } else { whole_records(&self.cin[..used]).map_or(0, |(_, r)| r) };
                self.cin.copy_within(used..self.cin_len, 0);
                self.cin_len -= used;
                Ok((opened, used, self.plain.len() - before))
            }
            Ok(used) => Err(self.end(fatal(format!("record layer took {used} of {whole} whole-record bytes")))),
            // Plaintext the layer appended before the end stays and is delivered first.
            Err(RecordError::Closed) => Err(self.end(SockError::Eof)),
            Err(RecordError::Fatal(why)) => Err(self.end(fatal(why))),
        }
    }
}

/// The error a broken record stream ends a connection with.
fn fatal(why: String) -> SockError {
    tracing::debug!("TLS record stream broken: {why}");
    SockError::Io(io::Error::new(io::ErrorKind::InvalidData, format!("TLS record error: {why}")))
}

/// The length of the whole records at the front of `buf` and how many there are; an error for a
/// header announcing more than a record may hold.
fn whole_records(buf: &[u8]) -> Result<(usize, u64), String> {
    let (mut at, mut n) = (0, 0);
    while let Some(h) = buf.get(at..at + HEADER) {
        let len = u16::from_be_bytes([h[3], h[4]]) as usize;
        if len > MAX_RECORD_BODY {
            return Err(format!("record of {len} bytes exceeds {MAX_RECORD_BODY}"));
        }
        if at + HEADER + len > buf.len() {
            break;
        }
        at += HEADER + len;
        n += 1;
    }
    Ok((at, n))
}

impl<B: StableBuf> Core<B> {
    fn tls_conn(&mut self, id: SockId) -> SockResult<&mut TlsConn<B>> {
        self.live(id)?.tls.as_deref_mut().ok_or(SockError::Closed)
    }
}

impl<B: StableBuf> SockGroup<B> {
    /// Adds a connected socket whose TLS handshake is done, with `records` protecting its bytes in
    /// user space (where kernel TLS is unavailable): receives return opened plaintext, writes are
    /// sealed at each flush (all of a connection's pending requests into one buffer of records) and
    /// complete once sealed. Works on every backend; zero copy is off for the connection.
    ///
    /// A `close_notify` from the peer reads as [`SockError::Eof`]; any other record error as an
    /// `Io(InvalidData)` error that ends the connection. Plaintext opened before either is read first.
    pub fn add_tls(&mut self, sock: TcpSock, records: Box<dyn RecordLayer>) -> io::Result<SockId> {
        let id = self.add(sock)?;
        let core = &mut self.core;
        if let Ok(c) = core.live(id) {
            c.tls = Some(Box::new(TlsConn::new(records)));
            c.zc_on = false;
        }
        core.tls.push(id.idx);
        core.tls_used = true;
        Ok(id)
    }

    /// Takes `id`'s record layer out (its sequence numbers continue) so the connection can move to
    /// another group with [`SockGroup::add_tls`] after [`SockGroup::close`]; `id` is a plain
    /// connection from then on. `None` for a plain connection. Refused while bytes wait in either
    /// direction (they would be lost with the move).
    pub fn take_record_layer(&mut self, id: SockId) -> SockResult<Option<Box<dyn RecordLayer>>> {
        let c = self.core.live(id)?;
        let Some(t) = c.tls.as_deref() else { return Ok(None) };
        if t.has_plain() || t.cin_len > 0 || !t.pending.is_empty() || t.rx_end.is_some() {
            return Err(SockError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS bytes still buffered: the connection cannot move",
            )));
        }
        let Some(t) = c.tls.take() else { return Ok(None) };
        self.core.tls.retain(|&i| i != id.idx);
        Ok(Some(t.records))
    }

    /// True when `id` is a live user-space TLS connection ([`SockGroup::add_tls`]).
    pub fn is_tls(&self, id: SockId) -> bool {
        self.core.get(id).is_ok_and(|c| c.tls.is_some())
    }

    /// Opens records until plaintext waits; WouldBlock only when none is available.
    fn tls_fill(&mut self, id: SockId) -> SockResult<()> {
        loop {
            let c = self.core.live(id)?;
            let Some(t) = c.tls.as_deref_mut() else { return Err(SockError::Closed) };
            if t.has_plain() {
                return Ok(());
            }
            if let Some(e) = &t.rx_end {
                return Err(e.duplicate());
            }
            t.plain.clear();
            t.plain_off = 0;
            // Whole records first: just read, or left by a layer that stopped early (KeyUpdate).
            let (records, cipher, plain) = match t.open_whole() {
                Ok(o) => o,
                // Deliver what was opened before the end; the end comes with the next read.
                Err(_) if t.has_plain() => {
                    c.counters.tls_plain_bytes_in += t.plain.len() as u64;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            c.counters.tls_records_opened += records;
            c.counters.tls_cipher_bytes_in += cipher as u64;
            c.counters.tls_plain_bytes_in += plain as u64;
            if t.has_plain() {
                return Ok(());
            }
            if records > 0 {
                // Records without application data (post-handshake messages): more may wait.
                continue;
            }
            if t.cin.is_empty() {
                t.cin = vec![0; CIPHER_BUF];
            }
            // The engine reads into our buffer: moved out for the call, which borrows the group.
            let mut cin = std::mem::take(&mut t.cin);
            let start = t.cin_len;
            let res = self.engine_recvv(id, &mut [IoSliceMut::new(&mut cin[start..])]);
            let t = self.core.tls_conn(id)?;
            t.cin = cin;
            match res {
                // No room can't happen (a partial record always fits), but never spin on it.
                Ok(0) => return Err(SockError::WouldBlock),
                Ok(n) => t.cin_len += n,
                Err(SockError::Eof) if t.cin_len > 0 => {
                    let e =
                        SockError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "TLS stream ended inside a record"));
                    return Err(t.end(e));
                }
                Err(e) if e.is_fatal() => return Err(t.end(e)),
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn tls_recvv(&mut self, id: SockId, bufs: &mut [IoSliceMut<'_>]) -> SockResult<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        self.tls_fill(id)?;
        let t = self.core.tls_conn(id)?;
        let mut got = 0;
        for b in bufs.iter_mut() {
            let src = &t.plain[t.plain_off..];
            let n = src.len().min(b.len());
            b[..n].copy_from_slice(&src[..n]);
            t.plain_off += n;
            got += n;
            if !t.has_plain() {
                break;
            }
        }
        Ok(got)
    }

    pub(super) fn tls_recv_in_place(&mut self, id: SockId, parse: impl FnOnce(&[u8]) -> usize) -> SockResult<usize> {
        self.tls_fill(id)?;
        let c = self.core.live(id)?;
        let Some(t) = c.tls.as_deref_mut() else { return Err(SockError::Closed) };
        let bytes = &t.plain[t.plain_off..];
        let n = parse(bytes).min(bytes.len());
        t.plain_off += n;
        c.counters.bytes_parsed_in_place += n as u64;
        Ok(n)
    }

    /// True when TLS connection `idx` holds opened plaintext or a whole record.
    fn tls_input_waits(&self, idx: u32) -> bool {
        matches!(self.core.slots.get(idx as usize), Some(Some(c)) if c.tls.as_ref().is_some_and(|t| t.has_input()))
    }

    /// True when a TLS connection holds opened plaintext or a whole record: the next [`SockGroup::poll`]
    /// reports it readable and does not block.
    pub fn tls_input_pending(&self) -> bool {
        self.core.tls.iter().any(|&i| self.tls_input_waits(i))
    }

    /// Reports TLS connections holding opened plaintext or a whole record readable (once per poll
    /// round), no syscall.
    pub(super) fn tls_report_readable(&mut self, events: &mut Vec<Event<B>>) {
        for k in 0..self.core.tls.len() {
            let idx = self.core.tls[k];
            if self.tls_input_waits(idx) && self.core.report_readable(idx, events) {
                self.core.counters.pipe_events += 1;
            }
        }
    }

    /// Seals each TLS connection's pending requests into one internal write.
    pub(super) fn tls_seal_all(&mut self) {
        for k in 0..self.core.tls.len() {
            let idx = self.core.tls[k];
            self.tls_seal(idx);
        }
    }

    fn tls_seal(&mut self, idx: u32) {
        let core = &mut self.core;
        let Some(Some(c)) = core.slots.get_mut(idx as usize) else { return };
        let id = SockId { idx, generation: c.generation };
        let Some(t) = c.tls.as_deref_mut() else { return };
        if c.broken {
            // As the write queue does for a failed connection's requests.
            for req in t.pending.drain(..) {
                core.pending.push(Event::WriteDone { sock: id, req, result: Err(SockError::Reset) });
            }
            return;
        }
        // Waits for room in the write queue (a peer that does not read stops the sealing too).
        if t.pending.is_empty() || c.wq.len() >= core.opts.write_queue_depth.max(1) {
            return;
        }
        let mut segs: Vec<&[u8]> = Vec::new();
        let mut plain = 0;
        for r in &t.pending {
            for s in r.segments() {
                plain += s.len();
                segs.push(s);
            }
        }
        // Room for the records' headers and tags (at most 256 bytes of expansion per record).
        let records = plain.div_ceil(1 << 14).max(1);
        let mut out = Vec::with_capacity(plain + records * (HEADER + 256));
        let sealed = t.records.seal(&segs, &mut out);
        drop(segs);
        match sealed {
            Ok(()) => {
                c.counters.tls_seals += 1;
                c.counters.tls_records_sealed += whole_records(&out).map_or(0, |(_, n)| n);
                c.counters.tls_plain_bytes_out += plain as u64;
                c.counters.tls_cipher_bytes_out += out.len() as u64;
                if c.wq.push(WriteReq::internal(out)).is_err() {
                    // Unreachable: room was checked above; the requests stay pending if it happens.
                    return;
                }
                for req in t.pending.drain(..) {
                    c.counters.writes_completed += 1;
                    core.pending.push(Event::WriteDone { sock: id, req, result: Ok(()) });
                }
                core.mark_dirty(idx);
            }
            Err(e) => {
                let why = match e {
                    RecordError::Closed => "seal after close".to_string(),
                    RecordError::Fatal(why) => why,
                };
                let err = fatal(why);
                for req in t.pending.drain(..) {
                    core.pending.push(Event::WriteDone { sock: id, req, result: Err(err.duplicate()) });
                }
                core.fail(id, err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_records_stop_at_a_partial_one_and_refuse_oversized_ones() {
        let mut b = vec![23, 3, 3, 0, 2, b'a', b'b', 23, 3, 3, 0, 1, b'c', 23, 3, 3, 0, 4, b'x'];
        assert_eq!(whole_records(&b), Ok((13, 2)));
        assert_eq!(whole_records(&b[..4]), Ok((0, 0)));
        b[16..18].copy_from_slice(&[0x41, 0x01]); // 16641 > 2^14 + 256
        assert!(whole_records(&b).is_err());
        assert_eq!(CIPHER_BUF % (HEADER + MAX_RECORD_BODY), 0);
    }
}
