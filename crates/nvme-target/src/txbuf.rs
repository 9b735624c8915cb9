//! The buffers a target connection sends and receives: I/O buffers from the reactor's pool (block data,
//! zero copy), small heap vectors (admin data such as Identify pages), and slices of one shared buffer
//! (an iSCSI read answered in several Data-In PDUs, each sending its part without a copy).

use ff_blockdev::{BufPool, IoBuf};
use ff_nvme_tcp::target::{BufAlloc, DataBuf};
use ff_sock::StableBuf;
use std::ops::Range;
use std::rc::Rc;

/// A data buffer of a target connection.
#[derive(Debug)]
pub enum TxBuf {
    /// An aligned I/O buffer, recycled through the reactor's [`BufPool`].
    Io(IoBuf),
    /// A heap vector (admin data).
    Vec(Vec<u8>),
    /// `range` of a buffer other parts share; the last part to go recycles it.
    Part(Rc<TxBuf>, Range<usize>),
}

impl AsRef<[u8]> for TxBuf {
    fn as_ref(&self) -> &[u8] {
        match self {
            TxBuf::Io(b) => b,
            TxBuf::Vec(v) => v,
            TxBuf::Part(b, r) => b.as_ref().as_ref().get(r.clone()).unwrap_or(&[]),
        }
    }
}

impl AsMut<[u8]> for TxBuf {
    /// A shared part is never written: it reads as empty here.
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            TxBuf::Io(b) => b,
            TxBuf::Vec(v) => v,
            TxBuf::Part(..) => &mut [],
        }
    }
}

impl DataBuf for TxBuf {
    fn truncate(&mut self, len: usize) {
        match self {
            TxBuf::Io(b) => {
                if len < b.len() {
                    b.set_len(len);
                }
            }
            TxBuf::Vec(v) => v.truncate(len),
            TxBuf::Part(_, r) => r.end = r.end.min(r.start + len),
        }
    }
}

// SAFETY: `Io` and `Vec` own one heap allocation that does not move when the value moves, and neither
// can reallocate through a shared reference; a `Part` points into the buffer its `Rc` keeps alive on
// the heap, which nothing mutates while parts exist (`as_mut` of a part is empty).
unsafe impl StableBuf for TxBuf {
    fn bytes(&self) -> &[u8] {
        self.as_ref()
    }
}

impl TxBuf {
    /// Gives an I/O buffer back to `pool`; vectors are just dropped.
    pub fn recycle(self, pool: &mut BufPool) {
        match self {
            TxBuf::Io(b) => pool.put(b),
            TxBuf::Vec(_) => {}
            TxBuf::Part(shared, _) => {
                if let Ok(b) = Rc::try_unwrap(shared) {
                    b.recycle(pool);
                }
            }
        }
    }

    /// The I/O buffer holding these bytes: itself, or a pool buffer they are copied into.
    pub fn into_io(self, pool: &mut BufPool) -> IoBuf {
        match self {
            TxBuf::Io(b) => b,
            other => {
                let src = other.as_ref();
                let mut b = pool.get(src.len());
                b.copy_from_slice(src);
                other.recycle(pool);
                b
            }
        }
    }
}

/// Largest single allocation a connection may ask for (the transport bounds transfers by MDTS first).
pub const MAX_ALLOC: usize = 8 << 20;

/// Lends the reactor's pool to a connection for host data.
pub struct PoolAlloc<'a>(pub &'a mut BufPool);

impl BufAlloc<TxBuf> for PoolAlloc<'_> {
    fn alloc(&mut self, len: usize) -> Option<TxBuf> {
        if len > MAX_ALLOC {
            return None;
        }
        Some(TxBuf::Io(self.0.get(len)))
    }
}

impl ff_iscsi::BufAlloc<TxBuf> for PoolAlloc<'_> {
    fn alloc(&mut self, len: usize) -> Option<TxBuf> {
        BufAlloc::alloc(self, len)
    }
}
