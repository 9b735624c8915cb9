//! The buffer type of the initiator: an aligned [`IoBuf`] (from a [`ff_blockdev::BufPool`] or fresh) that
//! read data lands in straight from the socket and write data is sent from without a copy.

use ff_blockdev::IoBuf;
use std::ops::{Deref, DerefMut};

/// An I/O buffer owned by the caller between commands and by the queue while a command runs.
#[derive(Debug)]
pub struct Buf(pub IoBuf);

impl Buf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Buf {
        Buf(IoBuf::new(len))
    }

    /// A buffer holding a copy of `bytes` (setup and tests; the data path reuses buffers).
    pub fn from_slice(bytes: &[u8]) -> Buf {
        let mut b = Buf::new(bytes.len());
        b.copy_from_slice(bytes);
        b
    }

    /// The underlying [`IoBuf`] (to recycle into a pool).
    pub fn into_inner(self) -> IoBuf {
        self.0
    }
}

impl From<IoBuf> for Buf {
    fn from(b: IoBuf) -> Buf {
        Buf(b)
    }
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Buf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
