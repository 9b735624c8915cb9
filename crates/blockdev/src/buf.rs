//! Owned I/O buffers: [`IoBuf`] is one heap allocation aligned to [`IO_ALIGN`] (what O_DIRECT needs),
//! moved into a request and handed back on completion, never copied nor shared; [`BufPool`] recycles
//! them per reactor by power-of-two size class so the I/O path does not hit the allocator.
//!
//! An [`Arena`] is one anonymous mapping registered with an io_uring ring as a fixed buffer: a pool
//! given one ([`BufPool::with_arena`]) carves its buffers from it, and the file handle reads and
//! writes them with READ_FIXED / WRITE_FIXED (no page pinning per I/O). An arena buffer holds a
//! reference to its arena and, when dropped anywhere (pool, sock layer after a send, a leaked request
//! excepted), goes back to the arena's free list: the mapping is unmapped only when the arena, every
//! buffer and the ring's registration (see [`Arena::register`]) are gone.

use ff_sock::mem::AnonMap;
use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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
    /// The arena the bytes belong to (None: a heap allocation of `cap` bytes).
    arena: Option<Arc<Arena>>,
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
        Some(IoBuf { ptr, len, cap, arena: None })
    }

    /// The arena id and ring buffer index for READ_FIXED / WRITE_FIXED, when the buffer lies in a
    /// registered arena.
    pub fn fixed(&self) -> Option<(u64, u16)> {
        let a = self.arena.as_ref()?;
        Some((a.id, *a.index.get()?))
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
        if let Some(a) = self.arena.take() {
            // Never freed on its own: the bytes go back to the arena, which outlives this buffer.
            a.release(self.ptr, self.cap);
            return;
        }
        // SAFETY: allocated in `with_capacity` with this very layout (validated there).
        unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, IO_ALIGN)) };
    }
}

/// One mapping carved into [`IoBuf`]s of the pool's size classes and registered with a ring as a
/// fixed buffer; see the module docs.
pub struct Arena {
    id: u64,
    map: AnonMap,
    len: usize,
    /// Buffer index in the ring's registered table, once registered.
    index: OnceLock<u16>,
    state: Mutex<ArenaState>,
}

#[derive(Default)]
struct ArenaState {
    /// Bytes carved so far (from the start; never given back to the bump).
    next: usize,
    /// Free offsets per size class.
    free: Vec<Vec<usize>>,
}

static ARENA_IDS: AtomicU64 = AtomicU64::new(1);

impl Arena {
    /// Maps `len` bytes (rounded up to a page), zeroed and page aligned.
    pub fn new(len: usize) -> std::io::Result<Arc<Arena>> {
        let len = len.max(IO_ALIGN).next_multiple_of(IO_ALIGN);
        let map = AnonMap::new(len, false)?;
        Ok(Arc::new(Arena {
            id: ARENA_IDS.fetch_add(1, Ordering::Relaxed),
            map,
            len,
            index: OnceLock::new(),
            state: Mutex::new(ArenaState { next: 0, free: (0..NUM_CLASSES).map(|_| Vec::new()).collect() }),
        }))
    }

    /// Unique id of this arena (file handles match it before using a fixed op).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (an arena maps at least a page); for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ring buffer index, once registered.
    pub fn index(&self) -> Option<u16> {
        self.index.get().copied()
    }

    /// Registers the whole mapping as fixed buffer 0 of `group`'s ring (one IORING_REGISTER_BUFFERS).
    /// The group keeps a reference to the arena until its ring is gone.
    pub fn register<B: ff_sock::StableBuf>(self: &Arc<Self>, group: &mut ff_sock::SockGroup<B>) -> std::io::Result<()> {
        let iov = libc::iovec { iov_base: self.map.as_ptr().cast(), iov_len: self.len };
        // SAFETY: the mapping lives until the last Arc<Arena> is dropped, and the group holds one
        // (keep-alive) until after its ring is dropped, so the registered memory outlives the
        // registration and every fixed request of the ring.
        unsafe { group.register_buffers(&[iov], Box::new(Arc::clone(self)))? };
        let _ = self.index.set(0);
        Ok(())
    }

    /// A buffer of `len` bytes of `cap`'s class from the arena (stale contents), or None when full.
    fn alloc(self: &Arc<Self>, len: usize, class: usize, cap: usize) -> Option<(IoBuf, bool)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (off, reused) = match st.free[class].pop() {
            Some(off) => (off, true),
            None if st.next + cap <= self.len => {
                st.next += cap;
                (st.next - cap, false)
            }
            None => return None,
        };
        // SAFETY: off + cap <= len, inside the mapping.
        let ptr = unsafe { NonNull::new_unchecked(self.map.as_ptr().add(off)) };
        Some((IoBuf { ptr, len, cap, arena: Some(Arc::clone(self)) }, reused))
    }

    /// Takes back the bytes of a dropped arena buffer.
    fn release(&self, ptr: NonNull<u8>, cap: usize) {
        let off = ptr.as_ptr() as usize - self.map.as_ptr() as usize;
        if let Some((class, _)) = BufPool::class_of(cap) {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).free[class].push(off);
        }
    }
}

// The mapping unmaps itself with the arena: by then no IoBuf points into it (each holds an Arc) and no
// ring has it registered (the group holds an Arc until its ring is dropped).

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena").field("id", &self.id).field("len", &self.len).field("index", &self.index()).finish()
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
    /// Buffers are carved from this arena first (heap when it is full or the size exceeds a class).
    arena: Option<Arc<Arena>>,
    arena_bufs: u64,
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
        BufPool {
            free: (0..NUM_CLASSES).map(|_| Vec::new()).collect(),
            per_class,
            hits: 0,
            misses: 0,
            arena: None,
            arena_bufs: 0,
        }
    }

    /// A pool that carves its buffers from `arena` (its free lists are the arena's own) and falls back
    /// to the heap when the arena is full.
    pub fn with_arena(arena: Arc<Arena>) -> BufPool {
        BufPool { arena: Some(arena), ..BufPool::new() }
    }

    /// The pool's arena, if any.
    pub fn arena(&self) -> Option<&Arc<Arena>> {
        self.arena.as_ref()
    }

    /// Buffers handed out from the arena.
    pub fn arena_bufs(&self) -> u64 {
        self.arena_bufs
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
        if let Some(a) = &self.arena
            && let Some((b, reused)) = a.alloc(len, class, cap)
        {
            self.arena_bufs += 1;
            if reused {
                self.hits += 1
            } else {
                self.misses += 1
            }
            return b;
        }
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
        if buf.arena.is_some() {
            return; // dropping it hands it back to its arena
        }
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
