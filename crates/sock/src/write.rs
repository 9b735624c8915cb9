//! Asynchronous writes: a request is a small inline header, scatter-gather data buffers the caller hands
//! over without a copy, and an optional small trailer (a digest). A socket's queue is flushed with one
//! sendmsg gathering many requests; partial writes resume where they stopped; requests complete in
//! order, after the zero-copy notification that covers them when MSG_ZEROCOPY was used.

use crate::zerocopy::Tracker;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// Largest inline header (an NVMe/TCP capsule header with digest and padding fits).
pub const HEAD_MAX: usize = 128;
/// Largest inline trailer (a data digest).
pub const TAIL_MAX: usize = 8;

/// A buffer whose bytes stay at one address while the value lives, even when the value itself moves.
///
/// # Safety
/// `bytes()` must return the same pointer and length for the value's whole life, whatever happens to the
/// value (moves included), because a MSG_ZEROCOPY send lets the kernel read it after sendmsg returns.
pub unsafe trait StableBuf: 'static {
    /// The bytes to send.
    fn bytes(&self) -> &[u8];
}

// SAFETY: the heap allocation behind Vec/Box/Rc/Arc does not move when the handle moves, and these
// types give no way to reallocate through a shared reference.
unsafe impl StableBuf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
// SAFETY: see above.
unsafe impl StableBuf for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
// SAFETY: see above.
unsafe impl StableBuf for Rc<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
// SAFETY: see above.
unsafe impl StableBuf for Arc<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
// SAFETY: static data never moves.
unsafe impl StableBuf for &'static [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// One write: inline header, zero or more data buffers (not copied), inline trailer, and a caller tag.
#[derive(Debug)]
pub struct WriteReq<B> {
    head: [u8; HEAD_MAX],
    head_len: u8,
    tail: [u8; TAIL_MAX],
    tail_len: u8,
    /// The first data buffer inline: a storage PDU carries one, so no allocation per request.
    first: Option<B>,
    /// Further buffers, in order (allocates only when used).
    more: Vec<B>,
    /// Bytes the request owns, sent after the trailer (sealed TLS records; empty, so no allocation,
    /// on the plain path).
    owned: Vec<u8>,
    /// The group made this request itself (TLS ciphertext): its completion is not the caller's.
    internal: bool,
    /// The caller's identifier, handed back on completion.
    pub tag: u64,
}

impl<B: StableBuf> WriteReq<B> {
    /// A request whose header is `head` (at most [`HEAD_MAX`] bytes, else `None`).
    pub fn new(head: &[u8], tag: u64) -> Option<WriteReq<B>> {
        if head.len() > HEAD_MAX {
            return None;
        }
        let mut h = [0u8; HEAD_MAX];
        h[..head.len()].copy_from_slice(head);
        Some(WriteReq {
            head: h,
            head_len: head.len() as u8,
            tail: [0; TAIL_MAX],
            tail_len: 0,
            first: None,
            more: Vec::new(),
            owned: Vec::new(),
            internal: false,
            tag,
        })
    }

    /// A request carrying only data buffers.
    pub fn data_only(tag: u64) -> WriteReq<B> {
        WriteReq {
            head: [0; HEAD_MAX],
            head_len: 0,
            tail: [0; TAIL_MAX],
            tail_len: 0,
            first: None,
            more: Vec::new(),
            owned: Vec::new(),
            internal: false,
            tag,
        }
    }

    /// A request carrying `bytes` it owns (copied once by whoever built them, e.g. sealed records).
    pub fn owned(bytes: Vec<u8>, tag: u64) -> WriteReq<B> {
        let mut r = WriteReq::data_only(tag);
        r.owned = bytes;
        r
    }

    /// The group's own request (TLS ciphertext): completed silently, never reported to the caller.
    pub(crate) fn internal(bytes: Vec<u8>) -> WriteReq<B> {
        let mut r = WriteReq::owned(bytes, 0);
        r.internal = true;
        r
    }

    /// True for the group's own requests (see [`WriteReq::internal`]).
    pub(crate) fn is_internal(&self) -> bool {
        self.internal
    }

    /// Appends a data buffer (sent after the header, in order, without a copy).
    pub fn push_data(&mut self, b: B) {
        if self.first.is_none() {
            self.first = Some(b);
        } else {
            self.more.push(b);
        }
    }

    /// Sets the trailer (at most [`TAIL_MAX`] bytes; longer input is refused with `false`).
    pub fn set_tail(&mut self, t: &[u8]) -> bool {
        if t.len() > TAIL_MAX {
            return false;
        }
        self.tail[..t.len()].copy_from_slice(t);
        self.tail_len = t.len() as u8;
        true
    }

