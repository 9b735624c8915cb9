//! The buffers a target connection sends and receives: I/O buffers from the reactor's pool (block data,
//! zero copy) or small heap vectors (admin data such as Identify pages).

use ff_blockdev::{BufPool, IoBuf};
use ff_nvme_tcp::target::{BufAlloc, DataBuf};
use ff_sock::StableBuf;

/// A data buffer of a target connection.
#[derive(Debug)]
pub enum TxBuf {
    /// An aligned I/O buffer, recycled through the reactor's [`BufPool`].
    Io(IoBuf),
    /// A heap vector (admin data).
    Vec(Vec<u8>),
}

impl AsRef<[u8]> for TxBuf {
    fn as_ref(&self) -> &[u8] {
        match self {
            TxBuf::Io(b) => b,
            TxBuf::Vec(v) => v,
        }
    }
}

impl AsMut<[u8]> for TxBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            TxBuf::Io(b) => b,
            TxBuf::Vec(v) => v,
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
        }
    }
}

// SAFETY: both variants own one heap allocation that does not move when the value moves, and neither
// can reallocate through a shared reference.
unsafe impl StableBuf for TxBuf {
    fn bytes(&self) -> &[u8] {
        self.as_ref()
    }
}

impl TxBuf {
    /// Gives an I/O buffer back to `pool`; vectors are just dropped.
    pub fn recycle(self, pool: &mut BufPool) {
        if let TxBuf::Io(b) = self {
            pool.put(b);
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
