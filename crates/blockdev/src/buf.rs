//! Owned I/O buffers: [`IoBuf`] is one heap allocation aligned to [`IO_ALIGN`] (what O_DIRECT needs),
//! moved into a request and handed back on completion, never copied nor shared; [`BufPool`] recycles
//! them per reactor by power-of-two size class so the I/O path does not hit the allocator.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Alignment of every [`IoBuf`]: a page, enough for O_DIRECT on any device.
pub const IO_ALIGN: usize = 4096;

/// An owned, zero-initialised, 4096-aligned byte buffer whose length may change within its capacity.
///
/// For I/O its length must be `blocks * block_size`. Bytes never move while the value lives, so it
/// can be sent with MSG_ZEROCOPY ([`ff_sock::StableBuf`]).
pub struct IoBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: IoBuf uniquely owns its allocation (like Box<[u8]>); nothing is tied to the creating thread.
unsafe impl Send for IoBuf {}
// SAFETY: a shared reference only gives `&[u8]`.
unsafe impl Sync for IoBuf {}

impl IoBuf {
    /// A zeroed buffer of `len` bytes (capacity rounded up to a multiple of 4096).
    ///
    /// Panics, like `Vec`, only when the size overflows `isize`; see [`IoBuf::try_new`].
    pub fn new(len: usize) -> IoBuf {
        match IoBuf::try_new(len) {
            Some(b) => b,
            None => panic!("IoBuf of {len} bytes: capacity overflow"),
        }
    }

    /// A zeroed buffer of `len` bytes, or `None` when the size overflows `isize`.
    pub fn try_new(len: usize) -> Option<IoBuf> {
        let cap = len.max(1).checked_next_multiple_of(IO_ALIGN)?;
        IoBuf::with_capacity(len, cap)
    }