    /// The header bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len as usize]
    }

    /// The data buffers, in order.
    pub fn data(&self) -> impl Iterator<Item = &B> {
        self.first.iter().chain(self.more.iter())
    }

    /// Takes the data buffers back, in order (after completion, to recycle them).
    pub fn into_data(self) -> impl Iterator<Item = B> {
        self.first.into_iter().chain(self.more)
    }

    /// The owned bytes (sent after the trailer; see [`WriteReq::owned`]).
    pub fn owned_bytes(&self) -> &[u8] {
        &self.owned
    }

    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.head_len as usize
            + self.data().map(|b| b.bytes().len()).sum::<usize>()
            + self.tail_len as usize
            + self.owned.len()
    }

    /// True when the request carries no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The request's segments in wire order, skipping empty ones.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.head())
            .chain(self.data().map(|b| b.bytes()))
            .chain(std::iter::once(&self.tail[..self.tail_len as usize]))
            .chain(std::iter::once(&self.owned[..]))
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug)]
struct Entry<B> {
    req: WriteReq<B>,
    /// The id of the last MSG_ZEROCOPY send that carried bytes of this request.
    zc_id: Option<u32>,
}

/// A socket's queue: entries `[0, sent)` are on the wire awaiting completion; entry `sent` is partly
/// sent up to `offset`; the rest wait. Capacity is fixed at first use so entries never move while the
/// kernel may still read their inline headers (zero copy).
#[derive(Debug)]
pub(crate) struct WriteQueue<B> {
    q: VecDeque<Entry<B>>,
    sent: usize,
    offset: usize,
    cap: usize,
}

impl<B: StableBuf> WriteQueue<B> {
    pub(crate) fn new(cap: usize) -> Self {
        WriteQueue { q: VecDeque::new(), sent: 0, offset: 0, cap: cap.max(1) }
    }

