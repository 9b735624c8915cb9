//! Memory the kernel reads or writes behind the program's back (provided receive buffers, registered
//! I/O buffers, RAM disks): one owner type for an anonymous mapping, unmapped when dropped, or leaked on
//! purpose when the kernel may still use it.

use std::io;
use std::ptr::NonNull;

/// An anonymous private read-write mapping, page aligned and zero filled; unmapped on drop.
#[derive(Debug)]
pub struct AnonMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; whoever hands out references to it (the
// owners in this workspace: the buffer ring, the arena, the RAM disk) is responsible for how they are
// shared, as with a Box<[u8]>.
unsafe impl Send for AnonMap {}
// SAFETY: `&AnonMap` only exposes the address and length.
unsafe impl Sync for AnonMap {}

impl AnonMap {
    /// Maps `len` bytes (at least one page). `noreserve`: no swap is reserved, so a large mapping that is
    /// touched sparsely (a RAM disk) does not count against overcommit up front.
    pub fn new(len: usize, noreserve: bool) -> io::Result<AnonMap> {
        use rustix::mm::{MapFlags, ProtFlags};
        let len = len.max(1);
        let flags = if noreserve { MapFlags::PRIVATE | MapFlags::NORESERVE } else { MapFlags::PRIVATE };
        // SAFETY: a fresh anonymous mapping at an address the kernel picks: no existing memory is
        // affected.
        let p = unsafe {
            rustix::mm::mmap_anonymous(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, flags)?
        };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(AnonMap { ptr, len })
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The first byte, never null.
    pub fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a mapping has at least one byte); for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the mapping up without unmapping it: for memory the kernel may still write.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: this value mapped exactly this range and owns it; the owners above keep no reference
        // into it past their own drop (or leak the AnonMap instead).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
