//! The per-connection receive pipe: a ring buffer that one large readv fills so a burst of small PDUs
//! costs one syscall, and the group's pool that lends pipe memory only to connections holding data.

use std::io::IoSliceMut;

/// Idle pipe buffers of one group, reused so a busy connection does not allocate per fill.
#[derive(Debug)]
pub struct PipePool {
    size: usize,
    max: usize,
    free: Vec<Box<[u8]>>,
}

impl PipePool {
    /// A pool of `size`-byte buffers keeping at most `max` idle ones.
    pub fn new(size: usize, max: usize) -> PipePool {
        PipePool { size, max, free: Vec::new() }
    }

    /// Idle buffers held.
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    fn take(&mut self) -> Box<[u8]> {
        self.free.pop().unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    fn give(&mut self, b: Box<[u8]>) {
        if self.free.len() < self.max {
            self.free.push(b);
        }
    }
}

/// A ring buffer of received bytes not yet consumed. Holds memory only while it holds data.
#[derive(Debug, Default)]
pub struct Pipe {
    buf: Option<Box<[u8]>>,
    head: usize,
    len: usize,
}

impl Pipe {
    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the pipe currently holds a buffer from the pool.
    #[cfg(test)]
    pub fn has_memory(&self) -> bool {
        self.buf.is_some()
    }

    /// The free space, at most `max` bytes, as up to two slices (the ring may wrap), borrowing a buffer
    /// from `pool` if needed. After the read, call [`Pipe::commit`] with the number of bytes written.
    pub fn free_slices<'a>(&'a mut self, pool: &mut PipePool, max: usize) -> [IoSliceMut<'a>; 2] {
        if self.buf.is_none() {
            self.buf = Some(pool.take());
            self.head = 0;
        }
        let (head, len) = (self.head, self.len);
        let buf = self.buf.as_mut().expect("pipe buffer just ensured");
        let cap = buf.len();
        let tail = (head + len) % cap.max(1);
        if len == cap {
            return [IoSliceMut::new(&mut []), IoSliceMut::new(&mut [])];
        }
        if tail >= head {
            // Free space: [tail, cap) then [0, head).
            let (front, back) = buf.split_at_mut(tail);
            let first = back.len().min(max);
            let second = head.min(max - first);
            [IoSliceMut::new(&mut back[..first]), IoSliceMut::new(&mut front[..second])]
        } else {
            let end = head.min(tail + max);
            [IoSliceMut::new(&mut buf[tail..end]), IoSliceMut::new(&mut [])]
        }
    }

    /// Records that `n` bytes were written into the slices from [`Pipe::free_slices`].
    pub fn commit(&mut self, n: usize, pool: &mut PipePool) {
        self.len += n;
        if self.len == 0 {
            self.release(pool);
        }
    }

    /// The buffered bytes from the oldest up to the end of the ring; when the ring wraps, the rest
    /// follows once these are consumed.
    pub fn readable(&self) -> &[u8] {
        match self.buf.as_ref() {
            Some(buf) => {
                let end = (self.head + self.len).min(buf.len());
                buf.get(self.head..end).unwrap_or(&[])
            }
            None => &[],
        }
    }

    /// Drops the oldest `n` buffered bytes (at most what is buffered). Empty pipes give memory back.
    pub fn consume(&mut self, n: usize, pool: &mut PipePool) {
        let Some(cap) = self.buf.as_ref().map(|b| b.len()) else { return };
        let n = n.min(self.len);
        self.head = (self.head + n) % cap.max(1);
        self.len -= n;
        if self.len == 0 {
            self.release(pool);
        }
    }

    /// Copies up to `dst.len()` buffered bytes out, returning how many. Empty pipes give memory back.
    pub fn copy_out(&mut self, dst: &mut [u8], pool: &mut PipePool) -> usize {
        let mut n = 0;
        // At most two rounds: up to the end of the ring, then from its start.
        while n < dst.len() {
            let src = self.readable();
            let k = src.len().min(dst.len() - n);
            if k == 0 {
                break;
            }
            dst[n..n + k].copy_from_slice(&src[..k]);
            n += k;
            self.consume(k, pool);
        }
        n
    }

    /// Gives the buffer back to the pool (only when empty).
    fn release(&mut self, pool: &mut PipePool) {
        if self.len == 0
            && let Some(b) = self.buf.take()
        {
            pool.give(b);
            self.head = 0;
        }
    }

    /// Drops buffered data and memory (connection closed).
    pub fn clear(&mut self, pool: &mut PipePool) {
        self.len = 0;
        self.release(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(p: &mut Pipe, pool: &mut PipePool, data: &[u8]) -> usize {
        let mut slices = p.free_slices(pool, usize::MAX);
        let mut n = 0;
        for s in slices.iter_mut() {
            let k = s.len().min(data.len() - n);
            s[..k].copy_from_slice(&data[n..n + k]);
            n += k;
        }
        p.commit(n, pool);
        n
    }

    #[test]
    fn readable_and_consume_walk_the_ring_in_order() {
        let mut pool = PipePool::new(8, 4);
        let mut p = Pipe::default();
        assert!(p.readable().is_empty());
        fill(&mut p, &mut pool, b"abcdef");
        p.consume(4, &mut pool);
        fill(&mut p, &mut pool, b"ghij");
        // "ef" sits at the end of the ring, "ghij" wrapped to its start.
        assert_eq!(p.readable(), b"efgh");
        p.consume(3, &mut pool);
        assert_eq!(p.readable(), b"h", "up to the end of the ring only");
        p.consume(1, &mut pool);
        assert_eq!(p.readable(), b"ij", "then from its start");
        p.consume(9, &mut pool);
        assert!(p.is_empty() && !p.has_memory(), "an emptied pipe gives its memory back");
    }

    #[test]
    fn wraps_and_preserves_order() {
        let mut pool = PipePool::new(8, 4);
        let mut p = Pipe::default();
        assert_eq!(fill(&mut p, &mut pool, b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(p.copy_out(&mut out, &mut pool), 4);
        assert_eq!(&out, b"abcd");
        // 2 buffered at [4,6); free space wraps: [6,8) + [0,4).
        assert_eq!(fill(&mut p, &mut pool, b"ghijklmn"), 6);
        assert_eq!(p.len(), 8);
        assert_eq!(fill(&mut p, &mut pool, b"zz"), 0, "full pipe takes nothing");
        let mut out = [0u8; 16];
        assert_eq!(p.copy_out(&mut out, &mut pool), 8);
        assert_eq!(&out[..8], b"efghijkl");
    }

    #[test]
    fn fill_can_be_capped() {
        let mut pool = PipePool::new(8, 4);
        let mut p = Pipe::default();
        let s = p.free_slices(&mut pool, 3);
        assert_eq!(s.iter().map(|x| x.len()).sum::<usize>(), 3);
    }

    #[test]
    fn empty_pipe_returns_memory_to_pool() {
        let mut pool = PipePool::new(16, 4);
        let mut p = Pipe::default();
        fill(&mut p, &mut pool, b"xy");
        assert!(p.has_memory());
        assert_eq!(pool.idle(), 0);
        let mut out = [0u8; 2];
        p.copy_out(&mut out, &mut pool);
        assert!(!p.has_memory());
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn pool_is_bounded() {
        let mut pool = PipePool::new(4, 1);
        let (mut a, mut b) = (Pipe::default(), Pipe::default());
        fill(&mut a, &mut pool, b"1");
        fill(&mut b, &mut pool, b"2");
        a.clear(&mut pool);
        b.clear(&mut pool);
        assert_eq!(pool.idle(), 1);
    }
}