    /// A zeroed buffer of `len` bytes in an allocation of exactly `cap` bytes (`cap` a non-zero
    /// multiple of 4096, at least `len`).
    pub(crate) fn with_capacity(len: usize, cap: usize) -> Option<IoBuf> {
        if cap == 0 || len > cap || !cap.is_multiple_of(IO_ALIGN) {
            return None;
        }
        let layout = Layout::from_size_align(cap, IO_ALIGN).ok()?;
        // SAFETY: layout has a non-zero size. Zeroing makes every byte up to `cap` initialised, so
        // `set_len` can expose any of them safely.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
        Some(IoBuf { ptr, len, cap })
    }

    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Sets the length within the capacity (false, unchanged, beyond it). Bytes that come into view
    /// hold whatever they last held (zero, or stale data of an earlier use): initialised, not cleared.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.cap {
            return false;
        }
        self.len = len;
        true
    }

    /// Zeroes the buffer's bytes.
    pub fn zero(&mut self) {
        self.fill(0);
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this very layout (validated there).
        unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, IO_ALIGN)) };
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len <= cap` bytes, all initialised (zeroed at allocation), owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBuf").field("len", &self.len).field("cap", &self.cap).finish()
    }
}

// SAFETY: the heap allocation never moves nor is reallocated while the IoBuf lives (no method
// reallocates), and a shared reference cannot change `len`, so `bytes()` is stable while the sock
// layer holds the value.
unsafe impl ff_sock::StableBuf for IoBuf {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Smallest size class (one page).
const MIN_CLASS_SHIFT: u32 = 12;
/// Size classes 4 KiB .. 8 MiB; larger buffers are allocated and freed each time.
const NUM_CLASSES: usize = 12;
/// Free buffers kept per class by default.
const DEFAULT_PER_CLASS: usize = 256;

/// Per-reactor recycler of [`IoBuf`]s by power-of-two size class (not shared, no lock).
///
/// A recycled buffer holds stale bytes from its last use; reads and host data overwrite them fully.
#[derive(Debug)]
pub struct BufPool {
    free: Vec<Vec<IoBuf>>,
    per_class: usize,
    hits: u64,
    misses: u64,
}

impl Default for BufPool {
    fn default() -> Self {
        BufPool::new()
    }
}

impl BufPool {
    /// A pool keeping at most 256 free buffers per size class.
    pub fn new() -> BufPool {
        BufPool::with_limit(DEFAULT_PER_CLASS)
    }

    /// A pool keeping at most `per_class` free buffers per size class.
    pub fn with_limit(per_class: usize) -> BufPool {
        BufPool { free: (0..NUM_CLASSES).map(|_| Vec::new()).collect(), per_class, hits: 0, misses: 0 }
    }

    /// The class of a buffer of `len` bytes, and that class's capacity.
    fn class_of(len: usize) -> Option<(usize, usize)> {
        let cap = len.max(1 << MIN_CLASS_SHIFT).checked_next_power_of_two()?;
        let class = (cap.trailing_zeros() - MIN_CLASS_SHIFT) as usize;
        (class < NUM_CLASSES).then_some((class, cap))
    }

    /// A buffer of `len` bytes: a recycled one of its class (stale contents) or a new zeroed one.
    ///
    /// Panics, like `Vec`, only when `len` overflows `isize`.
    pub fn get(&mut self, len: usize) -> IoBuf {
        let Some((class, cap)) = BufPool::class_of(len) else {
            self.misses += 1;
            return IoBuf::new(len);
        };
        if let Some(mut b) = self.free[class].pop() {
            self.hits += 1;
            b.set_len(len);
            return b;
        }
        self.misses += 1;
        IoBuf::with_capacity(len, cap).unwrap_or_else(|| IoBuf::new(len))
    }

    /// Gives a buffer back for reuse (dropped if its capacity is not a class size or the class is full).
    pub fn put(&mut self, buf: IoBuf) {
        if let Some((class, cap)) = BufPool::class_of(buf.capacity())
            && cap == buf.capacity()
            && self.free[class].len() < self.per_class
        {
            self.free[class].push(buf);
        }
    }

    /// Buffers served from the free lists.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Buffers that had to be allocated.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Free buffers held.
    pub fn free_count(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_resizable() {
        let mut b = IoBuf::new(1000);
        assert_eq!(b.len(), 1000);
        assert_eq!(b.capacity(), 4096);
        assert_eq!(b.as_ptr() as usize % IO_ALIGN, 0);
        assert!(b.iter().all(|&x| x == 0));
        b[999] = 7;
        assert!(b.set_len(4096));
        assert!(!b.set_len(4097));
        assert_eq!(b[999], 7);
        let e = IoBuf::new(0);
        assert!(e.is_empty());
        assert!(IoBuf::try_new(usize::MAX).is_none());
    }

    #[test]
    fn stable_buf_points_at_the_allocation() {
        let b = IoBuf::new(8192);
        let p = b.as_ptr();
        let moved = Box::new(b);
        assert_eq!(ff_sock::StableBuf::bytes(&*moved).as_ptr(), p);
        assert_eq!(ff_sock::StableBuf::bytes(&*moved).len(), 8192);
    }

    #[test]
    fn pool_reuses_by_class() {
        let mut pool = BufPool::with_limit(2);
        let a = pool.get(4096);
        let pa = a.as_ptr();
        let b = pool.get(5000);
        assert_eq!(b.capacity(), 8192);
        pool.put(a);
        pool.put(b);
        assert_eq!(pool.free_count(), 2);
        let c = pool.get(512);
        assert_eq!(c.as_ptr(), pa, "same 4 KiB buffer recycled");
        assert_eq!(c.len(), 512);
        let d = pool.get(8192);
        assert_eq!(d.capacity(), 8192);
        assert_eq!((pool.hits(), pool.misses()), (2, 2));
        // Over the limit: dropped, not kept.
        pool.put(c);
        pool.put(d);
        pool.put(IoBuf::new(4096));
        pool.put(IoBuf::new(4096));
        assert_eq!(pool.free_count(), 3);
        // Huge buffers bypass the pool; odd capacities are not kept.
        let big = pool.get(64 << 20);
        assert_eq!(big.len(), 64 << 20);
        pool.put(big);
        pool.put(IoBuf::new(3 * 4096));
        assert_eq!(pool.free_count(), 3);
    }
}