    /// Queues a request, or hands it back when the queue is full.
    // The refused request goes back whole so the caller keeps its buffers; the error path is cold.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&mut self, req: WriteReq<B>) -> Result<(), WriteReq<B>> {
        if self.q.len() >= self.cap {
            return Err(req);
        }
        if self.q.capacity() == 0 {
            self.q.reserve_exact(self.cap);
        }
        debug_assert!(self.q.len() < self.q.capacity(), "queue must never reallocate");
        self.q.push_back(Entry { req, zc_id: None });
        Ok(())
    }

    /// True when some bytes are not yet handed to the kernel.
    pub(crate) fn has_unsent(&self) -> bool {
        self.sent < self.q.len()
    }

    /// Requests queued or awaiting completion.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Hands `emit` the unsent bytes as segments in wire order (the first one cut at the partial-send
    /// offset), at most `max` of them; returns the byte count.
    fn for_each_unsent<'a>(&'a self, max: usize, mut emit: impl FnMut(&'a [u8])) -> usize {
        let mut total = 0;
        let mut n = 0;
        let mut skip = self.offset;
        'outer: for e in self.q.iter().skip(self.sent) {
            for seg in e.req.segments() {
                if skip >= seg.len() {
                    skip -= seg.len();
                    continue;
                }
                let s = &seg[skip..];
                skip = 0;
                if n == max {
                    break 'outer;
                }
                emit(s);
                n += 1;
                total += s.len();
            }
        }
        total
    }

    /// Fills `out` with the unsent bytes (at most `max` slices); returns the byte count.
    pub(crate) fn gather<'a>(&'a self, out: &mut Vec<std::io::IoSlice<'a>>, max: usize) -> usize {
        out.clear();
        self.for_each_unsent(max, |s| out.push(std::io::IoSlice::new(s)))
    }

    /// [`WriteQueue::gather`] as raw iovecs, for an io_uring msghdr that outlives this borrow (the
    /// requests' memory stays put while they are queued: see the type's docs).
    pub(crate) fn gather_iovecs(&self, out: &mut Vec<libc::iovec>, max: usize) -> usize {
        out.clear();
        self.for_each_unsent(max, |s| {
            out.push(libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() })
        })
    }

    /// Records that the kernel took `n` bytes, by the zero-copy send `zc_id` if any.
    pub(crate) fn advance(&mut self, mut n: usize, zc_id: Option<u32>) {
        while n > 0 {
            let Some(e) = self.q.get_mut(self.sent) else { break };
            if zc_id.is_some() {
                e.zc_id = zc_id;
            }
            let left = e.req.len() - self.offset;
            if n >= left {
                n -= left;
                self.sent += 1;
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
        // Empty requests ahead complete with their neighbours.
        while self.q.get(self.sent).is_some_and(|e| e.req.is_empty()) {
            self.sent += 1;
        }
    }

    /// Pops the oldest request when it is fully sent and released by the kernel.
    pub(crate) fn pop_completed(&mut self, zc: &Tracker) -> Option<WriteReq<B>> {
        if self.sent == 0 {
            return None;
        }
        let front = self.q.front()?;
        if let Some(id) = front.zc_id
            && !zc.is_released(id)
        {
            return None;
        }
        self.sent -= 1;
        self.q.pop_front().map(|e| e.req)
    }

    /// Removes every request (connection closed), oldest first.
    pub(crate) fn drain_all(&mut self) -> impl Iterator<Item = WriteReq<B>> + '_ {
        self.sent = 0;
        self.offset = 0;
        self.q.drain(..).map(|e| e.req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(head: &[u8], data: &[&'static [u8]], tag: u64) -> WriteReq<&'static [u8]> {
        let mut r = WriteReq::new(head, tag).unwrap();
        for d in data {
            r.push_data(*d);
        }
        r
    }

    /// The bytes `gather` offers, and their count.
    fn gathered(q: &WriteQueue<&'static [u8]>, max: usize) -> (usize, Vec<u8>, usize) {
        let mut iovs = Vec::new();
        let total = q.gather(&mut iovs, max);
        (total, iovs.iter().flat_map(|s| s.iter()).copied().collect(), iovs.len())
    }

    #[test]
    fn gathers_across_requests_and_resumes_partial_writes() {
        let mut q = WriteQueue::new(8);
        q.push(req(b"H1", &[b"data1"], 1)).unwrap();
        let mut r2 = req(b"H2", &[b"d2", b"e2"], 2);
        assert!(r2.set_tail(b"TT"));
        q.push(r2).unwrap();
        let (total, bytes, _) = gathered(&q, 64);
        assert_eq!((total, &bytes[..]), (15, &b"H1data1H2d2e2TT"[..]));
        q.advance(4, None); // "H1da"
        let (total, bytes, _) = gathered(&q, 64);
        assert_eq!((total, &bytes[..]), (11, &b"ta1H2d2e2TT"[..]));
        let t = Tracker::default();
        assert!(q.pop_completed(&t).is_none(), "first request not fully sent");
        q.advance(5, None); // "ta1H2"
        assert_eq!(q.pop_completed(&t).unwrap().tag, 1);
        assert!(q.pop_completed(&t).is_none());
        q.advance(6, None);
        assert_eq!(q.pop_completed(&t).unwrap().tag, 2);
        assert!(!q.has_unsent());
    }

    #[test]
    fn iovec_limit_is_respected() {
        let mut q = WriteQueue::new(8);
        q.push(req(b"A", &[b"B", b"C"], 1)).unwrap();
        let (total, _, n) = gathered(&q, 2);
        assert_eq!((total, n), (2, 2));
    }

    #[test]
    fn zero_copy_requests_wait_for_their_notification_in_order() {
        let mut q = WriteQueue::new(8);
        q.push(req(b"A", &[b"1111"], 1)).unwrap();
        q.push(req(b"B", &[b"2222"], 2)).unwrap();
        q.advance(5, Some(0));
        q.advance(5, None); // copied send after a zero-copy one
        let mut t = Tracker::default();
        assert!(q.pop_completed(&t).is_none(), "held until id 0 is released");
        t.release(0, 0);
        assert_eq!(q.pop_completed(&t).unwrap().tag, 1);
        assert_eq!(q.pop_completed(&t).unwrap().tag, 2);
    }

    #[test]
    fn owned_bytes_go_after_the_trailer() {
        let mut q: WriteQueue<&'static [u8]> = WriteQueue::new(8);
        let mut r = req(b"H", &[b"d"], 1);
        assert!(r.set_tail(b"T"));
        r.owned = b"own".to_vec();
        q.push(r).unwrap();
        q.push(WriteReq::owned(b"only".to_vec(), 2)).unwrap();
        let (total, bytes, _) = gathered(&q, 64);
        assert_eq!((total, &bytes[..]), (10, &b"HdTownonly"[..]));
        q.advance(4, None);
        let (_, bytes, _) = gathered(&q, 64);
        assert_eq!(&bytes[..], b"wnonly");
        q.advance(6, None);
        let t = Tracker::default();
        assert_eq!(q.pop_completed(&t).unwrap().tag, 1);
        assert_eq!(q.pop_completed(&t).unwrap().owned_bytes(), b"only");
    }

    #[test]
    fn queue_is_bounded_and_headers_are_bounded() {
        let mut q = WriteQueue::new(1);
        q.push(req(b"A", &[], 1)).unwrap();
        assert!(q.push(req(b"B", &[], 2)).is_err());
        assert!(WriteReq::<Vec<u8>>::new(&[0u8; HEAD_MAX + 1], 0).is_none());
    }
}
